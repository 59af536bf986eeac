//! The disk side of file transfer, blocking (run it in `spawn_blocking`): listing the
//! download directory, opening a file to send, and receiving an upload into a private part
//! file that becomes the named file only when complete, never replacing one unless asked.
//! Names reaching here passed [`kelpie_protocol::files::check_name`]: one component, so
//! `dir.join(name)` stays in `dir`. Symbolic links are never followed (`O_NOFOLLOW`, `lstat`).

use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use kelpie_protocol::files::{FileEntry, check_name};

/// Most files listed: a folder with more is listed in part, by name.
pub const MAX_LISTED: usize = 2000;

/// What can go wrong with a file, for the page and the metrics.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    /// Not there.
    #[error("no such file")]
    Missing,
    /// A FIFO, device, socket, directory or symbolic link.
    #[error("not a regular file: only regular files are transferred")]
    Special,
    /// The target exists and overwriting was not asked for.
    #[error("a file of this name exists")]
    Exists,
    /// The operating system refused.
    #[error("the disk refused")]
    Io(#[source] io::Error),
}

impl From<io::Error> for DiskError {
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::NotFound => Self::Missing,
            io::ErrorKind::AlreadyExists => Self::Exists,
            // O_NOFOLLOW on a symbolic link.
            _ if e.raw_os_error() == Some(libc::ELOOP) => Self::Special,
            _ => Self::Io(e),
        }
    }
}

/// Makes `dir` (0700) if it is missing; refuses anything but a directory.
pub fn prepare_dir(dir: &Path, flag: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => anyhow::bail!("{flag} {}: not a directory; give a directory", dir.display()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| {
                anyhow::anyhow!("{flag} {}: cannot create it ({e}); create it or give another", dir.display())
            })
        }
        Err(e) => anyhow::bail!("{flag} {}: {e}", dir.display()),
    }
}

/// The regular files of `dir` whose names pass the check (no hidden files, no links), by name.
pub fn list(dir: &Path) -> io::Result<Vec<FileEntry>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else { continue };
        if check_name(&name).is_err() {
            continue;
        }
        // DirEntry::metadata does not follow links.
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.file_type().is_file() {
            continue;
        }
        let mtime_ms = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis() as u64);
        files.push(FileEntry { name, size: meta.len(), mtime_ms });
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    files.truncate(MAX_LISTED);
    Ok(files)
}

/// Opens `dir/name` to send it: a regular file, not through a link, without blocking on a
/// FIFO. Returns it and its size.
pub fn open(dir: &Path, name: &str) -> Result<(File, u64), DiskError> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(dir.join(name))?;
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(DiskError::Special);
    }
    // Reads of a regular file do not block anyway; clear the flag for clarity.
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        use std::os::fd::AsRawFd as _;
        let fd = file.as_raw_fd();
        let flags = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK);
    }
    Ok((file, meta.size()))
}

/// Whether `dir/name` may be written: absent, or a regular file and `overwrite`.
pub fn check_target(dir: &Path, name: &str, overwrite: bool) -> Result<(), DiskError> {
    match std::fs::symlink_metadata(dir.join(name)) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(DiskError::Io(e)),
        Ok(m) if !m.file_type().is_file() => Err(DiskError::Special),
        Ok(_) if overwrite => Ok(()),
        Ok(_) => Err(DiskError::Exists),
    }
}

/// An upload under way: `.kelpie-RANDOM.part` in the upload directory, 0600, made new (never
/// an existing file or a link). Removed when dropped unless [`Part::commit`] named it.
#[derive(Debug)]
pub struct Part {
    dir: PathBuf,
    path: PathBuf,
    file: Option<File>,
    written: u64,
}

impl Part {
    /// Makes a new part file in `dir`.
    pub fn create(dir: &Path) -> Result<Self, DiskError> {
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).map_err(|e| DiskError::Io(io::Error::other(e.to_string())))?;
        let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let path = dir.join(format!(".kelpie-{hex}.part"));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)?;
        Ok(Self { dir: dir.to_owned(), path, file: Some(file), written: 0 })
    }

    /// Appends `bytes`.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), DiskError> {
        let file = self.file.as_mut().ok_or(DiskError::Missing)?;
        file.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Flushes it to disk and gives it its name: never over an existing file unless
    /// `overwrite` (and then only over a regular file).
    pub fn commit(mut self, name: &str, overwrite: bool) -> Result<(), DiskError> {
        let file = self.file.take().ok_or(DiskError::Missing)?;
        file.sync_all()?;
        drop(file);
        let target = self.dir.join(name);
        if overwrite {
            check_target(&self.dir, name, true)?;
            // rename(2) replaces the directory entry itself: a link put there since the check
            // is replaced, not followed.
            std::fs::rename(&self.path, &target)?;
        } else {
            // link(2) fails with EEXIST rather than replace anything (RENAME_NOREPLACE without
            // needing a file system that has it).
            std::fs::hard_link(&self.path, &target)?;
            std::fs::remove_file(&self.path)?;
        }
        self.path = PathBuf::new();
        Ok(())
    }
}

impl Drop for Part {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            drop(self.file.take());
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("kelpie-files-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        v.sort();
        v
    }

    #[test]
    fn uploads_land_whole_and_never_replace_unless_asked() {
        let dir = temp_dir("commit");
        let mut part = Part::create(&dir).unwrap();
        part.write(b"hello ").unwrap();
        part.write(b"world").unwrap();
        assert_eq!(part.written(), 11);
        part.commit("a.txt", false).unwrap();
        assert_eq!(std::fs::read(dir.join("a.txt")).unwrap(), b"hello world");
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(dir.join("a.txt")).unwrap().permissions().mode() & 0o777, 0o600);

        let mut part = Part::create(&dir).unwrap();
        part.write(b"second").unwrap();
        assert!(matches!(part.commit("a.txt", false), Err(DiskError::Exists)));
        assert_eq!(std::fs::read(dir.join("a.txt")).unwrap(), b"hello world");
        assert_eq!(names(&dir), ["a.txt"], "the refused part file is gone");

        let mut part = Part::create(&dir).unwrap();
        part.write(b"third").unwrap();
        part.commit("a.txt", true).unwrap();
        assert_eq!(std::fs::read(dir.join("a.txt")).unwrap(), b"third");
        assert_eq!(names(&dir), ["a.txt"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_abandoned_upload_leaves_nothing() {
        let dir = temp_dir("drop");
        let mut part = Part::create(&dir).unwrap();
        part.write(&[7; 4096]).unwrap();
        assert_eq!(names(&dir).len(), 1);
        drop(part);
        assert!(names(&dir).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn special_files_and_links_are_neither_listed_nor_sent_nor_replaced() {
        let dir = temp_dir("special");
        std::fs::write(dir.join("plain"), b"x").unwrap();
        std::fs::write(dir.join(".hidden"), b"x").unwrap();
        std::fs::create_dir(dir.join("sub")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.join("link")).unwrap();
        let fifo = std::ffi::CString::new(dir.join("fifo").into_os_string().into_encoded_bytes()).unwrap();
        // SAFETY: a valid C string.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        let listed: Vec<String> = list(&dir).unwrap().into_iter().map(|f| f.name).collect();
        assert_eq!(listed, ["plain"]);
        assert_eq!(open(&dir, "plain").unwrap().1, 1);
        for name in ["fifo", "link", "sub"] {
            assert!(matches!(open(&dir, name), Err(DiskError::Special)), "{name}");
            assert!(matches!(check_target(&dir, name, true), Err(DiskError::Special)), "{name}");
        }
        assert!(matches!(open(&dir, "nothing"), Err(DiskError::Missing)));
        assert!(check_target(&dir, "nothing", false).is_ok());
        assert!(matches!(check_target(&dir, "plain", false), Err(DiskError::Exists)));
        let mut part = Part::create(&dir).unwrap();
        part.write(b"y").unwrap();
        assert!(matches!(part.commit("link", false), Err(DiskError::Exists)));
        assert_eq!(std::fs::read_link(dir.join("link")).unwrap(), Path::new("/etc/passwd"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
