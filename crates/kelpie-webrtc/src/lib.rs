//! WebRTC transport for Kelpie: every viewer's peer connection on one UDP port.
//!
//! `hub` is the sans-IO core (str0m peers, codec choice, keyframe gating); `driver` owns the
//! socket and feeds the hub with datagrams, frames and time.

pub mod driver;
pub mod hub;
mod sound;

pub use driver::{WebRtc, WebRtcCounters};
pub use hub::{Answer, Hub, HubEvent, PeerId, Transmit};

/// Errors of the WebRTC transport.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebRtcError {
    /// The browser's offer could not be used.
    #[error("the SDP offer was rejected: {0}")]
    BadOffer(String),
    /// No codec both sides support.
    #[error("the browser offers no video codec this server can send (H.264 or VP8)")]
    NoCommonCodec,
    /// A trickled candidate could not be parsed.
    #[error("bad ICE candidate: {0}")]
    BadCandidate(String),
    /// The peer does not exist (any more).
    #[error("no such peer")]
    UnknownPeer,
    /// The UDP port could not be bound.
    #[error("cannot bind the WebRTC UDP port {0}: {1}; choose another with --udp-port")]
    Bind(std::net::SocketAddr, std::io::Error),
    /// The transport task has stopped.
    #[error("the WebRTC transport has stopped")]
    Stopped,
}
