//! Congestion control policy: the bitrate a stream is encoded at, given what each of its
//! viewers' paths carry.
//!
//! Each viewer's transport estimates its own path: WebRTC through str0m's TWCC estimator
//! (delay-based, GCC-like, with libWebRTC's loss-based cap), the WebSocket transport through
//! the client's acknowledgements ([`acks::AckEstimator`]). Every estimate is reported to the
//! stream's [`StreamBudget`], which picks the stream's bitrate: that of the slowest viewer
//! that is not hopeless. A viewer far below the fastest one ([`HOPELESS_RATIO`]) is served
//! keyframes only rather than dragging every other viewer down to its rate (see
//! `docs/architecture.md`, "Congestion control").
//!
//! No I/O and no clock: time is passed in, so the policy is tested on simulated time.

pub mod acks;
pub mod loss;

pub use acks::AckEstimator;
pub use loss::LossGuard;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A viewer whose estimate is below this share of the fastest viewer's is hopeless: it is
/// served keyframes only and does not set the stream's bitrate.
pub const HOPELESS_RATIO: f64 = 0.25;

/// An estimate not renewed for this long no longer counts (its transport stopped reporting:
/// gone, or its estimator lost feedback, in which case its own window holds it back).
pub const STALE_AFTER: Duration = Duration::from_secs(5);

/// The stream's bitrate moves only when the target changed by more than this share (each
/// change is a command to the capture thread and a new bucket size in the rate control).
const HYSTERESIS: f64 = 0.03;

/// The share of a WebRTC path's estimate that its video is encoded at: the rest is left
/// for the packets' headers (RTP, SRTP, UDP and IP: 5 % of a 1200-byte packet), resent
/// packets and RTCP. str0m's pacer sends at 1.1 times the estimate: video encoded at the
/// whole estimate would keep it near its limit, and any more (sound, a burst of resends)
/// would queue there for seconds.
pub const WEBRTC_VIDEO_SHARE: f64 = 0.9;

/// What a WebRTC viewer's video may take of its path, in bit/s: its share of the estimate
/// ([`WEBRTC_VIDEO_SHARE`]) less what its sound takes, and at least a fifth of the estimate.
pub fn webrtc_video_bps(estimate_bps: u64, audio_bps: u64) -> u64 {
    let share = (estimate_bps as f64 * WEBRTC_VIDEO_SHARE) as u64;
    share.saturating_sub(audio_bps).max(estimate_bps / 5)
}

/// A WebRTC peer sending at least this share of its estimate is using its path (not
/// application-limited): its video may want more than the estimate.
const IN_USE: f64 = 0.6;

/// How often a WebRTC peer's desired bitrate (see [`webrtc_desired_bps`]) may change.
pub const DESIRED_EVERY: Duration = Duration::from_millis(500);

/// The bitrate a WebRTC peer's estimator is told its video would like to reach (str0m's
/// "desired" bitrate, `Bwe::set_bitrate`), given its estimate, the rate sent to it lately,
/// whether its path shows congestion and whether its stream's bitrate holds the picture
/// back (`VideoStream::limited`).
///
/// str0m probes for more capacity at a start (three and six times the start estimate), while
/// the sender leaves its estimate unused (every 5 s), and when the desired bitrate rises
/// above the estimate (at twice the estimate at most). A stream that uses all of its estimate
/// (noise, a video) gets none of the first two after the start, and its estimate grows only
/// by GCC's increase, 8 % a second: from 1 to 8 Mbit/s in half a minute. So while a peer
/// uses its path, its stream is short of bits and its path shows no congestion, its desired
/// bitrate is twice its estimate (up to `max_bps`): each time the estimate has grown, the
/// rise asks for a probe at twice it, and a path that carries it is found within a few
/// round trips. Otherwise it is `max_bps` (a stream that has the bits it needs does not probe
/// a path it nearly fills: each probe would overrun it).
pub fn webrtc_desired_bps(
    estimate_bps: u64,
    sent_bps: f64,
    congested: bool,
    limited: bool,
    max_bps: u64,
) -> u64 {
    let using = sent_bps >= estimate_bps as f64 * IN_USE;
    if using && limited && !congested && estimate_bps < max_bps {
        (estimate_bps * 2).min(max_bps)
    } else {
        max_bps
    }
}

/// A key for a viewer's estimates in a [`StreamBudget`], unique in the process.
pub fn viewer_key() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The range the estimators and the stream's bitrate keep to, in bit/s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BitrateLimits {
    /// Never estimated or encoded below this.
    pub min_bps: u64,
    /// What a new viewer's estimate starts at, before any feedback.
    pub start_bps: u64,
    /// Never estimated or encoded above this (the configured `--bitrate`, or `--max-bitrate`).
    pub max_bps: u64,
}

impl BitrateLimits {
    /// Limits from kbit/s, held consistent (min ≤ start ≤ max, min at least 50 kbit/s).
    pub fn from_kbps(min: u32, start: u32, max: u32) -> Self {
        let min_bps = u64::from(min.max(50)) * 1000;
        let max_bps = (u64::from(max) * 1000).max(min_bps);
        let start_bps = (u64::from(start) * 1000).clamp(min_bps, max_bps);
        Self { min_bps, start_bps, max_bps }
    }

    /// `bps` held within the limits.
    pub fn clamp(&self, bps: f64) -> f64 {
        bps.clamp(self.min_bps as f64, self.max_bps as f64)
    }
}

/// How a viewer is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// Every frame.
    Full,
    /// Its path carries far less than the other viewers': keyframes only, so the others keep
    /// their quality.
    KeyframesOnly,
}

/// The estimates of one stream's viewers and the bitrate they add up to.
#[derive(Debug, Default)]
pub struct StreamBudget {
    /// Each viewer's latest estimate in bit/s, and when it came.
    viewers: BTreeMap<u64, (u64, Instant)>,
    /// The bitrate last handed to the encoder.
    applied: Option<u64>,
}

impl StreamBudget {
    /// Notes viewer `key`'s estimate of its path at `now`.
    pub fn report(&mut self, key: u64, bps: u64, now: Instant) {
        self.viewers.insert(key, (bps, now));
    }

    /// Forgets a viewer (it left, or stopped estimating).
    pub fn remove(&mut self, key: u64) {
        self.viewers.remove(&key);
    }

    fn fresh(&self, now: Instant) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.viewers
            .iter()
            .filter(move |(_, (_, at))| now.saturating_duration_since(*at) < STALE_AFTER)
            .map(|(k, (bps, _))| (*k, *bps))
    }

    fn fastest(&self, now: Instant) -> Option<u64> {
        self.fresh(now).map(|(_, b)| b).max()
    }

    /// How viewer `key` is served.
    pub fn service(&self, key: u64, now: Instant) -> Service {
        match (self.viewers.get(&key), self.fastest(now)) {
            (Some(&(bps, at)), Some(best))
                if now.saturating_duration_since(at) < STALE_AFTER
                    && (bps as f64) < best as f64 * HOPELESS_RATIO =>
            {
                Service::KeyframesOnly
            }
            _ => Service::Full,
        }
    }

    /// The bitrate the stream should be encoded at: the slowest estimate that is not
    /// hopeless; `None` when no viewer reports one (the stream keeps its configured rate).
    pub fn target(&self, now: Instant) -> Option<u64> {
        let best = self.fastest(now)?;
        self.fresh(now).map(|(_, b)| b).filter(|&b| b as f64 >= best as f64 * HOPELESS_RATIO).min()
    }

    /// The bitrate to hand to the encoder now, if it differs enough from the one handed last
    /// (or the estimates stopped: `Some(None)`, back to the configured rate).
    pub fn change(&mut self, now: Instant) -> Option<Option<u64>> {
        let target = self.target(now);
        let moved = match (self.applied, target) {
            (None, None) => false,
            (Some(a), Some(t)) => (t as f64 - a as f64).abs() > a as f64 * HYSTERESIS,
            _ => true,
        };
        moved.then(|| {
            self.applied = target;
            target
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MBIT: u64 = 1_000_000;

    #[test]
    fn the_stream_follows_the_slowest_viewer_that_is_not_hopeless() {
        let t = Instant::now();
        let mut b = StreamBudget::default();
        assert_eq!(b.target(t), None);
        b.report(1, 20 * MBIT, t);
        b.report(2, 6 * MBIT, t);
        assert_eq!(b.target(t), Some(6 * MBIT));
        assert_eq!(b.service(2, t), Service::Full);
        // A third viewer on a path a tenth of the fastest: served keyframes only, and the
        // others keep 6 Mbit/s.
        b.report(3, 2 * MBIT, t);
        assert_eq!(b.target(t), Some(6 * MBIT));
        assert_eq!(b.service(3, t), Service::KeyframesOnly);
        assert_eq!(b.service(1, t), Service::Full);
        // The fast viewer leaves: the slow one is no longer far below anyone.
        b.remove(1);
        assert_eq!(b.target(t), Some(2 * MBIT));
        assert_eq!(b.service(3, t), Service::Full);
    }

    #[test]
    fn a_lone_viewer_is_never_hopeless_and_stale_estimates_stop_counting() {
        let t = Instant::now();
        let mut b = StreamBudget::default();
        b.report(1, 100_000, t);
        assert_eq!(b.service(1, t), Service::Full);
        assert_eq!(b.target(t), Some(100_000));
        b.report(2, 10 * MBIT, t);
        let later = t + STALE_AFTER;
        b.report(2, 10 * MBIT, later);
        // Viewer 1 stopped reporting: it neither sets the rate nor counts as hopeless.
        assert_eq!(b.target(later), Some(10 * MBIT));
        assert_eq!(b.service(1, later), Service::Full);
    }

    #[test]
    fn small_changes_do_not_reach_the_encoder() {
        let t = Instant::now();
        let mut b = StreamBudget::default();
        assert_eq!(b.change(t), None);
        b.report(1, 4 * MBIT, t);
        assert_eq!(b.change(t), Some(Some(4 * MBIT)));
        b.report(1, 4 * MBIT + 50_000, t);
        assert_eq!(b.change(t), None);
        b.report(1, 3 * MBIT, t);
        assert_eq!(b.change(t), Some(Some(3 * MBIT)));
        b.remove(1);
        assert_eq!(b.change(t), Some(None));
    }

    #[test]
    fn webrtc_video_leaves_room_for_headers_and_sound() {
        assert_eq!(webrtc_video_bps(1_000_000, 0), 900_000);
        // Opus at 128 kbit/s with RFC 2198 redundancy and its headers.
        assert_eq!(webrtc_video_bps(1_000_000, 280_000), 620_000);
        // Sound on a path that barely carries it: video keeps a fifth.
        assert_eq!(webrtc_video_bps(300_000, 280_000), 60_000);
    }

    #[test]
    fn a_path_in_use_without_congestion_is_probed_at_twice_its_estimate() {
        const MAX: u64 = 8 * MBIT;
        // Noise sends all it is allowed and is short of bits: twice the estimate, growing
        // with it.
        assert_eq!(webrtc_desired_bps(MBIT, 950_000.0, false, true, MAX), 2 * MBIT);
        assert_eq!(webrtc_desired_bps(3 * MBIT, 2_800_000.0, false, true, MAX), 6 * MBIT);
        assert_eq!(webrtc_desired_bps(5 * MBIT, 4_800_000.0, false, true, MAX), MAX);
        // A still or cheap screen, content that has the bits it needs (however much of the
        // path it fills), a congested path, or the estimate at the ceiling: none.
        assert_eq!(webrtc_desired_bps(MBIT, 150_000.0, false, true, MAX), MAX);
        assert_eq!(webrtc_desired_bps(MBIT, 800_000.0, false, false, MAX), MAX);
        assert_eq!(webrtc_desired_bps(MBIT, 950_000.0, true, true, MAX), MAX);
        assert_eq!(webrtc_desired_bps(MAX, 7_900_000.0, false, true, MAX), MAX);
    }

    #[test]
    fn limits_are_held_consistent() {
        let l = BitrateLimits::from_kbps(0, 100_000, 8000);
        assert_eq!((l.min_bps, l.start_bps, l.max_bps), (50_000, 8_000_000, 8_000_000));
        assert_eq!(l.clamp(1.0), 50_000.0);
    }
}
