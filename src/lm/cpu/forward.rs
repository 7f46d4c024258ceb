//! One pass through the network: the embedding lookup, each layer (RMS norm, the query/key/value
//! products, rotary angles, attention, the output product, the gated feed-forward) and the
//! output layer, with the keys and values added to the cache; the logits after the last token
//! or after each. Attention itself is in `attention.rs`, the products in `matmul.rs`.

use super::CpuNet;
use super::attention::{Angles, MATMUL_ATTENTION, QUERY_CHUNK, attend, attend_matmul};
use super::blocks::Quantised;
use super::cache::Cache;
use super::kernels::dot_f32;
use super::matmul::{Threads, matmul};
use std::sync::Arc;

impl CpuNet {
    /// `pos` tokens and takes these.
    pub fn forward(&mut self, ids: &[u32], pos: usize) -> candle_core::Result<Vec<f32>> {
        self.in_pool(|net| {
            let x = net.hidden(ids, pos)?;
            let e = net.w.embedding.cols;
            Ok(net.logits(&x[x.len() - e..]))
        })
    }

    /// As [`forward`](Self::forward), the logits after each of `ids`, `[ids.len(), vocab]`:
    /// row i predicts the token after `ids[i]` (scoring a text in one pass).
    pub fn forward_all(&mut self, ids: &[u32], pos: usize) -> candle_core::Result<Vec<f32>> {
        self.in_pool(|net| {
            let x = net.hidden(ids, pos)?;
            Ok(net.logits(&x))
        })
    }

    /// Reads `ids` at positions `pos..` into the cache, without the output layer.
    pub fn read(&mut self, ids: &[u32], pos: usize) -> candle_core::Result<()> {
        self.in_pool(|net| net.hidden(ids, pos).map(drop))
    }

    /// Runs `f` on one of the pool's threads, if there is a pool: the matrix products then
    /// split from inside it, which costs far less per product than entering it each time.
    fn in_pool<T: Send>(&mut self, f: impl FnOnce(&mut CpuNet) -> T + Send) -> T {
        match self.pool.clone() {
            Some(pool) => pool.install(|| f(self)),
            None => f(self),
        }
    }

    fn threads(&self) -> Threads<'_> {
        Threads {
            pool: self.pool.as_deref(),
            team: self.team.as_deref(),
        }
    }

    /// The output layer after the final norm, for each token of `x` (`[tokens, embedding]`).
    fn logits(&self, x: &[f32]) -> Vec<f32> {
        let w = &self.w;
        let mut normed = vec![0f32; x.len()];
        rms_norm(x, &w.norm, w.eps, &mut normed);
        let (mut q, mut logits) = (Quantised::default(), Vec::new());
        matmul(
            w.output.as_ref().unwrap_or(&w.embedding),
            &normed,
            &mut q,
            &mut logits,
            self.threads(),
        );
        logits
    }

    /// The hidden states of `ids` after the last block (`[ids.len(), embedding]`), their keys
    /// and values added to the cache after its first `pos` tokens.
    fn hidden(&mut self, ids: &[u32], pos: usize) -> candle_core::Result<Vec<f32>> {
        let w = Arc::clone(&self.w);
        let (seq, e) = (ids.len(), w.embedding.cols);
        if seq == 0 {
            candle_core::bail!("nothing to read");
        }
        if pos > self.len {
            candle_core::bail!("position {pos} is past the {} tokens read", self.len);
        }
        if pos + seq > w.context {
            candle_core::bail!("{} positions exceed the context of {}", pos + seq, w.context);
        }
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= w.embedding.rows) {
            candle_core::bail!("token {id} is outside the embedding");
        }
        let kv = w.kv_heads * w.head_dim;
        for (k, v) in self.keys.iter_mut().zip(&mut self.values) {
            k.truncate(pos * kv);
            v.truncate(pos * kv);
        }
        // Owned here, as the cache is written while they are lent.
        let (pool, team) = (self.pool.clone(), self.team.clone());
        let threads = Threads {
            pool: pool.as_deref(),
            team: team.as_deref(),
        };
        let mut x = vec![0f32; seq * e];
        for (row, &id) in x.chunks_exact_mut(e).zip(ids) {
            w.embedding.dequantize_row(id as usize, row);
        }
        let (mut h, mut q) = (vec![0f32; seq * e], Quantised::default());
        let (mut a, mut b, mut c, mut stacked) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let angles = Angles::new(&w.theta, pos, seq);
        for (i, l) in w.layers.iter().enumerate() {
            rms_norm(&x, &l.attn_norm, w.eps, &mut h);
            l.qkv
                .matmul(&h, &mut q, &mut stacked, &mut [&mut a, &mut b, &mut c], threads);
            if let Some([bq, bk, bv]) = &l.bias {
                add_rows(&mut a, bq);
                add_rows(&mut b, bk);
                add_rows(&mut c, bv);
            }
            angles.rotate(&mut a, w.head_dim, w.interleaved);
            angles.rotate(&mut b, w.head_dim, w.interleaved);
            self.keys[i].extend(&b);
            self.values[i].extend(&c);
            if seq >= MATMUL_ATTENTION {
                let (k, v) = (self.keys[i].f32s(), self.values[i].f32s());
                attend_matmul(&w, &a, &k, &v, pos, &mut h, QUERY_CHUNK)?;
            } else {
                attend(&w, &a, self.keys[i].lend(), self.values[i].lend(), pos, &mut h, threads);
            }
            matmul(&l.out, &h, &mut q, &mut a, threads);
            add(&mut x, &a);
            rms_norm(&x, &l.ffn_norm, w.eps, &mut h);
            l.gate_up
                .matmul(&h, &mut q, &mut stacked, &mut [&mut a, &mut b], threads);
            for (g, u) in a.iter_mut().zip(&b) {
                *g = *g / (1.0 + (-*g).exp()) * u;
            }
            matmul(&l.down, &a, &mut q, &mut b, threads);
            add(&mut x, &b);
        }
        self.len = pos + seq;
        Ok(x)
    }

    /// The same network with an empty cache (the weights shared).
    pub fn empty(&self) -> CpuNet {
        CpuNet {
            w: Arc::clone(&self.w),
            keys: self.keys.iter().map(Cache::empty).collect(),
            values: self.values.iter().map(Cache::empty).collect(),
            len: 0,
            pool: self.pool.clone(),
            team: self.team.clone(),
        }
    }

    /// Tokens whose keys and values the cache holds.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let e = weight.len();
    for (row, o) in x.chunks_exact(e).zip(out.chunks_exact_mut(e)) {
        let mean = dot_f32(row, row) / e as f32;
        let scale = 1.0 / (mean + eps).sqrt();
        for ((o, v), w) in o.iter_mut().zip(row).zip(weight) {
            *o = v * scale * w;
        }
    }
}

fn add(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

fn add_rows(x: &mut [f32], bias: &[f32]) {
    for row in x.chunks_exact_mut(bias.len()) {
        add(row, bias);
    }
}
