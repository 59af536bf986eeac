//! The session's media clock: one origin for the presentation times of video and sound.
//!
//! A session creates one [`MediaClock`] and hands it to its [`crate::VideoSource`] and its
//! [`crate::AudioSource`]. Every encoded video frame's `pts` is its capture time counted from
//! the clock's epoch, and every audio frame's `pts` is its first sample's time on the same
//! timeline (counted in samples within a capture run, see `audio.rs`). So:
//!
//! - video pts run on across resizes and encoder restarts (a new encoder does not start a new
//!   timeline), and RTP timestamps derived from them never jump back;
//! - a video frame's and an audio frame's pts are directly comparable: a transport that
//!   sends both (the WebSocket transport) needs no translation for the page to line them up.

use std::time::{Duration, Instant};

/// The origin of a session's media timeline. Cheap to copy; every copy is the same clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaClock {
    epoch: Instant,
}

impl MediaClock {
    /// A clock whose timeline starts now.
    pub fn new() -> Self {
        Self::starting_at(Instant::now())
    }

    /// A clock whose timeline starts at `epoch`.
    pub fn starting_at(epoch: Instant) -> Self {
        Self { epoch }
    }

    /// The instant pts 0 stands for.
    pub fn epoch(&self) -> Instant {
        self.epoch
    }

    /// The presentation time of something captured at `captured` (zero for anything captured
    /// before the epoch: pts never go negative).
    pub fn pts(&self, captured: Instant) -> Duration {
        captured.saturating_duration_since(self.epoch)
    }

    /// The instant a presentation time stands for.
    pub fn instant(&self, pts: Duration) -> Instant {
        self.epoch + pts
    }
}

impl Default for MediaClock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pts_counts_from_the_epoch_and_never_goes_negative() {
        let epoch = Instant::now();
        let clock = MediaClock::starting_at(epoch);
        assert_eq!(clock.pts(epoch + Duration::from_millis(2500)), Duration::from_millis(2500));
        assert_eq!(clock.instant(Duration::from_millis(2500)), epoch + Duration::from_millis(2500));
        // Captured before the epoch: 0, not a wrapped-around value.
        let later = MediaClock::starting_at(epoch + Duration::from_secs(1));
        assert_eq!(later.pts(epoch), Duration::ZERO);
    }

    #[test]
    fn copies_are_one_timeline_for_video_and_sound() {
        // What the WebSocket transport relies on: a video frame and an audio frame captured
        // at the same instant carry the same pts, whichever copy of the clock stamped them
        // and however long after the epoch each source started.
        let clock = MediaClock::new();
        let (video, audio) = (clock, clock);
        let t = clock.epoch() + Duration::from_millis(1234);
        assert_eq!(video.pts(t), audio.pts(t));
        assert_eq!(video.pts(t + Duration::from_millis(40)) - audio.pts(t), Duration::from_millis(40));
    }
}
