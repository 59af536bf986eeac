//! When a viewer's signalling WebSocket is pinged, and when it counts as gone: a sans-IO
//! policy, time passed in. A connection whose other end vanished without closing it (a laptop
//! lid shut, a NAT entry expired, a client that never reads) stays open on the server for as
//! long as TCP keeps it, holding a viewer slot and its queue; these rules close it within
//! [`SILENCE_LIMIT`] (and a write stuck for [`WRITE_TIMEOUT`] sooner).
//!
//! Browsers answer a WebSocket ping by themselves, in background tabs too, so a healthy page
//! is never silent for long; Kelpie's own page sends nothing else on purpose.

use std::time::{Duration, Instant};

/// How often the server pings a viewer.
pub const PING_INTERVAL: Duration = Duration::from_secs(10);

/// A viewer from which nothing (a pong or any message) arrived for this long is closed: two
/// pings unanswered, and 5 s for the second answer to travel.
pub const SILENCE_LIMIT: Duration = Duration::from_secs(25);

/// A single write to a viewer's socket that does not complete within this closes the
/// connection: the viewer stopped reading (its TCP buffers are full).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a close frame (with its reason) may take to go out before the socket is dropped
/// without one.
pub const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// What is due on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Send a ping.
    Ping,
    /// Nothing arrived for [`SILENCE_LIMIT`]: close the connection.
    Silent,
}

/// The ping and silence clock of one connection.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    heard: Instant,
    pinged: Instant,
}

impl Heartbeat {
    /// A connection that opened at `now`.
    pub fn new(now: Instant) -> Self {
        Self { heard: now, pinged: now }
    }

    /// Something (a message, a ping, a pong) arrived at `now`.
    pub fn heard(&mut self, now: Instant) {
        self.heard = self.heard.max(now);
    }

    /// When [`Heartbeat::poll`] has something to say next.
    pub fn next_at(&self) -> Instant {
        (self.pinged + PING_INTERVAL).min(self.heard + SILENCE_LIMIT)
    }

    /// What is due at `now`, if anything (a ping is due once per [`PING_INTERVAL`]).
    pub fn poll(&mut self, now: Instant) -> Option<Due> {
        if now >= self.heard + SILENCE_LIMIT {
            return Some(Due::Silent);
        }
        if now >= self.pinged + PING_INTERVAL {
            self.pinged = now;
            return Some(Due::Ping);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drives `h` from `from` to `to` the way the socket loop does (sleep until `next_at`,
    /// then poll), and returns what came due and when, in seconds after `t0`.
    fn run(h: &mut Heartbeat, t0: Instant, from: Duration, to: Duration) -> Vec<(u64, Due)> {
        let mut out = Vec::new();
        let mut now = t0 + from;
        while now <= t0 + to {
            if let Some(due) = h.poll(now) {
                out.push(((now - t0).as_secs(), due));
                if due == Due::Silent {
                    break;
                }
            }
            now = h.next_at().max(now);
        }
        out
    }

    #[test]
    fn a_silent_peer_is_pinged_twice_and_closed_after_25_s() {
        let t0 = Instant::now();
        let mut h = Heartbeat::new(t0);
        assert_eq!(
            run(&mut h, t0, Duration::ZERO, Duration::from_secs(60)),
            [(10, Due::Ping), (20, Due::Ping), (25, Due::Silent)]
        );
    }

    #[test]
    fn a_peer_that_answers_is_pinged_forever_and_never_closed() {
        let t0 = Instant::now();
        let mut h = Heartbeat::new(t0);
        let mut pings = 0;
        let mut now = t0;
        // The pong comes back 300 ms after each ping, for an hour.
        while now < t0 + Duration::from_secs(3600) {
            now = h.next_at();
            match h.poll(now) {
                Some(Due::Ping) => {
                    pings += 1;
                    h.heard(now + Duration::from_millis(300));
                }
                Some(Due::Silent) => panic!("closed at {:?}", now - t0),
                None => {}
            }
        }
        assert_eq!(pings, 360);
    }

    #[test]
    fn any_message_counts_and_a_late_answer_is_still_in_time() {
        let t0 = Instant::now();
        let mut h = Heartbeat::new(t0);
        // Input at 7 s; the pings at 10, 20 and 30 s go unanswered; silence counts from 7 s.
        h.heard(t0 + Duration::from_secs(7));
        assert_eq!(h.poll(t0 + Duration::from_secs(10)), Some(Due::Ping));
        assert_eq!(h.poll(t0 + Duration::from_secs(20)), Some(Due::Ping));
        assert_eq!(h.next_at(), t0 + Duration::from_secs(30));
        assert_eq!(h.poll(t0 + Duration::from_secs(30)), Some(Due::Ping));
        assert_eq!(h.next_at(), t0 + Duration::from_secs(32));
        assert_eq!(h.poll(t0 + Duration::from_millis(31_800)), None);
        // An answer at 31.9 s keeps it open; the close moves to 56.9 s.
        h.heard(t0 + Duration::from_millis(31_900));
        assert_eq!(h.next_at(), t0 + Duration::from_secs(40));
        assert_eq!(h.poll(t0 + Duration::from_secs(40)), Some(Due::Ping));
        assert_eq!(h.poll(t0 + Duration::from_secs(50)), Some(Due::Ping));
        assert_eq!(h.poll(t0 + Duration::from_millis(56_899)), None);
        assert_eq!(h.poll(t0 + Duration::from_millis(56_900)), Some(Due::Silent));
        // Time reported out of order never moves the silence back.
        h.heard(t0);
        assert_eq!(h.poll(t0 + Duration::from_millis(56_900)), Some(Due::Silent));
    }
}
