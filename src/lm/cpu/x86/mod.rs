//! The AVX2 kernels (x86-64 with AVX2, FMA and F16C): the dot products of Q4_0, Q4_1 ([`q4`],
//! four rows at a time in [`q4x4`]), Q8_0, f16 and f32 rows with an input, for one or two
//! inputs at once, the activations' quantisation per 32 values and an f32 dot product; the
//! K-quants' (Q4_K, Q5_K, Q6_K; one, two or four inputs at once) are in `kquants.rs`. Every function assumes the CPU has those
//! features: `kernels.rs` checks before it calls one. They compute what `scalar.rs` computes
//! (tests compare them); they do not choose rows or threads.

mod kquants;

pub use kquants::quantize_super;

use super::blocks::{Input, Kind, Matrix};
use std::arch::x86_64::*;

/// Rows `first..first + out.len()` of `w` times the input, four rows at a time for the
/// quantised kinds (each activation block is loaded once for the four).
///
/// # Safety
/// The CPU has AVX2, FMA and F16C; the rows are within `w`; the input has `w.cols` values
/// (and `w.cols / 32` blocks for a quantised `w`).
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn rows(w: &Matrix, first: usize, out: &mut [f32], input: &Input) {
    let size = match w.kind {
        Kind::F32 | Kind::F16 => {
            for (i, o) in out.iter_mut().enumerate() {
                let row = w.row(first + i);
                *o = if w.kind == Kind::F32 {
                    f32s(row, input.x)
                } else {
                    f16s(row, input.x)
                };
            }
            return;
        }
        Kind::Q4_0 => 18,
        Kind::Q4_1 => 20,
        Kind::Q8_0 => 34,
        // SAFETY: the caller's.
        Kind::Q4K | Kind::Q5K | Kind::Q6K => return unsafe { kquants::rows(w, first, [out], [input]) },
    };
    let row_bytes = w.kind.row_bytes(w.cols);
    let mut i = 0;
    while i + 4 <= out.len() {
        // SAFETY: rows first + i .. first + i + 4 are within w.data (the caller's bounds).
        let base = unsafe { w.data.as_ptr().add((first + i) * row_bytes) };
        // SAFETY: four whole rows from base, one block per activation block.
        let four = unsafe {
            match size {
                34 => q8_0x4(base, row_bytes, [input])[0],
                _ => q4x4(base, row_bytes, [input], size)[0],
            }
        };
        out[i..i + 4].copy_from_slice(&four);
        i += 4;
    }
    for (j, o) in out.iter_mut().enumerate().skip(i) {
        let row = w.row(first + j);
        *o = if size == 34 {
            q8_0(row, input)
        } else {
            q4(row, input, size)
        };
    }
}

/// [`rows`] for two inputs at once (two tokens of a prompt): each block of quantised weights
/// is loaded and unpacked once for both.
///
/// # Safety
/// As for [`rows`], for both inputs and outputs; `w` is quantised.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn rows2(w: &Matrix, first: usize, out: [&mut [f32]; 2], input: [&Input; 2]) {
    let size = match w.kind {
        Kind::Q4_0 => 18,
        Kind::Q4_1 => 20,
        Kind::Q8_0 => 34,
        // SAFETY: the caller's.
        Kind::Q4K | Kind::Q5K | Kind::Q6K => return unsafe { kquants::rows(w, first, out, input) },
        Kind::F32 | Kind::F16 => unreachable!("rows2 of an unquantised matrix"),
    };
    let [out_a, out_b] = out;
    let row_bytes = w.kind.row_bytes(w.cols);
    let mut i = 0;
    while i + 4 <= out_a.len() {
        // SAFETY: rows first + i .. first + i + 4 are within w.data (the caller's bounds).
        let base = unsafe { w.data.as_ptr().add((first + i) * row_bytes) };
        // SAFETY: four whole rows from base, one block per activation block of each input.
        let [a, b] = unsafe {
            match size {
                34 => q8_0x4(base, row_bytes, input),
                _ => q4x4(base, row_bytes, input, size),
            }
        };
        out_a[i..i + 4].copy_from_slice(&a);
        out_b[i..i + 4].copy_from_slice(&b);
        i += 4;
    }
    for j in i..out_a.len() {
        let row = w.row(first + j);
        for (out, input) in [(&mut *out_a, input[0]), (&mut *out_b, input[1])] {
            out[j] = if size == 34 {
                q8_0(row, input)
            } else {
                q4(row, input, size)
            };
        }
    }
}

/// [`rows`] of a K-quant `w` for four inputs at once: each super-block unpacked once for the
/// four.
///
/// # Safety
/// As for [`rows`], for every input and output; `w` is a K-quant.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn rows4(w: &Matrix, first: usize, out: [&mut [f32]; 4], input: [&Input; 4]) {
    // SAFETY: the caller's.
    unsafe { kquants::rows(w, first, out, input) }
}

/// Four Q8_0 rows, `row_bytes` apart from `base`, times each of `N` inputs: each block of
/// weights is loaded once for all of them.
///
/// # Safety
/// Four rows of `input[t].q.len()` blocks are readable from `base`; every input has as many.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_0x4<const N: usize>(base: *const u8, row_bytes: usize, input: [&Input; N]) -> [[f32; 4]; N] {
    let ones = _mm256_set1_epi16(1);
    let mut acc = [[_mm256_setzero_ps(); 4]; N];
    for j in 0..input[0].q.len() {
        // SAFETY: each input's block j holds 32 bytes.
        let v = input.map(|i| unsafe { _mm256_loadu_si256(i.q[j].qs.as_ptr() as *const __m256i) });
        #[allow(clippy::needless_range_loop)] // r also places the row in memory
        for r in 0..4 {
            // SAFETY: block j of row r is within the four rows (the caller's); a prefetch
            // of any address is harmless.
            let (d, w) = unsafe {
                let b = base.add(r * row_bytes + j * 34);
                _mm_prefetch::<_MM_HINT_T0>(b.wrapping_add(PREFETCH) as *const i8);
                (half_at(b), _mm256_loadu_si256(b.add(2) as *const __m256i))
            };
            // maddubs multiplies unsigned by signed bytes: move w's sign onto v.
            let magnitude = _mm256_sign_epi8(w, w);
            for t in 0..N {
                let products = _mm256_maddubs_epi16(magnitude, _mm256_sign_epi8(v[t], w));
                let sums = _mm256_cvtepi32_ps(_mm256_madd_epi16(products, ones));
                acc[t][r] = _mm256_fmadd_ps(_mm256_set1_ps(d * input[t].q[j].d), sums, acc[t][r]);
            }
        }
    }
    acc.map(|a| a.map(|a| hsum(a)))
}

/// Four Q4_0 (`size` 18) or Q4_1 (20) rows, `row_bytes` apart from `base`, times each of
/// `N` inputs: each block of weights is loaded and unpacked once for all of them.
///
/// # Safety
/// Four rows of `input[t].q.len()` blocks are readable from `base`; every input has as many.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4x4<const N: usize>(base: *const u8, row_bytes: usize, input: [&Input; N], size: usize) -> [[f32; 4]; N] {
    let (ones, low) = (_mm256_set1_epi16(1), _mm_set1_epi8(15));
    let mut acc = [[_mm256_setzero_ps(); 4]; N];
    let mut offset = [[0f32; 4]; N];
    for j in 0..input[0].q.len() {
        // SAFETY: each input's block j holds 32 bytes.
        let v = input.map(|i| unsafe { _mm256_loadu_si256(i.q[j].qs.as_ptr() as *const __m256i) });
        for r in 0..4 {
            // SAFETY: block j of row r is within the four rows (the caller's); a prefetch
            // of any address is harmless.
            let (d, m, packed) = unsafe {
                let b = base.add(r * row_bytes + j * size);
                _mm_prefetch::<_MM_HINT_T0>(b.wrapping_add(PREFETCH) as *const i8);
                let (d, m) = if size == 18 {
                    let d = half_at(b);
                    (d, -8.0 * d)
                } else {
                    // d and m side by side: both converted at once.
                    let dm = _mm_cvtph_ps(_mm_cvtsi32_si128(std::ptr::read_unaligned(b as *const i32)));
                    (_mm_cvtss_f32(dm), _mm_cvtss_f32(_mm_movehdup_ps(dm)))
                };
                (d, m, _mm_loadu_si128(b.add(size - 16) as *const __m128i))
            };
            // Byte j holds value j in its low half and value j + 16 in its high half.
            let q = _mm256_set_m128i(
                _mm_and_si128(_mm_srli_epi16(packed, 4), low),
                _mm_and_si128(packed, low),
            );
            for t in 0..N {
                let y = &input[t].q[j];
                let sums = _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(q, v[t]), ones));
                acc[t][r] = _mm256_fmadd_ps(_mm256_set1_ps(d * y.d), sums, acc[t][r]);
                offset[t][r] += m * y.s;
            }
        }
    }
    let mut out = [[0f32; 4]; N];
    for t in 0..N {
        for r in 0..4 {
            out[t][r] = hsum(acc[t][r]) + offset[t][r];
        }
    }
    out
}

/// [`super::scalar::quantize_block`] of 32 values.
///
/// # Safety
/// `c` holds 32 values.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn quantize(c: &[f32]) -> super::blocks::QBlock {
    assert!(c.len() >= 32);
    // SAFETY: c holds 32 values (asserted).
    let v = [0, 8, 16, 24].map(|i| unsafe { _mm256_loadu_ps(c.as_ptr().add(i)) });
    let sign = _mm256_set1_ps(-0.0);
    let m = v
        .iter()
        .fold(_mm256_setzero_ps(), |m, &x| _mm256_max_ps(m, _mm256_andnot_ps(sign, x)));
    let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    let amax = _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
    let d = amax / 127.0;
    let inv = _mm256_set1_ps(if d > 0.0 { 1.0 / d } else { 0.0 });
    let q = v.map(|x| {
        _mm256_cvtps_epi32(_mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm256_mul_ps(x, inv),
        ))
    });
    let total = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
    let t = _mm_add_epi32(_mm256_castsi256_si128(total), _mm256_extracti128_si256(total, 1));
    let t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0b01_00_11_10));
    let sum = _mm_cvtsi128_si32(_mm_add_epi32(t, _mm_shuffle_epi32(t, 0b10_11_00_01)));
    // The packs work within 128-bit lanes: put the eight groups of four back in order.
    let packed = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
    let ordered = _mm256_permutevar8x32_epi32(packed, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    let mut qs = [0i8; 32];
    // SAFETY: qs holds 32 bytes.
    unsafe { _mm256_storeu_si256(qs.as_mut_ptr() as *mut __m256i, ordered) };
    super::blocks::QBlock {
        d,
        s: d * sum as f32,
        qs,
    }
}

/// How far ahead of the block being read the kernels ask for memory (bytes).
const PREFETCH: usize = 4096;

/// The f16 at `p` as f32.
///
/// # Safety
/// `p` points at two readable bytes.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn half_at(p: *const u8) -> f32 {
    // SAFETY: the caller's.
    let bits = i32::from(unsafe { std::ptr::read_unaligned(p as *const u16) });
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits)))
}

#[target_feature(enable = "avx2,fma,f16c")]
fn half(b: &[u8]) -> f32 {
    let bits = i32::from(u16::from_le_bytes([b[0], b[1]]));
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits)))
}

#[target_feature(enable = "avx2,fma,f16c")]
fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// `a · b` over the shorter of the two.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let len = a.len().min(b.len());
    let n = len / 8 * 8;
    // SAFETY: i + 8 <= n <= both lengths.
    let acc = fmas(n, b, |i| unsafe { _mm256_loadu_ps(a.as_ptr().add(i)) });
    hsum(acc) + (n..len).map(|i| a[i] * b[i]).sum::<f32>()
}

/// `Σ w_i x_i` for `w` read by `load(i)` eight values at a time, in four independent sums
/// (one would wait on each fused multiply-add's latency).
#[target_feature(enable = "avx2,fma,f16c")]
fn fmas(n: usize, x: &[f32], load: impl Fn(usize) -> __m256) -> __m256 {
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + 32 <= n {
        for (k, acc) in acc.iter_mut().enumerate() {
            // SAFETY: i + 8k + 8 <= n <= x.len().
            let v = unsafe { _mm256_loadu_ps(x.as_ptr().add(i + 8 * k)) };
            *acc = _mm256_fmadd_ps(load(i + 8 * k), v, *acc);
        }
        i += 32;
    }
    while i + 8 <= n {
        // SAFETY: i + 8 <= n <= x.len().
        let v = unsafe { _mm256_loadu_ps(x.as_ptr().add(i)) };
        acc[0] = _mm256_fmadd_ps(load(i), v, acc[0]);
        i += 8;
    }
    _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]))
}

#[target_feature(enable = "avx2,fma,f16c")]
fn f32s(row: &[u8], x: &[f32]) -> f32 {
    let n = x.len() / 8 * 8;
    assert!(row.len() >= 4 * x.len());
    // SAFETY: i + 8 <= n and row holds 4 bytes per value of x (asserted).
    let acc = fmas(n, x, |i| unsafe {
        _mm256_loadu_ps(row.as_ptr().add(4 * i) as *const f32)
    });
    let tail: f32 = (n..x.len())
        .map(|i| f32::from_le_bytes([row[4 * i], row[4 * i + 1], row[4 * i + 2], row[4 * i + 3]]) * x[i])
        .sum();
    hsum(acc) + tail
}

#[target_feature(enable = "avx2,fma,f16c")]
fn f16s(row: &[u8], x: &[f32]) -> f32 {
    let n = x.len() / 8 * 8;
    assert!(row.len() >= 2 * x.len());
    // SAFETY: i + 8 <= n and row holds 2 bytes per value of x (asserted).
    let acc = fmas(n, x, |i| unsafe {
        _mm256_cvtph_ps(_mm_loadu_si128(row.as_ptr().add(2 * i) as *const __m128i))
    });
    let tail: f32 = (n..x.len()).map(|i| half(&row[2 * i..]) * x[i]).sum();
    hsum(acc) + tail
}

#[target_feature(enable = "avx2,fma,f16c")]
fn q8_0(row: &[u8], input: &Input) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let ones = _mm256_set1_epi16(1);
    for (b, y) in row.chunks_exact(34).zip(input.q) {
        // SAFETY: b holds 2 + 32 bytes, y.qs 32.
        let (w, v) = unsafe {
            (
                _mm256_loadu_si256(b.as_ptr().add(2) as *const __m256i),
                _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i),
            )
        };
        // maddubs multiplies unsigned by signed bytes: move w's sign onto v.
        let products = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(v, w));
        let sums = _mm256_cvtepi32_ps(_mm256_madd_epi16(products, ones));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(half(b) * y.d), sums, acc);
    }
    hsum(acc)
}

/// Q4_0 (`size` 18: `d * q - 8 d`) and Q4_1 (20: `d * q + m`).
#[target_feature(enable = "avx2,fma,f16c")]
fn q4(row: &[u8], input: &Input, size: usize) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let mut offset = 0f32;
    let (ones, low) = (_mm256_set1_epi16(1), _mm_set1_epi8(15));
    for (b, y) in row.chunks_exact(size).zip(input.q) {
        // SAFETY: the last 16 bytes of b are the 4-bit values; y.qs holds 32 bytes.
        let (packed, v) = unsafe {
            (
                _mm_loadu_si128(b.as_ptr().add(size - 16) as *const __m128i),
                _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i),
            )
        };
        // Byte j holds value j in its low half and value j + 16 in its high half.
        let q = _mm256_set_m128i(
            _mm_and_si128(_mm_srli_epi16(packed, 4), low),
            _mm_and_si128(packed, low),
        );
        let sums = _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(q, v), ones));
        let d = half(b);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d * y.d), sums, acc);
        let m = if size == 18 { -8.0 * d } else { half(&b[2..]) };
        offset += m * y.s;
    }
    hsum(acc) + offset
}
