//! Does the repository's history add anything to the risk model? The measurement behind
//! `deepspark eval --repo`: every labelled hunk (label 0 or 1) of the calibration and test
//! splits whose commit a given repository holds gets two history features, counted as of
//! the commit (only fixes authored before it): the bug fixes that changed its file in the
//! year before, and in all the history read (FixCache's signal, Kim et al., ICSE 2007). The
//! fixes are those `mine` finds, with the files whose code lines they changed, as the
//! review's history facts count them. As `stack.rs` does with a language model's surprisal,
//! logistic regressions over [logit, log(1 + fixes in the year)] and [logit, log(1 + fixes in
//! the year), log(1 + fixes)] are fitted on the calibration hunks and measured by ROC AUC on
//! the test hunks beside the risk model alone, with a bootstrap interval of the gain. It
//! reads no repository (the caller hands it the fixes) and changes no model.

use super::data::{Dataset, Split};
use super::metrics::roc_auc;
use super::stack::{fit_and_score, gain_interval};
use crate::model::{RiskModel, ScoreInput};
use anyhow::Result;
use serde::Serialize;
use std::collections::{HashMap, HashSet};

/// A year, in seconds: the window of the first feature.
pub const YEAR: i64 = 365 * 86_400;

/// What one repository's history says: its commits, and the author dates of the bug fixes
/// that changed each file.
#[derive(Debug, Default)]
pub struct Fixes {
    /// The bug fixes found (those that changed code lines of some file).
    pub count: usize,
    /// Full ids of the commits read: a record's commit must be one of them to be measured.
    pub commits: HashSet<String>,
    /// Path → author dates (unix seconds) of the fixes that changed its code lines, sorted.
    pub by_path: HashMap<String, Vec<i64>>,
}

/// What `eval --repo` adds to the report, under `history_stacking`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HistoryReport {
    /// The repositories read, and the fixes found in them.
    pub repositories: usize,
    pub fixes: usize,
    /// Labelled hunks measured, and the risky ones among them, in each split.
    pub calib_hunks: usize,
    pub calib_positives: usize,
    pub test_hunks: usize,
    pub test_positives: usize,
    /// Labelled hunks of those splits whose commit no given repository holds: left out.
    pub unmatched: usize,
    /// Test ROC AUC of the risk model alone (its logit), on the hunks measured.
    pub risk_auc: Option<f64>,
    /// Test ROC AUC of the fixes of the hunk's file in the year before alone.
    pub fixes_year_auc: Option<f64>,
    /// Test ROC AUC of the regression over [logit, fixes in the year], fitted on calibration.
    pub stacked_auc: Option<f64>,
    /// 95% bootstrap interval of `stacked_auc - risk_auc` (1,000 resamples of the test hunks).
    pub stacked_gain_ci95: Option<[f64; 2]>,
    /// The same with the fixes of all the history read as a third feature.
    pub stacked_all_auc: Option<f64>,
    pub stacked_all_gain_ci95: Option<[f64; 2]>,
    /// The regressions' weights on standardised features, in the order above, then the bias.
    pub stacked_weights: Vec<f64>,
    pub stacked_all_weights: Vec<f64>,
}

/// The history features of a file at a date: fixes of it authored in the year before, and
/// all before.
pub fn features(dates: &[i64], at: i64) -> [f64; 2] {
    let before = dates.partition_point(|&d| d < at);
    let year = before - dates.partition_point(|&d| d < at - YEAR);
    [(year as f64).ln_1p(), (before as f64).ln_1p()]
}

/// Measures whether the history features of `repos` raise the test AUC of `model` on
/// `data`'s labelled calibration and test hunks.
pub fn measure(model: &RiskModel, data: &Dataset, repos: &[Fixes]) -> Result<HistoryReport> {
    let dates: HashMap<&str, i64> = data.commits.iter().map(|c| (c.id.as_str(), c.date)).collect();
    let mut unmatched = 0;
    // (split, label, history features) of each measured hunk, and its input to the model.
    let mut rows: Vec<(Split, bool, [f64; 2])> = Vec::new();
    let mut inputs: Vec<ScoreInput> = Vec::new();
    for s in &data.samples {
        if !matches!(s.split, Split::Calib | Split::Test) || !matches!(s.label, 0 | 1) {
            continue;
        }
        let held = repos.iter().find(|r| r.commits.contains(&s.commit));
        let (Some(repo), Some(&at)) = (held, dates.get(s.commit.as_str())) else {
            unmatched += 1;
            continue;
        };
        let f = features(repo.by_path.get(&s.path).map_or(&[][..], Vec::as_slice), at);
        rows.push((s.split, s.label == 1, f));
        inputs.push(ScoreInput {
            path: &s.path,
            hunk: &s.hunk,
            change: s.change,
        });
    }
    let mut logits = Vec::with_capacity(inputs.len());
    for chunk in inputs.chunks(512) {
        logits.extend(model.logits(&model.encode(chunk)?)?);
    }
    let of = |split: Split, k: usize| -> Vec<(Vec<f64>, bool)> {
        rows.iter()
            .zip(&logits)
            .filter(|((s, ..), _)| *s == split)
            .map(|((_, y, f), &l)| ([&[f64::from(l)][..], &f[..k]].concat(), *y))
            .collect()
    };
    let (calib, test) = (of(Split::Calib, 1), of(Split::Test, 1));
    let labels: Vec<bool> = test.iter().map(|(_, y)| *y).collect();
    let risk: Vec<f32> = test.iter().map(|(x, _)| x[0] as f32).collect();
    let year: Vec<f32> = test.iter().map(|(x, _)| x[1] as f32).collect();
    let rows_of = |t: &[(Vec<f64>, bool)]| -> Vec<Vec<f64>> { t.iter().map(|(x, _)| x.clone()).collect() };
    let (stacked, stacked_weights) = fit_and_score(&calib, &rows_of(&test));
    let (calib_all, test_all) = (of(Split::Calib, 2), of(Split::Test, 2));
    let (stacked_all, stacked_all_weights) = fit_and_score(&calib_all, &rows_of(&test_all));
    let positives = |t: &[(Vec<f64>, bool)]| t.iter().filter(|(_, y)| *y).count();
    Ok(HistoryReport {
        repositories: repos.len(),
        fixes: repos.iter().map(|r| r.count).sum(),
        calib_hunks: calib.len(),
        calib_positives: positives(&calib),
        test_hunks: test.len(),
        test_positives: positives(&test),
        unmatched,
        risk_auc: roc_auc(&risk, &labels),
        fixes_year_auc: roc_auc(&year, &labels),
        stacked_auc: roc_auc(&stacked, &labels),
        stacked_gain_ci95: gain_interval(&stacked, &risk, &labels),
        stacked_all_auc: roc_auc(&stacked_all, &labels),
        stacked_all_gain_ci95: gain_interval(&stacked_all, &risk, &labels),
        stacked_weights,
        stacked_all_weights,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_counts_only_the_fixes_authored_before_the_commit() {
        let day = 86_400;
        let dates = [10 * day, 100 * day, 400 * day, 500 * day];
        // At day 450: the fixes of days 100 and 400 in the year, day 10 older; day 500 later.
        assert_eq!(features(&dates, 450 * day), [2f64.ln_1p(), 3f64.ln_1p()]);
        // A fix authored at the commit's very second is not before it.
        assert_eq!(features(&dates, 400 * day), [1f64.ln_1p(), 2f64.ln_1p()]);
        assert_eq!(features(&[], 450 * day), [0.0, 0.0]);
    }
}
