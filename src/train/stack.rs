//! Does a language model's surprisal add anything to the risk model? The measurement behind
//! `deepspark eval --lm`: a hashed sample of the labelled hunks (label 0 or 1) with at least
//! one added line, from the calibration split and from the test split, is scored by the risk
//! model (its raw logit) and read by the language model (`assist::read::surprisal_within`:
//! the mean negative log-likelihood per token of the first [`MAX_ADDED_LINES`] added lines).
//! The sample takes as many risky as clean hunks where it can: ROC AUC does not depend on the
//! balance, and a balanced sample measures it with less noise for the same reading time. Two logistic regressions are fitted
//! on the calibration sample, over [logit, surprisal] and over [logit, surprisal, surprisal ×
//! tokens] (the total), and measured by ROC AUC on the test sample beside the risk model
//! alone, each gain with a seeded bootstrap interval over the test hunks. It changes no model
//! and fits nothing on the test split: what it measures decides whether surprisal becomes a
//! risk input.

use super::data::{Dataset, Split, stable_hash, stable_sample};
use super::metrics::{fit_logistic, roc_auc};
use super::rng::Rng;
use crate::assist::read::{MAX_ADDED_LINES, Surprisal, surprisal_within};
use crate::lm::{LanguageModel, LmError};
use crate::model::{RiskModel, ScoreInput};
use anyhow::Result;
use serde::Serialize;

/// What `eval --lm` adds to the report, under `lm_stacking`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StackReport {
    /// The language model (its `describe()`).
    pub language_model: String,
    /// Hunks read, and the risky ones among them, in each sample.
    pub calib_hunks: usize,
    pub calib_positives: usize,
    pub test_hunks: usize,
    pub test_positives: usize,
    /// Sampled hunks longer than the model's context, left out of both fits and measures.
    pub skipped: usize,
    /// Added lines read per hunk, at most ([`MAX_ADDED_LINES`]).
    pub max_added_lines: usize,
    /// Test ROC AUC of the risk model alone (its logit), on the test sample.
    pub risk_auc: Option<f64>,
    /// Test ROC AUC of the surprisal alone (higher surprisal, riskier).
    pub surprisal_auc: Option<f64>,
    /// Test ROC AUC of the regression over [logit, surprisal] fitted on the calibration sample.
    pub stacked_auc: Option<f64>,
    /// 95% bootstrap interval of `stacked_auc - risk_auc` (1,000 resamples of the test hunks).
    pub stacked_gain_ci95: Option<[f64; 2]>,
    /// The same with surprisal × tokens as a third feature.
    pub stacked_tokens_auc: Option<f64>,
    pub stacked_tokens_gain_ci95: Option<[f64; 2]>,
    /// The regressions' weights on standardised features (calibration mean and deviation),
    /// in the order above, then the bias.
    pub stacked_weights: Vec<f64>,
    pub stacked_tokens_weights: Vec<f64>,
}

/// A sampled hunk: its label, the risk model's logit and the language model's reading.
struct Read {
    label: bool,
    logit: f32,
    surprisal: Surprisal,
}

/// At most `limit` labelled hunks with an added line from `split`, by position in `data`:
/// half of them risky where there are enough, the rest clean.
fn sample(data: &Dataset, split: Split, limit: Option<usize>) -> Vec<usize> {
    let of = |label: i8| -> Vec<usize> {
        (0..data.samples.len())
            .filter(|&i| {
                let s = &data.samples[i];
                s.split == split && s.label == label && s.hunk.added() > 0
            })
            .collect()
    };
    let key = |&i: &usize| {
        let s = &data.samples[i];
        let at = format!("{} {}", s.hunk.start.new, s.hunk.count.new);
        stable_hash(&[&s.project, &s.commit, &s.path, &at])
    };
    let risky = stable_sample(of(1), limit.map(|n| n / 2), key);
    let clean = stable_sample(of(0), limit.map(|n| n - risky.len()), key);
    let mut chosen = [risky, clean].concat();
    chosen.sort_unstable();
    chosen
}

/// Scores and reads the chosen hunks; those too long for the language model are counted
/// in `skipped` and left out.
fn read_sample(
    model: &RiskModel,
    lm: &mut dyn LanguageModel,
    data: &Dataset,
    chosen: &[usize],
    what: &str,
    skipped: &mut usize,
) -> Result<Vec<Read>> {
    let inputs: Vec<ScoreInput> = chosen
        .iter()
        .map(|&i| {
            let s = &data.samples[i];
            ScoreInput {
                path: &s.path,
                hunk: &s.hunk,
                change: s.change,
            }
        })
        .collect();
    let mut logits = Vec::with_capacity(inputs.len());
    for chunk in inputs.chunks(512) {
        logits.extend(model.logits(&model.encode(chunk)?)?);
    }
    let bar = super::progress(chosen.len() as u64, what);
    let mut out = Vec::with_capacity(chosen.len());
    for (&i, &logit) in chosen.iter().zip(&logits) {
        let s = &data.samples[i];
        match surprisal_within(lm, &s.path, &s.hunk, MAX_ADDED_LINES) {
            Ok(Some(surprisal)) => out.push(Read {
                label: s.label == 1,
                logit,
                surprisal,
            }),
            // Every sampled hunk has an added line, so `None` cannot come; count it anyway.
            Ok(None) | Err(LmError::TooLong { .. }) => *skipped += 1,
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!(
                    "reading a hunk of {} in commit {} of {}",
                    s.path, s.commit, s.project
                )));
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(out)
}

/// The features of a reading: the first `k` of [logit, surprisal, surprisal × tokens].
fn features(r: &Read, k: usize) -> Vec<f64> {
    let mean = f64::from(r.surprisal.mean);
    [f64::from(r.logit), mean, mean * r.surprisal.tokens as f64][..k].to_vec()
}

/// A logistic regression over the first `k` features, fitted on `calib` after standardising
/// each feature by its calibration mean and deviation; returns the test scores and the
/// weights (then the bias).
fn stack(calib: &[Read], test: &[Read], k: usize) -> (Vec<f32>, Vec<f64>) {
    let calib: Vec<(Vec<f64>, bool)> = calib.iter().map(|r| (features(r, k), r.label)).collect();
    let test: Vec<Vec<f64>> = test.iter().map(|r| features(r, k)).collect();
    fit_and_score(&calib, &test)
}

/// A logistic regression over the features of `calib` (each row with its label), fitted after
/// standardising each feature by its calibration mean and deviation; returns the scores of
/// the `test` rows and the weights (then the bias).
pub(super) fn fit_and_score(calib: &[(Vec<f64>, bool)], test: &[Vec<f64>]) -> (Vec<f32>, Vec<f64>) {
    let k = calib.first().map_or(0, |(x, _)| x.len());
    let n = calib.len().max(1) as f64;
    let mean: Vec<f64> = (0..k)
        .map(|j| calib.iter().map(|(x, _)| x[j]).sum::<f64>() / n)
        .collect();
    let sd: Vec<f64> = (0..k)
        .map(|j| {
            let v = calib.iter().map(|(x, _)| (x[j] - mean[j]).powi(2)).sum::<f64>() / n;
            if v > 1e-12 { v.sqrt() } else { 1.0 }
        })
        .collect();
    let standard = |x: &[f64]| -> Vec<f64> { (0..k).map(|j| (x[j] - mean[j]) / sd[j]).collect() };
    let xs: Vec<Vec<f64>> = calib.iter().map(|(x, _)| standard(x)).collect();
    let ys: Vec<bool> = calib.iter().map(|&(_, y)| y).collect();
    let (w, b) = fit_logistic(&xs, &ys, 1.0);
    let scores = test
        .iter()
        .map(|x| {
            let x = standard(x);
            (x.iter().zip(&w).map(|(a, b)| a * b).sum::<f64>() + b) as f32
        })
        .collect();
    (scores, w.into_iter().chain([b]).collect())
}

/// 95% interval of AUC(`a`) − AUC(`b`) over 1,000 bootstrap resamples of the hunks (seeded:
/// the same on every run); `None` when fewer than 2 resamples have both classes.
pub(super) fn gain_interval(a: &[f32], b: &[f32], labels: &[bool]) -> Option<[f64; 2]> {
    let mut rng = Rng::new(17);
    let n = labels.len();
    let mut gains = Vec::with_capacity(1000);
    let (mut ra, mut rb, mut rl) = (vec![0f32; n], vec![0f32; n], vec![false; n]);
    for _ in 0..1000 {
        for j in 0..n {
            let i = rng.below(n);
            (ra[j], rb[j], rl[j]) = (a[i], b[i], labels[i]);
        }
        if let (Some(x), Some(y)) = (roc_auc(&ra, &rl), roc_auc(&rb, &rl)) {
            gains.push(x - y);
        }
    }
    if gains.len() < 2 {
        return None;
    }
    gains.sort_by(f64::total_cmp);
    let at = |q: f64| gains[((gains.len() - 1) as f64 * q).round() as usize];
    Some([at(0.025), at(0.975)])
}

/// Reads at most `limit` hunks of each of the calibration and test splits with `lm`, and
/// measures whether stacking their surprisal with `model` raises the test AUC.
pub fn measure(
    model: &RiskModel,
    lm: &mut dyn LanguageModel,
    data: &Dataset,
    limit: Option<usize>,
) -> Result<StackReport> {
    let mut skipped = 0;
    let calib = read_sample(
        model,
        lm,
        data,
        &sample(data, Split::Calib, limit),
        "reading calibration hunks",
        &mut skipped,
    )?;
    let test = read_sample(
        model,
        lm,
        data,
        &sample(data, Split::Test, limit),
        "reading test hunks",
        &mut skipped,
    )?;
    let labels: Vec<bool> = test.iter().map(|r| r.label).collect();
    let risk: Vec<f32> = test.iter().map(|r| r.logit).collect();
    let surprisal: Vec<f32> = test.iter().map(|r| r.surprisal.mean).collect();
    let (stacked, stacked_weights) = stack(&calib, &test, 2);
    let (stacked_tokens, stacked_tokens_weights) = stack(&calib, &test, 3);
    let positives = |rs: &[Read]| rs.iter().filter(|r| r.label).count();
    Ok(StackReport {
        language_model: lm.describe(),
        calib_hunks: calib.len(),
        calib_positives: positives(&calib),
        test_hunks: test.len(),
        test_positives: positives(&test),
        skipped,
        max_added_lines: MAX_ADDED_LINES,
        risk_auc: roc_auc(&risk, &labels),
        surprisal_auc: roc_auc(&surprisal, &labels),
        stacked_auc: roc_auc(&stacked, &labels),
        stacked_gain_ci95: gain_interval(&stacked, &risk, &labels),
        stacked_tokens_auc: roc_auc(&stacked_tokens, &labels),
        stacked_tokens_gain_ci95: gain_interval(&stacked_tokens, &risk, &labels),
        stacked_weights,
        stacked_tokens_weights,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(label: bool, logit: f32, mean: f32, tokens: usize) -> Read {
        Read {
            label,
            logit,
            surprisal: Surprisal { mean, tokens },
        }
    }

    #[test]
    fn stacking_learns_a_feature_the_risk_model_lacks() {
        // The logit is noise; the surprisal alone tells the labels apart.
        let mut rng = Rng::new(3);
        let make = |rng: &mut Rng| -> Vec<Read> {
            (0..200)
                .map(|i| {
                    let label = i % 3 == 0;
                    let mean = if label { 3.0 } else { 2.0 } + rng.normal() * 0.3;
                    reading(label, rng.normal(), mean, 10 + i % 7)
                })
                .collect()
        };
        let (calib, test) = (make(&mut rng), make(&mut rng));
        let labels: Vec<bool> = test.iter().map(|r| r.label).collect();
        let risk: Vec<f32> = test.iter().map(|r| r.logit).collect();
        let (stacked, w) = stack(&calib, &test, 2);
        assert_eq!(w.len(), 3);
        assert!(w[1] > w[0].abs(), "the surprisal carries the weight: {w:?}");
        let (a, b) = (roc_auc(&stacked, &labels).unwrap(), roc_auc(&risk, &labels).unwrap());
        assert!(a > 0.9 && b < 0.7, "stacked {a}, risk alone {b}");
        let [lo, hi] = gain_interval(&stacked, &risk, &labels).unwrap();
        assert!(lo > 0.0 && lo <= a - b && a - b <= hi, "[{lo}, {hi}] around {}", a - b);
        assert_eq!(gain_interval(&stacked, &risk, &labels), Some([lo, hi]), "seeded");
        let (three, w3) = stack(&calib, &test, 3);
        assert_eq!((three.len(), w3.len()), (test.len(), 4));
    }

    #[test]
    fn no_interval_without_both_classes() {
        assert_eq!(gain_interval(&[0.1, 0.2], &[0.3, 0.4], &[true, true]), None);
    }
}
