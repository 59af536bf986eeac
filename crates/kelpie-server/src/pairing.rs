//! Pairing tickets: how a second window (another monitor, `--monitors 2`) acts for the same
//! user as the window that opened it. The first window's viewer asks for a ticket on its
//! signalling socket (`pair_ticket`), hands it to the window it opens in the address's
//! fragment (never sent to a server, so never in an access log), and that window presents it
//! on its own socket (`pair`): the server links the two viewers ([`crate::control::Control`]),
//! so that while the first holds control, input from the second is accepted too.
//!
//! A ticket is single-use, lives [`TICKET_TTL`], is bound to the viewer it was issued to and
//! dies with it; each viewer holds at most one (a new one replaces it), so tickets cost at
//! most one entry per connected viewer. The ticket text is never logged nor put in an error.
//! Pure state: time comes in as an argument, the secret from the caller.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::input::ViewerId;

/// How long a ticket may be presented after it was issued.
pub const TICKET_TTL: Duration = Duration::from_secs(30);

/// Longest ticket text accepted at all (a real one is about 50 characters).
pub const MAX_TICKET_LEN: usize = kelpie_protocol::MAX_TICKET_LEN;

/// Bytes of randomness in a ticket.
pub const SECRET_LEN: usize = 16;

/// Why a ticket was refused. The messages say what to do and never repeat the ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PairError {
    /// Not the shape of a ticket.
    #[error("this is not a pairing ticket: open the second screen from the first window's menu")]
    Malformed,
    /// No such ticket (forged, used already, or its window left).
    #[error(
        "unknown pairing ticket (used already, forged, or the first window has closed): open the \
         second screen again from the first window's menu"
    )]
    Unknown,
    /// Presented after [`TICKET_TTL`].
    #[error(
        "the pairing ticket has expired (it is valid for 30 s): open the second screen again \
         from the first window's menu"
    )]
    Expired,
    /// Presented by the viewer it was issued to.
    #[error("a window cannot pair with itself: open the second screen in a new window")]
    OwnTicket,
    /// The viewer that presents it is paired already.
    #[error("this window is paired with another already")]
    AlreadyPaired,
}

impl PairError {
    /// The `reason` label of `kelpie_pair_refused_total`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Unknown => "unknown",
            Self::Expired => "expired",
            Self::OwnTicket => "own",
            Self::AlreadyPaired => "paired",
        }
    }

    /// Every reason, for the metrics.
    pub const ALL: [Self; 5] =
        [Self::Malformed, Self::Unknown, Self::Expired, Self::OwnTicket, Self::AlreadyPaired];
}

#[derive(Debug)]
struct Ticket {
    secret: [u8; SECRET_LEN],
    expires: Instant,
}

/// The outstanding tickets, at most one per viewer.
#[derive(Debug, Default)]
pub struct Tickets {
    by_viewer: HashMap<ViewerId, Ticket>,
}

impl Tickets {
    /// A new ticket for `viewer`, valid until `now` + [`TICKET_TTL`], replacing the one it
    /// had. `secret` must be fresh randomness.
    pub fn issue(&mut self, viewer: ViewerId, secret: [u8; SECRET_LEN], now: Instant) -> String {
        self.by_viewer.insert(viewer, Ticket { secret, expires: now + TICKET_TTL });
        let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        format!("{viewer}.{hex}")
    }

    /// The viewer that `ticket` was issued to, when `by` (another viewer) presents it at
    /// `now`. A ticket that matches is used up, whether it is still valid or not; one that
    /// does not match leaves the real one be (a guess cannot spend another's ticket).
    pub fn redeem(&mut self, ticket: &str, by: ViewerId, now: Instant) -> Result<ViewerId, PairError> {
        let (issuer, secret) = parse(ticket).ok_or(PairError::Malformed)?;
        let t = self.by_viewer.get(&issuer).ok_or(PairError::Unknown)?;
        if !crate::auth::constant_time_eq(&t.secret, &secret) {
            return Err(PairError::Unknown);
        }
        let t = self.by_viewer.remove(&issuer).expect("found above");
        if now >= t.expires {
            return Err(PairError::Expired);
        }
        if issuer == by {
            return Err(PairError::OwnTicket);
        }
        Ok(issuer)
    }

    /// `viewer` left: its ticket dies with it.
    pub fn forget(&mut self, viewer: ViewerId) {
        self.by_viewer.remove(&viewer);
    }

    /// Outstanding tickets (expired ones included until used or replaced).
    pub fn len(&self) -> usize {
        self.by_viewer.len()
    }

    /// Whether no ticket is outstanding.
    pub fn is_empty(&self) -> bool {
        self.by_viewer.is_empty()
    }
}

/// `<viewer>.<32 hex digits>`.
fn parse(ticket: &str) -> Option<(ViewerId, [u8; SECRET_LEN])> {
    if ticket.len() > MAX_TICKET_LEN {
        return None;
    }
    let (id, hex) = ticket.split_once('.')?;
    if id.is_empty()
        || id.len() > 20
        || !id.bytes().all(|b| b.is_ascii_digit())
        || hex.len() != 2 * SECRET_LEN
    {
        return None;
    }
    let mut secret = [0u8; SECRET_LEN];
    for (i, byte) in secret.iter_mut().enumerate() {
        let pair = hex.get(2 * i..2 * i + 2)?;
        if !pair.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some((id.parse().ok()?, secret))
}

/// Fresh randomness for a ticket.
pub fn random_secret() -> [u8; SECRET_LEN] {
    let mut secret = [0u8; SECRET_LEN];
    getrandom::fill(&mut secret).expect("the OS has a random source");
    secret
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: [u8; SECRET_LEN] = [0xab; SECRET_LEN];

    #[test]
    fn a_ticket_pairs_once_and_only_another_viewer() {
        let t0 = Instant::now();
        let mut t = Tickets::default();
        let ticket = t.issue(3, S, t0);
        assert_eq!(ticket, format!("3.{}", "ab".repeat(16)));
        assert_eq!(t.redeem(&ticket, 3, t0), Err(PairError::OwnTicket), "not by its own viewer");
        // That used it up.
        assert_eq!(t.redeem(&ticket, 4, t0), Err(PairError::Unknown));
        let ticket = t.issue(3, S, t0);
        assert_eq!(t.redeem(&ticket, 4, t0 + Duration::from_secs(1)), Ok(3));
        assert_eq!(t.redeem(&ticket, 4, t0 + Duration::from_secs(2)), Err(PairError::Unknown), "single use");
        assert!(t.is_empty());
    }

    #[test]
    fn a_ticket_expires_and_a_new_one_replaces_the_old() {
        let t0 = Instant::now();
        let mut t = Tickets::default();
        let old = t.issue(1, S, t0);
        let new = t.issue(1, [0x11; SECRET_LEN], t0 + Duration::from_secs(5));
        assert_eq!(t.len(), 1, "one per viewer");
        assert_eq!(t.redeem(&old, 2, t0 + Duration::from_secs(6)), Err(PairError::Unknown));
        // The failed guess did not spend the real one.
        assert_eq!(t.redeem(&new, 2, t0 + Duration::from_secs(5) + TICKET_TTL), Err(PairError::Expired));
        assert_eq!(t.len(), 0, "an expired ticket is used up too");
        let last = t.issue(1, S, t0);
        assert_eq!(t.redeem(&last, 2, t0 + TICKET_TTL - Duration::from_millis(1)), Ok(1));
    }

    #[test]
    fn forged_and_malformed_tickets_are_refused_and_a_leaver_takes_its_ticket_along() {
        let t0 = Instant::now();
        let mut t = Tickets::default();
        let ticket = t.issue(7, S, t0);
        let forged = format!("7.{}", "ac".repeat(16));
        assert_eq!(t.redeem(&forged, 8, t0), Err(PairError::Unknown));
        let other_viewer = format!("8.{}", "ab".repeat(16));
        assert_eq!(t.redeem(&other_viewer, 9, t0), Err(PairError::Unknown), "bound to its viewer");
        for bad in
            ["", "7", "7.", ".abab", "x.ab", "7.zz", &format!("7.{}", "ab".repeat(15)), &"9".repeat(200)]
        {
            assert_eq!(t.redeem(bad, 8, t0), Err(PairError::Malformed), "{bad:?}");
        }
        let multibyte = format!("7.{}é", "ab".repeat(15));
        assert_eq!(t.redeem(&multibyte, 8, t0), Err(PairError::Malformed));
        t.forget(7);
        assert_eq!(t.redeem(&ticket, 8, t0), Err(PairError::Unknown), "the issuer left");
        // Errors never carry the ticket.
        for e in PairError::ALL {
            assert!(!e.to_string().contains("abab"), "{e}");
        }
    }

    #[test]
    fn secrets_are_random() {
        assert_ne!(random_secret(), random_secret());
    }
}
