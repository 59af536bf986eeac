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

const NO_SYMBOL: u32 = 0;
const CAPS_LOCK: u32 = 0xffe5;
const SHIFT_LOCK: u32 = 0xffe6;
const MODE_SWITCH: u32 = 0xff7e;
const NUM_LOCK: u32 = 0xff7f;

fn keysym_to_char(k: u32) -> Option<char> {
    match k {
        0x20..=0x7e | 0xa0..=0xff => char::from_u32(k),
        0x0100_0020..=0x0110_ffff => char::from_u32(k - 0x0100_0000),
        0xff0d | 0xff8d => Some('\n'),
        0xff09 | 0xff89 => Some('\t'),
        0xff08 => Some('\u{8}'),
        0xff1b => Some('\u{1b}'),
        0xffff => Some('\u{7f}'),
        0xff80 => Some(' '),
        0xffaa..=0xffb9 => char::from_u32(k - 0xffaa + '*' as u32),
        0xffbd => Some('='),
        0x20ac => Some('€'),
        0x0aa9 => Some('—'),
        0x0aaa => Some('–'),
        _ => None,
    }
}

fn char_to_keysym(c: char) -> u32 {
    match c {
        ' '..='~' | '\u{a0}'..='\u{ff}' => c as u32,
        _ => 0x0100_0000 + c as u32,
    }
}

/// (lowercase, uppercase) of a keysym; both equal it when it has no case.
fn convert_case(k: u32) -> (u32, u32) {
    let keypad = (0xff80..=0xffbd).contains(&k);
    let Some(c) = keysym_to_char(k).filter(|c| !c.is_control() && !keypad) else {
        return (k, k);
    };
    let one = |s: String| -> char {
        let mut it = s.chars();
        match (it.next(), it.next()) {
            (Some(x), None) => x,
            _ => c,
        }
    };
    let lower = one(c.to_lowercase().collect());
    let upper = one(c.to_uppercase().collect());
    if lower == upper {
        return (k, k);
    }
    let sym = |x: char| if x == c { k } else { char_to_keysym(x) };
    (sym(lower), sym(upper))
}

/// The core keyboard mapping, with what Lock, Mode_switch and Num_Lock mean.
struct Keymap {
    min: u8,
    max: u8,
    per: usize,
    syms: Vec<u32>,
    caps_lock: bool,
    shift_lock: bool,
    group_mask: u16,
    numlock_mask: u16,
}

impl Keymap {
    fn fetch(conn: &RustConnection) -> XResult<Self> {
        let (min, max) = (conn.setup().min_keycode, conn.setup().max_keycode);
        let r = conn.get_keyboard_mapping(min, max - min + 1)?.reply()?;
        let mut map = Self {
            min,
            max,
            per: usize::from(r.keysyms_per_keycode),
            syms: r.keysyms,
            caps_lock: false,
            shift_lock: false,
            group_mask: 0,
            numlock_mask: 0,
        };
        let m = conn.get_modifier_mapping()?.reply()?;
        let per_mod = m.keycodes.len() / 8;
        let has = |i: usize, sym: u32| {
            m.keycodes[i * per_mod..(i + 1) * per_mod].iter().any(|&kc| map.syms(kc).contains(&sym))
        };
        let mask_of = |sym| (3..8).filter(|&i| has(i, sym)).fold(0u16, |acc, i| acc | (1 << i));
        let (caps, shift_lock) = (has(1, CAPS_LOCK), has(1, SHIFT_LOCK));
        let (group_mask, numlock_mask) = (mask_of(MODE_SWITCH), mask_of(NUM_LOCK));
        map.caps_lock = caps;
        map.shift_lock = shift_lock && !caps;
        map.group_mask = group_mask;
        map.numlock_mask = numlock_mask;
        Ok(map)
    }

    fn syms(&self, kc: u8) -> &[u32] {
        if kc < self.min || kc > self.max || self.per == 0 {
            return &[];
        }
        let i = usize::from(kc - self.min) * self.per;
        self.syms.get(i..i + self.per).unwrap_or(&[])
    }

    /// The standard core-protocol KeyPress -> keysym rule.
    fn lookup(&self, kc: u8, state: u16) -> u32 {
        let s = self.syms(kc);
        let n = s.iter().rposition(|&k| k != NO_SYMBOL).map_or(0, |i| i + 1);
        let list = match n {
            0 => return NO_SYMBOL,
            1 => [s[0], NO_SYMBOL, s[0], NO_SYMBOL],
            2 => [s[0], s[1], s[0], s[1]],
            3 => [s[0], s[1], s[2], NO_SYMBOL],
            _ => [s[0], s[1], s[2], s[3]],
        };
        let g2 = state & self.group_mask != 0 && (list[2] != NO_SYMBOL || list[3] != NO_SYMBOL);
        let (mut first, mut second) = if g2 { (list[2], list[3]) } else { (list[0], list[1]) };
        if second == NO_SYMBOL {
            let (lower, upper) = convert_case(first);
            (first, second) = if lower == upper { (first, first) } else { (lower, upper) };
        }
        let shift = state & 1 != 0;
        let lock = state & 2 != 0;
        let (caps, shift_lock) = (lock && self.caps_lock, lock && self.shift_lock);
        let keypad = (0xff80..=0xffbd).contains(&second) || (0x1100_0000..=0x1100_ffff).contains(&second);
        if state & self.numlock_mask != 0 && keypad {
            if shift || shift_lock { first } else { second }
        } else if !shift && !caps && !shift_lock {
            first
        } else if !shift && caps {
            convert_case(first).1
        } else if shift && caps {
            convert_case(second).1
        } else {
            second
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Output

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
    match outcome {
        Ok(()) => Ok(()),
        Err(XFail::Closed(e)) => {
            if !o.quiet {
                eprintln!("kelpie-probe: X connection closed ({e})");
            }
            Ok(())
        }
        Err(XFail::Other(e)) => Err(e),
    }
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
    let mut keymap = Keymap::fetch(conn)?;
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
                Event::MappingNotify(e) if e.request != Mapping::POINTER => keymap = Keymap::fetch(conn)?,
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
    fn json_and_case() {
        assert_eq!(json_char(Some('a')), "\"a\"");
        assert_eq!(json_char(Some('"')), "\"\\\"\"");
        assert_eq!(json_char(Some('\n')), "\"\\u000a\"");
        assert_eq!(json_char(None), "null");
        assert_eq!(convert_case(0x61), (0x61, 0x41));
        assert_eq!(convert_case(0xdf), (0xdf, 0xdf));
        assert_eq!(keysym_to_char(char_to_keysym('東')), Some('東'));
    }
}
