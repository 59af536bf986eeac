//! Who may drive the keyboard and mouse: one controller at a time (the first to arrive),
//! hand-over on request, take-over after the controller has been idle, or everyone at once
//! with `--shared-control`. View-only viewers never may.
//!
//! A second window of the same user (another monitor) is linked to the first with a pairing
//! ticket ([`crate::pairing`]): while the first holds control, the second's input is accepted
//! too, and the link ends when the first leaves.
//!
//! Pure state machine: time comes in as an argument, notices come out; the signalling code
//! delivers them.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kelpie_protocol::{ViewerEntry, ViewersInfo};

use crate::input::ViewerId;
use crate::pairing::{PairError, SECRET_LEN, Tickets};

#[derive(Debug, Clone)]
struct Viewer {
    view_only: bool,
    last_input: Instant,
    /// The first window this one was opened from (paired with a ticket): it acts for the
    /// same user.
    partner: Option<ViewerId>,
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
    tickets: Tickets,
}

impl Control {
    /// `shared`: everyone with full access may type at once. `idle_after`: a controller
    /// silent this long loses control to the next viewer who asks.
    pub fn new(shared: bool, idle_after: Duration) -> Self {
        Self { shared, idle_after, viewers: BTreeMap::new(), controller: None, tickets: Tickets::default() }
    }

    /// A viewer arrived. The first full viewer gets control.
    pub fn join(&mut self, id: ViewerId, view_only: bool, now: Instant) {
        self.viewers.insert(id, Viewer { view_only, last_input: now, partner: None });
        if self.controller.is_none() && !view_only && !self.shared {
            self.controller = Some(id);
        }
    }

    /// A viewer left. Its ticket and its links to the windows it opened end (they go on as
    /// viewers of their own). Control passes to the longest-connected full viewer.
    pub fn leave(&mut self, id: ViewerId) {
        self.viewers.remove(&id);
        self.tickets.forget(id);
        for v in self.viewers.values_mut().filter(|v| v.partner == Some(id)) {
            v.partner = None;
        }
        if self.controller == Some(id) {
            self.controller = self.viewers.iter().find(|(_, v)| !v.view_only).map(|(id, _)| *id);
        }
    }

    /// Whether `id` may send input now (it, or the window it was opened from, holds
    /// control); notes the activity if so, for both windows.
    pub fn may_input(&mut self, id: ViewerId, now: Instant) -> Result<(), Denied> {
        let v = self.viewers.get_mut(&id).ok_or(Denied::Unknown)?;
        if v.view_only {
            return Err(Denied::ViewOnly);
        }
        let partner = v.partner;
        if !self.shared && !self.it_or_partner_controls(id) {
            return Err(Denied::NotController);
        }
        for w in [Some(id), partner].into_iter().flatten() {
            if let Some(v) = self.viewers.get_mut(&w) {
                v.last_input = now;
            }
        }
        Ok(())
    }

    /// Whether `id` or its partner holds control.
    fn it_or_partner_controls(&self, id: ViewerId) -> bool {
        self.controller.is_some_and(|c| c == id || self.partner(id) == Some(c))
    }

    /// The first window `id` was opened from, if it is paired.
    pub fn partner(&self, id: ViewerId) -> Option<ViewerId> {
        self.viewers.get(&id).and_then(|v| v.partner)
    }

    /// `id` and the windows paired with it: whose input goes when it loses control.
    pub fn with_companions(&self, id: ViewerId) -> Vec<ViewerId> {
        let mut ids = vec![id];
        ids.extend(self.viewers.iter().filter(|(_, v)| v.partner == Some(id)).map(|(w, _)| *w));
        ids
    }

    /// A new pairing ticket for viewer `id` (see [`crate::pairing`]), replacing its last.
    pub fn issue_ticket(&mut self, id: ViewerId, secret: [u8; SECRET_LEN], now: Instant) -> Option<String> {
        self.viewers.contains_key(&id).then(|| self.tickets.issue(id, secret, now))
    }

    /// Viewer `id` presents `ticket`: it is linked to the viewer the ticket was issued to
    /// (or to the window that one was opened from), which is returned. While that one holds
    /// control, `id`'s input is accepted; if `id` held control, its partner holds it now.
    pub fn pair(&mut self, id: ViewerId, ticket: &str, now: Instant) -> Result<ViewerId, PairError> {
        if self.partner(id).is_some() {
            return Err(PairError::AlreadyPaired);
        }
        let issuer = self.tickets.redeem(ticket, id, now)?;
        let root = self.partner(issuer).unwrap_or(issuer);
        if root == id || !self.viewers.contains_key(&id) {
            return Err(PairError::OwnTicket);
        }
        // Windows opened from `id` follow it to the first.
        for (w, v) in self.viewers.iter_mut() {
            if *w == id || v.partner == Some(id) {
                v.partner = Some(root);
            }
        }
        if self.controller == Some(id) && self.viewers.get(&root).is_some_and(|r| !r.view_only) {
            self.controller = Some(root);
        }
        Ok(root)
    }

    /// `id` asks for control.
    pub fn request(&mut self, id: ViewerId, now: Instant) -> Result<RequestOutcome, Denied> {
        let v = self.viewers.get(&id).ok_or(Denied::Unknown)?;
        if v.view_only {
            return Err(Denied::ViewOnly);
        }
        if self.shared || self.it_or_partner_controls(id) {
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
        if !self.it_or_partner_controls(from) {
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
                .map(|(id, v)| ViewerEntry { id: *id, view_only: v.view_only, paired: v.partner })
                .collect(),
        }
    }

    /// Whether `id` may drive the keyboard and mouse now (and upload, with `--upload
    /// control`): it has full access and holds control, or its first window does (a paired
    /// second window), or control is shared.
    pub fn holds_control(&self, id: ViewerId) -> bool {
        self.viewers
            .get(&id)
            .is_some_and(|v| !v.view_only && (self.shared || self.it_or_partner_controls(id)))
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

    const SECRET: [u8; SECRET_LEN] = [7; SECRET_LEN];

    #[test]
    fn a_paired_window_types_while_its_first_window_holds_control() {
        let t = Instant::now();
        let s = Duration::from_secs(1);
        let mut c = Control::new(false, IDLE);
        c.join(1, false, t);
        c.join(2, false, t);
        c.join(3, false, t);
        assert_eq!(c.may_input(2, t), Err(Denied::NotController));
        let ticket = c.issue_ticket(1, SECRET, t).unwrap();
        assert_eq!(c.pair(2, &ticket, t + s), Ok(1));
        assert_eq!(c.partner(2), Some(1));
        assert_eq!(c.may_input(2, t + s), Ok(()), "the second window acts for the first");
        assert_eq!(c.may_input(3, t + s), Err(Denied::NotController), "a stranger does not");
        assert_eq!(c.with_companions(1), vec![1, 2]);
        assert_eq!(c.snapshot(2).viewers[1], ViewerEntry { id: 2, view_only: false, paired: Some(1) });
        // Typing in the second window keeps the first from looking idle.
        c.may_input(2, t + IDLE).unwrap();
        assert_eq!(c.request(3, t + IDLE + s), Ok(RequestOutcome::Asked(1)));
        // Asking from the second window: it has control already.
        assert_eq!(c.request(2, t + IDLE), Ok(RequestOutcome::Granted { from: None }));
        // The first window gives control away: neither window types.
        assert_eq!(c.give(1, 3, t + IDLE + s), Ok(()));
        assert_eq!(c.may_input(2, t + IDLE + s), Err(Denied::NotController));
        assert_eq!(c.may_input(1, t + IDLE + s), Err(Denied::NotController));
        // The ticket was single-use.
        assert_eq!(c.pair(3, &ticket, t + s), Err(PairError::Unknown));
    }

    #[test]
    fn the_link_ends_when_the_first_window_leaves() {
        let t = Instant::now();
        let mut c = Control::new(false, IDLE);
        c.join(1, false, t);
        c.join(2, false, t);
        c.join(3, false, t);
        let ticket = c.issue_ticket(1, SECRET, t).unwrap();
        c.pair(3, &ticket, t).unwrap();
        c.leave(1);
        assert_eq!(c.partner(3), None);
        assert_eq!(c.controller(), Some(2), "control passes on as before");
        assert_eq!(c.may_input(3, t), Err(Denied::NotController), "the link is gone");
        // A ticket of a viewer that left is refused; an unknown viewer gets none.
        let stale = c.issue_ticket(2, SECRET, t).unwrap();
        c.leave(2);
        assert_eq!(c.pair(3, &stale, t), Err(PairError::Unknown));
        assert_eq!(c.issue_ticket(9, SECRET, t), None);
    }

    #[test]
    fn pairing_grants_no_more_than_the_pair_had() {
        let t = Instant::now();
        let mut c = Control::new(false, IDLE);
        c.join(1, true, t);
        c.join(2, false, t);
        c.join(3, true, t);
        assert_eq!(c.controller(), Some(2));
        // A view-only window paired with the controller stays view-only.
        let ticket = c.issue_ticket(2, SECRET, t).unwrap();
        assert_eq!(c.pair(3, &ticket, t), Ok(2));
        assert_eq!(c.may_input(3, t), Err(Denied::ViewOnly));
        // A full window paired with a view-only one keeps the control it held.
        let ticket = c.issue_ticket(1, SECRET, t).unwrap();
        assert_eq!(c.pair(2, &ticket, t), Ok(1));
        assert_eq!(c.controller(), Some(2));
        assert_eq!(c.may_input(2, t), Ok(()));
        let third = c.issue_ticket(3, SECRET, t).unwrap();
        assert_eq!(c.pair(2, &third, t), Err(PairError::AlreadyPaired));
        // Expired: 30 s.
        let ticket = c.issue_ticket(2, SECRET, t).unwrap();
        c.join(4, false, t);
        assert_eq!(c.pair(4, &ticket, t + crate::pairing::TICKET_TTL), Err(PairError::Expired));
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
