//! Encoded media broadcast to any number of consumers, and how a consumer that fell behind
//! catches up.
//!
//! - [`Catchup`] is the policy, sans-IO: given the time, each frame's capture time and
//!   whether it decodes on its own, and notices of frames lost to lag, it says whether to
//!   deliver the frame, drop it, or drop it and ask the source for a keyframe (once per gap).
//!   The WebRTC hub runs one per peer; every [`Subscription`] runs one.
//! - [`Publisher`] is the sending side of one running broadcast. With a replay window it keeps
//!   the frames since the last keyframe while that keyframe is recent, so that a subscriber
//!   joining then starts from it at once instead of waiting for a keyframe that the
//!   keyframe rate limit would hold back.
//! - [`Subscription`] is a consumer's handle: [`Subscription::next_decodable`] returns only
//!   frames its decoder can use, asks for keyframes through the source (a view-only
//!   viewer's through its [`KeyframeLimiter`], which holds one asked for too soon until
//!   it may be made), and counts what it dropped.
//! - [`LazyBroadcast`] starts a producer on the first subscription, lets it stop when the last
//!   subscription is dropped, and starts a new one for the next subscriber after it failed.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::sync::broadcast;

use crate::MediaError;
use crate::limit::{KeyframeLimiter, SharedKeyframeLimiter};

/// A frame of a broadcast, as far as catching up is concerned.
pub trait Decodable: Send + Sync + 'static {
    /// When it was captured.
    fn captured(&self) -> Instant;
    /// Whether a decoder can use it without the frames before it (a keyframe; every audio
    /// frame).
    fn decodable_alone(&self) -> bool;
}

/// What to do with a frame (see [`Catchup::frame`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Hand it to the decoder.
    Deliver,
    /// Drop it: the decoder cannot use it, or it is too late.
    Drop,
    /// Drop it, and ask the source for a keyframe (the first drop of a gap).
    DropAndRequestKeyframe,
}

impl Verdict {
    /// Whether the frame is delivered.
    pub fn delivers(self) -> bool {
        self == Self::Deliver
    }
}

/// Catch-up policy of one consumer of a broadcast. Sans-IO: time is passed in.
///
/// A consumer starts in a gap (its decoder has nothing yet). A gap also begins when a frame
/// arrives more than the allowed lag after its capture, when frames were lost ([`lagged`]),
/// or when the consumer says its decoder needs a keyframe ([`need_keyframe`]). In a gap every
/// frame is dropped until one that decodes on its own arrives in time; the gap's first drop
/// asks for a keyframe, and no other does, unless the answer is known to be lost: a keyframe
/// that came too late to be used, or frames lost to lag, let the next drop ask again (a
/// consumer would otherwise wait for a keyframe that never comes).
///
/// [`lagged`]: Catchup::lagged
/// [`need_keyframe`]: Catchup::need_keyframe
#[derive(Debug, Clone)]
pub struct Catchup {
    /// Dropping until a frame decodable on its own arrives in time.
    skipping: bool,
    /// A keyframe was asked for in this gap and is still to come.
    requested: bool,
    dropped: u64,
}

impl Default for Catchup {
    fn default() -> Self {
        Self::new()
    }
}

impl Catchup {
    /// A consumer whose decoder has nothing yet: it waits for a frame decodable on its own,
    /// and no keyframe has been asked for.
    pub fn new() -> Self {
        Self { skipping: true, requested: false, dropped: 0 }
    }

    /// Decides about a frame captured at `captured` that is handed over at `now`.
    /// `decodable_alone`: a keyframe (video) or any audio frame. `max_lag`: the oldest a frame
    /// may be when it is handed over (`Duration::MAX`: no limit).
    pub fn frame(
        &mut self,
        now: Instant,
        captured: Instant,
        decodable_alone: bool,
        max_lag: Duration,
    ) -> Verdict {
        let late = now.saturating_duration_since(captured) > max_lag;
        if !late && (decodable_alone || !self.skipping) {
            self.skipping = false;
            self.requested = false;
            return Verdict::Deliver;
        }
        self.skipping = true;
        self.dropped += 1;
        if decodable_alone {
            // The keyframe asked for (or one like it) came too late: another is needed.
            self.requested = false;
        }
        if self.requested {
            Verdict::Drop
        } else {
            self.requested = true;
            Verdict::DropAndRequestKeyframe
        }
    }

    /// Notes that `missed` frames were lost before reaching this consumer. Returns whether to
    /// ask for a keyframe (always: the one asked for before may have been among them).
    pub fn lagged(&mut self, missed: u64) -> bool {
        self.skipping = true;
        self.dropped += missed;
        self.requested = true;
        true
    }

    /// The decoder needs a keyframe (a new viewer, or one that saw corruption): delta frames
    /// are dropped until one arrives. Returns whether to ask for it: false when this gap has
    /// already asked.
    pub fn need_keyframe(&mut self) -> bool {
        self.skipping = true;
        !std::mem::replace(&mut self.requested, true)
    }

    /// Whether frames are being dropped until a frame decodable on its own.
    pub fn waiting(&self) -> bool {
        self.skipping
    }

    /// Frames dropped so far (including those lost to lag).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

/// What a subscription holds of its source: it keeps the source running, and takes
/// keyframe requests.
pub trait Upstream: Send + Sync + 'static {
    /// Asks for a keyframe soon. Sources whose every frame decodes alone ignore it.
    fn request_keyframe(&self) {}
}

/// Frames since the last one decodable alone, while that one is recent.
struct Replay<F> {
    window: Duration,
    frames: Vec<Arc<F>>,
}

/// The sending side of one running broadcast. Its subscribers see the broadcast end
/// ([`Subscription::next_decodable`] returns `None`) once it is dropped.
pub struct Publisher<F> {
    tx: broadcast::Sender<Arc<F>>,
    replay: Option<Mutex<Replay<F>>>,
}

impl<F: Decodable> Publisher<F> {
    /// A broadcast where a subscriber may fall `depth` frames behind before it loses frames.
    /// With `replay`, a new subscriber starts from the last frame decodable alone when that
    /// was captured less than `replay` ago (with the frames after it), instead of waiting for
    /// a new one; see [`Publisher::subscribe`].
    pub fn new(depth: usize, replay: Option<Duration>) -> Self {
        let (tx, _) = broadcast::channel(depth);
        Self { tx, replay: replay.map(|window| Mutex::new(Replay { window, frames: Vec::new() })) }
    }

    /// Sends a frame to every subscriber.
    pub fn send(&self, frame: F) {
        let frame = Arc::new(frame);
        let Some(replay) = &self.replay else {
            // No receivers is fine: the source is about to stop.
            let _ = self.tx.send(frame);
            return;
        };
        let mut r = replay.lock().unwrap_or_else(|e| e.into_inner());
        if frame.decodable_alone() {
            r.frames.clear();
            r.frames.push(frame.clone());
        } else if r
            .frames
            .first()
            .is_some_and(|k| frame.captured().saturating_duration_since(k.captured()) < r.window)
        {
            r.frames.push(frame.clone());
        } else {
            // Bounded: nothing is kept once the last keyframe is older than the window.
            r.frames.clear();
        }
        // Sent under the lock, so a subscriber gets every frame once: in its backlog or
        // through the channel.
        let _ = self.tx.send(frame);
    }

    /// A receiver of every frame sent from now on, and the backlog to take before them: the
    /// frames since the last one decodable alone if that was captured less than the replay
    /// window before `now`, else nothing.
    pub fn subscribe(&self, now: Instant) -> (broadcast::Receiver<Arc<F>>, VecDeque<Arc<F>>) {
        let Some(replay) = &self.replay else {
            return (self.tx.subscribe(), VecDeque::new());
        };
        let r = replay.lock().unwrap_or_else(|e| e.into_inner());
        let rx = self.tx.subscribe();
        let recent = r.frames.first().is_some_and(|k| now.saturating_duration_since(k.captured()) < r.window);
        let backlog = if recent { r.frames.iter().cloned().collect() } else { VecDeque::new() };
        (rx, backlog)
    }
}

/// What one item taken from the broadcast comes to (see [`Subscription::take`]).
enum Taken<F> {
    /// A frame for the decoder.
    Frame(Arc<F>),
    /// Nothing for the decoder: dropped, or frames were lost.
    Skipped,
    /// The broadcast ended.
    Ended,
}

/// One consumer's view of a broadcast. It keeps the source running while it exists.
pub struct Subscription<F> {
    upstream: Arc<dyn Upstream>,
    backlog: VecDeque<Arc<F>>,
    rx: broadcast::Receiver<Arc<F>>,
    catchup: Catchup,
    /// The limiter its keyframe requests go through, if it is limited.
    keyframes: Option<SharedKeyframeLimiter>,
    /// Keyframe requests the limiter did not pass on at once.
    keyframes_refused: u64,
}

/// The time on tokio's clock (the same as `Instant::now()` but in tests that pause it).
fn clock_now() -> Instant {
    tokio::time::Instant::now().into_std()
}

fn lock(limiter: &SharedKeyframeLimiter) -> std::sync::MutexGuard<'_, KeyframeLimiter> {
    limiter.lock().unwrap_or_else(|e| e.into_inner())
}

impl<F: Decodable> Subscription<F> {
    /// Subscribes to `publisher` at `now` on behalf of `upstream` (kept alive, and asked for
    /// keyframes). A subscriber whose backlog does not start with a frame decodable alone
    /// asks for a keyframe at once, unless `fresh`: the producer has just started, and its
    /// first frame decodes alone (it reaches this subscriber through the channel or, if it
    /// was sent already, the backlog).
    ///
    /// With `keyframes`, every keyframe it asks for (that one, those on falling behind, and
    /// [`Subscription::request_keyframe`]) goes through that limiter, which may be shared
    /// with the viewer's other requests: one asked for too soon is held and made when the
    /// limiter's interval is over (while the subscription is read), so that a viewer that
    /// falls behind still recovers, with at most one keyframe an interval. Those not made at
    /// once are counted ([`Subscription::keyframes_refused`]).
    pub fn new(
        publisher: &Publisher<F>,
        upstream: Arc<dyn Upstream>,
        now: Instant,
        fresh: bool,
        keyframes: Option<SharedKeyframeLimiter>,
    ) -> Self {
        let (rx, backlog) = publisher.subscribe(now);
        let mut catchup = Catchup::new();
        catchup.need_keyframe();
        let mut sub = Self { upstream, backlog, rx, catchup, keyframes, keyframes_refused: 0 };
        if !fresh && sub.backlog.front().is_none_or(|f| !f.decodable_alone()) {
            sub.ask(now);
        }
        sub
    }

    /// The next frame the decoder can use: frames captured more than `max_lag` before they
    /// are taken, and frames that depend on dropped ones, are dropped (and a keyframe asked
    /// for once per gap). `None` when the broadcast has ended (the source stopped or failed;
    /// subscribing again starts a new one).
    ///
    /// Cancel-safe: may be used in `tokio::select!`; a frame is never lost to cancellation.
    pub async fn next_decodable(&mut self, max_lag: Duration) -> Option<Arc<F>> {
        loop {
            // A held keyframe request is made when it is due, frames or not (a still screen
            // sends none).
            let due = self.keyframes.as_ref().and_then(|l| lock(l).due_at());
            let got = tokio::select! {
                biased;
                got = self.next_raw() => got,
                () = tokio::time::sleep_until(due.map_or_else(tokio::time::Instant::now, Into::into)), if due.is_some() => {
                    self.make_due(clock_now());
                    continue;
                }
            };
            match self.take(got, clock_now(), max_lag) {
                Taken::Frame(f) => return Some(f),
                Taken::Skipped => {}
                Taken::Ended => return None,
            }
        }
    }

    /// Applies the catch-up policy to one item taken from the broadcast at `now`.
    fn take(
        &mut self,
        got: Result<Arc<F>, broadcast::error::RecvError>,
        now: Instant,
        max_lag: Duration,
    ) -> Taken<F> {
        self.make_due(now);
        let frame = match got {
            Ok(f) => f,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                if self.catchup.lagged(n) {
                    self.ask(now);
                }
                return Taken::Skipped;
            }
            Err(broadcast::error::RecvError::Closed) => return Taken::Ended,
        };
        match self.catchup.frame(now, frame.captured(), frame.decodable_alone(), max_lag) {
            Verdict::Deliver => {
                if frame.decodable_alone()
                    && let Some(l) = &self.keyframes
                {
                    // What a held request was for has come.
                    lock(l).cancel_held();
                }
                return Taken::Frame(frame);
            }
            Verdict::Drop => {}
            Verdict::DropAndRequestKeyframe => self.ask(now),
        }
        Taken::Skipped
    }

    /// Asks the source for a keyframe at `now`, through the limiter if there is one.
    fn ask(&mut self, now: Instant) {
        let refused = self.keyframes.as_ref().is_some_and(|l| lock(l).request(now).refused());
        if refused {
            self.keyframes_refused += 1;
        } else {
            self.upstream.request_keyframe();
        }
    }

    /// Makes a held keyframe request whose time has come by `now`.
    fn make_due(&mut self, now: Instant) {
        if self.keyframes.as_ref().is_some_and(|l| lock(l).take_due(now)) {
            self.upstream.request_keyframe();
        }
    }

    /// The next frame as broadcast, without the catch-up policy (a consumer that applies it
    /// itself, like the WebRTC hub per peer): `Lagged` when frames were lost, `Closed` when
    /// the broadcast ended.
    pub async fn recv(&mut self) -> Result<Arc<F>, broadcast::error::RecvError> {
        self.next_raw().await
    }

    async fn next_raw(&mut self) -> Result<Arc<F>, broadcast::error::RecvError> {
        match self.backlog.pop_front() {
            Some(f) => Ok(f),
            None => self.rx.recv().await,
        }
    }

    /// Asks the source for a keyframe (the viewer's decoder failed): frames are dropped until
    /// it arrives.
    pub fn request_keyframe(&mut self) {
        self.catchup.need_keyframe();
        self.ask(clock_now());
    }

    /// Frames this subscriber dropped or lost so far (cumulative, for metrics).
    pub fn dropped(&self) -> u64 {
        self.catchup.dropped()
    }

    /// Keyframe requests its limiter did not pass on at once (cumulative, for metrics).
    pub fn keyframes_refused(&self) -> u64 {
        self.keyframes_refused
    }
}

/// A source that a [`LazyBroadcast`] starts and stops. Its first frame must decode alone.
pub trait Producer: Upstream {
    /// Its frames.
    type Frame: Decodable;
    /// The broadcast it sends to, while it runs.
    fn publisher(&self) -> Option<Arc<Publisher<Self::Frame>>>;
    /// Whether it stopped on an error (the next subscriber starts a new one).
    fn failed(&self) -> bool;
}

/// A producer started on the first subscription and stopped (dropped) when the last one
/// goes; one that failed is replaced on the next subscription.
pub struct LazyBroadcast<P> {
    current: Mutex<Weak<P>>,
}

impl<P> Default for LazyBroadcast<P> {
    fn default() -> Self {
        Self { current: Mutex::new(Weak::new()) }
    }
}

impl<P: Producer> LazyBroadcast<P> {
    /// Nothing running yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Subscribes to the running producer, or starts one with `start` if none runs (or the
    /// last one failed). Returns the producer too. `keyframes`: the limiter the
    /// subscription's keyframe requests go through, if any (see
    /// [`Subscription::new`]).
    pub fn subscribe(
        &self,
        start: impl FnOnce() -> Result<Arc<P>, MediaError>,
        keyframes: Option<SharedKeyframeLimiter>,
    ) -> Result<(Arc<P>, Subscription<P::Frame>), MediaError> {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let running = current.upgrade().and_then(|p| {
            let publisher = p.publisher().filter(|_| !p.failed())?;
            Some((p, publisher))
        });
        let fresh = running.is_none();
        let (producer, publisher) = match running {
            Some(r) => r,
            None => {
                let p = start()?;
                let publisher = p
                    .publisher()
                    .ok_or_else(|| MediaError::Capture("the source stopped as soon as it started".into()))?;
                *current = Arc::downgrade(&p);
                (p, publisher)
            }
        };
        let sub = Subscription::new(&publisher, producer.clone(), Instant::now(), fresh, keyframes);
        Ok((producer, sub))
    }

    /// The producer, while someone subscribes.
    pub fn running(&self) -> Option<Arc<P>> {
        self.current.lock().unwrap_or_else(|e| e.into_inner()).upgrade()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

    const MS: Duration = Duration::from_millis(1);
    const LAG: Duration = Duration::from_secs(1);

    /// Runs the policy over (handed over at ms, captured at ms, keyframe) and returns the
    /// verdicts.
    fn run(c: &mut Catchup, t0: Instant, frames: &[(u64, u64, bool)]) -> Vec<Verdict> {
        frames
            .iter()
            .map(|&(at, cap, key)| c.frame(t0 + MS * at as u32, t0 + MS * cap as u32, key, LAG))
            .collect()
    }

    use Verdict::{Deliver, Drop, DropAndRequestKeyframe as Ask};

    #[test]
    fn a_new_consumer_waits_for_a_keyframe_and_asks_once() {
        let t0 = Instant::now();
        let mut c = Catchup::new();
        let v = run(
            &mut c,
            t0,
            &[(0, 0, false), (16, 16, false), (33, 33, false), (50, 50, true), (66, 66, false)],
        );
        assert_eq!(v, [Ask, Drop, Drop, Deliver, Deliver]);
        assert_eq!(c.dropped(), 2 + 1);
        assert!(!c.waiting());
    }

    #[test]
    fn a_consumer_that_asked_on_subscription_does_not_ask_again() {
        let t0 = Instant::now();
        let mut c = Catchup::new();
        assert!(c.need_keyframe(), "the first need asks");
        assert!(!c.need_keyframe(), "the same gap does not ask twice");
        let v = run(&mut c, t0, &[(0, 0, false), (16, 16, false), (33, 33, true)]);
        assert_eq!(v, [Drop, Drop, Deliver]);
        // A new gap asks again.
        assert!(c.need_keyframe());
    }

    #[test]
    fn a_late_frame_starts_a_gap_that_ends_at_the_next_keyframe_in_time() {
        let t0 = Instant::now();
        let mut c = Catchup::new();
        let v = run(
            &mut c,
            t0,
            &[
                (0, 0, true),
                (16, 16, false),
                // Handed over 1.1 s after capture: too late, and what follows depends on it.
                (1200, 100, false),
                (1210, 1200, false),
                (1220, 1210, false),
                (1230, 1220, true),
                (1240, 1230, false),
            ],
        );
        assert_eq!(v, [Deliver, Deliver, Ask, Drop, Drop, Deliver, Deliver]);
        assert_eq!(c.dropped(), 3);
    }

    #[test]
    fn a_keyframe_that_comes_too_late_is_asked_for_again() {
        // Without asking again the consumer would wait for a keyframe nobody asked for.
        let t0 = Instant::now();
        let mut c = Catchup::new();
        let v = run(&mut c, t0, &[(0, 0, true), (2000, 500, false), (2010, 600, true), (2020, 2010, false)]);
        assert_eq!(v, [Deliver, Ask, Ask, Drop]);
        let v = run(&mut c, t0, &[(2030, 2030, true)]);
        assert_eq!(v, [Deliver]);
    }

    #[test]
    fn lost_frames_start_a_gap_and_ask_even_while_waiting() {
        let t0 = Instant::now();
        let mut c = Catchup::new();
        run(&mut c, t0, &[(0, 0, true)]);
        assert!(c.lagged(64));
        assert_eq!(c.dropped(), 64);
        assert_eq!(run(&mut c, t0, &[(20, 20, false)]), [Drop], "the lag already asked");
        // Lost again while waiting: the keyframe asked for may have been among them.
        assert!(c.lagged(3));
        assert_eq!(run(&mut c, t0, &[(40, 40, false), (50, 50, true)]), [Drop, Deliver]);
        assert_eq!(c.dropped(), 64 + 1 + 3 + 1);
    }

    #[test]
    fn frames_decodable_alone_are_only_dropped_when_late() {
        // Audio: every frame decodes alone; an old one is dropped, the next in time is not.
        let t0 = Instant::now();
        let mut c = Catchup::new();
        let lag = Duration::from_millis(200);
        let mut v = Vec::new();
        for (at, cap) in [(0, 0), (10, 10), (300, 20), (305, 30), (310, 300), (320, 310)] {
            v.push(c.frame(t0 + MS * at, t0 + MS * cap, true, lag).delivers());
        }
        assert_eq!(v, [true, true, false, false, true, true]);
        assert_eq!(c.dropped(), 2);
    }

    #[derive(Debug)]
    struct F {
        captured: Instant,
        key: bool,
        n: u32,
    }

    impl Decodable for F {
        fn captured(&self) -> Instant {
            self.captured
        }
        fn decodable_alone(&self) -> bool {
            self.key
        }
    }

    #[derive(Default)]
    struct Source {
        keyframes: AtomicUsize,
    }

    impl Upstream for Source {
        fn request_keyframe(&self) {
            self.keyframes.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn f(captured: Instant, key: bool, n: u32) -> F {
        F { captured, key, n }
    }

    #[tokio::test]
    async fn a_subscription_delivers_what_decodes_and_asks_once_per_gap() {
        let source = Arc::new(Source::default());
        let publisher = Publisher::new(4, None);
        let now = Instant::now();
        let mut sub = Subscription::new(&publisher, source.clone(), now, false, None);
        assert_eq!(source.keyframes.load(Ordering::Relaxed), 1, "a new subscriber asks for a keyframe");
        publisher.send(f(now, false, 0));
        publisher.send(f(now, true, 1));
        publisher.send(f(now, false, 2));
        assert_eq!(sub.next_decodable(LAG).await.unwrap().n, 1);
        assert_eq!(sub.next_decodable(LAG).await.unwrap().n, 2);
        assert_eq!(sub.dropped(), 1);
        assert_eq!(source.keyframes.load(Ordering::Relaxed), 1, "the gap of the new subscriber asked once");

        // Falls 6 frames behind a channel of 4: loses 2, asks for a keyframe, drops the deltas.
        for n in 3..9 {
            publisher.send(f(now, false, n));
        }
        publisher.send(f(now, true, 9));
        // The channel keeps the last 4: 6, 7, 8 (deltas, dropped) and 9.
        assert_eq!(sub.next_decodable(LAG).await.unwrap().n, 9);
        assert_eq!(source.keyframes.load(Ordering::Relaxed), 2);
        assert_eq!(sub.dropped(), 1 + 3 + 3);

        // A frame from a second ago: dropped, a keyframe asked for.
        let old = now - Duration::from_millis(1500);
        publisher.send(f(old, false, 10));
        publisher.send(f(Instant::now(), true, 11));
        assert_eq!(sub.next_decodable(LAG).await.unwrap().n, 11);
        assert_eq!(source.keyframes.load(Ordering::Relaxed), 3);

        drop(publisher);
        assert!(sub.next_decodable(LAG).await.is_none(), "the broadcast ended");
    }

    #[tokio::test]
    async fn a_subscriber_joining_soon_after_a_keyframe_starts_from_it_without_asking() {
        let source = Arc::new(Source::default());
        let window = Duration::from_millis(250);
        let publisher = Publisher::new(16, Some(window));
        let t0 = Instant::now();
        publisher.send(f(t0, true, 0));
        publisher.send(f(t0 + MS * 16, false, 1));
        publisher.send(f(t0 + MS * 33, false, 2));
        // 100 ms after the keyframe: the backlog is the keyframe and what followed.
        let mut sub = Subscription::new(&publisher, source.clone(), t0 + MS * 100, false, None);
        assert_eq!(source.keyframes.load(Ordering::Relaxed), 0, "no keyframe asked for");
        publisher.send(f(t0 + MS * 110, false, 3));
        let mut got = Vec::new();
        for _ in 0..4 {
            got.push(sub.next_decodable(LAG).await.unwrap().n);
        }
        assert_eq!(got, [0, 1, 2, 3], "every frame once, in order");
        // 300 ms after it: the keyframe is too old to replay; a new one is asked for.
        let _late = Subscription::new(&publisher, source.clone(), t0 + MS * 300, false, None);
        assert_eq!(source.keyframes.load(Ordering::Relaxed), 1);
        // Frames after the window are not kept.
        publisher.send(f(t0 + MS * 400, false, 4));
        let (_, backlog) = publisher.subscribe(t0 + MS * 100);
        assert!(backlog.is_empty());
    }

    #[test]
    fn a_limited_subscription_that_keeps_lagging_asks_at_most_once_a_second() {
        use crate::limit::{KeyframeLimiter, VIEW_ONLY_KEYFRAME_INTERVAL};
        let source = Arc::new(Source::default());
        let asked = || source.keyframes.load(Ordering::Relaxed);
        let publisher = Publisher::new(4, None);
        let t0 = Instant::now();
        let limiter = Arc::new(Mutex::new(KeyframeLimiter::new(VIEW_ONLY_KEYFRAME_INTERVAL)));
        let mut sub = Subscription::new(&publisher, source.clone(), t0, false, Some(limiter.clone()));
        assert_eq!(asked(), 1, "the first keyframe is asked for at once");
        // A reader too slow for the stream: every 100 ms it has lost frames, and what it
        // gets next is too old, for 5 s.
        let mut lags = 0;
        for i in 1..50u32 {
            let now = t0 + MS * (i * 100);
            assert!(matches!(
                sub.take(Err(broadcast::error::RecvError::Lagged(3)), now, LAG),
                Taken::Skipped
            ));
            let late = Arc::new(f(now - LAG * 2, false, i));
            assert!(matches!(sub.take(Ok(late), now, LAG), Taken::Skipped));
            lags += 1;
        }
        // Unlimited, each lag would have asked (49 + 1); limited, one at 0 s and the one held
        // since 100 ms made at each of 1, 2, 3 and 4 s.
        assert_eq!(asked(), 5);
        assert_eq!(sub.keyframes_refused(), lags);
        // Still held: made when due even though no frame comes (see the async test below).
        assert_eq!(lock(&limiter).due_at(), Some(t0 + MS * 5000));
        // The viewer catches up: a keyframe in time ends the gap, and the held request with it.
        let now = t0 + MS * 4950;
        assert!(matches!(sub.take(Ok(Arc::new(f(now, true, 99))), now, LAG), Taken::Frame(_)));
        assert_eq!(lock(&limiter).due_at(), None);
        sub.make_due(t0 + MS * 6000);
        assert_eq!(asked(), 5);

        // Without a limiter every lag asks.
        let source = Arc::new(Source::default());
        let mut sub = Subscription::new(&publisher, source.clone(), t0, false, None);
        for i in 1..50u32 {
            let now = t0 + MS * (i * 100);
            sub.take(Err(broadcast::error::RecvError::Lagged(3)), now, LAG);
        }
        assert_eq!(source.keyframes.load(Ordering::Relaxed), 50);
        assert_eq!(sub.keyframes_refused(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_held_request_is_made_when_due_though_no_frame_comes() {
        use crate::limit::{KeyframeLimiter, VIEW_ONLY_KEYFRAME_INTERVAL};
        let source = Arc::new(Source::default());
        let publisher = Publisher::new(4, None);
        let t0 = clock_now();
        let limiter = Arc::new(Mutex::new(KeyframeLimiter::new(VIEW_ONLY_KEYFRAME_INTERVAL)));
        let mut sub = Subscription::new(&publisher, source.clone(), t0, false, Some(limiter));
        // It lost frames at once: the request is held (one was made on subscribing).
        for n in 0..6 {
            publisher.send(f(t0, false, n));
        }
        let read = tokio::time::timeout(Duration::from_millis(1500), sub.next_decodable(LAG)).await;
        assert!(read.is_err(), "no frame to deliver");
        assert_eq!(source.keyframes.load(Ordering::Relaxed), 2, "the held request was made");
        assert_eq!(sub.keyframes_refused(), 1);
    }

    struct Fake {
        publisher: Mutex<Option<Arc<Publisher<F>>>>,
        failed: std::sync::atomic::AtomicBool,
        stopped: Arc<AtomicU64>,
    }

    impl Upstream for Fake {}

    impl Producer for Fake {
        type Frame = F;
        fn publisher(&self) -> Option<Arc<Publisher<F>>> {
            self.publisher.lock().unwrap().clone()
        }
        fn failed(&self) -> bool {
            self.failed.load(Ordering::Relaxed)
        }
    }

    impl std::ops::Drop for Fake {
        fn drop(&mut self) {
            self.stopped.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn a_lazy_broadcast_starts_on_demand_stops_with_the_last_subscriber_and_restarts_after_failure() {
        let lazy: LazyBroadcast<Fake> = LazyBroadcast::new();
        let started = AtomicU64::new(0);
        let stopped = Arc::new(AtomicU64::new(0));
        let start = || {
            started.fetch_add(1, Ordering::Relaxed);
            Ok(Arc::new(Fake {
                publisher: Mutex::new(Some(Arc::new(Publisher::new(4, None)))),
                failed: Default::default(),
                stopped: stopped.clone(),
            }))
        };
        assert!(lazy.running().is_none());
        let (p1, a) = lazy.subscribe(start, None).unwrap();
        let (p2, b) = lazy.subscribe(start, None).unwrap();
        assert!(Arc::ptr_eq(&p1, &p2));
        assert_eq!(started.load(Ordering::Relaxed), 1);
        drop((p1, p2, a));
        assert!(lazy.running().is_some(), "one subscriber left");
        drop(b);
        assert!(lazy.running().is_none());
        assert_eq!(stopped.load(Ordering::Relaxed), 1, "stopped with the last subscriber");

        let (p, _c) = lazy.subscribe(start, None).unwrap();
        p.failed.store(true, Ordering::Relaxed);
        let (q, _d) = lazy.subscribe(start, None).unwrap();
        assert!(!Arc::ptr_eq(&p, &q), "a failed producer is replaced");
        assert_eq!(started.load(Ordering::Relaxed), 3);
        // A producer whose broadcast ended is replaced too.
        *q.publisher.lock().unwrap() = None;
        let (r, _e) = lazy.subscribe(start, None).unwrap();
        assert!(!Arc::ptr_eq(&q, &r));
        // A start that fails is an error, and the next subscriber tries again.
        let lazy: LazyBroadcast<Fake> = LazyBroadcast::new();
        assert!(lazy.subscribe(|| Err(MediaError::Config("no".into())), None).is_err());
        assert!(lazy.subscribe(start, None).is_ok());
    }
}
