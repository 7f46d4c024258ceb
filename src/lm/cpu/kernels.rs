//! Which kernel runs: the AVX2 one (`x86.rs`) where the CPU has AVX2, FMA and F16C (checked
//! once at run time; with AVX-512 VNNI's byte products where it has those too), else the
//! plain-Rust one (`scalar.rs`); here are the entry points the
//! network calls: the rows of a matrix times one, two or four inputs ([`rows`], [`rows2`],
//! [`rows4`]), the
//! activations quantised to 8 bits as the weights' kind wants them ([`quantize`]) and an f32
//! dot product ([`dot_f32`]). It does not split work over threads (`matmul.rs` does).

use super::blocks::{Activations, BLOCK, Input, Kind, Matrix, Quantised, SUPER};
use super::cache::Lent;
use super::scalar::{self, quantize_block, quantize_super};
#[cfg(target_arch = "x86_64")]
use super::x86;

/// Appends `x` quantised as a product with `kind` weights reads it (nothing for f32 and f16
/// weights); `x` is whole blocks.
pub(super) fn quantize(kind: Kind, x: &[f32], out: &mut Quantised) {
    #[cfg(target_arch = "x86_64")]
    if avx2() {
        // SAFETY (both): the CPU has AVX2, FMA and F16C (checked above); chunks are whole blocks.
        match kind.activations() {
            Activations::F32 => {}
            Activations::Q8_0 => out.q.extend(x.chunks_exact(BLOCK).map(|c| unsafe { x86::quantize(c) })),
            Activations::Q8K => out
                .k
                .extend(x.chunks_exact(SUPER).map(|c| unsafe { x86::quantize_super(c) })),
        }
        return;
    }
    match kind.activations() {
        Activations::F32 => {}
        Activations::Q8_0 => out.q.extend(x.chunks_exact(BLOCK).map(quantize_block)),
        Activations::Q8K => out.k.extend(x.chunks_exact(SUPER).map(quantize_super)),
    }
}

/// `out[i] = w_(first + i) · x` for the rows `first..first + out.len()` of `w`.
pub(super) fn rows(w: &Matrix, first: usize, out: &mut [f32], input: &Input) {
    assert!(
        first + out.len() <= w.rows && input.fits(w.kind, w.cols),
        "a matrix product out of its bounds"
    );
    #[cfg(target_arch = "x86_64")]
    if avx2() {
        // SAFETY: the CPU has AVX2, FMA and F16C (checked above), and AVX-512 VNNI where
        // `vnni` says so; the rows and the input are within `w` and of its width (asserted
        // above; `w.data` holds `rows` whole rows).
        return unsafe {
            match vnni() {
                true => x86::rows_vnni(w, first, out, input),
                false => x86::rows(w, first, out, input),
            }
        };
    }
    for (i, o) in out.iter_mut().enumerate() {
        *o = scalar::dot(w.kind, &w.row(first + i), input);
    }
}

/// Whether this CPU has the SIMD kernels this network is built for (x86-64 with AVX2, FMA and
/// F16C): elsewhere its plain-Rust kernels would be slower than candle's, which `model/` uses
/// instead.
pub fn has_kernels() -> bool {
    #[cfg(target_arch = "x86_64")]
    return avx2();
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// [`rows`] for two inputs: the same weights against two tokens.
pub(super) fn rows2(w: &Matrix, first: usize, out: [&mut [f32]; 2], input: [&Input; 2]) {
    #[cfg(target_arch = "x86_64")]
    if w.kind.activations() != Activations::F32 && avx2() {
        let n = out[0].len();
        let ok = out[1].len() == n && input.iter().all(|i| i.fits(w.kind, w.cols)) && first + n <= w.rows;
        assert!(ok, "a matrix product out of its bounds");
        // SAFETY: the CPU has AVX2, FMA and F16C (checked above), and AVX-512 VNNI where
        // `vnni` says so; rows and inputs are within `w` and of its width (asserted above).
        return unsafe {
            match vnni() {
                true => x86::rows2_vnni(w, first, out, input),
                false => x86::rows2(w, first, out, input),
            }
        };
    }
    let [a, b] = out;
    rows(w, first, a, input[0]);
    rows(w, first, b, input[1]);
}

/// [`rows`] for four inputs: the quantised kinds unpack each block once for all four.
pub(super) fn rows4(w: &Matrix, first: usize, out: [&mut [f32]; 4], input: [&Input; 4]) {
    #[cfg(target_arch = "x86_64")]
    if w.kind.activations() != Activations::F32 && avx2() {
        let n = out[0].len();
        let ok =
            out.iter().all(|o| o.len() == n) && input.iter().all(|i| i.fits(w.kind, w.cols)) && first + n <= w.rows;
        assert!(ok, "a matrix product out of its bounds");
        // SAFETY: the CPU has AVX2, FMA and F16C (checked above), and AVX-512 VNNI where
        // `vnni` says so; rows and inputs are within `w` and of its width (asserted above);
        // `w` is quantised.
        return unsafe {
            match vnni() {
                true => x86::rows4_vnni(w, first, out, input),
                false => x86::rows4(w, first, out, input),
            }
        };
    }
    let [a, b, c, d] = out;
    rows2(w, first, [a, b], [input[0], input[1]]);
    rows2(w, first, [c, d], [input[2], input[3]]);
}

/// Runs `f` on this thread as if the CPU had none of the SIMD kernels (tests of the paths other
/// CPUs take).
#[cfg(test)]
pub fn without_kernels<T>(f: impl FnOnce() -> T) -> T {
    with_flag(&super::tests::PLAIN, f)
}

/// Runs `f` with a thread's test flag set.
#[cfg(test)]
fn with_flag<T>(flag: &'static std::thread::LocalKey<std::cell::Cell<bool>>, f: impl FnOnce() -> T) -> T {
    flag.with(|p| p.set(true));
    let out = f();
    flag.with(|p| p.set(false));
    out
}

#[cfg(target_arch = "x86_64")]
fn avx2() -> bool {
    #[cfg(test)]
    if super::tests::PLAIN.with(|p| p.get()) {
        return false;
    }
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c")
    })
}

/// Whether the CPU also has AVX-512 F, VL and VNNI (checked once): the 32-value kinds' byte
/// products then take one instruction instead of two, and the K-quants' scaled sums one
/// instead of two (`x86::Products`).
#[cfg(target_arch = "x86_64")]
fn vnni() -> bool {
    #[cfg(test)]
    if super::tests::NO_VNNI.with(|p| p.get()) {
        return false;
    }
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| {
        is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512vl")
            && is_x86_feature_detected!("avx512vnni")
    })
}

/// Runs `f` on this thread with the AVX2 kernels even where the CPU has AVX-512 VNNI (tests
/// that the two give the same numbers).
#[cfg(test)]
pub fn without_vnni<T>(f: impl FnOnce() -> T) -> T {
    with_flag(&super::tests::NO_VNNI, f)
}

/// Whether this CPU takes the AVX-512 VNNI kernels.
#[cfg(test)]
pub fn has_vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    return avx2() && vnni();
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// `a · b`, in eight independent sums (so that the compiler can vectorise it).
pub(super) fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
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

/// Attention scores of a few query heads over the cached keys: `out[j * seen + p] = (query j ·
/// key p of head j) · scale` for `p` in `0..seen`, query j at `queries[j * hd..]`, key p of
/// head j at `keys[p * stride + at[j]..][..hd]`. One dispatch for all of them, so that the dot
/// products inline (one call and one feature check per product cost more than 64 values).
pub(super) fn scores(queries: &[f32], keys: Lent, stride: usize, at: &[usize], scale: f32, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if avx2() {
        // SAFETY (both): the CPU has AVX2, FMA and F16C (checked above).
        return match keys {
            Lent::F32(k) => unsafe { x86::scores(queries, k, stride, at, scale, out) },
            Lent::F16(k) => unsafe { x86::scores_f16(queries, k, stride, at, scale, out) },
        };
    }
    match keys {
        Lent::F32(k) => scores_with(queries, k, stride, at, scale, out, dot_f32),
        Lent::F16(k) => scores_with(queries, k, stride, at, scale, out, |a, b| {
            a.iter().zip(b).map(|(a, b)| a * b.to_f32()).sum()
        }),
    }
}

/// [`scores`] with `dot` for the products, positions outermost: the keys are read in the
/// order they lie.
#[inline(always)]
pub(super) fn scores_with<T>(
    queries: &[f32],
    keys: &[T],
    stride: usize,
    at: &[usize],
    scale: f32,
    out: &mut [f32],
    dot: impl Fn(&[f32], &[T]) -> f32,
) {
    let hd = queries.len() / at.len();
    let seen = out.len() / at.len();
    for p in 0..seen {
        for (j, &a) in at.iter().enumerate() {
            let key = &keys[p * stride + a..p * stride + a + hd];
            out[j * seen + p] = dot(&queries[j * hd..(j + 1) * hd], key) * scale;
        }
    }
}

/// `out[j * hd..][..hd] = Σ_p weights[j * seen + p] · value p of head j`, positions in order,
/// value p of head j at `values[p * stride + at[j]..][..hd]`. Each value times its weight, then
/// added: the same numbers whatever the vector width.
pub(super) fn weigh(weights: &[f32], values: Lent, stride: usize, at: &[usize], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if avx2() {
        // SAFETY (both): the CPU has AVX2, FMA and F16C (checked above).
        return match values {
            Lent::F32(v) => unsafe { x86::weigh(weights, v, stride, at, out) },
            Lent::F16(v) => unsafe { x86::weigh_f16(weights, v, stride, at, out) },
        };
    }
    match values {
        Lent::F32(v) => weigh_plain(weights, v, stride, at, out),
        Lent::F16(v) => weigh_plain(weights, v, stride, at, out),
    }
}

#[inline(always)]
pub(super) fn weigh_plain<T: Copy + Into<f32>>(
    weights: &[f32],
    values: &[T],
    stride: usize,
    at: &[usize],
    out: &mut [f32],
) {
    let hd = out.len() / at.len();
    let seen = weights.len() / at.len();
    out.fill(0.0);
    for p in 0..seen {
        for (j, (&a, oh)) in at.iter().zip(out.chunks_exact_mut(hd)).enumerate() {
            let s = weights[j * seen + p];
            for (o, v) in oh.iter_mut().zip(&values[p * stride + a..p * stride + a + hd]) {
                *o += s * (*v).into();
            }
        }
    }
}
