//! Who may upload (`--upload`), decided per request from the request's token and its
//! viewer's ticket ([`super::tickets`]). Pure: the caller says whether a viewer holds
//! control now ([`crate::control::Control::holds_control`]).

use super::UploadAccess;
use super::tickets::Presented;
use crate::auth::Access;
use crate::input::ViewerId;

/// Why an upload is not allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// `--upload off`.
    Off,
    /// A view-only token (or none) where the full-access one is needed.
    ViewOnly,
    /// `--upload control` and no ticket: not sent by a Kelpie page.
    NoTicket,
    /// `--upload control` and a ticket that is malformed, forged or of a viewer that left.
    BadTicket,
    /// `--upload control` and the ticket's viewer does not hold control.
    NotController,
}

impl Denied {
    /// What the page shows: what happened and what to do.
    pub fn message(self) -> &'static str {
        match self {
            Self::Off => "uploads are off on this server (--upload off)",
            Self::ViewOnly => {
                "this link is view-only: uploading needs the full-access link (or --upload everyone)"
            }
            Self::NoTicket => {
                "uploading needs the page's upload ticket (this server lets only the viewer with \
                 control upload, --upload control): upload from the Kelpie page, or start the \
                 server with --upload full"
            }
            Self::BadTicket => {
                "the upload ticket is not valid (forged, or of a page that has disconnected): \
                 reload the page"
            }
            Self::NotController => {
                "only the viewer with control may upload (--upload control): take control first"
            }
        }
    }
}

/// Whether a request with `access` (`None`: the token check did not see it) and `ticket`
/// may upload under `policy`. With `control`, the ticket's viewer must hold control now
/// (`holds_control`); it alone decides, as only a full-access viewer can hold control. With
/// `full` and `everyone`, the token decides and the ticket is not looked at (scripts upload
/// with the token alone).
pub fn may_upload(
    policy: UploadAccess,
    access: Option<Access>,
    ticket: Presented,
    holds_control: impl FnOnce(ViewerId) -> bool,
) -> Result<(), Denied> {
    // Fail closed: a request the token check did not see uploads nothing.
    let Some(access) = access else {
        return Err(if policy == UploadAccess::Off { Denied::Off } else { Denied::ViewOnly });
    };
    match policy {
        UploadAccess::Off => Err(Denied::Off),
        UploadAccess::Everyone => Ok(()),
        UploadAccess::Full if access == Access::Full => Ok(()),
        UploadAccess::Full => Err(Denied::ViewOnly),
        UploadAccess::Control => match ticket {
            Presented::None => Err(Denied::NoTicket),
            Presented::Invalid => Err(Denied::BadTicket),
            Presented::Viewer(id) if holds_control(id) => Ok(()),
            Presented::Viewer(_) => Err(Denied::NotController),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::control::Control;
    use crate::files::tickets::Tickets;

    const FULL: Option<Access> = Some(Access::Full);
    const VIEW: Option<Access> = Some(Access::ViewOnly);

    #[test]
    fn full_everyone_and_off_follow_the_token() {
        let never = |_| panic!("control is not asked");
        for ticket in [Presented::None, Presented::Invalid, Presented::Viewer(3)] {
            assert_eq!(may_upload(UploadAccess::Full, FULL, ticket, never), Ok(()));
            assert_eq!(may_upload(UploadAccess::Full, VIEW, ticket, never), Err(Denied::ViewOnly));
            assert_eq!(may_upload(UploadAccess::Everyone, VIEW, ticket, never), Ok(()));
            assert_eq!(may_upload(UploadAccess::Off, FULL, ticket, never), Err(Denied::Off));
            assert_eq!(may_upload(UploadAccess::Everyone, None, ticket, never), Err(Denied::ViewOnly));
            assert_eq!(may_upload(UploadAccess::Off, None, ticket, never), Err(Denied::Off));
        }
    }

    #[test]
    fn with_control_only_the_ticket_of_the_controller_uploads_while_it_holds_control() {
        let t = Instant::now();
        let tickets = Tickets::default();
        let mut control = Control::new(false, Duration::from_secs(30));
        control.join(1, false, t);
        control.join(2, false, t);
        control.join(3, true, t);
        let [one, two, three] = [1, 2, 3].map(|id| tickets.issue(id).to_string());
        let ask = |control: &Control, ticket: &str| {
            let presented = tickets.check(Some(ticket.as_bytes()));
            may_upload(UploadAccess::Control, FULL, presented, |id| control.holds_control(id))
        };
        assert_eq!(ask(&control, &one), Ok(()), "the first full viewer has control");
        assert_eq!(ask(&control, &two), Err(Denied::NotController));
        assert_eq!(ask(&control, &three), Err(Denied::NotController), "view-only never holds control");
        // Control moves: so does the right to upload.
        control.give(1, 2, t + Duration::from_secs(1)).unwrap();
        assert_eq!(ask(&control, &one), Err(Denied::NotController));
        assert_eq!(ask(&control, &two), Ok(()));
        // Viewer 2 leaves: its ticket is worth nothing, and control passes to 1.
        control.leave(2);
        tickets.revoke(2);
        assert_eq!(ask(&control, &two), Err(Denied::BadTicket));
        assert_eq!(ask(&control, &one), Ok(()));
        // No ticket, a forged one.
        let none = may_upload(UploadAccess::Control, FULL, tickets.check(None), |_| true);
        assert_eq!(none, Err(Denied::NoTicket));
        let forged = format!("1.{}", "00".repeat(32));
        assert_eq!(ask(&control, &forged), Err(Denied::BadTicket));
        // Without a token nothing passes, whatever the ticket.
        let untokened =
            may_upload(UploadAccess::Control, None, tickets.check(Some(one.as_bytes())), |_| true);
        assert_eq!(untokened, Err(Denied::ViewOnly));
    }

    #[test]
    fn with_shared_control_every_full_viewer_holds_control() {
        let t = Instant::now();
        let mut control = Control::new(true, Duration::from_secs(30));
        control.join(1, false, t);
        control.join(2, false, t);
        control.join(3, true, t);
        assert!(control.holds_control(1) && control.holds_control(2));
        assert!(!control.holds_control(3) && !control.holds_control(4));
    }
}
