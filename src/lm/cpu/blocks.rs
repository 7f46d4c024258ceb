//! The data the kernels read: the GGUF block types this network has a kernel for ([`Kind`]), a
//! weight matrix held as the file's blocks ([`Matrix`], with its dequantisation of one row for
//! the embedding lookup), and 32 activations quantised to 8 bits ([`QBlock`]) as the input of a
//! product ([`Input`]). It computes no product (`kernels.rs`, `scalar.rs`, `x86.rs` do).

use candle_core::Device;
use candle_core::quantized::{GgmlDType, QTensor};

/// Values a block of quantised weights or activations covers.
pub(super) const BLOCK: usize = 32;

/// How a weight matrix is stored: a GGUF type this network has a kernel for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
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
    pub(super) fn of(dtype: GgmlDType) -> Option<Kind> {
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
    pub(super) fn row_bytes(self, cols: usize) -> usize {
        match self {
            Kind::F32 => 4 * cols,
            Kind::F16 => 2 * cols,
            Kind::Q4_0 => cols / BLOCK * 18,
            Kind::Q4_1 => cols / BLOCK * 20,
            Kind::Q8_0 => cols / BLOCK * 34,
        }
    }

    pub(super) fn quantised(self) -> bool {
        matches!(self, Kind::Q4_0 | Kind::Q4_1 | Kind::Q8_0)
    }
}

/// A weight matrix, `[rows, cols]`, row by row in its GGUF blocks.
pub(super) struct Matrix {
    pub(super) kind: Kind,
    pub(super) rows: usize,
    pub(super) cols: usize,
    pub(super) data: Vec<u8>,
}

impl Matrix {
    /// A GGUF tensor as this network holds it: as stored when it has a kernel for the type,
    /// else requantised to Q8_0 (or f32 where rows do not fill whole blocks).
    pub(super) fn from_qtensor(t: QTensor) -> candle_core::Result<Matrix> {
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

    pub(super) fn row(&self, r: usize) -> &[u8] {
        let n = self.kind.row_bytes(self.cols);
        &self.data[r * n..(r + 1) * n]
    }

    /// Row `r` as f32 values (the embedding lookup).
    pub(super) fn dequantize_row(&self, r: usize, out: &mut [f32]) {
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

pub(super) fn half(b: &[u8]) -> f32 {
    half::f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32()
}

/// 32 activations quantised to 8 bits: `x ≈ d * q`, and `s = d * Σq` (what Q4_0's offset and
/// Q4_1's minimum multiply).
#[derive(Clone, Copy)]
#[repr(C)]
pub(super) struct QBlock {
    pub(super) d: f32,
    pub(super) s: f32,
    pub(super) qs: [i8; BLOCK],
}

/// A matrix's input: the activations, and their quantised blocks when the matrix is quantised.
pub(super) struct Input<'a> {
    pub(super) x: &'a [f32],
    pub(super) q: &'a [QBlock],
}
