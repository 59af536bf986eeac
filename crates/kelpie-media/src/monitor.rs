//! Monitors of one X screen: with `--monitors 2` the screen is two monitors side by side,
//! each its own stream (see [`crate::capture::Capturer::open_monitor`]) and its own browser
//! window. Monitor `index` of `count` is the `index`-th of `count` equal, even-width columns
//! of the screen, so its place follows every resize of the screen without asking RandR.

use crate::capture::Rect;

/// Most monitors a display is split into.
pub const MAX_MONITORS: u32 = 2;

/// One monitor of a screen split into `count` side by side (`index` from 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Monitor {
    /// Which one, 0 at the left.
    pub index: u32,
    /// How many the screen is split into (at least 1).
    pub count: u32,
}

impl Monitor {
    /// The whole screen.
    pub const WHOLE: Self = Self { index: 0, count: 1 };

    /// Monitor `index` (from 0) of `count`; `None` when there is no such monitor.
    pub fn new(index: u32, count: u32) -> Option<Self> {
        ((1..=MAX_MONITORS).contains(&count) && index < count).then_some(Self { index, count })
    }

    /// Whether this is the whole screen.
    pub fn is_whole(self) -> bool {
        self.count <= 1
    }

    /// Where the monitor lies on a `width` x `height` screen: an even-width column (the last
    /// pixels of an odd remainder belong to no monitor).
    pub fn rect(self, width: u32, height: u32) -> Rect {
        if self.is_whole() {
            return Rect { x: 0, y: 0, w: width, h: height };
        }
        let w = (width / self.count) & !1;
        Rect { x: w * self.index, y: 0, w, h: height }
    }

    /// A pointer position on this monitor (0,0 its top left corner) as a position on the
    /// `width` x `height` screen, kept on the monitor.
    pub fn to_screen(self, x: i32, y: i32, width: u32, height: u32) -> (i32, i32) {
        let r = self.rect(width, height);
        let clamp = |v: i32, len: u32| v.clamp(0, (len as i32 - 1).max(0));
        (r.x as i32 + clamp(x, r.w), r.y as i32 + clamp(y, r.h))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_monitors_split_the_screen_into_even_columns() {
        let left = Monitor::new(0, 2).unwrap();
        let right = Monitor::new(1, 2).unwrap();
        assert_eq!(left.rect(2560, 720), Rect { x: 0, y: 0, w: 1280, h: 720 });
        assert_eq!(right.rect(2560, 720), Rect { x: 1280, y: 0, w: 1280, h: 720 });
        // An odd half is rounded down to even (chroma is subsampled 2x2).
        assert_eq!(right.rect(2602, 720), Rect { x: 1300, y: 0, w: 1300, h: 720 });
        assert_eq!(Monitor::WHOLE.rect(1921, 1080), Rect { x: 0, y: 0, w: 1921, h: 1080 });
        assert_eq!(Monitor::new(2, 2), None);
        assert_eq!(Monitor::new(0, 3), None);
        assert_eq!(Monitor::new(0, 0), None);
    }

    #[test]
    fn pointer_positions_are_offset_by_the_monitors_origin_and_kept_on_it() {
        let right = Monitor::new(1, 2).unwrap();
        assert_eq!(right.to_screen(0, 0, 2560, 720), (1280, 0));
        assert_eq!(right.to_screen(100, 50, 2560, 720), (1380, 50));
        // Past its edges: kept on the monitor, never on the neighbour.
        assert_eq!(right.to_screen(-5, 800, 2560, 720), (1280, 719));
        assert_eq!(right.to_screen(5000, 10, 2560, 720), (2559, 10));
        let left = Monitor::new(0, 2).unwrap();
        assert_eq!(left.to_screen(1300, 10, 2560, 720), (1279, 10));
        assert_eq!(Monitor::WHOLE.to_screen(100, 50, 2560, 720), (100, 50));
    }
}
