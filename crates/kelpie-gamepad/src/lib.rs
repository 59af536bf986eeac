//! The browser's gamepads as Linux joysticks and event devices, with or without
//! `/dev/uinput`, and their programs' rumble back to the browser.
//!
//! The browser sends each pad's state in the W3C standard mapping ([`map`]); the server keeps
//! one state per slot (four), turns every change into `struct js_event` records ([`pad`]) and
//! `struct input_event` records ([`evdev`]), and writes them to the programs that opened
//! `/dev/input/jsN` or `/dev/input/event1000+N` ([`hub`]). Those programs were started with
//! `LD_PRELOAD` naming the interposer this crate embeds ([`INTERPOSER`], built from
//! `interposer/kelpie_gamepad.c`): it makes those paths open the Unix sockets
//! `$GAMEPAD_SOCKET_DIR/jsN.sock` and `evN.sock` and answers the ioctls itself, and
//! (`interposer/devfs.c`) shows them in listings of `/dev/input` and in `stat()` as character
//! devices, so that programs that discover pads that way (SDL2, Steam) find them. Rumble a
//! program plays on an event device comes back up its socket ([`rumble`]). Where
//! `/dev/uinput` is writable, the pads can also be kernel devices ([`uinput`]).

#![deny(missing_docs)]

pub mod evdev;
pub mod hub;
pub mod map;
pub mod pad;
pub mod rumble;
pub mod uinput;

pub use hub::{Backend, GamepadCounters, Gamepads, RumbleSink};
pub use map::{MAX_AXES, MAX_BUTTONS, MAX_PADS};
pub use rumble::Rumble;

/// The interposer, a shared library for `LD_PRELOAD`.
pub const INTERPOSER: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/libkelpie_gamepad.so"));

/// The interposer's file name in the socket directory.
pub const INTERPOSER_FILE: &str = "libkelpie_gamepad.so";

/// The variable that tells the interposer where the sockets are. Not a `KELPIE_*` name: those
/// are scrubbed from the desktop's environment.
pub const SOCKET_DIR_VAR: &str = "GAMEPAD_SOCKET_DIR";

/// The variable SDL2 reads on Linux for joystick devices to add without udev.
pub const SDL_DEVICES_VAR: &str = "SDL_JOYSTICK_DEVICE";

/// The event devices the interposer presents, colon-separated, for [`SDL_DEVICES_VAR`].
pub fn event_device_paths() -> String {
    (0..MAX_PADS).map(|n| format!("/dev/input/event{}", evdev::EVENT_BASE + n)).collect::<Vec<_>>().join(":")
}

#[cfg(test)]
mod tests {
    #[test]
    fn sdl_is_told_the_four_event_devices() {
        assert_eq!(
            super::event_device_paths(),
            "/dev/input/event1000:/dev/input/event1001:/dev/input/event1002:/dev/input/event1003"
        );
    }
}
