//! After the transformer, what is fitted on the calibration split: the wide path (fitted on
//! the train split, see `wide`) stacked with the transformer's logit, Platt scaling of the
//! stacked logit, and the change combiner over each change's hunk logits.
//!
//! It does not train the transformer (see `transformer`) and never looks at the test split.

use super::data::Dataset;
use super::transformer::logits_of;
use super::{Run, metrics, wide};
use crate::model::config::{ChangeCombiner, Platt, RiskConfig};
use crate::model::net::RiskNet;
use crate::model::wide::Wide;
use crate::tokenize::Encoded;
use anyhow::Result;
use std::collections::HashMap;

/// Fits the wide path on the train split, keeping the epoch with the best calibration AUC
/// (returned beside it).
pub(super) fn fit_wide(run: &Run, cfg: &RiskConfig, wo: &wide::WideOptions) -> Result<(Wide, f64)> {
    let Run {
        encoded,
        labels,
        train: train_slots,
        device,
        ..
    } = run;
    let calib_enc = run.calib_enc();
    let calib_y = run.calib_y();
    let train_enc: Vec<&Encoded> = train_slots.iter().map(|&s| &encoded[s]).collect();
    let train_y: Vec<f32> = train_slots.iter().map(|&s| labels[s]).collect();
    wide::fit(
        &train_enc,
        &train_y,
        &calib_enc,
        &calib_y,
        &pair_refs(&run.train_pairs),
        &pair_refs(&run.calib_pairs),
        cfg.vocab_size,
        cfg.n_features,
        wo,
        device,
    )
}

fn pair_refs(pairs: &[(Encoded, Encoded)]) -> Vec<(&Encoded, &Encoded)> {
    pairs.iter().map(|(b, f)| (b, f)).collect()
}

/// Calibrates the trained `net`: unless `--no-wide`, the wide path (`first` when boosting
/// fitted it before the transformer, else fitted now) stacked on the calibration split;
/// then Platt scaling and the change combiner. Sets `cfg.wide`, `cfg.calibration` and
/// `cfg.change`, and returns the wide path to save.
pub(super) fn calibrate(
    run: &Run,
    cfg: &mut RiskConfig,
    net: &RiskNet,
    first: Option<(Wide, f64)>,
    wide_opts: Option<&wide::WideOptions>,
) -> Result<Option<Wide>> {
    let Run {
        device,
        data,
        encoded,
        calib_all,
        slot,
        ..
    } = run;
    let calib_enc = run.calib_enc();
    let calib_y = run.calib_y();
    let mut calib_logits = logits_of(net, cfg.n_features, &calib_enc, device)?;
    let wide = match wide_opts {
        None => None,
        Some(wo) => {
            let (w, auc) = match first {
                Some(f) => f,
                None => fit_wide(run, cfg, wo)?,
            };
            let w = if wo.pairs_weight > 0.0 && !run.calib_pairs.is_empty() {
                let refs = pair_refs(&run.calib_pairs);
                let versions: Vec<&Encoded> = refs.iter().flat_map(|&(b, f)| [b, f]).collect();
                let deep = logits_of(net, cfg.n_features, &versions, device)?;
                let pairs: Vec<wide::StackPair> = refs
                    .iter()
                    .zip(deep.chunks(2))
                    .map(|(&(b, f), d)| (d[0], d[1], b, f))
                    .collect();
                wide::stack_with_pairs(w, &calib_logits, &calib_enc, &calib_y, &pairs, wo.pairs_weight)
            } else {
                wide::stack(w, &calib_logits, &calib_enc, &calib_y)
            };
            for (l, e) in calib_logits.iter_mut().zip(&calib_enc) {
                *l = w.combine(*l, e);
            }
            let stacked = metrics::roc_auc(&calib_logits, &calib_y).unwrap_or(0.5);
            if auc.is_nan() {
                eprintln!(
                    "deepspark: the base's wide path restacked: calibration AUC {stacked:.4} (transformer weight {:.3})",
                    w.deep
                );
            } else {
                eprintln!(
                    "deepspark: wide path calibration AUC {auc:.4}; stacked with the transformer {stacked:.4} (weight {:.3})",
                    w.deep
                );
            }
            cfg.wide = true;
            Some(w)
        }
    };
    let xs: Vec<Vec<f64>> = calib_logits.iter().map(|&l| vec![l as f64]).collect();
    let (w, b) = metrics::fit_logistic(&xs, &calib_y, 1e-3);
    cfg.calibration = Platt {
        a: w[0] as f32,
        b: b as f32,
    };
    let all_enc: Vec<&Encoded> = calib_all.iter().map(|&i| &encoded[slot[i]]).collect();
    let mut all_logits = logits_of(net, cfg.n_features, &all_enc, device)?;
    if let Some(w) = &wide {
        for (l, e) in all_logits.iter_mut().zip(&all_enc) {
            *l = w.combine(*l, e);
        }
    }
    cfg.change = fit_change_combiner(data, calib_all, &all_logits);
    Ok(wide)
}

/// Fits the change combiner on every calibration hunk's (uncalibrated) model logit.
fn fit_change_combiner(data: &Dataset, calib_all: &[usize], logits: &[f32]) -> ChangeCombiner {
    let mut per_commit: HashMap<(&str, &str), Vec<f32>> = HashMap::new();
    for (&i, &l) in calib_all.iter().zip(logits) {
        per_commit
            .entry((&data.samples[i].project, &data.samples[i].commit))
            .or_default()
            .push(l);
    }
    let buggy: HashMap<(&str, &str), bool> = data
        .commits
        .iter()
        .map(|c| ((c.project.as_str(), c.id.as_str()), c.buggy))
        .collect();
    let (mut xs, mut ys) = (vec![], vec![]);
    let mut keys: Vec<_> = per_commit.keys().copied().collect();
    keys.sort();
    for key in keys {
        if let Some(&b) = buggy.get(&key) {
            xs.push(
                ChangeCombiner::features(&per_commit[&key])
                    .iter()
                    .map(|&v| v as f64)
                    .collect(),
            );
            ys.push(b);
        }
    }
    if ys.iter().all(|&b| b) || ys.iter().all(|&b| !b) {
        return ChangeCombiner::MAX;
    }
    let (w, b) = metrics::fit_logistic(&xs, &ys, 1e-3);
    ChangeCombiner {
        w_max: w[0] as f32,
        w_mean: w[1] as f32,
        w_count: w[2] as f32,
        bias: b as f32,
    }
}
