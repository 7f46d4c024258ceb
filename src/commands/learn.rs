//! `deepspark learn`: mine this repository's history, adapt the default model to it, and
//! keep the result only when it measures better than the default on the newest history.
//!
//! Two adaptations start from the default's weights (its tokenizer and transformer are
//! kept; a project's history alone is often too small to train them):
//! - **recalibrated**: the default's wide path too; only how it is stacked with the
//!   transformer, Platt scaling and the change combiner are refit, so the project's "95%"
//!   is its own 95%;
//! - **refit**: the wide path refit on the project's older history, starting from the
//!   default's and penalised toward it, then stacked and calibrated the same way.
//!
//! Both fit on the oldest 70% of the labelled history and calibrate on the next 10%. Of
//! those whose Brier score on the newest 20% (never fitted on) is lower than the default's,
//! with a hunk AUC not lower by more than `AUC_SLACK`, the one with the lowest Brier score
//! there is written; if neither is, nothing is. (Not by the calibration split's scores: the
//! refit model chose its epoch and both their stacking there, which flatters them.) The
//! history is mined without the buggy commits of the grace period, whose clean neighbours
//! are left out: with them the newest 20% looked riskier than it was. Every evaluation is
//! printed.
//! Writes `--out` (default `.deepspark/model/`) and nothing else.

use super::settings::{LEARNED_DIR, LEARNED_FILE, model_files};
use crate::cli::LearnArgs;
use crate::config::Config;
use crate::model::RiskModel;
use crate::model::device::device;
use crate::model::weights::{CONFIG, TOKENIZER, WEIGHTS};
use crate::train::data::{Dataset, Split};
use crate::train::{EvalReport, TrainOptions, evaluate, wide::WideOptions};
use crate::{exit, mine};
use anyhow::{Context, Result, bail};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// How much hunk AUC on the newest history a better-calibrated model may give up.
pub const AUC_SLACK: f64 = 0.01;

#[derive(Serialize)]
struct Evaluated {
    name: &'static str,
    calibration: EvalReport,
    test: EvalReport,
}

/// What `learned.json` records: where the model was learned and how it measured. No
/// times or paths, so learning twice at the same commit writes the same bytes.
#[derive(Serialize)]
struct Learned<'a> {
    format: &'static str,
    project: &'a str,
    at: String,
    at_date: i64,
    commits: usize,
    fixes: usize,
    buggy: usize,
    chosen: &'static str,
    models: &'a [Evaluated],
    /// The learned model's change risk for each of the last `HISTORY` commits up to `at`,
    /// sorted: `review` says where a change stands among them.
    history: History,
}

#[derive(Serialize)]
struct History {
    commits: usize,
    risks: Vec<f32>,
}

use super::history::HISTORY;

/// A folder removed when dropped (the run's scratch space).
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn run(args: LearnArgs) -> Result<u8> {
    let t0 = Instant::now();
    let repo = crate::git::open(args.repo.as_deref())?;
    let (cfg, _) = Config::load(args.config.as_deref(), repo.workdir())?;
    let out = match (&args.out, repo.workdir()) {
        (Some(o), _) => o.clone(),
        (None, Some(w)) => w.join(LEARNED_DIR),
        (None, None) => bail!("a bare repository has no work tree for {LEARNED_DIR}: pass --out DIR"),
    };
    let at = repo
        .revparse_single(&args.at)
        .and_then(|o| o.peel_to_commit())
        .map_err(|e| crate::git::GitError::BadRevision {
            rev: args.at.clone(),
            msg: e.message().to_string(),
        })?;
    let scratch = Scratch(std::env::temp_dir().join(format!("deepspark-learn-{}", std::process::id())));
    std::fs::create_dir_all(&scratch.0).with_context(|| format!("cannot create {}", scratch.0.display()))?;

    // 1. Mine.
    let mut opts = super::mine::options(
        &repo,
        &cfg,
        &at.id().to_string(),
        args.project.as_deref(),
        args.grace_days,
        args.reports.bug_reports.as_deref(),
    )?;
    opts.young_implicated = false;
    let history = scratch.0.join("history.jsonl");
    let bar = super::mine::bar();
    let summary = {
        let mut w = std::io::BufWriter::new(
            std::fs::File::create(&history).with_context(|| format!("cannot create {}", history.display()))?,
        );
        mine::mine(&repo, &opts, &mut w, &super::mine::Bar(bar.clone()))?
    };
    bar.finish_and_clear();
    super::mine::report(&summary, t0.elapsed().as_secs_f64());
    let dismissed = super::dismiss::load(repo.workdir())?;
    if !dismissed.is_empty() {
        let n = relabel_dismissed(&history, &dismissed)?;
        eprintln!("deepspark: {n} mined hunks match dismissed findings: counted as clean");
    }
    if summary.buggy == 0 {
        bail!(
            "no commit of this history is implicated by a bug fix ({} fixes found): nothing to learn from; \
             the default model stays (see `deepspark mine --help` for how fixes are found)",
            summary.fixes
        );
    }

    // 2. Adapt: the base model's files in a folder, as `train --base` reads them.
    let base_dir = scratch.0.join("base");
    std::fs::create_dir_all(&base_dir)?;
    let base = model_files(args.base.as_deref())?;
    for (name, bytes) in [
        (CONFIG, &base.config),
        (WEIGHTS, &base.weights),
        (TOKENIZER, &base.tokenizer),
    ] {
        std::fs::write(base_dir.join(name), bytes)?;
    }
    let dev = device(args.device)?;
    let candidates: [(&'static str, bool, bool); 2] = [("recalibrated", true, false), ("refit", false, true)];
    let mut dirs = Vec::new();
    for (name, recalibrate_only, wide_prior) in candidates {
        let dir = scratch.0.join(name);
        eprintln!("deepspark: fitting the {name} model");
        let train = TrainOptions {
            data: vec![history.clone()],
            out: dir.clone(),
            epochs: 0,
            seed: 17,
            d_model: 0,
            n_layers: 0,
            n_heads: 0,
            d_ff: 0,
            max_len: 0,
            vocab: 0,
            batch: 32,
            lr: 0.0,
            weight_decay: 0.0,
            dropout: 0.0,
            holdout: vec![],
            pair_data: vec![],
            max_train: None,
            resume: false,
            checkpoint_every: usize::MAX,
            change_features: true,
            bag: false,
            file_name: true,
            wide: Some(WideOptions {
                l2: args.prior_l2,
                ..WideOptions::default()
            }),
            pair: None,
            boost: false,
            base: Some(base_dir.clone()),
            wide_prior,
            recalibrate_only,
        };
        crate::train::train(&train, &dev).with_context(|| {
            format!(
                "cannot fit the {name} model on this history ({} commits, {} buggy); the default model stays",
                summary.written, summary.buggy
            )
        })?;
        dirs.push((name, dir));
    }

    // 3. Measure: the default and both candidates, on the calibration split and the newest 20%.
    let data = Dataset::load(&[&history])?;
    let measure = |name: &'static str, files| -> Result<Evaluated> {
        let model = RiskModel::load(&files, &dev)?;
        Ok(Evaluated {
            name,
            calibration: evaluate(&model, &data, Split::Calib)?,
            test: evaluate(&model, &data, Split::Test)?,
        })
    };
    let mut models = vec![measure("default", base)?];
    for (name, dir) in &dirs {
        models.push(measure(name, crate::model::weights::ModelFiles::read_dir(dir)?)?);
    }
    print_table(&models);
    let brier = |r: &EvalReport| r.brier.unwrap_or(f64::INFINITY);
    // Candidates in order of Brier score on the newest 20%; the first that beats the default
    // there is written.
    let mut order: Vec<usize> = (1..models.len()).collect();
    order.sort_by(|&a, &b| brier(&models[a].test).total_cmp(&brier(&models[b].test)));
    let default = &models[0].test;
    let mut refusals = Vec::new();
    let mut best = None;
    for &i in &order {
        match keep(default, &models[i].test) {
            Ok(()) => {
                best = Some(i);
                break;
            }
            Err(why) => refusals.push(format!("the {} model {why}", models[i].name)),
        }
    }
    let Some(best) = best else {
        println!(
            "refused: {}; nothing written, the default model stays",
            refusals.join("; ")
        );
        return Ok(exit::GATE);
    };
    let chosen = &models[best].test;
    // 4. Where changes stand: the chosen model's risk for the last commits up to `at`.
    let (_, chosen_dir) = &dirs[best - 1];
    let history = score_history(&repo, &at.id().to_string(), chosen_dir, &cfg, args.device)?;

    // 5. Write: the chosen model and learned.json, replacing `out` whole.
    let learned = Learned {
        format: "deepspark-learned/1",
        project: &opts.project,
        at: at.id().to_string(),
        at_date: at.author().when().seconds(),
        commits: summary.written,
        fixes: summary.fixes,
        buggy: summary.buggy,
        chosen: models[best].name,
        models: &models,
        history,
    };
    write_model(chosen_dir, &out, &(serde_json::to_string_pretty(&learned)? + "\n"))?;
    println!(
        "learned: the {} model, written to {} (Brier {:.4} vs the default's {:.4} on the newest 20%); \
         review, scan and the pre-push hook use it from now on (`--model default` for the embedded one)",
        models[best].name,
        out.display(),
        brier(chosen),
        brier(default),
    );
    eprintln!("deepspark: learned in {:.1}s", t0.elapsed().as_secs_f64());
    Ok(exit::PASS)
}

/// Whether a learned model measured `chosen` on the newest history may replace the default
/// measured `default` there: a lower Brier score, and hunk AUC at most `AUC_SLACK` lower.
/// The reason when not.
pub fn keep(default: &EvalReport, chosen: &EvalReport) -> Result<(), String> {
    let (Some(auc_default), Some(auc_chosen), Some(b_default), Some(b_chosen)) =
        (default.auc, chosen.auc, default.brier, chosen.brier)
    else {
        return Err(format!(
            "cannot be measured: the newest 20% of the history ({} labelled hunks, {} risky) needs both risky and clean hunks",
            chosen.n, chosen.positives
        ));
    };
    if b_chosen >= b_default {
        return Err(format!(
            "is not better than the default on the newest 20% of this history (Brier {b_chosen:.4} vs {b_default:.4})"
        ));
    }
    if auc_chosen < auc_default - AUC_SLACK {
        return Err(format!(
            "ranks the newest 20% of this history worse than the default (hunk AUC {auc_chosen:.4} vs {auc_default:.4})"
        ));
    }
    Ok(())
}

/// The change risks of the last `HISTORY` commits up to `at` under the model in `dir`
/// (as `scan` scores them), sorted and rounded so that the file is the same every time.
fn score_history(
    repo: &git2::Repository,
    at: &str,
    dir: &Path,
    cfg: &Config,
    device: crate::model::device::DeviceChoice,
) -> Result<History> {
    let gate = crate::cli::GateArgs {
        model: Some(dir.to_path_buf()),
        device,
        ..Default::default()
    };
    let mut settings = super::settings::Settings::resolve(&gate, cfg)?;
    settings.model = Some(dir.to_path_buf());
    let risks = super::history::risks(repo, at, HISTORY, &settings, &mut None)?;
    Ok(History {
        commits: risks.len(),
        risks,
    })
}

/// Dismissed findings are clean examples: their hunk records get `hunk_label` 0. Returns
/// how many were relabelled.
fn relabel_dismissed(history: &Path, dismissed: &std::collections::HashSet<String>) -> Result<usize> {
    let text = std::fs::read_to_string(history)?;
    let mut out = String::with_capacity(text.len());
    let mut n = 0;
    for line in text.lines() {
        let mut v: serde_json::Value = serde_json::from_str(line)?;
        let hunk = match (v["file"].as_str(), v["hunk_header"].as_str(), v["hunk"].as_str()) {
            (Some(file), Some(header), Some(body)) => crate::diff::Hunk::parse(header, body)
                .ok()
                .map(|h| crate::review::hunk_fingerprint(file, &h)),
            _ => None,
        };
        if hunk.is_some_and(|fp| dismissed.contains(&fp)) && v["hunk_label"] != 0 {
            v["hunk_label"] = 0.into();
            n += 1;
            out.push_str(&v.to_string());
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    std::fs::write(history, out)?;
    Ok(n)
}

fn print_table(models: &[Evaluated]) {
    let f = |v: Option<f64>| v.map_or("   n/a".to_string(), |v| format!("{v:.4}"));
    let pct = |v: Option<f64>| v.map_or("  n/a".to_string(), |v| format!("{:4.1}%", v * 100.0));
    println!(
        "{:<13} {:>10} {:>10}   {:>9} {:>9} {:>9} {:>13} {:>13}",
        "model", "calib AUC", "calib Brier", "test AUC", "test ECE", "test Brier", "clean blocked", "buggy caught"
    );
    for m in models {
        println!(
            "{:<13} {:>10} {:>10}   {:>9} {:>9} {:>9} {:>13} {:>13}",
            m.name,
            f(m.calibration.auc),
            f(m.calibration.brier),
            f(m.test.auc),
            f(m.test.ece),
            f(m.test.brier),
            pct(m.test.gate_blocked_clean),
            pct(m.test.gate_caught_buggy),
        );
    }
    println!(
        "(test: the newest 20% of the labelled history; the gate at the default thresholds, REJECT below P(clean) 0.60)"
    );
}

/// Copies the model files and `learned.json` into a fresh folder beside `out`, then swaps
/// it in, so `out` is always a whole model.
fn write_model(from: &Path, out: &Path, learned: &str) -> Result<()> {
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    let name = out.file_name().unwrap_or_default().to_string_lossy().into_owned();
    let fresh = parent.join(format!(".{name}.new-{}", std::process::id()));
    let old = parent.join(format!(".{name}.old-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&fresh);
    std::fs::create_dir_all(&fresh)?;
    for file in [CONFIG, WEIGHTS, TOKENIZER] {
        let bytes = std::fs::read(from.join(file))?;
        std::fs::write(fresh.join(file), bytes).with_context(|| format!("cannot write {}", fresh.display()))?;
    }
    std::fs::write(fresh.join(LEARNED_FILE), learned)?;
    if out.exists() {
        std::fs::rename(out, &old).with_context(|| format!("cannot replace {}", out.display()))?;
    }
    std::fs::rename(&fresh, out).with_context(|| format!("cannot write {}", out.display()))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(auc: Option<f64>, brier: Option<f64>) -> EvalReport {
        EvalReport {
            n: 100,
            positives: 10,
            auc,
            brier,
            ..Default::default()
        }
    }

    #[test]
    fn a_learned_model_must_measure_better() {
        let default = report(Some(0.75), Some(0.10));
        assert!(keep(&default, &report(Some(0.75), Some(0.09))).is_ok());
        assert!(
            keep(&default, &report(Some(0.745), Some(0.09))).is_ok(),
            "within the AUC slack"
        );
        let worse = keep(&default, &report(Some(0.80), Some(0.11))).unwrap_err();
        assert!(worse.contains("Brier"), "{worse}");
        let ranks = keep(&default, &report(Some(0.70), Some(0.09))).unwrap_err();
        assert!(ranks.contains("AUC"), "{ranks}");
        assert!(
            keep(&default, &report(None, Some(0.09))).is_err(),
            "no risky hunk: no judgement"
        );
    }
}
