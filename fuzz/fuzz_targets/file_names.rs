//! `kelpie_protocol::files::check_name`: the name a browser gives a file it uploads or asks
//! for, used as one path component inside the upload or download directory.
//!
//! Input: arbitrary bytes, through `std::str::from_utf8`. Checks: no panic; an accepted name
//! is one component that stays inside a directory it is joined to (no separator, not `.` or
//! `..`, no leading dot), has no NUL or other control character, and fits in 255 bytes.
#![no_main]

use kelpie_protocol::files::{MAX_NAME_BYTES, check_name};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(name) = check_name(text) else { return };
    assert_eq!(name, text);
    assert!(!name.is_empty() && name.len() <= MAX_NAME_BYTES);
    assert!(!name.starts_with('.'));
    assert!(!name.contains(['/', '\\', '\0']));
    assert!(!name.chars().any(char::is_control));
    let dir = std::path::Path::new("/upload");
    let joined = dir.join(name);
    assert_eq!(joined.parent(), Some(dir), "{name:?} leaves the directory");
    let mut parts = std::path::Path::new(name).components();
    assert!(matches!(parts.next(), Some(std::path::Component::Normal(_))));
    assert!(parts.next().is_none());
});
