use super::attention::{attend, attend_matmul};
use super::blocks::{BLOCK, Input, Kind, Matrix, Quantised, SUPER};
use super::kernels::{dot_f32, quantize, rows};
use super::matmul::matmul;
use super::scalar::quantize_block;
use super::*;
use crate::lm::tiny::Tiny;
use candle_core::Device;
use candle_core::Tensor;
use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
use candle_transformers::models::{quantized_llama, quantized_qwen2};

thread_local! {
    /// Set: this thread computes with the plain kernels even where the CPU has AVX2.
    pub static PLAIN: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// Set: this thread computes with the AVX2 kernels even where the CPU has AVX-512 VNNI.
    pub static NO_VNNI: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
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
            GgmlDType::Q4K,
            GgmlDType::Q5K,
            GgmlDType::Q6K,
        ] {
            // The K-quants' rows are whole super-blocks of 256.
            let k = matches!(dtype, GgmlDType::Q4K | GgmlDType::Q5K | GgmlDType::Q6K);
            let t = Tiny {
                architecture,
                dtype,
                embedding: if k { 256 } else { 64 },
                feed_forward: if k { 512 } else { 128 },
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
        // A tiny network's products are too small for a team (`team::MIN_BYTES`): one made
        // to take its one-token products and attention anyway.
        let mut teamed = build(&t, 2);
        assert!(two.team.is_none());
        teamed.team = team::Team::new(2).map(std::sync::Arc::new);
        assert!(teamed.team.is_some());
        let prompt = [5, 40, 77, 3, 9, 120, 12, 13];
        let read = one.forward(&prompt, 0).unwrap();
        assert_eq!(read, two.forward(&prompt, 0).unwrap());
        assert_eq!(read, teamed.forward(&prompt, 0).unwrap());
        let after = one.forward(&[33], prompt.len()).unwrap();
        assert_eq!(after, two.forward(&[33], prompt.len()).unwrap());
        assert_eq!(after, teamed.forward(&[33], prompt.len()).unwrap());
        for (i, id) in [7, 99, 1].into_iter().enumerate() {
            let at = prompt.len() + 1 + i;
            assert_eq!(one.forward(&[id], at).unwrap(), teamed.forward(&[id], at).unwrap());
        }
        one.forward(&[33], prompt.len()).unwrap();
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
    // Grouped heads, keys cached before, queries in several chunks (the last one short), the
    // cache held as f32 and as f16; a head_dim that is not a multiple of eight would take the
    // kernels' tails, but the tiny network's is 16.
    use super::cache::Cache;
    use super::kernels::without_kernels;
    use crate::train::rng::Rng;
    let net = build(&Tiny::default(), 1);
    let w = &net.w;
    let (pos, seq) = (5, 37);
    let mut rng = Rng::new(4);
    let mut random = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.normal()).collect() };
    let kv = w.kv_heads * w.head_dim;
    let (k, v) = (random((pos + seq) * kv), random((pos + seq) * kv));
    let q = random(seq * w.heads * w.head_dim);
    for half in [false, true] {
        let (mut keys, mut values) = (Cache::new(half), Cache::new(half));
        keys.extend(&k);
        values.extend(&v);
        let (mut simd, mut plain, mut product) = (vec![0f32; q.len()], vec![0f32; q.len()], vec![0f32; q.len()]);
        attend(w, &q, keys.lend(), values.lend(), pos, &mut simd, Default::default());
        without_kernels(|| attend(w, &q, keys.lend(), values.lend(), pos, &mut plain, Default::default()));
        attend_matmul(w, &q, &keys.f32s(), &values.f32s(), pos, &mut product, 16).unwrap();
        assert!(worst(&simd, &product) < 1e-5, "half {half}: {}", worst(&simd, &product));
        assert!(worst(&simd, &plain) < 1e-5, "half {half}: {}", worst(&simd, &plain));
        // Rounded to f16, the keys and values move the result, by little.
        if half {
            let mut full = vec![0f32; q.len()];
            attend(
                w,
                &q,
                super::cache::Lent::F32(&k),
                super::cache::Lent::F32(&v),
                pos,
                &mut full,
                Default::default(),
            );
            let moved = worst(&full, &simd);
            assert!(moved > 0.0 && moved < 1e-2, "{moved}");
        }
    }
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
        (GgmlDType::Q4K, 512),
        (GgmlDType::Q5K, 512),
        (GgmlDType::Q6K, 512),
    ] {
        let n = 11;
        let values: Vec<f32> = (0..n * cols).map(|_| rng.normal()).collect();
        let t = Tensor::from_vec(values, (n, cols), &Device::Cpu).unwrap();
        let w = Matrix::from_qtensor(QTensor::quantize(&t, dtype).unwrap()).unwrap();
        assert_eq!(Kind::of(dtype), Some(w.kind));
        let x: Vec<f32> = (0..cols).map(|_| rng.normal()).collect();
        let mut q = Quantised::default();
        quantize(w.kind, &x, &mut q);
        let input = Input {
            x: &x,
            q: &q.q,
            k: &q.k,
        };
        let mut fast = vec![0f32; n];
        rows(&w, 0, &mut fast, &input);
        for (r, fast) in fast.iter().enumerate() {
            let plain = scalar::dot(w.kind, &w.row(r), &input);
            assert!(
                (fast - plain).abs() <= 1e-4 * plain.abs().max(1.0),
                "{dtype:?} row {r}: {fast} vs {plain}"
            );
        }
        // Several tokens at once (two by two, and one left over) give each token's numbers.
        let xs: Vec<f32> = (0..5 * cols).map(|_| rng.normal()).collect();
        let (mut many, mut all) = (Quantised::default(), Vec::new());
        matmul(&w, &xs, &mut many, &mut all, Default::default());
        for (t, x) in xs.chunks_exact(cols).enumerate() {
            let mut blocks = Quantised::default();
            quantize(w.kind, x, &mut blocks);
            let mut one = vec![0f32; n];
            rows(
                &w,
                0,
                &mut one,
                &Input {
                    x,
                    q: &blocks.q,
                    k: &blocks.k,
                },
            );
            assert_eq!(&all[t * n..(t + 1) * n], &one[..], "{dtype:?} token {t}");
        }
        // The plain dot product is the product of the dequantised row and the input, but for
        // the activations' rounding: at most half a step of each value's block (32 values
        // share a step for the 32-value kinds, 256 for the K-quants), times its weight.
        let mut row = vec![0f32; cols];
        w.dequantize_row(3, &mut row);
        let exact: f32 = row.iter().zip(&x).map(|(a, b)| a * b).sum();
        let plain = scalar::dot(w.kind, &w.row(3), &input);
        let step = |i: usize| match (q.q.get(i / BLOCK), q.k.get(i / SUPER)) {
            (Some(b), _) => b.d,
            (_, Some(b)) => b.d,
            _ => 0.0,
        };
        let rounding: f32 = row.iter().enumerate().map(|(i, w)| w.abs() * step(i) / 2.0).sum();
        assert!(
            (exact - plain).abs() <= rounding + 1e-4 * exact.abs().max(1.0),
            "{dtype:?}: {exact} vs {plain}, rounding at most {rounding}"
        );
    }
    // Quantised activations: the same blocks either way, ties included.
    let mut x: Vec<f32> = (0..256).map(|_| rng.normal() * 3.0).collect();
    x[0..32].copy_from_slice(&(0..32).map(|i| i as f32 * 0.5 - 8.0).collect::<Vec<_>>());
    x[32..64].fill(0.0);
    let mut fast = Quantised::default();
    quantize(Kind::Q8_0, &x, &mut fast);
    for (i, (f, c)) in fast.q.iter().zip(x.chunks_exact(BLOCK)).enumerate() {
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

/// `rows` rows of `cols` weights of `kind` (Q8_0, Q4_0, Q4_1, Q4_K, Q6_K) in blocks of random
/// bytes, their f16 scales small and positive.
fn random_blocks(kind: Kind, rows: usize, cols: usize, rng: &mut crate::train::rng::Rng) -> Vec<u8> {
    // Per block: the f16 scales, then random bytes (Q6_K: random bytes, then its scale).
    let (halves, bytes) = match kind {
        Kind::Q8_0 => (1, 32),
        Kind::Q4_0 => (1, 16),
        Kind::Q4_1 => (2, 16),
        Kind::Q4K => (2, 140),
        Kind::Q6K => (1, 208),
        _ => unreachable!("random blocks of {kind:?}"),
    };
    let mut data = Vec::new();
    for _ in 0..rows * cols / kind.block() {
        let mut block = Vec::new();
        for _ in 0..halves {
            let d = half::f16::from_f32(0.01 + rng.uniform() * 0.05);
            block.extend_from_slice(&d.to_le_bytes());
        }
        block.extend((0..bytes).map(|_| rng.below(256) as u8));
        if kind == Kind::Q6K {
            block.rotate_left(2);
        }
        data.extend(block);
    }
    data
}

#[test]
fn a_tiled_matrix_computes_what_its_rows_do() {
    // Q4_0, Q4_K and Q6_K rows interleaved eight by eight: the same rows gathered back, the
    // same embedding lookup, and the same products (to the rounding of another order of sums)
    // for 1 to 7 tokens, over whole tiles and over rows that start and end inside one, with
    // the AVX2, the VNNI and the plain kernels. The weights' bytes are random (every nibble,
    // every 6-bit scale and minimum), and the activations reach ±127.
    use super::kernels::{has_vnni, without_kernels, without_vnni};
    use crate::train::rng::Rng;
    let mut rng = Rng::new(33);
    let rows = 24;
    // Q4_1 stays as rows (see `tiles.rs`).
    let rows_of = |kind| Matrix {
        kind,
        rows,
        cols: 128,
        data: vec![0; rows * 4 * 20],
        tiled: false,
    };
    assert!(!rows_of(Kind::Q4_1).tile().tiled);
    for kind in [Kind::Q4_0, Kind::Q4K, Kind::Q6K] {
        let cols = if kind.block() == BLOCK { 128 } else { 512 };
        let mut data = random_blocks(kind, rows, cols, &mut rng);
        // Nibbles 0 and 15, then 15 and 0, in the first block's first bytes of values.
        let halves = if kind == Kind::Q4_0 || kind == Kind::Q6K { 1 } else { 2 };
        data[2 * halves] = 0xf0;
        data[2 * halves + 1] = 0x0f;
        let plain = Matrix {
            kind,
            rows,
            cols,
            data: data.clone(),
            tiled: false,
        };
        let tiled = Matrix {
            kind,
            rows,
            cols,
            data,
            tiled: false,
        }
        .tile();
        assert!(
            tiled.tiled && tiled.data.len() == rows / 8 * tiled.tile_bytes(),
            "{kind:?}"
        );
        assert_ne!(tiled.data, plain.data, "{kind:?}: tiling moved no byte");
        let (mut a, mut b) = (vec![0f32; cols], vec![0f32; cols]);
        for r in 0..rows {
            assert_eq!(tiled.row(r), plain.row(r), "{kind:?} row {r}");
            plain.dequantize_row(r, &mut a);
            tiled.dequantize_row(r, &mut b);
            assert_eq!(a, b, "{kind:?} row {r}");
        }
        let close = |x: &[f32], y: &[f32], what: &str| {
            assert_eq!(x.len(), y.len());
            for (i, (x, y)) in x.iter().zip(y).enumerate() {
                assert!(
                    (x - y).abs() <= 1e-4 * y.abs().max(1.0),
                    "{kind:?} {what} {i}: {x} vs {y}"
                );
            }
        };
        let mut xs: Vec<f32> = (0..7 * cols).map(|_| rng.normal()).collect();
        xs[0] = 40.0;
        xs[cols] = -40.0;
        let mut q = Quantised::default();
        for tokens in 1..=7 {
            let xs = &xs[..tokens * cols];
            let (mut want, mut got) = (Vec::new(), Vec::new());
            matmul(&plain, xs, &mut q, &mut want, Default::default());
            matmul(&tiled, xs, &mut q, &mut got, Default::default());
            close(&got, &want, &format!("{tokens} tokens, value"));
            if has_vnni() {
                let mut avx2 = Vec::new();
                without_vnni(|| matmul(&tiled, xs, &mut q, &mut avx2, Default::default()));
                assert_eq!(avx2, got, "{kind:?}: VNNI and AVX2 differ");
            }
            let mut scalar = Vec::new();
            without_kernels(|| matmul(&tiled, xs, &mut q, &mut scalar, Default::default()));
            close(&scalar, &want, &format!("{tokens} tokens, plain kernels, value"));
        }
        // Rows 3..21: five alone, two whole tiles, five alone.
        let (x, mut one) = (&xs[..cols], Quantised::default());
        quantize(kind, x, &mut one);
        let input = Input {
            x,
            q: &one.q,
            k: &one.k,
        };
        let (mut want, mut got) = (vec![0f32; 18], vec![0f32; 18]);
        super::kernels::rows(&plain, 3, &mut want, &input);
        super::kernels::rows(&tiled, 3, &mut got, &input);
        close(&got, &want, "rows 3.., value");
    }
}

#[test]
fn the_vnni_kernels_equal_the_avx2_ones_to_the_bit() {
    // Where the CPU has AVX-512 VNNI, the 32-value kinds sum their byte products with
    // `dpbusd`: the same integers as AVX2's `maddubs` and `madd`, so the same numbers, for
    // one token, two and four at once (7 tokens), over tiles of four rows and the rows left
    // (11). The weights' bytes are random, extremes included (-128 for Q8_0, 15 for the
    // 4-bit kinds), and the activations reach ±127.
    use super::kernels::{has_vnni, without_vnni};
    use crate::train::rng::Rng;
    if !has_vnni() {
        eprintln!("skipped: this CPU has no AVX-512 VNNI");
        return;
    }
    let mut rng = Rng::new(21);
    let (rows, cols) = (11, 128);
    for kind in [Kind::Q8_0, Kind::Q4_0, Kind::Q4_1] {
        let mut data = random_blocks(kind, rows, cols, &mut rng);
        let scales = if kind == Kind::Q4_1 { 2 } else { 1 };
        // The first block's first values: -128 for Q8_0, nibbles 0 and 8 for the others; then
        // -1, and nibbles 15 and 15.
        data[2 * scales] = 0x80;
        data[2 * scales + 1] = 0xff;
        let w = Matrix {
            kind,
            rows,
            cols,
            data,
            tiled: false,
        };
        let mut xs: Vec<f32> = (0..7 * cols).map(|_| rng.normal()).collect();
        xs[0] = 40.0; // quantised to 127, its block's others small
        xs[cols] = -40.0;
        let (mut q, mut fast, mut plain) = (Quantised::default(), Vec::new(), Vec::new());
        matmul(&w, &xs, &mut q, &mut fast, Default::default());
        without_vnni(|| matmul(&w, &xs, &mut q, &mut plain, Default::default()));
        assert_eq!(fast, plain, "{kind:?}");
        assert!(fast.iter().all(|v| v.is_finite() && *v != 0.0), "{kind:?}: {fast:?}");
    }
    // The K-quants apply their scales with `dpwssd` there: the same integers again.
    for dtype in [GgmlDType::Q4K, GgmlDType::Q5K, GgmlDType::Q6K] {
        let cols = 512;
        let values: Vec<f32> = (0..rows * cols).map(|_| rng.normal()).collect();
        let t = Tensor::from_vec(values, (rows, cols), &Device::Cpu).unwrap();
        let w = Matrix::from_qtensor(QTensor::quantize(&t, dtype).unwrap()).unwrap();
        let xs: Vec<f32> = (0..7 * cols).map(|_| rng.normal()).collect();
        let (mut q, mut fast, mut plain) = (Quantised::default(), Vec::new(), Vec::new());
        matmul(&w, &xs, &mut q, &mut fast, Default::default());
        without_vnni(|| matmul(&w, &xs, &mut q, &mut plain, Default::default()));
        assert_eq!(fast, plain, "{dtype:?}");
    }
}

/// The weights' memory asks for huge pages before it is written: the kernel marks the range
/// (`hg` in its mapping's flags), whether or not it then finds free huge pages for it. Skipped
/// where the system has no transparent huge pages.
#[test]
#[cfg(target_os = "linux")]
fn a_large_weight_buffer_asks_for_huge_pages_before_it_is_written() {
    if !std::path::Path::new("/sys/kernel/mm/transparent_hugepage/enabled").exists() {
        eprintln!("skipped: this system has no transparent huge pages");
        return;
    }
    // The flags of the mapping that holds `addr`, from /proc/self/smaps.
    let flags = |addr: usize| -> String {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut inside = false;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ')
                && let Some((a, b)) = range.split_once('-')
                && let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
            {
                inside = (a..b).contains(&addr);
            } else if inside && let Some(f) = line.strip_prefix("VmFlags:") {
                return f.to_string();
            }
        }
        panic!("no mapping holds {addr:#x}");
    };
    const HUGE: usize = 2 << 20;
    let mut big = blocks::huge_buffer(5 * HUGE);
    assert!(big.is_empty() && big.capacity() >= 5 * HUGE);
    // Its last byte sits in a huge page the advice covers, as does its first aligned one.
    let first = (big.as_ptr() as usize).next_multiple_of(HUGE);
    let last = big.as_ptr() as usize + 5 * HUGE - 1;
    for addr in [first, last] {
        assert!(
            flags(addr).split_whitespace().any(|f| f == "hg"),
            "{addr:#x}: {}",
            flags(addr)
        );
    }
    big.resize(5 * HUGE, 7);
    assert!(big.iter().all(|&b| b == 7));
}
