//! Wire types shared by the Kelpie server and its web client.
//!
//! This crate owns the shape of every message that crosses the network outside the media
//! itself: the signalling messages on the `api/signal` WebSocket and the session description
//! served at `api/session`. It knows nothing of sockets; the server and the TypeScript client
//! (`web/src/protocol.ts`) both follow `docs/protocol.md`, which this crate implements.
#![deny(missing_docs)]

use serde::{Deserialize, Serialize};

/// Version of the signalling protocol. Bumped on any incompatible change.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest signalling message the server accepts, in bytes. An SDP offer from Chromium is
/// about 5 KiB; 64 KiB leaves room for any browser while bounding memory per viewer.
pub const MAX_SIGNAL_MESSAGE: usize = 64 * 1024;

/// A video codec the server can encode and send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VideoCodec {
    /// H.264, constrained baseline, packetization-mode 1.
    H264,
    /// VP8.
    Vp8,
}

impl VideoCodec {
    /// The lowercase name used on the wire and in flags.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::H264 => "h264",
            Self::Vp8 => "vp8",
        }
    }
}

/// Served as JSON at `GET api/session`: what a client needs to know before connecting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// [`PROTOCOL_VERSION`] of the server.
    pub version: u32,
    /// The X display being served, e.g. `:99`.
    pub display: String,
    /// Current width of the remote display in pixels.
    pub width: u32,
    /// Current height of the remote display in pixels.
    pub height: u32,
    /// Codecs the server can send, in its order of preference.
    pub codecs: Vec<VideoCodec>,
}

/// One connected viewer, as listed to everyone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewerEntry {
    /// Connection id.
    pub id: u64,
    /// Joined with the view-only token.
    pub view_only: bool,
}

/// Who is connected and who has control.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewersInfo {
    /// The recipient's own id.
    pub you: u64,
    /// Who holds keyboard and mouse (none with shared control or nobody eligible).
    pub controller: Option<u64>,
    /// Whether everyone with full access may type at once.
    pub shared: bool,
    /// Everyone connected.
    pub viewers: Vec<ViewerEntry>,
}

/// First byte of every binary message on the WebSocket transport: what follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum BinaryKind {
    /// A video frame ([`VideoFrameHeader`]).
    Video = 1,
    /// An audio frame ([`AudioFrameHeader`]).
    Audio = 2,
}

impl BinaryKind {
    /// The kind of a binary message, from its first byte; `None` for an unknown kind.
    pub fn of(message: &[u8]) -> Option<Self> {
        match message.first() {
            Some(1) => Some(Self::Video),
            Some(2) => Some(Self::Audio),
            _ => None,
        }
    }
}

/// Header of a binary video frame on the WebSocket transport (16 bytes, big-endian),
/// followed by the encoded frame (H.264 Annex-B access unit or VP8 frame).
///
/// | bytes | field |
/// |---|---|
/// | 0 | kind: 1 = video |
/// | 1 | flags: bit 0 = keyframe |
/// | 2 | codec: 0 = H.264, 1 = VP8 |
/// | 3 | reserved, 0 |
/// | 4..12 | presentation time, microseconds |
/// | 12..14 | width |
/// | 14..16 | height |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoFrameHeader {
    /// Whether the frame decodes on its own.
    pub keyframe: bool,
    /// Its codec.
    pub codec: VideoCodec,
    /// Presentation time in microseconds: when the session has sound, the capture time on
    /// the sound's clock (as [`AudioFrameHeader::pts_us`]), so the two can be lined up.
    pub pts_us: u64,
    /// Picture width.
    pub width: u16,
    /// Picture height.
    pub height: u16,
}

impl VideoFrameHeader {
    /// Size of the header in bytes.
    pub const LEN: usize = 16;

    /// The header's bytes.
    pub fn to_bytes(self) -> [u8; Self::LEN] {
        let mut b = [0u8; Self::LEN];
        b[0] = BinaryKind::Video as u8;
        b[1] = u8::from(self.keyframe);
        b[2] = match self.codec {
            VideoCodec::H264 => 0,
            VideoCodec::Vp8 => 1,
        };
        b[4..12].copy_from_slice(&self.pts_us.to_be_bytes());
        b[12..14].copy_from_slice(&self.width.to_be_bytes());
        b[14..16].copy_from_slice(&self.height.to_be_bytes());
        b
    }

    /// Parses a header (for tests and tools; browsers parse it in TypeScript).
    pub fn parse(b: &[u8]) -> Option<Self> {
        if b.len() < Self::LEN || BinaryKind::of(b) != Some(BinaryKind::Video) {
            return None;
        }
        let codec = match b[2] {
            0 => VideoCodec::H264,
            1 => VideoCodec::Vp8,
            _ => return None,
        };
        Some(Self {
            keyframe: b[1] & 1 == 1,
            codec,
            pts_us: u64::from_be_bytes(b[4..12].try_into().ok()?),
            width: u16::from_be_bytes([b[12], b[13]]),
            height: u16::from_be_bytes([b[14], b[15]]),
        })
    }
}

/// Header of a binary audio frame on the WebSocket transport (16 bytes, big-endian),
/// followed by one Opus packet (48 kHz, stereo; 10 ms as Kelpie encodes it, but the packet's
/// own TOC byte is what says how long it is).
///
/// | bytes | field |
/// |---|---|
/// | 0 | kind: 2 = audio |
/// | 1 | flags: reserved, 0 |
/// | 2 | codec: 0 = Opus, 48 kHz, 2 channels |
/// | 3 | reserved, 0 |
/// | 4..12 | presentation time of the first sample, microseconds, on the audio stream's clock |
/// | 12..16 | age: microseconds from capture to sending, as the server measured it |
///
/// Silence is not sent (Opus DTX), so times jump over quiet stretches; they may also start
/// again lower when the server's audio stream is recreated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioFrameHeader {
    /// Presentation time (capture time of the first sample) in microseconds.
    pub pts_us: u64,
    /// How long the frame waited on the server, in microseconds (saturates at `u32::MAX`).
    pub age_us: u32,
}

impl AudioFrameHeader {
    /// Size of the header in bytes.
    pub const LEN: usize = 16;

    /// The header's bytes.
    pub fn to_bytes(self) -> [u8; Self::LEN] {
        let mut b = [0u8; Self::LEN];
        b[0] = BinaryKind::Audio as u8;
        b[4..12].copy_from_slice(&self.pts_us.to_be_bytes());
        b[12..16].copy_from_slice(&self.age_us.to_be_bytes());
        b
    }

    /// Parses a header (for tests and tools; browsers parse it in TypeScript).
    pub fn parse(b: &[u8]) -> Option<Self> {
        if b.len() < Self::LEN || BinaryKind::of(b) != Some(BinaryKind::Audio) || b[2] != 0 {
            return None;
        }
        Some(Self {
            pts_us: u64::from_be_bytes(b[4..12].try_into().ok()?),
            age_us: u32::from_be_bytes(b[12..16].try_into().ok()?),
        })
    }
}

/// A message from the browser to the server on the signalling WebSocket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
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
        /// The media section it belongs to, if the browser gave one.
        #[serde(rename = "sdpMid", default, skip_serializing_if = "Option::is_none")]
        sdp_mid: Option<String>,
    },
    /// Ask for a keyframe (the client saw corruption it cannot recover from).
    Keyframe,
    /// How long received sound spends in the browser (jitter buffer and playout), so the
    /// server can hold video back by as much while sound plays (WebRTC transport), and how
    /// long video spent in it meanwhile (last packet received to shown), so the server can
    /// correct its estimate by what the browser actually did.
    #[serde(rename = "audiodelay")]
    AudioDelay {
        /// Milliseconds, at most [`MAX_AUDIO_DELAY_MS`].
        ms: u32,
        /// Median milliseconds from a video frame's last packet to its display, at most
        /// [`MAX_AUDIO_DELAY_MS`]; absent when too few frames were shown to tell.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        video_ms: Option<u32>,
    },
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
    /// The pointer moved by a relative amount (pointer lock).
    #[serde(rename = "mouserel")]
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
    /// Ask for keyboard and mouse control.
    #[serde(rename = "request_control")]
    RequestControl,
    /// The controller hands control to another viewer.
    #[serde(rename = "give_control")]
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
        /// the user wants a sharp HiDPI picture, else 96.
        #[serde(default = "default_dpi")]
        dpi: u32,
    },
    /// Change the stream's frame rate and bitrate (the viewer with control).
    Rate {
        /// Frames per second, 1..=240.
        fps: u32,
        /// Kilobits per second, 100..=400000.
        bitrate: u32,
    },
    /// Send the video over this WebSocket (binary frames, see [`VideoFrameHeader`]) instead
    /// of WebRTC. Closes this socket's peer connection, if any.
    #[serde(rename = "wsvideo")]
    WsVideo {
        /// Codecs the browser can decode (WebCodecs), in its order of preference.
        codecs: Vec<VideoCodec>,
        /// The browser can decode Opus: send the sound too ([`AudioFrameHeader`]).
        #[serde(default)]
        audio: bool,
    },
    /// One chunk of the browser's clipboard, to become the remote CLIPBOARD selection.
    Clipboard(ClipboardChunk),
}

/// One chunk of a clipboard transfer, in either direction. A transfer is the chunks of one
/// `seq` in order; the one with `last` ends it. A chunk with a new `seq` abandons an
/// unfinished transfer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClipboardChunk {
    /// Transfer number, chosen by the sender.
    pub seq: u32,
    /// `text/plain` (UTF-8) or `image/png`.
    pub mime: String,
    /// Standard base64 (with padding) of at most [`CLIPBOARD_CHUNK_BYTES`] bytes.
    pub data: String,
    /// Whether this chunk ends the transfer.
    pub last: bool,
}

/// Largest decoded size of one clipboard chunk (36 KiB: 48 KiB of base64, well under
/// [`MAX_SIGNAL_MESSAGE`]).
pub const CLIPBOARD_CHUNK_BYTES: usize = 36 * 1024;
/// Largest base64 length of one clipboard chunk.
pub const CLIPBOARD_CHUNK_BASE64: usize = CLIPBOARD_CHUNK_BYTES / 3 * 4;
/// MIME types a clipboard transfer may carry.
pub const CLIPBOARD_MIMES: [&str; 2] = ["text/plain", "image/png"];

impl ClipboardChunk {
    /// Whether every field is within its bounds (size, MIME type, base64 alphabet).
    pub fn is_valid(&self) -> bool {
        CLIPBOARD_MIMES.contains(&self.mime.as_str())
            && self.data.len() <= CLIPBOARD_CHUNK_BASE64
            && self.data.len().is_multiple_of(4)
            && self.data.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
    }
}

/// The remote cursor's shape. The image comes with the first message of a `serial`; later
/// messages of the same serial carry only the serial (the client keeps a cache).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CursorInfo {
    /// The X server's cursor serial.
    pub serial: u32,
    /// Base64 PNG of the cursor image (non-premultiplied RGBA), the first time only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub png: Option<String>,
    /// Hotspot column, with `png`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hot_x: Option<u16>,
    /// Hotspot row, with `png`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hot_y: Option<u16>,
    /// Image width, with `png`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u16>,
    /// Image height, with `png`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u16>,
    /// The cursor is invisible (fully transparent): hide the local pointer. Only with `png`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hidden: bool,
}

impl CursorInfo {
    /// A cursor the client has already been sent: the serial alone.
    pub fn cached(serial: u32) -> Self {
        Self { serial, png: None, hot_x: None, hot_y: None, width: None, height: None, hidden: false }
    }
}

fn default_dpi() -> u32 {
    96
}

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

/// A message from the server to the browser on the signalling WebSocket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum ServerMessage {
    /// Sent first on every connection.
    Hello(SessionInfo),
    /// The SDP answer to the client's offer.
    Answer {
        /// The SDP text.
        sdp: String,
        /// The codec the server chose for this viewer.
        codec: VideoCodec,
    },
    /// Who is connected and who has control; sent on every change.
    Viewers(ViewersInfo),
    /// Another viewer asks the controller (the recipient) for control.
    #[serde(rename = "control_requested")]
    ControlRequested {
        /// The asking viewer.
        by: u64,
    },
    /// Video now comes as binary frames on this WebSocket, in this codec.
    #[serde(rename = "wsvideo")]
    WsVideo {
        /// The codec of the frames.
        codec: VideoCodec,
        /// Sound comes too, as audio frames (the browser asked and the session has sound).
        #[serde(default)]
        audio: bool,
    },
    /// One chunk of the remote clipboard (see [`ClipboardChunk`]).
    Clipboard(ClipboardChunk),
    /// The remote cursor changed shape.
    Cursor(CursorInfo),
    /// Something the client asked for failed; the connection stays open unless `fatal`.
    Error {
        /// What went wrong and what to do about it.
        message: String,
        /// Whether the server closes the connection after this message.
        fatal: bool,
    },
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
        let check =
            |ok: bool, what: &'static str| if ok { Ok(()) } else { Err(ProtocolError::OutOfRange(what)) };
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
            Self::Resize { width, height, dpi } => check(
                (64..=8192).contains(width) && (64..=8192).contains(height) && (48..=480).contains(dpi),
                "display size",
            ),
            Self::Rate { fps, bitrate } => {
                check((1..=240).contains(fps) && (100..=400_000).contains(bitrate), "frame rate or bitrate")
            }
            Self::WsVideo { codecs, .. } => check(!codecs.is_empty() && codecs.len() <= 8, "codec list"),
            Self::Clipboard(c) => check(c.is_valid(), "clipboard chunk"),
            Self::AudioDelay { ms, video_ms } => check(
                *ms <= MAX_AUDIO_DELAY_MS && video_ms.is_none_or(|v| v <= MAX_AUDIO_DELAY_MS),
                "audio delay",
            ),
            Self::Offer { .. }
            | Self::Candidate { .. }
            | Self::Keyframe
            | Self::Release
            | Self::RequestControl
            | Self::GiveControl { .. } => Ok(()),
        }
    }

    /// Whether this message drives the remote keyboard or mouse.
    pub fn is_input(&self) -> bool {
        !matches!(
            self,
            Self::Offer { .. }
                | Self::Candidate { .. }
                | Self::Keyframe
                | Self::AudioDelay { .. }
                | Self::RequestControl
                | Self::GiveControl { .. }
                | Self::WsVideo { .. }
                | Self::Clipboard(_)
                | Self::Resize { .. }
                | Self::Rate { .. }
        )
    }
}

impl ServerMessage {
    /// Serializes the message as the JSON text sent on the WebSocket.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("server messages always serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            (r#"{"type":"key","keysym":65,"down":true}"#, ClientMessage::Key { keysym: 65, down: true }),
            (r#"{"type":"text","text":"ça"}"#, ClientMessage::Text { text: "ça".into() }),
            (r#"{"type":"mouse","x":10,"y":20}"#, ClientMessage::Mouse { x: 10, y: 20 }),
            (r#"{"type":"mouserel","dx":-3,"dy":4}"#, ClientMessage::MouseRel { dx: -3, dy: 4 }),
            (
                r#"{"type":"button","button":3,"down":false}"#,
                ClientMessage::Button { button: 3, down: false },
            ),
            (r#"{"type":"wheel","dx":0,"dy":-2}"#, ClientMessage::Wheel { dx: 0, dy: -2 }),
            (r#"{"type":"keys","held":[65,65505]}"#, ClientMessage::Keys { held: vec![65, 65505] }),
            (r#"{"type":"release"}"#, ClientMessage::Release),
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
        let v = ServerMessage::Viewers(ViewersInfo {
            you: 2,
            controller: Some(1),
            shared: false,
            viewers: vec![ViewerEntry { id: 1, view_only: false }, ViewerEntry { id: 2, view_only: true }],
        })
        .to_json();
        assert_eq!(
            v,
            r#"{"type":"viewers","you":2,"controller":1,"shared":false,"viewers":[{"id":1,"view_only":false},{"id":2,"view_only":true}]}"#
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

    #[test]
    fn video_frame_header_round_trips() {
        let h = VideoFrameHeader {
            keyframe: true,
            codec: VideoCodec::Vp8,
            pts_us: 1_234_567,
            width: 1920,
            height: 1080,
        };
        let b = h.to_bytes();
        assert_eq!(b[..4], [1, 1, 1, 0]);
        assert_eq!(VideoFrameHeader::parse(&b), Some(h));
        assert_eq!(VideoFrameHeader::parse(&b[..15]), None);
        let mut bad = b;
        bad[2] = 9;
        assert_eq!(VideoFrameHeader::parse(&bad), None);
        assert_eq!(BinaryKind::of(&b), Some(BinaryKind::Video));
        assert_eq!(AudioFrameHeader::parse(&b), None, "a video header is not an audio one");
    }

    #[test]
    fn audio_frame_header_round_trips() {
        let h = AudioFrameHeader { pts_us: (1 << 40) + 10_000, age_us: 12_345 };
        let b = h.to_bytes();
        assert_eq!(b[..4], [2, 0, 0, 0]);
        assert_eq!(b[4..12], ((1u64 << 40) + 10_000).to_be_bytes());
        assert_eq!(b[12..16], 12_345u32.to_be_bytes());
        assert_eq!(BinaryKind::of(&b), Some(BinaryKind::Audio));
        assert_eq!(AudioFrameHeader::parse(&b), Some(h));
        // With a payload after it.
        let mut msg = b.to_vec();
        msg.extend_from_slice(&[0xfc, 1, 2, 3]);
        assert_eq!(AudioFrameHeader::parse(&msg), Some(h));
        // Short, other kind, unknown codec.
        for n in 0..AudioFrameHeader::LEN {
            assert_eq!(AudioFrameHeader::parse(&b[..n]), None, "{n} bytes");
        }
        assert_eq!(VideoFrameHeader::parse(&b), None, "an audio header is not a video one");
        let mut bad = b;
        bad[2] = 1;
        assert_eq!(AudioFrameHeader::parse(&bad), None);
        assert_eq!(BinaryKind::of(&[]), None);
        assert_eq!(BinaryKind::of(&[0]), None);
        assert_eq!(BinaryKind::of(&[3]), None);
    }

    #[test]
    fn server_messages_are_tagged() {
        let s = ServerMessage::Answer { sdp: "v=0".into(), codec: VideoCodec::H264 }.to_json();
        assert_eq!(s, r#"{"type":"answer","sdp":"v=0","codec":"h264"}"#);
        let hello = ServerMessage::Hello(SessionInfo {
            version: PROTOCOL_VERSION,
            display: ":1".into(),
            width: 640,
            height: 480,
            codecs: vec![VideoCodec::H264, VideoCodec::Vp8],
        })
        .to_json();
        assert_eq!(
            hello,
            r#"{"type":"hello","version":1,"display":":1","width":640,"height":480,"codecs":["h264","vp8"]}"#
        );
    }
}
