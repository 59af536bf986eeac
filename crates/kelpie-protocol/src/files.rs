//! File transfer: the names a browser may give a file it uploads or asks for, and the
//! listing served at `api/files` (docs/protocol.md, "Files").
//!
//! A name is one path component the server uses as it is inside its upload or download
//! directory, so [`check_name`] is the whole defence against path tricks: it refuses
//! separators, `.`/`..` and every other name starting with a dot (hidden files, and the
//! `.NAME.kelpie-part` files of uploads under way), control characters, the Unicode controls
//! that reorder text on screen (a `gpj.exe` shown as `exe.jpg`), and names longer than a
//! Linux file name may be.

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
