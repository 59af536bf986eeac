//! The sans-IO core of the WebRTC transport: every viewer's [`Rtc`] on one UDP port.
//!
//! The hub owns no socket, thread or clock: datagrams, frames and the current time go in;
//! datagrams to send, events and the next deadline come out. The driver in `driver.rs` is
//! the only place that touches the network, and the tests drive a hub against a str0m
//! client entirely in memory on simulated time.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use kelpie_media::{AudioFrame, Catchup, EncodedFrame, Verdict};
use kelpie_protocol::VideoCodec;
use str0m::bwe::{Bitrate, BweKind};
use str0m::change::SdpOffer;
use str0m::format::Codec;
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::Extension;
use str0m::{Candidate, Event, IceConnectionState, IceCreds, Input, Output, Rtc};

use crate::{OfferError, WebRtcError};
pub use estimate::PathStats;
use estimate::{PeerEstimate, STATS_EVERY};
use kelpie_media::congestion::BitrateLimits;
use kelpie_media::limit::{KeyframeLimiter, KeyframeVerdict, VIEW_ONLY_KEYFRAME_INTERVAL};
pub use route::MAX_REMOTE_CANDIDATES;
use sync::{AvSync, ServerAges};

/// Identifies one viewer's peer connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub u64);

impl PeerId {
    /// The peer's key in its stream's [`kelpie_media::congestion::StreamBudget`] (apart from
    /// the keys of WebSocket viewers, which count up from 1).
    pub fn budget_key(self) -> u64 {
        (1 << 63) | self.0
    }
}

impl std::fmt::Display for PeerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "peer-{}", self.0)
    }
}

/// One stream a peer receives: a codec of one monitor (see `kelpie_media::monitor`; 0 is
/// the first monitor, or the whole screen of a display that is one monitor).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FeedKey {
    /// The codec.
    pub codec: VideoCodec,
    /// The monitor, from 0.
    pub monitor: u32,
}

impl From<VideoCodec> for FeedKey {
    /// The codec's stream of the first monitor.
    fn from(codec: VideoCodec) -> Self {
        Self { codec, monitor: 0 }
    }
}

/// A datagram to send.
#[derive(Debug)]
pub struct Transmit {
    /// Where to send it.
    pub destination: SocketAddr,
    /// The bytes.
    pub contents: Vec<u8>,
}

/// Something the driver must act on.
#[derive(Debug, PartialEq, Eq)]
pub enum HubEvent {
    /// A viewer of this stream needs a keyframe (new viewer, PLI/FIR, or loss).
    KeyframeWanted(FeedKey),
    /// The peer's ICE and DTLS are up: media flows.
    Connected(PeerId),
    /// The peer is gone (ICE timed out, DTLS failed, or it was closed); it has been removed.
    Disconnected(PeerId, String),
    /// An Opus packet of the viewer's microphone.
    Microphone(PeerId, Vec<u8>),
    /// A new estimate of what the peer's path carries (TWCC, delay- and loss-based), in
    /// bit/s; its key in the stream's budget is [`PeerId::budget_key`].
    Estimate(PeerId, FeedKey, u64),
}

/// What one viewer's peer connection may do: all of it for a viewer with full access, less
/// for a view-only one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerPolicy {
    /// Whether its microphone is taken (when the server takes microphones at all). Without,
    /// its audio m-line is answered send-only and str0m drops what the browser sends on it.
    pub microphone: bool,
    /// Least time between two keyframes its PLI, FIR and `keyframe` requests may cause; a
    /// request sooner is held until then (one at most) and counted as refused.
    pub keyframe_interval: Option<Duration>,
}

impl PeerPolicy {
    /// A viewer with full access.
    pub const FULL: Self = Self { microphone: true, keyframe_interval: None };
    /// A view-only viewer: no microphone, a keyframe at most once a second.
    pub const VIEW_ONLY: Self =
        Self { microphone: false, keyframe_interval: Some(VIEW_ONLY_KEYFRAME_INTERVAL) };
}

/// The answer to a viewer's offer.
#[derive(Debug)]
pub struct Answer {
    /// The new peer.
    pub peer: PeerId,
    /// SDP answer text.
    pub sdp: String,
    /// The codec chosen for the peer.
    pub codec: VideoCodec,
}

struct Peer {
    id: PeerId,
    rtc: Rtc,
    local: SocketAddr,
    codec: VideoCodec,
    /// The monitor it shows (0 the first).
    monitor: u32,
    /// Set once the video m-line is known and a payload type is chosen.
    track: Option<(Mid, str0m::format::PayloadParams)>,
    connected: bool,
    /// Catching up after a gap: no delta frame goes out before a keyframe has, and the
    /// keyframe is asked for once per gap.
    catchup: Catchup,
    frames_sent: u64,
    /// When the last frame went to this peer.
    last_frame_at: Option<Instant>,
    /// The audio m-line and Opus payload type, once known (see `audio.rs`).
    audio: Option<(Mid, str0m::format::PayloadParams)>,
    /// The audio m-line, when the browser sends its microphone on it.
    mic_mid: Option<Mid>,
    /// Whether its microphone is taken at all.
    microphone: bool,
    /// Holding video back to line up with sound (see `sync.rs`).
    sync: AvSync,
    /// Whether it gets sound yet (see `audio.rs`).
    sound: audio::Gate,
    /// Its keyframe requests, when it is limited (see [`PeerPolicy::keyframe_interval`]).
    keyframes: Option<KeyframeLimiter>,
    /// Its path carries far less than the other viewers': it gets keyframes only.
    keyframes_only: bool,
    /// When it last got a keyframe.
    last_keyframe_at: Option<Instant>,
    /// What its path carries, as last estimated (bit/s), its loss and round trip.
    pub(crate) path: PathStats,
    /// Its estimate, from str0m's (see `estimate.rs`).
    estimate: PeerEstimate,
}

impl Peer {
    /// The stream it receives.
    fn feed(&self) -> FeedKey {
        FeedKey { codec: self.codec, monitor: self.monitor }
    }

    /// A keyframe request of this peer at `now`: whether to pass it on now. One refused
    /// request is held and passed on by [`Hub::poll`] when the interval is over.
    fn keyframe_request(&mut self, now: Instant, refused: &mut u64) -> bool {
        match self.keyframes.as_mut().map(|l| l.request(now)) {
            None | Some(KeyframeVerdict::Granted) => true,
            Some(_) => {
                *refused += 1;
                false
            }
        }
    }
}

/// Sound counts as playing this long after its last packet.
const SOUND_ACTIVE: Duration = Duration::from_secs(1);

/// A smoothed duration in ms (exponential moving average).
#[derive(Debug, Default, Clone, Copy)]
struct Smoothed(Option<f64>);

impl Smoothed {
    fn add(&mut self, d: Duration) {
        let v = d.as_secs_f64() * 1000.0;
        self.0 = Some(self.0.map_or(v, |m| m + (v - m) / 8.0));
    }
}

/// Chromium asks for a keyframe when no frame has arrived for 3 s, even though nothing was
/// lost: the screen simply did not change. Answering would cost a keyframe every 3 s on a
/// static desktop, so a PLI this long after the last frame is not answered. A PLI caused by
/// loss comes within a round trip or two of the frame it concerns.
const IDLE_PLI_AFTER: Duration = Duration::from_millis(2500);

/// A peer served keyframes only gets a new one at most this often (each costs every other
/// viewer of the stream a keyframe too).
pub const KEYFRAMES_ONLY_INTERVAL: Duration = Duration::from_secs(3);

/// All peer connections sharing one UDP port.
pub struct Hub {
    peers: BTreeMap<PeerId, Peer>,
    /// Which peer a datagram belongs to.
    routes: route::Routes,
    next_id: u64,
    /// Codecs the server can send, in preference order.
    codecs: Vec<VideoCodec>,
    /// Peers removed since the last poll, with the reason.
    gone: Vec<(PeerId, String)>,
    /// Datagrams that no peer accepted (malformed or stale), for metrics.
    pub unmatched_datagrams: u64,
    /// Keyframe requests not answered because they came from an idle, not a lossy, stream.
    pub idle_plis_ignored: u64,
    /// Keyframe requests of limited (view-only) peers not passed on at once.
    pub keyframes_refused: u64,
    /// Offers whose audio m-line would have sent a microphone the peer may not send: answered
    /// send-only.
    pub microphones_refused: u64,
    /// Trickled candidates refused because the peer had [`MAX_REMOTE_CANDIDATES`] already.
    pub candidates_refused: u64,
    /// Whether sound is offered (an Opus m-line is accepted).
    audio: bool,
    /// Whether viewers' microphones are taken (else the audio m-line is send-only).
    microphone: bool,
    /// Whether video waits for sound while sound plays.
    av_sync: bool,
    /// When sound (not DTX silence) last went out.
    last_sound_at: Option<Instant>,
    /// Capture to hand-over of sound and of video in this server.
    audio_age: Smoothed,
    video_age: Smoothed,
    /// Streams some peer needs a keyframe of, reported by the next poll.
    keyframes_wanted: Vec<FeedKey>,
    /// The range bandwidth estimates keep to; `None`: no estimation.
    bitrates: Option<BitrateLimits>,
    /// NACKs received from every peer, gone ones included.
    pub nacks: u64,
    /// Streams whose bitrate holds their picture back (see [`Hub::set_limited`]).
    limited: Vec<FeedKey>,
}

impl Hub {
    /// A hub that can send `codecs` (preference order).
    pub fn new(codecs: Vec<VideoCodec>) -> Self {
        Self {
            peers: BTreeMap::new(),
            routes: route::Routes::default(),
            next_id: 1,
            codecs,
            gone: Vec::new(),
            unmatched_datagrams: 0,
            idle_plis_ignored: 0,
            keyframes_refused: 0,
            microphones_refused: 0,
            candidates_refused: 0,
            audio: false,
            microphone: false,
            av_sync: true,
            last_sound_at: None,
            audio_age: Smoothed::default(),
            video_age: Smoothed::default(),
            keyframes_wanted: Vec::new(),
            bitrates: None,
            nacks: 0,
            limited: Vec::new(),
        }
    }

    /// Accepts browsers' audio m-lines (Opus) from now on, and with `microphone` their
    /// microphone on them.
    pub fn with_sound(mut self, audio: bool, microphone: bool) -> Self {
        self.audio = audio;
        self.microphone = audio && microphone;
        self
    }

    /// Whether video is held back to line up with sound while sound plays (default), or is
    /// always shown as soon as it is decoded.
    pub fn with_av_sync(mut self, on: bool) -> Self {
        self.av_sync = on;
        self
    }

    /// Estimates each peer's path with TWCC feedback (delay-based, with a loss-based cap),
    /// starting at `limits.start_bps` and probing up to `limits.max_bps`; the estimates come
    /// out of the poll as [`HubEvent::Estimate`].
    pub fn with_bandwidth_estimation(mut self, limits: BitrateLimits) -> Self {
        self.bitrates = Some(limits);
        self
    }

    /// Notes whether `feed`'s bitrate holds its picture back (its rate control is short of
    /// bits): its peers' estimators then look for more (see `estimate.rs`).
    pub fn set_limited(&mut self, feed: FeedKey, limited: bool) {
        self.limited.retain(|f| *f != feed);
        if limited {
            self.limited.push(feed);
        }
    }

    /// Serves a peer keyframes only, or every frame again.
    pub fn set_keyframes_only(&mut self, id: PeerId, on: bool) {
        if let Some(p) = self.peers.get_mut(&id)
            && p.keyframes_only != on
        {
            tracing::info!(%id, on, "keyframes only: the path is far slower than other viewers'");
            p.keyframes_only = on;
            if !on {
                // Its last keyframe was long ago: deltas wait for the next.
                p.catchup.need_keyframe();
                self.keyframes_wanted.push(p.feed());
            }
        }
    }

    /// What is known of each peer's path, with the peer's stream.
    pub fn paths(&self) -> impl Iterator<Item = (PeerId, FeedKey, PathStats)> + '_ {
        self.peers.values().map(|p| (p.id, p.feed(), p.path))
    }

    /// What is known of one peer's path.
    pub fn path(&self, id: PeerId) -> Option<PathStats> {
        self.peers.get(&id).map(|p| p.path)
    }

    /// Number of live peers.
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// The streams (codec and monitor) some peer currently receives.
    pub fn feeds_in_use(&self) -> Vec<FeedKey> {
        let mut v: Vec<FeedKey> = self.peers.values().map(Peer::feed).collect();
        v.sort_by_key(|f| (f.monitor, f.codec.as_str()));
        v.dedup();
        v
    }

    /// Creates a peer with full access ([`PeerPolicy::FULL`]) for a browser's offer; see
    /// [`Hub::accept_offer_with`].
    pub fn accept_offer(
        &mut self,
        now: Instant,
        offer: &str,
        local: SocketAddr,
    ) -> Result<Answer, WebRtcError> {
        self.accept_offer_with(now, offer, local, PeerPolicy::FULL)
    }

    /// Creates a peer showing the first monitor; see [`Hub::accept_offer_on`].
    pub fn accept_offer_with(
        &mut self,
        now: Instant,
        offer: &str,
        local: SocketAddr,
        policy: PeerPolicy,
    ) -> Result<Answer, WebRtcError> {
        self.accept_offer_on(now, offer, local, policy, 0)
    }

    /// Creates a peer for a browser's offer, allowed what `policy` allows, that receives the
    /// stream of `monitor` (from 0). `local` is the address the browser can reach our UDP
    /// socket at; it becomes our only ICE candidate.
    pub fn accept_offer_on(
        &mut self,
        now: Instant,
        offer: &str,
        local: SocketAddr,
        policy: PeerPolicy,
        monitor: u32,
    ) -> Result<Answer, WebRtcError> {
        let microphone = self.microphone && policy.microphone;
        // Without the microphone the offer's audio m-line is made receive-only before str0m
        // sees it: str0m then answers send-only and drops what arrives on it (an answer only
        // edited as text would leave str0m receiving whatever a hostile browser sends).
        let (offer, refused) = if microphone { (offer.into(), false) } else { audio::receive_only(offer) };
        if refused && policy != PeerPolicy::FULL {
            self.microphones_refused += 1;
        }
        let offer_text = offer;
        let offer =
            SdpOffer::from_sdp_string(&offer_text).map_err(|e| WebRtcError::BadOffer(OfferError::Sdp(e)))?;
        let codec = choose_codec(&offer.to_sdp_string(), &self.codecs).ok_or(WebRtcError::NoCommonCodec)?;
        let creds = IceCreds::new();
        let ufrag = creds.ufrag.clone();
        let mut rtc = Rtc::builder()
            .set_local_ice_credentials(creds)
            .clear_codecs()
            .enable_h264(codec == VideoCodec::H264)
            .enable_vp8(codec == VideoCodec::Vp8)
            .enable_opus(self.audio, true)
            // Keyframes of a 4K desktop run to hundreds of packets; keep them for NACKs.
            .set_send_buffer_video(2000)
            // Stats carry str0m's own estimate (`PeerStats::bwe_tx`): the one its pacer
            // paces at, fresh from the last feedback. Its estimate events are a three-second
            // average (a drop to half reaches them over seconds), so the stats are read
            // several times a second instead.
            .set_stats_interval(Some(STATS_EVERY))
            // playout-delay min=max=0 puts Chromium's receiver in its low-latency mode:
            // frames are rendered as soon as they are decoded, without smoothing.
            .set_extension(12, Extension::PlayoutDelay)
            // TWCC (transport-wide sequence numbers, extension 3 of str0m's standard map) is
            // what Chromium's offer carries; its feedback drives the estimate.
            // It starts at --start-bitrate and probes at three and six times it at once (on
            // a slower path those probes' padding is lost: see docs/architecture.md,
            // "Congestion control", on why the start is not lower).
            .enable_bwe(self.bitrates.map(|b| Bitrate::bps(b.start_bps)))
            .build(now);
        if let Some(b) = self.bitrates {
            // str0m pads up to its minimum whenever the peer could send video, a still screen
            // included: a minimum of zero leaves only its own 50 kbit/s keep-alive padding.
            // Kelpie's floor (--min-bitrate) is kept by the stream's budget instead.
            rtc.bwe().set_bitrate(Bitrate::ZERO, Bitrate::bps(b.max_bps));
        }
        let cand = Candidate::host(local, "udp").map_err(WebRtcError::BadCandidate)?;
        rtc.add_local_candidate(cand);
        let answer =
            rtc.sdp_api().accept_offer(offer).map_err(|e| WebRtcError::BadOffer(OfferError::Rtc(e)))?;
        let id = PeerId(self.next_id);
        self.next_id += 1;
        self.routes.add_peer(id, ufrag);
        // Our checks to the candidates in the offer may be answered before the browser's own
        // checks teach the routes its address.
        for line in offer_text.lines().filter_map(|l| l.trim().strip_prefix("a=")) {
            if line.starts_with("candidate:")
                && let Ok(c) = Candidate::from_sdp_string(line)
                && !self.routes.add_candidate(id, c.addr())
            {
                break;
            }
        }
        let peer = Peer {
            id,
            rtc,
            local,
            codec,
            monitor,
            track: None,
            connected: false,
            catchup: Catchup::new(),
            frames_sent: 0,
            last_frame_at: None,
            audio: None,
            mic_mid: None,
            microphone,
            sync: AvSync::default(),
            sound: audio::Gate::default(),
            keyframes: policy.keyframe_interval.map(KeyframeLimiter::new),
            keyframes_only: false,
            last_keyframe_at: None,
            path: PathStats::default(),
            estimate: PeerEstimate::default(),
        };
        self.peers.insert(id, peer);
        tracing::debug!(%id, codec = codec.as_str(), monitor = monitor + 1, ?policy, "peer created");
        Ok(Answer { peer: id, sdp: audio::adjust_answer(&answer.to_sdp_string()), codec })
    }

    /// Adds a candidate the browser trickled; a peer has at most [`MAX_REMOTE_CANDIDATES`]
    /// (the ones beyond are refused and counted).
    pub fn add_remote_candidate(&mut self, id: PeerId, candidate: &str) -> Result<(), WebRtcError> {
        let peer = self.peers.get_mut(&id).ok_or(WebRtcError::UnknownPeer)?;
        let line = candidate.strip_prefix("a=").unwrap_or(candidate);
        let c = Candidate::from_sdp_string(line).map_err(WebRtcError::BadCandidate)?;
        if !self.routes.add_candidate(id, c.addr()) {
            self.candidates_refused += 1;
            return Err(WebRtcError::TooManyCandidates(MAX_REMOTE_CANDIDATES));
        }
        peer.rtc.add_remote_candidate(c);
        Ok(())
    }

    /// Closes a peer (its signalling went away).
    pub fn remove(&mut self, id: PeerId) {
        if let Some(mut p) = self.peers.remove(&id) {
            self.routes.remove_peer(id);
            p.rtc.disconnect();
            self.gone.push((id, "closed".into()));
        }
    }

    /// Asks for a keyframe for one peer (its client saw corruption): the stream to ask the
    /// encoder of, or `None` (no such peer, or a limited peer asking too soon: held until the
    /// interval is over and then asked for through the poll).
    pub fn keyframe_for(&mut self, now: Instant, id: PeerId) -> Option<FeedKey> {
        let p = self.peers.get_mut(&id)?;
        if !p.keyframe_request(now, &mut self.keyframes_refused) {
            return None;
        }
        p.catchup.need_keyframe();
        Some(p.feed())
    }

    /// Feeds one received datagram to the peer it belongs to. Returns false when no peer
    /// claims it (it is counted and dropped). A datagram is matched with a lookup (see
    /// `route.rs`); only the peer found, if any, sees it.
    pub fn receive(&mut self, now: Instant, source: SocketAddr, data: &[u8]) -> bool {
        let found = self.routes.find(source, data);
        let Some(p) = found.and_then(|r| self.peers.get_mut(&r.peer())) else {
            self.unmatched_datagrams += 1;
            return false;
        };
        let Ok(contents) = data.try_into() else {
            self.unmatched_datagrams += 1;
            return false;
        };
        let input =
            Input::Receive(now, Receive { proto: Protocol::Udp, source, destination: p.local, contents });
        if !p.rtc.accepts(&input) {
            self.unmatched_datagrams += 1;
            return false;
        }
        if let Some(route::Route::Ufrag(id)) = found {
            // An authenticated request: what else comes from there is this peer's.
            self.routes.learn(source, id);
        }
        if let Err(e) = p.rtc.handle_input(input) {
            tracing::debug!(id = %p.id, "dropping peer after bad input: {e}");
            p.rtc.disconnect();
        }
        true
    }

    /// Notes that every viewer of `feed` missed `missed` frames (the feed fell behind):
    /// they wait for a keyframe, which the next poll asks for.
    pub fn lagged(&mut self, feed: impl Into<FeedKey>, missed: u64) {
        let feed = feed.into();
        let mut ask = false;
        for p in self.peers.values_mut().filter(|p| p.feed() == feed) {
            ask |= p.catchup.lagged(missed);
        }
        if ask {
            self.want_keyframe(feed);
        }
    }

    fn want_keyframe(&mut self, feed: FeedKey) {
        if !self.keyframes_wanted.contains(&feed) {
            self.keyframes_wanted.push(feed);
        }
    }

    /// Sends an encoded frame to every connected viewer of its stream (codec and monitor). A viewer waiting for
    /// a keyframe skips delta frames (the first skip of a gap asks for a keyframe, through
    /// [`HubEvent::KeyframeWanted`] from the next poll). Returns whether some viewer still
    /// waits for a keyframe.
    ///
    /// Video is shown as soon as it is decoded (playout delay 0), except for a viewer that
    /// hears sound right now: its video is held back (see `sync.rs`) so that picture and
    /// sound stay together; a second after the sound stops, video is immediate again.
    pub fn send_frame(&mut self, now: Instant, feed: impl Into<FeedKey>, frame: &EncodedFrame) -> bool {
        let feed = feed.into();
        let rtp_time = MediaTime::from_90khz((frame.pts.as_micros() * 9 / 100) as u64);
        // Keyframes (the first of a stream waits for the encoder to start) take longer than
        // the frames that follow and would hold the average up for seconds.
        if !frame.keyframe {
            self.video_age.add(now.saturating_duration_since(frame.captured));
        }
        let sounding = self.av_sync
            && self.last_sound_at.is_some_and(|t| now.saturating_duration_since(t) < SOUND_ACTIVE);
        let ages = self.ages();
        let mut waiting = false;
        let mut ask = false;
        for p in self.peers.values_mut().filter(|p| p.feed() == feed) {
            let delay = p.sync.playout_delay(now, sounding && p.audio.is_some(), ages);
            let (Some((mid, params)), true) = (&p.track, p.connected) else {
                continue;
            };
            if p.keyframes_only && !frame.keyframe {
                if p.last_keyframe_at
                    .is_none_or(|t| now.saturating_duration_since(t) >= KEYFRAMES_ONLY_INTERVAL)
                {
                    ask = true;
                    p.last_keyframe_at = Some(now);
                }
                continue;
            }
            // WebRTC frames are not dropped for their age: the browser's jitter buffer and
            // its keyframe requests deal with a slow path.
            match p.catchup.frame(now, frame.captured, frame.keyframe, Duration::MAX) {
                Verdict::Deliver => {}
                Verdict::Drop => {
                    waiting = true;
                    continue;
                }
                Verdict::DropAndRequestKeyframe => {
                    waiting = true;
                    ask = true;
                    continue;
                }
            }
            let Some(writer) = p.rtc.writer(*mid) else { continue };
            let delay = MediaTime::from_90khz(delay.as_micros() as u64 * 9 / 100);
            match writer.playout_delay(delay, delay).write(
                params.pt(),
                frame.captured.min(now),
                rtp_time,
                frame.data.clone(),
            ) {
                Ok(()) => {
                    p.frames_sent += 1;
                    p.last_frame_at = Some(now);
                    if frame.keyframe {
                        p.last_keyframe_at = Some(now);
                    }
                }
                Err(e) => {
                    // What follows would depend on the frame that did not go out.
                    tracing::debug!(id = %p.id, "write failed: {e}");
                    ask |= p.catchup.need_keyframe();
                }
            }
        }
        if ask {
            self.want_keyframe(feed);
        }
        waiting
    }

    /// Advances every peer to `now`, collecting datagrams to send and events. Returns when
    /// the hub next needs [`Hub::poll`] called if nothing else happens.
    pub fn poll(&mut self, now: Instant, out: &mut Vec<Transmit>, events: &mut Vec<HubEvent>) -> Instant {
        let mut next = now + Duration::from_millis(500);
        for p in self.peers.values_mut() {
            // A limited peer's held keyframe request whose time has come.
            let feed = p.feed();
            if let Some(l) = p.keyframes.as_mut() {
                if l.take_due(now) {
                    events.push(HubEvent::KeyframeWanted(feed));
                }
                if let Some(t) = l.due_at() {
                    next = next.min(t);
                }
            }
            if p.rtc.is_alive()
                && let Err(e) = p.rtc.handle_input(Input::Timeout(now))
            {
                tracing::debug!(id = %p.id, "timeout handling failed: {e}");
                p.rtc.disconnect();
            }
            while p.rtc.is_alive() {
                match p.rtc.poll_output() {
                    Ok(Output::Timeout(t)) => {
                        next = next.min(t);
                        break;
                    }
                    Ok(Output::Transmit(t)) => {
                        out.push(Transmit { destination: t.destination, contents: t.contents.to_vec() })
                    }
                    Ok(Output::Event(Event::MediaEgressStats(s)))
                        if Some(s.mid) == p.track.as_ref().map(|t| t.0) =>
                    {
                        self.nacks += s.nacks.saturating_sub(p.path.nacks);
                        // Receiver reports come about once a second: a report without one
                        // keeps the last loss and round trip.
                        let (loss, rtt) = (s.loss.or(p.path.loss), s.rtt.or(p.path.rtt));
                        (p.path.loss, p.path.rtt, p.path.nacks) = (loss, rtt, s.nacks);
                    }
                    Ok(Output::Event(Event::MediaEgressStats(s)))
                        if Some(s.mid) == p.audio.as_ref().map(|a| a.0) =>
                    {
                        p.path.audio_sent(s.timestamp, s.bytes, s.packets);
                    }
                    Ok(Output::Event(Event::PeerStats(s))) => {
                        p.path.audio_quiet(s.timestamp);
                        let outage_over = p.estimate.outage_over(&mut p.rtc, &s);
                        if let Some(limits) = self.bitrates {
                            let limited = self.limited.contains(&p.feed());
                            if let Some(bps) =
                                p.estimate.stats(p.id, &mut p.rtc, &mut p.path, limits, limited, &s)
                            {
                                events.push(HubEvent::Estimate(p.id, p.feed(), bps));
                            }
                        }
                        // After the estimate: the keyframe is sized to the path as it was.
                        if outage_over {
                            tracing::debug!(id = %p.id, "feedback again after an outage: a keyframe");
                            p.catchup.need_keyframe();
                            events.push(HubEvent::KeyframeWanted(p.feed()));
                        }
                    }
                    // A three-second average of what the stats carry (see STATS_EVERY).
                    Ok(Output::Event(Event::EgressBitrateEstimate(BweKind::Twcc { .. }))) => {}
                    Ok(Output::Event(e)) => handle_event(
                        p,
                        now,
                        e,
                        events,
                        &mut self.idle_plis_ignored,
                        &mut self.keyframes_refused,
                    ),
                    Err(e) => {
                        tracing::debug!(id = %p.id, "peer failed: {e}");
                        p.rtc.disconnect();
                    }
                }
            }
        }
        let dead: Vec<PeerId> = self.peers.values().filter(|p| !p.rtc.is_alive()).map(|p| p.id).collect();
        for id in dead {
            if let Some(p) = self.peers.remove(&id) {
                self.routes.remove_peer(id);
                tracing::info!(%id, frames = p.frames_sent, "viewer disconnected");
                self.gone.push((id, "connection lost".into()));
            }
        }
        events.extend(self.gone.drain(..).map(|(id, why)| HubEvent::Disconnected(id, why)));
        events.extend(self.keyframes_wanted.drain(..).map(HubEvent::KeyframeWanted));
        next.max(now)
    }
}

fn handle_event(
    p: &mut Peer,
    now: Instant,
    e: Event,
    events: &mut Vec<HubEvent>,
    idle_plis: &mut u64,
    keyframes_refused: &mut u64,
) {
    match e {
        Event::Connected => {
            p.connected = true;
            p.sound.connected(now);
            p.catchup.need_keyframe();
            events.push(HubEvent::Connected(p.id));
            events.push(HubEvent::KeyframeWanted(p.feed()));
        }
        Event::IceConnectionStateChange(IceConnectionState::Disconnected) => p.rtc.disconnect(),
        Event::MediaAdded(m) if m.kind == MediaKind::Audio => audio::media_added(p, &m),
        Event::MediaData(d) if Some(d.mid) == p.mic_mid => {
            events.push(HubEvent::Microphone(p.id, d.data.to_vec()))
        }
        Event::MediaAdded(m) if m.kind == MediaKind::Video && m.direction == Direction::SendOnly => {
            let Some(writer) = p.rtc.writer(m.mid) else { return };
            let params = best_params(writer.payload_params(), p.codec);
            if let Some(params) = params {
                p.track = Some((m.mid, params));
            }
        }
        Event::KeyframeRequest(r) => {
            let idle = p.last_frame_at.is_some_and(|t| now.saturating_duration_since(t) >= IDLE_PLI_AFTER);
            if r.kind == KeyframeRequestKind::Pli && idle && !p.catchup.waiting() {
                tracing::debug!(id = %p.id, "PLI from an idle stream not answered");
                *idle_plis += 1;
                return;
            }
            if !p.keyframe_request(now, keyframes_refused) {
                tracing::trace!(id = %p.id, kind = ?r.kind, "keyframe request of a limited peer held or dropped");
                return;
            }
            tracing::debug!(id = %p.id, kind = ?r.kind, "keyframe requested");
            // A FIR means the decoder cannot go on: deltas wait for the keyframe. A PLI only
            // asks for one; the decoder conceals in the meantime. Either is answered, even
            // in a gap that asked already: the browser asks again only when it has to.
            if r.kind == KeyframeRequestKind::Fir {
                p.catchup.need_keyframe();
            }
            events.push(HubEvent::KeyframeWanted(p.feed()));
        }
        _ => {}
    }
}

/// Picks the payload type to send with: for H.264, constrained baseline (42e01f) with
/// packetization-mode 1 if offered, else any packetization-mode 1 profile.
fn best_params<'a>(
    params: impl Iterator<Item = &'a str0m::format::PayloadParams>,
    codec: VideoCodec,
) -> Option<str0m::format::PayloadParams> {
    let want = match codec {
        VideoCodec::H264 => Codec::H264,
        VideoCodec::Vp8 => Codec::Vp8,
    };
    let mut best: Option<(u8, str0m::format::PayloadParams)> = None;
    for p in params.filter(|p| p.spec().codec == want) {
        let f = p.spec().format;
        let score = match codec {
            VideoCodec::Vp8 => 1,
            VideoCodec::H264 if f.packetization_mode != Some(1) => 0,
            VideoCodec::H264 if f.profile_level_id == Some(0x42e01f) => 3,
            VideoCodec::H264 if f.profile_level_id.is_some_and(|l| l >> 16 == 0x42) => 2,
            VideoCodec::H264 => 1,
        };
        if score > 0 && best.as_ref().is_none_or(|b| score > b.0) {
            best = Some((score, *p));
        }
    }
    best.map(|b| b.1)
}

/// The first of `prefs` that the offer's video section lists (by `a=rtpmap`).
pub fn choose_codec(sdp: &str, prefs: &[VideoCodec]) -> Option<VideoCodec> {
    let mut in_video = false;
    let mut offered = Vec::new();
    for line in sdp.lines() {
        if line.starts_with("m=") {
            in_video = line.starts_with("m=video");
        } else if in_video && let Some(rest) = line.strip_prefix("a=rtpmap:") {
            let name = rest.split_whitespace().nth(1).unwrap_or("").split('/').next().unwrap_or("");
            offered.push(name.to_ascii_lowercase());
        }
    }
    prefs.iter().copied().find(|c| offered.iter().any(|o| o == c.as_str()))
}

mod audio;
mod estimate;
mod route;
mod sync;
#[cfg(test)]
mod tests;

impl Hub {
    /// Sends an Opus packet to every connected viewer with an audio m-line.
    pub fn send_audio(&mut self, now: Instant, frame: &AudioFrame) {
        if frame.data.len() > 2 {
            self.last_sound_at = Some(now);
        }
        self.audio_age.add(now.saturating_duration_since(frame.captured));
        for p in self.peers.values_mut().filter(|p| p.connected && p.sound.admits(now)) {
            audio::send(&mut p.rtc, p.audio.as_ref(), now, frame);
        }
    }

    /// Records `peer`'s report of how long sound spends in its browser and how long video
    /// did lately (see [`AvSync::report`]); its first report also says that its browser
    /// plays sound, which it gets from then on.
    pub fn set_audio_delay(&mut self, now: Instant, peer: PeerId, ms: u32, video_ms: Option<u32>) {
        let ages = self.ages();
        if let Some(p) = self.peers.get_mut(&peer) {
            p.sound.open();
            p.sync.report(now, ms, video_ms, ages);
        }
    }

    fn ages(&self) -> ServerAges {
        ServerAges { audio_ms: self.audio_age.0.unwrap_or(0.0), video_ms: self.video_age.0.unwrap_or(0.0) }
    }

    /// Whether some peer receives sound.
    pub fn audio_in_use(&self) -> bool {
        self.peers.values().any(|p| p.audio.is_some())
    }
}
