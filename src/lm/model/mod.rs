//! A GGUF language model loaded in the process: the header checked (`gguf.rs`), the
//! hyperparameters and every tensor's shape checked against them, then the network built: on an
//! x86-64 CPU with AVX2, in place (`cpu/`, with SIMD kernels for the types small files ship
//! in); on CUDA, Metal and other CPUs, by candle-transformers (`quantized_llama` for
//! llama-architecture models such as SmolLM2, Llama 3.x; `quantized_qwen2` for Qwen2 and
//! Qwen2.5). It comes with its tokenizer and chat template. [`GgufModel`] implements
//! [`LanguageModel`]. A Hugging Face safetensors folder is loaded the same way, from the GGUF
//! file `hf.rs` writes of it in memory.
//!
//! Weights are kept as the file stores them, or converted at load (`WeightFormat`). The KV
//! cache is reused while a prompt extends what it holds; a system prompt is kept (a clone of
//! the network shares the weights) so the next request with it starts after it.
//!
//! `logprobs` reads a text in one pass that gives the logits at every position: `cpu/`'s
//! network does (a copy of it with its own cache); candle-transformers' networks give the last
//! position's only, so with them it reads through [`Decoder`] (`net.rs`), built from the same
//! (converted) tensors on the first call, which holds a second copy of the weights. The keys
//! and values of what it read are kept, so a call whose context starts with an earlier call's
//! context and text reads only the rest. This module does not resolve where a file comes from
//! (`source.rs`).
//!
//! Where each part is: `checks.rs` the hyperparameters and tensor shapes checked before the
//! network is built; `load.rs` reading the file (or folder), converting the weights and building
//! the network; `cache.rs` what is kept between requests (the KV cache, anchors, earlier
//! `logprobs` reads) and the one-pass scoring; `language_model.rs` chat and `logprobs`.

mod cache;
mod checks;
mod language_model;
mod load;

#[cfg(test)]
mod smollm2;
#[cfg(test)]
mod tests;

pub use checks::Hyper;

use super::LmError;
use super::chat::Template;
use super::cpu::CpuNet;
use super::format::WeightFormat;
use super::net::Decoder;
use super::tokenizer::LmTokenizer;
use cache::{Anchor, Reading};
use candle_core::{Device, Tensor};
use candle_transformers::models::{quantized_llama, quantized_qwen2};
use load::Stored;

#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub weights: WeightFormat,
    pub device: Device,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            weights: WeightFormat::default(),
            device: Device::Cpu,
        }
    }
}

/// The network: computed in place (`cpu/`) on a CPU with its kernels; elsewhere, one variant
/// per architecture candle-transformers implements.
enum Net {
    Cpu(CpuNet),
    Llama(quantized_llama::ModelWeights),
    Qwen2(quantized_qwen2::ModelWeights),
}

impl Net {
    /// The logits after the last of `ids`, placed at positions `pos..`.
    fn forward(&mut self, ids: &[u32], pos: usize, device: &Device) -> Result<Vec<f32>, LmError> {
        // candle's networks take the ids as a tensor; the CPU network reads them as they are.
        let input = || Tensor::new(ids, device)?.unsqueeze(0);
        let logits = match self {
            Net::Cpu(m) => return Ok(m.forward(ids, pos)?),
            Net::Llama(m) => m.forward(&input()?, pos)?,
            Net::Qwen2(m) => m.forward(&input()?, pos)?,
        };
        Ok(logits.squeeze(0)?.to_dtype(candle_core::DType::F32)?.to_vec1()?)
    }

    /// A copy that shares the weights and holds the same KV cache (not candle's Qwen2 model,
    /// which cannot be cloned).
    fn snapshot(&self) -> Option<Net> {
        match self {
            Net::Cpu(m) => Some(Net::Cpu(m.clone())),
            Net::Llama(m) => Some(Net::Llama(m.clone())),
            Net::Qwen2(_) => None,
        }
    }
}

pub struct GgufModel {
    net: Net,
    pub tokenizer: LmTokenizer,
    pub template: Template,
    pub hyper: Hyper,
    /// Tokens that end an answer: EOS and the template's end-of-turn tokens.
    end_ids: Vec<u32>,
    /// What an empty `logprobs` context stands for: BOS, else EOS.
    start_id: Option<u32>,
    device: Device,
    description: String,
    /// The tokens whose keys and values the network's cache holds.
    cached: Vec<u32>,
    /// States worth returning to (system prompts), the oldest first.
    anchors: Vec<Anchor>,
    /// Where the weights were read from and how they are held: the one-pass decoder is built
    /// from them again when `logprobs` first needs it.
    stored: Stored,
    weights: WeightFormat,
    decoder: Option<Decoder>,
    /// What the decoder read in earlier `logprobs` calls, the oldest first.
    read: Vec<Reading>,
}
