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
             ! h264parse ! queue max-size-buffers=0 max-size-bytes=0 max-size-time=5000000000 \
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
        let audio = if audio { Some(element::<gst_app::AppSrc>(&pipeline, "a")?) } else { None };
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| MediaError::pipeline("recording", bus_error(&pipeline).unwrap_or(e.into())))?;
        let base_rt = running_time(&pipeline);
        Ok(Self { path: path.to_owned(), pipeline, video, audio, base_pts: first_pts, base_rt })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends an H.264 access unit captured at media pts `pts`.
    pub fn video(&self, data: &[u8], pts: Duration, keyframe: bool) -> Result<(), MediaError> {
        let mut buffer = self.buffer(data, pts);
        if !keyframe {
            buffer.get_mut().expect("a new buffer is writable").set_flags(gst::BufferFlags::DELTA_UNIT);
        }
        self.video.push_buffer(buffer).map(|_| ()).map_err(|e| self.failed(e.into()))
    }

    /// Appends an Opus packet whose first sample is at media pts `pts`. Packets from before
    /// the file's first keyframe are left out.
    pub fn audio(&self, data: &[u8], pts: Duration) -> Result<(), MediaError> {
        let Some(src) = &self.audio else { return Ok(()) };
        if pts < self.base_pts {
            return Ok(());
        }
        let mut buffer = self.buffer(data, pts);
        buffer.get_mut().expect("a new buffer is writable").set_duration(gst::ClockTime::from_mseconds(10));
        src.push_buffer(buffer).map(|_| ()).map_err(|e| self.failed(e.into()))
    }

    /// Ends the file: the muxer writes its index, then the pipeline stops. Blocks for up to
    /// [`FINISH_TIMEOUT`].
    pub fn finish(self) -> Result<PathBuf, MediaError> {
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
        let offset = gst::ClockTime::from_nseconds(pts.saturating_sub(self.base_pts).as_nanos() as u64);
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
