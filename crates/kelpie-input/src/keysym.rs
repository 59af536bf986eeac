//! Keysym <-> character conversion and the case rules of the X core protocol.

/// `NoSymbol`.
pub const NO_SYMBOL: u32 = 0;
/// `Return`.
pub const RETURN: u32 = 0xff0d;
/// `Tab`.
pub const TAB: u32 = 0xff09;
/// `BackSpace`.
pub const BACKSPACE: u32 = 0xff08;
/// `Escape`.
pub const ESCAPE: u32 = 0xff1b;
/// `Delete`.
pub const DELETE: u32 = 0xffff;
/// `Shift_L`.
pub const SHIFT_L: u32 = 0xffe1;
/// `Shift_R`.
pub const SHIFT_R: u32 = 0xffe2;
/// `Control_L`.
pub const CONTROL_L: u32 = 0xffe3;
/// `Caps_Lock`.
pub const CAPS_LOCK: u32 = 0xffe5;
/// `Shift_Lock`.
pub const SHIFT_LOCK: u32 = 0xffe6;
/// `Alt_L`.
pub const ALT_L: u32 = 0xffe9;
/// `Super_L`.
pub const SUPER_L: u32 = 0xffeb;
/// `ISO_Level3_Shift` (AltGr).
pub const ISO_LEVEL3_SHIFT: u32 = 0xfe03;
/// `Mode_switch`.
pub const MODE_SWITCH: u32 = 0xff7e;
/// `Num_Lock`.
pub const NUM_LOCK: u32 = 0xff7f;

const UNICODE_OFFSET: u32 = 0x0100_0000;

/// Legacy (non-Unicode, non-Latin-1) keysyms with a character meaning that common keymaps use.
const LEGACY: &[(u32, char)] = &[
    (0x20ac, '€'),
    (0x0aa9, '—'),
    (0x0aaa, '–'),
    (0x0ad0, '‘'),
    (0x0ad1, '’'),
    (0x0ad2, '“'),
    (0x0ad3, '”'),
    (0x0aae, '…'),
    (0x13bc, 'Œ'),
    (0x13bd, 'œ'),
    (0x13be, 'Ÿ'),
];

/// The keysym X uses for a character: Latin-1 characters are their code point, every other
/// character is `0x0100_0000 + code point`. Control characters map to the keys that type them
/// (`'\n'` and `'\r'` to Return, `'\t'` to Tab, backspace, escape, delete).
pub fn char_to_keysym(c: char) -> u32 {
    match c {
        '\n' | '\r' => RETURN,
        '\t' => TAB,
        '\u{8}' => BACKSPACE,
        '\u{1b}' => ESCAPE,
        '\u{7f}' => DELETE,
        ' '..='~' | '\u{a0}'..='\u{ff}' => c as u32,
        _ => UNICODE_OFFSET + c as u32,
    }
}

/// The character a keysym types, if any: Latin-1, Unicode keysyms (`0x0100_0000 + cp`), keypad
/// keysyms, Return/Tab/BackSpace/Escape/Delete and a few legacy keysyms (EuroSign, emdash...).
pub fn keysym_to_char(k: u32) -> Option<char> {
    match k {
        0x20..=0x7e | 0xa0..=0xff => char::from_u32(k),
        0x0100_0020..=0x0110_ffff => char::from_u32(k - UNICODE_OFFSET),
        RETURN | 0xff8d => Some('\n'),
        TAB | 0xff89 => Some('\t'),
        BACKSPACE => Some('\u{8}'),
        ESCAPE => Some('\u{1b}'),
        DELETE => Some('\u{7f}'),
        0xff80 => Some(' '),
        0xffaa..=0xffb9 => char::from_u32(k - 0xffaa + '*' as u32),
        0xffbd => Some('='),
        _ => LEGACY.iter().find(|&&(s, _)| s == k).map(|&(_, c)| c),
    }
}

/// Whether the keysym types a visible character (not a function, modifier or control key).
pub fn is_printable(k: u32) -> bool {
    keysym_to_char(k).is_some_and(|c| !c.is_control())
}

/// Keypad keysyms as the core protocol defines them.
pub(crate) fn is_keypad(k: u32) -> bool {
    (0xff80..=0xffbd).contains(&k) || (0x1100_0000..=0x1100_ffff).contains(&k)
}

/// Modifier keysyms (pressed and released as plain keys, never with modifier compensation).
pub fn is_modifier(k: u32) -> bool {
    matches!(k, 0xffe1..=0xffee | 0xfe01..=0xfe13 | MODE_SWITCH | NUM_LOCK)
}

fn single(mut it: impl Iterator<Item = char>) -> Option<char> {
    let c = it.next()?;
    it.next().is_none().then_some(c)
}

/// The (lowercase, uppercase) forms of a keysym, as `XConvertCase` gives them; both equal the
/// keysym when it has no case.
pub fn convert_case(k: u32) -> (u32, u32) {
    let Some(c) = keysym_to_char(k).filter(|_| is_printable(k) && !is_keypad(k)) else {
        return (k, k);
    };
    let lower = single(c.to_lowercase()).unwrap_or(c);
    let upper = single(c.to_uppercase()).unwrap_or(c);
    if lower == upper {
        return (k, k);
    }
    let same_or = |x: char| if x == c { k } else { char_to_keysym(x) };
    (same_or(lower), same_or(upper))
}

/// Whether two keysyms type the same thing: equal, or the same character (keypad keysyms only
/// match exactly: core and XKB clients disagree on their Shift level without Num Lock).
pub(crate) fn same_symbol(a: u32, b: u32) -> bool {
    a == b || (!is_keypad(a) && !is_keypad(b) && is_printable(a) && keysym_to_char(a) == keysym_to_char(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for c in "aZ09 ~!@|üßçÿ—Ωμέγα東京€😀\u{a0}".chars() {
            assert_eq!(keysym_to_char(char_to_keysym(c)), Some(c), "{c:?}");
        }
        assert_eq!(char_to_keysym('a'), 0x61);
        assert_eq!(char_to_keysym('é'), 0xe9);
        assert_eq!(char_to_keysym('€'), 0x0100_20ac);
        assert_eq!(char_to_keysym('\n'), RETURN);
        assert_eq!(keysym_to_char(RETURN), Some('\n'));
        assert_eq!(keysym_to_char(0x20ac), Some('€'));
        assert_eq!(keysym_to_char(0xffb7), Some('7'));
        assert_eq!(keysym_to_char(0xffab), Some('+'));
        assert_eq!(keysym_to_char(SHIFT_L), None);
        assert_eq!(keysym_to_char(0xffbe), None); // F1
        for k in 0x20..=0x7e {
            assert_eq!(char_to_keysym(keysym_to_char(k).unwrap()), k);
        }
    }

    #[test]
    fn cases() {
        assert_eq!(convert_case(0x61), (0x61, 0x41));
        assert_eq!(convert_case(0x41), (0x61, 0x41));
        assert_eq!(convert_case(0xfc), (0xfc, 0xdc));
        assert_eq!(convert_case(0xdf), (0xdf, 0xdf));
        assert_eq!(convert_case(0x31), (0x31, 0x31));
        assert_eq!(convert_case(char_to_keysym('ω')), (char_to_keysym('ω'), char_to_keysym('Ω')));
        assert_eq!(convert_case(0xffb1), (0xffb1, 0xffb1));
        assert!(is_modifier(SHIFT_L) && is_modifier(ISO_LEVEL3_SHIFT) && !is_modifier(RETURN));
        assert!(is_printable(0x20) && !is_printable(RETURN));
        assert!(same_symbol(0x20ac, char_to_keysym('€')) && !same_symbol(0x31, 0xffb1));
    }
}
