//! Where each sound frame of one capture run goes on the timeline, and when it was captured.
//!
//! A frame's pts counts samples, so frames lie exactly their length apart on the pts
//! timeline. They come out of the pipeline some time after their last sample was captured, a
//! time that varies: PulseAudio hands over 10 ms fragments, and threads wait for the CPU. No
//! frame comes out before its last sample was captured, so the frame that came out soonest
//! after its pts over the last [`WINDOW`] places the timeline on the clock, and every frame's
//! capture time is its pts on that timeline: its age when it comes out is its length plus
//! whatever held it up.
//!
//! When Kelpie's capture thread waits for the CPU longer than PulseAudio keeps sound for it
//! (`buffer-time`), PulseAudio drops the oldest, and that sound is lost without a gap in the
//! count: from then on every frame comes out equally late after its pts, fresh as it is. The
//! receiver would play all of it that much later (a jitter buffer keeps playing what follows
//! the last packet it played), so once
//! [`SLIP_FRAMES`] frames in a row come out late by the same time (within [`SLIP_SPREAD`]),
//! the timeline moves on by that time (in whole frames): the receiver hears the lost sound as
//! the gap it was.
//! Frames held up by a stall further down and then let out together are late by less and less
//! (each by a frame less than the one before): they keep their place, and the lag limits of
//! the transports drop what has grown too old.
//!
//! The buffer timestamps of `pulsesrc` on the pipeline clock were used before: its clock
//! slaving moved them by a few ms now and then, heard as small gaps and overlaps, and after
//! such a step they lay ahead of the present, which made sound look 8-10 ms younger than it
//! was (the A/V sync then held video that much too little).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How long the soonest frame is remembered: long enough to include a frame that came out
/// without waiting, short enough that a slow drift of the sound card's clock against the
/// system's (a few ms per ten seconds at worst) does not add up.
pub(crate) const WINDOW: Duration = Duration::from_secs(2);
/// Frames come out late by at least this before the lateness may be sound lost upstream.
pub(crate) const SLIP_MIN: Duration = Duration::from_millis(20);
/// How many frames in a row must be late by the same time for the timeline to move on.
pub(crate) const SLIP_FRAMES: usize = 3;
/// How close their lateness must be: a burst of held-up frames differs by a frame each.
pub(crate) const SLIP_SPREAD: Duration = Duration::from_millis(5);

/// One frame placed on the timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Placed {
    /// Its first sample on the run's timeline: its own pts plus the sound lost so far.
    pub(crate) pts: Duration,
    /// When its first sample was captured.
    pub(crate) captured: Instant,
    /// How far the timeline moved on at this frame (sound lost upstream), usually zero.
    pub(crate) moved_on: Duration,
}

/// The timeline of one capture run (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct Timeline {
    /// Sound lost upstream without a gap in the count, so far: added to every pts.
    lost: Duration,
    /// Candidates for the earliest origin (the clock time of pts 0) over the last [`WINDOW`]:
    /// when each frame came out and the origin it implied, origins increasing.
    origins: VecDeque<(Instant, Instant)>,
    /// Lateness of the last frames, while each was late by [`SLIP_MIN`] or more.
    late: Vec<Duration>,
}

impl Timeline {
    /// Places the frame of `pts` (its first sample, counted on this run) lasting `duration`
    /// that comes out at `now`. Its capture time is never after `now - duration`.
    pub(crate) fn frame(&mut self, now: Instant, pts: Duration, duration: Duration) -> Placed {
        let placed = self.place(now, pts, duration);
        let lateness = now.saturating_duration_since(placed.captured + duration);
        if lateness < SLIP_MIN {
            self.late.clear();
            return placed;
        }
        self.late.push(lateness);
        if self.late.len() < SLIP_FRAMES {
            return placed;
        }
        let recent = &self.late[self.late.len() - SLIP_FRAMES..];
        let (least, most) =
            recent.iter().fold((Duration::MAX, Duration::ZERO), |(a, b), &l| (a.min(l), b.max(l)));
        if most - least > SLIP_SPREAD {
            return placed;
        }
        tracing::debug!(
            lost_ms = least.as_millis() as u64,
            "sound was lost before capture: the timeline moves on"
        );
        // In whole frames, as a gap in the count would be: the receiver sees a missing frame.
        let moved = duration.mul_f64((least.as_secs_f64() / duration.as_secs_f64()).round().max(1.0));
        self.lost += moved;
        self.origins.clear();
        self.late.clear();
        Placed { moved_on: moved, ..self.place(now, pts, duration) }
    }

    fn place(&mut self, now: Instant, pts: Duration, duration: Duration) -> Placed {
        let pts = pts + self.lost;
        // Had it come out right after its last sample, pts 0 would have been captured here.
        let Some(origin) = now.checked_sub(pts + duration) else {
            return Placed {
                pts,
                captured: now.checked_sub(duration).unwrap_or(now),
                moved_on: Duration::ZERO,
            };
        };
        while self.origins.back().is_some_and(|&(_, o)| o >= origin) {
            self.origins.pop_back();
        }
        self.origins.push_back((now, origin));
        while self.origins.front().is_some_and(|&(at, _)| now.saturating_duration_since(at) > WINDOW) {
            self.origins.pop_front();
        }
        let earliest = self.origins.front().map_or(origin, |&(_, o)| o);
        Placed { pts, captured: earliest + pts, moved_on: Duration::ZERO }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: Duration = Duration::from_millis(10);
    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn frames_that_wait_for_fragments_or_the_cpu_are_dated_by_the_soonest_one() {
        let t0 = Instant::now();
        let mut c = Timeline::default();
        // Frame n is captured from t0 + 10n ms; out 10 ms later (its length), plus a wait of
        // 0-9 ms (fragments and scheduling).
        let waits = [3, 9, 0, 5, 7, 2, 8, 1, 4, 6];
        let mut ages = Vec::new();
        for (n, w) in waits.iter().enumerate() {
            let pts = FRAME * n as u32;
            let out = t0 + pts + FRAME + MS * *w;
            let placed = c.frame(out, pts, FRAME);
            assert_eq!(placed.pts, pts, "nothing lost, nothing moves");
            ages.push(out - placed.captured);
            if n >= 2 {
                // From the frame that came out without waiting on, every capture time is exact.
                assert_eq!(placed.captured, t0 + pts, "frame {n}");
            }
        }
        assert_eq!(ages[2], FRAME, "a frame that did not wait is as old as it is long");
        assert_eq!(ages[1], FRAME + MS * 6, "until then the soonest was the first, 3 ms late");
        assert!(ages.iter().all(|&a| a >= FRAME), "{ages:?}");
    }

    #[test]
    fn frames_held_up_and_let_out_together_keep_their_place() {
        let t0 = Instant::now();
        let mut c = Timeline::default();
        for n in 0..100u32 {
            let pts = FRAME * n;
            c.frame(t0 + pts + FRAME + MS, pts, FRAME);
        }
        // The next 12 frames are held up 120 ms and then come out together.
        let out = t0 + FRAME * 112 + FRAME + MS;
        let placed: Vec<Placed> = (100..112u32).map(|n| c.frame(out, FRAME * n, FRAME)).collect();
        // The usual 1 ms is part of the timeline; the stall is the age beyond the length.
        assert_eq!(out - placed[0].captured, FRAME + MS * 120);
        assert_eq!(out - placed[11].captured, FRAME + FRAME);
        assert!(placed.iter().zip(100u32..).all(|(p, n)| p.pts == FRAME * n), "{placed:?}");
        // Then on time again.
        let pts = FRAME * 112;
        assert_eq!(
            c.frame(t0 + pts + FRAME + MS, pts, FRAME),
            Placed { pts, captured: t0 + pts + MS, moved_on: Duration::ZERO }
        );
    }

    #[test]
    fn sound_lost_before_the_count_moves_the_timeline_on() {
        let t0 = Instant::now();
        let mut c = Timeline::default();
        for n in 0..100u32 {
            let pts = FRAME * n;
            c.frame(t0 + pts + FRAME, pts, FRAME);
        }
        // PulseAudio stalled: 120 ms of sound never came. The count goes on where it was, each
        // frame fresh, at its usual pace, 120 ms after its pts (give or take a ms).
        let mut placed = Vec::new();
        for (i, jitter) in (100..110u32).zip([0, 2, 1, 0, 1, 2, 0, 0, 1, 0]) {
            let pts = FRAME * i;
            let out = t0 + pts + MS * 120 + FRAME + MS * jitter;
            placed.push((out, c.frame(out, pts, FRAME)));
        }
        // The first frames look as late as they are; from the third on, the timeline has moved
        // on by the sound lost, and every frame is as old as it is long (plus its jitter).
        assert_eq!(placed[0].1.pts, FRAME * 100);
        let moved: Vec<Duration> = placed.iter().map(|(_, p)| p.moved_on).filter(|m| !m.is_zero()).collect();
        assert_eq!(moved.len(), 1, "it moves on once: {moved:?}");
        assert_eq!(moved[0], FRAME * 12, "by whole frames, as the sound lost: {moved:?}");
        assert!(placed[0].0 - placed[0].1.captured >= MS * 130);
        for (out, p) in &placed[2..] {
            assert!(p.pts >= FRAME * 100 + MS * 120, "{p:?}");
            assert!(*out - p.captured <= FRAME + MS * 3, "{:?}", *out - p.captured);
        }
        // Strictly increasing: the gap is a gap, nothing overlaps.
        assert!(placed.windows(2).all(|w| w[1].1.pts > w[0].1.pts));
    }

    #[test]
    fn the_timeline_follows_a_clock_that_drifts() {
        // The sound card's samples come 0.1 % slower than the system clock: frames come out
        // later and later after their pts; the soonest frame is at most WINDOW old, so the
        // error stays within 0.1 % of it and the timeline never jumps.
        let t0 = Instant::now();
        let mut c = Timeline::default();
        let mut last = None;
        for n in 0..3000u32 {
            let pts = FRAME * n;
            let out = t0 + pts.mul_f64(1.001) + FRAME;
            last = Some((out, c.frame(out, pts, FRAME)));
        }
        let (out, placed) = last.unwrap();
        assert_eq!(placed.pts, FRAME * 2999);
        let age = out - placed.captured;
        assert!(age >= FRAME && age <= FRAME + WINDOW / 1000 + MS, "{age:?}");
    }
}
