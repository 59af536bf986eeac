//! The uinput backend: where `/dev/uinput` is writable, each pad becomes a real kernel input
//! device (an evdev `/dev/input/eventN`, and `/dev/input/jsN` through joydev) that every
//! program sees, interposer or not. The device has the interposer's layout ([`crate::evdev`]):
//! 11 buttons, 8 axes with xpad's ranges, `FF_RUMBLE` and `FF_GAIN`; it is fed the same
//! `input_event` records, and the force-feedback uploads programs make arrive as
//! `EV_UINPUT` requests that [`UinputPad::serve_ff`] answers, so their rumble reaches the
//! browser as the interposer's does.
//!
//! The ioctl numbers and the structures written to the kernel are pure functions here, so
//! that they are tested on machines without uinput (the tests compare them with what
//! `linux/uinput.h` gives a C compiler).

use std::fs::File;
use std::io::{self, Read as _, Write as _};
use std::os::fd::AsRawFd as _;
use std::path::Path;

use crate::evdev::{self, AXIS_CODES, BUTTON_CODES, EV_ABS, EV_FF, EV_KEY, EV_SYN, EVENT_SIZE, InputEvent};
use crate::rumble::{MAX_DURATION_MS, Rumble};

/// Effects a program may upload to one pad.
pub const FF_EFFECTS_MAX: u32 = 16;
/// `FF_RUMBLE`.
pub const FF_RUMBLE: u16 = 0x50;
/// `FF_GAIN`.
pub const FF_GAIN: u16 = 0x60;
/// `EV_UINPUT`: the kernel's requests to the device's creator.
pub const EV_UINPUT: u16 = 0x0101;
/// `UI_FF_UPLOAD`.
pub const UI_FF_UPLOAD: u16 = 1;
/// `UI_FF_ERASE`.
pub const UI_FF_ERASE: u16 = 2;
/// `BUS_USB`.
const BUS_USB: u16 = 0x03;

const fn ioc(dir: u64, nr: u64, size: u64) -> u64 {
    (dir << 30) | (size << 16) | ((b'U' as u64) << 8) | nr
}
const NONE: u64 = 0;
const WRITE: u64 = 1;
const READ: u64 = 2;

/// `sizeof(struct uinput_setup)`: `input_id`, `name[80]`, `ff_effects_max`.
pub const SETUP_SIZE: usize = 92;
/// `sizeof(struct uinput_abs_setup)`: `code`, padding, `input_absinfo`.
pub const ABS_SETUP_SIZE: usize = 28;
/// `sizeof(struct uinput_user_dev)`, the legacy set-up written before `UI_DEV_CREATE`.
pub const USER_DEV_SIZE: usize = 80 + 8 + 4 + 4 * 4 * 64;
/// `sizeof(struct ff_effect)` on 64-bit Linux.
pub const FF_EFFECT_SIZE: usize = 48;
/// `sizeof(struct uinput_ff_upload)`: request id, retval, the effect, the old effect.
pub const FF_UPLOAD_SIZE: usize = 8 + 2 * FF_EFFECT_SIZE;
/// `sizeof(struct uinput_ff_erase)`.
pub const FF_ERASE_SIZE: usize = 12;

/// `UI_DEV_CREATE`.
pub const UI_DEV_CREATE: u64 = ioc(NONE, 1, 0);
/// `UI_DEV_DESTROY`.
pub const UI_DEV_DESTROY: u64 = ioc(NONE, 2, 0);
/// `UI_DEV_SETUP`.
pub const UI_DEV_SETUP: u64 = ioc(WRITE, 3, SETUP_SIZE as u64);
/// `UI_ABS_SETUP`.
pub const UI_ABS_SETUP: u64 = ioc(WRITE, 4, ABS_SETUP_SIZE as u64);
/// `UI_SET_EVBIT`.
pub const UI_SET_EVBIT: u64 = ioc(WRITE, 100, 4);
/// `UI_SET_KEYBIT`.
pub const UI_SET_KEYBIT: u64 = ioc(WRITE, 101, 4);
/// `UI_SET_ABSBIT`.
pub const UI_SET_ABSBIT: u64 = ioc(WRITE, 103, 4);
/// `UI_SET_FFBIT`.
pub const UI_SET_FFBIT: u64 = ioc(WRITE, 107, 4);
/// `UI_BEGIN_FF_UPLOAD`.
pub const UI_BEGIN_FF_UPLOAD: u64 = ioc(READ | WRITE, 200, FF_UPLOAD_SIZE as u64);
/// `UI_END_FF_UPLOAD`.
pub const UI_END_FF_UPLOAD: u64 = ioc(WRITE, 201, FF_UPLOAD_SIZE as u64);
/// `UI_BEGIN_FF_ERASE`.
pub const UI_BEGIN_FF_ERASE: u64 = ioc(READ | WRITE, 202, FF_ERASE_SIZE as u64);
/// `UI_END_FF_ERASE`.
pub const UI_END_FF_ERASE: u64 = ioc(WRITE, 203, FF_ERASE_SIZE as u64);

/// The device's name, as the interposer's.
pub const NAME: &str = "Kelpie virtual gamepad (Xbox 360 layout)";

/// `struct input_id` of an Xbox 360 pad.
fn input_id() -> [u8; 8] {
    let mut b = [0; 8];
    for (i, v) in [BUS_USB, 0x045e, 0x028e, 0x0114].iter().enumerate() {
        b[2 * i..2 * i + 2].copy_from_slice(&v.to_ne_bytes());
    }
    b
}

/// `struct uinput_setup` for `UI_DEV_SETUP`.
pub fn setup() -> [u8; SETUP_SIZE] {
    let mut b = [0; SETUP_SIZE];
    b[..8].copy_from_slice(&input_id());
    b[8..8 + NAME.len()].copy_from_slice(NAME.as_bytes());
    b[88..92].copy_from_slice(&FF_EFFECTS_MAX.to_ne_bytes());
    b
}

/// `struct uinput_abs_setup` for `UI_ABS_SETUP` of joystick axis `axis` (0..8).
pub fn abs_setup(axis: usize) -> [u8; ABS_SETUP_SIZE] {
    let (min, max, fuzz, flat) = evdev::axis_range(axis);
    let mut b = [0; ABS_SETUP_SIZE];
    b[..2].copy_from_slice(&AXIS_CODES[axis].to_ne_bytes());
    // value, minimum, maximum, fuzz, flat, resolution
    for (i, v) in [0, min, max, fuzz, flat, 0].iter().enumerate() {
        b[4 + 4 * i..8 + 4 * i].copy_from_slice(&v.to_ne_bytes());
    }
    b
}

/// The legacy `struct uinput_user_dev`, written to the device on kernels without
/// `UI_DEV_SETUP` (before 4.5).
pub fn user_dev() -> Vec<u8> {
    let mut b = vec![0; USER_DEV_SIZE];
    b[..NAME.len()].copy_from_slice(NAME.as_bytes());
    b[80..88].copy_from_slice(&input_id());
    b[88..92].copy_from_slice(&FF_EFFECTS_MAX.to_ne_bytes());
    for (axis, code) in AXIS_CODES.iter().enumerate() {
        let (min, max, fuzz, flat) = evdev::axis_range(axis);
        let code = usize::from(*code);
        for (table, v) in [max, min, fuzz, flat].iter().enumerate() {
            let at = 92 + table * 256 + code * 4;
            b[at..at + 4].copy_from_slice(&v.to_ne_bytes());
        }
    }
    b
}

/// A rumble effect uploaded by a program: (id, strong, weak, length in ms), or `None` for an
/// effect of another type (refused).
pub fn parse_effect(e: &[u8]) -> Option<(i16, u16, u16, u16)> {
    let u16_at = |at: usize| u16::from_ne_bytes([e[at], e[at + 1]]);
    (e.len() >= FF_EFFECT_SIZE && u16_at(0) == FF_RUMBLE)
        .then(|| (u16_at(2) as i16, u16_at(16), u16_at(18), u16_at(10)))
}

/// A pad as a kernel device.
pub struct UinputPad {
    file: File,
}

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r) }
}

impl UinputPad {
    /// Creates the device through `path` (`/dev/uinput`).
    pub fn create(path: &Path) -> io::Result<Self> {
        let mut file = std::fs::OpenOptions::new().read(true).write(true).open(path)?;
        let fd = file.as_raw_fd();
        // SAFETY: ioctls on a descriptor we own, with integer arguments or buffers of the
        // size their numbers encode.
        unsafe {
            for ev in [EV_SYN, EV_KEY, EV_ABS, EV_FF] {
                check(libc::ioctl(fd, UI_SET_EVBIT as _, libc::c_int::from(ev)))?;
            }
            for code in BUTTON_CODES {
                check(libc::ioctl(fd, UI_SET_KEYBIT as _, libc::c_int::from(code)))?;
            }
            for code in AXIS_CODES {
                check(libc::ioctl(fd, UI_SET_ABSBIT as _, libc::c_int::from(code)))?;
            }
            for ff in [FF_RUMBLE, FF_GAIN] {
                check(libc::ioctl(fd, UI_SET_FFBIT as _, libc::c_int::from(ff)))?;
            }
            let s = setup();
            if libc::ioctl(fd, UI_DEV_SETUP as _, s.as_ptr()) == 0 {
                for axis in 0..AXIS_CODES.len() {
                    let a = abs_setup(axis);
                    check(libc::ioctl(fd, UI_ABS_SETUP as _, a.as_ptr()))?;
                }
            } else {
                file.write_all(&user_dev())?;
            }
            check(libc::ioctl(fd, UI_DEV_CREATE as _))?;
        }
        Ok(Self { file })
    }

    /// Feeds the device input events.
    pub fn write(&self, events: &[InputEvent]) -> io::Result<()> {
        let bytes: Vec<u8> = events.iter().flat_map(|e| e.to_bytes()).collect();
        (&self.file).write_all(&bytes)
    }

    /// What answers the kernel's force-feedback requests for this device.
    pub fn ff(&self) -> io::Result<FfServer> {
        Ok(FfServer { file: self.file.try_clone()?, effects: [None; FF_EFFECTS_MAX as usize], gain: 0xffff })
    }
}

/// Answers a device's force-feedback requests (on a thread of its own).
pub struct FfServer {
    file: File,
    /// Uploaded rumble effects by id: (strong, weak, length).
    effects: [Option<(u16, u16, u16)>; FF_EFFECTS_MAX as usize],
    gain: u16,
}

impl FfServer {
    /// Answers the kernel's requests until the device is gone: uploads and erases
    /// (`EV_UINPUT`), and plays (`EV_FF`), whose rumble goes to `rumble`.
    pub fn serve(mut self, mut rumble: impl FnMut(Rumble)) -> io::Result<()> {
        let mut buf = [0u8; EVENT_SIZE];
        loop {
            self.file.read_exact(&mut buf)?;
            let kind = u16::from_ne_bytes([buf[EVENT_SIZE - 8], buf[EVENT_SIZE - 7]]);
            let code = u16::from_ne_bytes([buf[EVENT_SIZE - 6], buf[EVENT_SIZE - 5]]);
            let value = i32::from_ne_bytes(buf[EVENT_SIZE - 4..].try_into().expect("4 bytes"));
            match (kind, code) {
                (EV_UINPUT, UI_FF_UPLOAD) => self.upload(value as u32)?,
                (EV_UINPUT, UI_FF_ERASE) => self.erase(value as u32)?,
                (EV_FF, FF_GAIN) => self.gain = value.clamp(0, 0xffff) as u16,
                (EV_FF, id) => {
                    if let Some(Some((strong, weak, length))) = self.effects.get(usize::from(id)) {
                        rumble(play(*strong, *weak, *length, self.gain, value));
                    }
                }
                _ => {}
            }
        }
    }

    fn upload(&mut self, request: u32) -> io::Result<()> {
        let mut up = [0u8; FF_UPLOAD_SIZE];
        up[..4].copy_from_slice(&request.to_ne_bytes());
        let fd = self.file.as_raw_fd();
        // SAFETY: the buffer has the size the request encodes.
        check(unsafe { libc::ioctl(fd, UI_BEGIN_FF_UPLOAD as _, up.as_mut_ptr()) })?;
        let retval: i32 = match parse_effect(&up[8..8 + FF_EFFECT_SIZE]) {
            Some((id, strong, weak, length)) if (0..FF_EFFECTS_MAX as i16).contains(&id) => {
                self.effects[id as usize] = Some((strong, weak, length));
                0
            }
            _ => -libc::EINVAL,
        };
        up[4..8].copy_from_slice(&retval.to_ne_bytes());
        // SAFETY: as above.
        check(unsafe { libc::ioctl(fd, UI_END_FF_UPLOAD as _, up.as_ptr()) })?;
        Ok(())
    }

    fn erase(&mut self, request: u32) -> io::Result<()> {
        let mut er = [0u8; FF_ERASE_SIZE];
        er[..4].copy_from_slice(&request.to_ne_bytes());
        let fd = self.file.as_raw_fd();
        // SAFETY: the buffer has the size the request encodes.
        check(unsafe { libc::ioctl(fd, UI_BEGIN_FF_ERASE as _, er.as_mut_ptr()) })?;
        let id = u32::from_ne_bytes(er[8..12].try_into().expect("4 bytes")) as usize;
        if let Some(e) = self.effects.get_mut(id) {
            *e = None;
        }
        // SAFETY: as above.
        check(unsafe { libc::ioctl(fd, UI_END_FF_ERASE as _, er.as_ptr()) })?;
        Ok(())
    }
}

/// The rumble of playing an effect `times` times (0: stop) at `gain`, as the interposer
/// computes it: magnitudes scaled by the gain, an effect of no length plays for the cap.
pub fn play(strong: u16, weak: u16, length: u16, gain: u16, times: i32) -> Rumble {
    let scale = |m: u16| (u32::from(m) * u32::from(gain) / 0xffff) as u16;
    let duration =
        if length == 0 { MAX_DURATION_MS } else { u32::from(length).saturating_mul(times.max(0) as u32) };
    let duration_ms = duration.min(MAX_DURATION_MS);
    if times <= 0 || duration_ms == 0 {
        return Rumble { strong: 0, weak: 0, duration_ms: 0 };
    }
    Rumble { strong: scale(strong), weak: scale(weak), duration_ms }
}

impl Drop for UinputPad {
    fn drop(&mut self) {
        // SAFETY: an argument-less ioctl on our descriptor.
        unsafe { libc::ioctl(self.file.as_raw_fd(), UI_DEV_DESTROY as _) };
    }
}

/// Whether `path` (`/dev/uinput`) can be opened for writing by this process.
pub fn writable(path: &Path) -> bool {
    std::fs::OpenOptions::new().write(true).open(path).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_records_carry_the_layout() {
        let s = setup();
        assert_eq!(u16::from_ne_bytes([s[0], s[1]]), BUS_USB);
        assert_eq!(u16::from_ne_bytes([s[2], s[3]]), 0x045e);
        assert_eq!(&s[8..8 + NAME.len()], NAME.as_bytes());
        assert_eq!(s[8 + NAME.len()], 0, "the name is NUL-terminated");
        assert_eq!(u32::from_ne_bytes(s[88..92].try_into().unwrap()), 16);
        let a = abs_setup(5); // right trigger
        assert_eq!(u16::from_ne_bytes([a[0], a[1]]), 0x05);
        let field = |i: usize| i32::from_ne_bytes(a[4 + 4 * i..8 + 4 * i].try_into().unwrap());
        assert_eq!((field(1), field(2)), (0, 255));
        let u = user_dev();
        let table =
            |t: usize, code: usize| i32::from_ne_bytes(u[92 + t * 256 + code * 4..][..4].try_into().unwrap());
        assert_eq!((table(0, 0), table(1, 0), table(2, 0), table(3, 0)), (32767, -32768, 16, 128), "ABS_X");
        assert_eq!((table(0, 0x10), table(1, 0x10)), (1, -1), "ABS_HAT0X");
    }

    #[test]
    fn effects_parse_and_plays_scale() {
        let mut e = [0u8; FF_EFFECT_SIZE];
        e[..2].copy_from_slice(&FF_RUMBLE.to_ne_bytes());
        e[2..4].copy_from_slice(&3i16.to_ne_bytes());
        e[10..12].copy_from_slice(&200u16.to_ne_bytes());
        e[16..18].copy_from_slice(&40000u16.to_ne_bytes());
        e[18..20].copy_from_slice(&1000u16.to_ne_bytes());
        assert_eq!(parse_effect(&e), Some((3, 40000, 1000, 200)));
        e[0] = 0x51; // FF_PERIODIC
        assert_eq!(parse_effect(&e), None);
        assert_eq!(parse_effect(&e[..10]), None);
        assert_eq!(play(40000, 1000, 200, 0xffff, 1), Rumble { strong: 40000, weak: 1000, duration_ms: 200 });
        assert_eq!(play(40000, 1000, 200, 0x8000, 3).duration_ms, 600);
        assert_eq!(play(40000, 1000, 200, 0x8000, 3).strong, 20000);
        assert_eq!(play(1, 1, 0, 0xffff, 1).duration_ms, MAX_DURATION_MS, "no length: until stopped");
        assert_eq!(play(1, 1, 200, 0xffff, 0).duration_ms, 0, "value 0 stops");
    }

    #[test]
    fn only_a_writable_device_is_used() {
        let dir = std::env::temp_dir().join(format!("kelpie-uinput-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(!writable(&dir.join("missing")));
        let f = dir.join("uinput");
        std::fs::write(&f, b"").unwrap();
        assert!(writable(&f));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
