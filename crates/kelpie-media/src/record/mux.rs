//! One recording file: the encoded H.264 and Opus, as they are, into fragmented MP4
//! (`appsrc ! h264parse ! mp4mux ! filesink`, and `appsrc ! opusparse` into the same muxer).
//!
//! The muxer runs live: its input pads have buffers timestamped on the pipeline's running
//! time, so it writes what it has after [`MUX_LATENCY`] instead of waiting for a pad that
//! has nothing to say (a still screen sends no video, silence no sound). Fragments of
//! [`FRAGMENT`] are written as the recording goes, so a Kelpie that is killed leaves a
//! playable file up to its last fragment; a file ended normally is rewritten into an
//! ordinary MP4 with its index at the front (`fragment-mode=first-moov-then-finalise`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use crate::encoder::init;
use crate::pipeline::{bus_error, element, launch};
use crate::{GstCause, MediaError};

/// How long the muxer waits for a pad that has no buffer yet before writing without it.
pub const MUX_LATENCY: Duration = Duration::from_millis(500);
/// Length of a fragment written to the file while recording.
pub const FRAGMENT: Duration = Duration::from_secs(1);
/// How long ending a file may take (the muxer rewrites its index).
pub const FINISH_TIMEOUT: Duration = Duration::from_secs(10);

/// GStreamer elements a recording needs, and the Debian package of each.
const NEEDS: [(&str, &str); 4] = [
    ("mp4mux", "gstreamer1.0-plugins-good"),
    ("h264parse", "gstreamer1.0-plugins-bad"),
    ("opusparse", "gstreamer1.0-plugins-bad"),
    ("filesink", "gstreamer1.0-plugins-base"),
];

/// A file being written.
pub struct Writer {
    path: PathBuf,
    pipeline: gst::Pipeline,
    video: gst_app::AppSrc,
    audio: Option<gst_app::AppSrc>,
    /// The media pts that running time `base_rt` stands for.
    base_pts: Duration,
    base_rt: gst::ClockTime,
    /// The last video frame, held until the next one (or the end) gives its duration: a
    /// still screen sends no frames, and the picture it shows lasts until something changes.
    held: Option<(gst::Buffer, Duration)>,
    /// The pts of the last sound packet written (they must increase).
    audio_last: Option<Duration>,
    /// Each video frame's duration, for the probe after h264parse.
    durations: Durations,
}

/// Video frames' durations by pts, from the writer to the probe after h264parse.
#[derive(Clone, Default)]
struct Durations(
    std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<(gst::ClockTime, gst::ClockTime)>>>,
);

impl Durations {
    fn put(&self, pts: gst::ClockTime, duration: gst::ClockTime) {
        let mut q = self.0.lock().unwrap_or_else(|e| e.into_inner());
        // Frames pass the parser in order and at once: a few is all that is ever waiting.
        if q.len() >= 64 {
            q.pop_front();
        }
        q.push_back((pts, duration));
    }

    fn take(&self, pts: gst::ClockTime) -> Option<gst::ClockTime> {
        let mut q = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let i = q.iter().position(|(p, _)| *p == pts)?;
        q.drain(..=i).next_back().map(|(_, d)| d)
    }
}

impl Writer {
    /// Creates the file at `path` (it must not exist) and starts its pipeline, with a sound
    /// track if `audio`. `first_pts` is the media pts of the keyframe the file starts with.
    pub fn create(path: &Path, audio: bool, first_pts: Duration) -> Result<Self, MediaError> {
        init()?;
        for (name, package) in NEEDS {
            if gst::ElementFactory::find(name).is_none() {
                return Err(MediaError::MissingElement { element: name.into(), package: package.into() });
            }
        }
        // Created here, 0600 and only if new: the muxer's filesink would follow a link an
        // attacker planted in a shared directory, and truncate what it points to.
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode_private()
            .open(path)
            .map_err(|source| MediaError::RecordFile { path: path.to_owned(), source })?;
        drop(file);
        let location = path.to_string_lossy().replace('\\', "\\\\").replace('"', "\\\"");
        let latency = MUX_LATENCY.as_nanos();
        let fragment = FRAGMENT.as_millis();
        let mut desc = format!(
            "appsrc name=v is-live=true format=time min-latency=0 \
             caps=video/x-h264,stream-format=byte-stream,alignment=au \
             ! h264parse name=parse ! queue max-size-buffers=0 max-size-bytes=0 max-size-time=5000000000 \
             ! mp4mux name=m fragment-duration={fragment} fragment-mode=first-moov-then-finalise \
               latency={latency} \
             ! filesink location=\"{location}\" append=false async=false"
        );
        if audio {
            desc.push_str(
                " appsrc name=a is-live=true format=time min-latency=0 \
                 caps=audio/x-opus,channel-mapping-family=0,rate=48000,channels=2 \
                 ! opusparse ! queue max-size-buffers=0 max-size-bytes=0 max-size-time=5000000000 ! m.",
            );
        }
        let pipeline = launch(&desc, "recording")?;
        let video: gst_app::AppSrc = element(&pipeline, "v")?;
        // h264parse gives every frame the duration the stream's timing info says (a frame
        // time); a frame of a still screen lasts until the next: put back the one it was given.
        let durations = Durations::default();
        let parse: gst::Element = element(&pipeline, "parse")?;
        let pad = parse.static_pad("src").ok_or_else(|| {
            MediaError::pipeline("recording", GstCause::Missing("h264parse has no src pad".into()))
        })?;
        let lookup = durations.clone();
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(buffer) = info.buffer_mut()
                && let Some(d) = buffer.pts().and_then(|pts| lookup.take(pts))
            {
                buffer.make_mut().set_duration(d);
            }
            gst::PadProbeReturn::Ok
        });
        let audio = if audio { Some(element::<gst_app::AppSrc>(&pipeline, "a")?) } else { None };
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| MediaError::pipeline("recording", bus_error(&pipeline).unwrap_or(e.into())))?;
        let base_rt = running_time(&pipeline);
        let mut writer = Self {
            path: path.to_owned(),
            pipeline,
            video,
            audio,
            base_pts: first_pts,
            base_rt,
            held: None,
            audio_last: None,
            durations,
        };
        // The sound track gets a first packet at once (one the decoder conceals as silence):
        // an MP4 track without samples would make the file unplayable if nothing plays.
        writer.audio(&SILENT_OPUS, first_pts)?;
        Ok(writer)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends an H.264 access unit captured at media pts `pts` (written when the next one
    /// comes, or the file ends).
    pub fn video(&mut self, data: &[u8], pts: Duration, keyframe: bool) -> Result<(), MediaError> {
        let mut buffer = self.buffer(data, pts);
        if !keyframe {
            buffer.get_mut().expect("a new buffer is writable").set_flags(gst::BufferFlags::DELTA_UNIT);
        }
        let previous = self.held.replace((buffer, pts));
        match previous {
            Some((held, at)) => self.push_held(held, at, pts),
            None => Ok(()),
        }
    }

    /// Writes a held frame, shown from `at` until `until`.
    fn push_held(&self, mut buffer: gst::Buffer, at: Duration, until: Duration) -> Result<(), MediaError> {
        let shown = until.saturating_sub(at).max(Duration::from_millis(1));
        let buf = buffer.get_mut().expect("held buffers are not shared");
        buf.set_duration(clock_time(shown));
        if let Some(pts) = buf.pts() {
            self.durations.put(pts, clock_time(shown));
        }
        self.video.push_buffer(buffer).map(|_| ()).map_err(|e| self.failed(e.into()))
    }

    /// Appends an Opus packet whose first sample is at media pts `pts`. Packets from before
    /// the file's first keyframe are left out.
    pub fn audio(&mut self, data: &[u8], pts: Duration) -> Result<(), MediaError> {
        let Some(src) = &self.audio else { return Ok(()) };
        if pts < self.base_pts || self.audio_last.is_some_and(|last| pts <= last) {
            return Ok(());
        }
        self.audio_last = Some(pts);
        let mut buffer = self.buffer(data, pts);
        buffer.get_mut().expect("a new buffer is writable").set_duration(gst::ClockTime::from_mseconds(10));
        src.push_buffer(buffer).map(|_| ()).map_err(|e| self.failed(e.into()))
    }

    /// Ends the file at media pts `end` (the last picture lasts until then): the muxer writes
    /// its index, then the pipeline stops. Blocks for up to [`FINISH_TIMEOUT`].
    pub fn finish(mut self, end: Duration) -> Result<PathBuf, MediaError> {
        if let Some((held, at)) = self.held.take() {
            self.push_held(held, at, end)?;
        }
        let _ = self.video.end_of_stream();
        if let Some(a) = &self.audio {
            let _ = a.end_of_stream();
        }
        let bus = self.pipeline.bus().expect("a pipeline has a bus");
        let result = match bus.timed_pop_filtered(
            gst::ClockTime::from_nseconds(FINISH_TIMEOUT.as_nanos() as u64),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        ) {
            Some(msg) => match msg.view() {
                gst::MessageView::Eos(_) => Ok(()),
                gst::MessageView::Error(e) => Err(GstCause::Posted {
                    error: e.error(),
                    debug: e.debug().map(|d| d.to_string()).unwrap_or_default(),
                }),
                _ => unreachable!("filtered"),
            },
            None => Err(GstCause::Missing(format!("the file was not finished within {FINISH_TIMEOUT:?}"))),
        };
        let _ = self.pipeline.set_state(gst::State::Null);
        result.map(|()| self.path.clone()).map_err(|cause| MediaError::pipeline("recording", cause))
    }

    fn buffer(&self, data: &[u8], pts: Duration) -> gst::Buffer {
        let mut buffer = gst::Buffer::from_slice(data.to_vec());
        let offset = clock_time(pts.saturating_sub(self.base_pts));
        buffer.get_mut().expect("a new buffer is writable").set_pts(self.base_rt + offset);
        buffer
    }

    fn failed(&self, e: GstCause) -> MediaError {
        MediaError::pipeline("recording", bus_error(&self.pipeline).unwrap_or(e))
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// An Opus packet of one 10 ms stereo CELT frame with no data: decoders conceal it
/// (silence at the start of a file). RFC 6716 §3.1: TOC config 30, stereo, one frame.
const SILENT_OPUS: [u8; 1] = [(30 << 3) | (1 << 2)];

fn clock_time(d: Duration) -> gst::ClockTime {
    gst::ClockTime::from_nseconds(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The pipeline's running time now (zero before it has a clock).
fn running_time(pipeline: &gst::Pipeline) -> gst::ClockTime {
    match (pipeline.clock(), pipeline.base_time()) {
        (Some(clock), Some(base)) => clock.time().saturating_sub(base),
        _ => gst::ClockTime::ZERO,
    }
}

/// Opening a file readable by its owner only.
trait PrivateMode {
    fn mode_private(&mut self) -> &mut Self;
}

impl PrivateMode for std::fs::OpenOptions {
    fn mode_private(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt as _;
        self.mode(0o600).custom_flags(libc::O_NOFOLLOW)
    }
}
