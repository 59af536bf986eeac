//! Motion in delta frames: the vectors of a picture's macroblocks, the decoder's prediction
//! of each (H.264 8.4.1.3 for a 16x16 partition, 8.4.1.1 for a skip), and a small search for
//! content that moved (a scrolled line, a shifted stripe) among a few whole-pixel candidates.
//!
//! Vectors are in quarter pixels, as in the stream, and always even whole pixels, so that
//! chroma (at half resolution) moves by whole pixels too: no interpolation anywhere.

use super::{Picture, Reference};

/// A motion vector in quarter pixels.
pub(super) type Mv = (i32, i32);

/// Every macroblock's vector in the picture being written; all refer to the one reference.
#[derive(Debug)]
pub(super) struct Field {
    cols: usize,
    mvs: Vec<Mv>,
}

impl Field {
    pub(super) fn new(cols: usize, rows: usize) -> Self {
        Self { cols, mvs: vec![(0, 0); cols * rows] }
    }

    /// Zeroes one row of macroblocks.
    pub(super) fn clear_row(&mut self, row: usize) {
        self.mvs[row * self.cols..(row + 1) * self.cols].fill((0, 0));
    }

    pub(super) fn set(&mut self, col: usize, row: usize, mv: Mv) {
        self.mvs[row * self.cols + col] = mv;
    }

    fn at(&self, col: usize, row: usize) -> Mv {
        self.mvs[row * self.cols + col]
    }

    /// The left (A), upper (B) and upper-right (C, or upper-left when C is outside)
    /// neighbours' vectors, `None` where unavailable (only macroblocks before this one in
    /// the picture's one slice are).
    fn neighbours(&self, col: usize, row: usize) -> [Option<Mv>; 3] {
        let a = (col > 0).then(|| self.at(col - 1, row));
        let b = (row > 0).then(|| self.at(col, row - 1));
        let c = if row > 0 && col + 1 < self.cols {
            Some(self.at(col + 1, row - 1))
        } else if row > 0 && col > 0 {
            Some(self.at(col - 1, row - 1))
        } else {
            None
        };
        [a, b, c]
    }

    /// The predicted vector of a 16x16 partition at (col, row).
    pub(super) fn predict(&self, col: usize, row: usize) -> Mv {
        let [a, mut b, mut c] = self.neighbours(col, row);
        if b.is_none() && c.is_none() && a.is_some() {
            (b, c) = (a, a);
        }
        // Each available neighbour refers to the same picture as this partition; when only
        // one does, its vector is the prediction, else the median (unavailable ones count as
        // zero vectors).
        let available = [a, b, c].iter().filter(|n| n.is_some()).count();
        if available == 1 {
            return a.or(b).or(c).unwrap_or((0, 0));
        }
        let [a, b, c] = [a, b, c].map(|n| n.unwrap_or((0, 0)));
        (median(a.0, b.0, c.0), median(a.1, b.1, c.1))
    }

    /// The vector a skipped macroblock at (col, row) moves by.
    pub(super) fn skip(&self, col: usize, row: usize) -> Mv {
        let [a, b, _] = self.neighbours(col, row);
        match (a, b) {
            (Some(a), Some(b)) if a != (0, 0) && b != (0, 0) => self.predict(col, row),
            _ => (0, 0),
        }
    }
}

fn median(a: i32, b: i32, c: i32) -> i32 {
    a.max(b).min(a.min(b).max(c))
}

/// Whole-pixel displacements tried for a changed macroblock besides the predicted ones:
/// small shifts either way, and line-sized vertical ones (scrolling text).
const CANDIDATES: [(i32, i32); 14] = [
    (2, 0),
    (-2, 0),
    (4, 0),
    (-4, 0),
    (8, 0),
    (-8, 0),
    (0, 2),
    (0, -2),
    (0, 4),
    (0, -4),
    (0, 8),
    (0, -8),
    (0, 16),
    (0, -16),
];

/// What a nonzero vector must save in luma SAD to be chosen over a smaller one (the bits of
/// coding it).
const VECTOR_COST: u32 = 24;

/// Chooses the vector for the macroblock at (col, row): the one whose reference block is
/// closest to the picture (sum of absolute luma differences), among zero, the predictions
/// `predicted`, and [`CANDIDATES`]; only displacements that keep the block inside the
/// reference's whole macroblocks count. Macroblocks partly outside the picture keep zero.
pub(super) fn search(
    picture: &Picture<'_>,
    reference: &Reference<'_>,
    col: usize,
    row: usize,
    predicted: [Mv; 2],
) -> Mv {
    let (x0, y0) = (col * 16, row * 16);
    if x0 + 16 > picture.width || y0 + 16 > picture.height {
        return (0, 0);
    }
    let (padded_w, padded_h) = (reference.width, reference.height);
    let sad = |dx: i32, dy: i32, limit: u32| -> Option<u32> {
        let (rx, ry) = (x0 as i32 + dx, y0 as i32 + dy);
        if rx < 0 || ry < 0 || rx as usize + 16 > padded_w || ry as usize + 16 > padded_h {
            return None;
        }
        let mut total = 0u32;
        for j in 0..16 {
            let c = &picture.i420[(y0 + j) * picture.width + x0..][..16];
            let r = &reference.y[(ry as usize + j) * reference.y_stride + rx as usize..][..16];
            total += c.iter().zip(r).map(|(&a, &b)| u32::from(a.abs_diff(b))).sum::<u32>();
            if total >= limit {
                return None;
            }
        }
        Some(total)
    };
    let mut best = ((0, 0), sad(0, 0, u32::MAX).unwrap_or(u32::MAX));
    if best.1 == 0 {
        return (0, 0);
    }
    let predicted = predicted.map(|(x, y)| (x / 4, y / 4));
    for (dx, dy) in predicted.into_iter().chain(CANDIDATES) {
        if (dx, dy) == (0, 0) || dx % 2 != 0 || dy % 2 != 0 {
            continue;
        }
        let limit = best.1.saturating_sub(VECTOR_COST);
        if let Some(s) = sad(dx, dy, limit) {
            best = ((dx, dy), s);
            if s == 0 {
                break;
            }
        }
    }
    (best.0.0 * 4, best.0.1 * 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predictions_follow_the_standard_rules() {
        let mut f = Field::new(3, 2);
        // The first macroblock has no neighbours: zero.
        assert_eq!(f.predict(0, 0), (0, 0));
        // In the first row only the left neighbour is available: its vector.
        f.set(0, 0, (8, -4));
        assert_eq!(f.predict(1, 0), (8, -4));
        // A skip in the first row never moves (no upper neighbour).
        assert_eq!(f.skip(1, 0), (0, 0));
        // Row 1, column 0: A unavailable (zero), B = (8, -4), C = (1, 0)'s vector.
        f.set(1, 0, (16, 0));
        assert_eq!(f.predict(0, 1), (8, 0));
        // Skips move only when both left and upper neighbours moved.
        f.set(0, 1, (4, 4));
        f.set(2, 0, (4, 8));
        // Column 1 row 1: A = (4, 4), B = (16, 0), C = (4, 8): median (4, 4).
        assert_eq!(f.predict(1, 1), (4, 4));
        assert_eq!(f.skip(1, 1), (4, 4));
        f.set(0, 1, (0, 0));
        assert_eq!(f.skip(1, 1), (0, 0), "the left neighbour stood still");
        // The last column has no upper-right neighbour: the upper-left one stands in.
        f.set(1, 1, (12, 12));
        // A = (12, 12), B = (4, 8), D = (16, 0): median (12, 8).
        assert_eq!(f.predict(2, 1), (12, 8));
    }

    #[test]
    fn the_search_finds_a_shifted_block() {
        let (w, h) = (64usize, 64usize);
        let pattern = |x: usize, y: usize| ((x * 7 + y * 13) % 251) as u8;
        // The picture is the reference moved 4 pixels left.
        let reference_y: Vec<u8> = (0..w * h).map(|i| pattern(i % w, i / w)).collect();
        let mut i420: Vec<u8> = (0..w * h).map(|i| pattern(i % w + 4, i / w)).collect();
        i420.extend(std::iter::repeat_n(128, w * h / 2));
        let uv = vec![128u8; w * h / 2];
        let reference = Reference {
            y: &reference_y,
            y_stride: w,
            uv: &uv,
            uv_stride: w,
            nv12: true,
            v_offset: 0,
            width: w,
            height: h,
        };
        let picture = Picture { i420: &i420, width: w, height: h };
        assert_eq!(search(&picture, &reference, 1, 1, [(0, 0); 2]), (16, 0));
        // Where the moved block would leave the reference it is not taken, however well it
        // would match.
        assert_ne!(search(&picture, &reference, 3, 1, [(16, 0); 2]), (16, 0));
    }
}
