//! Encoders: libx264 driven directly ([`crate::x264`], the default without a GPU), or a
//! GStreamer pipeline with I420 frames pushed straight into `encoder → appsink`.
//!
//! Knows which encoders exist, which Debian package provides each, and the low-latency
//! settings for each (why these: docs/design/encoder.md). It receives raw frames and hands out
//! encoded access units; it never touches X or the network.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use kelpie_protocol::VideoCodec;

use crate::capture::Rect;
use crate::clock::MediaClock;
use crate::pipeline::{bus_error, element, launch};
use crate::ratecontrol::RateControl;
use crate::x264::X264;
use crate::{GstCause, MediaError};

/// The Debian package with the libx264 that `--encoder x264` loads.
pub const X264_PACKAGE: &str = "libx264-164";

/// How Kelpie drives an encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A GStreamer element.
    GStreamer,
    /// libx264, called directly, with Kelpie's own rate control.
    Libx264,
}

/// One encoder Kelpie knows how to drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncoderSpec {
    /// The value of `--encoder`: a GStreamer element name, or `x264`.
    pub element: &'static str,
    /// How it is driven.
    pub backend: Backend,
    /// The codec it produces.
    pub codec: VideoCodec,
    /// The Debian package that provides the element.
    pub package: &'static str,
    /// A device node the element needs, if it drives hardware.
    pub device: Option<&'static str>,
}

/// Every encoder, in the order `--encoder auto` tries them: GPUs first, then software.
pub const ENCODERS: &[EncoderSpec] = &[
    EncoderSpec {
        element: "nvh264enc",
        backend: Backend::GStreamer,
        codec: VideoCodec::H264,
        package: "gstreamer1.0-plugins-bad (and the NVIDIA driver)",
        device: Some("/dev/nvidiactl"),
    },
    EncoderSpec {
        element: "vah264enc",
        backend: Backend::GStreamer,
        codec: VideoCodec::H264,
        package: "gstreamer1.0-plugins-bad (and a VA-API driver)",
        device: Some("/dev/dri/renderD128"),
    },
    EncoderSpec {
        element: "x264",
        backend: Backend::Libx264,
        codec: VideoCodec::H264,
        package: X264_PACKAGE,
        device: None,
    },
    EncoderSpec {
        element: "x264enc",
        backend: Backend::GStreamer,
        codec: VideoCodec::H264,
        package: "gstreamer1.0-plugins-ugly",
        device: None,
    },
    EncoderSpec {
        element: "openh264enc",
        backend: Backend::GStreamer,
        codec: VideoCodec::H264,
        package: "gstreamer1.0-plugins-bad",
        device: None,
    },
    EncoderSpec {
        element: "vp8enc",
        backend: Backend::GStreamer,
        codec: VideoCodec::Vp8,
        package: "gstreamer1.0-plugins-good",
        device: None,
    },
];

/// Initialises GStreamer once; safe to call repeatedly.
pub fn init() -> Result<(), MediaError> {
    gst::init().map_err(MediaError::GstInit)
}

impl EncoderSpec {
    /// Looks up an encoder by its element name.
    pub fn by_element(name: &str) -> Result<&'static Self, MediaError> {
        ENCODERS.iter().find(|e| e.element == name).ok_or_else(|| {
            let names: Vec<_> = ENCODERS.iter().map(|e| e.element).collect();
            MediaError::Config(format!(
                "unknown encoder '{name}'; choose auto or one of: {}",
                names.join(", ")
            ))
        })
    }

    /// Whether the encoder is installed (and its device present).
    pub fn is_available(&self) -> bool {
        self.device.is_none_or(|d| std::path::Path::new(d).exists())
            && match self.backend {
                Backend::GStreamer => gst::ElementFactory::find(self.element).is_some(),
                Backend::Libx264 => crate::x264::available(),
            }
    }

    /// An error that says which package to install.
    pub fn missing(&self) -> MediaError {
        MediaError::MissingElement { element: self.element.to_string(), package: self.package.to_string() }
    }

    fn launch_fragment(&self, s: &EncoderSettings) -> String {
        // No periodic keyframes: keyframes come at start and on request only.
        const NEVER: u32 = 1 << 30;
        let kbps = s.bitrate_kbps;
        let threads = s.slice_threads();
        match self.element {
            "x264enc" => {
                // CBR with a VBV of about 1.5 frame-times; sliced threads keep latency at one frame.
                // QP no lower than libx264's rate control goes (ratecontrol::QP_MIN): below it
                // x264 spends bits, and time, on detail no one sees.
                let vbv_ms = (1500 / s.fps.max(1)).max(10);
                let qp_min = crate::ratecontrol::QP_MIN;
                format!(
                    "x264enc name=enc speed-preset=ultrafast tune=zerolatency bitrate={kbps} \
                     vbv-buf-capacity={vbv_ms} key-int-max={NEVER} bframes=0 b-adapt=false qp-min={qp_min} \
                     sliced-threads=true threads={threads} byte-stream=true insert-vui=true \
                     ! video/x-h264,profile=constrained-baseline,stream-format=byte-stream,alignment=au"
                )
            }
            "openh264enc" => format!(
                "openh264enc name=enc usage-type=screen complexity=low rate-control=bitrate \
                 bitrate={} gop-size={NEVER} multi-thread={threads} \
                 ! video/x-h264,stream-format=byte-stream,alignment=au",
                kbps * 1000
            ),
            "nvh264enc" => format!(
                "nvh264enc name=enc preset=low-latency-hq rc-mode=cbr bitrate={kbps} gop-size=-1 \
                 zerolatency=true bframes=0 rc-lookahead=0 aud=false \
                 ! video/x-h264,profile=constrained-baseline,stream-format=byte-stream,alignment=au"
            ),
            "vah264enc" => format!(
                "vah264enc name=enc rate-control=cbr bitrate={kbps} key-int-max=0 ref-frames=1 \
                 num-slices=4 b-frames=0 \
                 ! video/x-h264,profile=constrained-baseline,stream-format=byte-stream,alignment=au"
            ),
            "vp8enc" => format!(
                "vp8enc name=enc deadline=1 cpu-used=16 end-usage=cbr target-bitrate={} \
                 lag-in-frames=0 keyframe-mode=disabled threads={threads} \
                 buffer-size=100 buffer-initial-size=50 buffer-optimal-size=80 \
                 error-resilient=default ! video/x-vp8",
                kbps * 1000
            ),
            other => unreachable!("encoder {other} has no pipeline"),
        }
    }

    fn set_bitrate(&self, enc: &gst::Element, kbps: u32) {
        match self.element {
            "openh264enc" | "vp8enc" => {
                let name = if self.element == "vp8enc" { "target-bitrate" } else { "bitrate" };
                if self.element == "vp8enc" {
                    enc.set_property(name, (kbps * 1000) as i32);
                } else {
                    enc.set_property(name, kbps * 1000);
                }
            }
            _ => enc.set_property("bitrate", kbps),
        }
    }
}

/// Frame rate and bitrate: the settings that change while streaming. Each running stream's
/// capture thread owns its current `Rate` and changes it only by command
/// ([`crate::VideoStream::set_rate`]); the encoder is told of a change once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Target frame rate, 1 to 240.
    pub fps: u32,
    /// Target bitrate in kbit/s, at least 100.
    pub bitrate_kbps: u32,
}

impl Rate {
    /// A rate, held to what the encoders accept.
    pub fn new(fps: u32, bitrate_kbps: u32) -> Self {
        Self { fps: fps.clamp(1, 240), bitrate_kbps: bitrate_kbps.max(100) }
    }

    /// One frame-time.
    pub fn frame_time(&self) -> Duration {
        Duration::from_secs(1) / self.fps.max(1)
    }
}

/// Encoder settings a stream starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncoderSettings {
    /// Target frame rate.
    pub fps: u32,
    /// Target bitrate in kbit/s.
    pub bitrate_kbps: u32,
    /// Encoder threads (capped at 4: Chromium misbehaves with more slices).
    pub threads: u32,
    /// Draw the pointer into the picture (instead of the browser drawing it).
    pub cursor_in_video: bool,
    /// libx264: code small changes as Kelpie's own delta frames (see [`crate::delta`]).
    pub delta_frames: bool,
}

impl EncoderSettings {
    /// Frame rate and bitrate.
    pub fn rate(&self) -> Rate {
        Rate::new(self.fps, self.bitrate_kbps)
    }

    /// Threads a software encoder gets: 1 to 4, one slice each.
    fn slice_threads(&self) -> u32 {
        self.threads.clamp(1, 4)
    }
}

/// One encoded access unit.
#[derive(Debug)]
pub struct EncodedFrame {
    /// H.264 Annex-B access unit or VP8 frame.
    pub data: Arc<[u8]>,
    /// Presentation time: the capture time on the session's [`MediaClock`], so continuous
    /// across resizes and encoder restarts, and comparable with audio frames' pts.
    pub pts: Duration,
    /// When the frame was captured.
    pub captured: Instant,
    /// Whether the frame can be decoded on its own.
    pub keyframe: bool,
    /// Whether it is one of Kelpie's delta frames (see [`crate::delta`]): no frame after it
    /// refers to it.
    pub delta: bool,
    /// Size of the picture.
    pub width: u32,
    /// Size of the picture.
    pub height: u32,
    /// What of the picture differs from the frame before it, where the encoder knows (Kelpie's
    /// x264 driver, delta frames); `None`: anything may have changed.
    pub changed: Option<ChangedRegion>,
}

/// Where a delta frame's decoded picture differs from the frame before it in the stream: a
/// viewer that shows that frame redraws only these rectangles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedRegion {
    /// The pts of the frame before it: outside `rects` this frame's picture is that one's, bit
    /// for bit.
    pub after: Duration,
    /// Rectangles on the macroblock grid, in pixels of the picture, at most
    /// [`crate::skipmap::MAX_CHANGED_RECTS`]; none when nothing changed.
    pub rects: Vec<Rect>,
}

impl crate::broadcast::Decodable for EncodedFrame {
    fn captured(&self) -> Instant {
        self.captured
    }

    fn decodable_alone(&self) -> bool {
        self.keyframe
    }
}

/// A running encoder, owned by the thread that feeds it.
pub struct Encoder {
    spec: &'static EncoderSpec,
    clock: MediaClock,
    width: u32,
    height: u32,
    inner: Inner,
}

/// The encoder proper, by backend.
enum Inner {
    Gst(GstEncoder),
    /// Boxed: the rate control's memory is a few kilobytes.
    X264(Box<X264Encoder>),
}

/// A GStreamer pipeline `encoder → appsink`.
struct GstEncoder {
    pipeline: gst::Pipeline,
    /// Our source pad, linked to the encoder's sink pad: a frame pushed on it is encoded in
    /// the pushing (capture) thread.
    src: gst::Pad,
    enc: gst::Element,
    capture_caps: gst::Caps,
}

/// libx264 and the rate control that picks each frame's QP.
struct X264Encoder {
    x264: X264,
    /// Whether small changes are coded as delta frames (kept across reopenings of x264).
    deltas: bool,
    rate: RateControl,
    /// Frames in a row that wanted a QP outside the encoder's range.
    outside: u32,
    /// Frame rate and slice threads to open x264 with (the bitrate is the rate control's).
    fps: u32,
    threads: u32,
    /// The pts of the frame encoded last, which the next one's changed region refers to.
    last_pts: Option<Duration>,
    sink: Box<dyn FnMut(EncodedFrame) + Send>,
}

/// Frames in a row that must want a QP above 51 before the encoder is reopened with the
/// high QP range (noise that no QP of H.264 fits into the bitrate).
const TO_HIGH_RANGE: u32 = 3;
/// Frames in a row that must want a QP under the high range before the encoder goes back
/// (each reopening costs a keyframe).
const TO_LOW_RANGE: u32 = 30;

/// Names the reference timestamp that carries capture time through the encoder.
const CAPTURE_CAPS: &str = "timestamp/x-kelpie-capture";

impl Encoder {
    /// Starts an encoder for `width` x `height` I420 frames. `sink` gets every encoded
    /// frame, in the thread that pushed it; frames' pts are their capture times on `clock`.
    pub fn start(
        spec: &'static EncoderSpec,
        width: u32,
        height: u32,
        settings: EncoderSettings,
        clock: MediaClock,
        sink: impl Fn(EncodedFrame) + Send + Sync + 'static,
    ) -> Result<Self, MediaError> {
        if spec.backend == Backend::GStreamer {
            init()?;
        }
        if !spec.is_available() {
            return Err(spec.missing());
        }
        let inner = match spec.backend {
            Backend::Libx264 => Inner::X264(Box::new(X264Encoder {
                x264: open_x264(
                    width,
                    height,
                    settings.fps,
                    settings.slice_threads(),
                    crate::x264::QP_LOW_RANGE,
                    settings.delta_frames,
                )?,
                deltas: settings.delta_frames,
                rate: RateControl::new(settings.bitrate_kbps, settings.fps),
                outside: 0,
                fps: settings.fps,
                threads: settings.slice_threads(),
                last_pts: None,
                sink: Box::new(sink),
            })),
            Backend::GStreamer => Inner::Gst(GstEncoder::start(spec, width, height, settings, clock, sink)?),
        };
        Ok(Self { spec, clock, width, height, inner })
    }

    /// The encoder in use.
    pub fn spec(&self) -> &'static EncoderSpec {
        self.spec
    }

    /// Frame size this encoder was built for.
    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// Encodes one raw I420 frame captured at `captured` (returning once the encoder has
    /// handed out what it made of it); if `keyframe`, the encoder is told to make it a
    /// keyframe with SPS/PPS. `changed` covers every pixel that changed since the frame
    /// before (rectangles may overlap): the rate control sizes the frame by their area, and
    /// libx264 skips the macroblocks they leave alone without analysing them.
    pub fn push(
        &mut self,
        i420: &[u8],
        captured: Instant,
        keyframe: bool,
        changed: &[Rect],
    ) -> Result<(), MediaError> {
        let (w, h, clock) = (self.width, self.height, self.clock);
        match &mut self.inner {
            Inner::X264(x) => x.encode(w, h, clock, i420, captured, keyframe, changed),
            Inner::Gst(g) => g.push(self.spec, clock, i420.to_vec(), captured, keyframe),
        }
    }

    /// As [`Encoder::push`], handing the frame's memory over without a copy; it is dropped
    /// once the encoder is done with it.
    pub fn push_owned(
        &mut self,
        mut i420: impl AsMut<[u8]> + Send + 'static,
        captured: Instant,
        keyframe: bool,
        changed: &[Rect],
    ) -> Result<(), MediaError> {
        let (w, h, clock) = (self.width, self.height, self.clock);
        match &mut self.inner {
            // x264 copies the picture in; the frame goes back to its pool right after.
            Inner::X264(x) => x.encode(w, h, clock, i420.as_mut(), captured, keyframe, changed),
            Inner::Gst(g) => g.push(self.spec, clock, i420, captured, keyframe),
        }
    }

    /// Changes the target bitrate and the frame rate it is shared among (GStreamer encoders
    /// keep the frame rate they started with).
    pub fn set_rate(&mut self, rate: Rate) {
        match &mut self.inner {
            Inner::X264(x) => {
                x.rate.set_bitrate(rate.bitrate_kbps);
                x.rate.set_fps(rate.fps);
                x.fps = rate.fps;
            }
            Inner::Gst(g) => self.spec.set_bitrate(&g.enc, rate.bitrate_kbps),
        }
    }

    /// Whether the bitrate held the picture back lately (see [`RateControl::limited`]);
    /// GStreamer encoders keep their own rate and never say so.
    pub fn limited(&self, now: Instant) -> bool {
        match &self.inner {
            Inner::X264(x) => x.rate.limited(now),
            Inner::Gst(_) => false,
        }
    }

    /// How long the next frame should wait for the rate control (see
    /// [`RateControl::hold`]); GStreamer encoders keep their own rate and never hold.
    pub fn hold(&self, now: Instant) -> Duration {
        match &self.inner {
            Inner::X264(x) => x.rate.hold(now),
            Inner::Gst(_) => Duration::ZERO,
        }
    }

    /// Returns the first error the pipeline posted, if any.
    pub fn poll_error(&self) -> Option<MediaError> {
        match &self.inner {
            Inner::X264(_) => None,
            Inner::Gst(g) => g.poll_error(self.spec),
        }
    }
}

impl X264Encoder {
    #[allow(clippy::too_many_arguments)]
    fn encode(
        &mut self,
        width: u32,
        height: u32,
        clock: MediaClock,
        i420: &[u8],
        captured: Instant,
        keyframe: bool,
        changed_rects: &[Rect],
    ) -> Result<(), MediaError> {
        let Self { x264, deltas, rate, outside, fps, threads, last_pts, sink } = self;
        let total = u64::from(width) * u64::from(height);
        let changed: u64 = changed_rects.iter().map(|r| u64::from(r.w) * u64::from(r.h)).sum();
        let mut plan = rate.plan(captured, keyframe, changed, total);
        let mut keyframe = keyframe;
        // One x264 encoder takes QPs from a range 40 wide: 11-51 for desktop content, 29-69
        // for content that fits the bitrate only in x264's emergency range. Switching means
        // a new encoder, so a keyframe.
        let range = x264.qp_range();
        let high = *range.start() == crate::x264::QP_HIGH_RANGE;
        if range.contains(&plan.qp) {
            *outside = 0;
        } else {
            *outside += 1;
        }
        if *outside >= if high { TO_LOW_RANGE } else { TO_HIGH_RANGE } || high && plan.starts_trial() {
            let qp_low = if high { crate::x264::QP_LOW_RANGE } else { crate::x264::QP_HIGH_RANGE };
            *x264 = open_x264(width, height, *fps, *threads, qp_low, *deltas)?;
            *outside = 0;
            keyframe = true;
            if !plan.starts_trial() {
                plan = rate.plan(captured, true, changed, total);
            }
            tracing::debug!(qp = plan.qp, qp_low, "x264 reopened for another QP range");
        }
        let range = x264.qp_range();
        plan.qp = plan.qp.clamp(*range.start(), *range.end());
        let first = x264.encode(i420, plan.qp, keyframe, Some(changed_rects))?;
        let out = match rate.redo(plan, first.data.len(), total) {
            None => first,
            Some(redo) => {
                // Far over the bitrate (new content, guessed far cheaper than it is): the
                // same picture again as a keyframe at a QP that fits, in whichever range
                // holds that QP. The frame made first is not sent.
                tracing::debug!(
                    bytes = first.data.len(),
                    qp = plan.qp,
                    again = redo.qp,
                    "frame far over the bitrate made again"
                );
                if !x264.qp_range().contains(&redo.qp) {
                    let qp_low = if redo.qp > crate::ratecontrol::QP_SPEC_MAX {
                        crate::x264::QP_HIGH_RANGE
                    } else {
                        crate::x264::QP_LOW_RANGE
                    };
                    *x264 = open_x264(width, height, *fps, *threads, qp_low, *deltas)?;
                    *outside = 0;
                }
                plan = redo;
                let range = x264.qp_range();
                plan.qp = plan.qp.clamp(*range.start(), *range.end());
                x264.encode(i420, plan.qp, true, Some(changed_rects))?
            }
        };
        rate.encoded(plan, out.data.len());
        tracing::trace!(qp = plan.qp, kind = ?plan.kind, bits = out.data.len() * 8, target = rate.bitrate(), "frame encoded");
        if out.data.is_empty() {
            *last_pts = None;
            return Ok(());
        }
        let pts = clock.pts(captured);
        let changed = match (out.changed, *last_pts) {
            (Some(rects), Some(after)) if !out.keyframe => Some(ChangedRegion { after, rects }),
            _ => None,
        };
        *last_pts = Some(pts);
        sink(EncodedFrame {
            data: Arc::from(out.data),
            pts,
            captured,
            keyframe: out.keyframe,
            delta: out.delta,
            width,
            height,
            changed,
        });
        Ok(())
    }
}

/// An x264 encoder for QPs from `qp_low` (a range 40 wide), writing Kelpie's delta frames
/// for small changes if `deltas`: every encoder a stream opens, at its start and when its QP
/// range changes, keeps the stream's `--delta-frames` choice.
fn open_x264(
    width: u32,
    height: u32,
    fps: u32,
    threads: u32,
    qp_low: u8,
    deltas: bool,
) -> Result<X264, MediaError> {
    let mut x264 = X264::open(width, height, fps, threads, qp_low)?;
    x264.set_deltas(deltas);
    Ok(x264)
}

impl GstEncoder {
    fn start(
        spec: &'static EncoderSpec,
        width: u32,
        height: u32,
        settings: EncoderSettings,
        clock: MediaClock,
        sink: impl Fn(EncodedFrame) + Send + Sync + 'static,
    ) -> Result<Self, MediaError> {
        // Frames are pushed into the encoder from the capture thread and encoded right there,
        // output included: no hand-over to a streaming thread that the scheduler may wake
        // late (with `appsrc`, one push in ten waited 2-3 ms for that thread on a busy
        // 2-core machine). The capture simply waits for the encoder: a frame is never
        // converted only to be dropped, and none is lost (a dropped keyframe or the last
        // frame of a change would leave a viewer without a picture); when the encoder falls
        // behind, captures come less often and each carries the newest picture.
        let desc = format!(
            "{enc} ! appsink name=sink sync=false async=false max-buffers=8 drop=false",
            enc = spec.launch_fragment(&settings),
        );
        let pipeline = launch(&desc, spec.element)?;
        let appsink: gst_app::AppSink = element(&pipeline, "sink")?;
        let enc: gst::Element = element(&pipeline, "enc")?;
        let src = gst::Pad::builder(gst::PadDirection::Src).name("kelpie-frames").build();
        let failed = |e: GstCause| MediaError::pipeline(spec.element, e);
        let enc_sink = enc.static_pad("sink").ok_or_else(|| {
            failed(GstCause::Missing(format!("the {} element has no sink pad", spec.element)))
        })?;
        src.link(&enc_sink).map_err(|e| failed(e.into()))?;
        src.set_active(true).map_err(|e| failed(e.into()))?;
        appsink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |s| {
                    let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let buffer = sample.buffer().ok_or(gst::FlowError::Error)?;
                    let map = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
                    // Encoders may shift timestamps (x264enc adds an offset so DTS stays
                    // positive); the capture time rides along as a reference-timestamp meta.
                    let pts = buffer
                        .iter_meta::<gst::ReferenceTimestampMeta>()
                        .find(|m| m.reference().structure(0).is_some_and(|s| s.name() == CAPTURE_CAPS))
                        .map(|m| m.timestamp())
                        .or(buffer.pts())
                        .map(|t| Duration::from_nanos(t.nseconds()))
                        .unwrap_or_default();
                    sink(EncodedFrame {
                        data: Arc::from(map.as_slice()),
                        pts,
                        captured: clock.instant(pts),
                        keyframe: !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT),
                        delta: false,
                        width,
                        height,
                        changed: None,
                    });
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        let not_started =
            |p: &gst::Pipeline, e: GstCause| MediaError::pipeline(spec.element, bus_error(p).unwrap_or(e));
        pipeline.set_state(gst::State::Playing).map_err(|e| not_started(&pipeline, e.into()))?;
        let caps = gst::Caps::builder("video/x-raw")
            .field("format", "I420")
            .field("width", width as i32)
            .field("height", height as i32)
            .field("framerate", gst::Fraction::new(settings.fps.max(1) as i32, 1))
            .field("colorimetry", "bt601")
            .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
            .build();
        let segment = gst::FormattedSegment::<gst::ClockTime>::new();
        for ev in [
            gst::event::StreamStart::new("kelpie-video"),
            gst::event::Caps::new(&caps),
            gst::event::Segment::new(&segment),
        ] {
            if !src.push_event(ev) {
                let e =
                    not_started(&pipeline, GstCause::Missing("the encoder refused its stream's caps".into()));
                let _ = pipeline.set_state(gst::State::Null);
                return Err(e);
            }
        }
        Ok(Self { pipeline, src, enc, capture_caps: gst::Caps::new_empty_simple(CAPTURE_CAPS) })
    }

    fn push(
        &mut self,
        spec: &EncoderSpec,
        clock: MediaClock,
        i420: impl AsMut<[u8]> + Send + 'static,
        captured: Instant,
        keyframe: bool,
    ) -> Result<(), MediaError> {
        let pts = gst::ClockTime::from_nseconds(clock.pts(captured).as_nanos() as u64);
        if keyframe {
            // Sent upstream into the encoder's source pad: it applies to the next frame the
            // encoder takes, this one.
            let ev = gstreamer_video::UpstreamForceKeyUnitEvent::builder().all_headers(true).build();
            if let Some(pad) = self.enc.static_pad("src") {
                pad.send_event(ev);
            }
        }
        let mut buffer = gst::Buffer::from_mut_slice(i420);
        {
            let b = buffer.get_mut().expect("new buffer is writable");
            b.set_pts(pts);
            gst::ReferenceTimestampMeta::add(b, &self.capture_caps, pts, gst::ClockTime::NONE);
        }
        self.src
            .push(buffer)
            .map(|_| ())
            .map_err(|e| MediaError::pipeline(spec.element, bus_error(&self.pipeline).unwrap_or(e.into())))
    }

    /// Returns the first error the pipeline posted, if any.
    fn poll_error(&self, spec: &EncoderSpec) -> Option<MediaError> {
        bus_error(&self.pipeline).map(|e| MediaError::pipeline(spec.element, e))
    }
}

impl Drop for GstEncoder {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// The whole of the tests' 320x240 picture.
    const FULL: Rect = Rect { x: 0, y: 0, w: 320, h: 240 };

    /// The encoder tests' pictures start right after their clock's epoch.
    fn clock() -> MediaClock {
        MediaClock::new()
    }

    #[test]
    fn every_encoder_names_its_package() {
        for e in ENCODERS {
            assert!(e.missing().to_string().contains(e.package), "{}", e.element);
        }
        assert!(EncoderSpec::by_element("nope").is_err());
    }

    fn encode_frames(element: &str, frames: usize) -> Vec<(bool, usize, Duration)> {
        init().unwrap();
        let spec = EncoderSpec::by_element(element).unwrap();
        assert!(spec.is_available(), "{element} must be installed for this test ({})", spec.package);
        let out = Arc::new(Mutex::new(Vec::new()));
        let o = out.clone();
        let settings = EncoderSettings {
            fps: 30,
            bitrate_kbps: 2000,
            threads: 2,
            cursor_in_video: false,
            delta_frames: true,
        };
        let mut enc = Encoder::start(spec, 320, 240, settings, clock(), move |f| {
            o.lock().unwrap().push((f.keyframe, f.data.len(), f.pts))
        })
        .unwrap();
        let mut frame = crate::convert::I420Frame::new(320, 240);
        let t0 = Instant::now();
        for i in 0..frames {
            let shade = (i * 20 % 255) as u8;
            let px: Vec<u8> = (0..320 * 240).flat_map(|_| [shade, 255 - shade, 80, 0]).collect();
            frame.write_bgrx(crate::capture::Rect { x: 0, y: 0, w: 320, h: 240 }, &px);
            let ts = t0 + Duration::from_millis(33 * i as u64);
            enc.push(frame.as_bytes(), ts, i == 0 || i == frames - 2, &[FULL]).unwrap();
            // Encoding happens within the push: the frame's output is already out.
            assert_eq!(out.lock().unwrap().len(), i + 1, "frame {i} was not encoded within its push");
        }
        assert!(enc.poll_error().is_none());
        out.lock().unwrap().clone()
    }

    #[test]
    fn x264_keyframes_only_on_request() {
        let frames = encode_frames("x264enc", 40);
        assert_eq!(frames.len(), 40, "zerolatency x264 emits one access unit per frame");
        // Capture timestamps survive the encoder unchanged (33 ms apart).
        for w in frames.windows(2) {
            assert_eq!(w[1].2 - w[0].2, Duration::from_millis(33));
        }
        assert!(frames[0].2 < Duration::from_secs(1), "pts is relative to the encoder's start");
        let keys: Vec<usize> = frames.iter().enumerate().filter(|(_, f)| f.0).map(|(i, _)| i).collect();
        assert_eq!(keys[0], 0);
        // The forced keyframe lands on the requested frame or the one after; none other.
        assert_eq!(keys.len(), 2, "keyframes at {keys:?}");
        assert!(keys[1] == 38 || keys[1] == 39, "keyframes at {keys:?}");
    }

    #[test]
    fn libx264_keyframes_exactly_on_request() {
        let frames = encode_frames("x264", 40);
        assert_eq!(frames.len(), 40);
        for w in frames.windows(2) {
            assert_eq!(w[1].2 - w[0].2, Duration::from_millis(33));
        }
        let keys: Vec<usize> = frames.iter().enumerate().filter(|(_, f)| f.0).map(|(i, _)| i).collect();
        assert_eq!(keys, [0, 38]);
    }

    #[test]
    fn libx264_holds_the_bitrate_on_noise() {
        // Noise costs far more than 800 kbit/s at a low QP: the rate control
        // must raise the QP until it fits, and follow a change of bitrate.
        let spec = EncoderSpec::by_element("x264").unwrap();
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let b = bytes.clone();
        let settings = EncoderSettings {
            fps: 30,
            bitrate_kbps: 800,
            threads: 1,
            cursor_in_video: false,
            delta_frames: true,
        };
        let mut enc =
            Encoder::start(spec, 320, 240, settings, clock(), move |f| b.lock().unwrap().push(f.data.len()))
                .unwrap();
        let mut seed = 1u32;
        let t0 = Instant::now();
        let mut rate_between = |enc: &mut Encoder, from: usize, to: usize| {
            for i in from..to {
                let noise: Vec<u8> = (0..320 * 240 * 3 / 2)
                    .map(|_| {
                        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                        96 + (seed >> 26) as u8
                    })
                    .collect();
                let ts = t0 + Duration::from_millis(1000 * i as u64 / 30);
                enc.push(&noise, ts, i == 0, &[FULL]).unwrap();
            }
            let b = bytes.lock().unwrap();
            b[from + 30..to].iter().sum::<usize>() as f64 * 8.0 / ((to - from - 30) as f64 / 30.0) / 1000.0
        };
        let first = rate_between(&mut enc, 0, 120);
        assert!((600.0..=900.0).contains(&first), "{first} kbit/s for a target of 800");
        enc.set_rate(Rate::new(30, 2400));
        let second = rate_between(&mut enc, 120, 240);
        assert!((1800.0..=2700.0).contains(&second), "{second} kbit/s for a target of 2400");
    }

    #[test]
    fn vp8_encodes() {
        let frames = encode_frames("vp8enc", 10);
        assert!(frames.len() >= 9);
        assert!(frames[0].0);
    }
}
