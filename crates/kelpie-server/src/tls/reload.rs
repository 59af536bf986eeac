//! Reloading `--tls-cert` and `--tls-key` when they change. Both files are looked at every
//! [`POLL`] (device, inode, size and modification time: a renamed-in file, a replaced symlink
//! target and a rewrite in place all change it); a change is loaded once the files have stayed
//! the same for a whole poll, so a pair written in two steps is read once, whole. New
//! connections get the new certificate; connections already open keep theirs. A pair that
//! cannot be used is logged and the old one kept, and tried again when the files change again.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::Tls;
use super::identity::Identity;

/// How often the files are looked at.
pub const POLL: Duration = Duration::from_secs(2);

/// What identifies one version of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
}

impl FileStamp {
    /// The stamp of the file at `path` (following symlinks), `None` if it cannot be read.
    pub fn of(path: &Path) -> Option<Self> {
        let m = std::fs::metadata(path).ok()?;
        Some(Self {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        })
    }
}

/// The stamps of the certificate and the key.
pub type Stamps = (Option<FileStamp>, Option<FileStamp>);

/// What a poll decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Poll {
    /// The files are as last loaded (or last tried).
    Unchanged,
    /// A file is missing: being replaced, or removed. The current certificate stays.
    Missing,
    /// They changed, and are waiting to stay the same for a poll.
    Settling,
    /// Load them now.
    Load,
}

/// The reload decision, on the stamps it is shown and the time it is given.
#[derive(Debug)]
pub struct Watch {
    /// The stamps of the pair loaded or last tried.
    tried: Stamps,
    /// Stamps seen that differ from `tried`, and since when they have been seen.
    pending: Option<(Stamps, Instant)>,
    settle: Duration,
}

impl Watch {
    /// Watching from the pair loaded with stamps `loaded`; a change must last `settle`.
    pub fn new(loaded: Stamps, settle: Duration) -> Self {
        Self { tried: loaded, pending: None, settle }
    }

    /// The files have stamps `seen` at `now`.
    pub fn poll(&mut self, seen: Stamps, now: Instant) -> Poll {
        if seen == self.tried {
            self.pending = None;
            return Poll::Unchanged;
        }
        if seen.0.is_none() || seen.1.is_none() {
            self.pending = None;
            return Poll::Missing;
        }
        match self.pending {
            Some((s, since)) if s == seen => {
                if now.duration_since(since) >= self.settle {
                    self.pending = None;
                    // Tried once per version: a broken pair is not read again until it changes.
                    self.tried = seen;
                    Poll::Load
                } else {
                    Poll::Settling
                }
            }
            _ => {
                self.pending = Some((seen, now));
                Poll::Settling
            }
        }
    }
}

/// Watches `cert` and `key` for `tls` until it is dropped, every `poll`.
pub fn spawn(tls: Weak<Tls>, cert: PathBuf, key: PathBuf, loaded: Stamps, poll: Duration) {
    tokio::spawn(async move {
        // A change is loaded at the first poll that sees it unchanged.
        let mut watch = Watch::new(loaded, poll / 2);
        let mut said_missing = false;
        loop {
            tokio::time::sleep(poll).await;
            let Some(tls) = tls.upgrade() else { return };
            let seen = (FileStamp::of(&cert), FileStamp::of(&key));
            match watch.poll(seen, Instant::now()) {
                Poll::Unchanged | Poll::Settling => said_missing = false,
                Poll::Missing => {
                    if !said_missing {
                        tracing::warn!(
                            "cannot read {} or {} (--tls-cert, --tls-key): still serving the certificate loaded before",
                            cert.display(),
                            key.display()
                        );
                    }
                    said_missing = true;
                }
                Poll::Load => load(&tls, &cert, &key),
            }
        }
    });
}

fn load(tls: &Arc<Tls>, cert: &Path, key: &Path) {
    match Identity::load(cert, key, tls.provider()) {
        Ok(id) => {
            tracing::info!(
                "loaded the new certificate {} (SHA-256 {}); new connections get it",
                cert.display(),
                id.fingerprint_hex()
            );
            tls.replace(id);
        }
        Err(e) => {
            tls.counters.reload_failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::error!(
                "the changed certificate {} and key {} cannot be used, so the one loaded before is \
                 kept: {}; fix the files (they are read again when they change)",
                cert.display(),
                key.display(),
                kelpie_media::error_chain(&e)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(ino: u64, mtime_ns: i128) -> Option<FileStamp> {
        Some(FileStamp { dev: 1, ino, size: 100, mtime_ns })
    }

    #[test]
    fn a_change_is_loaded_once_it_has_settled() {
        let t = Instant::now();
        let at = |ms| t + Duration::from_millis(ms);
        let a = (stamp(1, 0), stamp(2, 0));
        let mut w = Watch::new(a, Duration::from_secs(1));
        assert_eq!(w.poll(a, at(2000)), Poll::Unchanged);
        // The certificate is written first, then the key: nothing is read half done.
        let cert_only = (stamp(3, 5), stamp(2, 0));
        assert_eq!(w.poll(cert_only, at(4000)), Poll::Settling);
        let both = (stamp(3, 5), stamp(4, 6));
        assert_eq!(w.poll(both, at(6000)), Poll::Settling, "changed again: wait again");
        assert_eq!(w.poll(both, at(6500)), Poll::Settling, "not settled yet");
        assert_eq!(w.poll(both, at(8000)), Poll::Load);
        assert_eq!(w.poll(both, at(10000)), Poll::Unchanged, "loaded once");
    }

    #[test]
    fn a_pair_that_failed_is_not_retried_until_it_changes() {
        let t = Instant::now();
        let at = |s| t + Duration::from_secs(s);
        let a = (stamp(1, 0), stamp(2, 0));
        let mut w = Watch::new(a, Duration::from_secs(1));
        let broken = (stamp(1, 9), stamp(2, 0));
        assert_eq!(w.poll(broken, at(2)), Poll::Settling);
        assert_eq!(w.poll(broken, at(4)), Poll::Load);
        // Loading failed: the old pair stays in use, and the broken one is not read again.
        for s in [6, 8, 10] {
            assert_eq!(w.poll(broken, at(s)), Poll::Unchanged);
        }
        let fixed = (stamp(1, 10), stamp(2, 0));
        assert_eq!(w.poll(fixed, at(12)), Poll::Settling);
        assert_eq!(w.poll(fixed, at(14)), Poll::Load);
        // Going back to exactly the first pair is a change too.
        assert_eq!(w.poll(a, at(16)), Poll::Settling);
        assert_eq!(w.poll(a, at(18)), Poll::Load);
    }

    #[test]
    fn a_missing_file_keeps_the_current_pair() {
        let t = Instant::now();
        let at = |s| t + Duration::from_secs(s);
        let a = (stamp(1, 0), stamp(2, 0));
        let mut w = Watch::new(a, Duration::from_secs(1));
        let new = (stamp(5, 1), stamp(2, 0));
        assert_eq!(w.poll(new, at(2)), Poll::Settling);
        // Removed and put back (a non-atomic replacement): the wait starts over.
        assert_eq!(w.poll((None, stamp(2, 0)), at(4)), Poll::Missing);
        assert_eq!(w.poll((stamp(5, 1), None), at(5)), Poll::Missing);
        assert_eq!(w.poll(new, at(6)), Poll::Settling);
        assert_eq!(w.poll(new, at(8)), Poll::Load);
    }

    #[test]
    fn stamps_change_with_content_and_with_renames() {
        let dir = std::env::temp_dir().join(format!("kelpie-stamp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("cert.pem");
        assert_eq!(FileStamp::of(&p), None);
        std::fs::write(&p, "one").unwrap();
        let first = FileStamp::of(&p).unwrap();
        assert_eq!(FileStamp::of(&p), Some(first));
        std::fs::write(&p, "two!").unwrap();
        let rewritten = FileStamp::of(&p).unwrap();
        assert_ne!(rewritten, first, "a rewrite in place changes size or time");
        // Same size and, set back, the same modification time: a renamed-in file is still new.
        let tmp = dir.join("new.pem");
        std::fs::write(&tmp, "two?").unwrap();
        let f = std::fs::File::options().write(true).open(&tmp).unwrap();
        f.set_modified(std::fs::metadata(&p).unwrap().modified().unwrap()).unwrap();
        std::fs::rename(&tmp, &p).unwrap();
        assert_ne!(FileStamp::of(&p).unwrap(), rewritten, "a new inode is a new file");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
