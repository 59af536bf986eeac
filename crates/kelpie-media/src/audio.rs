//! Sound: the session's PulseAudio output as Opus for every viewer, and viewers'
//! microphones played into the session.
//!
//! Out: `pulsesrc (default sink's monitor) ! opusenc (48 kHz stereo, 10 ms, VBR, DTX, in-band FEC for the loss the paths show) !
//! appsink`, broadcast like video. Frames of two bytes or less are DTX "nothing to say"
//! frames: the first after sound is sent (as WebRTC's own Opus sender does), the others
//! are not, so silence costs almost nothing on the wire. While someone
//! subscribes, a watcher (`pactl subscribe`) follows the streams playing into PulseAudio, and
//! the pipeline runs only while at least one plays (and [`IDLE_STOP`] after the last one
//! ends), so a silent desktop costs no CPU either. Without `pactl` the pipeline runs for as
//! long as someone subscribes.
//!
//! In: one `appsrc (Opus) ! opusdec ! pulsesink` per viewer whose browser sends a
//! microphone track, into the sink whose monitor is the session's default source.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use crate::broadcast::{Decodable, LazyBroadcast, Producer, Publisher, Subscription, Upstream};
use crate::clock::MediaClock;
use crate::encoder::init;
use crate::pipeline::{bus_error, element, launch};
use crate::{MediaError, error_chain};

mod timeline;
use timeline::Timeline;

/// Opus frame length Kelpie asks for.
pub const FRAME: Duration = Duration::from_millis(10);
/// Frames a subscriber may fall behind (two seconds) before it lags.
const DEPTH: usize = 200;
/// How long capture goes on after the last stream stopped playing: short pauses between
/// sounds do not restart the pipeline.
pub const IDLE_STOP: Duration = Duration::from_secs(3);
/// How often the watcher looks at its stop flag and idle timer.
const WATCH_TICK: Duration = Duration::from_millis(200);

/// One Opus packet (10 ms of 48 kHz stereo).
#[derive(Debug)]
pub struct AudioFrame {
    /// The Opus packet.
    pub data: Arc<[u8]>,
    /// Time of its first sample on the session's [`MediaClock`] (48 kHz RTP time derives from
    /// it), the timeline video frames' pts are on too; it keeps counting across pauses of the
    /// capture, so gaps show as gaps.
    pub pts: Duration,
    /// When its first sample was captured, on the same clock as video frames' capture time.
    pub captured: Instant,
}

impl Decodable for AudioFrame {
    fn captured(&self) -> Instant {
        self.captured
    }

    /// Every Opus packet decodes on its own.
    fn decodable_alone(&self) -> bool {
        true
    }
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
    /// Times the capture pipeline was started (something began to play).
    pub captures_started: AtomicU64,
    /// Whether the capture pipeline runs now (1) or not (0).
    pub capturing: AtomicU64,
    /// Milliseconds of sound PulseAudio lost before capture, without a gap in the count
    /// (see `timeline`): the timeline moved on by as much.
    pub lost_ms: AtomicU64,
}

/// A running capture + Opus encode.
struct Capture {
    pipeline: gst::Pipeline,
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
        tracing::debug!("audio capture stopped");
    }
}

/// The sound shared by the current subscribers: a broadcast, and the watcher thread that
/// runs the capture while something plays.
pub struct AudioStream {
    /// Held strongly by the watcher thread only.
    publisher: Weak<Publisher<AudioFrame>>,
    stop: Arc<AtomicBool>,
    watcher: Mutex<Option<JoinHandle<()>>>,
}

/// Sound has no keyframes: every frame decodes alone.
impl Upstream for AudioStream {}

impl Producer for AudioStream {
    type Frame = AudioFrame;

    fn publisher(&self) -> Option<Arc<Publisher<AudioFrame>>> {
        self.publisher.upgrade()
    }

    /// The watcher retries a capture that fails; it never gives up on its own.
    fn failed(&self) -> bool {
        false
    }
}

impl Drop for AudioStream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.watcher.lock().unwrap().take() {
            let _ = t.join();
        }
        tracing::info!("audio stream stopped");
    }
}

/// A listener's handle: keeps the sound running while it exists. Read it with
/// [`Subscription::next_decodable`] (frames older than the allowed lag are dropped and
/// counted in [`Subscription::dropped`]) or [`Subscription::recv`].
pub type AudioSubscription = Subscription<AudioFrame>;

/// The session's sound, started on demand.
pub struct AudioSource {
    inner: Arc<Inner>,
    stream: LazyBroadcast<AudioStream>,
}

/// What the watcher thread needs of the source.
struct Inner {
    settings: AudioSettings,
    counters: Arc<AudioCounters>,
    /// Origin of every frame's `pts`, shared with the session's video.
    clock: MediaClock,
    /// The packet loss (percent) the listeners' paths show: Opus spends that much on in-band
    /// FEC (a lost packet is rebuilt from the next one; 0: none).
    expected_loss: AtomicU32,
    /// The running encoder, to tell it a new loss.
    encoder: Mutex<Option<gst::Element>>,
}

impl AudioSource {
    /// A source that captures with `settings` once subscribed; frames' pts are on `clock`,
    /// the session's media clock.
    pub fn new(settings: AudioSettings, clock: MediaClock) -> Self {
        Self {
            inner: Arc::new(Inner {
                settings,
                counters: Arc::default(),
                clock,
                expected_loss: AtomicU32::new(0),
                encoder: Mutex::new(None),
            }),
            stream: LazyBroadcast::new(),
        }
    }

    /// Counters for metrics.
    pub fn counters(&self) -> &Arc<AudioCounters> {
        &self.inner.counters
    }

    /// The session's media clock, origin of every frame's `pts`.
    pub fn clock(&self) -> MediaClock {
        self.inner.clock
    }

    /// Origin of every frame's `pts` (a frame's `pts` is about its `captured` minus this).
    pub fn epoch(&self) -> Instant {
        self.inner.clock.epoch()
    }

    /// Settings in use.
    pub fn settings(&self) -> &AudioSettings {
        &self.inner.settings
    }

    /// Subscribes, starting the stream if nobody else listens. Fails at once when the
    /// GStreamer elements are missing.
    /// Tells the encoder the packet loss (percent, held to 0..=30) the listeners' paths
    /// show: Opus then adds that much in-band FEC, which the browser uses to rebuild a lost
    /// packet (and conceals what it cannot rebuild).
    pub fn set_expected_loss(&self, percent: u32) {
        let percent = percent.min(30);
        if self.inner.expected_loss.swap(percent, Ordering::Relaxed) == percent {
            return;
        }
        tracing::debug!(percent, "Opus in-band FEC for this much loss");
        if let Some(enc) = self.inner.encoder.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            enc.set_property("packet-loss-percentage", percent as i32);
        }
    }

    pub fn subscribe(&self) -> Result<AudioSubscription, MediaError> {
        let (_, sub) = self.stream.subscribe(|| self.start().map(Arc::new), None)?;
        Ok(sub)
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
        let publisher = Arc::new(Publisher::new(DEPTH, None));
        let stop = Arc::new(AtomicBool::new(false));
        let weak = Arc::downgrade(&publisher);
        let (inner, st) = (self.inner.clone(), stop.clone());
        let watcher = std::thread::Builder::new()
            .name("kelpie-audio".into())
            .spawn(move || inner.watch(&publisher, &st))
            .map_err(|e| MediaError::io("starting the audio thread", e))?;
        tracing::info!(device = %self.inner.settings.device, kbps = self.inner.settings.bitrate_kbps, "audio stream started");
        Ok(AudioStream { publisher: weak, stop, watcher: Mutex::new(Some(watcher)) })
    }

    /// A player for one viewer's microphone, if the microphone is enabled.
    pub fn microphone(&self) -> Option<Result<MicPlayer, MediaError>> {
        let settings = self.settings();
        let sink = settings.mic_sink.as_deref()?;
        Some(MicPlayer::start(settings.server.as_deref(), sink))
    }
}

impl Inner {
    /// Runs the capture while something plays, until `stop`.
    fn watch(&self, tx: &Arc<Publisher<AudioFrame>>, stop: &AtomicBool) {
        let pactl = Pactl { server: self.settings.server.clone(), mic_sink: self.settings.mic_sink.clone() };
        let mut events = match pactl.subscribe() {
            Ok(e) => Some(e),
            Err(e) => {
                tracing::warn!(
                    "cannot follow PulseAudio's streams ({e}); capturing sound all the time (install \
                     the Debian package pulseaudio-utils for pactl)"
                );
                None
            }
        };
        let mut capture: Option<Capture> = None;
        let mut last_playing = Instant::now();
        // Look once at the start, then whenever PulseAudio reports a change of its streams.
        let mut look = true;
        let mut playing = false;
        while !stop.load(Ordering::Relaxed) {
            if events.is_none() {
                playing = true;
            } else if look {
                look = false;
                playing = pactl.playing().unwrap_or(true);
            }
            let now = Instant::now();
            if playing {
                last_playing = now;
            }
            if playing && capture.is_none() {
                match self.capture(tx) {
                    Ok(c) => {
                        self.counters.captures_started.fetch_add(1, Ordering::Relaxed);
                        self.counters.capturing.store(1, Ordering::Relaxed);
                        capture = Some(c);
                    }
                    Err(e) => {
                        tracing::error!("sound capture failed: {}", error_chain(&e));
                        std::thread::sleep(Duration::from_secs(1));
                    }
                }
            } else if !playing && capture.is_some() && now.duration_since(last_playing) >= IDLE_STOP {
                capture = None;
                self.counters.capturing.store(0, Ordering::Relaxed);
            }
            match &events {
                Some(ev) => match ev.lines.recv_timeout(WATCH_TICK) {
                    Ok(line) => {
                        look = line.contains("sink-input");
                        if look {
                            // Take the rest of a burst of events in one look.
                            while ev.lines.try_recv().is_ok() {}
                        }
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        tracing::warn!("pactl subscribe ended; capturing sound all the time");
                        events = None;
                    }
                },
                None => std::thread::sleep(WATCH_TICK),
            }
        }
        self.counters.capturing.store(0, Ordering::Relaxed);
    }

    /// Starts `pulsesrc ! opusenc ! appsink` into `tx`. `slave-method=none`: the buffers'
    /// timestamps count samples and nothing else (by default `pulsesrc` moves them by a few
    /// ms now and then to follow the pipeline clock, which the receiver hears as a gap or an
    /// overlap); capture times come from [`Timeline`] instead, which also moves the count on
    /// past sound PulseAudio lost. `buffer-time` is how much PulseAudio keeps for Kelpie when
    /// its thread waits for the CPU (it drops the oldest beyond that): 200 ms, so that a stall
    /// comes out late rather than lost (with 20 ms a loaded machine lost 400 ms in 14 s);
    /// `latency-time`, the 10 ms fragment, is what sets the delay.
    fn capture(&self, tx: &Arc<Publisher<AudioFrame>>) -> Result<Capture, MediaError> {
        let s = &self.settings;
        let server = s.server.as_ref().map(|v| format!("server=\"{v}\"")).unwrap_or_default();
        let desc = format!(
            "pulsesrc name=src device=\"{dev}\" {server} buffer-time=200000 latency-time=10000 \
             provide-clock=false slave-method=none client-name=kelpie ! audioconvert ! audioresample \
             ! audio/x-raw,format=S16LE,rate=48000,channels=2 \
             ! opusenc name=enc bitrate={bps} frame-size=10 audio-type={kind} dtx=true bitrate-type=vbr complexity=5 \
             inband-fec=true packet-loss-percentage={loss} \
             ! appsink name=sink sync=false max-buffers=100 drop=true",
            dev = s.device,
            bps = s.bitrate_kbps.clamp(6, 510) * 1000,
            kind = opus_audio_type(s.bitrate_kbps),
            loss = self.expected_loss.load(Ordering::Relaxed),
        );
        let pipeline = launch(&desc, "audio")?;
        let appsink: gst_app::AppSink = element(&pipeline, "sink")?;
        let sink_tx = tx.clone();
        let counters = self.counters.clone();
        let clock = self.clock;
        let mut timeline = Timeline::default();
        let mut in_dtx = false;
        let mut run_origin: Option<Duration> = None;
        appsink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |a| {
                    let sample = a.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let buffer = sample.buffer().ok_or(gst::FlowError::Error)?;
                    let map = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
                    // DTX: the first "nothing to say" packet after sound is sent, so the
                    // receiver knows silence began and plays comfort noise instead of
                    // stretching the last sound as if packets were lost; the rest are not.
                    if map.len() <= 2 {
                        if in_dtx {
                            counters.dtx_skipped.fetch_add(1, Ordering::Relaxed);
                            return Ok(gst::FlowSuccess::Ok);
                        }
                        in_dtx = true;
                    } else {
                        in_dtx = false;
                    }
                    counters.packets.fetch_add(1, Ordering::Relaxed);
                    counters.bytes.fetch_add(map.len() as u64, Ordering::Relaxed);
                    // pts counts samples: every packet holds FRAME of sound, and its place on
                    // this run's timeline is where it ends (the buffer's own timestamp plus its
                    // duration) less FRAME: the first buffer out of opusenc is stamped short by
                    // the encoder's look-ahead, so its start would overlap the next packet's.
                    // The receiver plays packets by their RTP timestamps, and ones taken from
                    // the wall clock jitter by a few hundred samples, which a jitter buffer
                    // hears as gaps and overlaps: lost sound and a growing delay.
                    let end = buffer.pts().map(|t| Duration::from_nanos(t.nseconds())).unwrap_or_default()
                        + buffer.duration().map_or(FRAME, |d| Duration::from_nanos(d.nseconds()));
                    // Shifted by FRAME so that it never goes below zero; the shift cancels out.
                    let pts = end;
                    let now = Instant::now();
                    let timeline::Placed { pts, captured, moved_on } = timeline.frame(now, pts, FRAME);
                    counters.lost_ms.fetch_add(moved_on.as_millis() as u64, Ordering::Relaxed);
                    // Per frame, at trace level (`KELPIE_LOG=kelpie_media::audio=trace`): where
                    // the capture's time goes.
                    tracing::trace!(
                        age_us = now.duration_since(captured).as_micros() as u64,
                        pts_ms = pts.as_millis() as u64,
                        len = map.len(),
                        "audio frame"
                    );
                    // This run's place on the session's media clock, from its first frame.
                    let origin = *run_origin.get_or_insert_with(|| clock.pts(captured).saturating_sub(pts));
                    sink_tx.send(AudioFrame { data: Arc::from(map.as_slice()), pts: origin + pts, captured });
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| MediaError::pipeline("audio", bus_error(&pipeline).unwrap_or(e.into())))?;
        tracing::debug!("audio capture started");
        if let Some(enc) = pipeline.by_name("enc") {
            *self.encoder.lock().unwrap_or_else(|e| e.into_inner()) = Some(enc);
        }
        Ok(Capture { pipeline })
    }
}

/// Lowest bitrate (kbit/s) at which Opus runs in its restricted low-delay mode.
const LOW_DELAY_FROM_KBPS: u32 = 64;

/// `opusenc`'s `audio-type` for `kbps`: from [`LOW_DELAY_FROM_KBPS`] on `restricted-lowdelay`,
/// the CELT layer alone, whose look-ahead is 2.5 ms where the other modes' is 6.5 ms: the
/// browser plays every sample 4 ms sooner. At such bitrates libopus codes stereo with CELT
/// anyway; below, `generic` keeps SILK for speech and with it the in-band FEC.
fn opus_audio_type(kbps: u32) -> &'static str {
    if kbps >= LOW_DELAY_FROM_KBPS { "restricted-lowdelay" } else { "generic" }
}

/// `pactl` against the session's server.
struct Pactl {
    server: Option<String>,
    /// Streams into this sink (viewers' microphones) are not sound to capture.
    mic_sink: Option<String>,
}

/// Lines of a running `pactl subscribe`.
struct Events {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Drop for Events {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Pactl {
    fn command(&self) -> Command {
        let mut c = Command::new("pactl");
        if let Some(s) = &self.server {
            c.arg(format!("--server={s}"));
        }
        c.stdin(Stdio::null()).stderr(Stdio::null());
        c
    }

    fn subscribe(&self) -> std::io::Result<Events> {
        let mut cmd = self.command();
        cmd.arg("subscribe").stdout(Stdio::piped());
        // SAFETY: prctl is async-signal-safe; the child ends if this thread dies (for good:
        // the watcher thread lives as long as the subscription).
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let mut child = cmd.spawn()?;
        let out = child.stdout.take().ok_or_else(|| std::io::Error::other("no stdout"))?;
        let (tx, lines) = mpsc::channel();
        std::thread::Builder::new().name("kelpie-pactl".into()).spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        })?;
        Ok(Events { child, lines })
    }

    fn list(&self, what: &str) -> Option<String> {
        let out = self.command().args(["list", "short", what]).stdout(Stdio::piped()).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Whether any program plays into a sink other than the microphone's.
    fn playing(&self) -> Option<bool> {
        let sinks = self.list("sinks")?;
        let inputs = self.list("sink-inputs")?;
        Some(count_playing(&sinks, &inputs, self.mic_sink.as_deref()) > 0)
    }
}

/// Counts the streams (`pactl list short sink-inputs`: index, sink index, …) playing into a
/// sink (`pactl list short sinks`: index, name, …) other than `mic_sink`.
fn count_playing(sinks: &str, inputs: &str, mic_sink: Option<&str>) -> usize {
    let mic_index = mic_sink.and_then(|name| {
        sinks
            .lines()
            .map(|l| l.split('\t').collect::<Vec<_>>())
            .find(|f| f.get(1) == Some(&name))?
            .first()
            .copied()
    });
    inputs.lines().filter(|l| !l.trim().is_empty()).filter(|l| l.split('\t').nth(1) != mic_index).count()
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
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| MediaError::pipeline("microphone", bus_error(&pipeline).unwrap_or(e.into())))?;
        tracing::info!(sink, "microphone player started");
        Ok(Self { pipeline, appsrc })
    }

    /// Plays one Opus packet.
    pub fn push(&self, opus: &[u8]) -> Result<(), MediaError> {
        self.appsrc
            .push_buffer(gst::Buffer::from_mut_slice(opus.to_vec()))
            .map(|_| ())
            .map_err(|e| MediaError::pipeline("microphone", e))
    }
}

impl Drop for MicPlayer {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opus_saves_its_look_ahead_where_it_would_not_use_silk_anyway() {
        assert_eq!(opus_audio_type(128), "restricted-lowdelay");
        assert_eq!(opus_audio_type(64), "restricted-lowdelay");
        assert_eq!(opus_audio_type(63), "generic");
        assert_eq!(opus_audio_type(24), "generic");
    }

    #[test]
    fn only_streams_into_other_sinks_than_the_microphone_count() {
        let sinks = "0\tkelpie_out\tmodule-null-sink.c\ts16le 2ch 48000Hz\tIDLE\n\
                     1\tkelpie_mic\tmodule-null-sink.c\ts16le 2ch 48000Hz\tRUNNING\n";
        let none = "";
        let mic_only = "7\t1\t12\tprotocol-native.c\ts16le 2ch 48000Hz\n";
        let both = "7\t1\t12\tprotocol-native.c\ts16le 2ch 48000Hz\n8\t0\t13\tprotocol-native.c\tfloat32le 2ch 44100Hz\n";
        assert_eq!(count_playing(sinks, none, Some("kelpie_mic")), 0);
        assert_eq!(count_playing(sinks, mic_only, Some("kelpie_mic")), 0);
        assert_eq!(count_playing(sinks, both, Some("kelpie_mic")), 1);
        assert_eq!(count_playing(sinks, mic_only, None), 1, "without a microphone sink every stream counts");
    }
}
