//! `kelpie_protocol::files::UploadTicket::parse`: the `X-Kelpie-Upload-Ticket` header an
//! upload carries (any bytes a client sends).
//!
//! Input: arbitrary bytes, through `std::str::from_utf8`. Checks: no panic; an accepted
//! ticket prints back to exactly the input (one spelling per ticket: no sign, no leading
//! zero, lowercase hex), so two different headers never name the same ticket.
#![no_main]

use kelpie_protocol::files::UploadTicket;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(ticket) = UploadTicket::parse(text) else { return };
    assert_eq!(ticket.to_string(), text, "a ticket prints back to its header");
    assert_eq!(UploadTicket::parse(&ticket.to_string()), Ok(ticket));
});
