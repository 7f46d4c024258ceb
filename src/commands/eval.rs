//! `deepspark eval`: measure a risk model on labelled changes it was not trained on; with
//! `--lm`, also whether stacking a language model's surprisal with it raises the test AUC
//! (`train::stack`). `--after` measures on the commits dated after a point (by default the
//! newest 20% of each project).

use crate::cli::{EvalArgs, EvalFormat, When};
use crate::model::RiskModel;
use crate::model::device::device;
use crate::train::data::{Dataset, Split};
use crate::train::history::{self, Fixes, HistoryReport};
use crate::train::stack::{self, StackReport};
use crate::train::{EvalReport, evaluate, report_scored, score_split};
use anyhow::{Context, Result};
use std::io::Write;
use std::path::Path;

/// `eval`'s report, with the stacking measurement when `--lm` was given.
#[derive(serde::Serialize)]
struct Report {
    #[serde(flatten)]
    eval: EvalReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    lm_stacking: Option<StackReport>,
    /// `None` (JSON `null`): no `--repo` was given, the history features are not measured.
    history_stacking: Option<HistoryReport>,
}

pub fn run(args: EvalArgs) -> Result<u8> {
    let dev = device(args.device)?;
    let files = super::settings::model_files(args.model.as_deref())?;
    let model = RiskModel::load(&files, &dev)?;
    // Loaded before the data, so that a wrong --lm or --repo fails in a second.
    let mut lm = super::model::open(&args.lm, &dev)?;
    for dir in &args.repos {
        open_repo(dir)?;
    }
    let mut data = Dataset::load(&args.data)?;
    let split = match (args.after, args.split) {
        (Some(after), _) => {
            let after = match after {
                When::At(t) => t,
                When::Learned => super::settings::learned_at_date(args.model.as_deref())
                    .context("--after learned needs --model DIR with the learned.json `deepspark learn` writes")?,
            };
            let until = match args.until {
                None => None,
                Some(When::At(t)) => Some(t),
                Some(When::Learned) => anyhow::bail!("--until takes a date or unix seconds, not `learned`"),
            };
            if !data.has_dates() {
                anyhow::bail!("--after needs commit records (*.commits.jsonl) to date the hunks");
            }
            let n = data.split_after(after, until);
            if n == 0 {
                anyhow::bail!(
                    "no commit of the given files is dated after {after} (unix seconds){}",
                    match until {
                        Some(u) => format!(" and up to {u}"),
                        None => String::new(),
                    }
                );
            }
            eprintln!("deepspark: measuring on the {n} commits dated after {after} (unix seconds)");
            Split::Test
        }
        (None, Some(s)) => s,
        (None, None) if data.has_dates() => Split::Test,
        (None, None) => Split::All,
    };
    if split != Split::All && !data.has_dates() {
        anyhow::bail!(
            "--split {split:?} needs commit records (*.commits.jsonl) to date the hunks; pass them or use --split all"
        );
    }
    let report = match &args.scores {
        None => evaluate(&model, &data, split)?,
        Some(path) => {
            // Created before the scoring, so a bad path fails in a second, not after minutes.
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .with_context(|| format!("cannot create {} (it must not exist yet)", path.display()))?;
            let scored = score_split(&model, &data, split).and_then(|(chosen, logits)| {
                write_scores(file, path, &model, &data, &chosen, &logits)?;
                report_scored(&model, &data, &chosen, &logits, split)
            });
            match scored {
                Ok(r) if r.n > 0 => r,
                // No half-written or empty file left to block the rerun.
                other => {
                    let _ = std::fs::remove_file(path);
                    other?
                }
            }
        }
    };
    if report.n == 0 {
        anyhow::bail!("no labelled hunks (label 0 or 1) in the {split:?} split of the given files");
    }
    let lm_stacking = match lm.as_deref_mut() {
        None => None,
        Some(lm) => {
            if !data.has_dates() {
                anyhow::bail!(
                    "--lm measures stacking on the calibration and test splits, which need commit records \
                     (*.commits.jsonl) to date the hunks"
                );
            }
            let started = std::time::Instant::now();
            let r = stack::measure(&model, lm, &data, args.limit)?;
            eprintln!(
                "deepspark: {} read {} hunks in {:.1}s",
                crate::render::sanitize::clean(&r.language_model),
                r.calib_hunks + r.test_hunks + r.skipped,
                started.elapsed().as_secs_f64()
            );
            Some(r)
        }
    };
    let history_stacking = if args.repos.is_empty() {
        None
    } else {
        if !data.has_dates() {
            anyhow::bail!(
                "--repo measures history features on the calibration and test splits, which need commit \
                 records (*.commits.jsonl) to date the hunks"
            );
        }
        // From two years before the oldest measured commit on: the first feature needs the
        // year before each commit, the second counts the fixes read before it. Older history is
        // not read, which keeps a long history's mining short.
        let since = data
            .commits
            .iter()
            .filter(|c| matches!(c.split, Split::Calib | Split::Test))
            .map(|c| c.date)
            .min()
            .unwrap_or(0)
            - 2 * history::YEAR;
        let repos = args
            .repos
            .iter()
            .map(|dir| fixes_of(dir, since))
            .collect::<Result<Vec<_>>>()?;
        Some(history::measure(&model, &data, &repos)?)
    };
    let report = Report {
        eval: report,
        lm_stacking,
        history_stacking,
    };
    write_report(args.format, &report, |r, out| {
        print_text(&r.eval, out)?;
        if let Some(s) = &r.lm_stacking {
            print_stacking(s, out)?;
        }
        match &r.history_stacking {
            Some(h) => print_history(h, out),
            None => writeln!(
                out,
                "history features: not measured (--repo DIR, a clone of the project, measures them)"
            ),
        }
    })
}

/// The repository `--repo` names; its error as a plain message, since the hint a review's
/// "not a repository" gets (-C PATH) is not this flag's.
fn open_repo(dir: &Path) -> Result<git2::Repository> {
    crate::mine::open(Some(dir)).map_err(|e| anyhow::anyhow!("--repo {}: {e}", dir.display()))
}

/// The bug fixes of the repository at `dir` (its HEAD's history from `since` on, mined with
/// its settings file as `mine` mines it), by the files whose code lines they changed.
fn fixes_of(dir: &Path, since: i64) -> Result<Fixes> {
    let repo = open_repo(dir)?;
    let (cfg, _) = crate::config::Config::load(None, repo.workdir())?;
    let opts = super::mine::options(&repo, &cfg, "HEAD", None, None, None)?;
    let bar = super::mine::Bar(super::mine::bar());
    let labels = crate::mine::label(&repo, "HEAD", &opts.patterns, &opts.rules, &bar, Some(since))
        .with_context(|| format!("mining {}", dir.display()))?;
    bar.0.finish_and_clear();
    let mut fixes = Fixes {
        count: labels.fixes.iter().filter(|(_, p)| !p.is_empty()).count(),
        commits: labels.history.iter().map(|c| c.id.to_string()).collect(),
        ..Fixes::default()
    };
    for (i, paths) in &labels.fixes {
        for p in paths {
            fixes
                .by_path
                .entry(p.clone())
                .or_default()
                .push(labels.history[*i].author_date);
        }
    }
    fixes.by_path.values_mut().for_each(|d| d.sort_unstable());
    eprintln!(
        "deepspark: {} has {} bug fixes changing {} files since {} (unix seconds)",
        dir.display(),
        fixes.count,
        fixes.by_path.len(),
        since
    );
    Ok(fixes)
}

fn print_history(h: &HistoryReport, out: &mut impl Write) -> std::io::Result<()> {
    let auc = |v: Option<f64>| v.map_or("n/a".into(), |a| format!("{a:.4}"));
    let ci = |v: Option<[f64; 2]>| v.map_or("n/a".into(), |[a, b]| format!("[{a:+.4}, {b:+.4}]"));
    writeln!(
        out,
        "history features: {} bug fixes in {} repositor{}; fitted on {} calibration hunks ({} risky), \
         measured on {} test hunks ({} risky); {} hunks of commits no repository holds, left out",
        h.fixes,
        h.repositories,
        if h.repositories == 1 { "y" } else { "ies" },
        h.calib_hunks,
        h.calib_positives,
        h.test_hunks,
        h.test_positives,
        h.unmatched
    )?;
    writeln!(out, "  test ROC AUC, risk model alone:           {}", auc(h.risk_auc))?;
    writeln!(
        out,
        "  fixes of the file in the year alone:      {}",
        auc(h.fixes_year_auc)
    )?;
    writeln!(
        out,
        "  stacked [logit, fixes in the year]:       {}   gain 95% CI {}",
        auc(h.stacked_auc),
        ci(h.stacked_gain_ci95)
    )?;
    writeln!(
        out,
        "  stacked [logit, fixes in the year, all]:  {}   gain 95% CI {}",
        auc(h.stacked_all_auc),
        ci(h.stacked_all_gain_ci95)
    )
}

fn print_stacking(s: &StackReport, out: &mut impl Write) -> std::io::Result<()> {
    let ci = |v: Option<[f64; 2]>| v.map_or("n/a".into(), |[a, b]| format!("[{a:+.4}, {b:+.4}]"));
    writeln!(
        out,
        "language model: {}",
        crate::render::sanitize::clean(&s.language_model)
    )?;
    writeln!(
        out,
        "  stacking fitted on {} calibration hunks ({} risky), measured on {} test hunks ({} risky); \
         {} too long, left out",
        s.calib_hunks, s.calib_positives, s.test_hunks, s.test_positives, s.skipped
    )?;
    writeln!(
        out,
        "  test ROC AUC: risk model {}   surprisal alone {}",
        f(s.risk_auc),
        f(s.surprisal_auc)
    )?;
    writeln!(
        out,
        "  stacked [logit, surprisal]: {}   gain 95% interval {}",
        f(s.stacked_auc),
        ci(s.stacked_gain_ci95)
    )?;
    writeln!(
        out,
        "  stacked [logit, surprisal, surprisal x tokens]: {}   gain 95% interval {}",
        f(s.stacked_tokens_auc),
        ci(s.stacked_tokens_gain_ci95)
    )
}

/// A measurement's report on stdout: pretty JSON, or `text` for people.
pub fn write_report<R: serde::Serialize>(
    format: EvalFormat,
    report: &R,
    text: impl FnOnce(&R, &mut std::io::StdoutLock<'static>) -> std::io::Result<()>,
) -> Result<u8> {
    let mut out = std::io::stdout().lock();
    match format {
        EvalFormat::Json => {
            serde_json::to_writer_pretty(&mut out, report)?;
            writeln!(out)?;
        }
        EvalFormat::Text => text(report, &mut out)?,
    }
    Ok(crate::exit::PASS)
}

/// One JSON line per scored hunk, in data order, into the file the caller created.
fn write_scores(
    file: std::fs::File,
    path: &Path,
    model: &RiskModel,
    data: &Dataset,
    chosen: &[usize],
    logits: &[f32],
) -> Result<()> {
    let mut out = std::io::BufWriter::new(file);
    for (&i, &logit) in chosen.iter().zip(logits) {
        let s = &data.samples[i];
        let line = serde_json::json!({
            "project": s.project,
            "commit": s.commit,
            "file": s.path,
            "label": s.label,
            "added": s.hunk.added(),
            "logit": logit,
            "risk": model.config.calibration.apply(logit),
        });
        serde_json::to_writer(&mut out, &line)?;
        writeln!(out)?;
    }
    out.flush().with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn f(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.4}"))
}

pub fn print_text(r: &EvalReport, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out, "split: {}", r.split)?;
    writeln!(out, "hunks: {} ({} risky)", r.n, r.positives)?;
    writeln!(
        out,
        "ROC AUC:      {}   baseline (added lines): {}",
        f(r.auc),
        f(r.baseline_auc)
    )?;
    writeln!(
        out,
        "  with >=1 added line ({} hunks): {}   baseline: {}",
        r.n_added,
        f(r.auc_added),
        f(r.baseline_auc_added)
    )?;
    writeln!(out, "PR AUC:       {}", f(r.pr_auc))?;
    writeln!(out, "ECE (10 bins): {}", f(r.ece))?;
    writeln!(out, "Brier:        {}", f(r.brier))?;
    if r.commit_n > 0 {
        writeln!(
            out,
            "changes: {}  ROC AUC: {}   baseline (added lines): {}   ECE: {}",
            r.commit_n,
            f(r.commit_auc),
            f(r.commit_baseline_auc),
            f(r.commit_ece)
        )?;
        let pct = |v: Option<f64>| v.map_or("n/a".into(), |v| format!("{:.1}%", v * 100.0));
        writeln!(
            out,
            "gate (REJECT below P(clean) {:.2} and riskier than {:.0}% of the project's last {} earlier commits): \
             blocks {} of clean changes, catches {} of buggy ones",
            crate::review::DEFAULT_REJECT,
            crate::review::DEFAULT_REJECT_RANK,
            crate::review::HISTORY,
            pct(r.gate_blocked_clean),
            pct(r.gate_caught_buggy)
        )?;
        writeln!(
            out,
            "  by the probability alone (--reject-rank 0): blocks {} of clean, catches {} of buggy",
            pct(r.gate_probability_blocked_clean),
            pct(r.gate_probability_caught_buggy)
        )?;
    }
    let pct = |v: Option<f64>| v.map_or("n/a".into(), |v| format!("{:.1}%", v * 100.0));
    for p in &r.projects {
        write!(
            out,
            "  {:<28} {:>6} hunks  AUC {}  baseline {}",
            p.project,
            p.n,
            f(p.auc),
            f(p.baseline_auc)
        )?;
        if p.commit_n > 0 {
            write!(
                out,
                "  gate: blocks {} of clean, catches {} of buggy ({} changes; probability alone {} / {}; ranked against {} commits)",
                pct(p.gate_blocked_clean),
                pct(p.gate_caught_buggy),
                p.commit_n,
                pct(p.gate_probability_blocked_clean),
                pct(p.gate_probability_caught_buggy),
                p.history_commits
            )?;
        }
        writeln!(out)?;
    }
    Ok(())
}
