//! A video stream: one capture thread that owns the capturer and the encoder and whose
//! output is broadcast to every subscriber, and the [`VideoSource`] that starts a stream per
//! codec and monitor on first subscription and stops it when the last subscriber leaves.
//!
//! The capture thread sleeps in `poll()` on the X connection and on its command mailbox
//! together: damage wakes it, and so do commands (a keyframe request, a rate change, stop),
//! at once; while the screen is still and nobody asks for anything it does not wake at all.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kelpie_protocol::VideoCodec;
use tokio::sync::broadcast::error::RecvError;

use crate::broadcast::{LazyBroadcast, Producer, Publisher, Subscription, Upstream};
use crate::capture::{Capturer, CursorShot, Rect};
use crate::clock::MediaClock;
use crate::congestion::{Service, StreamBudget};
use crate::encoder::{EncodedFrame, Encoder, EncoderSettings, EncoderSpec, Rate};
use crate::limit::SharedKeyframeLimiter;
use crate::mailbox::{Drained, Inbox, Mailbox, mailbox};
use crate::monitor::Monitor;
use crate::pool::FramePool;
use crate::regions::{RegionReceiver, RegionSender};
use crate::{MediaError, error_chain};

/// Frames a subscriber may fall behind before it is told it lagged (then it skips to the
/// next keyframe). About a second at 60 fps.
const BROADCAST_DEPTH: usize = 64;
/// How long the capture thread waits for damage while nothing else is due: until something
/// happens.
const FOREVER: Duration = Duration::MAX;
/// Keyframes are made at most this often, however many viewers ask. A subscriber that joins
/// within this time of the last keyframe starts from that keyframe instead (the broadcast
/// replays it and the frames after it), so its first picture does not wait for the limit.
pub const KEYFRAME_MIN_INTERVAL: Duration = Duration::from_millis(250);
/// How long the capture waits after the first damage of a change, so that a client drawing
/// a frame in several requests is captured whole rather than half-drawn.
const DAMAGE_SETTLE: Duration = Duration::from_millis(1);

/// Limits captures to the frame rate on average while letting each capture follow the
/// damage that prompted it: a credit of frames refills at the frame rate (plus
/// [`Pacer::SLACK`]) up to [`Pacer::BURST`], and a capture spends one. A fixed grid of capture
/// times (one frame-time after the last capture) would instead lock onto an arbitrary phase of
/// an application drawing at the same rate and add up to a whole frame-time of latency to
/// every frame.
#[derive(Debug, Clone, Copy)]
struct Pacer {
    credit: f64,
    at: Instant,
    last_capture: Option<Instant>,
}

impl Pacer {
    /// Most frames of credit kept.
    const BURST: f64 = 2.0;
    /// How much faster than the frame rate credit refills. Refilled at exactly the frame rate,
    /// credit spent on an extra capture (a frame drawn in two parts, a pointer move) would
    /// never come back while an application draws at exactly that rate: from then on every
    /// capture would wait for credit, on a fixed grid again (+4 ms median measured on 1080p
    /// bars at 60.0 fps). With 2 % the deficit is gone within a second.
    const SLACK: f64 = 1.02;

    /// Frames of credit earned per second.
    fn rate(fps: u32) -> f64 {
        f64::from(fps.max(1)) * Self::SLACK
    }

    fn new(now: Instant) -> Self {
        Self { credit: Self::BURST, at: now, last_capture: None }
    }

    fn refill(&mut self, now: Instant, fps: u32) {
        let earned = now.saturating_duration_since(self.at).as_secs_f64() * Self::rate(fps);
        self.credit = (self.credit + earned).min(Self::BURST);
        self.at = self.at.max(now);
    }

    /// When the next capture may happen: enough credit, and at least half a frame-time
    /// after the previous capture.
    fn ready_at(&mut self, now: Instant, fps: u32) -> Instant {
        self.refill(now, fps);
        let frame = Duration::from_secs(1) / fps.max(1);
        let for_credit = now + Duration::from_secs_f64((1.0 - self.credit).max(0.0) / Self::rate(fps));
        let for_gap = self.last_capture.map_or(now, |t| t + frame / 2);
        for_credit.max(for_gap)
    }

    /// Spends one frame of credit on a capture at `now`.
    fn capture(&mut self, now: Instant, fps: u32) {
        self.refill(now, fps);
        self.credit -= 1.0;
        self.last_capture = Some(now);
    }
}

/// What the capture loop does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// Capture now.
    Capture,
    /// Wait up to this long (or, [`FOREVER`], as long as it takes) for damage or a command,
    /// then decide again.
    WaitForDamage(Duration),
    /// Sleep this long (the pacer holds a capture back), then decide again.
    Sleep(Duration),
}

/// Decides when the capture loop captures: at once on damage (within the [`Pacer`]'s
/// limits), and, once the screen has stopped changing, a few refinement frames that let the
/// encoder bring the last picture to full quality; then nothing until the next change.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    pacer: Pacer,
    first: bool,
    /// Refinement frames still to capture.
    refine_left: u32,
    /// When the last capture with a change was taken.
    last_change: Option<Instant>,
}

impl Schedule {
    /// Frame-times the screen must stay unchanged before refinement frames are captured.
    /// While it keeps changing, every capture follows damage: a refinement frame in between
    /// would spend the capture slot (and the encoder) that the next change is about to need,
    /// and make that change wait for the pacer.
    const REFINE_AFTER_FRAMES: u32 = 2;

    fn new(now: Instant) -> Self {
        Self { pacer: Pacer::new(now), first: true, refine_left: 0, last_change: None }
    }

    /// `wanted`: damage, a due keyframe or a moved pointer asks for a capture now. `idle`:
    /// how long to wait for damage when nothing is pending ([`FOREVER`]: until something
    /// happens).
    fn next(&mut self, now: Instant, fps: u32, wanted: bool, idle: Duration) -> Next {
        let frame = Duration::from_secs(1) / fps.max(1);
        if !(self.first || wanted) {
            let refine_at = (self.refine_left > 0)
                .then(|| self.last_change.map_or(now, |t| t + frame * Self::REFINE_AFTER_FRAMES));
            match refine_at {
                None => return Next::WaitForDamage(idle),
                Some(at) if now < at => return Next::WaitForDamage((at - now).min(idle)),
                Some(_) => {}
            }
        }
        let ready = self.pacer.ready_at(now, fps);
        if now < ready { Next::Sleep(ready - now) } else { Next::Capture }
    }

    /// Notes a capture at `now` that changed `changed_area` of `screen_area` pixels.
    fn captured(&mut self, now: Instant, fps: u32, keyframe: bool, changed_area: u64, screen_area: u64) {
        if keyframe || changed_area * 16 >= screen_area {
            // A keyframe or a large change was squeezed into one frame's bit budget: a few
            // more frames of the still picture bring it to full quality.
            self.refine_left = (fps / 10).max(3);
        } else if changed_area > 0 {
            // A small change (a clock, a cursor blink, typing) gets all of a frame's bits and
            // needs little refinement; one unchanged frame follows it.
            self.refine_left = self.refine_left.max(1);
        } else {
            self.refine_left = self.refine_left.saturating_sub(1);
        }
        if changed_area > 0 {
            self.last_change = Some(now);
        }
        self.first = false;
        self.pacer.capture(now, fps);
    }
}

/// Counters a stream keeps, for metrics and tests.
#[derive(Debug, Default)]
pub struct StreamCounters {
    /// Frames pushed to the encoder.
    pub frames_captured: AtomicU64,
    /// Frames the encoder produced.
    pub frames_encoded: AtomicU64,
    /// Bytes the encoder produced.
    pub bytes_encoded: AtomicU64,
    /// Keyframes the encoder produced.
    pub keyframes: AtomicU64,
    /// Of the frames encoded, how many were Kelpie's delta frames (see [`crate::delta`]).
    pub delta_frames: AtomicU64,
    /// Microseconds from each frame's capture to its encoded output (conversion and
    /// encoding), summed over the frames encoded.
    pub encode_us_sum: AtomicU64,
    /// The bitrate the rate control aims at now, kbit/s: the configured one, capped by the
    /// viewers' paths (0 before the capture thread starts).
    pub target_kbps: AtomicU64,
    /// Whether the bitrate held the picture back lately (see
    /// [`crate::ratecontrol::RateControl::limited`]), as of the last frame.
    pub limited: AtomicBool,
}

/// What the capture thread is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Command {
    /// Make a keyframe soon (rate-limited, see [`Keyframes`]).
    Keyframe,
    /// Capture and encode at this rate from now on.
    Rate(Rate),
    /// Encode at no more than this many kbit/s (what the viewers' paths carry), or `None`:
    /// no cap.
    Cap(Option<u32>),
    /// Stop.
    Stop,
}

/// Keyframe requests, rate-limited across all viewers: a keyframe is made at most every
/// [`KEYFRAME_MIN_INTERVAL`]; one asked for sooner is made when the interval is over.
#[derive(Debug, Clone, Copy, Default)]
struct Keyframes {
    wanted: bool,
    last: Option<Instant>,
}

impl Keyframes {
    /// When the keyframe asked for may be made (`now` or later); `None` when none is asked
    /// for.
    fn due_at(&self, now: Instant) -> Option<Instant> {
        self.wanted.then(|| self.last.map_or(now, |t| (t + KEYFRAME_MIN_INTERVAL).max(now)))
    }

    /// Notes a keyframe captured at `now`.
    fn made(&mut self, now: Instant) {
        self.wanted = false;
        self.last = Some(now);
    }
}

/// The capture thread's own state, kept across resizes: the one place a running stream's
/// rate lives.
struct Controls {
    rate: Rate,
    /// The viewers' paths' cap on the bitrate, in kbit/s.
    cap: Option<u32>,
    keyframes: Keyframes,
}

impl Controls {
    /// The rate the encoder runs at: the configured one, capped by the paths.
    fn effective(&self) -> Rate {
        match self.cap {
            Some(cap) => Rate { bitrate_kbps: self.rate.bitrate_kbps.min(cap.max(1)), ..self.rate },
            None => self.rate,
        }
    }
}

/// A running capture + encode of one display (or one monitor of it) in one codec.
pub struct VideoStream {
    codec: VideoCodec,
    monitor: Monitor,
    encoder: &'static str,
    mailbox: Mailbox<Command>,
    /// Held strongly by the capture thread only: subscribers see the broadcast end when the
    /// thread does.
    publisher: Weak<Publisher<EncodedFrame>>,
    counters: Arc<StreamCounters>,
    failed: Arc<Mutex<Option<String>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// The viewers' estimates of their paths and the cap they add up to.
    budget: Mutex<StreamBudget>,
    /// The cap last sent to the capture thread, in bit/s (0: none), for metrics.
    cap_bps: AtomicU64,
}

impl VideoStream {
    fn start(
        display: &str,
        monitor: Monitor,
        spec: &'static EncoderSpec,
        settings: EncoderSettings,
        clock: MediaClock,
        regions: RegionSender,
    ) -> Result<Arc<Self>, MediaError> {
        let capturer = Capturer::open_monitor(display, monitor)?;
        let (w, h) = capturer.size();
        let (w, h) = (w & !1, h & !1);
        let publisher = Arc::new(Publisher::new(BROADCAST_DEPTH, Some(KEYFRAME_MIN_INTERVAL)));
        let counters = Arc::new(StreamCounters::default());
        let (p, c) = (publisher.clone(), counters.clone());
        let sink: Arc<dyn Fn(EncodedFrame) + Send + Sync> = Arc::new(move |f: EncodedFrame| {
            c.frames_encoded.fetch_add(1, Ordering::Relaxed);
            crate::latency_mark!("encoded", f.pts.as_micros() as u64);
            c.bytes_encoded.fetch_add(f.data.len() as u64, Ordering::Relaxed);
            c.encode_us_sum.fetch_add(f.captured.elapsed().as_micros() as u64, Ordering::Relaxed);
            if f.keyframe {
                c.keyframes.fetch_add(1, Ordering::Relaxed);
            }
            if f.delta {
                c.delta_frames.fetch_add(1, Ordering::Relaxed);
            }
            regions.note(&f);
            p.send(f);
        });
        let start_encoder = move |w: u32, h: u32, settings: EncoderSettings| {
            let sink = sink.clone();
            Encoder::start(spec, w, h, settings, clock, move |f| sink(f))
        };
        let encoder = start_encoder(w, h, settings)?;
        let (mailbox, inbox) = mailbox()?;
        let failed = Arc::new(Mutex::new(None));
        let (fail, cnt) = (failed.clone(), counters.clone());
        let display = display.to_string();
        let thread = std::thread::Builder::new()
            .name(format!("kelpie-capture-{}", spec.element))
            .spawn(move || {
                let (mut capturer, mut encoder, mut inbox) = (capturer, encoder, inbox);
                let mut ctl = Controls { rate: settings.rate(), cap: None, keyframes: Keyframes::default() };
                loop {
                    let exit = capture_loop(
                        &mut capturer,
                        &mut encoder,
                        &mut inbox,
                        &mut ctl,
                        &cnt,
                        settings.cursor_in_video,
                        settings.threads.clamp(1, 8) as usize,
                    );
                    let error = match exit {
                        Ok(Exit::Stopped) => return,
                        // The screen changed size: a new capture and encoder at the new size
                        // feed the same broadcast on the same clock, so viewers stay
                        // connected and pts run on; the first frame is a keyframe with the
                        // new SPS.
                        Ok(Exit::Resized) => {
                            let settings = EncoderSettings {
                                fps: ctl.rate.fps,
                                bitrate_kbps: ctl.effective().bitrate_kbps,
                                ..settings
                            };
                            drop(encoder);
                            let rebuilt = Capturer::open_monitor(&display, monitor).and_then(|cap| {
                                let (w, h) = cap.size();
                                Ok((cap, start_encoder(w & !1, h & !1, settings)?))
                            });
                            match rebuilt {
                                Ok((cap, enc)) => {
                                    tracing::info!(size = ?cap.size(), "display resized; stream follows");
                                    (capturer, encoder) = (cap, enc);
                                    continue;
                                }
                                Err(e) => e,
                            }
                        }
                        Err(e) => e,
                    };
                    let error = error_chain(&error);
                    tracing::error!("video stream stopped: {error}");
                    *fail.lock().unwrap_or_else(|e| e.into_inner()) = Some(error);
                    return;
                }
            })
            .map_err(|e| MediaError::io("starting the capture thread", e))?;
        tracing::info!(
            encoder = spec.element,
            width = w,
            height = h,
            monitor = monitor.index + 1,
            "video stream started"
        );
        Ok(Arc::new(Self {
            codec: spec.codec,
            monitor,
            encoder: spec.element,
            mailbox,
            publisher: Arc::downgrade(&publisher),
            counters,
            failed,
            thread: Mutex::new(Some(thread)),
            budget: Mutex::new(StreamBudget::default()),
            cap_bps: AtomicU64::new(0),
        }))
    }

    /// Asks for a keyframe soon (rate-limited across all viewers).
    pub fn request_keyframe(&self) {
        self.mailbox.send(Command::Keyframe);
    }

    /// Notes viewer `key`'s estimate of what its path carries (bit/s) at `now`; the stream's
    /// bitrate follows the slowest viewer that is not hopeless (see [`StreamBudget`]).
    pub fn report_estimate(&self, key: u64, bps: u64, now: Instant) {
        let mut b = self.budget.lock().unwrap_or_else(|e| e.into_inner());
        b.report(key, bps, now);
        self.apply(&mut b, now);
    }

    /// Forgets viewer `key`'s estimate (it left).
    pub fn forget_viewer(&self, key: u64, now: Instant) {
        let mut b = self.budget.lock().unwrap_or_else(|e| e.into_inner());
        b.remove(key);
        self.apply(&mut b, now);
    }

    /// How viewer `key` is served: every frame, or keyframes only when its path is far
    /// slower than the other viewers'.
    pub fn service(&self, key: u64, now: Instant) -> Service {
        self.budget.lock().unwrap_or_else(|e| e.into_inner()).service(key, now)
    }

    /// The bitrate the rate control aims at now, kbit/s (`None` before the capture thread
    /// starts).
    pub fn target_kbps(&self) -> Option<u64> {
        Some(self.counters.target_kbps.load(Ordering::Relaxed)).filter(|&k| k > 0)
    }

    /// Whether the bitrate held the picture back lately: a viewer's path that carries more
    /// is worth looking for.
    pub fn limited(&self) -> bool {
        self.counters.limited.load(Ordering::Relaxed)
    }

    /// The bitrate the viewers' paths cap the stream at, in bit/s, if any.
    pub fn cap_bps(&self) -> Option<u64> {
        Some(self.cap_bps.load(Ordering::Relaxed)).filter(|&b| b > 0)
    }

    fn apply(&self, b: &mut StreamBudget, now: Instant) {
        if let Some(cap) = b.change(now) {
            self.cap_bps.store(cap.unwrap_or(0), Ordering::Relaxed);
            self.mailbox.send(Command::Cap(cap.map(|bps| u32::try_from(bps / 1000).unwrap_or(u32::MAX))));
        }
    }

    /// Changes the frame rate and bitrate while running.
    pub fn set_rate(&self, rate: Rate) {
        self.mailbox.send(Command::Rate(rate));
    }

    /// The codec this stream produces.
    pub fn codec(&self) -> VideoCodec {
        self.codec
    }

    /// The monitor captured.
    pub fn monitor(&self) -> Monitor {
        self.monitor
    }

    /// The encoder element in use.
    pub fn encoder(&self) -> &'static str {
        self.encoder
    }

    /// Counters of this stream.
    pub fn counters(&self) -> &StreamCounters {
        &self.counters
    }

    /// Why the stream stopped, if it failed (the error and its causes).
    pub fn failure(&self) -> Option<String> {
        self.failed.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Upstream for VideoStream {
    fn request_keyframe(&self) {
        Self::request_keyframe(self);
    }
}

impl Producer for VideoStream {
    type Frame = EncodedFrame;

    fn publisher(&self) -> Option<Arc<Publisher<EncodedFrame>>> {
        self.publisher.upgrade()
    }

    fn failed(&self) -> bool {
        self.failure().is_some()
    }
}

impl Drop for VideoStream {
    fn drop(&mut self) {
        self.mailbox.send(Command::Stop);
        if let Some(t) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = t.join();
        }
        tracing::info!(encoder = self.encoder, "video stream stopped");
    }
}

/// Why the capture loop returned.
enum Exit {
    /// The stream was stopped.
    Stopped,
    /// The screen changed size.
    Resized,
}

/// The capture thread: waits for damage or a command, converts what changed (a large change
/// on up to `convert_threads` threads), feeds the encoder.
fn capture_loop(
    cap: &mut Capturer,
    encoder: &mut Encoder,
    inbox: &mut Inbox<Command>,
    ctl: &mut Controls,
    counters: &StreamCounters,
    cursor_in_video: bool,
    convert_threads: usize,
) -> Result<Exit, MediaError> {
    let (w, h) = encoder.size();
    // With the pointer drawn into the picture: where it was last drawn, and a scratch
    // buffer for rectangles it covers.
    let mut drawn_cursor: Option<CursorShot> = None;
    let mut scratch: Vec<u8> = Vec::new();
    let mut pool = FramePool::new(w, h);
    let mut schedule = Schedule::new(Instant::now());
    counters.target_kbps.store(u64::from(ctl.effective().bitrate_kbps), Ordering::Relaxed);
    loop {
        match inbox.drain() {
            Drained::Closed => return Ok(Exit::Stopped),
            Drained::Commands(commands) => {
                for c in commands {
                    match c {
                        Command::Stop => return Ok(Exit::Stopped),
                        Command::Keyframe => ctl.keyframes.wanted = true,
                        Command::Rate(rate) if rate != ctl.rate => {
                            ctl.rate = rate;
                            encoder.set_rate(ctl.effective());
                        }
                        Command::Rate(_) => {}
                        Command::Cap(cap) if cap != ctl.cap => {
                            ctl.cap = cap;
                            encoder.set_rate(ctl.effective());
                        }
                        Command::Cap(_) => {}
                    }
                }
                counters.target_kbps.store(u64::from(ctl.effective().bitrate_kbps), Ordering::Relaxed);
            }
        }
        if let Some(e) = encoder.poll_error() {
            return Err(e);
        }
        let now = Instant::now();
        let fps = ctl.rate.fps;
        let keyframe_at = ctl.keyframes.due_at(now);
        let keyframe_due = keyframe_at.is_some_and(|t| t <= now);
        let damaged = cap.wait_for_damage(Duration::ZERO)?;
        if cap.resized() {
            return Ok(Exit::Resized);
        }
        // The pointer is not in the framebuffer: a move or a new shape is a change of the
        // picture only when it is drawn in.
        let cursor = if cursor_in_video { Some(cap.cursor()?) } else { None };
        let cursor_moved = cursor_in_video && cursor != drawn_cursor;
        // Idle, the thread sleeps until damage or a command comes; it wakes by itself only
        // to follow a pointer drawn into the picture, and when a keyframe held back by the
        // rate limit becomes due.
        let mut idle = if cursor_in_video { ctl.rate.frame_time() } else { FOREVER };
        if let Some(at) = keyframe_at.filter(|_| !keyframe_due) {
            idle = idle.min(at - now);
        }
        match schedule.next(now, fps, damaged || keyframe_due || cursor_moved, idle) {
            Next::Capture => {}
            Next::WaitForDamage(d) => {
                let timeout = (d != FOREVER).then_some(d);
                if cap.wait_for_damage_or(timeout, inbox.fd())? {
                    crate::latency_mark!("damage", 0u64);
                    std::thread::sleep(DAMAGE_SETTLE);
                }
                continue;
            }
            Next::Sleep(d) => {
                inbox.sleep(d)?;
                continue;
            }
        }
        // Frames that no QP fits into the bitrate wait for the bucket (a lower frame rate
        // rather than more than the path carries); a keyframe asked for does not.
        let hold = encoder.hold(now);
        if !keyframe_due && hold > Duration::ZERO {
            inbox.sleep(hold)?;
            continue;
        }
        let first = schedule.first;
        crate::latency_mark!("capture", 0u64);
        let mut rects = cap.take_damage(first)?;
        if cursor_moved {
            // Repaint where the pointer was (from the framebuffer) and where it is now.
            rects.extend(drawn_cursor.as_ref().and_then(|c| c.rect(w, h)));
            rects.extend(cursor.as_ref().and_then(|c| c.rect(w, h)));
        }
        let changed_area: u64 = rects.iter().map(|r| u64::from(r.w) * u64::from(r.h)).sum();
        let mut out = pool.checkout(&rects);
        let frame = &mut out.frame;
        let grabbed = cap.grab_all(&out.todo, |r, bgrx| match cursor.as_ref() {
            Some(c) if c.rect(w, h).is_some_and(|cr| overlaps(cr, r)) => {
                scratch.clear();
                scratch.extend_from_slice(bgrx);
                c.blend_into(r, &mut scratch);
                frame.write_bgrx_on(r, &scratch, convert_threads);
            }
            _ => frame.write_bgrx_on(r, bgrx, convert_threads),
        });
        if let Err(e) = grabbed {
            // A shrinking screen can make a damaged rectangle vanish before its
            // ConfigureNotify is read.
            cap.wait_for_damage(Duration::ZERO)?;
            return if cap.resized() { Ok(Exit::Resized) } else { Err(e) };
        }
        let keyframe = first || keyframe_due;
        if keyframe {
            ctl.keyframes.made(now);
        }
        schedule.captured(now, fps, keyframe, changed_area, u64::from(w) * u64::from(h));
        if cursor_in_video {
            drawn_cursor = cursor;
        }
        encoder.push_owned(pool.give(out), now, keyframe, &rects)?;
        counters.frames_captured.fetch_add(1, Ordering::Relaxed);
        counters.limited.store(encoder.limited(now), Ordering::Relaxed);
    }
}

fn overlaps(a: Rect, b: Rect) -> bool {
    a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h
}

/// A viewer's subscription to the video of one codec. Dropping the last one stops the
/// stream.
pub struct VideoSubscription {
    stream: Arc<VideoStream>,
    sub: Subscription<EncodedFrame>,
}

impl VideoSubscription {
    /// The next frame the viewer's decoder can use (see [`Subscription::next_decodable`]):
    /// frames captured more than `max_lag` ago, and deltas after a dropped frame, are dropped
    /// until the next keyframe, which is asked for once per gap. `None` when the stream has
    /// ended (it failed; subscribing again starts a new one). Cancel-safe.
    pub async fn next_decodable(&mut self, max_lag: Duration) -> Option<Arc<EncodedFrame>> {
        self.sub.next_decodable(max_lag).await
    }

    /// The next frame as broadcast, for a consumer that applies the catch-up policy itself.
    pub async fn recv(&mut self) -> Result<Arc<EncodedFrame>, RecvError> {
        self.sub.recv().await
    }

    /// The codec of the frames.
    pub fn codec(&self) -> VideoCodec {
        self.stream.codec()
    }

    /// Asks for a keyframe (the viewer's decoder failed); frames are dropped until it comes.
    pub fn request_keyframe(&mut self) {
        self.sub.request_keyframe();
    }

    /// Asks the stream for a keyframe soon without dropping anything meanwhile (a recording
    /// that wants to start a new file at one); rate-limited like every request.
    pub fn ask_keyframe(&self) {
        self.stream.request_keyframe();
    }

    /// Frames this subscriber dropped or lost so far (cumulative, for metrics).
    pub fn dropped(&self) -> u64 {
        self.sub.dropped()
    }

    /// Keyframe requests its limiter did not pass on at once (cumulative, for metrics).
    pub fn keyframes_refused(&self) -> u64 {
        self.sub.keyframes_refused()
    }

    /// The stream subscribed to.
    pub fn stream(&self) -> &Arc<VideoStream> {
        &self.stream
    }
}

/// Which stream a subscriber joins: one per codec and monitor.
pub type StreamKey = (VideoCodec, Monitor);

/// Chooses encoders and shares one stream per codec and monitor among all viewers.
pub struct VideoSource {
    display: String,
    clock: MediaClock,
    /// The rate streams start with (the last one asked for); a running stream's own rate
    /// lives in its capture thread, which is sent every change.
    rate: Mutex<Rate>,
    threads: u32,
    cursor_in_video: bool,
    delta_frames: bool,
    encoders: Vec<&'static EncoderSpec>,
    /// How many monitors the screen is split into.
    monitors: u32,
    streams: HashMap<StreamKey, LazyBroadcast<VideoStream>>,
    /// Each stream's changed regions, for WebRTC viewers (see [`crate::regions`]).
    regions: HashMap<StreamKey, RegionSender>,
}

impl VideoSource {
    /// Checks the display and the encoders. `encoder` is an element name or `auto`. With
    /// `auto`, the best available H.264 encoder is used, and VP8 for browsers without H.264.
    /// Frames' pts are their capture times on `clock`, the session's media clock.
    pub fn new(
        display: &str,
        encoder: &str,
        settings: EncoderSettings,
        clock: MediaClock,
    ) -> Result<Self, MediaError> {
        crate::encoder::init()?;
        // Fail now, with a clear message, rather than when the first viewer arrives.
        drop(Capturer::open(display)?);
        let encoders: Vec<&'static EncoderSpec> = if encoder == "auto" {
            let mut chosen = Vec::new();
            for codec in [VideoCodec::H264, VideoCodec::Vp8] {
                if let Some(e) =
                    crate::encoder::ENCODERS.iter().find(|e| e.codec == codec && e.is_available())
                {
                    chosen.push(e);
                }
            }
            if chosen.is_empty() {
                return Err(EncoderSpec::by_element("x264")?.missing());
            }
            chosen
        } else {
            let spec = EncoderSpec::by_element(encoder)?;
            if !spec.is_available() {
                return Err(spec.missing());
            }
            vec![spec]
        };
        Ok(Self {
            display: display.to_string(),
            clock,
            rate: Mutex::new(settings.rate()),
            threads: settings.threads,
            cursor_in_video: settings.cursor_in_video,
            delta_frames: settings.delta_frames,
            streams: stream_keys(&encoders, 1).map(|k| (k, LazyBroadcast::new())).collect(),
            regions: stream_keys(&encoders, 1).map(|k| (k, RegionSender::default())).collect(),
            monitors: 1,
            encoders,
        })
    }

    /// Splits the screen into `count` monitors side by side (1 to
    /// [`crate::monitor::MAX_MONITORS`]), each its own stream.
    pub fn with_monitors(mut self, count: u32) -> Result<Self, MediaError> {
        if Monitor::new(0, count).is_none() {
            return Err(MediaError::Config(format!(
                "{count} monitors: a display is 1 or {} monitors",
                crate::monitor::MAX_MONITORS
            )));
        }
        self.monitors = count;
        self.streams = stream_keys(&self.encoders, count).map(|k| (k, LazyBroadcast::new())).collect();
        self.regions = stream_keys(&self.encoders, count).map(|k| (k, RegionSender::default())).collect();
        Ok(self)
    }

    /// How many monitors the screen is split into.
    pub fn monitors(&self) -> u32 {
        self.monitors
    }

    /// Monitor `index` (from 0) of this display; `None` when it has no such monitor.
    pub fn monitor(&self, index: u32) -> Option<Monitor> {
        Monitor::new(index, self.monitors)
    }

    /// Codecs that can be streamed, in order of preference.
    pub fn codecs(&self) -> Vec<VideoCodec> {
        self.encoders.iter().map(|e| e.codec).collect()
    }

    /// The encoder element used for `codec`.
    pub fn encoder_for(&self, codec: VideoCodec) -> Option<&'static str> {
        self.encoders.iter().find(|e| e.codec == codec).map(|e| e.element)
    }

    /// The display served.
    pub fn display(&self) -> &str {
        &self.display
    }

    /// The session's media clock, origin of every frame's pts.
    pub fn clock(&self) -> MediaClock {
        self.clock
    }

    /// Joins the stream for `codec`, starting it if nobody watches yet (or it failed). The
    /// new subscriber's first frame is a keyframe within a frame-time of subscribing to a
    /// running stream: the last keyframe if it is recent (with the frames since: a new one
    /// would be held back by [`KEYFRAME_MIN_INTERVAL`]), else a new one made at once. A new
    /// stream's first frame is a keyframe anyway (it comes once the encoder has started).
    pub fn subscribe(&self, codec: VideoCodec) -> Result<VideoSubscription, MediaError> {
        self.subscribe_limited(codec, None)
    }

    /// [`VideoSource::subscribe`], the subscription's keyframe requests (that for its first
    /// frame included) going through `keyframes` if given (a view-only viewer's: see
    /// [`Subscription::new`]).
    pub fn subscribe_limited(
        &self,
        codec: VideoCodec,
        keyframes: Option<SharedKeyframeLimiter>,
    ) -> Result<VideoSubscription, MediaError> {
        self.subscribe_monitor(codec, 0, keyframes)
    }

    /// [`VideoSource::subscribe_limited`] to the stream of monitor `monitor` (from 0): each
    /// monitor's stream runs only while someone watches it.
    pub fn subscribe_monitor(
        &self,
        codec: VideoCodec,
        monitor: u32,
        keyframes: Option<SharedKeyframeLimiter>,
    ) -> Result<VideoSubscription, MediaError> {
        let Some(monitor) = self.monitor(monitor) else {
            return Err(MediaError::Config(format!(
                "no monitor {}: the display has {} (--monitors)",
                monitor + 1,
                self.monitors
            )));
        };
        let (Some(lazy), Some(spec)) =
            (self.streams.get(&(codec, monitor)), self.encoders.iter().find(|e| e.codec == codec))
        else {
            return Err(MediaError::Config(format!("no encoder for {}", codec.as_str())));
        };
        let rate = *self.rate.lock().unwrap_or_else(|e| e.into_inner());
        let settings = EncoderSettings {
            fps: rate.fps,
            bitrate_kbps: rate.bitrate_kbps,
            threads: self.threads,
            cursor_in_video: self.cursor_in_video,
            delta_frames: self.delta_frames,
        };
        let (stream, sub) = lazy.subscribe(
            || {
                let regions = self.regions.get(&(codec, monitor)).cloned().unwrap_or_default();
                VideoStream::start(&self.display, monitor, spec, settings, self.clock, regions)
            },
            keyframes,
        )?;
        Ok(VideoSubscription { stream, sub })
    }

    /// The changed regions of the frames of the stream of `codec` and monitor `monitor` (from
    /// 0) from now on, running or not yet (see [`crate::regions`]); `None` when there is no such
    /// stream.
    pub fn regions(&self, codec: VideoCodec, monitor: u32) -> Option<RegionReceiver> {
        let monitor = self.monitor(monitor)?;
        self.regions.get(&(codec, monitor)).map(RegionSender::subscribe)
    }

    /// Streams currently running, by codec and monitor.
    pub fn streams(&self) -> Vec<Arc<VideoStream>> {
        let mut keys: Vec<&StreamKey> = self.streams.keys().collect();
        keys.sort_by_key(|(codec, monitor)| (*monitor, codec.as_str()));
        keys.into_iter().filter_map(|k| self.streams[k].running()).collect()
    }

    /// The configured rate (the last one asked for), before the viewers' paths cap it.
    pub fn rate(&self) -> Rate {
        *self.rate.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes bitrate and frame rate of every running stream and of streams started later.
    pub fn set_rate(&self, fps: u32, bitrate_kbps: u32) {
        let rate = Rate::new(fps, bitrate_kbps);
        *self.rate.lock().unwrap_or_else(|e| e.into_inner()) = rate;
        for s in self.streams() {
            s.set_rate(rate);
        }
    }
}

/// The streams a source with `encoders` and `monitors` monitors can run.
fn stream_keys(encoders: &[&'static EncoderSpec], monitors: u32) -> impl Iterator<Item = StreamKey> {
    let codecs: Vec<VideoCodec> = encoders.iter().map(|e| e.codec).collect();
    (0..monitors).flat_map(move |i| {
        let m = Monitor::new(i, monitors).expect("checked by the caller");
        codecs.clone().into_iter().map(move |c| (c, m))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_codec_has_a_stream_per_monitor() {
        let h264 = EncoderSpec::by_element("x264").unwrap();
        let keys: Vec<StreamKey> = stream_keys(&[h264], 2).collect();
        let (left, right) = (Monitor::new(0, 2).unwrap(), Monitor::new(1, 2).unwrap());
        assert_eq!(keys, [(VideoCodec::H264, left), (VideoCodec::H264, right)]);
        let one: Vec<StreamKey> = stream_keys(&[h264], 1).collect();
        assert_eq!(one, [(VideoCodec::H264, Monitor::WHOLE)]);
    }

    /// How long the schedule tests let the loop wait while idle (a stand-in for "until
    /// something happens", which simulated time cannot run to).
    const IDLE_POLL: Duration = Duration::from_millis(50);

    const FRAME: Duration = Duration::from_nanos(16_666_667);

    /// Drives the pacer with damage at `draws` (offsets from the start) and returns when each
    /// capture happened: the first moment at or after the damage that the pacer allows.
    fn captures(draws: &[Duration], fps: u32) -> Vec<Duration> {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0);
        let mut out = Vec::new();
        for &d in draws {
            let at = t0 + d;
            if out.last().is_some_and(|&c| c >= d) {
                // Damage drawn before the last capture was taken was part of it.
                continue;
            }
            let ready = p.ready_at(at, fps).max(at);
            p.capture(ready, fps);
            out.push(ready - t0);
        }
        out
    }

    #[test]
    fn captures_follow_damage_at_the_frame_rate() {
        // An application drawing at exactly the capture rate, 5 ms after some grid: every
        // capture happens as its damage arrives, whatever the phase.
        let draws: Vec<Duration> = (0..120).map(|i| FRAME * i + Duration::from_millis(5)).collect();
        assert_eq!(captures(&draws, 60), draws);
        // Jitter of a millisecond either way does not push captures behind the damage.
        let jittered: Vec<Duration> = (0..120u32)
            .map(|i| FRAME * (i + 1) + Duration::from_micros(if i % 2 == 0 { 1000 } else { 0 }))
            .collect();
        assert_eq!(captures(&jittered, 60), jittered);
    }

    #[test]
    fn faster_damage_is_limited_to_the_frame_rate() {
        // Damage every 4 ms (250 Hz) for two seconds at 60 fps: about 120 captures, never two
        // within half a frame-time.
        let draws: Vec<Duration> = (0..500).map(|i| Duration::from_millis(4 * i)).collect();
        let distinct = captures(&draws, 60);
        let within = distinct.iter().filter(|&&c| c < Duration::from_secs(2)).count();
        assert!((119..=125).contains(&within), "{within} captures in 2 s");
        for w in distinct.windows(2) {
            assert!(w[1] - w[0] >= FRAME / 2, "{w:?}");
        }
    }

    #[test]
    fn credit_does_not_pile_up_while_idle() {
        // After a long idle spell, damage every millisecond: the second capture may come half
        // a frame-time after the first, then the rate is back to one per frame-time.
        let draws: Vec<Duration> =
            (0..1000).map(|i| Duration::from_secs(10) + Duration::from_millis(i)).collect();
        let t = captures(&draws, 60);
        assert_eq!(t[0], Duration::from_secs(10));
        assert!(t[1] - t[0] >= FRAME / 2 && t[1] - t[0] < FRAME, "{:?}", t[1] - t[0]);
        // Nine more captures at the refill rate (the frame rate plus its slack).
        let nine = Duration::from_secs_f64(9.0 / Pacer::rate(60));
        assert!(t[10] - t[0] + Duration::from_micros(1) >= nine, "{:?}", t[10] - t[0]);
        assert!((58..=64).contains(&t.len()), "{} captures in a second", t.len());
    }

    #[test]
    fn credit_spent_on_extra_captures_comes_back_for_an_application_at_the_frame_rate() {
        // An application drawing at exactly 60 fps; twice, a frame of it arrives in two parts
        // (a second damage half a frame-time later), and each extra capture spends a frame of
        // credit. Within a second captures follow its damage again instead of waiting for
        // credit on a grid of their own.
        let mut draws: Vec<Duration> = (0..240u32).map(|i| FRAME * i).collect();
        draws.push(FRAME * 60 + FRAME * 6 / 10);
        draws.push(FRAME * 70 + FRAME * 6 / 10);
        draws.sort();
        let caps = captures(&draws, 60);
        let late: Vec<(Duration, Duration)> = draws
            .iter()
            .filter(|&&d| d >= Duration::from_secs(3))
            .map(|&d| (d, caps.iter().copied().find(|&c| c >= d).unwrap_or(Duration::MAX)))
            .filter(|&(d, c)| c - d > Duration::from_micros(100))
            .collect();
        assert!(late.is_empty(), "captures behind their damage: {late:?}");
    }

    /// Runs the schedule against an application that draws full-screen frames at `draws`
    /// (offsets from the start), on simulated time, until `until`. Returns each capture's
    /// time and whether it carried a change.
    fn schedule_run(draws: &[Duration], until: Duration) -> Vec<(Duration, bool)> {
        const SCREEN: u64 = 1920 * 1080;
        let t0 = Instant::now();
        let mut s = Schedule::new(t0);
        let mut t = Duration::ZERO;
        let mut taken = 0; // draws already captured
        let mut out = Vec::new();
        while t < until {
            let pending = draws[taken..].iter().take_while(|&&d| d <= t).count();
            match s.next(t0 + t, 60, pending > 0, IDLE_POLL) {
                Next::Capture => {
                    taken += pending;
                    // The first capture takes the whole screen, as a keyframe.
                    let first = out.is_empty();
                    let changed = first || pending > 0;
                    s.captured(t0 + t, 60, first, if changed { SCREEN } else { 0 }, SCREEN);
                    out.push((t, changed));
                    // Grabbing and converting take a while.
                    t += Duration::from_millis(2);
                }
                Next::WaitForDamage(d) => {
                    // Woken by the next draw (plus the settle time), or the timeout.
                    t = match draws.get(taken) {
                        Some(&n) if n <= t + d => n.max(t) + DAMAGE_SETTLE,
                        _ => t + d,
                    };
                }
                Next::Sleep(d) => t += d,
            }
        }
        out
    }

    #[test]
    fn motion_is_captured_as_drawn_and_refined_once_it_stops() {
        // An application drawing at 59.8 fps for two seconds, then still.
        let period = Duration::from_secs_f64(1.0 / 59.8);
        let draws: Vec<Duration> = (1..=119).map(|i| period * i).collect();
        let last = *draws.last().unwrap();
        let caps = schedule_run(&draws, Duration::from_secs(3));
        // Every frame drawn is captured on its own, right after its damage arrives: no
        // capture of an unchanged screen in between takes the slot it needs.
        let changed: Vec<Duration> = caps.iter().filter(|c| c.1).map(|c| c.0).skip(1).collect();
        assert_eq!(changed.len(), draws.len(), "{caps:?}");
        for (c, d) in changed.iter().zip(&draws) {
            assert!(*c >= *d && *c - *d <= DAMAGE_SETTLE, "drawn at {d:?}, captured at {c:?}");
        }
        // Once it stops: refinement frames, the first two frame-times after the last change,
        // then nothing more.
        let refine: Vec<Duration> = caps.iter().filter(|c| !c.1).map(|c| c.0).collect();
        assert_eq!(refine.len(), 6, "{refine:?}");
        assert!(refine[0] >= last + FRAME * 2, "{refine:?}");
        assert!(refine[5] < last + FRAME * 9, "{refine:?}");
    }

    #[test]
    fn keyframes_are_rate_limited_and_a_held_back_one_is_due_when_the_limit_ends() {
        let t0 = Instant::now();
        let mut k = Keyframes::default();
        assert_eq!(k.due_at(t0), None, "none asked for");
        k.wanted = true;
        assert_eq!(k.due_at(t0), Some(t0), "the first is due at once");
        k.made(t0);
        assert_eq!(k.due_at(t0), None);
        // Asked for 100 ms after the last: due 250 ms after it, not before.
        k.wanted = true;
        let t = t0 + Duration::from_millis(100);
        assert_eq!(k.due_at(t), Some(t0 + KEYFRAME_MIN_INTERVAL));
        // Asked for a second after the last: due at once.
        let t = t0 + Duration::from_secs(1);
        assert_eq!(k.due_at(t), Some(t));
    }

    #[test]
    fn an_idle_schedule_waits_for_as_long_as_it_is_told() {
        // Nothing pending and nothing to refine: the loop waits "forever" (for damage or a
        // command), never on a polling period of its own.
        let t0 = Instant::now();
        let mut s = Schedule::new(t0);
        s.captured(t0, 60, true, 1920 * 1080, 1920 * 1080);
        s.refine_left = 0;
        let t = t0 + Duration::from_secs(1);
        assert_eq!(s.next(t, 60, false, FOREVER), Next::WaitForDamage(FOREVER));
    }

    #[test]
    fn a_lone_small_change_gets_one_follow_up_frame() {
        let t0 = Instant::now();
        let mut s = Schedule::new(t0);
        assert_eq!(s.next(t0, 60, false, IDLE_POLL), Next::Capture, "the first frame is taken at once");
        s.captured(t0, 60, true, 1920 * 1080, 1920 * 1080);
        // A second later, refinement long done, a clock's digits change.
        s.refine_left = 0;
        let t = t0 + Duration::from_secs(1);
        let frame = Duration::from_secs(1) / 60;
        assert_eq!(s.next(t, 60, false, IDLE_POLL), Next::WaitForDamage(IDLE_POLL));
        assert_eq!(s.next(t, 60, true, IDLE_POLL), Next::Capture);
        s.captured(t, 60, false, 928 * 16, 1920 * 1080);
        // The follow-up comes once the screen has been still for two frame-times.
        assert_eq!(s.next(t + frame, 60, false, IDLE_POLL), Next::WaitForDamage(frame));
        assert_eq!(s.next(t + frame * 2, 60, false, IDLE_POLL), Next::Capture);
        s.captured(t + frame * 2, 60, false, 0, 1920 * 1080);
        assert_eq!(s.next(t + frame * 3, 60, false, IDLE_POLL), Next::WaitForDamage(IDLE_POLL));
    }
}
