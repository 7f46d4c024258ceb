//! The command line, as clap structs only: what the user typed, nothing built from it.
//!
//! This file holds the top-level [`Cli`] and its [`Command`] enum (one variant per
//! subcommand), the arguments of `completions` and `man`, and the value parsers several
//! files use (seconds, probabilities, percentages). Each subcommand's own arguments are in
//! the file of its group: `review.rs` (review, fix, scan, score, dismiss), `train.rs`
//! (train, eval, eval-suggest, eval-pairs, mine, learn), `hook.rs` and `model.rs`; the
//! argument groups flattened into more than one command (the gate, the verdict, limits,
//! suggestions, the language model) are in `args.rs`. Every type is re-exported here, so
//! the rest of the crate names them `cli::ReviewArgs`, `cli::GateArgs`, ... Nothing here
//! runs a command (see `commands/`).

mod args;
mod hook;
mod model;
mod review;
mod train;

pub use args::{
    CalibrationChoice, ColorChoice, FailOn, FixFilesArgs, GateArgs, LimitArgs, LmArgs, SuggestArgs, VerdictArgs,
};
pub use hook::{HookCommand, HookRunArgs};
pub use model::{ModelCommand, ModelRunArgs, ModelScoreArgs};
pub use review::{AssistArgs, DismissArgs, FixArgs, FixFormat, Format, ReviewArgs, ScanArgs, ScanFormat, ScoreArgs};
pub use train::{
    BugReportsArg, EvalArgs, EvalFormat, EvalPairsArgs, EvalSuggestArgs, LearnArgs, MineArgs, TrainArgs, When,
};

use clap::{Args, Parser, Subcommand};

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

fn seconds(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(format!("{s:?} must be zero or more seconds"))
    }
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
