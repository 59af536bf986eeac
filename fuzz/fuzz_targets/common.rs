//! Shared set-up for the hub targets: a real browser-like offer made with str0m, as in
//! `crates/kelpie-webrtc/src/hub/tests.rs`, and a loop that relays datagrams between that
//! client and a hub on simulated time.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use kelpie_protocol::VideoCodec;
use kelpie_webrtc::{Hub, HubEvent};
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Input, Output, Rtc};

pub const SERVER: &str = "10.9.0.1:8080";
pub const CLIENT: &str = "10.9.0.2:40000";
pub const STRANGER: &str = "10.9.0.3:1234";

pub fn server() -> SocketAddr {
    SERVER.parse().unwrap()
}
pub fn client_addr() -> SocketAddr {
    CLIENT.parse().unwrap()
}
pub fn stranger() -> SocketAddr {
    STRANGER.parse().unwrap()
}

/// One fixed start time for the whole run, so simulated time is all relative to it.
pub fn t0() -> Instant {
    static T0: OnceLock<Instant> = OnceLock::new();
    *T0.get_or_init(Instant::now)
}

pub fn codecs() -> Vec<VideoCodec> {
    vec![VideoCodec::H264, VideoCodec::Vp8]
}

/// A str0m client with a recv-only video m-line (H.264 + VP8), like a browser viewer.
pub fn client_offer(now: Instant) -> (Rtc, SdpPendingOffer, String) {
    let mut client = Rtc::builder().clear_codecs().enable_h264(true).enable_vp8(true).build(now);
    client.add_local_candidate(Candidate::host(client_addr(), "udp").unwrap());
    let mut api = client.sdp_api();
    api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    let (offer, pending) = api.apply().unwrap();
    (client, pending, offer.to_sdp_string())
}

/// The offer text, made once per process (the hub only needs the text).
pub fn cached_offer() -> &'static str {
    static OFFER: OnceLock<String> = OnceLock::new();
    OFFER.get_or_init(|| client_offer(t0()).2)
}

/// A hub with one peer created from a real offer, plus the client that made the offer
/// (with the answer applied), so the two can be run against each other.
pub struct Pair {
    pub now: Instant,
    pub hub: Hub,
    pub client: Rtc,
    pub events: Vec<HubEvent>,
}

impl Pair {
    pub fn new() -> Self {
        let now = t0();
        let mut hub = Hub::new(codecs());
        let (mut client, pending, offer) = client_offer(now);
        let answer = hub.accept_offer(now, &offer, server()).expect("a real offer is accepted");
        let sdp = SdpAnswer::from_sdp_string(&answer.sdp).expect("the hub's answer parses");
        client.sdp_api().accept_answer(pending, sdp).expect("the hub's answer is accepted");
        Self { now, hub, client, events: Vec::new() }
    }

    /// Relays datagrams both ways for `dur` of simulated time (ICE, then DTLS).
    pub fn run(&mut self, dur: Duration) {
        let end = self.now + dur;
        while self.now < end {
            let mut out = Vec::new();
            let hub_next = self.hub.poll(self.now, &mut out, &mut self.events);
            for t in out {
                let Ok(contents) = t.contents.as_slice().try_into() else { continue };
                let input = Input::Receive(
                    self.now,
                    Receive { proto: Protocol::Udp, source: server(), destination: client_addr(), contents },
                );
                if self.client.handle_input(input).is_err() {
                    return;
                }
            }
            if self.client.handle_input(Input::Timeout(self.now)).is_err() {
                return;
            }
            let client_next;
            loop {
                match self.client.poll_output() {
                    Ok(Output::Timeout(t)) => {
                        client_next = t;
                        break;
                    }
                    Ok(Output::Transmit(t)) => {
                        self.hub.receive(self.now, client_addr(), &t.contents);
                    }
                    Ok(Output::Event(_)) => {}
                    Err(_) => return,
                }
            }
            let next = hub_next.min(client_next).min(end);
            self.now = next.max(self.now + Duration::from_millis(1));
        }
    }
}

/// Polls the hub at `now`, discarding what it produces. This is what must not panic.
pub fn poll(hub: &mut Hub, now: Instant) -> Instant {
    let mut out = Vec::new();
    let mut events = Vec::new();
    hub.poll(now, &mut out, &mut events)
}
