//! `Hub::accept_offer`: arbitrary SDP text as the browser's offer.
//!
//! Input: arbitrary bytes, through `std::str::from_utf8`. If the offer is accepted, the new
//! peer is polled, given a candidate and a junk datagram, and polled past its timeouts.
//! Also checks `choose_codec` directly. Nothing may panic.
#![no_main]

#[path = "common.rs"]
mod common;

use std::time::Duration;

use common::{client_addr, codecs, poll, server, t0};
use kelpie_webrtc::Hub;
use kelpie_webrtc::hub::choose_codec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(sdp) = std::str::from_utf8(data) else { return };
    let _ = choose_codec(sdp, &codecs());
    let now = t0();
    let mut hub = Hub::new(codecs());
    let Ok(answer) = hub.accept_offer(now, sdp, server()) else {
        assert_eq!(hub.peer_count(), 0, "a rejected offer left a peer behind");
        return;
    };
    assert_eq!(hub.peer_count(), 1);
    assert!(codecs().contains(&answer.codec));
    // The answer must itself be SDP that str0m can read back.
    let _ = str0m::change::SdpAnswer::from_sdp_string(&answer.sdp);
    poll(&mut hub, now);
    let _ = hub.add_remote_candidate(answer.peer, "candidate:1 1 udp 2130706431 10.9.0.2 40000 typ host");
    poll(&mut hub, now + Duration::from_millis(50));
    hub.receive(now + Duration::from_millis(60), client_addr(), &[0x16, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
    poll(&mut hub, now + Duration::from_secs(1));
    poll(&mut hub, now + Duration::from_secs(60));
});
