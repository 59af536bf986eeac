//! `ClientMessage::parse`: the signalling JSON the browser sends on `api/signal`.
//!
//! Input: arbitrary bytes, fed through `std::str::from_utf8` first (as the WebSocket text
//! frame is). Checks: no panic; anything over `MAX_SIGNAL_MESSAGE` is `TooLarge` (input
//! starting with `!` is repeated past the limit to reach that path); nothing under the limit
//! is `TooLarge`; an accepted message survives a serialize/parse round trip.
#![no_main]

use kelpie_protocol::{ClientMessage, MAX_SIGNAL_MESSAGE, ProtocolError};
use libfuzzer_sys::fuzz_target;

fn check(text: &str) {
    match ClientMessage::parse(text) {
        Err(ProtocolError::TooLarge(n)) => {
            assert!(text.len() > MAX_SIGNAL_MESSAGE, "TooLarge for {} bytes", text.len());
            assert_eq!(n, text.len());
        }
        // Malformed, or any rejection added later (the enum grows with the protocol).
        Err(_) => {
            assert!(text.len() <= MAX_SIGNAL_MESSAGE, "oversized input was parsed");
        }
        Ok(msg) => {
            assert!(text.len() <= MAX_SIGNAL_MESSAGE, "oversized input was accepted");
            let json = serde_json::to_string(&msg).expect("client messages serialize");
            let again = ClientMessage::parse(&json).expect("a serialized message parses");
            assert_eq!(again, msg, "round trip changed the message");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    check(text);
    if let Some(rest) = text.strip_prefix('!') {
        // Just over the limit, keeping the (possibly valid) message at the front.
        let mut big = String::from(rest);
        while big.len() <= MAX_SIGNAL_MESSAGE {
            big.push_str(if rest.is_empty() { " " } else { rest });
        }
        assert!(matches!(ClientMessage::parse(&big), Err(ProtocolError::TooLarge(n)) if n == big.len()));
    }
});
