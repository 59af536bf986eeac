//! Injects input into real Xvfb servers (displays :60-:67) and checks what X clients receive.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kelpie_input::{CAPS_LOCK, CONTROL_L, Injector, InputError, Keymap, SHIFT_L, char_to_keysym};
use x11rb::connection::Connection;
use x11rb::protocol::Event;
use x11rb::protocol::xproto::{
    ConnectionExt as _, CreateWindowAux, EventMask, InputFocus, Mapping, Window, WindowClass,
};
use x11rb::rust_connection::RustConnection;

const TEXT: &str = "Grüße, ça va? — Ωμέγα 東京 €@|~";

struct Xvfb {
    child: Child,
    display: String,
}

impl Xvfb {
    fn start(n: u32) -> Self {
        let display = format!(":{n}");
        let _ = std::fs::remove_file(format!("/tmp/.X{n}-lock"));
        let child = Command::new("Xvfb")
            .args([&display, "-screen", "0", "1280x720x24", "-noreset", "-nolisten", "tcp"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb must be installed");
        let start = Instant::now();
        while x11rb::connect(Some(&display)).is_err() {
            assert!(start.elapsed() < Duration::from_secs(10), "Xvfb {display} did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, display }
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Ev {
    Key { down: bool, keycode: u8, keysym: u32, ch: Option<char> },
    Button { down: bool, button: u8, x: i16, y: i16 },
    Motion,
}

/// A focused full-screen window that records input the way X clients interpret it.
struct Recorder {
    conn: RustConnection,
    root: Window,
    keymap: Keymap,
}

impl Recorder {
    fn new(display: &str) -> Self {
        let (conn, screen) = x11rb::connect(Some(display)).unwrap();
        let s = conn.setup().roots[screen].clone();
        let win = conn.generate_id().unwrap();
        let mask = EventMask::KEY_PRESS
            | EventMask::KEY_RELEASE
            | EventMask::BUTTON_PRESS
            | EventMask::BUTTON_RELEASE
            | EventMask::POINTER_MOTION
            | EventMask::STRUCTURE_NOTIFY;
        conn.create_window(
            s.root_depth,
            win,
            s.root,
            0,
            0,
            s.width_in_pixels,
            s.height_in_pixels,
            0,
            WindowClass::INPUT_OUTPUT,
            s.root_visual,
            &CreateWindowAux::new().override_redirect(1).event_mask(mask),
        )
        .unwrap();
        conn.map_window(win).unwrap();
        conn.flush().unwrap();
        loop {
            if let Event::MapNotify(_) = conn.wait_for_event().unwrap() {
                break;
            }
        }
        conn.set_input_focus(InputFocus::POINTER_ROOT, win, x11rb::CURRENT_TIME).unwrap().check().unwrap();
        let keymap = Keymap::fetch(&conn).unwrap();
        Self { conn, root: s.root, keymap }
    }

    /// Every input event so far, translated with the keymap and state at event time.
    fn collect(&mut self) -> Vec<Ev> {
        let mut out = Vec::new();
        let mut idle_since = Instant::now();
        self.conn.get_input_focus().unwrap().reply().unwrap();
        while idle_since.elapsed() < Duration::from_millis(40) {
            let Some(ev) = self.conn.poll_for_event().unwrap() else {
                std::thread::sleep(Duration::from_millis(2));
                continue;
            };
            idle_since = Instant::now();
            let key = |down, keycode: u8, state: u16, keymap: &Keymap| {
                let keysym = keymap.lookup(keycode, state & 0xff);
                Ev::Key { down, keycode, keysym, ch: kelpie_input::keysym_to_char(keysym) }
            };
            match ev {
                Event::MappingNotify(m) => {
                    if m.request == Mapping::KEYBOARD {
                        self.keymap.refresh_range(&self.conn, m.first_keycode, m.count).unwrap();
                    } else if m.request == Mapping::MODIFIER {
                        self.keymap.refresh_modifiers(&self.conn).unwrap();
                    }
                }
                Event::KeyPress(e) => out.push(key(true, e.detail, e.state.into(), &self.keymap)),
                Event::KeyRelease(e) => out.push(key(false, e.detail, e.state.into(), &self.keymap)),
                Event::ButtonPress(e) => {
                    out.push(Ev::Button { down: true, button: e.detail, x: e.root_x, y: e.root_y });
                }
                Event::ButtonRelease(e) => {
                    out.push(Ev::Button { down: false, button: e.detail, x: e.root_x, y: e.root_y });
                }
                Event::MotionNotify(_) => out.push(Ev::Motion),
                _ => {}
            }
        }
        out
    }

    fn pointer(&self) -> (i16, i16, u16) {
        let r = self.conn.query_pointer(self.root).unwrap().reply().unwrap();
        (r.root_x, r.root_y, r.mask.into())
    }

    fn keys_down(&self) -> usize {
        let r = self.conn.query_keymap().unwrap().reply().unwrap();
        r.keys.iter().map(|b| b.count_ones() as usize).sum()
    }
}

/// The text typed: characters of printable keysyms on KeyPress.
fn typed(events: &[Ev]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            Ev::Key { down: true, keysym, ch: Some(c), .. } if kelpie_input::is_printable(*keysym) => {
                Some(*c)
            }
            _ => None,
        })
        .collect()
}

fn setup(n: u32) -> (Xvfb, Recorder, Injector) {
    let x = Xvfb::start(n);
    let rec = Recorder::new(&x.display);
    let inj = Injector::open(&x.display).unwrap();
    (x, rec, inj)
}

#[test]
fn text_is_typed_exactly() {
    let (_x, mut rec, mut inj) = setup(60);
    let t = Instant::now();
    inj.text(TEXT).unwrap();
    inj.sync().unwrap();
    eprintln!("typed {} chars in {:?}", TEXT.chars().count(), t.elapsed());
    let ev = rec.collect();
    assert_eq!(typed(&ev), TEXT);
    // Balanced: every press has its release.
    let downs = ev.iter().filter(|e| matches!(e, Ev::Key { down: true, .. })).count();
    let ups = ev.iter().filter(|e| matches!(e, Ev::Key { down: false, .. })).count();
    assert_eq!(downs, ups);
    assert_eq!(rec.keys_down(), 0);
    assert!(inj.held_keysyms().is_empty());
}

#[test]
fn key_pairs_with_user_shift() {
    let (_x, mut rec, mut inj) = setup(61);
    // Shift held by the user around uppercase letters, as a browser sends it.
    for c in TEXT.chars() {
        let k = char_to_keysym(c);
        let upper = c.is_uppercase();
        if upper {
            inj.key(SHIFT_L, true).unwrap();
        }
        inj.key(k, true).unwrap();
        inj.key(k, false).unwrap();
        if upper {
            inj.key(SHIFT_L, false).unwrap();
        }
    }
    inj.sync().unwrap();
    assert_eq!(typed(&rec.collect()), TEXT);
    // Shift held through everything: lowercase letters and unshifted symbols must still come out right.
    inj.key(SHIFT_L, true).unwrap();
    for c in TEXT.chars() {
        inj.key(char_to_keysym(c), true).unwrap();
        inj.key(char_to_keysym(c), false).unwrap();
    }
    assert_eq!(inj.held_keysyms(), vec![SHIFT_L]);
    assert_ne!(rec.pointer().2 & 1, 0, "Shift is still down");
    inj.key(SHIFT_L, false).unwrap();
    inj.sync().unwrap();
    assert_eq!(typed(&rec.collect()), TEXT);
    assert_eq!(rec.keys_down(), 0);
}

#[test]
fn caps_lock_does_not_change_case() {
    let (_x, mut rec, mut inj) = setup(62);
    inj.key(CAPS_LOCK, true).unwrap();
    inj.key(CAPS_LOCK, false).unwrap();
    inj.sync().unwrap();
    assert_ne!(rec.pointer().2 & 2, 0, "Caps Lock is on");
    inj.text("aA").unwrap();
    inj.sync().unwrap();
    assert_eq!(typed(&rec.collect()), "aA");
    inj.text("üÜ zZ1!").unwrap();
    for c in "bB".chars() {
        inj.key(char_to_keysym(c), true).unwrap();
        inj.key(char_to_keysym(c), false).unwrap();
    }
    inj.sync().unwrap();
    assert_eq!(typed(&rec.collect()), "üÜ zZ1!bB");
    assert_ne!(rec.pointer().2 & 2, 0, "Caps Lock is still on");
}

#[test]
fn pointer_buttons_and_wheel() {
    let (_x, mut rec, mut inj) = setup(63);
    let points = [(0, 0), (1279, 719), (640, 360), (17, 701), (1000, 3)];
    for &(x, y) in &points {
        inj.pointer(x, y).unwrap();
        inj.button(1, true).unwrap();
        inj.button(1, false).unwrap();
    }
    inj.sync().unwrap();
    let presses: Vec<(u8, i16, i16)> = rec
        .collect()
        .into_iter()
        .filter_map(|e| match e {
            Ev::Button { down: true, button, x, y } => Some((button, x, y)),
            _ => None,
        })
        .collect();
    let want: Vec<_> = points.iter().map(|&(x, y)| (1, x as i16, y as i16)).collect();
    assert_eq!(presses, want);

    // Clamped to the screen.
    inj.pointer(-50, 5000).unwrap();
    inj.sync().unwrap();
    let (px, py, _) = rec.pointer();
    assert_eq!((px, py), (0, 719));
    let _ = rec.collect();

    inj.pointer(400, 300).unwrap();
    for (dx, dy) in [(0, -1), (0, 1), (-1, 0), (1, 0), (0, 2)] {
        inj.wheel(dx, dy).unwrap();
    }
    inj.button(3, true).unwrap();
    inj.button(3, false).unwrap();
    inj.button(8, true).unwrap();
    inj.button(8, false).unwrap();
    inj.sync().unwrap();
    let ev = rec.collect();
    let buttons: Vec<(u8, bool)> = ev
        .iter()
        .filter_map(|e| match *e {
            Ev::Button { down, button, .. } => Some((button, down)),
            _ => None,
        })
        .collect();
    let mut want = Vec::new();
    for b in [4, 5, 6, 7, 5, 5, 3, 8] {
        want.push((b, true));
        want.push((b, false));
    }
    assert_eq!(buttons, want);

    let (x0, y0, _) = rec.pointer();
    let moves = [(30, -20), (1, 1), (-2, 3), (2, 0)];
    for (dx, dy) in moves {
        inj.pointer_rel(dx, dy).unwrap();
    }
    inj.sync().unwrap();
    let (x1, y1, _) = rec.pointer();
    assert_eq!((x1 - x0, y1 - y0), (31, -16));
    assert!(rec.collect().contains(&Ev::Motion));
}

#[test]
fn release_all_leaves_nothing_down() {
    let (_x, mut rec, mut inj) = setup(64);
    inj.key(char_to_keysym('q'), true).unwrap();
    inj.key(SHIFT_L, true).unwrap();
    inj.key(char_to_keysym('東'), true).unwrap();
    inj.button(1, true).unwrap();
    inj.sync().unwrap();
    assert_eq!(rec.keys_down(), 3);
    assert_ne!(rec.pointer().2 & 0x100, 0);
    inj.release_all().unwrap();
    inj.sync().unwrap();
    let ev = rec.collect();
    let releases = ev.iter().filter(|e| matches!(e, Ev::Key { down: false, .. })).count();
    assert_eq!(releases, 3, "{ev:?}");
    assert!(ev.iter().any(|e| matches!(e, Ev::Button { down: false, button: 1, .. })));
    assert_eq!(rec.keys_down(), 0);
    assert_eq!(rec.pointer().2 & 0x1fff, 0);
    assert!(inj.held_keysyms().is_empty() && inj.held_buttons().is_empty());
}

#[test]
fn release_keys_except_keeps_only_listed() {
    let (_x, mut rec, mut inj) = setup(65);
    let (a, b) = (char_to_keysym('a'), char_to_keysym('b'));
    inj.key(a, true).unwrap();
    inj.key(b, true).unwrap();
    inj.key(CONTROL_L, true).unwrap();
    inj.release_keys_except(&[b]).unwrap();
    inj.sync().unwrap();
    assert_eq!(inj.held_keysyms(), vec![b]);
    assert_eq!(rec.keys_down(), 1);
    inj.release_keys_except(&[]).unwrap();
    inj.sync().unwrap();
    assert_eq!(rec.keys_down(), 0);
    assert!(inj.held_keysyms().is_empty());
    let ev = rec.collect();
    assert_eq!(ev.iter().filter(|e| matches!(e, Ev::Key { down: false, .. })).count(), 3);
}

#[test]
fn spare_keycodes_are_reused_but_never_while_held() {
    let (_x, mut rec, mut inj) = setup(66);
    let held = char_to_keysym('東');
    inj.key(held, true).unwrap();
    inj.sync().unwrap();
    let first = rec.collect();
    let Some(Ev::Key { keycode: held_kc, .. }) = first.first().cloned() else { panic!("{first:?}") };
    // Many more missing characters than spare keycodes: each must still come out right.
    let chars: Vec<char> = (0x4e00u32..0x4e00 + 60).filter_map(char::from_u32).collect();
    let t = Instant::now();
    for &c in &chars {
        inj.text(&c.to_string()).unwrap();
        inj.sync().unwrap();
        let ev = rec.collect();
        assert_eq!(typed(&ev), c.to_string());
        assert!(ev.iter().all(|e| !matches!(e, Ev::Key { keycode, .. } if *keycode == held_kc)));
    }
    eprintln!("{} remaps in {:?}", chars.len(), t.elapsed());
    inj.key(held, false).unwrap();
    inj.sync().unwrap();
    let ev = rec.collect();
    assert!(matches!(ev.as_slice(), [Ev::Key { down: false, keycode, .. }] if *keycode == held_kc), "{ev:?}");
    assert_eq!(rec.keys_down(), 0);
}

#[test]
fn errors_instead_of_panics() {
    assert!(matches!(Injector::open(":59"), Err(InputError::Open { .. })));
    let x = Xvfb::start(67);
    let mut inj = Injector::open(&x.display).unwrap();
    drop(x);
    std::thread::sleep(Duration::from_millis(200));
    let mut err = None;
    for _ in 0..10 {
        if let Err(e) = inj.text("hello").and_then(|()| inj.sync()) {
            err = Some(e);
            break;
        }
    }
    let err = err.expect("a dead server must give an error");
    assert!(matches!(err, InputError::Display(_)), "{err:?}");
    eprintln!("{err}");
    assert!(inj.release_all().is_err());
}

#[test]
fn missing_xtest_is_a_clear_error() {
    let display = ":68";
    let _ = std::fs::remove_file("/tmp/.X68-lock");
    let child = Command::new("Xvfb")
        .args([display, "-screen", "0", "640x480x24", "-noreset", "-nolisten", "tcp", "-extension", "XTEST"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let x = Xvfb { child, display: display.into() };
    let start = Instant::now();
    while x11rb::connect(Some(&x.display)).is_err() {
        assert!(start.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(50));
    }
    let err = Injector::open(&x.display).unwrap_err();
    assert!(matches!(err, InputError::NoXtest(_)), "{err:?}");
    assert!(err.to_string().contains("XTEST"));
}
