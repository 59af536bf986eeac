//! Trials of [`QP_MIN`] on motion that fits no QP: libx264's fastest mode codes rigid motion
//! at a tenth of the cost under QP 20 (see the parent module's notes), which the model, whose
//! costs only grow as the QP falls, would never try.

use std::time::{Duration, Instant};

use super::FrameKind;
#[cfg(doc)]
use super::QP_MIN;

/// Motion that fits no QP (the model says lower QPs cost more still) tries [`QP_MIN`] for
/// [`TRIAL_FRAMES`] frames this long after it started not to fit, and again after twice as
/// long each time the trial fails (up to [`TRIAL_AFTER_MAX`]).
pub const TRIAL_AFTER: Duration = Duration::from_secs(1);
const TRIAL_AFTER_MAX: Duration = Duration::from_secs(32);
/// Frames a trial lasts: the first makes up for the worse reference it starts from (about a
/// keyframe's cost), the second shows what the QP costs.
pub(super) const TRIAL_FRAMES: u8 = 2;

/// When the next trial is due, and the one under way.
#[derive(Debug)]
pub(super) struct Trials {
    /// The frame of the trial planned last (0: none under way).
    frame: u8,
    /// Since when motion has fitted no QP.
    unfit_since: Option<Instant>,
    /// How long after that the next trial is due.
    after: Duration,
}

impl Default for Trials {
    fn default() -> Self {
        Self { frame: 0, unfit_since: None, after: TRIAL_AFTER }
    }
}

impl Trials {
    /// Whether a frame of `kind` planned at `now` is (the next frame of) a trial, and which
    /// (from 1); `due`: the frame fits no QP and looks like libx264's missed skips.
    pub(super) fn next(&mut self, now: Instant, kind: FrameKind, due: bool) -> Option<u8> {
        if kind != FrameKind::Moving {
            self.frame = 0;
            self.unfit_since = None;
            return None;
        }
        if self.frame > 0 && self.frame < TRIAL_FRAMES {
            self.frame += 1;
            return Some(self.frame);
        }
        self.frame = 0;
        if !due {
            self.unfit_since = None;
            return None;
        }
        let since = *self.unfit_since.get_or_insert(now);
        if now.saturating_duration_since(since) < self.after {
            return None;
        }
        self.frame = 1;
        self.unfit_since = Some(now);
        Some(1)
    }

    /// The trial's QP fitted: the next one, if ever, is due soon.
    pub(super) fn succeeded(&mut self) {
        self.after = TRIAL_AFTER;
    }

    /// The trial failed: the next one is due twice as late.
    pub(super) fn failed(&mut self) {
        self.frame = 0;
        self.after = (self.after * 2).min(TRIAL_AFTER_MAX);
    }
}
