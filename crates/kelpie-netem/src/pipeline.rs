//! One direction of the emulated link, on time passed in: loss at the entry, then a bottleneck
//! of `rate` with a bounded drop-tail queue, then propagation delay plus jitter. Packets leave
//! in the order they came (jitter never reorders). No I/O and no clock of its own.
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::loss::{Loss, LossModel};
use crate::rng::Rng;

/// How much the bottleneck's queue holds before it drops arriving packets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum QueueLimit {
    /// At most this many bytes waiting to be sent.
    Bytes(usize),
    /// At most this much sending time waiting (bytes at the current rate).
    Time(Duration),
}

/// The impairments of one direction.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// One-way propagation delay.
    pub delay: Duration,
    /// Each packet's delay varies uniformly within ±`jitter` (never below zero, never reordering).
    pub jitter: Duration,
    /// Average loss in per cent.
    pub loss_pct: f64,
    /// Mean length of a loss burst in packets; ≤ 1: independent losses.
    pub burst: f64,
    /// Bottleneck rate in bit/s; 0: unlimited (no queue either).
    pub rate_bps: u64,
    /// The bottleneck's queue.
    pub queue: QueueLimit,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            loss_pct: 0.0,
            burst: 1.0,
            rate_bps: 0,
            queue: QueueLimit::Time(Duration::from_millis(100)),
        }
    }
}

/// What became of a packet offered to the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It leaves the link at this time.
    Queued(Instant),
    /// The loss model took it.
    Lost,
    /// The bottleneck's queue was full.
    QueueFull,
    /// The link is down (an outage).
    Down,
}

/// Counters of one direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub received: u64,
    pub delivered: u64,
    pub delivered_bytes: u64,
    pub lost: u64,
    pub queue_full: u64,
    pub down: u64,
}

/// One direction of the link.
#[derive(Debug)]
pub struct Pipeline {
    params: Params,
    loss: Loss,
    rng: Rng,
    /// When the bottleneck finishes sending what it has accepted.
    busy_until: Option<Instant>,
    /// Departure time of the last packet queued (to keep the order).
    last_due: Option<Instant>,
    /// The outage going on or coming: [start, end).
    down: Option<(Instant, Instant)>,
    queue: VecDeque<(Instant, Vec<u8>)>,
    stats: Stats,
}

impl Pipeline {
    pub fn new(params: Params, seed: u64) -> Self {
        let loss = Loss::new(LossModel::from_pct(params.loss_pct, params.burst));
        Self {
            params,
            loss,
            rng: Rng::new(seed),
            busy_until: None,
            last_due: None,
            down: None,
            queue: VecDeque::new(),
            stats: Stats::default(),
        }
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// New impairments for packets from now on; those already on the link keep their times.
    pub fn set_params(&mut self, params: Params) {
        let model = LossModel::from_pct(params.loss_pct, params.burst);
        if model != self.loss.model() {
            self.loss = Loss::new(model);
        }
        self.params = params;
    }

    /// Cuts the link from `now` for `length` (extending an outage going on): every packet
    /// offered or due to leave meanwhile is dropped.
    pub fn outage(&mut self, now: Instant, length: Duration) {
        let end = now + length;
        self.down = Some(match self.down {
            Some((start, old_end)) if now <= old_end => (start, old_end.max(end)),
            _ => (now, end),
        });
    }

    fn is_down(&self, t: Instant) -> bool {
        self.down.is_some_and(|(start, end)| start <= t && t < end)
    }

    /// Offers a packet arriving at `now`.
    pub fn push(&mut self, now: Instant, packet: Vec<u8>) -> Verdict {
        self.stats.received += 1;
        if self.is_down(now) {
            self.stats.down += 1;
            return Verdict::Down;
        }
        if self.loss.lose(&mut self.rng) {
            self.stats.lost += 1;
            return Verdict::Lost;
        }
        let sent = match self.params.rate_bps {
            0 => now,
            rate => {
                let start = self.busy_until.map_or(now, |b| b.max(now));
                let waiting = start - now;
                let full = match self.params.queue {
                    QueueLimit::Bytes(limit) => {
                        let waiting_bytes = waiting.as_secs_f64() * rate as f64 / 8.0;
                        waiting_bytes + packet.len() as f64 > limit as f64
                    }
                    QueueLimit::Time(limit) => waiting > limit,
                };
                if full {
                    self.stats.queue_full += 1;
                    return Verdict::QueueFull;
                }
                let end = start + Duration::from_secs_f64(packet.len() as f64 * 8.0 / rate as f64);
                self.busy_until = Some(end);
                end
            }
        };
        let mut due = sent + self.jittered_delay();
        if let Some(last) = self.last_due {
            due = due.max(last);
        }
        self.last_due = Some(due);
        self.queue.push_back((due, packet));
        Verdict::Queued(due)
    }

    fn jittered_delay(&mut self) -> Duration {
        let base = self.params.delay.as_secs_f64();
        let j = self.params.jitter.as_secs_f64();
        if j == 0.0 {
            return self.params.delay;
        }
        Duration::from_secs_f64((base + (self.rng.unit() * 2.0 - 1.0) * j).max(0.0))
    }

    /// The next packet due to leave by `now` (dropping those due during an outage).
    pub fn pop_due(&mut self, now: Instant) -> Option<Vec<u8>> {
        while self.queue.front().is_some_and(|(due, _)| *due <= now) {
            let (due, packet) = self.queue.pop_front()?;
            if self.is_down(due) {
                self.stats.down += 1;
                continue;
            }
            self.stats.delivered += 1;
            self.stats.delivered_bytes += packet.len() as u64;
            return Some(packet);
        }
        None
    }

    /// When the next packet is due to leave, if one is on the link.
    pub fn next_due(&self) -> Option<Instant> {
        self.queue.front().map(|(due, _)| *due)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Offers `count` packets of `size` bytes, one every `every`, and collects every departure
    /// time (stepping simulated time through each due time).
    fn drive(
        p: &mut Pipeline,
        t0: Instant,
        count: usize,
        size: usize,
        every: Duration,
    ) -> Vec<(Instant, Instant)> {
        let mut sent = Vec::new();
        let mut out = Vec::new();
        for i in 0..count {
            let now = t0 + every * i as u32;
            while let Some(due) = p.next_due().filter(|d| *d <= now) {
                p.pop_due(due).unwrap();
                out.push(due);
            }
            let mut pkt = vec![0u8; size];
            pkt[..8].copy_from_slice(&(i as u64).to_le_bytes());
            if let Verdict::Queued(_) = p.push(now, pkt) {
                sent.push(now);
            }
        }
        while let Some(due) = p.next_due() {
            p.pop_due(due).unwrap();
            out.push(due);
        }
        sent.into_iter().zip(out).collect()
    }

    #[test]
    fn no_impairment_passes_everything_at_once() {
        let t0 = Instant::now();
        let mut p = Pipeline::new(Params::default(), 1);
        assert_eq!(p.push(t0, vec![1; 100]), Verdict::Queued(t0));
        assert_eq!(p.pop_due(t0), Some(vec![1; 100]));
        assert_eq!(p.pop_due(t0), None);
        assert_eq!(p.next_due(), None);
    }

    #[test]
    fn delay_holds_each_packet_for_its_length_and_keeps_order() {
        let t0 = Instant::now();
        let mut p = Pipeline::new(Params { delay: ms(20), ..Params::default() }, 1);
        p.push(t0, vec![1; 10]);
        p.push(t0 + ms(1), vec![2; 10]);
        assert_eq!(p.pop_due(t0 + ms(19)), None);
        assert_eq!(p.next_due(), Some(t0 + ms(20)));
        assert_eq!(p.pop_due(t0 + ms(20)), Some(vec![1; 10]));
        assert_eq!(p.pop_due(t0 + ms(20)), None);
        assert_eq!(p.pop_due(t0 + ms(21)), Some(vec![2; 10]));
    }

    #[test]
    fn jitter_spreads_delays_within_bounds_without_reordering() {
        let t0 = Instant::now();
        let params = Params { delay: ms(30), jitter: ms(10), ..Params::default() };
        let mut p = Pipeline::new(params, 9);
        let pairs = drive(&mut p, t0, 2000, 100, ms(5));
        let delays: Vec<f64> = pairs.iter().map(|(s, d)| (*d - *s).as_secs_f64() * 1e3).collect();
        assert!(delays.iter().all(|d| (20.0..=40.0 + 5.0).contains(d)), "a delay out of range");
        let (lo, hi) = delays.iter().fold((f64::MAX, 0f64), |(l, h), d| (l.min(*d), h.max(*d)));
        assert!(lo < 22.0 && hi > 38.0, "delays {lo}..{hi} do not fill ±10 ms");
        assert!(pairs.windows(2).all(|w| w[0].1 <= w[1].1), "reordered");
    }

    #[test]
    fn rate_limit_spaces_packets_by_their_sending_time() {
        let t0 = Instant::now();
        // 8 Mbit/s: 1000 bytes take 1 ms.
        let params = Params { rate_bps: 8_000_000, queue: QueueLimit::Bytes(1_000_000), ..Params::default() };
        let mut p = Pipeline::new(params, 1);
        for _ in 0..10 {
            p.push(t0, vec![0; 1000]);
        }
        let mut times = Vec::new();
        while let Some(due) = p.next_due() {
            p.pop_due(due).unwrap();
            times.push(due - t0);
        }
        assert_eq!(times, (1..=10).map(ms).collect::<Vec<_>>());
    }

    #[test]
    fn a_flow_faster_than_the_rate_gets_the_rate_and_the_queue_drops_the_rest() {
        let t0 = Instant::now();
        // 4 Mbit/s bottleneck, 20 kB queue; offered 8 Mbit/s (1000 B every 1 ms) for 2 s.
        let params = Params { rate_bps: 4_000_000, queue: QueueLimit::Bytes(20_000), ..Params::default() };
        let mut p = Pipeline::new(params, 1);
        let pairs = drive(&mut p, t0, 2000, 1000, ms(1));
        let s = p.stats();
        assert_eq!(s.delivered as usize, pairs.len());
        let span = (pairs.last().unwrap().1 - pairs[0].1).as_secs_f64();
        let rate = (pairs.len() - 1) as f64 * 8000.0 / span;
        assert!((rate - 4e6).abs() < 4e4, "rate {rate}");
        assert!(s.queue_full > 900 && s.queue_full < 1100, "{s:?}");
        // The queue holds at most 20 kB: 40 ms at 4 Mbit/s (+ 2 ms sending the packet itself),
        // and a flow twice the rate fills it.
        let worst = pairs.iter().map(|(s, d)| *d - *s).max().unwrap();
        assert!(worst <= ms(42) && worst >= ms(38), "worst queueing {worst:?}");
    }

    #[test]
    fn a_time_limited_queue_follows_the_rate() {
        let t0 = Instant::now();
        let params = Params { rate_bps: 1_000_000, queue: QueueLimit::Time(ms(50)), ..Params::default() };
        let mut p = Pipeline::new(params, 1);
        let pairs = drive(&mut p, t0, 1000, 1250, ms(1));
        let worst = pairs.iter().map(|(s, d)| *d - *s).max().unwrap();
        // 1250 B at 1 Mbit/s take 10 ms: at most 50 ms waiting plus one packet.
        assert!(worst <= ms(61) && worst >= ms(50), "worst {worst:?}");
    }

    #[test]
    fn a_rate_change_applies_to_packets_from_then_on() {
        let t0 = Instant::now();
        let params = Params { rate_bps: 20_000_000, queue: QueueLimit::Bytes(1 << 20), ..Params::default() };
        let mut p = Pipeline::new(params.clone(), 1);
        // 2500 B at 20 Mbit/s = 1 ms; at 4 Mbit/s = 5 ms.
        assert_eq!(p.push(t0, vec![0; 2500]), Verdict::Queued(t0 + ms(1)));
        p.set_params(Params { rate_bps: 4_000_000, ..params });
        assert_eq!(p.push(t0 + ms(10), vec![0; 2500]), Verdict::Queued(t0 + ms(15)));
    }

    #[test]
    fn an_outage_drops_what_arrives_and_what_is_due_during_it() {
        let t0 = Instant::now();
        let mut p = Pipeline::new(Params { delay: ms(10), ..Params::default() }, 1);
        p.push(t0, vec![1]); // due at 10 ms, inside the outage
        p.outage(t0 + ms(5), ms(100));
        assert_eq!(p.push(t0 + ms(50), vec![2]), Verdict::Down);
        assert_eq!(p.pop_due(t0 + ms(10)), None);
        // Sent just before the end, due after it: delivered.
        let v = p.push(t0 + ms(105), vec![3]);
        assert_eq!(v, Verdict::Queued(t0 + ms(115)));
        assert_eq!(p.pop_due(t0 + ms(115)), Some(vec![3]));
        let s = p.stats();
        assert_eq!((s.received, s.delivered, s.down), (3, 1, 2));
    }

    #[test]
    fn loss_counts_and_takes_about_its_share() {
        let t0 = Instant::now();
        let mut p = Pipeline::new(Params { loss_pct: 10.0, ..Params::default() }, 5);
        for i in 0..10_000u32 {
            p.push(t0 + Duration::from_micros(i as u64), vec![0; 10]);
        }
        let s = p.stats();
        assert_eq!(s.received, 10_000);
        // sd = 30; 5 sd.
        assert!((850..1150).contains(&s.lost), "{s:?}");
    }
}
