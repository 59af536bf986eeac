//! The uinput backend's ioctl numbers and structure layouts (`src/uinput.rs`), checked
//! against what `linux/uinput.h` gives a C compiler (`c/uinput_abi.c`, built here with `cc`).
//! This machine has no `/dev/uinput`, so the device itself is not made here; what the kernel
//! would be sent is.

use std::process::Command;

use kelpie_gamepad::evdev::EVENT_SIZE;
use kelpie_gamepad::uinput::*;

#[test]
fn ioctl_numbers_and_layouts_match_the_kernel_headers() {
    let dir = std::env::temp_dir().join(format!("kelpie-uinput-abi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join("uinput_abi");
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/c/uinput_abi.c");
    let built = Command::new("cc").args(["-Wall", "-Werror", "-o"]).arg(&exe).arg(src).status();
    assert!(built.expect("cc is installed (scripts/install-deps.sh)").success(), "compiling {src} failed");
    let out = Command::new(&exe).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let c = |name: &str| -> u64 {
        let line =
            text.lines().find(|l| l.split(' ').next() == Some(name)).unwrap_or_else(|| panic!("{name}"));
        let v = line.split(' ').nth(1).unwrap();
        // Constants (upper case) are printed in hex, sizes and offsets in decimal.
        u64::from_str_radix(v, if name.starts_with(|c: char| c.is_ascii_uppercase()) { 16 } else { 10 })
            .unwrap()
    };
    for (name, ours) in [
        ("UI_DEV_CREATE", UI_DEV_CREATE),
        ("UI_DEV_DESTROY", UI_DEV_DESTROY),
        ("UI_DEV_SETUP", UI_DEV_SETUP),
        ("UI_ABS_SETUP", UI_ABS_SETUP),
        ("UI_SET_EVBIT", UI_SET_EVBIT),
        ("UI_SET_KEYBIT", UI_SET_KEYBIT),
        ("UI_SET_ABSBIT", UI_SET_ABSBIT),
        ("UI_SET_FFBIT", UI_SET_FFBIT),
        ("UI_BEGIN_FF_UPLOAD", UI_BEGIN_FF_UPLOAD),
        ("UI_END_FF_UPLOAD", UI_END_FF_UPLOAD),
        ("UI_BEGIN_FF_ERASE", UI_BEGIN_FF_ERASE),
        ("UI_END_FF_ERASE", UI_END_FF_ERASE),
        ("EV_UINPUT", u64::from(EV_UINPUT)),
        ("UI_FF_UPLOAD", u64::from(UI_FF_UPLOAD)),
        ("UI_FF_ERASE", u64::from(UI_FF_ERASE)),
        ("FF_RUMBLE", u64::from(FF_RUMBLE)),
        ("FF_GAIN", u64::from(FF_GAIN)),
    ] {
        assert_eq!(c(name), ours, "{name}");
    }
    for (name, ours) in [
        ("setup", SETUP_SIZE),
        ("abs_setup", ABS_SETUP_SIZE),
        ("user_dev", USER_DEV_SIZE),
        ("ff_effect", FF_EFFECT_SIZE),
        ("ff_upload", FF_UPLOAD_SIZE),
        ("ff_erase", FF_ERASE_SIZE),
        ("input_event", EVENT_SIZE),
        // Where src/uinput.rs reads and writes fields.
        ("ff_effect.replay", 10),
        ("ff_effect.u", 16),
        ("user_dev.absmax", 92),
        ("abs_setup.absinfo", 4),
        ("ff_erase.effect_id", 8),
    ] {
        assert_eq!(c(name) as usize, ours, "{name}");
    }
    assert_eq!(setup().len(), SETUP_SIZE);
    assert_eq!(user_dev().len(), USER_DEV_SIZE);
    let _ = std::fs::remove_dir_all(&dir);
}
