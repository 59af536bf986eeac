//! Who may drive the keyboard and mouse: one controller at a time (the first to arrive),
//! hand-over on request, take-over after the controller has been idle, or everyone at once
//! with `--shared-control`. View-only viewers never may.
//!
//! Pure state machine: time comes in as an argument, notices come out; the signalling code
//! delivers them.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kelpie_protocol::{ViewerEntry, ViewersInfo};

use crate::input::ViewerId;

#[derive(Debug, Clone)]
struct Viewer {
    view_only: bool,
    last_input: Instant,
}

/// Why input or a control request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// The viewer joined with the view-only token.
    ViewOnly,
    /// Another viewer has control.
    NotController,
    /// No such viewer.
    Unknown,
}

/// What a control request led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestOutcome {
    /// The requester has control now, taken from `from` (a controller idle too long) if
    /// some viewer had it.
    Granted {
        /// Who had control before.
        from: Option<ViewerId>,
    },
    /// The controller was asked to give it.
    Asked(ViewerId),
}

/// The control state of one session.
#[derive(Debug)]
pub struct Control {
    shared: bool,
    idle_after: Duration,
    viewers: BTreeMap<ViewerId, Viewer>,
    controller: Option<ViewerId>,
}

impl Control {
    /// `shared`: everyone with full access may type at once. `idle_after`: a controller
    /// silent this long loses control to the next viewer who asks.
    pub fn new(shared: bool, idle_after: Duration) -> Self {
        Self { shared, idle_after, viewers: BTreeMap::new(), controller: None }
    }

    /// A viewer arrived. The first full viewer gets control.
    pub fn join(&mut self, id: ViewerId, view_only: bool, now: Instant) {
        self.viewers.insert(id, Viewer { view_only, last_input: now });
        if self.controller.is_none() && !view_only && !self.shared {
            self.controller = Some(id);
        }
    }

    /// A viewer left. Control passes to the longest-connected full viewer.
    pub fn leave(&mut self, id: ViewerId) {
        self.viewers.remove(&id);
        if self.controller == Some(id) {
            self.controller = self.viewers.iter().find(|(_, v)| !v.view_only).map(|(id, _)| *id);
        }
    }

    /// Whether `id` may send input now; notes the activity if so.
    pub fn may_input(&mut self, id: ViewerId, now: Instant) -> Result<(), Denied> {
        let v = self.viewers.get_mut(&id).ok_or(Denied::Unknown)?;
        if v.view_only {
            return Err(Denied::ViewOnly);
        }
        if !self.shared && self.controller != Some(id) {
            return Err(Denied::NotController);
        }
        v.last_input = now;
        Ok(())
    }

    /// `id` asks for control.
    pub fn request(&mut self, id: ViewerId, now: Instant) -> Result<RequestOutcome, Denied> {
        let v = self.viewers.get(&id).ok_or(Denied::Unknown)?;
        if v.view_only {
            return Err(Denied::ViewOnly);
        }
        if self.shared || self.controller == Some(id) {
            return Ok(RequestOutcome::Granted { from: None });
        }
        match self.controller {
            Some(holder) => {
                let idle = self
                    .viewers
                    .get(&holder)
                    .is_none_or(|h| now.saturating_duration_since(h.last_input) >= self.idle_after);
                if idle {
                    self.grant(id, now);
                    Ok(RequestOutcome::Granted { from: Some(holder) })
                } else {
                    Ok(RequestOutcome::Asked(holder))
                }
            }
            None => {
                self.grant(id, now);
                Ok(RequestOutcome::Granted { from: None })
            }
        }
    }

    /// The controller `from` gives control to `to`.
    pub fn give(&mut self, from: ViewerId, to: ViewerId, now: Instant) -> Result<(), Denied> {
        if self.controller != Some(from) {
            return Err(Denied::NotController);
        }
        match self.viewers.get(&to) {
            None => Err(Denied::Unknown),
            Some(v) if v.view_only => Err(Denied::ViewOnly),
            Some(_) => {
                self.grant(to, now);
                Ok(())
            }
        }
    }

    fn grant(&mut self, id: ViewerId, now: Instant) {
        self.controller = Some(id);
        if let Some(v) = self.viewers.get_mut(&id) {
            v.last_input = now;
        }
    }

    /// Who holds control.
    pub fn controller(&self) -> Option<ViewerId> {
        self.controller
    }

    /// Everyone connected, as told to viewer `you`.
    pub fn snapshot(&self, you: ViewerId) -> ViewersInfo {
        ViewersInfo {
            you,
            controller: self.controller,
            shared: self.shared,
            viewers: self
                .viewers
                .iter()
                .map(|(id, v)| ViewerEntry { id: *id, view_only: v.view_only })
                .collect(),
        }
    }

    /// Whether `id` may drive the keyboard and mouse now: it holds control, or control is
    /// shared and it has full access.
    pub fn holds_control(&self, id: ViewerId) -> bool {
        self.viewers.get(&id).is_some_and(|v| !v.view_only && (self.shared || self.controller == Some(id)))
    }

    /// Whether `id` joined with the view-only token.
    pub fn is_view_only(&self, id: ViewerId) -> bool {
        self.viewers.get(&id).is_some_and(|v| v.view_only)
    }

    /// Connected viewers.
    pub fn ids(&self) -> Vec<ViewerId> {
        self.viewers.keys().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Duration = Duration::from_secs(30);

    #[test]
    fn first_full_viewer_controls_and_others_are_refused() {
        let t = Instant::now();
        let mut c = Control::new(false, IDLE);
        c.join(1, true, t);
        assert_eq!(c.controller(), None, "view-only viewers never get control");
        c.join(2, false, t);
        c.join(3, false, t);
        assert_eq!(c.controller(), Some(2));
        assert_eq!(c.may_input(2, t), Ok(()));
        assert_eq!(c.may_input(3, t), Err(Denied::NotController));
        assert_eq!(c.may_input(1, t), Err(Denied::ViewOnly));
        assert_eq!(c.may_input(9, t), Err(Denied::Unknown));
    }

    #[test]
    fn control_is_requested_given_and_taken_when_idle() {
        let t = Instant::now();
        let mut c = Control::new(false, IDLE);
        c.join(1, false, t);
        c.join(2, false, t);
        // 1 is active: 2 must ask.
        assert_eq!(c.request(2, t + Duration::from_secs(1)), Ok(RequestOutcome::Asked(1)));
        assert_eq!(c.give(2, 2, t), Err(Denied::NotController));
        assert_eq!(c.give(1, 2, t + Duration::from_secs(2)), Ok(()));
        assert_eq!(c.controller(), Some(2));
        // And back the other way.
        assert_eq!(c.request(1, t + Duration::from_secs(3)), Ok(RequestOutcome::Asked(2)));
        assert_eq!(c.give(2, 1, t + Duration::from_secs(3)), Ok(()));
        assert_eq!(c.controller(), Some(1));
        // 1 goes idle past the limit: 2 takes control by asking.
        c.may_input(1, t + Duration::from_secs(4)).unwrap();
        assert_eq!(
            c.request(2, t + Duration::from_secs(4) + IDLE),
            Ok(RequestOutcome::Granted { from: Some(1) })
        );
        assert_eq!(c.controller(), Some(2));
    }

    #[test]
    fn leaving_controller_passes_control_on() {
        let t = Instant::now();
        let mut c = Control::new(false, IDLE);
        c.join(1, false, t);
        c.join(2, true, t);
        c.join(3, false, t);
        c.leave(1);
        assert_eq!(c.controller(), Some(3));
        c.leave(3);
        assert_eq!(c.controller(), None);
        assert_eq!(c.request(2, t), Err(Denied::ViewOnly));
    }

    #[test]
    fn shared_control_lets_every_full_viewer_type() {
        let t = Instant::now();
        let mut c = Control::new(true, IDLE);
        c.join(1, false, t);
        c.join(2, false, t);
        c.join(3, true, t);
        assert_eq!(c.may_input(1, t), Ok(()));
        assert_eq!(c.may_input(2, t), Ok(()));
        assert_eq!(c.may_input(3, t), Err(Denied::ViewOnly));
        let s = c.snapshot(2);
        assert!(s.shared && s.you == 2 && s.viewers.len() == 3);
    }
}
