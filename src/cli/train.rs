//! The arguments of the commands that make and measure risk models: `train`, `eval`,
//! `eval-suggest` and `eval-pairs` (on labelled data sets), and `mine` and `learn` (on this
//! repository's history), with `eval`'s `--after`/`--until` dates ([`When`]). The groups
//! they share with other commands (`--lm`, suggestions, `--repo` for fix files) are in
//! `args.rs`; the training itself is in `train/` and `commands/`.

use super::{FixFilesArgs, LmArgs, SuggestArgs};
use crate::model::device::DeviceChoice;
use crate::train::data::Split;
use clap::{Args, ValueEnum};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Labelled data: *.hunks.jsonl[.gz] and *.commits.jsonl[.gz] files (commits give the dates for the split).
    #[arg(long, required = true, num_args = 1.., value_name = "FILE")]
    pub data: Vec<PathBuf>,
    /// Output directory for config.json, model.safetensors, tokenizer.json and metrics.json.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Passes over the training split; the epoch with the best calibration AUC is kept.
    #[arg(long, default_value_t = 3)]
    pub epochs: usize,
    /// Seed for initial weights, data order and dropout: same seed, same model.
    #[arg(long, default_value_t = 17)]
    pub seed: u64,
    /// Where training runs.
    #[arg(long, value_enum, default_value = "auto")]
    pub device: DeviceChoice,
    /// Width of the transformer.
    #[arg(long, default_value_t = 64)]
    pub d_model: usize,
    /// Transformer layers.
    #[arg(long, default_value_t = 2)]
    pub layers: usize,
    /// Attention heads (must divide --d-model).
    #[arg(long, default_value_t = 4)]
    pub heads: usize,
    /// Width of each layer's feed-forward part.
    #[arg(long, default_value_t = 128)]
    pub d_ff: usize,
    /// Tokens per hunk the model sees.
    #[arg(long, default_value_t = 192)]
    pub max_len: usize,
    /// BPE vocabulary size.
    #[arg(long, default_value_t = 4096)]
    pub vocab: usize,
    /// Hunks per optimiser step.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Peak learning rate (linear warm-up, then cosine down to a tenth).
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// AdamW weight decay.
    #[arg(long, default_value_t = 0.05)]
    pub weight_decay: f64,
    /// Dropout on embeddings and residual branches.
    #[arg(long, default_value_t = 0.1)]
    pub dropout: f32,
    /// Leave this project (the `project` field) out of training entirely, to measure unseen code.
    #[arg(long, value_name = "PROJECT")]
    pub holdout: Vec<String>,
    /// Train on a random subset of at most this many hunks (a quick run).
    #[arg(long, value_name = "N")]
    pub max_train: Option<usize>,
    /// Continue from the checkpoint in --out.
    #[arg(long)]
    pub resume: bool,
    /// Save a checkpoint every this many steps.
    #[arg(long, default_value_t = 500)]
    pub checkpoint_every: usize,
    /// Give the model only the hunk's own size features, not the change's (hunks, added lines, files).
    #[arg(long)]
    pub hunk_features_only: bool,
    /// Add a bag-of-tokens path: one learned weight per token, beside the transformer.
    #[arg(long)]
    pub bag: bool,
    /// Leave the file name out of the model's input (the language stays).
    #[arg(long)]
    pub no_file_name: bool,
    /// Leave out the wide path (one weight per token present in the hunk, stacked with the
    /// transformer on the calibration split; see weights/MODEL_CARD.md).
    #[arg(long)]
    pub no_wide: bool,
    /// Passes of the wide path over the training split; the best on calibration is kept.
    #[arg(long, default_value_t = 8)]
    pub wide_epochs: usize,
    /// L2 penalty per squared wide-path weight, added to the mean log-loss.
    #[arg(long, default_value_t = 1e-3)]
    pub wide_l2: f64,
    /// Weight of a pairwise term in the wide path's loss: from the training split's bug fixes
    /// (commit records with `fix` and `diff`), each hunk's buggy version should score above
    /// its fix by --pairs-margin (the pairs `eval-pairs` measures); the stacking with the
    /// transformer on the calibration split then holds the same term over that split's pairs.
    /// 0 leaves both out.
    #[arg(long, default_value_t = 0.0, value_name = "W")]
    pub pairs_weight: f64,
    /// The margin of the pairwise term (in logits).
    #[arg(long, default_value_t = 1.0, value_name = "M")]
    pub pairs_margin: f64,
    /// Let the pairwise term move the size-feature weights too (by default it shapes only the
    /// token weights: fixes are longer than their bugs more often than not, so through the
    /// size weights it would fight the SZZ labels).
    #[arg(long)]
    pub pairs_size: bool,
    /// Also fit the pair path: token weights learned only from the training split's bug/fix
    /// pairs (each buggy version above its fix, no size features), which compare two versions
    /// of the same hunk. It never changes a risk; suggestions are ranked with it and
    /// `eval-pairs` measures it. Without it, a --base model's pair path is kept.
    #[arg(long)]
    pub pair_path: bool,
    /// More bug/fix pairs for the pair path only: commit files (the schema of --data, e.g. what
    /// `deepspark mine` writes for other repositories) whose every fix pair, whatever its date,
    /// joins the training pairs. They never reach the risk, its calibration or the
    /// calibration pairs that choose the pair path's epoch. Needs --pair-path.
    #[arg(long, value_name = "FILE", num_args = 1.., requires = "pair_path")]
    pub pair_data: Vec<PathBuf>,
    /// Passes of the pair path over the training pairs; the best calibration pair accuracy is kept.
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub pair_epochs: usize,
    /// L2 penalty per squared pair-path weight (0.3 was best on the calibration split and on
    /// projects held out of the fit; see weights/MODEL_CARD.md).
    #[arg(long, default_value_t = 0.3, value_name = "L2")]
    pub pair_l2: f64,
    /// How far above its fix the pair path wants a buggy version (in logits).
    #[arg(long, default_value_t = 1.0, value_name = "M")]
    pub pair_margin: f64,
    /// Give the pair path N hashed buckets per side for pairs of tokens next to each other on
    /// a line (`<` then `=`, `!` then a name), besides its single tokens; 0 for tokens alone.
    /// Each bucket is a weight per side in the model file (4 bytes × 3 sides).
    #[arg(long, default_value_t = 0, value_name = "N", requires = "pair_path",
          value_parser = clap::value_parser!(u32).range(0..=crate::model::config::MAX_PAIR_BIGRAMS as i64))]
    pub pair_bigrams: u32,
    /// Fit the wide path first and train the transformer on top of its logit (boosting),
    /// instead of fitting the wide path after the transformer.
    #[arg(long, conflicts_with_all = ["no_wide", "base"])]
    pub boost: bool,
    /// Keep the tokenizer and transformer of the model in DIR and fit only the wide path,
    /// the calibration and the change combiner (minutes instead of the transformer's half hour).
    /// The base's suggestion generator, if it has one, is kept as it is. The transformer's
    /// shape and training flags, and the generator's, are the base's, so they are refused here.
    #[arg(long, value_name = "DIR", conflicts_with_all = [
        "resume", "no_wide", "epochs", "d_model", "layers", "heads", "d_ff", "max_len", "vocab",
        "batch", "lr", "weight_decay", "dropout", "hunk_features_only", "bag", "no_file_name",
        "checkpoint_every", "generator_only", "generator_epochs", "repos",
    ])]
    pub base: Option<PathBuf>,
    /// With --base: start the wide path from the base's weights and penalise the distance to
    /// them (--wide-l2) instead of to zero, so a small dataset adapts the base rather than replacing it.
    #[arg(long, requires = "base")]
    pub wide_prior: bool,
    /// With --base: keep the base's wide path too, and refit only how it is stacked with the
    /// transformer, the calibration and the change combiner (the base's ranking, this data's probabilities).
    #[arg(long, requires = "base", conflicts_with = "wide_prior")]
    pub recalibrate: bool,
    /// Train only the suggestion generator (from the fix commits in --data) into --out.
    #[arg(long)]
    pub generator_only: bool,
    /// Passes of the suggestion generator's ranker; the best on the calibration fixes is kept.
    #[arg(long, default_value_t = 40)]
    pub generator_epochs: usize,
    #[command(flatten)]
    pub files: FixFilesArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EvalFormat {
    Text,
    Json,
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Labelled data in the same schema as for `train`.
    #[arg(long, required = true, num_args = 1.., value_name = "FILE")]
    pub data: Vec<PathBuf>,
    /// Model directory (default: the embedded model).
    #[arg(long, value_name = "DIR", env = "DEEPSPARK_MODEL")]
    pub model: Option<PathBuf>,
    /// Which split to score (default: test when commit dates are given, else all).
    #[arg(long, value_enum, conflicts_with = "after")]
    pub split: Option<Split>,
    /// Score the commits dated after WHEN instead of the newest 20% (the earlier ones are the
    /// history the gate ranks against): `learned` (when the --model was learned, from its
    /// learned.json), a date YYYY-MM-DD (UTC) or unix seconds. With the history `deepspark mine`
    /// labels at HEAD, this measures a model learned `--at` an older commit on what followed.
    #[arg(long, value_name = "WHEN", value_parser = when)]
    pub after: Option<When>,
    /// With --after: leave out the commits dated after this (same forms but `learned`), e.g.
    /// the last year of a mined history, whose clean commits `mine` leaves unlabelled.
    #[arg(long, value_name = "WHEN", value_parser = when, requires = "after")]
    pub until: Option<When>,
    /// Output format (JSON keys: n, auc, pr_auc, ece, brier, baseline_auc, auc_added, ...).
    #[arg(long, value_enum, default_value = "text")]
    pub format: EvalFormat,
    /// Also write every scored hunk to FILE as JSON lines (project, commit, file, label, added,
    /// logit, risk), for analysis elsewhere; the file must not exist yet.
    #[arg(long, value_name = "FILE")]
    pub scores: Option<PathBuf>,
    /// Where the models run.
    #[arg(long, value_enum, default_value = "auto")]
    pub device: DeviceChoice,
    /// With --lm: read at most N labelled hunks with at least one added line from each of the
    /// calibration and test splits for the stacking measurement (the same ones on every run);
    /// default: all of them, which takes hours on a CPU.
    #[arg(long, value_name = "N", requires = "lm")]
    pub limit: Option<usize>,
    /// A clone of a project the data comes from (repeatable): its bug fixes, found as `mine`
    /// finds them, give each calibration and test hunk whose commit it holds two history
    /// features (fixes of the hunk's file in the year before the commit, and all those read
    /// before it, from two years before the oldest measured commit), and the report measures whether stacking them with the model raises the test
    /// AUC (`history_stacking`). Without it the history features are not measured.
    #[arg(long = "repo", value_name = "DIR")]
    pub repos: Vec<PathBuf>,
    #[command(flatten)]
    pub lm: LmArgs,
}

/// A point in time for `eval --after`/`--until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// When the evaluated model was learned (`learned.json`'s `at_date`).
    Learned,
    /// Unix seconds.
    At(i64),
}

fn when(s: &str) -> Result<When, String> {
    if s == "learned" {
        return Ok(When::Learned);
    }
    if let Ok(t) = s.parse::<i64>() {
        return Ok(When::At(t));
    }
    let bad = || format!("{s:?} is not `learned`, a date YYYY-MM-DD or unix seconds");
    let parts: Vec<&str> = s.split('-').collect();
    let [y, m, d] = parts[..] else { return Err(bad()) };
    let (Ok(y), Ok(m), Ok(d)) = (y.parse::<i64>(), m.parse::<u32>(), d.parse::<u32>()) else {
        return Err(bad());
    };
    if y.to_string().len() != 4 || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    Ok(When::At(days_from_civil(y, m, d) * 86_400))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[derive(Args, Debug)]
#[command(
    after_help = "For each hunk of a bug fix (commits with `fix: true`) in the split, the generator sees \
the fix's old side, with the lines the fix removed shown as just added, and proposes rewrites exactly as \
`review` does (verified, re-scored, kept when they lower the risk by the margin, ranked by merge \
probability). A suggestion matches when it gives the fix's new side (whitespace-insensitive). Reported: \
n, rewritable (fixes that remove a line; the others only insert lines, which no rewrite can match), \
top1, top5, coverage (hunks with a suggestion), applies (shown suggestions whose patch applies and \
gives the intended text), risk_drop, the generator's own top1/top5 without the risk model, reachable \
(the fix is among all candidates), eligible (it is, and it lowers the risk by the margin: the most top1 \
can be) and first_deletes (first suggestions that only delete lines); then the same for single-hunk \
fixes with at most 5 changed lines (`small`)."
)]
pub struct EvalSuggestArgs {
    /// Commit records (*.commits.jsonl[.gz]) with `fix` and `diff` fields.
    #[arg(long, required = true, num_args = 1.., value_name = "FILE")]
    pub data: Vec<PathBuf>,
    /// Model directory (risk model, and generator.json + generator.safetensors if present;
    /// default: the embedded ones).
    #[arg(long, value_name = "DIR", env = "DEEPSPARK_MODEL")]
    pub model: Option<PathBuf>,
    /// Which split of the fixes to measure.
    #[arg(long, value_enum, default_value = "test")]
    pub split: Split,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: EvalFormat,
    /// Print this many example suggestions (the first shown ones), matched or not, from all
    /// fix hunks and as many from the small ones.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub examples: usize,
    #[command(flatten)]
    pub suggest: SuggestArgs,
    #[command(flatten)]
    pub files: FixFilesArgs,
    /// Where the model runs.
    #[arg(long, value_enum, default_value = "auto")]
    pub device: DeviceChoice,
    /// Also let a language model rewrite each fix hunk, ranked with the generator's candidates
    /// as in `review --lm`; only the small-fix set is measured then.
    #[command(flatten)]
    pub lm: LmArgs,
    /// Measure at most N fix hunks (the first N in the data's order).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
}

#[derive(Args, Debug)]
#[command(
    after_help = "Each hunk of a bug fix (commits with `fix: true`) that removes code lines and adds code \
lines gives a pair with the same context: the buggy version (the removed lines shown as added lines) and \
the fixed version (the added lines); each is scored as `review` scores a change made of that one hunk. \
Hunks whose changed lines on either side are only blank lines, punctuation, comments or licence headers \
give no pair, nor do whitespace-only changes, test files and documentation or data files. Reported (JSON \
keys): n, n_same_length, pair_accuracy (share of pairs where the buggy version scores riskier; ties count \
half), pair_accuracy_same_length (pairs whose versions have as many added lines), the same for the \
added-lines baseline (baseline_pair_accuracy, baseline_pair_accuracy_same_length), and each project's \
figures under `projects`. With --lm, a language model also reads both versions (the mean surprisal of \
the added lines after the path and the hunk's lines before them) and is right when the buggy version is \
the more surprising: lm_pairs, lm_pairs_same_length, lm_pair_accuracy, lm_pair_accuracy_same_length, \
lm_mean_surprisal_buggy and lm_mean_surprisal_fixed (nats per token), overall and per project; \
language_model names it and lm_skipped counts pairs longer than its context."
)]
pub struct EvalPairsArgs {
    /// Commit records (*.commits.jsonl[.gz]) with `fix` and `diff` fields.
    #[arg(long, required = true, num_args = 1.., value_name = "FILE")]
    pub data: Vec<PathBuf>,
    /// Model directory (default: the embedded model).
    #[arg(long, value_name = "DIR", env = "DEEPSPARK_MODEL")]
    pub model: Option<PathBuf>,
    /// Which split of the fixes to measure (by commit date within each project).
    #[arg(long, value_enum, default_value = "test")]
    pub split: Split,
    /// Measure at most N pairs of the split, the same ones on every run (a hashed sample,
    /// spread over projects and dates); for the risk model and the language model alike.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: EvalFormat,
    /// Where the models run.
    #[arg(long, value_enum, default_value = "auto")]
    pub device: DeviceChoice,
    #[command(flatten)]
    pub lm: LmArgs,
}

#[derive(Args, Debug)]
#[command(
    group = clap::ArgGroup::new("dest").required(true).args(["out", "jsonl"]),
    after_help = "SZZ: commits whose message marks a bug fix (keywords such as fix, bug, crash, regression; \
not typo, docs, lint, a named linter's or formatter's findings, a `style:` subject; `[mine] fix` and `not_fix` in .deepspark.toml replace the patterns), or that name a bug \
report of --bug-reports, have the code \
lines they remove blamed at their parent, ignoring whitespace and commits listed in .git-blame-ignore-revs; \
blank, brace-only and comment lines are not blamed. A blamed commit is buggy, and its hunks that added a \
blamed line get hunk_label 1 (its other hunks -1); other commits are clean (0), except those younger than \
the grace period before REV, which are left out. Merges and fixes touching more than 50 files are not \
blamed. Records (the schema of the training data): each commit record, then its hunk records (source \
files only: no tests, documentation, vendored or generated files), oldest commit first. \
`deepspark train --data FILE` reads the file as it is."
)]
pub struct MineArgs {
    /// Mine as if today were REV: only REV and its ancestors, the grace period counted from its date.
    #[arg(long, value_name = "REV", default_value = "HEAD")]
    pub at: String,
    /// Write the records to FILE (gzip when it ends in .gz), replacing it atomically.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Write the records to stdout, one JSON object per line.
    #[arg(long)]
    pub jsonl: bool,
    /// Repository to mine (default: the one containing the current directory; bare is fine).
    #[arg(short = 'C', long, value_name = "PATH")]
    pub repo: Option<PathBuf>,
    /// The `project` field of the records (default: owner/name from the origin remote, else the folder name).
    #[arg(long, value_name = "NAME")]
    pub project: Option<String>,
    /// Clean-looking commits younger than this many days before REV are not labelled [default: 365].
    #[arg(long, value_name = "DAYS")]
    pub grace_days: Option<u32>,
    #[command(flatten)]
    pub reports: BugReportsArg,
    /// Settings file (default: .deepspark.toml at the repository root, if present).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// `--bug-reports`, shared by `mine` and `learn`.
#[derive(Args, Debug, Default)]
pub struct BugReportsArg {
    /// An issue tracker's export naming bug reports: a commit naming one (`#12`, `GH-12`,
    /// `KAFKA-123`) is a fix; one naming only issues the export types as something else is
    /// not. GitHub: `gh issue list --label bug --state closed --limit 10000 --json
    /// number,title,closedAt > bugs.json`; JIRA: the CSV or JSON export with Issue key and
    /// Issue Type. [default: `[mine] bug_reports` in .deepspark.toml]
    #[arg(long, value_name = "FILE")]
    pub bug_reports: Option<PathBuf>,
}

#[derive(Args, Debug)]
#[command(
    after_help = "Mines the history as `deepspark mine` does, then fits two adaptations of the \
default model on its oldest 70% and calibrates them on the next 10%: `recalibrated` (only how the \
default's parts are weighed and calibrated) and `refit` (its wide token path refit, held near the \
default's weights). Of those whose Brier score on the newest 20% (never fitted on) is lower than \
the default's, with a hunk AUC at most 0.01 lower, the one with the lowest Brier score there is \
written; if neither is, nothing is. Every evaluation is printed. review, scan and the pre-push hook then use .deepspark/model \
(small: commit it to share it with the team and CI); `--model default` bypasses it.

EXIT CODES:
  0 a learned model was written, 1 it was refused (not better), 2 error (e.g. too little history)."
)]
pub struct LearnArgs {
    /// Learn as if today were REV: mine only REV and its ancestors (to measure on what follows).
    #[arg(long, value_name = "REV", default_value = "HEAD")]
    pub at: String,
    /// Where to write the model [default: .deepspark/model in the work tree].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Repository to learn from (default: the one containing the current directory).
    #[arg(short = 'C', long, value_name = "PATH")]
    pub repo: Option<PathBuf>,
    /// The model to adapt (default: the embedded model).
    #[arg(long, value_name = "DIR")]
    pub base: Option<PathBuf>,
    /// The `project` name in the mined records (default: from the origin remote, else the folder).
    #[arg(long, value_name = "NAME")]
    pub project: Option<String>,
    /// As `mine --grace-days` [default: 365].
    #[arg(long, value_name = "DAYS")]
    pub grace_days: Option<u32>,
    #[command(flatten)]
    pub reports: BugReportsArg,
    /// How strongly the refit wide path is held to the default's weights (L2 per squared difference).
    #[arg(long, default_value_t = 1e-3, value_name = "L2")]
    pub prior_l2: f64,
    /// Where fitting runs.
    #[arg(long, value_enum, default_value = "auto")]
    pub device: DeviceChoice,
    /// Settings file (default: .deepspark.toml at the repository root, if present).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::{When, when};

    #[test]
    fn eval_after_reads_dates_unix_seconds_and_learned() {
        assert_eq!(when("learned"), Ok(When::Learned));
        assert_eq!(when("1700000000"), Ok(When::At(1_700_000_000)));
        assert_eq!(when("1970-01-01"), Ok(When::At(0)));
        assert_eq!(when("2000-03-01"), Ok(When::At(951_868_800)));
        assert_eq!(when("2024-02-29"), Ok(When::At(1_709_164_800)));
        for bad in ["2024-13-01", "24-01-01", "yesterday", "2024-01", ""] {
            assert!(when(bad).is_err(), "{bad:?}");
        }
    }
}
