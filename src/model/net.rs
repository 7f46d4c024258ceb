//! The risk network: a small pre-norm transformer encoder over a hunk's tokens.
//!
//! Every token gets a scalar score from the final hidden state; the hunk's logit is the
//! masked mean of those scores plus a linear term over the size features. The per-token
//! scores are the attribution the renderer uses to highlight lines. Training and
//! inference share this code; `Mode::Train` switches to candle's differentiable
//! softmax/layer-norm (the fused ones record no gradient) and enables dropout.
//! This module does not load files (see `weights.rs`) or calibrate (see `config.rs`).

use super::config::RiskConfig;
use super::kernels;
use crate::tokenize::Encoded;
use candle_core::{D, DType, Device, Module, Result, Tensor};
use candle_nn::{Embedding, Linear, VarBuilder, embedding, linear};

/// A padded batch of encoded hunks, on the model's device.
pub struct Batch {
    pub ids: Tensor,
    pub mask: Tensor,
    pub features: Tensor,
}

impl Batch {
    /// `n_features`: how many of the encoded features the model takes (the first ones).
    pub fn new(items: &[&Encoded], n_features: usize, device: &Device) -> Result<Batch> {
        let b = items.len();
        let t = items.iter().map(|e| e.ids.len()).max().unwrap_or(1).max(1);
        let mut ids = vec![0u32; b * t];
        let mut mask = vec![0f32; b * t];
        let mut feats = Vec::with_capacity(b * n_features);
        for (i, e) in items.iter().enumerate() {
            ids[i * t..i * t + e.ids.len()].copy_from_slice(&e.ids);
            mask[i * t..i * t + e.ids.len()].iter_mut().for_each(|m| *m = 1.0);
            if e.ids.is_empty() {
                mask[i * t] = 1.0; // an empty hunk still pools over one (padding) token
            }
            feats.extend_from_slice(&e.features[..n_features]);
        }
        Ok(Batch {
            ids: Tensor::from_vec(ids, (b, t), device)?,
            mask: Tensor::from_vec(mask, (b, t), device)?,
            features: Tensor::from_vec(feats, (b, n_features), device)?,
        })
    }
}

/// Dropout masks come from the caller's seeded generator so training is deterministic.
pub enum Mode<'a> {
    Infer,
    Train {
        dropout: f32,
        rng: &'a mut crate::train::rng::Rng,
    },
}

impl Mode<'_> {
    fn train(&self) -> bool {
        matches!(self, Mode::Train { .. })
    }

    fn dropout(&mut self, x: &Tensor) -> Result<Tensor> {
        match self {
            Mode::Infer => Ok(x.clone()),
            Mode::Train { dropout, rng } => {
                let p = *dropout;
                if p <= 0.0 {
                    return Ok(x.clone());
                }
                let keep = 1.0 / (1.0 - p);
                let m: Vec<f32> = (0..x.elem_count())
                    .map(|_| if rng.uniform() < p { 0.0 } else { keep })
                    .collect();
                x.mul(&Tensor::from_vec(m, x.shape(), x.device())?)
            }
        }
    }
}

struct Norm {
    weight: Tensor,
    bias: Tensor,
}

impl Norm {
    fn new(d: usize, vb: VarBuilder) -> Result<Norm> {
        Ok(Norm {
            weight: vb.get(d, "weight")?,
            bias: vb.get(d, "bias")?,
        })
    }

    fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if !train {
            return candle_nn::ops::layer_norm(&x.contiguous()?, &self.weight, &self.bias, 1e-5);
        }
        let mean = x.mean_keepdim(D::Minus1)?;
        let xc = x.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
        xc.broadcast_div(&(var + 1e-5)?.sqrt()?)?
            .broadcast_mul(&self.weight)?
            .broadcast_add(&self.bias)
    }
}

struct Block {
    ln1: Norm,
    qkv: Linear,
    out: Linear,
    ln2: Norm,
    ff1: Linear,
    ff2: Linear,
    n_heads: usize,
}

impl Block {
    fn new(cfg: &RiskConfig, vb: VarBuilder) -> Result<Block> {
        let d = cfg.d_model;
        Ok(Block {
            ln1: Norm::new(d, vb.pp("ln1"))?,
            qkv: linear(d, 3 * d, vb.pp("qkv"))?,
            out: linear(d, d, vb.pp("out"))?,
            ln2: Norm::new(d, vb.pp("ln2"))?,
            ff1: linear(d, cfg.d_ff, vb.pp("ff1"))?,
            ff2: linear(cfg.d_ff, d, vb.pp("ff2"))?,
            n_heads: cfg.n_heads,
        })
    }

    /// `mask`: `[B, T]` (1 real token, 0 padding); `mask_bias`: `[B, 1, 1, T]` (0 or -1e9),
    /// built only for training.
    fn forward(&self, x: &Tensor, mask: &Tensor, mask_bias: Option<&Tensor>, mode: &mut Mode) -> Result<Tensor> {
        let (b, t, d) = x.dims3()?;
        let (h, dh) = (self.n_heads, d / self.n_heads);
        let train = mode.train();
        let qkv = self.qkv.forward(&self.ln1.forward(x, train)?)?;
        let qkv = qkv.reshape((b, t, 3, h, dh))?.permute((2, 0, 3, 1, 4))?;
        let q = qkv.get(0)?.contiguous()?;
        let k = qkv.get(1)?.contiguous()?;
        let v = qkv.get(2)?.contiguous()?;
        let scale = 1.0 / (dh as f64).sqrt();
        let att = match (train, mask_bias) {
            (true, Some(bias)) => {
                candle_nn::ops::softmax(&(q.matmul(&k.t()?)? * scale)?.broadcast_add(bias)?, D::Minus1)?
            }
            _ => kernels::masked_softmax(q.matmul(&k.t()?)?, mask, scale)?,
        };
        let ctx = att.matmul(&v)?.transpose(1, 2)?.reshape((b, t, d))?;
        let x = (x + mode.dropout(&self.out.forward(&ctx)?)?)?;
        let hidden = self.ff1.forward(&self.ln2.forward(&x, train)?)?;
        let hidden = if train {
            hidden.gelu_erf()?
        } else {
            kernels::gelu(hidden)?
        };
        let ff = self.ff2.forward(&hidden)?;
        x + mode.dropout(&ff)?
    }
}

pub struct RiskNet {
    tok: Embedding,
    pos: Embedding,
    blocks: Vec<Block>,
    norm: Norm,
    token_head: Linear,
    feature_head: Linear,
    bag: Option<Embedding>,
    max_len: usize,
}

/// The network's outputs for a batch: raw (uncalibrated) logits `[B]` and per-token
/// scores `[B, T]` whose masked mean is the text part of the logit.
pub struct Output {
    pub logits: Tensor,
    pub token_scores: Tensor,
}

impl RiskNet {
    pub fn new(cfg: &RiskConfig, vb: VarBuilder) -> Result<RiskNet> {
        let d = cfg.d_model;
        let blocks = (0..cfg.n_layers)
            .map(|i| Block::new(cfg, vb.pp(format!("blocks.{i}"))))
            .collect::<Result<_>>()?;
        Ok(RiskNet {
            tok: embedding(cfg.vocab_size, d, vb.pp("tok"))?,
            pos: embedding(cfg.max_len, d, vb.pp("pos"))?,
            blocks,
            norm: Norm::new(d, vb.pp("norm"))?,
            token_head: linear(d, 1, vb.pp("token_head"))?,
            feature_head: linear(cfg.n_features, 1, vb.pp("feature_head"))?,
            bag: if cfg.bag {
                Some(embedding(cfg.vocab_size, 1, vb.pp("bag"))?)
            } else {
                None
            },
            max_len: cfg.max_len,
        })
    }

    /// The most values a token has in any of the network's layers (its widest product).
    pub fn widest(&self) -> usize {
        let width = |l: &Linear| l.weight().dims().first().copied().unwrap_or(0);
        self.blocks
            .iter()
            .map(|b| width(&b.qkv).max(width(&b.ff1)))
            .fold(self.tok.embeddings().dims()[1], usize::max)
    }

    pub fn forward(&self, batch: &Batch, mode: &mut Mode) -> Result<Output> {
        let (b, t) = batch.ids.dims2()?;
        if t > self.max_len {
            candle_core::bail!("sequence of {t} tokens exceeds the model's max_len {}", self.max_len);
        }
        let positions = Tensor::arange(0u32, t as u32, batch.ids.device())?;
        let x = self
            .tok
            .forward(&batch.ids)?
            .broadcast_add(&self.pos.forward(&positions)?)?;
        let mut x = mode.dropout(&x)?;
        // Padding keys get -1e9 before the softmax in training ([B, 1, 1, T]); inference
        // leaves them out inside the fused kernel.
        let mask_bias = if mode.train() {
            Some(((batch.mask.clone() - 1.0)? * 1e9)?.reshape((b, 1, 1, t))?)
        } else {
            None
        };
        for block in &self.blocks {
            x = block.forward(&x, &batch.mask, mask_bias.as_ref(), mode)?;
        }
        let x = self.norm.forward(&x, mode.train())?;
        let mut token_scores = self.token_head.forward(&x)?.squeeze(2)?;
        if let Some(bag) = &self.bag {
            token_scores = (token_scores + bag.forward(&batch.ids)?.squeeze(2)?)?;
        }
        let masked = (&token_scores * &batch.mask)?;
        let pooled = (masked.sum(1)? / batch.mask.sum(1)?)?;
        let from_features = self.feature_head.forward(&batch.features)?.squeeze(1)?;
        Ok(Output {
            logits: (pooled + from_features)?,
            token_scores,
        })
    }

    /// Names and shapes of every tensor the network expects, for validating weights files.
    pub fn expected_tensors(cfg: &RiskConfig) -> Vec<(String, Vec<usize>)> {
        let d = cfg.d_model;
        let mut v = vec![
            ("tok.weight".to_string(), vec![cfg.vocab_size, d]),
            ("pos.weight".to_string(), vec![cfg.max_len, d]),
            ("norm.weight".to_string(), vec![d]),
            ("norm.bias".to_string(), vec![d]),
            ("token_head.weight".to_string(), vec![1, d]),
            ("token_head.bias".to_string(), vec![1]),
            ("feature_head.weight".to_string(), vec![1, cfg.n_features]),
            ("feature_head.bias".to_string(), vec![1]),
        ];
        if cfg.bag {
            v.push(("bag.weight".to_string(), vec![cfg.vocab_size, 1]));
        }
        if cfg.wide {
            use super::wide;
            v.extend([
                (wide::TOKENS.to_string(), vec![wide::SIDES * cfg.vocab_size]),
                (wide::FEATURES.to_string(), vec![cfg.n_features]),
                (wide::BIAS.to_string(), vec![1]),
                (wide::DEEP.to_string(), vec![1]),
            ]);
        }
        if cfg.pair {
            v.push((super::wide::PAIR.to_string(), vec![super::wide::SIDES * cfg.vocab_size]));
            if cfg.pair_bigrams > 0 {
                v.push((
                    super::wide::PAIR_BIGRAMS.to_string(),
                    vec![super::wide::SIDES * cfg.pair_bigrams],
                ));
            }
        }
        for i in 0..cfg.n_layers {
            let p = |n: &str| format!("blocks.{i}.{n}");
            v.extend([
                (p("ln1.weight"), vec![d]),
                (p("ln1.bias"), vec![d]),
                (p("qkv.weight"), vec![3 * d, d]),
                (p("qkv.bias"), vec![3 * d]),
                (p("out.weight"), vec![d, d]),
                (p("out.bias"), vec![d]),
                (p("ln2.weight"), vec![d]),
                (p("ln2.bias"), vec![d]),
                (p("ff1.weight"), vec![cfg.d_ff, d]),
                (p("ff1.bias"), vec![cfg.d_ff]),
                (p("ff2.weight"), vec![d, cfg.d_ff]),
                (p("ff2.bias"), vec![d]),
            ]);
        }
        v
    }
}

pub const DTYPE: DType = DType::F32;
