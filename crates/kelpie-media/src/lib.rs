//! Capture and encoding for Kelpie.
//!
//! `capture` reads changed parts of an X11 screen through shared memory, `convert` turns them
//! into I420, `encoder` drives libx264 or a GStreamer encoder and `stream` ties them into one stream per
//! codec that any number of viewers subscribe to. `audio` does the same for the session's
//! sound. Both are lazily started broadcasts (`broadcast`) on one [`MediaClock`] (`clock`);
//! consumers read them through a [`Subscription`] that drops what they could not use after
//! falling behind. Nothing here touches the network.

pub mod audio;
pub mod broadcast;
pub mod capture;
pub mod clock;
pub mod congestion;
pub mod convert;
pub mod delta;
pub mod encoder;
pub mod limit;
mod mailbox;
pub mod monitor;
mod pipeline;
pub mod pool;
pub mod ratecontrol;
pub mod record;
pub mod regions;
pub mod skipmap;
pub mod stream;
pub mod x264;

pub use audio::{AudioFrame, AudioSettings, AudioSource, AudioSubscription, MicPlayer};
pub use broadcast::{Catchup, Decodable, LazyBroadcast, Subscription, Verdict};
pub use clock::MediaClock;
pub use encoder::{ChangedRegion, ENCODERS, EncodedFrame, EncoderSettings, EncoderSpec, Rate};
pub use regions::{RegionNote, RegionReceiver};
pub use stream::{StreamCounters, VideoSource, VideoStream, VideoSubscription};

use gstreamer::glib;
use x11rb::errors::{ConnectError, ReplyOrIdError};

/// Errors of capture and encoding. Each message says what to do about it; the cause, where
/// there is one (an X, GStreamer or system error), is its [`std::error::Error::source`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// The X display cannot be reached.
    #[error(
        "cannot connect to X display {display} (is the X server running, and is XAUTHORITY set if it \
         needs a cookie?)"
    )]
    Connect {
        /// The display asked for.
        display: String,
        /// Why x11rb could not connect.
        #[source]
        source: ConnectError,
    },
    /// The display's colour depth cannot be captured.
    #[error(
        "display {display} has depth {depth}; Kelpie needs 24-bit colour (start Xvfb with -screen 0 WxHx24)"
    )]
    Depth {
        /// The display.
        display: String,
        /// Its root window's depth.
        depth: u8,
    },
    /// The X server lacks an extension capture needs.
    #[error("X display {display} lacks the {extension} extension (Xvfb and Xorg have it; Xwayland may not)")]
    MissingExtension {
        /// The display.
        display: String,
        /// The extension (MIT-SHM, DAMAGE, XFIXES).
        extension: &'static str,
        /// The X error.
        #[source]
        source: ReplyOrIdError,
    },
    /// The X server cannot use our shared memory.
    #[error(
        "X display {display} cannot attach shared memory; the X server must run on this machine and \
         share its IPC namespace"
    )]
    SharedMemory {
        /// The display.
        display: String,
        /// The X error.
        #[source]
        source: ReplyOrIdError,
    },
    /// The connection to the X server failed while capturing.
    #[error("lost the X display")]
    Lost(#[source] ReplyOrIdError),
    /// A system call failed.
    #[error("{what} failed")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// A recording file cannot be created.
    #[error("cannot create the recording file {} (is the recording directory writable, and is the name free?)", .path.display())]
    RecordFile {
        /// The file.
        path: std::path::PathBuf,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// Capturing failed for a reason no library reported (the X server returned too little).
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
    /// GStreamer itself cannot start.
    #[error("GStreamer failed to initialise (install libgstreamer1.0-0 and gstreamer1.0-plugins-base)")]
    GstInit(#[source] glib::Error),
    /// A GStreamer pipeline failed: it could not be built, started or fed, or an element
    /// posted an error.
    #[error("the {what} pipeline failed")]
    Pipeline {
        /// Which pipeline (an encoder element, `audio`, `microphone`).
        what: String,
        /// What GStreamer said.
        #[source]
        source: GstCause,
    },
    /// libx264 refused to open or to encode.
    #[error("x264 {0}")]
    X264(String),
    /// A setting is invalid.
    #[error("{0}")]
    Config(String),
}

impl MediaError {
    /// A failure of the `what` pipeline.
    pub(crate) fn pipeline(what: impl Into<String>, source: impl Into<GstCause>) -> Self {
        Self::Pipeline { what: what.into(), source: source.into() }
    }

    /// An I/O error while doing `what`.
    pub(crate) fn io(what: &'static str, source: std::io::Error) -> Self {
        Self::Io { what, source }
    }
}

/// What GStreamer reported when a pipeline failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GstCause {
    /// An element posted an error on the pipeline's bus.
    #[error("{}", if .debug.is_empty() { "an element failed" } else { .debug.as_str() })]
    Posted {
        /// The element's error.
        #[source]
        error: glib::Error,
        /// GStreamer's debug text (names the element and the reason).
        debug: String,
    },
    /// The pipeline description could not be parsed or an element could not be made.
    #[error(transparent)]
    Glib(#[from] glib::Error),
    /// A call into GStreamer failed.
    #[error(transparent)]
    Bool(#[from] glib::BoolError),
    /// A state change failed (and no element said why).
    #[error(transparent)]
    StateChange(#[from] gstreamer::StateChangeError),
    /// A pad could not be linked.
    #[error(transparent)]
    Link(#[from] gstreamer::PadLinkError),
    /// A buffer was refused.
    #[error(transparent)]
    Flow(#[from] gstreamer::FlowError),
    /// Something was missing that no GStreamer call reported (a named element, a pad).
    #[error("{0}")]
    Missing(String),
}

/// Formats an error with its causes, `outer: cause: cause`, for the log.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Notes that a frame (or an input event) passed `stage` now, as a `trace` event of target
/// `kelpie_latency` with the wall clock in µs since the epoch (`t_us`, comparable with the
/// browser's `performance.timeOrigin + performance.now()` on the same machine) and the frame's
/// pts in µs (0 for input). Off unless asked for (`KELPIE_LOG=info,kelpie_latency=trace`):
/// then nothing is computed. `bench/keystages.mjs` lines these up with the browser's stages.
#[macro_export]
macro_rules! latency_mark {
    ($stage:expr, $pts_us:expr) => {
        ::tracing::trace!(
            target: "kelpie_latency",
            stage = $stage,
            t_us = ::std::time::SystemTime::now()
                .duration_since(::std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_micros() as u64,
            pts_us = $pts_us
        )
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_keep_their_cause_and_say_what_to_do() {
        let e = MediaError::io("shmget", std::io::Error::from_raw_os_error(libc::ENOMEM));
        assert_eq!(e.to_string(), "shmget failed");
        let cause = std::error::Error::source(&e).expect("the system error is the source");
        assert!(cause.downcast_ref::<std::io::Error>().is_some());
        assert!(error_chain(&e).starts_with("shmget failed: "), "{}", error_chain(&e));
        let e = MediaError::pipeline("vp8enc", gstreamer::FlowError::NotLinked);
        let cause = std::error::Error::source(&e).unwrap();
        assert!(matches!(cause.downcast_ref::<GstCause>(), Some(GstCause::Flow(_))));
        assert!(error_chain(&e).starts_with("the vp8enc pipeline failed: "), "{}", error_chain(&e));
    }
}
