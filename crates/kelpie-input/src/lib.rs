//! Exact keyboard and mouse injection into an X display through XTEST.
//!
//! [`Injector`] owns one X connection. Keysyms are typed through the display's current core
//! keyboard mapping with exactly the Shift / Caps Lock state they need; keysyms the layout lacks
//! are bound on the fly to a spare keycode. Every fake press is remembered so that
//! [`Injector::release_all`] can undo it.
//!
//! The injector is a plain single-threaded object (`Send`, not `Sync`): keep it on one thread
//! (or behind a mutex) and feed it events in order.

mod keymap;
mod keysym;

use x11rb::connection::{Connection, RequestConnection};
use x11rb::errors::{ConnectError, ConnectionError, ReplyError};
use x11rb::protocol::Event;
use x11rb::protocol::xproto::{
    ChangeWindowAttributesAux, ConnectionExt as _, EventMask, KEY_PRESS_EVENT, KEY_RELEASE_EVENT, Mapping,
    Window,
};
use x11rb::protocol::xtest::{self, ConnectionExt as _};
use x11rb::rust_connection::RustConnection;

pub use keymap::{Keymap, LOCK_MASK, LockKind, SHIFT_MASK};
pub use keysym::{
    ALT_L, BACKSPACE, CAPS_LOCK, CONTROL_L, DELETE, ESCAPE, ISO_LEVEL3_SHIFT, MODE_SWITCH, NO_SYMBOL,
    NUM_LOCK, RETURN, SHIFT_L, SHIFT_LOCK, SHIFT_R, SUPER_L, TAB, char_to_keysym, convert_case, is_modifier,
    is_printable, keysym_to_char,
};

const BUTTON_PRESS: u8 = 4;
const BUTTON_RELEASE: u8 = 5;
const MOTION_NOTIFY: u8 = 6;
/// At most this many wheel clicks per axis and call.
const MAX_WHEEL_CLICKS: i32 = 50;

/// Why input could not be injected. Each variant keeps the X error that caused it as its
/// `source`; the message says what failed.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The display could not be opened.
    #[error("cannot open X display {display:?}")]
    Open {
        /// The display name.
        display: String,
        /// What went wrong.
        #[source]
        source: ConnectError,
    },
    /// The display has no such screen.
    #[error("X display {display:?} has no screen {screen}")]
    NoScreen {
        /// The display name.
        display: String,
        /// The screen asked for.
        screen: usize,
    },
    /// The server lacks the XTEST extension.
    #[error("the X server on {0:?} has no XTEST extension; input cannot be injected")]
    NoXtest(String),
    /// The X connection failed or the server refused a request.
    #[error("X display error (the connection was lost or a request refused)")]
    Display(#[source] ReplyError),
    /// Every spare keycode is held down, so a missing keysym cannot be bound.
    #[error("no free keycode to bind keysym {0:#x} (all spare keycodes are held down)")]
    NoSpareKeycode(u32),
}

impl From<ConnectionError> for InputError {
    fn from(e: ConnectionError) -> Self {
        Self::Display(ReplyError::ConnectionError(e))
    }
}

impl From<ReplyError> for InputError {
    fn from(e: ReplyError) -> Self {
        Self::Display(e)
    }
}

/// A key this injector holds down.
#[derive(Debug, Clone, Copy)]
struct Held {
    keysym: u32,
    keycode: u8,
}

/// A spare keycode bound by the injector.
#[derive(Debug, Clone, Copy)]
struct Remap {
    keycode: u8,
    keysym: u32,
    last_used: u64,
}

/// How to get a keysym out of a keycode: which modifiers to change around the press.
#[derive(Debug, Clone, Copy)]
struct Plan {
    keycode: u8,
    /// Set Shift (true) / clear it (false) around the press; `None`: leave it.
    shift: Option<bool>,
    /// Tap Caps Lock before and after.
    flip_lock: bool,
}

/// Injects keyboard and pointer input into one X display with XTEST.
pub struct Injector {
    conn: RustConnection,
    root: Window,
    width: u16,
    height: u16,
    keymap: Keymap,
    held: Vec<Held>,
    buttons: Vec<u8>,
    /// Keycodes that had no keysyms when the mapping was last read in full, or that we bound.
    spare: Vec<u8>,
    remaps: Vec<Remap>,
    tick: u64,
}

impl std::fmt::Debug for Injector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Injector")
            .field("size", &(self.width, self.height))
            .field("held", &self.held)
            .field("buttons", &self.buttons)
            .field("remaps", &self.remaps.len())
            .finish_non_exhaustive()
    }
}

impl Injector {
    /// Connects to `display` (e.g. `":0"`) and checks for XTEST.
    pub fn open(display: &str) -> Result<Self, InputError> {
        let (conn, screen_num) = x11rb::connect(Some(display))
            .map_err(|source| InputError::Open { display: display.to_owned(), source })?;
        if conn.extension_information(xtest::X11_EXTENSION_NAME)?.is_none() {
            return Err(InputError::NoXtest(display.to_owned()));
        }
        conn.xtest_get_version(2, 2)?.reply()?;
        let screen = conn
            .setup()
            .roots
            .get(screen_num)
            .ok_or_else(|| InputError::NoScreen { display: display.to_owned(), screen: screen_num })?;
        let (root, width, height) = (screen.root, screen.width_in_pixels, screen.height_in_pixels);
        // Follow screen size changes (ConfigureNotify on the root) to clamp absolute motion.
        conn.change_window_attributes(
            root,
            &ChangeWindowAttributesAux::new().event_mask(EventMask::STRUCTURE_NOTIFY),
        )?
        .check()?;
        let keymap = Keymap::fetch(&conn)?;
        let spare = keymap.empty_keycodes();
        let name = display;
        tracing::debug!(display = name, spare = spare.len(), "XTEST injector ready");
        Ok(Self {
            conn,
            root,
            width,
            height,
            keymap,
            held: Vec::new(),
            buttons: Vec::new(),
            spare,
            remaps: Vec::new(),
            tick: 0,
        })
    }

    /// The injector's copy of the display's keyboard mapping.
    pub fn keymap(&self) -> &Keymap {
        &self.keymap
    }

    /// Keysyms currently held down by [`Self::key`].
    pub fn held_keysyms(&self) -> Vec<u32> {
        self.held.iter().map(|h| h.keysym).collect()
    }

    /// Buttons currently held down by [`Self::button`].
    pub fn held_buttons(&self) -> Vec<u8> {
        self.buttons.clone()
    }

    /// Waits until the server has processed everything sent so far (one round trip).
    pub fn sync(&mut self) -> Result<(), InputError> {
        self.conn.get_input_focus()?.reply()?;
        self.process_events()
    }

    /// Presses (`down`) or releases a key by keysym. Printable keysyms are typed with exactly
    /// the Shift / Caps Lock state they need (restored right after the press); other keysyms
    /// (modifiers, function keys, arrows...) are pressed with the current modifiers.
    pub fn key(&mut self, keysym: u32, down: bool) -> Result<(), InputError> {
        self.process_events()?;
        if keysym == NO_SYMBOL {
            return Ok(());
        }
        if down {
            let keycode = self.press(keysym)?;
            if !self.held.iter().any(|h| h.keysym == keysym) {
                self.held.push(Held { keysym, keycode });
            }
        } else if let Some(i) = self.held.iter().position(|h| h.keysym == keysym) {
            let h = self.held.remove(i);
            self.fake_key(h.keycode, false)?;
        }
        self.conn.flush()?;
        Ok(())
    }

    /// Types `text`: a press and a release per character (`'\n'` is Return, `'\t'` Tab; other
    /// control characters and `'\r'` are skipped).
    pub fn text(&mut self, text: &str) -> Result<(), InputError> {
        self.process_events()?;
        for c in text.chars() {
            if c == '\r' || (c.is_control() && c != '\n' && c != '\t') {
                continue;
            }
            let keysym = char_to_keysym(c);
            let keycode = self.press(keysym)?;
            self.fake_key(keycode, false)?;
        }
        self.conn.flush()?;
        Ok(())
    }

    /// Moves the pointer to (x, y) on the root window, clamped to the screen.
    pub fn pointer(&mut self, x: i32, y: i32) -> Result<(), InputError> {
        self.process_events()?;
        let x = x.clamp(0, i32::from(self.width).max(1) - 1) as i16;
        let y = y.clamp(0, i32::from(self.height).max(1) - 1) as i16;
        self.conn.xtest_fake_input(MOTION_NOTIFY, 0, 0, self.root, x, y, 0)?;
        self.conn.flush()?;
        Ok(())
    }

    /// Moves the pointer by (dx, dy) pixels.
    pub fn pointer_rel(&mut self, dx: i32, dy: i32) -> Result<(), InputError> {
        self.process_events()?;
        let clamp = |v: i32| v.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
        self.conn.xtest_fake_input(MOTION_NOTIFY, 1, 0, x11rb::NONE, clamp(dx), clamp(dy), 0)?;
        self.conn.flush()?;
        Ok(())
    }

    /// Presses or releases a pointer button (1 left, 2 middle, 3 right, 8 back, 9 forward...).
    /// Button 0 is ignored; releasing a button not held is a no-op.
    pub fn button(&mut self, button: u8, down: bool) -> Result<(), InputError> {
        self.process_events()?;
        if button == 0 {
            return Ok(());
        }
        if down {
            self.conn.xtest_fake_input(BUTTON_PRESS, button, 0, x11rb::NONE, 0, 0, 0)?;
            if !self.buttons.contains(&button) {
                self.buttons.push(button);
            }
        } else if let Some(i) = self.buttons.iter().position(|&b| b == button) {
            self.buttons.remove(i);
            self.conn.xtest_fake_input(BUTTON_RELEASE, button, 0, x11rb::NONE, 0, 0, 0)?;
        }
        self.conn.flush()?;
        Ok(())
    }

    /// Scrolls by wheel clicks: `dy > 0` down (button 5), `dy < 0` up (4), `dx < 0` left (6),
    /// `dx > 0` right (7); each click is a press and release. At most 50 clicks per axis.
    pub fn wheel(&mut self, dx: i32, dy: i32) -> Result<(), InputError> {
        self.process_events()?;
        for (delta, neg, pos) in [(dy, 4u8, 5u8), (dx, 6, 7)] {
            let button = if delta < 0 { neg } else { pos };
            for _ in 0..delta.unsigned_abs().min(MAX_WHEEL_CLICKS as u32) {
                self.conn.xtest_fake_input(BUTTON_PRESS, button, 0, x11rb::NONE, 0, 0, 0)?;
                self.conn.xtest_fake_input(BUTTON_RELEASE, button, 0, x11rb::NONE, 0, 0, 0)?;
            }
        }
        self.conn.flush()?;
        Ok(())
    }

    /// Heartbeat: releases every key held by this injector whose keysym is not in `held`.
    pub fn release_keys_except(&mut self, held: &[u32]) -> Result<(), InputError> {
        self.process_events()?;
        let (keep, release): (Vec<Held>, Vec<Held>) =
            self.held.iter().partition(|h| held.contains(&h.keysym));
        self.held = keep;
        for h in release.iter().rev() {
            self.fake_key(h.keycode, false)?;
        }
        self.conn.flush()?;
        Ok(())
    }

    /// Releases every key and button this injector pressed.
    pub fn release_all(&mut self) -> Result<(), InputError> {
        self.release_keys_except(&[])?;
        for b in std::mem::take(&mut self.buttons).into_iter().rev() {
            self.conn.xtest_fake_input(BUTTON_RELEASE, b, 0, x11rb::NONE, 0, 0, 0)?;
        }
        self.conn.flush()?;
        Ok(())
    }

    // -----------------------------------------------------------------------------------------

    fn fake_key(&self, keycode: u8, down: bool) -> Result<(), InputError> {
        let kind = if down { KEY_PRESS_EVENT } else { KEY_RELEASE_EVENT };
        self.conn.xtest_fake_input(kind, keycode, 0, x11rb::NONE, 0, 0, 0)?;
        Ok(())
    }

    /// Handles queued events: mapping changes, screen size changes, errors.
    fn process_events(&mut self) -> Result<(), InputError> {
        let mut keys = None::<(u8, u8)>;
        let mut modifiers = false;
        while let Some(ev) = self.conn.poll_for_event()? {
            match ev {
                Event::MappingNotify(m) if m.request == Mapping::KEYBOARD => {
                    let (a, b) = (m.first_keycode, m.first_keycode.saturating_add(m.count));
                    keys = Some(keys.map_or((a, b), |(x, y)| (x.min(a), y.max(b))));
                }
                Event::MappingNotify(m) if m.request == Mapping::MODIFIER => modifiers = true,
                Event::ConfigureNotify(c) if c.window == self.root => {
                    (self.width, self.height) = (c.width, c.height)
                }
                Event::Error(e) => tracing::warn!(?e, "X error from the input injector"),
                _ => {}
            }
        }
        if let Some((a, b)) = keys {
            self.keymap.refresh_range(&self.conn, a, b - a)?;
            self.after_keymap_change();
        }
        if modifiers {
            self.keymap.refresh_modifiers(&self.conn)?;
        }
        Ok(())
    }

    /// Drops bindings that someone else overwrote and recomputes the spare keycodes.
    fn after_keymap_change(&mut self) {
        let map = &self.keymap;
        self.remaps.retain(|r| map.syms(r.keycode).first() == Some(&r.keysym));
        let mut spare = map.empty_keycodes();
        spare.extend(self.remaps.iter().map(|r| r.keycode));
        spare.sort_unstable();
        spare.dedup();
        self.spare = spare;
    }

    /// The current core modifier state (Shift, Lock, Control, Mod1..5).
    fn state(&self) -> Result<u16, InputError> {
        Ok(u16::from(self.conn.query_pointer(self.root)?.reply()?.mask) & 0xff)
    }

    /// Presses the key for `keysym` (binding a spare keycode if needed), with the modifier
    /// changes it needs undone right after the press. Returns the keycode pressed.
    fn press(&mut self, keysym: u32) -> Result<u8, InputError> {
        let state = self.state()?;
        let plan = match self.plan(keysym, state, None) {
            Some(p) => p,
            None => {
                let keycode = self.bind(keysym)?;
                self.plan(keysym, state, Some(keycode)).unwrap_or(Plan {
                    keycode,
                    shift: None,
                    flip_lock: false,
                })
            }
        };
        if let Some(r) = self.remaps.iter_mut().find(|r| r.keycode == plan.keycode) {
            self.tick += 1;
            r.last_used = self.tick;
        }
        let caps = self.keymap.modifier_keycodes(1).first().copied();
        let shift_key = self.keymap.modifier_keycodes(0).first().copied();
        let held_shift: Vec<u8> = {
            let shifts = self.keymap.modifier_keycodes(0);
            self.held.iter().map(|h| h.keycode).filter(|k| shifts.contains(k)).collect()
        };
        let tap_caps = |this: &Self| -> Result<(), InputError> {
            if let Some(k) = caps {
                this.fake_key(k, true)?;
                this.fake_key(k, false)?;
            }
            Ok(())
        };
        if plan.flip_lock {
            tap_caps(self)?;
        }
        match plan.shift {
            Some(true) => self.fake_key(shift_key.unwrap_or(0), true)?,
            Some(false) => held_shift.iter().try_for_each(|&k| self.fake_key(k, false))?,
            None => {}
        }
        self.fake_key(plan.keycode, true)?;
        match plan.shift {
            Some(true) => self.fake_key(shift_key.unwrap_or(0), false)?,
            Some(false) => held_shift.iter().try_for_each(|&k| self.fake_key(k, true))?,
            None => {}
        }
        if plan.flip_lock {
            tap_caps(self)?;
        }
        Ok(plan.keycode)
    }

    /// Finds a keycode and the modifier changes that make it type `keysym` (only `only` when
    /// given), preferring the fewest changes.
    fn plan(&self, keysym: u32, state: u16, only: Option<u8>) -> Option<Plan> {
        let map = &self.keymap;
        let candidates: Vec<u8> = match only {
            Some(k) => vec![k],
            None => map.keycodes().collect(),
        };
        // Function and modifier keys: the keycode whose first keysym it is, current modifiers.
        if !is_printable(keysym)
            && let Some(&keycode) = candidates.iter().find(|&&kc| map.syms(kc).first() == Some(&keysym))
        {
            return Some(Plan { keycode, shift: None, flip_lock: false });
        }
        let shift_now = state & SHIFT_MASK != 0;
        let shifts = map.modifier_keycodes(0);
        let can_press_shift = !shifts.is_empty();
        let can_release_shift = self.held.iter().any(|h| shifts.contains(&h.keycode));
        let caps_key = map.modifier_keycodes(1).first().is_some_and(|&k| map.syms(k).contains(&CAPS_LOCK));
        let can_flip_lock = caps_key && map.lock_kind() == LockKind::Caps;
        let (lower, upper) = convert_case(keysym);
        let cased = lower != upper;
        for (shift, flip_lock) in
            [(shift_now, false), (!shift_now, false), (shift_now, true), (!shift_now, true)]
        {
            if shift != shift_now && !(if shift { can_press_shift } else { can_release_shift }) {
                continue;
            }
            if flip_lock && !can_flip_lock {
                continue;
            }
            let mut s = state & !SHIFT_MASK;
            if shift {
                s |= SHIFT_MASK;
            }
            if flip_lock {
                s ^= LOCK_MASK;
            }
            // Shift + Caps Lock on a cased key means different things to core and XKB clients.
            if cased && shift && s & LOCK_MASK != 0 && map.lock_kind() == LockKind::Caps {
                continue;
            }
            if let Some(&keycode) =
                candidates.iter().find(|&&kc| keysym::same_symbol(keysym, map.lookup(kc, s)))
            {
                let shift = (shift != shift_now).then_some(shift);
                return Some(Plan { keycode, shift, flip_lock });
            }
        }
        None
    }

    /// Binds `keysym` to a spare keycode (least recently used, never one held down) and waits
    /// until the server uses the new mapping.
    fn bind(&mut self, keysym: u32) -> Result<u8, InputError> {
        let held = |kc: u8| self.held.iter().any(|h| h.keycode == kc);
        let fresh =
            self.spare.iter().copied().find(|&kc| !held(kc) && !self.remaps.iter().any(|r| r.keycode == kc));
        let keycode = match fresh {
            Some(kc) => kc,
            None => self
                .remaps
                .iter()
                .filter(|r| !held(r.keycode))
                .min_by_key(|r| r.last_used)
                .map(|r| r.keycode)
                .ok_or(InputError::NoSpareKeycode(keysym))?,
        };
        self.conn.change_keyboard_mapping(1, keycode, 2, &[keysym, keysym])?.check()?;
        // Read it back (a round trip: the server applies the new mapping before later requests).
        let reply = self.conn.get_keyboard_mapping(keycode, 1)?.reply()?;
        if !self.keymap.set_syms(keycode, &reply.keysyms) {
            self.keymap.refresh_keys(&self.conn)?;
        }
        self.remaps.retain(|r| r.keycode != keycode);
        self.tick += 1;
        self.remaps.push(Remap { keycode, keysym, last_used: self.tick });
        tracing::trace!(keycode, keysym, "bound keysym to spare keycode");
        Ok(keycode)
    }
}
