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
    /// The video transport the server chose for every viewer (the page's `?transport=` may
    /// override it, except that [`Transport::Websocket`] means the server has no WebRTC).
    /// Absent from older servers: [`Transport::Auto`].
    #[serde(default)]
    pub transport: Transport,
    /// STUN and TURN servers for the browser's peer connection, with this viewer's
    /// credentials (given only to viewers with access).
    #[serde(default)]
    pub ice_servers: Vec<IceServer>,
    /// Which ICE candidates the browser may use: [`IcePolicy::Relay`] makes it send all media
    /// through a TURN server.
    #[serde(default)]
    pub ice_transport: IcePolicy,
    /// Monitors side by side on the display (`--monitors`): a window with `?monitor=N` on
    /// its signalling URL shows the N-th, `width / monitors` wide. Absent from older
    /// servers: 1.
    #[serde(default = "one_monitor")]
    pub monitors: u32,
}

fn one_monitor() -> u32 {
    1
}

/// How video reaches the browser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// WebRTC, falling back to the WebSocket when it does not connect in time.
    #[default]
    Auto,
    /// WebRTC only.
    Webrtc,
    /// Binary frames on the signalling WebSocket only; the server has no UDP port.
    Websocket,
}

/// One entry of the browser's `RTCConfiguration.iceServers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    /// `stun:`, `turn:` or `turns:` URLs (RFC 7064, RFC 7065).
    pub urls: Vec<String>,
    /// TURN user name (for coturn's REST credentials, `expiry:name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// The browser's `RTCConfiguration.iceTransportPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IcePolicy {
    /// Any candidate: direct, server-reflexive or relayed.
    #[default]
    All,
    /// Relayed candidates only (through TURN).
    Relay,
}

/// One connected viewer, as listed to everyone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewerEntry {
    /// Connection id.
    pub id: u64,
    /// Joined with the view-only token.
    pub view_only: bool,
    /// The window this one was opened from (a second screen paired with a ticket): the two
    /// act for the same user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paired: Option<u64>,
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

mod binary;
mod client;
mod clipboard;
pub mod files;
pub mod http;
mod server;

pub use binary::{AudioFrameHeader, BinaryKind, FrameRegion, RegionRect, VideoFrameHeader};
pub use client::{
    ClientMessage, GAMEPAD_FULL, GamepadState, InputEvent, MAX_AUDIO_DELAY_MS, MAX_GAMEPAD_AXES,
    MAX_GAMEPAD_BUTTONS, MAX_GAMEPADS, MAX_HELD_KEYS, MAX_KEYSYM, MAX_REL_MOVE, MAX_REPORT_FPS,
    MAX_REPORT_LOSS_PPM, MAX_REPORT_MS, MAX_TEXT_CHARS, MAX_TICKET_LEN, MAX_WHEEL_CLICKS, ProtocolError,
    ViewerReport,
};
pub use clipboard::{CLIPBOARD_CHUNK_BASE64, CLIPBOARD_CHUNK_BYTES, CLIPBOARD_MIMES, ClipboardChunk};
pub use server::{CursorInfo, GamepadRumble, MAX_RUMBLE_MS, PathInfo, ServerMessage};
