//! Recording a session: the live stream's encoded H.264 and Opus written into MP4 files as
//! they are, without encoding anything again.
//!
//! A [`Recording`] is one more subscriber of the session's video (and sound): it takes the
//! frames the live encoder made for the viewers, so recording costs a copy and a muxer, not
//! an encoder. It reads with a long lag allowance ([`RECORD_LAG`]), so a slow disk never
//! makes the stream produce keyframes for it; if it falls further behind than that it skips
//! to the next keyframe like any viewer. Files start at a keyframe and follow
//! [`rotation::Limits`] (see [`rotation`]); they are named after the UTC time they start
//! (`kelpie-20261207-142501.mp4`, `-2`, `-3`… if that name is taken) and readable by the
//! owner only.

pub mod mux;
pub mod rotation;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::{AudioSubscription, MediaError, VideoSubscription, error_chain};
use mux::Writer;
use rotation::{Decision, Limits, Rotation};

/// How far behind the live stream a recording may fall before it skips to a keyframe.
pub const RECORD_LAG: Duration = Duration::from_secs(5);
/// How often the recorder looks whether a file is due to end on a still screen.
const TICK: Duration = Duration::from_millis(250);

/// Where and how to record.
#[derive(Debug, Clone)]
pub struct RecordSettings {
    /// The directory the files go into (it must exist).
    pub dir: PathBuf,
    /// When to start a new file.
    pub limits: Limits,
}

/// What recordings have done, for metrics.
#[derive(Debug, Default)]
pub struct RecordCounters {
    /// Files started.
    pub files: AtomicU64,
    /// Bytes of media written (before the container's own).
    pub bytes: AtomicU64,
    /// Video frames written.
    pub frames: AtomicU64,
    /// Recordings that stopped on an error.
    pub failures: AtomicU64,
}

/// A running recording; [`Recording::stop`] ends its file properly.
pub struct Recording {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<Vec<PathBuf>, MediaError>>,
}

impl Recording {
    /// Starts recording `video` (and `audio`) into `settings.dir`.
    pub fn start(
        video: VideoSubscription,
        audio: Option<AudioSubscription>,
        settings: RecordSettings,
        counters: Arc<RecordCounters>,
    ) -> Self {
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            let result = run(video, audio, &settings, &counters, stopped).await;
            if let Err(e) = &result {
                counters.failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!("the recording stopped: {}", error_chain(e));
            }
            result
        });
        Self { stop: Some(stop), task }
    }

    /// Whether it stopped by itself (an error, or the stream ended).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Ends the recording; returns the files it wrote.
    pub async fn stop(mut self) -> Result<Vec<PathBuf>, MediaError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match (&mut self.task).await {
            Ok(r) => r,
            Err(e) => Err(MediaError::Config(format!("the recording task failed: {e}"))),
        }
    }
}

/// Ends `writer`'s file at media pts `end`, off the async threads (the muxer rewrites its
/// index).
async fn finish(writer: Writer, end: Duration) -> Result<PathBuf, MediaError> {
    tokio::task::spawn_blocking(move || writer.finish(end))
        .await
        .map_err(|e| MediaError::Config(format!("finishing a recording panicked: {e}")))?
}

async fn run(
    mut video: VideoSubscription,
    mut audio: Option<AudioSubscription>,
    settings: &RecordSettings,
    counters: &RecordCounters,
    mut stopped: oneshot::Receiver<()>,
) -> Result<Vec<PathBuf>, MediaError> {
    let mut rotation = Rotation::new(settings.limits);
    let mut writer: Option<Writer> = None;
    // The pts and capture time of the last frame: the media clock now, for ending a file.
    let mut last: Option<(Duration, Instant)> = None;
    let now_pts =
        |last: Option<(Duration, Instant)>| last.map_or(Duration::ZERO, |(pts, at)| pts + at.elapsed());
    let mut files = Vec::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let has_audio = audio.is_some();
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            _ = tick.tick() => {
                if rotation.wants_keyframe(Instant::now()) {
                    video.ask_keyframe();
                }
            }
            f = video.next_decodable(RECORD_LAG) => {
                let Some(f) = f else {
                    tracing::warn!("the recorded video stream ended");
                    break;
                };
                match rotation.video(f.keyframe, (f.width, f.height), f.data.len(), Instant::now()) {
                    Decision::Skip => continue,
                    Decision::NewFile => {
                        if let Some(old) = writer.take() {
                            files.push(finish(old, f.pts).await?);
                        }
                        let path = new_file(&settings.dir, SystemTime::now());
                        let w = Writer::create(&path, has_audio, f.pts)?;
                        tracing::info!(file = %path.display(), "recording into a new file");
                        counters.files.fetch_add(1, Ordering::Relaxed);
                        writer = Some(w);
                    }
                    Decision::Write => {}
                }
                last = Some((f.pts, f.captured));
                if let Some(w) = &mut writer {
                    w.video(&f.data, f.pts, f.keyframe)?;
                    counters.frames.fetch_add(1, Ordering::Relaxed);
                    counters.bytes.fetch_add(f.data.len() as u64, Ordering::Relaxed);
                }
            }
            a = async { audio.as_mut().expect("guarded").next_decodable(RECORD_LAG).await }, if audio.is_some() => {
                let Some(a) = a else {
                    // The sound stopped (its pipeline failed): go on with the picture.
                    audio = None;
                    continue;
                };
                if let Some(w) = &mut writer
                    && rotation.audio(a.data.len())
                {
                    w.audio(&a.data, a.pts)?;
                    counters.bytes.fetch_add(a.data.len() as u64, Ordering::Relaxed);
                }
            }
        }
    }
    if let Some(w) = writer.take() {
        files.push(finish(w, now_pts(last)).await?);
    }
    Ok(files)
}

/// A free name in `dir` for a file started at `now`.
fn new_file(dir: &Path, now: SystemTime) -> PathBuf {
    let stamp = utc_stamp(now);
    (1..)
        .map(|n| match n {
            1 => dir.join(format!("kelpie-{stamp}.mp4")),
            n => dir.join(format!("kelpie-{stamp}-{n}.mp4")),
        })
        .find(|p| std::fs::symlink_metadata(p).is_err())
        .expect("some name is free")
}

/// `YYYYmmdd-HHMMSS` in UTC.
fn utc_stamp(t: SystemTime) -> String {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Days since 1970-01-01 to a civil date (H. Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}{month:02}{day:02}-{:02}{:02}{:02}", rest / 3600, rest % 3600 / 60, rest % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_named_after_their_utc_start_and_never_reuse_a_name() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_653_501); // 2026-12-07 14:25:01
        assert_eq!(utc_stamp(t), "20261207-142501");
        assert_eq!(utc_stamp(SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400)), "20000229-000000");
        let dir = std::env::temp_dir().join(format!("kelpie-record-names-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let first = new_file(&dir, t);
        assert_eq!(first, dir.join("kelpie-20261207-142501.mp4"));
        std::fs::write(&first, b"").unwrap();
        assert_eq!(new_file(&dir, t), dir.join("kelpie-20261207-142501-2.mp4"));
        // A dangling link counts as taken: the writer would follow it.
        std::os::unix::fs::symlink("/nonexistent", dir.join("kelpie-20261207-142501-2.mp4")).unwrap();
        assert_eq!(new_file(&dir, t), dir.join("kelpie-20261207-142501-3.mp4"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
