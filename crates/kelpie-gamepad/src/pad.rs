//! Joystick events: a pad's state → the `struct js_event` records a program reads from
//! `/dev/input/jsN` (`linux/joystick.h`: u32 time in ms, s16 value, u8 type, u8 number,
//! native byte order).

use crate::map::{JS_AXES, JS_BUTTONS, JsState};

/// `JS_EVENT_BUTTON`.
pub const JS_EVENT_BUTTON: u8 = 0x01;
/// `JS_EVENT_AXIS`.
pub const JS_EVENT_AXIS: u8 = 0x02;
/// `JS_EVENT_INIT`: or-ed into the type of the records describing the state at open.
pub const JS_EVENT_INIT: u8 = 0x80;

/// One `struct js_event`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsEvent {
    /// Milliseconds, from an arbitrary start, wrapping.
    pub time: u32,
    /// The axis's value, or 1/0 for a button pressed/released.
    pub value: i16,
    /// [`JS_EVENT_BUTTON`] or [`JS_EVENT_AXIS`], maybe with [`JS_EVENT_INIT`].
    pub kind: u8,
    /// The button's or axis's number.
    pub number: u8,
}

impl JsEvent {
    /// The record's 8 bytes as the kernel lays them out.
    pub fn to_bytes(self) -> [u8; 8] {
        let mut b = [0; 8];
        b[..4].copy_from_slice(&self.time.to_ne_bytes());
        b[4..6].copy_from_slice(&self.value.to_ne_bytes());
        b[6] = self.kind;
        b[7] = self.number;
        b
    }
}

/// The records a program that opens the device now reads first: every button, then every
/// axis, flagged [`JS_EVENT_INIT`] (as the kernel's joydev does).
pub fn init_events(s: &JsState, time: u32) -> Vec<JsEvent> {
    let buttons = s.buttons.iter().enumerate().map(|(i, b)| JsEvent {
        time,
        value: i16::from(*b),
        kind: JS_EVENT_BUTTON | JS_EVENT_INIT,
        number: i as u8,
    });
    let axes = s.axes.iter().enumerate().map(|(i, v)| JsEvent {
        time,
        value: *v,
        kind: JS_EVENT_AXIS | JS_EVENT_INIT,
        number: i as u8,
    });
    buttons.chain(axes).collect()
}

/// The records that take a program from `old` to `new`: one per button or axis that changed.
pub fn changes(old: &JsState, new: &JsState, time: u32) -> Vec<JsEvent> {
    let mut out = Vec::new();
    for i in 0..JS_BUTTONS {
        if old.buttons[i] != new.buttons[i] {
            out.push(JsEvent {
                time,
                value: i16::from(new.buttons[i]),
                kind: JS_EVENT_BUTTON,
                number: i as u8,
            });
        }
    }
    for i in 0..JS_AXES {
        if old.axes[i] != new.axes[i] {
            out.push(JsEvent { time, value: new.axes[i], kind: JS_EVENT_AXIS, number: i as u8 });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_have_the_kernels_layout() {
        let e = JsEvent { time: 0x0102_0304, value: -2, kind: JS_EVENT_AXIS, number: 7 };
        let b = e.to_bytes();
        assert_eq!(u32::from_ne_bytes(b[..4].try_into().unwrap()), 0x0102_0304);
        assert_eq!(i16::from_ne_bytes([b[4], b[5]]), -2);
        assert_eq!((b[6], b[7]), (2, 7));
    }

    #[test]
    fn a_new_reader_gets_the_whole_state_flagged_init() {
        let mut s = JsState::neutral();
        s.buttons[3] = true;
        let ev = init_events(&s, 9);
        assert_eq!(ev.len(), JS_BUTTONS + JS_AXES);
        assert!(ev.iter().all(|e| e.kind & JS_EVENT_INIT != 0 && e.time == 9));
        assert_eq!(ev[3], JsEvent { time: 9, value: 1, kind: JS_EVENT_BUTTON | JS_EVENT_INIT, number: 3 });
        assert_eq!(ev[JS_BUTTONS + 2].value, -32767, "the left trigger at rest");
    }

    #[test]
    fn only_what_changed_is_sent() {
        let old = JsState::neutral();
        assert!(changes(&old, &old, 1).is_empty());
        let mut new = old;
        new.buttons[0] = true;
        new.axes[1] = 500;
        assert_eq!(
            changes(&old, &new, 5),
            [
                JsEvent { time: 5, value: 1, kind: JS_EVENT_BUTTON, number: 0 },
                JsEvent { time: 5, value: 500, kind: JS_EVENT_AXIS, number: 1 },
            ]
        );
        assert_eq!(
            changes(&new, &old, 6)[0],
            JsEvent { time: 6, value: 0, kind: JS_EVENT_BUTTON, number: 0 }
        );
    }
}
