//! The browser's gamepads as Linux joysticks, without `/dev/uinput`.
//!
//! The browser sends each pad's state in the W3C standard mapping ([`map`]); the server keeps
//! one [`pad::Pad`] per slot (four), turns every change into `struct js_event` records, and
//! writes them to the programs that opened `/dev/input/jsN` ([`hub`]). Those programs were
//! started with `LD_PRELOAD` naming the interposer this crate embeds ([`INTERPOSER`], built
//! from `interposer/kelpie_gamepad.c`): it makes `/dev/input/js0..3` open the Unix socket
//! `$GAMEPAD_SOCKET_DIR/jsN.sock` and answers the joystick ioctls itself.

#![deny(missing_docs)]

pub mod hub;
pub mod map;
pub mod pad;

pub use hub::{GamepadCounters, Gamepads};
pub use map::{MAX_AXES, MAX_BUTTONS, MAX_PADS};

/// The interposer, a shared library for `LD_PRELOAD`.
pub const INTERPOSER: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/libkelpie_gamepad.so"));

/// The interposer's file name in the socket directory.
pub const INTERPOSER_FILE: &str = "libkelpie_gamepad.so";

/// The variable that tells the interposer where the sockets are. Not a `KELPIE_*` name: those
/// are scrubbed from the desktop's environment.
pub const SOCKET_DIR_VAR: &str = "GAMEPAD_SOCKET_DIR";
