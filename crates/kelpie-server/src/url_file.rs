//! `--url-file`: the start URL, with its token, in a file only Kelpie's user can read, for a
//! portal or script to pick up.

use std::io::Write as _;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// The URL file Kelpie wrote; removed on drop if it is still the file Kelpie made.
#[derive(Debug)]
pub struct UrlFile {
    path: PathBuf,
    /// Device and inode of the file made, so that a file put there since is left alone.
    id: (u64, u64),
}

impl UrlFile {
    /// Writes `url` and a newline into a new file at `path`, mode 0600. An existing file (or
    /// link) is refused: nobody else can have prepared the file Kelpie writes its token into.
    /// The file appears whole: it is written under a temporary name beside it, then linked
    /// to `path` (which fails if anything is there).
    pub fn create(path: &Path, url: &str) -> anyhow::Result<Self> {
        let shown = path.display();
        let name = path.file_name().with_context(|| format!("--url-file {shown} names no file"))?;
        let mut temp_name = std::ffi::OsString::from(".");
        temp_name.push(name);
        temp_name.push(format!(".kelpie-{}", std::process::id()));
        let temp = path.with_file_name(temp_name);
        let _ = std::fs::remove_file(&temp);
        let written = write_private(&temp, url).and_then(|()| {
            std::fs::hard_link(&temp, path).with_context(|| match path.symlink_metadata() {
                Ok(_) => format!(
                    "{shown} (--url-file) already exists: Kelpie writes the URL only into a new file; \
                     remove it (or choose another --url-file)"
                ),
                Err(_) => format!("cannot create {shown} (--url-file)"),
            })
        });
        let _ = std::fs::remove_file(&temp);
        written?;
        let meta = std::fs::symlink_metadata(path)
            .with_context(|| format!("cannot look at {shown} (--url-file)"))?;
        Ok(Self { path: path.to_path_buf(), id: (meta.dev(), meta.ino()) })
    }
}

/// `url` and a newline in a new file at `path`, mode 0600.
fn write_private(path: &Path, url: &str) -> anyhow::Result<()> {
    let shown = path.display();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .with_context(|| {
            format!("cannot create {shown} (--url-file): its directory must exist and be writable")
        })?;
    file.write_all(format!("{url}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {shown} (--url-file)"))
}

impl Drop for UrlFile {
    fn drop(&mut self) {
        let ours = std::fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.id);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_goes_into_a_new_private_file_only() {
        let dir = std::env::temp_dir().join(format!("kelpie-url-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("url");
        let _ = std::fs::remove_file(&path);
        let file = UrlFile::create(&path, "http://127.0.0.1:8080/?token=abc").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "http://127.0.0.1:8080/?token=abc\n");
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        // Never overwritten.
        let e = format!("{:#}", UrlFile::create(&path, "http://other/").unwrap_err());
        assert!(e.contains("already exists") && e.contains("--url-file"), "{e}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "http://127.0.0.1:8080/?token=abc\n");
        drop(file);
        assert!(!path.exists(), "removed on exit");
        // A link planted there is not followed.
        let target = dir.join("target");
        std::fs::write(&target, "").unwrap();
        std::os::unix::fs::symlink(&target, &path).unwrap();
        assert!(UrlFile::create(&path, "http://x/").is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "");
        std::fs::remove_file(&path).unwrap();
        // Nothing is left beside it, whatever happened.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "only the link's target");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
