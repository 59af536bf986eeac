//! `Hub::receive`: arbitrary UDP datagrams arriving on the shared WebRTC port.
//!
//! Input layout: one flags byte, then datagrams separated by the 5 bytes `|KLP|`.
//! flags bit 0: the hub has one peer, created from a real str0m offer (else no peers).
//! flags bit 1: with a peer, first run ICE and DTLS between the hub and the real client for
//!              one simulated second, so datagrams land on a connected peer.
//! flags bit 2: datagrams come from a stranger's address (else from the client's address,
//!              which the peer knows from its offer).
//! flags bits 3..=7: simulated milliseconds (x10) between datagrams.
//! After every datagram the hub is polled; at the end it is polled past the ICE timeouts.
//! Nothing may panic.
#![no_main]

#[path = "common.rs"]
mod common;

use std::time::Duration;

use common::{Pair, client_addr, codecs, poll, stranger, t0};
use kelpie_webrtc::Hub;
use libfuzzer_sys::fuzz_target;

const SEP: &[u8] = b"|KLP|";

fn split(mut rest: &[u8]) -> Vec<&[u8]> {
    let mut v = Vec::new();
    while let Some(i) = rest.windows(SEP.len()).position(|w| w == SEP) {
        v.push(&rest[..i]);
        rest = &rest[i + SEP.len()..];
    }
    v.push(rest);
    v
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let with_peer = flags & 1 != 0;
    let handshake = flags & 2 != 0;
    let source = if flags & 4 != 0 { stranger() } else { client_addr() };
    let step = Duration::from_millis(u64::from(flags >> 3) * 10);

    let mut pair = None;
    let mut lone = None;
    let (hub, mut now): (&mut Hub, _) = if with_peer {
        let p = pair.insert(Pair::new());
        if handshake {
            p.run(Duration::from_secs(1));
        }
        let now = p.now;
        (&mut p.hub, now)
    } else {
        (lone.insert(Hub::new(codecs())), t0())
    };

    for dgram in split(rest) {
        let before = hub.unmatched_datagrams;
        let claimed = hub.receive(now, source, dgram);
        assert_eq!(claimed, hub.unmatched_datagrams == before, "claimed datagrams are not counted as unmatched");
        if !with_peer {
            assert!(!claimed, "no peer, yet a datagram was claimed");
        }
        poll(hub, now);
        now += step;
    }
    poll(hub, now + Duration::from_secs(1));
    poll(hub, now + Duration::from_secs(60));
    if let Some(p) = pair.as_mut() {
        // The real client keeps talking to whatever is left of the peer.
        p.now = now + Duration::from_secs(60);
        p.run(Duration::from_millis(500));
    }
});
