//! Pretrained language models run in the process: where their weights come from
//! (`source.rs`), how a GGUF file is checked before it is read (`gguf.rs`), a Hugging Face
//! safetensors folder rewritten as one (`hf.rs`), tokenizers
//! (`tokenizer.rs`), chat templates (`chat.rs`), the loaded network (`model/`: its loading
//! checks in `model/checks.rs`), deepspark's own CPU network and its SIMD kernels (`cpu/`), how
//! weights are held (`format.rs`), the decoder that scores a text in one pass (`net.rs`) and
//! generation and log-probabilities (`decode.rs`).
//!
//! The rest of deepspark sees only [`LanguageModel`]: a chat completion under a token
//! budget, and the log-probability of each token of a text after a context. No command
//! loads a language model unless asked (`--lm`); this module does not decide what a
//! review does with one, and its output is data that callers sanitise before display.

pub mod chat;
pub mod cpu;
pub mod decode;
pub mod format;
pub mod gguf;
pub mod hf;
pub mod model;
pub mod net;
pub mod source;
pub mod tiny;
pub mod tokenizer;

pub use chat::{Message, Role, Template};
pub use format::WeightFormat;
pub use model::{GgufModel, LoadOptions};

/// How the next token is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampling {
    /// The most probable token (the lowest id among equals): the same prompt always gives
    /// the same text.
    Greedy,
    /// Drawn from the tokens that make up the top `top_p` of the probability, after dividing
    /// the logits by `temperature`, with a seeded generator: the same seed gives the same text.
    Random { temperature: f32, top_p: f32, seed: u64 },
}

/// One chat completion to make.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    pub messages: Vec<Message>,
    /// At most this many generated tokens.
    pub max_tokens: usize,
    pub sampling: Sampling,
    /// Generation also ends at any of these strings (left out of the answer).
    pub stop: Vec<String>,
}

impl ChatRequest {
    /// A greedy request of one user message.
    pub fn user(text: impl Into<String>, max_tokens: usize) -> ChatRequest {
        ChatRequest {
            messages: vec![Message::user(text)],
            max_tokens,
            sampling: Sampling::Greedy,
            stop: Vec::new(),
        }
    }
}

/// Why generation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// The model ended its answer (EOS or its template's end-of-turn token).
    EndOfText,
    /// One of the request's stop strings appeared.
    StopString(String),
    /// `max_tokens` were generated.
    Budget,
    /// The model's context window is full.
    ContextFull,
}

/// A model's answer: model output, to be sanitised before any terminal.
#[derive(Debug, Clone)]
pub struct Completion {
    pub text: String,
    pub stop: StopReason,
    /// Tokens of the prompt the template made.
    pub prompt_tokens: usize,
    /// Tokens generated (the end-of-turn token included).
    pub tokens: usize,
    /// Time spent reading the prompt (prefill) and generating (decode).
    pub prefill: std::time::Duration,
    pub decode: std::time::Duration,
}

impl Completion {
    /// Everything but the timings: what two identical requests must agree on.
    pub fn outcome(&self) -> (&str, &StopReason, usize, usize) {
        (&self.text, &self.stop, self.prompt_tokens, self.tokens)
    }
}

/// One token of a scored text with its log-probability (natural log) given all before it.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLogprob {
    pub id: u32,
    /// The token's text as the vocabulary writes it (byte-level BPE shows a space as `Ġ`).
    pub token: String,
    pub logprob: f32,
}

#[derive(Debug, thiserror::Error)]
pub enum LmError {
    #[error(transparent)]
    Gguf(#[from] gguf::GgufError),
    #[error(transparent)]
    Tokenizer(#[from] tokenizer::TokenizerError),
    #[error("{0}")]
    Unsupported(String),
    #[error("invalid model: {0}")]
    Invalid(String),
    #[error("the prompt has {tokens} tokens; the model's context holds {context}")]
    TooLong { tokens: usize, context: usize },
    #[error("model computation failed")]
    Candle(#[from] candle_core::Error),
    #[error("cannot read {path}")]
    Io { path: String, source: std::io::Error },
}

/// What the pipeline sees of a language model.
pub trait LanguageModel {
    /// One line for reports: name, architecture, size, quantisation, where it was loaded from.
    fn describe(&self) -> String;
    /// The assistant's answer to `request.messages`, in the model's chat template.
    fn chat(&mut self, request: &ChatRequest) -> Result<Completion, LmError>;
    /// Each token of `text` with its log-probability after `context` (tokenized apart, then
    /// joined; the context may be empty). Calls with the same context reuse its computation.
    fn logprobs(&mut self, context: &str, text: &str) -> Result<Vec<TokenLogprob>, LmError>;
}
