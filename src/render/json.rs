//! The JSON report: one stable document, `schema_version` 1, on stdout. Documented in
//! README.md ("JSON output"). Strings are JSON-escaped, not terminal-sanitised.

use crate::cli::FailOn;
use crate::diff::{FileStatus, LineKind, Skip};
use crate::review::{CalibrationInForce, Reason, Review, Thresholds, Warning, gate_tripped};
use crate::syntax::{Kind, Role};
use serde::Serialize;

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Serialize)]
struct Doc<'a> {
    schema_version: u32,
    tool: Tool,
    model: Option<&'a str>,
    generator: Option<&'a str>,
    sides: &'a crate::diff::OldNew<String>,
    verdict: &'static str,
    /// P(clean) at the confident end of its interval (LGTM needs it at the line).
    p_clean: f64,
    /// The interval's other end (REJECT needs it below its line); equal without a fit.
    p_clean_high: f64,
    /// Where the change's risk stands among the repository's recent commits (at least
    /// `history::MIN_HISTORY` of them).
    history: Option<crate::review::HistoryRank>,
    /// P(clean) was below `thresholds.reject`, but the change is not riskier than
    /// `thresholds.reject_rank`% of that history: NEEDS WORK instead of REJECT.
    reject_tempered: bool,
    thresholds: Thresholds,
    /// The calibration that gave `p_clean`: this repository's (`source: "repository"`) or
    /// the embedded model's (`"default"`, with the reason in `text`).
    calibration: &'a CalibrationInForce,
    /// Why the verdict is what it is, for the change as a whole.
    reasons: &'a [Reason],
    fail_on: FailOn,
    gate_tripped: bool,
    summary: Summary,
    warnings: &'a [Warning],
    /// What the change does, as the language model reads it (`--explain`); model output.
    explanation: Option<&'a crate::assist::Explanation>,
    /// The REJECT note the language model wrote; model output.
    reject_note: Option<&'a str>,
    /// What the language model did and did not reach (`--lm`).
    lm: Option<&'a crate::assist::LmReport>,
    files: Vec<File<'a>>,
}

#[derive(Serialize)]
struct CommentOut<'a> {
    line: u32,
    text: &'a str,
}

#[derive(Serialize)]
struct Tool {
    name: &'static str,
    version: &'static str,
}

#[derive(Serialize)]
struct Summary {
    files: usize,
    reviewed_files: usize,
    skipped_files: usize,
    not_reviewed_files: usize,
    hunks: usize,
}

#[derive(Serialize)]
struct File<'a> {
    path: &'a str,
    old_path: Option<&'a str>,
    status: FileStatus,
    language: Option<&'static str>,
    /// `source`, `test`, `docs`, `build` or `generated` (see `syntax.rs`).
    role: Option<Role>,
    /// How the kinds were read: `parsed`, or why not (`no grammar`, ...).
    syntax: &'static str,
    skipped: Option<&'a Skip>,
    /// What the change to this file does (language model, `--explain`).
    explanation: Option<&'a str>,
    hunks: Vec<HunkOut<'a>>,
}

#[derive(Serialize)]
struct HunkOut<'a> {
    header: String,
    old_start: u32,
    old_lines: u32,
    new_start: u32,
    new_lines: u32,
    risk: f32,
    /// `code`, `test`, `comments` or `reformat`: only `code` of a `source` file carries risk.
    kind: Option<Kind>,
    /// The enclosing function, method or class, when a grammar says (see `syntax/`).
    context: Option<&'a crate::syntax::Context>,
    /// Facts about this hunk (history, syntax, rules, a language model's comment).
    reasons: Vec<&'a Reason>,
    /// The hunk's identity across reviews (SARIF's `partialFingerprints`): what `deepspark dismiss` takes.
    fingerprint: String,
    /// Dismissed with `deepspark dismiss`: scored as no risk.
    dismissed: bool,
    /// New-side line numbers of the added lines that drive the score most (up to 3).
    hot_lines: Vec<u32>,
    /// The language model's comment on what may be wrong (`--lm`); model output.
    comment: Option<CommentOut<'a>>,
    /// Mean negative log-likelihood per token of the added lines under the language model.
    surprisal: Option<crate::assist::read::Surprisal>,
    lines: Vec<LineOut<'a>>,
    /// Verified suggestions for this hunk, best first.
    suggestions: Vec<SuggestionOut<'a>>,
}

#[derive(Serialize)]
struct SuggestionOut<'a> {
    risk_before: f32,
    risk_after: f32,
    /// The generator's probability that this is the fix (1 for the language model's).
    probability: f32,
    /// `embedded` (the generator) or `language-model` (model output).
    by: crate::suggest::Author,
    /// The suggestion as a patch in `git diff` format (`git apply` accepts it).
    diff: &'a str,
    /// The new-side line numbers it rewrites (`text`) or deletes (`text: null`).
    edits: Vec<EditOut<'a>>,
}

#[derive(Serialize)]
struct EditOut<'a> {
    line: Option<u32>,
    text: Option<&'a str>,
}

#[derive(Serialize)]
struct LineOut<'a> {
    kind: LineKind,
    old: Option<u32>,
    new: Option<u32>,
    text: &'a str,
}

/// Indices of the added lines with the largest positive attribution (up to `n`).
pub fn hot_lines(lines: &[crate::diff::Line], weights: &[f32], n: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].kind == LineKind::Added && weights.get(i).is_some_and(|&w| w > 0.0))
        .collect();
    idx.sort_by(|&a, &b| weights[b].total_cmp(&weights[a]));
    idx.truncate(n);
    idx.sort();
    idx
}

pub fn write(
    r: &Review,
    sides: &crate::diff::OldNew<String>,
    fail_on: FailOn,
    out: &mut impl std::io::Write,
) -> std::io::Result<()> {
    let files: Vec<File> = r
        .files
        .iter()
        .zip(&r.scores)
        .enumerate()
        .map(|(fi, (f, scores))| File {
            path: f.display_path(),
            old_path: f
                .path
                .old
                .as_deref()
                .filter(|o| Some(*o) != f.path.new.as_deref() && f.path.new.is_some()),
            status: f.status,
            language: f.language,
            role: r.syntax.get(fi).map(|s| s.role),
            syntax: r.syntax.get(fi).map_or("no text", |s| s.parse.label()),
            skipped: f.skip.as_ref(),
            explanation: r.assist.explanation_for(fi),
            hunks: f
                .hunks
                .iter()
                .zip(scores)
                .enumerate()
                .map(|(hi, (h, s))| HunkOut {
                    header: h.header(),
                    old_start: h.start.old,
                    old_lines: h.count.old,
                    new_start: h.start.new,
                    new_lines: h.count.new,
                    risk: s.risk,
                    kind: r.syntax.get(fi).and_then(|s| s.hunks.get(hi).copied()),
                    context: r
                        .syntax
                        .get(fi)
                        .and_then(|s| s.contexts.get(hi))
                        .and_then(|c| c.as_ref()),
                    reasons: r.reasons_for(fi, hi).collect(),
                    fingerprint: crate::review::hunk_fingerprint(f.display_path(), h),
                    dismissed: r.dismissed.contains(&(fi, hi)),
                    hot_lines: hot_lines(&h.lines, &s.line_weights, 3)
                        .into_iter()
                        .filter_map(|i| h.lines[i].lineno.new)
                        .collect(),
                    comment: r.assist.comment_for(fi, hi).map(|c| CommentOut {
                        line: c.line,
                        text: &c.text,
                    }),
                    surprisal: r.assist.surprisal_for(fi, hi),
                    lines: h
                        .lines
                        .iter()
                        .map(|l| LineOut {
                            kind: l.kind,
                            old: l.lineno.old,
                            new: l.lineno.new,
                            text: &l.text,
                        })
                        .collect(),
                    suggestions: r
                        .suggestions_for(fi, hi)
                        .map(|sg| SuggestionOut {
                            risk_before: sg.risk.old,
                            risk_after: sg.risk.new,
                            probability: sg.probability,
                            by: sg.by,
                            diff: &sg.diff,
                            edits: sg
                                .edits
                                .iter()
                                .map(|e| EditOut {
                                    line: h.lines.get(e.line).and_then(|l| l.lineno.new),
                                    text: e.new.as_deref(),
                                })
                                .collect(),
                        })
                        .collect(),
                })
                .collect(),
        })
        .collect();
    let doc = Doc {
        schema_version: SCHEMA_VERSION,
        tool: Tool {
            name: "deepspark",
            version: env!("CARGO_PKG_VERSION"),
        },
        model: r.model.as_deref(),
        generator: r.generator.as_deref(),
        sides,
        verdict: match r.verdict {
            crate::review::Verdict::Lgtm => "lgtm",
            crate::review::Verdict::NeedsWork => "needs-work",
            crate::review::Verdict::Reject => "reject",
        },
        p_clean: r.p_clean,
        p_clean_high: r.p_clean_high,
        history: r.history,
        reject_tempered: r.tempered,
        thresholds: r.thresholds,
        calibration: &r.calibration,
        reasons: &r.reasons,
        fail_on,
        gate_tripped: gate_tripped(r.verdict, fail_on),
        summary: Summary {
            files: r.files.len(),
            reviewed_files: r.files.iter().filter(|f| f.skip.is_none()).count(),
            skipped_files: r.files.iter().filter(|f| f.skip.is_some()).count(),
            not_reviewed_files: r.unreviewed,
            hunks: r.scores.iter().map(Vec::len).sum(),
        },
        warnings: &r.warnings,
        explanation: r.assist.explanation.as_ref(),
        reject_note: r.assist.reject_note.as_deref(),
        lm: r.assist.report.as_ref(),
        files,
    };
    serde_json::to_writer_pretty(&mut *out, &doc)?;
    writeln!(out)
}
