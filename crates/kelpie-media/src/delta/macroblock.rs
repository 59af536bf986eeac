//! One inter macroblock of a delta frame: its residual against the displaced reference
//! (quantised levels and coded_block_pattern) and its syntax (7.3.5: mb_type, the vector
//! difference, the pattern, the blocks with their coefficient-count contexts).

use super::bits::BitWriter;
use super::motion::Mv;
use super::residual::{Context, chroma_dc, forward4x4, quantise4x4, write_block};
use super::{Picture, Reference};

/// The code number of each coded_block_pattern of an inter macroblock (H.264 table 9-4,
/// 4:2:0): index = cbp (luma bits 0–3, chroma × 16).
const INTER_CBP_CODE: [u8; 48] = {
    const CODE_TO_CBP: [u8; 48] = [
        0, 16, 1, 2, 4, 8, 32, 3, 5, 10, 12, 15, 47, 7, 11, 13, 14, 6, 9, 31, 35, 37, 42, 44, 33, 34, 36, 40,
        39, 43, 45, 46, 17, 18, 20, 24, 19, 21, 26, 28, 23, 27, 29, 30, 22, 25, 38, 41,
    ];
    let mut out = [0u8; 48];
    let mut code = 0;
    while code < 48 {
        out[CODE_TO_CBP[code] as usize] = code as u8;
        code += 1;
    }
    out
};

/// Position (in 4x4 blocks) of luma block `blk` in coding order.
const fn block_xy(blk: usize) -> (usize, usize) {
    let (q, s) = (blk / 4, blk % 4);
    ((q % 2) * 2 + s % 2, (q / 2) * 2 + s / 2)
}

/// Luma block at (x, y) in 4x4 blocks → its index in coding order.
const fn block_at(x: usize, y: usize) -> usize {
    ((y / 2) * 2 + x / 2) * 4 + (y % 2) * 2 + x % 2
}

/// A macroblock's quantised residual.
pub(super) struct Residual {
    luma: [[i32; 16]; 16],
    cbp_luma: u32,
    dc: [[i32; 4]; 2],
    ac: [[[i32; 16]; 4]; 2],
    cbp_chroma: u32,
}

impl Residual {
    /// No residual at all.
    pub(super) const NONE: Self =
        Self { luma: [[0; 16]; 16], cbp_luma: 0, dc: [[0; 4]; 2], ac: [[[0; 16]; 4]; 2], cbp_chroma: 0 };

    /// coded_block_pattern: which 8x8 luma quarters have levels, and the chroma part.
    pub(super) fn cbp(&self) -> u32 {
        self.cbp_luma | self.cbp_chroma << 4
    }
}

/// The residual of the macroblock at (col, row) against the reference moved by `mv` (even
/// whole pixels, inside the reference: see [`super::motion::search`]), at `qp` and chroma
/// QP `qpc`. Pixels outside the picture (the padding up to whole macroblocks, which the
/// decoder crops away) have no residual.
pub(super) fn residual(
    picture: &Picture<'_>,
    reference: &Reference<'_>,
    (col, row): (usize, usize),
    mv: Mv,
    qp: i32,
    qpc: i32,
) -> Residual {
    let (width, height) = (picture.width, picture.height);
    let (dx, dy) = ((mv.0 / 4) as isize, (mv.1 / 4) as isize);
    let y_plane = &picture.i420[..width * height];
    let inside = (col + 1) * 16 <= width && (row + 1) * 16 <= height;
    let mut out =
        Residual { luma: [[0; 16]; 16], cbp_luma: 0, dc: [[0; 4]; 2], ac: [[[0; 16]; 4]; 2], cbp_chroma: 0 };
    for (blk, levels) in out.luma.iter_mut().enumerate() {
        let (bx, by) = block_xy(blk);
        let (x0, y0) = (col * 16 + bx * 4, row * 16 + by * 4);
        let mut res = [0i32; 16];
        let mut any = false;
        for j in 0..4 {
            let y = y0 + j;
            let ry = (y as isize + dy) as usize;
            let rx = (x0 as isize + dx) as usize;
            let r = &reference.y[ry * reference.y_stride + rx..][..4];
            if inside {
                let c = &y_plane[y * width + x0..][..4];
                for i in 0..4 {
                    let d = i32::from(c[i]) - i32::from(r[i]);
                    res[j * 4 + i] = d;
                    any |= d != 0;
                }
            } else {
                for i in 0..4 {
                    let x = x0 + i;
                    if x < width && y < height {
                        let d = i32::from(y_plane[y * width + x]) - i32::from(r[i]);
                        res[j * 4 + i] = d;
                        any |= d != 0;
                    }
                }
            }
        }
        if any && quantise4x4(&forward4x4(&res), qp, 0, levels) > 0 {
            out.cbp_luma |= 1 << (blk / 4);
        }
    }

    let (cw, ch) = (width / 2, height / 2);
    let (mut any_dc, mut any_ac) = (false, false);
    for plane in 0..2 {
        let start = width * height + plane * cw * ch;
        let cur = &picture.i420[start..start + cw * ch];
        let mut dc = [0i32; 4];
        for (b, ac_levels) in out.ac[plane].iter_mut().enumerate() {
            let (x0, y0) = (col * 8 + (b % 2) * 4, row * 8 + (b / 2) * 4);
            let mut res = [0i32; 16];
            let mut any = false;
            for j in 0..4 {
                let y = y0 + j;
                for i in 0..4 {
                    let x = x0 + i;
                    let (rx, ry) = ((x as isize + dx / 2) as usize, (y as isize + dy / 2) as usize);
                    let r = i32::from(reference.chroma(plane, rx, ry));
                    if x < cw && y < ch {
                        let d = i32::from(cur[y * cw + x]) - r;
                        res[j * 4 + i] = d;
                        any |= d != 0;
                    }
                }
            }
            if !any {
                continue;
            }
            let t = forward4x4(&res);
            dc[b] = t[0];
            any_ac |= quantise4x4(&t, qpc, 1, ac_levels) > 0;
        }
        out.dc[plane] = chroma_dc(dc, qpc);
        any_dc |= out.dc[plane].iter().any(|&l| l != 0);
    }
    out.cbp_chroma = if any_ac {
        2
    } else if any_dc {
        1
    } else {
        0
    };
    out
}

/// The coefficient counts (TotalCoeff) of each 4x4 block of the picture being written, the
/// context of the blocks coded after it (16 luma, 4 Cb, 4 Cr per macroblock; zero for
/// skipped macroblocks and blocks without levels).
pub(super) struct Counts {
    cols: usize,
    counts: Vec<[u8; 24]>,
}

impl Counts {
    pub(super) fn new(cols: usize, rows: usize) -> Self {
        Self { cols, counts: vec![[0; 24]; cols * rows] }
    }

    /// Zeroes one row of macroblocks.
    pub(super) fn clear_row(&mut self, row: usize) {
        self.counts[row * self.cols..(row + 1) * self.cols].fill([0; 24]);
    }

    /// Writes the macroblock at (col, row) moved by `mv` against the prediction `mvp`, after
    /// `skip_run` skipped ones, with `residual` (none when its pattern is zero).
    pub(super) fn write(
        &mut self,
        w: &mut BitWriter,
        (col, row): (usize, usize),
        skip_run: u32,
        mv: Mv,
        mvp: Mv,
        residual: &Residual,
    ) {
        let cbp = residual.cbp();
        w.ue(skip_run);
        w.ue(0); // mb_type P_L0_16x16 (one reference: no ref_idx)
        w.se(mv.0 - mvp.0);
        w.se(mv.1 - mvp.1);
        w.ue(u32::from(INTER_CBP_CODE[cbp as usize]));
        if cbp == 0 {
            return;
        }
        w.se(0); // mb_qp_delta
        let cols = self.cols;
        let mb = row * cols + col;
        for (blk, levels) in residual.luma.iter().enumerate() {
            if residual.cbp_luma & (1 << (blk / 4)) == 0 {
                continue;
            }
            let (bx, by) = block_xy(blk);
            let left = if bx > 0 {
                Some(self.counts[mb][block_at(bx - 1, by)])
            } else {
                (col > 0).then(|| self.counts[mb - 1][block_at(3, by)])
            };
            let top = if by > 0 {
                Some(self.counts[mb][block_at(bx, by - 1)])
            } else {
                (row > 0).then(|| self.counts[mb - cols][block_at(bx, 3)])
            };
            self.counts[mb][blk] = write_block(w, levels, Context::Nc(nc(left, top))) as u8;
        }
        if residual.cbp_chroma > 0 {
            for levels in &residual.dc {
                write_block(w, levels, Context::ChromaDc);
            }
        }
        if residual.cbp_chroma == 2 {
            for (plane, blocks) in residual.ac.iter().enumerate() {
                let base = 16 + plane * 4;
                for (b, levels) in blocks.iter().enumerate() {
                    let (bx, by) = (b % 2, b / 2);
                    let left = if bx > 0 {
                        Some(self.counts[mb][base + by * 2])
                    } else {
                        (col > 0).then(|| self.counts[mb - 1][base + by * 2 + 1])
                    };
                    let top = if by > 0 {
                        Some(self.counts[mb][base + bx])
                    } else {
                        (row > 0).then(|| self.counts[mb - cols][base + 2 + bx])
                    };
                    self.counts[mb][base + b] =
                        write_block(w, &levels[..15], Context::Nc(nc(left, top))) as u8;
                }
            }
        }
    }
}

/// nC of a block from its left and upper neighbours' coefficient counts (None: unavailable).
fn nc(left: Option<u8>, top: Option<u8>) -> u32 {
    match (left, top) {
        (Some(a), Some(b)) => (u32::from(a) + u32::from(b)).div_ceil(2),
        (Some(a), None) => u32::from(a),
        (None, Some(b)) => u32::from(b),
        (None, None) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_numbered_by_quarters() {
        assert_eq!(block_xy(0), (0, 0));
        assert_eq!(block_xy(3), (1, 1));
        assert_eq!(block_xy(4), (2, 0));
        assert_eq!(block_xy(10), (0, 3));
        for b in 0..16 {
            let (x, y) = block_xy(b);
            assert_eq!(block_at(x, y), b);
        }
    }

    #[test]
    fn the_pattern_table_is_a_permutation() {
        let mut seen = [false; 48];
        for &c in &INTER_CBP_CODE {
            seen[c as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
        assert_eq!(INTER_CBP_CODE[0], 0);
        assert_eq!(INTER_CBP_CODE[47], 12);
    }

    #[test]
    fn contexts_average_available_neighbours() {
        assert_eq!(nc(None, None), 0);
        assert_eq!(nc(Some(3), None), 3);
        assert_eq!(nc(Some(3), Some(4)), 4);
        assert_eq!(nc(Some(0), Some(1)), 1);
    }
}
