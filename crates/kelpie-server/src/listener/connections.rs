//! The open HTTP connections and the cap on them (`--max-connections`). A connection is
//! waiting for a request (its headers, or the next one on a kept-alive connection), busy with
//! one, or upgraded to a WebSocket. At the cap, a new connection takes the place of the one
//! that has waited longest for a request: slowloris connections that trickle their headers
//! are the first to go, and a normal client, whose headers come at once, still gets in. Only
//! when every connection is busy or a WebSocket is the new one refused.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::Notify;

/// What a connection is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for a request's headers.
    Waiting,
    /// Answering a request.
    Busy,
    /// Upgraded (a WebSocket): no longer HTTP, never closed to make room.
    Upgraded,
}

/// What to do with a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Below the cap: serve it.
    Admit,
    /// At the cap: close this connection (the one waiting longest) and serve the new one.
    Evict(u64),
    /// At the cap and none waiting: close the new connection.
    Refuse,
}

/// The admission policy, for the `open` connections as (id, phase, since when), at most
/// `max` of them.
pub fn admission(open: impl IntoIterator<Item = (u64, Phase, Instant)>, max: usize) -> Admission {
    let mut count = 0;
    let mut longest: Option<(Instant, u64)> = None;
    for (id, phase, since) in open {
        count += 1;
        if phase == Phase::Waiting && longest.is_none_or(|(t, _)| since < t) {
            longest = Some((since, id));
        }
    }
    match longest {
        _ if count < max => Admission::Admit,
        Some((_, id)) => Admission::Evict(id),
        None => Admission::Refuse,
    }
}

/// Counters of the listener.
#[derive(Debug, Default)]
pub struct ConnCounters {
    /// Connections served.
    pub accepted: AtomicU64,
    /// New connections closed at once: at the cap with none to close instead.
    pub refused: AtomicU64,
    /// Connections closed to make room for a new one.
    pub evicted: AtomicU64,
    /// Connections closed for sending no complete request headers in time.
    pub header_timeouts: AtomicU64,
}

#[derive(Debug)]
struct Entry {
    phase: Phase,
    since: Instant,
    evict: Arc<Notify>,
}

/// The open connections.
#[derive(Debug)]
pub struct Connections {
    max: usize,
    open: Mutex<HashMap<u64, Entry>>,
    next_id: AtomicU64,
    /// What happened to connections so far.
    pub counters: ConnCounters,
}

impl Connections {
    /// No connections yet, at most `max` at once.
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            open: Mutex::default(),
            next_id: AtomicU64::new(0),
            counters: ConnCounters::default(),
        })
    }

    /// Takes in a connection accepted at `now`, closing another if the policy says so; `None`
    /// if it is refused.
    pub fn admit(self: &Arc<Self>, now: Instant) -> Option<Arc<Slot>> {
        let mut open = self.open.lock().unwrap();
        match admission(open.iter().map(|(id, e)| (*id, e.phase, e.since)), self.max) {
            Admission::Admit => {}
            Admission::Evict(id) => {
                if let Some(e) = open.remove(&id) {
                    e.evict.notify_one();
                    self.counters.evicted.fetch_add(1, Ordering::Relaxed);
                }
            }
            Admission::Refuse => {
                self.counters.refused.fetch_add(1, Ordering::Relaxed);
                return None;
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let evict = Arc::new(Notify::new());
        open.insert(id, Entry { phase: Phase::Waiting, since: now, evict: evict.clone() });
        self.counters.accepted.fetch_add(1, Ordering::Relaxed);
        Some(Arc::new(Slot { conns: self.clone(), id, evict }))
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.lock().unwrap().len()
    }

    /// Writes the gauge and counters in Prometheus' text format.
    pub fn write_metrics(&self, out: &mut String) {
        let r = Ordering::Relaxed;
        let c = &self.counters;
        use crate::prometheus::{Kind, counters, scalar};
        scalar(
            out,
            "kelpie_http_connections",
            Kind::Gauge,
            "Open HTTP connections, WebSockets included.",
            self.open(),
        );
        counters(
            out,
            [
                (
                    "kelpie_http_connections_total",
                    "HTTP connections accepted and served.",
                    c.accepted.load(r),
                ),
                (
                    "kelpie_http_connections_refused_total",
                    "HTTP connections closed at once: --max-connections reached, none waiting to close instead.",
                    c.refused.load(r),
                ),
                (
                    "kelpie_http_connections_evicted_total",
                    "HTTP connections waiting for a request, closed to make room for a new one.",
                    c.evicted.load(r),
                ),
                (
                    "kelpie_http_header_timeouts_total",
                    "HTTP connections closed for not sending a request's headers within --header-timeout.",
                    c.header_timeouts.load(r),
                ),
            ],
        );
    }
}

/// One admitted connection's place; it is given up when the last holder (the connection's
/// byte stream, which a WebSocket keeps after the upgrade) drops it.
#[derive(Debug)]
pub struct Slot {
    conns: Arc<Connections>,
    id: u64,
    evict: Arc<Notify>,
}

impl Slot {
    /// Notes what the connection does from `now` on.
    pub fn set_phase(&self, phase: Phase, now: Instant) {
        if let Some(e) = self.conns.open.lock().unwrap().get_mut(&self.id) {
            e.phase = phase;
            e.since = now;
        }
    }

    /// The counters of all connections.
    pub fn counters(&self) -> &ConnCounters {
        &self.conns.counters
    }

    /// Resolves when the connection is to be closed to make room for another.
    pub async fn evicted(&self) {
        self.evict.notified().await;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.conns.open.lock().unwrap().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_connection_waiting_longest_makes_room() {
        let t = Instant::now();
        let s = |ms| t + Duration::from_millis(ms);
        let open = [
            (1, Phase::Waiting, s(30)),
            (2, Phase::Busy, s(0)),
            (3, Phase::Waiting, s(10)),
            (4, Phase::Upgraded, s(5)),
        ];
        assert_eq!(admission(open, 5), Admission::Admit);
        assert_eq!(admission(open, 4), Admission::Evict(3));
        let busy = [(1, Phase::Busy, s(0)), (2, Phase::Upgraded, s(0))];
        assert_eq!(admission(busy, 2), Admission::Refuse);
        assert_eq!(admission([], 1), Admission::Admit);
    }

    #[tokio::test]
    async fn slots_are_counted_evicted_and_given_back() {
        let conns = Connections::new(2);
        let t = Instant::now();
        let a = conns.admit(t).unwrap();
        let b = conns.admit(t + Duration::from_millis(1)).unwrap();
        b.set_phase(Phase::Upgraded, t);
        assert_eq!(conns.open(), 2);
        // At the cap: a, waiting, makes room for c.
        let c = conns.admit(t + Duration::from_millis(2)).unwrap();
        tokio::time::timeout(Duration::from_secs(1), a.evicted()).await.expect("a was told to close");
        assert_eq!(conns.open(), 2);
        drop(a); // Already gone from the table: dropping it frees nothing twice.
        assert_eq!(conns.open(), 2);
        c.set_phase(Phase::Busy, t);
        assert!(conns.admit(t).is_none(), "all busy or upgraded: the new one is refused");
        drop(b);
        assert_eq!(conns.open(), 1);
        assert!(conns.admit(t).is_some());
        let r = Ordering::Relaxed;
        assert_eq!(
            (conns.counters.accepted.load(r), conns.counters.evicted.load(r), conns.counters.refused.load(r)),
            (4, 1, 1)
        );
        let mut text = String::new();
        conns.write_metrics(&mut text);
        assert!(text.contains("kelpie_http_connections_refused_total 1\n"), "{text}");
        assert!(text.contains("kelpie_http_connections 1\n"), "{text}");
    }
}
