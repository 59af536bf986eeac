//! A video stream against a real Xvfb and the real libx264: how fast a new viewer of a still
//! screen gets its first picture, that the capture thread sleeps while nothing happens, and
//! that pts stay on the session's clock across a resize.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use kelpie_desktop::EmbeddedDesktop;
use kelpie_desktop::runtime::RuntimeDir;
use kelpie_media::{EncodedFrame, EncoderSettings, MediaClock, VideoSource, VideoSubscription};
use kelpie_protocol::VideoCodec;

const FPS: u32 = 60;

/// One test at a time: each watches its own capture thread and its timing.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
const LAG: Duration = Duration::from_secs(1);

/// An embedded display for the test; Kelpie's connections find its cookie through
/// `XAUTHORITY`, which the first call sets.
fn desktop(w: u32, h: u32, max: (u32, u32)) -> EmbeddedDesktop {
    // SAFETY: called first thing in each test, under SERIAL, when no other thread of this
    // program is running or touching the environment.
    let runtime = unsafe { RuntimeDir::process_wide() };
    EmbeddedDesktop::start(w, h, max, Some("sleep 600"), runtime.x_authority())
        .expect("Xvfb (Debian package xvfb)")
}

fn frame_time() -> Duration {
    Duration::from_secs(1) / FPS
}

fn source(display: &str, clock: MediaClock) -> VideoSource {
    let settings = EncoderSettings {
        fps: FPS,
        bitrate_kbps: 2000,
        threads: 1,
        cursor_in_video: false,
        delta_frames: true,
    };
    VideoSource::new(display, "x264", settings, clock).expect("libx264 (Debian package libx264-164)")
}

async fn next(sub: &mut VideoSubscription, within: Duration) -> Option<Arc<EncodedFrame>> {
    tokio::time::timeout(within, sub.next_decodable(LAG)).await.ok().flatten()
}

/// Reads frames until none has come for `quiet`: the stream is idle (refinement done).
async fn until_idle(sub: &mut VideoSubscription, quiet: Duration) {
    let end = Instant::now() + Duration::from_secs(10);
    while next(sub, quiet).await.is_some() {
        assert!(Instant::now() < end, "the stream never went idle on a still screen");
    }
}

/// Voluntary context switches of the capture thread so far.
fn capture_thread_wakeups() -> u64 {
    let tasks = std::fs::read_dir("/proc/self/task").unwrap();
    for t in tasks.map_while(Result::ok) {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if comm.starts_with("kelpie-capture") {
            let status = std::fs::read_to_string(t.path().join("status")).unwrap();
            let line = status.lines().find(|l| l.starts_with("voluntary_ctxt_switches:")).unwrap();
            return line.split_whitespace().nth(1).unwrap().parse().unwrap();
        }
    }
    panic!("no capture thread");
}

#[tokio::test]
async fn a_new_viewer_of_a_still_screen_gets_a_keyframe_within_a_frame_time() {
    let _serial = SERIAL.lock().await;
    // A bare display: a program that draws nothing, so the screen stays still.
    let x = desktop(320, 240, (320, 240));
    let source = source(x.display(), MediaClock::new());
    let mut first = source.subscribe(VideoCodec::H264).unwrap();
    let f = next(&mut first, Duration::from_secs(5)).await.expect("a first frame");
    assert!(f.keyframe);
    until_idle(&mut first, Duration::from_millis(400)).await;

    // Idle, the capture thread sleeps until something happens: it does not wake up to look
    // for keyframe requests (with a 50 ms poll it would wake 20 times a second).
    let before = capture_thread_wakeups();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let woke = capture_thread_wakeups() - before;
    assert!(woke <= 2, "the idle capture thread woke {woke} times in a second");

    // Each new viewer's keyframe arrives within one frame-time of subscribing. The viewers
    // come at moments 10 ms apart in the idle spell, so that a thread polling for requests
    // (the 50 ms poll of before, or any period over two frame-times) would be caught late
    // by most of them, whatever the phase of its polling.
    let stream = first.stream().clone();
    for trial in 0..5u32 {
        tokio::time::sleep(Duration::from_millis(10) * trial).await;
        let keyframes = stream.counters().keyframes.load(Ordering::Relaxed);
        let t = Instant::now();
        let mut viewer = source.subscribe(VideoCodec::H264).unwrap();
        let f = next(&mut viewer, Duration::from_secs(2)).await.expect("a keyframe");
        let took = t.elapsed();
        assert!(f.keyframe, "trial {trial}: the first frame is a keyframe");
        assert!(took <= frame_time(), "trial {trial}: the keyframe took {took:?}, more than a frame-time");
        assert_eq!(stream.counters().keyframes.load(Ordering::Relaxed), keyframes + 1);
        drop(viewer);
        until_idle(&mut first, Duration::from_millis(400)).await;
    }
}

#[tokio::test]
async fn a_viewer_joining_right_after_a_keyframe_starts_from_it_without_another() {
    let _serial = SERIAL.lock().await;
    let x = desktop(320, 240, (320, 240));
    let source = source(x.display(), MediaClock::new());
    let mut first = source.subscribe(VideoCodec::H264).unwrap();
    let key = next(&mut first, Duration::from_secs(5)).await.expect("a first frame");
    assert!(key.keyframe);
    let stream = first.stream().clone();
    let keyframes = stream.counters().keyframes.load(Ordering::Relaxed);

    // Within the keyframe rate limit of the last keyframe: a new keyframe would have to wait
    // for it, so the new viewer starts from the last one, at once.
    let t = Instant::now();
    let mut second = source.subscribe(VideoCodec::H264).unwrap();
    let f = next(&mut second, Duration::from_secs(2)).await.expect("a first picture");
    let took = t.elapsed();
    assert!(took <= frame_time(), "the first picture took {took:?}");
    assert!(f.keyframe && f.pts == key.pts, "the recent keyframe is replayed");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(stream.counters().keyframes.load(Ordering::Relaxed), keyframes, "no keyframe made for it");
}

#[tokio::test]
async fn pts_run_on_across_a_resize_on_the_session_clock() {
    let _serial = SERIAL.lock().await;
    let x = desktop(320, 240, (640, 480));
    let clock = MediaClock::new();
    let source = source(x.display(), clock);
    let mut sub = source.subscribe(VideoCodec::H264).unwrap();
    let mut frames = vec![next(&mut sub, Duration::from_secs(5)).await.expect("a first frame")];
    assert_eq!((frames[0].width, frames[0].height), (320, 240));
    until_idle(&mut sub, Duration::from_millis(300)).await;
    let display = x.display().to_string();
    tokio::task::spawn_blocking(move || kelpie_desktop::resize::resize(&display, 640, 480))
        .await
        .unwrap()
        .expect("xrandr resize");
    let end = Instant::now() + Duration::from_secs(5);
    while frames.last().unwrap().width != 640 {
        assert!(Instant::now() < end, "no frame at the new size");
        frames.push(next(&mut sub, Duration::from_secs(5)).await.expect("frames after the resize"));
    }
    let after = frames.last().unwrap();
    assert!(after.keyframe, "the new encoder starts with a keyframe");
    for f in &frames {
        // On the session's clock, whichever encoder made the frame: comparable with sound.
        assert_eq!(f.pts, clock.pts(f.captured));
    }
    // Not restarted from zero with the new encoder.
    assert!(
        after.pts > frames[0].pts + Duration::from_millis(300),
        "{:?} then {:?}",
        frames[0].pts,
        after.pts
    );
    for w in frames.windows(2) {
        assert!(w[1].pts > w[0].pts, "pts went back: {:?} then {:?}", w[0].pts, w[1].pts);
    }
}

/// Paints a rectangle of the root window of `display` in `pixel` and waits until the X
/// server has done it.
fn paint(display: &str, x: i16, y: i16, w: u16, h: u16, pixel: u32) {
    use x11rb::connection::Connection as _;
    use x11rb::protocol::xproto::{ConnectionExt as _, CreateGCAux, Rectangle, SubwindowMode};
    let (conn, screen) = x11rb::connect(Some(display)).expect("connect to the test display");
    let root = conn.setup().roots[screen].root;
    let gc = conn.generate_id().unwrap();
    let aux = CreateGCAux::new().foreground(pixel).subwindow_mode(SubwindowMode::INCLUDE_INFERIORS);
    conn.create_gc(gc, root, &aux).unwrap();
    conn.poly_fill_rectangle(root, gc, &[Rectangle { x, y, width: w, height: h }]).unwrap();
    conn.get_input_focus().unwrap().reply().unwrap();
}

#[tokio::test]
async fn a_monitors_stream_shows_its_half_and_sleeps_through_changes_on_the_other() {
    let _serial = SERIAL.lock().await;
    // Two 320x240 monitors side by side; only the right one is watched.
    let x = desktop(640, 240, (640, 240));
    let source = source(x.display(), MediaClock::new()).with_monitors(2).unwrap();
    let mut right = source.subscribe_monitor(VideoCodec::H264, 1, None).unwrap();
    let f = next(&mut right, Duration::from_secs(5)).await.expect("a first frame");
    assert_eq!((f.width, f.height), (320, 240), "the stream is one monitor big");
    let running: Vec<u32> = source.streams().iter().map(|s| s.monitor().index).collect();
    assert_eq!(running, [1], "only the watched monitor is encoded");
    until_idle(&mut right, Duration::from_millis(400)).await;

    // Changes on the left monitor wake nothing on the right one.
    let captured = right.stream().counters().frames_captured.load(Ordering::Relaxed);
    for i in 0..5u32 {
        paint(x.display(), 20, 20 + 30 * i as i16, 200, 20, 0x00ff_0000 >> (i % 3 * 8));
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert!(next(&mut right, Duration::from_millis(300)).await.is_none(), "a frame for the other monitor");
    assert_eq!(right.stream().counters().frames_captured.load(Ordering::Relaxed), captured);

    // A change on its own monitor (x 320 and on) is captured.
    paint(x.display(), 400, 100, 50, 50, 0x0000_ff00);
    let f = next(&mut right, Duration::from_secs(1)).await.expect("the right monitor's change");
    assert_eq!((f.width, f.height), (320, 240));
    // A monitor the display lacks is refused.
    assert!(source.subscribe_monitor(VideoCodec::H264, 2, None).is_err());
}
