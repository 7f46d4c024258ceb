//! Attention: the rotary angles of the positions read ([`Angles`], interleaved for llama,
//! half-split for Qwen2) and causal grouped-query self-attention over the cached keys and
//! values, a dot product per query and key for a few tokens ([`attend`]) or through candle's
//! matrix products for a long prompt ([`attend_matmul`]). It does not compute the queries, keys
//! and values (`forward.rs` does).

use super::cache::Lent;
use super::kernels::{scores, weigh};
use super::matmul::{Parts, Threads};
use super::weights::Weights;
use candle_core::Device;

/// The rotary angles' cosines and sines at positions `pos..pos + seq`.
pub(super) struct Angles {
    cos: Vec<f32>,
    sin: Vec<f32>,
    pairs: usize,
}

impl Angles {
    pub(super) fn new(theta: &[f32], pos: usize, seq: usize) -> Angles {
        let (mut cos, mut sin) = (
            Vec::with_capacity(seq * theta.len()),
            Vec::with_capacity(seq * theta.len()),
        );
        for p in pos..pos + seq {
            for t in theta {
                let angle = p as f32 * t;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
        Angles {
            cos,
            sin,
            pairs: theta.len(),
        }
    }

    /// Rotates every head of every token of `x` (`[seq, heads * head_dim]`).
    pub(super) fn rotate(&self, x: &mut [f32], head_dim: usize, interleaved: bool) {
        let per_token = x.len() / (self.cos.len() / self.pairs);
        for (t, token) in x.chunks_exact_mut(per_token).enumerate() {
            let (cos, sin) = (
                &self.cos[t * self.pairs..(t + 1) * self.pairs],
                &self.sin[t * self.pairs..(t + 1) * self.pairs],
            );
            for head in token.chunks_exact_mut(head_dim) {
                for i in 0..self.pairs {
                    let (a, b) = if interleaved {
                        (2 * i, 2 * i + 1)
                    } else {
                        (i, i + self.pairs)
                    };
                    let (x0, x1) = (head[a], head[b]);
                    head[a] = x0 * cos[i] - x1 * sin[i];
                    head[b] = x0 * sin[i] + x1 * cos[i];
                }
            }
        }
    }
}

/// Tokens read at once from which attention goes through matrix products (candle's gemm)
/// instead of a dot product per query and key: prefill attention grows with the square of the
/// prompt, and a 1,400-token prompt spent most of its 12.6 s there.
pub(super) const MATMUL_ATTENTION: usize = 32;

/// Queries whose attention scores are held at once by [`attend_matmul`] (bounds the
/// `[heads, queries, keys]` scores of a long prompt).
pub(super) const QUERY_CHUNK: usize = 256;

/// [`attend`] through matrix products: per key/value head, the scores of its query heads'
/// queries over all keys, masked, softmaxed and multiplied by the values, `chunk` queries at a
/// time.
pub(super) fn attend_matmul(
    w: &Weights,
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    pos: usize,
    out: &mut [f32],
    chunk: usize,
) -> candle_core::Result<()> {
    let (hd, kvh) = (w.head_dim, w.kv_heads);
    let group = w.heads / kvh;
    let seq = q.len() / (w.heads * hd);
    let cpu = Device::Cpu;
    for first in (0..seq).step_by(chunk) {
        let n = chunk.min(seq - first);
        let total = pos + first + n;
        let k = candle_core::Tensor::from_slice(&keys[..total * kvh * hd], (total, kvh, hd), &cpu)?
            .transpose(0, 1)?
            .contiguous()?;
        let v = candle_core::Tensor::from_slice(&values[..total * kvh * hd], (total, kvh, hd), &cpu)?
            .transpose(0, 1)?
            .contiguous()?;
        // Head h reads key/value head h / group: [n, kvh, group, hd] → [kvh, group * n, hd].
        let qs = candle_core::Tensor::from_slice(
            &q[first * w.heads * hd..(first + n) * w.heads * hd],
            (n, kvh, group, hd),
            &cpu,
        )?
        .permute((1, 2, 0, 3))?
        .contiguous()?
        .reshape((kvh, group * n, hd))?;
        let scale = 1.0 / (hd as f64).sqrt();
        let scores = (qs.matmul(&k.t()?)? * scale)?;
        // Query t of the chunk (position pos + first + t) sees keys 0..=pos + first + t.
        let mask: Vec<f32> = (0..group * n)
            .flat_map(|r| {
                let sees = pos + first + r % n;
                (0..total).map(move |p| if p <= sees { 0.0 } else { f32::NEG_INFINITY })
            })
            .collect();
        let mask = candle_core::Tensor::from_vec(mask, (group * n, total), &cpu)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores.broadcast_add(&mask)?)?;
        let y = probs
            .matmul(&v)?
            .reshape((kvh, group, n, hd))?
            .permute((2, 0, 1, 3))?
            .contiguous()?
            .flatten_all()?
            .to_vec1::<f32>()?;
        out[first * w.heads * hd..(first + n) * w.heads * hd].copy_from_slice(&y);
    }
    Ok(())
}

/// Causal self-attention of the queries `q` (`[seq, heads * head_dim]`, positions `pos..`) over
/// the cached keys and values (`[pos + seq, kv_heads * head_dim]`), into `out` (`[seq, heads *
/// head_dim]`).
///
/// The work is split by a few heads of one token at a time, each part walking the positions
/// and, at each, its heads: so it reads the cache a position's heads at a time, in the order
/// they lie, where a head at a time would stride over the whole width of the cache for each
/// 64 values (a generated token's attention is bound by reading the cache). Every head's sums
/// are taken in the same order either way.
pub(super) fn attend(w: &Weights, q: &[f32], keys: Lent, values: Lent, pos: usize, out: &mut [f32], threads: Threads) {
    use rayon::prelude::*;
    let (hd, kv) = (w.head_dim, w.kv_heads * w.head_dim);
    let group = w.heads / w.kv_heads;
    let scale = 1.0 / (hd as f32).sqrt();
    // Heads per part: a divisor of the heads, about four parts a thread per token.
    let per = (1..=w.heads)
        .rev()
        .find(|d| w.heads.is_multiple_of(*d) && *d <= (w.heads / (4 * threads.one_token())).max(1))
        .unwrap_or(1);
    // Part i: heads h0..h0 + per of token t, rows i * per.. of `out`.
    let part = |(i, o): (usize, &mut [f32])| {
        let (t, h0) = (i * per / w.heads, i * per % w.heads);
        let seen = pos + t + 1;
        let queries = &q[(t * w.heads + h0) * hd..(t * w.heads + h0 + per) * hd];
        let at: Vec<usize> = (h0..h0 + per).map(|h| (h / group) * hd).collect();
        let mut weights = vec![0f32; per * seen];
        scores(queries, keys, kv, &at, scale, &mut weights);
        for row in weights.chunks_exact_mut(seen) {
            let max = row.iter().fold(f32::NEG_INFINITY, |m, &s| m.max(s));
            let mut total = 0f32;
            for s in row.iter_mut() {
                *s = (*s - max).exp();
                total += *s;
            }
            row.iter_mut().for_each(|s| *s /= total);
        }
        weigh(&weights, values, kv, &at, o);
    };
    // One token's heads on the team; more tokens' on the pool only when there is one (inside
    // it), else rayon's global pool would take the work.
    match (threads.team, threads.pool) {
        (Some(team), _) if q.len() == w.heads * hd => {
            let parts = Parts::new(out, per * hd);
            // SAFETY: the team runs each index once.
            team.run(parts.count(), &|i| part((i, unsafe { parts.get(i) })));
        }
        (_, Some(_)) => out.par_chunks_mut(per * hd).enumerate().for_each(part),
        _ => out.chunks_mut(per * hd).enumerate().for_each(part),
    }
}
