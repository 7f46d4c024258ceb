//! Fitting the risk model's wide path (`model::wide`): a logistic regression over the
//! (side, token) features and size features of the training split's hunks, optimised with
//! candle-nn's AdamW under an L2 penalty, keeping the epoch with the best calibration AUC;
//! then stacking it with the transformer's logit on the calibration split.
//!
//! This module does not train the transformer (see `train`) and does not fit Platt
//! scaling or the change combiner (the caller refits both on the stacked logit).

use super::metrics;
use super::rng::Rng;
use crate::model::wide::{self, PairPath, SIDES, Wide};
use crate::tokenize::Encoded;
use anyhow::Result;
use candle_core::{DType, Device, Tensor};
use candle_nn::{AdamW, Init, Optimizer, ParamsAdamW, VarMap};

#[derive(Debug, Clone)]
pub struct WideOptions {
    pub epochs: usize,
    /// Penalty per squared weight, added to the mean log-loss.
    pub l2: f64,
    pub lr: f64,
    pub batch: usize,
    pub seed: u64,
    /// Start from these weights and penalise the distance to them instead of to zero (a
    /// project's own history, often small, adapts the default model rather than replacing it).
    pub prior: Option<Wide>,
    /// Weight of the pairwise term (see [`fit`]); 0 leaves it out.
    pub pairs_weight: f64,
    /// How far above its fix the pairwise term wants a buggy version's logit.
    pub pairs_margin: f64,
    /// Let the pairwise term move the size-feature weights too. Off, it shapes only the
    /// token weights: fixes are longer than their bugs more often than not, so through the
    /// size weights the pairs would fight the SZZ labels' "more lines, more risk".
    pub pairs_size: bool,
}

impl Default for WideOptions {
    fn default() -> Self {
        WideOptions {
            epochs: 8,
            l2: 1e-3,
            lr: 0.02,
            batch: 256,
            seed: 17,
            prior: None,
            pairs_weight: 0.0,
            pairs_margin: 1.0,
            pairs_size: false,
        }
    }
}

/// Bug/fix pairs for the pairwise term: each pair's (buggy, fixed) encodings.
pub type Pairs<'a> = [(&'a Encoded, &'a Encoded)];

/// Fits the wide path on `train` (labels 0/1) and returns it unstacked (`deep` = 0) with
/// its best calibration AUC.
///
/// With `opts.pairs_weight` > 0 the loss also holds a pairwise term over `pairs` (the
/// training split's bug/fix pairs, see `train::pairs`): the mean of
/// softplus(margin − (buggy logit − fixed logit)), weighted, so that the path learns to put
/// a buggy version above its fix beside the SZZ log-loss. Each step takes as many pairs as
/// spread them evenly over the epoch's steps. `calib_pairs` only report the calibration
/// split's pair accuracy per epoch; the epoch is still chosen by calibration AUC.
#[allow(clippy::too_many_arguments)]
pub fn fit(
    train: &[&Encoded],
    labels: &[f32],
    calib: &[&Encoded],
    calib_y: &[bool],
    pairs: &Pairs,
    calib_pairs: &Pairs,
    vocab_size: usize,
    n_features: usize,
    opts: &WideOptions,
    device: &Device,
) -> Result<(Wide, f64)> {
    let pad = SIDES * vocab_size;
    let active_of =
        |e: &Encoded| -> Vec<u32> { wide::active(e, vocab_size).into_iter().map(|(f, _)| f as u32).collect() };
    let active: Vec<Vec<u32>> = train.iter().map(|e| active_of(e)).collect();
    let use_pairs = opts.pairs_weight > 0.0 && !pairs.is_empty();
    // A pair's features with their signs: the buggy version's +1, the fixed version's −1.
    let signed: Vec<Vec<(u32, f32)>> = if use_pairs {
        pairs
            .iter()
            .map(|(b, f)| {
                let mut v: Vec<(u32, f32)> = active_of(b).into_iter().map(|i| (i, 1.0)).collect();
                v.extend(active_of(f).into_iter().map(|i| (i, -1.0)));
                v
            })
            .collect()
    } else {
        vec![]
    };
    let steps_per_epoch = train.len().div_ceil(opts.batch).max(1);
    let pair_batch = signed.len().div_ceil(steps_per_epoch).max(1);
    let mut pair_order: Vec<usize> = (0..signed.len()).collect();
    let mut pair_pos = signed.len();
    let mut varmap = VarMap::new();
    let tokens = varmap.get(pad + 1, wide::TOKENS, Init::Const(0.0), DType::F32, device)?;
    let features = varmap.get(n_features, wide::FEATURES, Init::Const(0.0), DType::F32, device)?;
    let bias = varmap.get(1, wide::BIAS, Init::Const(0.0), DType::F32, device)?;
    // The centre of the penalty: zero, or the prior's weights (which also start the fit).
    let (centre_tokens, centre_features) = match &opts.prior {
        Some(p) => {
            if p.tokens.len() != pad || p.features.len() != n_features {
                anyhow::bail!(
                    "the prior wide path has {} token and {} feature weights, this model needs {pad} and {n_features}",
                    p.tokens.len(),
                    p.features.len()
                );
            }
            let mut t = p.tokens.clone();
            t.push(0.0);
            let t = Tensor::from_vec(t, pad + 1, device)?;
            let f = Tensor::new(p.features.as_slice(), device)?;
            varmap.set_one(wide::TOKENS, &t)?;
            varmap.set_one(wide::FEATURES, &f)?;
            varmap.set_one(wide::BIAS, Tensor::new(&[p.bias], device)?)?;
            (t, f)
        }
        None => (tokens.zeros_like()?, features.zeros_like()?),
    };
    let params = ParamsAdamW {
        lr: opts.lr,
        weight_decay: 0.0,
        ..Default::default()
    };
    let mut opt = AdamW::new(varmap.all_vars(), params)?;
    let mut rng = Rng::new(opts.seed ^ 0x57DE);
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut best: Option<(Wide, f64)> = None;
    // Cosine decay to zero over the run: a convex problem, so let the weights settle.
    let total = (opts.epochs * train.len().div_ceil(opts.batch)).max(1);
    let mut step = 0usize;
    for epoch in 0..opts.epochs {
        rng.shuffle(&mut order);
        for chunk in order.chunks(opts.batch) {
            let f = step as f64 / total as f64;
            opt.set_learning_rate(opts.lr * 0.5 * (1.0 + (std::f64::consts::PI * f).cos()));
            step += 1;
            let width = chunk.iter().map(|&i| active[i].len()).max().unwrap_or(0).max(1);
            let mut idx = vec![pad as u32; chunk.len() * width];
            let mut mask = vec![0f32; chunk.len() * width];
            let mut feats = Vec::with_capacity(chunk.len() * n_features);
            let mut y = Vec::with_capacity(chunk.len());
            for (r, &i) in chunk.iter().enumerate() {
                for (c, &f) in active[i].iter().enumerate() {
                    idx[r * width + c] = f;
                    mask[r * width + c] = 1.0;
                }
                feats.extend_from_slice(&train[i].features[..n_features]);
                y.push(labels[i]);
            }
            let b = chunk.len();
            let idx = Tensor::from_vec(idx, b * width, device)?;
            let mask = Tensor::from_vec(mask, (b, width), device)?;
            let feats = Tensor::from_vec(feats, (b, n_features), device)?;
            let y = Tensor::from_vec(y, b, device)?;
            let token_part = (tokens.index_select(&idx, 0)?.reshape((b, width))? * mask)?.sum(1)?;
            let feature_part = feats.matmul(&features.unsqueeze(1)?)?.squeeze(1)?;
            let logit = (token_part + feature_part)?.broadcast_add(&bias)?;
            let data_loss = candle_nn::loss::binary_cross_entropy_with_logit(&logit, &y)?;
            let penalty = (((&tokens - &centre_tokens)?.sqr()?.sum_all()?
                + (&features - &centre_features)?.sqr()?.sum_all()?)?
                * opts.l2)?;
            let mut loss = (data_loss + penalty)?;
            if use_pairs {
                if pair_pos + pair_batch > signed.len() {
                    rng.shuffle(&mut pair_order);
                    pair_pos = 0;
                }
                let chunk = &pair_order[pair_pos..(pair_pos + pair_batch).min(signed.len())];
                pair_pos += chunk.len();
                let features = if opts.pairs_size {
                    features.clone()
                } else {
                    features.detach()
                };
                let gap = pair_gap(&signed, pairs, chunk, &tokens, &features, pad, n_features, device)?;
                // softplus(m − gap) = ln(1 + e^(m − gap)), written with candle's differentiable ops.
                let z = (gap.neg()? + opts.pairs_margin)?;
                let softplus = (z.relu()? + (z.abs()?.neg()?.exp()? + 1.0)?.log()?)?;
                loss = (loss + (softplus.mean_all()? * opts.pairs_weight)?)?;
            }
            opt.backward_step(&loss)?;
        }
        let mut w = Wide {
            tokens: tokens.to_vec1::<f32>()?,
            features: features.to_vec1::<f32>()?,
            bias: bias.to_vec1::<f32>()?[0],
            deep: 0.0,
        };
        w.tokens.truncate(pad);
        let scores: Vec<f32> = calib.iter().map(|e| w.logit(e)).collect();
        let auc = metrics::roc_auc(&scores, calib_y).unwrap_or(0.5);
        let pair_note = if calib_pairs.is_empty() {
            String::new()
        } else {
            format!(
                ", calibration pair accuracy {:.4} ({} pairs)",
                pair_accuracy(|e| w.logit(e), calib_pairs),
                calib_pairs.len()
            )
        };
        eprintln!(
            "deepspark: wide path epoch {} done, calibration AUC {auc:.4}{pair_note}",
            epoch + 1
        );
        if best.as_ref().is_none_or(|(_, b)| auc > *b) {
            best = Some((w, auc));
        }
    }
    best.ok_or_else(|| anyhow::anyhow!("the wide path needs at least one epoch"))
}

/// The wide logit of each chosen pair's buggy version minus its fixed version's (the bias
/// cancels), as a tensor the loss can differentiate.
#[allow(clippy::too_many_arguments)]
fn pair_gap(
    signed: &[Vec<(u32, f32)>],
    pairs: &Pairs,
    chunk: &[usize],
    tokens: &Tensor,
    features: &Tensor,
    pad: usize,
    n_features: usize,
    device: &Device,
) -> Result<Tensor> {
    let width = chunk.iter().map(|&i| signed[i].len()).max().unwrap_or(0).max(1);
    let b = chunk.len();
    let mut idx = vec![pad as u32; b * width];
    let mut sign = vec![0f32; b * width];
    let mut feats = Vec::with_capacity(b * n_features);
    for (r, &i) in chunk.iter().enumerate() {
        for (c, &(f, s)) in signed[i].iter().enumerate() {
            idx[r * width + c] = f;
            sign[r * width + c] = s;
        }
        let (buggy, fixed) = pairs[i];
        feats.extend((0..n_features).map(|k| buggy.features[k] - fixed.features[k]));
    }
    let idx = Tensor::from_vec(idx, b * width, device)?;
    let sign = Tensor::from_vec(sign, (b, width), device)?;
    let feats = Tensor::from_vec(feats, (b, n_features), device)?;
    let token_part = (tokens.index_select(&idx, 0)?.reshape((b, width))? * sign)?.sum(1)?;
    let feature_part = feats.matmul(&features.unsqueeze(1)?)?.squeeze(1)?;
    Ok((token_part + feature_part)?)
}

/// Stacks the wide path with the transformer on the calibration split: fits
/// `a * deep + b * wide + c` by logistic regression and folds it into the path.
pub fn stack(wide: Wide, deep_logits: &[f32], calib: &[&Encoded], calib_y: &[bool]) -> Wide {
    stack_with_pairs(wide, deep_logits, calib, calib_y, &[], 0.0)
}

/// One bug/fix pair as stacking sees it: the transformer's logit of each version and
/// their encodings (buggy first).
pub type StackPair<'a> = (f32, f32, &'a Encoded, &'a Encoded);

/// [`stack`], with the pairwise term of [`fit`] on `pairs` weighted `pairs_weight`: the
/// transformer, trained on SZZ labels alone, may rank fixes above bugs, and the stack then
/// weighs it by both what it adds to the risk and what it costs the ranking.
pub fn stack_with_pairs(
    wide: Wide,
    deep_logits: &[f32],
    calib: &[&Encoded],
    calib_y: &[bool],
    pairs: &[StackPair],
    pairs_weight: f64,
) -> Wide {
    let xs: Vec<Vec<f64>> = deep_logits
        .iter()
        .zip(calib)
        .map(|(&d, e)| vec![d as f64, wide.logit(e) as f64])
        .collect();
    let gaps: Vec<Vec<f64>> = pairs
        .iter()
        .map(|&(db, df, b, f)| vec![(db - df) as f64, (wide.logit(b) - wide.logit(f)) as f64])
        .collect();
    let (w, c) = metrics::fit_logistic_with_pairs(&xs, calib_y, &gaps, pairs_weight, 1e-3);
    wide.stacked(w[0] as f32, w[1] as f32, c as f32)
}

/// The wide path as the named tensors `model.safetensors` stores.
pub fn tensors(w: &Wide, device: &Device) -> Result<Vec<(String, Tensor)>> {
    Ok(vec![
        (wide::TOKENS.into(), Tensor::new(w.tokens.as_slice(), device)?),
        (wide::FEATURES.into(), Tensor::new(w.features.as_slice(), device)?),
        (wide::BIAS.into(), Tensor::new(&[w.bias], device)?),
        (wide::DEEP.into(), Tensor::new(&[w.deep], device)?),
    ])
}

/// How the pair path is fitted (see [`fit_pairs`]).
#[derive(Debug, Clone)]
pub struct PairOptions {
    pub epochs: usize,
    /// Penalty per squared weight, added to the mean pair loss.
    pub l2: f64,
    pub lr: f64,
    /// How far above its fix a buggy version's logit is wanted.
    pub margin: f64,
    pub batch: usize,
    pub seed: u64,
    /// Hashed token-bigram buckets per side (0: token features alone; see
    /// `model::wide::pair_features`).
    pub bigrams: usize,
}

impl Default for PairOptions {
    fn default() -> Self {
        PairOptions {
            epochs: 20,
            l2: 0.3,
            lr: 0.02,
            margin: 1.0,
            batch: 64,
            seed: 17,
            bigrams: 0,
        }
    }
}

/// A pair's features with their signs: the pair-path features present in the buggy
/// version only (+1) and in the fixed version only (−1); the ones both share cancel.
fn signed_features(buggy: &Encoded, fixed: &Encoded, vocab_size: usize, buckets: usize) -> Vec<(usize, f32)> {
    let set =
        |e| -> std::collections::BTreeSet<usize> { wide::pair_features(e, vocab_size, buckets).into_iter().collect() };
    let (b, f) = (set(buggy), set(fixed));
    let mut out: Vec<(usize, f32)> = b.difference(&f).map(|&i| (i, 1.0)).collect();
    out.extend(f.difference(&b).map(|&i| (i, -1.0)));
    out
}

/// The share of `pairs` whose buggy version `score` puts above its fix (ties count half).
pub fn pair_accuracy(score: impl Fn(&Encoded) -> f32, pairs: &Pairs) -> f64 {
    if pairs.is_empty() {
        return 0.0;
    }
    let right: f64 = pairs
        .iter()
        .map(|(b, f)| match score(b).partial_cmp(&score(f)) {
            Some(std::cmp::Ordering::Greater) => 1.0,
            Some(std::cmp::Ordering::Equal) => 0.5,
            _ => 0.0,
        })
        .sum();
    right / pairs.len() as f64
}

/// Fits the pair path on the training split's bug/fix pairs alone: a linear model over the
/// (side, token) features present in one version and not the other, no size features, no
/// bias, trained so that each buggy version scores above its fix by `margin` (mean
/// softplus(margin − (buggy logit − fixed logit)) plus an L2 penalty, Adam, minibatches in a
/// seeded order). Sparse arithmetic in plain Rust: a pair touches a few dozen weights. The
/// epoch with the best calibration-split pair accuracy is kept, scaled to log-odds on the
/// calibration pairs (see [`in_odds`]); returns it with that accuracy.
pub fn fit_pairs(train: &Pairs, calib: &Pairs, vocab_size: usize, opts: &PairOptions) -> Result<(PairPath, f64)> {
    if train.is_empty() {
        anyhow::bail!("the pair path needs bug/fix pairs in the training split (commit records with `fix` and `diff`)");
    }
    let n = SIDES * (vocab_size + opts.bigrams);
    let signed: Vec<Vec<(usize, f32)>> = train
        .iter()
        .map(|(b, f)| signed_features(b, f, vocab_size, opts.bigrams))
        .collect();
    let mut w = vec![0f64; n];
    let (mut m, mut v) = (vec![0f64; n], vec![0f64; n]);
    let (beta1, beta2, eps) = (0.9f64, 0.999f64, 1e-8f64);
    let mut order: Vec<usize> = (0..signed.len()).collect();
    let mut rng = Rng::new(opts.seed ^ 0x9A1E);
    let total = (opts.epochs * signed.len().div_ceil(opts.batch)).max(1);
    let mut t = 0usize;
    let mut best: Option<(PairPath, f64)> = None;
    let mut grad = vec![0f64; n];
    for epoch in 0..opts.epochs {
        rng.shuffle(&mut order);
        for chunk in order.chunks(opts.batch.max(1)) {
            let lr = opts.lr * 0.5 * (1.0 + (std::f64::consts::PI * t as f64 / total as f64).cos());
            t += 1;
            grad.iter_mut().zip(&w).for_each(|(g, w)| *g = 2.0 * opts.l2 * w);
            for &i in chunk {
                let gap: f64 = signed[i].iter().map(|&(f, s)| w[f] * f64::from(s)).sum();
                // d/dgap softplus(margin − gap) = −sigmoid(margin − gap).
                let d = -1.0 / (1.0 + (gap - opts.margin).exp());
                for &(f, s) in &signed[i] {
                    grad[f] += d * f64::from(s) / chunk.len() as f64;
                }
            }
            let (c1, c2) = (1.0 - beta1.powi(t as i32), 1.0 - beta2.powi(t as i32));
            for k in 0..n {
                m[k] = beta1 * m[k] + (1.0 - beta1) * grad[k];
                v[k] = beta2 * v[k] + (1.0 - beta2) * grad[k] * grad[k];
                w[k] -= lr * (m[k] / c1) / ((v[k] / c2).sqrt() + eps);
            }
        }
        let mut all: Vec<f32> = w.iter().map(|&x| x as f32).collect();
        let path = PairPath {
            bigrams: all.split_off(SIDES * vocab_size),
            tokens: all,
        };
        let score = |e: &Encoded| path.logit(e);
        let (on_train, on_calib) = (pair_accuracy(score, train), pair_accuracy(score, calib));
        eprintln!(
            "deepspark: pair path epoch {} done, pair accuracy train {on_train:.4}, calibration {on_calib:.4} ({} pairs)",
            epoch + 1,
            calib.len()
        );
        if best.as_ref().is_none_or(|(_, b)| on_calib > *b) {
            best = Some((path, on_calib));
        }
    }
    let (path, acc) = best.ok_or_else(|| anyhow::anyhow!("the pair path needs at least one epoch"))?;
    Ok((in_odds(path, calib), acc))
}

/// Scales the pair path so that the difference of two versions' logits reads as log-odds that
/// the first is the buggier: the slope of a logistic fit (no intercept, both orders of each
/// calibration pair) of "buggy first" on the difference. Ranking is unchanged; what changes is
/// how far the pair logit weighs against the generator's log-probability in `suggest`, which
/// would otherwise depend on the L2 penalty the path was fitted with. A path that is no better
/// than chance on the calibration pairs (slope ≤ 0) is left as it is.
fn in_odds(mut path: PairPath, calib: &Pairs) -> PairPath {
    let gaps: Vec<f64> = calib
        .iter()
        .map(|(b, f)| f64::from(path.logit(b) - path.logit(f)))
        .collect();
    // Newton steps on Σ softplus(−a·gap) + a²/2 (the mirrored pair gives the same term; the
    // small ridge keeps the slope finite when every calibration pair is ranked right).
    let mut a = 0f64;
    for _ in 0..50 {
        let (mut g, mut h) = (a, 1f64);
        for &x in &gaps {
            let p = 1.0 / (1.0 + (a * x).exp()); // sigmoid(−a·x)
            g -= p * x;
            h += p * (1.0 - p) * x * x;
        }
        let step = g / h;
        a -= step;
        if step.abs() < 1e-9 {
            break;
        }
    }
    if a.is_finite() && a > 0.0 {
        for w in path.tokens.iter_mut().chain(path.bigrams.iter_mut()) {
            *w *= a as f32;
        }
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenize::{ADD, FILE, LANG, N_FEATURES, NO_LINE};

    /// Hunks whose label one token predicts nine times in ten: 10 risky, 11 clean.
    fn corpus(n: usize) -> (Vec<Encoded>, Vec<f32>) {
        let mut rng = Rng::new(3);
        let (mut enc, mut y) = (vec![], vec![]);
        for _ in 0..n {
            let risky = rng.below(2) == 1;
            let noise = 12 + rng.below(20) as u32;
            let marker = if risky == (rng.below(10) > 0) { 10 } else { 11 };
            let ids = vec![FILE, 7, LANG, 8, ADD, marker, noise];
            let line = vec![NO_LINE, NO_LINE, NO_LINE, NO_LINE, 0, 0, 0];
            enc.push(Encoded {
                ids,
                line,
                features: [0.0; N_FEATURES],
            });
            y.push(risky as u8 as f32);
        }
        (enc, y)
    }

    /// Fits on the corpus, with the corpus itself as the calibration split.
    fn fit_corpus(enc: &[Encoded], y: &[f32], opts: &WideOptions) -> (Wide, f64) {
        let refs: Vec<&Encoded> = enc.iter().collect();
        let yb: Vec<bool> = y.iter().map(|&v| v > 0.5).collect();
        fit(&refs, y, &refs, &yb, &[], &[], 40, N_FEATURES, opts, &Device::Cpu).unwrap()
    }

    #[test]
    fn learns_a_predictive_token_and_stacks() {
        let (enc, y) = corpus(400);
        let opts = WideOptions {
            epochs: 5,
            batch: 16,
            ..Default::default()
        };
        let (w, auc) = fit_corpus(&enc, &y, &opts);
        assert!(auc > 0.85, "AUC {auc}");
        assert!(
            w.tokens[10] > 0.5 && w.tokens[11] < -0.5,
            "{} {}",
            w.tokens[10],
            w.tokens[11]
        );
        // A useless transformer logit gets (almost) no weight in the stack.
        let deep: Vec<f32> = (0..enc.len()).map(|i| (i % 7) as f32 - 3.0).collect();
        let refs: Vec<&Encoded> = enc.iter().collect();
        let yb: Vec<bool> = y.iter().map(|&v| v > 0.5).collect();
        let s = stack(w, &deep, &refs, &yb);
        assert!(s.deep.abs() < 0.2, "deep weight {}", s.deep);
        let risky = s.combine(0.0, &enc[y.iter().position(|&v| v > 0.5).unwrap()]);
        let clean = s.combine(0.0, &enc[y.iter().position(|&v| v < 0.5).unwrap()]);
        assert!(risky > clean);
    }

    #[test]
    fn the_pairwise_term_puts_a_buggy_version_above_its_fix() {
        // No training hunk holds tokens 33 and 34; the pairs say 33 is the bug.
        let (enc, y) = corpus(200);
        let version = |id: u32| Encoded {
            ids: vec![FILE, 7, LANG, 8, ADD, id],
            line: vec![NO_LINE, NO_LINE, NO_LINE, NO_LINE, 0, 0],
            features: [0.0; N_FEATURES],
        };
        let (buggy, fixed) = (version(33), version(34));
        let pairs: Vec<(&Encoded, &Encoded)> = vec![(&buggy, &fixed); 50];
        let refs: Vec<&Encoded> = enc.iter().collect();
        let yb: Vec<bool> = y.iter().map(|&v| v > 0.5).collect();
        let fit_with = |weight: f64| {
            let opts = WideOptions {
                epochs: 3,
                batch: 16,
                pairs_weight: weight,
                ..Default::default()
            };
            fit(
                &refs,
                &y,
                &refs,
                &yb,
                &pairs,
                &pairs,
                40,
                N_FEATURES,
                &opts,
                &Device::Cpu,
            )
            .unwrap()
            .0
        };
        let without = fit_with(0.0);
        assert_eq!(without.logit(&buggy), without.logit(&fixed), "no pairs, no preference");
        let with = fit_with(1.0);
        assert!(
            with.logit(&buggy) > with.logit(&fixed) + 0.5,
            "{} {}",
            with.logit(&buggy),
            with.logit(&fixed)
        );
        // The SZZ signal is still learnt beside it.
        assert!(with.tokens[10] > with.tokens[11]);
    }

    #[test]
    fn same_seed_same_weights() {
        let (enc, y) = corpus(100);
        let opts = WideOptions {
            epochs: 2,
            ..Default::default()
        };
        assert_eq!(fit_corpus(&enc, &y, &opts).0, fit_corpus(&enc, &y, &opts).0);
    }

    #[test]
    fn a_prior_holds_the_weights_where_the_data_is_silent() {
        // The last feature (token 39 on the last side) never occurs in the corpus: with a prior it keeps the prior's weight,
        // without one the penalty leaves it at zero; the data still moves token 10.
        let (enc, y) = corpus(200);
        let mut prior = Wide {
            tokens: vec![0.0; SIDES * 40],
            features: vec![0.0; N_FEATURES],
            bias: 0.0,
            deep: 0.0,
        };
        let unseen = SIDES * 40 - 1;
        prior.tokens[unseen] = 1.5;
        prior.tokens[10] = -1.0;
        let opts = WideOptions {
            epochs: 4,
            batch: 16,
            l2: 1e-3,
            prior: Some(prior.clone()),
            ..Default::default()
        };
        let (with, _) = fit_corpus(&enc, &y, &opts);
        assert!(
            (with.tokens[unseen] - 1.5).abs() < 1e-3,
            "unseen token moved: {}",
            with.tokens[unseen]
        );
        assert!(
            with.tokens[10] > -0.8,
            "the data did not move token 10 up from -1: {}",
            with.tokens[10]
        );
        let (without, _) = fit_corpus(
            &enc,
            &y,
            &WideOptions {
                prior: None,
                ..opts.clone()
            },
        );
        assert_eq!(without.tokens[unseen], 0.0);
        // A prior of the wrong shape is refused.
        prior.tokens.pop();
        let refs: Vec<&Encoded> = enc.iter().collect();
        let yb: Vec<bool> = y.iter().map(|&v| v > 0.5).collect();
        let bad = WideOptions {
            prior: Some(prior),
            ..opts
        };
        assert!(fit(&refs, &y, &refs, &yb, &[], &[], 40, N_FEATURES, &bad, &Device::Cpu).is_err());
    }

    #[test]
    fn the_pair_path_learns_which_token_marks_the_bug() {
        // Buggy versions hold token 10, their fixes token 11; both hold noise tokens and the
        // fix is longer. The path must rank every held-out pair right, by content alone.
        let mut rng = Rng::new(5);
        let mut version = |marker: u32, extra: usize| {
            let noise = 12 + rng.below(20) as u32;
            let mut ids = vec![FILE, 7, LANG, 8, ADD, marker, noise];
            ids.extend((0..extra).map(|k| 40 + k as u32));
            let line = vec![NO_LINE; 4]
                .into_iter()
                .chain(std::iter::repeat_n(0, ids.len() - 4))
                .collect();
            Encoded {
                ids,
                line,
                features: [0.0; N_FEATURES],
            }
        };
        let pairs: Vec<(Encoded, Encoded)> = (0..60).map(|_| (version(10, 0), version(11, 3))).collect();
        let refs: Vec<(&Encoded, &Encoded)> = pairs.iter().map(|(b, f)| (b, f)).collect();
        let (train, calib) = refs.split_at(40);
        let opts = PairOptions {
            epochs: 5,
            ..PairOptions::default()
        };
        let (path, acc) = fit_pairs(train, calib, 64, &opts).unwrap();
        assert_eq!(acc, 1.0);
        assert!(
            path.tokens[10] > 0.0 && path.tokens[11] < 0.0,
            "{} {}",
            path.tokens[10],
            path.tokens[11]
        );
        // The same seed gives the same path.
        assert_eq!(fit_pairs(train, calib, 64, &opts).unwrap().0, path);
        assert!(fit_pairs(&[], calib, 64, &opts).is_err());
    }

    #[test]
    fn with_bigrams_the_pair_path_reads_token_order() {
        // Both versions hold the same tokens; only their order on the line tells the bug
        // (`10 11`) from its fix (`11 10`). Tokens alone tie every pair; bigrams rank them.
        let mut rng = Rng::new(9);
        let version = |noise: u32, first: u32, second: u32| {
            let ids = vec![FILE, 7, ADD, noise, first, second];
            let line = vec![NO_LINE, NO_LINE, 0, 0, 0, 0];
            Encoded {
                ids,
                line,
                features: [0.0; N_FEATURES],
            }
        };
        let pairs: Vec<(Encoded, Encoded)> = (0..60)
            .map(|_| {
                let noise = 12 + rng.below(20) as u32;
                (version(noise, 10, 11), version(noise, 11, 10))
            })
            .collect();
        let refs: Vec<(&Encoded, &Encoded)> = pairs.iter().map(|(b, f)| (b, f)).collect();
        let (train, calib) = refs.split_at(40);
        let tokens_only = PairOptions {
            epochs: 3,
            ..PairOptions::default()
        };
        assert_eq!(fit_pairs(train, calib, 64, &tokens_only).unwrap().1, 0.5);
        let with_bigrams = PairOptions {
            bigrams: 1024,
            ..tokens_only
        };
        let (path, acc) = fit_pairs(train, calib, 64, &with_bigrams).unwrap();
        assert_eq!(acc, 1.0);
        assert_eq!((path.tokens.len(), path.bigrams.len()), (SIDES * 64, SIDES * 1024));
        assert!(path.logit(&pairs[0].0) > path.logit(&pairs[0].1));
    }

    #[test]
    fn the_pair_path_is_scaled_to_log_odds_on_the_calibration_pairs() {
        // One feature; calibration gaps of +1 three times in four: the odds are 3 to 1, so
        // the fitted slope makes a gap of 1 read as about ln 3.
        let e = |id: u32| Encoded {
            ids: vec![ADD, id],
            line: vec![0, 0],
            features: [0.0; N_FEATURES],
        };
        let (hi, lo) = (e(6), e(7));
        let mut tokens = vec![0f32; SIDES * 8];
        tokens[6] = 0.5;
        tokens[7] = -0.5;
        let path = PairPath {
            tokens,
            bigrams: vec![],
        };
        let calib: Vec<(&Encoded, &Encoded)> = (0..400)
            .map(|i| if i % 4 == 0 { (&lo, &hi) } else { (&hi, &lo) })
            .collect();
        let scaled = in_odds(path.clone(), &calib);
        let gap = scaled.logit(&hi) - scaled.logit(&lo);
        assert!((gap - 3f32.ln()).abs() < 0.02, "gap {gap}");
        // A path that is wrong on most calibration pairs keeps its weights.
        let wrong: Vec<(&Encoded, &Encoded)> = (0..40).map(|_| (&lo, &hi)).collect();
        assert_eq!(in_odds(path.clone(), &wrong), path);
    }
}
