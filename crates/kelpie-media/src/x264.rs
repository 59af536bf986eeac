//! libx264, driven directly (`--encoder x264`): constant-QP encoding with Kelpie's own
//! rate control ([`crate::ratecontrol`]), which knows from the damage what changed and so
//! spares x264 its per-frame look-ahead analysis.
//!
//! The library is loaded at run time by the C bridge in `csrc/x264.c` (built against
//! `x264.h`), as GStreamer loads its x264enc plugin: without `libx264` installed Kelpie
//! still runs, with the next encoder in line.

use std::ffi::{CStr, c_char, c_int};
use std::ptr::NonNull;

use crate::MediaError;
use crate::capture::Rect;
use crate::delta::{self, DeltaWriter};
use crate::skipmap::SkipMap;

/// Width of the QP range one encoder accepts (x264's CQP mode allows no wider one).
pub const QP_SPAN: u8 = 40;
/// The QP range of an encoder for desktop content: QP 11 to 51, the range of H.264.
pub const QP_LOW_RANGE: u8 = 11;
/// The QP range of an encoder for content that cannot fit the bitrate even at QP 51: 29 to
/// 69, reaching into x264's emergency range.
pub const QP_HIGH_RANGE: u8 = 29;
const _: () = assert!(crate::ratecontrol::QP_MIN >= QP_LOW_RANGE);
const _: () = assert!(crate::ratecontrol::QP_MAX <= QP_HIGH_RANGE + QP_SPAN);

#[repr(C)]
struct Kx264 {
    _private: [u8; 0],
}

/// The reconstructed picture of x264's last frame, as the C bridge reports it (`kx264_recon`).
#[repr(C)]
#[derive(Clone, Copy)]
struct Recon {
    plane: [*const u8; 3],
    stride: [c_int; 3],
    nv12: c_int,
}

impl Recon {
    const NONE: Self = Self { plane: [std::ptr::null(); 3], stride: [0; 3], nv12: 0 };
}

/// The largest share of a frame's macroblocks, changed since x264's last frame, that a delta
/// frame codes (one sixteenth: about 0.5 ms of Kelpie's coding at 1080p, against x264's
/// 2.6 ms floor); beyond it x264 codes the frame.
const DELTA_MAX_SHARE: usize = 16;
/// Delta frames in a row at most: then x264 codes one (with the map of everything changed
/// since its last), which the delta frames after it are coded against, so they do not keep
/// coding a change long gone (at 60 fps, two x264 frames a second).
const DELTA_MAX_RUN: u32 = 30;
/// A delta frame larger than this and than twice the first delta frame of its run ends the
/// run: each delta frame codes everything changed since x264's last frame, so where a region
/// keeps changing a little (a counter, text being typed) its frames grow with the run, while
/// x264 codes only what changed since the frame before. Then the next frame is x264's, and
/// the delta frames after it are coded against its picture: the bits stay near x264's and
/// most of the CPU is saved still.
const DELTA_ANCHOR_BYTES: usize = 600;

unsafe extern "C" {
    fn kx264_library_name() -> *const c_char;
    fn kx264_load() -> c_int;
    fn kx264_open(width: c_int, height: c_int, fps: c_int, threads: c_int, qp_low: c_int) -> *mut Kx264;
    fn kx264_open_refresh(
        width: c_int,
        height: c_int,
        fps: c_int,
        threads: c_int,
        qp_low: c_int,
        refresh: c_int,
    ) -> *mut Kx264;
    fn kx264_encode(
        k: *mut Kx264,
        i420: *const u8,
        mb_info: *mut u8,
        qp: c_int,
        idr: c_int,
        out: *mut *const u8,
        keyframe: *mut c_int,
        recon: *mut Recon,
    ) -> c_int;
    fn kx264_close(k: *mut Kx264);
}

/// x264's messages, into Kelpie's log.
///
/// # Safety
/// `msg` is a NUL-terminated string (the C bridge formats it).
#[unsafe(no_mangle)]
unsafe extern "C" fn kelpie_x264_log(level: c_int, msg: *const c_char) {
    // SAFETY: the bridge passes a NUL-terminated buffer that outlives this call.
    let msg = unsafe { CStr::from_ptr(msg) }.to_string_lossy();
    match level {
        0 => tracing::error!(target: "x264", "{msg}"),
        1 => tracing::warn!(target: "x264", "{msg}"),
        _ => tracing::debug!(target: "x264", "{msg}"),
    }
}

/// The file name of the libx264 this build loads (e.g. `libx264.so.164`).
pub fn library_name() -> String {
    // SAFETY: returns a pointer to a static string literal.
    unsafe { CStr::from_ptr(kx264_library_name()) }.to_string_lossy().into_owned()
}

/// Whether libx264 could be loaded.
pub fn available() -> bool {
    // SAFETY: no arguments; the bridge loads the library once, thread-safely.
    unsafe { kx264_load() == 0 }
}

/// An open x264 encoder for I420 frames of one size.
pub struct X264 {
    handle: NonNull<Kx264>,
    width: u32,
    height: u32,
    qp_low: u8,
    /// The macroblocks that changed since x264's last frame (delta frames in between).
    dirty: SkipMap,
    /// Kelpie's own coder of small changes (see [`crate::delta`]), once a keyframe showed the
    /// stream can take its frames.
    delta: Option<DeltaWriter>,
    /// Whether delta frames are written at all.
    deltas_enabled: bool,
    /// x264's last reconstructed picture and its frame_num, while valid.
    recon: Option<(Recon, u32)>,
    /// Delta frames since x264's last frame.
    delta_run: u32,
    /// The size of the first delta frame since x264's last frame (0: none yet).
    run_first_bytes: usize,
}

// SAFETY: the handle is only used through `&mut self`; x264 encoders may move between threads.
unsafe impl Send for X264 {}

/// One encoded frame, borrowed from the encoder until its next call.
pub struct Output<'a> {
    /// Annex-B access unit.
    pub data: &'a [u8],
    /// Whether it is an IDR frame (with SPS and PPS).
    pub keyframe: bool,
    /// Whether Kelpie coded it as a delta frame rather than x264.
    pub delta: bool,
    /// Where its decoded picture differs from the frame encoded before it: rectangles on the
    /// macroblock grid (see [`SkipMap::changed_rects`]), outside which it is that frame's
    /// picture bit for bit. `None` when it is not known or most of the picture changed.
    pub changed: Option<Vec<Rect>>,
}

impl X264 {
    /// Opens an encoder: ultrafast, zero latency, constrained baseline, slices on `threads`
    /// threads, no periodic keyframes, for QPs from `qp_low` to `qp_low` + [`QP_SPAN`].
    pub fn open(width: u32, height: u32, fps: u32, threads: u32, qp_low: u8) -> Result<Self, MediaError> {
        Self::open_with(width, height, fps, threads, qp_low, 0)
    }

    /// As [`X264::open`], but recovering by a periodic intra refresh over `refresh` frames
    /// instead of IDR frames (for measuring the two against each other).
    #[cfg(test)]
    pub(crate) fn open_refresh(
        width: u32,
        height: u32,
        fps: u32,
        qp_low: u8,
        refresh: u32,
    ) -> Result<Self, MediaError> {
        Self::open_with(width, height, fps, 1, qp_low, refresh)
    }

    fn open_with(
        width: u32,
        height: u32,
        fps: u32,
        threads: u32,
        qp_low: u8,
        refresh: u32,
    ) -> Result<Self, MediaError> {
        if !available() {
            return Err(MediaError::MissingElement {
                element: "x264".into(),
                package: crate::encoder::X264_PACKAGE.into(),
            });
        }
        if width == 0 || height == 0 || !width.is_multiple_of(2) || !height.is_multiple_of(2) {
            return Err(MediaError::Config(format!("x264 cannot encode a {width}x{height} picture")));
        }
        let dims = |v: u32| c_int::try_from(v).unwrap_or(c_int::MAX);
        // SAFETY: plain integers; returns NULL or an encoder owned by us until kx264_close.
        let (w, h, f, t, q) = (dims(width), dims(height), dims(fps), dims(threads), c_int::from(qp_low));
        let handle = unsafe {
            if refresh == 0 {
                kx264_open(w, h, f, t, q)
            } else {
                kx264_open_refresh(w, h, f, t, q, dims(refresh))
            }
        };
        let handle = NonNull::new(handle).ok_or_else(|| {
            MediaError::X264(format!(
                "refused a {width}x{height} encoder at {fps} fps (its log above says why)"
            ))
        })?;
        Ok(Self {
            handle,
            width,
            height,
            qp_low,
            dirty: SkipMap::new(width, height),
            delta: None,
            deltas_enabled: true,
            recon: None,
            delta_run: 0,
            run_first_bytes: 0,
        })
    }

    /// Whether small changes are coded as delta frames (on by default): off, x264 codes every
    /// frame.
    pub fn set_deltas(&mut self, on: bool) {
        self.deltas_enabled = on;
    }

    /// The QPs this encoder accepts.
    pub fn qp_range(&self) -> std::ops::RangeInclusive<u8> {
        self.qp_low..=self.qp_low + QP_SPAN
    }

    /// Encodes one I420 frame (Y, U and V planes one after another) at `qp` (held to
    /// [`X264::qp_range`]); an IDR frame if `keyframe`. `changed`, when known, holds every
    /// pixel that differs from the frame encoded before: x264 codes the macroblocks none of
    /// them touches as skips without analysing them (unless they were last coded at a worse
    /// QP than `qp`). `None`: anything may have changed.
    pub fn encode(
        &mut self,
        i420: &[u8],
        qp: u8,
        keyframe: bool,
        changed: Option<&[Rect]>,
    ) -> Result<Output<'_>, MediaError> {
        let y = self.width as usize * self.height as usize;
        if i420.len() < y + y / 2 {
            return Err(MediaError::X264(format!(
                "was given {} bytes for a {}x{} frame",
                i420.len(),
                self.width,
                self.height
            )));
        }
        if let Some(rects) = changed.filter(|r| !keyframe && !r.is_empty())
            && let Some(size) = self.try_delta(i420, qp, rects)
        {
            // Outside the macroblocks changed since x264's last frame, a delta frame shows
            // that frame's picture, as the frame before it did.
            let changed = self.dirty.changed_rects(self.width, self.height);
            let data = self.delta.as_ref().map_or(&[][..], |d| &d.output()[..size]);
            return Ok(Output { data, keyframe: false, delta: true, changed });
        }
        let mb_info = match changed {
            Some(rects) if !keyframe => {
                self.dirty.add(rects);
                self.dirty.as_mut_bytes().as_mut_ptr()
            }
            _ => std::ptr::null_mut(),
        };
        let mut out: *const u8 = std::ptr::null();
        let mut key: c_int = 0;
        let mut recon = Recon::NONE;
        // SAFETY: the handle is open; `i420` holds a whole frame (checked above) and x264
        // copies it before returning; `mb_info` is null or one byte per macroblock of this
        // size (`dirty` was made for it), read and written during the call only; `out`, `key`
        // and `recon` are valid for writes.
        let size = unsafe {
            kx264_encode(
                self.handle.as_ptr(),
                i420.as_ptr(),
                mb_info,
                c_int::from(qp.clamp(*self.qp_range().start(), *self.qp_range().end())),
                c_int::from(keyframe),
                &mut out,
                &mut key,
                &mut recon,
            )
        };
        // What x264 left marked constant is unchanged (x264 clears the mark of a macroblock it
        // changed after all); the rest is what a viewer redraws.
        let changed = (!mb_info.is_null() && key == 0 && size > 0)
            .then(|| self.dirty.changed_rects(self.width, self.height))
            .flatten();
        self.dirty.reset();
        self.delta_run = 0;
        self.run_first_bytes = 0;
        self.recon = None;
        if size < 0 {
            return Err(MediaError::X264("failed to encode a frame".into()));
        }
        let data = if size == 0 || out.is_null() {
            &[][..]
        } else {
            // SAFETY: x264 returns `size` bytes of payload at `out`, valid until the next
            // call on this encoder, which the borrow of `self` prevents.
            unsafe { std::slice::from_raw_parts(out, size as usize) }
        };
        if key != 0 && self.deltas_enabled {
            self.delta = match delta::from_keyframe(data) {
                Ok(p) if p.width_mbs as usize * p.height_mbs as usize == self.dirty.len() => {
                    Some(DeltaWriter::new(p))
                }
                Ok(_) => None,
                Err(why) => {
                    tracing::debug!("x264's stream cannot take delta frames: {why}");
                    None
                }
            };
        }
        if !recon.plane[0].is_null()
            && let Some(frame_num) = self.delta.as_ref().and_then(|d| delta::frame_num(data, d.params()))
        {
            self.recon = Some((recon, frame_num));
        }
        Ok(Output { data, keyframe: key != 0, delta: false, changed })
    }

    /// Codes the frame as a delta frame when what changed since x264's last frame is small;
    /// returns the size of the access unit (in the writer's output) or `None` when x264
    /// must code it.
    fn try_delta(&mut self, i420: &[u8], qp: u8, rects: &[Rect]) -> Option<usize> {
        if !self.deltas_enabled || self.delta_run >= DELTA_MAX_RUN {
            return None;
        }
        let (recon, ref_frame_num) = self.recon?;
        let writer = self.delta.as_mut()?;
        let mut union = self.dirty.clone();
        if union.add(rects) * DELTA_MAX_SHARE > union.len() {
            return None;
        }
        let p = *writer.params();
        let (padded_w, padded_h) = (p.width_mbs as usize * 16, p.height_mbs as usize * 16);
        let y_stride = recon.stride[0] as usize;
        let uv_stride = recon.stride[1] as usize;
        let nv12 = recon.nv12 != 0;
        if y_stride < padded_w || uv_stride < if nv12 { padded_w } else { padded_w / 2 } {
            return None;
        }
        // SAFETY: x264's reconstructed planes cover its padded picture (whole macroblocks)
        // at these strides and stay untouched until its next call, which cannot happen
        // while `self` is borrowed here.
        let (y, uv, v_offset) = unsafe {
            let y = std::slice::from_raw_parts(recon.plane[0], y_stride * padded_h);
            if nv12 {
                (y, std::slice::from_raw_parts(recon.plane[1], uv_stride * padded_h / 2), 0)
            } else {
                let v_offset = recon.plane[2].offset_from(recon.plane[1]);
                if v_offset <= 0 {
                    return None;
                }
                let v_offset = v_offset as usize;
                (y, std::slice::from_raw_parts(recon.plane[1], v_offset + uv_stride * padded_h / 2), v_offset)
            }
        };
        let reference = delta::Reference {
            y,
            y_stride,
            uv,
            uv_stride,
            nv12,
            v_offset,
            width: padded_w,
            height: padded_h,
        };
        let picture = delta::Picture { i420, width: self.width as usize, height: self.height as usize };
        let (au, _) = writer.write(&picture, &reference, ref_frame_num, qp, |c, r| !union.is_constant(c, r));
        let size = au.len();
        self.dirty = union;
        self.delta_run += 1;
        if self.run_first_bytes == 0 {
            self.run_first_bytes = size;
        } else if size > DELTA_ANCHOR_BYTES.max(self.run_first_bytes * 2) {
            self.delta_run = DELTA_MAX_RUN;
        }
        Some(size)
    }
}

impl Drop for X264 {
    fn drop(&mut self) {
        // SAFETY: the handle is open and not used after this.
        unsafe { kx264_close(self.handle.as_ptr()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nal_types(au: &[u8]) -> Vec<u8> {
        let mut types = Vec::new();
        let mut i = 0;
        while i + 3 < au.len() {
            if au[i..i + 3] == [0, 0, 1] {
                types.push(au[i + 3] & 0x1f);
                i += 3;
            }
            i += 1;
        }
        types
    }

    fn picture(w: usize, h: usize, shift: usize) -> Vec<u8> {
        let mut f = vec![128u8; w * h * 3 / 2];
        for y in 0..h {
            for x in 0..w {
                // Diagonal stripes: edges in every block, so the QP shows in the size.
                f[y * w + x] = if (x + shift + y) % 7 < 3 { 40 } else { 200 };
            }
        }
        f
    }

    #[test]
    fn keyframes_carry_parameter_sets_and_come_only_when_asked() {
        assert!(available(), "libx264 ({}) must be installed for this test", library_name());
        let mut enc = X264::open(320, 240, 30, 1, QP_LOW_RANGE).unwrap();
        let mut kinds = Vec::new();
        for i in 0..20 {
            let out = enc.encode(&picture(320, 240, i * 2), 26, i == 0 || i == 12, None).unwrap();
            assert!(!out.data.is_empty(), "every frame comes out of its own call");
            kinds.push((out.keyframe, nal_types(out.data)));
        }
        for (i, (key, nals)) in kinds.iter().enumerate() {
            let want_key = i == 0 || i == 12;
            assert_eq!(*key, want_key, "frame {i}");
            // 7 SPS, 8 PPS, 5 IDR slice, 1 non-IDR slice.
            if want_key {
                assert!(nals.contains(&7) && nals.contains(&8) && nals.contains(&5), "{i}: {nals:?}");
            } else {
                assert!(nals.iter().all(|&t| t == 1), "{i}: {nals:?}");
            }
        }
    }

    #[test]
    fn a_lower_qp_costs_more_bits() {
        let mut sizes = Vec::new();
        for qp in [40, 30, 20] {
            let mut enc = X264::open(320, 240, 30, 1, QP_LOW_RANGE).unwrap();
            sizes.push(enc.encode(&picture(320, 240, 0), qp, true, None).unwrap().data.len());
        }
        assert!(sizes[0] < sizes[1] && sizes[1] < sizes[2], "{sizes:?}");
    }

    #[test]
    fn the_high_range_reaches_below_what_qp_51_costs() {
        // Noise: at QP 51 it still costs a lot; x264's emergency QPs cut it down.
        let mut seed = 7u32;
        let noise: Vec<u8> = (0..320 * 240 * 3 / 2)
            .map(|_| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (seed >> 24) as u8
            })
            .collect();
        let size = |qp_low: u8, qp: u8| {
            let mut enc = X264::open(320, 240, 30, 1, qp_low).unwrap();
            enc.encode(&noise, qp, true, None).unwrap().data.len()
        };
        let (low, high) = (size(QP_LOW_RANGE, 51), size(QP_HIGH_RANGE, 66));
        assert!(high * 4 < low, "QP 66: {high} bytes, QP 51: {low} bytes");
        // Each encoder holds QPs to its own range.
        assert_eq!(size(QP_LOW_RANGE, 66), low);
        assert_eq!(size(QP_HIGH_RANGE, 11), size(QP_HIGH_RANGE, QP_HIGH_RANGE));
    }

    #[test]
    fn rigid_motion_is_skipped_only_under_qp_20() {
        // Coloured bars moving 4 pixels a frame, as `kelpie-probe bars` draws them: every
        // macroblock is the one before, moved. From QP 20 up libx264's fastest mode codes
        // each (about 7 bits apiece: it probes a macroblock for a skip only next to one
        // already skipped), under it skips them: the rate control counts on both.
        let (w, h) = (640usize, 368usize);
        let bars = |shift: usize| {
            let mut f = vec![128u8; w * h * 3 / 2];
            for y in 0..h {
                for x in 0..w {
                    f[y * w + x] = [16u8, 235, 81, 145, 41, 210, 106, 170][(x + shift) / 80 % 8];
                }
            }
            f
        };
        let motion_bits = |qp: u8| {
            let mut enc = X264::open(w as u32, h as u32, 60, 1, QP_LOW_RANGE).unwrap();
            enc.encode(&bars(0), qp, true, None).unwrap();
            enc.encode(&bars(4), qp, false, None).unwrap();
            (2..6).map(|i| enc.encode(&bars(4 * i), qp, false, None).unwrap().data.len() * 8).sum::<usize>()
                / 4
        };
        let (low, high) = (motion_bits(16), motion_bits(40));
        assert!(high > 4 * low, "QP 16: {low} bits a frame, QP 40: {high}");
        let top = motion_bits(51);
        assert!(top > 2 * low, "QP 16: {low} bits a frame, QP 51: {top}");
    }

    #[test]
    fn bad_sizes_are_refused_with_a_reason() {
        assert!(X264::open(321, 240, 30, 1, QP_LOW_RANGE).is_err());
        let mut enc = X264::open(64, 64, 30, 1, QP_LOW_RANGE).unwrap();
        let err = enc.encode(&[0u8; 10], 26, true, None).err().unwrap().to_string();
        assert!(err.contains("64x64"), "{err}");
    }
}

#[cfg(test)]
#[path = "x264/skip_tests.rs"]
mod skip_tests;

#[cfg(test)]
#[path = "x264/recovery_tests.rs"]
mod recovery_tests;
