//! A cap on a WebRTC path's estimate while the path is congested and losing packets.
//!
//! str0m's estimator (libWebRTC's GCC) reacts to a queue that grows; a drop-tail queue that
//! is already full grows no more, and then only its loss-based part is left to see the
//! congestion. That part weighs loss over seconds (it is built not to take a lossy radio
//! link for a congested one): recorded over the link emulator, after a drop from 20 to
//! 4 Mbit/s the estimate fell to 4 Mbit/s, then rose again to 5 Mbit/s for two seconds
//! while 20 to 30 % of the packets were lost and the round trip stood 100 ms above its
//! least (`tests/e2e/network.wan.mjs`), before it fell to a tenth.
//!
//! [`LossGuard`] reads the same feedback and acts on the two signs together: loss with a
//! standing queue (the round trip well above its least) is congestion, and what the
//! path carries is about what arrived, the rate sent less the share lost. The estimate is
//! capped a little below that, at most every [`CUT_EVERY`]; the cap goes once the loss has
//! stopped and the queue has drained, or once str0m's estimate is under it. Loss without a
//! standing queue (a lossy radio link) is left to str0m.
//!
//! No I/O and no clock: time is passed in, so the policy is tested on simulated time
//! against recorded feedback.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Loss over the last second above which a path with a standing queue is congested (a
/// drop-tail queue overflowing: recorded after a drop from 20 to 4 Mbit/s, str0m's estimate
/// stayed 10 % over the path's rate for seconds with 2 to 8 % lost and the round trip 90 ms
/// above its least) ...
const HEAVY_LOSS: f32 = 0.03;
/// ... and below which the cap is lifted.
const LIGHT_LOSS: f32 = 0.02;
/// A round trip this much above the least one seen is a standing queue.
const QUEUE: Duration = Duration::from_millis(30);
/// ... when even the least of the round trips over this window is.
const QUEUE_WINDOW: Duration = Duration::from_millis(300);
/// The least round trip is the least over this window.
const MIN_RTT_WINDOW: Duration = Duration::from_secs(10);
/// The rate sent is measured over this window.
const SENT_WINDOW: Duration = Duration::from_millis(500);
/// On congestion the estimate is capped at this share of what arrived (GCC's decrease).
const BACKOFF: f64 = 0.85;
/// At most one cut in this long: the loss reported covers the last second, and a cut shows
/// in it only a round trip later.
const CUT_EVERY: Duration = Duration::from_millis(500);

/// One viewer's cap on its WebRTC estimate.
#[derive(Debug, Default)]
pub struct LossGuard {
    cap: Option<f64>,
    cut_at: Option<Instant>,
    /// Bytes sent so far, and when, over [`SENT_WINDOW`].
    sent: VecDeque<(Instant, u64)>,
    /// Round trips, and when, over [`MIN_RTT_WINDOW`].
    rtts: VecDeque<(Instant, Duration)>,
}

impl LossGuard {
    /// Notes the feedback as of `now` (str0m's estimate in bit/s, the bytes sent to the peer
    /// so far, the share of packets lost over the last second and the last round trip) and
    /// returns the estimate to use: str0m's, capped while the path is congested and losing
    /// packets, never under `floor_bps`.
    pub fn update(
        &mut self,
        now: Instant,
        estimate_bps: u64,
        sent_bytes: u64,
        loss: Option<f32>,
        rtt: Option<Duration>,
        floor_bps: u64,
    ) -> u64 {
        self.sent.push_back((now, sent_bytes));
        while self.sent.len() > 2 && now.saturating_duration_since(self.sent[1].0) >= SENT_WINDOW {
            self.sent.pop_front();
        }
        if let Some(rtt) = rtt {
            self.rtts.push_back((now, rtt));
        }
        while self.rtts.front().is_some_and(|(t, _)| now.saturating_duration_since(*t) > MIN_RTT_WINDOW) {
            self.rtts.pop_front();
        }
        let estimate = estimate_bps as f64;
        let queue = self.queue_standing(now);
        match loss {
            Some(l) if l > HEAVY_LOSS && queue => {
                let due = self.cut_at.is_none_or(|t| now.saturating_duration_since(t) >= CUT_EVERY);
                if let (true, Some(sent)) = (due, self.sent_bps()) {
                    // What arrived, or str0m's own estimate if lower (the rate sent still
                    // counts what went out before the congestion).
                    let arrived = (sent * f64::from(1.0 - l)).min(estimate);
                    let cap = (arrived * BACKOFF).max(floor_bps as f64);
                    self.cap = Some(self.cap.map_or(cap, |c| c.min(cap)));
                    self.cut_at = Some(now);
                }
            }
            Some(l) if l < LIGHT_LOSS && !queue => self.cap = None,
            _ => {}
        }
        if self.cap.is_some_and(|c| c >= estimate) {
            // str0m has come down by itself.
            self.cap = None;
        }
        match self.cap {
            Some(c) => (c as u64).min(estimate_bps),
            None => estimate_bps,
        }
    }

    /// Whether the estimate is capped now.
    pub fn capped(&self) -> bool {
        self.cap.is_some()
    }

    /// The rate sent over the last half second, once it spans a fifth of that.
    pub fn sent_bps(&self) -> Option<f64> {
        let (&(t0, b0), &(t1, b1)) = (self.sent.front()?, self.sent.back()?);
        let dt = t1.saturating_duration_since(t0);
        (dt >= SENT_WINDOW / 5).then(|| b1.saturating_sub(b0) as f64 * 8.0 / dt.as_secs_f64())
    }

    /// Whether even the least round trip of the last [`QUEUE_WINDOW`] stands [`QUEUE`] above
    /// the least of the last [`MIN_RTT_WINDOW`].
    fn queue_standing(&self, now: Instant) -> bool {
        let least = self.rtts.iter().map(|r| r.1).min();
        let recent = self
            .rtts
            .iter()
            .filter(|(t, _)| now.saturating_duration_since(*t) <= QUEUE_WINDOW)
            .map(|r| r.1)
            .min();
        matches!((least, recent), (Some(l), Some(r)) if r > l + QUEUE)
    }
}

#[cfg(test)]
#[path = "loss_tests.rs"]
mod tests;
