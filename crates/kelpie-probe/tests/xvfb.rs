//! End-to-end check against a real X server. Needs `Xvfb` on the PATH; ignored by default:
//! `cargo test -p kelpie-probe -- --ignored`.

use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kelpie_probe::{ImageView, PixelFormat, STAMP_HEIGHT, STAMP_WIDTH, decode_stamp, unwrap_ms};
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{ConnectionExt, ImageFormat};

const DISPLAY: &str = ":58";

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// Reads the top-left `w` x `h` pixels of the root window as (bytes, format).
fn grab(w: u16, h: u16) -> Option<(Vec<u8>, PixelFormat)> {
    let (conn, screen) = x11rb::connect(Some(DISPLAY)).ok()?;
    let root = conn.setup().roots[screen].root;
    let reply = conn.get_image(ImageFormat::Z_PIXMAP, root, 0, 0, w, h, !0).ok()?.reply().ok()?;
    // Depth 24 on Xvfb: 32 bits per pixel, little-endian 0x00RRGGBB.
    Some((reply.data, PixelFormat::BGRX))
}

#[test]
#[ignore = "needs Xvfb"]
fn probe_draws_decodable_stamp_and_quadrants() {
    let _xvfb = Kill(
        Command::new("Xvfb")
            .args([DISPLAY, "-screen", "0", "1280x720x24", "-noreset", "-nolisten", "tcp"])
            .stderr(Stdio::null())
            .spawn()
            .expect("start Xvfb"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while x11rb::connect(Some(DISPLAY)).is_err() {
        assert!(Instant::now() < deadline, "Xvfb did not come up");
        sleep(Duration::from_millis(50));
    }
    let bin = env!("CARGO_BIN_EXE_kelpie-probe");

    for mode in ["bars", "noise", "clock", "typing"] {
        let _probe = Kill(
            Command::new(bin)
                .args([mode, "--display", DISPLAY, "--interval-ms", "100", "-q"])
                .spawn()
                .expect("start probe"),
        );
        sleep(Duration::from_millis(700));
        let before = now_ms();
        let (data, format) = grab(STAMP_WIDTH as u16, STAMP_HEIGHT as u16).expect("grab");
        let after = now_ms();
        let view = ImageView::packed(&data, STAMP_WIDTH, STAMP_HEIGHT, format);
        let ms = unwrap_ms(decode_stamp(&view, 1.0).expect(mode), after);
        let age = after - ms;
        assert!(ms <= after && age < 1000, "{mode}: stamp {ms}, grabbed {before}..{after}");
    }

    let _probe =
        Kill(Command::new(bin).args(["quadrants", "--display", DISPLAY, "-q"]).spawn().expect("start probe"));
    sleep(Duration::from_millis(500));
    let (data, _) = grab(1280, 720).expect("grab");
    let px = |x: usize, y: usize| {
        let o = (y * 1280 + x) * 4;
        (data[o + 2], data[o + 1], data[o])
    };
    assert_eq!(px(10, 10), (255, 0, 0));
    assert_eq!(px(1270, 10), (0, 255, 0));
    assert_eq!(px(10, 710), (0, 0, 255));
    assert_eq!(px(1270, 710), (255, 255, 0));
}

#[test]
fn bad_display_fails_with_one_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_kelpie-probe"))
        .args(["clock", "--display", ":57.9"])
        .output()
        .expect("run probe");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("cannot open display"), "{err}");
}

#[test]
fn help_lists_modes() {
    let out = Command::new(env!("CARGO_BIN_EXE_kelpie-probe")).arg("--help").output().expect("run probe");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for word in
        ["quadrants", "bars", "noise", "clock", "typing", "decode", "--fps", "--interval-ms", "--display"]
    {
        assert!(text.contains(word), "{word} missing from --help");
    }
}
