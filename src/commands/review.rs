//! `deepspark review`: git -> hunks -> tokens -> model -> findings -> report.
//!
//! Reads only: the repository, its index and work tree are never written. The model is
//! loaded only when there is something to score, so an empty change is fast.

use crate::cli::{ColorChoice, Format, ReviewArgs};
use crate::model::device::device;
use crate::model::weights::ModelFiles;
use crate::model::{HunkScore, RiskModel, ScoreInput, Scorer};
use crate::review::{Thresholds, gate_tripped, judge};
use crate::{exit, git, render, skip};
use anyhow::{Context, Result, bail};
use std::io::{IsTerminal, Write};
use std::path::Path;

pub fn model_files(dir: Option<&Path>) -> Result<ModelFiles> {
    match dir {
        Some(d) => Ok(ModelFiles::read_dir(d)?),
        None => ModelFiles::embedded()
            .ok_or_else(|| anyhow::anyhow!("this build has no embedded model (weights/ was empty when it was built); pass --model DIR")),
    }
}

/// Colour: `--color always|never`, else NO_COLOR, else TERM=dumb, else whether stdout is a terminal.
pub fn use_color(choice: ColorChoice) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                && std::env::var("TERM").map_or(true, |t| t != "dumb")
                && std::io::stdout().is_terminal()
        }
    }
}

pub fn run(args: ReviewArgs) -> Result<u8> {
    if args.reject > args.lgtm {
        bail!("--reject ({}) must not be above --lgtm ({})", args.reject, args.lgtm);
    }
    let repo = git::open(args.repo.as_deref())?;
    let request = git::Request { revs: args.revs.clone(), staged: args.staged, commit: args.commit.clone(), context: args.context };
    let mut change = git::diff(&repo, &request)?;
    let mut patterns: Vec<String> =
        if args.no_default_skips { vec![] } else { skip::DEFAULT_PATTERNS.iter().map(|s| s.to_string()).collect() };
    patterns.extend(args.skip.iter().cloned());
    let rules = skip::Rules { patterns, max_file_lines: args.max_file_lines, max_change_lines: args.max_change_lines };
    skip::apply(&mut change.files, &rules);

    let inputs: Vec<(usize, ScoreInput)> = change
        .files
        .iter()
        .enumerate()
        .filter(|(_, f)| f.skip.is_none())
        .flat_map(|(i, f)| f.hunks.iter().map(move |h| (i, ScoreInput { path: f.display_path(), hunk: h })))
        .collect();
    let mut scores: Vec<Vec<HunkScore>> = vec![Vec::new(); change.files.len()];
    let (change_risk, model_name) = if inputs.is_empty() {
        (0.0, None)
    } else {
        let dev = device(args.device)?;
        let files = model_files(args.model.as_deref())?;
        let model = RiskModel::load(&files, &dev)?;
        let flat: Vec<ScoreInput> = inputs.iter().map(|(_, s)| *s).collect();
        let scored = score_with_progress(&model, &flat)?;
        let risk = model.change_risk(&scored);
        for ((file, _), s) in inputs.iter().zip(scored) {
            scores[*file].push(s);
        }
        (risk as f64, Some(model.describe()))
    };
    let sides = change.sides.clone();
    let review = judge(change.files, scores, change_risk, Thresholds { lgtm: args.lgtm, reject: args.reject }, model_name);
    let code = if gate_tripped(review.verdict, args.fail_on) { exit::GATE } else { exit::PASS };

    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let written = match args.format {
        Format::Json => render::json::write(&review, &sides, args.fail_on, &mut out),
        Format::Terminal => {
            let style = render::terminal::Style { color: use_color(args.color) };
            render::terminal::write(&review, &sides, &style, &mut out)
        }
    }
    .and_then(|_| out.flush());
    match written {
        // The reader stopped early (`| head`): not our failure; keep the verdict's code.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(code),
        Err(e) => Err(e).context("cannot write the report"),
        Ok(()) => Ok(code),
    }
}

/// Scores in chunks, with a progress bar on stderr when it is a terminal and the work is large.
fn score_with_progress(model: &RiskModel, inputs: &[ScoreInput]) -> Result<Vec<HunkScore>> {
    const CHUNK: usize = 256;
    let bar = if inputs.len() > CHUNK && std::io::stderr().is_terminal() {
        let b = indicatif::ProgressBar::new(inputs.len() as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template("scoring [{bar:30}] {pos}/{len} hunks ({eta})")
                .expect("static template")
                .progress_chars("=> "),
        );
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut out = Vec::with_capacity(inputs.len());
    for chunk in inputs.chunks(CHUNK) {
        out.extend(model.score(chunk)?);
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok(out)
}
