//! What a model keeps between requests, and the passes that use it: the network's KV cache
//! reused while a prompt extends what it holds, anchors (a system prompt's state, kept as a
//! clone of the network that shares the weights), and earlier `logprobs` reads with the
//! one-pass scoring that continues them (on the CPU network or the one-pass [`Decoder`], built
//! on first use). It decides nothing about sampling or templates (`language_model.rs`).

use super::checks::{Hyper, invalid};
use super::load::{Stored, convert, read_stored};
use super::{GgufModel, Net};
use crate::lm::LmError;
use crate::lm::cpu::CpuNet;
use crate::lm::decode::log_prob;
use crate::lm::format::WeightFormat;
use crate::lm::net::{self, Cache, Decoder};
use candle_core::quantized::gguf_file;
use std::io::Cursor;

/// Tokens read in an earlier `logprobs` call (its context and text) with their keys and values.
pub(super) struct Reading {
    ids: Vec<u32>,
    state: ReadState,
}

enum ReadState {
    /// The one-pass decoder's cache (with candle-transformers' networks).
    Cache(Cache),
    /// A copy of the CPU network after the tokens: it shares the weights.
    Cpu(CpuNet),
}

/// A state of the network worth returning to: the tokens read, a clone of the network after
/// them (it shares the weights and holds the KV cache), and the last logits.
pub(super) struct Anchor {
    ids: Vec<u32>,
    net: Net,
    logits: Vec<f32>,
}

/// Anchors (and decoder reads) kept; the oldest is dropped first.
const MAX_ANCHORS: usize = 4;

impl GgufModel {
    /// The one-pass decoder, built from the file read again (and converted as at load) the
    /// first time it is needed.
    pub(super) fn decoder(&mut self) -> Result<&Decoder, LmError> {
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
    /// its positions. `cpu/`'s network does this itself (a copy of it with its own cache);
    /// with candle-transformers' networks the one-pass decoder does.
    pub(super) fn score(&mut self, ids: &[u32], first: usize, chunk: usize) -> Result<Vec<f32>, LmError> {
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
    pub(super) fn logits_after(&mut self, ids: &[u32]) -> Result<Vec<f32>, LmError> {
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
    pub(super) fn anchor(&mut self, ids: &[u32]) -> Result<Vec<f32>, LmError> {
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
    pub(super) fn step(&mut self, id: u32) -> Result<Vec<f32>, LmError> {
        let logits = self.net.forward(&[id], self.cached.len(), &self.device)?;
        self.cached.push(id);
        Ok(logits)
    }
}
