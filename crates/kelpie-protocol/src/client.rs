//! Messages from the browser to the server on the signalling WebSocket, grouped by who
//! handles them: [`ClientMessage`] for the viewer's session (signalling, control, transport,
//! clipboard) and [`InputEvent`] for the keyboard and mouse. The wire format is flat (one
//! JSON object tagged by `type`, see `docs/protocol.md`); [`wire`] holds that shape alone, so
//! grouping the Rust types changes nothing on the wire.

use serde::{Deserialize, Serialize};

use crate::{ClipboardChunk, MAX_SIGNAL_MESSAGE, VideoCodec};

/// Longest text a `text` message may carry, in characters.
pub const MAX_TEXT_CHARS: usize = 4096;
/// Most keys a `keys` heartbeat may list.
pub const MAX_HELD_KEYS: usize = 64;
/// Largest relative pointer move in one message, in pixels.
pub const MAX_REL_MOVE: i32 = 10_000;
/// Most wheel clicks in one message.
pub const MAX_WHEEL_CLICKS: i32 = 100;
/// Largest valid X keysym.
pub const MAX_KEYSYM: u32 = 0x1ff_ffff;
/// Largest browser sound delay a client may report, in ms.
pub const MAX_AUDIO_DELAY_MS: u32 = 2000;
/// Largest round-trip time or delay a `viewerstats` report may carry, in ms.
pub const MAX_REPORT_MS: u32 = 60_000;
/// Largest frame rate a `viewerstats` report may carry.
pub const MAX_REPORT_FPS: u32 = 1000;
/// Longest pairing ticket a `pair` message may carry, in bytes.
pub const MAX_TICKET_LEN: usize = 80;
/// Gamepads a viewer may drive (`index` 0..=3).
pub const MAX_GAMEPADS: u8 = 4;
/// Most buttons a `gamepad` message may carry (the standard mapping's 17).
pub const MAX_GAMEPAD_BUTTONS: usize = 17;
/// Most axes a `gamepad` message may carry (the standard mapping's 4).
pub const MAX_GAMEPAD_AXES: usize = 4;
/// Full scale of a gamepad button or axis value.
pub const GAMEPAD_FULL: i32 = 32767;
/// Loss in a `viewerstats` report is in parts per million: at most all of it.
pub const MAX_REPORT_LOSS_PPM: u32 = 1_000_000;

/// What a viewer measured over the last few seconds (`viewerstats` on the wire), for the
/// server's bounded-cardinality quality metrics. Every figure is optional: a transport
/// that cannot tell one leaves it out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViewerReport {
    /// Frames decoded per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fps: Option<u32>,
    /// Round-trip time of the media path (WebRTC's selected candidate pair), ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<u32>,
    /// Packets lost of those expected, parts per million.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_ppm: Option<u32>,
    /// Mean time from a frame's first packet received to its decoding in the browser, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u32>,
}

impl ViewerReport {
    /// Whether every figure lies within its bound.
    pub fn is_valid(&self) -> bool {
        self.fps.is_none_or(|v| v <= MAX_REPORT_FPS)
            && self.rtt_ms.is_none_or(|v| v <= MAX_REPORT_MS)
            && self.loss_ppm.is_none_or(|v| v <= MAX_REPORT_LOSS_PPM)
            && self.delay_ms.is_none_or(|v| v <= MAX_REPORT_MS)
    }
}

/// A message from the browser to the server on the signalling WebSocket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "wire::Wire", into = "wire::Wire")]
pub enum ClientMessage {
    /// An SDP offer for a new peer connection (receive-only video).
    Offer {
        /// The SDP text.
        sdp: String,
    },
    /// A trickled ICE candidate of the browser.
    Candidate {
        /// The `candidate:` attribute line, as `RTCIceCandidate.candidate`.
        candidate: String,
        /// The media section it belongs to (`sdpMid` on the wire), if the browser gave one.
        sdp_mid: Option<String>,
    },
    /// Ask for a keyframe (the client saw corruption it cannot recover from).
    Keyframe,
    /// How long received sound spends in the browser (jitter buffer and playout), so the
    /// server can hold video back by as much while sound plays (WebRTC transport), and how
    /// long video spent in it meanwhile (last packet received to shown), so the server can
    /// correct its estimate by what the browser actually did. `audiodelay` on the wire.
    AudioDelay {
        /// Milliseconds, at most [`MAX_AUDIO_DELAY_MS`].
        ms: u32,
        /// Median milliseconds from a video frame's last packet to its display, at most
        /// [`MAX_AUDIO_DELAY_MS`]; absent when too few frames were shown to tell.
        video_ms: Option<u32>,
    },
    /// Ask for keyboard and mouse control (`request_control`).
    RequestControl,
    /// Ask for a pairing ticket for a second window this viewer opens (`pair_ticket`).
    PairTicket,
    /// Act for the viewer that issued this ticket (a second window it opened): `pair`.
    Pair {
        /// The ticket, as the first window's `pair_ticket` answer gave it.
        ticket: String,
    },
    /// The controller hands control to another viewer (`give_control`).
    GiveControl {
        /// The viewer to give control to.
        to: u64,
    },
    /// Resize the remote display to fit the browser window (honoured for the viewer with
    /// control when the server allows resizing).
    Resize {
        /// Wanted width in remote pixels.
        width: u32,
        /// Wanted height in remote pixels.
        height: u32,
        /// Dots per inch the remote display should report: 96 × the device pixel ratio when
        /// the user wants a sharp HiDPI picture, else 96 (the default when absent).
        dpi: u32,
    },
    /// A WebSocket video frame arrived: every frame up to the one with this pts (µs, the
    /// header's `pts_us`) did. The server measures the path from these (bandwidth
    /// estimation) and keeps about one round trip of video in flight.
    Ack {
        /// The pts of the newest frame received, in microseconds.
        pts: u64,
    },
    /// Change the stream's frame rate and bitrate (the viewer with control).
    Rate {
        /// Frames per second, 1..=240.
        fps: u32,
        /// Kilobits per second, 100..=400000.
        bitrate: u32,
    },
    /// Send the video over this WebSocket (binary frames, see
    /// [`VideoFrameHeader`](crate::VideoFrameHeader)) instead of WebRTC. Closes this
    /// socket's peer connection, if any. `wsvideo` on the wire.
    WsVideo {
        /// Codecs the browser can decode (WebCodecs), in its order of preference.
        codecs: Vec<VideoCodec>,
        /// The browser can decode Opus: send the sound too
        /// ([`AudioFrameHeader`](crate::AudioFrameHeader)).
        audio: bool,
    },
    /// Start (`on`) or stop recording the session (the viewer with control, when the server
    /// allows it: `--record-dir`).
    Record {
        /// Whether to record.
        on: bool,
    },
    /// One chunk of the browser's clipboard, to become the remote CLIPBOARD selection.
    Clipboard(ClipboardChunk),
    /// What the viewer measured lately (`viewerstats` on the wire), for `/metrics`.
    ViewerStats(ViewerReport),
    /// The state of one of the browser's gamepads (the viewer with control).
    Gamepad(GamepadState),
    /// Keyboard or mouse input, for the input thread.
    Input(InputEvent),
}

/// One gamepad's whole state, in the browser's standard mapping (`gamepad` on the wire).
/// A pad that was disconnected is sent once at rest (every value 0).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GamepadState {
    /// The pad's slot, below [`MAX_GAMEPADS`].
    pub index: u8,
    /// Button values, 0 (released) ..= [`GAMEPAD_FULL`] (fully pressed), at most
    /// [`MAX_GAMEPAD_BUTTONS`].
    pub buttons: Vec<i32>,
    /// Axis values, −[`GAMEPAD_FULL`] (left, up) ..= [`GAMEPAD_FULL`], at most
    /// [`MAX_GAMEPAD_AXES`].
    pub axes: Vec<i32>,
}

impl GamepadState {
    /// Whether every field lies within its bound.
    pub fn is_valid(&self) -> bool {
        self.index < MAX_GAMEPADS
            && self.buttons.len() <= MAX_GAMEPAD_BUTTONS
            && self.axes.len() <= MAX_GAMEPAD_AXES
            && self.buttons.iter().all(|v| (0..=GAMEPAD_FULL).contains(v))
            && self.axes.iter().all(|v| (-GAMEPAD_FULL..=GAMEPAD_FULL).contains(v))
    }
}

/// Keyboard and mouse input from the browser: what the input thread applies to the display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputEvent {
    /// A key went down or up. `keysym` is an X keysym: Latin-1 characters are their code
    /// point, other characters `0x0100_0000 + code point`, special keys their X names'
    /// values (Return = 0xff0d, …).
    Key {
        /// The X keysym.
        keysym: u32,
        /// Pressed (true) or released.
        down: bool,
    },
    /// Text to type as it is: an IME or dead-key composition that was committed.
    Text {
        /// At most [`MAX_TEXT_CHARS`] characters.
        text: String,
    },
    /// The pointer moved to a remote pixel.
    Mouse {
        /// Column, 0 at the left.
        x: i32,
        /// Row, 0 at the top.
        y: i32,
    },
    /// The pointer moved by a relative amount (pointer lock; `mouserel` on the wire).
    MouseRel {
        /// Pixels right.
        dx: i32,
        /// Pixels down.
        dy: i32,
    },
    /// A mouse button went down or up: 1 left, 2 middle, 3 right, 8 back, 9 forward.
    Button {
        /// The X button number.
        button: u8,
        /// Pressed (true) or released.
        down: bool,
    },
    /// Wheel clicks: `dy` > 0 scrolls down, `dx` > 0 scrolls right.
    Wheel {
        /// Horizontal clicks.
        dx: i32,
        /// Vertical clicks.
        dy: i32,
    },
    /// Heartbeat while keys are held: the keysyms the browser believes are down. Keys the
    /// server holds for this viewer that are not listed are released.
    Keys {
        /// At most [`MAX_HELD_KEYS`] keysyms.
        held: Vec<u32>,
    },
    /// Release every key and button this viewer holds (the page lost focus).
    Release,
}

/// Why a client message was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtocolError {
    /// The message exceeds [`MAX_SIGNAL_MESSAGE`].
    #[error("message of {0} bytes exceeds the limit of {MAX_SIGNAL_MESSAGE} bytes")]
    TooLarge(usize),
    /// The message is not valid JSON of a known type.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// A field is outside its bounds.
    #[error("out of range: {0}")]
    OutOfRange(&'static str),
}

fn check(ok: bool, what: &'static str) -> Result<(), ProtocolError> {
    if ok { Ok(()) } else { Err(ProtocolError::OutOfRange(what)) }
}

impl ClientMessage {
    /// Parses one signalling message from the browser, bounding its size first.
    pub fn parse(text: &str) -> Result<Self, ProtocolError> {
        if text.len() > MAX_SIGNAL_MESSAGE {
            return Err(ProtocolError::TooLarge(text.len()));
        }
        let msg: Self = serde_json::from_str(text).map_err(|e| ProtocolError::Malformed(e.to_string()))?;
        msg.validate()?;
        Ok(msg)
    }

    /// Checks every field against its bounds.
    pub fn validate(&self) -> Result<(), ProtocolError> {
        match self {
            Self::Input(input) => input.validate(),
            Self::Resize { width, height, dpi } => check(
                (64..=8192).contains(width) && (64..=8192).contains(height) && (48..=480).contains(dpi),
                "display size",
            ),
            Self::Rate { fps, bitrate } => {
                check((1..=240).contains(fps) && (100..=400_000).contains(bitrate), "frame rate or bitrate")
            }
            Self::WsVideo { codecs, .. } => check(!codecs.is_empty() && codecs.len() <= 8, "codec list"),
            Self::Pair { ticket } => check(ticket.len() <= MAX_TICKET_LEN, "pairing ticket"),
            Self::Clipboard(c) => check(c.is_valid(), "clipboard chunk"),
            Self::ViewerStats(r) => check(r.is_valid(), "viewer stats"),
            Self::Gamepad(g) => check(g.is_valid(), "gamepad state"),
            Self::AudioDelay { ms, video_ms } => check(
                *ms <= MAX_AUDIO_DELAY_MS && video_ms.is_none_or(|v| v <= MAX_AUDIO_DELAY_MS),
                "audio delay",
            ),
            Self::Offer { .. }
            | Self::Candidate { .. }
            | Self::Keyframe
            | Self::Ack { .. }
            | Self::RequestControl
            | Self::PairTicket
            | Self::GiveControl { .. }
            | Self::Record { .. } => Ok(()),
        }
    }

    /// Whether this message drives the remote keyboard or mouse.
    pub fn is_input(&self) -> bool {
        matches!(self, Self::Input(_))
    }
}

impl InputEvent {
    /// Checks every field against its bounds.
    pub fn validate(&self) -> Result<(), ProtocolError> {
        match self {
            Self::Key { keysym, .. } => check(*keysym != 0 && *keysym <= MAX_KEYSYM, "keysym"),
            Self::Text { text } => check(text.chars().count() <= MAX_TEXT_CHARS, "text length"),
            Self::Mouse { x, y } => {
                check((-1..=65_535).contains(x) && (-1..=65_535).contains(y), "pointer position")
            }
            Self::MouseRel { dx, dy } => {
                check(dx.abs() <= MAX_REL_MOVE && dy.abs() <= MAX_REL_MOVE, "relative move")
            }
            Self::Button { button, .. } => check(matches!(button, 1..=3 | 8 | 9), "button"),
            Self::Wheel { dx, dy } => {
                check(dx.abs() <= MAX_WHEEL_CLICKS && dy.abs() <= MAX_WHEEL_CLICKS, "wheel clicks")
            }
            Self::Keys { held } => check(
                held.len() <= MAX_HELD_KEYS && held.iter().all(|k| *k != 0 && *k <= MAX_KEYSYM),
                "held keys",
            ),
            Self::Release => Ok(()),
        }
    }
}

impl From<InputEvent> for ClientMessage {
    fn from(e: InputEvent) -> Self {
        Self::Input(e)
    }
}

/// The flat shape of client messages on the wire: one object tagged by `type`, unknown
/// fields refused (messages without fields are empty struct variants, so that serde refuses
/// unknown fields on them too). Only this module names the JSON spellings.
mod wire {
    use serde::{Deserialize, Serialize};

    use super::{ClientMessage as M, GamepadState, InputEvent as I, ViewerReport};
    use crate::{ClipboardChunk, VideoCodec};

    #[derive(Serialize, Deserialize)]
    #[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
    pub(super) enum Wire {
        Offer {
            sdp: String,
        },
        Candidate {
            candidate: String,
            #[serde(rename = "sdpMid", default, skip_serializing_if = "Option::is_none")]
            sdp_mid: Option<String>,
        },
        Keyframe {},
        Ack {
            pts: u64,
        },
        #[serde(rename = "audiodelay")]
        AudioDelay {
            ms: u32,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            video_ms: Option<u32>,
        },
        Key {
            keysym: u32,
            down: bool,
        },
        Text {
            text: String,
        },
        Mouse {
            x: i32,
            y: i32,
        },
        #[serde(rename = "mouserel")]
        MouseRel {
            dx: i32,
            dy: i32,
        },
        Button {
            button: u8,
            down: bool,
        },
        Wheel {
            dx: i32,
            dy: i32,
        },
        Keys {
            held: Vec<u32>,
        },
        Release {},
        #[serde(rename = "request_control")]
        RequestControl {},
        #[serde(rename = "pair_ticket")]
        PairTicket {},
        Pair {
            ticket: String,
        },
        #[serde(rename = "give_control")]
        GiveControl {
            to: u64,
        },
        Resize {
            width: u32,
            height: u32,
            #[serde(default = "default_dpi")]
            dpi: u32,
        },
        Rate {
            fps: u32,
            bitrate: u32,
        },
        #[serde(rename = "wsvideo")]
        WsVideo {
            codecs: Vec<VideoCodec>,
            #[serde(default)]
            audio: bool,
        },
        Record {
            on: bool,
        },
        Clipboard(ClipboardChunk),
        #[serde(rename = "viewerstats")]
        ViewerStats(ViewerReport),
        Gamepad(GamepadState),
    }

    fn default_dpi() -> u32 {
        96
    }

    impl From<Wire> for M {
        fn from(w: Wire) -> Self {
            match w {
                Wire::Offer { sdp } => Self::Offer { sdp },
                Wire::Candidate { candidate, sdp_mid } => Self::Candidate { candidate, sdp_mid },
                Wire::Keyframe {} => Self::Keyframe,
                Wire::Ack { pts } => Self::Ack { pts },
                Wire::AudioDelay { ms, video_ms } => Self::AudioDelay { ms, video_ms },
                Wire::RequestControl {} => Self::RequestControl,
                Wire::PairTicket {} => Self::PairTicket,
                Wire::Pair { ticket } => Self::Pair { ticket },
                Wire::GiveControl { to } => Self::GiveControl { to },
                Wire::Resize { width, height, dpi } => Self::Resize { width, height, dpi },
                Wire::Rate { fps, bitrate } => Self::Rate { fps, bitrate },
                Wire::WsVideo { codecs, audio } => Self::WsVideo { codecs, audio },
                Wire::Record { on } => Self::Record { on },
                Wire::Clipboard(c) => Self::Clipboard(c),
                Wire::ViewerStats(r) => Self::ViewerStats(r),
                Wire::Gamepad(g) => Self::Gamepad(g),
                Wire::Key { keysym, down } => Self::Input(I::Key { keysym, down }),
                Wire::Text { text } => Self::Input(I::Text { text }),
                Wire::Mouse { x, y } => Self::Input(I::Mouse { x, y }),
                Wire::MouseRel { dx, dy } => Self::Input(I::MouseRel { dx, dy }),
                Wire::Button { button, down } => Self::Input(I::Button { button, down }),
                Wire::Wheel { dx, dy } => Self::Input(I::Wheel { dx, dy }),
                Wire::Keys { held } => Self::Input(I::Keys { held }),
                Wire::Release {} => Self::Input(I::Release),
            }
        }
    }

    impl From<M> for Wire {
        fn from(m: M) -> Self {
            match m {
                M::Offer { sdp } => Self::Offer { sdp },
                M::Candidate { candidate, sdp_mid } => Self::Candidate { candidate, sdp_mid },
                M::Keyframe => Self::Keyframe {},
                M::Ack { pts } => Self::Ack { pts },
                M::AudioDelay { ms, video_ms } => Self::AudioDelay { ms, video_ms },
                M::RequestControl => Self::RequestControl {},
                M::PairTicket => Self::PairTicket {},
                M::Pair { ticket } => Self::Pair { ticket },
                M::GiveControl { to } => Self::GiveControl { to },
                M::Resize { width, height, dpi } => Self::Resize { width, height, dpi },
                M::Rate { fps, bitrate } => Self::Rate { fps, bitrate },
                M::WsVideo { codecs, audio } => Self::WsVideo { codecs, audio },
                M::Record { on } => Self::Record { on },
                M::Clipboard(c) => Self::Clipboard(c),
                M::ViewerStats(r) => Self::ViewerStats(r),
                M::Gamepad(g) => Self::Gamepad(g),
                M::Input(I::Key { keysym, down }) => Self::Key { keysym, down },
                M::Input(I::Text { text }) => Self::Text { text },
                M::Input(I::Mouse { x, y }) => Self::Mouse { x, y },
                M::Input(I::MouseRel { dx, dy }) => Self::MouseRel { dx, dy },
                M::Input(I::Button { button, down }) => Self::Button { button, down },
                M::Input(I::Wheel { dx, dy }) => Self::Wheel { dx, dy },
                M::Input(I::Keys { held }) => Self::Keys { held },
                M::Input(I::Release) => Self::Release {},
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CLIPBOARD_CHUNK_BASE64, CursorInfo, ServerMessage, ViewerEntry, ViewersInfo};

    #[test]
    fn audio_delay_reports_are_bounded_and_not_input() {
        let m = ClientMessage::parse(r#"{"type":"audiodelay","ms":64}"#).unwrap();
        assert_eq!(m, ClientMessage::AudioDelay { ms: 64, video_ms: None });
        assert!(!m.is_input());
        let m = ClientMessage::parse(r#"{"type":"audiodelay","ms":64,"video_ms":31}"#).unwrap();
        assert_eq!(m, ClientMessage::AudioDelay { ms: 64, video_ms: Some(31) });
        assert!(ClientMessage::parse(r#"{"type":"audiodelay","ms":64,"video_ms":2001}"#).is_err());
        assert!(ClientMessage::parse(r#"{"type":"audiodelay","ms":2001}"#).is_err());
        assert!(ClientMessage::parse(r#"{"type":"audiodelay","ms":-1}"#).is_err());
    }

    #[test]
    fn viewer_reports_are_bounded_and_not_input() {
        let m = ClientMessage::parse(
            r#"{"type":"viewerstats","fps":60,"rtt_ms":12,"loss_ppm":500,"delay_ms":9}"#,
        )
        .unwrap();
        let full = ViewerReport { fps: Some(60), rtt_ms: Some(12), loss_ppm: Some(500), delay_ms: Some(9) };
        assert_eq!(m, ClientMessage::ViewerStats(full));
        assert!(!m.is_input());
        let m = ClientMessage::parse(r#"{"type":"viewerstats"}"#).unwrap();
        assert_eq!(m, ClientMessage::ViewerStats(ViewerReport::default()), "every figure is optional");
        for bad in [
            r#"{"type":"viewerstats","fps":1001}"#,
            r#"{"type":"viewerstats","rtt_ms":60001}"#,
            r#"{"type":"viewerstats","loss_ppm":1000001}"#,
            r#"{"type":"viewerstats","delay_ms":60001}"#,
        ] {
            assert!(matches!(ClientMessage::parse(bad), Err(ProtocolError::OutOfRange(_))), "{bad}");
        }
        for bad in [
            r#"{"type":"viewerstats","fps":-1}"#,
            r#"{"type":"viewerstats","fps":1.5}"#,
            r#"{"type":"viewerstats","viewer":"x"}"#,
        ] {
            assert!(matches!(ClientMessage::parse(bad), Err(ProtocolError::Malformed(_))), "{bad}");
        }
    }

    #[test]
    fn gamepad_states_are_bounded_and_not_keyboard_input() {
        let m = ClientMessage::parse(r#"{"type":"gamepad","index":3,"buttons":[0,32767],"axes":[-32767,5]}"#)
            .unwrap();
        let want = GamepadState { index: 3, buttons: vec![0, 32767], axes: vec![-32767, 5] };
        assert_eq!(m, ClientMessage::Gamepad(want));
        assert!(!m.is_input(), "pads do not go to the XTEST thread");
        let full = format!(
            r#"{{"type":"gamepad","index":0,"buttons":[{}],"axes":[1,2,3,4]}}"#,
            vec!["1"; MAX_GAMEPAD_BUTTONS].join(",")
        );
        assert!(ClientMessage::parse(&full).is_ok());
        for bad in [
            r#"{"type":"gamepad","index":4,"buttons":[],"axes":[]}"#,
            r#"{"type":"gamepad","index":0,"buttons":[32768],"axes":[]}"#,
            r#"{"type":"gamepad","index":0,"buttons":[-1],"axes":[]}"#,
            r#"{"type":"gamepad","index":0,"buttons":[],"axes":[-32768]}"#,
            r#"{"type":"gamepad","index":0,"buttons":[],"axes":[0,0,0,0,0]}"#,
        ] {
            assert!(matches!(ClientMessage::parse(bad), Err(ProtocolError::OutOfRange(_))), "{bad}");
        }
        let many = format!(
            r#"{{"type":"gamepad","index":0,"buttons":[{}],"axes":[]}}"#,
            vec!["0"; MAX_GAMEPAD_BUTTONS + 1].join(",")
        );
        assert_eq!(ClientMessage::parse(&many), Err(ProtocolError::OutOfRange("gamepad state")));
        for bad in [
            r#"{"type":"gamepad","index":256,"buttons":[],"axes":[]}"#,
            r#"{"type":"gamepad","index":0,"buttons":[0.5],"axes":[]}"#,
            r#"{"type":"gamepad","index":0,"buttons":[]}"#,
            r#"{"type":"gamepad","index":0,"buttons":[],"axes":[],"id":"x"}"#,
        ] {
            assert!(matches!(ClientMessage::parse(bad), Err(ProtocolError::Malformed(_))), "{bad}");
        }
    }

    #[test]
    fn parses_offer_and_candidate() {
        let m = ClientMessage::parse(r#"{"type":"offer","sdp":"v=0"}"#).unwrap();
        assert_eq!(m, ClientMessage::Offer { sdp: "v=0".into() });
        let m = ClientMessage::parse(
            r#"{"type":"candidate","candidate":"candidate:1 1 udp 1 127.0.0.1 5 typ host","sdpMid":"0"}"#,
        )
        .unwrap();
        assert!(matches!(m, ClientMessage::Candidate { sdp_mid: Some(ref s), .. } if s == "0"));
        assert_eq!(ClientMessage::parse(r#"{"type":"keyframe"}"#).unwrap(), ClientMessage::Keyframe);
    }

    #[test]
    fn rejects_unknown_and_oversized() {
        assert!(matches!(ClientMessage::parse(r#"{"type":"nope"}"#), Err(ProtocolError::Malformed(_))));
        assert!(matches!(ClientMessage::parse("{"), Err(ProtocolError::Malformed(_))));
        assert!(matches!(
            ClientMessage::parse(r#"{"type":"offer","sdp":"x","extra":1}"#),
            Err(ProtocolError::Malformed(_))
        ));
        let big = format!(r#"{{"type":"offer","sdp":"{}"}}"#, "a".repeat(MAX_SIGNAL_MESSAGE));
        assert_eq!(ClientMessage::parse(&big), Err(ProtocolError::TooLarge(big.len())));
    }

    #[test]
    fn input_messages_parse_and_are_bounded() {
        let ok = [
            (
                r#"{"type":"key","keysym":65,"down":true}"#,
                ClientMessage::Input(InputEvent::Key { keysym: 65, down: true }),
            ),
            (r#"{"type":"text","text":"ça"}"#, ClientMessage::Input(InputEvent::Text { text: "ça".into() })),
            (r#"{"type":"mouse","x":10,"y":20}"#, ClientMessage::Input(InputEvent::Mouse { x: 10, y: 20 })),
            (
                r#"{"type":"mouserel","dx":-3,"dy":4}"#,
                ClientMessage::Input(InputEvent::MouseRel { dx: -3, dy: 4 }),
            ),
            (
                r#"{"type":"button","button":3,"down":false}"#,
                ClientMessage::Input(InputEvent::Button { button: 3, down: false }),
            ),
            (r#"{"type":"wheel","dx":0,"dy":-2}"#, ClientMessage::Input(InputEvent::Wheel { dx: 0, dy: -2 })),
            (
                r#"{"type":"keys","held":[65,65505]}"#,
                ClientMessage::Input(InputEvent::Keys { held: vec![65, 65505] }),
            ),
            (r#"{"type":"release"}"#, ClientMessage::Input(InputEvent::Release)),
        ];
        for (text, want) in ok {
            let got = ClientMessage::parse(text).unwrap();
            assert!(got.is_input());
            assert_eq!(got, want);
        }
        let bad = [
            r#"{"type":"key","keysym":0,"down":true}"#,
            r#"{"type":"key","keysym":4294967295,"down":true}"#,
            r#"{"type":"key","keysym":-1,"down":true}"#,
            r#"{"type":"key","keysym":65}"#,
            r#"{"type":"mouse","x":99999999,"y":0}"#,
            r#"{"type":"mouserel","dx":10001,"dy":0}"#,
            r#"{"type":"button","button":4,"down":true}"#,
            r#"{"type":"wheel","dx":0,"dy":1000}"#,
        ];
        for text in bad {
            assert!(ClientMessage::parse(text).is_err(), "{text}");
        }
        let long = format!(r#"{{"type":"text","text":"{}"}}"#, "é".repeat(MAX_TEXT_CHARS + 1));
        assert_eq!(ClientMessage::parse(&long), Err(ProtocolError::OutOfRange("text length")));
        let many: Vec<String> = (1..=65).map(|k| k.to_string()).collect();
        let held = format!(r#"{{"type":"keys","held":[{}]}}"#, many.join(","));
        assert_eq!(ClientMessage::parse(&held), Err(ProtocolError::OutOfRange("held keys")));
        assert!(!ClientMessage::Keyframe.is_input());
    }

    #[test]
    fn resize_and_rate_messages_are_bounded() {
        assert_eq!(
            ClientMessage::parse(r#"{"type":"resize","width":1280,"height":720}"#).unwrap(),
            ClientMessage::Resize { width: 1280, height: 720, dpi: 96 }
        );
        assert!(ClientMessage::parse(r#"{"type":"resize","width":1280,"height":720,"dpi":192}"#).is_ok());
        assert!(ClientMessage::parse(r#"{"type":"resize","width":10,"height":720}"#).is_err());
        assert!(ClientMessage::parse(r#"{"type":"resize","width":1280,"height":99999}"#).is_err());
        assert!(ClientMessage::parse(r#"{"type":"rate","fps":30,"bitrate":4000}"#).is_ok());
        assert!(ClientMessage::parse(r#"{"type":"rate","fps":0,"bitrate":4000}"#).is_err());
        assert!(!ClientMessage::Rate { fps: 30, bitrate: 4000 }.is_input());
    }

    #[test]
    fn control_and_transport_messages() {
        assert_eq!(
            ClientMessage::parse(r#"{"type":"request_control"}"#).unwrap(),
            ClientMessage::RequestControl
        );
        assert_eq!(
            ClientMessage::parse(r#"{"type":"give_control","to":3}"#).unwrap(),
            ClientMessage::GiveControl { to: 3 }
        );
        assert_eq!(
            ClientMessage::parse(r#"{"type":"wsvideo","codecs":["h264"]}"#).unwrap(),
            ClientMessage::WsVideo { codecs: vec![VideoCodec::H264], audio: false }
        );
        assert_eq!(
            ClientMessage::parse(r#"{"type":"wsvideo","codecs":["vp8"],"audio":true}"#).unwrap(),
            ClientMessage::WsVideo { codecs: vec![VideoCodec::Vp8], audio: true }
        );
        assert!(ClientMessage::parse(r#"{"type":"wsvideo","codecs":["h264"],"audio":1}"#).is_err());
        assert_eq!(
            ServerMessage::WsVideo { codec: VideoCodec::H264, audio: true }.to_json(),
            r#"{"type":"wsvideo","codec":"h264","audio":true}"#
        );
        assert!(ClientMessage::parse(r#"{"type":"wsvideo","codecs":[]}"#).is_err());
        assert!(!ClientMessage::RequestControl.is_input());
        assert_eq!(ClientMessage::parse(r#"{"type":"pair_ticket"}"#).unwrap(), ClientMessage::PairTicket);
        assert_eq!(
            ClientMessage::parse(r#"{"type":"pair","ticket":"1.ab"}"#).unwrap(),
            ClientMessage::Pair { ticket: "1.ab".into() }
        );
        assert!(
            ClientMessage::parse(&format!(r#"{{"type":"pair","ticket":"{}"}}"#, "a".repeat(81))).is_err()
        );
        assert_eq!(
            ServerMessage::PairTicket { ticket: "1.ab".into(), expires_ms: 30_000 }.to_json(),
            r#"{"type":"pair_ticket","ticket":"1.ab","expires_ms":30000}"#
        );
        assert_eq!(ServerMessage::Paired { with: 1 }.to_json(), r#"{"type":"paired","with":1}"#);
        let v = ServerMessage::Viewers(ViewersInfo {
            you: 2,
            controller: Some(1),
            shared: false,
            viewers: vec![
                ViewerEntry { id: 1, view_only: false, paired: None },
                ViewerEntry { id: 2, view_only: true, paired: Some(1) },
            ],
        })
        .to_json();
        assert_eq!(
            v,
            r#"{"type":"viewers","you":2,"controller":1,"shared":false,"viewers":[{"id":1,"view_only":false},{"id":2,"view_only":true,"paired":1}]}"#
        );
    }

    #[test]
    fn clipboard_and_cursor_messages() {
        let m = ClientMessage::parse(
            r#"{"type":"clipboard","seq":3,"mime":"text/plain","data":"aGk=","last":true}"#,
        )
        .unwrap();
        let chunk = ClipboardChunk { seq: 3, mime: "text/plain".into(), data: "aGk=".into(), last: true };
        assert_eq!(m, ClientMessage::Clipboard(chunk.clone()));
        assert!(!m.is_input());
        assert_eq!(
            ServerMessage::Clipboard(chunk).to_json(),
            r#"{"type":"clipboard","seq":3,"mime":"text/plain","data":"aGk=","last":true}"#
        );
        for bad in [
            r#"{"type":"clipboard","seq":3,"mime":"text/html","data":"aGk=","last":true}"#,
            r#"{"type":"clipboard","seq":3,"mime":"text/plain","data":"a!k=","last":true}"#,
            r#"{"type":"clipboard","seq":3,"mime":"text/plain","data":"aGk","last":true}"#,
            r#"{"type":"clipboard","seq":-1,"mime":"text/plain","data":"","last":true}"#,
            r#"{"type":"clipboard","seq":1,"mime":"text/plain","data":"","last":true,"x":1}"#,
        ] {
            assert!(ClientMessage::parse(bad).is_err(), "{bad}");
        }
        let big = format!(
            r#"{{"type":"clipboard","seq":1,"mime":"text/plain","data":"{}","last":false}}"#,
            "A".repeat(CLIPBOARD_CHUNK_BASE64 + 4)
        );
        assert!(ClientMessage::parse(&big).is_err());
        const { assert!(CLIPBOARD_CHUNK_BASE64 + 200 < MAX_SIGNAL_MESSAGE) };
        let c = ServerMessage::Cursor(CursorInfo::cached(7));
        assert_eq!(c.to_json(), r#"{"type":"cursor","serial":7}"#);
    }
}
