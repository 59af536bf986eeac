//! Upload tickets: a random secret per connected viewer, sent to it over its signalling
//! socket and sent back by its page with each upload, so the HTTP request says which viewer
//! it comes from. A ticket is good only while its viewer is connected (revoked when it
//! leaves; a reconnecting page gets a new one) and cannot be guessed (256 random bits,
//! compared in constant time).

use std::collections::HashMap;
use std::sync::Mutex;

use kelpie_protocol::files::{TICKET_SECRET_BYTES, UploadTicket};

use crate::auth::constant_time_eq;
use crate::input::ViewerId;

/// What an upload's ticket header said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presented {
    /// No ticket header.
    None,
    /// A ticket that is malformed, forged, or of a viewer that has left.
    Invalid,
    /// The ticket of this connected viewer.
    Viewer(ViewerId),
}

/// The tickets of the connected viewers.
#[derive(Debug, Default)]
pub struct Tickets {
    secrets: Mutex<HashMap<ViewerId, [u8; TICKET_SECRET_BYTES]>>,
}

impl Tickets {
    /// A new ticket for `viewer`, replacing any it had.
    pub fn issue(&self, viewer: ViewerId) -> UploadTicket {
        let mut secret = [0; TICKET_SECRET_BYTES];
        getrandom::fill(&mut secret).expect("the OS has a random source");
        self.secrets.lock().unwrap().insert(viewer, secret);
        UploadTicket { viewer, secret }
    }

    /// `viewer` left: its ticket is no longer good.
    pub fn revoke(&self, viewer: ViewerId) {
        self.secrets.lock().unwrap().remove(&viewer);
    }

    /// Whose ticket `header` is (the value of the ticket header, if there was one).
    pub fn check(&self, header: Option<&[u8]>) -> Presented {
        let Some(bytes) = header else { return Presented::None };
        let Some(ticket) = std::str::from_utf8(bytes).ok().and_then(|t| UploadTicket::parse(t).ok()) else {
            return Presented::Invalid;
        };
        let secrets = self.secrets.lock().unwrap();
        match secrets.get(&ticket.viewer) {
            Some(secret) if constant_time_eq(secret, &ticket.secret) => Presented::Viewer(ticket.viewer),
            _ => Presented::Invalid,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(t: &UploadTicket) -> Vec<u8> {
        t.to_string().into_bytes()
    }

    #[test]
    fn a_ticket_names_its_viewer_until_it_leaves() {
        let tickets = Tickets::default();
        let one = tickets.issue(1);
        let two = tickets.issue(2);
        assert_ne!(one.secret, two.secret, "random secrets");
        assert_eq!(tickets.check(Some(&header(&one))), Presented::Viewer(1));
        assert_eq!(tickets.check(Some(&header(&two))), Presented::Viewer(2));
        assert_eq!(tickets.check(None), Presented::None);
        tickets.revoke(1);
        assert_eq!(tickets.check(Some(&header(&one))), Presented::Invalid, "gone with its viewer");
        assert_eq!(tickets.check(Some(&header(&two))), Presented::Viewer(2));
    }

    #[test]
    fn forged_borrowed_and_stale_tickets_are_invalid() {
        let tickets = Tickets::default();
        let one = tickets.issue(1);
        let two = tickets.issue(2);
        // Viewer 2 claims to be viewer 1 with its own secret.
        let borrowed = UploadTicket { viewer: 1, secret: two.secret };
        assert_eq!(tickets.check(Some(&header(&borrowed))), Presented::Invalid);
        // One bit off.
        let mut forged = one.clone();
        forged.secret[31] ^= 1;
        assert_eq!(tickets.check(Some(&header(&forged))), Presented::Invalid);
        // A viewer that never joined, garbage, and not UTF-8.
        let unknown = UploadTicket { viewer: 9, secret: one.secret };
        assert_eq!(tickets.check(Some(&header(&unknown))), Presented::Invalid);
        assert_eq!(tickets.check(Some(b"1.abc")), Presented::Invalid);
        assert_eq!(tickets.check(Some(b"\xff\xfe")), Presented::Invalid);
        // A new ticket (a reconnect under the same id cannot happen, but a re-issue can)
        // makes the old one stale.
        let again = tickets.issue(1);
        assert_eq!(tickets.check(Some(&header(&one))), Presented::Invalid);
        assert_eq!(tickets.check(Some(&header(&again))), Presented::Viewer(1));
    }
}
