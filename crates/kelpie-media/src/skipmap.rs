//! Which 16x16 macroblocks of a frame did not change since the frame before, worked out from
//! the screen's damage, so that the encoder can code them as skips without analysing them
//! (libx264's `mb_info` with `X264_MBINFO_CONSTANT`): a frame then costs about what changed.
//! libx264 clears the flag of each macroblock it changes after all, so once the frame is
//! encoded the map also says where its decoded picture differs from the frame before
//! ([`SkipMap::changed_rects`]), which is all a viewer has to redraw.

use crate::capture::{Rect, coalesce};

/// Side of a macroblock in pixels.
pub const MB: u32 = 16;

/// The flag libx264 reads for a macroblock that equals the one before (`X264_MBINFO_CONSTANT`).
pub const CONSTANT: u8 = 1;

/// Most rectangles [`SkipMap::changed_rects`] describes a frame's change with: a viewer draws
/// each on its own, so many small ones are merged into a few larger ones.
pub const MAX_CHANGED_RECTS: usize = 16;

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

    /// The flags for the encoder to read and clear (see the module's documentation).
    pub fn as_mut_bytes(&mut self) -> &mut [u8] {
        &mut self.flags
    }

    /// The macroblocks not marked constant, as at most [`MAX_CHANGED_RECTS`] rectangles on the
    /// macroblock grid, clipped to the `width` x `height` picture (in pixels); every such
    /// macroblock is inside one of them. `None` when more than half the picture is not
    /// constant: drawing the whole picture costs a viewer about as much.
    pub fn changed_rects(&self, width: u32, height: u32) -> Option<Vec<Rect>> {
        let changed = self.flags.iter().filter(|&&f| f & CONSTANT == 0).count();
        if changed * 2 > self.flags.len() {
            return None;
        }
        let to_px = |row: usize, c0: usize, c1: usize, rows: usize| {
            let (x, y) = (c0 as u32 * MB, row as u32 * MB);
            let w = ((c1 as u32) * MB).min(width).saturating_sub(x);
            let h = ((row + rows) as u32 * MB).min(height).saturating_sub(y);
            Rect { x, y, w, h }
        };
        // Runs of changed macroblocks in each row, a run joining the rectangle of the row
        // above when it spans the same columns.
        let mut rects: Vec<(usize, usize, usize, usize)> = Vec::new(); // (row, c0, c1, rows)
        let mut open: Vec<usize> = Vec::new(); // indices in `rects` ending on the row above
        for row in 0..self.rows {
            let line = &self.flags[row * self.cols..(row + 1) * self.cols];
            let mut next_open = Vec::new();
            let mut c = 0;
            while c < line.len() {
                if line[c] & CONSTANT != 0 {
                    c += 1;
                    continue;
                }
                let c0 = c;
                while c < line.len() && line[c] & CONSTANT == 0 {
                    c += 1;
                }
                match open.iter().copied().find(|&i| rects[i].1 == c0 && rects[i].2 == c) {
                    Some(i) => {
                        rects[i].3 += 1;
                        next_open.push(i);
                    }
                    None => {
                        next_open.push(rects.len());
                        rects.push((row, c0, c, 1));
                    }
                }
            }
            open = next_open;
            // Scattered changes: each row's runs become the span from its first to its last.
            if rects.len() > 4 * MAX_CHANGED_RECTS {
                return Some(self.changed_rows(width, height));
            }
        }
        let px: Vec<Rect> = rects
            .into_iter()
            .map(|(row, c0, c1, rows)| to_px(row, c0, c1, rows))
            .filter(|r| r.w > 0 && r.h > 0)
            .collect();
        if px.len() <= MAX_CHANGED_RECTS {
            return Some(px);
        }
        Some(coalesce(&px, width, height, MAX_CHANGED_RECTS))
    }

    /// [`SkipMap::changed_rects`] for scattered changes: each row's changed macroblocks as one
    /// span, merged down to [`MAX_CHANGED_RECTS`].
    fn changed_rows(&self, width: u32, height: u32) -> Vec<Rect> {
        let mut px = Vec::new();
        for row in 0..self.rows {
            let line = &self.flags[row * self.cols..(row + 1) * self.cols];
            let first = line.iter().position(|&f| f & CONSTANT == 0);
            let last = line.iter().rposition(|&f| f & CONSTANT == 0);
            if let (Some(c0), Some(c1)) = (first, last) {
                let (x, y) = (c0 as u32 * MB, row as u32 * MB);
                let w = ((c1 as u32 + 1) * MB).min(width).saturating_sub(x);
                let h = ((row as u32 + 1) * MB).min(height).saturating_sub(y);
                if w > 0 && h > 0 {
                    px.push(Rect { x, y, w, h });
                }
            }
        }
        if px.len() > 4 * MAX_CHANGED_RECTS {
            // Bands of rows, each the bounding box of its rows' spans.
            let per = px.len().div_ceil(MAX_CHANGED_RECTS);
            px = px
                .chunks(per)
                .map(|c| c.iter().copied().reduce(union).expect("chunks are not empty"))
                .collect();
        }
        coalesce(&px, width, height, MAX_CHANGED_RECTS)
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

fn union(a: Rect, b: Rect) -> Rect {
    let (x0, y0) = (a.x.min(b.x), a.y.min(b.y));
    let (x1, y1) = ((a.x + a.w).max(b.x + b.w), (a.y + a.h).max(b.y + b.h));
    Rect { x: x0, y: y0, w: x1 - x0, h: y1 - y0 }
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

    /// Marks the macroblocks at `changed` (column, row) as not constant, the rest constant.
    fn map_with(width: u32, height: u32, changed: &[(usize, usize)]) -> SkipMap {
        let mut map = SkipMap::new(width, height);
        map.mark(&[]);
        let cols = map.cols();
        for &(c, r) in changed {
            map.as_mut_bytes()[r * cols + c] = 0;
        }
        map
    }

    /// Whether every pixel of every changed macroblock (within the picture) lies in `rects`.
    fn covered(map: &SkipMap, width: u32, height: u32, rects: &[Rect]) -> bool {
        let inside =
            |x: u32, y: u32| rects.iter().any(|r| x >= r.x && x < r.x + r.w && y >= r.y && y < r.y + r.h);
        (0..map.rows).all(|row| {
            (0..map.cols).all(|col| {
                map.is_constant(col, row) || {
                    let (x0, y0) = (col as u32 * MB, row as u32 * MB);
                    (y0..(y0 + MB).min(height)).all(|y| (x0..(x0 + MB).min(width)).all(|x| inside(x, y)))
                }
            })
        })
    }

    #[test]
    fn the_changed_macroblocks_come_out_as_a_few_rectangles_on_the_grid() {
        // Nothing changed: nothing to draw.
        assert_eq!(map_with(1920, 1080, &[]).changed_rects(1920, 1080), Some(vec![]));
        // One macroblock.
        assert_eq!(
            map_with(1920, 1080, &[(3, 2)]).changed_rects(1920, 1080),
            Some(vec![rect(48, 32, 16, 16)])
        );
        // A block of 3 x 2 macroblocks is one rectangle; an L is two.
        let block = [(4, 5), (5, 5), (6, 5), (4, 6), (5, 6), (6, 6)];
        assert_eq!(map_with(1920, 1080, &block).changed_rects(1920, 1080), Some(vec![rect(64, 80, 48, 32)]));
        let l = [(0, 0), (0, 1), (1, 1)];
        let rects = map_with(1920, 1080, &l).changed_rects(1920, 1080).unwrap();
        assert_eq!(rects, [rect(0, 0, 16, 16), rect(0, 16, 32, 16)]);
        // The bottom row of a 1080-line picture is 8 lines high; the right column of a
        // 1000-pixel-wide one 8 pixels wide.
        assert_eq!(
            map_with(1920, 1080, &[(119, 67)]).changed_rects(1920, 1080),
            Some(vec![rect(1904, 1072, 16, 8)])
        );
        assert_eq!(map_with(1000, 64, &[(62, 0)]).changed_rects(1000, 64), Some(vec![rect(992, 0, 8, 16)]));
    }

    #[test]
    fn scattered_changes_are_merged_but_stay_covered_and_a_mostly_changed_frame_is_whole() {
        // Every seventh macroblock of every third row: hundreds of runs.
        let scattered: Vec<(usize, usize)> =
            (0..68).step_by(3).flat_map(|r| (0..120).step_by(7).map(move |c| (c, r))).collect();
        let map = map_with(1920, 1080, &scattered);
        let rects = map.changed_rects(1920, 1080).unwrap();
        assert!(!rects.is_empty() && rects.len() <= MAX_CHANGED_RECTS, "{} rectangles", rects.len());
        assert!(covered(&map, 1920, 1080, &rects));
        // A few distant changes (a clock, a caret, a status line) keep rectangles of their own.
        let few = [(0, 0), (1, 0), (60, 30), (119, 67), (10, 50), (11, 50)];
        let map = map_with(1920, 1080, &few);
        let rects = map.changed_rects(1920, 1080).unwrap();
        assert!(covered(&map, 1920, 1080, &rects));
        let area: u32 = rects.iter().map(|r| r.w * r.h).sum();
        assert!(area <= 6 * 256, "{rects:?}");
        // More than half the picture: the whole picture.
        let most: Vec<(usize, usize)> = (0..40).flat_map(|r| (0..120).map(move |c| (c, r))).collect();
        assert_eq!(map_with(1920, 1080, &most).changed_rects(1920, 1080), None);
    }
}
