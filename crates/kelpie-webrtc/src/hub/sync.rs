//! Holding one viewer's video back so that it is shown with the sound captured with it.
//!
//! Sound reaches the ear later than the picture reaches the screen: it waits in the browser's
//! jitter buffer and audio device, while video is shown as soon as it is decoded. While
//! sound plays, the hub asks the browser (RTP playout-delay extension, min = max) to hold
//! video for the difference. The browser reports, about once a second, how long sound spends
//! in it and how long video did (from a frame's last packet to its display). The first gives
//! the delay to ask for; the second shows how far the browser's real video delay is from
//! what was asked (Chromium shows a frame somewhat before the playout delay it is given, and
//! spends some time decoding and waiting for the display), and a correction learned from
//! it is kept for this viewer.

use std::time::{Duration, Instant};

/// The most video is held back to line up with sound.
const MAX_SYNC_DELAY: Duration = Duration::from_millis(300);

/// How long the asked delay must have stayed within [`SETTLE_WITHIN`] before the browser's
/// measured video delay is trusted: Chromium moves to a new playout delay at up to 100 ms
/// per second, and the browser's report covers the second before it.
const SETTLE: Duration = Duration::from_millis(2000);
/// Changes of the asked delay this small settle within a report's time.
const SETTLE_WITHIN: Duration = Duration::from_millis(10);

/// Weight of a new report in the smoothed sound delay: the browser's figure over one second
/// moves by ±10 ms from one report to the next while its real delay holds.
const AUDIO_SMOOTHING: f64 = 0.3;
/// A report this far from the smoothed delay is a real change, taken at once: after a stall
/// the browser's jitter buffer drains hundreds of ms in a few seconds, and a smoothed figure
/// kept the picture waiting seconds longer than the sound did.
const AUDIO_JUMP_MS: f64 = 20.0;

/// Part of the measured error corrected per report.
const GAIN: f64 = 0.5;

/// Errors this small are left alone: half the playout-delay extension's 10 ms step, so
/// that the delay does not flip between two steps.
const DEAD_BAND_MS: f64 = 5.0;

/// How long video must wait in the browser so that it is shown with the sound captured at
/// the same moment, if the browser showed video exactly after the delay asked for: the
/// sound's time in the browser plus its time in the server, minus the video's time in the
/// server (both measured from capture to hand-over to the transport).
fn estimate_ms(browser_audio_ms: f64, ages: ServerAges) -> f64 {
    browser_audio_ms + ages.audio_ms - ages.video_ms
}

/// In 10 ms steps (the playout-delay extension's unit), at most [`MAX_SYNC_DELAY`].
fn quantize(ms: f64) -> Duration {
    let ms = (ms / 10.0).round().clamp(0.0, MAX_SYNC_DELAY.as_millis() as f64 / 10.0) * 10.0;
    Duration::from_millis(ms as u64)
}

/// Server-side times of sound and video, from capture to the transport, in ms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ServerAges {
    /// Sound.
    pub(crate) audio_ms: f64,
    /// Video.
    pub(crate) video_ms: f64,
}

/// One viewer's sync state.
#[derive(Debug, Default)]
pub(crate) struct AvSync {
    /// What the browser reports sound spends in it, smoothed.
    audio_ms: Option<f64>,
    /// Learned difference between the delay asked for and the browser's real video delay.
    correction_ms: f64,
    /// The delay asked for while sound played, and since when it stayed within
    /// [`SETTLE_WITHIN`] of that.
    asked: Option<(Duration, Instant)>,
}

impl AvSync {
    /// The playout delay to ask for with a frame sent at `now`.
    pub(crate) fn playout_delay(&mut self, now: Instant, sounding: bool, ages: ServerAges) -> Duration {
        let Some(audio_ms) = self.audio_ms.filter(|_| sounding) else {
            self.asked = None;
            return Duration::ZERO;
        };
        let delay = quantize(estimate_ms(audio_ms, ages) + self.correction_ms);
        match self.asked {
            Some((d, _)) if d.abs_diff(delay) <= SETTLE_WITHIN => {}
            _ => self.asked = Some((delay, now)),
        }
        delay
    }

    /// The browser's report: sound spends `audio_ms` in it; over the last second video spent
    /// `video_ms` in it (if it could tell).
    pub(crate) fn report(&mut self, now: Instant, audio_ms: u32, video_ms: Option<u32>, ages: ServerAges) {
        let reported = f64::from(audio_ms);
        let audio_ms = match self.audio_ms {
            Some(a) if (reported - a).abs() <= AUDIO_JUMP_MS => a + AUDIO_SMOOTHING * (reported - a),
            _ => reported,
        };
        self.audio_ms = Some(audio_ms);
        let (Some(video_ms), Some((asked, since))) = (video_ms, self.asked) else { return };
        if now.saturating_duration_since(since) < SETTLE {
            return;
        }
        let target = estimate_ms(audio_ms, ages);
        // Sound later than picture by this much (positive: hold video longer).
        let error = target - f64::from(video_ms);
        if error.abs() <= DEAD_BAND_MS {
            return;
        }
        // Never learn further past what the delay can express (0..=MAX): a correction asking
        // for less than no delay would keep growing while it has no effect.
        let max = MAX_SYNC_DELAY.as_secs_f64() * 1000.0;
        let before = self.correction_ms;
        let next = before + GAIN * error;
        self.correction_ms =
            if error < 0.0 { next.max(before.min(-target)) } else { next.min(before.max(max - target)) };
        tracing::debug!(
            asked_ms = asked.as_millis() as u64,
            audio_ms = audio_ms.round(),
            video_ms,
            error_ms = error.round(),
            correction_ms = self.correction_ms.round(),
            before_ms = before.round(),
            "A/V sync report"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_adds_the_browser_and_server_sound_time_minus_the_video_time() {
        let ages = |audio_ms, video_ms| ServerAges { audio_ms, video_ms };
        assert_eq!(quantize(estimate_ms(60.0, ages(20.0, 8.0))), Duration::from_millis(70));
        assert_eq!(quantize(estimate_ms(0.0, ages(5.0, 30.0))), Duration::ZERO, "never negative");
        assert_eq!(quantize(estimate_ms(2000.0, ages(0.0, 0.0))), MAX_SYNC_DELAY);
    }

    /// A browser that shows video `early_ms` before the playout delay it is given (after
    /// decoding and waiting for the display, which a real one also does), and keeps sound
    /// `audio_ms`. Returns the delays asked for, one per second of simulated time.
    fn simulate(early_ms: f64, audio_ms: u32, seconds: u32) -> (Vec<Duration>, f64) {
        let t0 = Instant::now();
        let ages = ServerAges { audio_ms: 20.0, video_ms: 8.0 };
        let mut s = AvSync::default();
        s.report(t0, audio_ms, None, ages);
        let mut asked = Vec::new();
        let mut error = 0.0;
        for sec in 0..seconds {
            let now = t0 + Duration::from_secs(u64::from(sec));
            let d = s.playout_delay(now, true, ages);
            asked.push(d);
            let video_ms = (d.as_secs_f64() * 1000.0 - early_ms).max(0.0);
            error = f64::from(audio_ms) + ages.audio_ms - (ages.video_ms + video_ms);
            s.report(now, audio_ms, Some(video_ms.round() as u32), ages);
        }
        (asked, error)
    }

    #[test]
    fn the_delay_starts_from_the_estimate_and_learns_what_the_browser_really_does() {
        // The estimate alone: 60 + 20 - 8 = 72 -> 70 ms.
        let (asked, error) = simulate(0.0, 60, 12);
        assert!(asked.iter().all(|&d| d == Duration::from_millis(70)), "{asked:?}");
        assert!(error.abs() <= 5.0);
        // A browser that shows frames 25 ms early: the delay grows until the picture waits as
        // long as the sound, within the extension's 10 ms steps.
        let (asked, error) = simulate(25.0, 60, 14);
        assert_eq!(asked[0], Duration::from_millis(70));
        assert!(asked.last().unwrap() >= &Duration::from_millis(90), "{asked:?}");
        assert!(error.abs() <= 5.0, "error left {error} ms after {asked:?}");
        // Each change is given time to settle before it is judged: no overshoot.
        assert!(asked.iter().all(|&d| d <= Duration::from_millis(100)), "{asked:?}");
    }

    #[test]
    fn the_correction_never_winds_up_past_what_the_delay_can_do() {
        // Video is already later than sound with no delay at all: the delay stays 0 and the
        // correction does not run off, so it recovers as soon as sound takes longer.
        let t0 = Instant::now();
        let ages = ServerAges { audio_ms: 5.0, video_ms: 60.0 };
        let mut s = AvSync::default();
        s.report(t0, 20, None, ages);
        for sec in 0..30 {
            let now = t0 + Duration::from_secs(sec);
            assert_eq!(s.playout_delay(now, true, ages), Duration::ZERO);
            s.report(now, 20, Some(10), ages);
        }
        assert_eq!(s.correction_ms, 0.0);
        let slow = ServerAges { audio_ms: 5.0, video_ms: 5.0 };
        let now = t0 + Duration::from_secs(31);
        for _ in 0..10 {
            s.report(now, 120, None, slow);
        }
        assert!(s.playout_delay(now, true, slow) >= Duration::from_millis(80));
    }

    #[test]
    fn small_swings_of_the_report_are_smoothed_and_large_changes_taken_at_once() {
        let now = Instant::now();
        let ages = ServerAges { audio_ms: 10.0, video_ms: 10.0 };
        let mut s = AvSync::default();
        s.report(now, 80, None, ages);
        s.report(now, 90, None, ages);
        assert_eq!(s.playout_delay(now, true, ages), Duration::from_millis(80), "80 + 0.3 × 10 = 83");
        // A jitter buffer draining after a stall: the picture follows report by report.
        for (reported, asked) in [(400, 400), (250, 250), (120, 120), (90, 90)] {
            s.report(now, reported, None, ages);
            assert_eq!(s.playout_delay(now, true, ages), Duration::from_millis(asked.min(300)));
        }
    }

    #[test]
    fn no_delay_without_sound_or_without_a_report() {
        let now = Instant::now();
        let ages = ServerAges { audio_ms: 20.0, video_ms: 8.0 };
        let mut s = AvSync::default();
        assert_eq!(s.playout_delay(now, true, ages), Duration::ZERO);
        s.report(now, 60, None, ages);
        assert_eq!(s.playout_delay(now, false, ages), Duration::ZERO);
        assert_eq!(s.playout_delay(now, true, ages), Duration::from_millis(70));
    }
}
