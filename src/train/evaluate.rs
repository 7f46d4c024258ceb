//! Measuring a risk model on a split of labelled data: what `deepspark eval` prints and
//! `metrics.json` stores (ROC AUC, PR AUC, ECE, Brier, per project and per change, beside the
//! "number of added lines" baseline). `train` measures its test split with the same
//! [`evaluate`]. It fits nothing (see `calibrate` for what is fitted on scores).

use super::data::{Dataset, Split};
use super::{labelled, metrics, progress};
use crate::model::config::{ChangeCombiner, Platt};
use crate::model::{self, RiskModel};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// What `eval` prints and `metrics.json` stores.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct EvalReport {
    pub split: String,
    pub n: usize,
    pub positives: usize,
    pub auc: Option<f64>,
    pub pr_auc: Option<f64>,
    pub ece: Option<f64>,
    pub brier: Option<f64>,
    pub baseline_auc: Option<f64>,
    pub n_added: usize,
    pub auc_added: Option<f64>,
    pub baseline_auc_added: Option<f64>,
    pub commit_n: usize,
    pub commit_auc: Option<f64>,
    pub commit_baseline_auc: Option<f64>,
    pub commit_ece: Option<f64>,
    /// The gate at the default thresholds (REJECT below P(clean) 0.60, which `--fail-on
    /// reject` blocks): the share of clean changes it blocks and of buggy ones it catches.
    pub gate_blocked_clean: Option<f64>,
    pub gate_caught_buggy: Option<f64>,
    /// Hunk-level AUC per project (model, baseline).
    pub projects: Vec<ProjectAuc>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ProjectAuc {
    pub project: String,
    pub n: usize,
    pub auc: Option<f64>,
    pub baseline_auc: Option<f64>,
    /// The project's changes, and the gate on them (as `EvalReport::gate_blocked_clean`).
    #[serde(default)]
    pub commit_n: usize,
    pub gate_blocked_clean: Option<f64>,
    pub gate_caught_buggy: Option<f64>,
}

/// Scores `split` of `data` with `model` and computes every metric.
pub fn evaluate(model: &RiskModel, data: &Dataset, split: Split) -> Result<EvalReport> {
    let (chosen, logits) = score_split(model, data, split)?;
    Ok(report_scored(model, data, &chosen, &logits, split))
}

/// The report for logits already computed by [`score_split`].
pub fn report_scored(model: &RiskModel, data: &Dataset, chosen: &[usize], logits: &[f32], split: Split) -> EvalReport {
    report(
        model.config.calibration,
        model.config.change,
        data,
        chosen,
        logits,
        split,
    )
}

/// Score every hunk of a split: the indices of the chosen samples and their raw (uncalibrated) logits.
pub fn score_split(model: &RiskModel, data: &Dataset, split: Split) -> Result<(Vec<usize>, Vec<f32>)> {
    let chosen: Vec<usize> = (0..data.samples.len())
        .filter(|&i| Dataset::in_split(data.samples[i].split, split))
        .collect();
    let inputs: Vec<model::ScoreInput> = chosen
        .iter()
        .map(|&i| {
            let s = &data.samples[i];
            model::ScoreInput {
                path: &s.path,
                hunk: &s.hunk,
                change: s.change,
            }
        })
        .collect();
    let bar = progress(inputs.len() as u64, "scoring");
    let mut logits = Vec::with_capacity(inputs.len());
    for chunk in inputs.chunks(512) {
        let enc = model.encode(chunk)?;
        logits.extend(model.logits(&enc)?);
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok((chosen, logits))
}

fn report(
    platt: Platt,
    change: ChangeCombiner,
    data: &Dataset,
    chosen: &[usize],
    logits: &[f32],
    split: Split,
) -> EvalReport {
    let mut r = EvalReport {
        split: format!("{split:?}").to_lowercase(),
        ..Default::default()
    };
    let (mut p, mut y, mut base, mut p_add, mut y_add, mut base_add) = (vec![], vec![], vec![], vec![], vec![], vec![]);
    let mut per_project: HashMap<&str, (Vec<f32>, Vec<bool>, Vec<f32>)> = HashMap::new();
    let mut per_commit: HashMap<(&str, &str), (Vec<f32>, usize)> = HashMap::new();
    for (&i, &logit) in chosen.iter().zip(logits) {
        let s = &data.samples[i];
        let added = s.hunk.added();
        let e = per_commit.entry((&s.project, &s.commit)).or_default();
        e.0.push(logit);
        e.1 += added;
        if !labelled(s.label) {
            continue;
        }
        let prob = platt.apply(logit);
        let label = s.label == 1;
        p.push(prob);
        y.push(label);
        base.push(added as f32);
        if added > 0 {
            p_add.push(prob);
            y_add.push(label);
            base_add.push(added as f32);
        }
        let pp = per_project.entry(&s.project).or_default();
        pp.0.push(prob);
        pp.1.push(label);
        pp.2.push(added as f32);
    }
    r.n = p.len();
    r.positives = y.iter().filter(|&&v| v).count();
    r.auc = metrics::roc_auc(&p, &y);
    r.pr_auc = metrics::pr_auc(&p, &y);
    r.ece = metrics::ece(&p, &y, 10);
    r.brier = metrics::brier(&p, &y);
    r.baseline_auc = metrics::roc_auc(&base, &y);
    r.n_added = p_add.len();
    r.auc_added = metrics::roc_auc(&p_add, &y_add);
    r.baseline_auc_added = metrics::roc_auc(&base_add, &y_add);
    let mut projects: Vec<_> = per_project.into_iter().collect();
    projects.sort_by(|a, b| a.0.cmp(b.0));
    r.projects = projects
        .into_iter()
        .map(|(name, (p, y, b))| ProjectAuc {
            project: name.to_string(),
            n: p.len(),
            auc: metrics::roc_auc(&p, &y),
            baseline_auc: metrics::roc_auc(&b, &y),
            ..Default::default()
        })
        .collect();
    let buggy: HashMap<(&str, &str), bool> = data
        .commits
        .iter()
        .map(|c| ((c.project.as_str(), c.id.as_str()), c.buggy))
        .collect();
    let (mut cp, mut cy, mut cb) = (vec![], vec![], vec![]);
    let mut by_project: HashMap<&str, (Vec<f32>, Vec<bool>)> = HashMap::new();
    for (key, (logits, added)) in &per_commit {
        if let Some(&b) = buggy.get(key) {
            let risk = change.apply(logits);
            cp.push(risk);
            cy.push(b);
            cb.push(*added as f32);
            let e = by_project.entry(key.0).or_default();
            e.0.push(risk);
            e.1.push(b);
        }
    }
    for p in &mut r.projects {
        if let Some((risks, ys)) = by_project.get(p.project.as_str()) {
            p.commit_n = risks.len();
            p.gate_blocked_clean = gate_share(risks, ys, false);
            p.gate_caught_buggy = gate_share(risks, ys, true);
        }
    }
    r.commit_n = cp.len();
    r.commit_auc = metrics::roc_auc(&cp, &cy);
    r.commit_baseline_auc = metrics::roc_auc(&cb, &cy);
    r.commit_ece = metrics::ece(&cp, &cy, 10);
    r.gate_blocked_clean = gate_share(&cp, &cy, false);
    r.gate_caught_buggy = gate_share(&cp, &cy, true);
    r
}

/// The share of changes labelled `buggy` (or clean) whose verdict is REJECT at the default
/// threshold: what `--fail-on reject` blocks.
fn gate_share(risks: &[f32], buggy: &[bool], which: bool) -> Option<f64> {
    let chosen: Vec<f32> = risks
        .iter()
        .zip(buggy)
        .filter(|(_, b)| **b == which)
        .map(|(r, _)| *r)
        .collect();
    let rejected = chosen
        .iter()
        .filter(|&&r| 1.0 - (r as f64) < crate::review::DEFAULT_REJECT)
        .count();
    (!chosen.is_empty()).then(|| rejected as f64 / chosen.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::gate_share;

    #[test]
    fn the_gate_blocks_changes_below_the_reject_threshold() {
        // Risk 0.5 and 0.7 (P(clean) 0.5 and 0.3) are REJECT, below 0.60; 0.1 and 0.2 are not.
        let risks = [0.5, 0.1, 0.7, 0.2];
        let buggy = [false, false, true, true];
        assert_eq!(gate_share(&risks, &buggy, false), Some(0.5));
        assert_eq!(gate_share(&risks, &buggy, true), Some(0.5));
        assert_eq!(gate_share(&[0.1], &[false], true), None, "no buggy change: no share");
    }
}
