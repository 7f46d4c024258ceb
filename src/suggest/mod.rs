//! Findings -> suggestions: candidate rewrites of risky hunks, verified, re-scored and ranked.
//!
//! For each hunk whose risk is at least `Settings::above`, the generator proposes its
//! `Settings::plausible` most probable rewrites of the hunk's added lines. Each is
//! **verified** (it edits only added lines of this hunk, it changes code tokens, and the
//! hunk's whole new side, context included, is exactly what the file holds at those line
//! numbers), then applied in place and **re-scored** by the risk model; a kept one must
//! also not break its file (`syntax::breaks`: parse where the file parsed, leave no name the
//! file uses undeclared, unexport nothing a JavaScript/TypeScript module exports, remove no
//! declaration, signature or union member of a `.d.ts`). With a pair path
//! (`model::wide::PairPath`, fitted on bug/fix pairs), a candidate is kept when it does not
//! raise the risk by more than `Settings::margin`, and the kept ones are ranked by the
//! generator's log-probability minus [`PAIR_RANK_WEIGHT`] × the pair logit after the edit
//! (how much more it reads like a fix): the risk rewards fewer added lines, so requiring a
//! risk drop and ranking by it chooses deletions. Without one, a candidate is kept only when
//! it lowers the hunk's risk by at least `Settings::margin`, and the kept ones are ranked by
//! the merge probability after the edit (1 - risk). At most `Settings::per_hunk` are
//! returned per hunk. Only the [`MAX_HUNKS`] riskiest hunks of a
//! change get suggestions: each candidate costs a forward pass, and a reviewer reads the
//! riskiest hunks first.
//!
//! Pure: the file contents come in as strings; nothing is written (see `apply.rs`).

use crate::diff::{FileDiff, Hunk, LineKind, OldNew, PatchFile};
use crate::model::{Generator, HunkScore, LineEdit, ScoreInput, Scorer};
use crate::tokenize::ChangeStats;
use serde::Serialize;

/// With a pair path, a candidate ranks by ln(generator probability) − this × its pair logit
/// (fitted paths are scaled to log-odds, see `train::wide::fit_pairs`). Chosen on the
/// calibration split's fix hunks (`eval-suggest --split calib`, MODEL_CARD): small weights
/// keep the generator's order (68% of first suggestions delete lines at 0), 3.5 is the largest
/// top-1 with at most half of them deletions on all fix hunks and on the small ones, larger
/// weights lower top-1 further.
pub const PAIR_RANK_WEIGHT: f32 = 3.5;

/// Hunks per change that get suggestions (the riskiest ones).
pub const MAX_HUNKS: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// Only hunks with at least this risk get suggestions.
    pub above: f32,
    /// A suggestion must lower the hunk's risk by at least this much.
    pub margin: f32,
    /// Suggestions shown per hunk.
    pub per_hunk: usize,
    /// Generator candidates considered per hunk.
    pub plausible: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            above: 0.3,
            margin: 0.02,
            per_hunk: 1,
            plausible: 5,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Suggestion {
    /// Index of the file in the review and of the hunk in that file.
    pub file: usize,
    pub hunk: usize,
    pub edits: Vec<LineEdit>,
    /// The generator's probability that this is the fix.
    pub probability: f32,
    /// The hunk's risk before and after the edit.
    pub risk: OldNew<f32>,
    /// The edit as a patch of the file, in `git diff` format.
    pub diff: String,
    /// Who wrote it: the embedded generator or the language model (model output).
    pub by: Author,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Author {
    Embedded,
    LanguageModel,
    /// What a bug fix of this repository did to the lines the hunk adds back
    /// (`history::similar`).
    History,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unverified {
    #[error("edits a line that is not an added line of the hunk")]
    NotAdded,
    #[error("edits the same line twice")]
    Twice,
    #[error("changes no code (nothing, or only spacing or comments)")]
    NoOp,
    #[error("the file no longer matches the hunk")]
    Stale,
    #[error("writes a line break, control or bidirectional-override character")]
    BadText,
}

/// The checks a candidate must pass before it is shown (see the module doc).
/// `language` is the file's (`diff::language_of`): it says what a comment is.
pub fn verify(hunk: &Hunk, edits: &[LineEdit], content: &str, language: Option<&str>) -> Result<(), Unverified> {
    let mut seen = std::collections::HashSet::new();
    for e in edits {
        let line = hunk.lines.get(e.line).ok_or(Unverified::NotAdded)?;
        if line.kind != LineKind::Added {
            return Err(Unverified::NotAdded);
        }
        if !seen.insert(e.line) {
            return Err(Unverified::Twice);
        }
        if let Some(new) = &e.new {
            // A language model's rewrite may put several lines in place of one (`\n` between
            // them); each line is checked on its own.
            for part in new.split('\n') {
                let body = part.strip_suffix('\r').unwrap_or(part);
                if body.chars().any(crate::chars::is_hidden) {
                    return Err(Unverified::BadText);
                }
            }
        }
    }
    let old: Vec<&str> = hunk
        .lines
        .iter()
        .filter(|l| l.kind == LineKind::Added)
        .map(|l| l.text.as_str())
        .collect();
    let edited = rewrite(hunk, edits);
    let new: Vec<&str> = edited
        .lines
        .iter()
        .filter(|l| l.kind == LineKind::Added)
        .map(|l| l.text.as_str())
        .collect();
    if !crate::syntax::changes_code(language, &old, &new) {
        return Err(Unverified::NoOp);
    }
    let file: Vec<&str> = lines_of(content);
    for l in hunk.lines.iter().filter(|l| l.kind != LineKind::Removed) {
        let n = l.lineno.new.ok_or(Unverified::Stale)? as usize;
        if n == 0 || file.get(n - 1).copied() != Some(l.text.as_str()) {
            return Err(Unverified::Stale);
        }
    }
    Ok(())
}

/// The file's lines without their `\n` (a `\r` stays, as in `diff::Line::text`).
fn lines_of(content: &str) -> Vec<&str> {
    content
        .split_inclusive('\n')
        .map(|l| l.strip_suffix('\n').unwrap_or(l))
        .collect()
}

/// The hunk after the edits, renumbered: edited lines stay added lines, deleted ones go.
pub fn rewrite(hunk: &Hunk, edits: &[LineEdit]) -> Hunk {
    let mut body = String::new();
    for (i, l) in hunk.lines.iter().enumerate() {
        let text = match edits.iter().find(|e| e.line == i) {
            Some(LineEdit { new: None, .. }) => continue,
            Some(LineEdit { new: Some(t), .. }) => t.as_str(),
            None => l.text.as_str(),
        };
        for part in text.split('\n') {
            body.push(l.kind.sigil());
            body.push_str(part);
            body.push('\n');
        }
    }
    let old = hunk.lines.iter().filter(|l| l.kind != LineKind::Added).count();
    let new = body.lines().filter(|l| !l.starts_with('-')).count();
    let header = format!("@@ -{},{old} +{},{new} @@", hunk.start.old, hunk.start.new);
    Hunk::parse(&header, &body).expect("a hunk rebuilt from a parsed hunk parses")
}

/// The file's text with edits applied at new-side line numbers (`lineno`, new text or deletion).
/// Each replaced line keeps its original terminator.
pub fn apply_to(content: &str, edits: &[(u32, Option<&str>)]) -> String {
    let mut out = String::with_capacity(content.len());
    for (i, raw) in content.split_inclusive('\n').enumerate() {
        match edits.iter().find(|(n, _)| *n as usize == i + 1) {
            Some((_, None)) => {}
            Some((_, Some(text))) => {
                out.push_str(text);
                if raw.ends_with('\n') {
                    out.push('\n');
                }
            }
            None => out.push_str(raw),
        }
    }
    out
}

/// A suggestion's edits as (new-side line number, new text) pairs for [`apply_to`].
pub fn line_edits<'a>(hunk: &Hunk, edits: &'a [LineEdit]) -> Vec<(u32, Option<&'a str>)> {
    edits
        .iter()
        .filter_map(|e| Some((hunk.lines.get(e.line)?.lineno.new?, e.new.as_deref())))
        .collect()
}

/// Applies a parsed patch to a file's text strictly: every hunk's old side must be found
/// exactly at its line numbers (no fuzz, no offset). `None` when it does not apply. Line
/// terminators follow the patch: each line ends with `\n` unless marked "no newline".
pub fn apply_patch(content: &str, file: &PatchFile) -> Option<String> {
    let lines: Vec<&str> = content.split_inclusive('\n').collect();
    let mut out = String::with_capacity(content.len());
    let mut next = 0usize; // index of the first line of `content` not yet copied
    for h in &file.hunks {
        // `Hunk::parse` already turns an empty side's "after line s" into "at line s + 1".
        let start = (h.start.old as usize).saturating_sub(1);
        if start < next || start > lines.len() {
            return None;
        }
        lines[next..start].iter().for_each(|l| out.push_str(l));
        next = start;
        for l in &h.lines {
            if l.kind != LineKind::Added {
                let have = lines.get(next)?;
                let want_eol = !l.no_newline;
                if have.strip_suffix('\n').unwrap_or(have) != l.text || have.ends_with('\n') != want_eol {
                    return None;
                }
                next += 1;
            }
            if l.kind != LineKind::Removed {
                out.push_str(&l.text);
                if !l.no_newline {
                    out.push('\n');
                }
            }
        }
    }
    lines[next..].iter().for_each(|l| out.push_str(l));
    Some(out)
}

/// A patch as `--patch` writes it, parsed back and applied strictly to the
/// old text, gives exactly the new text.
pub fn patch_round_trips(path: &str, old: &str, new: &str) -> bool {
    let edit = crate::apply::FileEdit {
        path: path.to_string(),
        old: old.as_bytes().to_vec(),
        new: new.as_bytes().to_vec(),
    };
    let Ok(text) = crate::apply::patch(&[edit]) else {
        return false;
    };
    let files = crate::diff::parse_patch(&text);
    files.len() == 1 && apply_patch(old, &files[0]).as_deref() == Some(new)
}

/// One risky hunk to find suggestions for.
pub struct Target<'a> {
    pub file: usize,
    pub hunk: usize,
    pub path: &'a str,
    pub hunk_ref: &'a Hunk,
    pub risk: f32,
    /// The hunk's pair-path logit, when the model has a pair path.
    pub pair_logit: Option<f32>,
    /// The file's current text on the reviewed side; `None` (binary, unreadable) means no suggestions.
    pub content: Option<&'a str>,
    /// The text the generator may take names from: `content` in a review; in `eval-suggest`,
    /// whose `content` is a snippet of the hunk alone, the real file when it could be read.
    pub names: Option<&'a str>,
}

/// Generate, verify, re-score and rank (see the module doc). Returns the suggestions of
/// every target, best first within each hunk.
/// The targets that get suggestions: at or above `Settings::above`, with content and added
/// lines, the [`MAX_HUNKS`] riskiest.
pub fn chosen(targets: &[Target], s: &Settings) -> Vec<usize> {
    let mut chosen: Vec<usize> = (0..targets.len())
        .filter(|&t| targets[t].risk >= s.above && targets[t].content.is_some() && targets[t].hunk_ref.added() > 0)
        .collect();
    chosen.sort_by(|&a, &b| targets[b].risk.total_cmp(&targets[a].risk));
    chosen.truncate(MAX_HUNKS);
    chosen
}

/// Whether a candidate scored `after` is kept for `target` (see the module doc): a language
/// model's, or the generator's when the model has a pair path, when it does not raise the
/// risk by more than the margin; the generator's without one when it lowers the risk by it.
pub fn keeps(target: &Target, after: &HunkScore, by: Author, s: &Settings) -> bool {
    let pair = target.pair_logit.is_some() && after.pair_logit.is_some();
    if by != Author::Embedded || pair {
        after.risk - target.risk <= s.margin
    } else {
        target.risk - after.risk >= s.margin
    }
}

/// Generate, verify, re-score and rank (see the module doc). `written` holds rewrites from
/// elsewhere as `(target index, edits, author)`: a language model's, and what a bug fix of the
/// repository did to the lines a hunk adds back (`Author::History`, offered whatever the hunk's
/// risk). They are verified and re-scored like the generator's candidates, kept when they do
/// not raise the hunk's risk by more than the margin, and ranked before them, the history's
/// first (a fix of this very code; re-scoring by risk alone would prefer deletions). Returns
/// the suggestions of every target, best first within each hunk.
pub fn suggest(
    targets: &[Target],
    change: ChangeStats,
    scorer: &dyn Scorer,
    generator: &dyn Generator,
    written: &[(usize, Vec<LineEdit>, Author)],
    s: &Settings,
) -> anyhow::Result<Vec<Suggestion>> {
    let mut pending: Vec<(usize, crate::model::Candidate, Hunk, Author)> = Vec::new();
    let generated = chosen(targets, s);
    let mut asked: Vec<usize> = generated.clone();
    for (t, _, _) in written {
        if !asked.contains(t) {
            asked.push(*t);
        }
    }
    for t in asked {
        let target = &targets[t];
        let Some(content) = target.content else { continue };
        let by_others = written.iter().filter(|(i, _, _)| *i == t).map(|(_, edits, by)| {
            (
                crate::model::Candidate {
                    edits: edits.clone(),
                    probability: 1.0,
                },
                *by,
            )
        });
        let by_generator = match generated.contains(&t) {
            true => generator.propose(target.hunk_ref, target.names, s.plausible)?,
            false => Vec::new(),
        }
        .into_iter()
        .map(|c| (c, Author::Embedded));
        for (c, by) in by_others.collect::<Vec<_>>().into_iter().chain(by_generator) {
            if verify(
                target.hunk_ref,
                &c.edits,
                content,
                crate::diff::language_of(target.path),
            )
            .is_ok()
            {
                let h = rewrite(target.hunk_ref, &c.edits);
                pending.push((t, c, h, by));
            }
        }
    }
    let inputs: Vec<ScoreInput> = pending
        .iter()
        .map(|(t, _, h, _)| ScoreInput {
            path: targets[*t].path,
            hunk: h,
            change,
        })
        .collect();
    let scores: Vec<HunkScore> = if inputs.is_empty() {
        Vec::new()
    } else {
        scorer.score(&inputs)?
    };
    let mut out: Vec<Suggestion> = Vec::new();
    for (t, target) in targets.iter().enumerate() {
        let language = crate::diff::language_of(target.path);
        let mut outline_before: Option<Option<crate::syntax::Outline>> = None;
        let mut mine: Vec<(Option<f32>, Suggestion)> = pending
            .iter()
            .zip(&scores)
            .filter(|((i, _, _, by), sc)| *i == t && keeps(target, sc, *by, s))
            .filter_map(|((_, c, _, by), sc)| {
                let content = target.content?;
                let new = apply_to(content, &line_edits(target.hunk_ref, &c.edits));
                // It must not break the file (a grammar's reading, where one reads the file).
                let before = outline_before
                    .get_or_insert_with(|| crate::syntax::outline(target.path, language, content))
                    .as_ref();
                if let (Some(before), Some(after)) = (before, crate::syntax::outline(target.path, language, &new))
                    && crate::syntax::breaks(before, &after).is_some()
                {
                    return None;
                }
                // A path that is not a safe repository-relative path gets no suggestion.
                let diff = crate::apply::patch(&[crate::apply::FileEdit {
                    path: target.path.to_string(),
                    old: content.as_bytes().to_vec(),
                    new: new.into_bytes(),
                }])
                .ok()?;
                Some((
                    sc.pair_logit,
                    Suggestion {
                        file: target.file,
                        hunk: target.hunk,
                        edits: c.edits.clone(),
                        probability: c.probability,
                        risk: OldNew {
                            old: target.risk,
                            new: sc.risk,
                        },
                        diff,
                        by: *by,
                    },
                ))
            })
            .collect();
        // The history's first, then the language model's; then, with a pair path, the
        // generator's probability weighed with how much the edit reads like a fix; else the
        // least risky; then the generator's own probability.
        let rank = |pair: f32, s: &Suggestion| s.probability.max(1e-9).ln() - PAIR_RANK_WEIGHT * pair;
        mine.sort_by(|(pa, a), (pb, b)| {
            let by_pair = match (pa, pb) {
                (Some(x), Some(y)) => rank(*y, b).total_cmp(&rank(*x, a)),
                _ => std::cmp::Ordering::Equal,
            };
            let order = |by: Author| match by {
                Author::History => 0,
                Author::LanguageModel => 1,
                Author::Embedded => 2,
            };
            order(a.by)
                .cmp(&order(b.by))
                .then(by_pair)
                .then(a.risk.new.total_cmp(&b.risk.new))
                .then(b.probability.total_cmp(&a.probability))
        });
        mine.truncate(s.per_hunk);
        out.extend(mine.into_iter().map(|(_, s)| s));
    }
    Ok(out)
}

/// The targets of a review: every scored hunk, with its file's content.
pub fn targets<'a>(
    files: &'a [FileDiff],
    scores: &[Vec<HunkScore>],
    contents: &'a [Option<String>],
) -> Vec<Target<'a>> {
    let mut out = Vec::new();
    for (f, file) in files.iter().enumerate() {
        for (h, hunk) in file.hunks.iter().enumerate() {
            let Some(score) = scores.get(f).and_then(|s| s.get(h)) else {
                continue;
            };
            out.push(Target {
                file: f,
                hunk: h,
                path: file.display_path(),
                hunk_ref: hunk,
                risk: score.risk,
                pair_logit: score.pair_logit,
                content: contents.get(f).and_then(|c| c.as_deref()),
                names: contents.get(f).and_then(|c| c.as_deref()),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests;
