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

use std::time::{Duration, Instant};

/// Lowest QP used: below it x264 spends bits on noise no one sees.
pub const QP_MIN: u8 = 16;
/// Highest QP: above H.264's 51 lies x264's emergency range, where it zeroes coefficients
/// to hold the bitrate on content that no QP can (noise).
pub const QP_MAX: u8 = 69;
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
/// How long the cost seen at one QP is remembered.
const MEMORY: Duration = Duration::from_secs(3);
/// A QP remembered to cost more than this many times a frame's target is not used again
/// while remembered.
const REMEMBERED_OVERSHOOT: f64 = 1.5;
/// A frame is never given less than this share of a frame's bits, however full the bucket.
const MIN_SHARE: f64 = 1.0 / 8.0;
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
    /// Complexity per pixel last seen at each QP, per kind, and when.
    at_qp: [[Option<(f64, Instant)>; QP_MAX as usize + 1]; 4],
    last: Option<FrameKind>,
    last_qp: Option<u8>,
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
            at_qp: [[None; QP_MAX as usize + 1]; 4],
            last: None,
            last_qp: None,
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
        // lower one (a lower QP never costs less).
        let overshot = |q: u8| {
            self.at_qp[kind.index()][usize::from(q)].is_some_and(|(c, t)| {
                now.saturating_duration_since(t) < MEMORY
                    && c * pixels * 2f64.powf(-f64::from(q) / 6.0) > target_bits * REMEMBERED_OVERSHOOT
            })
        };
        if let Some(q) = (qp..QP_MAX).rev().find(|&q| overshot(q)) {
            qp = q + 1;
        }
        FramePlan { qp, kind, pixels, target_bits, at: now }
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
        if plan.pixels <= 0.0 {
            return;
        }
        // Keep estimates above zero so a frame of nothing does not make the next one free.
        let seen = (bits.max(8.0) * 2f64.powf(f64::from(plan.qp) / 6.0)) / plan.pixels;
        self.at_qp[plan.kind.index()][usize::from(plan.qp.min(QP_MAX))] = Some((seen, plan.at));
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
mod tests {
    use super::*;
    use std::time::Duration;

    /// An encoder whose frames cost `per_pixel(kind) · pixels · 2^(-qp/6)` bits.
    struct Model {
        key: f64,
        fresh: f64,
        moving: f64,
        still: f64,
    }

    impl Model {
        fn bytes(&self, plan: &FramePlan, changed: u64, total: u64) -> usize {
            let (c, px) = match plan.kind {
                FrameKind::Key => (self.key, total),
                FrameKind::Fresh => (self.fresh, changed),
                FrameKind::Moving => (self.moving, changed),
                FrameKind::Still => (self.still, total),
            };
            (c * px as f64 * 2f64.powf(-f64::from(plan.qp) / 6.0) / 8.0) as usize
        }
    }

    const TOTAL: u64 = 1920 * 1080;
    const DESKTOP: Model = Model { key: 3.0, fresh: 2.0, moving: 1.5, still: 0.01 };

    /// Runs `frames` frames at `fps` on simulated time; `change(i)` is the changed pixels of
    /// frame `i` (frame 0 is a keyframe). Returns each frame's plan and bytes.
    fn run(
        rc: &mut RateControl,
        model: &Model,
        fps: f64,
        frames: usize,
        change: impl Fn(usize) -> u64,
    ) -> Vec<(FramePlan, usize)> {
        let t0 = Instant::now();
        (0..frames)
            .map(|i| {
                let now = t0 + Duration::from_secs_f64(i as f64 / fps);
                let changed = change(i);
                let plan = rc.plan(now, i == 0, changed, TOTAL);
                let bytes = model.bytes(&plan, changed, TOTAL);
                rc.encoded(plan, bytes);
                (plan, bytes)
            })
            .collect()
    }

    fn kbps(frames: &[(FramePlan, usize)], fps: f64) -> f64 {
        frames.iter().map(|f| f.1 as f64 * 8.0).sum::<f64>() / (frames.len() as f64 / fps) / 1000.0
    }

    #[test]
    fn full_screen_motion_settles_on_the_bitrate() {
        let mut rc = RateControl::new(8000, 60);
        let frames = run(&mut rc, &DESKTOP, 60.0, 600, |_| TOTAL);
        let rate = kbps(&frames[60..], 60.0);
        assert!((7000.0..=8000.0).contains(&rate), "{rate} kbit/s for a target of 8000");
        // Once learnt, every frame fits the bucket.
        for (plan, bytes) in &frames[60..] {
            assert!(*bytes as f64 * 8.0 <= rc.capacity(), "{plan:?}: {bytes} bytes");
        }
    }

    #[test]
    fn a_lower_bitrate_is_followed_within_a_few_frames() {
        let mut rc = RateControl::new(8000, 60);
        run(&mut rc, &DESKTOP, 60.0, 120, |_| TOTAL);
        rc.set_bitrate(2000);
        let frames = run(&mut rc, &DESKTOP, 60.0, 120, |_| TOTAL);
        let rate = kbps(&frames[10..], 60.0);
        assert!((1700.0..=2000.0).contains(&rate), "{rate} kbit/s for a target of 2000");
    }

    #[test]
    fn cheap_content_stays_at_the_lowest_qp_under_the_bitrate() {
        let cheap = Model { key: 0.05, fresh: 0.02, moving: 0.01, still: 0.001 };
        let mut rc = RateControl::new(8000, 60);
        let frames = run(&mut rc, &cheap, 60.0, 300, |_| TOTAL);
        assert!(frames[5..].iter().all(|f| f.0.qp == QP_MIN), "{:?}", &frames[..10]);
        assert!(kbps(&frames, 60.0) < 8000.0);
    }

    #[test]
    fn refinement_frames_of_a_still_screen_get_a_lower_qp_than_motion() {
        let mut rc = RateControl::new(8000, 60);
        // Two seconds of motion, then the screen stops: six frames of the same picture.
        let frames = run(&mut rc, &DESKTOP, 60.0, 126, |i| if i < 120 { TOTAL } else { 0 });
        let moving_qp = frames[119].0.qp;
        let still = &frames[120..];
        assert!(still.iter().all(|f| f.0.kind == FrameKind::Still));
        assert!(still[1..].iter().all(|f| f.0.qp < moving_qp), "{moving_qp} vs {still:?}");
    }

    #[test]
    fn new_content_after_a_still_screen_is_budgeted_as_new_content() {
        // Learn motion, then stillness, then a new full-screen picture: its first frame must
        // not be planned at the cheap motion or still cost and blow the bucket.
        let mut rc = RateControl::new(8000, 60);
        let fresh_first = |i: usize| match i {
            0..60 => TOTAL / 4,
            60..120 => 0,
            120..180 => TOTAL / 4,
            180..240 => 0,
            _ => TOTAL,
        };
        let model = Model { key: 3.0, fresh: 3.0, moving: 0.2, still: 0.01 };
        let frames = run(&mut rc, &model, 60.0, 250, fresh_first);
        let (plan, bytes) = frames[240];
        assert_eq!(plan.kind, FrameKind::Fresh);
        assert!(bytes as f64 * 8.0 <= 1.6 * rc.frame_bits(), "{plan:?}: {bytes} bytes");
        assert_eq!(frames[241].0.kind, FrameKind::Moving);
    }

    #[test]
    fn content_that_vanishes_under_the_quantiser_still_averages_the_bitrate() {
        // Above QP 34 the detail quantises away and a frame costs almost nothing; below, it
        // costs what the model says. Chasing the cheap frames down must not pile up the
        // expensive ones.
        let mut rc = RateControl::new(8000, 60);
        let t0 = Instant::now();
        let mut bits = Vec::new();
        for i in 0..600 {
            let now = t0 + Duration::from_secs_f64(i as f64 / 60.0);
            let plan = rc.plan(now, i == 0, TOTAL, TOTAL);
            let b =
                if plan.qp > 34 { 200.0 } else { 20.0 * TOTAL as f64 * 2f64.powf(-f64::from(plan.qp) / 6.0) };
            rc.encoded(plan, (b / 8.0) as usize);
            bits.push(b);
        }
        let rate = bits[60..].iter().sum::<f64>() / 9.0 / 1000.0;
        assert!(rate <= 8000.0 * 1.1, "{rate} kbit/s for a target of 8000");
        // Once the cliff was seen, the QP stays on its cheap side instead of falling off
        // it again and again.
        let over = bits[120..].iter().filter(|&&b| b > 2.0 * rc.frame_bits()).count();
        assert!(over <= 6, "{over} frames over twice their budget");
    }

    #[test]
    fn content_no_qp_fits_lowers_the_frame_rate_to_hold_the_bitrate() {
        // Noise: even at the highest QP a frame costs three times its share at 1 Mbit/s.
        let noise = Model { key: 70.0, fresh: 70.0, moving: 70.0, still: 70.0 };
        let mut rc = RateControl::new(1000, 60);
        let share = 1000.0 * 1000.0 / 60.0;
        let per_frame = |qp: u8| 70.0 * TOTAL as f64 * 2f64.powf(-f64::from(qp) / 6.0);
        assert!(per_frame(QP_MAX) > 2.5 * share);
        // A capture loop that captures at 60 fps unless the rate control holds it back.
        let t0 = Instant::now();
        let (mut t, mut bits, mut frames) = (t0, 0.0, 0);
        while t < t0 + Duration::from_secs(10) {
            let hold = rc.hold(t);
            if hold > Duration::ZERO {
                t += hold;
                continue;
            }
            let plan = rc.plan(t, frames == 0, TOTAL, TOTAL);
            let bytes = noise.bytes(&plan, TOTAL, TOTAL);
            rc.encoded(plan, bytes);
            bits += bytes as f64 * 8.0;
            frames += 1;
            t += Duration::from_secs_f64(1.0 / 60.0);
        }
        let rate = bits / 10.0 / 1000.0;
        assert!(rate <= 1000.0 * 1.1, "{rate} kbit/s for a target of 1000");
        // The frame rate fell to what fits, but did not stop.
        assert!((100..=300).contains(&frames), "{frames} frames in 10 s");
    }

    #[test]
    fn frames_that_fit_are_never_held() {
        let mut rc = RateControl::new(8000, 60);
        let t0 = Instant::now();
        for i in 1..600 {
            let now = t0 + Duration::from_secs_f64(f64::from(i) / 60.0);
            assert_eq!(rc.hold(now), Duration::ZERO, "frame {i}");
            let plan = rc.plan(now, false, TOTAL, TOTAL);
            rc.encoded(plan, DESKTOP.bytes(&plan, TOTAL, TOTAL));
        }
    }

    #[test]
    fn an_overspent_frame_is_paid_back_by_the_next_ones() {
        let mut rc = RateControl::new(8000, 60);
        run(&mut rc, &DESKTOP, 60.0, 60, |_| TOTAL);
        let t = Instant::now() + Duration::from_secs(10);
        let plan = rc.plan(t, false, TOTAL, TOTAL);
        // The frame came out four times its budget.
        rc.encoded(plan, (plan.target_bits * 4.0 / 8.0) as usize);
        let next = rc.plan(t + Duration::from_millis(17), false, TOTAL, TOTAL);
        assert!(next.target_bits < plan.target_bits / 2.0, "{plan:?} then {next:?}");
        assert!(next.qp > plan.qp);
        assert!(rc.level_bits() > 0.0);
    }
}
