//! The plain-Rust kernels: the dot product of one row of weights (every [`Kind`]) with an
//! input, and 32 or 256 activations quantised to 8 bits. They run on CPUs without AVX2 (only in tests:
//! `model/` uses candle's networks there) and are the reference the AVX2 kernels (`x86.rs`) are
//! tested against; they are not tuned for speed.

use super::blocks::{BLOCK, Input, KBlock, Kind, QBlock, SUPER, half, q6, scales_mins};

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
        Kind::Q4K | Kind::Q5K => {
            let size = if kind == Kind::Q4K { 144 } else { 176 };
            row.chunks_exact(size)
                .zip(input.k)
                .map(|(b, y)| {
                    let (sc, m) = scales_mins(&b[4..16]);
                    let (qh, qs) = if size == 144 {
                        (None, &b[16..])
                    } else {
                        (Some(&b[16..48]), &b[48..])
                    };
                    let mut sum = 0i32;
                    for (j, y) in y.qs.chunks_exact(32).enumerate() {
                        let s: i32 = (0..32)
                            .map(|l| {
                                let q = qs[32 * (j / 2) + l] >> (4 * (j % 2)) & 15;
                                let high = qh.map_or(0, |qh| (qh[l] >> j & 1) << 4);
                                i32::from(q | high) * i32::from(y[l])
                            })
                            .sum();
                        sum += i32::from(sc[j]) * s;
                    }
                    let mins: i32 = y
                        .sums
                        .iter()
                        .enumerate()
                        .map(|(i, &s)| i32::from(m[i / 2]) * i32::from(s))
                        .sum();
                    y.d * (half(&b[0..2]) * sum as f32 - half(&b[2..4]) * mins as f32)
                })
                .sum()
        }
        Kind::Q6K => row
            .chunks_exact(210)
            .zip(input.k)
            .map(|(b, y)| {
                let sum: i32 = (0..SUPER)
                    .map(|v| i32::from(b[192 + v / 16] as i8) * i32::from(q6(b, v)) * i32::from(y.qs[v]))
                    .sum();
                half(&b[208..210]) * y.d * sum as f32
            })
            .sum(),
    }
}

/// 32 values to 8 bits: `d = max |x| / 127`, each rounded to the nearest step (ties to even,
/// as the SIMD rounding does).
pub fn quantize_block(c: &[f32]) -> QBlock {
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

/// 256 values to 8 bits, as [`quantize_block`] does 32, with the sum of each 16.
pub fn quantize_super(c: &[f32]) -> KBlock {
    let amax = c.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
    let mut k = KBlock {
        d,
        qs: [0; SUPER],
        sums: [0; SUPER / 16],
    };
    for (q, v) in k.qs.iter_mut().zip(c) {
        *q = (v * inv).round_ties_even() as i8;
    }
    for (s, q) in k.sums.iter_mut().zip(k.qs.chunks_exact(16)) {
        *s = q.iter().map(|&q| i16::from(q)).sum();
    }
    k
}
