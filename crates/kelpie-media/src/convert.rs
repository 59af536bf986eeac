//! BGRx → I420 (BT.601, limited range) colour conversion of damaged rectangles into a
//! persistent frame, so an unchanged part of the screen is never converted twice.

use crate::capture::Rect;

/// A planar YUV 4:2:0 frame kept between captures.
pub struct I420Frame {
    width: u32,
    height: u32,
    data: Vec<u8>,
}

impl I420Frame {
    /// A black frame. `width` and `height` must be even.
    pub fn new(width: u32, height: u32) -> Self {
        assert!(width.is_multiple_of(2) && height.is_multiple_of(2), "I420 needs even dimensions");
        let y = width as usize * height as usize;
        let mut data = vec![16u8; y + y / 2];
        data[y..].fill(128);
        Self { width, height, data }
    }

    /// The planes laid out one after another (Y, then U, then V), as GStreamer's I420.
    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }

    /// The planes, writable.
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }

    /// Frame width.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Frame height.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Converts `bgrx` (rows of `rect.w * 4` bytes) into the frame at `rect`, which must be
    /// even-aligned and inside the frame.
    pub fn write_bgrx(&mut self, rect: Rect, bgrx: &[u8]) {
        self.write_bgrx_on(rect, bgrx, 1);
    }

    /// As [`I420Frame::write_bgrx`], with a large rectangle cut into bands of rows converted
    /// on up to `threads` threads at once (a 4K frame is 8 million pixels).
    pub fn write_bgrx_on(&mut self, rect: Rect, bgrx: &[u8], threads: usize) {
        assert!(
            rect.x.is_multiple_of(2)
                && rect.y.is_multiple_of(2)
                && rect.w.is_multiple_of(2)
                && rect.h.is_multiple_of(2)
        );
        assert!(rect.x + rect.w <= self.width && rect.y + rect.h <= self.height);
        let stride = rect.w as usize * 4;
        assert!(bgrx.len() >= stride * rect.h as usize);
        let w = self.width as usize;
        let ysize = w * self.height as usize;
        let (yplane, chroma) = self.data.split_at_mut(ysize);
        let (uplane, vplane) = chroma.split_at_mut(ysize / 4);
        // The planes from the rectangle's first row on, and its pixel rows.
        let (y0, rows) = (rect.y as usize, rect.h as usize);
        let area = Band {
            y: &mut yplane[y0 * w..],
            u: &mut uplane[y0 / 2 * (w / 2)..],
            v: &mut vplane[y0 / 2 * (w / 2)..],
            bgrx: &bgrx[..stride * rows],
            rows,
        };
        // Bands of an even number of rows, at least PARALLEL_MIN pixels each: a thread costs
        // tens of microseconds to start.
        let bands = threads.clamp(1, (rect.w as usize * rows / PARALLEL_MIN).max(1));
        if bands == 1 {
            area.convert(w, rect.x as usize, rect.w as usize);
            return;
        }
        let per = (rows / bands).next_multiple_of(2);
        let mut parts = Vec::with_capacity(bands);
        let mut rest = area;
        while rest.rows > per {
            let (head, tail) = rest.split(per, w, stride);
            parts.push(head);
            rest = tail;
        }
        parts.push(rest);
        let (x0, pw) = (rect.x as usize, rect.w as usize);
        std::thread::scope(|s| {
            let mut parts = parts.into_iter();
            let mine = parts.next();
            for part in parts {
                s.spawn(move || part.convert(w, x0, pw));
            }
            if let Some(part) = mine {
                part.convert(w, x0, pw);
            }
        });
    }
}

/// Pixels a band converted on a thread of its own holds at least.
const PARALLEL_MIN: usize = 256 * 1024;

/// Rows of a rectangle to convert: the planes from its first row on, and its BGRx rows.
struct Band<'a> {
    y: &'a mut [u8],
    u: &'a mut [u8],
    v: &'a mut [u8],
    bgrx: &'a [u8],
    rows: usize,
}

impl<'a> Band<'a> {
    /// The first `rows` (even) rows, and the rest; `w` is the frame's width, `stride` the
    /// BGRx row length.
    fn split(self, rows: usize, w: usize, stride: usize) -> (Self, Self) {
        let (y, y_rest) = self.y.split_at_mut(rows * w);
        let (u, u_rest) = self.u.split_at_mut(rows / 2 * (w / 2));
        let (v, v_rest) = self.v.split_at_mut(rows / 2 * (w / 2));
        let (bgrx, bgrx_rest) = self.bgrx.split_at(rows * stride);
        (
            Self { y, u, v, bgrx, rows },
            Self { y: y_rest, u: u_rest, v: v_rest, bgrx: bgrx_rest, rows: self.rows - rows },
        )
    }

    /// Converts the band's rows, `pw` pixels from column `x0`, in a frame `w` wide.
    fn convert(self, w: usize, x0: usize, pw: usize) {
        let stride = pw * 4;
        let cw = w / 2;
        for row in (0..self.rows).step_by(2) {
            let src0 = &self.bgrx[row * stride..row * stride + stride];
            let src1 = &self.bgrx[(row + 1) * stride..(row + 1) * stride + stride];
            let yo0 = row * w + x0;
            let yo1 = yo0 + w;
            let co = (row / 2) * cw + x0 / 2;
            let (y_top, y_bottom) = self.y.split_at_mut(yo1);
            row_pair(
                src0,
                src1,
                &mut y_top[yo0..yo0 + pw],
                &mut y_bottom[..pw],
                &mut self.u[co..co + pw / 2],
                &mut self.v[co..co + pw / 2],
            );
        }
    }
}

#[inline(always)]
fn luma(b: i32, g: i32, r: i32) -> u8 {
    ((66 * r + 129 * g + 25 * b + 128 + (16 << 8)) >> 8) as u8
}

/// Converts two rows, with AVX2 where the processor has it.
fn row_pair(s0: &[u8], s1: &[u8], y0: &mut [u8], y1: &mut [u8], u: &mut [u8], v: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the processor supports AVX2, checked just above.
        let done = unsafe { avx2::row_pair(s0, s1, y0, y1, u, v) };
        let (s0, s1) = (&s0[done * 4..], &s1[done * 4..]);
        let (y0, y1) = (&mut y0[done..], &mut y1[done..]);
        convert_row_pair(s0, s1, y0, y1, &mut u[done / 2..], &mut v[done / 2..]);
        return;
    }
    convert_row_pair(s0, s1, y0, y1, u, v);
}

/// Hand-vectorised conversion, 16 pixels of two rows at a time, bit-exact with
/// [`convert_row_pair`] (same coefficients, rounding and clamping).
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// Converts as many whole 16-pixel blocks as the rows hold; returns the pixels done.
    ///
    /// # Safety
    /// The processor must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn row_pair(
        s0: &[u8],
        s1: &[u8],
        y0: &mut [u8],
        y1: &mut [u8],
        u: &mut [u8],
        v: &mut [u8],
    ) -> usize {
        let blocks = u.len() / 8;
        assert!(s0.len() >= blocks * 64 && s1.len() >= blocks * 64);
        assert!(y0.len() >= blocks * 16 && y1.len() >= blocks * 16);
        // Coefficients per BGRx pixel as 16-bit lanes; madd sums pairs (b,g) and (r,x).
        let yc = _mm256_setr_epi16(25, 129, 66, 0, 25, 129, 66, 0, 25, 129, 66, 0, 25, 129, 66, 0);
        let uc = _mm256_setr_epi16(112, -74, -38, 0, 112, -74, -38, 0, 112, -74, -38, 0, 112, -74, -38, 0);
        let vc = _mm256_setr_epi16(-18, -94, 112, 0, -18, -94, 112, 0, -18, -94, 112, 0, -18, -94, 112, 0);
        let y_round = _mm256_set1_epi32(128 + (16 << 8));
        let c_round = _mm256_set1_epi32(512 + (128 << 10));
        // hadd leaves chroma pairs in the order 0 1 4 5 2 3 6 7.
        let chroma_order = _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7);
        let zero = _mm256_setzero_si256();
        for b in 0..blocks {
            // SAFETY (all loads and stores): bounds asserted above; unaligned access.
            let (r0a, r0b, r1a, r1b) = unsafe {
                (
                    _mm256_loadu_si256(s0.as_ptr().add(b * 64).cast()),
                    _mm256_loadu_si256(s0.as_ptr().add(b * 64 + 32).cast()),
                    _mm256_loadu_si256(s1.as_ptr().add(b * 64).cast()),
                    _mm256_loadu_si256(s1.as_ptr().add(b * 64 + 32).cast()),
                )
            };
            // 16-bit pixels: lo holds pixels 0,1 | 4,5 of a load, hi holds 2,3 | 6,7.
            let w =
                [r0a, r0b, r1a, r1b].map(|r| (_mm256_unpacklo_epi8(r, zero), _mm256_unpackhi_epi8(r, zero)));
            let luma8 = |(lo, hi): (__m256i, __m256i)| {
                let s = _mm256_hadd_epi32(_mm256_madd_epi16(lo, yc), _mm256_madd_epi16(hi, yc));
                _mm256_srai_epi32::<8>(_mm256_add_epi32(s, y_round))
            };
            let luma16 = |a: __m256i, c: __m256i| {
                let p = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packs_epi32(a, c));
                let bytes = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packus_epi16(p, p));
                _mm256_castsi256_si128(bytes)
            };
            let top = luma16(luma8(w[0]), luma8(w[1]));
            let bottom = luma16(luma8(w[2]), luma8(w[3]));
            // Column sums of the two rows, then per-pixel weighted sums, then pairs.
            let sums = [
                (_mm256_add_epi16(w[0].0, w[2].0), _mm256_add_epi16(w[0].1, w[2].1)),
                (_mm256_add_epi16(w[1].0, w[3].0), _mm256_add_epi16(w[1].1, w[3].1)),
            ];
            let chroma8 = |c: __m256i| {
                let px = sums
                    .map(|(lo, hi)| _mm256_hadd_epi32(_mm256_madd_epi16(lo, c), _mm256_madd_epi16(hi, c)));
                let pairs = _mm256_hadd_epi32(px[0], px[1]);
                let q = _mm256_srai_epi32::<10>(_mm256_add_epi32(pairs, c_round));
                let q = _mm256_permutevar8x32_epi32(q, chroma_order);
                let p16 = _mm256_packs_epi32(q, q);
                let p8 = _mm256_packus_epi16(p16, p16);
                // Lane 0 holds pairs 0-3, lane 1 pairs 4-7.
                let lo = _mm_cvtsi128_si32(_mm256_castsi256_si128(p8)) as u32;
                let hi = _mm_cvtsi128_si32(_mm256_extracti128_si256::<1>(p8)) as u32;
                u64::from(lo) | u64::from(hi) << 32
            };
            let (cu, cv) = (chroma8(uc), chroma8(vc));
            unsafe {
                _mm_storeu_si128(y0.as_mut_ptr().add(b * 16).cast(), top);
                _mm_storeu_si128(y1.as_mut_ptr().add(b * 16).cast(), bottom);
            }
            u[b * 8..b * 8 + 8].copy_from_slice(&cu.to_le_bytes());
            v[b * 8..b * 8 + 8].copy_from_slice(&cv.to_le_bytes());
        }
        blocks * 16
    }
}

/// Converts two rows of BGRx into two rows of Y and one row each of U and V.
#[inline(always)]
fn convert_row_pair(s0: &[u8], s1: &[u8], y0: &mut [u8], y1: &mut [u8], u: &mut [u8], v: &mut [u8]) {
    let pairs = u.len();
    for i in 0..pairs {
        let a = &s0[i * 8..i * 8 + 8];
        let c = &s1[i * 8..i * 8 + 8];
        let (b00, g00, r00) = (a[0] as i32, a[1] as i32, a[2] as i32);
        let (b01, g01, r01) = (a[4] as i32, a[5] as i32, a[6] as i32);
        let (b10, g10, r10) = (c[0] as i32, c[1] as i32, c[2] as i32);
        let (b11, g11, r11) = (c[4] as i32, c[5] as i32, c[6] as i32);
        y0[i * 2] = luma(b00, g00, r00);
        y0[i * 2 + 1] = luma(b01, g01, r01);
        y1[i * 2] = luma(b10, g10, r10);
        y1[i * 2 + 1] = luma(b11, g11, r11);
        let b = b00 + b01 + b10 + b11;
        let g = g00 + g01 + g10 + g11;
        let r = r00 + r01 + r10 + r11;
        // Averages of four pixels: the sums are 4x, so shift by 10 instead of 8.
        u[i] = ((-38 * r - 74 * g + 112 * b + 512 + (128 << 10)) >> 10).clamp(0, 255) as u8;
        v[i] = ((112 * r - 94 * g - 18 * b + 512 + (128 << 10)) >> 10).clamp(0, 255) as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn solid(w: u32, h: u32, bgr: [u8; 3]) -> Vec<u8> {
        (0..w * h).flat_map(|_| [bgr[0], bgr[1], bgr[2], 0]).collect()
    }

    fn sample(f: &I420Frame, x: u32, y: u32) -> (u8, u8, u8) {
        let w = f.width() as usize;
        let ys = w * f.height() as usize;
        let d = f.as_bytes();
        let c = (y as usize / 2) * (w / 2) + x as usize / 2;
        (d[y as usize * w + x as usize], d[ys + c], d[ys + ys / 4 + c])
    }

    #[test]
    fn primary_colours_match_bt601() {
        // Reference values from BT.601 limited range.
        let cases = [
            ([255, 255, 255], (235, 128, 128)),
            ([0, 0, 0], (16, 128, 128)),
            ([0, 0, 255], (82, 90, 240)),  // red (BGR order)
            ([0, 255, 0], (145, 54, 34)),  // green
            ([255, 0, 0], (41, 240, 110)), // blue
        ];
        for (bgr, (ey, eu, ev)) in cases {
            let mut f = I420Frame::new(4, 4);
            f.write_bgrx(Rect { x: 0, y: 0, w: 4, h: 4 }, &solid(4, 4, bgr));
            let (y, u, v) = sample(&f, 1, 1);
            assert!(
                y.abs_diff(ey) <= 1 && u.abs_diff(eu) <= 1 && v.abs_diff(ev) <= 1,
                "{bgr:?}: {y} {u} {v}"
            );
        }
    }

    #[test]
    fn vectorised_rows_match_the_scalar_rows() {
        // Widths around the 16-pixel blocks, every byte value likely to appear.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        };
        for width in [2usize, 14, 16, 18, 30, 32, 34, 62, 64, 66, 1920] {
            let mut s0: Vec<u8> = (0..width * 4).map(|_| next()).collect();
            let s1: Vec<u8> = (0..width * 4).map(|_| next()).collect();
            // Extremes: pure white and black pixels at the start.
            s0[..8].copy_from_slice(&[255, 255, 255, 255, 0, 0, 0, 0]);
            let mut fast = (vec![0; width], vec![0; width], vec![0; width / 2], vec![0; width / 2]);
            let mut slow = fast.clone();
            row_pair(&s0, &s1, &mut fast.0, &mut fast.1, &mut fast.2, &mut fast.3);
            convert_row_pair(&s0, &s1, &mut slow.0, &mut slow.1, &mut slow.2, &mut slow.3);
            assert_eq!(fast, slow, "width {width}");
        }
    }

    #[test]
    fn bands_on_threads_convert_exactly_as_one_thread_does() {
        // Large enough for 3 bands of at least PARALLEL_MIN pixels, off the frame's origin,
        // with an odd number of row pairs so the last band is shorter.
        let (fw, fh) = (1600u32, 1400u32);
        let rect = Rect { x: 6, y: 10, w: 1500, h: 1374 };
        let mut seed = 5u32;
        let px: Vec<u8> = (0..rect.w * rect.h * 4)
            .map(|_| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (seed >> 24) as u8
            })
            .collect();
        let mut one = I420Frame::new(fw, fh);
        one.write_bgrx(rect, &px);
        for threads in [2, 3, 8] {
            let mut many = I420Frame::new(fw, fh);
            many.write_bgrx_on(rect, &px, threads);
            assert!(one.as_bytes() == many.as_bytes(), "{threads} threads");
        }
        // The conversion did write (not both untouched).
        assert_ne!(one.as_bytes(), I420Frame::new(fw, fh).as_bytes());
    }

    #[test]
    fn writes_only_the_given_rectangle() {
        let mut f = I420Frame::new(8, 8);
        f.write_bgrx(Rect { x: 2, y: 4, w: 2, h: 2 }, &solid(2, 2, [255, 255, 255]));
        assert_eq!(sample(&f, 2, 4).0, 235);
        assert_eq!(sample(&f, 3, 5).0, 235);
        assert_eq!(sample(&f, 0, 0).0, 16);
        assert_eq!(sample(&f, 4, 4).0, 16);
        assert_eq!(sample(&f, 2, 6).0, 16);
    }
}
