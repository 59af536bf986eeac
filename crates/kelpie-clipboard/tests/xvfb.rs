//! The clipboard and cursor against a real Xvfb: two `Clipboard`s on one display pass text
//! and images to each other through the X server (INCR included), and `xclip`, when
//! installed, reads and writes what they see.

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use kelpie_clipboard::{Clip, Clipboard, Mime, cursor};

struct Xvfb {
    child: Child,
    display: String,
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn xvfb() -> Option<Xvfb> {
    let mut child = Command::new("Xvfb")
        .args(["-displayfd", "1", "-screen", "0", "640x480x24", "-nolisten", "tcp"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take()?).read_line(&mut line).ok()?;
    Some(Xvfb { child, display: format!(":{}", line.trim()) })
}

fn has(cmd: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {cmd}")]).output().is_ok_and(|o| o.status.success())
}

fn listener(display: &str) -> (Clipboard, mpsc::Receiver<Clip>) {
    let (tx, rx) = mpsc::channel();
    let c = Clipboard::start(display, 16 << 20, move |clip| {
        let _ = tx.send(clip);
    })
    .expect("clipboard starts");
    (c, rx)
}

fn big_text(len: usize) -> Vec<u8> {
    let pattern = "Grüße, 東京 — 0123456789 abcdefghijklmnopqrstuvwxyz\n";
    let mut s = String::new();
    while s.len() < len {
        s.push_str(pattern);
    }
    s.into_bytes()
}

#[test]
fn text_and_png_pass_between_two_clients_with_incr() {
    let Some(x) = xvfb() else {
        eprintln!("Xvfb is not installed; skipped");
        return;
    };
    let (a, a_rx) = listener(&x.display);
    let (b, b_rx) = listener(&x.display);
    let wait = Duration::from_secs(15);

    let small = Clip { mime: Mime::Text, data: "héllo ✓".as_bytes().to_vec() };
    a.set(small.clone());
    assert_eq!(b_rx.recv_timeout(wait).unwrap(), small);
    // The owner does not hear about its own change.
    assert!(a_rx.recv_timeout(Duration::from_millis(300)).is_err());

    let large = Clip { mime: Mime::Text, data: big_text(5 << 20) };
    b.set(large.clone());
    let got = a_rx.recv_timeout(wait).unwrap();
    assert_eq!(got.data.len(), large.data.len());
    assert!(got == large, "5 MiB text differs");

    let png =
        Clip { mime: Mime::Png, data: cursor::encode_png(2, 2, &[0xff00_00ff, 0xffff_0000, 0, 0x8000_8000]) };
    a.set(png.clone());
    assert_eq!(b_rx.recv_timeout(wait).unwrap(), png);
}

#[test]
fn xclip_sees_and_sets_the_clipboard() {
    if !has("xclip") {
        eprintln!("xclip is not installed; skipped");
        return;
    }
    let Some(x) = xvfb() else {
        eprintln!("Xvfb is not installed; skipped");
        return;
    };
    let (a, a_rx) = listener(&x.display);
    let text = big_text(5 << 20);
    a.set(Clip { mime: Mime::Text, data: text.clone() });
    std::thread::sleep(Duration::from_millis(200));
    let out = Command::new("xclip")
        .args(["-o", "-selection", "clipboard", "-display", &x.display])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(out.stdout == text, "xclip read {} bytes", out.stdout.len());

    let mut child = Command::new("xclip")
        .args(["-i", "-selection", "clipboard", "-display", &x.display])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all("from xclip ✓".as_bytes()).unwrap();
    child.wait().unwrap();
    let got = a_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(got, Clip { mime: Mime::Text, data: "from xclip ✓".as_bytes().to_vec() });
    // xclip stays as the owner until the display goes, with `x`.
}

#[test]
fn cursor_changes_are_reported() {
    let Some(x) = xvfb() else {
        eprintln!("Xvfb is not installed; skipped");
        return;
    };
    let (tx, rx) = mpsc::channel();
    cursor::watch(&x.display, move |c| {
        let _ = tx.send(c);
    })
    .unwrap();
    let first = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(first.width > 0 && !first.png.is_empty());
    // A window with the crosshair cursor of the cursor font, under the pointer.
    use x11rb::connection::Connection as _;
    use x11rb::protocol::xproto::{ConnectionExt as _, CreateWindowAux, WindowClass};
    let (conn, screen) = x11rb::connect(Some(&x.display)).unwrap();
    let root = conn.setup().roots[screen].root;
    let font = conn.generate_id().unwrap();
    conn.open_font(font, b"cursor").unwrap();
    let cur = conn.generate_id().unwrap();
    conn.create_glyph_cursor(cur, font, font, 34, 35, 0, 0, 0, 0xffff, 0xffff, 0xffff).unwrap();
    let win = conn.generate_id().unwrap();
    let aux = CreateWindowAux::new().cursor(cur);
    conn.create_window(0, win, root, 0, 0, 640, 480, 0, WindowClass::INPUT_OUTPUT, 0, &aux).unwrap();
    conn.map_window(win).unwrap();
    conn.warp_pointer(x11rb::NONE, win, 0, 0, 0, 0, 100, 100).unwrap();
    conn.flush().unwrap();
    let next = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_ne!(next.serial, first.serial);
    assert!(next.width > 0 && !next.png.is_empty() && !next.hidden);
    assert!(next.hot_x > 0 && next.hot_y > 0, "crosshair hotspot is inside the image");
}
