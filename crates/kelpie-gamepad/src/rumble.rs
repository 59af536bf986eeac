//! Rumble from the programs back to the browser: the 16-byte records the interposer sends up
//! an event device's socket when a program plays or stops a force-feedback effect
//! (`interposer/kelpie_gamepad.c`, `struct rumble_record`), checked, and a per-pad rate limit
//! on simulated time (the caller passes `now`), so that a program cannot flood the viewer.

use std::time::Instant;

/// A record's size.
pub const RECORD_SIZE: usize = 16;
/// The longest rumble passed on, in ms (the browser's own cap is about 5 s); an effect of
/// unbounded length plays this long unless stopped.
pub const MAX_DURATION_MS: u32 = 5000;
/// Rumble changes passed on per pad per second, sustained.
pub const RATE_PER_SECOND: u32 = 30;
/// Rumble changes passed on per pad in a burst.
pub const BURST: u32 = 30;

/// A rumble to play (`duration_ms` > 0) or the pad's rumble to stop (`duration_ms` 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rumble {
    /// The strong (low-frequency) motor, 0..=65535.
    pub strong: u16,
    /// The weak (high-frequency) motor, 0..=65535.
    pub weak: u16,
    /// How long, in ms, at most [`MAX_DURATION_MS`]; 0 stops.
    pub duration_ms: u32,
}

impl Rumble {
    /// Reads a record: `KPFF`, u16 strong, u16 weak, u32 duration, u32 delay (native byte
    /// order). `None` for anything else (the program is not speaking the interposer's
    /// language). A zero duration or two idle motors is a stop; the delay is not kept (the
    /// browser's rumble starts when it arrives).
    pub fn parse(b: &[u8; RECORD_SIZE]) -> Option<Self> {
        if &b[..4] != b"KPFF" {
            return None;
        }
        let strong = u16::from_ne_bytes([b[4], b[5]]);
        let weak = u16::from_ne_bytes([b[6], b[7]]);
        let duration = u32::from_ne_bytes([b[8], b[9], b[10], b[11]]).min(MAX_DURATION_MS);
        if duration == 0 || (strong == 0 && weak == 0) {
            return Some(Self { strong: 0, weak: 0, duration_ms: 0 });
        }
        Some(Self { strong, weak, duration_ms: duration })
    }

    /// The record the interposer sends for this rumble.
    pub fn to_record(self) -> [u8; RECORD_SIZE] {
        let mut b = [0; RECORD_SIZE];
        b[..4].copy_from_slice(b"KPFF");
        b[4..6].copy_from_slice(&self.strong.to_ne_bytes());
        b[6..8].copy_from_slice(&self.weak.to_ne_bytes());
        b[8..12].copy_from_slice(&self.duration_ms.to_ne_bytes());
        b
    }
}

/// A token bucket: [`BURST`] changes at once, [`RATE_PER_SECOND`] sustained.
#[derive(Debug, Clone)]
pub struct RumbleLimiter {
    tokens: f64,
    last: Option<Instant>,
}

impl Default for RumbleLimiter {
    fn default() -> Self {
        Self { tokens: f64::from(BURST), last: None }
    }
}

impl RumbleLimiter {
    /// Whether a change at `now` may be passed on (and takes its token if so).
    pub fn allow(&mut self, now: Instant) -> bool {
        if let Some(last) = self.last {
            let dt = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + dt * f64::from(RATE_PER_SECOND)).min(f64::from(BURST));
        }
        self.last = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn records_are_checked_and_bounded() {
        let r = Rumble { strong: 40000, weak: 1000, duration_ms: 250 };
        assert_eq!(Rumble::parse(&r.to_record()), Some(r));
        let mut bad = r.to_record();
        bad[0] = b'X';
        assert_eq!(Rumble::parse(&bad), None);
        // "Until stopped" and anything longer than the cap play for the cap.
        let long = Rumble { strong: 1, weak: 0, duration_ms: u32::MAX }.to_record();
        assert_eq!(Rumble::parse(&long).unwrap().duration_ms, MAX_DURATION_MS);
        // A zero duration, or idle motors, is a stop.
        let stop = Rumble { strong: 0, weak: 0, duration_ms: 0 };
        assert_eq!(Rumble::parse(&Rumble { strong: 9, weak: 9, duration_ms: 0 }.to_record()), Some(stop));
        assert_eq!(Rumble::parse(&Rumble { strong: 0, weak: 0, duration_ms: 100 }.to_record()), Some(stop));
    }

    #[test]
    fn a_flood_is_cut_to_the_rate_after_the_burst() {
        let t0 = Instant::now();
        let mut l = RumbleLimiter::default();
        let burst = (0..100).filter(|_| l.allow(t0)).count();
        assert_eq!(burst, BURST as usize);
        // One second of changes every millisecond: the rate's worth get through.
        let passed = (1..=1000).filter(|ms| l.allow(t0 + Duration::from_millis(*ms))).count();
        assert!((RATE_PER_SECOND as usize - 1..=RATE_PER_SECOND as usize).contains(&passed), "{passed}");
        // After a quiet spell the burst is back, no more.
        let later = t0 + Duration::from_secs(10);
        assert_eq!((0..100).filter(|_| l.allow(later)).count(), BURST as usize);
    }
}
