//! The Unix-socket listener (`--listen unix:PATH`), for a reverse proxy on the same machine.
//! The socket file gets mode 0600 (or 0660 and the group of `--listen-group`, for a proxy that
//! runs as another user) with no moment at which anyone else could connect: it is bound
//! inside a new private (0700) directory beside the path, given its mode and group there,
//! then renamed into place. A socket left behind by a Kelpie that died (nothing answers on it) is replaced;
//! a live one, or a file that is not a socket, is refused. The socket file is removed when the
//! listener is dropped, if it is still the one Kelpie made.

use std::future::Future;
use std::io;
use std::os::unix::fs::{DirBuilderExt as _, FileTypeExt as _, MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use super::{ConnInfo, Listener, REFUSED, Via};

/// Why the socket could not be made.
#[derive(Debug, thiserror::Error)]
pub enum UnixBindError {
    /// Another server answers on the socket.
    #[error(
        "{0} is in use: another server (another Kelpie?) answers on it; stop it, or give another path with --listen unix:PATH"
    )]
    InUse(PathBuf),
    /// `--listen-group` names no group.
    #[error("--listen-group {0}: there is no such group; give a group name or number from /etc/group")]
    NoGroup(String),
    /// Something other than a socket is at the path.
    #[error(
        "{0} exists and is not a socket: Kelpie does not remove it; give another path with --listen unix:PATH"
    )]
    NotASocket(PathBuf),
    /// A step failed.
    #[error("cannot {what} {}", path.display())]
    Io {
        /// What Kelpie was doing.
        what: &'static str,
        /// The file it was doing it to.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: io::Error,
    },
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> UnixBindError + 'a {
    move |source| UnixBindError::Io { what, path: path.to_path_buf(), source }
}

/// A listening Unix socket, removed on drop.
#[derive(Debug)]
pub struct UnixListener {
    listener: tokio::net::UnixListener,
    path: PathBuf,
    /// Device and inode of the socket file Kelpie made.
    file: (u64, u64),
}

impl UnixListener {
    /// Makes the socket at `path` (mode 0600, or 0660 owned by the group `group`) and listens
    /// on it. Needs the tokio runtime.
    pub fn bind(path: &Path, group: Option<u32>) -> Result<Self, UnixBindError> {
        check_existing(path)?;
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("/"));
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let private = parent.join(format!(".{name}.{}", random_suffix()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&private)
            .map_err(io_err("create a private directory for the socket beside", path))?;
        let result = bind_in(&private, path, group);
        // Empty now, or after a failure holds at most the unrenamed socket.
        let _ = std::fs::remove_file(private.join("s"));
        let _ = std::fs::remove_dir(&private);
        let (std_listener, file) = result?;
        std_listener.set_nonblocking(true).map_err(io_err("listen on", path))?;
        let listener = tokio::net::UnixListener::from_std(std_listener).map_err(io_err("listen on", path))?;
        Ok(Self { listener, path: path.to_path_buf(), file })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Binds inside `private` (0700: nobody else can reach the socket there), gives the socket
/// its group and mode and renames it to `path`, replacing a stale socket atomically.
fn bind_in(
    private: &Path,
    path: &Path,
    group: Option<u32>,
) -> Result<(std::os::unix::net::UnixListener, (u64, u64)), UnixBindError> {
    let inner = private.join("s");
    let listener = std::os::unix::net::UnixListener::bind(&inner).map_err(io_err("listen on", path))?;
    if let Some(gid) = group {
        std::os::unix::fs::chown(&inner, None, Some(gid)).map_err(io_err(
            "give the group of --listen-group (is Kelpie's user in it?) to the socket",
            path,
        ))?;
    }
    let mode = if group.is_some() { 0o660 } else { 0o600 };
    std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(mode))
        .map_err(io_err("make private (mode 0600 or 0660) the socket", path))?;
    let meta = std::fs::symlink_metadata(&inner).map_err(io_err("look at the socket", path))?;
    std::fs::rename(&inner, path).map_err(io_err("put the socket in place at", path))?;
    Ok((listener, (meta.dev(), meta.ino())))
}

/// Refuses a live socket or a file that is not a socket at `path`; a stale socket may go.
fn check_existing(path: &Path) -> Result<(), UnixBindError> {
    let meta = match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("look at", path)(e)),
        Ok(m) => m,
    };
    if !meta.file_type().is_socket() {
        return Err(UnixBindError::NotASocket(path.to_path_buf()));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(UnixBindError::InUse(path.to_path_buf())),
        // Nothing listens: left behind by a server that died.
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            tracing::info!("replacing the stale socket {} (nothing answers on it)", path.display());
            Ok(())
        }
        Err(e) => {
            Err(io_err("tell whether a server answers on the existing socket (remove it if not)", path)(e))
        }
    }
}

/// The group `--listen-group` names: a name from the group database, or a number.
pub fn group_id(name: &str) -> Result<u32, UnixBindError> {
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(gid);
    }
    let no_group = || UnixBindError::NoGroup(name.to_string());
    let c_name = std::ffi::CString::new(name).map_err(|_| no_group())?;
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: an all-zero `group` is a valid value of the C struct (null pointers, zero id).
    let mut group: libc::group = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::group = std::ptr::null_mut();
    // SAFETY: getgrnam_r writes the group into `group` and its strings into `buf`, both ours
    // and alive for the call; `found` is set to `&mut group` or null.
    let rc = unsafe {
        libc::getgrnam_r(c_name.as_ptr(), &mut group, buf.as_mut_ptr().cast(), buf.len(), &mut found)
    };
    if rc != 0 || found.is_null() {
        return Err(no_group());
    }
    Ok(group.gr_gid)
}

fn random_suffix() -> String {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).expect("the OS has a random source");
    b.iter().map(|b| format!("{b:02x}")).collect()
}

impl Drop for UnixListener {
    fn drop(&mut self) {
        // Only the file Kelpie made: another server may have replaced it since.
        if let Ok(m) = std::fs::symlink_metadata(&self.path)
            && (m.dev(), m.ino()) == self.file
            && let Err(e) = std::fs::remove_file(&self.path)
        {
            tracing::warn!("cannot remove the socket {}: {e}", self.path.display());
        }
    }
}

impl Listener for UnixListener {
    type Conn = tokio::net::UnixStream;
    type Io = tokio::net::UnixStream;

    async fn accept(&mut self) -> io::Result<(Self::Conn, ConnInfo)> {
        let (stream, _) = self.listener.accept().await?;
        Ok((stream, ConnInfo { local: None, peer: None, via: Via::Unix, tcp_fd: None }))
    }

    fn open(&self, conn: Self::Conn) -> impl Future<Output = io::Result<Self::Io>> + Send + 'static {
        std::future::ready(Ok(conn))
    }

    fn refuse(&self, conn: Self::Conn) {
        let _ = conn.try_write(REFUSED);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("kelpie-unix-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().mode() & 0o7777
    }

    #[tokio::test]
    async fn the_socket_is_private_answers_and_goes_away_on_drop() {
        let dir = temp_dir("private");
        let path = dir.join("kelpie.sock");
        let mut listener = UnixListener::bind(&path, None).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "the private directory is gone");
        let client = tokio::net::UnixStream::connect(&path);
        let (accepted, client) = tokio::join!(listener.accept(), client);
        client.unwrap();
        let (_, info) = accepted.unwrap();
        assert_eq!((info.via, info.peer, info.local), (Via::Unix, None, None));
        drop(listener);
        assert!(!path.exists(), "the socket is removed on exit");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_group_gets_read_and_write_on_the_socket() {
        let dir = temp_dir("group");
        let path = dir.join("kelpie.sock");
        // SAFETY: getegid has no failure mode.
        let mine = unsafe { libc::getegid() };
        let listener = UnixListener::bind(&path, Some(mine)).unwrap();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert_eq!((meta.mode() & 0o7777, meta.gid()), (0o660, mine));
        drop(listener);
        assert_eq!(group_id("0").unwrap(), 0);
        assert_eq!(group_id("root").unwrap(), 0);
        let e = group_id("no-such-group-kelpie").unwrap_err().to_string();
        assert!(e.contains("no such group"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_stale_socket_is_replaced_a_live_one_or_another_file_refused() {
        let dir = temp_dir("stale");
        let path = dir.join("kelpie.sock");
        // A socket nobody listens on any more: a Kelpie that was killed.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let first = UnixListener::bind(&path, None).unwrap();
        assert_eq!(mode(&path), 0o600);
        let e = UnixListener::bind(&path, None).unwrap_err();
        assert!(matches!(e, UnixBindError::InUse(_)), "{e}");
        assert!(e.to_string().contains("in use"), "{e}");
        assert!(path.exists(), "the live socket stays");
        // Another server took the path over: dropping the first listener leaves it alone.
        std::fs::remove_file(&path).unwrap();
        let other = std::os::unix::net::UnixListener::bind(&path).unwrap();
        drop(first);
        assert!(path.exists(), "another server's socket is not removed");
        drop(other);
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, "not a socket").unwrap();
        let e = UnixBindError::to_string(&UnixListener::bind(&path, None).unwrap_err());
        assert!(e.contains("is not a socket"), "{e}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "not a socket");
        let missing = dir.join("no/such/dir/kelpie.sock");
        let e = UnixListener::bind(&missing, None).unwrap_err();
        assert!(e.to_string().contains("private directory"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
