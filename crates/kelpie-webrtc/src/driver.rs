//! The only part of the WebRTC transport that does I/O: one UDP socket, one task that owns
//! the [`Hub`], and one forwarding task per running video stream.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kelpie_media::{AudioFrame, AudioSource, EncodedFrame, MicPlayer, VideoSource, VideoStream};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use kelpie_media::congestion::{BitrateLimits, Service, webrtc_video_bps};

use crate::WebRtcError;
use crate::hub::{Answer, FeedKey, Hub, HubEvent, PeerId, PeerPolicy, Transmit};

/// Counters of the WebRTC transport.
#[derive(Debug, Default)]
pub struct WebRtcCounters {
    /// Peers that reached the connected state.
    pub peers_connected: AtomicU64,
    /// Peers currently alive.
    pub peers_alive: AtomicU64,
    /// Datagrams no peer claimed.
    pub datagrams_unmatched: AtomicU64,
    /// Datagrams sent.
    pub datagrams_sent: AtomicU64,
    /// Bytes sent.
    pub bytes_sent: AtomicU64,
    /// Keyframe requests of idle (not lossy) streams left unanswered.
    pub idle_plis_ignored: AtomicU64,
    /// Keyframe requests (PLI, FIR, `keyframe`) of view-only peers not passed on at once.
    pub keyframes_refused: AtomicU64,
    /// Offers of view-only viewers whose microphone was refused (audio answered send-only).
    pub microphones_refused: AtomicU64,
    /// Trickled candidates refused: the peer had as many as it may have.
    pub candidates_refused: AtomicU64,
    /// Frames handed to viewers' peer connections.
    pub frames_sent: AtomicU64,
    /// Sum over those frames of the time from capture to hand-over, in microseconds.
    pub frame_delay_us_sum: AtomicU64,
    /// Audio frames not sent because they were captured too long ago, or lost while the
    /// transport fell behind.
    pub audio_frames_dropped: AtomicU64,
    /// NACKs received from viewers (each asks for packets to be sent again).
    pub nacks: AtomicU64,
    /// The least bandwidth estimate of a connected viewer's path, in bit/s (0: none).
    pub estimate_min_bps: AtomicU64,
    /// Each live peer's path and its stream's target, as of the last report (once a second).
    paths: Mutex<HashMap<PeerId, PeerPath>>,
}

/// What a viewer's page is told of its path (the `path` message): the transport's view.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct PeerPath {
    /// What the path carries, as estimated from the browser's feedback (TWCC), bit/s.
    pub estimate_bps: Option<u64>,
    /// What its stream's rate control aims at now, kbit/s.
    pub target_kbps: Option<u64>,
    /// The share of packets lost, from the browser's receiver reports.
    pub loss: Option<f32>,
    /// The round trip, from the receiver reports.
    pub rtt: Option<Duration>,
}

enum Command {
    Offer {
        sdp: String,
        local: SocketAddr,
        policy: PeerPolicy,
        monitor: u32,
        reply: oneshot::Sender<Result<Answer, WebRtcError>>,
    },
    Candidate {
        peer: PeerId,
        candidate: String,
    },
    Keyframe {
        peer: PeerId,
    },
    AudioDelay {
        peer: PeerId,
        ms: u32,
        video_ms: Option<u32>,
    },
    Close {
        peer: PeerId,
    },
}

enum FrameMsg {
    Frame(Arc<EncodedFrame>),
    /// The feed missed this many frames.
    Lagged(u64),
    Closed,
}

impl PeerPath {
    /// As the viewer's page is told it.
    pub fn info(&self) -> kelpie_protocol::PathInfo {
        kelpie_protocol::PathInfo::new(self.estimate_bps, self.target_kbps, self.loss, self.rtt)
    }
}

/// Handle to the WebRTC transport; cheap to clone.
#[derive(Clone)]
pub struct WebRtc {
    tx: mpsc::Sender<Command>,
    udp_addr: SocketAddr,
    public_ip: Option<IpAddr>,
    counters: Arc<WebRtcCounters>,
}

impl WebRtc {
    /// Binds the UDP port and starts the transport task. With `av_sync`, video waits for the
    /// sound while sound plays (see [`Hub::with_av_sync`]).
    pub async fn start(
        udp_addr: SocketAddr,
        public_ip: Option<IpAddr>,
        source: Arc<VideoSource>,
        audio: Option<Arc<AudioSource>>,
        av_sync: bool,
        bitrates: BitrateLimits,
    ) -> Result<Self, WebRtcError> {
        let socket = UdpSocket::bind(udp_addr).await.map_err(|e| WebRtcError::Bind(udp_addr, e))?;
        let udp_addr = socket.local_addr().map_err(|e| WebRtcError::Bind(udp_addr, e))?;
        let (tx, rx) = mpsc::channel(64);
        let counters = Arc::new(WebRtcCounters::default());
        let hub = Hub::new(source.codecs())
            .with_sound(audio.is_some(), audio.as_ref().is_some_and(|a| a.settings().mic_sink.is_some()))
            .with_av_sync(av_sync)
            .with_bandwidth_estimation(bitrates);
        tokio::spawn(run(socket, hub, rx, source, audio, counters.clone()));
        Ok(Self { tx, udp_addr, public_ip, counters })
    }

    /// A transport without a UDP socket or task, for a server whose viewers get video over
    /// the WebSocket only: every offer fails with [`WebRtcError::Stopped`], the counters
    /// stay at zero.
    pub fn off() -> Self {
        let (tx, _) = mpsc::channel(1);
        let udp_addr = SocketAddr::from(([0, 0, 0, 0], 0));
        Self { tx, udp_addr, public_ip: None, counters: Arc::default() }
    }

    /// The bound UDP address.
    pub fn udp_addr(&self) -> SocketAddr {
        self.udp_addr
    }

    /// Counters for metrics.
    pub fn counters(&self) -> &Arc<WebRtcCounters> {
        &self.counters
    }

    /// What is known of `peer`'s path, as of the last report (about a second old at most);
    /// `None` once it is gone or before its first report.
    pub fn path(&self, peer: PeerId) -> Option<PeerPath> {
        self.counters.paths.lock().unwrap_or_else(|e| e.into_inner()).get(&peer).copied()
    }

    /// The address to advertise to a browser whose signalling connection arrived at
    /// `signal_local` (our side of its TCP connection).
    pub fn candidate_for(&self, signal_local: Option<IpAddr>) -> SocketAddr {
        let ip = self
            .public_ip
            .or_else(|| (!self.udp_addr.ip().is_unspecified()).then_some(self.udp_addr.ip()))
            .or(signal_local)
            .unwrap_or(self.udp_addr.ip());
        SocketAddr::new(ip, self.udp_addr.port())
    }

    /// Accepts a browser's offer for a peer allowed what `policy` allows, that receives the
    /// stream of `monitor` (from 0; each monitor's stream runs while some peer receives it).
    pub async fn offer(
        &self,
        sdp: String,
        local: SocketAddr,
        policy: PeerPolicy,
        monitor: u32,
    ) -> Result<Answer, WebRtcError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Offer { sdp, local, policy, monitor, reply })
            .await
            .map_err(|_| WebRtcError::Stopped)?;
        rx.await.map_err(|_| WebRtcError::Stopped)?
    }

    /// Passes on a trickled candidate.
    pub async fn candidate(&self, peer: PeerId, candidate: String) {
        let _ = self.tx.send(Command::Candidate { peer, candidate }).await;
    }

    /// Asks for a keyframe for a peer (through its limiter, if it has one).
    pub async fn keyframe(&self, peer: PeerId) {
        let _ = self.tx.send(Command::Keyframe { peer }).await;
    }

    /// Records a peer's report of how long sound, and lately video, spend in its browser.
    pub async fn audio_delay(&self, peer: PeerId, ms: u32, video_ms: Option<u32>) {
        let _ = self.tx.send(Command::AudioDelay { peer, ms, video_ms }).await;
    }

    /// Closes a peer.
    pub async fn close(&self, peer: PeerId) {
        let _ = self.tx.send(Command::Close { peer }).await;
    }
}

/// How often each peer's estimate is reported to its stream again (well within
/// `kelpie_media::congestion::STALE_AFTER`).
const REPORT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

struct Feed {
    stream: Arc<VideoStream>,
    task: JoinHandle<()>,
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(
    socket: UdpSocket,
    mut hub: Hub,
    mut commands: mpsc::Receiver<Command>,
    source: Arc<VideoSource>,
    audio: Option<Arc<AudioSource>>,
    counters: Arc<WebRtcCounters>,
) {
    let (audio_tx, mut audio_frames) = mpsc::channel::<Arc<AudioFrame>>(32);
    let mut audio_feed: Option<JoinHandle<()>> = None;
    let mut mics: HashMap<PeerId, MicPlayer> = HashMap::new();
    let mut buf = vec![0u8; 2048];
    let mut out: Vec<Transmit> = Vec::new();
    let mut events = Vec::new();
    let (frame_tx, mut frames) = mpsc::channel::<(FeedKey, FrameMsg)>(8);
    let mut feeds: HashMap<FeedKey, Feed> = HashMap::new();
    let mut last_report = Instant::now();
    loop {
        let now = Instant::now();
        for (feed, f) in &feeds {
            hub.set_limited(*feed, f.stream.limited());
        }
        let deadline = hub.poll(now, &mut out, &mut events);
        for t in out.drain(..) {
            counters.datagrams_sent.fetch_add(1, Ordering::Relaxed);
            counters.bytes_sent.fetch_add(t.contents.len() as u64, Ordering::Relaxed);
            if let Err(e) = socket.send_to(&t.contents, t.destination).await {
                tracing::debug!("UDP send to {} failed: {e}", t.destination);
            }
        }
        for ev in events.drain(..) {
            match ev {
                HubEvent::KeyframeWanted(feed) => {
                    if let Some(f) = feeds.get(&feed) {
                        f.stream.request_keyframe();
                    }
                }
                HubEvent::Connected(id) => {
                    counters.peers_connected.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(%id, "viewer connected over WebRTC");
                }
                HubEvent::Disconnected(id, why) => {
                    mics.remove(&id);
                    for f in feeds.values() {
                        f.stream.forget_viewer(id.budget_key(), now);
                    }
                    tracing::info!(%id, "viewer left: {why}")
                }
                HubEvent::Microphone(id, opus) => crate::sound::microphone(&audio, &mut mics, id, &opus),
                // The stream follows the slowest viewer that is not hopeless; a hopeless one
                // gets keyframes only.
                HubEvent::Estimate(id, feed, bps) => {
                    if let Some(f) = feeds.get(&feed) {
                        let audio = hub.path(id).map_or(0, |p| p.audio_bps);
                        f.stream.report_estimate(id.budget_key(), webrtc_video_bps(bps, audio), now);
                        let only = f.stream.service(id.budget_key(), now) == Service::KeyframesOnly;
                        hub.set_keyframes_only(id, only);
                    }
                }
            }
        }
        // str0m reports an estimate when it changes; a steady one is reported again so that
        // the stream's budget does not take it for a viewer gone quiet.
        if now.saturating_duration_since(last_report) >= REPORT_EVERY {
            last_report = now;
            for (id, feed, path) in hub.paths() {
                if let (Some(bps), Some(f)) = (path.estimate_bps, feeds.get(&feed)) {
                    f.stream.report_estimate(id.budget_key(), webrtc_video_bps(bps, path.audio_bps), now);
                }
            }
            let published = hub
                .paths()
                .map(|(id, feed, p)| {
                    let target =
                        feeds.get(&feed).map(|f| f.stream.counters().target_kbps.load(Ordering::Relaxed));
                    let path = PeerPath {
                        estimate_bps: p.estimate_bps,
                        target_kbps: target.filter(|&k| k > 0),
                        loss: p.loss,
                        rtt: p.rtt,
                    };
                    (id, path)
                })
                .collect();
            *counters.paths.lock().unwrap_or_else(|e| e.into_inner()) = published;
        }
        counters.nacks.store(hub.nacks, Ordering::Relaxed);
        // Opus carries in-band FEC for the worst loss a listener's path shows (the
        // browser rebuilds a lost packet from the next one, and conceals the rest).
        if let Some(a) = &audio {
            let worst = hub.paths().filter_map(|(_, _, p)| p.loss).fold(0.0f32, f32::max);
            a.set_expected_loss((worst * 100.0).ceil() as u32);
        }
        counters
            .estimate_min_bps
            .store(hub.paths().filter_map(|(_, _, p)| p.estimate_bps).min().unwrap_or(0), Ordering::Relaxed);
        counters.peers_alive.store(hub.peer_count() as u64, Ordering::Relaxed);
        counters.datagrams_unmatched.store(hub.unmatched_datagrams, Ordering::Relaxed);
        counters.idle_plis_ignored.store(hub.idle_plis_ignored, Ordering::Relaxed);
        counters.keyframes_refused.store(hub.keyframes_refused, Ordering::Relaxed);
        counters.microphones_refused.store(hub.microphones_refused, Ordering::Relaxed);
        counters.candidates_refused.store(hub.candidates_refused, Ordering::Relaxed);
        sync_feeds(&hub, &mut feeds, &source, &frame_tx);
        crate::sound::sync_feed(&hub, &audio, &mut audio_feed, &audio_tx, &counters);

        tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, from)) => { hub.receive(Instant::now(), from, &buf[..n]); }
                Err(e) => tracing::debug!("UDP receive failed: {e}"),
            },
            cmd = commands.recv() => match cmd {
                None => return,
                Some(Command::Offer { sdp, local, policy, monitor, reply }) => {
                    let _ = reply.send(hub.accept_offer_on(Instant::now(), &sdp, local, policy, monitor));
                }
                Some(Command::Candidate { peer, candidate }) => {
                    if let Err(e) = hub.add_remote_candidate(peer, &candidate) {
                        tracing::debug!(%peer, "ignoring candidate: {e}");
                    }
                }
                // The viewer's decoder failed: asked for at once, whether or not a keyframe is
                // already on its way.
                Some(Command::Keyframe { peer }) => {
                    if let Some(f) = hub.keyframe_for(Instant::now(), peer).and_then(|c| feeds.get(&c)) {
                        f.stream.request_keyframe();
                    }
                }
                Some(Command::AudioDelay { peer, ms, video_ms }) => {
                    hub.set_audio_delay(Instant::now(), peer, ms, video_ms)
                }
                Some(Command::Close { peer }) => hub.remove(peer),
            },
            Some((feed, msg)) = frames.recv() => match msg {
                // The hub decides per peer what to drop and when to ask for a keyframe (once
                // per gap); its requests come out of the next poll as KeyframeWanted.
                FrameMsg::Frame(f) => {
                    let now = Instant::now();
                    counters.frames_sent.fetch_add(1, Ordering::Relaxed);
                    counters.frame_delay_us_sum.fetch_add(now.saturating_duration_since(f.captured).as_micros() as u64, Ordering::Relaxed);
                    kelpie_media::latency_mark!("sent", f.pts.as_micros() as u64);
                    hub.send_frame(now, feed, &f);
                }
                FrameMsg::Lagged(n) => hub.lagged(feed, n),
                FrameMsg::Closed => { feeds.remove(&feed); }
            },
            Some(f) = audio_frames.recv() => hub.send_audio(Instant::now(), &f),
            _ = tokio::time::sleep_until(deadline.into()) => {}
        }
    }
}

/// Starts a stream for each codec and monitor some peer receives and stops those nobody
/// receives: a monitor nobody views over WebRTC is not encoded for WebRTC.
fn sync_feeds(
    hub: &Hub,
    feeds: &mut HashMap<FeedKey, Feed>,
    source: &Arc<VideoSource>,
    frame_tx: &mpsc::Sender<(FeedKey, FrameMsg)>,
) {
    let wanted = hub.feeds_in_use();
    feeds.retain(|c, f| wanted.contains(c) && f.stream.failure().is_none());
    for feed in wanted {
        if feeds.contains_key(&feed) {
            continue;
        }
        let mut sub = match source.subscribe_monitor(feed.codec, feed.monitor, None) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(
                    "cannot start the {} stream of monitor {}: {}",
                    feed.codec.as_str(),
                    feed.monitor + 1,
                    kelpie_media::error_chain(&e)
                );
                continue;
            }
        };
        let stream = sub.stream().clone();
        let tx = frame_tx.clone();
        // Every frame goes to the hub, which applies the catch-up policy per peer.
        let task = tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                let msg = match sub.recv().await {
                    Ok(f) => FrameMsg::Frame(f),
                    Err(RecvError::Lagged(n)) => {
                        tracing::debug!("WebRTC feed lagged by {n} frames");
                        FrameMsg::Lagged(n)
                    }
                    Err(RecvError::Closed) => FrameMsg::Closed,
                };
                let closed = matches!(msg, FrameMsg::Closed);
                if tx.send((feed, msg)).await.is_err() || closed {
                    return;
                }
            }
        });
        feeds.insert(feed, Feed { stream, task });
    }
}
