//! The CPU network that chat decodes with and `logprobs` scores with: the llama and Qwen2 blocks
//! of candle-transformers 0.11.1 (`quantized_llama`, `quantized_qwen2`), computed in place. A
//! decode step of a small model is about 200 small matrix-vector products; through candle's
//! tensors each costs an allocation and a dispatch, and candle has no SIMD dot product for Q4_1,
//! the type small GGUF files ship in. Here the weights stay the file's blocks (Q4_0, Q4_1 and
//! Q8_0; F16 and F32), the activations are quantised per 32 values as llama.cpp does (to 8 bits
//! with their scale and sum), the dot products use AVX2 (checked at run time), matrices that
//! read the same input are stacked into one, the keys and values grow in place, and a long
//! prompt's attention goes through candle's matrix products.
//!
//! It computes what those networks compute: RMS norm, interleaved rotary embeddings for llama
//! and half-split ones for Qwen2, Qwen2's query/key/value biases, grouped-query attention, the
//! token embedding as output layer when the file has no `output.weight` (tests compare its logits
//! with candle-transformers'). It returns the logits after the last token, or after each (for
//! scoring a text); it does not check the file (`model.rs` has, before it is built), and runs
//! nowhere but an x86-64 CPU with AVX2: CUDA, Metal and other CPUs keep candle-transformers'
//! networks (its plain-Rust kernels are the reference the SIMD ones are tested against, not a
//! fast path).

use candle_core::Device;
use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
use std::io::{Read, Seek};
use std::sync::Arc;

/// Values a block of quantised weights or activations covers.
const BLOCK: usize = 32;

/// How a weight matrix is stored: a GGUF type this network has a kernel for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    F32,
    F16,
    /// 32 weights: an f16 scale and 16 bytes of 4-bit values, `d * (q - 8)`.
    Q4_0,
    /// 32 weights: f16 scale and minimum and 16 bytes of 4-bit values, `d * q + m`.
    Q4_1,
    /// 32 weights: an f16 scale and 32 signed bytes, `d * q`.
    Q8_0,
}

impl Kind {
    fn of(dtype: GgmlDType) -> Option<Kind> {
        Some(match dtype {
            GgmlDType::F32 => Kind::F32,
            GgmlDType::F16 => Kind::F16,
            GgmlDType::Q4_0 => Kind::Q4_0,
            GgmlDType::Q4_1 => Kind::Q4_1,
            GgmlDType::Q8_0 => Kind::Q8_0,
            _ => return None,
        })
    }

    /// Bytes of one row of `cols` weights.
    fn row_bytes(self, cols: usize) -> usize {
        match self {
            Kind::F32 => 4 * cols,
            Kind::F16 => 2 * cols,
            Kind::Q4_0 => cols / BLOCK * 18,
            Kind::Q4_1 => cols / BLOCK * 20,
            Kind::Q8_0 => cols / BLOCK * 34,
        }
    }

    fn quantised(self) -> bool {
        matches!(self, Kind::Q4_0 | Kind::Q4_1 | Kind::Q8_0)
    }
}

/// A weight matrix, `[rows, cols]`, row by row in its GGUF blocks.
struct Matrix {
    kind: Kind,
    rows: usize,
    cols: usize,
    data: Vec<u8>,
}

impl Matrix {
    /// A GGUF tensor as this network holds it: as stored when it has a kernel for the type,
    /// else requantised to Q8_0 (or f32 where rows do not fill whole blocks).
    fn from_qtensor(t: QTensor) -> candle_core::Result<Matrix> {
        let (rows, cols) = t.shape().dims2()?;
        let kind = Kind::of(t.dtype()).filter(|k| !k.quantised() || cols % BLOCK == 0);
        let (kind, t) = match kind {
            Some(kind) => (kind, t),
            None => {
                let target = if cols % BLOCK == 0 {
                    GgmlDType::Q8_0
                } else {
                    GgmlDType::F32
                };
                let f = t.dequantize(&Device::Cpu)?;
                let kind = Kind::of(target).expect("a kind of its own");
                (kind, QTensor::quantize(&f, target)?)
            }
        };
        let data = t.data()?.into_owned();
        if data.len() != rows * kind.row_bytes(cols) {
            candle_core::bail!("a {rows}x{cols} {kind:?} matrix holds {} bytes", data.len());
        }
        Ok(Matrix { kind, rows, cols, data })
    }

    fn row(&self, r: usize) -> &[u8] {
        let n = self.kind.row_bytes(self.cols);
        &self.data[r * n..(r + 1) * n]
    }

    /// Row `r` as f32 values (the embedding lookup).
    fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        let row = self.row(r);
        match self.kind {
            Kind::F32 => {
                for (o, b) in out.iter_mut().zip(row.chunks_exact(4)) {
                    *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                }
            }
            Kind::F16 => {
                for (o, b) in out.iter_mut().zip(row.chunks_exact(2)) {
                    *o = half(b);
                }
            }
            Kind::Q4_0 | Kind::Q4_1 => {
                let size = if self.kind == Kind::Q4_0 { 18 } else { 20 };
                for (o, b) in out.chunks_exact_mut(BLOCK).zip(row.chunks_exact(size)) {
                    let d = half(&b[0..2]);
                    let (m, qs) = match self.kind {
                        Kind::Q4_0 => (-8.0 * d, &b[2..18]),
                        _ => (half(&b[2..4]), &b[4..20]),
                    };
                    for (j, &q) in qs.iter().enumerate() {
                        o[j] = d * f32::from(q & 15) + m;
                        o[j + 16] = d * f32::from(q >> 4) + m;
                    }
                }
            }
            Kind::Q8_0 => {
                for (o, b) in out.chunks_exact_mut(BLOCK).zip(row.chunks_exact(34)) {
                    let d = half(&b[0..2]);
                    for (o, &q) in o.iter_mut().zip(&b[2..34]) {
                        *o = d * f32::from(q as i8);
                    }
                }
            }
        }
    }
}

fn half(b: &[u8]) -> f32 {
    half::f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32()
}

/// 32 activations quantised to 8 bits: `x ≈ d * q`, and `s = d * Σq` (what Q4_0's offset and
/// Q4_1's minimum multiply).
#[derive(Clone, Copy)]
#[repr(C)]
struct QBlock {
    d: f32,
    s: f32,
    qs: [i8; BLOCK],
}

fn quantize(x: &[f32], out: &mut Vec<QBlock>) {
    out.clear();
    #[cfg(target_arch = "x86_64")]
    if avx2() {
        // SAFETY: the CPU has AVX2, FMA and F16C (checked above); chunks are whole blocks.
        out.extend(x.chunks_exact(BLOCK).map(|c| unsafe { x86::quantize(c) }));
        return;
    }
    out.extend(x.chunks_exact(BLOCK).map(quantize_block));
}

/// 32 values to 8 bits: `d = max |x| / 127`, each rounded to the nearest step (ties to even,
/// as the SIMD rounding does).
fn quantize_block(c: &[f32]) -> QBlock {
    let amax = c.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
    let mut qs = [0i8; BLOCK];
    let mut sum = 0i32;
    for (q, v) in qs.iter_mut().zip(c) {
        *q = (v * inv).round_ties_even() as i8;
        sum += i32::from(*q);
    }
    QBlock {
        d,
        s: d * sum as f32,
        qs,
    }
}

/// A matrix's input: the activations, and their quantised blocks when the matrix is quantised.
struct Input<'a> {
    x: &'a [f32],
    q: &'a [QBlock],
}

/// `out[i] = w_(first + i) · x` for the rows `first..first + out.len()` of `w`.
fn rows(w: &Matrix, first: usize, out: &mut [f32], input: &Input) {
    let cols_ok = if w.kind.quantised() {
        input.q.len() * BLOCK == w.cols
    } else {
        input.x.len() == w.cols
    };
    assert!(
        first + out.len() <= w.rows && cols_ok,
        "a matrix product out of its bounds"
    );
    #[cfg(target_arch = "x86_64")]
    if avx2() {
        // SAFETY: the CPU has AVX2, FMA and F16C (checked above), and the rows and the input
        // are within `w` and of its width (asserted above; `w.data` holds `rows` whole rows).
        return unsafe { x86::rows(w, first, out, input) };
    }
    for (i, o) in out.iter_mut().enumerate() {
        *o = scalar::dot(w.kind, w.row(first + i), input);
    }
}

/// Whether this CPU has the SIMD kernels this network is built for (x86-64 with AVX2, FMA and
/// F16C): elsewhere its plain-Rust kernels would be slower than candle's, which `model.rs` uses
/// instead.
pub fn has_kernels() -> bool {
    #[cfg(target_arch = "x86_64")]
    return avx2();
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// [`rows`] for two inputs: the same weights against two tokens.
fn rows2(w: &Matrix, first: usize, out: [&mut [f32]; 2], input: [&Input; 2]) {
    #[cfg(target_arch = "x86_64")]
    if w.kind.quantised() && avx2() {
        let n = out[0].len();
        let ok = out[1].len() == n && input.iter().all(|i| i.q.len() * BLOCK == w.cols) && first + n <= w.rows;
        assert!(ok, "a matrix product out of its bounds");
        // SAFETY: the CPU has AVX2, FMA and F16C (checked above); rows and inputs are within
        // `w` and of its width (asserted above).
        return unsafe { x86::rows2(w, first, out, input) };
    }
    let [a, b] = out;
    rows(w, first, a, input[0]);
    rows(w, first, b, input[1]);
}

/// Runs `f` on this thread as if the CPU had none of the SIMD kernels (tests of the paths other
/// CPUs take).
#[cfg(test)]
pub fn without_kernels<T>(f: impl FnOnce() -> T) -> T {
    tests::PLAIN.with(|p| p.set(true));
    let out = f();
    tests::PLAIN.with(|p| p.set(false));
    out
}

#[cfg(target_arch = "x86_64")]
fn avx2() -> bool {
    #[cfg(test)]
    if tests::PLAIN.with(|p| p.get()) {
        return false;
    }
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c")
    })
}

mod scalar {
    use super::{BLOCK, Input, Kind, half};

    pub fn dot(kind: Kind, row: &[u8], input: &Input) -> f32 {
        match kind {
            Kind::F32 => row
                .chunks_exact(4)
                .zip(input.x)
                .map(|(b, x)| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) * x)
                .sum(),
            Kind::F16 => row.chunks_exact(2).zip(input.x).map(|(b, x)| half(b) * x).sum(),
            Kind::Q8_0 => row
                .chunks_exact(34)
                .zip(input.q)
                .map(|(b, y)| {
                    let s: i32 = b[2..]
                        .iter()
                        .zip(&y.qs)
                        .map(|(&w, &x)| i32::from(w as i8) * i32::from(x))
                        .sum();
                    half(&b[0..2]) * y.d * s as f32
                })
                .sum(),
            Kind::Q4_0 | Kind::Q4_1 => {
                let size = if kind == Kind::Q4_0 { 18 } else { 20 };
                row.chunks_exact(size)
                    .zip(input.q)
                    .map(|(b, y)| {
                        let qs = &b[size - 16..];
                        let (low, high) = y.qs.split_at(BLOCK / 2);
                        let s: i32 = qs
                            .iter()
                            .zip(low)
                            .zip(high)
                            .map(|((q, l), h)| i32::from(q & 15) * i32::from(*l) + i32::from(q >> 4) * i32::from(*h))
                            .sum();
                        let d = half(&b[0..2]);
                        let m = if kind == Kind::Q4_0 { -8.0 * d } else { half(&b[2..4]) };
                        d * y.d * s as f32 + m * y.s
                    })
                    .sum()
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Input, Kind, Matrix};
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
    unsafe fn q4x4<const N: usize>(
        base: *const u8,
        row_bytes: usize,
        input: [&Input; N],
        size: usize,
    ) -> [[f32; 4]; N] {
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

    /// [`super::quantize_block`] of 32 values.
    ///
    /// # Safety
    /// `c` holds 32 values.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn quantize(c: &[f32]) -> super::QBlock {
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
        super::QBlock {
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
}

/// `out[t][r] = w_r · x_t` for every token t of `xs` (`[tokens, cols]`), the rows split over
/// `pool`'s threads when there is one.
fn matmul(w: &Matrix, xs: &[f32], q: &mut Vec<QBlock>, out: &mut Vec<f32>, pool: Option<&rayon::ThreadPool>) {
    use rayon::prelude::*;
    let tokens = xs.len() / w.cols;
    q.clear();
    if w.kind.quantised() {
        let mut one = Vec::new();
        for x in xs.chunks_exact(w.cols) {
            quantize(x, &mut one);
            q.extend_from_slice(&one);
        }
    }
    let per = w.cols / BLOCK;
    let input = |t: usize| Input {
        x: &xs[t * w.cols..(t + 1) * w.cols],
        q: if q.is_empty() { &[] } else { &q[t * per..(t + 1) * per] },
    };
    out.clear();
    out.resize(tokens * w.rows, 0.0);
    let threads = pool.map_or(1, |p| p.current_num_threads());
    if tokens == 1 {
        let chunk = w.rows.div_ceil(threads * 4).next_multiple_of(4).max(16);
        let run = |(i, c): (usize, &mut [f32])| rows(w, i * chunk, c, &input(0));
        match pool {
            Some(pool) if w.rows > chunk => pool.install(|| out.par_chunks_mut(chunk).enumerate().for_each(run)),
            _ => out.chunks_mut(chunk).enumerate().for_each(run),
        }
        return;
    }
    // Groups of rows small enough to stay in the cache while every token passes over them.
    const GROUP: usize = 16;
    let group = |g: usize| {
        let (first, n) = (g * GROUP, GROUP.min(w.rows - g * GROUP));
        let mut values = vec![0f32; tokens * n];
        let mut t = 0;
        for pair in values.chunks_exact_mut(2 * n) {
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
enum Group {
    /// The stacked matrix and the rows of each part.
    Stacked(Matrix, Vec<usize>),
    Apart(Vec<Matrix>),
}

impl Group {
    fn new(parts: Vec<Matrix>) -> Group {
        let first = &parts[0];
        if parts.iter().any(|m| m.kind != first.kind || m.cols != first.cols) {
            return Group::Apart(parts);
        }
        let rows = parts.iter().map(|m| m.rows).collect();
        let (kind, cols) = (first.kind, first.cols);
        let mut data = Vec::with_capacity(parts.iter().map(|m| m.data.len()).sum());
        for m in parts {
            data.extend_from_slice(&m.data);
        }
        let stacked = Matrix {
            kind,
            rows: data.len() / kind.row_bytes(cols),
            cols,
            data,
        };
        Group::Stacked(stacked, rows)
    }

    /// `outs[i] = part_i · x_t` for every token t of `xs`, as [`matmul`] lays them out.
    fn matmul(
        &self,
        xs: &[f32],
        q: &mut Vec<QBlock>,
        stacked: &mut Vec<f32>,
        outs: &mut [&mut Vec<f32>],
        pool: Option<&rayon::ThreadPool>,
    ) {
        match self {
            Group::Apart(parts) => {
                for (m, out) in parts.iter().zip(outs) {
                    matmul(m, xs, q, out, pool);
                }
            }
            Group::Stacked(m, rows) => {
                matmul(m, xs, q, stacked, pool);
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

struct Layer {
    attn_norm: Vec<f32>,
    /// Query, key, value.
    qkv: Group,
    bias: Option<[Vec<f32>; 3]>,
    out: Matrix,
    ffn_norm: Vec<f32>,
    /// Gate, up.
    gate_up: Group,
    down: Matrix,
}

struct Weights {
    embedding: Matrix,
    layers: Vec<Layer>,
    norm: Vec<f32>,
    /// `None`: the embedding is the output layer.
    output: Option<Matrix>,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    eps: f32,
    /// The rotary frequency of each pair of dimensions.
    theta: Vec<f32>,
    interleaved: bool,
    context: usize,
}

/// The network with its keys and values: cloning it shares the weights and copies the cache.
#[derive(Clone)]
pub struct CpuNet {
    w: Arc<Weights>,
    /// Per layer, `[tokens, kv_heads, head_dim]` after the rotary embedding.
    keys: Vec<Vec<f32>>,
    values: Vec<Vec<f32>>,
    len: usize,
    pool: Option<Arc<rayon::ThreadPool>>,
}

/// What the network is built from (checked by `model.rs` before).
pub struct Shape<'a> {
    pub architecture: &'a str,
    pub embedding: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub layers: usize,
    pub context: usize,
}

impl CpuNet {
    /// Builds the network from a GGUF file's tensors; `threads` > 1 splits each matrix product's
    /// rows over a pool of that many threads.
    pub fn from_gguf<R: Read + Seek>(
        shape: &Shape,
        content: &gguf_file::Content,
        reader: &mut R,
        threads: usize,
    ) -> candle_core::Result<CpuNet> {
        let arch = shape.architecture;
        let meta = |key: &str| content.metadata.get(&format!("{arch}.{key}"));
        let eps = match meta("attention.layer_norm_rms_epsilon") {
            Some(v) => v.to_f32()?,
            None => candle_core::bail!("cannot find {arch}.attention.layer_norm_rms_epsilon in metadata"),
        };
        let freq_base = meta("rope.freq_base").and_then(|v| v.to_f32().ok()).unwrap_or(10000.0);
        let cpu = Device::Cpu;
        let mut tensor = |name: &str| content.tensor(reader, name, &cpu);
        let vector = |t: QTensor| -> candle_core::Result<Vec<f32>> { t.dequantize(&cpu)?.flatten_all()?.to_vec1() };
        let head_dim = shape.embedding / shape.heads;
        let embedding = Matrix::from_qtensor(tensor("token_embd.weight")?)?;
        let norm = vector(tensor("output_norm.weight")?)?;
        let output = match tensor("output.weight") {
            Ok(w) => Some(Matrix::from_qtensor(w)?),
            Err(_) => None,
        };
        let qwen = arch == "qwen2";
        let (e, kv) = (shape.embedding, shape.kv_heads * head_dim);
        let fits = |m: &Matrix, rows: usize, cols: usize| m.rows == rows && m.cols == cols;
        let mut layers = Vec::with_capacity(shape.layers);
        for i in 0..shape.layers {
            let mut matrix = |name: &str| Matrix::from_qtensor(tensor(&format!("blk.{i}.{name}.weight"))?);
            let (q, k, v, out) = (
                matrix("attn_q")?,
                matrix("attn_k")?,
                matrix("attn_v")?,
                matrix("attn_output")?,
            );
            let (gate, up, down) = (matrix("ffn_gate")?, matrix("ffn_up")?, matrix("ffn_down")?);
            let mut named = |name: &str| vector(tensor(&format!("blk.{i}.{name}"))?);
            let bias = if qwen {
                Some([named("attn_q.bias")?, named("attn_k.bias")?, named("attn_v.bias")?])
            } else {
                None
            };
            let (attn_norm, ffn_norm) = (named("attn_norm.weight")?, named("ffn_norm.weight")?);
            let ff = gate.rows;
            let ok = fits(&q, e, e)
                && fits(&k, kv, e)
                && fits(&v, kv, e)
                && fits(&out, e, e)
                && fits(&gate, ff, e)
                && fits(&up, ff, e)
                && fits(&down, e, ff)
                && attn_norm.len() == e
                && ffn_norm.len() == e
                && bias
                    .as_ref()
                    .is_none_or(|[bq, bk, bv]| bq.len() == e && bk.len() == kv && bv.len() == kv);
            if !ok {
                candle_core::bail!("the tensors of block {i} do not fit the model's dimensions");
            }
            layers.push(Layer {
                attn_norm,
                qkv: Group::new(vec![q, k, v]),
                bias,
                out,
                ffn_norm,
                gate_up: Group::new(vec![gate, up]),
                down,
            });
        }
        let vocab = output.as_ref().unwrap_or(&embedding);
        if embedding.cols != e || vocab.cols != e || norm.len() != e {
            candle_core::bail!("the embedding or output layer does not fit the model's dimensions");
        }
        // As candle-transformers computes them, so that positions get the very same angles.
        let theta = (0..head_dim)
            .step_by(2)
            .map(|i| 1f32 / freq_base.powf(i as f32 / head_dim as f32))
            .collect();
        let pool = match threads {
            0 | 1 => None,
            n => Some(Arc::new(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .build()
                    .map_err(candle_core::Error::wrap)?,
            )),
        };
        Ok(CpuNet {
            w: Arc::new(Weights {
                embedding,
                layers,
                norm,
                output,
                heads: shape.heads,
                kv_heads: shape.kv_heads,
                head_dim,
                eps,
                theta,
                interleaved: !qwen,
                context: shape.context,
            }),
            keys: vec![Vec::new(); shape.layers],
            values: vec![Vec::new(); shape.layers],
            len: 0,
            pool,
        })
    }

    /// The logits after the last of `ids`, read at positions `pos..`: the cache keeps its first
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

    /// The output layer after the final norm, for each token of `x` (`[tokens, embedding]`).
    fn logits(&self, x: &[f32]) -> Vec<f32> {
        let w = &self.w;
        let mut normed = vec![0f32; x.len()];
        rms_norm(x, &w.norm, w.eps, &mut normed);
        let (mut q, mut logits) = (Vec::new(), Vec::new());
        matmul(
            w.output.as_ref().unwrap_or(&w.embedding),
            &normed,
            &mut q,
            &mut logits,
            self.pool.as_deref(),
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
        let pool = self.pool.as_deref();
        let mut x = vec![0f32; seq * e];
        for (row, &id) in x.chunks_exact_mut(e).zip(ids) {
            w.embedding.dequantize_row(id as usize, row);
        }
        let (mut h, mut q) = (vec![0f32; seq * e], Vec::new());
        let (mut a, mut b, mut c, mut stacked) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let angles = Angles::new(&w.theta, pos, seq);
        for (i, l) in w.layers.iter().enumerate() {
            rms_norm(&x, &l.attn_norm, w.eps, &mut h);
            l.qkv
                .matmul(&h, &mut q, &mut stacked, &mut [&mut a, &mut b, &mut c], pool);
            if let Some([bq, bk, bv]) = &l.bias {
                add_rows(&mut a, bq);
                add_rows(&mut b, bk);
                add_rows(&mut c, bv);
            }
            angles.rotate(&mut a, w.head_dim, w.interleaved);
            angles.rotate(&mut b, w.head_dim, w.interleaved);
            self.keys[i].extend_from_slice(&b);
            self.values[i].extend_from_slice(&c);
            if seq >= MATMUL_ATTENTION {
                attend_matmul(&w, &a, &self.keys[i], &self.values[i], pos, &mut h, QUERY_CHUNK)?;
            } else {
                attend(&w, &a, &self.keys[i], &self.values[i], pos, &mut h, pool.is_some());
            }
            matmul(&l.out, &h, &mut q, &mut a, pool);
            add(&mut x, &a);
            rms_norm(&x, &l.ffn_norm, w.eps, &mut h);
            l.gate_up.matmul(&h, &mut q, &mut stacked, &mut [&mut a, &mut b], pool);
            for (g, u) in a.iter_mut().zip(&b) {
                *g = *g / (1.0 + (-*g).exp()) * u;
            }
            matmul(&l.down, &a, &mut q, &mut b, pool);
            add(&mut x, &b);
        }
        self.len = pos + seq;
        Ok(x)
    }

    /// The same network with an empty cache (the weights shared).
    pub fn empty(&self) -> CpuNet {
        CpuNet {
            w: Arc::clone(&self.w),
            keys: vec![Vec::new(); self.keys.len()],
            values: vec![Vec::new(); self.values.len()],
            len: 0,
            pool: self.pool.clone(),
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

/// `a · b`, in eight independent sums (so that the compiler can vectorise it).
fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if avx2() {
        // SAFETY: the CPU has AVX2, FMA and F16C (checked above).
        return unsafe { x86::dot_f32(a, b) };
    }
    let mut sums = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            sums[i] += x[i] * y[i];
        }
    }
    sums.iter().sum::<f32>() + tail
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

/// The rotary angles' cosines and sines at positions `pos..pos + seq`.
struct Angles {
    cos: Vec<f32>,
    sin: Vec<f32>,
    pairs: usize,
}

impl Angles {
    fn new(theta: &[f32], pos: usize, seq: usize) -> Angles {
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
    fn rotate(&self, x: &mut [f32], head_dim: usize, interleaved: bool) {
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
const MATMUL_ATTENTION: usize = 32;

/// Queries whose attention scores are held at once by [`attend_matmul`] (bounds the
/// `[heads, queries, keys]` scores of a long prompt).
const QUERY_CHUNK: usize = 256;

/// [`attend`] through matrix products: per key/value head, the scores of its query heads'
/// queries over all keys, masked, softmaxed and multiplied by the values, `chunk` queries at a
/// time.
fn attend_matmul(
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
fn attend(w: &Weights, q: &[f32], keys: &[f32], values: &[f32], pos: usize, out: &mut [f32], parallel: bool) {
    use rayon::prelude::*;
    let (hd, kv) = (w.head_dim, w.kv_heads * w.head_dim);
    let group = w.heads / w.kv_heads;
    let scale = 1.0 / (hd as f32).sqrt();
    // One query head of one token: row i of `out` is token i / heads, head i % heads.
    let head = |(i, oh): (usize, &mut [f32])| {
        let (t, h) = (i / w.heads, i % w.heads);
        let qh = &q[i * hd..(i + 1) * hd];
        let at = (h / group) * hd;
        let mut scores: Vec<f32> = (0..pos + t + 1)
            .map(|p| dot_f32(qh, &keys[p * kv + at..p * kv + at + hd]) * scale)
            .collect();
        let max = scores.iter().fold(f32::NEG_INFINITY, |m, &s| m.max(s));
        let mut total = 0f32;
        for s in scores.iter_mut() {
            *s = (*s - max).exp();
            total += *s;
        }
        oh.fill(0.0);
        for (p, s) in scores.iter().enumerate() {
            let v = &values[p * kv + at..p * kv + at + hd];
            let s = s / total;
            for (o, v) in oh.iter_mut().zip(v) {
                *o += s * v;
            }
        }
    };
    // Split over the pool only when there is one (inside it); else rayon's global pool would
    // take the work.
    if parallel {
        out.par_chunks_mut(hd).enumerate().for_each(head);
    } else {
        out.chunks_mut(hd).enumerate().for_each(head);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lm::tiny::Tiny;
    use candle_core::Tensor;
    use candle_transformers::models::{quantized_llama, quantized_qwen2};

    thread_local! {
        /// Set: this thread computes with the plain kernels even where the CPU has AVX2.
        pub static PLAIN: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    /// A tiny model's file, read back: its content and an open reader. `exact`: every tensor
    /// is written as the f32 values its quantised blocks stand for.
    fn tiny_file(tiny: &Tiny, exact: bool) -> (tempfile::TempDir, gguf_file::Content, std::fs::File) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny.gguf");
        tiny.write_with(&path, |_, tensors| {
            if exact {
                for (_, t) in tensors.iter_mut() {
                    *t = QTensor::quantize(&t.dequantize(&Device::Cpu).unwrap(), GgmlDType::F32).unwrap();
                }
            }
        })
        .unwrap();
        let mut file = std::fs::File::open(&path).unwrap();
        let content = gguf_file::Content::read(&mut file).unwrap();
        (dir, content, file)
    }

    fn shape(t: &Tiny) -> Shape<'_> {
        Shape {
            architecture: t.architecture,
            embedding: t.embedding,
            heads: t.heads,
            kv_heads: t.kv_heads,
            layers: t.layers,
            context: t.context,
        }
    }

    fn build(t: &Tiny, threads: usize) -> CpuNet {
        let (_dir, content, mut file) = tiny_file(t, false);
        CpuNet::from_gguf(&shape(t), &content, &mut file, threads).unwrap()
    }

    /// candle-transformers' network for the same file (or its `exact` f32 values): the logits
    /// after each step of `steps`.
    fn reference(t: &Tiny, steps: &[&[u32]], exact: bool) -> Vec<Vec<f32>> {
        let (_dir, content, mut file) = tiny_file(t, exact);
        let cpu = Device::Cpu;
        let mut llama;
        let mut qwen2;
        type Forward = Box<dyn FnMut(&Tensor, usize) -> Tensor>;
        let mut forward: Forward = match t.architecture {
            "qwen2" => {
                qwen2 = quantized_qwen2::ModelWeights::from_gguf(content, &mut file, &cpu).unwrap();
                Box::new(move |x, pos| qwen2.forward(x, pos).unwrap())
            }
            _ => {
                llama = quantized_llama::ModelWeights::from_gguf(content, &mut file, &cpu).unwrap();
                Box::new(move |x, pos| llama.forward(x, pos).unwrap())
            }
        };
        let mut pos = 0;
        steps
            .iter()
            .map(|ids| {
                let x = Tensor::new(*ids, &cpu).unwrap().unsqueeze(0).unwrap();
                let logits = forward(&x, pos);
                pos += ids.len();
                logits.flatten_all().unwrap().to_vec1::<f32>().unwrap()
            })
            .collect()
    }

    fn worst(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter().zip(b).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max)
    }

    #[test]
    fn computes_what_candle_transformers_networks_compute() {
        // A prompt read at once, then tokens one at a time, for both architectures and every
        // type with a kernel (and Q5_0, which is requantised to Q8_0). With f32 weights the
        // logits are candle-transformers'. Quantised, both networks round the activations to 8
        // bits, and a value that falls on the other side of a rounding step in one of them
        // moves the logits by more than float error: so each is measured against the exact
        // product of the same weights, and this network must be as close to it as candle is.
        // 40 tokens: past MATMUL_ATTENTION, so the second read attends through matrix products.
        let long: Vec<u32> = (0..40).map(|i| (i * 37 % 250) as u32 + 3).collect();
        let steps: [&[u32]; 5] = [&[5, 40, 77, 3, 9, 120], &[33], &long, &[7], &[200]];
        for (architecture, plain) in [("llama", false), ("qwen2", false), ("llama", true)] {
            // One network without a pool: this thread computes it, with the plain kernels
            // when `plain` is set.
            PLAIN.with(|p| p.set(plain));
            for dtype in [
                GgmlDType::F32,
                GgmlDType::F16,
                GgmlDType::Q8_0,
                GgmlDType::Q4_0,
                GgmlDType::Q4_1,
                GgmlDType::Q5_0,
            ] {
                let t = Tiny {
                    architecture,
                    dtype,
                    ..Tiny::default()
                };
                let (candle, exact) = (reference(&t, &steps, false), reference(&t, &steps, true));
                let mut net = build(&t, 1);
                let mut pos = 0;
                let (mut ours, mut theirs) = (0f32, 0f32);
                for (i, ids) in steps.iter().enumerate() {
                    let logits = net.forward(ids, pos).unwrap();
                    pos += ids.len();
                    if matches!(dtype, GgmlDType::F32 | GgmlDType::F16) {
                        let w = worst(&logits, &candle[i]);
                        assert!(w < 1e-2, "{architecture} {dtype:?} plain {plain} step {i}: {w}");
                    }
                    ours = ours.max(worst(&logits, &exact[i]));
                    theirs = theirs.max(worst(&candle[i], &exact[i]));
                }
                assert_eq!(net.len(), pos);
                if dtype == GgmlDType::Q5_0 {
                    // No kernel: the network holds the matrices requantised to Q8_0, exactly
                    // as a file that stores them so.
                    let dir = tempfile::tempdir().unwrap();
                    let path = dir.path().join("q8.gguf");
                    t.write_with(&path, |_, tensors| {
                        for (_, w) in tensors.iter_mut().filter(|(_, w)| w.dtype() == GgmlDType::Q5_0) {
                            *w = QTensor::quantize(&w.dequantize(&Device::Cpu).unwrap(), GgmlDType::Q8_0).unwrap();
                        }
                    })
                    .unwrap();
                    let mut file = std::fs::File::open(&path).unwrap();
                    let content = gguf_file::Content::read(&mut file).unwrap();
                    let mut q8 = CpuNet::from_gguf(&shape(&t), &content, &mut file, 1).unwrap();
                    let all: Vec<u32> = steps.concat();
                    assert_eq!(
                        q8.forward(&all, 0).unwrap(),
                        net.forward(&all, 0).unwrap(),
                        "{architecture}"
                    );
                    continue;
                }
                assert!(
                    ours <= 1.5 * theirs + 1e-2,
                    "{architecture} {dtype:?} plain {plain}: {ours} from the exact logits, candle {theirs}"
                );
            }
        }
    }

    #[test]
    fn threads_and_a_rewound_cache_change_no_number() {
        for architecture in ["llama", "qwen2"] {
            let t = Tiny {
                architecture,
                ..Tiny::default()
            };
            let (mut one, mut two) = (build(&t, 1), build(&t, 2));
            let prompt = [5, 40, 77, 3, 9, 120, 12, 13];
            assert_eq!(one.forward(&prompt, 0).unwrap(), two.forward(&prompt, 0).unwrap());
            let after = one.forward(&[33], prompt.len()).unwrap();
            assert_eq!(after, two.forward(&[33], prompt.len()).unwrap());
            // A clone keeps the cache and shares the weights; rewinding to an earlier position
            // forgets what came after it.
            let mut copy = one.clone();
            assert_eq!(
                copy.forward(&[7], prompt.len() + 1).unwrap(),
                one.forward(&[7], prompt.len() + 1).unwrap()
            );
            assert_eq!(one.forward(&[33], prompt.len()).unwrap(), after);
            assert_eq!(one.len(), prompt.len() + 1);
        }
    }

    #[test]
    fn attention_through_matrix_products_equals_the_plain_one() {
        // Grouped heads, keys cached before, queries in several chunks (the last one short).
        use crate::train::rng::Rng;
        let net = build(&Tiny::default(), 1);
        let w = &net.w;
        let (pos, seq) = (5, 37);
        let mut rng = Rng::new(4);
        let mut random = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.normal()).collect() };
        let kv = w.kv_heads * w.head_dim;
        let (keys, values) = (random((pos + seq) * kv), random((pos + seq) * kv));
        let q = random(seq * w.heads * w.head_dim);
        let (mut plain, mut product) = (vec![0f32; q.len()], vec![0f32; q.len()]);
        attend(w, &q, &keys, &values, pos, &mut plain, false);
        attend_matmul(w, &q, &keys, &values, pos, &mut product, 16).unwrap();
        assert!(worst(&plain, &product) < 1e-5, "{}", worst(&plain, &product));
    }

    #[test]
    fn out_of_range_reads_are_errors() {
        let mut net = build(&Tiny::default(), 1);
        assert!(net.forward(&[], 0).is_err());
        assert!(
            net.forward(&[1], 1)
                .unwrap_err()
                .to_string()
                .contains("past the 0 tokens")
        );
        assert!(
            net.forward(&[100_000], 0)
                .unwrap_err()
                .to_string()
                .contains("outside the embedding")
        );
        let long = vec![1u32; Tiny::default().context + 1];
        assert!(
            net.forward(&long, 0)
                .unwrap_err()
                .to_string()
                .contains("exceed the context")
        );
        assert!(net.is_empty());
    }

    #[test]
    fn the_simd_kernels_equal_the_plain_ones() {
        // Every kind, a row count that leaves a remainder after the blocks of four, a tail of
        // f32 columns that is not a multiple of eight.
        use crate::train::rng::Rng;
        let mut rng = Rng::new(9);
        for (dtype, cols) in [
            (GgmlDType::F32, 77),
            (GgmlDType::F16, 77),
            (GgmlDType::Q8_0, 96),
            (GgmlDType::Q4_0, 96),
            (GgmlDType::Q4_1, 96),
        ] {
            let n = 11;
            let values: Vec<f32> = (0..n * cols).map(|_| rng.normal()).collect();
            let t = Tensor::from_vec(values, (n, cols), &Device::Cpu).unwrap();
            let w = Matrix::from_qtensor(QTensor::quantize(&t, dtype).unwrap()).unwrap();
            assert_eq!(Kind::of(dtype), Some(w.kind));
            let x: Vec<f32> = (0..cols).map(|_| rng.normal()).collect();
            let mut q = Vec::new();
            if w.kind.quantised() {
                quantize(&x, &mut q);
            }
            let input = Input { x: &x, q: &q };
            let mut fast = vec![0f32; n];
            rows(&w, 0, &mut fast, &input);
            for (r, fast) in fast.iter().enumerate() {
                let plain = scalar::dot(w.kind, w.row(r), &input);
                assert!(
                    (fast - plain).abs() <= 1e-4 * plain.abs().max(1.0),
                    "{dtype:?} row {r}: {fast} vs {plain}"
                );
            }
            // Several tokens at once (two by two, and one left over) give each token's numbers.
            let xs: Vec<f32> = (0..5 * cols).map(|_| rng.normal()).collect();
            let (mut q, mut all) = (Vec::new(), Vec::new());
            matmul(&w, &xs, &mut q, &mut all, None);
            for (t, x) in xs.chunks_exact(cols).enumerate() {
                let mut blocks = Vec::new();
                if w.kind.quantised() {
                    quantize(x, &mut blocks);
                }
                let mut one = vec![0f32; n];
                rows(&w, 0, &mut one, &Input { x, q: &blocks });
                assert_eq!(&all[t * n..(t + 1) * n], &one[..], "{dtype:?} token {t}");
            }
            // The plain dot product is the product of the dequantised row and the input.
            let mut row = vec![0f32; cols];
            w.dequantize_row(3, &mut row);
            let exact: f32 = row.iter().zip(&x).map(|(a, b)| a * b).sum();
            let plain = scalar::dot(w.kind, w.row(3), &input);
            assert!(
                (exact - plain).abs() < 0.05 * exact.abs().max(1.0),
                "{dtype:?}: {exact} vs {plain}"
            );
        }
        // Quantised activations: the same blocks either way, ties included.
        let mut x: Vec<f32> = (0..256).map(|_| rng.normal() * 3.0).collect();
        x[0..32].copy_from_slice(&(0..32).map(|i| i as f32 * 0.5 - 8.0).collect::<Vec<_>>());
        x[32..64].fill(0.0);
        let mut fast = Vec::new();
        quantize(&x, &mut fast);
        for (i, (f, c)) in fast.iter().zip(x.chunks_exact(BLOCK)).enumerate() {
            let plain = quantize_block(c);
            assert!(
                f.qs == plain.qs && f.d == plain.d && f.s == plain.s,
                "block {i}: {:?} vs {:?}",
                f.qs,
                plain.qs
            );
        }
        let (a, b): (Vec<f32>, Vec<f32>) = (0..19).map(|i| (i as f32, 1.0 - i as f32)).unzip();
        let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert_eq!(dot_f32(&a, &b), plain);
    }
}
