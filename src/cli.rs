//! The command line, as clap structs only: what the user typed, nothing built from it.

use crate::lm::WeightFormat;
use crate::model::device::DeviceChoice;
use crate::train::data::Split;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "deepspark",
    version = env!("DEEPSPARK_VERSION"),
    long_version = include_str!(concat!(env!("OUT_DIR"), "/long_version.txt")),
    about = "A local, offline AI code reviewer for git.",
    long_about = "deepspark reads a change from git, scores every hunk's risk (the probability that it \
introduces a bug or needs rework) with a small model (a transformer stacked with a token path) that \
runs on this machine, and gives a verdict: LGTM, NEEDS WORK or REJECT. Nothing leaves the machine.",
    after_help = "Exit codes: 0 no gate tripped, 1 the gate tripped (see `review --fail-on`), 2 error."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Review a change: score every hunk and give a verdict.
    Review(ReviewArgs),
    /// Train a risk model on labelled changes (JSONL, plain or .gz).
    Train(TrainArgs),
    /// Measure a risk model on labelled changes: AUC, calibration, and a baseline.
    Eval(EvalArgs),
    /// Measure patch suggestions on held-out bug fixes: exact match of the human fix.
    EvalSuggest(EvalSuggestArgs),
    /// Measure whether a risk model rates real bugs riskier than their fixes (pair accuracy).
    EvalPairs(EvalPairsArgs),
    /// Fix a reported problem with the language model: a verified patch over the named files.
    Fix(FixArgs),
    /// Review each commit of a range (history triage), one line per commit.
    Scan(ScanArgs),
    /// Label this repository's history with SZZ: which commits a later bug fix implicates.
    Mine(MineArgs),
    /// Adapt the model to this repository's history (mine, refit, recalibrate) into .deepspark/model.
    Learn(LearnArgs),
    /// Record a finding as not a problem (by its fingerprint), so it is not raised again.
    Dismiss(DismissArgs),
    /// Score JSON records from stdin to stdout, one per line (a stream filter for Spark, GNU parallel, ...).
    Score(ScoreArgs),
    /// Install, remove or run deepspark's git pre-push hook.
    #[command(subcommand)]
    Hook(HookCommand),
    /// Find, fetch and try pretrained language models (GGUF; see `deepspark model --help`).
    #[command(subcommand)]
    Model(ModelCommand),
    /// Print a shell completion script to stdout (e.g. `deepspark completions bash > ~/.local/share/bash-completion/completions/deepspark`).
    Completions(CompletionsArgs),
    /// Print a man page (roff) to stdout (e.g. `deepspark man | man -l -`).
    Man(ManArgs),
}

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Args, Debug)]
pub struct ManArgs {
    /// A subcommand whose own page to print (e.g. `review`: deepspark-review(1)); default: deepspark(1).
    #[arg(value_name = "SUBCOMMAND")]
    pub subcommand: Option<String>,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailOn {
    /// Exit 1 only when the verdict is REJECT.
    Reject,
    /// Exit 1 when the verdict is NEEDS WORK or REJECT.
    NeedsWork,
    /// Always exit 0 unless deepspark itself fails.
    Never,
}

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

fn seconds(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(format!("{s:?} must be zero or more seconds"))
    }
}

/// How suggestions are made and shown.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Suggestions")]
pub struct SuggestArgs {
    /// Suggestions shown per risky hunk; 0 turns them off [default: 1].
    #[arg(long, value_name = "N")]
    pub suggestions: Option<usize>,
    /// Hunks with at least this risk get suggestions [default: 0.3].
    #[arg(long, value_parser = probability, value_name = "P")]
    pub suggest_above: Option<f64>,
    /// A suggestion is shown only when it lowers its hunk's risk by at least this much [default: 0.02].
    #[arg(long, value_parser = probability, value_name = "P")]
    pub suggest_margin: Option<f64>,
}

/// What decides a verdict: thresholds, the gate, what is skipped, and the model.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Verdict, limits and model")]
pub struct GateArgs {
    #[command(flatten)]
    pub verdict: VerdictArgs,
    /// Which verdict makes deepspark exit 1 [default: reject].
    #[arg(long, value_enum, env = "DEEPSPARK_FAIL_ON")]
    pub fail_on: Option<FailOn>,
    /// Lines of context around each change, like `git diff -U` [default: 3].
    #[arg(short = 'U', long, value_name = "N")]
    pub context: Option<u32>,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Directory with config.json, model.safetensors and tokenizer.json (default: the
    /// repository's .deepspark/model if `deepspark learn` wrote one, else the embedded model;
    /// `default` names the embedded model).
    #[arg(long, value_name = "DIR", env = "DEEPSPARK_MODEL")]
    pub model: Option<PathBuf>,
    /// Where the model runs.
    #[arg(long, value_enum, default_value = "auto")]
    pub device: DeviceChoice,
    /// Settings file (default: .deepspark.toml at the repository root, if present).
    /// Command-line flags and DEEPSPARK_* variables override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// The verdict's thresholds (review, scan, the hook, and `score`'s commit records).
#[derive(Args, Debug, Clone, Default)]
pub struct VerdictArgs {
    /// LGTM when P(clean) is at least this [default: 0.95].
    #[arg(long, value_parser = probability, env = "DEEPSPARK_LGTM")]
    pub lgtm: Option<f64>,
    /// REJECT when P(clean) is below this [default: 0.60].
    #[arg(long, value_parser = probability, env = "DEEPSPARK_REJECT")]
    pub reject: Option<f64>,
    /// REJECT also needs the change to be riskier than this percentage of the repository's
    /// recent commits, where there are enough to rank it; otherwise NEEDS WORK (0: the
    /// probability alone decides) [default: 90].
    #[arg(long, value_parser = percentage, value_name = "PCT", env = "DEEPSPARK_REJECT_RANK")]
    pub reject_rank: Option<f64>,
    /// How many of the repository's recent commits a change is ranked against (scored once,
    /// then cached in .git/deepspark/; 0: none) [default: 1000].
    #[arg(long, value_name = "N", env = "DEEPSPARK_HISTORY")]
    pub history: Option<usize>,
    /// Whose probability P(clean) is: `repository` fits it on this repository's own history
    /// at the first review (its fixes mined as `mine` does, cached in .git/deepspark/),
    /// falling back to the model's with a reason; `default` is the embedded model's, pooled
    /// over its training projects [default: repository].
    #[arg(long, value_enum, env = "DEEPSPARK_CALIBRATION")]
    pub calibration: Option<CalibrationChoice>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CalibrationChoice {
    /// Fitted on this repository's history.
    Repository,
    /// The embedded model's own.
    Default,
}

/// What is not sent to the model: size limits and skipped paths.
#[derive(Args, Debug, Clone, Default)]
pub struct LimitArgs {
    /// Files whose diff has more changed lines than this are listed as not reviewed [default: 5000].
    #[arg(long, value_name = "LINES")]
    pub max_file_lines: Option<usize>,
    /// Once the change has this many changed lines, the remaining files are not reviewed [default: 20000].
    #[arg(long, value_name = "LINES")]
    pub max_change_lines: Option<usize>,
    /// Extra path patterns to skip (`*` within a segment, `**/` any directories, trailing `/` a folder).
    #[arg(long = "skip", value_name = "GLOB")]
    pub skip: Vec<String>,
    /// Review generated, vendored and lock files too (skipped by default).
    #[arg(long)]
    pub no_default_skips: bool,
}

#[derive(Subcommand, Debug)]
pub enum HookCommand {
    /// Install deepspark as this repository's pre-push hook (an existing hook is kept and run first).
    Install {
        /// Rewrite deepspark's hook even if it is already installed.
        #[arg(long)]
        force: bool,
        /// Install into the folder named by core.hooksPath (refused by default: it may be shared).
        #[arg(long)]
        allow_hooks_path: bool,
    },
    /// Remove deepspark's pre-push hook and put back the hook it had chained, exactly.
    Uninstall,
    /// Say whether deepspark's hook is installed, and what it chains.
    Status,
    /// Run as a pre-push hook: `pre-push` reads git's ref lines on stdin (the installed hook
    /// calls it); `pre-commit` reads the pre-commit framework's PRE_COMMIT_FROM_REF and
    /// PRE_COMMIT_TO_REF (the entry in `.pre-commit-hooks.yaml`).
    Run(Box<HookRunArgs>),
}

#[derive(Args, Debug)]
pub struct HookRunArgs {
    /// Who calls: `pre-push` (git, refs on stdin) or `pre-commit` (the framework's
    /// pre-push stage, refs in its environment variables; nothing read from stdin).
    #[arg(value_parser = ["pre-push", "pre-commit"])]
    pub hook: String,
    /// The remote's name, as git passes it.
    pub remote: Option<String>,
    /// The remote's URL, as git passes it.
    pub url: Option<String>,
    /// Stop scoring after this many seconds and report the rest as not reviewed [default: 60].
    #[arg(long, value_name = "SECONDS")]
    pub budget: Option<u64>,
    /// When to colour the report (written to stderr, which git shows during a push).
    #[arg(long, value_enum, default_value = "auto")]
    pub color: ColorChoice,
    #[command(flatten)]
    pub gate: GateArgs,
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

fn probability(s: &str) -> Result<f64, String> {
    number_in(s, 1.0, "a probability in [0, 1]")
}

fn percentage(s: &str) -> Result<f64, String> {
    number_in(s, 100.0, "a percentage in [0, 100]")
}

/// A number from 0 to `max`, or an error saying it is not `what`.
fn number_in(s: &str, max: f64, what: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if (0.0..=max).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is not {what}"))
    }
}

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

/// Where the files of fix commits are read, for the names the suggestion generator may use.
#[derive(Args, Debug, Clone, Default)]
pub struct FixFilesArgs {
    /// A git repository holding the data's fix commits (repeatable; a clone of each project).
    /// The suggestion generator then also tries names from the rest of each fixed file, as it
    /// was before the fix, as `review` does with the reviewed file. Without it, only the names
    /// in the hunk itself (what the records hold).
    #[arg(long = "repo", value_name = "DIR")]
    pub repos: Vec<PathBuf>,
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
    #[command(flatten)]
    pub lm: LmArgs,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScanFormat {
    /// One line per commit: short id, verdict, P(clean), hunks, subject.
    Text,
    /// One JSON object per line: commit, verdict, p_clean, hunks, max_hunk_risk, not_reviewed_files, subject.
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
#[command(
    group = clap::ArgGroup::new("dest").required(true).args(["out", "jsonl"]),
    after_help = "SZZ: commits whose message marks a bug fix (keywords such as fix, bug, crash, regression; \
not typo, docs, lint; `[mine] fix` and `not_fix` in .deepspark.toml replace the patterns) have the code \
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
    /// Settings file (default: .deepspark.toml at the repository root, if present).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
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

/// Which language model to use: what `--lm` takes, for every command that runs one.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Language model")]
pub struct LmArgs {
    /// A language model: a .gguf path or a Hugging Face model folder (config.json,
    /// tokenizer.json, safetensors), `ollama:NAME[:TAG]` (Ollama's store, read in place) or a
    /// Hugging Face repository `ORG/NAME[@REVISION][:FILE.gguf]` holding GGUF files or
    /// safetensors (its cache, else a download). Llama-architecture (SmolLM2, Llama 3.x) and
    /// Qwen2 models. Default: none.
    #[arg(long, value_name = "SPEC")]
    pub lm: Option<String>,
    /// Never use the network to find a model (also HF_HUB_OFFLINE=1); a missing one is named
    /// with the command that fetches it.
    #[arg(long)]
    pub offline: bool,
    /// How the model's weights are held in memory: `auto` (as stored on x86-64 CPUs with AVX2,
    /// where deepspark's kernels run, and on GPUs; Q8_0 on other CPUs), `as-stored` (the file's
    /// own blocks), `q8_0` (requantised at load) or `f32` (4 bytes a weight).
    #[arg(long, value_enum, value_name = "FORMAT", default_value = "auto")]
    pub lm_weights: WeightFormat,
}

#[derive(Subcommand, Debug)]
#[command(after_long_help = "MODEL SPECS:
  path/to/model.gguf                 a GGUF file
  path/to/folder                     a Hugging Face model folder: config.json, tokenizer.json and
                                     model.safetensors (or its shards); F32, F16 and BF16 weights
  ollama:qwen2.5-coder:1.5b          Ollama's store ($OLLAMA_MODELS or ~/.ollama/models), read in place
  ORG/NAME[@REVISION][:FILE.gguf]    a Hugging Face repository holding GGUF files or a safetensors
                                     model: the hub cache ($HF_HUB_CACHE, $HF_HOME/hub or
                                     ~/.cache/huggingface/hub), else downloaded (builds with --features hub)")]
pub enum ModelCommand {
    /// List the models in the Hugging Face cache (GGUF files and safetensors models) and Ollama's
    /// store: spec, size, revision, path.
    List,
    /// Print the path of the GGUF file (or safetensors folder) a spec names (never downloads).
    Path {
        /// The model (see MODEL SPECS below).
        #[arg(value_name = "SPEC")]
        spec: String,
    },
    /// Download a Hugging Face model into the hub cache (builds with --features hub): the GGUF
    /// file named or the repository's only one, else its safetensors model; then print its path.
    Pull {
        /// `ORG/NAME[@REVISION][:FILE.gguf]`.
        #[arg(value_name = "SPEC")]
        spec: String,
    },
    /// Load a model and answer one prompt (greedy unless --temperature): the answer on stdout,
    /// prefill and decode speed on stderr.
    Run(ModelRunArgs),
    /// Score a text after a context: each token's log-probability (natural log) on stdout, then
    /// the mean surprisal (negative log-likelihood per token); timing on stderr.
    Score(ModelScoreArgs),
}

#[derive(Args, Debug)]
pub struct ModelScoreArgs {
    /// The model (see `deepspark model --help`).
    #[arg(value_name = "SPEC")]
    pub spec: String,
    /// The text to score, or @FILE to read it from a file.
    #[arg(long)]
    pub text: String,
    /// What comes before it (not scored), or @FILE [default: none].
    #[arg(long, default_value = "")]
    pub context: String,
    /// Never use the network to find the model (also HF_HUB_OFFLINE=1).
    #[arg(long)]
    pub offline: bool,
    /// How the weights are held in memory: auto, as-stored, q8_0 or f32.
    #[arg(long, value_enum, value_name = "FORMAT", default_value = "auto")]
    pub lm_weights: WeightFormat,
    /// Where to run the model.
    #[arg(long, value_enum, default_value = "auto")]
    pub device: DeviceChoice,
}

#[derive(Args, Debug)]
pub struct ModelRunArgs {
    /// The model (see `deepspark model --help`).
    #[arg(value_name = "SPEC")]
    pub spec: String,
    /// The user's message.
    #[arg(long)]
    pub prompt: String,
    /// A system message before it (default: none; the model's template may add its own).
    #[arg(long)]
    pub system: Option<String>,
    /// At most this many generated tokens.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub max_tokens: usize,
    /// Sample at this temperature instead of taking the most probable token (0: greedy).
    #[arg(long, value_name = "T", default_value_t = 0.0)]
    pub temperature: f32,
    /// With --temperature, sample only from the most probable tokens holding this much of the probability.
    #[arg(long, value_name = "P", default_value_t = 0.95)]
    pub top_p: f32,
    /// Seed of the sampler: the same seed, model and prompt give the same text.
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    /// Never use the network to find the model (also HF_HUB_OFFLINE=1).
    #[arg(long)]
    pub offline: bool,
    /// How the weights are held in memory: auto, as-stored, q8_0 or f32.
    #[arg(long, value_enum, value_name = "FORMAT", default_value = "auto")]
    pub lm_weights: WeightFormat,
    /// Where to run the model.
    #[arg(long, value_enum, default_value = "auto")]
    pub device: DeviceChoice,
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
