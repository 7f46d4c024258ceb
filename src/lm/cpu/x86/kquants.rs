//! The AVX2 dot products of K-quant rows (Q4_K, Q5_K, Q6_K: 256 weights a super-block) with
//! activations quantised per 256 ([`KBlock`]), for one input or several at once (each
//! super-block's weights unpacked once for all of them), and that quantisation. As ggml does:
//! the weights' small integers times the activations' bytes with `maddubs`, the 6-bit or 8-bit
//! scales applied in integers with `madd` (AVX-512 VNNI's `dpwssd`, which also adds, where the
//! CPU has it: see `Products`), one float multiply per super-block; the minimums
//! (Q4_K, Q5_K) and Q6_K's offset of 32 go through the sums of 16 activations. They compute what
//! `scalar.rs` computes (tests compare them); they do not choose rows or threads.

use super::super::blocks::{Input, KBlock, Kind, Matrix, SUPER, TILE};
use super::{Products, half_at, hsum};
use std::arch::x86_64::*;

/// Rows `first..first + out[t].len()` of the K-quant `w` times each of `N` inputs, the
/// scaled byte products summed by `P`.
///
/// # Safety
/// The CPU has AVX2, FMA, F16C and `P`'s instructions; the rows are within `w`; each input
/// has `w.cols / 256` super-blocks and each output as many values as the first.
#[inline(always)]
pub unsafe fn rows_by<P: Products, const N: usize>(w: &Matrix, first: usize, out: [&mut [f32]; N], input: [&Input; N]) {
    let mut out = out;
    for i in 0..out[0].len() {
        let row = &*w.row(first + i);
        // SAFETY: the caller's: a whole row, one super-block of each input per block of it.
        let values = unsafe {
            match w.kind {
                Kind::Q4K => q45_k::<P, N, false>(row, input),
                Kind::Q5K => q45_k::<P, N, true>(row, input),
                Kind::Q6K => q6_k::<P, N>(row, input),
                _ => unreachable!("a K-quant product of a {:?} matrix", w.kind),
            }
        };
        for (o, v) in out.iter_mut().zip(values) {
            o[i] = v;
        }
    }
}

/// A Q4_K row (`FIVE` false; 144 bytes a super-block) or a Q5_K row (`FIVE`; 176) times each
/// of `N` inputs.
///
/// # Safety
/// The CPU has AVX2, FMA, F16C and `P`'s instructions; each input has a super-block for each
/// of `row`'s.
#[inline(always)]
pub(super) unsafe fn q45_k<P: Products, const N: usize, const FIVE: bool>(row: &[u8], input: [&Input; N]) -> [f32; N] {
    // SAFETY: the caller's: the CPU has AVX2, FMA, F16C and `P`'s instructions, and each
    // input has a super-block for each of the row's.
    unsafe {
        let size = if FIVE { 176 } else { 144 };
        let (low4, bit4) = (_mm256_set1_epi8(15), _mm256_set1_epi8(16));
        let mut acc = [_mm256_setzero_ps(); N];
        let mut acc_min = [_mm_setzero_ps(); N];
        for (s, b) in row.chunks_exact(size).enumerate() {
            let p = b.as_ptr();
            // b holds a whole super-block: d, dmin, 12 bytes of scales, then (Q5_K) 32
            // bytes of fifth bits and 128 bytes of 4-bit values.
            let (d, dmin, scales_mins, mut high) = {
                (
                    half_at(p),
                    half_at(p.add(2)),
                    unpack_scales(p.add(4)),
                    if FIVE {
                        _mm256_loadu_si256(p.add(16) as *const __m256i)
                    } else {
                        _mm256_setzero_si256()
                    },
                )
            };
            let qs = if FIVE { 48 } else { 16 };
            let y = input.map(|i| &i.k[s]);
            // The minimums times each 32 activations' sum (pairs of the sums of 16).
            let mins = _mm256_extracti128_si256(scales_mins, 1);
            for t in 0..N {
                // sums holds 16 i16.
                let sums = _mm256_loadu_si256(y[t].sums.as_ptr() as *const __m256i);
                let pairs = _mm_hadd_epi16(_mm256_castsi256_si128(sums), _mm256_extracti128_si256(sums, 1));
                let m = _mm_cvtepi32_ps(_mm_madd_epi16(mins, pairs));
                acc_min[t] = _mm_fmadd_ps(_mm_set1_ps(dmin * y[t].d), m, acc_min[t]);
            }
            let scales = _mm256_broadcastsi128_si256(_mm256_castsi256_si128(scales_mins));
            let mut sum = [_mm256_setzero_si256(); N];
            for j in 0..4 {
                // 32 bytes of 4-bit values at qs + 32 j, within the super-block; j < 4.
                let (packed, scale_low, scale_high) = {
                    (
                        _mm256_loadu_si256(p.add(qs + 32 * j) as *const __m256i),
                        _mm256_shuffle_epi8(scales, scale_shuffle(2 * j)),
                        _mm256_shuffle_epi8(scales, scale_shuffle(2 * j + 1)),
                    )
                };
                let mut q_low = _mm256_and_si256(packed, low4);
                let mut q_high = _mm256_and_si256(_mm256_srli_epi16(packed, 4), low4);
                if FIVE {
                    // Bit 2j of byte l of the fifth bits belongs to value 64 j + l, bit 2j + 1 to
                    // value 64 j + 32 + l: move each to bit 4 of its byte (the 16-bit shifts
                    // carry nothing into the bits kept).
                    q_low = _mm256_or_si256(q_low, _mm256_and_si256(_mm256_slli_epi16(high, 4), bit4));
                    q_high = _mm256_or_si256(q_high, _mm256_and_si256(_mm256_slli_epi16(high, 3), bit4));
                    high = _mm256_srli_epi16(high, 2);
                }
                for t in 0..N {
                    // the super-block's 256 activations hold values 64 j .. 64 j + 64.
                    let (a, b) = {
                        let at = y[t].qs.as_ptr().add(64 * j);
                        (
                            _mm256_loadu_si256(at as *const __m256i),
                            _mm256_loadu_si256(at.add(32) as *const __m256i),
                        )
                    };
                    sum[t] = P::scaled_onto(P::scaled_onto(sum[t], q_low, a, scale_low), q_high, b, scale_high);
                }
            }
            for t in 0..N {
                acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * y[t].d), _mm256_cvtepi32_ps(sum[t]), acc[t]);
            }
        }
        let mut out = [0f32; N];
        for t in 0..N {
            let m = acc_min[t];
            let m = _mm_add_ps(m, _mm_movehl_ps(m, m));
            out[t] = hsum(acc[t]) - _mm_cvtss_f32(_mm_add_ss(m, _mm_movehdup_ps(m)));
        }
        out
    }
}

/// The eight rows of a tile of a tiled Q4_K matrix (`tiles.rs`) from `base` times each of `N`
/// inputs: per chunk, four 4-bit values of each of the eight rows against four of the input's
/// bytes (broadcast) into the rows' eight lanes, per sub-block the rows' eight scales applied at
/// once in integers, per super-block the minimums against the sub-blocks' sums of activations
/// and one float multiply for the eight rows.
///
/// # Safety
/// A tile of `input[t].k.len()` super-blocks is readable from `base`; every input has as many;
/// the CPU has AVX2, FMA, F16C and `P`'s instructions.
#[inline(always)]
pub(super) unsafe fn q4k_tile<P: Products, const N: usize>(base: *const u8, input: [&Input; N]) -> [__m256; N] {
    // SAFETY: the caller's: the CPU has AVX2, FMA, F16C and `P`'s instructions, and the
    // reads are within the tile and inputs it vouches for.
    unsafe {
        let low4 = _mm256_set1_epi8(15);
        let chains = (4 / N).max(1);
        let mut acc = [_mm256_setzero_ps(); N];
        for s in 0..input[0].k.len() {
            // Super-block s of the tile: d, dmin, scales, minimums, 4-bit values.
            let b = base.add(s * (TILE * 144 + 32));
            _mm_prefetch::<_MM_HINT_T0>(b.wrapping_add(super::PREFETCH) as *const i8);
            let (d, dmin) = (
                _mm256_cvtph_ps(_mm_loadu_si128(b as *const __m128i)),
                _mm256_cvtph_ps(_mm_loadu_si128(b.add(16) as *const __m128i)),
            );
            let y = input.map(|i| &i.k[s]);
            let mut total = [_mm256_setzero_si256(); N];
            for j in 0..4 {
                // Each sum in `chains` parts, so that fewer than four inputs do not wait on
                // each product's latency.
                let (mut lo, mut hi) = ([[_mm256_setzero_si256(); 4]; N], [[_mm256_setzero_si256(); 4]; N]);
                for c in 0..8 {
                    let packed = _mm256_loadu_si256(b.add(160 + 256 * j + 32 * c) as *const __m256i);
                    let (q_lo, q_hi) = (
                        _mm256_and_si256(packed, low4),
                        _mm256_and_si256(_mm256_srli_epi16(packed, 4), low4),
                    );
                    for t in 0..N {
                        // Activations 64 j + 4 c.. (sub-block 2j) and 32 further (2j + 1).
                        let at = y[t].qs.as_ptr().add(64 * j + 4 * c) as *const i32;
                        let part = c % chains;
                        lo[t][part] = P::onto(lo[t][part], q_lo, _mm256_set1_epi32(at.read_unaligned()));
                        hi[t][part] = P::onto(hi[t][part], q_hi, _mm256_set1_epi32(at.add(8).read_unaligned()));
                    }
                }
                let lo = lo.map(|parts| sum_parts(parts, chains));
                let hi = hi.map(|parts| sum_parts(parts, chains));
                // The eight rows' scales of sub-blocks 2j and 2j + 1.
                let (scale_lo, scale_hi) = (
                    _mm256_cvtepu8_epi32(_mm_loadl_epi64(b.add(32 + 16 * j) as *const __m128i)),
                    _mm256_cvtepu8_epi32(_mm_loadl_epi64(b.add(40 + 16 * j) as *const __m128i)),
                );
                for t in 0..N {
                    let scaled =
                        _mm256_add_epi32(_mm256_mullo_epi32(lo[t], scale_lo), _mm256_mullo_epi32(hi[t], scale_hi));
                    total[t] = _mm256_add_epi32(total[t], scaled);
                }
            }
            let mins =
                [0, 1, 2, 3].map(|k| _mm256_cvtepu8_epi16(_mm_loadu_si128(b.add(96 + 16 * k) as *const __m128i)));
            for t in 0..N {
                // The sums of each sub-block's 32 activations, 16 bits each, pair k in dword k.
                let sums = _mm256_loadu_si256(y[t].sums.as_ptr() as *const __m256i);
                let pairs = _mm_hadd_epi16(_mm256_castsi256_si128(sums), _mm256_extracti128_si256(sums, 1));
                let pairs = _mm256_broadcastsi128_si256(pairs);
                let m = _mm256_add_epi32(
                    _mm256_add_epi32(
                        _mm256_madd_epi16(mins[0], _mm256_shuffle_epi32::<0x00>(pairs)),
                        _mm256_madd_epi16(mins[1], _mm256_shuffle_epi32::<0x55>(pairs)),
                    ),
                    _mm256_add_epi32(
                        _mm256_madd_epi16(mins[2], _mm256_shuffle_epi32::<0xaa>(pairs)),
                        _mm256_madd_epi16(mins[3], _mm256_shuffle_epi32::<0xff>(pairs)),
                    ),
                );
                let yd = _mm256_set1_ps(y[t].d);
                let v = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(total[t]), yd), d, acc[t]);
                acc[t] = _mm256_fnmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(m), yd), dmin, v);
            }
        }
        acc
    }
}

/// The eight rows of a tile of a tiled Q6_K matrix (`tiles.rs`) from `base` times each of `N`
/// inputs: per group of chunks, four 6-bit values of each of the eight rows against four of the
/// input's bytes (broadcast) into the rows' eight lanes; per sub-block of 16 values, the offset
/// of 32 taken off through the input's sum of those 16 and the rows' eight scales applied at
/// once in integers; one float multiply per super-block for the eight rows.
///
/// # Safety
/// A tile of `input[t].k.len()` super-blocks is readable from `base`; every input has as many;
/// the CPU has AVX2, FMA, F16C and `P`'s instructions.
#[inline(always)]
pub(super) unsafe fn q6k_tile<P: Products, const N: usize>(base: *const u8, input: [&Input; N]) -> [__m256; N] {
    // SAFETY: the caller's: the CPU has AVX2, FMA, F16C and `P`'s instructions, and the
    // reads are within the tile and inputs it vouches for.
    unsafe {
        let (low4, bits45) = (_mm256_set1_epi8(15), _mm256_set1_epi8(0x30));
        let mut acc = [_mm256_setzero_ps(); N];
        for s in 0..input[0].k.len() {
            // Super-block s of the tile: d, scales, then the chunks of 6-bit values.
            let b = base.add(s * TILE * 210);
            let d = _mm256_cvtph_ps(_mm_loadu_si128(b as *const __m128i));
            let y = input.map(|i| &i.k[s]);
            let mut total = [_mm256_setzero_si256(); N];
            for h in 0..2 {
                for quarter in 0..2 {
                    // Sub-blocks 8h + 2k + quarter, k = 0..4.
                    let mut part = [[_mm256_setzero_si256(); 4]; N];
                    for c in 4 * quarter..4 * quarter + 4 {
                        let at = b.add(144 + 96 * (8 * h + c));
                        _mm_prefetch::<_MM_HINT_T0>(at.wrapping_add(super::PREFETCH) as *const i8);
                        let (lo_a, lo_b, high) = (
                            _mm256_loadu_si256(at as *const __m256i),
                            _mm256_loadu_si256(at.add(32) as *const __m256i),
                            _mm256_loadu_si256(at.add(64) as *const __m256i),
                        );
                        // Bits 4 and 5 of each value from its two high bits.
                        let q = [
                            _mm256_or_si256(
                                _mm256_and_si256(lo_a, low4),
                                _mm256_and_si256(_mm256_slli_epi16(high, 4), bits45),
                            ),
                            _mm256_or_si256(
                                _mm256_and_si256(lo_b, low4),
                                _mm256_and_si256(_mm256_slli_epi16(high, 2), bits45),
                            ),
                            _mm256_or_si256(
                                _mm256_and_si256(_mm256_srli_epi16(lo_a, 4), low4),
                                _mm256_and_si256(high, bits45),
                            ),
                            _mm256_or_si256(
                                _mm256_and_si256(_mm256_srli_epi16(lo_b, 4), low4),
                                _mm256_and_si256(_mm256_srli_epi16(high, 2), bits45),
                            ),
                        ];
                        for t in 0..N {
                            // Activations 128 h + 32 k + 4 c.., within the super-block's 256.
                            let x = y[t].qs.as_ptr().add(128 * h + 4 * c) as *const i32;
                            for (k, q) in q.iter().enumerate() {
                                let word = _mm256_set1_epi32(x.add(8 * k).read_unaligned());
                                part[t][k] = P::onto(part[t][k], *q, word);
                            }
                        }
                    }
                    #[allow(clippy::needless_range_loop)] // k also names the sub-block
                    for k in 0..4 {
                        let sub = 8 * h + 2 * k + quarter;
                        let scale = _mm256_cvtepi8_epi32(_mm_loadl_epi64(b.add(16 + 8 * sub) as *const __m128i));
                        for t in 0..N {
                            let offset = _mm256_set1_epi32(32 * i32::from(y[t].sums[sub]));
                            let sum = _mm256_sub_epi32(part[t][k], offset);
                            total[t] = _mm256_add_epi32(total[t], _mm256_mullo_epi32(sum, scale));
                        }
                    }
                }
            }
            for t in 0..N {
                let v = _mm256_mul_ps(_mm256_cvtepi32_ps(total[t]), _mm256_set1_ps(y[t].d));
                acc[t] = _mm256_fmadd_ps(v, d, acc[t]);
            }
        }
        acc
    }
}

/// The sum of the first `chains` of `parts`.
///
/// # Safety
/// The CPU has AVX2.
#[inline(always)]
pub(super) unsafe fn sum_parts(parts: [__m256i; 4], chains: usize) -> __m256i {
    // SAFETY: the caller's (AVX2).
    unsafe {
        match chains {
            1 => parts[0],
            2 => _mm256_add_epi32(parts[0], parts[1]),
            _ => _mm256_add_epi32(
                _mm256_add_epi32(parts[0], parts[1]),
                _mm256_add_epi32(parts[2], parts[3]),
            ),
        }
    }
}

/// A Q6_K row (210 bytes a super-block) times each of `N` inputs.
///
/// # Safety
/// The CPU has AVX2, FMA, F16C and `P`'s instructions; each input has a super-block for each
/// of `row`'s.
#[inline(always)]
pub(super) unsafe fn q6_k<P: Products, const N: usize>(row: &[u8], input: [&Input; N]) -> [f32; N] {
    // SAFETY: the caller's: the CPU has AVX2, FMA, F16C and `P`'s instructions, and each
    // input has a super-block for each of the row's.
    unsafe {
        let (low4, low2) = (_mm256_set1_epi8(15), _mm256_set1_epi8(3));
        let mut acc = [_mm256_setzero_ps(); N];
        for (s, b) in row.chunks_exact(210).enumerate() {
            let p = b.as_ptr();
            // b holds a whole super-block: 128 bytes of low bits, 64 of high bits, 16
            // scales, d.
            let (d, scales) = (half_at(p.add(208)), _mm_loadu_si128(p.add(192) as *const __m128i));
            let y = input.map(|i| &i.k[s]);
            // The offset of 32: Σ scale_g · 32 · (sum of group g's activations), taken off in
            // integers before the one float multiply.
            let wide = _mm256_cvtepi8_epi16(scales);
            let mut sum = [_mm256_setzero_si256(); N];
            for t in 0..N {
                // sums holds 16 i16.
                let sums = _mm256_loadu_si256(y[t].sums.as_ptr() as *const __m256i);
                sum[t] = _mm256_sub_epi32(sum[t], _mm256_slli_epi32(_mm256_madd_epi16(wide, sums), 5));
            }
            for half in 0..2 {
                // the half's 64 bytes of low bits and 32 of high bits are within b.
                let (low_a, low_b, bits) = {
                    (
                        _mm256_loadu_si256(p.add(64 * half) as *const __m256i),
                        _mm256_loadu_si256(p.add(64 * half + 32) as *const __m256i),
                        _mm256_loadu_si256(p.add(128 + 32 * half) as *const __m256i),
                    )
                };
                // Values 128 half + 32 k + l, k = 0..4 (see `blocks::q6`), 0..63 before the offset.
                let q = [
                    _mm256_or_si256(
                        _mm256_and_si256(low_a, low4),
                        _mm256_slli_epi16(_mm256_and_si256(bits, low2), 4),
                    ),
                    _mm256_or_si256(
                        _mm256_and_si256(low_b, low4),
                        _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(bits, 2), low2), 4),
                    ),
                    _mm256_or_si256(
                        _mm256_and_si256(_mm256_srli_epi16(low_a, 4), low4),
                        _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(bits, 4), low2), 4),
                    ),
                    _mm256_or_si256(
                        _mm256_and_si256(_mm256_srli_epi16(low_b, 4), low4),
                        _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(bits, 6), low2), 4),
                    ),
                ];
                for (k, q) in q.into_iter().enumerate() {
                    // Groups 8 half + 2k and 8 half + 2k + 1: eight copies of each scale.
                    // 4 half + k < 8.
                    let scale = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(scales, group_shuffle(4 * half + k)));
                    for t in 0..N {
                        // values 128 half + 32 k .. + 32 are within the 256 activations.
                        let a = _mm256_loadu_si256(y[t].qs.as_ptr().add(128 * half + 32 * k) as *const __m256i);
                        sum[t] = P::scaled_onto(sum[t], q, a, scale);
                    }
                }
            }
            for t in 0..N {
                acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * y[t].d), _mm256_cvtepi32_ps(sum[t]), acc[t]);
            }
        }
        acc.map(|a| hsum(a))
    }
}

/// The eight scales (low 128 bits) and eight minimums (high) of a Q4_K or Q5_K super-block as
/// 16-bit integers, from its twelve bytes of them (the layout `blocks::scales_mins` reads).
///
/// # Safety
/// `p` points at 12 readable bytes.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn unpack_scales(p: *const u8) -> __m256i {
    const LOW6: u32 = 0x3f3f_3f3f;
    const LOW4: u32 = 0x0f0f_0f0f;
    const TOP2: u32 = 0x0303_0303;
    // SAFETY: the caller's.
    let [a, b, c] = [0, 4, 8].map(|i| unsafe { std::ptr::read_unaligned(p.add(i) as *const u32) });
    let scales_high = (c & LOW4) | ((a >> 6) & TOP2) << 4;
    let mins_high = ((c >> 4) & LOW4) | ((b >> 6) & TOP2) << 4;
    _mm256_cvtepu8_epi16(_mm_setr_epi32(
        (a & LOW6) as i32,
        scales_high as i32,
        (b & LOW6) as i32,
        mins_high as i32,
    ))
}

/// A shuffle that copies 16-bit value `i` (< 8) of each 128-bit lane to all eight of its places.
///
/// # Safety
/// `i` < 8.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn scale_shuffle(i: usize) -> __m256i {
    // A table: built with `_mm256_setr_epi8` from `i`, the mask cost 32 inserts each time.
    static MASKS: [[u8; 32]; 8] = {
        let mut m = [[0u8; 32]; 8];
        let mut i = 0;
        while i < 8 {
            let mut b = 0;
            while b < 32 {
                m[i][b] = (2 * i + b % 2) as u8;
                b += 1;
            }
            i += 1;
        }
        m
    };
    // SAFETY: i < 8 (the caller's).
    unsafe { _mm256_loadu_si256(MASKS.get_unchecked(i).as_ptr() as *const __m256i) }
}

/// A shuffle of 16 bytes that copies byte `2i` to the first eight places and `2i + 1` to the
/// last eight.
///
/// # Safety
/// `i` < 8.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn group_shuffle(i: usize) -> __m128i {
    static MASKS: [[u8; 16]; 8] = {
        let mut m = [[0u8; 16]; 8];
        let mut i = 0;
        while i < 8 {
            let mut b = 0;
            while b < 16 {
                m[i][b] = (2 * i + b / 8) as u8;
                b += 1;
            }
            i += 1;
        }
        m
    };
    // SAFETY: i < 8 (the caller's).
    unsafe { _mm_loadu_si128(MASKS.get_unchecked(i).as_ptr() as *const __m128i) }
}

/// [`super::super::scalar::quantize_super`] of 256 values.
///
/// # Safety
/// `c` holds 256 values.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn quantize_super(c: &[f32]) -> KBlock {
    assert!(c.len() >= SUPER);
    let sign = _mm256_set1_ps(-0.0);
    let mut m = _mm256_setzero_ps();
    for i in (0..SUPER).step_by(8) {
        // SAFETY: i + 8 <= 256 <= c.len() (asserted).
        m = _mm256_max_ps(m, _mm256_andnot_ps(sign, unsafe { _mm256_loadu_ps(c.as_ptr().add(i)) }));
    }
    let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    let amax = _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
    let d = amax / 127.0;
    let inv = _mm256_set1_ps(if d > 0.0 { 1.0 / d } else { 0.0 });
    let mut k = KBlock {
        d,
        qs: [0; SUPER],
        sums: [0; SUPER / 16],
    };
    for g in 0..SUPER / 32 {
        // SAFETY: values 32 g .. 32 g + 32 are within c (asserted).
        let q = [0, 8, 16, 24].map(|i| {
            let x = unsafe { _mm256_loadu_ps(c.as_ptr().add(32 * g + i)) };
            _mm256_cvtps_epi32(_mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
                _mm256_mul_ps(x, inv),
            ))
        });
        for h in 0..2 {
            let s = _mm256_add_epi32(q[2 * h], q[2 * h + 1]);
            let s = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
            let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
            k.sums[2 * g + h] = _mm_cvtsi128_si32(_mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01))) as i16;
        }
        // The packs work within 128-bit lanes: put the eight groups of four back in order.
        let packed = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
        let ordered = _mm256_permutevar8x32_epi32(packed, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        // SAFETY: qs holds 32 bytes from 32 g.
        unsafe { _mm256_storeu_si256(k.qs.as_mut_ptr().add(32 * g) as *mut __m256i, ordered) };
    }
    k
}
