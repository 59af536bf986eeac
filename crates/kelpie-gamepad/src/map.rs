//! The browser's standard gamepad layout (W3C Gamepad, "standard" mapping: 17 buttons, 4
//! axes) → the joystick layout of an Xbox 360 pad under Linux's xpad driver, which most games
//! know: 8 axes (left stick, left trigger, right stick, right trigger, d-pad as a hat) and 11
//! buttons. The interposer reports the same layout (`JSIOCGAXMAP`, `JSIOCGBTNMAP`).

/// Pads a session has (`/dev/input/js0` .. `js3`), as the browser's four slots.
pub const MAX_PADS: usize = 4;
/// Buttons of the standard mapping the browser sends at most.
pub const MAX_BUTTONS: usize = 17;
/// Axes of the standard mapping the browser sends at most.
pub const MAX_AXES: usize = 4;
/// Joystick axes presented: X, Y, Z (left trigger), RX, RY, RZ (right trigger), HAT0X, HAT0Y.
pub const JS_AXES: usize = 8;
/// Joystick buttons presented: A, B, X, Y, LB, RB, Back, Start, Guide, L3, R3.
pub const JS_BUTTONS: usize = 11;
/// Full scale of an axis or a button's value on the wire and in `js_event`.
pub const FULL: i32 = 32767;

/// Standard-mapping button → joystick button (the d-pad and triggers become axes).
const BUTTON_TO_JS: [(usize, u8); JS_BUTTONS] =
    [(0, 0), (1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (8, 6), (9, 7), (16, 8), (10, 9), (11, 10)];
/// Standard-mapping axis → joystick axis.
const AXIS_TO_JS: [(usize, usize); MAX_AXES] = [(0, 0), (1, 1), (2, 3), (3, 4)];

/// One pad's state in the joystick layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JsState {
    /// Axis values, −32767..=32767 (triggers −32767 released, 32767 fully pressed).
    pub axes: [i16; JS_AXES],
    /// Buttons pressed.
    pub buttons: [bool; JS_BUTTONS],
}

impl JsState {
    /// A pad at rest: buttons up, sticks centred, triggers released.
    pub fn neutral() -> Self {
        let mut s = Self::default();
        s.axes[2] = -FULL as i16;
        s.axes[5] = -FULL as i16;
        s
    }

    /// The joystick state of the browser's standard-mapping `buttons` (0..=32767 each) and
    /// `axes` (−32767..=32767); missing entries are at rest, values out of range clamped.
    pub fn from_standard(buttons: &[i32], axes: &[i32]) -> Self {
        let button = |i: usize| buttons.get(i).map_or(0, |v| (*v).clamp(0, FULL));
        let pressed = |i: usize| button(i) > FULL / 2;
        let mut s = Self::neutral();
        for (from, to) in BUTTON_TO_JS {
            s.buttons[to as usize] = pressed(from);
        }
        for (from, to) in AXIS_TO_JS {
            s.axes[to] = axes.get(from).map_or(0, |v| (*v).clamp(-FULL, FULL)) as i16;
        }
        // Triggers: released (0) .. fully pressed (32767) → −32767 .. 32767, as xpad does.
        s.axes[2] = (button(6) * 2 - FULL) as i16;
        s.axes[5] = (button(7) * 2 - FULL) as i16;
        let hat = |neg: usize, pos: usize| (i32::from(pressed(pos)) - i32::from(pressed(neg))) * FULL;
        s.axes[6] = hat(14, 15) as i16;
        s.axes[7] = hat(12, 13) as i16;
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_sent_is_a_pad_at_rest() {
        let s = JsState::from_standard(&[], &[]);
        assert_eq!(s, JsState::neutral());
        assert_eq!(s.axes, [0, 0, -32767, 0, 0, -32767, 0, 0]);
        assert_eq!(s.buttons, [false; JS_BUTTONS]);
    }

    #[test]
    fn standard_buttons_land_on_the_xpad_layout() {
        // Each face, shoulder and menu button alone → its joystick button alone.
        for (std, js) in
            [(0, 0), (1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (8, 6), (9, 7), (16, 8), (10, 9), (11, 10)]
        {
            let mut b = [0; MAX_BUTTONS];
            b[std] = FULL;
            let s = JsState::from_standard(&b, &[]);
            let mut want = [false; JS_BUTTONS];
            want[js] = true;
            assert_eq!(s.buttons, want, "standard button {std}");
            assert_eq!(s.axes, JsState::neutral().axes, "standard button {std} moves no axis");
        }
        // Half-pressed is not pressed; more than half is.
        let s = JsState::from_standard(&[FULL / 2], &[]);
        assert!(!s.buttons[0]);
        let s = JsState::from_standard(&[FULL / 2 + 1], &[]);
        assert!(s.buttons[0]);
    }

    #[test]
    fn sticks_triggers_and_the_dpad_become_axes() {
        let s = JsState::from_standard(&[], &[100, -200, 300, -32767]);
        assert_eq!(&s.axes[..], &[100, -200, -32767, 300, -32767, -32767, 0, 0]);
        let mut b = [0; MAX_BUTTONS];
        b[6] = FULL; // left trigger fully
        b[7] = FULL / 2 + 1; // right trigger just past half
        b[14] = FULL; // d-pad left
        b[13] = FULL; // d-pad down
        let s = JsState::from_standard(&b, &[]);
        assert_eq!(s.axes[2], 32767);
        assert_eq!(s.axes[5], 1);
        assert_eq!((s.axes[6], s.axes[7]), (-32767, 32767));
        assert_eq!(s.buttons, [false; JS_BUTTONS], "triggers and d-pad are not buttons here");
        // Left and right at once cancel out.
        b[15] = FULL;
        assert_eq!(JsState::from_standard(&b, &[]).axes[6], 0);
    }

    #[test]
    fn values_out_of_range_are_clamped() {
        let s = JsState::from_standard(&[-5, 0, 0, 0, 0, 0, 99_999], &[i32::MAX, i32::MIN]);
        assert!(!s.buttons[0]);
        assert_eq!(s.axes[2], 32767);
        assert_eq!((s.axes[0], s.axes[1]), (32767, -32767));
    }
}
