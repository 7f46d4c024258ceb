//! The layout of a tiled matrix ([`super::blocks::Matrix::tile`]): eight rows interleaved block
//! by block, as ggml's CPU "repack" buffers hold them, so that one vector holds four 4-bit values
//! of each of eight rows and a kernel sums eight rows at once (`x86::q4_tile`,
//! `x86::kquants::q4k_tile`, `x86::kquants::q6k_tile`), with the eight rows' scales side by
//! side. Here are the layouts, [`interleave`] (eight rows' blocks into a tile's) and [`gather`]
//! (one row's blocks back, the same bytes); it computes no product.
//!
//! Per block of the eight rows (`TILE`), in this order:
//! - **Q4_0** (144 bytes): the rows' `d` (eight f16), then 128 bytes of 4-bit values in four
//!   chunks of 32: chunk `c` holds bytes `4c..4c + 4` of each row's 16, row by row, so that value
//!   `4c + i` of row `r` is the low half of byte `4r + i` of chunk `c`, value `16 + 4c + i` its
//!   high half.
//! - **Q4_1** is not tiled: a tile sums in another order, to the last bits of a float, and the
//!   greedy answers of the real model the end-to-end tests run (SmolLM2-135M, a Q4_1 file) changed
//!   with it; its rows keep the row kernels and their numbers.
//! - **Q4_K** (1,184 bytes, a super-block of 256 values; 2.8% more than the rows' own 1,152):
//!   the rows' `d`, their `dmin` (eight f16 each); the 6-bit scales unpacked, one byte each,
//!   sub-block by sub-block (byte `8s + r`); the 6-bit minimums unpacked, one byte each, two
//!   sub-blocks a pair (pair `k`, row `r`: minimums `2k` and `2k + 1` at `2r` of 16 bytes; a
//!   kernel widens them to the 16 bits it multiplies, rather than reading them so from memory,
//!   which is what bounds the product of one token); then
//!   the 128 bytes of 4-bit values of each row in four groups of eight chunks: chunk `c` of group
//!   `j` holds bytes `32j + 4c..32j + 4c + 4` of each row's, row by row (their low halves are
//!   values `64j + 4c + i` of sub-block `2j`, their high halves those of sub-block `2j + 1`).
//! - **Q6_K** (1,680 bytes, the rows' own): the rows' `d`; the sixteen signed scales, scale by
//!   scale (byte `8s + r`); then for each half `h` of 128 values and each `c` of 0..8, three
//!   chunks of 32 bytes, each holding four bytes of each row, row by row: low bits `64h + 4c..`,
//!   low bits `64h + 32 + 4c..` and high bits `32h + 4c..` (the four 6-bit values each byte
//!   group makes are values `128h + 32k + 4c + i`, k = 0..4, of sub-block `8h + 2k + c / 4`).

use super::blocks::{BLOCK, Kind, SUPER, TILE, scales_mins};

/// Bytes of one block of a tile (the blocks of its eight rows), for a kind that is tiled.
pub(super) fn tile_block_bytes(kind: Kind) -> Option<usize> {
    match kind {
        Kind::Q4_0 => Some(TILE * 18),
        Kind::Q4K => Some(TILE * 144 + 32),
        Kind::Q6K => Some(TILE * 210),
        _ => None,
    }
}

/// Appends the tile of `rows` (eight rows of `row_bytes` each, their GGUF blocks) to `out`.
pub(super) fn interleave(kind: Kind, rows: &[u8], row_bytes: usize, out: &mut Vec<u8>) {
    let row = |i: usize| &rows[i * row_bytes..(i + 1) * row_bytes];
    match kind {
        Kind::Q4_0 => {
            for j in 0..row_bytes / 18 {
                let block = |i: usize| &row(i)[j * 18..][..18];
                (0..TILE).for_each(|i| out.extend_from_slice(&block(i)[..2]));
                for c in 0..4 {
                    (0..TILE).for_each(|i| out.extend_from_slice(&block(i)[2 + 4 * c..][..4]));
                }
            }
        }
        Kind::Q4K => {
            for j in 0..row_bytes / 144 {
                let block = |i: usize| &row(i)[j * 144..][..144];
                for at in [0, 2] {
                    (0..TILE).for_each(|i| out.extend_from_slice(&block(i)[at..at + 2]));
                }
                let unpacked: [([u8; 8], [u8; 8]); TILE] = std::array::from_fn(|i| scales_mins(&block(i)[4..16]));
                for s in 0..8 {
                    out.extend(unpacked.iter().map(|(sc, _)| sc[s]));
                }
                for k in 0..4 {
                    for (_, m) in &unpacked {
                        out.extend_from_slice(&[m[2 * k], m[2 * k + 1]]);
                    }
                }
                for g in 0..4 {
                    for c in 0..8 {
                        (0..TILE).for_each(|i| out.extend_from_slice(&block(i)[16 + 32 * g + 4 * c..][..4]));
                    }
                }
            }
        }
        Kind::Q6K => {
            for j in 0..row_bytes / 210 {
                let block = |i: usize| &row(i)[j * 210..][..210];
                (0..TILE).for_each(|i| out.extend_from_slice(&block(i)[208..210]));
                for s in 0..16 {
                    out.extend((0..TILE).map(|i| block(i)[192 + s]));
                }
                for h in 0..2 {
                    for c in 0..8 {
                        for at in [64 * h + 4 * c, 64 * h + 32 + 4 * c, 128 + 32 * h + 4 * c] {
                            (0..TILE).for_each(|i| out.extend_from_slice(&block(i)[at..at + 4]));
                        }
                    }
                }
            }
        }
        _ => unreachable!("a tile of a {kind:?} matrix"),
    }
}

/// Appends row `i` (0..8) of `tile` (the tile's blocks, `cols` values a row) to `out`, as its
/// GGUF blocks.
pub(super) fn gather(kind: Kind, tile: &[u8], cols: usize, i: usize, out: &mut Vec<u8>) {
    match kind {
        Kind::Q4_0 => {
            for t in tile.chunks_exact(TILE * 18).take(cols / BLOCK) {
                out.extend_from_slice(&t[2 * i..][..2]);
                for c in 0..4 {
                    out.extend_from_slice(&t[2 * TILE + 32 * c + 4 * i..][..4]);
                }
            }
        }
        Kind::Q4K => {
            for t in tile.chunks_exact(TILE * 144 + 32).take(cols / SUPER) {
                out.extend_from_slice(&t[2 * i..][..2]);
                out.extend_from_slice(&t[16 + 2 * i..][..2]);
                let sc: [u8; 8] = std::array::from_fn(|s| t[32 + 8 * s + i]);
                let m: [u8; 8] = std::array::from_fn(|s| t[96 + 16 * (s / 2) + 2 * i + s % 2]);
                // The inverse of `scales_mins`: 6 bits each, the high two of 4..8 above 0..4's.
                out.extend((0..4).map(|j| sc[j] | (sc[j + 4] >> 4) << 6));
                out.extend((0..4).map(|j| m[j] | (m[j + 4] >> 4) << 6));
                out.extend((0..4).map(|j| (sc[j + 4] & 15) | (m[j + 4] & 15) << 4));
                for g in 0..4 {
                    for c in 0..8 {
                        out.extend_from_slice(&t[160 + 256 * g + 32 * c + 4 * i..][..4]);
                    }
                }
            }
        }
        Kind::Q6K => {
            for t in tile.chunks_exact(TILE * 210).take(cols / SUPER) {
                let mut block = [0u8; 210];
                block[208..210].copy_from_slice(&t[2 * i..][..2]);
                for s in 0..16 {
                    block[192 + s] = t[16 + 8 * s + i];
                }
                for h in 0..2 {
                    for c in 0..8 {
                        let chunks = &t[144 + 96 * (8 * h + c)..][..96];
                        for (k, at) in [64 * h + 4 * c, 64 * h + 32 + 4 * c, 128 + 32 * h + 4 * c]
                            .into_iter()
                            .enumerate()
                        {
                            block[at..at + 4].copy_from_slice(&chunks[32 * k + 4 * i..][..4]);
                        }
                    }
                }
                out.extend_from_slice(&block);
            }
        }
        _ => unreachable!("a row of a tiled {kind:?} matrix"),
    }
}
