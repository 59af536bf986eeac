//! `kelpie_protocol::http::{Origin, Authority}`: the `Origin` and `Host` headers (and a
//! proxy's `X-Forwarded-Host`) that decide whether a WebSocket upgrade is cross-site and
//! whether a loopback listener answers a request.
//!
//! Input: arbitrary bytes, through `std::str::from_utf8`, parsed as an origin and as an
//! authority. Checks: no panic; what parses prints (as a browser serialises it) to text that
//! parses back to the same value; a parsed host is never empty and has no character a host
//! cannot have; the loopback test is the same for an authority and its origin's host.
#![no_main]

use kelpie_protocol::http::{Authority, Origin, Scheme};
use libfuzzer_sys::fuzz_target;

fn host_ok(host: &str) {
    assert!(!host.is_empty());
    assert!(
        host.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._~[]:".contains(&b)),
        "host {host:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(origin) = Origin::parse(text) {
        host_ok(origin.host());
        let again = Origin::parse(&origin.to_string()).expect("a printed origin parses");
        assert_eq!(again, origin);
    }
    if let Ok(authority) = Authority::parse(text) {
        host_ok(authority.host());
        for scheme in [Scheme::Http, Scheme::Https] {
            let origin = authority.origin(scheme);
            assert_eq!(origin.port(), authority.port().unwrap_or(scheme.default_port()));
            let again = Origin::parse(&origin.to_string()).expect("an authority's origin prints and parses");
            assert_eq!(again, origin);
            let host_only = Authority::parse(origin.host()).expect("a normalised host parses");
            assert_eq!(host_only.is_loopback(), authority.is_loopback());
        }
    }
});
