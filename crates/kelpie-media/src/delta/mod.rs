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
mod macroblock;
mod motion;
mod params;
mod residual;
mod tables;

pub use params::{Params, Unsupported, frame_num, from_keyframe};

use bits::{BitWriter, push_nal};
use macroblock::{Counts, Residual, residual};
use motion::Field;
use residual::chroma_qp;

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
    /// The padded size in pixels (whole macroblocks): motion stays inside it.
    pub width: usize,
    pub height: usize,
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
    counts: Counts,
    field: Field,
    /// Rows the last picture coded a macroblock in: the only rows of `counts` and `field`
    /// that are not all zero.
    dirty_rows: Vec<usize>,
    out: Vec<u8>,
}

impl DeltaWriter {
    pub fn new(params: Params) -> Self {
        let (cols, rows) = (params.width_mbs as usize, params.height_mbs as usize);
        Self {
            params,
            counts: Counts::new(cols, rows),
            field: Field::new(cols, rows),
            dirty_rows: Vec::new(),
            out: Vec::new(),
        }
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
        for &row in &self.dirty_rows {
            self.counts.clear_row(row);
            self.field.clear_row(row);
        }
        self.dirty_rows.clear();
        let qpc = chroma_qp(qp, p.chroma_qp_offset);
        let mut skip_run = 0u32;
        let mut coded = 0;
        for row in 0..rows {
            // A row without a changed macroblock is skipped whole: every vector in it stays
            // zero, so no skip in it can move (a skip moves only with a moving left neighbour).
            if !(0..cols).any(|col| changed(col, row)) {
                skip_run += cols as u32;
                continue;
            }
            self.dirty_rows.push(row);
            for col in 0..cols {
                let pskip = self.field.skip(col, row);
                if !changed(col, row) {
                    if pskip == (0, 0) {
                        skip_run += 1;
                    } else {
                        // A skip here would move with its neighbours: it is coded standing
                        // still, without residual.
                        let mvp = self.field.predict(col, row);
                        self.counts.write(&mut w, (col, row), skip_run, (0, 0), mvp, &Residual::NONE);
                        skip_run = 0;
                    }
                    continue;
                }
                let mvp = self.field.predict(col, row);
                let mv = motion::search(picture, reference, col, row, [mvp, pskip]);
                let res = residual(picture, reference, (col, row), mv, qp, qpc);
                if res.cbp() == 0 && mv == pskip {
                    // A skip shows the same.
                    self.field.set(col, row, pskip);
                    skip_run += 1;
                    continue;
                }
                self.counts.write(&mut w, (col, row), skip_run, mv, mvp, &res);
                self.field.set(col, row, mv);
                skip_run = 0;
                coded += 1;
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
}
