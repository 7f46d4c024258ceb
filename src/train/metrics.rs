//! Evaluation metrics (ROC AUC, PR AUC, ECE, Brier) and the small logistic fits used
//! for calibration. Pure functions over slices; no I/O, no model.

/// ROC AUC by the rank-sum formula, ties counted half. `None` without both classes.
pub fn roc_auc(scores: &[f32], labels: &[bool]) -> Option<f64> {
    let n_pos = labels.iter().filter(|&&l| l).count();
    let n_neg = labels.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return None;
    }
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut rank_sum_pos = 0f64;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            if labels[k] {
                rank_sum_pos += avg_rank;
            }
        }
        i = j + 1;
    }
    let (p, n) = (n_pos as f64, n_neg as f64);
    Some((rank_sum_pos - p * (p + 1.0) / 2.0) / (p * n))
}

/// Average precision (area under the precision-recall curve, step-wise).
pub fn pr_auc(scores: &[f32], labels: &[bool]) -> Option<f64> {
    let n_pos = labels.iter().filter(|&&l| l).count();
    if n_pos == 0 {
        return None;
    }
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tp, mut seen, mut ap) = (0usize, 0usize, 0f64);
    let mut i = 0;
    while i < idx.len() {
        // Treat tied scores as one threshold.
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let new_tp = idx[i..=j].iter().filter(|&&k| labels[k]).count();
        tp += new_tp;
        seen += j - i + 1;
        ap += new_tp as f64 / n_pos as f64 * (tp as f64 / seen as f64);
        i = j + 1;
    }
    Some(ap)
}

/// Expected calibration error over `bins` equal-width probability bins.
pub fn ece(probs: &[f32], labels: &[bool], bins: usize) -> Option<f64> {
    if probs.is_empty() {
        return None;
    }
    let mut sum_p = vec![0f64; bins];
    let mut sum_y = vec![0f64; bins];
    let mut count = vec![0usize; bins];
    for (&p, &y) in probs.iter().zip(labels) {
        let b = ((p.clamp(0.0, 1.0) as f64 * bins as f64) as usize).min(bins - 1);
        sum_p[b] += p as f64;
        sum_y[b] += y as u8 as f64;
        count[b] += 1;
    }
    let n = probs.len() as f64;
    Some(
        (0..bins)
            .filter(|&b| count[b] > 0)
            .map(|b| (sum_p[b] - sum_y[b]).abs() / n)
            .sum(),
    )
}

pub fn brier(probs: &[f32], labels: &[bool]) -> Option<f64> {
    if probs.is_empty() {
        return None;
    }
    Some(
        probs
            .iter()
            .zip(labels)
            .map(|(&p, &y)| (p as f64 - y as u8 as f64).powi(2))
            .sum::<f64>()
            / probs.len() as f64,
    )
}

/// Fits logistic regression y ~ sigmoid(w.x + b) by Newton's method with a small L2
/// penalty on w. Returns (w, b). Used for Platt scaling and the change combiner.
pub fn fit_logistic(xs: &[Vec<f64>], ys: &[bool], l2: f64) -> (Vec<f64>, f64) {
    fit_logistic_with_pairs(xs, ys, &[], 0.0, l2)
}

/// [`fit_logistic`] with a pairwise term: for each `gaps` row (the features of a pair's
/// first member minus its second's), a log-loss on sigmoid(w.gap) towards 1 (the bias
/// cancels in a gap), the pairs' mean weighted `pair_weight` against the rows' mean.
pub fn fit_logistic_with_pairs(
    xs: &[Vec<f64>],
    ys: &[bool],
    gaps: &[Vec<f64>],
    pair_weight: f64,
    l2: f64,
) -> (Vec<f64>, f64) {
    let k = xs.first().map_or(0, |x| x.len());
    let dim = k + 1;
    let mut theta = vec![0f64; dim];
    // Rows as (features with the bias column, target, weight): a pair has no bias column.
    let scale = if gaps.is_empty() {
        0.0
    } else {
        pair_weight * xs.len() as f64 / gaps.len() as f64
    };
    let rows: Vec<(Vec<f64>, f64, f64)> = xs
        .iter()
        .zip(ys)
        .map(|(x, &y)| {
            (
                x.iter().copied().chain(std::iter::once(1.0)).collect(),
                y as u8 as f64,
                1.0,
            )
        })
        .chain(
            gaps.iter()
                .map(|g| (g.iter().copied().chain(std::iter::once(0.0)).collect(), 1.0, scale)),
        )
        .collect();
    for _ in 0..50 {
        let mut grad = vec![0f64; dim];
        let mut hess = vec![vec![0f64; dim]; dim];
        for (xb, y, weight) in &rows {
            let z: f64 = xb.iter().zip(&theta).map(|(a, b)| a * b).sum();
            let p = 1.0 / (1.0 + (-z).exp());
            let r = (p - y) * weight;
            let w = (p * (1.0 - p)).max(1e-9) * weight;
            for i in 0..dim {
                grad[i] += r * xb[i];
                for j in 0..dim {
                    hess[i][j] += w * xb[i] * xb[j];
                }
            }
        }
        for i in 0..k {
            grad[i] += l2 * theta[i];
            hess[i][i] += l2;
        }
        hess[k][k] += 1e-9;
        let Some(step) = solve(hess, grad) else { break };
        let mut max_step = 0f64;
        for i in 0..dim {
            theta[i] -= step[i];
            max_step = max_step.max(step[i].abs());
        }
        if max_step < 1e-9 {
            break;
        }
    }
    let b = theta[k];
    theta.truncate(k);
    (theta, b)
}

/// Gaussian elimination with partial pivoting; `None` when singular.
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Option<Vec<f64>> {
    let n = b.len();
    for col in 0..n {
        let piv = (col..n).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[piv][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, piv);
        b.swap(col, piv);
        for row in col + 1..n {
            let f = a[row][col] / a[col][col];
            let (above, below) = a.split_at_mut(row);
            for (t, p) in below[0][col..n].iter_mut().zip(&above[col][col..n]) {
                *t -= f * p;
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = vec![0f64; n];
    for row in (0..n).rev() {
        let s: f64 = (row + 1..n).map(|c| a[row][c] * x[c]).sum();
        x[row] = (b[row] - s) / a[row][row];
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_on_a_hand_made_set() {
        // Positives at 0.9 and 0.4, negatives at 0.8, 0.3, 0.1: pairs won 5 of 6.
        let s = [0.9, 0.4, 0.8, 0.3, 0.1];
        let y = [true, true, false, false, false];
        assert!((roc_auc(&s, &y).unwrap() - 5.0 / 6.0).abs() < 1e-12);
        // Ties count half.
        assert_eq!(roc_auc(&[0.5, 0.5], &[true, false]), Some(0.5));
        assert_eq!(roc_auc(&[0.5], &[true]), None);
        // AP: ranks 1 (pos), 2 (neg), 3 (pos) -> (1/1 + 2/3) / 2.
        let ap = pr_auc(&[0.9, 0.8, 0.4, 0.1], &[true, false, true, false]).unwrap();
        assert!((ap - (1.0 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
    }

    #[test]
    fn ece_and_brier_on_a_hand_made_set() {
        // Bin [0.2,0.3): two at 0.25, one positive -> |0.5 - 1| / 4 = 0.125.
        // Bin [0.9,1.0]: two at 0.95, none positive -> |1.9 - 0| / 4 = 0.475.
        let p = [0.25, 0.25, 0.95, 0.95];
        let y = [true, false, false, false];
        assert!((ece(&p, &y, 10).unwrap() - 0.6).abs() < 1e-6);
        let b = brier(&p, &y).unwrap();
        let expect = (0.75f64.powi(2) + 0.25f64.powi(2) + 2.0 * 0.95f64.powi(2)) / 4.0;
        assert!((b - expect).abs() < 1e-6);
    }

    #[test]
    fn logistic_fit_recovers_a_known_slope() {
        let mut rng = super::super::rng::Rng::new(1);
        let (mut xs, mut ys) = (Vec::new(), Vec::new());
        for _ in 0..20000 {
            let x = rng.normal() as f64 * 2.0;
            let p = 1.0 / (1.0 + (-(1.5 * x - 0.5)).exp());
            xs.push(vec![x]);
            ys.push((rng.uniform() as f64) < p);
        }
        let (w, b) = fit_logistic(&xs, &ys, 0.0);
        assert!((w[0] - 1.5).abs() < 0.1, "{w:?}");
        assert!((b + 0.5).abs() < 0.1, "{b}");
    }

    #[test]
    fn pairs_pull_a_weight_their_way() {
        // Labels follow feature 0; feature 1 is noise the labels do not see, and the pairs
        // say the first member of each pair has more of feature 1.
        let mut rng = super::super::rng::Rng::new(2);
        let (mut xs, mut ys) = (Vec::new(), Vec::new());
        for _ in 0..4000 {
            let x = rng.normal() as f64;
            xs.push(vec![x, rng.normal() as f64]);
            ys.push((rng.uniform() as f64) < 1.0 / (1.0 + (-2.0 * x).exp()));
        }
        let gaps: Vec<Vec<f64>> = (0..400).map(|_| vec![0.0, 0.5 + rng.uniform() as f64]).collect();
        let (plain, _) = fit_logistic_with_pairs(&xs, &ys, &gaps, 0.0, 1e-3);
        assert_eq!(plain, fit_logistic(&xs, &ys, 1e-3).0, "weight 0 is the plain fit");
        assert!(plain[1].abs() < 0.15, "{plain:?}");
        let (with, _) = fit_logistic_with_pairs(&xs, &ys, &gaps, 1.0, 1e-3);
        assert!(with[1] > 0.5, "{with:?}");
        assert!(with[0] > 1.5, "the labels' signal stays: {with:?}");
    }
}
