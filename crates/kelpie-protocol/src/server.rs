//! Messages from the server to the browser on the signalling WebSocket.

use serde::{Deserialize, Serialize};

use crate::{ClipboardChunk, SessionInfo, VideoCodec, ViewersInfo};
#[cfg(test)]
use crate::{IcePolicy, IceServer, PROTOCOL_VERSION, Transport};

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
    /// A pairing ticket for a second window this viewer opens (it presents it with `pair`).
    #[serde(rename = "pair_ticket")]
    PairTicket {
        /// The ticket: single-use, for one other viewer.
        ticket: String,
        /// How long it may be presented, in ms.
        expires_ms: u64,
    },
    /// This window now acts for viewer `with` (the window that opened it): while that one
    /// holds control, this one's input is accepted too.
    Paired {
        /// The first window's viewer.
        with: u64,
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
    /// Whether the session is being recorded, sent on joining and on every change, to every
    /// viewer (everyone sees that they are recorded).
    Recording {
        /// A recording is running (`--record`, or started from a page).
        on: bool,
        /// The viewer with control may start and stop recordings (`--record-dir`).
        available: bool,
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
    fn server_messages_are_tagged() {
        let s = ServerMessage::Answer { sdp: "v=0".into(), codec: VideoCodec::H264 }.to_json();
        assert_eq!(s, r#"{"type":"answer","sdp":"v=0","codec":"h264"}"#);
        let hello = ServerMessage::Hello(SessionInfo {
            version: PROTOCOL_VERSION,
            display: ":1".into(),
            width: 640,
            height: 480,
            codecs: vec![VideoCodec::H264, VideoCodec::Vp8],
            transport: Transport::Auto,
            ice_servers: vec![IceServer {
                urls: vec!["turn:turn.example.com:3478?transport=udp".into()],
                username: Some("1700000000:kelpie".into()),
                credential: Some("pw".into()),
            }],
            ice_transport: IcePolicy::Relay,
            monitors: 2,
        })
        .to_json();
        assert_eq!(
            hello,
            r#"{"type":"hello","version":1,"display":":1","width":640,"height":480,"codecs":["h264","vp8"],"transport":"auto","ice_servers":[{"urls":["turn:turn.example.com:3478?transport=udp"],"username":"1700000000:kelpie","credential":"pw"}],"ice_transport":"relay","monitors":2}"#
        );
        // An older server's hello: the new fields take their defaults.
        let old: ServerMessage = serde_json::from_str(
            r#"{"type":"hello","version":1,"display":":1","width":640,"height":480,"codecs":["vp8"]}"#,
        )
        .unwrap();
        let ServerMessage::Hello(info) = old else { panic!("not a hello") };
        assert_eq!(
            (info.transport, info.ice_servers.len(), info.ice_transport),
            (Transport::Auto, 0, IcePolicy::All)
        );
    }
}
