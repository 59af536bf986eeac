//! A TCP path on simulated time, for the estimator's tests: a FIFO bottleneck draining at a
//! capacity that can change, a one-way delay each way, outages when nothing moves, segments
//! lost and retransmitted (holding up every frame behind them, as TCP's in-order delivery
//! does), acknowledgements lost on the way back (the same), a browser that is busy now and
//! then, and what the kernel's `TCP_INFO` would say of it all at any time.

use std::time::Duration;

use super::TcpState;

/// Bytes a segment carries, and how many segments one ACK covers (delayed ACKs).
const SEGMENT: u64 = 1448;
const PER_ACK: u64 = 2;

pub(super) struct Path {
    pub(super) one_way: Duration,
    /// (from, capacity in bit/s) steps, sorted.
    pub(super) capacity: Vec<(Duration, f64)>,
    /// Outages: (from, until).
    pub(super) outages: Vec<(Duration, Duration)>,
    /// Every n-th frame loses a segment (0: none); the frame and those behind it reach the
    /// browser `retransmit` later than they would have.
    pub(super) lose_every: u64,
    /// How much later a lost segment arrives: a round trip for a fast retransmission, the
    /// retransmission timer (200 ms at least) for a loss at a burst's tail.
    pub(super) retransmit: Duration,
    /// Every n-th acknowledgement is lost on the way back (0: none) and waits `retransmit`.
    pub(super) lose_ack_every: u64,
    /// The browser is busy for `.1` at the start of every `.0`: what arrives meanwhile is
    /// acknowledged when it is done.
    pub(super) busy: Option<(Duration, Duration)>,
    /// TCP ends at a reverse proxy next to the server: it takes everything at once, with a
    /// round trip of 0.1 ms, and the path beyond it is TCP's business no more.
    pub(super) proxy: bool,
    free_at: Duration,
    /// The browser has every frame up to the one arriving at this time (in-order delivery).
    delivered_until: Duration,
    last_ack_sent: Duration,
    last_ack_back: Duration,
    acks: u64,
    /// Per segment ACK: (when it reaches the sender, its round trip, bytes it acknowledges).
    segment_acks: Vec<(Duration, Duration, u64)>,
    /// Segments retransmitted: when.
    retransmissions: Vec<Duration>,
    /// (sent at, bytes): what TCP has sent, for in-flight counts.
    sent: Vec<(Duration, u64)>,
}

impl Path {
    /// A path of `one_way_ms` each way and `capacity` (from second, bit/s) steps.
    pub(super) fn new(one_way_ms: u64, capacity: Vec<(u64, f64)>) -> Self {
        Self {
            one_way: Duration::from_millis(one_way_ms),
            capacity: capacity.into_iter().map(|(s, c)| (Duration::from_secs(s), c)).collect(),
            outages: vec![],
            lose_every: 0,
            retransmit: Duration::from_millis(200),
            lose_ack_every: 0,
            busy: None,
            proxy: false,
            free_at: Duration::ZERO,
            delivered_until: Duration::ZERO,
            last_ack_sent: Duration::ZERO,
            last_ack_back: Duration::ZERO,
            acks: 0,
            segment_acks: Vec::new(),
            retransmissions: Vec::new(),
            sent: Vec::new(),
        }
    }

    fn capacity_at(&self, t: Duration) -> f64 {
        self.capacity.iter().rev().find(|c| c.0 <= t).map_or(self.capacity[0].1, |c| c.1)
    }

    fn after_outage(&self, t: Duration) -> Duration {
        self.outages.iter().find(|o| t >= o.0 && t < o.1).map_or(t, |o| o.1)
    }

    /// Frame `n` of `bytes` is written at `t`: returns when its acknowledgement reaches the
    /// sender.
    pub(super) fn send(&mut self, n: u64, t: Duration, bytes: u64) -> Duration {
        let start = self.after_outage(t.max(self.free_at));
        let transmission = Duration::from_secs_f64(bytes as f64 * 8.0 / self.capacity_at(start));
        let done = start + transmission;
        self.free_at = done;
        self.sent.push((t, bytes));
        // TCP's ACKs: each covers a couple of segments, which left the bottleneck one after
        // the other; segments behind a hole are acknowledged at once all the same (SACK).
        let segments = bytes.div_ceil(SEGMENT).max(1);
        let acks = segments.div_ceil(PER_ACK);
        for i in 1..=acks {
            let left = start + transmission.mul_f64(i as f64 / acks as f64);
            let back = self.after_outage(left + self.one_way * 2);
            let covered = if i == acks { bytes - (bytes / acks) * (acks - 1) } else { bytes / acks };
            self.segment_acks.push((back, back.saturating_sub(t), covered));
        }
        let mut arrival = done + self.one_way;
        if self.lose_every > 0 && n % self.lose_every == self.lose_every / 2 {
            arrival += self.retransmit;
            self.retransmissions.push(done + self.retransmit.saturating_sub(self.one_way));
        }

        let delivered = arrival.max(self.delivered_until);
        self.delivered_until = delivered;
        let mut ack_sent = delivered;
        if let Some((every, busy)) = self.busy {
            let into = Duration::from_nanos((delivered.as_nanos() % every.as_nanos()) as u64);
            if into < busy {
                ack_sent += busy - into;
            }
        }
        ack_sent = ack_sent.max(self.last_ack_sent);
        self.last_ack_sent = ack_sent;
        self.acks += 1;
        let mut back = self.after_outage(ack_sent) + self.one_way;
        if self.lose_ack_every > 0 && self.acks.is_multiple_of(self.lose_ack_every) {
            back += self.retransmit;
        }
        back = back.max(self.last_ack_back);
        self.last_ack_back = back;
        back
    }

    /// What `TCP_INFO` says at `t`.
    pub(super) fn tcp(&self, t: Duration) -> TcpState {
        if self.proxy {
            let rtt = Duration::from_micros(100);
            return TcpState { srtt: rtt, min_rtt: rtt, ..Default::default() };
        }
        let mut srtt: Option<Duration> = None;
        let mut min_rtt = Duration::MAX;
        let mut acked = 0;
        for &(_, rtt, bytes) in self.segment_acks.iter().filter(|a| a.0 <= t) {
            srtt = Some(srtt.map_or(rtt, |s| (s * 7 + rtt) / 8));
            min_rtt = min_rtt.min(rtt);
            acked += bytes;
        }
        let sent: u64 = self.sent.iter().filter(|s| s.0 <= t).map(|s| s.1).sum();
        TcpState {
            srtt: srtt.unwrap_or(self.one_way * 2),
            min_rtt: if min_rtt == Duration::MAX { self.one_way * 2 } else { min_rtt },
            in_flight_bytes: sent.saturating_sub(acked),
            unsent_bytes: 0,
            retransmits: self.retransmissions.iter().filter(|r| **r <= t).count() as u32,
        }
    }
}
