//! Event-device records: a pad's state → the `struct input_event` records a program reads
//! from `/dev/input/event1000+N` (`linux/input.h`: a `struct timeval`, u16 type, u16 code, s32
//! value, native layout), each change closed by `SYN_REPORT`, and the 40-byte snapshot the
//! interposer reads when the program opens the device (it answers `EVIOCGKEY`/`EVIOCGABS`
//! from it). Codes and ranges are those of an Xbox 360 pad under xpad, as the interposer
//! reports them (`EVIOCGBIT`, `EVIOCGABS`).

use std::time::SystemTime;

use crate::map::{JS_AXES, JS_BUTTONS, JsState};

/// `EV_SYN`.
pub const EV_SYN: u16 = 0x00;
/// `EV_KEY`.
pub const EV_KEY: u16 = 0x01;
/// `EV_ABS`.
pub const EV_ABS: u16 = 0x03;
/// `EV_FF`.
pub const EV_FF: u16 = 0x15;
/// `SYN_REPORT`.
pub const SYN_REPORT: u16 = 0;
/// The interposer's first device number: pad N is `/dev/input/event{EVENT_BASE + N}`.
pub const EVENT_BASE: usize = 1000;

/// Button codes in the joystick's button order: `BTN_SOUTH`, `BTN_EAST`, `BTN_NORTH`,
/// `BTN_WEST`, `BTN_TL`, `BTN_TR`, `BTN_SELECT`, `BTN_START`, `BTN_MODE`, `BTN_THUMBL`,
/// `BTN_THUMBR`.
pub const BUTTON_CODES: [u16; JS_BUTTONS] =
    [0x130, 0x131, 0x133, 0x134, 0x136, 0x137, 0x13a, 0x13b, 0x13c, 0x13d, 0x13e];
/// Axis codes in the joystick's axis order: `ABS_X`, `ABS_Y`, `ABS_Z`, `ABS_RX`, `ABS_RY`,
/// `ABS_RZ`, `ABS_HAT0X`, `ABS_HAT0Y`.
pub const AXIS_CODES: [u16; JS_AXES] = [0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x10, 0x11];

/// An axis's range as `EVIOCGABS` reports it: (minimum, maximum, fuzz, flat).
pub fn axis_range(axis: usize) -> (i32, i32, i32, i32) {
    match axis {
        2 | 5 => (0, 255, 0, 0),
        6 | 7 => (-1, 1, 0, 0),
        _ => (-32768, 32767, 16, 128),
    }
}

/// A joystick axis value (−32767..=32767) in the evdev range of that axis: sticks as they
/// are, triggers 0..=255, the d-pad −1..=1.
pub fn axis_value(axis: usize, js: i16) -> i32 {
    let v = i32::from(js);
    match axis {
        2 | 5 => ((v + 32767) * 255 + 32767) / 65534,
        6 | 7 => v.signum(),
        _ => v,
    }
}

/// The snapshot's size.
pub const SNAPSHOT_SIZE: usize = 40;

/// What the interposer reads first: `KPEV`, the buttons as bits (bit i: [`BUTTON_CODES`]`[i]`),
/// then the eight axes in their evdev ranges (native byte order).
pub fn snapshot(s: &JsState) -> [u8; SNAPSHOT_SIZE] {
    let mut b = [0; SNAPSHOT_SIZE];
    b[..4].copy_from_slice(b"KPEV");
    let keys = s.buttons.iter().enumerate().fold(0u32, |k, (i, p)| k | (u32::from(*p) << i));
    b[4..8].copy_from_slice(&keys.to_ne_bytes());
    for (i, v) in s.axes.iter().enumerate() {
        b[8 + 4 * i..12 + 4 * i].copy_from_slice(&axis_value(i, *v).to_ne_bytes());
    }
    b
}

/// One `struct input_event`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputEvent {
    /// Seconds and microseconds of the wall clock.
    pub time: (i64, i64),
    /// `EV_*`.
    pub kind: u16,
    /// The button's or axis's code.
    pub code: u16,
    /// 1/0 for a button, the axis's value.
    pub value: i32,
}

/// The size of `struct input_event` here (two `long`s, then 8 bytes).
pub const EVENT_SIZE: usize = 2 * std::mem::size_of::<libc::c_long>() + 8;

impl InputEvent {
    /// The record as the kernel lays it out.
    pub fn to_bytes(self) -> Vec<u8> {
        let mut b = Vec::with_capacity(EVENT_SIZE);
        b.extend_from_slice(&(self.time.0 as libc::c_long).to_ne_bytes());
        b.extend_from_slice(&(self.time.1 as libc::c_long).to_ne_bytes());
        b.extend_from_slice(&self.kind.to_ne_bytes());
        b.extend_from_slice(&self.code.to_ne_bytes());
        b.extend_from_slice(&self.value.to_ne_bytes());
        b
    }
}

/// The wall clock as an event's time.
pub fn now() -> (i64, i64) {
    let d = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    (d.as_secs() as i64, i64::from(d.subsec_micros()))
}

/// The records that take a program from `old` to `new`: one per button or axis whose evdev
/// value changed, then `SYN_REPORT`; nothing when nothing changed.
pub fn changes(old: &JsState, new: &JsState, time: (i64, i64)) -> Vec<InputEvent> {
    let mut out = Vec::new();
    for (i, code) in BUTTON_CODES.iter().enumerate() {
        if old.buttons[i] != new.buttons[i] {
            let value = i32::from(new.buttons[i]);
            out.push(InputEvent { time, kind: EV_KEY, code: *code, value });
        }
    }
    for (i, code) in AXIS_CODES.iter().enumerate() {
        let (a, b) = (axis_value(i, old.axes[i]), axis_value(i, new.axes[i]));
        if a != b {
            out.push(InputEvent { time, kind: EV_ABS, code: *code, value: b });
        }
    }
    if !out.is_empty() {
        out.push(InputEvent { time, kind: EV_SYN, code: SYN_REPORT, value: 0 });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_have_the_kernels_layout() {
        let e = InputEvent { time: (5, 7), kind: EV_ABS, code: 0x10, value: -1 };
        let b = e.to_bytes();
        assert_eq!(b.len(), EVENT_SIZE);
        assert_eq!(EVENT_SIZE, 24, "x86_64 and aarch64");
        assert_eq!(i64::from_ne_bytes(b[..8].try_into().unwrap()), 5);
        assert_eq!(i64::from_ne_bytes(b[8..16].try_into().unwrap()), 7);
        assert_eq!(u16::from_ne_bytes([b[16], b[17]]), EV_ABS);
        assert_eq!(u16::from_ne_bytes([b[18], b[19]]), 0x10);
        assert_eq!(i32::from_ne_bytes(b[20..24].try_into().unwrap()), -1);
    }

    #[test]
    fn axes_take_xpads_ranges() {
        assert_eq!((axis_value(0, -32767), axis_value(4, 16384)), (-32767, 16384));
        assert_eq!((axis_value(2, -32767), axis_value(2, 0), axis_value(5, 32767)), (0, 128, 255));
        assert_eq!((axis_value(6, -32767), axis_value(7, 0), axis_value(7, 32767)), (-1, 0, 1));
        for axis in 0..JS_AXES {
            let (min, max, ..) = axis_range(axis);
            for js in [-32767, -1, 0, 1, 32767] {
                assert!((min..=max).contains(&axis_value(axis, js)), "axis {axis} value {js}");
            }
        }
    }

    #[test]
    fn changes_end_with_syn_report_and_skip_what_did_not_move() {
        let old = JsState::neutral();
        assert!(changes(&old, &old, (0, 0)).is_empty());
        let mut new = old;
        new.buttons[0] = true;
        new.axes[5] = 32767;
        new.axes[6] = -32767;
        let t = (1, 2);
        assert_eq!(
            changes(&old, &new, t),
            [
                InputEvent { time: t, kind: EV_KEY, code: 0x130, value: 1 },
                InputEvent { time: t, kind: EV_ABS, code: 0x05, value: 255 },
                InputEvent { time: t, kind: EV_ABS, code: 0x10, value: -1 },
                InputEvent { time: t, kind: EV_SYN, code: SYN_REPORT, value: 0 },
            ]
        );
        // A trigger moving less than one evdev step sends nothing.
        let mut tiny = old;
        tiny.axes[2] = -32767 + 10;
        assert!(changes(&old, &tiny, t).is_empty());
    }

    #[test]
    fn the_snapshot_carries_buttons_as_bits_and_axes_in_evdev_ranges() {
        let mut s = JsState::neutral();
        s.buttons[1] = true;
        s.buttons[10] = true;
        s.axes[0] = -5;
        let b = snapshot(&s);
        assert_eq!(&b[..4], b"KPEV");
        assert_eq!(u32::from_ne_bytes(b[4..8].try_into().unwrap()), 0b100_0000_0010);
        let axis = |i: usize| i32::from_ne_bytes(b[8 + 4 * i..12 + 4 * i].try_into().unwrap());
        assert_eq!((axis(0), axis(2), axis(5), axis(6)), (-5, 0, 0, 0));
    }
}
