//! Scoring a change with the review's settings: skip -> syntax -> tokens -> model ->
//! verdict, for one change (`score_files`) or for many commits at once, batched
//! (`review_group`), with dismissed hunks scored as no risk. The review, the hook, `scan`
//! and the history's scoring all call these; placing the change in its history and the
//! reports are theirs.

use super::settings::{Settings, learned_note, model_files};
use crate::diff::{FileDiff, Skip};
use crate::history::calibration::Calibration;
use crate::model::device::device;
use crate::model::{HunkScore, RiskModel, ScoreInput, Scorer};
use crate::review::{Review, judge};
use crate::tokenize::ChangeStats;
use crate::{git, skip};
use anyhow::Result;
use std::io::IsTerminal;
use std::time::Instant;

/// skip -> tokens -> model -> verdict, for files read from git; also the loaded model
/// (none when there was nothing to score). `review::rank` then places it in the history.
pub fn score_files(
    repo: &git2::Repository,
    sides: git::Sides,
    mut files: Vec<FileDiff>,
    settings: &Settings,
) -> Result<(Review, Option<RiskModel>)> {
    let start = Instant::now();
    skip::apply(&mut files, &settings.rules);
    let mut scores: Vec<Vec<HunkScore>> = vec![Vec::new(); files.len()];
    let to_score: Vec<usize> = (0..files.len())
        .filter(|&i| files[i].skip.is_none() && !files[i].hunks.is_empty())
        .collect();
    if to_score.is_empty() {
        return Ok((judge(files, scores, 0.0, settings.thresholds, None), None));
    }
    // Both sides of each file a grammar reads, for the syntax stage (nothing to read above).
    let texts = sides.texts(repo, &files, crate::syntax::wants_text)?;
    let dev = device(settings.device)?;
    let model = RiskModel::load(&model_files(settings.model.as_deref())?, &dev)?;
    let total: usize = to_score.iter().map(|&i| files[i].hunks.len()).sum();
    let change = crate::tokenize::ChangeStats::of(&files);
    let bar = progress_bar(total);
    let mut out_of_time = Vec::new();
    for &i in &to_score {
        if let Some(budget) = settings.budget
            && start.elapsed() > budget
        {
            out_of_time.push(i);
            continue;
        }
        let f = &files[i];
        let inputs: Vec<ScoreInput> = f
            .hunks
            .iter()
            .map(|h| ScoreInput {
                path: f.display_path(),
                hunk: h,
                change,
            })
            .collect();
        scores[i] = model.score(&inputs)?;
        bar.inc(inputs.len() as u64);
    }
    bar.finish_and_clear();
    for i in out_of_time {
        let seconds = settings.budget.map_or(0, |b| b.as_secs());
        files[i].skip = Some(Skip::TimeBudget { seconds });
        files[i].hunks.clear();
    }
    let describe = model.describe() + &learned_note(settings.model.as_deref());
    let review = judge_scored(files, &texts, scores, Some(&model), settings, Some(describe))?;
    Ok((review, Some(model)))
}

/// Scores -> verdict with the model's own calibration: dismissed hunks as no risk, and the
/// change's risk over its production hunks only (`syntax::read`); with none, the quiet
/// rate. `review::rank` may then calibrate it on the repository.
fn judge_scored(
    files: Vec<FileDiff>,
    texts: &[crate::syntax::Texts],
    mut scores: Vec<Vec<HunkScore>>,
    model: Option<&RiskModel>,
    settings: &Settings,
    describe: Option<String>,
) -> Result<Review> {
    let dismissed = dismiss(&files, &mut scores, &settings.dismissed);
    let syntax = crate::syntax::read(&files, texts);
    let production = crate::review::production_scores(&syntax, &scores, &dismissed);
    let production_risk = match model {
        Some(m) if !production.is_empty() => Some(m.change_risk(&production)?),
        _ => None,
    };
    let risk = match scores.iter().all(|s| s.is_empty()) {
        true => 0.0,
        false => Calibration::DEFAULT.risk(production_risk),
    };
    let mut review = judge(files, scores, risk, settings.thresholds, describe);
    review.dismissed = dismissed;
    review.set_syntax(syntax);
    review.production_risk = production_risk;
    Ok(review)
}

/// Replaces the scores of dismissed hunks (see `commands::dismiss`) and says which they are.
pub fn dismiss(
    files: &[FileDiff],
    scores: &mut [Vec<HunkScore>],
    dismissed: &std::collections::HashSet<String>,
) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    if dismissed.is_empty() {
        return out;
    }
    for (fi, (f, s)) in files.iter().zip(scores.iter_mut()).enumerate() {
        for (hi, (h, score)) in f.hunks.iter().zip(s.iter_mut()).enumerate() {
            if dismissed.contains(&crate::review::hunk_fingerprint(f.display_path(), h)) {
                *score = crate::review::dismissed_score(h.lines.len());
                out.push((fi, hi));
            }
        }
    }
    out
}

/// The commits of `ids` (each with the parent it is compared with), read from git and
/// scored together in length-sorted batches: each one's review, in order. The model is
/// loaded into `model` the first time there is something to score.
///
/// `parse`: whether the grammars read both sides of each file, as a review's do (`scan`);
/// the history's scoring reads the hunks alone (`syntax/heuristic.rs`): parsing the files
/// of 1,000 commits takes 3 to 13 s on two cores, and the readings agree on 92-100% of
/// the history's hunks (the first review's time is the honest-verdict issue's budget).
pub fn review_group(
    repo: &git2::Repository,
    ids: &[(git2::Oid, Option<git2::Oid>)],
    settings: &Settings,
    model: &mut Option<RiskModel>,
    parse: bool,
) -> Result<Vec<(git2::Oid, crate::review::Review)>> {
    let mut changes: Vec<(git2::Oid, Vec<FileDiff>, Vec<crate::syntax::Texts>)> = Vec::with_capacity(ids.len());
    for &(id, parent) in ids {
        let mut files = git::diff_commits(repo, parent, id, settings.context)?;
        skip::apply(&mut files, &settings.rules);
        let texts = match parse {
            true => git::Sides::of_commits(repo, parent, id)?.texts(repo, &files, crate::syntax::wants_text)?,
            false => Vec::new(),
        };
        changes.push((id, files, texts));
    }
    let mut inputs: Vec<ScoreInput> = Vec::new();
    for (_, files, _) in &changes {
        let stats = ChangeStats::of(files);
        for f in files.iter().filter(|f| f.skip.is_none()) {
            inputs.extend(f.hunks.iter().map(|h| ScoreInput {
                path: f.display_path(),
                hunk: h,
                change: stats,
            }));
        }
    }
    if model.is_none() && !inputs.is_empty() {
        *model = Some(RiskModel::load(
            &model_files(settings.model.as_deref())?,
            &device(settings.device)?,
        )?);
    }
    let mut scores = match &*model {
        Some(m) if !inputs.is_empty() => m.score(&inputs)?,
        _ => Vec::new(),
    }
    .into_iter();
    drop(inputs);
    let mut out = Vec::with_capacity(changes.len());
    for (id, files, texts) in changes {
        let per_file = split_by_file(&files, &mut scores);
        out.push((
            id,
            judge_scored(files, &texts, per_file, model.as_ref(), settings, None)?,
        ));
    }
    Ok(out)
}

/// The next scores of a flat, in-order stream, split into one list per file: a file's
/// hunks take the next scores unless it is skipped (skipped files were not scored).
pub fn split_by_file(files: &[FileDiff], scores: &mut impl Iterator<Item = HunkScore>) -> Vec<Vec<HunkScore>> {
    files
        .iter()
        .map(|f| match f.skip {
            None => scores.by_ref().take(f.hunks.len()).collect(),
            Some(_) => Vec::new(),
        })
        .collect()
}

fn progress_bar(total: usize) -> indicatif::ProgressBar {
    if total < 256 || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let b = indicatif::ProgressBar::new(total as u64);
    b.set_style(
        indicatif::ProgressStyle::with_template("scoring [{bar:30}] {pos}/{len} hunks ({eta})")
            .expect("static template")
            .progress_chars("=> "),
    );
    b
}
