//! What each viewer holds down on the display, and when to let go of it: when the viewer
//! leaves or loses control, asks for it (`release`, or a `keys` heartbeat that no longer lists
//! a key), or goes silent while holding something (its network was cut: no FIN, nothing
//! more arrives). The web client sends a heartbeat every 500 ms while it holds a key or a
//! button, so a viewer silent for [`HEARTBEAT_TIMEOUT`] is gone.
//!
//! Pure: time comes in, the events to inject come out.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use kelpie_protocol::InputEvent;

use crate::input::ViewerId;

/// Keys and buttons a viewer holds are released when nothing came from it for this long.
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(2);

/// What was released, for the counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Released {
    /// Keys.
    pub keys: u64,
    /// Mouse buttons.
    pub buttons: u64,
}

impl std::ops::AddAssign for Released {
    fn add_assign(&mut self, o: Self) {
        self.keys += o.keys;
        self.buttons += o.buttons;
    }
}

#[derive(Debug)]
struct Viewer {
    keys: BTreeSet<u32>,
    buttons: BTreeSet<u8>,
    last_seen: Instant,
}

impl Viewer {
    fn holds_nothing(&self) -> bool {
        self.keys.is_empty() && self.buttons.is_empty()
    }

    fn release(&mut self, out: &mut Vec<InputEvent>) -> Released {
        let r = Released { keys: self.keys.len() as u64, buttons: self.buttons.len() as u64 };
        out.extend(
            std::mem::take(&mut self.keys).into_iter().map(|keysym| InputEvent::Key { keysym, down: false }),
        );
        out.extend(
            std::mem::take(&mut self.buttons)
                .into_iter()
                .map(|button| InputEvent::Button { button, down: false }),
        );
        r
    }
}

/// Every viewer that holds something. A viewer that holds nothing is not kept.
#[derive(Debug, Default)]
pub struct Held {
    viewers: HashMap<ViewerId, Viewer>,
}

impl Held {
    /// One input message of `id` at `now`: appends what to inject to `out` and returns what
    /// it released (a `keys` heartbeat without a held key, or `release`).
    pub fn event(
        &mut self,
        now: Instant,
        id: ViewerId,
        msg: InputEvent,
        out: &mut Vec<InputEvent>,
    ) -> Released {
        let v = self.viewers.entry(id).or_insert_with(|| Viewer {
            keys: BTreeSet::new(),
            buttons: BTreeSet::new(),
            last_seen: now,
        });
        v.last_seen = now;
        let mut released = Released::default();
        match msg {
            InputEvent::Key { keysym, down } => {
                // Releasing a key this viewer never pressed would release another's.
                let pressed_here = if down {
                    v.keys.insert(keysym);
                    true
                } else {
                    v.keys.remove(&keysym)
                };
                if pressed_here {
                    out.push(msg);
                }
            }
            InputEvent::Button { button, down } => {
                let pressed_here = if down {
                    v.buttons.insert(button);
                    true
                } else {
                    v.buttons.remove(&button)
                };
                if pressed_here {
                    out.push(msg);
                }
            }
            InputEvent::Keys { held } => {
                let stale: Vec<u32> = v.keys.iter().copied().filter(|k| !held.contains(k)).collect();
                for keysym in stale {
                    v.keys.remove(&keysym);
                    released.keys += 1;
                    out.push(InputEvent::Key { keysym, down: false });
                }
            }
            InputEvent::Release => released = v.release(out),
            other => out.push(other),
        }
        if v.holds_nothing() {
            self.viewers.remove(&id);
        }
        released
    }

    /// Releases everything `id` holds (it left or lost control), appending to `out`.
    pub fn release(&mut self, id: ViewerId, out: &mut Vec<InputEvent>) -> Released {
        self.viewers.remove(&id).map_or_else(Released::default, |mut v| v.release(out))
    }

    /// Releases what every viewer silent for [`HEARTBEAT_TIMEOUT`] at `now` holds, appending
    /// to `out`; returns how many viewers that was and what was released.
    pub fn release_silent(&mut self, now: Instant, out: &mut Vec<InputEvent>) -> (u64, Released) {
        let silent: Vec<ViewerId> = self
            .viewers
            .iter()
            .filter(|(_, v)| now.saturating_duration_since(v.last_seen) >= HEARTBEAT_TIMEOUT)
            .map(|(id, _)| *id)
            .collect();
        let mut released = Released::default();
        for id in &silent {
            released += self.release(*id, out);
        }
        (silent.len() as u64, released)
    }

    /// When the next viewer goes silent if nothing more comes, if any holds something.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.viewers.values().map(|v| v.last_seen + HEARTBEAT_TIMEOUT).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn key(keysym: u32, down: bool) -> InputEvent {
        InputEvent::Key { keysym, down }
    }
    fn button(button: u8, down: bool) -> InputEvent {
        InputEvent::Button { button, down }
    }

    #[test]
    fn a_silent_viewer_holding_a_key_and_a_button_is_released_within_the_timeout() {
        let t0 = Instant::now();
        let mut h = Held::default();
        let mut out = Vec::new();
        h.event(t0, 1, key(0x61, true), &mut out);
        h.event(t0, 1, button(1, true), &mut out);
        assert_eq!(out, [key(0x61, true), button(1, true)]);
        // Heartbeats every 500 ms keep them held.
        for i in 1..=6u32 {
            out.clear();
            assert_eq!(
                h.event(t0 + MS * (i * 500), 1, InputEvent::Keys { held: vec![0x61] }, &mut out),
                Released::default()
            );
            assert!(out.is_empty());
            assert_eq!(h.release_silent(t0 + MS * (i * 500 + 499), &mut out), (0, Released::default()));
        }
        // The network is cut after the last heartbeat (3000 ms): released 2 s later.
        let last = t0 + MS * 3000;
        assert_eq!(h.next_deadline(), Some(last + HEARTBEAT_TIMEOUT));
        assert_eq!(h.release_silent(last + HEARTBEAT_TIMEOUT - MS, &mut out).0, 0);
        assert_eq!(
            h.release_silent(last + HEARTBEAT_TIMEOUT, &mut out),
            (1, Released { keys: 1, buttons: 1 })
        );
        assert_eq!(out, [key(0x61, false), button(1, false)]);
        assert_eq!(h.next_deadline(), None, "nothing held, nothing to watch");
    }

    #[test]
    fn a_button_alone_is_kept_by_heartbeats_and_released_on_silence() {
        let t0 = Instant::now();
        let mut h = Held::default();
        let mut out = Vec::new();
        h.event(t0, 7, button(1, true), &mut out);
        // The page's heartbeat while only a button is down lists no keys.
        h.event(t0 + MS * 1900, 7, InputEvent::Keys { held: vec![] }, &mut out);
        assert_eq!(h.release_silent(t0 + MS * 3000, &mut out).0, 0, "the heartbeat kept it");
        out.clear();
        assert_eq!(h.release_silent(t0 + MS * 3900, &mut out), (1, Released { keys: 0, buttons: 1 }));
        assert_eq!(out, [button(1, false)]);
    }

    #[test]
    fn a_viewer_releases_only_what_it_pressed() {
        let t0 = Instant::now();
        let mut h = Held::default();
        let mut out = Vec::new();
        h.event(t0, 1, key(0x61, true), &mut out);
        h.event(t0, 2, key(0x61, false), &mut out);
        h.event(t0, 2, button(3, false), &mut out);
        assert_eq!(out, [key(0x61, true)], "viewer 2 cannot lift viewer 1's key");
        out.clear();
        // Viewer 1 leaves: its key goes up; viewer 2 held nothing.
        assert_eq!(h.release(2, &mut out), Released::default());
        assert_eq!(h.release(1, &mut out), Released { keys: 1, buttons: 0 });
        assert_eq!(out, [key(0x61, false)]);
    }

    #[test]
    fn heartbeats_and_release_messages_let_go_of_what_the_page_no_longer_holds() {
        let t0 = Instant::now();
        let mut h = Held::default();
        let mut out = Vec::new();
        for k in [1, 2, 3] {
            h.event(t0, 1, key(k, true), &mut out);
        }
        h.event(t0, 1, button(2, true), &mut out);
        out.clear();
        let r = h.event(t0, 1, InputEvent::Keys { held: vec![2] }, &mut out);
        assert_eq!(r, Released { keys: 2, buttons: 0 });
        assert_eq!(out, [key(1, false), key(3, false)]);
        out.clear();
        let r = h.event(t0, 1, InputEvent::Release, &mut out);
        assert_eq!(r, Released { keys: 1, buttons: 1 });
        assert_eq!(out, [key(2, false), button(2, false)]);
        // Other input passes through and holds nothing.
        out.clear();
        h.event(t0, 1, InputEvent::Mouse { x: 3, y: 4 }, &mut out);
        assert_eq!(out, [InputEvent::Mouse { x: 3, y: 4 }]);
        assert_eq!(h.next_deadline(), None);
    }
}
