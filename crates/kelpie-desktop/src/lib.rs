//! The X display Kelpie serves.
//!
//! Either an existing display (checked with [`check_display`]) or an [`EmbeddedDesktop`]:
//! a private Xvfb with a window manager and a terminal (or the user's `--app`), all started
//! as children that die with Kelpie. This crate starts and stops processes and watches
//! them ([`EmbeddedDesktop::poll`], [`XWatch`]); it never captures or injects anything.
//!
//! Privacy: the embedded display's private files live in a [`runtime`] directory only
//! Kelpie's user can enter; Xvfb only admits clients holding the cookie of its [`xauth`]
//! authority; no program Kelpie starts sees Kelpie's `KELPIE_*` settings (the tokens among
//! them), see [`scrub_env`].
//!
//! Processes: Xvfb and PulseAudio are Kelpie's children and get SIGTERM from the kernel if
//! Kelpie dies ([`detach_with_parent`]); each program on the display runs under a
//! [`keeper`] that ends everything it started; as PID 1 Kelpie is also the namespace's
//! [`init`].

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub mod init;
pub mod keeper;
pub mod monitors;
pub mod pulse;
pub mod runtime;
pub mod xauth;

use xauth::XAuthority;

/// Errors of display set-up. Each says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DesktopError {
    /// A program is not installed.
    #[error("'{program}' is not installed: install the Debian package {package}")]
    Missing {
        /// The program.
        program: String,
        /// Its Debian package.
        package: String,
    },
    /// A program could not be started.
    #[error("cannot start '{program}': is it installed? (install the Debian package that provides it)")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The display cannot be reached.
    #[error("cannot open X display {display}{hint}")]
    Unreachable {
        /// The display.
        display: String,
        /// What to check, if there is something to say.
        hint: &'static str,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The X server turned Kelpie away (authorization).
    #[error("the X server {display} refused Kelpie ({reason}): {advice}")]
    Refused {
        /// The display.
        display: String,
        /// What the server said.
        reason: String,
        /// What to do.
        advice: String,
    },
    /// The runtime directory or a file in it could not be made.
    #[error("cannot set up Kelpie's private runtime directory")]
    Runtime(#[from] runtime::RuntimeDirError),
    /// Xvfb did not start.
    #[error("Xvfb failed to start: {0}")]
    Xvfb(String),
    /// A system call Kelpie needs failed.
    #[error("cannot {what}")]
    Io {
        /// What Kelpie tried.
        what: &'static str,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// The display could not be resized.
    #[error("cannot resize the display {display}: {what}")]
    Resize {
        /// The display.
        display: String,
        /// The step that failed.
        what: &'static str,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

pub mod resize;

/// Checks that `display` accepts X connections.
pub fn check_display(display: &str) -> Result<(), DesktopError> {
    x11rb::connect(Some(display)).map(|_| ()).map_err(|e| {
        connect_error(display, " (is its X server running? omit --display to let Kelpie start its own)", e)
    })
}

/// The error of a failed connection to `display`: the server's refusal, with what to do
/// about it, or `hint` and the cause.
fn connect_error(display: &str, hint: &'static str, e: x11rb::errors::ConnectError) -> DesktopError {
    use x11rb::errors::ConnectError;
    let reason = match &e {
        ConnectError::SetupFailed(f) => String::from_utf8_lossy(&f.reason).trim().to_string(),
        ConnectError::SetupAuthenticate(a) => String::from_utf8_lossy(&a.reason).trim().to_string(),
        _ => return DesktopError::Unreachable { display: display.to_string(), hint, source: e.into() },
    };
    DesktopError::Refused {
        display: display.to_string(),
        reason,
        advice: refusal_advice(std::env::var_os("XAUTHORITY")),
    }
}

/// What to do when an X server refuses Kelpie, given the `XAUTHORITY` Kelpie had.
fn refusal_advice(xauthority: Option<std::ffi::OsString>) -> String {
    let what = "Kelpie needs the display's authorization, like any X client: set XAUTHORITY to the \
                display's authority file (e.g. XAUTHORITY=$HOME/.Xauthority of the user logged in \
                on it, or the file after -auth in the X server's command line: ps -o args= -C Xorg), \
                or run Kelpie as that user";
    match xauthority {
        Some(path) => format!("{what}; XAUTHORITY is now {}", std::path::Path::new(&path).display()),
        None => format!("{what}; XAUTHORITY is not set"),
    }
}

/// Takes every `KELPIE_*` variable (the tokens among them) out of the environment `cmd`
/// starts with: programs on the desktop have no business with Kelpie's settings.
pub fn scrub_env(cmd: &mut Command) {
    for (name, _) in std::env::vars_os() {
        if name.as_encoded_bytes().starts_with(b"KELPIE_") {
            cmd.env_remove(name);
        }
    }
}

/// Finds `program` on `PATH`.
pub fn which(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(program)).find(|p| p.is_file())
}

/// A private Xvfb and the programs shown in it.
pub struct EmbeddedDesktop {
    display: String,
    /// The X authority file clients of the display read (`XAUTHORITY`).
    xauthority: std::path::PathBuf,
    xvfb: Child,
    /// Set once Xvfb's exit was seen (and reported by [`EmbeddedDesktop::poll`]).
    xvfb_exited: bool,
    apps: Vec<App>,
    /// Extra environment of every program started on the display (e.g. `PULSE_SERVER`).
    env: Vec<(String, String)>,
}

/// One program on the display, directly Kelpie's child or under a [`keeper`].
struct App {
    program: String,
    child: Child,
    /// The keeper's report of the program's wait status (non-blocking), and what came so far.
    status: Option<(std::fs::File, String)>,
    /// The session's app (`--app`, or the demo desktop's terminal).
    main: bool,
    /// Set once its exit was reported.
    exited: bool,
}

impl App {
    /// The program's exit status, once, when it has exited.
    fn poll(&mut self) -> Option<ExitStatus> {
        if self.exited {
            return None;
        }
        let mut status = None;
        if let Some((pipe, text)) = &mut self.status {
            let mut buf = [0u8; 32];
            match pipe.read(&mut buf) {
                Ok(0) => self.status = None,
                Ok(n) => {
                    text.push_str(&String::from_utf8_lossy(&buf[..n]));
                    if let Some(line) = text.lines().next().filter(|_| text.contains('\n')) {
                        status = line.trim().parse().ok().map(ExitStatus::from_raw);
                    }
                }
                Err(_) => {} // nothing yet (EAGAIN)
            }
        }
        if status.is_none()
            && self.status.is_none()
            && let Ok(Some(s)) = self.child.try_wait()
        {
            status = Some(s);
        }
        self.exited = status.is_some();
        status
    }
}

/// What [`EmbeddedDesktop::poll`] saw happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DesktopEvent {
    /// The session's app (`--app`, or the demo desktop's terminal) exited.
    AppExited(ExitStatus),
    /// Xvfb exited: the display is gone. The text says how.
    XServerExited(String),
}

/// "exited with status 3" or "was killed by signal 9".
pub fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(s)) => format!("was killed by signal {s}"),
        _ => format!("ended ({status})"),
    }
}

/// The exit code that passes `status` on: its code, or 128 + the signal that ended it.
pub fn exit_code(status: ExitStatus) -> u8 {
    let code = status.code().or(status.signal().map(|s| 128 + s)).unwrap_or(1);
    u8::try_from(code).unwrap_or(1)
}

/// Makes a child its own process group leader (so its children can be stopped with it) and
/// has the kernel send it SIGTERM if Kelpie dies without cleaning up.
fn detach_with_parent(cmd: &mut Command) {
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::setpgid(0, 0);
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
}

impl EmbeddedDesktop {
    /// Starts Xvfb at `width` x `height`, able to grow to `max` (RandR), admitting only
    /// clients with the cookie of `xauth`, then `app` (a shell command) or the demo desktop
    /// (openbox and xterm). Kelpie's own connections to the display find the cookie through
    /// `XAUTHORITY`, which must name `xauth`'s file in this process's environment; programs
    /// on the display get it in theirs.
    pub fn start(
        width: u32,
        height: u32,
        max: (u32, u32),
        app: Option<&str>,
        xauth: &XAuthority,
    ) -> Result<Self, DesktopError> {
        Self::start_with_env(width, height, max, app, Vec::new(), xauth)
    }

    /// As [`EmbeddedDesktop::start`], with `env` added to every program's environment.
    pub fn start_with_env(
        width: u32,
        height: u32,
        max: (u32, u32),
        app: Option<&str>,
        env: Vec<(String, String)>,
        xauth: &XAuthority,
    ) -> Result<Self, DesktopError> {
        // Xvfb's screen can shrink and grow back with RandR but never beyond its start size.
        let (max_w, max_h) = (max.0.max(width), max.1.max(height));
        if which("Xvfb").is_none() {
            return Err(DesktopError::Missing { program: "Xvfb".into(), package: "xvfb".into() });
        }
        let (read_end, write_end) = pipe()?;
        let write_fd = write_end.as_raw_fd();
        let mut cmd = Command::new("Xvfb");
        cmd.args(["-displayfd", &write_fd.to_string()])
            .args(["-screen", "0", &format!("{max_w}x{max_h}x24")])
            .args(["-noreset", "-nolisten", "tcp", "+extension", "RANDR"])
            .arg("-auth")
            .arg(xauth.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        scrub_env(&mut cmd);
        detach_with_parent(&mut cmd);
        // SAFETY: clears close-on-exec on our own pipe's write end in the child only.
        unsafe {
            cmd.pre_exec(move || {
                libc::fcntl(write_fd, libc::F_SETFD, 0);
                Ok(())
            });
        }
        let mut xvfb = cmd.spawn().map_err(|source| DesktopError::Io { what: "start Xvfb", source })?;
        drop(write_end);
        let number = match read_display_number(read_end, Duration::from_secs(15)) {
            Ok(n) => n,
            Err(e) => {
                let _ = xvfb.kill();
                let mut err = String::new();
                if let Some(mut s) = xvfb.stderr.take() {
                    let _ = s.read_to_string(&mut err);
                }
                let last = err.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("").to_string();
                return Err(DesktopError::Xvfb(format!("{e} {last}")));
            }
        };
        let display = format!(":{number}");
        // Xvfb's stderr is noisy and unread from now on; don't let the pipe fill.
        drop(xvfb.stderr.take());
        // Xvfb has read the cookie; name the display in the file as clients look it up.
        let ready = xauth.add_display(number).and_then(|()| check_display(&display)).and_then(|()| {
            if (width, height) != (max_w, max_h) {
                resize::resize(&display, width, height).map(|_| ())
            } else {
                Ok(())
            }
        });
        if let Err(e) = ready {
            stop(&mut xvfb);
            return Err(e);
        }
        let shown = &display;
        let auth = xauth.path().display();
        tracing::info!("started Xvfb on {shown} at {width}x{height} (X authority {auth})");
        let mut desktop = Self {
            display,
            xauthority: xauth.path().to_path_buf(),
            xvfb,
            xvfb_exited: false,
            apps: Vec::new(),
            env,
        };
        match app {
            Some(cmd) => desktop.spawn_app("sh", &["-c", cmd], true)?,
            None => desktop.start_demo(),
        }
        Ok(desktop)
    }

    /// The environment of a program on the display: `DISPLAY`, `XAUTHORITY`, the extra
    /// variables, and none of Kelpie's own `KELPIE_*`.
    fn set_env(&self, cmd: &mut Command) {
        scrub_env(cmd);
        cmd.env("DISPLAY", &self.display).env("XAUTHORITY", &self.xauthority).envs(self.env.iter().cloned());
    }

    fn start_demo(&mut self) {
        if which("xsetroot").is_some() {
            let mut cmd = Command::new("xsetroot");
            cmd.args(["-solid", "#1d3b53"]).stdin(Stdio::null());
            self.set_env(&mut cmd);
            let _ = cmd.status();
        }
        // The terminal is the demo desktop's app (`--exit-with-app` ends with it).
        for (program, args, package, main) in [
            ("openbox", &[][..], "openbox", false),
            ("xterm", &["-geometry", "100x30+80+60", "-fa", "Monospace", "-fs", "12"][..], "xterm", true),
        ] {
            if which(program).is_none() {
                tracing::warn!("demo desktop: '{program}' is not installed (Debian package {package})");
                continue;
            }
            if let Err(e) = self.spawn_app(program, args, main) {
                tracing::warn!("demo desktop: {e} ({e:?})");
            }
        }
    }

    fn spawn_app(&mut self, program: &str, args: &[&str], main: bool) -> Result<(), DesktopError> {
        let spawn_error =
            |source: std::io::Error| DesktopError::Spawn { program: program.to_string(), source };
        // Under a keeper, the program's exit status comes back through a pipe.
        let (mut cmd, pipes) = if keeper::enabled() {
            let (read_end, write_end) = pipe()?;
            let fd = write_end.as_raw_fd();
            let mut cmd = keeper::command(program, args, fd);
            // SAFETY: clears close-on-exec on our own pipe's write end in the child only.
            unsafe {
                cmd.pre_exec(move || {
                    libc::fcntl(fd, libc::F_SETFD, 0);
                    Ok(())
                });
            }
            (cmd, Some((read_end, write_end)))
        } else {
            let mut cmd = Command::new(program);
            cmd.args(args);
            (cmd, None)
        };
        self.set_env(&mut cmd);
        cmd.stdin(Stdio::null());
        detach_with_parent(&mut cmd);
        let child = cmd.spawn().map_err(spawn_error)?;
        let status = pipes.map(|(read_end, write_end)| {
            drop(write_end);
            // SAFETY: making our own descriptor non-blocking.
            unsafe { libc::fcntl(read_end.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
            (std::fs::File::from(read_end), String::new())
        });
        tracing::info!(
            program,
            pid = child.id(),
            keeper = status.is_some(),
            "started on the embedded display"
        );
        self.apps.push(App { program: program.to_string(), child, status, main, exited: false });
        Ok(())
    }

    /// Looks at Xvfb and the programs once, without waiting; reports each end once.
    /// Programs other than the app that exit are only logged.
    pub fn poll(&mut self) -> Option<DesktopEvent> {
        if !self.xvfb_exited
            && let Ok(Some(status)) = self.xvfb.try_wait()
        {
            self.xvfb_exited = true;
            return Some(DesktopEvent::XServerExited(format!(
                "the X server (Xvfb on {}) {}",
                self.display,
                describe(status)
            )));
        }
        for app in &mut self.apps {
            if let Some(status) = app.poll() {
                if app.main {
                    return Some(DesktopEvent::AppExited(status));
                }
                tracing::info!(program = %app.program, "{} {}", app.program, describe(status));
            }
        }
        None
    }

    /// The display name, e.g. `:99`.
    pub fn display(&self) -> &str {
        &self.display
    }

    /// The X authority file of the display.
    pub fn xauthority(&self) -> &std::path::Path {
        &self.xauthority
    }

    /// Whether Xvfb is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.xvfb.try_wait(), Ok(None))
    }
}

impl Drop for EmbeddedDesktop {
    fn drop(&mut self) {
        // The programs first (a keeper needs up to keeper::GRACE to end what they started),
        // then the X server.
        stop_all(self.apps.iter_mut().map(|a| &mut a.child).collect());
        stop(&mut self.xvfb);
        tracing::info!(display = %self.display, "stopped the embedded desktop");
    }
}

/// SIGTERM to the child's process group, then SIGKILL if it lingers.
fn stop(child: &mut Child) {
    stop_all(vec![child]);
}

/// SIGTERM to each child's process group, then, 2 s later, SIGKILL to those that linger.
fn stop_all(mut children: Vec<&mut Child>) {
    for child in &children {
        // SAFETY: signalling our own child's process group.
        unsafe { libc::kill(-(child.id() as i32), libc::SIGTERM) };
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        children.retain_mut(|c| !matches!(c.try_wait(), Ok(Some(_))));
        if children.is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for child in children {
        // SAFETY: as above.
        unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
        let _ = child.wait();
    }
}

/// Notices when the X server of a display goes away (it died, or was stopped): a thread that
/// holds one connection open and waits on it.
pub struct XWatch {
    lost: Arc<Mutex<Option<String>>>,
}

impl XWatch {
    /// Connects to `display` and starts watching.
    pub fn start(display: &str) -> Result<Self, DesktopError> {
        let (conn, _) = x11rb::connect(Some(display)).map_err(|e| connect_error(display, "", e))?;
        let lost = Arc::new(Mutex::new(None));
        let (l, name) = (lost.clone(), display.to_string());
        std::thread::Builder::new()
            .name("kelpie-xwatch".into())
            .spawn(move || {
                use x11rb::connection::Connection as _;
                // No events were asked for: this returns only when the connection breaks.
                loop {
                    if let Err(e) = conn.wait_for_event() {
                        *l.lock().unwrap_or_else(|p| p.into_inner()) =
                            Some(format!("the X server of {name} closed the connection ({e})"));
                        return;
                    }
                }
            })
            .map_err(|e| DesktopError::Unreachable {
                display: display.to_string(),
                hint: "",
                source: e.into(),
            })?;
        Ok(Self { lost })
    }

    /// Why the X server is gone, once it is.
    pub fn lost(&self) -> Option<String> {
        self.lost.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd), DesktopError> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two descriptors we then own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(DesktopError::Io { what: "make a pipe", source: std::io::Error::last_os_error() });
    }
    // SAFETY: both are fresh descriptors owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Reads the display number Xvfb writes to `-displayfd` once it accepts connections.
fn read_display_number(fd: OwnedFd, timeout: Duration) -> Result<u32, String> {
    let mut file = std::fs::File::from(fd);
    let mut text = String::new();
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 32];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("it did not report a display number in time.".into());
        }
        let mut pfd = libc::pollfd { fd: file.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(i32::MAX as u128) as i32) };
        if r <= 0 {
            continue;
        }
        let n = file.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("it exited before it was ready.".into());
        }
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
        if text.contains('\n') {
            return text.trim().parse().map_err(|_| format!("it reported '{}' as its display", text.trim()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreachable_display_is_a_clear_error() {
        let e = check_display(":7391").unwrap_err().to_string();
        assert!(e.contains(":7391") && e.contains("omit --display"), "{e}");
    }

    #[test]
    fn a_refusal_says_what_to_do() {
        let advice = refusal_advice(Some("/home/a/.Xauthority".into()));
        assert!(
            advice.contains("set XAUTHORITY") && advice.ends_with("XAUTHORITY is now /home/a/.Xauthority")
        );
        assert!(refusal_advice(None).ends_with("XAUTHORITY is not set"));
    }

    #[test]
    fn embedded_desktop_starts_and_stops_xvfb() {
        // SAFETY: first thing in the test (see process_wide).
        let runtime = unsafe { runtime::RuntimeDir::process_wide() };
        let desktop =
            EmbeddedDesktop::start(320, 240, (640, 480), Some("sleep 30"), runtime.x_authority()).unwrap();
        let display = desktop.display().to_string();
        use x11rb::connection::Connection as _;
        let (conn, screen) = x11rb::connect(Some(&display)).unwrap();
        let root = &conn.setup().roots[screen];
        assert_eq!((root.width_in_pixels, root.height_in_pixels), (320, 240));
        drop(conn);
        // It grows up to its maximum and shrinks again.
        assert_eq!(resize::max_size(&display).unwrap(), (640, 480));
        assert_eq!(resize::resize(&display, 600, 400).unwrap(), (600, 400));
        assert_eq!(resize::resize(&display, 5000, 5000).unwrap(), (640, 480));
        assert_eq!(resize::resize(&display, 255, 201).unwrap(), (254, 200));
        let (conn, screen) = x11rb::connect(Some(&display)).unwrap();
        let root = &conn.setup().roots[screen];
        assert_eq!((root.width_in_pixels, root.height_in_pixels), (254, 200));
        let geo =
            x11rb::protocol::xproto::ConnectionExt::get_geometry(&conn, root.root).unwrap().reply().unwrap();
        assert_eq!((geo.width, geo.height), (254, 200));
        drop(conn);
        drop(desktop);
        assert!(check_display(&display).is_err(), "Xvfb is gone after drop");
    }

    #[test]
    fn the_embedded_display_refuses_clients_without_the_cookie() {
        // SAFETY: first thing in the test (see process_wide).
        let runtime = unsafe { runtime::RuntimeDir::process_wide() };
        let desktop =
            EmbeddedDesktop::start(320, 240, (320, 240), Some("sleep 30"), runtime.x_authority()).unwrap();
        assert_eq!(desktop.xauthority(), runtime.x_authority().path());
        let number = desktop.display().trim_start_matches(':');
        let stream = std::os::unix::net::UnixStream::connect(format!("/tmp/.X11-unix/X{number}")).unwrap();
        let (stream, _) = x11rb::rust_connection::DefaultStream::from_unix_stream(stream).unwrap();
        let refused = x11rb::rust_connection::RustConnection::connect_to_stream_with_auth_info(
            stream,
            0,
            vec![],
            vec![],
        );
        let e = connect_error(desktop.display(), "", refused.expect_err("refused without a cookie"));
        let text = e.to_string();
        assert!(matches!(e, DesktopError::Refused { .. }), "{text}");
        assert!(text.contains("Authorization required") && text.contains("set XAUTHORITY"), "{text}");
        // With the cookie (XAUTHORITY, as every client of Kelpie's): admitted.
        check_display(desktop.display()).unwrap();
    }
}
