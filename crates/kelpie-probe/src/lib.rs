//! Timestamp pattern ("stamp") shared by the `kelpie-probe` X11 client and the tests.
//!
//! The probe paints, at the top-left corner of the screen, a row of [`CELLS`] square cells of
//! [`CELL`] pixels each:
//!
//! * cell 0 is white and cell 1 is black (luminance references),
//! * cells 2..50 hold the 48 low bits of the milliseconds since the Unix epoch, most significant
//!   bit first,
//! * cells 50..58 hold an 8-bit checksum: the sum of the six big-endian bytes of that 48-bit value,
//!   modulo 256, most significant bit first.
//!
//! A 1 bit is white (255,255,255), a 0 bit is black (0,0,0). The whole strip is
//! [`STAMP_WIDTH`] x [`STAMP_HEIGHT`] pixels.
//!
//! [`decode_stamp`] reads it back from a (possibly lossy-compressed, possibly scaled) raster.
//! The JavaScript twin lives in `tests/lib/stamp.mjs` and must stay in step with this file.
//!
//! The crate also holds a minimal XWD reader ([`parse_xwd`]) so that `xwd -root` captures can be
//! decoded.

use std::fmt;

/// Side of one square cell, in screen pixels.
pub const CELL: usize = 16;
/// Number of cells: 2 references + 48 value bits + 8 checksum bits.
pub const CELLS: usize = 58;
/// Number of encoded bits (everything after the two reference cells).
pub const STAMP_BITS: usize = CELLS - 2;
/// Width of the whole strip in screen pixels (928).
pub const STAMP_WIDTH: usize = CELL * CELLS;
/// Height of the strip in screen pixels (16).
pub const STAMP_HEIGHT: usize = CELL;
/// Number of value bits carried (the low 48 bits of the millisecond timestamp).
pub const VALUE_BITS: usize = 48;
/// Mask selecting the value bits.
pub const VALUE_MASK: u64 = (1 << VALUE_BITS) - 1;
/// Minimum luminance difference between the white and the black reference cells.
pub const MIN_CONTRAST: f64 = 100.0;
/// Side, in screen pixels, of the square sampled at the centre of each cell.
pub const SAMPLE: f64 = 8.0;

/// Checksum of a 48-bit value: sum of its six big-endian bytes, modulo 256.
#[must_use]
pub fn checksum48(value: u64) -> u8 {
    let v = value & VALUE_MASK;
    (0..6).fold(0u8, |acc, i| acc.wrapping_add((v >> (8 * i)) as u8))
}

/// The 56 encoded bits for `ms` (48 value bits, then 8 checksum bits, MSB first).
/// `true` means a white cell. Only the low 48 bits of `ms` are encoded.
#[must_use]
pub fn encode_stamp(ms: u64) -> [bool; STAMP_BITS] {
    let v = ms & VALUE_MASK;
    let sum = checksum48(v);
    let mut bits = [false; STAMP_BITS];
    for (i, bit) in bits.iter_mut().take(VALUE_BITS).enumerate() {
        *bit = (v >> (VALUE_BITS - 1 - i)) & 1 == 1;
    }
    for (i, bit) in bits.iter_mut().skip(VALUE_BITS).enumerate() {
        *bit = (sum >> (7 - i)) & 1 == 1;
    }
    bits
}

/// All [`CELLS`] cells for `ms`, references included: `true` means white.
#[must_use]
pub fn stamp_cells(ms: u64) -> [bool; CELLS] {
    let mut cells = [false; CELLS];
    cells[0] = true;
    cells[1] = false;
    cells[2..].copy_from_slice(&encode_stamp(ms));
    cells
}

/// Inverse of [`encode_stamp`]: the 48-bit value, or `None` when the checksum does not match.
#[must_use]
pub fn bits_to_value(bits: &[bool; STAMP_BITS]) -> Option<u64> {
    let value = bits[..VALUE_BITS].iter().fold(0u64, |acc, &b| (acc << 1) | u64::from(b));
    let sum = bits[VALUE_BITS..].iter().fold(0u8, |acc, &b| (acc << 1) | u8::from(b));
    (checksum48(value) == sum).then_some(value)
}

/// Where the red, green and blue bytes sit inside one pixel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PixelFormat {
    /// Bytes per pixel (3 or 4 usually).
    pub bytes_per_pixel: usize,
    /// Byte offset of red inside a pixel.
    pub r: usize,
    /// Byte offset of green inside a pixel.
    pub g: usize,
    /// Byte offset of blue inside a pixel.
    pub b: usize,
}

impl PixelFormat {
    /// R, G, B, A bytes (browser `ImageData`, most PNG decoders).
    pub const RGBA: Self = Self::new(4, 0, 1, 2);
    /// B, G, R, X bytes (X11 32 bpp little-endian, `xwd` on x86, raw SHM dumps).
    pub const BGRX: Self = Self::new(4, 2, 1, 0);
    /// X, R, G, B bytes (X11 32 bpp big-endian).
    pub const XRGB: Self = Self::new(4, 1, 2, 3);
    /// Packed R, G, B bytes.
    pub const RGB: Self = Self::new(3, 0, 1, 2);

    /// A format with the given pixel size and channel byte offsets.
    #[must_use]
    pub const fn new(bytes_per_pixel: usize, r: usize, g: usize, b: usize) -> Self {
        Self { bytes_per_pixel, r, g, b }
    }
}

/// A borrowed raster.
#[derive(Clone, Copy, Debug)]
pub struct ImageView<'a> {
    /// Pixel bytes, row after row.
    pub data: &'a [u8],
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Bytes from the start of one row to the start of the next.
    pub stride: usize,
    /// Channel layout.
    pub format: PixelFormat,
}

impl<'a> ImageView<'a> {
    /// A tightly packed raster (`stride = width * bytes_per_pixel`).
    #[must_use]
    pub const fn packed(data: &'a [u8], width: usize, height: usize, format: PixelFormat) -> Self {
        Self { data, width, height, stride: width * format.bytes_per_pixel, format }
    }

    /// BT.601 luminance of the pixel at (x, y). Panics if out of bounds.
    #[must_use]
    pub fn luma(&self, x: usize, y: usize) -> f64 {
        let o = y * self.stride + x * self.format.bytes_per_pixel;
        let f = self.format;
        0.299 * f64::from(self.data[o + f.r])
            + 0.587 * f64::from(self.data[o + f.g])
            + 0.114 * f64::from(self.data[o + f.b])
    }

    /// Mean luminance of the rectangle `[x0, x1) x [y0, y1)`, which must be in bounds and not
    /// empty.
    fn mean_luma(&self, x0: usize, x1: usize, y0: usize, y1: usize) -> f64 {
        let mut sum = 0.0;
        for y in y0..y1 {
            for x in x0..x1 {
                sum += self.luma(x, y);
            }
        }
        sum / ((x1 - x0) * (y1 - y0)) as f64
    }

    fn is_consistent(&self) -> bool {
        let f = self.format;
        f.r.max(f.g).max(f.b) < f.bytes_per_pixel
            && (self.height == 0
                || self.width == 0
                || self.stride >= self.width * f.bytes_per_pixel
                    && self.data.len() >= (self.height - 1) * self.stride + self.width * f.bytes_per_pixel)
    }
}

/// Pixel bounds `[lo, hi)` of the central sample of a cell, along one axis, in image pixels.
fn sample_span(cell_index: usize, scale: f64) -> (usize, usize) {
    let centre = (cell_index * CELL) as f64 + CELL as f64 / 2.0;
    let lo = ((centre - SAMPLE / 2.0) * scale).round().max(0.0) as usize;
    let hi = ((centre + SAMPLE / 2.0) * scale).round().max(0.0) as usize;
    (lo, hi.max(lo + 1))
}

/// Mean luminance of the centre of every cell, or `None` if the strip does not fit in the image.
///
/// `scale` is `image_width / screen_width` (1.0 when the image is a 1:1 capture).
#[must_use]
pub fn sample_cells(image: &ImageView<'_>, scale: f64) -> Option<[f64; CELLS]> {
    if !scale.is_finite() || scale <= 0.0 || !image.is_consistent() {
        return None;
    }
    let (y0, y1) = sample_span(0, scale);
    if y1 > image.height {
        return None;
    }
    let mut out = [0.0; CELLS];
    for (i, l) in out.iter_mut().enumerate() {
        let (x0, x1) = sample_span(i, scale);
        if x1 > image.width {
            return None;
        }
        *l = image.mean_luma(x0, x1, y0, y1);
    }
    Some(out)
}

/// Decodes the stamp at the top-left corner of `image`.
///
/// `scale` is `image_width / screen_width` (1.0 for a 1:1 capture). Returns the 48-bit
/// millisecond value (see [`VALUE_MASK`]; use [`unwrap_ms`] to get a full epoch value back), or
/// `None` if the strip does not fit, the reference cells differ by less than [`MIN_CONTRAST`] in
/// luminance, or the checksum does not match.
#[must_use]
pub fn decode_stamp(image: &ImageView<'_>, scale: f64) -> Option<u64> {
    let lum = sample_cells(image, scale)?;
    let (white, black) = (lum[0], lum[1]);
    if white - black < MIN_CONTRAST {
        return None;
    }
    let mid = (white + black) / 2.0;
    let mut bits = [false; STAMP_BITS];
    for (bit, l) in bits.iter_mut().zip(&lum[2..]) {
        *bit = *l > mid;
    }
    bits_to_value(&bits)
}

/// Restores the high bits of a decoded 48-bit value using a reference time (e.g. "now") in
/// milliseconds since the epoch: returns the full value closest to `reference_ms`.
#[must_use]
pub fn unwrap_ms(value48: u64, reference_ms: u64) -> u64 {
    let period = 1u64 << VALUE_BITS;
    let base = reference_ms & !VALUE_MASK;
    let candidates =
        [base.wrapping_sub(period) | value48, base | value48, base.wrapping_add(period) | value48];
    candidates.into_iter().min_by_key(|c| c.abs_diff(reference_ms)).unwrap_or(value48)
}

/// Error reading an XWD file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XwdError(pub String);

impl fmt::Display for XwdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad XWD file: {}", self.0)
    }
}

impl std::error::Error for XwdError {}

/// Reads the header of an XWD (X Window Dump, version 7) file such as `xwd -root` writes and
/// returns a view of its pixels. Only ZPixmap images of 24 or 32 bits per pixel with 8-bit
/// channels are supported (what any TrueColor X server at depth 24 produces).
pub fn parse_xwd(bytes: &[u8]) -> Result<ImageView<'_>, XwdError> {
    let err = |m: &str| XwdError(m.to_owned());
    let field = |i: usize| -> Result<u32, XwdError> {
        bytes
            .get(i * 4..i * 4 + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| err("truncated header"))
    };
    let header_size = field(0)? as usize;
    if field(1)? != 7 {
        return Err(err("not version 7"));
    }
    if field(2)? != 2 {
        return Err(err("not a ZPixmap image"));
    }
    let width = field(4)? as usize;
    let height = field(5)? as usize;
    let lsb_first = field(7)? == 0;
    let bits_per_pixel = field(11)? as usize;
    let stride = field(12)? as usize;
    let masks = [field(14)?, field(15)?, field(16)?];
    let ncolors = field(19)? as usize;
    let bpp = match bits_per_pixel {
        24 => 3,
        32 => 4,
        _ => return Err(err("only 24 and 32 bits per pixel are supported")),
    };
    let mut offsets = [0usize; 3];
    for (off, mask) in offsets.iter_mut().zip(masks) {
        let shift = mask.trailing_zeros() as usize;
        if mask == 0 || mask >> shift != 0xff || !shift.is_multiple_of(8) || shift / 8 >= bpp {
            return Err(err("channels are not whole bytes"));
        }
        *off = if lsb_first { shift / 8 } else { bpp - 1 - shift / 8 };
    }
    let start = header_size
        .checked_add(ncolors.checked_mul(12).ok_or_else(|| err("bad ncolors"))?)
        .ok_or_else(|| err("bad header size"))?;
    let data = bytes.get(start..).ok_or_else(|| err("truncated"))?;
    let image = ImageView {
        data,
        width,
        height,
        stride,
        format: PixelFormat::new(bpp, offsets[0], offsets[1], offsets[2]),
    };
    if !image.is_consistent() {
        return Err(err("truncated pixel data"));
    }
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tiny deterministic PRNG for the tests.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn noise(&mut self, amplitude: i32) -> i32 {
            (self.next() % (2 * amplitude as u64 + 1)) as i32 - amplitude
        }
    }

    const MS: u64 = 1_764_428_400_123;

    /// Renders the stamp at `scale` into an RGBA image of `width` x `height` (grey background),
    /// with `white` / `black` as the two cell colours. Pixels are box-filtered from a 4x
    /// supersampled grid so that fractional scales behave like a real scaler.
    fn render(ms: u64, width: usize, height: usize, scale: f64, white: u8, black: u8) -> Vec<u8> {
        let cells = stamp_cells(ms);
        let mut img = vec![128u8; width * height * 4];
        for y in 0..height {
            for x in 0..width {
                let mut acc = 0.0;
                for sy in 0..4 {
                    for sx in 0..4 {
                        let px = (x as f64 + (sx as f64 + 0.5) / 4.0) / scale;
                        let py = (y as f64 + (sy as f64 + 0.5) / 4.0) / scale;
                        let cell = (px / CELL as f64) as usize;
                        acc += if py < STAMP_HEIGHT as f64 && cell < CELLS {
                            f64::from(if cells[cell] { white } else { black })
                        } else {
                            128.0
                        };
                    }
                }
                let v = (acc / 16.0).round() as u8;
                let o = (y * width + x) * 4;
                img[o..o + 3].fill(v);
                img[o + 3] = 255;
            }
        }
        img
    }

    fn add_noise(img: &mut [u8], amplitude: i32, seed: u64) {
        let mut rng = Rng(seed);
        for px in img.chunks_exact_mut(4) {
            for c in &mut px[..3] {
                *c = (i32::from(*c) + rng.noise(amplitude)).clamp(0, 255) as u8;
            }
        }
    }

    #[test]
    fn geometry() {
        assert_eq!(STAMP_WIDTH, 928);
        assert_eq!(STAMP_HEIGHT, 16);
        assert_eq!(STAMP_BITS, 56);
    }

    #[test]
    fn encode_layout() {
        let bits = encode_stamp(0x8000_0000_0001);
        assert!(bits[0]);
        assert!(bits[1..47].iter().all(|b| !b));
        assert!(bits[47]);
        // checksum = 0x80 + 0x01 = 0x81
        assert_eq!(&bits[48..], &[true, false, false, false, false, false, false, true]);
        assert_eq!(checksum48(0x0102_0304_0506), 21);
        assert_eq!(checksum48(0xffff_ffff_ffff), (6 * 255 % 256) as u8);
        let cells = stamp_cells(MS);
        assert!(cells[0] && !cells[1]);
    }

    #[test]
    fn bits_round_trip() {
        for v in [0, 1, MS, VALUE_MASK, 0xdead_beef_cafe] {
            assert_eq!(bits_to_value(&encode_stamp(v)), Some(v & VALUE_MASK));
        }
    }

    #[test]
    fn raster_round_trip() {
        let (w, h) = (1000, 20);
        let img = render(MS, w, h, 1.0, 255, 0);
        let view = ImageView::packed(&img, w, h, PixelFormat::RGBA);
        assert_eq!(decode_stamp(&view, 1.0), Some(MS & VALUE_MASK));
        assert_eq!(unwrap_ms(MS & VALUE_MASK, MS + 5000), MS);
    }

    #[test]
    fn bgrx_with_padding_stride() {
        let (w, h) = (930, 16);
        let rgba = render(MS, w, h, 1.0, 255, 0);
        let stride = w * 4 + 64;
        let mut bgrx = vec![0u8; stride * h];
        for y in 0..h {
            for x in 0..w {
                let s = (y * w + x) * 4;
                let d = y * stride + x * 4;
                bgrx[d] = rgba[s + 2];
                bgrx[d + 1] = rgba[s + 1];
                bgrx[d + 2] = rgba[s];
            }
        }
        let view = ImageView { data: &bgrx, width: w, height: h, stride, format: PixelFormat::BGRX };
        assert_eq!(decode_stamp(&view, 1.0), Some(MS & VALUE_MASK));
    }

    #[test]
    fn noisy_raster_decodes() {
        let (w, h) = (1000, 20);
        for seed in 1..20 {
            let mut img = render(MS + seed, w, h, 1.0, 255, 0);
            add_noise(&mut img, 40, seed * 7919);
            let view = ImageView::packed(&img, w, h, PixelFormat::RGBA);
            assert_eq!(decode_stamp(&view, 1.0), Some((MS + seed) & VALUE_MASK));
        }
    }

    #[test]
    fn scaled_raster_decodes() {
        for scale in [0.5, 0.75, 2.0 / 3.0, 1.5, 2.0] {
            let w = (STAMP_WIDTH as f64 * scale).ceil() as usize + 3;
            let h = (STAMP_HEIGHT as f64 * scale).ceil() as usize + 1;
            let mut img = render(MS, w, h, scale, 255, 0);
            add_noise(&mut img, 40, 99);
            let view = ImageView::packed(&img, w, h, PixelFormat::RGBA);
            assert_eq!(decode_stamp(&view, scale), Some(MS & VALUE_MASK), "{scale}");
        }
    }

    #[test]
    fn corrupted_checksum_rejected() {
        let (w, h) = (1000, 16);
        let mut img = render(MS, w, h, 1.0, 255, 0);
        // Invert the last checksum cell.
        let cell = CELLS - 1;
        for y in 0..h {
            for x in cell * CELL..(cell + 1) * CELL {
                let o = (y * w + x) * 4;
                for c in &mut img[o..o + 3] {
                    *c = 255 - *c;
                }
            }
        }
        let view = ImageView::packed(&img, w, h, PixelFormat::RGBA);
        assert_eq!(decode_stamp(&view, 1.0), None);
    }

    #[test]
    fn corrupted_value_rejected() {
        let mut bits = encode_stamp(MS);
        bits[20] = !bits[20];
        assert_eq!(bits_to_value(&bits), None);
    }

    #[test]
    fn low_contrast_rejected() {
        let (w, h) = (1000, 16);
        let img = render(MS, w, h, 1.0, 170, 80);
        let view = ImageView::packed(&img, w, h, PixelFormat::RGBA);
        assert_eq!(decode_stamp(&view, 1.0), None);
        let flat = vec![128u8; w * h * 4];
        let view = ImageView::packed(&flat, w, h, PixelFormat::RGBA);
        assert_eq!(decode_stamp(&view, 1.0), None);
    }

    #[test]
    fn too_small_rejected() {
        let img = render(MS, 900, 16, 1.0, 255, 0);
        let view = ImageView::packed(&img, 900, 16, PixelFormat::RGBA);
        assert_eq!(decode_stamp(&view, 1.0), None);
        let view = ImageView::packed(&img[..100], 900, 16, PixelFormat::RGBA);
        assert_eq!(decode_stamp(&view, 1.0), None);
        let img = render(MS, 1000, 16, 1.0, 255, 0);
        let view = ImageView::packed(&img, 1000, 16, PixelFormat::RGBA);
        assert_eq!(decode_stamp(&view, 0.0), None);
        assert_eq!(decode_stamp(&view, f64::NAN), None);
    }

    #[test]
    fn xwd_round_trip() {
        let (w, h) = (940usize, 17usize);
        let rgba = render(MS, w, h, 1.0, 255, 0);
        let name = b"probe\0";
        let header_size = 100 + name.len();
        let mut file = Vec::new();
        let fields: [u32; 25] = [
            header_size as u32,
            7,
            2,
            24,
            w as u32,
            h as u32,
            0,
            0, // LSBFirst
            32,
            0,
            32,
            32,
            (w * 4) as u32,
            4, // TrueColor
            0xff_0000,
            0xff00,
            0xff,
            8,
            256,
            2, // ncolors
            w as u32,
            h as u32,
            0,
            0,
            0,
        ];
        for f in fields {
            file.extend_from_slice(&f.to_be_bytes());
        }
        file.extend_from_slice(name);
        file.extend_from_slice(&[0u8; 24]);
        for px in rgba.chunks_exact(4) {
            file.extend_from_slice(&[px[2], px[1], px[0], 0]);
        }
        let view = parse_xwd(&file).expect("parse");
        assert_eq!(view.format, PixelFormat::BGRX);
        assert_eq!((view.width, view.height), (w, h));
        assert_eq!(decode_stamp(&view, 1.0), Some(MS & VALUE_MASK));
        assert!(parse_xwd(&file[..50]).is_err());
        assert!(parse_xwd(&file[..file.len() - 10]).is_err());
    }
}
