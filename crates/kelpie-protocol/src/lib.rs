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
}

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
}

impl ClientMessage {
    /// Parses one signalling message from the browser, bounding its size first.
    pub fn parse(text: &str) -> Result<Self, ProtocolError> {
        if text.len() > MAX_SIGNAL_MESSAGE {
            return Err(ProtocolError::TooLarge(text.len()));
        }
        serde_json::from_str(text).map_err(|e| ProtocolError::Malformed(e.to_string()))
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
