//! One viewer's session as a state machine without I/O: events come in (a message from the
//! browser, the outcome of something the session asked for, the socket closing), actions come
//! out (messages to send, a peer connection to open or close, input to inject, a counter to
//! raise). Time is passed in, and the session-wide [`Control`] is lent to each call, so the
//! whole life of a viewer — signalling, control hand-over, resize, rate, clipboard and input
//! routing — is tested here on simulated time, without sockets, X or encoders.
//!
//! What a view-only viewer may not do is decided here too: it gets no remote clipboard
//! (unless the server allows it), its peer connection takes no microphone, and its keyframe
//! requests are limited to one a second ([`PeerPolicy::VIEW_ONLY`]).
//!
//! `signal.rs` pumps the socket through it and carries out the actions; it must not decide
//! anything this module could.

use std::time::Instant;

use kelpie_media::limit::{KeyframeLimiter, SharedKeyframeLimiter, VIEW_ONLY_KEYFRAME_INTERVAL};
use kelpie_protocol::{
    ClientMessage, ClipboardChunk, GamepadState, InputEvent, ServerMessage, VideoCodec, ViewerReport,
};
use kelpie_webrtc::{PeerId, PeerPolicy};

use crate::control::{Control, Denied, RequestOutcome};
use crate::input::ViewerId;
use crate::pairing::PairError;

/// What the server offers every viewer, fixed for the session.
#[derive(Debug, Clone)]
pub struct Offerings {
    /// Whether viewers with control may resize the display.
    pub resize: bool,
    /// Codecs the server can encode, in its order of preference.
    pub codecs: Vec<VideoCodec>,
    /// Whether view-only viewers get the remote clipboard (`--view-clipboard`).
    pub view_clipboard: bool,
    /// Whether the server has WebRTC (not with `--transport websocket`).
    pub webrtc: bool,
}

/// Something that happened to a viewer's session.
#[derive(Debug)]
pub enum Event {
    /// A text message from the browser that parsed.
    Message(ClientMessage),
    /// A text message from the browser that did not parse, and why.
    Malformed(String),
    /// A binary message from the browser (it never sends one).
    Binary,
    /// The offer asked for with [`Action::Answer`] was answered.
    Answered {
        /// The new peer connection.
        peer: PeerId,
        /// The SDP answer.
        sdp: String,
        /// The codec chosen for it.
        codec: VideoCodec,
    },
    /// The offer asked for with [`Action::Answer`] was refused, and why.
    OfferFailed(String),
    /// Video over the WebSocket ([`Action::StartWsMedia`]) could not start, and why.
    WsMediaFailed(String),
    /// The display could not be resized ([`Action::Resize`]), and why.
    ResizeFailed(String),
    /// The connection closed.
    Closed,
}

/// Counters the session raises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A signalling message that was malformed, oversized or unusable.
    Signal,
    /// Input (or a resize or rate change) from a viewer without control.
    Input,
    /// A keyframe request of a view-only viewer sooner than it may ask.
    Keyframe,
    /// A `viewerstats` report sooner than [`REPORT_INTERVAL`] after the one before, or
    /// without media to report on.
    Report,
    /// A pairing ticket refused, and why.
    Pair(PairError),
}

/// Least time between two `viewerstats` reports of one viewer that are counted (the page
/// sends one every 5 s): a page sending more cannot outweigh the others in `/metrics`.
pub const REPORT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// Which transport a viewer's media takes, as the server knows it (a `/metrics` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaPath {
    /// A WebRTC peer connection.
    WebRtc,
    /// Binary messages on the signalling WebSocket.
    WebSocket,
}

/// What the session asks its driver to do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send the session description and what a newcomer needs: the cursor, and the latest
    /// remote clipboard when `clipboard`.
    Greet {
        /// Whether this viewer may see the remote clipboard.
        clipboard: bool,
    },
    /// Send a message to this viewer.
    Send(ServerMessage),
    /// Send a message to another viewer.
    Notify(ViewerId, ServerMessage),
    /// Tell every viewer who is connected and who has control.
    Roster,
    /// Stop the video and sound on the WebSocket (and the changed regions of
    /// [`Action::FollowRegions`]).
    StopWsMedia,
    /// Send the viewer, on the WebSocket, where each frame of its peer connection's stream (in
    /// this codec) changed, so that it redraws only that (`kelpie_media::regions`).
    FollowRegions(VideoCodec),
    /// Close this viewer's peer connection.
    ClosePeer(PeerId),
    /// Answer a WebRTC offer for a peer allowed what the policy allows; the outcome comes back
    /// as [`Event::Answered`] or [`Event::OfferFailed`].
    Answer(String, PeerPolicy),
    /// A trickled ICE candidate for the viewer's peer connection.
    AddCandidate(PeerId, String),
    /// The browser's sound and video delays, for A/V sync on the peer connection.
    AudioDelay {
        /// The peer connection.
        peer: PeerId,
        /// Sound delay in the browser, ms.
        ms: u32,
        /// Video delay in the browser, ms.
        video_ms: Option<u32>,
    },
    /// Make a keyframe: for this viewer's peer connection (whose own limiter applies), or,
    /// without one, on every stream.
    Keyframe(Option<PeerId>),
    /// Send video (and sound, if asked) over the WebSocket in this codec; on failure,
    /// [`Event::WsMediaFailed`].
    StartWsMedia {
        /// The codec, one the browser and the server both have.
        codec: VideoCodec,
        /// Whether the browser asked for sound too.
        audio: bool,
    },
    /// Resize the display; on failure, [`Event::ResizeFailed`].
    Resize {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// Dots per inch.
        dpi: u32,
    },
    /// Start (`true`) or stop the recording the controller may start (`--record-dir`).
    Record(bool),
    /// A WebSocket video frame (and those before it) arrived at the viewer: pts in µs.
    Ack(u64),
    /// Change the stream's frame rate and bitrate.
    SetRate {
        /// Frames per second.
        fps: u32,
        /// Kilobits per second.
        bitrate: u32,
    },
    /// Pass a clipboard chunk on. `allowed`: whether the viewer may drive the display now.
    Clipboard(ClipboardChunk, bool),
    /// Keyboard or mouse input for the display.
    Input(InputEvent),
    /// A gamepad's state, for the session's pads (`--gamepads`).
    Gamepad(GamepadState),
    /// Drop the input of this viewer still queued and release every key and button it holds,
    /// and put the gamepads it drove at rest (it left, or lost control).
    ReleaseInput(ViewerId),
    /// Issue this viewer a pairing ticket (fresh randomness, [`Control::issue_ticket`]) and
    /// send it ([`ServerMessage::PairTicket`]).
    IssueTicket,
    /// Count a refused message.
    Count(Refusal),
    /// Add a viewer's report to the quality metrics of its transport.
    Report(MediaPath, ViewerReport),
}

/// Where this viewer's media goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Media {
    /// Nowhere yet.
    None,
    /// An offer is being answered.
    Offered,
    /// A peer connection.
    WebRtc(PeerId),
    /// Binary messages on the signalling WebSocket.
    WebSocket,
}

/// One viewer's session.
#[derive(Debug)]
pub struct ViewerSession {
    id: ViewerId,
    view_only: bool,
    offerings: Offerings,
    media: Media,
    /// Keyframe requests of a view-only viewer without a peer connection: its `keyframe`
    /// messages, and those of its video over the WebSocket when it falls behind
    /// ([`ViewerSession::keyframe_limiter`]). A peer connection has its own limiter, shared
    /// with its PLIs and FIRs, in the hub.
    keyframes: SharedKeyframeLimiter,
    /// When the last counted `viewerstats` report came.
    last_report: Option<Instant>,
    closed: bool,
}

impl ViewerSession {
    /// A viewer joined (`view_only`: with the view-only token). Returns the session and
    /// what to do first.
    pub fn join(
        id: ViewerId,
        view_only: bool,
        offerings: Offerings,
        now: Instant,
        control: &mut Control,
    ) -> (Self, Vec<Action>) {
        control.join(id, view_only, now);
        let clipboard = sees_clipboard(view_only, offerings.view_clipboard);
        let session = Self {
            id,
            view_only,
            offerings,
            media: Media::None,
            keyframes: std::sync::Arc::new(std::sync::Mutex::new(KeyframeLimiter::new(
                VIEW_ONLY_KEYFRAME_INTERVAL,
            ))),
            last_report: None,
            closed: false,
        };
        (session, vec![Action::Greet { clipboard }, Action::Roster])
    }

    /// What this viewer's peer connection may do.
    pub fn peer_policy(&self) -> PeerPolicy {
        if self.view_only { PeerPolicy::VIEW_ONLY } else { PeerPolicy::FULL }
    }

    /// The limiter the keyframe requests of this viewer's video over the WebSocket go
    /// through (shared with its `keyframe` messages), if it is limited (view-only).
    pub fn keyframe_limiter(&self) -> Option<SharedKeyframeLimiter> {
        self.view_only.then(|| self.keyframes.clone())
    }

    /// This viewer's id.
    pub fn id(&self) -> ViewerId {
        self.id
    }

    /// The viewer's peer connection, if it has one.
    pub fn peer(&self) -> Option<PeerId> {
        match self.media {
            Media::WebRtc(p) => Some(p),
            _ => None,
        }
    }

    /// Handles one event at `now`.
    pub fn handle(&mut self, now: Instant, event: Event, control: &mut Control) -> Vec<Action> {
        if self.closed {
            return Vec::new();
        }
        match event {
            Event::Message(msg) => self.message(now, msg, control),
            Event::Malformed(why) => vec![Action::Count(Refusal::Signal), error(why)],
            Event::Binary => vec![Action::Count(Refusal::Signal)],
            Event::Answered { peer, sdp, codec } => {
                if self.media == Media::Offered {
                    self.media = Media::WebRtc(peer);
                    vec![Action::Send(ServerMessage::Answer { sdp, codec }), Action::FollowRegions(codec)]
                } else {
                    // Overtaken by a WebSocket request or another offer: the peer is unwanted.
                    vec![Action::ClosePeer(peer)]
                }
            }
            Event::OfferFailed(why) => {
                if self.media == Media::Offered {
                    self.media = Media::None;
                }
                vec![Action::Count(Refusal::Signal), error(why)]
            }
            Event::WsMediaFailed(why) => {
                if self.media == Media::WebSocket {
                    self.media = Media::None;
                }
                vec![error(why)]
            }
            Event::ResizeFailed(why) => vec![error(why)],
            Event::Closed => {
                self.closed = true;
                control.leave(self.id);
                let mut out = vec![Action::ReleaseInput(self.id)];
                out.extend(self.peer().map(Action::ClosePeer));
                out.push(Action::Roster);
                out
            }
        }
    }

    fn message(&mut self, now: Instant, msg: ClientMessage, control: &mut Control) -> Vec<Action> {
        let id = self.id;
        match msg {
            ClientMessage::Offer { .. } if !self.offerings.webrtc => vec![
                Action::Count(Refusal::Signal),
                error(
                    "this server has no WebRTC (--transport websocket): ask for video over the WebSocket"
                        .into(),
                ),
            ],
            ClientMessage::Offer { sdp } => {
                let mut out = vec![Action::StopWsMedia];
                out.extend(self.peer().map(Action::ClosePeer));
                self.media = Media::Offered;
                out.push(Action::Answer(sdp, self.peer_policy()));
                out
            }
            ClientMessage::Candidate { candidate, .. } => {
                self.peer().map(|p| Action::AddCandidate(p, candidate)).into_iter().collect()
            }
            ClientMessage::AudioDelay { ms, video_ms } => {
                self.peer().map(|peer| Action::AudioDelay { peer, ms, video_ms }).into_iter().collect()
            }
            // Any viewer acknowledges the frames it gets, view-only ones too.
            ClientMessage::Ack { pts } => vec![Action::Ack(pts)],
            ClientMessage::Keyframe => match self.peer() {
                Some(peer) => vec![Action::Keyframe(Some(peer))],
                None if self.view_only
                    && !self.keyframes.lock().unwrap_or_else(|e| e.into_inner()).allow(now) =>
                {
                    vec![Action::Count(Refusal::Keyframe)]
                }
                None => vec![Action::Keyframe(None)],
            },
            ClientMessage::WsVideo { codecs, audio } => {
                let mut out: Vec<Action> = self.peer().map(Action::ClosePeer).into_iter().collect();
                match codecs.iter().copied().find(|c| self.offerings.codecs.contains(c)) {
                    Some(codec) => {
                        self.media = Media::WebSocket;
                        out.push(Action::StartWsMedia { codec, audio });
                    }
                    None => {
                        // A peer or a pending offer is abandoned; WebSocket video already
                        // flowing goes on.
                        if self.media != Media::WebSocket {
                            self.media = Media::None;
                        }
                        out.push(error(
                            "none of the browser's decoders matches the server's encoders".into(),
                        ));
                    }
                }
                out
            }
            ClientMessage::Resize { width, height, dpi } => {
                if !self.offerings.resize {
                    return Vec::new();
                }
                match control.may_input(id, now) {
                    Ok(()) => vec![Action::Resize { width, height, dpi }],
                    Err(_) => vec![Action::Count(Refusal::Input)],
                }
            }
            ClientMessage::Rate { fps, bitrate } => match control.may_input(id, now) {
                Ok(()) => vec![Action::SetRate { fps, bitrate }],
                Err(_) => vec![Action::Count(Refusal::Input)],
            },
            // Whether the server allows it is the recorder's to say (it answers with an error).
            ClientMessage::Record { on } => match control.may_input(id, now) {
                Ok(()) => vec![Action::Record(on)],
                Err(_) => vec![Action::Count(Refusal::Input)],
            },
            ClientMessage::RequestControl => match control.request(id, now) {
                // Taken from an idle controller: what it (and its second window) still holds
                // is released.
                Ok(RequestOutcome::Granted { from: Some(from) }) if from != id => {
                    let mut out: Vec<Action> =
                        control.with_companions(from).into_iter().map(Action::ReleaseInput).collect();
                    out.push(Action::Roster);
                    out
                }
                Ok(RequestOutcome::Granted { .. }) => vec![Action::Roster],
                Ok(RequestOutcome::Asked(holder)) => {
                    vec![Action::Notify(holder, ServerMessage::ControlRequested { by: id })]
                }
                Err(d) => vec![refusal(d)],
            },
            ClientMessage::GiveControl { to } => {
                let giving = control.with_companions(control.partner(id).unwrap_or(id));
                match control.give(id, to, now) {
                    Ok(()) if giving.contains(&to) => vec![Action::Roster],
                    Ok(()) => {
                        let mut out: Vec<Action> = giving.into_iter().map(Action::ReleaseInput).collect();
                        out.push(Action::Roster);
                        out
                    }
                    Err(d) => vec![refusal(d)],
                }
            }
            ClientMessage::PairTicket => vec![Action::IssueTicket],
            // The ticket is neither logged nor repeated in the error.
            ClientMessage::Pair { ticket } => match control.pair(id, &ticket, now) {
                Ok(with) => vec![Action::Send(ServerMessage::Paired { with }), Action::Roster],
                Err(e) => vec![Action::Count(Refusal::Pair(e)), error(e.to_string())],
            },
            ClientMessage::Clipboard(chunk) => {
                let allowed = control.may_input(id, now).is_ok();
                vec![Action::Clipboard(chunk, allowed)]
            }
            ClientMessage::ViewerStats(report) => {
                let path = match self.media {
                    Media::WebRtc(_) => MediaPath::WebRtc,
                    Media::WebSocket => MediaPath::WebSocket,
                    Media::None | Media::Offered => return vec![Action::Count(Refusal::Report)],
                };
                if self.last_report.is_some_and(|t| now.saturating_duration_since(t) < REPORT_INTERVAL) {
                    return vec![Action::Count(Refusal::Report)];
                }
                self.last_report = Some(now);
                vec![Action::Report(path, report)]
            }
            ClientMessage::Gamepad(pad) => match control.may_input(id, now) {
                Ok(()) => vec![Action::Gamepad(pad)],
                Err(_) => vec![Action::Count(Refusal::Input)],
            },
            // Counted, not answered: a view-only page may send many.
            ClientMessage::Input(input) => match control.may_input(id, now) {
                Ok(()) => vec![Action::Input(input)],
                Err(_) => vec![Action::Count(Refusal::Input)],
            },
        }
    }
}

/// Whether a viewer sees the remote clipboard: every viewer with full access; a view-only
/// one only with `view_clipboard` (`--view-clipboard`).
pub fn sees_clipboard(view_only: bool, view_clipboard: bool) -> bool {
    !view_only || view_clipboard
}

fn error(message: String) -> Action {
    Action::Send(ServerMessage::Error { message, fatal: false })
}

fn refusal(d: Denied) -> Action {
    let message = match d {
        Denied::ViewOnly => "this link is view-only: ask for the full link to get control",
        Denied::NotController => "only the viewer who has control can give it",
        Denied::Unknown => "no such viewer",
    };
    error(message.into())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const IDLE: Duration = Duration::from_secs(10);

    fn offerings() -> Offerings {
        Offerings {
            resize: true,
            codecs: vec![VideoCodec::H264, VideoCodec::Vp8],
            view_clipboard: false,
            webrtc: true,
        }
    }

    struct World {
        t0: Instant,
        control: Control,
    }

    impl World {
        fn new() -> Self {
            Self { t0: Instant::now(), control: Control::new(false, IDLE) }
        }
        fn at(&self, secs: u64) -> Instant {
            self.t0 + Duration::from_secs(secs)
        }
        fn join(&mut self, id: ViewerId, view_only: bool) -> ViewerSession {
            let (s, first) = ViewerSession::join(id, view_only, offerings(), self.t0, &mut self.control);
            assert_eq!(first, [Action::Greet { clipboard: !view_only }, Action::Roster]);
            s
        }
        fn send(&mut self, s: &mut ViewerSession, secs: u64, msg: ClientMessage) -> Vec<Action> {
            let now = self.at(secs);
            s.handle(now, Event::Message(msg), &mut self.control)
        }
        fn event(&mut self, s: &mut ViewerSession, secs: u64, e: Event) -> Vec<Action> {
            let now = self.at(secs);
            s.handle(now, e, &mut self.control)
        }
    }

    fn key(keysym: u32) -> ClientMessage {
        ClientMessage::Input(InputEvent::Key { keysym, down: true })
    }

    fn is_error(a: &Action) -> bool {
        matches!(a, Action::Send(ServerMessage::Error { fatal: false, .. }))
    }

    #[test]
    fn the_controller_types_and_the_others_are_counted_not_answered() {
        let mut w = World::new();
        let mut a = w.join(1, false);
        let mut b = w.join(2, false);
        let mut v = w.join(3, true);
        assert_eq!(w.send(&mut a, 0, key(65)), [Action::Input(InputEvent::Key { keysym: 65, down: true })]);
        assert_eq!(w.send(&mut b, 0, key(65)), [Action::Count(Refusal::Input)]);
        assert_eq!(w.send(&mut v, 0, key(65)), [Action::Count(Refusal::Input)]);
        let rate = ClientMessage::Rate { fps: 30, bitrate: 2000 };
        assert_eq!(w.send(&mut a, 0, rate.clone()), [Action::SetRate { fps: 30, bitrate: 2000 }]);
        assert_eq!(w.send(&mut v, 0, rate), [Action::Count(Refusal::Input)]);
        // Only the controller starts or stops a recording.
        let record = ClientMessage::Record { on: true };
        assert_eq!(w.send(&mut a, 0, record.clone()), [Action::Record(true)]);
        assert_eq!(w.send(&mut b, 0, record.clone()), [Action::Count(Refusal::Input)]);
        assert_eq!(w.send(&mut v, 0, record), [Action::Count(Refusal::Input)]);
    }

    #[test]
    fn a_second_window_paired_by_ticket_types_for_the_first_and_a_forged_ticket_is_counted() {
        let mut w = World::new();
        let mut a = w.join(1, false);
        let mut other = w.join(2, false);
        let mut second = w.join(3, false);
        assert_eq!(w.send(&mut second, 0, key(65)), [Action::Count(Refusal::Input)]);
        assert_eq!(w.send(&mut a, 0, ClientMessage::PairTicket), [Action::IssueTicket]);
        // The driver issues it with fresh randomness.
        let ticket = w.control.issue_ticket(1, [9; crate::pairing::SECRET_LEN], w.at(0)).unwrap();
        let forged = ClientMessage::Pair { ticket: format!("1.{}", "00".repeat(16)) };
        let out = w.send(&mut other, 1, forged);
        assert_eq!(out[0], Action::Count(Refusal::Pair(PairError::Unknown)));
        assert!(
            matches!(&out[1], Action::Send(ServerMessage::Error { message, fatal: false }) if message.contains("menu"))
        );
        assert_eq!(
            w.send(&mut second, 1, ClientMessage::Pair { ticket: ticket.clone() }),
            [Action::Send(ServerMessage::Paired { with: 1 }), Action::Roster]
        );
        assert_eq!(
            w.send(&mut second, 2, key(66)),
            [Action::Input(InputEvent::Key { keysym: 66, down: true })]
        );
        assert_eq!(w.send(&mut other, 2, key(66)), [Action::Count(Refusal::Input)]);
        // Presented again (by anyone): refused, counted.
        assert_eq!(
            w.send(&mut other, 3, ClientMessage::Pair { ticket })[0],
            Action::Count(Refusal::Pair(PairError::Unknown))
        );
        // The first window gives control away: both windows' held input is released.
        assert_eq!(
            w.send(&mut a, 4, ClientMessage::GiveControl { to: 2 }),
            [Action::ReleaseInput(1), Action::ReleaseInput(3), Action::Roster]
        );
        assert_eq!(w.send(&mut second, 5, key(67)), [Action::Count(Refusal::Input)]);
        // An expired ticket.
        let late = w.control.issue_ticket(2, [8; crate::pairing::SECRET_LEN], w.at(5)).unwrap();
        let mut third = w.join(4, false);
        let t = 5 + crate::pairing::TICKET_TTL.as_secs();
        assert_eq!(
            w.send(&mut third, t, ClientMessage::Pair { ticket: late })[0],
            Action::Count(Refusal::Pair(PairError::Expired))
        );
    }

    #[test]
    fn control_is_asked_for_given_and_taken_from_an_idle_holder() {
        let mut w = World::new();
        let mut a = w.join(1, false);
        let mut b = w.join(2, false);
        // The holder is active: it is asked.
        w.send(&mut a, 1, key(65));
        assert_eq!(
            w.send(&mut b, 2, ClientMessage::RequestControl),
            [Action::Notify(1, ServerMessage::ControlRequested { by: 2 })]
        );
        // It gives control: what it holds is released and everyone is told.
        assert_eq!(
            w.send(&mut a, 3, ClientMessage::GiveControl { to: 2 }),
            [Action::ReleaseInput(1), Action::Roster]
        );
        assert_eq!(w.send(&mut b, 3, key(66)).len(), 1);
        assert!(matches!(w.send(&mut b, 3, key(66))[0], Action::Input(_)));
        // Only the holder can give it.
        assert!(is_error(&w.send(&mut a, 4, ClientMessage::GiveControl { to: 1 })[0]));
        // After IDLE without input from the holder, asking takes it, and what the holder
        // still held is released.
        assert_eq!(
            w.send(&mut a, 3 + IDLE.as_secs(), ClientMessage::RequestControl),
            [Action::ReleaseInput(2), Action::Roster]
        );
        assert_eq!(w.control.controller(), Some(1));
    }

    #[test]
    fn a_view_only_viewer_is_refused_control_with_a_reason() {
        let mut w = World::new();
        let _a = w.join(1, false);
        let mut v = w.join(2, true);
        let out = w.send(&mut v, 0, ClientMessage::RequestControl);
        assert!(
            matches!(&out[..], [Action::Send(ServerMessage::Error { message, .. })] if message.contains("view-only"))
        );
    }

    #[test]
    fn a_websocket_only_server_refuses_offers_and_streams_over_the_websocket() {
        let mut w = World::new();
        let offerings = Offerings { webrtc: false, ..offerings() };
        let (mut a, _) = ViewerSession::join(1, false, offerings, w.t0, &mut w.control);
        let out = w.send(&mut a, 0, ClientMessage::Offer { sdp: "v=0".into() });
        assert!(
            matches!(&out[..], [Action::Count(Refusal::Signal), Action::Send(ServerMessage::Error { message, fatal: false })]
                if message.contains("--transport websocket")),
            "{out:?}"
        );
        assert_eq!(a.peer(), None);
        let ws = ClientMessage::WsVideo { codecs: vec![VideoCodec::H264], audio: false };
        assert_eq!(w.send(&mut a, 1, ws), [Action::StartWsMedia { codec: VideoCodec::H264, audio: false }]);
    }

    #[test]
    fn an_offer_is_answered_and_a_second_offer_replaces_the_peer() {
        let mut w = World::new();
        let mut a = w.join(1, false);
        assert_eq!(
            w.send(&mut a, 0, ClientMessage::Offer { sdp: "v=0 one".into() }),
            [Action::StopWsMedia, Action::Answer("v=0 one".into(), PeerPolicy::FULL)]
        );
        // Candidates before the answer have no peer to go to.
        let cand = ClientMessage::Candidate { candidate: "candidate:1".into(), sdp_mid: None };
        assert_eq!(w.send(&mut a, 0, cand.clone()), []);
        let answered = Event::Answered { peer: PeerId(7), sdp: "v=0 answer".into(), codec: VideoCodec::H264 };
        assert_eq!(
            w.event(&mut a, 0, answered),
            [
                Action::Send(ServerMessage::Answer { sdp: "v=0 answer".into(), codec: VideoCodec::H264 }),
                Action::FollowRegions(VideoCodec::H264)
            ]
        );
        assert_eq!(a.peer(), Some(PeerId(7)));
        assert_eq!(w.send(&mut a, 0, cand.clone()), [Action::AddCandidate(PeerId(7), "candidate:1".into())]);
        assert_eq!(w.send(&mut a, 0, ClientMessage::Keyframe), [Action::Keyframe(Some(PeerId(7)))]);
        assert_eq!(w.send(&mut a, 0, ClientMessage::Ack { pts: 16_000 }), [Action::Ack(16_000)]);
        assert_eq!(
            w.send(&mut a, 0, ClientMessage::AudioDelay { ms: 40, video_ms: Some(12) }),
            [Action::AudioDelay { peer: PeerId(7), ms: 40, video_ms: Some(12) }]
        );
        // A new offer (an ICE restart after a network change) closes the old peer first.
        assert_eq!(
            w.send(&mut a, 1, ClientMessage::Offer { sdp: "v=0 two".into() }),
            [
                Action::StopWsMedia,
                Action::ClosePeer(PeerId(7)),
                Action::Answer("v=0 two".into(), PeerPolicy::FULL)
            ]
        );
        assert_eq!(a.peer(), None);
        let failed = w.event(&mut a, 1, Event::OfferFailed("no common codec".into()));
        assert_eq!(failed[0], Action::Count(Refusal::Signal));
        assert!(is_error(&failed[1]));
        assert_eq!(w.send(&mut a, 1, ClientMessage::Keyframe), [Action::Keyframe(None)]);
    }

    #[test]
    fn viewer_reports_count_once_per_interval_under_the_transport_the_server_knows() {
        let mut w = World::new();
        let mut a = w.join(1, false);
        let report = ViewerReport { fps: Some(60), rtt_ms: Some(3), loss_ppm: Some(0), delay_ms: Some(5) };
        let msg = ClientMessage::ViewerStats(report);
        // No media yet: nothing to report on.
        assert_eq!(w.send(&mut a, 0, msg.clone()), [Action::Count(Refusal::Report)]);
        w.send(&mut a, 0, ClientMessage::Offer { sdp: "v=0".into() });
        assert_eq!(w.send(&mut a, 0, msg.clone()), [Action::Count(Refusal::Report)], "offered is not media");
        let answered = Event::Answered { peer: PeerId(2), sdp: "v=0 answer".into(), codec: VideoCodec::H264 };
        w.event(&mut a, 0, answered);
        assert_eq!(w.send(&mut a, 10, msg.clone()), [Action::Report(MediaPath::WebRtc, report)]);
        // A flood within the interval is counted, not reported.
        assert_eq!(w.send(&mut a, 11, msg.clone()), [Action::Count(Refusal::Report)]);
        assert_eq!(w.send(&mut a, 12, msg.clone()), [Action::Report(MediaPath::WebRtc, report)]);
        let ws = ClientMessage::WsVideo { codecs: vec![VideoCodec::H264], audio: false };
        w.send(&mut a, 13, ws);
        assert_eq!(w.send(&mut a, 14, msg), [Action::Report(MediaPath::WebSocket, report)]);
    }

    #[test]
    fn falling_back_to_the_websocket_closes_the_peer_and_picks_a_common_codec() {
        let mut w = World::new();
        let mut a = w.join(1, false);
        w.send(&mut a, 0, ClientMessage::Offer { sdp: "v=0".into() });
        w.event(&mut a, 0, Event::Answered { peer: PeerId(3), sdp: "a".into(), codec: VideoCodec::H264 });
        // ICE did not connect within 4 s: the page asks for video on the WebSocket.
        let ws = ClientMessage::WsVideo { codecs: vec![VideoCodec::Vp8, VideoCodec::H264], audio: true };
        assert_eq!(
            w.send(&mut a, 4, ws),
            [Action::ClosePeer(PeerId(3)), Action::StartWsMedia { codec: VideoCodec::Vp8, audio: true }]
        );
        assert_eq!(a.peer(), None);
        // No decoder in common: told why, nothing started.
        let mut w2 = World::new();
        let mut b = w2.join(1, false);
        w2.control = Control::new(false, IDLE);
        b.offerings.codecs = vec![VideoCodec::H264];
        let out = w2.send(&mut b, 0, ClientMessage::WsVideo { codecs: vec![VideoCodec::Vp8], audio: false });
        assert_eq!(out.len(), 1);
        assert!(is_error(&out[0]));
    }

    #[test]
    fn an_answer_that_arrives_after_the_viewer_moved_on_is_closed() {
        let mut w = World::new();
        let mut a = w.join(1, false);
        w.send(&mut a, 0, ClientMessage::Offer { sdp: "v=0".into() });
        w.send(&mut a, 0, ClientMessage::WsVideo { codecs: vec![VideoCodec::H264], audio: false });
        let late = Event::Answered { peer: PeerId(9), sdp: "a".into(), codec: VideoCodec::H264 };
        assert_eq!(w.event(&mut a, 0, late), [Action::ClosePeer(PeerId(9))]);
        assert_eq!(a.peer(), None);
    }

    #[test]
    fn resize_needs_control_and_the_servers_consent() {
        let mut w = World::new();
        let mut a = w.join(1, false);
        let mut b = w.join(2, false);
        let resize = ClientMessage::Resize { width: 1280, height: 720, dpi: 192 };
        assert_eq!(
            w.send(&mut a, 0, resize.clone()),
            [Action::Resize { width: 1280, height: 720, dpi: 192 }]
        );
        assert_eq!(w.send(&mut b, 0, resize.clone()), [Action::Count(Refusal::Input)]);
        let failed = w.event(&mut a, 0, Event::ResizeFailed("xrandr refused".into()));
        assert!(is_error(&failed[0]));
        a.offerings.resize = false;
        assert_eq!(w.send(&mut a, 0, resize), []);
    }

    #[test]
    fn clipboard_chunks_carry_whether_the_viewer_may_drive_the_display() {
        let mut w = World::new();
        let mut a = w.join(1, false);
        let mut v = w.join(2, true);
        let chunk = ClipboardChunk { seq: 1, mime: "text/plain".into(), data: "aGk=".into(), last: true };
        assert_eq!(
            w.send(&mut a, 0, ClientMessage::Clipboard(chunk.clone())),
            [Action::Clipboard(chunk.clone(), true)]
        );
        assert_eq!(
            w.send(&mut v, 0, ClientMessage::Clipboard(chunk.clone())),
            [Action::Clipboard(chunk, false)]
        );
    }

    #[test]
    fn malformed_and_binary_messages_are_counted_and_only_malformed_ones_answered() {
        let mut w = World::new();
        let mut a = w.join(1, false);
        let out = w.event(&mut a, 0, Event::Malformed("malformed message: EOF".into()));
        assert_eq!(out[0], Action::Count(Refusal::Signal));
        assert!(is_error(&out[1]));
        assert_eq!(w.event(&mut a, 0, Event::Binary), [Action::Count(Refusal::Signal)]);
    }

    #[test]
    fn leaving_releases_input_closes_the_peer_and_passes_control_on() {
        let mut w = World::new();
        let mut a = w.join(1, false);
        let mut b = w.join(2, false);
        w.send(&mut a, 0, ClientMessage::Offer { sdp: "v=0".into() });
        w.event(&mut a, 0, Event::Answered { peer: PeerId(5), sdp: "a".into(), codec: VideoCodec::H264 });
        assert_eq!(
            w.event(&mut a, 1, Event::Closed),
            [Action::ReleaseInput(1), Action::ClosePeer(PeerId(5)), Action::Roster]
        );
        assert_eq!(w.control.controller(), Some(2));
        assert!(matches!(w.send(&mut b, 1, key(65))[..], [Action::Input(_)]));
        // Nothing more happens in a closed session.
        assert_eq!(w.send(&mut a, 2, key(65)), []);
        assert_eq!(w.event(&mut a, 2, Event::Closed), []);
    }

    #[test]
    fn a_view_only_viewer_gets_no_clipboard_unless_the_server_allows_it() {
        let mut control = Control::new(false, IDLE);
        let t = Instant::now();
        let (_, first) = ViewerSession::join(1, true, offerings(), t, &mut control);
        assert_eq!(first[0], Action::Greet { clipboard: false });
        let allowed = Offerings { view_clipboard: true, ..offerings() };
        let (_, first) = ViewerSession::join(2, true, allowed, t, &mut control);
        assert_eq!(first[0], Action::Greet { clipboard: true });
        let (_, first) = ViewerSession::join(3, false, offerings(), t, &mut control);
        assert_eq!(first[0], Action::Greet { clipboard: true });
    }

    #[test]
    fn a_view_only_viewers_peer_takes_no_microphone_and_limits_its_keyframes() {
        let mut w = World::new();
        let mut v = w.join(1, true);
        let out = w.send(&mut v, 0, ClientMessage::Offer { sdp: "v=0".into() });
        assert_eq!(out.last(), Some(&Action::Answer("v=0".into(), PeerPolicy::VIEW_ONLY)));
        assert_eq!(
            PeerPolicy::VIEW_ONLY,
            PeerPolicy { microphone: false, keyframe_interval: Some(VIEW_ONLY_KEYFRAME_INTERVAL) }
        );
        w.event(&mut v, 0, Event::Answered { peer: PeerId(4), sdp: "a".into(), codec: VideoCodec::H264 });
        // With a peer, every request goes to the hub, whose limiter for the peer also
        // counts its PLIs and FIRs.
        assert_eq!(w.send(&mut v, 0, ClientMessage::Keyframe), [Action::Keyframe(Some(PeerId(4)))]);
        assert_eq!(w.send(&mut v, 0, ClientMessage::Keyframe), [Action::Keyframe(Some(PeerId(4)))]);
    }

    #[test]
    fn a_view_only_viewer_without_a_peer_makes_one_keyframe_a_second_at_most() {
        let mut w = World::new();
        let mut v = w.join(1, true);
        let mut a = w.join(2, false);
        w.send(&mut v, 0, ClientMessage::WsVideo { codecs: vec![VideoCodec::H264], audio: false });
        // 50 requests over 2.5 s (simulated, 50 ms apart).
        let mut made = 0;
        let mut refused = 0;
        for i in 0..50u64 {
            let now = w.t0 + Duration::from_millis(i * 50);
            match &v.handle(now, Event::Message(ClientMessage::Keyframe), &mut w.control)[..] {
                [Action::Keyframe(None)] => made += 1,
                [Action::Count(Refusal::Keyframe)] => refused += 1,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!((made, refused), (3, 47), "at 0, 1 and 2 s");
        // Its video over the WebSocket asks through the same limiter: one second after the
        // last message made one (at 2 s), not sooner; and a message then waits for it.
        let video = v.keyframe_limiter().expect("a view-only viewer is limited");
        let at = |ms| w.t0 + Duration::from_millis(ms);
        assert!(video.lock().unwrap().request(at(2500)).refused());
        assert!(video.lock().unwrap().take_due(at(3000)));
        let out = v.handle(at(3500), Event::Message(ClientMessage::Keyframe), &mut w.control);
        assert_eq!(out, [Action::Count(Refusal::Keyframe)]);
        // A viewer with full access is not limited here (the encoder spaces keyframes).
        assert!(a.keyframe_limiter().is_none());
        for _ in 0..10 {
            assert_eq!(w.send(&mut a, 0, ClientMessage::Keyframe), [Action::Keyframe(None)]);
        }
    }

    #[test]
    fn only_the_controller_drives_gamepads_and_losing_control_releases_them() {
        let mut w = World::new();
        let mut a = w.join(1, false);
        let mut b = w.join(2, false);
        let mut v = w.join(3, true);
        let pad = GamepadState { index: 0, buttons: vec![32767], axes: vec![0, -32767] };
        let msg = ClientMessage::Gamepad(pad.clone());
        assert_eq!(w.send(&mut a, 0, msg.clone()), [Action::Gamepad(pad.clone())]);
        assert_eq!(w.send(&mut b, 0, msg.clone()), [Action::Count(Refusal::Input)]);
        assert_eq!(w.send(&mut v, 0, msg.clone()), [Action::Count(Refusal::Input)]);
        // Giving control away releases what a held, gamepads included (signal.rs).
        assert_eq!(
            w.send(&mut a, 1, ClientMessage::GiveControl { to: 2 }),
            [Action::ReleaseInput(1), Action::Roster]
        );
        assert_eq!(w.send(&mut a, 1, msg.clone()), [Action::Count(Refusal::Input)]);
        assert_eq!(w.send(&mut b, 1, msg), [Action::Gamepad(pad)]);
    }

    #[test]
    fn giving_control_to_oneself_releases_nothing() {
        let mut w = World::new();
        let mut a = w.join(1, false);
        assert_eq!(w.send(&mut a, 0, ClientMessage::GiveControl { to: 1 }), [Action::Roster]);
        assert_eq!(w.send(&mut a, 0, ClientMessage::RequestControl), [Action::Roster]);
    }
}
