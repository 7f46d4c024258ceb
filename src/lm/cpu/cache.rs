//! The keys and values of the tokens read, one [`Cache`] per layer and side, after the rotary
//! embedding: f32 for a network whose weights are f32 or f16, so that its numbers are
//! candle-transformers'; f16 for a quantised one, as llama.cpp holds them. A generated token's
//! attention reads the whole cache, and on a 1.7B model 200 tokens in, that was 15% of a token's
//! time: f16 halves the bytes, and its rounding (11 bits) is far below the 8-bit activations' the
//! quantised products already take. It does not compute attention (`attention.rs` does).

use half::f16;
use half::slice::HalfFloatSliceExt;
use std::borrow::Cow;

/// `[tokens, kv_heads, head_dim]` of one layer's keys or values.
#[derive(Clone)]
pub(super) enum Cache {
    F32(Vec<f32>),
    F16(Vec<f16>),
}

/// A cache as the attention kernels read it.
#[derive(Clone, Copy)]
pub(super) enum Lent<'a> {
    F32(&'a [f32]),
    F16(&'a [f16]),
}

impl Cache {
    /// An empty cache, f16 when `half`.
    pub(super) fn new(half: bool) -> Cache {
        match half {
            true => Cache::F16(Vec::new()),
            false => Cache::F32(Vec::new()),
        }
    }

    /// An empty cache of the same type.
    pub(super) fn empty(&self) -> Cache {
        Cache::new(matches!(self, Cache::F16(_)))
    }

    /// Keeps the first `n` values.
    pub(super) fn truncate(&mut self, n: usize) {
        match self {
            Cache::F32(v) => v.truncate(n),
            Cache::F16(v) => v.truncate(n),
        }
    }

    /// Appends `x`, rounded to the nearest f16 when the cache holds f16.
    pub(super) fn extend(&mut self, x: &[f32]) {
        match self {
            Cache::F32(v) => v.extend_from_slice(x),
            Cache::F16(v) => {
                let at = v.len();
                v.resize(at + x.len(), f16::ZERO);
                v[at..].convert_from_f32_slice(x);
            }
        }
    }

    pub(super) fn lend(&self) -> Lent<'_> {
        match self {
            Cache::F32(v) => Lent::F32(v),
            Cache::F16(v) => Lent::F16(v),
        }
    }

    /// Every value as f32 (copied when the cache holds f16), for candle's matrix products.
    pub(super) fn f32s(&self) -> Cow<'_, [f32]> {
        match self {
            Cache::F32(v) => Cow::Borrowed(v),
            Cache::F16(v) => Cow::Owned(v.to_f32_vec()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_half_cache_rounds_to_the_nearest_f16_and_rewinds() {
        let x = [1.0f32, 0.1, -3.3e-5, 65504.0, 1e-9];
        let (mut full, mut half) = (Cache::new(false), Cache::new(true));
        for c in [&mut full, &mut half] {
            c.extend(&x);
            c.extend(&x);
            c.truncate(7);
        }
        assert_eq!(full.f32s().as_ref(), [&x[..], &x[..2]].concat());
        let rounded: Vec<f32> = x.iter().map(|&v| f16::from_f32(v).to_f32()).collect();
        assert_eq!(half.f32s().as_ref(), [&rounded[..], &rounded[..2]].concat());
        assert_ne!(rounded[1], x[1], "0.1 has no exact f16");
        assert!(matches!(half.empty(), Cache::F16(v) if v.is_empty()));
        assert!(matches!(full.lend(), Lent::F32(v) if v.len() == 7));
    }
}
