//! Which 16x16 macroblocks of a frame did not change since the frame before, worked out from
//! the screen's damage, so that the encoder can code them as skips without analysing them
//! (libx264's `mb_info` with `X264_MBINFO_CONSTANT`): a frame then costs about what changed.

use crate::capture::Rect;

/// Side of a macroblock in pixels.
pub const MB: u32 = 16;

/// The flag libx264 reads for a macroblock that equals the one before (`X264_MBINFO_CONSTANT`).
pub const CONSTANT: u8 = 1;

/// One byte per macroblock of a `width` x `height` frame, row by row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkipMap {
    cols: usize,
    rows: usize,
    flags: Vec<u8>,
}

impl SkipMap {
    /// A map for a `width` x `height` frame (partial macroblocks at the edges count).
    pub fn new(width: u32, height: u32) -> Self {
        let cols = width.div_ceil(MB) as usize;
        let rows = height.div_ceil(MB) as usize;
        Self { cols, rows, flags: vec![0; cols * rows] }
    }

    /// Marks every macroblock constant except those any of `changed` touches (rectangles in
    /// pixels; parts outside the frame are ignored). Returns how many macroblocks changed.
    pub fn mark(&mut self, changed: &[Rect]) -> usize {
        self.reset();
        self.add(changed)
    }

    /// Marks every macroblock constant.
    pub fn reset(&mut self) {
        self.flags.fill(CONSTANT);
    }

    /// Also marks the macroblocks `changed` touches as changed, keeping those marked before
    /// (the changes since some earlier frame). Returns how many macroblocks are changed now.
    pub fn add(&mut self, changed: &[Rect]) -> usize {
        for r in changed.iter().filter(|r| r.w > 0 && r.h > 0) {
            let (c0, r0) = ((r.x / MB) as usize, (r.y / MB) as usize);
            let c1 = ((r.x.saturating_add(r.w) - 1) / MB) as usize;
            let r1 = ((r.y.saturating_add(r.h) - 1) / MB) as usize;
            for row in r0..=r1.min(self.rows.saturating_sub(1)) {
                let line = &mut self.flags[row * self.cols..(row + 1) * self.cols];
                if c0 < line.len() {
                    let end = c1.min(line.len() - 1);
                    line[c0..=end].fill(0);
                }
            }
        }
        self.changed()
    }

    /// How many macroblocks are marked changed.
    pub fn changed(&self) -> usize {
        self.flags.iter().filter(|&&f| f == 0).count()
    }

    /// How many macroblocks the map covers.
    pub fn len(&self) -> usize {
        self.flags.len()
    }

    /// Whether the map covers no macroblock (a frame of no size).
    pub fn is_empty(&self) -> bool {
        self.flags.is_empty()
    }

    /// The flags, one byte per macroblock, row by row.
    pub fn as_bytes(&self) -> &[u8] {
        &self.flags
    }

    /// Macroblocks per row.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Whether the macroblock at column `col`, row `row` is marked constant.
    pub fn is_constant(&self, col: usize, row: usize) -> bool {
        self.flags[row * self.cols + col] & CONSTANT != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rect(x: u32, y: u32, w: u32, h: u32) -> Rect {
        Rect { x, y, w, h }
    }

    #[test]
    fn a_macroblock_is_constant_only_if_no_changed_pixel_touches_it() {
        // 1920x1080: 120 x 68 macroblocks, the last row half outside the picture.
        let mut map = SkipMap::new(1920, 1080);
        assert_eq!(map.as_bytes().len(), 120 * 68);
        // One pixel at (16, 16) is macroblock (1, 1) alone; (15, 15) is (0, 0).
        assert_eq!(map.mark(&[rect(16, 16, 1, 1)]), 1);
        assert!(!map.is_constant(1, 1) && map.is_constant(0, 0) && map.is_constant(2, 1));
        // A rectangle straddling macroblock edges touches every one it overlaps by a pixel.
        assert_eq!(map.mark(&[rect(15, 15, 2, 2)]), 4);
        assert!(!map.is_constant(0, 0) && !map.is_constant(1, 1) && map.is_constant(2, 2));
        // The bottom row, partly outside the picture.
        assert_eq!(map.mark(&[rect(1904, 1078, 16, 2)]), 1);
        assert!(!map.is_constant(119, 67));
    }

    #[test]
    fn each_mark_starts_afresh_and_ignores_what_is_outside() {
        let mut map = SkipMap::new(64, 32);
        assert_eq!(map.mark(&[rect(0, 0, 64, 32)]), 8);
        assert_eq!(map.mark(&[]), 0, "the previous damage is forgotten");
        assert!(map.as_bytes().iter().all(|&f| f == CONSTANT));
        assert_eq!(map.mark(&[rect(60, 30, 100, 100), rect(500, 500, 4, 4), rect(0, 0, 0, 9)]), 1);
        assert!(!map.is_constant(3, 1));
    }

    #[test]
    fn changes_add_up_until_reset() {
        let mut map = SkipMap::new(64, 32);
        assert_eq!(map.changed(), 8, "a new map knows of no frame before: everything changed");
        map.reset();
        assert_eq!(map.add(&[rect(0, 0, 1, 1)]), 1);
        assert_eq!(map.add(&[rect(20, 20, 1, 1)]), 2, "the earlier change is kept");
        assert_eq!(map.add(&[rect(0, 0, 1, 1)]), 2, "counted once");
        assert!(!map.is_constant(0, 0) && !map.is_constant(1, 1));
        map.reset();
        assert_eq!(map.changed(), 0);
        assert_eq!(map.len(), 8);
    }
}
