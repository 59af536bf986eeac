//! Bandwidth estimation from acknowledgements, for a transport without RTCP (the WebSocket
//! video): the client acknowledges each frame as it arrives; the server keeps the frames in
//! flight, measures the round trip of each and the rate at which acknowledgements come back
//! (the delivery rate), and from them estimates what the path carries. Where the server can
//! read its TCP connection's state ([`TcpState`], `TCP_INFO`), that is passed in too and
//! preferred for what the frames' acknowledgements measure badly (see [`tcp`]).
//!
//! Over TCP a congested path shows as a standing queue, never as loss (TCP retransmits): a
//! round trip that stays above the least one seen for longer than a spike means the sender
//! outruns the path. The round trip is TCP's own when its figures describe the path, else the
//! frames' (after taking off each frame's own transmission time). The estimate then drops
//! below the rate acknowledgements come back at; while no queue stands it grows by
//! [`GROWTH_PER_SECOND`] (only while the sender uses what it has: a still screen proves
//! nothing about the path). The window ([`AckEstimator::may_send`]) keeps about one round
//! trip plus [`WINDOW_SLACK`] of video in the path (TCP's count of what it has in flight and
//! not sent yet, else the frames not acknowledged), so that frames wait where they can still
//! be dropped (the broadcast) rather than in the socket's buffers; frames delivered by TCP
//! but not acknowledged yet by a busy browser may add [`CLIENT_SLACK`] to that.

mod tcp;

pub use tcp::TcpState;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::BitrateLimits;
use tcp::Kernel;

/// A queue is standing when the least queueing delay over this window is above
/// [`QUEUE_HIGH`] (a spike, such as the browser's main thread busy for a moment, is not one).
const QUEUE_WINDOW: Duration = Duration::from_millis(150);
/// Queueing delay that counts as congestion.
const QUEUE_HIGH: Duration = Duration::from_millis(30);
/// Below this queueing delay the estimate may grow.
const QUEUE_LOW: Duration = Duration::from_millis(15);
/// How fast the estimate grows while no queue stands (multiplicative, per second)...
pub const GROWTH_PER_SECOND: f64 = 0.35;
/// ... and while the target is near the rate the path delivered when it last showed
/// congestion: gently up to it (from 0.9 times it), more gently past it (up to 1.1 times it).
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
/// By TCP's figures, a path that delivered nothing for this long while it held data is
/// interrupted ([`AckEstimator::interrupted`]).
const INTERRUPTION: Duration = Duration::from_millis(100);
/// What was sent is kept this long: a rate window a round trip ago.
const SENT_KEPT: Duration = Duration::from_secs(2);
/// The least round trip is the least seen over this window (a route may change).
const MIN_RTT_WINDOW: Duration = Duration::from_secs(10);
/// What the window holds beyond one round trip: a couple of frames' worth of time, so that
/// acknowledgements held up by a busy browser do not stall the video.
pub const WINDOW_SLACK: Duration = Duration::from_millis(50);
/// With TCP's figures, what frames delivered to the browser's TCP but not acknowledged yet
/// may add to the window: the browser's own delays (a busy main thread, an acknowledgement
/// waiting for a retransmission on the way back). Past it the frames wait all the same
/// (a browser that stopped reading), but the estimate is left alone: the path is not slow.
pub const CLIENT_SLACK: Duration = Duration::from_millis(300);
/// The encoder is given this share of the estimate: the rest is headroom for the framing,
/// the sound and the probing above the path's rate before a queue shows.
pub const TARGET_SHARE: f64 = 0.93;
/// The estimate grows only while the sender uses at least this share of it, or while it is
/// below the start bitrate: every viewer starts there with no evidence at all, and a viewer
/// whose estimate fell (a stall of the path, say) while its content is cheap (a few frames
/// that change little) would never use enough to climb back.
const IN_USE: f64 = 0.5;

#[derive(Debug, Clone, Copy)]
struct Sent {
    id: u64,
    bytes: u64,
    at: Instant,
}

/// Queueing delays over [`QUEUE_WINDOW`], but at least the last two (acknowledgements of a
/// slow path come further apart than the window).
#[derive(Debug, Default)]
struct Samples(VecDeque<(Duration, Instant)>);

impl Samples {
    fn push(&mut self, now: Instant, delay: Duration, window: Duration) {
        self.0.push_back((delay, now));
        while self.0.len() > 2 && self.0.front().is_some_and(|e| now.saturating_duration_since(e.1) > window)
        {
            self.0.pop_front();
        }
    }

    /// The least delay over the window, and whether the window spans at least half its
    /// length (one sample says nothing of a standing queue).
    fn standing(&self, now: Instant) -> (Duration, bool) {
        let least = self.0.iter().map(|q| q.0).min().unwrap_or_default();
        let spans = self.0.front().is_some_and(|q| now.saturating_duration_since(q.1) >= QUEUE_WINDOW / 2);
        (least, spans)
    }
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
    /// Queueing delay of each acknowledgement.
    queueing: Samples,
    /// What TCP says of the connection, when the caller can read it.
    kernel: Kernel,
    /// Bytes acknowledged, and when, over [`RATE_WINDOW`].
    acked: VecDeque<(u64, Instant)>,
    /// Bytes sent, and when, over [`SENT_KEPT`].
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
    /// Whether TCP's figures were used at the last decision (for the logs: they change).
    spanning: bool,
    /// When a frame last waited for a window that the path (not the browser) held full.
    path_full_at: Option<Instant>,
    /// Frames whose round trip was measured.
    frames_acked: usize,
    /// When TCP's figures last showed the path interrupted.
    interrupted_at: Option<Instant>,
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
            queueing: Samples::default(),
            kernel: Kernel::default(),
            acked: VecDeque::new(),
            sent: VecDeque::new(),
            grown_at: None,
            decreased_at: None,
            ceiling: None,
            last_ack: None,
            stalled_until: None,
            srtt: None,
            spanning: false,
            path_full_at: None,
            frames_acked: 0,
            interrupted_at: None,
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

    /// The smoothed round trip, once one was measured: TCP's where its figures describe the
    /// path, else the frames'.
    pub fn rtt(&self, now: Instant) -> Option<Duration> {
        match self.tcp_path(now) {
            Some(tcp) => Some(tcp.srtt),
            None => self.srtt,
        }
    }

    /// Bytes sent and not acknowledged yet.
    pub fn in_flight_bytes(&self) -> u64 {
        self.in_flight_bytes
    }

    fn min_rtt(&self) -> Option<Duration> {
        self.rtts.iter().map(|r| r.0).min()
    }

    /// TCP's latest figures, if there are any and they describe the path.
    fn tcp_path(&self, now: Instant) -> Option<&TcpState> {
        self.kernel.spanning(now, self.min_rtt(), self.frames_acked)
    }

    /// Notes what TCP says of the connection at `now`.
    pub fn tcp(&mut self, now: Instant, state: TcpState) {
        tracing::trace!(
            srtt_us = state.srtt.as_micros() as u64,
            min_rtt_us = state.min_rtt.as_micros() as u64,
            in_flight = state.in_flight_bytes,
            unsent = state.unsent_bytes,
            retransmits = state.retransmits,
            "ws tcp"
        );
        self.kernel.sample(now, state, QUEUE_WINDOW);
        self.kernel.queued(now, RATE_WINDOW);
        if self.interrupted(now) {
            self.interrupted_at = Some(now);
        }
    }

    /// The window: how many bytes may be in the path (TCP's count where its figures describe
    /// the path, else the frames not acknowledged).
    pub fn window_bytes(&self, now: Instant) -> u64 {
        let rtt = match self.tcp_path(now) {
            Some(tcp) => tcp.min_rtt,
            None => self.min_rtt().unwrap_or(Duration::from_millis(100)),
        };
        self.bytes_over(rtt + WINDOW_SLACK)
    }

    fn bytes_over(&self, time: Duration) -> u64 {
        (self.estimate / 8.0 * time.as_secs_f64()) as u64
    }

    /// What the window's two limits say at `now`.
    fn window(&self, now: Instant) -> Window {
        match self.tcp_path(now) {
            Some(tcp) => {
                // TCP counts every byte of the connection, the sound's too, and a whole
                // segment for a small frame: never more than the frames not acknowledged.
                let in_path = tcp.queued_bytes().min(self.in_flight_bytes);
                let window = self.bytes_over(tcp.min_rtt + WINDOW_SLACK);
                let frames_rtt = self.min_rtt().unwrap_or(tcp.min_rtt);
                if in_path >= window {
                    Window::PathFull
                } else if self.in_flight_bytes >= self.bytes_over(frames_rtt + WINDOW_SLACK + CLIENT_SLACK) {
                    Window::ClientFull
                } else {
                    Window::Open
                }
            }
            None if self.in_flight_bytes >= self.window_bytes(now) => Window::PathFull,
            None => Window::Open,
        }
    }

    /// Whether another frame may be sent at `now`: always when nothing is in flight (a frame
    /// larger than the window still goes, alone), else while the window has room.
    pub fn may_send(&self, now: Instant) -> bool {
        self.in_flight_bytes == 0 || self.window(now) == Window::Open
    }

    /// Notes that a frame came while the window was full (it waits, or is skipped): when
    /// acknowledgements come back slower than the estimate, the path carries less than it.
    ///
    /// Not when the window holds a single frame (a keyframe larger than the window goes
    /// alone: that is the frame's size, not the path), nor when the sender itself sends less
    /// than the acknowledgements come back at (the content, not the path, sets the rate),
    /// nor when TCP delivered the frames and the browser has yet to acknowledge them.
    pub fn window_full(&mut self, now: Instant) {
        tracing::trace!(
            in_flight = self.in_flight_bytes,
            frames = self.in_flight.len(),
            window = ?self.window(now),
            "ws window full"
        );
        if self.in_flight.len() < 2 || self.window(now) != Window::PathFull {
            return;
        }
        self.path_full_at = Some(now);
        // What was sent a round trip ago had time to be acknowledged; what went since (a
        // large frame just sent, which filled the window alone) had not.
        let rtt = self.min_rtt().unwrap_or_default();
        if let Some(delivered) = self.delivery_rate(now)
            && delivered < self.sent_rate(now.checked_sub(rtt).unwrap_or(now)) * 0.9
        {
            self.decrease(now, delivered);
        }
    }

    /// The round trip that paces decreases and growth: TCP's where its figures describe the
    /// path, else the frames', and at least 100 ms.
    fn pacing_rtt(&self, now: Instant) -> Duration {
        let rtt = match self.tcp_path(now) {
            Some(tcp) => tcp.srtt,
            None => self.srtt.unwrap_or_default(),
        };
        rtt.max(Duration::from_millis(100))
    }

    /// Drops the estimate below `delivered`, at most once per round trip (the queue needs
    /// that long to show the last decrease).
    fn decrease(&mut self, now: Instant, delivered: f64) {
        let rtt = self.pacing_rtt(now);
        if self.interrupted_at.is_some_and(|t| now.saturating_duration_since(t) < RATE_WINDOW) {
            tracing::trace!("ws path interrupted lately: estimate kept");
        } else if self.decreased_at.is_none_or(|t| now.saturating_duration_since(t) >= rtt) {
            let tcp = self.tcp_path(now).copied();
            tracing::debug!(
                estimate = self.estimate as u64,
                delivered = delivered as u64,
                min_rtt = ?self.min_rtt(),
                srtt = ?self.srtt,
                standing = ?self.queueing.standing(now).0,
                tcp_standing = ?self.kernel.queueing.standing(now).0,
                in_flight = self.in_flight.len(),
                tcp_srtt = ?tcp.map(|t| t.srtt),
                tcp_min_rtt = ?tcp.map(|t| t.min_rtt),
                tcp_queued = tcp.map(|t| t.queued_bytes()),
                tcp_retransmits = tcp.map(|t| t.retransmits),
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
        tracing::trace!(
            id,
            bytes,
            in_flight = self.in_flight_bytes,
            estimate = self.estimate as u64,
            "ws sent"
        );
        self.in_flight.push_back(Sent { id, bytes, at: now });
        self.in_flight_bytes += bytes;
        self.sent.push_back((bytes, now));
        trim(&mut self.sent, now, SENT_KEPT);
    }

    /// Notes that every frame up to `id` arrived, as the acknowledgement received at `now`
    /// says. An acknowledgement of nothing in flight (a repeat, or a lie) changes nothing.
    pub fn acked(&mut self, now: Instant, id: u64) {
        tracing::trace!(id, "ws acked");
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
        self.frames_acked += 1;
        trim(&mut self.rtts, now, MIN_RTT_WINDOW);
        // What of the round trip the frame's own transmission explains is not queueing.
        let transmission = Duration::from_secs_f64(frame.bytes as f64 * 8.0 / self.estimate);
        let base = self.min_rtt().unwrap_or(rtt);
        let queued = rtt.saturating_sub(base).saturating_sub(transmission);
        self.queueing.push(now, queued, QUEUE_WINDOW);
        self.update(now);
    }

    /// Bit/s the path delivered over the last [`RATE_WINDOW`]: by the frames'
    /// acknowledgements, or by TCP's where its figures describe the path and say more (a
    /// busy browser or a retransmission's stall holds up the frames' acknowledgements, and
    /// TCP's acknowledgements go on).
    fn delivery_rate(&self, now: Instant) -> Option<f64> {
        let frames = self.frames_delivery_rate(now);
        match self.tcp_path(now).and_then(|_| self.tcp_delivery_rate(now)) {
            Some(tcp) => Some(frames.map_or(tcp, |f| f.max(tcp))),
            None => frames,
        }
    }

    /// Bit/s the path delivered by TCP's count over the last [`RATE_WINDOW`]: the frames
    /// written between its first and last reading, less what TCP holds more at the last.
    fn tcp_delivery_rate(&self, now: Instant) -> Option<f64> {
        let (bytes, span, _) = self.tcp_delivered(now.checked_sub(RATE_WINDOW)?)?;
        Some(bytes as f64 * 8.0 / span.as_secs_f64())
    }

    /// Bytes TCP delivered from its first reading since `since` to its last, over how long,
    /// and what it held at the last.
    fn tcp_delivered(&self, since: Instant) -> Option<(u64, Duration, u64)> {
        let ((q0, t0), (q1, t1)) = self.kernel.queued_span(since)?;
        let written: u64 = self.sent.iter().filter(|s| s.1 >= t0 && s.1 < t1).map(|s| s.0).sum();
        Some(((written + q0).saturating_sub(q1), t1.saturating_duration_since(t0), q1))
    }

    /// Whether, by TCP's figures, the path delivered nothing over the last [`INTERRUPTION`]
    /// while it held this sender's data: interrupted (a radio link retrying, a route
    /// changing, a retransmission timer running), not slow. The window holds the frames
    /// meanwhile; a rate measured across the gap says nothing of the path's, and the
    /// estimate is left alone until the rate window is past it.
    fn interrupted(&self, now: Instant) -> bool {
        self.tcp_path(now).is_some()
            && now
                .checked_sub(INTERRUPTION)
                .and_then(|since| self.tcp_delivered(since))
                .is_some_and(|(bytes, span, held)| span >= INTERRUPTION / 2 && bytes == 0 && held > 0)
    }

    /// Bit/s at which the frames' acknowledgements came back over the last [`RATE_WINDOW`]:
    /// the bytes acknowledged after the first over the time from the first to the last.
    /// `None` when the window holds too little to say; silence (a stall) says nothing about
    /// the rate.
    fn frames_delivery_rate(&self, now: Instant) -> Option<f64> {
        let recent: Vec<&(u64, Instant)> =
            self.acked.iter().filter(|a| now.saturating_duration_since(a.1) <= RATE_WINDOW).collect();
        let (first, last) = (recent.first()?.1, recent.last()?.1);
        let span = last.saturating_duration_since(first);
        (span >= Duration::from_millis(30))
            .then(|| recent[1..].iter().map(|a| a.0).sum::<u64>() as f64 * 8.0 / span.as_secs_f64())
    }

    /// Bit/s sent over the last [`RATE_WINDOW`].
    fn sending_rate(&self, now: Instant) -> f64 {
        let recent = self.sent.iter().filter(|s| now.saturating_duration_since(s.1) <= RATE_WINDOW);
        let first = recent.clone().next().map_or(now, |s| s.1);
        let span = now.saturating_duration_since(first).max(RATE_WINDOW / 2);
        recent.map(|s| s.0).sum::<u64>() as f64 * 8.0 / span.as_secs_f64()
    }

    /// Bit/s sent over the [`RATE_WINDOW`] that ends at `until`.
    fn sent_rate(&self, until: Instant) -> f64 {
        let bytes: u64 = self
            .sent
            .iter()
            .filter(|s| s.1 <= until && until.saturating_duration_since(s.1) < RATE_WINDOW)
            .map(|s| s.0)
            .sum();
        bytes as f64 * 8.0 / RATE_WINDOW.as_secs_f64()
    }

    /// Whether TCP's figures describe the path now (said in the logs when that changes).
    fn spanning(&mut self, now: Instant) -> bool {
        let spanning = self.tcp_path(now).is_some();
        if spanning != self.spanning {
            self.spanning = spanning;
            tracing::debug!(spanning, "WebSocket path estimate from TCP's figures");
        }
        spanning
    }

    fn update(&mut self, now: Instant) {
        let rtt = self.pacing_rtt(now);
        let (frames, frames_span) = self.queueing.standing(now);
        // With TCP's figures: whether the path filled the window lately.
        let mut full_lately = None;
        let (standing, spans) = if self.spanning(now) {
            // With TCP's figures, the lesser of TCP's round trip and the frames': the frames'
            // include retransmission stalls and a busy browser's delays, TCP's the browser's
            // delayed ACKs of small segments (40 ms and more), neither of them a queue that a
            // lower rate would drain; a real one shows in both. And a queue of this sender's
            // making holds its data: TCP's count of what it has in the path filled the
            // window lately (with an estimate above the path's rate, the window holds a
            // queue of WINDOW_SLACK and more).
            let (tcp, tcp_span) = self.kernel.queueing.standing(now);
            full_lately = Some(self.path_full_at.is_some_and(|t| now.saturating_duration_since(t) < rtt));
            (frames.min(tcp), frames_span && tcp_span)
        } else {
            (frames, frames_span)
        };
        if standing > QUEUE_HIGH && spans && full_lately != Some(false) {
            let delivered = self.delivery_rate(now).unwrap_or(self.estimate);
            self.decrease(now, delivered);
            return;
        }
        let quiet = standing < QUEUE_LOW && full_lately != Some(true);
        let since = self.grown_at.map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
        self.grown_at = Some(now);
        let recent_decrease = self.decreased_at.is_some_and(|t| now.saturating_duration_since(t) < rtt);
        let in_use = self.sending_rate(now) >= self.estimate * IN_USE;
        let below_start = self.estimate < self.limits.start_bps as f64;
        if quiet && !recent_decrease && (in_use || below_start) {
            let dt = since.as_secs_f64().min(0.5);
            // The ceiling is a rate delivered, the target a rate sent: compared alike.
            let growth = match self.ceiling.map(|c| self.estimate * TARGET_SHARE / c) {
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

/// What the window says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Window {
    Open,
    /// The path holds a round trip of video and more: the path is slower than the sender.
    PathFull,
    /// TCP delivered the frames, and the browser has yet to acknowledge them.
    ClientFull,
}

/// Drops the entries of `q` older than `window` before `now`.
fn trim<T>(q: &mut VecDeque<(T, Instant)>, now: Instant, window: Duration) {
    while q.front().is_some_and(|e| now.saturating_duration_since(e.1) > window) {
        q.pop_front();
    }
}

#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;
