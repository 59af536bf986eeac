//! How often one viewer may make the encoder produce a keyframe. A keyframe costs every viewer
//! of the stream bandwidth (it is several times a delta frame) and the encoder time; the
//! encoder already makes at most one every 250 ms however many ask, but a view-only viewer
//! asking for one all the time would still make the whole stream a stream of keyframes. Its
//! requests go through this limiter: on a peer connection its RTCP PLIs and FIRs and its
//! `keyframe` messages (one limiter per peer, in the WebRTC hub); over the WebSocket its
//! `keyframe` messages and the requests its video subscription makes when it falls behind
//! (one [`SharedKeyframeLimiter`] per viewer, see
//! [`Subscription::new`](crate::Subscription::new)).
//!
//! Pure: time is passed in.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One viewer's limiter, shared by the places its requests come from.
pub type SharedKeyframeLimiter = Arc<Mutex<KeyframeLimiter>>;

/// Least time between two keyframes a view-only viewer may cause.
pub const VIEW_ONLY_KEYFRAME_INTERVAL: Duration = Duration::from_secs(1);

/// What became of a keyframe request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyframeVerdict {
    /// Pass it on now.
    Granted,
    /// Too soon: it is held and becomes due when the interval is over (see
    /// [`KeyframeLimiter::take_due`]). Counts as refused.
    Deferred,
    /// Too soon, and one is already held: dropped. Counts as refused.
    Dropped,
}

impl KeyframeVerdict {
    /// Whether the request was not passed on at once (for the refused counter).
    pub fn refused(self) -> bool {
        self != Self::Granted
    }
}

/// One viewer's keyframe requests: at most one passed on per `interval`.
#[derive(Debug, Clone)]
pub struct KeyframeLimiter {
    interval: Duration,
    last: Option<Instant>,
    held: bool,
}

impl KeyframeLimiter {
    /// At most one request per `interval`.
    pub fn new(interval: Duration) -> Self {
        Self { interval, last: None, held: false }
    }

    /// A request at `now` that is dropped when too soon (the viewer asks again if it still
    /// needs one): returns whether to pass it on.
    pub fn allow(&mut self, now: Instant) -> bool {
        if self.is_free(now) {
            self.last = Some(now);
            true
        } else {
            false
        }
    }

    /// A request at `now` that, when too soon, is held until the interval is over (so a viewer
    /// whose decoder needs a keyframe always gets one, at most one interval late).
    pub fn request(&mut self, now: Instant) -> KeyframeVerdict {
        if self.allow(now) {
            self.held = false;
            KeyframeVerdict::Granted
        } else if self.held {
            KeyframeVerdict::Dropped
        } else {
            self.held = true;
            KeyframeVerdict::Deferred
        }
    }

    /// Whether a held request is due at `now`; if so, it is passed on (counted as granted).
    pub fn take_due(&mut self, now: Instant) -> bool {
        if self.held && self.is_free(now) {
            self.held = false;
            self.last = Some(now);
            true
        } else {
            false
        }
    }

    /// Forgets a held request (what it was for has come anyway).
    pub fn cancel_held(&mut self) {
        self.held = false;
    }

    /// When the held request becomes due, if one is held.
    pub fn due_at(&self) -> Option<Instant> {
        if self.held { self.last.map(|t| t + self.interval) } else { None }
    }

    fn is_free(&self, now: Instant) -> bool {
        self.last.is_none_or(|t| now.saturating_duration_since(t) >= self.interval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn fifty_requests_in_two_seconds_pass_two_and_hold_one() {
        let t0 = Instant::now();
        let mut l = KeyframeLimiter::new(VIEW_ONLY_KEYFRAME_INTERVAL);
        let mut granted = 0;
        let mut refused = 0;
        let mut due = 0;
        for i in 0..50u32 {
            let now = t0 + MS * (i * 40);
            due += u32::from(l.take_due(now));
            match l.request(now) {
                KeyframeVerdict::Granted => granted += 1,
                v => {
                    assert!(v.refused());
                    refused += 1;
                }
            }
        }
        // At 0 ms one is granted; the one held after it is due at 1000 ms; the next is
        // held until 2000 ms, after the last request (1960 ms).
        assert_eq!((granted, due, refused), (1, 1, 49));
        assert_eq!(l.due_at(), Some(t0 + MS * 2000));
        assert!(!l.take_due(t0 + MS * 1999));
        assert!(l.take_due(t0 + MS * 2000));
        assert_eq!(l.due_at(), None);
        assert!(!l.take_due(t0 + MS * 5000), "nothing is held any more");
    }

    #[test]
    fn a_request_after_the_interval_passes_at_once() {
        let t0 = Instant::now();
        let mut l = KeyframeLimiter::new(VIEW_ONLY_KEYFRAME_INTERVAL);
        assert_eq!(l.request(t0), KeyframeVerdict::Granted);
        assert_eq!(l.request(t0 + MS * 999), KeyframeVerdict::Deferred);
        assert_eq!(l.request(t0 + MS * 999), KeyframeVerdict::Dropped);
        // The held one is overtaken by a new request once the interval is over.
        assert_eq!(l.request(t0 + MS * 1000), KeyframeVerdict::Granted);
        assert!(!l.take_due(t0 + MS * 3000));
        // A held request that is cancelled is not made.
        assert_eq!(l.request(t0 + MS * 3500), KeyframeVerdict::Granted);
        assert_eq!(l.request(t0 + MS * 3600), KeyframeVerdict::Deferred);
        l.cancel_held();
        assert_eq!(l.due_at(), None);
        assert!(!l.take_due(t0 + MS * 5000));
    }

    #[test]
    fn allow_drops_what_comes_too_soon() {
        let t0 = Instant::now();
        let mut l = KeyframeLimiter::new(Duration::from_secs(1));
        let passed = (0..100u32).filter(|i| l.allow(t0 + MS * (i * 50))).count();
        assert_eq!(passed, 5, "one per second over 5 s");
        assert_eq!(l.due_at(), None, "allow never holds a request");
    }
}
