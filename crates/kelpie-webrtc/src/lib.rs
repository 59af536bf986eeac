//! WebRTC transport for Kelpie: every viewer's peer connection on one UDP port.
//!
//! `hub` is the sans-IO core (str0m peers, codec choice, keyframe gating, which peer a
//! datagram belongs to); `driver` owns the socket and feeds the hub with datagrams, frames
//! and time. How often a view-only peer may cause a keyframe is capped by
//! [`kelpie_media::limit`], the limiter the WebSocket transport uses too.

pub mod driver;
pub mod hub;
mod sound;

pub use driver::{PeerPath, WebRtc, WebRtcCounters};
pub use hub::{Answer, FeedKey, Hub, HubEvent, PeerId, PeerPolicy, Transmit};

/// Errors of the WebRTC transport. The cause, where there is one (str0m's, the system's), is
/// the error's [`std::error::Error::source`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebRtcError {
    /// The browser's offer could not be used.
    #[error("the SDP offer was rejected")]
    BadOffer(#[source] OfferError),
    /// No codec both sides support.
    #[error("the browser offers no video codec this server can send (H.264 or VP8)")]
    NoCommonCodec,
    /// A candidate could not be parsed or made.
    #[error("bad ICE candidate")]
    BadCandidate(#[source] str0m::error::IceError),
    /// The peer has as many remote candidates as it may have.
    #[error("too many ICE candidates for one peer connection (at most {0})")]
    TooManyCandidates(usize),
    /// The peer does not exist (any more).
    #[error("no such peer")]
    UnknownPeer,
    /// The UDP port could not be bound.
    #[error("cannot bind the WebRTC UDP port {0}; choose another with --udp-port")]
    Bind(std::net::SocketAddr, #[source] std::io::Error),
    /// The transport task has stopped.
    #[error("the WebRTC transport has stopped")]
    Stopped,
}

/// Why an offer was rejected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OfferError {
    /// It is not SDP str0m can parse.
    #[error(transparent)]
    Sdp(str0m::error::SdpError),
    /// str0m could not answer it.
    #[error(transparent)]
    Rtc(str0m::RtcError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_keep_their_cause_and_say_what_to_do() {
        let addr: std::net::SocketAddr = "0.0.0.0:8443".parse().unwrap();
        let e = WebRtcError::Bind(addr, std::io::Error::from(std::io::ErrorKind::AddrInUse));
        assert!(e.to_string().contains("--udp-port"), "{e}");
        let cause = std::error::Error::source(&e).expect("the system error is the source");
        assert_eq!(
            cause.downcast_ref::<std::io::Error>().map(|e| e.kind()),
            Some(std::io::ErrorKind::AddrInUse)
        );
    }
}
