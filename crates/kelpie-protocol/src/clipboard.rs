//! Clipboard transfers, in either direction: chunks small enough for one signalling message.

use serde::{Deserialize, Serialize};

/// One chunk of a clipboard transfer, in either direction. A transfer is the chunks of one
/// `seq` in order; the one with `last` ends it. A chunk with a new `seq` abandons an
/// unfinished transfer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClipboardChunk {
    /// Transfer number, chosen by the sender.
    pub seq: u32,
    /// `text/plain` (UTF-8) or `image/png`.
    pub mime: String,
    /// Standard base64 (with padding) of at most [`CLIPBOARD_CHUNK_BYTES`] bytes.
    pub data: String,
    /// Whether this chunk ends the transfer.
    pub last: bool,
}

/// Largest decoded size of one clipboard chunk (36 KiB: 48 KiB of base64, well under
/// [`MAX_SIGNAL_MESSAGE`]).
pub const CLIPBOARD_CHUNK_BYTES: usize = 36 * 1024;
/// Largest base64 length of one clipboard chunk.
pub const CLIPBOARD_CHUNK_BASE64: usize = CLIPBOARD_CHUNK_BYTES / 3 * 4;
/// MIME types a clipboard transfer may carry.
pub const CLIPBOARD_MIMES: [&str; 2] = ["text/plain", "image/png"];

impl ClipboardChunk {
    /// Whether every field is within its bounds (size, MIME type, base64 alphabet).
    pub fn is_valid(&self) -> bool {
        CLIPBOARD_MIMES.contains(&self.mime.as_str())
            && self.data.len() <= CLIPBOARD_CHUNK_BASE64
            && self.data.len().is_multiple_of(4)
            && self.data.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
    }
}
