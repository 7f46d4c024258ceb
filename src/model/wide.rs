//! The risk model's wide path: one learned weight per token *present* in a hunk's added
//! lines, removed lines, or file name, plus the size features, stacked with the
//! transformer's logit.
//!
//! It reads the same [`Encoded`] ids the transformer reads (one preprocessing path), so a
//! token counts only within the transformer's `max_len` window. Measured on the training
//! data (weights/MODEL_CARD.md), this linear path ranks hunks better than the transformer,
//! within the training projects and on projects left out of training; the transformer's
//! logit enters with the weight `deep`, fitted with the wide logit on the calibration split.
//! Inference is plain arithmetic over the ids (no tensors). This module neither trains
//! (see `train::wide`) nor calibrates (Platt scaling still follows, see `config`).

use crate::tokenize::{ADD, DEL, Encoded, FILE, LANG, N_SPECIAL, NO_LINE};

/// Token weights are laid out `[side * vocab_size + id]`, sides in this order.
pub const SIDES: usize = 3;
const SIDE_ADDED: usize = 0;
const SIDE_REMOVED: usize = 1;
const SIDE_NAME: usize = 2;

/// Tensor names in `model.safetensors` (present exactly when `config.wide` is true).
pub const TOKENS: &str = "wide.tokens";
pub const FEATURES: &str = "wide.features";
pub const BIAS: &str = "wide.bias";
pub const DEEP: &str = "wide.deep";
/// The pair path's weights (present exactly when `config.pair` is true).
pub const PAIR: &str = "pair.tokens";
/// The pair path's hashed token-bigram weights (present exactly when `config.pair_bigrams`
/// is not 0): `SIDES * pair_bigrams` weights, laid out `[side * buckets + bucket]`.
pub const PAIR_BIGRAMS: &str = "pair.bigrams";

#[derive(Debug, Clone, PartialEq)]
pub struct Wide {
    /// `SIDES * vocab_size` weights.
    pub tokens: Vec<f32>,
    /// One weight per size feature (`config.n_features`).
    pub features: Vec<f32>,
    pub bias: f32,
    /// The weight of the transformer's logit in the combined logit.
    pub deep: f32,
}

/// The side the tokens after a special token belong to.
fn side_after(special: u32, side: usize) -> usize {
    match special {
        ADD => SIDE_ADDED,
        DEL => SIDE_REMOVED,
        FILE | LANG => SIDE_NAME,
        _ => side,
    }
}

/// The distinct (side, token) features of a hunk, each with the hunk line where it first
/// occurs ([`NO_LINE`] for the file name and language), in order of first occurrence.
pub fn active(enc: &Encoded, vocab_size: usize) -> Vec<(usize, u32)> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    let mut side = SIDE_NAME;
    for (&id, &line) in enc.ids.iter().zip(&enc.line) {
        if id < N_SPECIAL {
            side = side_after(id, side);
            continue;
        }
        let id = id as usize;
        if id >= vocab_size {
            continue;
        }
        let f = side * vocab_size + id;
        if seen.insert(f) {
            out.push((f, line));
        }
    }
    out
}

impl Wide {
    pub fn vocab_size(&self) -> usize {
        self.tokens.len() / SIDES
    }

    /// The wide logit alone (without the transformer's share).
    pub fn logit(&self, enc: &Encoded) -> f32 {
        let tokens: f32 = active(enc, self.vocab_size())
            .iter()
            .map(|&(f, _)| self.tokens[f])
            .sum();
        let features: f32 = self.features.iter().zip(&enc.features).map(|(w, x)| w * x).sum();
        tokens + features + self.bias
    }

    /// The model's logit: the transformer's, weighted, plus the wide logit.
    pub fn combine(&self, deep_logit: f32, enc: &Encoded) -> f32 {
        self.deep * deep_logit + self.logit(enc)
    }

    /// Each hunk line's share of the wide logit: the weights of the tokens first seen on it.
    pub fn line_contributions(&self, enc: &Encoded, n_lines: usize) -> Vec<f32> {
        let mut out = vec![0f32; n_lines];
        for (f, line) in active(enc, self.vocab_size()) {
            if line != NO_LINE && (line as usize) < n_lines {
                out[line as usize] += self.tokens[f];
            }
        }
        out
    }

    /// Folds a stacking fit `a * deep + b * wide + c` into this path.
    pub fn stacked(mut self, a: f32, b: f32, c: f32) -> Wide {
        for w in self.tokens.iter_mut().chain(self.features.iter_mut()) {
            *w *= b;
        }
        self.bias = self.bias * b + c;
        self.deep = a;
        self
    }
}

/// The pair path: one weight per (side, token) present in a hunk, like the wide path's token
/// weights, and optionally one per hashed (side, token, next token on the same line) present,
/// so that it sees `<` beside `=`, `!` before a name, `null` after `==`; fitted only on
/// bug/fix pairs (the buggy version's logit above its fix's; see `train::wide::fit_pairs`).
/// Its logit means nothing on its own: only the difference between two versions of the same
/// hunk does (which reads as buggier). It has no size features, so it does not prefer the
/// shorter version; the risk never includes it.
#[derive(Debug, Clone, PartialEq)]
pub struct PairPath {
    /// `SIDES * vocab_size` weights.
    pub tokens: Vec<f32>,
    /// `SIDES * buckets` bigram weights; empty when the path has none.
    pub bigrams: Vec<f32>,
}

/// The distinct pair-path features of a hunk, as indices into the weights `tokens` then
/// `bigrams` laid end to end: each (side, token) of [`active`], then each (side, hashed
/// bigram) of two in-vocabulary tokens next to each other on one line, in order of first
/// occurrence. `buckets` 0 gives the tokens alone.
pub fn pair_features(enc: &Encoded, vocab_size: usize, buckets: usize) -> Vec<usize> {
    let mut out: Vec<usize> = active(enc, vocab_size).into_iter().map(|(f, _)| f).collect();
    if buckets == 0 {
        return out;
    }
    let base = SIDES * vocab_size;
    let mut seen = std::collections::HashSet::new();
    let mut side = SIDE_NAME;
    let mut prev: Option<(u32, u32)> = None;
    for (&id, &line) in enc.ids.iter().zip(&enc.line) {
        if id < N_SPECIAL {
            side = side_after(id, side);
            prev = None;
            continue;
        }
        if id as usize >= vocab_size || line == NO_LINE {
            prev = None;
            continue;
        }
        if let Some((p, pline)) = prev
            && pline == line
        {
            let f = base + side * buckets + bucket(p, id, buckets);
            if seen.insert(f) {
                out.push(f);
            }
        }
        prev = Some((id, line));
    }
    out
}

/// A fixed hash of an ordered token pair into `0..buckets` (the same on every machine).
fn bucket(a: u32, b: u32, buckets: usize) -> usize {
    let mut h = (u64::from(a) << 32 | u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h ^= h >> 29;
    h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h ^= h >> 32;
    (h % buckets as u64) as usize
}

impl PairPath {
    pub fn vocab_size(&self) -> usize {
        self.tokens.len() / SIDES
    }

    pub fn buckets(&self) -> usize {
        self.bigrams.len() / SIDES
    }

    /// The weight of one feature of [`pair_features`].
    pub fn weight(&self, f: usize) -> f32 {
        match self.tokens.get(f) {
            Some(&w) => w,
            None => self.bigrams[f - self.tokens.len()],
        }
    }

    pub fn logit(&self, enc: &Encoded) -> f32 {
        pair_features(enc, self.vocab_size(), self.buckets())
            .into_iter()
            .map(|f| self.weight(f))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(ids: Vec<u32>, line: Vec<u32>) -> Encoded {
        Encoded {
            ids,
            line,
            features: [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        }
    }

    #[test]
    fn a_token_counts_once_per_side() {
        let n = NO_LINE;
        // <file> 7 <lang> 8 <add> 9 9 <del> 9 <add> 9
        let e = enc(
            vec![FILE, 7, LANG, 8, ADD, 9, 9, DEL, 9, ADD, 9],
            vec![n, n, n, n, 0, 0, 0, 1, 1, 2, 2],
        );
        let v = 10;
        let a = active(&e, v);
        assert_eq!(a, vec![(2 * v + 7, n), (2 * v + 8, n), (9, 0), (v + 9, 1)]);
        let mut w = Wide {
            tokens: vec![0.0; SIDES * v],
            features: vec![0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            bias: -1.0,
            deep: 2.0,
        };
        w.tokens[9] = 1.0;
        w.tokens[v + 9] = -0.25;
        w.tokens[2 * v + 7] = 0.125;
        assert_eq!(w.logit(&e), 1.0 - 0.25 + 0.125 + 0.5 - 1.0);
        assert_eq!(w.combine(1.5, &e), 3.0 + w.logit(&e));
        assert_eq!(w.line_contributions(&e, 3), vec![1.0, -0.25, 0.0]);
        let s = w.clone().stacked(0.5, 2.0, 1.0);
        assert_eq!(s.logit(&e), 2.0 * w.logit(&e) + 1.0);
        assert_eq!(s.deep, 0.5);
    }

    #[test]
    fn out_of_vocabulary_ids_are_ignored() {
        let e = enc(vec![ADD, 50, 6], vec![0, 0, 0]);
        assert_eq!(active(&e, 10), vec![(6, 0)]);
    }

    #[test]
    fn pair_bigrams_are_neighbours_on_one_line_per_side() {
        let n = NO_LINE;
        // <file> 7 8 <add> 9 6 6 9 | <add> 9 | <del> 9 6
        let e = enc(
            vec![FILE, 7, 8, ADD, 9, 6, 6, 9, ADD, 9, DEL, 9, 6],
            vec![n, n, n, 0, 0, 0, 0, 0, 1, 1, 2, 2, 2],
        );
        let (v, b) = (10, 16);
        let base = SIDES * v;
        assert_eq!(pair_features(&e, v, 0), vec![2 * v + 7, 2 * v + 8, 9, 6, v + 9, v + 6]);
        let f = pair_features(&e, v, b);
        let added = |x, y| base + bucket(x, y, b);
        let removed = |x, y| base + b + bucket(x, y, b);
        // Added (9,6), (6,6), (6,9) once each; nothing across lines nor from the file name;
        // the removed side's (9,6) is its own feature.
        let mut want = vec![added(9, 6), added(6, 6), added(6, 9), removed(9, 6)];
        want.dedup();
        assert_eq!(f[..6], pair_features(&e, v, 0)[..]);
        assert_eq!(f[6..], want[..]);
        assert!(f[6..].iter().all(|&i| (base..base + SIDES * b).contains(&i)));
        // The logit sums the weights of both kinds.
        let mut p = PairPath {
            tokens: vec![0.0; SIDES * v],
            bigrams: vec![0.0; SIDES * b],
        };
        p.tokens[9] = 1.0;
        p.bigrams[b + bucket(9, 6, b)] = -0.5;
        assert_eq!(p.logit(&e), 0.5);
        // Without bigram weights the same path reads the tokens alone.
        p.bigrams.clear();
        assert_eq!(p.logit(&e), 1.0);
    }
}
