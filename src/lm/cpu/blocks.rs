//! The data the kernels read: the GGUF block types this network has a kernel for ([`Kind`]), a
//! weight matrix held as the file's blocks ([`Matrix`], with its dequantisation of one row for
//! the embedding lookup; Q4_0, Q4_K and Q6_K rows interleaved eight at a time by
//! [`Matrix::tile`]; the matrices the products read in memory of huge pages, [`huge_buffer`]),
//! and the activations quantised to 8 bits as the input of a product
//! ([`Input`]): per 32 values ([`QBlock`]) for Q4_0, Q4_1 and Q8_0 weights, per 256 ([`KBlock`],
//! ggml's Q8_K) for the K-quants. It computes no product (`kernels.rs`, `scalar.rs`, `x86/` do).

use super::tiles::{gather, interleave, tile_block_bytes};
use candle_core::Device;
use candle_core::quantized::{GgmlDType, QTensor};
use std::borrow::Cow;

/// Whether a matrix of `rows` rows of `kind` is held tiled ([`Matrix::tile`]).
pub(super) fn tiles(kind: Kind, rows: usize) -> bool {
    tile_block_bytes(kind).is_some() && rows.is_multiple_of(TILE)
}

/// Bytes of a tile of eight rows of `cols` values of `kind` (0 for a kind without tiles).
fn tile_bytes(kind: Kind, cols: usize) -> usize {
    tile_block_bytes(kind).map_or(0, |b| b * cols / kind.block())
}

/// The tiles of the rows the `parts` hold, one after the other (each a whole number of
/// tiles), in memory of huge pages.
pub(super) fn interleaved(kind: Kind, cols: usize, parts: &[&[u8]]) -> Vec<u8> {
    let n = kind.row_bytes(cols);
    let t = tile_bytes(kind, cols);
    let rows: usize = parts.iter().map(|p| p.len() / n).sum();
    let mut out = huge_buffer(rows / TILE * t);
    for rows in parts.iter().flat_map(|p| p.chunks_exact(TILE * n)) {
        interleave(kind, rows, n, &mut out);
    }
    out
}

/// An empty buffer for `capacity` bytes of weights whose pages the kernel is asked to back
/// with huge pages (2 MiB; Linux's transparent huge pages in `madvise` mode, the common
/// default, give none unless asked). Decoding a token reads every weight once: on 4 KiB pages
/// the CPU's prefetchers stop at each page's end and each page takes a TLB entry. The advice
/// comes before the first write, so that the pages are allocated huge, and covers the buffer
/// from its first 2 MiB boundary on; it reserves one huge page more than `capacity`, so that the
/// last one fits (up to 2 MiB of memory a matrix). Only advice: a system without huge pages
/// keeps ordinary ones.
pub(super) fn huge_buffer(capacity: usize) -> Vec<u8> {
    const HUGE: usize = 2 << 20;
    if capacity < HUGE {
        return Vec::with_capacity(capacity);
    }
    let data = Vec::with_capacity(capacity + HUGE);
    #[cfg(target_os = "linux")]
    {
        let start = (data.as_ptr() as usize).next_multiple_of(HUGE);
        let end = start + capacity.next_multiple_of(HUGE);
        let owned = data.as_ptr() as usize + data.capacity();
        // SAFETY: [start, min(end, owned)) lies inside the allocation `data` owns, which nothing
        // has written yet; MADV_HUGEPAGE changes how its pages are backed, never their content.
        unsafe { libc::madvise(start as *mut libc::c_void, end.min(owned) - start, libc::MADV_HUGEPAGE) };
    }
    data
}

/// Values a block of quantised weights or activations covers.
pub(super) const BLOCK: usize = 32;
/// Values a K-quant super-block of weights or activations covers.
pub(super) const SUPER: usize = 256;

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
    /// 256 weights (144 bytes): f16 `d` and `dmin`, twelve bytes of eight 6-bit scales and
    /// eight 6-bit minimums ([`scales_mins`]), 128 bytes of 4-bit values; value `v` of
    /// sub-block `j` (32 values) is `d * sc_j * q - dmin * m_j`.
    Q4K,
    /// 256 weights (176 bytes): as Q4_K, with a fifth bit per value in 32 bytes `qh` between
    /// the scales and the 4-bit values.
    Q5K,
    /// 256 weights (210 bytes): 128 bytes of low 4 bits, 64 of high 2 bits, sixteen signed
    /// 8-bit scales (one per 16 values) and an f16 `d`; a value is `d * sc * (q - 32)`.
    Q6K,
}

/// How a matrix's input is quantised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Activations {
    F32,
    /// Per 32 values ([`QBlock`]).
    Q8_0,
    /// Per 256 values ([`KBlock`]).
    Q8K,
}

impl Kind {
    pub(super) fn of(dtype: GgmlDType) -> Option<Kind> {
        Some(match dtype {
            GgmlDType::F32 => Kind::F32,
            GgmlDType::F16 => Kind::F16,
            GgmlDType::Q4_0 => Kind::Q4_0,
            GgmlDType::Q4_1 => Kind::Q4_1,
            GgmlDType::Q8_0 => Kind::Q8_0,
            GgmlDType::Q4K => Kind::Q4K,
            GgmlDType::Q5K => Kind::Q5K,
            GgmlDType::Q6K => Kind::Q6K,
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
            Kind::Q4K => cols / SUPER * 144,
            Kind::Q5K => cols / SUPER * 176,
            Kind::Q6K => cols / SUPER * 210,
        }
    }

    /// Values one block covers: a row is whole blocks.
    pub(super) fn block(self) -> usize {
        match self.activations() {
            Activations::F32 => 1,
            Activations::Q8_0 => BLOCK,
            Activations::Q8K => SUPER,
        }
    }

    pub(super) fn activations(self) -> Activations {
        match self {
            Kind::F32 | Kind::F16 => Activations::F32,
            Kind::Q4_0 | Kind::Q4_1 | Kind::Q8_0 => Activations::Q8_0,
            Kind::Q4K | Kind::Q5K | Kind::Q6K => Activations::Q8K,
        }
    }
}

/// Rows a tile of a tiled matrix interleaves ([`Matrix::tile`]).
pub(super) const TILE: usize = 8;

/// A weight matrix, `[rows, cols]`, row by row in its GGUF blocks, or, `tiled`, eight rows at
/// a time block by block ([`Matrix::tile`]).
pub(super) struct Matrix {
    pub(super) kind: Kind,
    pub(super) rows: usize,
    pub(super) cols: usize,
    pub(super) data: Vec<u8>,
    pub(super) tiled: bool,
}

impl Matrix {
    /// A GGUF tensor's rows as stored when this network has a kernel for the type, else
    /// requantised to Q8_0 (or f32 where rows do not fill whole blocks); in ordinary memory,
    /// for a lookup or to be stacked ([`super::matmul::Group`]) or tiled.
    pub(super) fn from_qtensor(t: QTensor) -> candle_core::Result<Matrix> {
        Matrix::read(t, false)
    }

    /// A GGUF tensor as the products read it: [`Matrix::from_qtensor`]'s rows, tiled
    /// ([`Matrix::tile`]) where they can be, in one pass from the tensor's bytes into memory
    /// of huge pages ([`huge_buffer`]).
    pub(super) fn held(t: QTensor) -> candle_core::Result<Matrix> {
        Matrix::read(t, true)
    }

    fn read(t: QTensor, tile: bool) -> candle_core::Result<Matrix> {
        let (rows, cols) = t.shape().dims2()?;
        let kind = Kind::of(t.dtype()).filter(|k| cols % k.block() == 0);
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
        let bytes = t.data()?;
        if bytes.len() != rows * kind.row_bytes(cols) {
            candle_core::bail!("a {rows}x{cols} {kind:?} matrix holds {} bytes", bytes.len());
        }
        let tiled = tile && tiles(kind, rows);
        let data = if tiled {
            interleaved(kind, cols, &[&bytes])
        } else if tile {
            let mut data = huge_buffer(bytes.len());
            data.extend_from_slice(&bytes);
            data
        } else {
            bytes.into_owned()
        };
        Ok(Matrix {
            kind,
            rows,
            cols,
            data,
            tiled,
        })
    }

    /// The same matrix with its rows interleaved eight at a time, block by block, where the
    /// kernels have a tiled product for its kind (Q4_0, Q4_K, Q6_K; the layouts are in
    /// `tiles.rs`), in memory of huge pages ([`huge_buffer`]); other kinds, and row counts
    /// that are not a multiple of eight, stay as they are.
    pub(super) fn tile(self) -> Matrix {
        if self.tiled || !tiles(self.kind, self.rows) {
            return self;
        }
        Matrix {
            data: interleaved(self.kind, self.cols, &[&self.data]),
            tiled: true,
            ..self
        }
    }

    /// Bytes of a tile of a tiled matrix: eight rows.
    pub(super) fn tile_bytes(&self) -> usize {
        tile_bytes(self.kind, self.cols)
    }

    /// Row `r` in its GGUF blocks (gathered from its tile when the matrix is tiled).
    pub(super) fn row(&self, r: usize) -> Cow<'_, [u8]> {
        let n = self.kind.row_bytes(self.cols);
        if !self.tiled {
            return Cow::Borrowed(&self.data[r * n..(r + 1) * n]);
        }
        let t = self.tile_bytes();
        let mut row = Vec::with_capacity(n);
        gather(
            self.kind,
            &self.data[r / TILE * t..][..t],
            self.cols,
            r % TILE,
            &mut row,
        );
        Cow::Owned(row)
    }

    /// Row `r` as f32 values (the embedding lookup).
    pub(super) fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        let row = &*self.row(r);
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
            Kind::Q4K | Kind::Q5K => {
                let size = if self.kind == Kind::Q4K { 144 } else { 176 };
                for (o, b) in out.chunks_exact_mut(SUPER).zip(row.chunks_exact(size)) {
                    let (d, dmin) = (half(&b[0..2]), half(&b[2..4]));
                    let (sc, m) = scales_mins(&b[4..16]);
                    let (qh, qs) = if size == 144 {
                        (None, &b[16..])
                    } else {
                        (Some(&b[16..48]), &b[48..])
                    };
                    for (j, o) in o.chunks_exact_mut(32).enumerate() {
                        let (scale, min) = (d * f32::from(sc[j]), dmin * f32::from(m[j]));
                        for (l, o) in o.iter_mut().enumerate() {
                            let q = qs[32 * (j / 2) + l] >> (4 * (j % 2)) & 15;
                            let high = qh.map_or(0, |qh| (qh[l] >> j & 1) << 4);
                            *o = scale * f32::from(q | high) - min;
                        }
                    }
                }
            }
            Kind::Q6K => {
                for (o, b) in out.chunks_exact_mut(SUPER).zip(row.chunks_exact(210)) {
                    let d = half(&b[208..210]);
                    for (v, o) in o.iter_mut().enumerate() {
                        *o = d * f32::from(b[192 + v / 16] as i8) * f32::from(q6(b, v));
                    }
                }
            }
        }
    }
}

/// The eight 6-bit scales and eight 6-bit minimums of a Q4_K or Q5_K super-block, from its
/// twelve bytes: bytes 0–3 hold scales 0–3 and bytes 4–7 minimums 0–3 in their low six bits;
/// bytes 8–11 hold the low four bits of scales 4–7 (low half) and minimums 4–7 (high half),
/// whose top two bits are the top bits of bytes 0–3 and 4–7.
pub(super) fn scales_mins(b: &[u8]) -> ([u8; 8], [u8; 8]) {
    let (mut sc, mut m) = ([0u8; 8], [0u8; 8]);
    for j in 0..4 {
        sc[j] = b[j] & 63;
        m[j] = b[j + 4] & 63;
        sc[j + 4] = (b[j + 8] & 15) | (b[j] >> 6) << 4;
        m[j + 4] = (b[j + 8] >> 4) | (b[j + 4] >> 6) << 4;
    }
    (sc, m)
}

/// Value `v` (0–255) of a Q6_K super-block `b`, `q - 32`: in each half of 128 values, values
/// `l`, `l + 32`, `l + 64`, `l + 96` take the low and high halves of bytes `l` and `l + 32` of
/// that half's 64 low-bit bytes, and two bits each of its byte `l` of high bits.
pub(super) fn q6(b: &[u8], v: usize) -> i8 {
    let (half, k, l) = (v / 128, v % 128 / 32, v % 32);
    let low = b[64 * half + l + 32 * (k % 2)] >> (4 * (k / 2)) & 15;
    let high = b[128 + 32 * half + l] >> (2 * k) & 3;
    (low | high << 4) as i8 - 32
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

/// 256 activations quantised to 8 bits (ggml's Q8_K): `x ≈ d * q`, and the sum of each 16
/// values `q` (what the K-quants' minimums and Q6_K's offset multiply).
#[derive(Clone, Copy)]
#[repr(C)]
pub(super) struct KBlock {
    pub(super) d: f32,
    pub(super) qs: [i8; SUPER],
    pub(super) sums: [i16; SUPER / 16],
}

/// A matrix's input: the activations, and their quantised blocks as the matrix's kind wants
/// them ([`Kind::activations`]; the other slice may be empty).
pub(super) struct Input<'a> {
    pub(super) x: &'a [f32],
    pub(super) q: &'a [QBlock],
    pub(super) k: &'a [KBlock],
}

impl Input<'_> {
    /// Whether this input has what a product with `cols` columns of `kind` reads.
    pub(super) fn fits(&self, kind: Kind, cols: usize) -> bool {
        match kind.activations() {
            Activations::F32 => self.x.len() == cols,
            Activations::Q8_0 => self.q.len() * BLOCK == cols,
            Activations::Q8K => self.k.len() * SUPER == cols,
        }
    }
}

/// An input's quantised blocks, the allocation kept from one product to the next.
#[derive(Default)]
pub(super) struct Quantised {
    pub(super) q: Vec<QBlock>,
    pub(super) k: Vec<KBlock>,
}
