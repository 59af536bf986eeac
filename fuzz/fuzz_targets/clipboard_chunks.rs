//! `kelpie_clipboard::transfer::Reassembly`: sequences of clipboard chunks as one browser
//! could send them (any order, type, size and base64), put back together within the limit.
//!
//! Input: two bytes set the limit (`1 + u16 * 8` bytes, up to ~512 KiB); then chunks, each
//! `flags, n, n payload bytes`. Flags: bit 0 last; bits 1–2 MIME type (text/plain,
//! image/png, text/html; 3 = refuse the transfer from outside instead of a chunk); bit 3 next
//! sequence number (else the same); bit 4 the payload is sent as it is (mostly not base64)
//! instead of base64-encoded; bits 5–7 the payload is repeated 4^k times (k at most 5: up
//! to 1024×, to reach the chunk and transfer limits from a short input).
//!
//! Checks: no panic; the reassembly never holds more than the limit; a completed clipboard
//! is at most the limit, is UTF-8 when it is text, and is exactly the chunks of its transfer.
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use kelpie_clipboard::Mime;
use kelpie_clipboard::transfer::Reassembly;
use kelpie_protocol::CLIPBOARD_CHUNK_BYTES;
use libfuzzer_sys::fuzz_target;

const MIMES: [&str; 3] = ["text/plain", "image/png", "text/html"];

fuzz_target!(|data: &[u8]| {
    let Some((head, mut rest)) = data.split_first_chunk::<2>() else { return };
    let max = 1 + usize::from(u16::from_le_bytes(*head)) * 8;
    let mut r = Reassembly::new(max, CLIPBOARD_CHUNK_BYTES);
    let mut seq = 0u32;
    // What the transfer under way has delivered so far, while no chunk of it was refused.
    let mut run: Option<(u32, Vec<u8>)> = None;
    while let [flags, n, tail @ ..] = rest {
        let n = usize::from(*n).min(tail.len());
        let (payload, next) = tail.split_at(n);
        rest = next;
        if flags & 8 != 0 {
            seq = seq.wrapping_add(1);
        }
        let selector = usize::from((flags >> 1) & 3);
        if selector == 3 {
            r.refuse(seq);
            run = None;
            continue;
        }
        let bytes = payload.repeat(1 << (2 * (flags >> 5).min(5)));
        let text = if flags & 16 != 0 { String::from_utf8_lossy(&bytes).into_owned() } else { B64.encode(&bytes) };
        let decoded = B64.decode(&text).ok();
        let last = flags & 1 != 0;
        let outcome = r.push(seq, MIMES[selector], &text, last);
        assert!(r.buffered() <= max, "{} bytes buffered, limit {max}", r.buffered());
        match outcome {
            Ok(None) => {
                if let (Some((s, got)), Some(d)) = (run.as_mut(), decoded.as_ref())
                    && *s == seq
                {
                    got.extend_from_slice(d);
                } else if let Some(d) = decoded {
                    run = Some((seq, d));
                }
            }
            Ok(Some(clip)) => {
                assert!(clip.data.len() <= max, "a clipboard of {} bytes past the limit {max}", clip.data.len());
                assert_eq!(clip.mime, Mime::parse(MIMES[selector]).expect("a known type completed"));
                if clip.mime == Mime::Text {
                    assert!(std::str::from_utf8(&clip.data).is_ok(), "text that is not UTF-8");
                }
                let mut want = match run.take() {
                    Some((s, got)) if s == seq => got,
                    _ => Vec::new(),
                };
                want.extend_from_slice(&decoded.expect("a chunk that completed a transfer decodes"));
                assert_eq!(clip.data, want, "the clipboard is not its chunks");
            }
            Err(e) => {
                assert!(!e.to_string().is_empty());
                run = None;
            }
        }
    }
});
