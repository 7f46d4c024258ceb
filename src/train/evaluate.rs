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
    /// The gate at the default thresholds, which `--fail-on reject` blocks: REJECT below
    /// P(clean) 0.60 when the change is also riskier than 90% of its project's last 1000
    /// commits before the split (`review::rejects`; the probability alone where fewer than
    /// 100 came before): the share of clean changes it blocks and of buggy ones it catches.
    pub gate_blocked_clean: Option<f64>,
    pub gate_caught_buggy: Option<f64>,
    /// The same for the probability alone (`--reject-rank 0`).
    #[serde(default)]
    pub gate_probability_blocked_clean: Option<f64>,
    #[serde(default)]
    pub gate_probability_caught_buggy: Option<f64>,
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
    #[serde(default)]
    pub gate_probability_blocked_clean: Option<f64>,
    #[serde(default)]
    pub gate_probability_caught_buggy: Option<f64>,
    /// How many of the project's earlier commits its changes were ranked against.
    #[serde(default)]
    pub history_commits: usize,
}

/// Scores `split` of `data` with `model` and computes every metric.
pub fn evaluate(model: &RiskModel, data: &Dataset, split: Split) -> Result<EvalReport> {
    let (chosen, logits) = score_split(model, data, split)?;
    report_scored(model, data, &chosen, &logits, split)
}

/// The report for logits already computed by [`score_split`] (the gate's history is scored
/// here).
pub fn report_scored(
    model: &RiskModel,
    data: &Dataset,
    chosen: &[usize],
    logits: &[f32],
    split: Split,
) -> Result<EvalReport> {
    let history = histories(model, data, split)?;
    Ok(report(
        model.config.calibration,
        model.config.change,
        data,
        chosen,
        logits,
        split,
        &history,
    ))
}

/// Per project, the change risks of its last `review::HISTORY` commits dated before the
/// split's first one (from any split; none for `all`): what `review` ranks a change against
/// in its repository (`commands::history`), so that `eval` measures the gate users get.
fn histories(model: &RiskModel, data: &Dataset, split: Split) -> Result<HashMap<String, Vec<f32>>> {
    if split == Split::All {
        return Ok(HashMap::new());
    }
    let mut start: HashMap<&str, i64> = HashMap::new();
    for c in data.commits.iter().filter(|c| Dataset::in_split(c.split, split)) {
        let e = start.entry(c.project.as_str()).or_insert(i64::MAX);
        *e = (*e).min(c.date);
    }
    let mut before: HashMap<&str, Vec<(i64, &str)>> = HashMap::new();
    for c in &data.commits {
        if start.get(c.project.as_str()).is_some_and(|&s| c.date < s) {
            before
                .entry(c.project.as_str())
                .or_default()
                .push((c.date, c.id.as_str()));
        }
    }
    let mut wanted: std::collections::HashSet<(&str, &str)> = std::collections::HashSet::new();
    for (project, mut commits) in before {
        commits.sort_unstable_by(|a, b| b.cmp(a));
        wanted.extend(
            commits
                .into_iter()
                .take(crate::review::HISTORY)
                .map(|(_, id)| (project, id)),
        );
    }
    let picked: Vec<usize> = (0..data.samples.len())
        .filter(|&i| wanted.contains(&(data.samples[i].project.as_str(), data.samples[i].commit.as_str())))
        .collect();
    let logits = score(model, data, &picked, "scoring the history the gate ranks against")?;
    let mut per_commit: HashMap<(&str, &str), Vec<f32>> = HashMap::new();
    for (&i, &l) in picked.iter().zip(&logits) {
        let s = &data.samples[i];
        per_commit.entry((&s.project, &s.commit)).or_default().push(l);
    }
    let mut out: HashMap<String, Vec<f32>> = HashMap::new();
    for ((project, _), logits) in per_commit {
        let risk = model.config.change.apply(&logits);
        out.entry(project.to_string())
            .or_default()
            .push((risk * 1e4).round() / 1e4);
    }
    for v in out.values_mut() {
        v.sort_by(f32::total_cmp);
    }
    Ok(out)
}

/// Score every hunk of a split: the indices of the chosen samples and their raw (uncalibrated) logits.
pub fn score_split(model: &RiskModel, data: &Dataset, split: Split) -> Result<(Vec<usize>, Vec<f32>)> {
    let chosen: Vec<usize> = (0..data.samples.len())
        .filter(|&i| Dataset::in_split(data.samples[i].split, split))
        .collect();
    let logits = score(model, data, &chosen, "scoring")?;
    Ok((chosen, logits))
}

/// The raw logits of the samples `chosen`, in batches, with a progress bar.
fn score(model: &RiskModel, data: &Dataset, chosen: &[usize], what: &str) -> Result<Vec<f32>> {
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
    let bar = progress(inputs.len() as u64, what);
    let mut logits = Vec::with_capacity(inputs.len());
    for chunk in inputs.chunks(512) {
        let enc = model.encode(chunk)?;
        logits.extend(model.logits(&enc)?);
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok(logits)
}

fn report(
    platt: Platt,
    change: ChangeCombiner,
    data: &Dataset,
    chosen: &[usize],
    logits: &[f32],
    split: Split,
    history: &HashMap<String, Vec<f32>>,
) -> EvalReport {
    let mut r = EvalReport {
        split: format!("{split:?}").to_lowercase(),
        ..Default::default()
    };
    let (mut p, mut y, mut base, mut p_add, mut y_add, mut base_add) = (vec![], vec![], vec![], vec![], vec![], vec![]);
    // Per project: probabilities, labels and the baseline's scores.
    type Scores = (Vec<f32>, Vec<bool>, Vec<f32>);
    let mut per_project: HashMap<&str, Scores> = HashMap::new();
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
    let shipped = crate::review::Thresholds {
        lgtm: crate::review::DEFAULT_LGTM,
        reject: crate::review::DEFAULT_REJECT,
        reject_rank: crate::review::DEFAULT_REJECT_RANK,
    };
    let alone = crate::review::Thresholds {
        reject_rank: 0.0,
        ..shipped
    };
    let none = Vec::new();
    let mut all_gates: Vec<Gated> = Vec::new();
    for p in &mut r.projects {
        if let Some((risks, ys)) = by_project.get(p.project.as_str()) {
            let h = history.get(&p.project).unwrap_or(&none);
            let gates: Vec<Gated> = risks
                .iter()
                .zip(ys)
                .map(|(&risk, &b)| {
                    let risk = risk as f64;
                    let min = crate::review::MIN_HISTORY;
                    Gated {
                        shipped: crate::review::rejects(risk, h, min, shipped),
                        alone: crate::review::rejects(risk, h, min, alone),
                        buggy: b,
                    }
                })
                .collect();
            p.commit_n = risks.len();
            p.history_commits = h.len();
            (p.gate_blocked_clean, p.gate_caught_buggy) = gate_shares(&gates, |g| g.shipped);
            (p.gate_probability_blocked_clean, p.gate_probability_caught_buggy) = gate_shares(&gates, |g| g.alone);
            all_gates.extend(gates);
        }
    }
    r.commit_n = cp.len();
    r.commit_auc = metrics::roc_auc(&cp, &cy);
    r.commit_baseline_auc = metrics::roc_auc(&cb, &cy);
    r.commit_ece = metrics::ece(&cp, &cy, 10);
    (r.gate_blocked_clean, r.gate_caught_buggy) = gate_shares(&all_gates, |g| g.shipped);
    (r.gate_probability_blocked_clean, r.gate_probability_caught_buggy) = gate_shares(&all_gates, |g| g.alone);
    r
}

/// One change under both gates.
struct Gated {
    /// Blocked by the gate as shipped (probability and rank).
    shipped: bool,
    /// Blocked by the probability alone.
    alone: bool,
    buggy: bool,
}

/// The share of clean changes a gate blocks and of buggy ones it catches.
fn gate_shares(gates: &[Gated], blocked: impl Fn(&Gated) -> bool) -> (Option<f64>, Option<f64>) {
    let share = |buggy: bool| {
        let chosen: Vec<_> = gates.iter().filter(|g| g.buggy == buggy).collect();
        (!chosen.is_empty()).then(|| chosen.iter().filter(|g| blocked(g)).count() as f64 / chosen.len() as f64)
    };
    (share(false), share(true))
}

#[cfg(test)]
mod tests {
    use super::{Gated, gate_shares};

    #[test]
    fn gate_shares_count_clean_and_buggy_changes_apart() {
        let gates: Vec<Gated> = [
            (true, true, false),
            (false, true, false),
            (false, false, false),
            (false, false, false),
            (true, true, true),
            (false, true, true),
        ]
        .into_iter()
        .map(|(shipped, alone, buggy)| Gated { shipped, alone, buggy })
        .collect();
        assert_eq!(gate_shares(&gates, |g| g.shipped), (Some(0.25), Some(0.5)));
        assert_eq!(gate_shares(&gates, |g| g.alone), (Some(0.5), Some(1.0)));
        assert_eq!(
            gate_shares(&gates[..4], |g| g.shipped).1,
            None,
            "no buggy change: no share"
        );
    }
}
