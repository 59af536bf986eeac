//! Kelpie's runtime directory: the private files of a session with an embedded display.
//!
//! One directory per Kelpie, mode 0700, created new (never one that already exists, never
//! through a symbolic link) under an unpredictable name, `$TMPDIR/kelpie-<32 hex digits>`, or
//! at the path `--runtime-dir` gives. It holds the X authority (`Xauthority`, 0600, see
//! [`crate::xauth`]), the private PulseAudio's socket and cookie (`pulse/`), and `owner`: the
//! pid, start time and PID namespace of the Kelpie that made it. It is removed when Kelpie
//! exits; one left by a Kelpie that was killed is removed by the next Kelpie of the same user
//! that starts ([`clean_stale`]), and only when its `owner` shows the process is gone.
//!
//! Other users cannot enter the directory, so they can neither read the X cookie nor reach
//! the PulseAudio socket; the directory's name cannot be guessed, so it cannot be made for
//! Kelpie beforehand by someone else.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use crate::DesktopError;
use crate::xauth::XAuthority;

/// The start of the name of every runtime directory Kelpie makes itself.
const PREFIX: &str = "kelpie-";
/// The file naming the Kelpie that made the directory.
const OWNER: &str = "owner";

/// Why a runtime directory could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeDirError {
    /// Something is already at the path: refused, whoever made it.
    #[error(
        "{} already exists (and is not a runtime directory left by a Kelpie of this user that \
         has exited): Kelpie makes its runtime directory itself, new, so that nobody else can \
         have prepared it; remove it or choose another --runtime-dir",
        path.display()
    )]
    Exists {
        /// The path.
        path: PathBuf,
    },
    /// A system call failed.
    #[error("cannot {what} {}", path.display())]
    Io {
        /// What Kelpie tried.
        what: &'static str,
        /// On which path.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// The directory made is not private (e.g. a file system that ignores modes).
    #[error(
        "{} is not private to this user after Kelpie made it (mode {mode:o}, owner uid {uid}): \
         choose a --runtime-dir on a file system with Unix permissions",
        path.display()
    )]
    NotPrivate {
        /// The path.
        path: PathBuf,
        /// Its mode bits.
        mode: u32,
        /// Its owner.
        uid: u32,
    },
}

/// A private directory of this Kelpie, removed (with everything in it) when dropped.
#[derive(Debug)]
pub struct RuntimeDir {
    path: PathBuf,
    xauth: XAuthority,
}

impl RuntimeDir {
    /// Makes the directory at `at`, or as `$TMPDIR/kelpie-<random>` (after removing stale
    /// ones of exited Kelpies of this user there), with a new X authority in it.
    pub fn create(at: Option<&Path>) -> Result<Self, DesktopError> {
        let path = match at {
            Some(path) => {
                if is_stale(path) {
                    tracing::info!(path = %path.display(), "removing the runtime directory of an exited Kelpie");
                    let _ = fs::remove_dir_all(path);
                }
                make_private_dir(path)?;
                path.to_path_buf()
            }
            None => {
                let parent = std::env::temp_dir();
                clean_stale(&parent);
                let path = parent.join(format!("{PREFIX}{}", random_hex()?));
                make_private_dir(&path)?;
                path
            }
        };
        // From here on the directory is ours: removed if the rest fails.
        let guard = Removal(path);
        write_new_private_file(&guard.0.join(OWNER), Owner::me().to_string().as_bytes())?;
        let xauth = XAuthority::create(&guard.0.join("Xauthority"))?;
        let path = guard.keep();
        tracing::debug!(path = %path.display(), "made the runtime directory");
        Ok(Self { path, xauth })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The X authority of the embedded display, in the directory.
    pub fn x_authority(&self) -> &XAuthority {
        &self.xauth
    }
}

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_dir_all(&self.path) {
            tracing::warn!("cannot remove the runtime directory {}: {e}", self.path.display());
        }
    }
}

impl RuntimeDir {
    /// For test programs, which start embedded displays in a process already running
    /// threads: one runtime directory for the whole process, made by the first call, which
    /// also sets `XAUTHORITY` to its X authority (removed at exit).
    ///
    /// # Safety
    ///
    /// The first call changes the environment: while it runs, no other thread may read or
    /// write the environment other than through `std::env` (which holds a lock). Call it
    /// first thing in every test that uses it, before the test starts threads.
    pub unsafe fn process_wide() -> &'static Self {
        static DIR: std::sync::OnceLock<RuntimeDir> = std::sync::OnceLock::new();
        extern "C" fn remove_at_exit() {
            if let Some(dir) = DIR.get() {
                let _ = fs::remove_dir_all(&dir.path);
            }
        }
        DIR.get_or_init(|| {
            let dir = Self::create(None).expect("a runtime directory in $TMPDIR");
            // SAFETY: the caller's promise; OnceLock runs this once, other callers wait.
            unsafe {
                std::env::set_var("XAUTHORITY", dir.x_authority().path());
                libc::atexit(remove_at_exit);
            }
            dir
        })
    }
}

/// Removes a directory on drop unless kept.
struct Removal(PathBuf);

impl Removal {
    fn keep(self) -> PathBuf {
        let path = self.0.clone();
        std::mem::forget(self);
        path
    }
}

impl Drop for Removal {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// `mkdir(path, 0700)`: fails if anything (a directory, a file, a symbolic link) is there,
/// then checks that the result is a directory of ours that nobody else may enter.
pub(crate) fn make_private_dir(path: &Path) -> Result<(), DesktopError> {
    DirBuilder::new().mode(0o700).create(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            RuntimeDirError::Exists { path: path.to_path_buf() }
        } else {
            RuntimeDirError::Io { what: "create the directory", path: path.to_path_buf(), source }
        }
    })?;
    let check = || -> Result<(), RuntimeDirError> {
        let io = |what| move |source| RuntimeDirError::Io { what, path: path.to_path_buf(), source };
        // The umask may only have taken bits away; make it exactly 0700.
        fs::set_permissions(path, fs::Permissions::from_mode(0o700)).map_err(io("set the mode of"))?;
        let meta = fs::symlink_metadata(path).map_err(io("look at"))?;
        let mode = meta.mode() & 0o7777;
        if !meta.is_dir() || meta.uid() != euid() || mode != 0o700 {
            return Err(RuntimeDirError::NotPrivate { path: path.to_path_buf(), mode, uid: meta.uid() });
        }
        Ok(())
    };
    check().map_err(|e| {
        let _ = fs::remove_dir_all(path);
        e.into()
    })
}

/// Writes `bytes` into a new file at `path`, mode 0600, refusing one that exists.
pub(crate) fn write_new_private_file(path: &Path, bytes: &[u8]) -> Result<(), RuntimeDirError> {
    let io = |what| move |source| RuntimeDirError::Io { what, path: path.to_path_buf(), source };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(io("create"))?;
    file.write_all(bytes).map_err(io("write"))?;
    file.sync_all().map_err(io("write"))
}

/// 16 bytes from the kernel's random source.
pub(crate) fn random_bytes() -> Result<[u8; 16], DesktopError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| DesktopError::Io {
        what: "read random bytes from the kernel (getrandom)",
        source: std::io::Error::from_raw_os_error(e.raw_os_error().unwrap_or(libc::EIO)),
    })?;
    Ok(bytes)
}

fn random_hex() -> Result<String, DesktopError> {
    Ok(random_bytes()?.iter().map(|b| format!("{b:02x}")).collect())
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

/// Who made a runtime directory: enough to tell, later, whether that process still runs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Owner {
    pid: u32,
    /// Clock ticks after boot at which it started (`/proc/<pid>/stat`, field 22): a pid
    /// reused by another process has another start time.
    start: u64,
    /// Its PID namespace (`/proc/self/ns/pid`): pids of other namespaces mean nothing here.
    pid_ns: String,
}

impl Owner {
    fn me() -> Self {
        let pid = std::process::id();
        Self { pid, start: start_time(pid).unwrap_or(0), pid_ns: pid_namespace().unwrap_or_default() }
    }

    fn parse(text: &str) -> Option<Self> {
        let field = |key: &str| {
            text.lines().find_map(|l| l.strip_prefix(key).and_then(|v| v.strip_prefix('='))).map(str::trim)
        };
        Some(Self {
            pid: field("pid")?.parse().ok()?,
            start: field("start")?.parse().ok()?,
            pid_ns: field("pidns")?.to_string(),
        })
    }

    /// Whether the process is gone, given what this process sees: `our_ns`, its own PID
    /// namespace, and `start_of(pid)`, the start time of a running process (`None`: none
    /// runs with that pid). Unknown (no namespace to compare) counts as running.
    fn is_gone(&self, our_ns: &str, start_of: impl Fn(u32) -> Option<u64>) -> bool {
        if self.pid_ns.is_empty() || self.pid_ns != our_ns || self.pid == 0 {
            return false;
        }
        match start_of(self.pid) {
            None => true,
            Some(start) => self.start != 0 && start != self.start,
        }
    }
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "pid={}\nstart={}\npidns={}", self.pid, self.start, self.pid_ns)
    }
}

/// The start time of the running process `pid`, `None` if there is none.
fn start_time(pid: u32) -> Option<u64> {
    // SAFETY: signal 0 only checks that the process exists.
    if unsafe { libc::kill(pid as libc::pid_t, 0) } != 0
        && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
    {
        return None;
    }
    // It exists (perhaps as another user's process): its start time, 0 if unreadable,
    // which [`Owner::is_gone`] treats as "still running".
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    Some(after_name.split_whitespace().nth(19).and_then(|s| s.parse().ok()).unwrap_or(0))
}

fn pid_namespace() -> Option<String> {
    fs::read_link("/proc/self/ns/pid").ok().map(|p| p.to_string_lossy().into_owned())
}

/// Whether `path` is a runtime directory of this user whose Kelpie has exited. Anything
/// else (another user's, a symbolic link, one without an `owner`, one whose Kelpie may
/// still run) is not.
fn is_stale(path: &Path) -> bool {
    is_stale_as(path, &pid_namespace().unwrap_or_default(), start_time)
}

fn is_stale_as(path: &Path, our_ns: &str, start_of: impl Fn(u32) -> Option<u64>) -> bool {
    let me = euid();
    let ours = |p: &Path, dir: bool| {
        fs::symlink_metadata(p).is_ok_and(|m| m.uid() == me && if dir { m.is_dir() } else { m.is_file() })
    };
    let owner = path.join(OWNER);
    if !ours(path, true) || !ours(&owner, false) {
        return false;
    }
    fs::read_to_string(&owner)
        .ok()
        .and_then(|t| Owner::parse(&t))
        .is_some_and(|o| o.is_gone(our_ns, start_of))
}

/// Removes the runtime directories in `parent` left by Kelpies of this user that have
/// exited (killed before they could clean up).
pub fn clean_stale(parent: &Path) {
    clean_stale_as(parent, &pid_namespace().unwrap_or_default(), start_time);
}

fn clean_stale_as(parent: &Path, our_ns: &str, start_of: impl Fn(u32) -> Option<u64> + Copy) {
    let Ok(entries) = fs::read_dir(parent) else { return };
    for entry in entries.map_while(Result::ok) {
        let name = entry.file_name();
        let Some(suffix) = name.to_str().and_then(|n| n.strip_prefix(PREFIX)) else { continue };
        if suffix.len() != 32 || !suffix.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        let path = entry.path();
        if is_stale_as(&path, our_ns, start_of) {
            tracing::info!(path = %path.display(), "removing the runtime directory of an exited Kelpie");
            let _ = fs::remove_dir_all(&path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: &str = "pid:[4026531836]";

    fn owner(pid: u32, start: u64) -> Owner {
        Owner { pid, start, pid_ns: NS.into() }
    }

    #[test]
    fn owner_record_round_trips() {
        let o = owner(4242, 987_654);
        assert_eq!(o.to_string(), "pid=4242\nstart=987654\npidns=pid:[4026531836]\n");
        assert_eq!(Owner::parse(&o.to_string()), Some(o));
        assert_eq!(Owner::parse("pid=1\nstart=x\npidns=a\n"), None);
        assert_eq!(Owner::parse("start=1\npidns=a\n"), None);
    }

    #[test]
    fn only_a_process_known_to_be_gone_makes_its_directory_stale() {
        let running = |pid: u32| (pid == 10).then_some(500);
        // The same process still runs.
        assert!(!owner(10, 500).is_gone(NS, running));
        // Nothing runs with that pid.
        assert!(owner(11, 500).is_gone(NS, running));
        // The pid was reused by a process started later.
        assert!(owner(10, 400).is_gone(NS, running));
        // Another PID namespace's pids mean nothing here; an unknown one neither.
        assert!(!Owner { pid: 11, start: 500, pid_ns: "pid:[1]".into() }.is_gone(NS, running));
        assert!(!Owner { pid: 11, start: 500, pid_ns: String::new() }.is_gone("", running));
        // A start time that could not be read: assume the owner still runs.
        assert!(!owner(10, 0).is_gone(NS, running));
    }

    #[test]
    fn this_process_is_its_own_live_owner() {
        let me = Owner::me();
        assert_eq!(me.pid, std::process::id());
        assert!(me.start > 0, "the start time is read from /proc");
        assert!(!me.is_gone(&pid_namespace().unwrap(), start_time));
    }

    /// A parent directory for the stale-directory tests, removed afterwards.
    struct Scratch(PathBuf);
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn scratch() -> Scratch {
        let path = std::env::temp_dir().join(format!("kelpie-runtime-test-{}", random_hex().unwrap()));
        fs::create_dir(&path).unwrap();
        Scratch(path)
    }

    fn runtime_like(parent: &Path, fill: u8, record: Option<&Owner>) -> PathBuf {
        let path = parent.join(format!("{PREFIX}{}", format!("{fill:02x}").repeat(16)));
        make_private_dir(&path).unwrap();
        if let Some(o) = record {
            write_new_private_file(&path.join(OWNER), o.to_string().as_bytes()).unwrap();
        }
        fs::write(path.join("Xauthority"), b"x").unwrap();
        path
    }

    #[test]
    fn stale_directories_of_exited_kelpies_go_and_nothing_else() {
        let s = scratch();
        let running = |pid: u32| (pid == 10).then_some(500);
        let dead = runtime_like(&s.0, 1, Some(&owner(11, 500)));
        let reused = runtime_like(&s.0, 2, Some(&owner(10, 400)));
        let live = runtime_like(&s.0, 3, Some(&owner(10, 500)));
        let unrecorded = runtime_like(&s.0, 4, None);
        let other_ns = runtime_like(&s.0, 5, Some(&Owner { pid: 11, start: 500, pid_ns: "pid:[9]".into() }));
        // A name Kelpie never makes, with a dead owner: not Kelpie's to remove.
        let foreign = s.0.join("kelpie-notours");
        fs::create_dir(&foreign).unwrap();
        write_new_private_file(&foreign.join(OWNER), owner(11, 500).to_string().as_bytes()).unwrap();
        // A symbolic link with a runtime directory's name, to a stale directory elsewhere.
        let target = runtime_like(&s.0, 6, Some(&owner(11, 500)));
        let moved = s.0.join("elsewhere");
        fs::rename(&target, &moved).unwrap();
        std::os::unix::fs::symlink(&moved, &target).unwrap();
        clean_stale_as(&s.0, NS, running);
        assert!(!dead.exists() && !reused.exists(), "stale directories are removed");
        for kept in [&live, &unrecorded, &other_ns, &foreign, &moved] {
            assert!(kept.join("Xauthority").exists() || kept.join(OWNER).exists(), "{} kept", kept.display());
        }
        assert!(fs::symlink_metadata(&target).unwrap().file_type().is_symlink(), "the link is left alone");
    }

    #[test]
    fn another_users_directory_is_never_stale() {
        if euid() != 0 {
            eprintln!("skipped: needs root to give a directory to another user");
            return;
        }
        let s = scratch();
        let path = runtime_like(&s.0, 7, Some(&owner(11, 500)));
        let nobody = 65534;
        for p in [&path, &path.join(OWNER)] {
            std::os::unix::fs::chown(p, Some(nobody), Some(nobody)).unwrap();
        }
        clean_stale_as(&s.0, NS, |_| None);
        assert!(path.join(OWNER).exists(), "another user's directory is kept");
    }

    /// The message with its causes.
    fn chain(e: &dyn std::error::Error) -> String {
        let mut text = e.to_string();
        let mut cause = e.source();
        while let Some(c) = cause {
            text.push_str(&format!(": {c}"));
            cause = c.source();
        }
        text
    }

    #[test]
    fn a_runtime_dir_is_private_and_refuses_what_is_already_there() {
        let s = scratch();
        let at = s.0.join("session");
        let dir = RuntimeDir::create(Some(&at)).unwrap();
        for (path, mode) in [(at.clone(), 0o700), (at.join(OWNER), 0o600), (at.join("Xauthority"), 0o600)] {
            let meta = fs::symlink_metadata(&path).unwrap();
            assert_eq!(meta.mode() & 0o7777, mode, "{}", path.display());
            assert_eq!(meta.uid(), euid());
        }
        assert_eq!(Owner::parse(&fs::read_to_string(at.join(OWNER)).unwrap()), Some(Owner::me()));
        // Ours and running: refused, left alone.
        let e = chain(&RuntimeDir::create(Some(&at)).unwrap_err());
        assert!(e.contains("already exists") && e.contains("--runtime-dir"), "{e}");
        assert!(at.join("Xauthority").exists());
        drop(dir);
        assert!(!at.exists(), "removed on drop");

        // A symbolic link is not followed: refused, and its target is not touched.
        let target = s.0.join("target");
        fs::create_dir(&target).unwrap();
        std::os::unix::fs::symlink(&target, &at).unwrap();
        let e = chain(&RuntimeDir::create(Some(&at)).unwrap_err());
        assert!(e.contains("already exists"), "{e}");
        assert_eq!(fs::read_dir(&target).unwrap().count(), 0);
        fs::remove_file(&at).unwrap();

        // A stale one of ours is replaced.
        fs::create_dir(&at).unwrap();
        let ghost = Owner { pid: u32::MAX / 2, ..Owner::me() };
        write_new_private_file(&at.join(OWNER), ghost.to_string().as_bytes()).unwrap();
        let dir = RuntimeDir::create(Some(&at)).unwrap();
        assert_eq!(Owner::parse(&fs::read_to_string(at.join(OWNER)).unwrap()), Some(Owner::me()));
        drop(dir);
    }

    #[test]
    fn default_runtime_dirs_have_unpredictable_names() {
        let (a, b) = (RuntimeDir::create(None).unwrap(), RuntimeDir::create(None).unwrap());
        let name = |d: &RuntimeDir| d.path().file_name().unwrap().to_str().unwrap().to_string();
        assert_ne!(name(&a), name(&b));
        assert!(name(&a).starts_with(PREFIX) && name(&a).len() == PREFIX.len() + 32, "{}", name(&a));
        assert_eq!(a.path().parent(), Some(std::env::temp_dir().as_path()));
    }
}
