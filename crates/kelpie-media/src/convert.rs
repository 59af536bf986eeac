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
        let cw = w / 2;
        let (yplane, chroma) = self.data.split_at_mut(ysize);
        let (uplane, vplane) = chroma.split_at_mut(ysize / 4);
        let (x0, y0) = (rect.x as usize, rect.y as usize);
        let pw = rect.w as usize;
        for row in (0..rect.h as usize).step_by(2) {
            let src0 = &bgrx[row * stride..row * stride + stride];
            let src1 = &bgrx[(row + 1) * stride..(row + 1) * stride + stride];
            let yo0 = (y0 + row) * w + x0;
            let yo1 = yo0 + w;
            let co = ((y0 + row) / 2) * cw + x0 / 2;
            let (y_top, y_bottom) = yplane.split_at_mut(yo1);
            row_pair(
                src0,
                src1,
                &mut y_top[yo0..yo0 + pw],
                &mut y_bottom[..pw],
                &mut uplane[co..co + pw / 2],
                &mut vplane[co..co + pw / 2],
            );
        }
    }
}

#[inline(always)]
fn luma(b: i32, g: i32, r: i32) -> u8 {
    ((66 * r + 129 * g + 25 * b + 128 + (16 << 8)) >> 8) as u8
}

/// Converts two rows, with AVX2 where the processor has it (about twice as fast).
fn row_pair(s0: &[u8], s1: &[u8], y0: &mut [u8], y1: &mut [u8], u: &mut [u8], v: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the processor supports AVX2, checked just above.
        unsafe { row_pair_avx2(s0, s1, y0, y1, u, v) };
        return;
    }
    convert_row_pair(s0, s1, y0, y1, u, v);
}

/// The same loop, compiled so the optimiser may use AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn row_pair_avx2(s0: &[u8], s1: &[u8], y0: &mut [u8], y1: &mut [u8], u: &mut [u8], v: &mut [u8]) {
    convert_row_pair(s0, s1, y0, y1, u, v);
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
