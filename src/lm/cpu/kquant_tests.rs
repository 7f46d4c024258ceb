//! Tests of the K-quant kernels (Q4_K, Q5_K, Q6_K) on random super-blocks, held to candle's
//! dequantisation of the very same bytes, and an ignored timing of them beside Q8_0 and Q4_0
//! (`kquant_speed`, run by hand). The whole network on K-quant files is in `tests.rs`.

use super::blocks::{Input, Kind, Matrix, Quantised, SUPER};
use super::kernels::{quantize, rows};
use super::matmul::matmul;
use super::scalar::{self, quantize_super};
use super::tests::PLAIN;
use crate::train::rng::Rng;
use candle_core::Device;
use candle_core::quantized::{GgmlDType, ggml_file};

/// `rows` super-blocks wide rows of random bytes, with small random f16 scales where the
/// layout has them (any bytes elsewhere are valid values, scales and bits).
fn random_blocks(dtype: GgmlDType, rows: usize, cols: usize, rng: &mut Rng) -> Vec<u8> {
    let size = dtype.type_size();
    let mut data: Vec<u8> = (0..rows * cols / SUPER * size)
        .map(|_| (rng.uniform() * 256.0) as u8)
        .collect();
    let scales: &[usize] = match dtype {
        GgmlDType::Q6K => &[208],
        _ => &[0, 2],
    };
    for block in data.chunks_exact_mut(size) {
        for &at in scales {
            let d = half::f16::from_f32(0.001 + 0.01 * rng.uniform());
            block[at..at + 2].copy_from_slice(&d.to_le_bytes());
        }
    }
    data
}

#[test]
fn the_k_quant_kernels_compute_candles_dequantised_weights_times_the_input() {
    // Random super-blocks (every scale, minimum and high bit pattern), 11 rows (not a multiple
    // of four), three super-blocks wide; one token, then seven through the matrix product (four
    // at once, two, and one left over), with the AVX2 kernels and with the plain ones.
    let mut rng = Rng::new(21);
    let (n, cols) = (11, 3 * SUPER);
    for dtype in [GgmlDType::Q4K, GgmlDType::Q5K, GgmlDType::Q6K] {
        let data = random_blocks(dtype, n, cols, &mut rng);
        let theirs = ggml_file::qtensor_from_ggml(dtype, &data, vec![n, cols], &Device::Cpu).unwrap();
        let exact: Vec<f32> = theirs
            .dequantize(&Device::Cpu)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let w = Matrix::from_qtensor(theirs).unwrap();
        assert_eq!(Kind::of(dtype), Some(w.kind));
        assert_eq!(w.data, data, "{dtype:?} held as the file's bytes");
        let mut row = vec![0f32; cols];
        for r in 0..n {
            w.dequantize_row(r, &mut row);
            assert_eq!(row, exact[r * cols..(r + 1) * cols], "{dtype:?} row {r} dequantised");
        }
        let xs: Vec<f32> = (0..7 * cols).map(|_| rng.normal()).collect();
        for plain in [false, true] {
            PLAIN.with(|p| p.set(plain));
            let (mut q, mut all) = (Quantised::default(), Vec::new());
            matmul(&w, &xs, &mut q, &mut all, Default::default());
            for (t, x) in xs.chunks_exact(cols).enumerate() {
                let mut blocks = Quantised::default();
                quantize(w.kind, x, &mut blocks);
                assert_eq!(blocks.k.len(), cols / SUPER);
                let input = Input {
                    x,
                    q: &[],
                    k: &blocks.k,
                };
                let mut one = vec![0f32; n];
                rows(&w, 0, &mut one, &input);
                // The weights as candle dequantises them times the activations as quantised:
                // what the kernels compute, up to the order of the float sums.
                let y: Vec<f32> = blocks.k.iter().flat_map(|b| b.qs.map(|q| b.d * f32::from(q))).collect();
                for r in 0..n {
                    let row = &exact[r * cols..(r + 1) * cols];
                    let want: f32 = row.iter().zip(&y).map(|(a, b)| a * b).sum();
                    let scale: f32 = row.iter().zip(&y).map(|(a, b)| (a * b).abs()).sum();
                    let got = one[r];
                    assert!(
                        (got - want).abs() <= 1e-4 * scale.max(1.0),
                        "{dtype:?} plain {plain} token {t} row {r}: {got} vs {want}"
                    );
                    let plain_dot = scalar::dot(w.kind, &w.row(r), &input);
                    assert!(
                        (got - plain_dot).abs() <= 1e-4 * scale.max(1.0),
                        "{dtype:?} token {t} row {r}: {got} vs the plain {plain_dot}"
                    );
                    // And the unquantised input, as loosely as the other kinds' tests.
                    let unquantised: f32 = row.iter().zip(x).map(|(a, b)| a * b).sum();
                    assert!(
                        (got - unquantised).abs() < 0.05 * scale.max(1.0),
                        "{dtype:?} row {r}: {got} vs {unquantised}"
                    );
                }
                // Several tokens at a time give each token's numbers.
                assert_eq!(&all[t * n..(t + 1) * n], &one[..], "{dtype:?} plain {plain} token {t}");
            }
        }
        PLAIN.with(|p| p.set(false));
    }
}

#[test]
fn activations_quantise_to_the_same_super_blocks_either_way() {
    // Ties, zeros (a block of them: d = 0), and large values; the sums of 16 included.
    let mut rng = Rng::new(5);
    let mut x: Vec<f32> = (0..4 * SUPER).map(|_| rng.normal() * 3.0).collect();
    x[0..32].copy_from_slice(&(0..32).map(|i| i as f32 * 0.5 - 8.0).collect::<Vec<_>>());
    x[SUPER..2 * SUPER].fill(0.0);
    x[3 * SUPER] = 1e4;
    let mut fast = Quantised::default();
    quantize(Kind::Q4K, &x, &mut fast);
    assert_eq!(fast.k.len(), 4);
    for (i, (f, c)) in fast.k.iter().zip(x.chunks_exact(SUPER)).enumerate() {
        let plain = quantize_super(c);
        assert!(
            f.qs == plain.qs && f.d == plain.d && f.sums == plain.sums,
            "super-block {i}: {:?} vs {:?}",
            f.sums,
            plain.sums
        );
        let sums: Vec<i16> = plain
            .qs
            .chunks_exact(16)
            .map(|q| q.iter().map(|&q| i16::from(q)).sum())
            .collect();
        assert_eq!(plain.sums[..], sums[..]);
    }
}

#[test]
#[ignore = "a timing, not a test: cargo test --lib kquant_speed -- --ignored --nocapture"]
fn kquant_speed() {
    // One thread: a 1.7B model's FFN matrix (8192 x 2048) for one token (decode) and for 64
    // (prefill), Q8_0 (what K-quants were requantised to) beside Q4_K, Q5_K and Q6_K.
    let mut rng = Rng::new(3);
    let (n, cols) = (8192, 2048);
    let xs: Vec<f32> = (0..64 * cols).map(|_| rng.normal()).collect();
    for dtype in [
        GgmlDType::Q8_0,
        GgmlDType::Q4_0,
        GgmlDType::Q4K,
        GgmlDType::Q5K,
        GgmlDType::Q6K,
    ] {
        let t = candle_core::Tensor::from_vec(xs[..cols].repeat(n), (n, cols), &Device::Cpu).unwrap();
        let data = random_blocks(dtype, n, cols, &mut rng);
        let build = || {
            if dtype == GgmlDType::Q8_0 || dtype == GgmlDType::Q4_0 {
                Matrix::from_qtensor(candle_core::quantized::QTensor::quantize(&t, dtype).unwrap()).unwrap()
            } else {
                let t = ggml_file::qtensor_from_ggml(dtype, &data, vec![n, cols], &Device::Cpu).unwrap();
                Matrix::from_qtensor(t).unwrap()
            }
        };
        // As the file's rows, and as the network holds them (tiled, where the kind is).
        for (held, w) in [("rows", build()), ("held", build().tile())] {
            let (mut q, mut out) = (Quantised::default(), Vec::new());
            let start = std::time::Instant::now();
            for _ in 0..20 {
                matmul(&w, &xs[..cols], &mut q, &mut out, Default::default());
            }
            let one = start.elapsed().as_secs_f64() / 20.0;
            let start = std::time::Instant::now();
            matmul(&w, &xs, &mut q, &mut out, Default::default());
            let many = start.elapsed().as_secs_f64() / 64.0;
            eprintln!(
                "{dtype:?} {held}: one token {:.2} ms ({:.1} GB/s), 64 tokens {:.2} ms a token",
                one * 1e3,
                w.data.len() as f64 / one / 1e9,
                many * 1e3
            );
        }
    }
}
