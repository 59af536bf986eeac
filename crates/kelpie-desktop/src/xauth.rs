//! The X authority of the embedded display: a random MIT-MAGIC-COOKIE-1 in a file of the
//! X authority format, which Xvfb is started with (`-auth`) and every X client of the
//! session reads through `XAUTHORITY`.
//!
//! Without it Xvfb lets any local user connect (and see, type into, and read the clipboard
//! of the desktop). With it, a client must present the cookie, which only Kelpie's user can
//! read (the file is 0600 in the 0700 [`crate::runtime`] directory).
//!
//! The file is written here, not by the `xauth` program. Its format (Xau, `XauWriteAuth`) is a
//! sequence of entries, each: family (u16, big-endian), then four counted byte strings
//! (u16 big-endian length, bytes): address, display number (decimal ASCII), authorization
//! name, authorization data. Xvfb loads every entry's cookie when it starts; a client picks
//! the first entry whose family and address match its connection (`FamilyLocal` and the host
//! name for a Unix socket; `FamilyWild` matches any) and whose number matches the display's
//! (an empty number matches any display).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::DesktopError;
use crate::runtime::{RuntimeDirError, random_bytes, write_new_private_file};

/// `FamilyLocal`: connections over a Unix socket, by host name.
pub const FAMILY_LOCAL: u16 = 256;
/// `FamilyWild`: any connection.
pub const FAMILY_WILD: u16 = 0xffff;
/// The authorization protocol Kelpie uses.
pub const MIT_MAGIC_COOKIE_1: &str = "MIT-MAGIC-COOKIE-1";

/// One entry of an X authority file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// [`FAMILY_LOCAL`] or [`FAMILY_WILD`] here.
    pub family: u16,
    /// The host name (for `FamilyLocal`).
    pub address: Vec<u8>,
    /// The display number in decimal, or empty for any display.
    pub number: Vec<u8>,
    /// The authorization protocol, [`MIT_MAGIC_COOKIE_1`].
    pub name: Vec<u8>,
    /// The cookie.
    pub data: Vec<u8>,
}

/// The entries for `cookie` on the displays `displays` of `host`: `FamilyLocal` and
/// `FamilyWild` for each display; with no display yet, one `FamilyWild` entry for any
/// display (what Xvfb reads when it starts, before it has chosen its number).
pub fn entries(host: &[u8], displays: &[u32], cookie: &[u8]) -> Vec<Entry> {
    let entry = |family, address: &[u8], number: String| Entry {
        family,
        address: address.to_vec(),
        number: number.into_bytes(),
        name: MIT_MAGIC_COOKIE_1.as_bytes().to_vec(),
        data: cookie.to_vec(),
    };
    if displays.is_empty() {
        return vec![entry(FAMILY_WILD, b"", String::new())];
    }
    displays
        .iter()
        .flat_map(|n| [entry(FAMILY_LOCAL, host, n.to_string()), entry(FAMILY_WILD, b"", n.to_string())])
        .collect()
}

/// The bytes of an X authority file holding `entries`.
pub fn encode(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        out.extend_from_slice(&e.family.to_be_bytes());
        for field in [&e.address, &e.number, &e.name, &e.data] {
            // Every field here is far below 64 KiB (a host name is at most 64 bytes).
            let len = u16::try_from(field.len()).unwrap_or(u16::MAX);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&field[..usize::from(len)]);
        }
    }
    out
}

/// An X authority file with one secret cookie, for the displays added to it.
pub struct XAuthority {
    path: PathBuf,
    cookie: [u8; 16],
    host: Vec<u8>,
    displays: Mutex<Vec<u32>>,
}

impl std::fmt::Debug for XAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the cookie.
        f.debug_struct("XAuthority").field("path", &self.path).finish_non_exhaustive()
    }
}

impl XAuthority {
    /// Writes a new authority file (0600; refused if `path` exists) with a fresh cookie from
    /// the kernel's random source, for any display until [`XAuthority::add_display`].
    pub(crate) fn create(path: &Path) -> Result<Self, DesktopError> {
        let auth = Self {
            path: path.to_path_buf(),
            cookie: random_bytes()?,
            host: hostname(),
            displays: Mutex::new(Vec::new()),
        };
        write_new_private_file(path, &encode(&entries(&auth.host, &[], &auth.cookie)))?;
        Ok(auth)
    }

    /// The file: Xvfb's `-auth` and `XAUTHORITY` for clients.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Rewrites the file with entries naming display `number` (the X server chose it after it
    /// had read the file). The new file replaces the old one at once (rename).
    pub fn add_display(&self, number: u32) -> Result<(), DesktopError> {
        let mut displays = self.displays.lock().unwrap_or_else(|p| p.into_inner());
        if !displays.contains(&number) {
            displays.push(number);
        }
        let next = self.path.with_extension("new");
        let _ = std::fs::remove_file(&next);
        write_new_private_file(&next, &encode(&entries(&self.host, &displays, &self.cookie)))?;
        std::fs::rename(&next, &self.path).map_err(|source| {
            DesktopError::from(RuntimeDirError::Io { what: "replace", path: self.path.clone(), source })
        })
    }
}

/// This machine's host name, as X clients put it in `FamilyLocal` look-ups.
fn hostname() -> Vec<u8> {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into our buffer.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return Vec::new();
    }
    buf.iter().take_while(|&&b| b != 0).copied().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_laid_out_as_xau_writes_them() {
        let cookie: Vec<u8> = (1..=16).collect();
        let bytes = encode(&entries(b"box", &[7], &cookie));
        let mut want = vec![0x01, 0x00]; // FamilyLocal
        want.extend_from_slice(&[0, 3, b'b', b'o', b'x']);
        want.extend_from_slice(&[0, 1, b'7']);
        want.extend_from_slice(&[0, 18]);
        want.extend_from_slice(b"MIT-MAGIC-COOKIE-1");
        want.extend_from_slice(&[0, 16]);
        want.extend_from_slice(&cookie);
        want.extend_from_slice(&[0xff, 0xff]); // FamilyWild
        want.extend_from_slice(&[0, 0]);
        want.extend_from_slice(&[0, 1, b'7']);
        want.extend_from_slice(&[0, 18]);
        want.extend_from_slice(b"MIT-MAGIC-COOKIE-1");
        want.extend_from_slice(&[0, 16]);
        want.extend_from_slice(&cookie);
        assert_eq!(bytes, want);
    }

    #[test]
    fn before_the_display_is_known_one_wild_entry_covers_any_display() {
        let e = entries(b"box", &[], &[9; 16]);
        assert_eq!(e.len(), 1);
        assert_eq!((e[0].family, e[0].number.is_empty()), (FAMILY_WILD, true));
        let two = entries(b"box", &[3, 12], &[9; 16]);
        let numbers: Vec<_> = two.iter().map(|e| (e.family, e.number.clone())).collect();
        assert_eq!(
            numbers,
            [
                (FAMILY_LOCAL, b"3".to_vec()),
                (FAMILY_WILD, b"3".to_vec()),
                (FAMILY_LOCAL, b"12".to_vec()),
                (FAMILY_WILD, b"12".to_vec())
            ]
        );
    }

    #[test]
    fn the_file_is_private_and_holds_a_fresh_cookie() {
        use std::os::unix::fs::MetadataExt as _;
        let dir = crate::runtime::RuntimeDir::create(None).unwrap();
        let auth = dir.x_authority();
        let meta = std::fs::metadata(auth.path()).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600);
        let first = std::fs::read(auth.path()).unwrap();
        assert_eq!(first, encode(&entries(&hostname(), &[], &auth.cookie)));
        auth.add_display(42).unwrap();
        let then = std::fs::read(auth.path()).unwrap();
        assert_eq!(then, encode(&entries(&hostname(), &[42], &auth.cookie)));
        assert_eq!(std::fs::metadata(auth.path()).unwrap().mode() & 0o777, 0o600);
        assert!(!format!("{auth:?}").contains(&format!("{:?}", auth.cookie)), "Debug hides the cookie");
        // Another authority, another cookie.
        let other = crate::runtime::RuntimeDir::create(None).unwrap();
        assert_ne!(auth.cookie, other.x_authority().cookie);
        assert_ne!(auth.cookie, [0; 16]);
    }
}
