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

mod binary;
mod client;
mod clipboard;
pub mod http;
mod server;

pub use binary::{AudioFrameHeader, BinaryKind, VideoFrameHeader};
pub use client::{
    ClientMessage, InputEvent, MAX_AUDIO_DELAY_MS, MAX_HELD_KEYS, MAX_KEYSYM, MAX_REL_MOVE, MAX_TEXT_CHARS,
    MAX_WHEEL_CLICKS, ProtocolError,
};
pub use clipboard::{CLIPBOARD_CHUNK_BASE64, CLIPBOARD_CHUNK_BYTES, CLIPBOARD_MIMES, ClipboardChunk};
pub use server::{CursorInfo, ServerMessage};
