//! The AVX2 kernels (x86-64 with AVX2, FMA and F16C): the dot products of Q4_0, Q4_1 ([`q4`],
//! in tiles of rows by inputs in [`q4x4`]; a tiled matrix's eight interleaved rows at once in
//! [`q4_tile`], Q4_K's in `kquants::q4k_tile`), Q8_0, f16 and f32 rows with an input, for one, two
//! or four inputs at once (a prompt's tokens: four rows by four tokens per tile), the
//! activations' quantisation per 32 values, an f32 dot product and attention's scores and
//! weighted sums over an f32 or f16 cache; the K-quants' (Q4_K, Q5_K,
//! Q6_K; one, two or four inputs at once) are in `kquants.rs`. Every function assumes the CPU
//! has those features: `kernels.rs` checks before it calls one. Where the CPU also has AVX-512
//! VNNI, the 32-value kinds' byte products take one `dpbusd` instead of two instructions, and
//! the K-quants' scaled sums one `dpwssd` (`rows_vnni`, `rows2_vnni`, `rows4_vnni`; the same
//! sums, see [`Products`]). They compute
//! what `scalar.rs` computes (tests compare them); they do not choose rows or threads.

mod kquants;

pub use kquants::quantize_super;

use super::blocks::{Input, Kind, Matrix, TILE};
use half::f16;
use std::arch::x86_64::*;

/// Rows `first..first + out.len()` of `w` times the input, four rows at a time for the
/// quantised kinds (each activation block is loaded once for the four).
///
/// # Safety
/// The CPU has AVX2, FMA and F16C; the rows are within `w`; the input has `w.cols` values
/// (and `w.cols / 32` blocks for a quantised `w`).
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn rows(w: &Matrix, first: usize, out: &mut [f32], input: &Input) {
    // SAFETY: the caller's.
    unsafe { rows_by::<Avx2>(w, first, out, input) }
}

/// [`rows`] with AVX-512 VNNI's `dpbusd` for the byte products.
///
/// # Safety
/// As for [`rows`]; the CPU also has AVX-512 F, VL and VNNI.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512vnni")]
pub unsafe fn rows_vnni(w: &Matrix, first: usize, out: &mut [f32], input: &Input) {
    // SAFETY: the caller's.
    unsafe { rows_by::<Vnni>(w, first, out, input) }
}

/// [`rows`], its byte products summed by `P`.
///
/// # Safety
/// As for [`rows`]; the CPU has `P`'s instructions.
#[inline(always)]
unsafe fn rows_by<P: Products>(w: &Matrix, first: usize, out: &mut [f32], input: &Input) {
    if w.tiled {
        // SAFETY: the caller's.
        return unsafe { tiled_by::<P, 1>(w, first, [out], [input]) };
    }
    let size = match w.kind {
        Kind::F32 | Kind::F16 => {
            for (i, o) in out.iter_mut().enumerate() {
                let row = &*w.row(first + i);
                // SAFETY: the caller's (AVX2, FMA, F16C).
                *o = unsafe {
                    if w.kind == Kind::F32 {
                        f32s(row, input.x)
                    } else {
                        f16s(row, input.x)
                    }
                };
            }
            return;
        }
        Kind::Q4_0 => 18,
        Kind::Q4_1 => 20,
        Kind::Q8_0 => 34,
        // SAFETY: the caller's.
        Kind::Q4K | Kind::Q5K | Kind::Q6K => return unsafe { kquants::rows_by::<P, 1>(w, first, [out], [input]) },
    };
    // SAFETY: the caller's.
    unsafe { rows_n_by::<P, 1, 4>(w, first, [out], [input], size) }
}

/// [`rows`] for two inputs at once (two tokens of a prompt): each block of quantised weights
/// is loaded and unpacked once for both.
///
/// # Safety
/// As for [`rows`], for both inputs and outputs; `w` is quantised.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn rows2(w: &Matrix, first: usize, out: [&mut [f32]; 2], input: [&Input; 2]) {
    // SAFETY: the caller's.
    unsafe { rows_many_by::<Avx2, 2, 4>(w, first, out, input) }
}

/// [`rows2`] with AVX-512 VNNI's `dpbusd` for the byte products.
///
/// # Safety
/// As for [`rows2`]; the CPU also has AVX-512 F, VL and VNNI.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512vnni")]
pub unsafe fn rows2_vnni(w: &Matrix, first: usize, out: [&mut [f32]; 2], input: [&Input; 2]) {
    // SAFETY: the caller's.
    unsafe { rows_many_by::<Vnni, 2, 4>(w, first, out, input) }
}

/// [`rows2`] and [`rows4`]: `N` inputs, tiles of `R` rows for the 32-value kinds, their byte
/// products summed by `P`.
///
/// # Safety
/// As for [`rows`], for every input and output; `w` is quantised; the CPU has `P`'s
/// instructions.
#[inline(always)]
unsafe fn rows_many_by<P: Products, const N: usize, const R: usize>(
    w: &Matrix,
    first: usize,
    out: [&mut [f32]; N],
    input: [&Input; N],
) {
    if w.tiled {
        // SAFETY: the caller's.
        return unsafe { tiled_by::<P, N>(w, first, out, input) };
    }
    let size = match w.kind {
        Kind::Q4_0 => 18,
        Kind::Q4_1 => 20,
        Kind::Q8_0 => 34,
        // SAFETY: the caller's.
        Kind::Q4K | Kind::Q5K | Kind::Q6K => return unsafe { kquants::rows_by::<P, N>(w, first, out, input) },
        Kind::F32 | Kind::F16 => unreachable!("a product of an unquantised matrix with several inputs"),
    };
    // SAFETY: the caller's.
    unsafe { rows_n_by::<P, N, R>(w, first, out, input, size) }
}

/// Rows `first..first + out[t].len()` of a Q4_0, Q4_1 or Q8_0 `w` (blocks of `size` bytes)
/// times each of `N` inputs, `R` rows at a time: each block of weights is loaded (and
/// unpacked) once for the `N` inputs, each input's block once for the `R` rows.
///
/// # Safety
/// As for [`rows`], for every input and output; the CPU has `P`'s instructions.
#[inline(always)]
unsafe fn rows_n_by<P: Products, const N: usize, const R: usize>(
    w: &Matrix,
    first: usize,
    out: [&mut [f32]; N],
    input: [&Input; N],
    size: usize,
) {
    let row_bytes = w.kind.row_bytes(w.cols);
    let n = out[0].len();
    let mut out = out;
    let mut i = 0;
    while i + R <= n {
        // SAFETY: rows first + i .. first + i + R are within w.data (the caller's bounds).
        let base = unsafe { w.data.as_ptr().add((first + i) * row_bytes) };
        // SAFETY: R whole rows from base, one block per activation block of each input.
        let tile = unsafe {
            match size {
                34 => q8_0x4::<P, R, N>(base, row_bytes, input),
                _ => q4x4::<P, R, N>(base, row_bytes, input, size),
            }
        };
        for (o, values) in out.iter_mut().zip(tile) {
            o[i..i + R].copy_from_slice(&values);
        }
        i += R;
    }
    for j in i..n {
        let row = &*w.row(first + j);
        for (o, input) in out.iter_mut().zip(input) {
            // SAFETY: the caller's (P's instructions).
            o[j] = unsafe {
                if size == 34 {
                    q8_0::<P>(row, input)
                } else {
                    q4::<P>(row, input, size)
                }
            };
        }
    }
}

/// Rows `first..first + out[t].len()` of a tiled Q4_0, Q4_K or Q6_K `w` ([`Matrix::tile`])
/// times each of `N` inputs, a tile of eight rows at a time (a row outside whole tiles gathered
/// from its tile and taken alone).
///
/// # Safety
/// As for [`rows`], for every input and output; the CPU has `P`'s instructions.
#[inline(always)]
unsafe fn tiled_by<P: Products, const N: usize>(w: &Matrix, first: usize, out: [&mut [f32]; N], input: [&Input; N]) {
    let (tile_bytes, size) = (w.tile_bytes(), w.kind.row_bytes(32));
    let (n, mut out) = (out[0].len(), out);
    let mut i = 0;
    while i < n {
        let r = first + i;
        if r.is_multiple_of(TILE) && i + TILE <= n {
            // SAFETY: the tile of rows r..r + 8 is within w.data (the caller's bounds), its
            // blocks one per activation block of each input.
            let tile = unsafe {
                let base = w.data.as_ptr().add(r / TILE * tile_bytes);
                match w.kind {
                    Kind::Q4K => kquants::q4k_tile::<P, N>(base, input),
                    Kind::Q6K => kquants::q6k_tile::<P, N>(base, input),
                    _ => q4_tile::<P, N>(base, input),
                }
            };
            for (o, values) in out.iter_mut().zip(tile) {
                // SAFETY: i + 8 <= n = o.len().
                unsafe { _mm256_storeu_ps(o.as_mut_ptr().add(i), values) };
            }
            i += TILE;
        } else {
            let row = w.row(r);
            // SAFETY: the caller's (P's instructions); a whole row.
            let values = unsafe {
                match w.kind {
                    Kind::Q4K => kquants::q45_k::<P, N, false>(&row, input),
                    Kind::Q6K => kquants::q6_k::<P, N>(&row, input),
                    _ => input.map(|input| q4::<P>(&row, input, size)),
                }
            };
            for (o, v) in out.iter_mut().zip(values) {
                o[i] = v;
            }
            i += 1;
        }
    }
}

/// The eight rows of a tile of a tiled Q4_0 matrix from `base`
/// times each of `N` inputs: per block, the eight rows' 4-bit values unpacked into eight
/// vectors of four values of each row, each multiplied by four of the input's bytes
/// (broadcast) into the rows' eight lanes, and their scales applied eight at once.
///
/// # Safety
/// A tile of `input[t].q.len()` blocks is readable from `base`; every input has as many; the
/// CPU has AVX2, FMA, F16C and `P`'s instructions.
#[inline(always)]
unsafe fn q4_tile<P: Products, const N: usize>(base: *const u8, input: [&Input; N]) -> [__m256; N] {
    // SAFETY: the caller's: the CPU has AVX2, FMA, F16C and `P`'s instructions, and the
    // reads are within the tile and inputs it vouches for.
    unsafe {
        let low = _mm256_set1_epi8(15);
        // Each row's block: an f16 scale and 16 bytes of 4-bit values.
        let (size, scales) = (18, TILE * 2);
        let chains = if N == 1 { 4 } else { 2 };
        let mut acc = [_mm256_setzero_ps(); N];
        for j in 0..input[0].q.len() {
            // Block j of the tile: its scales, then 128 bytes of 4-bit values.
            let b = base.add(j * TILE * size);
            // The cache lines of a later block (144 bytes), asked for ahead.
            for line in 0..3 {
                _mm_prefetch::<_MM_HINT_T0>(b.wrapping_add(PREFETCH + 64 * line) as *const i8);
            }
            let d = _mm256_cvtph_ps(_mm_loadu_si128(b as *const __m128i));
            let mut q = [_mm256_setzero_si256(); 8];
            for c in 0..4 {
                let packed = _mm256_loadu_si256(b.add(scales + 32 * c) as *const __m256i);
                q[c] = _mm256_and_si256(packed, low);
                q[c + 4] = _mm256_and_si256(_mm256_srli_epi16(packed, 4), low);
            }
            for t in 0..N {
                let y = &input[t].q[j];
                // q[k] holds values 4k..4k + 4 of each row; y.qs holds 32 bytes. The sum in
                // parts, so that each waits on fewer products (more parts for fewer inputs).
                let at = y.qs.as_ptr() as *const i32;
                let mut parts = [_mm256_setzero_si256(); 4];
                for (k, q) in q.iter().enumerate() {
                    let part = k % chains;
                    parts[part] = P::onto(parts[part], *q, _mm256_set1_epi32(at.add(k).read_unaligned()));
                }
                let sums = _mm256_cvtepi32_ps(kquants::sum_parts(parts, chains));
                // d (y.d Σ q x - 8 y.s)
                let v = _mm256_fmadd_ps(sums, _mm256_set1_ps(y.d), _mm256_set1_ps(-8.0 * y.s));
                acc[t] = _mm256_fmadd_ps(v, d, acc[t]);
            }
        }
        acc
    }
}

/// [`rows`] for four inputs at once: each block (a K-quant's super-block) unpacked once for
/// the four.
///
/// # Safety
/// As for [`rows`], for every input and output; `w` is quantised.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn rows4(w: &Matrix, first: usize, out: [&mut [f32]; 4], input: [&Input; 4]) {
    // SAFETY: the caller's.
    unsafe { rows_many_by::<Avx2, 4, TILE_ROWS>(w, first, out, input) }
}

/// [`rows4`] with AVX-512 VNNI's `dpbusd` for the byte products.
///
/// # Safety
/// As for [`rows4`]; the CPU also has AVX-512 F, VL and VNNI.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512vnni")]
pub unsafe fn rows4_vnni(w: &Matrix, first: usize, out: [&mut [f32]; 4], input: [&Input; 4]) {
    // SAFETY: the caller's.
    unsafe { rows_many_by::<Vnni, 4, TILE_ROWS>(w, first, out, input) }
}

/// Rows per tile when four inputs pass over a Q4_0, Q4_1 or Q8_0 matrix.
const TILE_ROWS: usize = 4;

/// `R` Q8_0 rows, `row_bytes` apart from `base`, times each of `N` inputs: each block of
/// weights is loaded once for all of them.
///
/// # Safety
/// `R` rows of `input[t].q.len()` blocks are readable from `base`; every input has as many;
/// the CPU has AVX2, FMA, F16C and `P`'s instructions.
#[inline(always)]
unsafe fn q8_0x4<P: Products, const R: usize, const N: usize>(
    base: *const u8,
    row_bytes: usize,
    input: [&Input; N],
) -> [[f32; R]; N] {
    // SAFETY: the caller's: the CPU has AVX2, FMA, F16C and `P`'s instructions, and the
    // reads are within the rows and inputs it vouches for.
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); R]; N];
        for j in 0..input[0].q.len() {
            // Each input's block j holds 32 bytes.
            let v = input.map(|i| _mm256_loadu_si256(i.q[j].qs.as_ptr() as *const __m256i));
            #[allow(clippy::needless_range_loop)] // r also places the row in memory
            for r in 0..R {
                // Block j of row r is within the rows (the caller's); a prefetch of any
                // address is harmless.
                let (d, w) = {
                    let b = base.add(r * row_bytes + j * 34);
                    _mm_prefetch::<_MM_HINT_T0>(b.wrapping_add(PREFETCH) as *const i8);
                    (half_at(b), _mm256_loadu_si256(b.add(2) as *const __m256i))
                };
                // maddubs multiplies unsigned by signed bytes: move w's sign onto v.
                let magnitude = _mm256_sign_epi8(w, w);
                for t in 0..N {
                    let sums = _mm256_cvtepi32_ps(P::sum4(magnitude, _mm256_sign_epi8(v[t], w)));
                    acc[t][r] = _mm256_fmadd_ps(_mm256_set1_ps(d * input[t].q[j].d), sums, acc[t][r]);
                }
            }
        }
        acc.map(|a| a.map(|a| hsum(a)))
    }
}

/// `R` Q4_0 (`size` 18) or Q4_1 (20) rows, `row_bytes` apart from `base`, times each of
/// `N` inputs: each block of weights is loaded and unpacked once for all of them.
///
/// # Safety
/// `R` rows of `input[t].q.len()` blocks are readable from `base`; every input has as many;
/// the CPU has AVX2, FMA, F16C and `P`'s instructions.
#[inline(always)]
unsafe fn q4x4<P: Products, const R: usize, const N: usize>(
    base: *const u8,
    row_bytes: usize,
    input: [&Input; N],
    size: usize,
) -> [[f32; R]; N] {
    // SAFETY: the caller's: the CPU has AVX2, FMA, F16C and `P`'s instructions, and the
    // reads are within the rows and inputs it vouches for.
    unsafe {
        let low = _mm_set1_epi8(15);
        let mut acc = [[_mm256_setzero_ps(); R]; N];
        let mut offset = [[0f32; R]; N];
        for j in 0..input[0].q.len() {
            // Each input's block j holds 32 bytes.
            let v = input.map(|i| _mm256_loadu_si256(i.q[j].qs.as_ptr() as *const __m256i));
            for r in 0..R {
                // Block j of row r is within the rows (the caller's); a prefetch of any
                // address is harmless.
                let (d, m, packed) = {
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
                    let sums = _mm256_cvtepi32_ps(P::sum4(q, v[t]));
                    acc[t][r] = _mm256_fmadd_ps(_mm256_set1_ps(d * y.d), sums, acc[t][r]);
                    offset[t][r] += m * y.s;
                }
            }
        }
        let mut out = [[0f32; R]; N];
        for t in 0..N {
            for r in 0..R {
                out[t][r] = hsum(acc[t][r]) + offset[t][r];
            }
        }
        out
    }
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

/// # Safety
/// The CPU has AVX2, FMA, F16C and `P`'s instructions.
#[inline(always)]
unsafe fn q8_0<P: Products>(row: &[u8], input: &Input) -> f32 {
    // SAFETY: the caller's: the CPU has AVX2, FMA, F16C and `P`'s instructions, and the
    // reads are within the rows and inputs it vouches for.
    unsafe {
        let mut acc = _mm256_setzero_ps();
        for (b, y) in row.chunks_exact(34).zip(input.q) {
            // b holds 2 + 32 bytes, y.qs 32.
            let (w, v) = {
                (
                    _mm256_loadu_si256(b.as_ptr().add(2) as *const __m256i),
                    _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i),
                )
            };
            // maddubs multiplies unsigned by signed bytes: move w's sign onto v.
            let sums = _mm256_cvtepi32_ps(P::sum4(_mm256_sign_epi8(w, w), _mm256_sign_epi8(v, w)));
            acc = _mm256_fmadd_ps(_mm256_set1_ps(half(b) * y.d), sums, acc);
        }
        hsum(acc)
    }
}

/// Q4_0 (`size` 18: `d * q - 8 d`) and Q4_1 (20: `d * q + m`).
///
/// # Safety
/// The CPU has AVX2, FMA, F16C and `P`'s instructions.
#[inline(always)]
unsafe fn q4<P: Products>(row: &[u8], input: &Input, size: usize) -> f32 {
    // SAFETY: the caller's: the CPU has AVX2, FMA, F16C and `P`'s instructions, and the
    // reads are within the rows and inputs it vouches for.
    unsafe {
        let mut acc = _mm256_setzero_ps();
        let mut offset = 0f32;
        let low = _mm_set1_epi8(15);
        for (b, y) in row.chunks_exact(size).zip(input.q) {
            // The last 16 bytes of b are the 4-bit values; y.qs holds 32 bytes.
            let (packed, v) = {
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
            let (sums, d) = (_mm256_cvtepi32_ps(P::sum4(q, v)), half(b));
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d * y.d), sums, acc);
            let m = if size == 18 { -8.0 * d } else { half(&b[2..]) };
            offset += m * y.s;
        }
        hsum(acc) + offset
    }
}

/// How a block's unsigned-by-signed byte products are summed, four to each of eight 32-bit
/// lanes: AVX2's `maddubs` then `madd`, or AVX-512 VNNI's one `dpbusd` where the CPU has it.
/// The sums are the same: the weights' magnitudes are at most 128 and the activations' 127, so
/// no pair of products leaves `maddubs`'s 16 bits.
pub trait Products {
    /// # Safety
    /// The CPU has the implementation's instructions.
    unsafe fn sum4(u: __m256i, s: __m256i) -> __m256i;

    /// `sum` plus [`Products::sum4`] of `u` and `s`.
    ///
    /// # Safety
    /// The CPU has the implementation's instructions.
    unsafe fn onto(sum: __m256i, u: __m256i, s: __m256i) -> __m256i;

    /// `sum` plus the byte products of `u` and `s` in pairs, each pair times its 16-bit
    /// `scale` and added in pairs (the K-quants' scaled sub-blocks).
    ///
    /// # Safety
    /// The CPU has the implementation's instructions.
    unsafe fn scaled_onto(sum: __m256i, u: __m256i, s: __m256i, scale: __m256i) -> __m256i;
}

/// `maddubs` then `madd` (AVX2).
pub enum Avx2 {}
/// `dpbusd` (AVX-512 F, VL and VNNI).
pub enum Vnni {}

impl Products for Avx2 {
    #[inline(always)]
    unsafe fn sum4(u: __m256i, s: __m256i) -> __m256i {
        // SAFETY: the caller's (AVX2).
        unsafe { _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)) }
    }

    #[inline(always)]
    unsafe fn onto(sum: __m256i, u: __m256i, s: __m256i) -> __m256i {
        // SAFETY: the caller's (AVX2).
        unsafe { _mm256_add_epi32(sum, Self::sum4(u, s)) }
    }

    #[inline(always)]
    unsafe fn scaled_onto(sum: __m256i, u: __m256i, s: __m256i, scale: __m256i) -> __m256i {
        // SAFETY: the caller's (AVX2).
        unsafe { _mm256_add_epi32(sum, _mm256_madd_epi16(scale, _mm256_maddubs_epi16(u, s))) }
    }
}

impl Products for Vnni {
    #[inline(always)]
    unsafe fn sum4(u: __m256i, s: __m256i) -> __m256i {
        // SAFETY: the caller's (AVX-512 VL and VNNI).
        unsafe { _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s) }
    }

    #[inline(always)]
    unsafe fn onto(sum: __m256i, u: __m256i, s: __m256i) -> __m256i {
        // SAFETY: the caller's (AVX-512 VL and VNNI).
        unsafe { _mm256_dpbusd_epi32(sum, u, s) }
    }

    #[inline(always)]
    unsafe fn scaled_onto(sum: __m256i, u: __m256i, s: __m256i, scale: __m256i) -> __m256i {
        // SAFETY: the caller's (AVX-512 VL and VNNI).
        unsafe { _mm256_dpwssd_epi32(sum, _mm256_maddubs_epi16(u, s), scale) }
    }
}

/// `kernels::scores` with this module's dot product, inlined.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn scores(queries: &[f32], keys: &[f32], stride: usize, at: &[usize], scale: f32, out: &mut [f32]) {
    // `dot_f32` needs no more features than this function has, so it inlines here.
    super::kernels::scores_with(queries, keys, stride, at, scale, out, |a, b| dot_f32(a, b))
}

/// `kernels::weigh`, compiled for AVX2 (a multiply and an add per value, as there: no fused
/// multiply-add, so the same numbers).
#[target_feature(enable = "avx2,fma,f16c")]
pub fn weigh(weights: &[f32], values: &[f32], stride: usize, at: &[usize], out: &mut [f32]) {
    super::kernels::weigh_plain(weights, values, stride, at, out)
}

/// `a · b` for f16 `b`, over the shorter of the two.
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_f16(a: &[f32], b: &[f16]) -> f32 {
    let len = a.len().min(b.len());
    let n = len / 8 * 8;
    // SAFETY: i + 8 <= n <= both lengths.
    let acc = fmas(n, a, |i| unsafe {
        _mm256_cvtph_ps(_mm_loadu_si128(b.as_ptr().add(i) as *const __m128i))
    });
    hsum(acc) + (n..len).map(|i| a[i] * b[i].to_f32()).sum::<f32>()
}

/// [`scores`] over f16 keys.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn scores_f16(queries: &[f32], keys: &[f16], stride: usize, at: &[usize], scale: f32, out: &mut [f32]) {
    super::kernels::scores_with(queries, keys, stride, at, scale, out, |a, b| dot_f16(a, b))
}

/// [`weigh`] over f16 values: each converted exactly, times its weight, then added, as
/// `kernels::weigh_plain` does.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn weigh_f16(weights: &[f32], values: &[f16], stride: usize, at: &[usize], out: &mut [f32]) {
    let hd = out.len() / at.len();
    let seen = weights.len() / at.len();
    let n = hd / 8 * 8;
    out.fill(0.0);
    for p in 0..seen {
        for (j, (&a, oh)) in at.iter().zip(out.chunks_exact_mut(hd)).enumerate() {
            let s = weights[j * seen + p];
            let v = &values[p * stride + a..p * stride + a + hd];
            let sv = _mm256_set1_ps(s);
            for i in (0..n).step_by(8) {
                // SAFETY: i + 8 <= n <= hd, the length of both `oh` and `v`.
                unsafe {
                    let x = _mm256_cvtph_ps(_mm_loadu_si128(v.as_ptr().add(i) as *const __m128i));
                    let o = _mm256_loadu_ps(oh.as_ptr().add(i));
                    _mm256_storeu_ps(oh.as_mut_ptr().add(i), _mm256_add_ps(o, _mm256_mul_ps(sv, x)));
                }
            }
            for i in n..hd {
                oh[i] += s * v[i].to_f32();
            }
        }
    }
}
