//! `deepspark scan`: review each commit of a range with one loaded model, one line each.
//!
//! For history triage and for measuring the model on a repository's past: each commit is
//! compared with its first parent (merges too), skipped files follow the review's rules,
//! and the hunks of many commits are scored together in length-sorted batches. Writes a
//! line per commit (or a JSON object per line); never writes to the repository.

use super::scoring::review_group;
use super::settings::{Settings, load_config};
use crate::cli::{ScanArgs, ScanFormat};
use crate::model::RiskModel;
use crate::review::gate_tripped;
use crate::{exit, git, render::sanitize::clean};
use anyhow::{Context, Result};
use std::io::{IsTerminal, Write};
use std::time::Instant;

/// Commits scored together: enough hunks for full batches, little memory.
const GROUP: usize = 64;

pub fn run(args: ScanArgs) -> Result<u8> {
    let t0 = Instant::now();
    let repo = git::open(args.repo.as_deref())?;
    let cfg = load_config(&args.gate, &repo)?;
    let mut settings = Settings::resolve(&args.gate, &cfg)?;
    settings.dismissed = super::dismiss::load(repo.workdir())?;
    let ids = with_parents(&repo, &args.range, args.max)?;
    let mut model: Option<RiskModel> = None;
    let bar = if ids.len() >= 50 && std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(ids.len() as u64).with_style(
            indicatif::ProgressStyle::with_template("scanning [{bar:30}] {pos}/{len} commits ({per_sec}, {eta})")
                .expect("static template")
                .progress_chars("=> "),
        )
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut tripped = false;
    for group in ids.chunks(GROUP) {
        for (id, review) in review_group(&repo, group, &settings, &mut model)? {
            tripped |= gate_tripped(review.verdict, settings.fail_on);
            let subject = repo
                .find_commit(id)?
                .summary_bytes()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            let hunks: usize = review.scores.iter().map(Vec::len).sum();
            let max_risk = review.scores.iter().flatten().map(|s| s.risk).fold(0f32, f32::max);
            let written = match args.format {
                ScanFormat::Json => writeln!(
                    out,
                    "{}",
                    serde_json::json!({
                        "commit": id.to_string(), "verdict": review.verdict, "p_clean": review.p_clean,
                        // scan judges each commit with the model's own calibration (production
                        // code only); `review` fits this repository's (see history.rs).
                        "calibration": review.calibration.source,
                        "hunks": hunks, "max_hunk_risk": max_risk,
                        "not_reviewed_files": review.unreviewed, "subject": subject,
                    })
                ),
                ScanFormat::Text => writeln!(
                    out,
                    "{:.10}  {:<10}  P(clean) {:5.1}%  {:>4} hunks  {}",
                    id.to_string(),
                    review.verdict.label(),
                    review.p_clean * 100.0,
                    hunks,
                    clean(&subject)
                ),
            };
            match written {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(exit::PASS),
                other => other.context("cannot write the report")?,
            }
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    match out.flush() {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(exit::PASS),
        other => other.context("cannot write the report")?,
    }
    let secs = t0.elapsed().as_secs_f64();
    eprintln!(
        "deepspark: scanned {} commits in {:.2}s ({:.0} commits/s)",
        ids.len(),
        secs,
        ids.len() as f64 / secs.max(1e-9)
    );
    Ok(if tripped { exit::GATE } else { exit::PASS })
}

/// The commits of `range` (newest first, at most `max`), each with the parent it is
/// reviewed against. In a shallow clone the walk reaches commits whose parents are
/// missing: it stops there, saying so.
pub fn with_parents(repo: &git2::Repository, range: &str, max: usize) -> Result<Vec<(git2::Oid, Option<git2::Oid>)>> {
    let mut ids = Vec::new();
    for id in git::commits(repo, range, max)? {
        match git::first_parent(repo, id) {
            Ok(parent) => ids.push((id, parent)),
            Err(git::GitError::Shallow { .. }) => {
                eprintln!(
                    "deepspark: shallow clone: stopping after {} commits, at {id} whose parent is not here (`git fetch --unshallow` to scan further)",
                    ids.len()
                );
                break;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(ids)
}
