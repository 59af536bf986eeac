//! Delta frames: Kelpie's own H.264 P pictures for small changes, so that a frame costs what
//! changed rather than what libx264 spends visiting every macroblock (about 2.6 ms for a
//! 1080p frame in which nothing changed, see docs/benchmarks.md).
//!
//! A delta frame is a *non-reference* P picture (`nal_ref_idc` 0) coded against the picture
//! libx264 reconstructed last: every macroblock that changed since that picture is coded as
//! `P_L0_16x16` with a zero motion vector and its residual (4x4 transform, CAVLC); every other
//! one is skipped. As the decoder keeps no delta frame as a reference, libx264's next frame
//! still predicts from its own last picture, and the two never disagree on what the decoder
//! holds: nothing has to be reconstructed here, and x264 is not told about delta frames at
//! all, except that its next frame's map of unchanged macroblocks covers every change since
//! its last frame (see [`crate::x264::X264`], which decides when to write one).
//!
//! All motion vectors of a delta frame are zero, so a skipped macroblock's predicted vector is
//! zero too (H.264 8.4.1.1): skips copy the reference exactly.

mod bits;
mod params;
mod residual;
mod tables;

pub use params::{Params, Unsupported, frame_num, from_keyframe};

use bits::{BitWriter, push_nal};
use residual::{Context, chroma_dc, chroma_qp, forward4x4, quantise4x4, write_block};

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

/// The picture a delta frame is coded against: libx264's reconstruction of its last frame
/// (its padded size, a multiple of 16 in both directions).
pub struct Reference<'a> {
    pub y: &'a [u8],
    pub y_stride: usize,
    /// Chroma: interleaved U and V (NV12) when `nv12`, else U then V planes of `uv_stride`
    /// with V starting at `v_offset`.
    pub uv: &'a [u8],
    pub uv_stride: usize,
    pub nv12: bool,
    pub v_offset: usize,
}

impl Reference<'_> {
    #[inline]
    fn chroma(&self, plane: usize, x: usize, y: usize) -> u8 {
        if self.nv12 {
            self.uv[y * self.uv_stride + 2 * x + plane]
        } else {
            self.uv[plane * self.v_offset + y * self.uv_stride + x]
        }
    }
}

/// The current picture: I420, planes one after another, no padding.
pub struct Picture<'a> {
    pub i420: &'a [u8],
    pub width: usize,
    pub height: usize,
}

/// Writes delta frames for one stream.
pub struct DeltaWriter {
    params: Params,
    /// TotalCoeff of each 4x4 block of the frame being written (16 luma, 4 Cb, 4 Cr per
    /// macroblock), for the coefficient-count context of the blocks after it.
    counts: Vec<[u8; 24]>,
    out: Vec<u8>,
}

/// Position (in 4x4 blocks) of luma block `blk` in coding order.
const fn block_xy(blk: usize) -> (usize, usize) {
    let (q, s) = (blk / 4, blk % 4);
    ((q % 2) * 2 + s % 2, (q / 2) * 2 + s / 2)
}

/// Luma block at (x, y) in 4x4 blocks → its index in coding order.
const fn block_at(x: usize, y: usize) -> usize {
    ((y / 2) * 2 + x / 2) * 4 + (y % 2) * 2 + x % 2
}

impl DeltaWriter {
    pub fn new(params: Params) -> Self {
        let mbs = (params.width_mbs * params.height_mbs) as usize;
        Self { params, counts: vec![[0; 24]; mbs], out: Vec::new() }
    }

    /// The access unit [`DeltaWriter::write`] wrote last.
    pub fn output(&self) -> &[u8] {
        &self.out
    }

    /// The parameters this writer codes for.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Writes one access unit: the macroblocks `changed(col, row)` says changed since
    /// `reference` are coded at `qp`, the rest skipped. `ref_frame_num` is the `frame_num` of
    /// the reference picture. Returns the Annex-B bytes and how many macroblocks were coded.
    pub fn write(
        &mut self,
        picture: &Picture<'_>,
        reference: &Reference<'_>,
        ref_frame_num: u32,
        qp: u8,
        changed: impl Fn(usize, usize) -> bool,
    ) -> (&[u8], usize) {
        let p = self.params;
        let qp = i32::from(qp).clamp(0, 51);
        let mut w = BitWriter::new();
        // Slice header (7.3.3) of a P slice of a non-IDR, non-reference picture.
        w.ue(0); // first_mb_in_slice
        w.ue(5); // slice_type: P, as every slice of the picture
        w.ue(p.pps_id);
        w.put(p.log2_max_frame_num, (ref_frame_num + 1) & ((1 << p.log2_max_frame_num) - 1));
        // Picture order count type 2: nothing to code.
        let override_refs = p.ref_idx_active != 1;
        w.flag(override_refs); // num_ref_idx_active_override_flag
        if override_refs {
            w.ue(0);
        }
        w.flag(false); // ref_pic_list_modification_flag_l0
        // nal_ref_idc 0: no dec_ref_pic_marking. CAVLC: no cabac_init_idc.
        w.se(qp - p.pic_init_qp);
        if p.deblocking_control {
            w.ue(1); // disable_deblocking_filter_idc: as the encoder (no deblocking)
        }

        let (cols, rows) = (p.width_mbs as usize, p.height_mbs as usize);
        self.counts.iter_mut().for_each(|c| *c = [0; 24]);
        let qpc = chroma_qp(qp, p.chroma_qp_offset);
        let mut skip_run = 0u32;
        let mut coded = 0;
        for row in 0..rows {
            for col in 0..cols {
                if !changed(col, row)
                    || !self.macroblock(&mut w, picture, reference, col, row, qp, qpc, skip_run)
                {
                    skip_run += 1;
                } else {
                    skip_run = 0;
                    coded += 1;
                }
            }
        }
        if skip_run > 0 {
            w.ue(skip_run);
        }
        w.trailing();
        self.out.clear();
        // nal_ref_idc 0, nal_unit_type 1 (a slice of a non-IDR picture).
        push_nal(&mut self.out, 0x01, w.bytes());
        (&self.out, coded)
    }

    /// Codes the macroblock at (col, row) when its residual is not all zero (after writing
    /// `skip_run`); returns false, writing nothing, when it is: a skip shows the same.
    #[allow(clippy::too_many_arguments)]
    fn macroblock(
        &mut self,
        w: &mut BitWriter,
        picture: &Picture<'_>,
        reference: &Reference<'_>,
        col: usize,
        row: usize,
        qp: i32,
        qpc: i32,
        skip_run: u32,
    ) -> bool {
        let (width, height) = (picture.width, picture.height);
        let y_plane = &picture.i420[..width * height];
        let (cw, ch) = (width / 2, height / 2);
        let chroma_plane = |plane: usize| {
            let start = width * height + plane * cw * ch;
            &picture.i420[start..start + cw * ch]
        };

        let mut luma = [[0i32; 16]; 16];
        let mut cbp_luma = 0u32;
        // Whether the macroblock lies wholly inside the picture (all but the padded edges).
        let inside = (col + 1) * 16 <= width && (row + 1) * 16 <= height;
        for (blk, levels) in luma.iter_mut().enumerate() {
            let (bx, by) = block_xy(blk);
            let (x0, y0) = (col * 16 + bx * 4, row * 16 + by * 4);
            let mut res = [0i32; 16];
            let mut any = false;
            for j in 0..4 {
                let y = y0 + j;
                let r = &reference.y[y * reference.y_stride + x0..][..4];
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
                        // Outside the picture (the padding up to whole macroblocks, cropped
                        // away by the decoder): no residual.
                        if x < width && y < height {
                            let d = i32::from(y_plane[y * width + x]) - i32::from(r[i]);
                            res[j * 4 + i] = d;
                            any |= d != 0;
                        }
                    }
                }
            }
            if any && quantise4x4(&forward4x4(&res), qp, 0, levels) > 0 {
                cbp_luma |= 1 << (blk / 4);
            }
        }

        let mut dc_levels = [[0i32; 4]; 2];
        let mut ac = [[[0i32; 16]; 4]; 2];
        let (mut any_dc, mut any_ac) = (false, false);
        for plane in 0..2 {
            let cur = chroma_plane(plane);
            let mut dc = [0i32; 4];
            for (b, ac_levels) in ac[plane].iter_mut().enumerate() {
                let (x0, y0) = (col * 8 + (b % 2) * 4, row * 8 + (b / 2) * 4);
                let mut res = [0i32; 16];
                for j in 0..4 {
                    let y = y0 + j;
                    for i in 0..4 {
                        let x = x0 + i;
                        let r = i32::from(reference.chroma(plane, x, y));
                        let c = if x < cw && y < ch { i32::from(cur[y * cw + x]) } else { r };
                        res[j * 4 + i] = c - r;
                    }
                }
                if res.iter().all(|&v| v == 0) {
                    continue;
                }
                let t = forward4x4(&res);
                dc[b] = t[0];
                any_ac |= quantise4x4(&t, qpc, 1, ac_levels) > 0;
            }
            dc_levels[plane] = chroma_dc(dc, qpc);
            any_dc |= dc_levels[plane].iter().any(|&l| l != 0);
        }
        let cbp_chroma = if any_ac {
            2
        } else if any_dc {
            1
        } else {
            0
        };
        if cbp_luma == 0 && cbp_chroma == 0 {
            return false;
        }

        let cols = self.params.width_mbs as usize;
        let mb = row * cols + col;
        w.ue(skip_run);
        w.ue(0); // mb_type P_L0_16x16 (one reference: no ref_idx)
        w.se(0); // mvd_l0: the prediction is zero, as every vector of the picture
        w.se(0);
        w.ue(u32::from(INTER_CBP_CODE[(cbp_luma | cbp_chroma << 4) as usize]));
        w.se(0); // mb_qp_delta
        for (blk, levels) in luma.iter().enumerate() {
            if cbp_luma & (1 << (blk / 4)) == 0 {
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
        if cbp_chroma > 0 {
            for levels in &dc_levels {
                write_block(w, levels, Context::ChromaDc);
            }
        }
        if cbp_chroma == 2 {
            for (plane, blocks) in ac.iter().enumerate() {
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
        true
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
