//! Bug/fix pairs: can the risk model tell a buggy hunk from the fix that replaced it?
//!
//! Every hunk of a fix commit (`fix: true`) that removes code lines and adds code lines
//! gives a pair of hunks with the same context: the *buggy* version (the fix's old side,
//! its removed lines shown as added lines) and the *fixed* version (the fix's new side, its
//! added lines as added lines). Each is scored as `review` would score a change made of
//! that one hunk, through the same [`Scorer`]; the model is right on a pair when the buggy
//! version scores riskier (a tie counts half). Hunks whose changed lines on either side are
//! only blank lines, lone punctuation, comments or licence headers give no pair, nor do
//! changes of whitespace only, test files and documentation or data files: none of them is
//! a bug and its fix (many fixes also bump a copyright year, which would teach "the newer
//! year is the fix"). Pairs are split like their commits (by date within each project, see
//! `data::split_of`). `eval-pairs` reports them; `train --pairs-weight` learns from the
//! training split's. With a language model, [`read_pairs`] and [`with_lm`] add how often the
//! buggy version's added lines are the more surprising to it (`assist::read`). Does not read
//! git.

use super::data::{Dataset, Split};
use super::edits::{FixHunk, load_fixes, view_of};
use crate::assist::read::{MAX_ADDED_LINES, Surprisal, surprisal_within};
use crate::diff::{Hunk, LineKind, is_code_language, is_cosmetic, is_licence, is_test_path, language_of};
use crate::lm::{LanguageModel, LmError};
use crate::model::{ScoreInput, Scorer};
use crate::tokenize::ChangeStats;
use anyhow::Result;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// One hunk of a bug fix as two versions that share their context lines.
#[derive(Debug, Clone)]
pub struct FixPair {
    pub project: String,
    pub commit: String,
    pub split: Split,
    pub path: String,
    /// The fix's old side, the lines the fix removed shown as added lines.
    pub buggy: Hunk,
    /// The fix's new side, the lines the fix added as added lines.
    pub fixed: Hunk,
}

impl FixPair {
    /// The change each version is scored as: that one hunk, in one file (what `review`
    /// would compute for a commit made of it).
    pub fn change(hunk: &Hunk) -> ChangeStats {
        ChangeStats {
            hunks: 1,
            added: hunk.added(),
            files: 1,
        }
    }

    /// Both versions have as many added lines.
    pub fn same_length(&self) -> bool {
        self.buggy.added() == self.fixed.added()
    }
}

/// The fix's new side: its context lines, and its added lines as added lines.
fn fixed_of(fix: &Hunk) -> Hunk {
    let mut body = String::new();
    for l in fix.lines.iter().filter(|l| l.kind != LineKind::Removed) {
        body.push(if l.kind == LineKind::Added { '+' } else { ' ' });
        body.push_str(&l.text);
        body.push('\n');
    }
    let context = fix.lines.iter().filter(|l| l.kind == LineKind::Context).count();
    let header = format!(
        "@@ -{},{context} +{},{} @@",
        fix.start.new, fix.start.new, fix.count.new
    );
    Hunk::parse(&header, &body).expect("a new side rebuilt from a parsed hunk parses")
}

/// A line that could be (part of) a bug: not blank, punctuation, a comment or a licence line.
fn is_code(text: &str, language: Option<&str>) -> bool {
    !is_cosmetic(text, language) && !is_licence(text)
}

/// The pair a fix hunk of the file at `path` gives, or `None` when it is no bug and its fix
/// (see the module's comment).
pub fn pair_of(fix: &Hunk, path: &str) -> Option<(Hunk, Hunk)> {
    let language = language_of(path);
    if !language.is_some_and(is_code_language) || is_test_path(path) {
        return None;
    }
    let side = |kind: LineKind| -> Vec<&str> {
        fix.lines
            .iter()
            .filter(|l| l.kind == kind)
            .map(|l| l.text.as_str())
            .collect()
    };
    let (old, new) = (side(LineKind::Removed), side(LineKind::Added));
    let code = |lines: &[&str]| lines.iter().any(|t| is_code(t, language));
    if !code(&old) || !code(&new) {
        return None;
    }
    let squeeze = |lines: &[&str]| -> String {
        lines
            .iter()
            .flat_map(|t| t.chars())
            .filter(|c| !c.is_whitespace())
            .collect()
    };
    if squeeze(&old) == squeeze(&new) {
        return None;
    }
    Some((view_of(fix).0, fixed_of(fix)))
}

/// The pairs of fix hunks (see [`pair_of`]).
pub fn pairs_of(fixes: &[FixHunk]) -> Vec<FixPair> {
    fixes
        .iter()
        .filter_map(|f| {
            let (buggy, fixed) = pair_of(&f.fix, &f.path)?;
            Some(FixPair {
                project: f.project.clone(),
                commit: f.commit.clone(),
                split: f.split,
                path: f.path.clone(),
                buggy,
                fixed,
            })
        })
        .collect()
}

/// Reads the fix pairs of commit files (plain or .gz), split by date within each project.
pub fn load_pairs(paths: &[impl AsRef<Path>]) -> Result<Vec<FixPair>> {
    Ok(pairs_of(&load_fixes(paths)?))
}

/// The pairs of one split (`All`: every pair).
pub fn in_split(pairs: &[FixPair], split: Split) -> Vec<&FixPair> {
    pairs.iter().filter(|p| Dataset::in_split(p.split, split)).collect()
}

/// Pair accuracy on some pairs, the model's and the added-lines baseline's.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PairAccuracy {
    pub n: usize,
    pub n_same_length: usize,
    /// Share of pairs where the buggy version scores riskier (ties count half).
    pub pair_accuracy: f64,
    /// The same on the pairs whose versions have as many added lines.
    pub pair_accuracy_same_length: f64,
    /// The baseline that scores a hunk by its number of added lines.
    pub baseline_pair_accuracy: f64,
    /// Always 0.5: on pairs of the same length the baseline ties every pair.
    pub baseline_pair_accuracy_same_length: f64,
    /// The share of pairs the model's pair path (`model::wide::PairPath`, what ranks
    /// suggestions) puts the buggy version above (ties count half), when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pair_path_accuracy: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pair_path_accuracy_same_length: Option<f64>,
    /// The language model's, when one read the pairs.
    #[serde(flatten)]
    pub lm: Option<LmPairAccuracy>,
}

/// How a language model ranks pairs: by the surprisal of each version's added lines (mean
/// negative log-likelihood per token, `assist::read::surprisal`); it is right on a pair when
/// the buggy version is the more surprising (a tie counts half).
#[derive(Debug, Clone, Default, Serialize)]
pub struct LmPairAccuracy {
    /// Pairs it read (both versions fit its context).
    pub lm_pairs: usize,
    pub lm_pairs_same_length: usize,
    pub lm_pair_accuracy: f64,
    pub lm_pair_accuracy_same_length: f64,
    /// Mean surprisal (nats per token) of the buggy versions, and of the fixed ones.
    pub lm_mean_surprisal_buggy: f64,
    pub lm_mean_surprisal_fixed: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PairReport {
    pub split: String,
    #[serde(flatten)]
    pub all: PairAccuracy,
    /// The same per project, by name.
    pub projects: BTreeMap<String, PairAccuracy>,
    /// The language model that read the pairs (its `describe()`), if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language_model: Option<String>,
    /// Pairs it could not read: a version longer than its context.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lm_skipped: Option<usize>,
    /// Added lines it read of each version, at most (`assist::read::MAX_ADDED_LINES`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lm_max_added_lines: Option<usize>,
}

/// A pair's (buggy, fixed) surprisal; `None` when a version does not fit the model's context.
pub type PairSurprisal = Option<(Surprisal, Surprisal)>;

/// 1 when `buggy` is above `fixed`, 0.5 on a tie, 0 below.
fn credit(buggy: f64, fixed: f64) -> f64 {
    match buggy.partial_cmp(&fixed) {
        Some(std::cmp::Ordering::Greater) => 1.0,
        Some(std::cmp::Ordering::Equal) => 0.5,
        _ => 0.0,
    }
}

/// A pair's (buggy, fixed) risks, and pair-path logits when the model has a pair path.
type PairScores = ((f32, f32), Option<(f32, f32)>);

/// Accuracy over pairs given each pair's scores, beside `pairs`.
fn accuracy(pairs: &[&FixPair], scores: &[PairScores]) -> PairAccuracy {
    let (mut model, mut model_same, mut base, mut n_same) = (0.0, 0.0, 0.0, 0usize);
    let (mut path, mut path_same, mut has_path) = (0.0, 0.0, !scores.is_empty());
    for (p, &((b, f), logits)) in pairs.iter().zip(scores) {
        let c = credit(b as f64, f as f64);
        let cp = logits.map_or(0.0, |(b, f)| credit(b as f64, f as f64));
        has_path &= logits.is_some();
        model += c;
        path += cp;
        base += credit(p.buggy.added() as f64, p.fixed.added() as f64);
        if p.same_length() {
            n_same += 1;
            model_same += c;
            path_same += cp;
        }
    }
    let share = |x: f64, n: usize| if n == 0 { 0.0 } else { x / n as f64 };
    PairAccuracy {
        n: pairs.len(),
        n_same_length: n_same,
        pair_accuracy: share(model, pairs.len()),
        pair_accuracy_same_length: share(model_same, n_same),
        baseline_pair_accuracy: share(base, pairs.len()),
        baseline_pair_accuracy_same_length: if n_same == 0 { 0.0 } else { 0.5 },
        pair_path_accuracy: has_path.then(|| share(path, pairs.len())),
        pair_path_accuracy_same_length: has_path.then(|| share(path_same, n_same)),
        lm: None,
    }
}

/// Scores both versions of every pair with `scorer` and reports pair accuracy, overall and
/// per project.
pub fn evaluate_pairs(pairs: &[&FixPair], scorer: &dyn Scorer, split: Split) -> Result<PairReport> {
    let bar = super::progress(pairs.len() as u64, "eval-pairs");
    let mut risks = Vec::with_capacity(pairs.len());
    for chunk in pairs.chunks(512) {
        let inputs: Vec<ScoreInput> = chunk
            .iter()
            .flat_map(|p| [&p.buggy, &p.fixed].map(|h| (p, h)))
            .map(|(p, h)| ScoreInput {
                path: &p.path,
                hunk: h,
                change: FixPair::change(h),
            })
            .collect();
        let scores = scorer.score(&inputs)?;
        if scores.len() != inputs.len() {
            anyhow::bail!(
                "{} returned {} scores for {} hunks",
                scorer.describe(),
                scores.len(),
                inputs.len()
            );
        }
        risks.extend(
            scores
                .chunks(2)
                .map(|s| ((s[0].risk, s[1].risk), s[0].pair_logit.zip(s[1].pair_logit))),
        );
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok(PairReport {
        split: format!("{split:?}").to_lowercase(),
        all: accuracy(pairs, &risks),
        projects: by_project(pairs)
            .into_iter()
            .map(|(name, at)| {
                let ps: Vec<&FixPair> = at.iter().map(|&i| pairs[i]).collect();
                let rs: Vec<PairScores> = at.iter().map(|&i| risks[i]).collect();
                (name.to_string(), accuracy(&ps, &rs))
            })
            .collect(),
        language_model: None,
        lm_skipped: None,
        lm_max_added_lines: None,
    })
}

/// Each project's pairs, by their positions in `pairs`.
fn by_project<'a>(pairs: &[&'a FixPair]) -> BTreeMap<&'a str, Vec<usize>> {
    let mut by_project: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, p) in pairs.iter().enumerate() {
        by_project.entry(&p.project).or_default().push(i);
    }
    by_project
}

/// Both versions of every pair read by `lm` (the first `assist::read::MAX_ADDED_LINES` added
/// lines of each), in order, with a progress bar on a terminal.
/// A version longer than the model's context gives `None`; any other failure is an error.
pub fn read_pairs(pairs: &[&FixPair], lm: &mut dyn LanguageModel) -> Result<Vec<PairSurprisal>> {
    let bar = super::progress(pairs.len() as u64, "reading pairs");
    let mut out = Vec::with_capacity(pairs.len());
    for p in pairs {
        let mut read = |h: &Hunk| match surprisal_within(lm, &p.path, h, MAX_ADDED_LINES) {
            Ok(s) => Ok(s),
            Err(LmError::TooLong { .. }) => Ok(None),
            Err(e) => Err(anyhow::Error::new(e).context(format!(
                "reading a version of the fix {} of {} in {}",
                p.commit, p.path, p.project
            ))),
        };
        let buggy = read(&p.buggy)?;
        let fixed = match buggy {
            Some(_) => read(&p.fixed)?,
            None => None,
        };
        out.push(buggy.zip(fixed));
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(out)
}

/// The language model's pair accuracy on the pairs it read.
fn lm_accuracy(pairs: &[&FixPair], read: &[PairSurprisal]) -> LmPairAccuracy {
    let mut a = LmPairAccuracy::default();
    let (mut right, mut right_same, mut buggy, mut fixed) = (0.0, 0.0, 0.0, 0.0);
    for (p, r) in pairs.iter().zip(read) {
        let Some((b, f)) = r else { continue };
        let c = credit(f64::from(b.mean), f64::from(f.mean));
        a.lm_pairs += 1;
        right += c;
        buggy += f64::from(b.mean);
        fixed += f64::from(f.mean);
        if p.same_length() {
            a.lm_pairs_same_length += 1;
            right_same += c;
        }
    }
    let share = |x: f64, n: usize| if n == 0 { 0.0 } else { x / n as f64 };
    a.lm_pair_accuracy = share(right, a.lm_pairs);
    a.lm_pair_accuracy_same_length = share(right_same, a.lm_pairs_same_length);
    a.lm_mean_surprisal_buggy = share(buggy, a.lm_pairs);
    a.lm_mean_surprisal_fixed = share(fixed, a.lm_pairs);
    a
}

/// `report` (of `pairs`) with the language model's pair accuracy added, overall and per
/// project, from what [`read_pairs`] gave for the same pairs.
pub fn with_lm(mut report: PairReport, pairs: &[&FixPair], read: &[PairSurprisal], model: String) -> PairReport {
    report.all.lm = Some(lm_accuracy(pairs, read));
    for (name, at) in by_project(pairs) {
        if let Some(a) = report.projects.get_mut(name) {
            let ps: Vec<&FixPair> = at.iter().map(|&i| pairs[i]).collect();
            let rs: Vec<PairSurprisal> = at.iter().map(|&i| read[i]).collect();
            a.lm = Some(lm_accuracy(&ps, &rs));
        }
    }
    report.lm_skipped = Some(read.iter().filter(|r| r.is_none()).count());
    report.language_model = Some(model);
    report.lm_max_added_lines = Some(MAX_ADDED_LINES);
    report
}

/// A sample of at most `limit` pairs, the same on every run (see `data::stable_sample`).
pub fn sample(pairs: Vec<&FixPair>, limit: Option<usize>) -> Vec<&FixPair> {
    super::data::stable_sample(pairs, limit, |p| {
        let at = format!("{} {}", p.fixed.start.new, p.fixed.count.new);
        super::data::stable_hash(&[&p.project, &p.commit, &p.path, &at])
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::HunkScore;

    fn hunk(header: &str, body: &str) -> Hunk {
        Hunk::parse(header, body).unwrap()
    }

    fn texts(h: &Hunk, kind: LineKind) -> Vec<&str> {
        h.lines
            .iter()
            .filter(|l| l.kind == kind)
            .map(|l| l.text.as_str())
            .collect()
    }

    #[test]
    fn a_fix_gives_two_versions_with_the_same_context() {
        let fix = hunk(
            "@@ -10,3 +10,4 @@",
            " fn f(a: &[u8]) -> u8 {\n-    a[a.len()]\n+    let n = a.len();\n+    a[n - 1]\n }\n",
        );
        let (buggy, fixed) = pair_of(&fix, "src/lib.rs").expect("a code fix gives a pair");
        assert_eq!(texts(&buggy, LineKind::Added), vec!["    a[a.len()]"]);
        assert_eq!(
            texts(&fixed, LineKind::Added),
            vec!["    let n = a.len();", "    a[n - 1]"]
        );
        assert_eq!(texts(&buggy, LineKind::Context), texts(&fixed, LineKind::Context));
        assert_eq!(texts(&buggy, LineKind::Context), vec!["fn f(a: &[u8]) -> u8 {", "}"]);
        assert_eq!(
            buggy.removed() + fixed.removed(),
            0,
            "both versions are shown as added lines"
        );
        assert_eq!((buggy.count.new, fixed.count.new), (3, 4));
    }

    #[test]
    fn cosmetic_licence_and_whitespace_changes_give_no_pair() {
        let no_pair = |body: &str, path: &str| pair_of(&hunk("@@ -1,3 +1,3 @@", body), path).is_none();
        // A copyright year bumped in a header comment, and one outside any comment syntax.
        assert!(no_pair(" /*\n- * Copyright 2019 A\n+ * Copyright 2020 A\n */\n", "a.c"));
        assert!(no_pair(
            " \"\"\"\n-Copyright 2019 A\n+Copyright 2020 A\n \"\"\"\n",
            "a.py"
        ));
        assert!(no_pair(" x = 1\n-# old note\n+# new note\n y = 2\n", "a.py"));
        assert!(no_pair(" x();\n-}\n+};\n", "a.js"));
        assert!(no_pair(" a\n-x=1;\n+x = 1;\n", "a.c"), "whitespace only");
        // Code on one side only: a comment replaced by code is no buggy/fixed pair.
        assert!(no_pair(" a\n-// todo\n+check(x);\n", "a.c"));
        // Not code under review: tests and documentation.
        assert!(no_pair(" a\n-x = 1\n+x = 2\n", "tests/test_a.py"));
        assert!(no_pair(" a\n-x = 1\n+x = 2\n", "README.md"));
        // A header change beside a code change still gives a pair.
        assert!(!no_pair(
            "-# Copyright 2019\n+# Copyright 2020\n-x = 1\n+x = 2\n",
            "a.py"
        ));
    }

    /// Scores a hunk by how many of its added lines contain `bad`.
    struct Counter;
    impl Scorer for Counter {
        fn describe(&self) -> String {
            "counter".into()
        }
        fn score(&self, inputs: &[ScoreInput]) -> anyhow::Result<Vec<HunkScore>> {
            Ok(inputs
                .iter()
                .map(|i| {
                    let n = i
                        .hunk
                        .lines
                        .iter()
                        .filter(|l| l.kind == LineKind::Added && l.text.contains("bad"))
                        .count();
                    HunkScore {
                        risk: n as f32,
                        logit: n as f32,
                        line_weights: vec![0.0; i.hunk.lines.len()],
                        pair_logit: None,
                    }
                })
                .collect())
        }
        fn change_risk(&self, _: &[HunkScore]) -> anyhow::Result<f32> {
            Ok(0.0)
        }
    }

    #[test]
    fn accuracy_counts_ties_half_and_the_baseline_counts_lines() {
        let fix = |body: &str| FixHunk {
            project: "p".into(),
            commit: "c".into(),
            split: Split::Test,
            path: "a.c".into(),
            fix: hunk("@@ -1,3 +1,3 @@", body),
            view: hunk("@@ -1 +1 @@", "+x"),
            target: vec![],
            small: true,
            old_path: "a.c".into(),
            file: None,
        };
        let fixes = vec![
            // Right, same length.
            fix(" a\n-bad();\n+good();\n"),
            // A tie, the fixed version longer.
            fix(" a\n-f();\n+g();\n+h();\n"),
            // Wrong, the buggy version longer.
            fix(" a\n-f();\n-g();\n+bad();\n"),
        ];
        let pairs = pairs_of(&fixes);
        assert_eq!(pairs.len(), 3);
        let refs: Vec<&FixPair> = pairs.iter().collect();
        let r = evaluate_pairs(&refs, &Counter, Split::Test).unwrap();
        assert_eq!((r.all.n, r.all.n_same_length), (3, 1));
        assert!((r.all.pair_accuracy - 1.5 / 3.0).abs() < 1e-12, "{:?}", r.all);
        assert_eq!(r.all.pair_accuracy_same_length, 1.0);
        // Added lines: a tie, fixed longer (wrong), buggy longer (right).
        assert!((r.all.baseline_pair_accuracy - 1.5 / 3.0).abs() < 1e-12);
        assert_eq!(r.projects["p"].n, 3);
    }
}
