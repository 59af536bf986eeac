//! The session's recordings: one started with the server (`--record DIR`), running until it
//! stops, and one the viewer with control starts and stops from the page where
//! `--record-dir DIR` allows it. Both take the live stream's H.264 and sound
//! ([`kelpie_media::record`]): recording encodes nothing. Every viewer is told whether the
//! session is recorded (`recording` message) when it joins and on every change.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use kelpie_media::error_chain;
use kelpie_media::record::rotation::Limits;
use kelpie_media::record::{RecordCounters, RecordSettings, Recording};
use kelpie_protocol::{ServerMessage, VideoCodec};
use tokio::sync::Mutex;

use crate::AppState;
use crate::prometheus::{self, Kind};

/// Where recordings go and how they are cut.
#[derive(Debug, Clone, Default)]
pub struct RecordConfig {
    /// Record from the start into this directory (`--record`).
    pub always: Option<PathBuf>,
    /// The controller may record into this directory (`--record-dir`).
    pub on_demand: Option<PathBuf>,
    /// When to start a new file.
    pub limits: Limits,
}

/// The session's recordings.
pub struct Recorder {
    config: RecordConfig,
    always: Mutex<Option<Recording>>,
    on_demand: Mutex<Option<Recording>>,
    counters: Arc<RecordCounters>,
}

impl Recorder {
    /// Checks the directories (made, 0700, if missing) before anything starts.
    pub fn new(config: RecordConfig) -> anyhow::Result<Self> {
        for (dir, flag) in [(&config.always, "--record"), (&config.on_demand, "--record-dir")] {
            if let Some(dir) = dir {
                prepare_dir(dir, flag)?;
            }
        }
        Ok(Self { config, always: Mutex::new(None), on_demand: Mutex::new(None), counters: Arc::default() })
    }

    /// Starts the `--record` recording, if asked.
    pub async fn start(&self, state: &AppState) -> anyhow::Result<()> {
        let Some(dir) = &self.config.always else { return Ok(()) };
        let recording = self.begin(state, dir)?;
        *self.always.lock().await = Some(recording);
        tracing::info!(dir = %dir.display(), "recording the session (--record)");
        Ok(())
    }

    /// Starts or stops the controller's recording. `Err` says why not, for the page.
    pub async fn set(&self, state: &AppState, on: bool) -> Result<(), String> {
        let Some(dir) = &self.config.on_demand else {
            return Err("recording from the page is off: start Kelpie with --record-dir DIR".into());
        };
        let mut slot = self.on_demand.lock().await;
        match (on, slot.take()) {
            (true, Some(running)) if !running.is_finished() => *slot = Some(running),
            (true, _) => {
                *slot = Some(self.begin(state, dir).map_err(|e| format!("{e:#}"))?);
                tracing::info!(dir = %dir.display(), "recording started from the page");
            }
            (false, Some(running)) => {
                drop(slot);
                let files = running.stop().await.map_err(|e| error_chain(&e))?;
                tracing::info!(?files, "recording stopped from the page");
            }
            (false, None) => {}
        }
        Ok(())
    }

    /// Whether a recording is running.
    pub async fn is_on(&self) -> bool {
        let running = |r: &Option<Recording>| r.as_ref().is_some_and(|r| !r.is_finished());
        running(&*self.always.lock().await) || running(&*self.on_demand.lock().await)
    }

    /// What every viewer is told.
    pub async fn message(&self) -> ServerMessage {
        ServerMessage::Recording { on: self.is_on().await, available: self.config.on_demand.is_some() }
    }

    /// Ends every recording, finishing its file (at shutdown).
    pub async fn stop_all(&self) {
        for slot in [&self.always, &self.on_demand] {
            if let Some(r) = slot.lock().await.take() {
                match r.stop().await {
                    Ok(files) => tracing::info!(?files, "recording finished"),
                    Err(e) => tracing::warn!("the recording did not finish cleanly: {}", error_chain(&e)),
                }
            }
        }
    }

    fn begin(&self, state: &AppState, dir: &Path) -> anyhow::Result<Recording> {
        let video = state.source.subscribe(VideoCodec::H264).map_err(|e| {
            anyhow::anyhow!(
                "recording needs the H.264 stream ({}); use an H.264 encoder (--encoder x264)",
                error_chain(&e)
            )
        })?;
        let audio = state.audio.as_ref().and_then(|a| {
            a.subscribe().inspect_err(|e| tracing::warn!("recording without sound: {}", error_chain(e))).ok()
        });
        let settings = RecordSettings { dir: dir.to_owned(), limits: self.config.limits };
        Ok(Recording::start(video, audio, settings, self.counters.clone()))
    }

    /// Its counters in the Prometheus text format.
    pub fn write_metrics(&self, out: &mut String, on: bool) {
        let r = Ordering::Relaxed;
        let c = &self.counters;
        prometheus::scalar(
            out,
            "kelpie_recording",
            Kind::Gauge,
            "Whether the session is being recorded.",
            u8::from(on),
        );
        for (name, help, value) in [
            ("kelpie_recording_files_total", "Recording files started.", c.files.load(r)),
            ("kelpie_recording_frames_total", "Video frames written into recordings.", c.frames.load(r)),
            (
                "kelpie_recording_bytes_total",
                "Bytes of video and sound written into recordings.",
                c.bytes.load(r),
            ),
            ("kelpie_recording_failures_total", "Recordings that stopped on an error.", c.failures.load(r)),
        ] {
            prometheus::scalar(out, name, Kind::Counter, help, value);
        }
    }
}

/// Makes `dir` (0700) if it is missing; refuses anything but a directory.
fn prepare_dir(dir: &Path, flag: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => {
            anyhow::bail!("{flag} {}: not a directory; give a directory for the recordings", dir.display())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| {
                anyhow::anyhow!("{flag} {}: cannot create it ({e}); create it or give another", dir.display())
            })
        }
        Err(e) => anyhow::bail!("{flag} {}: {e}", dir.display()),
    }
}

/// The limits from the flags' numbers (0: none).
pub fn limits(max_size_mib: u64, max_time_s: u64) -> Limits {
    Limits {
        max_bytes: (max_size_mib > 0).then_some(max_size_mib << 20),
        max_time: (max_time_s > 0).then(|| Duration::from_secs(max_time_s)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_are_made_private_and_files_are_refused() {
        let base = std::env::temp_dir().join(format!("kelpie-record-dir-{}", std::process::id()));
        let dir = base.join("a/b");
        prepare_dir(&dir, "--record").unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
        prepare_dir(&dir, "--record").unwrap();
        let file = base.join("f");
        std::fs::write(&file, b"").unwrap();
        let e = prepare_dir(&file, "--record-dir").unwrap_err().to_string();
        assert!(e.contains("--record-dir") && e.contains("not a directory"), "{e}");
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn zero_means_no_limit() {
        assert_eq!(limits(0, 0), Limits::default());
        assert_eq!(
            limits(2, 60),
            Limits { max_bytes: Some(2 << 20), max_time: Some(Duration::from_secs(60)) }
        );
    }
}
