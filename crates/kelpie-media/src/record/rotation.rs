//! When a recording starts a new file: pure policy, on the session's media pts and the
//! caller's clock, so it is tested on simulated time.
//!
//! Every file starts at a keyframe (it plays on its own). A file is due to end when it has
//! `max_bytes` of media or has been open `max_time`; then a keyframe is asked for (again
//! each [`ASK_AGAIN`] until one comes, since the encoder may hold one back) and the next
//! keyframe opens the next file. A change of picture size also starts a new file (the MP4
//! muxer cannot change the video's format inside a file); the frames after it up to the next
//! keyframe cannot be decoded and are skipped.

use std::time::{Duration, Instant};

/// How long to wait for an asked-for keyframe before asking again.
pub const ASK_AGAIN: Duration = Duration::from_secs(1);

/// What to do with a video frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Nothing can decode it (no file yet, or the size changed): drop it.
    Skip,
    /// Append it to the open file.
    Write,
    /// End the open file, if any, and start a new one with this keyframe.
    NewFile,
}

/// Limits of one file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Start a new file after this many bytes of media.
    pub max_bytes: Option<u64>,
    /// Start a new file after this long.
    pub max_time: Option<Duration>,
}

/// The open file, as far as rotating is concerned.
#[derive(Debug)]
struct Open {
    opened: Instant,
    bytes: u64,
    size: (u32, u32),
}

/// Decides where each frame goes and when to ask for a keyframe.
#[derive(Debug)]
pub struct Rotation {
    limits: Limits,
    open: Option<Open>,
    /// The picture size changed: frames are skipped until a keyframe.
    resized: bool,
    asked: Option<Instant>,
}

impl Rotation {
    /// No file open yet: the first keyframe opens one.
    pub fn new(limits: Limits) -> Self {
        Self { limits, open: None, resized: false, asked: None }
    }

    /// Where a video frame of `len` bytes and picture `size` goes, at `now`.
    pub fn video(&mut self, keyframe: bool, size: (u32, u32), len: usize, now: Instant) -> Decision {
        let decision = match &self.open {
            _ if keyframe && (self.open.is_none() || self.resized || self.due(now)) => Decision::NewFile,
            Some(open) if open.size != size => {
                self.resized = true;
                Decision::Skip
            }
            Some(_) if !self.resized => Decision::Write,
            _ => Decision::Skip,
        };
        match decision {
            Decision::NewFile => {
                self.open = Some(Open { opened: now, bytes: len as u64, size });
                self.resized = false;
                self.asked = None;
            }
            Decision::Write => self.add(len),
            Decision::Skip => {}
        }
        decision
    }

    /// Whether an audio packet of `len` bytes goes into the file (only once one is open).
    pub fn audio(&mut self, len: usize) -> bool {
        let open = self.open.is_some() && !self.resized;
        if open {
            self.add(len);
        }
        open
    }

    /// Whether to ask the encoder for a keyframe now: none has come since the file is due to
    /// end (or the size changed, or no file is open yet), and none was asked for within
    /// [`ASK_AGAIN`].
    pub fn wants_keyframe(&mut self, now: Instant) -> bool {
        let waiting = self.open.is_none() || self.resized || self.due(now);
        let recently = self.asked.is_some_and(|t| now.duration_since(t) < ASK_AGAIN);
        if waiting && !recently {
            self.asked = Some(now);
            return true;
        }
        false
    }

    /// Whether a file is open.
    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }

    fn add(&mut self, len: usize) {
        if let Some(open) = &mut self.open {
            open.bytes += len as u64;
        }
    }

    fn due(&self, now: Instant) -> bool {
        self.open.as_ref().is_some_and(|o| {
            self.limits.max_bytes.is_some_and(|b| o.bytes >= b)
                || self.limits.max_time.is_some_and(|t| now.duration_since(o.opened) >= t)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HD: (u32, u32) = (1920, 1080);

    #[test]
    fn nothing_is_written_before_the_first_keyframe_which_is_asked_for() {
        let t0 = Instant::now();
        let mut r = Rotation::new(Limits::default());
        assert!(r.wants_keyframe(t0));
        assert!(!r.wants_keyframe(t0 + Duration::from_millis(500)), "asked already");
        assert_eq!(r.video(false, HD, 100, t0), Decision::Skip);
        assert!(!r.audio(10), "no file: the sound waits for the picture");
        assert!(r.wants_keyframe(t0 + ASK_AGAIN), "asked again after a second");
        assert_eq!(r.video(true, HD, 100, t0 + ASK_AGAIN), Decision::NewFile);
        assert_eq!(r.video(false, HD, 100, t0 + ASK_AGAIN), Decision::Write);
        assert!(r.audio(10));
        assert!(!r.wants_keyframe(t0 + Duration::from_secs(3600)), "no limits: one file");
        assert_eq!(r.video(true, HD, 100, t0 + Duration::from_secs(3600)), Decision::Write);
    }

    #[test]
    fn a_file_over_its_size_ends_at_the_next_keyframe() {
        let t0 = Instant::now();
        let mut r = Rotation::new(Limits { max_bytes: Some(1000), max_time: None });
        assert_eq!(r.video(true, HD, 600, t0), Decision::NewFile);
        assert!(!r.wants_keyframe(t0));
        assert_eq!(r.video(false, HD, 300, t0), Decision::Write);
        assert!(r.audio(100), "sound counts too");
        assert!(r.wants_keyframe(t0), "1000 bytes: due");
        // Until the keyframe comes, frames still go into the old file: nothing is lost.
        assert_eq!(r.video(false, HD, 300, t0), Decision::Write);
        assert!(r.audio(100));
        assert_eq!(r.video(true, HD, 500, t0), Decision::NewFile);
        assert!(!r.wants_keyframe(t0), "the new file has 500 bytes");
    }

    #[test]
    fn a_file_open_for_its_time_ends_at_the_next_keyframe_even_on_a_still_screen() {
        let t0 = Instant::now();
        let minute = Duration::from_secs(60);
        let mut r = Rotation::new(Limits { max_bytes: None, max_time: Some(minute) });
        assert_eq!(r.video(true, HD, 600, t0), Decision::NewFile);
        assert!(!r.wants_keyframe(t0 + minute - Duration::from_millis(1)));
        // No frame comes (a still screen): the tick asks, once a second.
        assert!(r.wants_keyframe(t0 + minute));
        assert!(!r.wants_keyframe(t0 + minute + Duration::from_millis(999)));
        assert!(r.wants_keyframe(t0 + minute + ASK_AGAIN));
        assert_eq!(r.video(true, HD, 600, t0 + minute + ASK_AGAIN), Decision::NewFile);
        assert!(!r.wants_keyframe(t0 + minute + ASK_AGAIN));
    }

    #[test]
    fn a_new_picture_size_starts_a_new_file_at_its_keyframe() {
        let t0 = Instant::now();
        let mut r = Rotation::new(Limits::default());
        assert_eq!(r.video(true, HD, 600, t0), Decision::NewFile);
        assert_eq!(r.video(false, (1280, 720), 100, t0), Decision::Skip);
        assert!(!r.audio(10), "the sound waits for the new file");
        assert!(r.wants_keyframe(t0));
        // A late frame of the old size cannot follow the new size's frames either.
        assert_eq!(r.video(false, HD, 100, t0), Decision::Skip);
        assert_eq!(r.video(true, (1280, 720), 600, t0), Decision::NewFile);
        assert_eq!(r.video(false, (1280, 720), 100, t0), Decision::Write);
    }
}
