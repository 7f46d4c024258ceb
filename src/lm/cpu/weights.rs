//! The network's weights: each layer's matrices and vectors, read from a GGUF file's tensors
//! (as stored, or requantised where there is no kernel for their type), their shapes checked
//! against the model's dimensions, and the rotary frequencies. It does not check the
//! hyperparameters (`model/checks.rs` has, before) nor compute anything with the weights.

use super::CpuNet;
use super::Shape;
use super::blocks::{Kind, Matrix};
use super::cache::Cache;
use super::matmul::Group;
use super::team;
use candle_core::Device;
use candle_core::quantized::{QTensor, gguf_file};
use std::io::{Read, Seek};
use std::sync::Arc;

pub(super) struct Layer {
    pub(super) attn_norm: Vec<f32>,
    /// Query, key, value.
    pub(super) qkv: Group,
    pub(super) bias: Option<[Vec<f32>; 3]>,
    pub(super) out: Matrix,
    pub(super) ffn_norm: Vec<f32>,
    /// Gate, up.
    pub(super) gate_up: Group,
    pub(super) down: Matrix,
}

pub(super) struct Weights {
    pub(super) embedding: Matrix,
    pub(super) layers: Vec<Layer>,
    pub(super) norm: Vec<f32>,
    /// `None`: the embedding is the output layer.
    pub(super) output: Option<Matrix>,
    pub(super) heads: usize,
    pub(super) kv_heads: usize,
    pub(super) head_dim: usize,
    pub(super) eps: f32,
    /// The rotary frequency of each pair of dimensions.
    pub(super) theta: Vec<f32>,
    pub(super) interleaved: bool,
    pub(super) context: usize,
    /// The types the file stores that have no kernel here, each with what it is held as
    /// (`Q3_K as Q8_0`), sorted.
    pub(super) requantised: Vec<String>,
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
        let mut requantised = Vec::new();
        // The matrices of products tiled for the kernels; the embedding too where it is the
        // output layer (its rows are looked up gathered from their tiles).
        let tied = !content.tensor_infos.contains_key("output.weight");
        let embedding = hold(tensor("token_embd.weight")?, tied, &mut requantised)?;
        let norm = vector(tensor("output_norm.weight")?)?;
        let output = match tied {
            true => None,
            false => Some(hold(tensor("output.weight")?, true, &mut requantised)?),
        };
        let qwen = arch == "qwen2";
        let (e, kv) = (shape.embedding, shape.kv_heads * head_dim);
        let fits = |m: &Matrix, rows: usize, cols: usize| m.rows == rows && m.cols == cols;
        let mut layers = Vec::with_capacity(shape.layers);
        for i in 0..shape.layers {
            // Those that are stacked are tiled as they are ([`Group::new`]).
            let mut matrix =
                |name: &str, tiled| hold(tensor(&format!("blk.{i}.{name}.weight"))?, tiled, &mut requantised);
            let (q, k, v, out) = (
                matrix("attn_q", false)?,
                matrix("attn_k", false)?,
                matrix("attn_v", false)?,
                matrix("attn_output", true)?,
            );
            let (gate, up, down) = (
                matrix("ffn_gate", false)?,
                matrix("ffn_up", false)?,
                matrix("ffn_down", true)?,
            );
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
        let team = match layers.first() {
            Some(l) if l.out.data.len() >= team::MIN_BYTES => team::Team::new(threads).map(Arc::new),
            _ => None,
        };
        // f16 keys and values for quantised weights, f32 for f32 and f16 ones (`cache.rs`).
        let half = layers
            .first()
            .is_some_and(|l| !matches!(l.out.kind, Kind::F32 | Kind::F16));
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
                requantised: {
                    requantised.sort();
                    requantised.dedup();
                    requantised
                },
            }),
            keys: vec![Cache::new(half); shape.layers],
            values: vec![Cache::new(half); shape.layers],
            len: 0,
            pool,
            team,
        })
    }
}

impl CpuNet {
    /// The file's types that this network holds requantised, with what it holds them as
    /// (`Q3_K as Q8_0`): those it has no kernel for. Empty when it computes on the file's blocks.
    pub fn requantised(&self) -> &[String] {
        &self.w.requantised
    }
}

/// A weight matrix as the products read it ([`Matrix::held`]; as stored, [`Matrix::from_qtensor`],
/// unless `tiled`), its type and what it is held as noted in `requantised` when that differs.
fn hold(t: QTensor, tiled: bool, requantised: &mut Vec<String>) -> candle_core::Result<Matrix> {
    let stored = t.dtype();
    let m = if tiled {
        Matrix::held(t)?
    } else {
        Matrix::from_qtensor(t)?
    };
    if Kind::of(stored) != Some(m.kind) {
        // GGUF's names: Q3_K, not candle's Q3K.
        let name = format!("{stored:?}");
        let name = match name.strip_suffix('K') {
            Some(stem) if !stem.ends_with('_') => format!("{stem}_K"),
            _ => name,
        };
        let held = if m.kind == Kind::Q8_0 { "Q8_0" } else { "f32" };
        requantised.push(format!("{name} as {held}"));
    }
    Ok(m)
}
