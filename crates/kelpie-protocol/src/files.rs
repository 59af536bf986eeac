//! File transfer: the names a browser may give a file it uploads or asks for, and the
//! listing served at `api/files` (docs/protocol.md, "Files").
//!
//! A name is one path component the server uses as it is inside its upload or download
//! directory, so [`check_name`] is the whole defence against path tricks: it refuses
//! separators, `.`/`..` and every other name starting with a dot (hidden files, and the
//! `.NAME.kelpie-part` files of uploads under way), control characters, the Unicode controls
//! that reorder text on screen (a `gpj.exe` shown as `exe.jpg`), and names longer than a
//! Linux file name may be.
//!
//! An upload also carries its viewer's [`UploadTicket`], so the server can tell which viewer
//! (and whether it holds control) sent it.

use serde::{Deserialize, Serialize};

/// Longest file name, in bytes (Linux's `NAME_MAX`).
pub const MAX_NAME_BYTES: usize = 255;

/// Why a file name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is empty.
    #[error("the file name is empty")]
    Empty,
    /// Longer than [`MAX_NAME_BYTES`].
    #[error("the file name is longer than 255 bytes; rename the file")]
    TooLong,
    /// It starts with a dot: `.`, `..` or a hidden file.
    #[error(
        "the file name starts with a dot (hidden files, '.' and '..' are not transferred); rename the file"
    )]
    Dot,
    /// It has `/` or `\`: a path, not a name.
    #[error("the file name has a '/' or '\\': give a name, not a path")]
    Separator,
    /// It has a control character (NUL, newline, DEL, C1) or a bidirectional-text control.
    #[error("the file name has a control character; rename the file")]
    Control,
}

/// Checks that `name` is a plain file name (see the module's description).
pub fn check_name(name: &str) -> Result<&str, NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(NameError::TooLong);
    }
    if name.starts_with('.') {
        return Err(NameError::Dot);
    }
    if name.contains(['/', '\\']) {
        return Err(NameError::Separator);
    }
    if name.chars().any(|c| c.is_control() || is_bidi_control(c)) {
        return Err(NameError::Control);
    }
    Ok(name)
}

/// The Unicode characters that change the order text is shown in (embeddings, overrides,
/// isolates and marks).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// The HTTP header an upload request carries its viewer's [`UploadTicket`] in.
pub const UPLOAD_TICKET_HEADER: &str = "x-kelpie-upload-ticket";

/// Bytes of a ticket's secret.
pub const TICKET_SECRET_BYTES: usize = 32;

/// The ticket the server gives each viewer over its signalling socket (the first `files`
/// message) and the page sends back with its uploads ([`UPLOAD_TICKET_HEADER`]), so an HTTP
/// request can say which viewer it comes from: `ID.SECRET`, the viewer's id in decimal and
/// 32 random bytes in lowercase hex.
#[derive(Clone, PartialEq, Eq)]
pub struct UploadTicket {
    /// The viewer it was given to.
    pub viewer: u64,
    /// Its random part.
    pub secret: [u8; TICKET_SECRET_BYTES],
}

/// Why a ticket could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the upload ticket is malformed: reload the page to get a new one")]
pub struct TicketError;

impl UploadTicket {
    /// Reads `ID.SECRET` (exactly: no spaces, no sign, no leading zeros, lowercase hex).
    pub fn parse(text: &str) -> Result<Self, TicketError> {
        let (id, hex) = text.split_once('.').ok_or(TicketError)?;
        let plain_number = !id.is_empty()
            && id.len() <= 20
            && id.bytes().all(|b| b.is_ascii_digit())
            && (id == "0" || !id.starts_with('0'));
        if !plain_number || hex.len() != TICKET_SECRET_BYTES * 2 {
            return Err(TicketError);
        }
        let viewer = id.parse().map_err(|_| TicketError)?;
        let mut secret = [0; TICKET_SECRET_BYTES];
        for (byte, pair) in secret.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
            *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
        }
        Ok(Self { viewer, secret })
    }
}

fn nibble(c: u8) -> Result<u8, TicketError> {
    match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        _ => Err(TicketError),
    }
}

impl std::fmt::Display for UploadTicket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.", self.viewer)?;
        self.secret.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// Only the viewer: the secret stays out of logs.
impl std::fmt::Debug for UploadTicket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadTicket").field("viewer", &self.viewer).finish_non_exhaustive()
    }
}

/// One file of the download directory, as `GET api/files` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Its name (one that [`check_name`] accepts).
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last changed, in milliseconds since the Unix epoch.
    pub mtime_ms: u64,
}

/// The answer to `GET api/files`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileList {
    /// The files, by name.
    pub files: Vec<FileEntry>,
    /// Whether this viewer may upload.
    pub upload: bool,
    /// The largest upload, in bytes.
    pub upload_max: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_pass() {
        for name in ["a", "report.pdf", "Ünïcødé 名前.txt", "a..b", "x.", "-rf", "a b", &"x".repeat(255)]
        {
            assert_eq!(check_name(name), Ok(name), "{name:?}");
        }
    }

    #[test]
    fn tickets_read_back_what_they_write_and_nothing_else() {
        let t = UploadTicket { viewer: 42, secret: [0xa5; TICKET_SECRET_BYTES] };
        let text = t.to_string();
        assert_eq!(text, format!("42.{}", "a5".repeat(32)));
        assert_eq!(UploadTicket::parse(&text), Ok(t.clone()));
        assert!(!format!("{t:?}").contains("a5"), "the secret stays out of Debug");
        let hex = "0f".repeat(32);
        for bad in [
            String::new(),
            hex.clone(),
            format!(".{hex}"),
            format!("42{hex}"),
            format!("+4.{hex}"),
            format!("042.{hex}"),
            format!(" 42.{hex}"),
            format!("42.{}", "0F".repeat(32)),
            format!("42.{}", &hex[1..]),
            format!("42.{hex}0"),
            format!("42.{}g", &hex[1..]),
            format!("99999999999999999999.{hex}"),
            format!("4.2.{hex}"),
        ] {
            assert_eq!(UploadTicket::parse(&bad), Err(TicketError), "{bad:?}");
        }
        assert_eq!(UploadTicket::parse(&format!("0.{hex}")).unwrap().viewer, 0);
        assert_eq!(UploadTicket::parse(&format!("18446744073709551615.{hex}")).unwrap().viewer, u64::MAX);
    }

    #[test]
    fn paths_dots_controls_and_long_names_are_refused() {
        let cases: &[(&str, NameError)] = &[
            ("", NameError::Empty),
            (".", NameError::Dot),
            ("..", NameError::Dot),
            ("../x", NameError::Dot),
            (".bashrc", NameError::Dot),
            (".x.kelpie-part", NameError::Dot),
            ("/etc/passwd", NameError::Separator),
            ("a/../../b", NameError::Separator),
            ("a\\b", NameError::Separator),
            ("a\0b", NameError::Control),
            ("a\nb", NameError::Control),
            ("a\u{7f}", NameError::Control),
            ("a\u{85}", NameError::Control),
            ("invoice\u{202E}fdp.exe", NameError::Control),
            ("a\u{2066}b", NameError::Control),
        ];
        for (name, why) in cases {
            assert_eq!(check_name(name), Err(*why), "{name:?}");
        }
        assert_eq!(check_name(&"x".repeat(256)), Err(NameError::TooLong));
        // 255 bytes counted as bytes, not characters.
        assert_eq!(check_name(&"é".repeat(128)), Err(NameError::TooLong));
    }
}
