//! The WebSocket transport: the only writer of a viewer's socket. It sends the session's
//! JSON messages and, when the viewer's video goes over the WebSocket, the encoded video and
//! sound as binary messages (`kelpie_protocol::{VideoFrameHeader, AudioFrameHeader}`), with
//! its own lag policy: video that would arrive more than [`MAX_VIDEO_LAG`] late is dropped
//! until the next keyframe; sound older than [`MAX_AUDIO_LAG`] is dropped (each audio frame
//! decodes on its own).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use futures_util::SinkExt as _;
use futures_util::stream::SplitSink;
use kelpie_clipboard::cursor::CursorImage;
use kelpie_media::{AudioSubscription, VideoSubscription};
use kelpie_protocol::{AudioFrameHeader, ServerMessage, VideoCodec, VideoFrameHeader};
use tokio::sync::mpsc;

use crate::AppState;
use crate::input::ViewerId;

/// A WebSocket viewer never has more than this much video waiting: older frames are
/// dropped and the viewer skips to the next keyframe.
pub const MAX_VIDEO_LAG: Duration = Duration::from_secs(1);

/// A WebSocket viewer never gets sound captured longer ago than this: older audio frames
/// are dropped (a gap in the sound rather than a growing delay).
pub const MAX_AUDIO_LAG: Duration = Duration::from_millis(200);

/// What the writer is asked to send, in order.
pub(crate) enum Outbound {
    /// A JSON message.
    Json(ServerMessage),
    /// Start sending this video (and sound), replacing any before.
    Media(VideoSubscription, Option<AudioSubscription>),
    /// Stop the video and the sound (the viewer moves to WebRTC).
    StopMedia,
    /// The cursor's shape (its image only the first time this viewer sees it).
    Cursor(Arc<CursorImage>),
}

/// What the writer does next.
enum Step<'a> {
    /// What it was asked.
    Queued(Outbound),
    /// Send a binary message of the media, adding its size to the counter.
    Binary(Vec<u8>, &'a AtomicU64),
    /// The video's stream stopped.
    VideoEnded,
    /// The sound's stream stopped.
    AudioEnded,
}

/// Adds what a subscription dropped since it was last `seen` to `counter`.
fn count_dropped(now: u64, seen: &mut u64, counter: &AtomicU64) {
    counter.fetch_add(now - *seen, Ordering::Relaxed);
    *seen = now;
}

/// The sender side of a viewer's writer.
pub(crate) type Outbox = mpsc::UnboundedSender<Outbound>;

/// Subscribes viewer `id` to the video in `codec` and, if `audio`, the session's sound.
/// Returns what to tell the viewer and what to give its writer.
pub(crate) fn start(
    state: &AppState,
    id: ViewerId,
    codec: VideoCodec,
    audio: bool,
) -> Result<(ServerMessage, Outbound), kelpie_media::MediaError> {
    let video = state.source.subscribe(codec)?;
    let sound = if audio { subscribe_audio(state, id) } else { None };
    let audio = sound.is_some();
    tracing::info!(viewer = id, codec = codec.as_str(), audio, "video over WebSocket");
    Ok((ServerMessage::WsVideo { codec, audio }, Outbound::Media(video, sound)))
}

/// The session's sound for a WebSocket viewer, if it has any.
fn subscribe_audio(state: &AppState, id: ViewerId) -> Option<AudioSubscription> {
    match state.audio.as_ref()?.subscribe() {
        Ok(sub) => Some(sub),
        Err(e) => {
            tracing::warn!(viewer = id, "no sound over the WebSocket: {}", kelpie_media::error_chain(&e));
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
    Some(with_header(&header.to_bytes(), &frame.data))
}

/// The binary message of one video frame.
fn video_message(frame: &kelpie_media::EncodedFrame, codec: VideoCodec) -> Vec<u8> {
    let header = VideoFrameHeader {
        keyframe: frame.keyframe,
        codec,
        pts_us: u64::try_from(frame.pts.as_micros()).unwrap_or(u64::MAX),
        width: frame.width.min(u32::from(u16::MAX)) as u16,
        height: frame.height.min(u32::from(u16::MAX)) as u16,
    };
    with_header(&header.to_bytes(), &frame.data)
}

fn with_header(header: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(header.len() + payload.len());
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(payload);
    bytes
}

/// Writes JSON messages and, when asked, the video and the sound to the socket, until the
/// socket fails or the sender side is dropped.
pub(crate) async fn write_loop(
    state: Arc<AppState>,
    mut sink: SplitSink<WebSocket, Message>,
    mut rx: mpsc::UnboundedReceiver<Outbound>,
) {
    let mut video: Option<VideoSubscription> = None;
    let mut audio: Option<AudioSubscription> = None;
    let mut cursors_sent = HashSet::new();
    // What the subscriptions had dropped when last counted into the metrics.
    let (mut video_dropped, mut audio_dropped) = (0, 0);
    let m = &state.metrics;
    loop {
        // Video and sound carry pts on the session's media clock: sent as they are.
        let step = tokio::select! {
            o = rx.recv() => match o {
                Some(o) => Step::Queued(o),
                None => return,
            },
            f = async { video.as_mut().expect("guarded").next_decodable(MAX_VIDEO_LAG).await }, if video.is_some() => {
                let sub = video.as_ref().expect("guarded");
                count_dropped(sub.dropped(), &mut video_dropped, &m.ws_frames_dropped);
                match f {
                    Some(frame) => Step::Binary(video_message(&frame, sub.codec()), &m.ws_video_bytes),
                    None => Step::VideoEnded,
                }
            },
            // Audio frames stop while nothing plays (DTX) and may resume any time later.
            f = async { audio.as_mut().expect("guarded").next_decodable(MAX_AUDIO_LAG).await }, if audio.is_some() => {
                count_dropped(audio.as_ref().expect("guarded").dropped(), &mut audio_dropped, &m.ws_audio_dropped);
                match f {
                    Some(frame) => match audio_message(&frame, frame.captured.elapsed()) {
                        Some(bytes) => Step::Binary(bytes, &m.ws_audio_bytes),
                        None => {
                            m.ws_audio_dropped.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                    },
                    None => Step::AudioEnded,
                }
            },
        };
        let message = match step {
            Step::Queued(Outbound::Json(msg)) => Message::Text(msg.to_json().into()),
            Step::Binary(bytes, counter) => {
                counter.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                Message::Binary(bytes.into())
            }
            Step::VideoEnded => {
                video = None;
                continue;
            }
            Step::AudioEnded => {
                audio = None;
                continue;
            }
            Step::Queued(Outbound::Media(v, a)) => {
                (video_dropped, audio_dropped) = (v.dropped(), a.as_ref().map_or(0, |a| a.dropped()));
                (video, audio) = (Some(v), a);
                continue;
            }
            Step::Queued(Outbound::StopMedia) => {
                (video, audio) = (None, None);
                continue;
            }
            Step::Queued(Outbound::Cursor(c)) => {
                Message::Text(crate::clipboard::cursor_message(&mut cursors_sent, &c).to_json().into())
            }
        };
        if sink.send(message).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

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
