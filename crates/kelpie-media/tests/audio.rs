//! Sound capture against a real PulseAudio: nothing is captured while nothing plays, a
//! program that plays starts the capture (Opus frames flow), and the capture stops again
//! a while after it ends.

use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use kelpie_desktop::pulse::{self, Pulse};
use kelpie_media::audio::IDLE_STOP;
use kelpie_media::{AudioSettings, AudioSource, MediaClock};

fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

#[tokio::test]
async fn capture_runs_only_while_something_plays() {
    let runtime = kelpie_desktop::runtime::RuntimeDir::create(None).expect("a runtime directory in $TMPDIR");
    let pulse = Pulse::start_private(true, runtime.path())
        .expect("pulseaudio must be installed (Debian package pulseaudio)");
    let server = pulse.server().expect("a private server has an address").to_string();
    let source = AudioSource::new(
        AudioSettings {
            server: Some(server.clone()),
            device: pulse::CAPTURE_DEVICE.into(),
            bitrate_kbps: 64,
            mic_sink: Some(pulse::MIC_SINK.into()),
        },
        MediaClock::new(),
    );
    let mut sub = source.subscribe().unwrap();
    let counters = source.counters().clone();

    // Silence: no capture at all.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(counters.capturing.load(Ordering::Relaxed), 0);
    assert_eq!(counters.captures_started.load(Ordering::Relaxed), 0);

    // A program plays a tone into the default sink.
    let mut player = Command::new("gst-launch-1.0")
        .args([
            "-q",
            "audiotestsrc",
            "freq=440",
            "is-live=true",
            "!",
            "pulsesink",
            &format!("server={server}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("gst-launch-1.0 (Debian package gstreamer1.0-tools)");
    let frame = tokio::time::timeout(Duration::from_secs(5), sub.recv()).await;
    assert!(matches!(frame, Ok(Ok(_))), "no sound captured while a tone plays: {frame:?}");
    assert_eq!(counters.capturing.load(Ordering::Relaxed), 1);
    // A continuous tone: after the encoder's first frame (shortened by its look-ahead), each
    // frame's pts is 10 ms (480 samples) after the previous one, whatever the scheduling
    // (the receiver plays packets by these times), or a whole number of frames later where
    // a loaded machine lost samples; and capture times stay close to the pts timeline.
    let _first = frame;
    let mut prev = tokio::time::timeout(Duration::from_secs(2), sub.recv()).await.unwrap().unwrap();
    let mut exact = 0;
    for _ in 0..100 {
        let f = tokio::time::timeout(Duration::from_secs(2), sub.recv()).await.unwrap().unwrap();
        let step = f.pts - prev.pts;
        let frames = (step.as_secs_f64() / 0.010).round().max(1.0);
        let off = step.abs_diff(Duration::from_secs_f64(frames * 0.010));
        assert!(
            off < Duration::from_nanos(100),
            "pts {:?} after {:?}: not a whole number of frames",
            f.pts,
            prev.pts
        );
        exact += usize::from(frames == 1.0);
        let wall = f.captured.saturating_duration_since(source.epoch());
        assert!(wall.abs_diff(f.pts) < Duration::from_millis(100), "pts {:?}, captured at {wall:?}", f.pts);
        prev = f;
    }
    assert!(exact >= 90, "only {exact} of 100 frames follow their predecessor directly");
    let _ = player.kill();
    let _ = player.wait();

    // It stops a while after the tone ends; not before.
    tokio::time::sleep(IDLE_STOP / 2).await;
    assert_eq!(counters.capturing.load(Ordering::Relaxed), 1, "stopped too early");
    assert!(
        wait_until(IDLE_STOP + Duration::from_secs(3), || counters.capturing.load(Ordering::Relaxed) == 0),
        "capture still runs after the player ended"
    );
    assert_eq!(counters.captures_started.load(Ordering::Relaxed), 1);
    drop(sub);
    drop(pulse);
}
