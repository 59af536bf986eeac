//! The residual of an inter macroblock: H.264's 4x4 integer transform, quantisation (inter
//! rounding, flat matrices), the chroma DC transform, and CAVLC coding of one block.
//!
//! Only the encoder's side: delta frames are never referenced, so nothing is reconstructed.

use super::bits::BitWriter;
use super::tables::{
    COEFF_TOKEN, COEFF_TOKEN_CHROMA_DC, Code, RUN_BEFORE, TOTAL_ZEROS, TOTAL_ZEROS_CHROMA_DC,
};

/// Zigzag scan of a 4x4 block (frame coding): scan position → raster index.
pub(super) const ZIGZAG: [usize; 16] = [0, 1, 4, 8, 5, 2, 3, 6, 9, 12, 13, 10, 7, 11, 14, 15];

/// Quantisation multipliers by QP % 6 for positions with both coordinates even, both odd,
/// and the others.
const MF: [[i32; 3]; 6] = [
    [13107, 5243, 8066],
    [11916, 4660, 7490],
    [10082, 4194, 6554],
    [9362, 3647, 5825],
    [8192, 3355, 5243],
    [7282, 2893, 4559],
];

/// Chroma QP for luma QPs (plus the chroma offset) from 30 to 51; below 30 they are equal.
const CHROMA_QP: [u8; 22] =
    [29, 30, 31, 32, 32, 33, 34, 34, 35, 35, 36, 36, 37, 37, 37, 38, 38, 38, 39, 39, 39, 39];

/// The chroma QP for luma `qp` and the stream's chroma offset.
pub(super) fn chroma_qp(qp: i32, offset: i32) -> i32 {
    let q = (qp + offset).clamp(0, 51);
    if q < 30 { q } else { i32::from(CHROMA_QP[(q - 30) as usize]) }
}

/// The largest level CAVLC can code in the profiles without level_prefix escapes beyond 15
/// (baseline): held below it, a rare saturated coefficient is coded slightly wrong instead of
/// the stream being broken.
const LEVEL_MAX: i32 = 2047;

/// Forward 4x4 core transform of a residual block (raster order).
pub(super) fn forward4x4(x: &[i32; 16]) -> [i32; 16] {
    let mut t = [0i32; 16];
    for i in 0..4 {
        let (a, b, c, d) = (x[i * 4], x[i * 4 + 1], x[i * 4 + 2], x[i * 4 + 3]);
        let (s03, d03, s12, d12) = (a + d, a - d, b + c, b - c);
        t[i * 4] = s03 + s12;
        t[i * 4 + 1] = 2 * d03 + d12;
        t[i * 4 + 2] = s03 - s12;
        t[i * 4 + 3] = d03 - 2 * d12;
    }
    let mut w = [0i32; 16];
    for j in 0..4 {
        let (a, b, c, d) = (t[j], t[4 + j], t[8 + j], t[12 + j]);
        let (s03, d03, s12, d12) = (a + d, a - d, b + c, b - c);
        w[j] = s03 + s12;
        w[4 + j] = 2 * d03 + d12;
        w[8 + j] = s03 - s12;
        w[12 + j] = d03 - 2 * d12;
    }
    w
}

fn class(i: usize) -> usize {
    let (r, c) = (i / 4, i % 4);
    match (r % 2, c % 2) {
        (0, 0) => 0,
        (1, 1) => 1,
        _ => 2,
    }
}

fn quant(w: i32, mf: i32, bias: i32, shift: u32) -> i32 {
    let level = ((i64::from(w.abs()) * i64::from(mf) + i64::from(bias)) >> shift) as i32;
    level.min(LEVEL_MAX) * w.signum()
}

/// Quantises a transformed 4x4 block at `qp` into scan order (`first` = 1 leaves the DC out,
/// for chroma AC blocks, whose DC is coded apart).
pub(super) fn quantise4x4(w: &[i32; 16], qp: i32, first: usize, out: &mut [i32; 16]) -> usize {
    let shift = 15 + (qp / 6) as u32;
    let bias = (1 << shift) / 6;
    let mf = &MF[(qp % 6) as usize];
    let mut nonzero = 0;
    for (k, &pos) in ZIGZAG.iter().enumerate().skip(first) {
        let level = quant(w[pos], mf[class(pos)], bias, shift);
        out[k - first] = level;
        nonzero += usize::from(level != 0);
    }
    for slot in out.iter_mut().skip(16 - first) {
        *slot = 0;
    }
    nonzero
}

/// The chroma DC block of one plane: the 2x2 transform of the four 4x4 blocks' DC terms,
/// quantised at `qpc`, in the order they are coded.
pub(super) fn chroma_dc(dc: [i32; 4], qpc: i32) -> [i32; 4] {
    let f = [
        dc[0] + dc[1] + dc[2] + dc[3],
        dc[0] - dc[1] + dc[2] - dc[3],
        dc[0] + dc[1] - dc[2] - dc[3],
        dc[0] - dc[1] - dc[2] + dc[3],
    ];
    let shift = 16 + (qpc / 6) as u32;
    let bias = (1 << shift) / 6;
    let mf = MF[(qpc % 6) as usize][0];
    f.map(|v| quant(v, mf, bias, shift))
}

fn put(w: &mut BitWriter, code: Code) {
    debug_assert!(code.0 > 0, "a code that cannot occur");
    w.put(u32::from(code.0), u32::from(code.1));
}

/// Which coeff_token table a block uses.
#[derive(Debug, Clone, Copy)]
pub(super) enum Context {
    /// A 4x4 block with this nC (from its neighbours' coefficient counts).
    Nc(u32),
    /// A chroma DC block (4:2:0).
    ChromaDc,
}

/// Codes one block's levels (`levels[..max]`, scan order) with CAVLC; returns TotalCoeff.
pub(super) fn write_block(w: &mut BitWriter, levels: &[i32], ctx: Context) -> u32 {
    let max = levels.len();
    let mut positions = [0usize; 16];
    let mut total = 0;
    for (i, &l) in levels.iter().enumerate() {
        if l != 0 {
            positions[total] = i;
            total += 1;
        }
    }
    let nonzero = &positions[..total];
    // Trailing ones: up to three ±1 at the high-frequency end of the nonzero levels.
    let trailing = nonzero.iter().rev().take(3).take_while(|&&i| levels[i].abs() == 1).count();
    let token = match ctx {
        Context::ChromaDc => COEFF_TOKEN_CHROMA_DC[total][trailing],
        Context::Nc(nc) => {
            let table = match nc {
                0..=1 => 0,
                2..=3 => 1,
                4..=7 => 2,
                _ => 3,
            };
            COEFF_TOKEN[table][total][trailing]
        }
    };
    put(w, token);
    if total == 0 {
        return 0;
    }
    // Levels, highest frequency first.
    let mut suffix_len: u32 = if total > 10 && trailing < 3 { 1 } else { 0 };
    for (n, &i) in nonzero.iter().rev().enumerate() {
        let level = levels[i];
        if n < trailing {
            w.flag(level < 0);
            continue;
        }
        let mut code = if level > 0 { 2 * level - 2 } else { -2 * level - 1 };
        if n == trailing && trailing < 3 {
            code -= 2;
        }
        write_level(w, code as u32, suffix_len);
        if suffix_len == 0 {
            suffix_len = 1;
        }
        if level.abs() > (3 << (suffix_len - 1)) && suffix_len < 6 {
            suffix_len += 1;
        }
    }
    // Zeros before the last nonzero level, and the runs between levels.
    let last = nonzero[total - 1];
    let mut zeros_left = last + 1 - total;
    if total < max {
        let code = if matches!(ctx, Context::ChromaDc) {
            TOTAL_ZEROS_CHROMA_DC[total][zeros_left]
        } else {
            TOTAL_ZEROS[total][zeros_left]
        };
        put(w, code);
    }
    for k in (1..total).rev() {
        if zeros_left == 0 {
            break;
        }
        let run = nonzero[k] - nonzero[k - 1] - 1;
        put(w, RUN_BEFORE[zeros_left.min(7)][run]);
        zeros_left -= run;
    }
    total as u32
}

/// level_prefix and level_suffix of one level's code (prefixes up to 15: the baseline range).
fn write_level(w: &mut BitWriter, code: u32, suffix_len: u32) {
    let (prefix, suffix, suffix_bits) = if suffix_len == 0 {
        if code < 14 {
            (code, 0, 0)
        } else if code < 30 {
            (14, code - 14, 4)
        } else {
            (15, (code - 30).min(4095), 12)
        }
    } else if code < (15 << suffix_len) {
        (code >> suffix_len, code & ((1 << suffix_len) - 1), suffix_len)
    } else {
        (15, (code - (15 << suffix_len)).min(4095), 12)
    };
    // prefix zeros and a one.
    w.put(prefix + 1, 1);
    w.put(suffix_bits, suffix);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_transform_of_a_flat_block_is_its_dc() {
        let w = forward4x4(&[3; 16]);
        assert_eq!(w[0], 48);
        assert!(w[1..].iter().all(|&v| v == 0), "{w:?}");
    }

    #[test]
    fn quantisation_follows_the_step_size() {
        // At QP 28 the step is 16; a flat residual of 16 → W00 = 256, level = 256 × 8192 / 2^19 × 16 ... = 4 × (1/4 scale).
        let w = forward4x4(&[16; 16]);
        let mut out = [0; 16];
        assert_eq!(quantise4x4(&w, 28, 0, &mut out), 1);
        // W00 = 256; MF(28 % 6 = 4) = 8192; qbits = 19: (256 × 8192 + 2^19/6) >> 19 = 4.
        assert_eq!(out[0], 4);
        // Doubling the QP step (QP + 6) halves the level.
        quantise4x4(&w, 34, 0, &mut out);
        assert_eq!(out[0], 2);
    }

    #[test]
    fn chroma_qp_follows_the_table() {
        assert_eq!(chroma_qp(20, 0), 20);
        assert_eq!(chroma_qp(30, 0), 29);
        assert_eq!(chroma_qp(51, 0), 39);
        assert_eq!(chroma_qp(49, 4), 39);
    }

    /// Bits of a written block as a string of 0 and 1.
    fn bits_of(levels: &[i32], ctx: Context) -> String {
        let mut w = BitWriter::new();
        write_block(&mut w, levels, ctx);
        // Mark the end with the stop bit and cut it and the padding off again.
        w.trailing();
        let s: String = w.bytes().iter().map(|b| format!("{b:08b}")).collect();
        s[..s.rfind('1').unwrap()].to_string()
    }

    #[test]
    fn a_block_codes_as_the_standard_example() {
        // The classic worked example (Richardson, "H.264 and MPEG-4 Video Compression",
        // CAVLC example 1): levels 0,3,-1,0 / 0,-1,1,0 / 1,0,0,0 / 0,0,0,0 → zigzag
        // 0,3,0,1,-1,-1,0,1,0,... with nC = 0: 000010001110010111101101.
        let levels = [0, 3, 0, 1, -1, -1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(bits_of(&levels, Context::Nc(0)), "000010001110010111101101");
    }

    #[test]
    fn an_empty_block_is_one_code() {
        assert_eq!(bits_of(&[0; 16], Context::Nc(0)), "1");
        assert_eq!(bits_of(&[0; 16], Context::Nc(9)), "000011");
        assert_eq!(bits_of(&[0; 4], Context::ChromaDc), "01");
    }
}
