//! Capture and encoding for Kelpie.
//!
//! `capture` reads changed parts of an X11 screen through shared memory, `convert` turns them
//! into I420, `encoder` drives libx264 or a GStreamer encoder and `stream` ties them into one stream per
//! codec that any number of viewers subscribe to. Nothing here touches the network.

pub mod audio;
pub mod capture;
pub mod convert;
pub mod encoder;
mod pipeline;
pub mod pool;
pub mod ratecontrol;
pub mod stream;
pub mod x264;

pub use audio::{AudioFrame, AudioSettings, AudioSource, AudioSubscription, MicPlayer};
pub use encoder::{ENCODERS, EncodedFrame, EncoderSettings, EncoderSpec};
pub use stream::{StreamCounters, Subscription, VideoSource, VideoStream};

/// Errors of capture and encoding. Each message says what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// The X display cannot be used.
    #[error("{0}")]
    Display(String),
    /// Capturing failed.
    #[error("capture failed: {0}")]
    Capture(String),
    /// An encoder (a GStreamer element, or libx264) is not installed.
    #[error("the encoder '{element}' is missing: install the Debian package {package}")]
    MissingElement {
        /// Element name.
        element: String,
        /// Debian package providing it.
        package: String,
    },
    /// The pipeline failed.
    #[error("{0}")]
    Pipeline(String),
    /// A setting is invalid.
    #[error("{0}")]
    Config(String),
}
