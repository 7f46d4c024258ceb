//! Two CPU kernels for inference, where a profile said so.
//!
//! Profiling `cargo bench --bench torch_inputs` (perf, one thread) showed the attention's
//! softmax spending its time in scalar `expf` (16% of all samples) plus two full passes over
//! the `[B, H, T, T]` scores for the scale and the padding mask, and the erf GELU as the next
//! largest element-wise cost. These kernels fuse scale + key mask + softmax into one in-place pass and
//! compute GELU with a branch-free erf, both over an exp that the compiler vectorises
//! (a degree-7 polynomial for e^r and the exponent put in with integer arithmetic).
//! Accuracy: relative error of `fast_exp` below 2e-7, absolute error of the erf below 5e-7
//! (Abramowitz & Stegun 7.1.26); the unit tests compare both ops with candle's reference ops.
//!
//! Used only for inference on the CPU: training needs gradients (it keeps candle's
//! differentiable ops) and GPUs keep candle's kernels.

use candle_core::{CpuStorage, InplaceOp1, InplaceOp2, Layout, Result, Tensor, bail};
use rayon::prelude::*;

const LOG2E: f32 = std::f32::consts::LOG2_E;

/// e^x for x in [-87, 88] (clamped outside), relative error below 2e-7.
#[inline(always)]
// Not `clamp`: max/min send a NaN to a bound instead of passing it on, and vectorise.
#[allow(clippy::manual_clamp)]
fn fast_exp(x: f32) -> f32 {
    let x = x.max(-87.0).min(88.0);
    // n = round(x / ln 2) with the 1.5 * 2^23 trick: after the add, the low mantissa bits of
    // `k` hold n as an integer (no float-to-int conversion, so it vectorises). Then
    // r = x - n ln 2 in two parts (Cody-Waite) so that r keeps its precision.
    let k = x * LOG2E + 12_582_912.0;
    let n = k - 12_582_912.0;
    let r = x - n * 0.693_145_75 - n * 1.428_606_8e-6;
    let p = 1.0
        + r * (1.0
            + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r / 5040.0))))));
    let exponent = k.to_bits().wrapping_sub(0x4B40_0000).wrapping_add(127) << 23;
    f32::from_bits(exponent) * p
}

/// erf(x), absolute error below 5e-7 in f32 (Abramowitz & Stegun 7.1.26: 1.5e-7, plus rounding).
#[inline(always)]
fn fast_erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t * (0.254_829_6 + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152_1 + t * 1.061_405_4))));
    let y = 1.0 - poly * fast_exp(-a * a);
    y.copysign(x)
}

fn contiguous_mut<'a>(storage: &'a mut CpuStorage, layout: &Layout, what: &str) -> Result<&'a mut [f32]> {
    let CpuStorage::F32(data) = storage else {
        bail!("{what}: f32 only");
    };
    match layout.contiguous_offsets() {
        Some((a, b)) => Ok(&mut data[a..b]),
        None => bail!("{what}: input must be contiguous"),
    }
}

fn contiguous<'a>(storage: &'a CpuStorage, layout: &Layout, what: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        bail!("{what}: f32 only");
    };
    match layout.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => bail!("{what}: input must be contiguous"),
    }
}

/// softmax(scores * scale) over the last dimension, with keys whose mask is 0 left out
/// (probability 0). `scores`: `[B, H, T, T]`; `mask`: `[B, T]` of 1.0 / 0.0.
struct MaskedSoftmax {
    scale: f32,
}

impl InplaceOp2 for MaskedSoftmax {
    fn name(&self) -> &'static str {
        "masked-softmax"
    }

    fn cpu_fwd(&self, s1: &mut CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<()> {
        let mask = contiguous(s2, l2, "masked softmax mask")?;
        let [b, h, t, t2] = l1.shape().dims() else {
            bail!("masked softmax: scores must be [B, H, T, T], got {:?}", l1.shape());
        };
        let (b, h, t) = (*b, *h, *t);
        if *t2 != t || l2.shape().dims() != [b, t] {
            bail!(
                "masked softmax: mask {:?} does not fit scores {:?}",
                l2.shape(),
                l1.shape()
            );
        }
        let scores = contiguous_mut(s1, l1, "masked softmax")?;
        if t == 0 {
            return Ok(());
        }
        let scale = self.scale;
        // Rows in groups (one task per 64 rows), each row: max, exp, sum, normalise.
        scores.par_chunks_mut(t * 64).enumerate().for_each(|(group, rows)| {
            for (k, row) in rows.chunks_mut(t).enumerate() {
                let r = group * 64 + k;
                dispatch_softmax_row(row, &mask[(r / (h * t)) * t..][..t], scale);
            }
        });
        Ok(())
    }
}

/// One row: keys with mask 0 get probability 0. Written so that it vectorises: branch-free
/// selects, and the max and the sum in eight lanes (a single running float would force a
/// sequential order).
#[inline(always)]
fn softmax_row(dst: &mut [f32], keys: &[f32], scale: f32) {
    for (d, &m) in dst.iter_mut().zip(keys) {
        *d = if m > 0.0 { *d * scale } else { f32::NEG_INFINITY };
    }
    let (chunks, rest) = dst.as_chunks::<8>();
    let mut lanes = [f32::NEG_INFINITY; 8];
    for c in chunks {
        for i in 0..8 {
            lanes[i] = if c[i] > lanes[i] { c[i] } else { lanes[i] };
        }
    }
    let max = lanes
        .iter()
        .chain(rest)
        .fold(f32::NEG_INFINITY, |a, &b| if b > a { b } else { a });
    if max == f32::NEG_INFINITY {
        dst.iter_mut().for_each(|d| *d = 0.0);
        return; // no key at all: a row of zeros (never produced by `Batch`)
    }
    for (d, &m) in dst.iter_mut().zip(keys) {
        *d = fast_exp(*d - max) * m;
    }
    let (chunks, rest) = dst.as_chunks::<8>();
    let mut sums = [0f32; 8];
    for c in chunks {
        for i in 0..8 {
            sums[i] += c[i];
        }
    }
    let inv = 1.0 / (sums.iter().sum::<f32>() + rest.iter().sum::<f32>());
    dst.iter_mut().for_each(|d| *d *= inv);
}

/// The row kernel compiled for AVX2 + FMA where the CPU has them (checked at run time; the
/// default x86-64 target only assumes SSE2, where these loops run 4 lanes wide at best).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn softmax_row_avx2(dst: &mut [f32], keys: &[f32], scale: f32) {
    softmax_row(dst, keys, scale)
}

fn dispatch_softmax_row(dst: &mut [f32], keys: &[f32], scale: f32) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports the features the function was compiled for (checked above).
        return unsafe { softmax_row_avx2(dst, keys, scale) };
    }
    softmax_row(dst, keys, scale)
}

#[inline(always)]
fn gelu_chunk(xs: &mut [f32]) {
    for x in xs.iter_mut() {
        *x = 0.5 * *x * (1.0 + fast_erf(*x * std::f32::consts::FRAC_1_SQRT_2));
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn gelu_chunk_avx2(xs: &mut [f32]) {
    gelu_chunk(xs)
}

fn dispatch_gelu_chunk(xs: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports the features the function was compiled for (checked above).
        return unsafe { gelu_chunk_avx2(xs) };
    }
    gelu_chunk(xs)
}

struct Gelu;

impl InplaceOp1 for Gelu {
    fn name(&self) -> &'static str {
        "fast-gelu-erf"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        contiguous_mut(storage, layout, "gelu")?
            .par_chunks_mut(4096)
            .for_each(dispatch_gelu_chunk);
        Ok(())
    }
}

/// Sets `RAYON_NUM_THREADS`, when it is not set, to the count rayon takes anyway (the logical
/// CPUs). candle asks for its thread count at every matrix product and, without that variable,
/// counts the physical cores by reading `/proc/cpuinfo` each time: on curl's first review (1,000
/// commits scored, a matrix product per layer and batch) that reading took a sixth of the time.
/// candle's products then split over the logical CPUs, as rayon's pool does.
///
/// Call it first in `main`, before any thread exists: setting the environment while another
/// thread reads it is a data race.
pub fn pin_thread_count() {
    if std::env::var_os("RAYON_NUM_THREADS").is_some() {
        return;
    }
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    // SAFETY: called from `main` before it starts any thread (see above).
    unsafe { std::env::set_var("RAYON_NUM_THREADS", n.to_string()) };
}

/// Keeps freed tensor buffers in the process instead of returning them to the kernel.
///
/// glibc serves allocations above 128 KiB (its default mmap threshold, adapted upwards only
/// slowly) with fresh `mmap`s, so every large intermediate tensor costs page faults and
/// zeroing on first touch: 10-15% of inference time in a profile. A 32 MiB threshold (the
/// largest glibc accepts on 64-bit; 32-bit glibc refuses it, harmlessly) and a high trim threshold let the heap reuse them; measured
/// on 256 hunks with two threads: 405 ms -> 284 ms. Other platforms' allocators are left alone.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is called before the threads
    // that allocate tensors exist, and both values are within glibc's accepted ranges.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}

/// Attention probabilities: softmax(scores * scale + mask bias) over the keys, computed in
/// place in `scores` on the CPU (it must not be shared: it is the caller's fresh matmul
/// output). `key_mask`: `[B, T]`, 1.0 for real tokens and 0.0 for padding.
pub fn masked_softmax(scores: Tensor, key_mask: &Tensor, scale: f64) -> Result<Tensor> {
    if scores.device().is_cpu() && scores.dtype() == candle_core::DType::F32 && scores.is_contiguous() {
        scores.inplace_op2(&key_mask.contiguous()?, &MaskedSoftmax { scale: scale as f32 })?;
        return Ok(scores);
    }
    let (b, _, _, t) = scores.dims4()?;
    let bias = ((key_mask - 1.0)? * 1e9)?.reshape((b, 1, 1, t))?;
    candle_nn::ops::softmax_last_dim(&(scores * scale)?.broadcast_add(&bias)?)
}

/// GELU with the exact (erf) form, as `Tensor::gelu_erf`, in place on the CPU (`x` must not
/// be shared: it is the caller's fresh linear-layer output).
pub fn gelu(x: Tensor) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == candle_core::DType::F32 && x.is_contiguous() {
        x.inplace_op1(&Gelu)?;
        return Ok(x);
    }
    x.gelu_erf()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn fast_exp_and_erf_are_accurate() {
        let mut worst = (0f32, 0f32);
        for i in -8700..=8800 {
            let x = i as f32 / 100.0;
            let rel = ((fast_exp(x) as f64 - (x as f64).exp()) / (x as f64).exp()).abs() as f32;
            worst.0 = worst.0.max(rel);
        }
        for i in -600..=600 {
            let x = i as f32 / 100.0;
            let exact = libm_erf(x as f64);
            worst.1 = worst.1.max((fast_erf(x) as f64 - exact).abs() as f32);
        }
        assert!(worst.0 < 2e-7, "exp relative error {}", worst.0);
        assert!(worst.1 < 5e-7, "erf absolute error {}", worst.1);
    }

    /// erf in f64 through candle's own (libm) erf, as the reference.
    fn libm_erf(x: f64) -> f64 {
        let t = Tensor::new(&[x], &Device::Cpu).unwrap();
        t.erf().unwrap().to_vec1::<f64>().unwrap()[0]
    }

    #[test]
    fn kernels_match_candles_reference_ops() {
        let dev = Device::Cpu;
        let scores = Tensor::randn(0f32, 3.0, (2, 3, 5, 5), &dev).unwrap();
        let mask = Tensor::new(&[[1f32, 1., 1., 0., 0.], [1., 1., 1., 1., 1.]], &dev).unwrap();
        let bias = ((&mask - 1.0).unwrap() * 1e9).unwrap().reshape((2, 1, 1, 5)).unwrap();
        let reference =
            candle_nn::ops::softmax_last_dim(&(&scores * 0.5).unwrap().broadcast_add(&bias).unwrap()).unwrap();
        let fused = masked_softmax(scores.copy().unwrap(), &mask, 0.5).unwrap();
        let diff = (reference - &fused).unwrap().abs().unwrap().max_all().unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-6);
        let padded = fused.narrow(0, 0, 1).unwrap().narrow(3, 3, 2).unwrap();
        assert_eq!(
            padded.sum_all().unwrap().to_scalar::<f32>().unwrap(),
            0.0,
            "padding gets no weight"
        );

        let x = Tensor::randn(0f32, 2.0, (3, 7, 11), &dev).unwrap();
        let diff = (x.gelu_erf().unwrap() - gelu(x.copy().unwrap()).unwrap())
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap();
        assert!(diff.to_dtype(DType::F32).unwrap().to_scalar::<f32>().unwrap() < 1e-6);
    }
}
