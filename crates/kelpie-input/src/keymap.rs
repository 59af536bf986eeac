//! A copy of the display's core keyboard mapping and the core-protocol keysym lookup rule.

use x11rb::connection::Connection;
use x11rb::protocol::xproto::ConnectionExt as _;

use crate::InputError;
use crate::keysym::{self, CAPS_LOCK, MODE_SWITCH, NO_SYMBOL, NUM_LOCK, SHIFT_LOCK, convert_case, is_keypad};

/// Modifier bit of Shift in a core state mask.
pub const SHIFT_MASK: u16 = 1;
/// Modifier bit of Lock in a core state mask.
pub const LOCK_MASK: u16 = 2;

/// How the Lock modifier is interpreted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockKind {
    /// No Caps_Lock or Shift_Lock keysym on a Lock keycode: Lock is ignored.
    None,
    /// Caps_Lock: lowercase alphabetic keysyms are shown uppercase.
    Caps,
    /// Shift_Lock: Lock acts like Shift.
    Shift,
}

/// The core keyboard mapping and modifier mapping of a display.
#[derive(Debug, Clone)]
pub struct Keymap {
    min_keycode: u8,
    max_keycode: u8,
    per: usize,
    syms: Vec<u32>,
    /// Keycodes of each of the 8 modifiers (Shift, Lock, Control, Mod1..Mod5).
    modifiers: [Vec<u8>; 8],
    group_mask: u16,
    numlock_mask: u16,
    lock: LockKind,
}

impl Keymap {
    /// Reads the current keyboard and modifier mappings.
    pub fn fetch(conn: &impl Connection) -> Result<Self, InputError> {
        let setup = conn.setup();
        let (min_keycode, max_keycode) = (setup.min_keycode, setup.max_keycode);
        let mut map = Self {
            min_keycode,
            max_keycode,
            per: 0,
            syms: Vec::new(),
            modifiers: Default::default(),
            group_mask: 0,
            numlock_mask: 0,
            lock: LockKind::None,
        };
        map.refresh_keys(conn)?;
        map.refresh_modifiers(conn)?;
        Ok(map)
    }

    /// Re-reads the whole keyboard mapping.
    pub fn refresh_keys(&mut self, conn: &impl Connection) -> Result<(), InputError> {
        let count = self.max_keycode - self.min_keycode + 1;
        let reply = conn.get_keyboard_mapping(self.min_keycode, count)?.reply()?;
        self.per = usize::from(reply.keysyms_per_keycode);
        self.syms = reply.keysyms;
        self.syms.resize(self.per * usize::from(count), NO_SYMBOL);
        self.derive_modifier_meanings();
        Ok(())
    }

    /// Re-reads the mapping of `count` keycodes from `first` (after a MappingNotify).
    pub fn refresh_range(&mut self, conn: &impl Connection, first: u8, count: u8) -> Result<(), InputError> {
        let first = first.max(self.min_keycode);
        let last = (usize::from(first) + usize::from(count)).min(usize::from(self.max_keycode) + 1);
        if last <= usize::from(first) {
            return Ok(());
        }
        let count = (last - usize::from(first)) as u8;
        let reply = conn.get_keyboard_mapping(first, count)?.reply()?;
        if usize::from(reply.keysyms_per_keycode) != self.per {
            return self.refresh_keys(conn);
        }
        let start = usize::from(first - self.min_keycode) * self.per;
        let n = (usize::from(count) * self.per).min(reply.keysyms.len());
        self.syms[start..start + n].copy_from_slice(&reply.keysyms[..n]);
        self.derive_modifier_meanings();
        Ok(())
    }

    /// Re-reads the modifier mapping.
    pub fn refresh_modifiers(&mut self, conn: &impl Connection) -> Result<(), InputError> {
        let reply = conn.get_modifier_mapping()?.reply()?;
        let per = reply.keycodes.len() / 8;
        for (i, m) in self.modifiers.iter_mut().enumerate() {
            *m = reply.keycodes[i * per..(i + 1) * per].iter().copied().filter(|&k| k != 0).collect();
        }
        self.derive_modifier_meanings();
        Ok(())
    }

    fn derive_modifier_meanings(&mut self) {
        let has = |m: usize, sym: u32| self.modifiers[m].iter().any(|&kc| self.syms(kc).contains(&sym));
        let lock = if has(1, CAPS_LOCK) {
            LockKind::Caps
        } else if has(1, SHIFT_LOCK) {
            LockKind::Shift
        } else {
            LockKind::None
        };
        let mask_of = |sym| (3..8).filter(|&m| has(m, sym)).fold(0u16, |acc, m| acc | (1 << m));
        (self.group_mask, self.numlock_mask) = (mask_of(MODE_SWITCH), mask_of(NUM_LOCK));
        self.lock = lock;
    }

    /// Smallest keycode.
    pub fn min_keycode(&self) -> u8 {
        self.min_keycode
    }

    /// Largest keycode.
    pub fn max_keycode(&self) -> u8 {
        self.max_keycode
    }

    /// All keycodes, smallest first.
    pub fn keycodes(&self) -> impl Iterator<Item = u8> + use<> {
        self.min_keycode..=self.max_keycode
    }

    /// The keysyms bound to a keycode (empty for keycodes out of range).
    pub fn syms(&self, keycode: u8) -> &[u32] {
        if keycode < self.min_keycode || keycode > self.max_keycode || self.per == 0 {
            return &[];
        }
        let i = usize::from(keycode - self.min_keycode) * self.per;
        &self.syms[i..i + self.per]
    }

    /// Keycodes of modifier `index` (0 Shift, 1 Lock, 2 Control, 3..=7 Mod1..Mod5).
    pub fn modifier_keycodes(&self, index: usize) -> &[u8] {
        self.modifiers.get(index).map_or(&[], Vec::as_slice)
    }

    /// How Lock is interpreted.
    pub fn lock_kind(&self) -> LockKind {
        self.lock
    }

    /// The keysym a KeyPress of `keycode` in modifier `state` means, by the standard core
    /// protocol rule (group chosen by Mode_switch, level by Shift/Lock/Num_Lock, with the case
    /// rules for alphabetic keysyms). `NO_SYMBOL` when the key has none.
    pub fn lookup(&self, keycode: u8, state: u16) -> u32 {
        let syms = self.syms(keycode);
        let n = syms.iter().rposition(|&s| s != NO_SYMBOL).map_or(0, |i| i + 1);
        let at = |i: usize| syms[i];
        let list = match n {
            0 => return NO_SYMBOL,
            1 => [at(0), NO_SYMBOL, at(0), NO_SYMBOL],
            2 => [at(0), at(1), at(0), at(1)],
            3 => [at(0), at(1), at(2), NO_SYMBOL],
            _ => [at(0), at(1), at(2), at(3)],
        };
        let group2 = state & self.group_mask != 0 && (list[2] != NO_SYMBOL || list[3] != NO_SYMBOL);
        let (mut first, mut second) = if group2 { (list[2], list[3]) } else { (list[0], list[1]) };
        if second == NO_SYMBOL {
            let (lower, upper) = convert_case(first);
            if lower != upper {
                (first, second) = (lower, upper);
            } else {
                second = first;
            }
        }
        let shift = state & SHIFT_MASK != 0;
        let lock = state & LOCK_MASK != 0;
        let caps = lock && self.lock == LockKind::Caps;
        let shift_lock = lock && self.lock == LockKind::Shift;
        if state & self.numlock_mask != 0 && is_keypad(second) {
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

    /// The character a KeyPress means, as [`Self::lookup`] then [`keysym::keysym_to_char`].
    pub fn lookup_char(&self, keycode: u8, state: u16) -> Option<char> {
        keysym::keysym_to_char(self.lookup(keycode, state))
    }

    /// Keycodes bound to nothing at all.
    pub fn empty_keycodes(&self) -> Vec<u8> {
        self.keycodes().filter(|&kc| self.syms(kc).iter().all(|&s| s == NO_SYMBOL)).collect()
    }

    /// Replaces the local copy of one keycode's keysyms (after reading it back).
    pub(crate) fn set_syms(&mut self, keycode: u8, syms: &[u32]) -> bool {
        if syms.len() != self.per || keycode < self.min_keycode || keycode > self.max_keycode {
            return false;
        }
        let i = usize::from(keycode - self.min_keycode) * self.per;
        self.syms[i..i + self.per].copy_from_slice(syms);
        true
    }
}
