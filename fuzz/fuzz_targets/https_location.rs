//! `kelpie_protocol::http::https_location`: the start of a plain HTTP request that reached an
//! HTTPS port, from which Kelpie writes the `Location` of its redirect to `https://`.
//!
//! Input: arbitrary bytes, as a client may send them. Checks: no panic; a location is
//! `https://` + an authority that parses back to itself + a path starting with `/`, and has only
//! visible ASCII (nothing that could end the header line or add another header).
#![no_main]

use kelpie_protocol::http::{Authority, https_location};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(location) = https_location(data) else { return };
    assert!(location.bytes().all(|b| b.is_ascii_graphic()), "{location:?}");
    let rest = location.strip_prefix("https://").expect("an https:// location");
    let slash = rest.find('/').expect("a path");
    let (authority, path) = rest.split_at(slash);
    let parsed = Authority::parse(authority).expect("the authority parses");
    let again = match parsed.port() {
        Some(p) => format!("{}:{p}", parsed.host()),
        None => parsed.host().to_string(),
    };
    assert_eq!(again, authority, "the authority is normalised");
    assert!(path.starts_with('/'));
});
