//! Rate control for an encoder run at a constant QP chosen per frame.
//!
//! x264 in its own bitrate modes analyses every frame at half resolution first, to guess
//! its cost; on 1080p desktop content that look-ahead is a fifth of x264's time. Kelpie
//! already knows what changed on the screen (the damage), so it guesses the cost itself
//! and runs x264 in constant-QP mode, which skips that analysis.
//!
//! The model: a frame costs about `c · 2^(-qp/6)` bits, where the complexity `c` scales
//! with the pixels that changed. Complexity per changed pixel is learnt separately for four
//! kinds of frame whose costs differ by orders of magnitude: keyframes, the first change
//! after a still screen (new content, coded much like a keyframe), continuing motion
//! (mostly predicted from the frame before) and frames of an unchanged screen (the
//! refinement frames, which only sharpen it). Each frame's QP is the one whose predicted
//! cost fits its share of the bitrate, and a leaky bucket of one and a half frame-times
//! (the VBV the GStreamer encoders are given) takes back what a frame overspent from the
//! next ones.
//!
//! A frame that does not fit its share even at QP 51, the highest of H.264 proper, is coded
//! at QP 51 all the same, and the next capture waits for the bucket to drain
//! ([`RateControl::hold`]): the frame rate falls rather than the picture. x264's emergency
//! QPs above 51 zero coefficients wholesale; on detailed content (noise, fine text) they do
//! not degrade the picture gradually but stop updating it (1080p noise: 640 kbit a frame at
//! QP 51, 12 kbit at QP 52, where the picture no longer changes). They are used only where
//! a frame at QP 51 would take more than [`MAX_FRAME_TIME`] of the bitrate.
//!
//! Nor does a lower QP always cost more. libx264's fastest mode probes a macroblock for a
//! skip only next to one already skipped, and from QP 20 up the first of a frame rarely is:
//! rigid motion (scrolling, a dragged window, `kelpie-probe bars`) costs 2.4 kbit a 1080p
//! frame at QP 16 and 56 kbit at any QP from 20 to 51. So the QPs remembered to fit are
//! used before the model's, and a motion that fits no QP tries the lowest one now and then
//! ([`TRIAL_AFTER`]): it fits at once when that is the content's cheap side.

use std::time::{Duration, Instant};

mod memory;
mod trial;

use memory::{CostMemory, bits_at};
pub use trial::TRIAL_AFTER;
use trial::{TRIAL_FRAMES, Trials};

/// Lowest QP used: below it x264 spends bits on noise no one sees.
pub const QP_MIN: u8 = 16;
/// Highest QP: above H.264's 51 lies x264's emergency range, where it zeroes coefficients
/// to hold the bitrate on content that no QP can (noise).
pub const QP_MAX: u8 = 69;
/// The highest QP of H.264 proper: the rate control goes above it only when even at this
/// QP a frame would take more than [`MAX_FRAME_TIME`] of the bitrate.
pub const QP_SPEC_MAX: u8 = 51;
/// The most of the bitrate's time a frame too costly for its share may take (at QP
/// [`QP_SPEC_MAX`], or a cheaper one, the frame rate falling to what fits: a frame a second
/// at the least) before the rate control turns to x264's emergency QPs. Longer, each such
/// frame would reach the viewer that much later; but in the emergency range noise costs
/// nothing and shows nothing (the picture stands still), and a stream that sends nothing
/// leaves its path's estimate nothing to grow on.
pub const MAX_FRAME_TIME: Duration = Duration::from_secs(1);
/// Weight of the newest frame in a complexity estimate when it cost more than expected:
/// learnt fast, so the frames after an underestimate fit again.
const LEARN_UP: f64 = 0.7;
/// ... and when it cost less: learnt slowly, as a frame whose detail all fell under the
/// quantiser costs next to nothing and says little about the next one.
const LEARN_DOWN: f64 = 0.2;
/// The QP falls by at most this much from one frame to the next (rises are not limited):
/// a sudden fall overshoots where the bits-per-QP model breaks down. Content whose detail
/// all falls under the quantiser above some QP (noise) costs next to nothing there and a
/// lot just below it.
const MAX_QP_FALL: u8 = 4;
/// A QP remembered to cost more than this many times a frame's target is not used again
/// while remembered.
const REMEMBERED_OVERSHOOT: f64 = 1.5;
/// A frame is never given less than this share of a frame's bits, however full the bucket.
const MIN_SHARE: f64 = 1.0 / 8.0;
/// A frame that came out costing more than this much of the bitrate's time, and twice its
/// plan, is made again, as a keyframe at a QP aimed at [`REDO_AIM`]: sent as it was, it
/// would hold every frame after it back for as long (and on a slow path take that long to
/// arrive). Only a frame far off its plan gets there: the first of new content (noise where
/// desktop content was guessed).
const REDO_AFTER: Duration = Duration::from_millis(400);
const REDO_AIM: Duration = Duration::from_millis(100);
/// ... and a frame of a trial of [`QP_MIN`] that came out costing more than this much.
const TRIAL_REDO_AFTER: Duration = Duration::from_secs(1);
/// A higher QP seen to cost more than this many times a lower one: the content is on the
/// side of libx264's skip heuristics where the QP buys nothing (see the module's notes).
const INVERTED: f64 = 2.0;
/// Only motion whose frames cost at most this many bits per macroblock at the QP it has
/// (libx264 coded every macroblock, with nothing in it: 7 bits each for bars from QP 20 up;
/// noise costs 80) is worth a trial: on other content QP 16 costs many times more.
const TRIAL_MB_BITS: f64 = 16.0;
/// A frame of motion planned at this QP or more is short of bits: the stream would use a
/// higher bitrate (see [`RateControl::limited`]).
pub const LIMITED_QP: u8 = 36;
/// ... for this long after such a frame.
const LIMITED_FOR: Duration = Duration::from_secs(1);
/// Complexity per pixel assumed for a keyframe before one was seen (1080p desktop content
/// at QP 26 costs about 300 kbit).
const KEY_GUESS: f64 = 3.0;

/// The kinds of frame whose complexity is learnt apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// A keyframe.
    Key,
    /// The first change after a still screen.
    Fresh,
    /// A change while the screen is moving.
    Moving,
    /// Nothing changed: the same picture again, sharper.
    Still,
}

impl FrameKind {
    fn index(self) -> usize {
        self as usize
    }
}

/// What [`RateControl::plan`] decided for one frame; hand it back to
/// [`RateControl::encoded`] with the frame's size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FramePlan {
    /// QP to encode the frame at.
    pub qp: u8,
    /// The frame's kind.
    pub kind: FrameKind,
    /// Pixels the complexity estimate is per (changed pixels, or the whole frame).
    pixels: f64,
    /// Bits the frame was meant to cost.
    pub target_bits: f64,
    /// When it was planned.
    at: Instant,
    /// Which frame of a trial of [`QP_MIN`] it is (from 1), if it is one.
    trial: Option<u8>,
    /// The QP the frame would have had but for the trial.
    untried: u8,
}

/// Per-frame QP choice for a target bitrate.
#[derive(Debug)]
pub struct RateControl {
    bitrate: f64,
    fps: f64,
    /// Bits in the leaky bucket, drained at the bitrate.
    level: f64,
    drained_at: Option<Instant>,
    /// Complexity per pixel, per kind.
    per_pixel: [Option<f64>; 4],
    /// What frames cost lately at each QP, per kind.
    memory: CostMemory,
    last: Option<FrameKind>,
    last_qp: Option<u8>,
    trials: Trials,
    /// When a frame was last planned at a QP of [`LIMITED_QP`] or more, or fitted no QP.
    limited_at: Option<Instant>,
}

impl FramePlan {
    /// Whether the frame starts a trial of [`QP_MIN`]: an encoder whose QPs do not reach
    /// that low should switch (the trial's first frame costs about a keyframe anyway).
    pub fn starts_trial(&self) -> bool {
        self.trial == Some(1)
    }
}

impl RateControl {
    /// Rate control for `bitrate_kbps` at up to `fps` frames a second.
    pub fn new(bitrate_kbps: u32, fps: u32) -> Self {
        Self {
            bitrate: f64::from(bitrate_kbps.max(1)) * 1000.0,
            fps: f64::from(fps.max(1)),
            level: 0.0,
            drained_at: None,
            per_pixel: [None; 4],
            memory: CostMemory::default(),
            last: None,
            last_qp: None,
            trials: Trials::default(),
            limited_at: None,
        }
    }

    /// Changes the target bitrate; the next frame follows it.
    pub fn set_bitrate(&mut self, kbps: u32) {
        self.bitrate = f64::from(kbps.max(1)) * 1000.0;
    }

    /// Changes the frame rate the bitrate is shared among.
    pub fn set_fps(&mut self, fps: u32) {
        self.fps = f64::from(fps.max(1));
    }

    /// Bits a frame gets at the frame rate.
    fn frame_bits(&self) -> f64 {
        self.bitrate / self.fps
    }

    /// Size of the bucket: one and a half frame-times, at least 10 ms.
    fn capacity(&self) -> f64 {
        self.bitrate * (1.5 / self.fps).max(0.010)
    }

    /// Chooses the QP of a frame captured at `now` in which `changed` of `total` pixels
    /// changed since the frame before.
    pub fn plan(&mut self, now: Instant, keyframe: bool, changed: u64, total: u64) -> FramePlan {
        if let Some(t) = self.drained_at {
            let dt = now.saturating_duration_since(t).as_secs_f64();
            self.level = (self.level - self.bitrate * dt).max(0.0);
        }
        self.drained_at = Some(now);
        let total = total.max(1) as f64;
        let kind = if keyframe {
            FrameKind::Key
        } else if changed == 0 {
            FrameKind::Still
        } else if matches!(self.last, None | Some(FrameKind::Still)) {
            FrameKind::Fresh
        } else {
            FrameKind::Moving
        };
        let pixels = match kind {
            FrameKind::Key | FrameKind::Still => total,
            FrameKind::Fresh | FrameKind::Moving => (changed as f64).min(total),
        };
        let target_bits =
            (self.capacity() - self.level).min(self.frame_bits()).max(self.frame_bits() * MIN_SHARE);
        let complexity = self.per_pixel(kind) * pixels;
        let qp = (6.0 * (complexity / target_bits).log2()).ceil();
        let mut qp = qp.clamp(f64::from(QP_MIN), f64::from(QP_MAX)) as u8;
        if let (Some(last), false) = (self.last_qp, keyframe) {
            // While the bucket is more than half full, an overspent frame is still being
            // paid back: the QP does not fall at all.
            let fall = if self.level > self.capacity() / 2.0 { 0 } else { MAX_QP_FALL };
            qp = qp.max(last.saturating_sub(fall));
        }
        // The model is smooth; real costs are not. Content whose detail all falls under the
        // quantiser above some QP costs next to nothing there and many times more just
        // below. A QP recently seen to cost far more than the target is not used, nor any
        // QP at which that cost, taken down at the model's 6 QPs per halving, still would
        // (so the QPs just above the one that overshot are not tried one by one).
        let limit = target_bits * REMEMBERED_OVERSHOOT;
        if let Some(q) = self.memory.overshoots_up_to(kind, pixels, limit, now).filter(|&q| q >= qp) {
            qp = q + 1;
        }
        // A lower QP seen lately to fit is better whatever the model says.
        if let Some(q) = self.memory.lowest_fitting(kind, pixels, target_bits, qp, now) {
            qp = q;
        }
        let share = target_bits;
        let mut target_bits = target_bits;
        let cost = |q: u8| self.memory.bits(kind, q, pixels, now);
        // The cheapest QP of H.264 seen lately, and the QPs above it seen to cost far more:
        // where there are some, the model's guesses above it are worth nothing.
        let cheapest = self.memory.cheapest(kind, pixels, now);
        let costlier = cheapest
            .map_or_else(Vec::new, |(q, b)| self.memory.costlier_above(kind, q, b, INVERTED, pixels, now));
        let inverted = !costlier.is_empty();
        let untested_above = |(q1, b1): (u8, f64)| qp > q1 && cost(qp).is_none_or(|b| b > b1);
        let unfit = qp > QP_SPEC_MAX || (inverted && cheapest.is_some_and(untested_above));
        if unfit && kind != FrameKind::Still {
            // No QP of H.264 fits the frame into its share: it is coded at the one expected
            // to cost least (the highest, unless a lower one was seen to cost less) and the
            // captures after it wait for the bucket (the frame rate falls), unless that
            // would take longer than MAX_FRAME_TIME. A frame of an unchanged screen only
            // sharpens it and is not worth the wait.
            let at_max = (QP_SPEC_MAX, self.expected_bits(kind, pixels, QP_SPEC_MAX, now));
            let (q, bits) = match cheapest {
                Some(c) if inverted || c.1 <= at_max.1 => c,
                _ => at_max,
            };
            if bits <= self.bitrate * MAX_FRAME_TIME.as_secs_f64() {
                qp = q;
                target_bits = bits;
            } else if cost(qp).is_some_and(|b| b > share) && cost(QP_SPEC_MAX).is_none() {
                // The emergency QPs do not make the frames fit either (x264 codes every
                // macroblock, empty, whatever the QP): what QP 51 costs is worth learning
                // rather than guessing from the model.
                qp = QP_SPEC_MAX;
                target_bits = bits;
            }
        }
        // What libx264's missed skips look like: every macroblock coded, each with next to
        // nothing in it (at a QP of H.264: above it x264 empties every macroblock).
        let thin = cost(qp.min(QP_SPEC_MAX)).is_some_and(|b| b * 256.0 / pixels.max(256.0) <= TRIAL_MB_BITS);
        if cheapest.is_some_and(|c| c.0 == qp) {
            // The costlier QPs above the cheap one stay remembered while it is in use and
            // stays cheap: going back to them would cost as much as it did.
            self.memory.renew(kind, &costlier, now);
        }
        if kind == FrameKind::Moving && (unfit || qp >= LIMITED_QP) {
            self.limited_at = Some(now);
        }
        let trial = self.trials.next(now, kind, unfit && thin && qp >= QP_SPEC_MAX);
        let untried = qp;
        if trial.is_some() {
            qp = QP_MIN;
            target_bits = share;
        }
        FramePlan { qp, kind, pixels, target_bits, at: now, trial, untried }
    }

    /// Bits a frame of `kind` over `pixels` is expected to cost at `qp`: what that QP was
    /// seen to cost lately, or else the model's guess.
    fn expected_bits(&self, kind: FrameKind, pixels: f64, qp: u8, now: Instant) -> f64 {
        let per_pixel = self.memory.per_pixel(kind, qp, now).unwrap_or_else(|| self.per_pixel(kind));
        bits_at(per_pixel, pixels, qp)
    }

    /// The complexity per pixel expected of a frame of `kind`: what was learnt, or, before
    /// anything was, a cautious guess from a costlier kind.
    fn per_pixel(&self, kind: FrameKind) -> f64 {
        let learnt = |k: FrameKind| self.per_pixel[k.index()];
        let key = learnt(FrameKind::Key).unwrap_or(KEY_GUESS);
        match kind {
            FrameKind::Key => key,
            FrameKind::Fresh => learnt(FrameKind::Fresh).unwrap_or(key),
            FrameKind::Moving => learnt(FrameKind::Moving).or(learnt(FrameKind::Fresh)).unwrap_or(key),
            FrameKind::Still => learnt(FrameKind::Still).unwrap_or(key / 16.0),
        }
    }

    /// Learns from a frame planned as `plan` that came out `bytes` long.
    pub fn encoded(&mut self, plan: FramePlan, bytes: usize) {
        let bits = bytes as f64 * 8.0;
        self.level += bits;
        self.last = Some(plan.kind);
        self.last_qp = Some(plan.qp);
        self.learn(plan, bytes);
        match plan.trial {
            // The last frame of a trial tells whether the QP fits the motion: if so, the
            // frames after it find it remembered to fit.
            Some(n) if n >= TRIAL_FRAMES => {
                if bits <= plan.target_bits {
                    self.trials.succeeded();
                } else {
                    self.trials.failed();
                }
            }
            // The first costs what catching up with a worse reference costs (one far over
            // the bitrate is made again, see `redo`).
            _ => {}
        }
    }

    /// Whether a frame planned as `plan` that came out `bytes` long is too far over the
    /// bitrate to send (see [`REDO_AFTER`]): then the plan of the keyframe to make of the same
    /// picture instead. The frame is learnt from, its bits are not counted (it is not sent).
    /// `total` is the picture's size in pixels.
    pub fn redo(&mut self, plan: FramePlan, bytes: usize, total: u64) -> Option<FramePlan> {
        let bits = bytes as f64 * 8.0;
        // The first frame of a trial costs about a keyframe: it is let through up to a
        // second of the bitrate.
        let after = if plan.trial.is_some() { TRIAL_REDO_AFTER } else { REDO_AFTER };
        if bits <= self.bitrate * after.as_secs_f64() || bits <= plan.target_bits * 2.0 || plan.qp >= QP_MAX {
            return None;
        }
        let aim = self.bitrate * REDO_AIM.as_secs_f64();
        self.learn(plan, bytes);
        let qp = if plan.trial.is_some() {
            // A trial that failed at once: the QP it would have had.
            self.trials.failed();
            plan.untried
        } else {
            // At the model's 6 QPs per halving: real content is flatter than that over the
            // top QPs (noise costs the same from QP 48 to 51), so the aim is low.
            let steps = (6.0 * (bits / aim).log2()).ceil().clamp(1.0, f64::from(QP_MAX));
            (f64::from(plan.qp) + steps).min(f64::from(QP_MAX)) as u8
        };
        let pixels = total.max(1) as f64;
        Some(FramePlan {
            qp,
            kind: FrameKind::Key,
            pixels,
            target_bits: aim,
            at: plan.at,
            trial: None,
            untried: qp,
        })
    }

    fn learn(&mut self, plan: FramePlan, bytes: usize) {
        let bits = bytes as f64 * 8.0;
        if plan.pixels <= 0.0 {
            return;
        }
        // Keep estimates above zero so a frame of nothing does not make the next one free.
        let seen = (bits.max(8.0) * 2f64.powf(f64::from(plan.qp) / 6.0)) / plan.pixels;
        self.memory.note(plan.kind, plan.qp, seen, plan.at);
        let slot = &mut self.per_pixel[plan.kind.index()];
        *slot = Some(match *slot {
            // Averaged in the log domain: costs spread over orders of magnitude.
            Some(old) => {
                let w = if seen > old { LEARN_UP } else { LEARN_DOWN };
                (old.ln() * (1.0 - w) + seen.ln() * w).exp()
            }
            None => seen,
        });
    }

    /// How long the next frame should wait at `now` for the bucket to drain to its size:
    /// zero, unless frames overspent it that no QP could fit (noise at the highest QP, or a
    /// keyframe far beyond a low bitrate). Waiting lowers the frame rate instead of sending
    /// more than the bitrate: when even the lowest quality does not fit, fewer frames do.
    pub fn hold(&self, now: Instant) -> Duration {
        let drained = self.drained_at.map_or(0.0, |t| now.saturating_duration_since(t).as_secs_f64());
        let level = self.level - self.bitrate * drained;
        let over = level - self.capacity();
        if over <= 0.0 { Duration::ZERO } else { Duration::from_secs_f64(over / self.bitrate) }
    }

    /// Whether the bitrate held the picture back lately (at `now`): motion was coded at a QP
    /// of [`LIMITED_QP`] or more, or fitted no QP, within [`LIMITED_FOR`]. A path that carries
    /// more is worth looking for (see `congestion::webrtc_desired_bps`).
    pub fn limited(&self, now: Instant) -> bool {
        self.limited_at.is_some_and(|t| now.saturating_duration_since(t) < LIMITED_FOR)
    }

    /// The target bitrate, in bit/s.
    pub fn bitrate(&self) -> f64 {
        self.bitrate
    }

    /// Bits in the bucket now (for tests and metrics).
    pub fn level_bits(&self) -> f64 {
        self.level
    }
}

#[cfg(test)]
#[path = "ratecontrol/tests.rs"]
mod tests;
