//! Frames handed to the encoder without a copy.
//!
//! The encoder takes ownership of each raw frame it is given and may hold some for a while
//! (x264 gives each back as soon as it is encoded; other encoders may keep a few). Instead of
//! converting into one persistent frame and copying it into every buffer pushed, the capture
//! converts into one of a few pooled frames and gives that frame away; it comes back when the
//! encoder drops it. Each pooled frame remembers what changed on screen since it was last
//! written ("stale" rectangles), so reusing it converts only that plus the new damage, never
//! the whole screen.

use std::sync::{Arc, Mutex};

use crate::capture::{Rect, coalesce};
use crate::convert::I420Frame;

/// Pooled frames at most; more in flight than this means the encoder is far behind, and a
/// frame outside the pool (converted in full, then freed) is used.
const MAX_FRAMES: usize = 6;
/// Stale rectangles kept per frame before they are merged.
const MAX_STALE: usize = 16;

type Returns = Arc<Mutex<Vec<(usize, I420Frame)>>>;

struct Slot {
    /// The frame, while it is in the pool (not with the encoder).
    frame: Option<I420Frame>,
    /// What changed on screen since this frame was last written.
    stale: Vec<Rect>,
}

/// A few I420 frames of one size, each with the damage it has missed.
pub struct FramePool {
    width: u32,
    height: u32,
    slots: Vec<Slot>,
    returns: Returns,
}

/// A frame taken from the pool, to be brought up to date and then given to the encoder.
pub struct Checkout {
    slot: usize,
    /// The frame; convert `todo` into it.
    pub frame: I420Frame,
    /// Even-aligned rectangles of the screen this frame must be refreshed with.
    pub todo: Vec<Rect>,
}

/// A frame given away; it returns to its pool when dropped.
pub struct PooledFrame {
    slot: usize,
    frame: Option<I420Frame>,
    returns: Returns,
}

impl AsRef<[u8]> for PooledFrame {
    fn as_ref(&self) -> &[u8] {
        self.frame.as_ref().expect("present until dropped").as_bytes()
    }
}

impl AsMut<[u8]> for PooledFrame {
    fn as_mut(&mut self) -> &mut [u8] {
        self.frame.as_mut().expect("present until dropped").as_bytes_mut()
    }
}

impl Drop for PooledFrame {
    fn drop(&mut self) {
        if let (Some(f), Ok(mut r)) = (self.frame.take(), self.returns.lock()) {
            r.push((self.slot, f));
        }
    }
}

impl FramePool {
    /// An empty pool of `width` x `height` frames.
    pub fn new(width: u32, height: u32) -> Self {
        Self { width, height, slots: Vec::new(), returns: Arc::default() }
    }

    fn full(&self) -> Vec<Rect> {
        vec![Rect { x: 0, y: 0, w: self.width, h: self.height }]
    }

    /// Takes a frame to carry a capture in which `changed` (screen rectangles) changed.
    /// Every other frame of the pool records `changed` as stale.
    pub fn checkout(&mut self, changed: &[Rect]) -> Checkout {
        for (slot, frame) in self.returns.lock().unwrap().drain(..) {
            if let Some(s) = self.slots.get_mut(slot) {
                s.frame = Some(frame);
            }
        }
        let changed = coalesce(changed, self.width, self.height, MAX_STALE);
        let free = self.slots.iter().position(|s| s.frame.is_some());
        let slot = match free {
            Some(i) => i,
            None if self.slots.len() < MAX_FRAMES => {
                self.slots
                    .push(Slot { frame: Some(I420Frame::new(self.width, self.height)), stale: self.full() });
                self.slots.len() - 1
            }
            None => usize::MAX,
        };
        for (i, s) in self.slots.iter_mut().enumerate() {
            if i != slot {
                s.stale.extend_from_slice(&changed);
                if s.stale.len() > MAX_STALE {
                    s.stale = coalesce(&s.stale, self.width, self.height, MAX_STALE / 2);
                }
            }
        }
        match self.slots.get_mut(slot) {
            Some(s) => {
                let mut todo = std::mem::take(&mut s.stale);
                todo.extend_from_slice(&changed);
                let todo = coalesce(&todo, self.width, self.height, 8);
                Checkout { slot, frame: s.frame.take().expect("free slot has its frame"), todo }
            }
            None => Checkout { slot, frame: I420Frame::new(self.width, self.height), todo: self.full() },
        }
    }

    /// Gives an up-to-date frame away; it comes back to the pool once dropped.
    pub fn give(&self, c: Checkout) -> PooledFrame {
        PooledFrame { slot: c.slot, frame: Some(c.frame), returns: self.returns.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BGRx screen whose pixels change where damaged; every frame given away must equal a
    /// full conversion of the screen at that moment, whatever frames the encoder still holds.
    #[test]
    fn every_frame_given_away_matches_the_screen() {
        let (w, h) = (32u32, 24u32);
        let mut screen = vec![0u8; (w * h * 4) as usize];
        let mut pool = FramePool::new(w, h);
        let mut held: Vec<PooledFrame> = Vec::new();
        let mut seed = 7u32;
        let mut rnd = |n: u32| {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (seed >> 16) % n
        };
        for step in 0..400u32 {
            // Damage 0-3 random rectangles with a new value.
            let mut changed = Vec::new();
            for _ in 0..rnd(4) {
                let (x, y) = (rnd(w), rnd(h));
                let r = Rect { x, y, w: 1 + rnd(w - x), h: 1 + rnd(h - y) };
                for yy in r.y..r.y + r.h {
                    for xx in r.x..r.x + r.w {
                        let i = ((yy * w + xx) * 4) as usize;
                        screen[i..i + 3].copy_from_slice(&[step as u8, (step * 3) as u8, (step * 7) as u8]);
                    }
                }
                changed.push(r);
            }
            let mut c = pool.checkout(&changed);
            for r in &c.todo {
                let px: Vec<u8> = (r.y..r.y + r.h)
                    .flat_map(|yy| {
                        let start = ((yy * w + r.x) * 4) as usize;
                        screen[start..start + (r.w * 4) as usize].to_vec()
                    })
                    .collect();
                c.frame.write_bgrx(*r, &px);
            }
            let given = pool.give(c);
            let mut expected = I420Frame::new(w, h);
            expected.write_bgrx(Rect { x: 0, y: 0, w, h }, &screen);
            assert_eq!(given.as_ref(), expected.as_bytes(), "step {step}");
            // The encoder holds up to four frames and releases them in any order.
            held.push(given);
            while held.len() > 1 + rnd(4) as usize {
                let i = rnd(held.len() as u32) as usize;
                held.swap_remove(i);
            }
        }
        assert!(pool.slots.len() <= MAX_FRAMES);
    }

    #[test]
    fn a_reused_frame_converts_only_what_it_missed() {
        let mut pool = FramePool::new(64, 64);
        let first = pool.checkout(&[]);
        assert_eq!(first.todo, vec![Rect { x: 0, y: 0, w: 64, h: 64 }], "a new frame is converted whole");
        drop(pool.give(first));
        let small = Rect { x: 10, y: 10, w: 4, h: 4 };
        let again = pool.checkout(&[small]);
        assert_eq!(again.todo, vec![small]);
    }
}
