//! Bandwidth estimation from acknowledgements, for a transport without RTCP (the WebSocket
//! video): the client acknowledges each frame as it arrives; the server keeps the frames in
//! flight, measures the round trip of each and the rate at which acknowledgements come back
//! (the delivery rate), and from them estimates what the path carries.
//!
//! Over TCP a congested path shows as a standing queue, never as loss (TCP retransmits): a
//! round trip that stays above the least one seen (after taking off the frame's own
//! transmission time) for longer than a spike means the sender outruns the path. The
//! estimate then drops below the rate acknowledgements come back at; while no queue stands
//! it grows by [`GROWTH_PER_SECOND`] (only while the sender uses what it has: a still screen
//! proves nothing about the path). The window ([`AckEstimator::may_send`]) keeps about one
//! round trip plus [`WINDOW_SLACK`] of video in flight, so that frames wait where they can
//! still be dropped (the broadcast) rather than in the socket's buffers.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::BitrateLimits;

/// A queue is standing when the least queueing delay over this window is above
/// [`QUEUE_HIGH`] (a spike, such as the browser's main thread busy for a moment, is not one).
const QUEUE_WINDOW: Duration = Duration::from_millis(150);
/// Queueing delay that counts as congestion.
const QUEUE_HIGH: Duration = Duration::from_millis(30);
/// Below this queueing delay the estimate may grow.
const QUEUE_LOW: Duration = Duration::from_millis(15);
/// How fast the estimate grows while no queue stands (multiplicative, per second)...
pub const GROWTH_PER_SECOND: f64 = 0.35;
/// ... and near the rate at which the path last showed congestion: gently up to it (from
/// 0.9 times it), more gently past it (up to 1.1 times it).
const GROWTH_BELOW_CEILING: f64 = 0.15;
const GROWTH_ABOVE_CEILING: f64 = 0.08;
/// No acknowledgement for this long while frames are in flight is a stall (an outage, a
/// suspended tab), not congestion: the frames sent before it ends say nothing about queues.
const STALL: Duration = Duration::from_millis(500);
/// On congestion the estimate drops to this share of the delivery rate.
const BACKOFF: f64 = 0.85;
/// One decrease takes the estimate down to at least this share of what it was.
const MAX_DROP: f64 = 0.5;
/// The delivery rate is measured over the acknowledgements of this window.
const RATE_WINDOW: Duration = Duration::from_millis(300);
/// The least round trip is the least seen over this window (a route may change).
const MIN_RTT_WINDOW: Duration = Duration::from_secs(10);
/// What the window holds beyond one round trip: a couple of frames' worth of time, so that
/// acknowledgements held up by a busy browser do not stall the video.
pub const WINDOW_SLACK: Duration = Duration::from_millis(50);
/// The encoder is given this share of the estimate: the rest is headroom for the framing,
/// the sound and the probing above the path's rate before a queue shows.
pub const TARGET_SHARE: f64 = 0.93;
/// The estimate grows only while the sender uses at least this share of it.
const IN_USE: f64 = 0.5;

#[derive(Debug, Clone, Copy)]
struct Sent {
    id: u64,
    bytes: u64,
    at: Instant,
}

/// A bandwidth estimate and a window of frames in flight for one viewer.
#[derive(Debug)]
pub struct AckEstimator {
    limits: BitrateLimits,
    estimate: f64,
    in_flight: VecDeque<Sent>,
    in_flight_bytes: u64,
    /// (round trip, when seen), the least kept over [`MIN_RTT_WINDOW`].
    rtts: VecDeque<(Duration, Instant)>,
    /// Queueing delay of each acknowledgement over [`QUEUE_WINDOW`].
    queueing: VecDeque<(Duration, Instant)>,
    /// Bytes acknowledged, and when, over [`RATE_WINDOW`].
    acked: VecDeque<(u64, Instant)>,
    /// Bytes sent, and when, over [`RATE_WINDOW`].
    sent: VecDeque<(u64, Instant)>,
    grown_at: Option<Instant>,
    decreased_at: Option<Instant>,
    /// The delivery rate when the path last showed congestion.
    ceiling: Option<f64>,
    /// When the last acknowledgement came.
    last_ack: Option<Instant>,
    /// Frames sent before this say nothing about queueing (they waited out a stall).
    stalled_until: Option<Instant>,
    srtt: Option<Duration>,
}

impl AckEstimator {
    /// An estimator starting at `limits.start_bps`.
    pub fn new(limits: BitrateLimits) -> Self {
        Self {
            limits,
            estimate: limits.start_bps as f64,
            in_flight: VecDeque::new(),
            in_flight_bytes: 0,
            rtts: VecDeque::new(),
            queueing: VecDeque::new(),
            acked: VecDeque::new(),
            sent: VecDeque::new(),
            grown_at: None,
            decreased_at: None,
            ceiling: None,
            last_ack: None,
            stalled_until: None,
            srtt: None,
        }
    }

    /// The estimate, in bit/s.
    pub fn estimate_bps(&self) -> u64 {
        self.estimate as u64
    }

    /// The bitrate to encode at for this path, in bit/s.
    pub fn target_bps(&self) -> u64 {
        (self.estimate * TARGET_SHARE) as u64
    }

    /// The smoothed round trip, once one was measured.
    pub fn rtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// Bytes sent and not acknowledged yet.
    pub fn in_flight_bytes(&self) -> u64 {
        self.in_flight_bytes
    }

    fn min_rtt(&self) -> Option<Duration> {
        self.rtts.iter().map(|r| r.0).min()
    }

    /// The window: how many bytes may be in flight.
    pub fn window_bytes(&self) -> u64 {
        let rtt = self.min_rtt().unwrap_or(Duration::from_millis(100));
        (self.estimate / 8.0 * (rtt + WINDOW_SLACK).as_secs_f64()) as u64
    }

    /// Whether another frame may be sent now: always when nothing is in flight (a frame
    /// larger than the window still goes, alone), else while the window has room.
    pub fn may_send(&self) -> bool {
        self.in_flight_bytes == 0 || self.in_flight_bytes < self.window_bytes()
    }

    /// Notes that a frame came while the window was full (it waits, or is skipped): when
    /// acknowledgements come back slower than the estimate, the path carries less than it.
    ///
    /// Not when the window holds a single frame (a keyframe larger than the window goes
    /// alone: that is the frame's size, not the path), nor when the sender itself sends less
    /// than the acknowledgements come back at (the content, not the path, sets the rate).
    pub fn window_full(&mut self, now: Instant) {
        if self.in_flight.len() < 2 {
            return;
        }
        if let Some(delivered) = self.delivery_rate(now)
            && delivered < self.sending_rate(now) * 0.9
        {
            self.decrease(now, delivered);
        }
    }

    /// Drops the estimate below `delivered`, at most once per round trip (the queue needs
    /// that long to show the last decrease).
    fn decrease(&mut self, now: Instant, delivered: f64) {
        let rtt = self.srtt.unwrap_or_default().max(Duration::from_millis(100));
        if self.decreased_at.is_none_or(|t| now.saturating_duration_since(t) >= rtt) {
            tracing::debug!(
                estimate = self.estimate as u64,
                delivered = delivered as u64,
                min_rtt = ?self.min_rtt(),
                srtt = ?self.srtt,
                standing = ?self.queueing.iter().map(|q| q.0).min(),
                in_flight = self.in_flight.len(),
                "WebSocket path estimate lowered"
            );
            self.ceiling = Some(delivered);
            // At most halved at once: acknowledgements of a sender that is itself slow (a
            // busy encoder, bursts of large frames) come back slower than the path could
            // carry them, and one such measurement must not drop the rate to the floor.
            let lowered = (self.estimate.min(delivered) * BACKOFF).max(self.estimate * MAX_DROP);
            self.estimate = self.limits.clamp(lowered);
            self.decreased_at = Some(now);
        }
        self.grown_at = Some(now);
    }

    /// Notes frame `id` (ids rise from frame to frame) of `bytes` sent at `now`.
    pub fn sent(&mut self, now: Instant, id: u64, bytes: u64) {
        self.in_flight.push_back(Sent { id, bytes, at: now });
        self.in_flight_bytes += bytes;
        self.sent.push_back((bytes, now));
        trim(&mut self.sent, now, RATE_WINDOW);
    }

    /// Notes that every frame up to `id` arrived, as the acknowledgement received at `now`
    /// says. An acknowledgement of nothing in flight (a repeat, or a lie) changes nothing.
    pub fn acked(&mut self, now: Instant, id: u64) {
        let mut last = None;
        while let Some(s) = self.in_flight.front().copied().filter(|s| s.id <= id) {
            self.in_flight.pop_front();
            self.in_flight_bytes -= s.bytes;
            self.acked.push_back((s.bytes, now));
            last = Some(s);
        }
        let Some(frame) = last else { return };
        trim(&mut self.acked, now, RATE_WINDOW);
        if self.last_ack.is_some_and(|t| now.saturating_duration_since(t) > STALL) {
            self.stalled_until = Some(now);
        }
        self.last_ack = Some(now);
        if self.stalled_until.is_some_and(|t| frame.at < t) {
            return;
        }
        let rtt = now.saturating_duration_since(frame.at);
        self.srtt = Some(self.srtt.map_or(rtt, |s| (s * 7 + rtt) / 8));
        self.rtts.push_back((rtt, now));
        trim(&mut self.rtts, now, MIN_RTT_WINDOW);
        // What of the round trip the frame's own transmission explains is not queueing.
        let transmission = Duration::from_secs_f64(frame.bytes as f64 * 8.0 / self.estimate);
        let base = self.min_rtt().unwrap_or(rtt);
        let queued = rtt.saturating_sub(base).saturating_sub(transmission);
        self.queueing.push_back((queued, now));
        // The window, but at least the last two: acknowledgements of a slow path come
        // further apart than the window.
        while self.queueing.len() > 2
            && self.queueing.front().is_some_and(|e| now.saturating_duration_since(e.1) > QUEUE_WINDOW)
        {
            self.queueing.pop_front();
        }
        self.update(now);
    }

    /// Bit/s at which acknowledgements came back over the last [`RATE_WINDOW`]: the bytes
    /// acknowledged after the first over the time from the first to the last. `None` when
    /// the window holds too little to say; silence (a stall) says nothing about the rate.
    fn delivery_rate(&self, now: Instant) -> Option<f64> {
        let recent: Vec<&(u64, Instant)> =
            self.acked.iter().filter(|a| now.saturating_duration_since(a.1) <= RATE_WINDOW).collect();
        let (first, last) = (recent.first()?.1, recent.last()?.1);
        let span = last.saturating_duration_since(first);
        (span >= Duration::from_millis(30))
            .then(|| recent[1..].iter().map(|a| a.0).sum::<u64>() as f64 * 8.0 / span.as_secs_f64())
    }

    /// Bit/s sent over the last [`RATE_WINDOW`].
    fn sending_rate(&self, now: Instant) -> f64 {
        let first = self.sent.front().map_or(now, |s| s.1);
        let span = now.saturating_duration_since(first).max(RATE_WINDOW / 2);
        self.sent.iter().map(|s| s.0).sum::<u64>() as f64 * 8.0 / span.as_secs_f64()
    }

    fn update(&mut self, now: Instant) {
        // The least queueing over the window, once the window holds more than one sample.
        let standing = self.queueing.iter().map(|q| q.0).min().unwrap_or_default();
        let spans =
            self.queueing.front().is_some_and(|q| now.saturating_duration_since(q.1) >= QUEUE_WINDOW / 2);
        let rtt = self.srtt.unwrap_or_default().max(Duration::from_millis(100));
        if standing > QUEUE_HIGH && spans {
            let delivered = self.delivery_rate(now).unwrap_or(self.estimate);
            self.decrease(now, delivered);
            return;
        }
        let since = self.grown_at.map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
        self.grown_at = Some(now);
        let recent_decrease = self.decreased_at.is_some_and(|t| now.saturating_duration_since(t) < rtt);
        if standing < QUEUE_LOW && !recent_decrease && self.sending_rate(now) >= self.estimate * IN_USE {
            let dt = since.as_secs_f64().min(0.5);
            let growth = match self.ceiling.map(|c| self.estimate / c) {
                Some(r) if (0.9..1.0).contains(&r) => GROWTH_BELOW_CEILING,
                Some(r) if (1.0..=1.1).contains(&r) => GROWTH_ABOVE_CEILING,
                Some(r) if r > 1.1 => {
                    // Grown well past it without congestion: the path changed.
                    self.ceiling = None;
                    GROWTH_PER_SECOND
                }
                _ => GROWTH_PER_SECOND,
            };
            self.estimate = self.limits.clamp(self.estimate * (1.0 + growth * dt));
        }
    }
}

/// Drops the entries of `q` older than `window` before `now`.
fn trim<T>(q: &mut VecDeque<(T, Instant)>, now: Instant, window: Duration) {
    while q.front().is_some_and(|e| now.saturating_duration_since(e.1) > window) {
        q.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MBIT: f64 = 1e6;

    /// A TCP path on simulated time: a FIFO draining at a capacity that can change, with a
    /// one-way delay each way, losses recovered by a retransmission one round trip later
    /// (holding up everything behind it, as TCP does) and outages when nothing moves.
    struct Path {
        one_way: Duration,
        /// (from, capacity in bit/s) steps, sorted.
        capacity: Vec<(Duration, f64)>,
        /// Outages: (from, until).
        outages: Vec<(Duration, Duration)>,
        /// Every n-th frame is lost once (0: none).
        lose_every: u64,
        free_at: Duration,
    }

    impl Path {
        fn capacity_at(&self, t: Duration) -> f64 {
            self.capacity.iter().rev().find(|c| c.0 <= t).map_or(self.capacity[0].1, |c| c.1)
        }

        /// When the frame `n` of `bytes`, sent at `t`, is acknowledged back at the sender.
        fn ack_at(&mut self, n: u64, t: Duration, bytes: u64) -> Duration {
            let mut start = t.max(self.free_at);
            for &(a, b) in &self.outages {
                if start >= a && start < b {
                    start = b;
                }
            }
            let mut done = start + Duration::from_secs_f64(bytes as f64 * 8.0 / self.capacity_at(start));
            if self.lose_every > 0 && n % self.lose_every == self.lose_every / 2 {
                done += self.one_way * 2;
            }
            self.free_at = done;
            done + self.one_way * 2
        }
    }

    /// Drives a sender of `fps` frames a second at the target through `path` for `secs`;
    /// returns the target (bit/s) every 100 ms and the number of frames the window held
    /// back.
    fn run(path: &mut Path, secs: u64, fps: u64) -> (Vec<f64>, u64) {
        let t0 = Instant::now();
        let limits = BitrateLimits::from_kbps(150, 3000, 25_000);
        let mut est = AckEstimator::new(limits);
        let mut acks: Vec<(Duration, u64)> = Vec::new();
        let mut trace = Vec::new();
        let mut held = 0;
        let step = Duration::from_millis(1);
        let frame = Duration::from_secs(1) / fps as u32;
        let mut next_frame = Duration::ZERO;
        let mut n = 0;
        let mut t = Duration::ZERO;
        while t < Duration::from_secs(secs) {
            acks.sort();
            while acks.first().is_some_and(|a| a.0 <= t) {
                let (_, id) = acks.remove(0);
                est.acked(t0 + t, id);
            }
            if t >= next_frame {
                next_frame += frame;
                let bytes = (est.target_bps() as f64 / fps as f64 / 8.0) as u64;
                if est.may_send() {
                    est.sent(t0 + t, n, bytes);
                    acks.push((path.ack_at(n, t, bytes), n));
                } else {
                    est.window_full(t0 + t);
                    held += 1;
                }
                n += 1;
            }
            if t.as_millis().is_multiple_of(100) {
                trace.push(est.target_bps() as f64);
            }
            t += step;
        }
        (trace, held)
    }

    fn path(capacity: Vec<(u64, f64)>) -> Path {
        Path {
            one_way: Duration::from_millis(20),
            capacity: capacity.into_iter().map(|(s, c)| (Duration::from_secs(s), c)).collect(),
            outages: vec![],
            lose_every: 0,
            free_at: Duration::ZERO,
        }
    }

    /// The estimate at `secs` seconds (trace points are 100 ms apart).
    fn at(trace: &[f64], secs: f64) -> f64 {
        trace[(secs * 10.0) as usize]
    }

    #[test]
    fn the_estimate_finds_the_capacity_and_follows_a_drop_and_a_return() {
        let mut p = path(vec![(0, 20.0 * MBIT), (10, 4.0 * MBIT), (20, 20.0 * MBIT)]);
        let (trace, _) = run(&mut p, 32, 30);
        let mean = |from: f64, to: f64| {
            let w = &trace[(from * 10.0) as usize..(to * 10.0) as usize];
            w.iter().sum::<f64>() / w.len() as f64
        };
        // From 3 Mbit/s up to most of the 20 within 5 s, probing around it from then on.
        assert!(mean(5.0, 10.0) >= 14.0 * MBIT, "mean {} before the drop", mean(5.0, 10.0));
        // Within 2 s of the drop to 4 Mbit/s, at or below it; from then on it probes above
        // it now and then (at most by a quarter), but averages below it and never collapses.
        let e = at(&trace, 12.0);
        assert!(e <= 4.0 * MBIT, "{e} 2 s after the drop to 4 Mbit/s");
        assert!(mean(12.0, 20.0) <= 4.0 * MBIT, "mean {} after the drop to 4 Mbit/s", mean(12.0, 20.0));
        for &e in &trace[120..200] {
            assert!((2.0 * MBIT..=5.0 * MBIT).contains(&e), "{e} after the drop to 4 Mbit/s");
        }
        // Back to most of the 20 within 10 s of its return.
        assert!(mean(27.0, 30.0) >= 14.0 * MBIT, "mean {} 7 to 10 s after the return", mean(27.0, 30.0));
    }

    #[test]
    fn one_percent_loss_does_not_collapse_the_rate() {
        let mut p = path(vec![(0, 8.0 * MBIT)]);
        p.lose_every = 100;
        let (trace, _) = run(&mut p, 30, 30);
        let late = &trace[100..];
        let mean = late.iter().sum::<f64>() / late.len() as f64;
        let least = late.iter().copied().fold(f64::MAX, f64::min);
        assert!(mean >= 5.0 * MBIT, "mean {mean} on an 8 Mbit/s path with 1 % loss");
        assert!(least >= 3.0 * MBIT, "fell to {least}");
    }

    #[test]
    fn an_outage_closes_the_window_and_the_rate_survives_it() {
        let mut p = path(vec![(0, 10.0 * MBIT)]);
        p.outages = vec![(Duration::from_secs(10), Duration::from_secs(12))];
        let (trace, held) = run(&mut p, 20, 30);
        // The window held back most of the 60 frames of the outage instead of queueing them.
        assert!(held >= 50, "{held} frames held back");
        // Within 2 s of the link's return the estimate is at least half the path again.
        let e = at(&trace, 14.0);
        assert!(e >= 5.0 * MBIT, "{e} two seconds after the outage");
    }

    #[test]
    fn keyframes_larger_than_the_window_of_cheap_content_do_not_lower_the_estimate() {
        // A still screen's small frames, then a keyframe of 150 kB every second on a fast
        // path: each fills the window alone for a moment, which is not congestion.
        let limits = BitrateLimits::from_kbps(150, 3000, 25_000);
        let mut est = AckEstimator::new(limits);
        let mut p = path(vec![(0, 50.0 * MBIT)]);
        let t0 = Instant::now();
        let mut acks: Vec<(Duration, u64)> = Vec::new();
        let mut t = Duration::ZERO;
        let mut n = 0;
        while t < Duration::from_secs(10) {
            acks.sort();
            while acks.first().is_some_and(|a| a.0 <= t) {
                let (_, id) = acks.remove(0);
                est.acked(t0 + t, id);
            }
            if t.as_millis().is_multiple_of(33) {
                let bytes = if t.as_millis().is_multiple_of(990) { 150_000 } else { 2_000 };
                if est.may_send() {
                    est.sent(t0 + t, n, bytes);
                    acks.push((p.ack_at(n, t, bytes), n));
                } else {
                    est.window_full(t0 + t);
                }
                n += 1;
            }
            t += Duration::from_millis(1);
        }
        assert!(est.estimate_bps() >= 2_500_000, "{} after 10 s", est.estimate_bps());
    }

    #[test]
    fn the_window_is_one_round_trip_and_some_slack() {
        let limits = BitrateLimits::from_kbps(150, 8000, 8000);
        let mut est = AckEstimator::new(limits);
        let t = Instant::now();
        est.sent(t, 1, 1000);
        est.acked(t + Duration::from_millis(40), 1);
        // 8 Mbit/s × (40 + 50) ms = 90 kB.
        assert_eq!(est.window_bytes(), 90_000);
        assert!(est.may_send());
        est.sent(t + Duration::from_millis(50), 2, 200_000);
        // A frame larger than the window went alone; nothing more until it is acknowledged.
        assert!(!est.may_send());
        // An acknowledgement of something never sent changes nothing; a repeat neither.
        est.acked(t + Duration::from_millis(60), 1);
        assert!(!est.may_send());
        est.acked(t + Duration::from_millis(120), 2);
        assert!(est.may_send());
        assert_eq!(est.in_flight_bytes(), 0);
    }
}
