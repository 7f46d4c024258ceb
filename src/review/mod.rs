//! Scores -> findings and a verdict. Pure: no I/O, no model, no git.
//!
//! P(clean) = 1 - the change's risk from the scorer (see `config::ChangeCombiner`).
//! LGTM when P(clean) >= lgtm, REJECT when P(clean) < reject, NEEDS WORK otherwise.
//! Where the repository's own history ranks the change ([`HistoryRank`]), a REJECT also needs
//! the change to be riskier than `reject_rank`% of those commits, else it is NEEDS WORK
//! ([`Review::temper`]): risk levels differ between projects, and a gate that blocks a
//! project's ordinary work gets uninstalled.
//! A change with files left unreviewed for size is never LGTM (it becomes NEEDS WORK).
//! A change with nothing to review is LGTM with P(clean) = 1. Added lines holding
//! bidirectional-override characters are reported as warnings ("trojan source").

use crate::cli::FailOn;
use crate::diff::{FileDiff, Hunk, LineKind};
use crate::history::calibration::Calibration;
use crate::model::HunkScore;
pub use crate::reason::{Reason, ReasonKind};
use crate::syntax::{FileSyntax, Kind, Role};
use serde::Serialize;

/// The verdict thresholds when nothing sets them: LGTM at P(clean) >= 0.95, REJECT below 0.60.
pub const DEFAULT_LGTM: f64 = 0.95;
pub const DEFAULT_REJECT: f64 = 0.60;
/// A REJECT needs the change to be riskier than this share (percent) of the repository's
/// recent commits, when they could be ranked (0: the probability alone decides).
pub const DEFAULT_REJECT_RANK: f64 = 90.0;
/// How many recent commits a change is ranked against.
pub const HISTORY: usize = 1000;
/// Fewer commits than this give no rank: a percentile of a handful says nothing.
pub const MIN_HISTORY: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Thresholds {
    pub lgtm: f64,
    pub reject: f64,
    pub reject_rank: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Lgtm,
    NeedsWork,
    Reject,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Lgtm => "LGTM",
            Verdict::NeedsWork => "NEEDS WORK",
            Verdict::Reject => "REJECT",
        }
    }
}

/// A line that carries invisible bidirectional-override characters.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Warning {
    pub path: String,
    pub line: Option<u32>,
    pub message: String,
}

#[derive(Debug, Clone)]
pub struct Review {
    pub files: Vec<FileDiff>,
    /// `scores[f][h]` for file `f`, hunk `h`; empty for skipped files.
    pub scores: Vec<Vec<HunkScore>>,
    /// P(clean), at the confident end of its credible interval when the repository's
    /// calibration has one (see `history::calibration`).
    pub p_clean: f64,
    /// The other end of that interval (equal to `p_clean` without a fitted calibration).
    pub p_clean_high: f64,
    pub verdict: Verdict,
    pub thresholds: Thresholds,
    pub unreviewed: usize,
    pub warnings: Vec<Warning>,
    pub model: Option<String>,
    /// Verified suggestions, best first within each hunk (see `suggest/`); empty until suggested.
    pub suggestions: Vec<crate::suggest::Suggestion>,
    /// The generator that made them.
    pub generator: Option<String>,
    /// `(file, hunk)` of the hunks dismissed with `deepspark dismiss` (scored as no risk).
    pub dismissed: Vec<(usize, usize)>,
    /// Where the change's risk stands among the repository's recent commits (scored by
    /// `commands::history`, or stored by `deepspark learn`); `None` when too few were there.
    pub history: Option<HistoryRank>,
    /// P(clean) was below the REJECT threshold, but the change is not among the riskiest
    /// `reject_rank`% of the repository's history: NEEDS WORK instead ([`Review::temper`]).
    pub tempered: bool,
    /// What a language model added (`--lm`): model output, already sanitised, never part of
    /// the verdict.
    pub assist: Assisted,
    /// Each file's role and each hunk's kind (`syntax::read`); empty when not read.
    pub syntax: Vec<FileSyntax>,
    /// The model's change risk over the production hunks (see [`production_scores`]);
    /// `None` when the change has none: then its risk is the calibration's `quiet` rate.
    pub production_risk: Option<f32>,
    /// The calibration that turned `production_risk` into `p_clean`.
    pub calibration: CalibrationInForce,
    /// Why the verdict is what it is, for the change as a whole ([`Review::explain`]).
    pub reasons: Vec<Reason>,
    /// Why a hunk is pointed at: `(file, hunk)` and a fact about it.
    pub hunk_reasons: Vec<((usize, usize), Reason)>,
    /// `(file, hunk)` of the production hunks that add back a line a bug fix of this
    /// repository removed from the same file (`history::similar`): never LGTM.
    pub readded: Vec<(usize, usize)>,
}

/// The calibration a review used, and the sentence that names it in reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CalibrationInForce {
    /// `repository` when fitted on this repository's history, else `default`.
    pub source: &'static str,
    pub text: String,
    #[serde(flatten)]
    pub fit: Calibration,
}

impl Default for CalibrationInForce {
    fn default() -> Self {
        CalibrationInForce {
            source: "default",
            text: "the embedded model's calibration (pooled training projects)".into(),
            fit: Calibration::DEFAULT,
        }
    }
}

/// The language model's part of a review (see `assist/`); empty without `--lm`.
#[derive(Debug, Clone, Default)]
pub struct Assisted {
    pub comments: Vec<crate::assist::HunkComment>,
    pub explanation: Option<crate::assist::Explanation>,
    /// The REJECT note the model wrote for this change (the template is used otherwise).
    pub reject_note: Option<String>,
    /// `(file, hunk, surprisal)` of the hunks the model read.
    pub surprisal: Vec<(usize, usize, crate::assist::read::Surprisal)>,
    pub report: Option<crate::assist::LmReport>,
}

impl Assisted {
    pub fn comment_for(&self, file: usize, hunk: usize) -> Option<&crate::assist::HunkComment> {
        self.comments.iter().find(|c| c.file == file && c.hunk == hunk)
    }

    pub fn explanation_for(&self, file: usize) -> Option<&str> {
        let e = self.explanation.as_ref()?;
        e.files.iter().find(|f| f.file == file).map(|f| f.text.as_str())
    }

    /// ` Language model on line N: text` for a finding's message, or nothing.
    pub fn comment_suffix(&self, (file, hunk): (usize, usize)) -> String {
        self.comment_for(file, hunk)
            .map(|c| format!(" Language model on line {}: {}", c.line, c.text))
            .unwrap_or_default()
    }

    pub fn surprisal_for(&self, file: usize, hunk: usize) -> Option<crate::assist::read::Surprisal> {
        self.surprisal
            .iter()
            .find(|(f, h, _)| *f == file && *h == hunk)
            .map(|(_, _, s)| *s)
    }
}

/// "Riskier than `percentile`% of this repository's last `commits` commits."
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct HistoryRank {
    pub percentile: f64,
    pub commits: usize,
}

impl HistoryRank {
    /// The share of `history` (change risks of past commits) strictly below `risk`.
    pub fn of(risk: f64, history: &[f32]) -> Option<HistoryRank> {
        if history.is_empty() {
            return None;
        }
        let below = history.iter().filter(|&&h| (h as f64) < risk).count();
        Some(HistoryRank {
            percentile: 100.0 * below as f64 / history.len() as f64,
            commits: history.len(),
        })
    }

    pub fn sentence(&self) -> String {
        format!(
            "riskier than {:.0}% of this repository's last {} commits",
            self.percentile, self.commits
        )
    }
}

/// A hunk worth pointing at in CI output (risk at or above the reporting threshold).
pub struct Finding<'a> {
    /// Indices of the file in the review and of the hunk in that file.
    pub index: (usize, usize),
    pub file: &'a FileDiff,
    pub hunk: &'a Hunk,
    pub score: &'a HunkScore,
}

impl Finding<'_> {
    /// First and last line on the new side (at least 1: a pure deletion points at the
    /// line before it), for annotations.
    pub fn lines(&self) -> (u32, u32) {
        let start = if self.hunk.count.new == 0 {
            self.hunk.start.new.saturating_sub(1)
        } else {
            self.hunk.start.new
        };
        let start = start.max(1);
        (start, (start + self.hunk.count.new.max(1) - 1).max(start))
    }
}

impl Review {
    /// Whether something forbids an LGTM whatever the probability: files left unreviewed
    /// for size, a syntax error the change brings (`syntax::SyntaxError`), or a line added
    /// back that a bug fix had removed (`history::similar`: more than half of such hunks
    /// were later fixed again).
    pub fn no_lgtm(&self) -> bool {
        self.unreviewed > 0 || self.syntax.iter().any(|s| s.error.is_some()) || !self.readded.is_empty()
    }

    /// Sets the hunks that add back a line a bug fix removed, and decides the verdict again.
    pub fn set_readded(&mut self, readded: Vec<(usize, usize)>) {
        self.readded = readded;
        if self.verdict == Verdict::Lgtm && self.no_lgtm() {
            self.verdict = Verdict::NeedsWork;
        }
    }

    /// Sets the syntax stage's reading and decides the verdict again with it.
    pub fn set_syntax(&mut self, syntax: Vec<crate::syntax::FileSyntax>) {
        self.syntax = syntax;
        if self.verdict == Verdict::Lgtm && self.no_lgtm() {
            self.verdict = Verdict::NeedsWork;
        }
    }

    /// The function, method or class hunk `hunk` of file `file` sits in, when a grammar says.
    pub fn context_of(&self, file: usize, hunk: usize) -> Option<&crate::syntax::Context> {
        self.syntax.get(file)?.contexts.get(hunk)?.as_ref()
    }

    /// The suggestions for one hunk, best first.
    pub fn suggestions_for(&self, file: usize, hunk: usize) -> impl Iterator<Item = &crate::suggest::Suggestion> {
        self.suggestions
            .iter()
            .filter(move |s| s.file == file && s.hunk == hunk)
    }

    /// Hunks with risk >= `min_risk`, riskiest first.
    pub fn findings(&self, min_risk: f32) -> Vec<Finding<'_>> {
        let mut out: Vec<Finding> = self
            .files
            .iter()
            .zip(&self.scores)
            .enumerate()
            .flat_map(|(fi, (f, s))| {
                f.hunks.iter().zip(s).enumerate().map(move |(hi, (h, sc))| Finding {
                    index: (fi, hi),
                    file: f,
                    hunk: h,
                    score: sc,
                })
            })
            .filter(|f| f.score.risk >= min_risk && !self.dismissed.contains(&f.index))
            // Tests, comments and reformats carry no risk: they are not pointed at.
            .filter(|f| self.syntax.get(f.index.0).is_none_or(|s| s.is_production(f.index.1)))
            .collect();
        out.sort_by(|a, b| b.score.risk.total_cmp(&a.score.risk));
        out
    }
}

pub fn judge(
    files: Vec<FileDiff>,
    scores: Vec<Vec<HunkScore>>,
    change_risk: f64,
    t: Thresholds,
    model: Option<String>,
) -> Review {
    let unreviewed = files
        .iter()
        .filter(|f| f.skip.as_ref().is_some_and(|s| s.is_unreviewed()))
        .count();
    let p_clean = (1.0 - change_risk).clamp(0.0, 1.0);
    let verdict = verdict_of(p_clean, p_clean, t, unreviewed > 0);
    let mut warnings = Vec::new();
    for f in &files {
        for h in &f.hunks {
            for l in h
                .lines
                .iter()
                .filter(|l| l.kind == LineKind::Added && l.text.chars().any(crate::chars::is_bidi))
            {
                warnings.push(Warning {
                    path: f.display_path().to_string(),
                    line: l.lineno.new,
                    message: "bidirectional-override character: the code may read differently from how it runs".into(),
                });
            }
        }
    }
    Review {
        files,
        scores,
        p_clean,
        p_clean_high: p_clean,
        verdict,
        thresholds: t,
        unreviewed,
        warnings,
        model,
        suggestions: Vec::new(),
        generator: None,
        dismissed: Vec::new(),
        history: None,
        tempered: false,
        assist: Assisted::default(),
        syntax: Vec::new(),
        production_risk: None,
        calibration: CalibrationInForce::default(),
        reasons: Vec::new(),
        hunk_reasons: Vec::new(),
        readded: Vec::new(),
    }
}

/// The verdict of a P(clean); `no_lgtm` (files left unreviewed for size, a syntax error
/// the change brings) forbids an LGTM. `p_clean` is the confident (lower) end,
/// `p_clean_high` the upper end of P(clean): LGTM needs the lower end at the line, REJECT
/// the upper end below its line.
fn verdict_of(p_clean: f64, p_clean_high: f64, t: Thresholds, no_lgtm: bool) -> Verdict {
    if p_clean >= t.lgtm && !no_lgtm {
        Verdict::Lgtm
    } else if p_clean_high < t.reject {
        Verdict::Reject
    } else {
        Verdict::NeedsWork
    }
}

/// The scores of the production hunks (`syntax::FileSyntax::is_production`) that were not
/// dismissed: the only ones that carry a change's risk. Tests, comments, reformats,
/// documentation and build files are reported, not scored into the verdict.
pub fn production_scores(
    syntax: &[FileSyntax],
    scores: &[Vec<HunkScore>],
    dismissed: &[(usize, usize)],
) -> Vec<HunkScore> {
    scores
        .iter()
        .enumerate()
        .flat_map(|(f, s)| s.iter().enumerate().map(move |(h, sc)| ((f, h), sc)))
        .filter(|(at, _)| syntax.get(at.0).is_some_and(|fs| fs.is_production(at.1)) && !dismissed.contains(at))
        .map(|(_, sc)| sc.clone())
        .collect()
}

impl Review {
    /// Sets the history rank and applies it to the verdict: a REJECT by probability stays a
    /// REJECT only when the change is riskier than `thresholds.reject_rank`% of the
    /// repository's recent commits; otherwise it is NEEDS WORK, and `tempered` says why.
    pub fn temper(&mut self, history: Option<HistoryRank>) {
        self.history = history;
        if self.verdict == Verdict::Reject && !keeps_reject(history, self.thresholds) {
            self.verdict = Verdict::NeedsWork;
            self.tempered = true;
        }
    }

    /// The sentence a report gives for a tempered REJECT.
    pub fn tempered_sentence(&self) -> Option<String> {
        let h = self.history.filter(|_| self.tempered)?;
        Some(format!(
            "P(clean) {:.1}% is below the REJECT line ({:.0}%), but this change is riskier than only {:.0}% of this \
             repository's last {} commits, and REJECT is kept for the riskiest {:.0}% of them (--reject-rank)",
            100.0 * self.p_clean,
            100.0 * self.thresholds.reject,
            h.percentile,
            h.commits,
            100.0 - self.thresholds.reject_rank
        ))
    }
}

impl Review {
    /// Turns the production risk into this repository's P(clean) with `calibration` and
    /// decides the verdict again (before [`Review::temper`]). A change with nothing scored
    /// keeps P(clean) 1.
    pub fn calibrate(&mut self, calibration: CalibrationInForce) {
        if self.scores.iter().any(|s| !s.is_empty()) {
            let (low, high) = calibration.fit.risk_range(self.production_risk);
            self.p_clean = (1.0 - high).clamp(0.0, 1.0);
            self.p_clean_high = (1.0 - low).clamp(0.0, 1.0);
            self.verdict = verdict_of(self.p_clean, self.p_clean_high, self.thresholds, self.no_lgtm());
        }
        self.calibration = calibration;
    }

    /// Gathers the reasons for the verdict: what kind of code changed (always), the
    /// model's rank and the change's size among the repository's commits (`memory`), the
    /// history's facts about each production hunk's file and function, and the rules' warnings.
    pub fn explain(&mut self, memory: &Memory) {
        let mut reasons = vec![self.kinds_reason()];
        let mut hunk_reasons = Vec::new();
        for (fi, fs) in self.syntax.iter().enumerate() {
            let Some(e) = &fs.error else { continue };
            let reason = Reason {
                kind: ReasonKind::Syntax,
                text: format!(
                    "{}:{}: the change does not parse ({}) where the old code did, so it cannot be LGTM",
                    self.files[fi].display_path(),
                    e.line,
                    e.what
                ),
                evidence: Vec::new(),
            };
            hunk_reasons.push(((fi, e.hunk), reason.clone()));
            reasons.push(reason);
        }
        if let (Some(h), Some(_)) = (self.history, self.production_risk) {
            reasons.push(Reason {
                kind: ReasonKind::Model,
                text: format!(
                    "the risk model scores its production code above {:.0}% of this repository's last {} commits",
                    h.percentile, h.commits
                ),
                evidence: Vec::new(),
            });
        }
        let hunks: usize = self.files.iter().map(|f| f.hunks.len()).sum();
        let files = self.files.iter().filter(|f| !f.hunks.is_empty()).count();
        if memory.sizes.len() >= MIN_HISTORY {
            let below = memory.sizes.iter().filter(|&&n| (n as usize) < hunks).count();
            let share = 100.0 * below as f64 / memory.sizes.len() as f64;
            if share >= 90.0 {
                reasons.push(Reason {
                    kind: ReasonKind::Size,
                    text: format!(
                        "larger than {share:.0}% of this repository's last {} commits: {hunks} hunks in {files} files",
                        memory.sizes.len()
                    ),
                    evidence: Vec::new(),
                });
            }
        }
        if self.unreviewed > 0 {
            reasons.push(Reason {
                kind: ReasonKind::Change,
                text: format!(
                    "{} file(s) were not reviewed (over the size limits), so it cannot be LGTM",
                    self.unreviewed
                ),
                evidence: Vec::new(),
            });
        }
        for w in &self.warnings {
            reasons.push(Reason {
                kind: ReasonKind::Rule,
                text: format!("{}:{}: {}", w.path, w.line.unwrap_or(0), w.message),
                evidence: Vec::new(),
            });
        }
        let subjects: std::collections::HashMap<&str, &str> = memory
            .fixes
            .iter()
            .map(|f| (f.id.as_str(), f.subject.as_str()))
            .collect();
        for (fi, f) in self.files.iter().enumerate() {
            let Some(fs) = self.syntax.get(fi) else { continue };
            // Every production hunk, whatever its own score: what the history says of the
            // code it changes is a fact about the change (reports show it where they show the hunk).
            let pointed: Vec<usize> = (0..f.hunks.len())
                .filter(|&hi| fs.is_production(hi) && !self.dismissed.contains(&(fi, hi)))
                .collect();
            if pointed.is_empty() {
                continue;
            }
            let path = f.path.old.as_deref().unwrap_or(f.display_path());
            for &hi in &pointed {
                let Some(c) = self.context_of(fi, hi) else { continue };
                let fixed = &memory.functions_fixed;
                if let Some(r) =
                    crate::history::facts::function_reason(&memory.fixes, fixed, path, c.kind, &c.name, memory.now)
                {
                    hunk_reasons.push(((fi, hi), r));
                }
            }
            for (at, w) in memory
                .written
                .iter()
                .filter(|(at, _)| at.0 == fi && pointed.contains(&at.1))
            {
                if let Some(r) = crate::history::facts::written_reason(w, &memory.fixes, memory.now) {
                    hunk_reasons.push((*at, r));
                }
            }
            for ((_, hi), r) in memory
                .readded
                .iter()
                .filter(|(at, _)| at.0 == fi && pointed.contains(&at.1))
            {
                let reason = crate::history::similar::reason(r, &f.hunks[*hi], &subjects, memory.now);
                hunk_reasons.push(((fi, *hi), reason));
            }
            // The file's fact once, on its first production hunk: repeated under each hunk it
            // buried the facts about functions and lines.
            if let Some(r) = crate::history::facts::file_reason(&memory.fixes, path, memory.now) {
                hunk_reasons.push(((fi, pointed[0]), r));
            }
        }
        for c in &self.assist.comments {
            hunk_reasons.push((
                (c.file, c.hunk),
                Reason {
                    kind: ReasonKind::LanguageModel,
                    text: format!("language model, line {}: {}", c.line, c.text),
                    evidence: Vec::new(),
                },
            ));
        }
        self.reasons = reasons;
        self.hunk_reasons = hunk_reasons;
    }

    /// "production code: 3 hunks in 2 files; tests: 1 hunk", or "tests and comments only".
    fn kinds_reason(&self) -> Reason {
        let (mut code, mut code_files, mut test, mut comments, mut reformat, mut other) = (0, 0, 0, 0, 0, 0);
        for fs in &self.syntax {
            let before = code;
            for (hi, k) in fs.hunks.iter().enumerate() {
                match (fs.role, k) {
                    _ if fs.is_production(hi) => code += 1,
                    (Role::Docs | Role::Build | Role::Generated, _) => other += 1,
                    (_, Kind::Test) | (Role::Test, _) => test += 1,
                    (_, Kind::Comments) => comments += 1,
                    (_, Kind::Reformat) => reformat += 1,
                    (_, Kind::Code) => other += 1,
                }
            }
            code_files += usize::from(code > before);
        }
        let n = |k: usize, what: &str| format!("{what}: {k} hunk{}", if k == 1 { "" } else { "s" });
        // Each other kind: its count, its name in a list of counts, its name in "... only".
        let others = [
            (test, "tests", "tests"),
            (comments, "comments only", "comments"),
            (reformat, "reformat only", "reformatting"),
            (other, "docs, build or config files", "docs, build or config files"),
        ];
        let present = others.iter().filter(|(k, _, _)| *k > 0);
        let text = if code > 0 {
            let files = format!("in {code_files} file{}", if code_files == 1 { "" } else { "s" });
            std::iter::once(format!("{} {files}", n(code, "production code")))
                .chain(present.map(|(k, counted, _)| n(*k, counted)))
                .collect::<Vec<_>>()
                .join("; ")
        } else {
            let only: Vec<&str> = present.map(|(_, _, only)| *only).collect();
            if only.is_empty() {
                "no production code changed".to_string()
            } else {
                format!("no production code changed: {} only", only.join(" and "))
            }
        };
        Reason {
            kind: ReasonKind::Change,
            text,
            evidence: Vec::new(),
        }
    }

    /// ` Why: fact; fact.` for a finding's message (language-model comments aside), or nothing.
    pub fn why_suffix(&self, (file, hunk): (usize, usize)) -> String {
        let facts: Vec<&str> = self
            .reasons_for(file, hunk)
            .filter(|r| r.kind != ReasonKind::LanguageModel)
            .map(|r| r.text.as_str())
            .collect();
        if facts.is_empty() {
            String::new()
        } else {
            format!(" Why: {}.", facts.join("; "))
        }
    }

    /// ` Why: fact; fact.` for the change, when it is not LGTM (or has no production code).
    pub fn change_why(&self) -> String {
        if self.reasons.is_empty() || (self.verdict == Verdict::Lgtm && self.production_risk.is_some()) {
            return String::new();
        }
        let facts: Vec<&str> = self.reasons.iter().map(|r| r.text.as_str()).collect();
        format!(" Why: {}.", facts.join("; "))
    }

    /// The reasons given for one hunk.
    pub fn reasons_for(&self, file: usize, hunk: usize) -> impl Iterator<Item = &Reason> {
        self.hunk_reasons
            .iter()
            .filter(move |(at, _)| *at == (file, hunk))
            .map(|(_, r)| r)
    }
}

/// What the repository's history offers a review's reasons (see `commands/history.rs`).
#[derive(Debug, Clone, Default)]
pub struct Memory {
    /// Hunk counts of the repository's recent commits.
    pub sizes: Vec<u32>,
    /// The bug fixes of its history.
    pub fixes: Vec<crate::history::facts::Fix>,
    /// "Now" for the facts: the date of the commit the history was read at.
    pub now: i64,
    /// The functions the fixes of the reviewed files changed (see `facts::function_reason`).
    pub functions_fixed: crate::history::facts::FunctionsFixed,
    /// Who wrote the lines each production hunk changes (see `facts::written_reason`).
    pub written: Vec<((usize, usize), crate::history::facts::Written)>,
    /// The fixes' hunks (see `history::similar`), and the date a fix must precede to be
    /// evidence about this change: its old side's commit time.
    pub fixed_hunks: Vec<crate::history::similar::FixedHunk>,
    pub before: i64,
    /// The production hunks that add back a line a fix removed, and which.
    pub readded: Vec<((usize, usize), crate::history::similar::Readded)>,
}

/// The verdict the gate gives a change of risk `risk` ranked against `history` (change risks
/// of the repository's recent commits; fewer than `min_history` give no rank): what `judge`
/// and [`Review::temper`] decide together, for measuring the gate on labelled data.
pub fn rejects(risk: f64, history: &[f32], min_history: usize, t: Thresholds) -> bool {
    let rank = HistoryRank::of(risk, history).filter(|h| h.commits >= min_history);
    1.0 - risk < t.reject && keeps_reject(rank, t)
}

/// Whether a REJECT by probability stands given the change's rank: no rank, or riskier
/// than `reject_rank`% of the history.
fn keeps_reject(rank: Option<HistoryRank>, t: Thresholds) -> bool {
    rank.is_none_or(|h| h.percentile >= t.reject_rank)
}

/// Whether this verdict makes deepspark exit 1.
pub fn gate_tripped(verdict: Verdict, fail_on: FailOn) -> bool {
    match fail_on {
        FailOn::Never => false,
        FailOn::Reject => verdict == Verdict::Reject,
        FailOn::NeedsWork => verdict != Verdict::Lgtm,
    }
}

/// FNV-1a, 64 bits: stable across versions and platforms (unlike std's hasher).
pub fn fingerprint(parts: &[&str]) -> String {
    fingerprint_bytes(&parts.iter().map(|p| p.as_bytes()).collect::<Vec<_>>())
}

/// [`fingerprint`] of byte strings (each followed by a zero byte).
pub fn fingerprint_bytes(parts: &[&[u8]]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for &b in p.iter().chain(std::iter::once(&0)) {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// A hunk's identity across reviews and history: its path and added lines (not its line
/// numbers, which move). SARIF's `partialFingerprints`, JSON's `fingerprint`, and what
/// `deepspark dismiss` records.
pub fn hunk_fingerprint(path: &str, hunk: &Hunk) -> String {
    let mut parts: Vec<&str> = vec![path];
    parts.extend(
        hunk.lines
            .iter()
            .filter(|l| l.kind == LineKind::Added)
            .map(|l| l.text.as_str()),
    );
    fingerprint(&parts)
}

/// The score of a hunk someone dismissed (`deepspark dismiss`): no risk, no finding, and no
/// weight in the change's verdict.
pub fn dismissed_score(n_lines: usize) -> HunkScore {
    HunkScore {
        risk: 0.0,
        logit: DISMISSED_LOGIT,
        line_weights: vec![0.0; n_lines],
        pair_logit: None,
    }
}

/// A logit whose risk rounds to zero yet stays finite (non-finite logits are errors).
pub const DISMISSED_LOGIT: f32 = -30.0;

#[cfg(test)]
mod tests;
