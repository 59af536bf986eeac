//! Reassembling a clipboard sent in chunks (each a signalling message from one browser): a
//! transfer is the chunks of one sequence number in order, the one marked last ends it, and a
//! chunk of a new number abandons an unfinished transfer.
//!
//! What one browser sends is untrusted: a chunk may be malformed, of another type than the
//! chunks before it, or make the transfer larger than the limit. The first such chunk refuses
//! the transfer (the rest of it is ignored). However the chunks come, the buffer never holds
//! more than the limit: it grows by doubling, capped at the limit, and is checked before it
//! grows.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use crate::{Clip, Mime};

/// Why a transfer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransferError {
    /// The MIME type is not `text/plain` or `image/png`.
    #[error("unknown clipboard type (send text/plain or image/png)")]
    UnknownType,
    /// The chunk's data is not base64, or decodes to more than a chunk may hold.
    #[error("malformed clipboard chunk (standard base64 of at most {0} bytes expected)")]
    Malformed(usize),
    /// A chunk's type differs from the transfer's first.
    #[error("clipboard type changed within a transfer")]
    TypeChanged,
    /// The transfer grew past the limit.
    #[error("clipboard larger than the server's limit of {0} bytes")]
    TooLarge(usize),
    /// Text that is not UTF-8.
    #[error("clipboard text is not UTF-8")]
    NotUtf8,
}

/// One sender's transfers being reassembled.
#[derive(Debug)]
pub struct Reassembly {
    max: usize,
    chunk_max: usize,
    current: Option<(u32, Mime, Vec<u8>)>,
    /// A transfer that was refused: its later chunks are dropped silently.
    broken: Option<u32>,
}

impl Reassembly {
    /// Transfers of at most `max` bytes, in chunks of at most `chunk_max` bytes each.
    pub fn new(max: usize, chunk_max: usize) -> Self {
        Self { max, chunk_max, current: None, broken: None }
    }

    /// Adds one chunk (`data` in standard base64). Returns the clipboard when the chunk
    /// completes it, `Ok(None)` while it is incomplete (or the chunk belongs to a refused
    /// transfer), and `Err` for the chunk that makes the transfer refused.
    pub fn push(
        &mut self,
        seq: u32,
        mime: &str,
        data: &str,
        last: bool,
    ) -> Result<Option<Clip>, TransferError> {
        if self.broken == Some(seq) {
            return Ok(None);
        }
        let Some(mime) = Mime::parse(mime) else {
            return self.fail(seq, TransferError::UnknownType);
        };
        // Checked before decoding: base64 takes 4 characters for 3 bytes.
        if data.len() > self.chunk_max.div_ceil(3) * 4 {
            return self.fail(seq, TransferError::Malformed(self.chunk_max));
        }
        let bytes = match B64.decode(data) {
            Ok(d) if d.len() <= self.chunk_max => d,
            _ => return self.fail(seq, TransferError::Malformed(self.chunk_max)),
        };
        let same = matches!(&self.current, Some((s, _, _)) if *s == seq);
        if !same {
            self.current = Some((seq, mime, Vec::new()));
        }
        let Some((_, m, buf)) = self.current.as_mut() else { unreachable!("set above") };
        if *m != mime {
            return self.fail(seq, TransferError::TypeChanged);
        }
        let len = buf.len() + bytes.len();
        if len > self.max {
            return self.fail(seq, TransferError::TooLarge(self.max));
        }
        if len > buf.capacity() {
            let want = len.max(buf.capacity().saturating_mul(2)).min(self.max);
            buf.reserve_exact(want - buf.len());
        }
        buf.extend_from_slice(&bytes);
        if !last {
            return Ok(None);
        }
        let Some((_, mime, data)) = self.current.take() else { unreachable!("set above") };
        if mime == Mime::Text && std::str::from_utf8(&data).is_err() {
            return self.fail(seq, TransferError::NotUtf8);
        }
        Ok(Some(Clip { mime, data }))
    }

    /// Refuses transfer `seq` from outside (e.g. the sender may not set the clipboard): its
    /// chunks are ignored from now on. Returns whether it was not refused already.
    pub fn refuse(&mut self, seq: u32) -> bool {
        if matches!(&self.current, Some((s, _, _)) if *s == seq) {
            self.current = None;
        }
        self.broken.replace(seq) != Some(seq)
    }

    /// Bytes the unfinished transfer holds in memory (its buffer's capacity).
    pub fn buffered(&self) -> usize {
        self.current.as_ref().map_or(0, |c| c.2.capacity())
    }

    fn fail(&mut self, seq: u32, e: TransferError) -> Result<Option<Clip>, TransferError> {
        self.current = None;
        self.broken = Some(seq);
        Err(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHUNK: usize = 36 * 1024;

    fn parts(data: &[u8]) -> Vec<String> {
        data.chunks(CHUNK).map(|c| B64.encode(c)).collect()
    }

    #[test]
    fn chunks_reassemble_and_a_transfer_past_the_limit_is_refused_once() {
        let data: Vec<u8> = (0..100_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let p = parts(&data);
        assert_eq!(p.len(), 3);
        let mut r = Reassembly::new(1 << 20, CHUNK);
        assert_eq!(r.push(5, "text/plain", &p[0], false), Ok(None));
        assert_eq!(r.push(5, "text/plain", &p[1], false), Ok(None));
        assert!(r.buffered() <= 1 << 20);
        assert_eq!(
            r.push(5, "text/plain", &p[2], true),
            Ok(Some(Clip { mime: Mime::Text, data: data.clone() }))
        );
        assert_eq!(r.buffered(), 0);

        let mut r = Reassembly::new(40_000, CHUNK);
        assert_eq!(r.push(5, "text/plain", &p[0], false), Ok(None));
        assert_eq!(r.push(5, "text/plain", &p[1], false), Err(TransferError::TooLarge(40_000)));
        assert_eq!(r.push(5, "text/plain", &p[2], true), Ok(None), "the rest is ignored");
        assert_eq!(r.buffered(), 0);
    }

    #[test]
    fn the_buffer_never_exceeds_the_limit() {
        let max = 100_000;
        let mut r = Reassembly::new(max, CHUNK);
        let chunk = B64.encode([7u8; 1000]);
        let mut refused = false;
        for _ in 0..200 {
            refused |= r.push(1, "image/png", &chunk, false).is_err();
            assert!(r.buffered() <= max, "{} buffered", r.buffered());
        }
        assert!(refused);
    }

    #[test]
    fn bad_chunks_refuse_their_transfer_with_a_reason() {
        let mut r = Reassembly::new(1 << 20, CHUNK);
        assert_eq!(r.push(1, "text/html", "aGk=", true), Err(TransferError::UnknownType));
        assert_eq!(r.push(2, "text/plain", "not base64!", true), Err(TransferError::Malformed(CHUNK)));
        let big = B64.encode(vec![0u8; CHUNK + 3]);
        assert_eq!(r.push(3, "text/plain", &big, true), Err(TransferError::Malformed(CHUNK)));
        r.push(4, "text/plain", "aGk=", false).unwrap();
        assert_eq!(r.push(4, "image/png", "aGk=", true), Err(TransferError::TypeChanged));
        assert_eq!(r.push(5, "text/plain", &B64.encode([0xff, 0xfe]), true), Err(TransferError::NotUtf8));
        // A new transfer abandons an unfinished one; an empty clipboard is a transfer too.
        r.push(6, "text/plain", "aGk=", false).unwrap();
        assert_eq!(r.push(7, "text/plain", "", true), Ok(Some(Clip { mime: Mime::Text, data: vec![] })));
        // Refused from outside: only the first refusal is news.
        assert!(r.refuse(8));
        assert!(!r.refuse(8));
        assert_eq!(r.push(8, "text/plain", "aGk=", true), Ok(None));
        assert!(TransferError::TooLarge(3).to_string().contains("limit of 3 bytes"));
    }
}
