//! The matrix product of a weight matrix and the activations of one or more tokens, its rows
//! split over the network's threads ([`matmul`]), and matrices that read the same input
//! stacked into one ([`Group`]: query/key/value, gate/up). It leaves the arithmetic to the
//! kernels (`kernels.rs`).

use super::blocks::{Input, Matrix, Quantised, TILE};
use super::kernels::{quantize, rows, rows2, rows4};
use super::team::Team;

/// The network's threads: a rayon pool for the products of many tokens, a [`Team`] for those
/// of one; neither when it computes on the caller's thread alone.
#[derive(Clone, Copy, Default)]
pub(super) struct Threads<'a> {
    pub pool: Option<&'a rayon::ThreadPool>,
    pub team: Option<&'a Team>,
}

impl Threads<'_> {
    /// The threads a product of one token is split over.
    pub(super) fn one_token(&self) -> usize {
        self.team
            .map_or_else(|| self.pool.map_or(1, |p| p.current_num_threads()), Team::threads)
    }
}

/// `out[t][r] = w_r · x_t` for every token t of `xs` (`[tokens, cols]`), the rows split over
/// the threads when there are several.
pub(super) fn matmul(w: &Matrix, xs: &[f32], q: &mut Quantised, out: &mut Vec<f32>, threads: Threads) {
    use rayon::prelude::*;
    let pool = threads.pool;
    let tokens = xs.len() / w.cols;
    q.q.clear();
    q.k.clear();
    quantize(w.kind, xs, q);
    let q = &*q;
    // Each token's blocks: the ones of this matrix's kind, the others empty.
    let (per_q, per_k) = (q.q.len() / tokens.max(1), q.k.len() / tokens.max(1));
    let input = |t: usize| Input {
        x: &xs[t * w.cols..(t + 1) * w.cols],
        q: &q.q[t * per_q..(t + 1) * per_q],
        k: &q.k[t * per_k..(t + 1) * per_k],
    };
    out.clear();
    out.resize(tokens * w.rows, 0.0);
    if tokens == 1 {
        // Whole tiles of a tiled matrix.
        let chunk = w.rows.div_ceil(threads.one_token() * 4).next_multiple_of(TILE).max(16);
        let run = |(i, c): (usize, &mut [f32])| rows(w, i * chunk, c, &input(0));
        match (threads.team, pool) {
            (Some(team), _) if w.rows > chunk => {
                let parts = Parts::new(out, chunk);
                // SAFETY: the team runs each index once.
                team.run(parts.count(), &|i| run((i, unsafe { parts.get(i) })));
            }
            (None, Some(pool)) if w.rows > chunk => {
                pool.install(|| out.par_chunks_mut(chunk).enumerate().for_each(run))
            }
            _ => out.chunks_mut(chunk).enumerate().for_each(run),
        }
        return;
    }
    // Groups of rows small enough to stay in the cache while every token passes over them.
    const GROUP: usize = 2 * TILE;
    let group = |g: usize| {
        let (first, n) = (g * GROUP, GROUP.min(w.rows - g * GROUP));
        let mut values = vec![0f32; tokens * n];
        let mut t = 0;
        for quad in values.chunks_exact_mut(4 * n) {
            let (ab, cd) = quad.split_at_mut(2 * n);
            let ((a, b), (c, d)) = (ab.split_at_mut(n), cd.split_at_mut(n));
            rows4(
                w,
                first,
                [a, b, c, d],
                [&input(t), &input(t + 1), &input(t + 2), &input(t + 3)],
            );
            t += 4;
        }
        for pair in values[t * n..].chunks_exact_mut(2 * n) {
            let (a, b) = pair.split_at_mut(n);
            rows2(w, first, [a, b], [&input(t), &input(t + 1)]);
            t += 2;
        }
        if t < tokens {
            rows(w, first, &mut values[t * n..], &input(t));
        }
        values
    };
    let groups = w.rows.div_ceil(GROUP);
    let done: Vec<Vec<f32>> = match pool {
        Some(pool) => pool.install(|| (0..groups).into_par_iter().map(group).collect()),
        None => (0..groups).map(group).collect(),
    };
    for (g, values) in done.iter().enumerate() {
        let n = values.len() / tokens;
        for (t, v) in values.chunks_exact(n).enumerate() {
            out[t * w.rows + g * GROUP..t * w.rows + g * GROUP + n].copy_from_slice(v);
        }
    }
}

/// Matrices that multiply the same input, stacked into one when they are of one kind: the
/// input is then quantised once, and its rows are split over the threads in one go.
pub(super) enum Group {
    /// The stacked matrix and the rows of each part.
    Stacked(Matrix, Vec<usize>),
    Apart(Vec<Matrix>),
}

impl Group {
    /// The parts, stacked where they can be, tiled ([`Matrix::tile`]): each part's tiles are
    /// written straight into the stack's, in memory of huge pages.
    pub(super) fn new(parts: Vec<Matrix>) -> Group {
        let first = &parts[0];
        if parts
            .iter()
            .any(|m| m.kind != first.kind || m.cols != first.cols || m.tiled)
        {
            return Group::Apart(parts.into_iter().map(Matrix::tile).collect());
        }
        let rows: Vec<usize> = parts.iter().map(|m| m.rows).collect();
        let (kind, cols) = (first.kind, first.cols);
        let data: Vec<&[u8]> = parts.iter().map(|m| m.data.as_slice()).collect();
        // Parts whose rows do not fill whole tiles stack as rows.
        let tiled = rows.iter().all(|&r| super::blocks::tiles(kind, r));
        let data = if tiled {
            super::blocks::interleaved(kind, cols, &data)
        } else {
            let mut stacked = super::blocks::huge_buffer(data.iter().map(|d| d.len()).sum());
            data.iter().for_each(|d| stacked.extend_from_slice(d));
            stacked
        };
        let stacked = Matrix {
            kind,
            rows: rows.iter().sum(),
            cols,
            data,
            tiled,
        };
        Group::Stacked(stacked, rows)
    }

    /// `outs[i] = part_i · x_t` for every token t of `xs`, as [`matmul`] lays them out.
    pub(super) fn matmul(
        &self,
        xs: &[f32],
        q: &mut Quantised,
        stacked: &mut Vec<f32>,
        outs: &mut [&mut Vec<f32>],
        threads: Threads,
    ) {
        match self {
            Group::Apart(parts) => {
                for (m, out) in parts.iter().zip(outs) {
                    matmul(m, xs, q, out, threads);
                }
            }
            Group::Stacked(m, rows) => {
                matmul(m, xs, q, stacked, threads);
                let mut at = 0;
                for (&n, out) in rows.iter().zip(outs) {
                    out.clear();
                    for token in stacked.chunks_exact(m.rows) {
                        out.extend_from_slice(&token[at..at + n]);
                    }
                    at += n;
                }
            }
        }
    }
}

/// A slice cut into chunks that threads may each borrow one of, mutably: what
/// `par_chunks_mut` gives rayon, for a [`Team`].
pub(super) struct Parts<'a> {
    base: *mut f32,
    len: usize,
    chunk: usize,
    _slice: std::marker::PhantomData<&'a mut [f32]>,
}

// SAFETY: chunks are disjoint, and `Team::run` hands each index to one thread.
unsafe impl Sync for Parts<'_> {}

impl<'a> Parts<'a> {
    pub(super) fn new(slice: &'a mut [f32], chunk: usize) -> Parts<'a> {
        assert!(chunk > 0, "chunks hold something");
        Parts {
            base: slice.as_mut_ptr(),
            len: slice.len(),
            chunk,
            _slice: std::marker::PhantomData,
        }
    }

    pub(super) fn count(&self) -> usize {
        self.len.div_ceil(self.chunk)
    }

    /// Chunk `i`.
    ///
    /// # Safety
    /// While the chunk is borrowed, no one else may take index `i`: [`Team::run`] gives each
    /// part to one thread.
    #[allow(clippy::mut_from_ref)]
    pub(super) unsafe fn get(&self, i: usize) -> &mut [f32] {
        let start = i * self.chunk;
        assert!(start < self.len, "chunk {i} is past the slice");
        let n = self.chunk.min(self.len - start);
        // SAFETY: in bounds (checked above), disjoint from every other index's chunk, and
        // borrowed once (the caller's promise).
        unsafe { std::slice::from_raw_parts_mut(self.base.add(start), n) }
    }
}
