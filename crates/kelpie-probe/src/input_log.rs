//! `input-log`: a focused full-screen window that prints every input event as a JSON line, with
//! keysyms and characters as X clients see them (core-protocol lookup, keymap at event time).

use std::io::Write;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail};
use x11rb::connection::Connection;
use x11rb::protocol::Event;
use x11rb::protocol::xproto::{
    ConfigureWindowAux, ConnectionExt as _, CreateWindowAux, EventMask, InputFocus, Mapping, StackMode,
    Window, WindowClass,
};
use x11rb::rust_connection::RustConnection;

use kelpie_input::{Keymap, keysym_to_char};

use crate::{STOP, XFail, XResult, install_signal_handlers, parse_number, wait};

/// Options of `input-log`.
#[derive(Debug, Default)]
pub(crate) struct LogOptions {
    display: Option<String>,
    out: Option<String>,
    duration: Option<Duration>,
    quiet: bool,
}

pub(crate) fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<LogOptions>> {
    let mut o = LogOptions::default();
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = || inline.clone().or_else(|| args.next());
        match name.as_str() {
            "-h" | "--help" => return Ok(None),
            "-q" | "--quiet" => o.quiet = true,
            "--display" => o.display = Some(value().context("--display needs a value")?),
            "--out" => o.out = Some(value().context("--out needs a FILE")?),
            "--duration" => {
                let s: f64 = parse_number(&name, value())?;
                o.duration = Some(Duration::try_from_secs_f64(s).ok().context("--duration must be >= 0")?);
            }
            _ => bail!("unknown argument {arg:?} for input-log (try --help)"),
        }
    }
    Ok(Some(o))
}

// ---------------------------------------------------------------------------------------------
// Keysyms and the core keymap

/// The keymap copy follows the display's mapping: the injector remaps spare keycodes on the
/// fly, so it is re-read on every MappingNotify. Keys are translated with the core
/// protocol's rule, as X clients do (`kelpie_input::Keymap`).
fn fetch_keymap(conn: &RustConnection) -> XResult<Keymap> {
    Keymap::fetch(conn).map_err(|e| XFail::from(anyhow::anyhow!("reading the keymap: {e}")))
}

fn epoch_ms() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

fn json_char(c: Option<char>) -> String {
    let Some(c) = c else { return "null".into() };
    match c {
        '"' => "\"\\\"\"".into(),
        '\\' => "\"\\\\\"".into(),
        c if (c as u32) < 0x20 || c == '\u{7f}' => format!("\"\\u{:04x}\"", c as u32),
        c => format!("\"{c}\""),
    }
}

fn key_line(down: bool, keycode: u8, state: u16, map: &Keymap) -> String {
    let keysym = map.lookup(keycode, state & 0xff);
    format!(
        "{{\"t\":{:.3},\"type\":\"key\",\"down\":{down},\"keycode\":{keycode},\"keysym\":{keysym},\"char\":{}}}",
        epoch_ms(),
        json_char(keysym_to_char(keysym))
    )
}

fn button_line(down: bool, button: u8, x: i16, y: i16) -> String {
    format!(
        "{{\"t\":{:.3},\"type\":\"button\",\"down\":{down},\"button\":{button},\"x\":{x},\"y\":{y}}}",
        epoch_ms()
    )
}

// ---------------------------------------------------------------------------------------------
// Main loop

pub(crate) fn run(o: &LogOptions) -> Result<()> {
    let wake_fd = install_signal_handlers()?;
    let display = o
        .display
        .clone()
        .or_else(|| std::env::var("DISPLAY").ok())
        .filter(|d| !d.is_empty())
        .context("cannot open display: DISPLAY is not set (use --display :N)")?;
    let (conn, screen_num) = x11rb::connect(Some(&display))
        .map_err(|e| anyhow::anyhow!("cannot open display {display:?}: {e}"))?;
    let mut out: Box<dyn Write> = match &o.out {
        Some(path) => Box::new(std::fs::File::create(path).with_context(|| format!("creating {path}"))?),
        None => Box::new(std::io::stdout()),
    };
    let mut count = 0u64;
    let outcome = log_loop(&conn, screen_num, o, wake_fd, &mut *out, &mut count);
    if !o.quiet {
        eprintln!("kelpie-probe: input-log: {count} events");
    }
    crate::finish(outcome, o.quiet)
}

fn log_loop(
    conn: &RustConnection,
    screen_num: usize,
    o: &LogOptions,
    wake_fd: RawFd,
    out: &mut dyn Write,
    count: &mut u64,
) -> XResult<()> {
    let screen = conn.setup().roots[screen_num].clone();
    let root = screen.root;
    let win: Window = conn.generate_id()?;
    let mask = EventMask::KEY_PRESS
        | EventMask::KEY_RELEASE
        | EventMask::BUTTON_PRESS
        | EventMask::BUTTON_RELEASE
        | EventMask::POINTER_MOTION
        | EventMask::STRUCTURE_NOTIFY;
    conn.create_window(
        screen.root_depth,
        win,
        root,
        0,
        0,
        screen.width_in_pixels,
        screen.height_in_pixels,
        0,
        WindowClass::INPUT_OUTPUT,
        screen.root_visual,
        &CreateWindowAux::new().override_redirect(1).background_pixel(screen.white_pixel).event_mask(mask),
    )?;
    // Follow screen size changes.
    conn.change_window_attributes(
        root,
        &x11rb::protocol::xproto::ChangeWindowAttributesAux::new().event_mask(EventMask::STRUCTURE_NOTIFY),
    )?;
    let mut keymap = fetch_keymap(conn)?;
    conn.map_window(win)?;
    conn.configure_window(win, &ConfigureWindowAux::new().stack_mode(StackMode::ABOVE))?;
    conn.flush()?;
    let x_fd = conn.stream().as_raw_fd();
    let end = o.duration.map(|d| Instant::now() + d);
    let mut emit = |line: String| -> XResult<()> {
        writeln!(out, "{line}").and_then(|()| out.flush()).map_err(|e| XFail::Other(e.into()))?;
        *count += 1;
        Ok(())
    };
    loop {
        while let Some(ev) = conn.poll_for_event()? {
            match ev {
                Event::MapNotify(e) if e.window == win => {
                    conn.set_input_focus(InputFocus::POINTER_ROOT, win, x11rb::CURRENT_TIME)?;
                }
                Event::ConfigureNotify(e) if e.window == root => {
                    let aux = ConfigureWindowAux::new().width(u32::from(e.width)).height(u32::from(e.height));
                    conn.configure_window(win, &aux)?;
                }
                Event::MappingNotify(e) if e.request != Mapping::POINTER => keymap = fetch_keymap(conn)?,
                Event::KeyPress(e) => emit(key_line(true, e.detail, e.state.into(), &keymap))?,
                Event::KeyRelease(e) => emit(key_line(false, e.detail, e.state.into(), &keymap))?,
                Event::ButtonPress(e) => emit(button_line(true, e.detail, e.root_x, e.root_y))?,
                Event::ButtonRelease(e) => emit(button_line(false, e.detail, e.root_x, e.root_y))?,
                Event::MotionNotify(e) => emit(format!(
                    "{{\"t\":{:.3},\"type\":\"motion\",\"x\":{},\"y\":{}}}",
                    epoch_ms(),
                    e.root_x,
                    e.root_y
                ))?,
                Event::Error(e) => return Err(XFail::Other(anyhow::anyhow!("X error: {e:?}"))),
                _ => {}
            }
        }
        if STOP.load(Ordering::SeqCst) {
            return Ok(());
        }
        let now = Instant::now();
        if end.is_some_and(|e| now >= e) {
            return Ok(());
        }
        conn.flush()?;
        wait(x_fd, wake_fd, end.map(|e| e.saturating_duration_since(now)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_escapes_what_json_needs() {
        assert_eq!(json_char(Some('a')), "\"a\"");
        assert_eq!(json_char(Some('"')), "\"\\\"\"");
        assert_eq!(json_char(Some('\n')), "\"\\u000a\"");
        assert_eq!(json_char(None), "null");
    }
}
