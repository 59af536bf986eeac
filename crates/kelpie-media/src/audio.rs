//! Sound: the session's PulseAudio output as Opus for every viewer, and viewers'
//! microphones played into the session.
//!
//! Out: `pulsesrc (default sink's monitor) ! opusenc (48 kHz stereo, 10 ms, VBR, DTX) !
//! appsink`, broadcast like video. Frames of two bytes or less are DTX "nothing to say"
//! frames and are not sent at all, so silence costs nothing on the wire. The pipeline runs
//! while someone subscribes.
//!
//! In: one `appsrc (Opus) ! opusdec ! pulsesink` per viewer whose browser sends a
//! microphone track, into the sink whose monitor is the session's default source.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use tokio::sync::broadcast;

use crate::MediaError;
use crate::encoder::init;
use crate::pipeline::{bus_error, element, launch};

/// Opus frame length Kelpie asks for.
pub const FRAME: Duration = Duration::from_millis(10);
/// Frames a subscriber may fall behind (two seconds) before it lags.
const DEPTH: usize = 200;

/// One Opus packet (10 ms of 48 kHz stereo).
#[derive(Debug)]
pub struct AudioFrame {
    /// The Opus packet.
    pub data: Arc<[u8]>,
    /// Time of its first sample since the stream started (48 kHz RTP time derives from it).
    pub pts: Duration,
    /// When its first sample was captured, on the same clock as video frames' capture time.
    pub captured: Instant,
}

/// Settings of the sound output.
#[derive(Debug, Clone)]
pub struct AudioSettings {
    /// PulseAudio server (`unix:/path`), or `None` for the environment's.
    pub server: Option<String>,
    /// PulseAudio source to capture (`@DEFAULT_MONITOR@`).
    pub device: String,
    /// Opus bitrate in kbit/s.
    pub bitrate_kbps: u32,
    /// PulseAudio sink viewers' microphones play into, if the microphone is enabled.
    pub mic_sink: Option<String>,
}

/// Counters of the sound output.
#[derive(Debug, Default)]
pub struct AudioCounters {
    /// Opus packets sent on (not DTX).
    pub packets: AtomicU64,
    /// Their bytes.
    pub bytes: AtomicU64,
    /// DTX packets not sent.
    pub dtx_skipped: AtomicU64,
}

/// A running capture + Opus encode.
pub struct AudioStream {
    tx: broadcast::Sender<Arc<AudioFrame>>,
    pipeline: gst::Pipeline,
}

impl Drop for AudioStream {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
        tracing::info!("audio stream stopped");
    }
}

/// A subscriber's handle: keeps the stream running.
pub struct AudioSubscription {
    _stream: Arc<AudioStream>,
    rx: broadcast::Receiver<Arc<AudioFrame>>,
}

impl AudioSubscription {
    /// The next frame.
    pub async fn recv(&mut self) -> Result<Arc<AudioFrame>, broadcast::error::RecvError> {
        self.rx.recv().await
    }
}

/// The session's sound, started on demand.
pub struct AudioSource {
    settings: AudioSettings,
    current: Mutex<Weak<AudioStream>>,
    counters: Arc<AudioCounters>,
}

impl AudioSource {
    /// A source that captures with `settings` once subscribed.
    pub fn new(settings: AudioSettings) -> Self {
        Self { settings, current: Mutex::new(Weak::new()), counters: Arc::default() }
    }

    /// Counters for metrics.
    pub fn counters(&self) -> &Arc<AudioCounters> {
        &self.counters
    }

    /// Settings in use.
    pub fn settings(&self) -> &AudioSettings {
        &self.settings
    }

    /// Subscribes, starting the capture if nobody else listens.
    pub fn subscribe(&self) -> Result<AudioSubscription, MediaError> {
        let mut cur = self.current.lock().unwrap();
        let stream = match cur.upgrade() {
            Some(s) => s,
            None => {
                let s = Arc::new(self.start()?);
                *cur = Arc::downgrade(&s);
                s
            }
        };
        let rx = stream.tx.subscribe();
        Ok(AudioSubscription { _stream: stream, rx })
    }

    fn start(&self) -> Result<AudioStream, MediaError> {
        init()?;
        for (element, package) in
            [("pulsesrc", "gstreamer1.0-pulseaudio"), ("opusenc", "gstreamer1.0-plugins-base")]
        {
            if gst::ElementFactory::find(element).is_none() {
                return Err(MediaError::MissingElement { element: element.into(), package: package.into() });
            }
        }
        let s = &self.settings;
        let server = s.server.as_ref().map(|v| format!("server=\"{v}\"")).unwrap_or_default();
        let desc = format!(
            "pulsesrc name=src device=\"{dev}\" {server} buffer-time=20000 latency-time=10000 \
             provide-clock=false client-name=kelpie ! audioconvert ! audioresample \
             ! audio/x-raw,format=S16LE,rate=48000,channels=2 \
             ! opusenc bitrate={bps} frame-size=10 dtx=true bitrate-type=vbr complexity=5 \
             ! appsink name=sink sync=false max-buffers=100 drop=true",
            dev = s.device,
            bps = s.bitrate_kbps.clamp(6, 510) * 1000,
        );
        let pipeline = launch(&desc, "audio")?;
        let appsink: gst_app::AppSink = element(&pipeline, "sink")?;
        let (tx, _) = broadcast::channel(DEPTH);
        let sink_tx = tx.clone();
        let counters = self.counters.clone();
        let start = Instant::now();
        appsink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |a| {
                    let sample = a.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let buffer = sample.buffer().ok_or(gst::FlowError::Error)?;
                    let map = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
                    if map.len() <= 2 {
                        counters.dtx_skipped.fetch_add(1, Ordering::Relaxed);
                        return Ok(gst::FlowSuccess::Ok);
                    }
                    let pts = buffer.pts().map(|t| Duration::from_nanos(t.nseconds())).unwrap_or_default();
                    counters.packets.fetch_add(1, Ordering::Relaxed);
                    counters.bytes.fetch_add(map.len() as u64, Ordering::Relaxed);
                    let captured = (start + pts).min(Instant::now());
                    let _ =
                        sink_tx.send(Arc::new(AudioFrame { data: Arc::from(map.as_slice()), pts, captured }));
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        pipeline.set_state(gst::State::Playing).map_err(|_| {
            MediaError::Pipeline(format!("the audio pipeline failed to start: {}", bus_error(&pipeline)))
        })?;
        tracing::info!(device = %s.device, kbps = s.bitrate_kbps, "audio stream started");
        Ok(AudioStream { tx, pipeline })
    }

    /// A player for one viewer's microphone, if the microphone is enabled.
    pub fn microphone(&self) -> Option<Result<MicPlayer, MediaError>> {
        let sink = self.settings.mic_sink.as_deref()?;
        Some(MicPlayer::start(self.settings.server.as_deref(), sink))
    }
}

/// Decodes one viewer's Opus microphone packets into a PulseAudio sink.
pub struct MicPlayer {
    pipeline: gst::Pipeline,
    appsrc: gst_app::AppSrc,
}

impl MicPlayer {
    /// Starts `appsrc ! opusdec ! pulsesink device=<sink>`.
    pub fn start(server: Option<&str>, sink: &str) -> Result<Self, MediaError> {
        init()?;
        if gst::ElementFactory::find("pulsesink").is_none() {
            return Err(MediaError::MissingElement {
                element: "pulsesink".into(),
                package: "gstreamer1.0-pulseaudio".into(),
            });
        }
        let server = server.map(|v| format!("server=\"{v}\"")).unwrap_or_default();
        let desc = format!(
            "appsrc name=src is-live=true format=time do-timestamp=true max-bytes=65536 \
             caps=audio/x-opus,channel-mapping-family=0,rate=48000,channels=2 \
             ! opusdec plc=true ! audioconvert ! audioresample \
             ! pulsesink device=\"{sink}\" {server} sync=false buffer-time=60000 latency-time=10000 \
             client-name=kelpie-microphone"
        );
        let pipeline = launch(&desc, "microphone")?;
        let appsrc: gst_app::AppSrc = element(&pipeline, "src")?;
        pipeline.set_state(gst::State::Playing).map_err(|_| {
            MediaError::Pipeline(format!("the microphone pipeline failed to start: {}", bus_error(&pipeline)))
        })?;
        tracing::info!(sink, "microphone player started");
        Ok(Self { pipeline, appsrc })
    }

    /// Plays one Opus packet.
    pub fn push(&self, opus: &[u8]) -> Result<(), MediaError> {
        self.appsrc
            .push_buffer(gst::Buffer::from_mut_slice(opus.to_vec()))
            .map(|_| ())
            .map_err(|e| MediaError::Pipeline(format!("the microphone pipeline stopped: {e:?}")))
    }
}

impl Drop for MicPlayer {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}
