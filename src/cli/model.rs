//! The arguments of `deepspark model`: list, path, pull, run and score pretrained language
//! models (GGUF or safetensors). `--lm` for the commands that use a language model is
//! `args.rs`'s `LmArgs`; loading and running the models is in `lm/`.

use crate::lm::WeightFormat;
use crate::model::device::DeviceChoice;
use clap::{Args, Subcommand};

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
