//! `Hub::add_remote_candidate`: arbitrary trickled ICE candidates for a real peer.
//!
//! Input: arbitrary bytes, through `std::str::from_utf8`, split into lines; each line is one
//! candidate (with or without the `a=` prefix). Accepted candidates make the peer send ICE
//! checks to them when polled. Also tries an unknown peer id. Nothing may panic.
#![no_main]

#[path = "common.rs"]
mod common;

use std::time::Duration;

use common::{cached_offer, codecs, poll, server, t0};
use kelpie_webrtc::{Hub, PeerId};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let now = t0();
    let mut hub = Hub::new(codecs());
    let answer = hub.accept_offer(now, cached_offer(), server()).expect("a real offer is accepted");
    let mut t = now;
    for line in text.split('\n').take(64) {
        let _ = hub.add_remote_candidate(answer.peer, line);
        assert!(hub.add_remote_candidate(PeerId(u64::MAX), line).is_err(), "unknown peer accepted a candidate");
        t += Duration::from_millis(20);
        poll(&mut hub, t);
    }
    poll(&mut hub, t + Duration::from_secs(1));
    poll(&mut hub, t + Duration::from_secs(60));
});
