//! The argument groups flattened into more than one subcommand, and the values they take:
//! what decides a verdict ([`GateArgs`]: [`VerdictArgs`], [`LimitArgs`], the model), how
//! suggestions are made ([`SuggestArgs`]), which language model runs ([`LmArgs`]), where
//! fix commits' files are read ([`FixFilesArgs`]), and [`ColorChoice`]. A group used by one
//! subcommand only stays in that subcommand's file; nothing here is a subcommand.

use super::{percentage, probability};
use crate::lm::WeightFormat;
use crate::model::device::DeviceChoice;
use clap::{Args, ValueEnum};
use std::path::PathBuf;

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
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}
