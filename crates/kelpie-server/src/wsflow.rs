//! The WebSocket video's flow control, shared by the viewer's socket reader (which hands it
//! the client's `ack` messages) and its writer (`wsmedia`, which asks it whether a frame may
//! go and tells it what went): an [`AckEstimator`] per video subscription, fed what the
//! kernel says of the viewer's TCP connection ([`TcpProbe`]) with each acknowledgement and
//! each frame, and a wake-up for a writer waiting on a full window.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kelpie_media::VideoStream;
use kelpie_media::congestion::{AckEstimator, BitrateLimits};
use kelpie_protocol::PathInfo;
use tokio::sync::Notify;

use crate::tcpinfo::TcpProbe;

/// While the window is full, how often TCP's figures are read again: TCP's ACKs open the
/// window as well as the browser's, and they wake nobody.
const TCP_POLL: Duration = Duration::from_millis(5);

/// One viewer's WebSocket video flow.
pub struct WsFlow {
    limits: BitrateLimits,
    estimator: Mutex<Option<AckEstimator>>,
    /// The stream the video comes from, while it flows (for its target bitrate).
    stream: Mutex<Option<Arc<VideoStream>>>,
    opened: Notify,
    /// The viewer's TCP connection (none on a Unix socket).
    tcp: Option<TcpProbe>,
    /// Whether reading TCP's figures failed already (said once).
    tcp_failed: AtomicBool,
    /// The viewer's key in its stream's budget.
    pub key: u64,
}

impl WsFlow {
    /// A flow whose estimates keep to `limits`, over the TCP connection `tcp` if there is one.
    pub fn new(limits: BitrateLimits, tcp: Option<TcpProbe>) -> Self {
        Self {
            limits,
            estimator: Mutex::new(None),
            stream: Mutex::new(None),
            opened: Notify::new(),
            tcp,
            tcp_failed: AtomicBool::new(false),
            key: kelpie_media::congestion::viewer_key(),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut AckEstimator) -> R) -> Option<R> {
        self.estimator.lock().unwrap_or_else(|e| e.into_inner()).as_mut().map(f)
    }

    /// As [`Self::with`], the estimator told what TCP says at `now` first.
    fn with_tcp<R>(&self, now: Instant, f: impl FnOnce(&mut AckEstimator) -> R) -> Option<R> {
        self.with(|e| {
            match self.tcp.as_ref().map(TcpProbe::read) {
                Some(Ok(state)) => e.tcp(now, state),
                Some(Err(err)) if !self.tcp_failed.swap(true, Ordering::Relaxed) => {
                    tracing::debug!("cannot read TCP_INFO: {err}; the WebSocket video's flow control goes by the acknowledgements alone");
                }
                _ => {}
            }
            f(e)
        })
    }

    /// Video starts (again): a new estimate from the start bitrate, nothing in flight, and
    /// the connection's retransmission timers shortened for it.
    pub fn start(&self) {
        if let Some(Err(e)) = self.tcp.as_ref().map(TcpProbe::shorten_retransmissions) {
            tracing::debug!("cannot shorten the retransmission timers of a WebSocket video connection: {e}");
        }
        *self.estimator.lock().unwrap_or_else(|e| e.into_inner()) = Some(AckEstimator::new(self.limits));
        self.opened.notify_one();
    }

    /// Video starts (again) from `stream`: as [`Self::start`], and the `path` message
    /// reports the stream's target.
    pub fn start_from(&self, stream: Arc<VideoStream>) {
        *self.stream.lock().unwrap_or_else(|e| e.into_inner()) = Some(stream);
        self.start();
    }

    /// Video stopped: acknowledgements change nothing until it starts again.
    pub fn stop(&self) {
        *self.estimator.lock().unwrap_or_else(|e| e.into_inner()) = None;
        *self.stream.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// What the viewer's page is told of its path while video flows: the estimate from the
    /// acknowledgements, their round trip and the stream's target (TCP hides loss).
    pub fn path(&self) -> Option<PathInfo> {
        let (estimate, rtt) = self.with(|e| (e.estimate_bps(), e.rtt(Instant::now())))?;
        let target =
            self.stream.lock().unwrap_or_else(|e| e.into_inner()).as_ref().and_then(|s| s.target_kbps());
        Some(PathInfo::new(Some(estimate), target, None, rtt))
    }

    /// The client's acknowledgement of every frame up to `pts` (µs).
    pub fn acked(&self, now: Instant, pts: u64) {
        self.with_tcp(now, |e| e.acked(now, pts));
        self.opened.notify_one();
    }

    /// Whether a frame may go now (true while no video flows).
    pub fn may_send(&self) -> bool {
        let now = Instant::now();
        self.with_tcp(now, |e| e.may_send(now)).unwrap_or(true)
    }

    /// A frame came while the window was full.
    pub fn window_full(&self, now: Instant) {
        self.with_tcp(now, |e| e.window_full(now));
    }

    /// A frame of `bytes` with `pts` (µs) went out at `now`.
    pub fn sent(&self, now: Instant, pts: u64, bytes: u64) {
        self.with(|e| e.sent(now, pts, bytes));
    }

    /// The bitrate this viewer's path carries, as estimated, in bit/s.
    pub fn target_bps(&self) -> Option<u64> {
        self.with(|e| e.target_bps())
    }

    /// Waits until the window has room.
    pub async fn open(&self) {
        while !self.may_send() {
            if self.tcp.is_some() {
                let _ = tokio::time::timeout(TCP_POLL, self.opened.notified()).await;
            } else {
                self.opened.notified().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn an_acknowledgement_opens_a_full_window() {
        let flow = std::sync::Arc::new(WsFlow::new(BitrateLimits::from_kbps(300, 1000, 8000), None));
        assert!(flow.may_send(), "no video: nothing holds");
        flow.start();
        let t = Instant::now();
        flow.sent(t, 1_000, 500_000);
        assert!(!flow.may_send());
        let f = flow.clone();
        let waiter = tokio::spawn(async move { f.open().await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        flow.acked(t + Duration::from_millis(30), 1_000);
        tokio::time::timeout(Duration::from_secs(1), waiter).await.unwrap().unwrap();
        assert!(flow.target_bps().is_some());
        flow.stop();
        assert_eq!(flow.target_bps(), None);
    }

    #[test]
    fn the_path_message_tells_the_estimate_and_round_trip_while_video_flows() {
        let flow = WsFlow::new(BitrateLimits::from_kbps(300, 1000, 8000), None);
        assert_eq!(flow.path(), None, "no video, nothing to tell");
        flow.start();
        let t = Instant::now();
        flow.sent(t, 1_000, 10_000);
        flow.acked(t + Duration::from_millis(42), 1_000);
        let p = flow.path().unwrap();
        assert_eq!(p.estimate_kbps, Some(1000), "starts at --start-bitrate");
        assert_eq!(p.rtt_ms, Some(42));
        // No stream named (the writer names it), and TCP hides loss.
        assert_eq!((p.target_kbps, p.loss_ppm), (None, None));
        flow.stop();
        assert_eq!(flow.path(), None);
    }

    #[test]
    fn what_tcp_delivered_does_not_hold_the_window() {
        use std::io::{Read as _, Write as _};
        use std::os::fd::AsRawFd as _;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut browser = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        let limits = BitrateLimits::from_kbps(300, 1000, 1000);
        let with_tcp = WsFlow::new(limits, Some(TcpProbe::new(server.as_raw_fd())));
        let acks_only = WsFlow::new(limits, None);
        let t = Instant::now();
        for flow in [&with_tcp, &acks_only] {
            flow.start();
            flow.sent(t, 1_000, 1_000);
            flow.acked(t + Duration::from_millis(1), 1_000);
            // A frame of 30 kB, past the window of a round trip at 1 Mbit/s (6 kB): the
            // browser read it, but has not acknowledged it yet.
            flow.sent(t + Duration::from_millis(2), 2_000, 30_000);
        }
        server.write_all(&[0; 30_000]).unwrap();
        browser.read_exact(&mut [0; 30_000]).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert!(with_tcp.may_send(), "TCP delivered it: the path is empty");
        assert!(!acks_only.may_send(), "by the acknowledgements alone the path holds 30 kB");
    }
}
