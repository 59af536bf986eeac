//! The WebSocket transport: the only writer of a viewer's socket. It sends what the viewer's
//! queue ([`crate::outbox`]) holds, pings, and, when the viewer's video goes over the
//! WebSocket, the encoded video and sound as binary messages
//! (`kelpie_protocol::{VideoFrameHeader, AudioFrameHeader}`), each delta frame after its
//! changed region (`kelpie_protocol::FrameRegion`; for a viewer on WebRTC, only the regions
//! of its stream's frames), with its own lag policy: video
//! that would arrive more than [`MAX_VIDEO_LAG`] late is dropped until the next keyframe;
//! sound older than [`MAX_AUDIO_LAG`] is dropped (each audio frame decodes on its own). A
//! view-only viewer's keyframe requests go through its limiter (at most one a second; one
//! asked for too soon is made when the second is up), so that reading slowly does not make
//! the stream a stream of keyframes; those not made at once are counted. Media
//! never queues: the writer takes one frame at a time from the broadcast, so a viewer that
//! falls behind holds at most the frame being written.
//!
//! A write that does not complete within [`WRITE_TIMEOUT`] ends the connection, and so does
//! the queue closing (full, or the viewer silent), with a close frame saying why where the
//! socket still takes one.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message};
use futures_util::{Sink, SinkExt as _};
use kelpie_media::limit::SharedKeyframeLimiter;
use kelpie_media::{AudioSubscription, ChangedRegion, RegionReceiver, VideoStream, VideoSubscription};
use kelpie_protocol::{
    AudioFrameHeader, FrameRegion, RegionRect, ServerMessage, VideoCodec, VideoFrameHeader,
};
use tokio::sync::broadcast::error::RecvError;

use crate::heartbeat::{CLOSE_GRACE, WRITE_TIMEOUT};
use crate::input::ViewerId;
use crate::limits::Dropped;
use crate::outbox::{Next, Outbound, OutboxReader};
use crate::wsflow::WsFlow;
use crate::{AppState, Metrics};

/// A WebSocket viewer never has more than this much video waiting: older frames are
/// dropped and the viewer skips to the next keyframe.
pub const MAX_VIDEO_LAG: Duration = Duration::from_secs(1);

/// A WebSocket viewer never gets sound captured longer ago than this: older audio frames
/// are dropped (a gap in the sound rather than a growing delay).
pub const MAX_AUDIO_LAG: Duration = Duration::from_millis(200);

/// Why a viewer's writer stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriterEnd {
    /// The server dropped the viewer.
    Dropped(Dropped),
    /// The socket failed (the viewer went away).
    Failed,
}

/// What the writer does next.
enum Step<'a> {
    /// What its queue says.
    Queued(Next<Outbound>),
    /// Send a binary message of the media, adding its size to the counter.
    Binary(Vec<u8>, &'a AtomicU64),
    /// Send the changed region of a frame of the viewer's WebRTC stream.
    Region(Vec<u8>),
    /// Send a video frame (its pts and size go to the flow control).
    Video(Arc<kelpie_media::EncodedFrame>, VideoCodec),
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

/// Subscribes viewer `id` to the video of `monitor` in `codec` (its keyframe requests
/// through `keyframes`, if given) and, if `audio`, the session's sound. Returns what to tell the
/// viewer and what to give its writer.
pub(crate) fn start(
    state: &AppState,
    id: ViewerId,
    codec: VideoCodec,
    monitor: kelpie_media::monitor::Monitor,
    audio: bool,
    keyframes: Option<SharedKeyframeLimiter>,
) -> Result<(ServerMessage, Outbound), kelpie_media::MediaError> {
    let video = state.source.subscribe_monitor(codec, monitor.index, keyframes)?;
    let sound = if audio { subscribe_audio(state, id) } else { None };
    let audio = sound.is_some();
    tracing::info!(
        viewer = id,
        codec = codec.as_str(),
        monitor = monitor.index + 1,
        audio,
        "video over WebSocket"
    );
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

/// The binary message of the changed region of the frame at `pts`.
fn region_message(pts: Duration, region: &ChangedRegion) -> Vec<u8> {
    let us = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    let px = |v: u32| v.min(u32::from(u16::MAX)) as u16;
    FrameRegion {
        pts_us: us(pts),
        after_us: us(region.after),
        rects: region
            .rects
            .iter()
            .map(|r| RegionRect { x: px(r.x), y: px(r.y), width: px(r.w), height: px(r.h) })
            .collect(),
    }
    .to_bytes()
}

fn with_header(header: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(header.len() + payload.len());
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(payload);
    bytes
}

/// Writes `first`, if any, and `message` (flushed together), unless it takes longer than
/// [`WRITE_TIMEOUT`] or the queue closes meanwhile.
async fn write<S>(
    sink: &mut S,
    first: Option<Message>,
    message: Message,
    outbox: &OutboxReader,
) -> Result<(), WriterEnd>
where
    S: Sink<Message> + Unpin,
{
    let both = async {
        if let Some(m) = first {
            sink.feed(m).await?;
        }
        sink.send(message).await
    };
    tokio::select! {
        biased;
        why = outbox.closing() => Err(WriterEnd::Dropped(why)),
        sent = tokio::time::timeout(WRITE_TIMEOUT, both) => match sent {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(WriterEnd::Failed),
            Err(_) => Err(WriterEnd::Dropped(Dropped::WriteTimeout)),
        },
    }
}

/// Tells the viewer why it is dropped, if the socket takes it within [`CLOSE_GRACE`].
async fn close<S>(sink: &mut S, why: Dropped)
where
    S: Sink<Message> + Unpin,
{
    let (code, reason) = why.close_frame();
    let frame = Message::Close(Some(CloseFrame { code, reason: reason.into() }));
    let _ = tokio::time::timeout(CLOSE_GRACE, sink.send(frame)).await;
}

/// Writes what the viewer's queue holds, pings and, when asked, the video and the sound to
/// the socket, until the socket fails, a write times out or the queue closes.
pub(crate) async fn write_loop<S>(
    state: Arc<AppState>,
    sink: S,
    outbox: OutboxReader,
    flow: Arc<WsFlow>,
) -> WriterEnd
where
    S: Sink<Message> + Unpin,
{
    pump(sink, outbox, &state.metrics, &state.viewers.limits.pings, &flow).await
}

/// Reports a WebSocket viewer's estimates to its stream's budget, and forgets them when
/// dropped (the video stopped, or the writer ended).
struct Reporting<'a> {
    stream: Arc<VideoStream>,
    flow: &'a WsFlow,
    metrics: &'a Metrics,
}

impl Reporting<'_> {
    fn report(&self) {
        if let Some(bps) = self.flow.target_bps() {
            self.stream.report_estimate(self.flow.key, bps, Instant::now());
            self.metrics.ws_estimates.lock().unwrap_or_else(|e| e.into_inner()).insert(self.flow.key, bps);
        }
    }
}

impl Drop for Reporting<'_> {
    fn drop(&mut self) {
        self.flow.stop();
        self.stream.forget_viewer(self.flow.key, Instant::now());
        self.metrics.ws_estimates.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.flow.key);
    }
}

/// [`write_loop`], counting into `m` and `pings`; video waits for `flow`'s window.
async fn pump<S>(
    mut sink: S,
    outbox: OutboxReader,
    m: &Metrics,
    pings: &AtomicU64,
    flow: &WsFlow,
) -> WriterEnd
where
    S: Sink<Message> + Unpin,
{
    let mut video: Option<VideoSubscription> = None;
    let mut reporting: Option<Reporting> = None;
    // A frame taken from the broadcast while the window was full: it goes once the window
    // opens (the next ones wait in the broadcast, where the lag policy can drop them).
    let mut held: Option<Arc<kelpie_media::EncodedFrame>> = None;
    // Since when a frame has been held: a viewer that acknowledges nothing for the write
    // timeout is as gone as one whose socket takes nothing (pongs alone do not keep it).
    let mut held_since = tokio::time::Instant::now();
    let mut audio: Option<AudioSubscription> = None;
    // The changed regions of a WebRTC viewer's stream.
    let mut regions: Option<RegionReceiver> = None;
    let mut cursors_sent = HashSet::new();
    // What the subscriptions had dropped, and the video's keyframe requests refused, when
    // last counted into the metrics.
    let (mut video_dropped, mut audio_dropped, mut keyframes_refused) = (0, 0, 0);
    loop {
        // Video and sound carry pts on the session's media clock: sent as they are.
        let step = tokio::select! {
            // The queue first: a close or a ping must not wait behind the video.
            biased;
            next = outbox.next() => Step::Queued(next),
            () = tokio::time::sleep_until(held_since + WRITE_TIMEOUT), if held.is_some() && video.is_some() => {
                close(&mut sink, Dropped::WriteTimeout).await;
                return WriterEnd::Dropped(Dropped::WriteTimeout);
            },
            () = flow.open(), if held.is_some() && video.is_some() => {
                let frame = held.take().expect("guarded");
                let sub = video.as_ref().expect("guarded");
                Step::Video(frame, sub.codec())
            },
            f = async { video.as_mut().expect("guarded").next_decodable(MAX_VIDEO_LAG).await }, if video.is_some() && held.is_none() => {
                let sub = video.as_ref().expect("guarded");
                count_dropped(sub.dropped(), &mut video_dropped, &m.ws_frames_dropped);
                count_dropped(sub.keyframes_refused(), &mut keyframes_refused, &m.keyframes_refused);
                match f {
                    Some(frame) if flow.may_send() => Step::Video(frame, sub.codec()),
                    Some(frame) => {
                        // About one round trip is in flight already: the frame waits here
                        // rather than in the socket's buffers, and the estimate learns that
                        // the path carries less than is sent.
                        flow.window_full(Instant::now());
                        m.ws_window_waits.fetch_add(1, Ordering::Relaxed);
                        held = Some(frame);
                        held_since = tokio::time::Instant::now();
                        continue;
                    }
                    None => Step::VideoEnded,
                }
            },
            r = async { regions.as_mut().expect("guarded").recv().await }, if regions.is_some() => match r {
                Ok(note) => Step::Region(region_message(note.pts, &note.region)),
                // The viewer redraws whole pictures until it has consecutive regions again.
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => {
                    regions = None;
                    continue;
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
        // A video frame's changed region goes just before it.
        let mut first = None;
        let message = match step {
            Step::Queued(Next::Item(Outbound::Text(text, _))) => Message::Text(text),
            Step::Queued(Next::Ping) => {
                pings.fetch_add(1, Ordering::Relaxed);
                Message::Ping(Default::default())
            }
            Step::Queued(Next::Close(why)) => {
                close(&mut sink, why).await;
                return WriterEnd::Dropped(why);
            }
            Step::Binary(bytes, counter) => {
                counter.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                Message::Binary(bytes.into())
            }
            Step::Region(bytes) => {
                m.regions_sent.fetch_add(1, Ordering::Relaxed);
                Message::Binary(bytes.into())
            }
            Step::Video(frame, codec) => {
                if let Some(region) = &frame.changed {
                    let bytes = region_message(frame.pts, region);
                    m.regions_sent.fetch_add(1, Ordering::Relaxed);
                    m.ws_video_bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                    first = Some(Message::Binary(bytes.into()));
                }
                let bytes = video_message(&frame, codec);
                m.ws_video_bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                let pts = u64::try_from(frame.pts.as_micros()).unwrap_or(u64::MAX);
                kelpie_media::latency_mark!("sent", pts);
                flow.sent(Instant::now(), pts, bytes.len() as u64);
                if let Some(r) = &reporting {
                    r.report();
                }
                Message::Binary(bytes.into())
            }
            Step::VideoEnded => {
                (video, reporting, held) = (None, None, None);
                continue;
            }
            Step::AudioEnded => {
                audio = None;
                continue;
            }
            Step::Queued(Next::Item(Outbound::Media(v, a))) => {
                (video_dropped, audio_dropped, keyframes_refused) =
                    (v.dropped(), a.as_ref().map_or(0, |a| a.dropped()), 0);
                // Its first request (when it subscribed) may have been refused already.
                count_dropped(v.keyframes_refused(), &mut keyframes_refused, &m.keyframes_refused);
                // The old subscription's estimate is forgotten before the new one starts.
                drop(reporting.take());
                held = None;
                flow.start_from(v.stream().clone());
                reporting = Some(Reporting { stream: v.stream().clone(), flow, metrics: m });
                (video, audio) = (Some(v), a);
                continue;
            }
            Step::Queued(Next::Item(Outbound::Regions(r))) => {
                regions = Some(r);
                continue;
            }
            Step::Queued(Next::Item(Outbound::StopMedia)) => {
                (video, audio, reporting, held, regions) = (None, None, None, None, None);
                continue;
            }
            Step::Queued(Next::Item(Outbound::Cursor(c))) => {
                Message::Text(crate::clipboard::cursor_message(&mut cursors_sent, &c).to_json().into())
            }
        };
        if let Err(end) = write(&mut sink, first, message, &outbox).await {
            match end {
                // The socket is not taking anything.
                WriterEnd::Failed | WriterEnd::Dropped(Dropped::WriteTimeout) => {}
                // The write in progress was abandoned; the close frame goes after what of it
                // was buffered, if the socket takes it.
                WriterEnd::Dropped(why) => close(&mut sink, why).await,
            }
            return end;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::{Outbox, Pushed};
    use std::pin::Pin;
    use std::sync::Mutex;
    use std::task::{Context, Poll};

    /// A socket that takes `capacity` messages, each after `delay`, then none: a viewer that
    /// reads slowly, then stops reading (its TCP buffers full).
    struct TestSocket {
        sent: Arc<Mutex<Vec<Message>>>,
        capacity: usize,
        delay: Duration,
        wait: Option<Pin<Box<tokio::time::Sleep>>>,
    }

    impl TestSocket {
        fn new(capacity: usize, delay: Duration) -> (Self, Arc<Mutex<Vec<Message>>>) {
            let sent = Arc::new(Mutex::new(Vec::new()));
            (Self { sent: sent.clone(), capacity, delay, wait: None }, sent)
        }
    }

    impl Sink<Message> for TestSocket {
        type Error = std::io::Error;
        fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            if self.sent.lock().unwrap().len() >= self.capacity {
                // Never ready again: only a timeout wakes the writer.
                return Poll::Pending;
            }
            let delay = self.delay;
            let wait = self.wait.get_or_insert_with(|| Box::pin(tokio::time::sleep(delay)));
            std::task::ready!(wait.as_mut().poll(cx));
            self.wait = None;
            Poll::Ready(Ok(()))
        }
        fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), Self::Error> {
            self.sent.lock().unwrap().push(item);
            Ok(())
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
    }

    fn error(n: usize) -> ServerMessage {
        ServerMessage::Error { message: format!("message {n}"), fatal: false }
    }

    /// Runs the writer of `outbox` on `socket` in a task; returns it and when it started.
    fn spawn_writer(
        socket: TestSocket,
        reader: crate::outbox::OutboxReader,
    ) -> (tokio::task::JoinHandle<(WriterEnd, Duration)>, Arc<AtomicU64>) {
        let pings = Arc::new(AtomicU64::new(0));
        let p = pings.clone();
        let task = tokio::spawn(async move {
            let t0 = tokio::time::Instant::now();
            let flow = WsFlow::new(kelpie_media::congestion::BitrateLimits::from_kbps(300, 3000, 8000), None);
            let end = pump(socket, reader, &Metrics::default(), &p, &flow).await;
            (end, t0.elapsed())
        });
        (task, pings)
    }

    #[tokio::test(start_paused = true)]
    async fn a_viewer_that_stops_reading_is_dropped_after_the_write_timeout() {
        let (outbox, reader) = Outbox::new(1 << 20);
        // It reads two messages, a second apart, then stops.
        let (socket, sent) = TestSocket::new(2, Duration::from_secs(1));
        let (writer, _) = spawn_writer(socket, reader);
        for n in 0..3 {
            outbox.send_json(&error(n));
        }
        let (end, took) = writer.await.unwrap();
        assert_eq!(end, WriterEnd::Dropped(Dropped::WriteTimeout));
        // 2 s for the two it took, then 10 s waiting on the third, and no close frame (the
        // socket takes nothing).
        assert_eq!(took, Duration::from_secs(2) + WRITE_TIMEOUT);
        assert_eq!(sent.lock().unwrap().len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_reader_is_kept_pinged_and_closed_with_a_reason() {
        let (outbox, reader) = Outbox::new(1 << 20);
        // Each write takes 9 s: slow, but never 10.
        let (socket, sent) = TestSocket::new(100, WRITE_TIMEOUT - Duration::from_secs(1));
        let (writer, pings) = spawn_writer(socket, reader);
        for n in 0..5 {
            outbox.send_json(&error(n));
        }
        tokio::time::sleep(Duration::from_secs(20)).await;
        // A ping goes ahead of the three still queued.
        outbox.ping();
        tokio::time::sleep(Duration::from_secs(100)).await;
        assert!(!writer.is_finished());
        outbox.close(Dropped::Silent);
        let (end, _) = writer.await.unwrap();
        assert_eq!(end, WriterEnd::Dropped(Dropped::Silent));
        assert_eq!(pings.load(Ordering::Relaxed), 1);
        let sent = sent.lock().unwrap();
        let kinds: Vec<String> = sent
            .iter()
            .map(|m| match m {
                Message::Text(t) => t.to_string(),
                Message::Ping(_) => "ping".into(),
                Message::Close(Some(c)) => format!("close {} {}", c.code, c.reason),
                _ => "other".into(),
            })
            .collect();
        // Sent at 9, 18 and 27 s; the ping asked for at 20 s at 36 s, then the last two.
        assert_eq!(kinds[3], "ping", "{kinds:?}");
        // The close frame would take 9 s too: given up after CLOSE_GRACE.
        assert_eq!(kinds.len(), 6, "{kinds:?}");
        assert_eq!(kinds[5], error(4).to_json());
    }

    #[tokio::test(start_paused = true)]
    async fn a_viewer_that_still_reads_is_told_why_it_is_dropped() {
        let (outbox, reader) = Outbox::new(1 << 20);
        let (socket, sent) = TestSocket::new(100, Duration::from_millis(5));
        let (writer, _) = spawn_writer(socket, reader);
        outbox.send_json(&error(0));
        tokio::time::sleep(Duration::from_secs(1)).await;
        outbox.close(Dropped::Silent);
        assert_eq!(writer.await.unwrap().0, WriterEnd::Dropped(Dropped::Silent));
        let sent = sent.lock().unwrap();
        assert_eq!(sent.len(), 2);
        match &sent[1] {
            Message::Close(Some(c)) => {
                assert_eq!((c.code, c.reason.as_str()), (1008, "no answer to pings for 25 s"));
            }
            other => panic!("not a close frame: {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_ends_a_waiting_write_at_once() {
        let budget = 10_000;
        let (outbox, reader) = Outbox::new(budget);
        // It reads nothing at all.
        let (socket, sent) = TestSocket::new(0, Duration::ZERO);
        let (writer, _) = spawn_writer(socket, reader);
        let big = ServerMessage::Error { message: "x".repeat(3000), fatal: false };
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(outbox.send_json(&big), Pushed::Queued);
        // The writer takes it and waits on the socket; three more fit, the fourth does not.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let pushed: Vec<Pushed> = (0..4).map(|_| outbox.send_json(&big)).collect();
        assert_eq!(pushed, [Pushed::Queued, Pushed::Queued, Pushed::Queued, Pushed::Overflow]);
        assert_eq!(outbox.bytes(), 0, "the queue let go of what it held");
        let (end, took) = writer.await.unwrap();
        assert_eq!(end, WriterEnd::Dropped(Dropped::QueueFull { budget }));
        // Not the 10 s write timeout: at once, plus the grace for the close frame.
        assert_eq!(took, Duration::from_secs(2) + CLOSE_GRACE);
        assert!(sent.lock().unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_webrtc_viewer_gets_the_changed_regions_of_its_stream_until_its_media_stops() {
        use kelpie_media::capture::Rect;
        use kelpie_media::regions::RegionSender;
        let (outbox, reader) = Outbox::new(1 << 20);
        let (socket, sent) = TestSocket::new(100, Duration::ZERO);
        let (writer, _) = spawn_writer(socket, reader);
        let regions = RegionSender::default();
        outbox.send(Outbound::Regions(regions.subscribe()));
        tokio::time::sleep(Duration::from_millis(10)).await;
        let frame = |ms: u64, changed: Option<ChangedRegion>| kelpie_media::EncodedFrame {
            data: Arc::from(&[0u8][..]),
            pts: Duration::from_millis(ms),
            captured: Instant::now(),
            keyframe: changed.is_none(),
            delta: false,
            width: 1920,
            height: 1080,
            changed,
        };
        let region = ChangedRegion {
            after: Duration::from_millis(100),
            rects: vec![Rect { x: 0, y: 0, w: 928, h: 16 }],
        };
        regions.note(&frame(100, None));
        regions.note(&frame(116, Some(region.clone())));
        tokio::time::sleep(Duration::from_millis(10)).await;
        // Media stops (the viewer moves to the WebSocket, or to a new peer connection).
        outbox.send(Outbound::StopMedia);
        tokio::time::sleep(Duration::from_millis(10)).await;
        regions.note(&frame(132, Some(ChangedRegion { after: Duration::from_millis(116), ..region })));
        tokio::time::sleep(Duration::from_millis(10)).await;
        outbox.close(Dropped::Silent);
        writer.await.unwrap();
        let binary: Vec<FrameRegion> = sent
            .lock()
            .unwrap()
            .iter()
            .filter_map(|m| match m {
                Message::Binary(b) => FrameRegion::parse(b),
                _ => None,
            })
            .collect();
        assert_eq!(
            binary,
            [FrameRegion {
                pts_us: 116_000,
                after_us: 100_000,
                rects: vec![RegionRect { x: 0, y: 0, width: 928, height: 16 }]
            }]
        );
    }

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
