//! One viewer's WebSocket: signalling for WebRTC, keyboard and mouse, control hand-over,
//! and — when UDP cannot get through — the video and the sound themselves as binary frames.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket};
use futures_util::{SinkExt as _, StreamExt as _};
use kelpie_media::{AudioSubscription, VideoSubscription};
use kelpie_protocol::{AudioFrameHeader, ClientMessage, ServerMessage, VideoFrameHeader};
use kelpie_webrtc::PeerId;
use tokio::sync::mpsc;

use crate::AppState;
use crate::auth::Access;
use crate::control::{Control, Denied, RequestOutcome};
use crate::input::ViewerId;

/// A WebSocket viewer never has more than this much video waiting: older frames are
/// dropped and the viewer skips to the next keyframe.
pub const MAX_VIDEO_LAG: Duration = Duration::from_secs(1);

/// A WebSocket viewer never gets sound captured longer ago than this: older audio frames
/// are dropped (a gap in the sound rather than a growing delay).
pub const MAX_AUDIO_LAG: Duration = Duration::from_millis(200);

enum Outbound {
    Json(ServerMessage),
    Video(VideoSubscription),
    Audio(AudioSubscription),
    /// Stops the video and the sound (the viewer moves to WebRTC).
    StopVideo,
    Cursor(Arc<kelpie_clipboard::cursor::CursorImage>),
}

/// Everyone connected to this server, and who has control.
pub struct Viewers {
    next_id: AtomicU64,
    control: Mutex<Control>,
    outboxes: Mutex<HashMap<ViewerId, mpsc::UnboundedSender<Outbound>>>,
}

impl Viewers {
    /// See [`Control::new`].
    pub fn new(shared_control: bool, control_idle: Duration) -> Self {
        Self {
            next_id: AtomicU64::new(1),
            control: Mutex::new(Control::new(shared_control, control_idle)),
            outboxes: Mutex::new(HashMap::new()),
        }
    }

    /// Tells every viewer who is connected and who has control.
    fn broadcast_roster(&self) {
        let control = self.control.lock().unwrap();
        for (id, tx) in self.outboxes.lock().unwrap().iter() {
            let _ = tx.send(Outbound::Json(ServerMessage::Viewers(control.snapshot(*id))));
        }
    }

    fn tell(&self, id: ViewerId, msg: ServerMessage) {
        if let Some(tx) = self.outboxes.lock().unwrap().get(&id) {
            let _ = tx.send(Outbound::Json(msg));
        }
    }

    /// Sends clipboard chunks to viewer `to`, or to everyone but `except`.
    pub(crate) fn send_clipboard(
        &self,
        to: Option<ViewerId>,
        except: Option<ViewerId>,
        chunks: &[kelpie_protocol::ClipboardChunk],
    ) {
        for (id, tx) in self.outboxes.lock().unwrap().iter() {
            if to.is_none_or(|t| t == *id) && except != Some(*id) {
                for c in chunks {
                    let _ = tx.send(Outbound::Json(ServerMessage::Clipboard(c.clone())));
                }
            }
        }
    }

    /// Sends the cursor shape to viewer `to`, or to everyone.
    pub(crate) fn send_cursor(&self, to: Option<ViewerId>, c: Arc<kelpie_clipboard::cursor::CursorImage>) {
        for (id, tx) in self.outboxes.lock().unwrap().iter() {
            if to.is_none_or(|t| t == *id) {
                let _ = tx.send(Outbound::Cursor(c.clone()));
            }
        }
    }

    /// Number of connected viewers.
    pub fn count(&self) -> usize {
        self.outboxes.lock().unwrap().len()
    }
}

/// Runs one viewer's connection until it closes.
pub async fn run(state: Arc<AppState>, socket: WebSocket, access: Access, local_ip: Option<IpAddr>) {
    let m = &state.metrics;
    m.signal_connections.fetch_add(1, Ordering::Relaxed);
    let viewers = &state.viewers;
    let id = viewers.next_id.fetch_add(1, Ordering::Relaxed);
    let (sink, mut stream) = socket.split();
    let (tx, rx) = mpsc::unbounded_channel();
    viewers.outboxes.lock().unwrap().insert(id, tx.clone());
    viewers.control.lock().unwrap().join(id, access == Access::ViewOnly, Instant::now());
    let writer = tokio::spawn(write_loop(state.clone(), sink, rx));
    let _ = tx.send(Outbound::Json(ServerMessage::Hello(crate::http::session_info(&state))));
    viewers.broadcast_roster();
    state.clipboard.greet(&state, id);
    let mut clipboard_inbox = crate::clipboard::Inbox::default();
    tracing::info!(viewer = id, ?access, "viewer joined");

    let mut peer: Option<PeerId> = None;
    while let Some(Ok(msg)) = stream.next().await {
        let text = match msg {
            Message::Text(t) => t,
            Message::Close(_) => break,
            Message::Ping(_) | Message::Pong(_) => continue,
            Message::Binary(_) => {
                m.signal_rejected.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(viewer = id, "binary message dropped");
                continue;
            }
        };
        let msg = match ClientMessage::parse(text.as_str()) {
            Ok(msg) => msg,
            Err(e) => {
                m.signal_rejected.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(viewer = id, "message dropped: {e}");
                let _ =
                    tx.send(Outbound::Json(ServerMessage::Error { message: e.to_string(), fatal: false }));
                continue;
            }
        };
        match msg {
            ClientMessage::Offer { sdp } => {
                let _ = tx.send(Outbound::StopVideo);
                if let Some(old) = peer.take() {
                    state.webrtc.close(old).await;
                }
                let local = state.webrtc.candidate_for(local_ip);
                let reply = match state.webrtc.offer(sdp, local).await {
                    Ok(answer) => {
                        peer = Some(answer.peer);
                        tracing::info!(viewer = id, peer = %answer.peer, codec = answer.codec.as_str(), "WebRTC offer answered");
                        ServerMessage::Answer { sdp: answer.sdp, codec: answer.codec }
                    }
                    Err(e) => {
                        m.signal_rejected.fetch_add(1, Ordering::Relaxed);
                        ServerMessage::Error { message: e.to_string(), fatal: false }
                    }
                };
                let _ = tx.send(Outbound::Json(reply));
            }
            ClientMessage::Candidate { candidate, .. } => {
                if let Some(p) = peer {
                    state.webrtc.candidate(p, candidate).await;
                }
            }
            ClientMessage::AudioDelay { ms, video_ms } => {
                if let Some(p) = peer {
                    state.webrtc.audio_delay(p, ms, video_ms).await;
                }
            }
            ClientMessage::Keyframe => {
                if let Some(p) = peer {
                    state.webrtc.keyframe(p).await;
                }
                for s in state.source.streams() {
                    s.request_keyframe();
                }
            }
            ClientMessage::WsVideo { codecs, audio } => {
                if let Some(old) = peer.take() {
                    state.webrtc.close(old).await;
                }
                let server = state.source.codecs();
                let Some(codec) = codecs.iter().copied().find(|c| server.contains(c)) else {
                    let message = "none of the browser's decoders matches the server's encoders".to_string();
                    let _ = tx.send(Outbound::Json(ServerMessage::Error { message, fatal: false }));
                    continue;
                };
                match state.source.subscribe(codec) {
                    Ok(sub) => {
                        let sound = if audio { subscribe_audio(&state, id) } else { None };
                        let audio = sound.is_some();
                        tracing::info!(viewer = id, codec = codec.as_str(), audio, "video over WebSocket");
                        let _ = tx.send(Outbound::StopVideo);
                        let _ = tx.send(Outbound::Json(ServerMessage::WsVideo { codec, audio }));
                        let _ = tx.send(Outbound::Video(sub));
                        if let Some(sound) = sound {
                            let _ = tx.send(Outbound::Audio(sound));
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Outbound::Json(ServerMessage::Error {
                            message: e.to_string(),
                            fatal: false,
                        }));
                    }
                }
            }
            ClientMessage::Resize { width, height, dpi } => {
                if !state.resize {
                    continue;
                }
                if viewers.control.lock().unwrap().may_input(id, Instant::now()).is_err() {
                    m.input_rejected.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let display = state.source.display().to_string();
                let resized = tokio::task::spawn_blocking(move || {
                    kelpie_desktop::resize::resize_dpi(&display, width, height, dpi)
                })
                .await;
                match resized {
                    Ok(Ok(size)) => *state.display_size.lock().unwrap() = size,
                    Ok(Err(e)) => {
                        tracing::warn!("{e}");
                        let _ = tx.send(Outbound::Json(ServerMessage::Error {
                            message: e.to_string(),
                            fatal: false,
                        }));
                    }
                    Err(e) => tracing::warn!("resize task failed: {e}"),
                }
            }
            ClientMessage::Rate { fps, bitrate } => {
                if viewers.control.lock().unwrap().may_input(id, Instant::now()).is_ok() {
                    state.source.set_rate(fps, bitrate);
                } else {
                    m.input_rejected.fetch_add(1, Ordering::Relaxed);
                }
            }
            ClientMessage::RequestControl => {
                let outcome = viewers.control.lock().unwrap().request(id, Instant::now());
                match outcome {
                    Ok(RequestOutcome::Granted) => viewers.broadcast_roster(),
                    Ok(RequestOutcome::Asked(holder)) => {
                        viewers.tell(holder, ServerMessage::ControlRequested { by: id })
                    }
                    Err(d) => refuse(&tx, d),
                }
            }
            ClientMessage::GiveControl { to } => {
                let given = viewers.control.lock().unwrap().give(id, to, Instant::now());
                match given {
                    Ok(()) => {
                        state.input.gone(id);
                        viewers.broadcast_roster();
                    }
                    Err(d) => refuse(&tx, d),
                }
            }
            ClientMessage::Clipboard(chunk) => {
                let allowed = viewers.control.lock().unwrap().may_input(id, Instant::now()).is_ok();
                let inbox = &mut clipboard_inbox;
                if let Some(message) = crate::clipboard::from_viewer(&state, inbox, id, allowed, &chunk) {
                    let _ = tx.send(Outbound::Json(ServerMessage::Error { message, fatal: false }));
                }
            }
            input => {
                let allowed = viewers.control.lock().unwrap().may_input(id, Instant::now());
                match allowed {
                    Ok(()) => state.input.send(id, input),
                    Err(_) => {
                        // Counted, not answered: a view-only page may send many.
                        m.input_rejected.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }
    state.input.gone(id);
    if let Some(p) = peer {
        state.webrtc.close(p).await;
    }
    viewers.outboxes.lock().unwrap().remove(&id);
    viewers.control.lock().unwrap().leave(id);
    viewers.broadcast_roster();
    writer.abort();
    tracing::info!(viewer = id, "viewer left");
}

/// The session's sound for a WebSocket viewer, if it has any.
fn subscribe_audio(state: &AppState, id: ViewerId) -> Option<AudioSubscription> {
    match state.audio.as_ref()?.subscribe() {
        Ok(sub) => Some(sub),
        Err(e) => {
            tracing::warn!(viewer = id, "no sound over the WebSocket: {e}");
            None
        }
    }
}

/// The binary message of one audio frame, or `None` when it was captured more than
/// [`MAX_AUDIO_LAG`] ago (`age`) and is better dropped.
fn audio_message(frame: &kelpie_media::AudioFrame, age: Duration) -> Option<Vec<u8>> {
    if age > MAX_AUDIO_LAG {
        return None;
    }
    let header = AudioFrameHeader {
        pts_us: u64::try_from(frame.pts.as_micros()).unwrap_or(u64::MAX),
        age_us: u32::try_from(age.as_micros()).unwrap_or(u32::MAX),
    };
    let mut bytes = Vec::with_capacity(AudioFrameHeader::LEN + frame.data.len());
    bytes.extend_from_slice(&header.to_bytes());
    bytes.extend_from_slice(&frame.data);
    Some(bytes)
}

fn refuse(tx: &mpsc::UnboundedSender<Outbound>, d: Denied) {
    let message = match d {
        Denied::ViewOnly => "this link is view-only: ask for the full link to get control",
        Denied::NotController => "only the viewer who has control can give it",
        Denied::Unknown => "no such viewer",
    };
    let _ = tx.send(Outbound::Json(ServerMessage::Error { message: message.into(), fatal: false }));
}

/// Writes JSON messages and, when asked, the video and the sound to the socket. Video that
/// would arrive more than [`MAX_VIDEO_LAG`] late is dropped until the next keyframe; sound
/// older than [`MAX_AUDIO_LAG`] is dropped (each audio frame decodes on its own).
async fn write_loop(
    state: Arc<AppState>,
    mut sink: futures_util::stream::SplitSink<WebSocket, Message>,
    mut rx: mpsc::UnboundedReceiver<Outbound>,
) {
    let mut video: Option<VideoSubscription> = None;
    let mut audio: Option<AudioSubscription> = None;
    let mut cursors_sent = std::collections::HashSet::new();
    // What the subscriptions had dropped when last counted into the metrics.
    let (mut video_dropped, mut audio_dropped) = (0, 0);
    loop {
        let out = tokio::select! {
            o = rx.recv() => match o {
                Some(o) => o,
                None => return,
            },
            // Video and sound carry pts on the session's media clock: directly comparable.
            f = async { video.as_mut().expect("guarded").next_decodable(MAX_VIDEO_LAG).await }, if video.is_some() => {
                let sub = video.as_ref().expect("guarded");
                state.metrics.ws_frames_dropped.fetch_add(sub.dropped() - video_dropped, Ordering::Relaxed);
                video_dropped = sub.dropped();
                let Some(frame) = f else {
                    video = None;
                    continue;
                };
                let header = VideoFrameHeader {
                    keyframe: frame.keyframe,
                    codec: sub.codec(),
                    pts_us: u64::try_from(frame.pts.as_micros()).unwrap_or(u64::MAX),
                    width: frame.width.min(u32::from(u16::MAX)) as u16,
                    height: frame.height.min(u32::from(u16::MAX)) as u16,
                };
                let mut bytes = Vec::with_capacity(VideoFrameHeader::LEN + frame.data.len());
                bytes.extend_from_slice(&header.to_bytes());
                bytes.extend_from_slice(&frame.data);
                state.metrics.ws_video_bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                if sink.send(Message::Binary(bytes.into())).await.is_err() {
                    return;
                }
                continue;
            },
            // Audio frames stop while nothing plays (DTX) and may resume any time later.
            f = async { audio.as_mut().expect("guarded").next_decodable(MAX_AUDIO_LAG).await }, if audio.is_some() => {
                let sub = audio.as_ref().expect("guarded");
                state.metrics.ws_audio_dropped.fetch_add(sub.dropped() - audio_dropped, Ordering::Relaxed);
                audio_dropped = sub.dropped();
                let Some(frame) = f else {
                    audio = None;
                    continue;
                };
                let Some(bytes) = audio_message(&frame, frame.captured.elapsed()) else {
                    state.metrics.ws_audio_dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                state.metrics.ws_audio_bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                if sink.send(Message::Binary(bytes.into())).await.is_err() {
                    return;
                }
                continue;
            },
        };
        match out {
            Outbound::Json(msg) => {
                if sink.send(Message::Text(msg.to_json().into())).await.is_err() {
                    return;
                }
            }
            Outbound::Video(sub) => {
                // A new subscription starts from a keyframe (replayed or requested).
                video_dropped = sub.dropped();
                video = Some(sub);
            }
            Outbound::Audio(sub) => {
                audio_dropped = sub.dropped();
                audio = Some(sub);
            }
            Outbound::StopVideo => {
                video = None;
                audio = None;
            }
            Outbound::Cursor(c) => {
                let msg = crate::clipboard::cursor_message(&mut cursors_sent, &c);
                if sink.send(Message::Text(msg.to_json().into())).await.is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_messages_carry_the_header_and_the_packet_and_old_ones_are_dropped() {
        let frame = kelpie_media::AudioFrame {
            data: Arc::from(&[0xfc, 0xff, 0xfe][..]),
            pts: Duration::from_millis(1230),
            captured: Instant::now(),
        };
        let bytes = audio_message(&frame, Duration::from_millis(15)).unwrap();
        assert_eq!(bytes.len(), AudioFrameHeader::LEN + 3);
        assert_eq!(
            AudioFrameHeader::parse(&bytes),
            Some(AudioFrameHeader { pts_us: 1_230_000, age_us: 15_000 })
        );
        assert_eq!(bytes[AudioFrameHeader::LEN..], [0xfc, 0xff, 0xfe]);
        assert!(audio_message(&frame, MAX_AUDIO_LAG).is_some());
        assert!(audio_message(&frame, MAX_AUDIO_LAG + Duration::from_millis(1)).is_none());
    }
}
