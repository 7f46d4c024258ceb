//! The arguments of the commands that read a change and report on it or patch it:
//! `review`, `fix`, `scan`, `score` and `dismiss`, with their output formats and the
//! language model's part in a review ([`AssistArgs`]). The groups they share with other
//! commands (the gate, suggestions, `--lm`) are in `args.rs`; what the commands do is in
//! `commands/`.

use super::{ColorChoice, GateArgs, LimitArgs, LmArgs, SuggestArgs, VerdictArgs, probability, seconds};
use crate::model::device::DeviceChoice;
use clap::{Args, ValueEnum};
use std::path::PathBuf;

#[derive(Args, Debug)]
#[command(after_long_help = "REVISIONS (as `git diff`):
  deepspark review                 uncommitted changes (index and work tree) vs HEAD
  deepspark review --staged        the index vs HEAD
  deepspark review REV             the work tree vs REV (e.g. HEAD~1: the last commit plus uncommitted changes)
  deepspark review --staged REV    the index vs REV
  deepspark review A B             tree A vs tree B
  deepspark review A..B            tree A vs tree B (same as `A B`; a missing side means HEAD)
  deepspark review A...B           merge-base of A and B vs B: what B adds since it forked from A
  deepspark review --commit REV    REV vs its first parent (a single commit, like `git show`)
A bare repository has no work tree: use the A..B or A...B forms there.
Merge commits are reviewed against their first parent.

VERDICT:
  P(clean) is 1 minus the change's risk, which the model computes from all reviewed hunks
  (worst hunk, mean hunk and number of hunks, combined by a logistic model fitted on held-out changes).
  LGTM when P(clean) >= --lgtm, REJECT when P(clean) < --reject, NEEDS WORK otherwise.
  Files not reviewed because of size limits make LGTM impossible.

EXIT CODES:
  0 no gate tripped, 1 the verdict reached --fail-on, 2 usage or runtime error.")]
pub struct ReviewArgs {
    /// Revisions, as `git diff` takes them (see below).
    #[arg(value_name = "REV")]
    pub revs: Vec<String>,
    /// Compare the index (staged changes) instead of the work tree.
    #[arg(long, visible_alias = "cached")]
    pub staged: bool,
    /// Review one commit against its first parent, like `git show REV`.
    #[arg(long, value_name = "REV", conflicts_with_all = ["revs", "staged"])]
    pub commit: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "terminal")]
    pub format: Format,
    /// When to colour the terminal report (NO_COLOR and TERM=dumb turn `auto` off).
    #[arg(long, value_enum, default_value = "auto")]
    pub color: ColorChoice,
    /// Repository to review (default: the one containing the current directory).
    #[arg(short = 'C', long, value_name = "PATH")]
    pub repo: Option<PathBuf>,
    /// In SARIF, GitHub and Markdown output, point at hunks with at least this risk [default: 0.3].
    #[arg(long, value_parser = probability)]
    pub min_risk: Option<f64>,
    #[command(flatten)]
    pub suggest: SuggestArgs,
    /// Apply the shown suggestions (the first of each hunk) to the work tree. Every file is
    /// checked first (unchanged since the review, a regular file inside the repository), then
    /// written atomically (temporary file, fsync, rename; mode kept). Only when the new side
    /// is the work tree (`review`, `review REV`).
    #[arg(long, help_heading = "Suggestions")]
    pub apply: bool,
    /// With --apply, also update the index (refused when the index differs from the work tree).
    #[arg(long, requires = "apply", help_heading = "Suggestions")]
    pub index: bool,
    /// Write the shown suggestions as one patch that `git apply` accepts (the file must not exist).
    #[arg(long, value_name = "FILE", help_heading = "Suggestions")]
    pub patch: Option<PathBuf>,
    #[command(flatten)]
    pub lm: LmArgs,
    #[command(flatten)]
    pub assist: AssistArgs,
    #[command(flatten)]
    pub gate: GateArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Coloured report for people.
    Terminal,
    /// One JSON document (schema in README.md).
    Json,
    /// SARIF 2.1.0 for code scanning.
    Sarif,
    /// GitHub Actions workflow commands (inline PR annotations).
    Github,
    /// A pull-request comment.
    Markdown,
}

/// What the language model does in a review (with `--lm`, or `lm` in .deepspark.toml).
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Language model")]
pub struct AssistArgs {
    /// With a language model: explain what the change does, per file and as a whole (terminal,
    /// JSON `explanation`, the opening of the Markdown comment).
    #[arg(long)]
    pub explain: bool,
    /// Seconds the language model may spend in this review (comments first, then suggestions,
    /// the explanation, the REJECT note, and reading the rest); what it did not reach is said
    /// [default: 120].
    #[arg(long, value_name = "SECONDS", value_parser = seconds)]
    pub lm_budget: Option<f64>,
    /// Hunks the language model comments on, riskiest first, among those at or above --min-risk
    /// [default: 8].
    #[arg(long, value_name = "N")]
    pub lm_comments: Option<usize>,
}

/// `deepspark fix`: a reported problem in words -> a verified patch.
#[derive(Args, Debug)]
#[command(
    after_long_help = "The patch is shown as a unified diff and written only with --apply (the work tree, checked \
first and written atomically, as `review --apply`) or --patch FILE. Exit 0 also when no verified patch was found \
(it says so); 2 on errors."
)]
pub struct FixArgs {
    /// The problem, as a user reported it; `@FILE` reads it from a file (`@-`: stdin).
    #[arg(long, value_name = "TEXT|@FILE")]
    pub issue: String,
    /// Files the fix may change (default: the repository's files the issue text names).
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Output format: the patch for people, or JSON with the patch and what was verified.
    #[arg(long, value_enum, default_value = "terminal")]
    pub format: FixFormat,
    /// Write the patch to the work tree (every file checked first, then written atomically).
    #[arg(long)]
    pub apply: bool,
    /// With --apply, also update the index (refused when the index differs from the work tree).
    #[arg(long, requires = "apply")]
    pub index: bool,
    /// Write the patch to FILE, for `git apply` (the file must not exist).
    #[arg(long, value_name = "FILE")]
    pub patch: Option<PathBuf>,
    /// Seconds the language model may take [default: 300].
    #[arg(long, value_name = "SECONDS", value_parser = seconds)]
    pub lm_budget: Option<f64>,
    /// When to colour the terminal output.
    #[arg(long, value_enum, default_value = "auto")]
    pub color: ColorChoice,
    /// Repository (default: the one containing the current directory).
    #[arg(short = 'C', long, value_name = "PATH")]
    pub repo: Option<PathBuf>,
    /// CPU or GPU for the language model.
    #[arg(long, value_enum, default_value = "auto")]
    pub device: crate::model::device::DeviceChoice,
    #[command(flatten)]
    pub lm: LmArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FixFormat {
    Terminal,
    Json,
}

#[derive(Args, Debug)]
#[command(
    after_help = "Each commit is compared with its first parent (merge commits too; a root commit with \
the empty tree), with the same skip rules, limits, model and thresholds as `review`. Exit code 1 when any \
scanned commit's verdict reaches --fail-on."
)]
pub struct ScanArgs {
    /// `REV` (REV and its ancestors) or `A..B` (commits of B not in A); newest first.
    #[arg(default_value = "HEAD", value_name = "RANGE")]
    pub range: String,
    /// Scan at most this many commits.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub max: usize,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: ScanFormat,
    /// Repository to scan (default: the one containing the current directory).
    #[arg(short = 'C', long, value_name = "PATH")]
    pub repo: Option<PathBuf>,
    #[command(flatten)]
    pub gate: GateArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScanFormat {
    /// One line per commit: short id, verdict, P(clean), hunks, subject.
    Text,
    /// One JSON object per line: commit, verdict, p_clean, hunks, max_hunk_risk, not_reviewed_files, subject.
    Json,
}

#[derive(Args, Debug)]
#[command(after_help = "INPUT: one JSON object per line, in the schema of the training data:
  hunk records    {\"file\", \"hunk_header\", \"hunk\", \"commit_id\", \"project\", ...}
  commit records  {\"diff\" (git show text), \"diff_truncated\", \"commit_id\", ...}
OUTPUT: each record as it came, in input order, with fields added:
  hunk records    risk, logit
  commit records  risk, logit (of the change), p_clean, verdict, hunks, max_hunk_risk
A line that cannot be scored becomes {\"line\": N, \"error\": \"...\"} and the stream goes on.
Hunk records of one commit that follow each other share its change features (hunks, added
lines, files), as in `eval`. Commit records follow `review`'s skip rules and thresholds.

EXIT CODES:
  0 every line was scored, 1 some lines became error records, 2 the run failed.")]
pub struct ScoreArgs {
    /// Read JSON lines on stdin, write JSON lines on stdout (the only mode, required so that
    /// other modes can come later without changing what this one means).
    #[arg(long, required = true)]
    pub jsonl: bool,
    /// Directory with config.json, model.safetensors and tokenizer.json (default: the embedded model).
    #[arg(long, value_name = "DIR", env = "DEEPSPARK_MODEL")]
    pub model: Option<PathBuf>,
    /// Where the model runs.
    #[arg(long, value_enum, default_value = "auto")]
    pub device: DeviceChoice,
    /// Commit records: the verdict's thresholds, as for `review`.
    #[command(flatten)]
    pub verdict: VerdictArgs,
    /// Commit records: what is skipped, as for `review`.
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Settings file (only when given: a stream filter reads no repository).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct DismissArgs {
    /// The finding's fingerprint: `fingerprint` of a hunk in `review --format json`, or its
    /// `partialFingerprints` value in SARIF (16 hex digits).
    pub fingerprint: String,
    /// Why it is not a problem (kept beside it in .deepspark/dismissed).
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// Take the dismissal back.
    #[arg(long, conflicts_with = "reason")]
    pub undo: bool,
    /// Repository (default: the one containing the current directory).
    #[arg(short = 'C', long, value_name = "PATH")]
    pub repo: Option<PathBuf>,
}
