//! A decoder that reads many tokens in one pass and gives the logits at every position: what
//! `GgufModel::logprobs` scores a text with on CUDA and Metal (on the CPU, `cpu/` chats and
//! scores). candle-transformers' quantised llama and Qwen2 networks return only the last
//! position's logits, so scoring a text through them costs one pass per token (decode speed);
//! this one costs one pass per text (prefill speed).
//!
//! It builds the same blocks from the same GGUF tensors, with the same operations as
//! candle-transformers 0.11.1 (`quantized_llama`, `quantized_qwen2`): RMS norm, interleaved
//! rotary embeddings for llama and half-split ones for Qwen2, Qwen2's query/key/value biases,
//! key/value heads repeated for grouped-query attention, the token embedding as output layer
//! when the file has no `output.weight`. Its keys and values live in a [`Cache`] the caller
//! owns, so a context read once can be extended by several texts.
//!
//! It does not generate (chat there stays on candle-transformers' networks), does not check the
//! file (`model/checks.rs` has, before it is built), and knows no mixture-of-experts or partial rotary
//! embeddings (refused at load).

use candle_core::quantized::{QMatMul, gguf_file};
use candle_core::{D, DType, Device, Module, Tensor};
use candle_nn::Embedding;
use candle_transformers::quantized_nn::RmsNorm;
use candle_transformers::utils::{build_causal_mask, repeat_kv};
use std::io::{Read, Seek};

/// The keys and values of the tokens read so far, one pair per layer, each
/// `[1, kv_heads, tokens, head_dim]` after the rotary embedding.
#[derive(Clone, Default)]
pub struct Cache {
    layers: Vec<(Tensor, Tensor)>,
    len: usize,
}

impl Cache {
    /// Tokens held.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The cache of the first `len` of these tokens (a view: nothing is copied).
    pub fn prefix(&self, len: usize) -> candle_core::Result<Cache> {
        if len >= self.len {
            return Ok(self.clone());
        }
        if len == 0 {
            return Ok(Cache::default());
        }
        let layers = self
            .layers
            .iter()
            .map(|(k, v)| Ok((k.narrow(2, 0, len)?, v.narrow(2, 0, len)?)))
            .collect::<candle_core::Result<_>>()?;
        Ok(Cache { layers, len })
    }
}

struct Block {
    attn_norm: RmsNorm,
    q: QMatMul,
    k: QMatMul,
    v: QMatMul,
    /// Qwen2's query, key and value biases.
    bias: Option<(Tensor, Tensor, Tensor)>,
    out: QMatMul,
    ffn_norm: RmsNorm,
    gate: QMatMul,
    up: QMatMul,
    down: QMatMul,
}

pub struct Decoder {
    embedding: Embedding,
    blocks: Vec<Block>,
    norm: RmsNorm,
    output: QMatMul,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    /// Rotary tables, `[positions, head_dim / 2]`.
    cos: Tensor,
    sin: Tensor,
    /// llama pairs dimensions 2i and 2i+1 (GGUF's "norm" layout); Qwen2 pairs i and i+d/2.
    interleaved: bool,
    neg_inf: Tensor,
}

/// What a decoder is built from, read from the hyperparameters `model/checks.rs` checked.
pub struct Shape<'a> {
    pub architecture: &'a str,
    pub embedding: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub layers: usize,
    /// Positions the rotary tables cover.
    pub context: usize,
}

impl Decoder {
    pub fn from_gguf<R: Read + Seek>(
        shape: &Shape,
        content: &gguf_file::Content,
        reader: &mut R,
        device: &Device,
    ) -> candle_core::Result<Decoder> {
        let arch = shape.architecture;
        let meta = |key: &str| content.metadata.get(&format!("{arch}.{key}"));
        let eps = match meta("attention.layer_norm_rms_epsilon") {
            Some(v) => f64::from(v.to_f32()?),
            None => candle_core::bail!("cannot find {arch}.attention.layer_norm_rms_epsilon in metadata"),
        };
        let freq_base = meta("rope.freq_base").and_then(|v| v.to_f32().ok()).unwrap_or(10000.0);
        let mut tensor = |name: &str| content.tensor(reader, name, device);
        let head_dim = shape.embedding / shape.heads;
        let embedding_q = tensor("token_embd.weight")?;
        let embedding = Embedding::new(embedding_q.dequantize(device)?, shape.embedding);
        let norm = RmsNorm::from_qtensor(tensor("output_norm.weight")?, eps)?;
        let output = match tensor("output.weight") {
            Ok(w) => QMatMul::from_qtensor(w)?,
            Err(_) => QMatMul::from_qtensor(embedding_q)?,
        };
        let qwen = arch == "qwen2";
        let mut blocks = Vec::with_capacity(shape.layers);
        for i in 0..shape.layers {
            let mut matrix = |name: &str| QMatMul::from_qtensor(tensor(&format!("blk.{i}.{name}.weight"))?);
            let (q, k, v, out) = (
                matrix("attn_q")?,
                matrix("attn_k")?,
                matrix("attn_v")?,
                matrix("attn_output")?,
            );
            let (gate, up, down) = (matrix("ffn_gate")?, matrix("ffn_up")?, matrix("ffn_down")?);
            let mut vector = |name: &str| tensor(&format!("blk.{i}.{name}"));
            let bias = if qwen {
                Some((
                    vector("attn_q.bias")?.dequantize(device)?,
                    vector("attn_k.bias")?.dequantize(device)?,
                    vector("attn_v.bias")?.dequantize(device)?,
                ))
            } else {
                None
            };
            blocks.push(Block {
                attn_norm: RmsNorm::from_qtensor(vector("attn_norm.weight")?, eps)?,
                ffn_norm: RmsNorm::from_qtensor(vector("ffn_norm.weight")?, eps)?,
                q,
                k,
                v,
                bias,
                out,
                gate,
                up,
                down,
            });
        }
        // As candle-transformers computes them, so that positions get the very same angles.
        let theta: Vec<f32> = (0..head_dim)
            .step_by(2)
            .map(|i| 1f32 / freq_base.powf(i as f32 / head_dim as f32))
            .collect();
        let theta = Tensor::new(theta.as_slice(), device)?;
        let angles = Tensor::arange(0, shape.context as u32, device)?
            .to_dtype(DType::F32)?
            .reshape((shape.context, 1))?
            .matmul(&theta.reshape((1, theta.elem_count()))?)?;
        Ok(Decoder {
            embedding,
            blocks,
            norm,
            output,
            heads: shape.heads,
            kv_heads: shape.kv_heads,
            head_dim,
            cos: angles.cos()?,
            sin: angles.sin()?,
            interleaved: !qwen,
            neg_inf: Tensor::new(f32::NEG_INFINITY, device)?,
        })
    }

    /// Reads `ids` after the tokens `cache` holds, adds their keys and values to it, and
    /// returns the logits at each of them, `[ids.len(), vocab]`: row i predicts the token
    /// after `ids[i]`.
    pub fn forward(&self, ids: &[u32], cache: &mut Cache) -> candle_core::Result<Tensor> {
        let hidden = self.hidden(ids, cache)?;
        self.output.forward(&hidden)?.squeeze(0)?.to_dtype(DType::F32)
    }

    /// [`forward`](Self::forward) without the output layer: only the cache grows.
    pub fn read(&self, ids: &[u32], cache: &mut Cache) -> candle_core::Result<()> {
        self.hidden(ids, cache).map(drop)
    }

    /// The final-norm hidden states of `ids`, `[1, ids.len(), embedding]`.
    fn hidden(&self, ids: &[u32], cache: &mut Cache) -> candle_core::Result<Tensor> {
        let (seq, pos) = (ids.len(), cache.len);
        if seq == 0 {
            candle_core::bail!("nothing to read");
        }
        if pos + seq > self.cos.dim(0)? {
            candle_core::bail!("{} positions exceed the rotary tables", pos + seq);
        }
        let device = self.cos.device();
        let mask = build_causal_mask(seq, pos, device)?;
        let cos = self.cos.narrow(0, pos, seq)?;
        let sin = self.sin.narrow(0, pos, seq)?;
        let mut x = self.embedding.forward(&Tensor::new(ids, device)?.unsqueeze(0)?)?;
        let mut layers = Vec::with_capacity(self.blocks.len());
        for (i, block) in self.blocks.iter().enumerate() {
            let past = cache.layers.get(i).filter(|_| pos > 0);
            let (attn, kv) = self.attend(block, &block.attn_norm.forward(&x)?, past, &mask, &cos, &sin)?;
            layers.push(kv);
            let x1 = (attn + &x)?;
            let h = block.ffn_norm.forward(&x1)?;
            let mlp = block
                .down
                .forward(&(candle_nn::ops::silu(&block.gate.forward(&h)?)? * block.up.forward(&h)?)?)?;
            x = (mlp + x1)?;
        }
        cache.layers = layers;
        cache.len = pos + seq;
        self.norm.forward(&x)
    }

    /// One block's self-attention over the past keys and values and those of `x`; returns its
    /// output and the keys and values of past and `x` together.
    fn attend(
        &self,
        block: &Block,
        x: &Tensor,
        past: Option<&(Tensor, Tensor)>,
        mask: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
    ) -> candle_core::Result<(Tensor, (Tensor, Tensor))> {
        let (b, seq, embedding) = x.dims3()?;
        let (mut q, mut k, mut v) = (block.q.forward(x)?, block.k.forward(x)?, block.v.forward(x)?);
        if let Some((bq, bk, bv)) = &block.bias {
            q = q.broadcast_add(bq)?;
            k = k.broadcast_add(bk)?;
            v = v.broadcast_add(bv)?;
        }
        let split = |t: Tensor, heads: usize| -> candle_core::Result<Tensor> {
            t.reshape((b, seq, heads, self.head_dim))?.transpose(1, 2)?.contiguous()
        };
        let rotate = |t: &Tensor| {
            if self.interleaved {
                candle_nn::rotary_emb::rope_i(t, cos, sin)
            } else {
                candle_nn::rotary_emb::rope(t, cos, sin)
            }
        };
        let q = rotate(&split(q, self.heads)?)?;
        let k = rotate(&split(k, self.kv_heads)?)?;
        let v = split(v, self.kv_heads)?;
        let (k, v) = match past {
            Some((pk, pv)) => (Tensor::cat(&[pk, &k], 2)?, Tensor::cat(&[pv, &v], 2)?),
            None => (k, v),
        };
        let repeat = self.heads / self.kv_heads;
        let (kr, vr) = (repeat_kv(k.clone(), repeat)?, repeat_kv(v.clone(), repeat)?);
        let att = (q.matmul(&kr.t()?)? / (self.head_dim as f64).sqrt())?;
        let mask = mask.broadcast_as(att.shape())?;
        let att = mask.where_cond(&self.neg_inf.broadcast_as(att.shape().dims())?, &att)?;
        let att = candle_nn::ops::softmax_last_dim(&att)?;
        let y = att.matmul(&vr.contiguous()?)?;
        let y = y.transpose(1, 2)?.reshape((b, seq, embedding))?;
        Ok((block.out.forward(&y)?, (k, v)))
    }
}

/// The log-probability of `next[i]` in row i of `logits` (`[rows, vocab]`), computed on the
/// device so that only the chosen values travel back.
pub fn chosen(logits: &Tensor, next: &[u32]) -> candle_core::Result<Vec<f32>> {
    let log_probs = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let index = Tensor::new(next, logits.device())?.unsqueeze(1)?;
    log_probs.gather(&index, 1)?.squeeze(1)?.to_vec1()
}
