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
    /// What the server knows of this viewer's path, about once a second while its video
    /// flows: for the stats overlay.
    Path(PathInfo),
    /// One chunk of the remote clipboard (see [`ClipboardChunk`]).
    Clipboard(ClipboardChunk),
    /// The remote cursor changed shape.
    Cursor(CursorInfo),
    /// File transfer (with `--files on`): the first one after joining carries this viewer's
    /// upload ticket (to send back with its uploads, see
    /// [`UploadTicket`](crate::files::UploadTicket)); the next ones, without one, say the
    /// download folder changed (fetch `api/files` again).
    Files {
        /// This viewer's upload ticket: only in the first, and only where uploads are on.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ticket: Option<String>,
    },
    /// A program on the desktop plays (or stops) rumble on one of the pads this viewer drives.
    Rumble(GamepadRumble),
    /// Something the client asked for failed; the connection stays open unless `fatal`.
    Error {
        /// What went wrong and what to do about it.
        message: String,
        /// Whether the server closes the connection after this message.
        fatal: bool,
    },
}

/// The server's view of one viewer's path (the `path` message). Absent fields are not
/// known (yet), or not measured by the viewer's transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathInfo {
    /// What the path carries, as estimated from the browser's feedback (WebRTC: TWCC;
    /// WebSocket: the frames' acknowledgements), kbit/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimate_kbps: Option<u32>,
    /// What the stream's rate control aims at now (the configured bitrate, capped by the
    /// viewers' paths), kbit/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_kbps: Option<u32>,
    /// Packets lost, parts per million, from the browser's receiver reports (WebRTC only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_ppm: Option<u32>,
    /// The round trip as the server measures it, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<u32>,
}

impl PathInfo {
    /// The message of an estimate in bit/s, a target in kbit/s, a loss share (0 to 1) and a
    /// round trip, each held to its field's range.
    pub fn new(
        estimate_bps: Option<u64>,
        target_kbps: Option<u64>,
        loss: Option<f32>,
        rtt: Option<std::time::Duration>,
    ) -> Self {
        let held = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        Self {
            estimate_kbps: estimate_bps.map(|b| held(b / 1000)),
            target_kbps: target_kbps.map(held),
            loss_ppm: loss.filter(|l| l.is_finite()).map(|l| (l.clamp(0.0, 1.0) * 1e6).round() as u32),
            rtt_ms: rtt.map(|r| held(r.as_millis().min(u128::from(u32::MAX)) as u64)),
        }
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

/// Longest rumble a `rumble` message asks for, in ms (about the browsers' own cap).
pub const MAX_RUMBLE_MS: u32 = 5000;

/// Rumble for one of the viewer's gamepads (`rumble` on the wire): play both motors at these
/// magnitudes for `duration_ms`, replacing what plays; `duration_ms` 0 stops. Reading one out
/// of its bounds fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, try_from = "RawRumble")]
pub struct GamepadRumble {
    /// The pad's slot, below [`crate::MAX_GAMEPADS`].
    pub index: u8,
    /// The strong (low-frequency) motor, 0..=65535 (full).
    pub strong: u16,
    /// The weak (high-frequency) motor, 0..=65535 (full).
    pub weak: u16,
    /// How long, 0 (stop) ..= [`MAX_RUMBLE_MS`].
    pub duration_ms: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRumble {
    index: u8,
    strong: u16,
    weak: u16,
    duration_ms: u32,
}

impl TryFrom<RawRumble> for GamepadRumble {
    type Error = &'static str;

    fn try_from(r: RawRumble) -> Result<Self, Self::Error> {
        let g = Self { index: r.index, strong: r.strong, weak: r.weak, duration_ms: r.duration_ms };
        if g.is_valid() { Ok(g) } else { Err("rumble out of bounds (index 0..=3, duration_ms 0..=5000)") }
    }
}

impl GamepadRumble {
    /// Whether the message is within its bounds (the server sends no other).
    pub fn is_valid(&self) -> bool {
        self.index < crate::MAX_GAMEPADS && self.duration_ms <= MAX_RUMBLE_MS
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
    fn path_figures_are_held_to_their_fields() {
        let p = PathInfo::new(
            Some(4_200_999),
            Some(3900),
            Some(0.01),
            Some(std::time::Duration::from_micros(41_700)),
        );
        assert_eq!(
            ServerMessage::Path(p).to_json(),
            r#"{"type":"path","estimate_kbps":4200,"target_kbps":3900,"loss_ppm":10000,"rtt_ms":41}"#
        );
        let wild =
            PathInfo::new(Some(u64::MAX), Some(u64::MAX), Some(f32::NAN), Some(std::time::Duration::MAX));
        assert_eq!(
            (wild.estimate_kbps, wild.target_kbps, wild.loss_ppm, wild.rtt_ms),
            (Some(u32::MAX), Some(u32::MAX), None, Some(u32::MAX))
        );
        assert_eq!(PathInfo::new(None, None, Some(7.0), None).loss_ppm, Some(1_000_000));
        assert_eq!(
            ServerMessage::Path(PathInfo::new(None, Some(8000), None, None)).to_json(),
            r#"{"type":"path","target_kbps":8000}"#
        );
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
        let files = ServerMessage::Files { ticket: None }.to_json();
        assert_eq!(files, r#"{"type":"files"}"#);
        let back: ServerMessage = serde_json::from_str(r#"{"type":"files","ticket":"1.ab"}"#).unwrap();
        assert_eq!(back, ServerMessage::Files { ticket: Some("1.ab".into()) });
        // An older server's hello: the new fields take their defaults.
        let old: ServerMessage = serde_json::from_str(
            r#"{"type":"hello","version":1,"display":":1","width":640,"height":480,"codecs":["vp8"]}"#,
        )
        .unwrap();
        let ServerMessage::Hello(info) = old else { panic!("not a hello") };
        let r = GamepadRumble { index: 1, strong: 65535, weak: 0, duration_ms: 200 };
        assert_eq!(
            ServerMessage::Rumble(r).to_json(),
            r#"{"type":"rumble","index":1,"strong":65535,"weak":0,"duration_ms":200}"#
        );
        assert!(r.is_valid());
        assert!(!GamepadRumble { index: 4, ..r }.is_valid());
        assert!(!GamepadRumble { duration_ms: MAX_RUMBLE_MS + 1, ..r }.is_valid());
        assert_eq!(
            (info.transport, info.ice_servers.len(), info.ice_transport),
            (Transport::Auto, 0, IcePolicy::All)
        );
    }
}
