//! The X display Kelpie serves.
//!
//! Either an existing display (checked with [`check_display`]) or an [`EmbeddedDesktop`]:
//! a private Xvfb with a window manager and a terminal (or the user's `--app`), all started
//! as children that die with Kelpie. This crate starts and stops processes; it never
//! captures or injects anything.

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod pulse;

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
    /// The display cannot be reached.
    #[error("cannot open X display {display}: {reason}")]
    Unreachable {
        /// The display.
        display: String,
        /// Why.
        reason: String,
    },
    /// Xvfb did not start.
    #[error("Xvfb failed to start: {0}")]
    Xvfb(String),
    /// The display could not be resized.
    #[error("cannot resize the display {0}")]
    Resize(String),
}

pub mod resize;

/// Checks that `display` accepts X connections.
pub fn check_display(display: &str) -> Result<(), DesktopError> {
    x11rb::connect(Some(display)).map(|_| ()).map_err(|e| DesktopError::Unreachable {
        display: display.to_string(),
        reason: format!("{e} (is its X server running? omit --display to let Kelpie start its own)"),
    })
}

/// Finds `program` on `PATH`.
pub fn which(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(program)).find(|p| p.is_file())
}

/// A private Xvfb and the programs shown in it.
pub struct EmbeddedDesktop {
    display: String,
    xvfb: Child,
    apps: Vec<Child>,
    /// Extra environment of every program started on the display (e.g. `PULSE_SERVER`).
    env: Vec<(String, String)>,
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
    /// Starts Xvfb at `width` x `height`, able to grow to `max` (RandR), then `app` (a shell
    /// command) or the demo desktop (openbox and xterm).
    pub fn start(width: u32, height: u32, max: (u32, u32), app: Option<&str>) -> Result<Self, DesktopError> {
        Self::start_with_env(width, height, max, app, Vec::new())
    }

    /// As [`EmbeddedDesktop::start`], with `env` added to every program's environment.
    pub fn start_with_env(
        width: u32,
        height: u32,
        max: (u32, u32),
        app: Option<&str>,
        env: Vec<(String, String)>,
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
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        detach_with_parent(&mut cmd);
        // SAFETY: clears close-on-exec on our own pipe's write end in the child only.
        unsafe {
            cmd.pre_exec(move || {
                libc::fcntl(write_fd, libc::F_SETFD, 0);
                Ok(())
            });
        }
        let mut xvfb = cmd.spawn().map_err(|e| DesktopError::Xvfb(e.to_string()))?;
        drop(write_end);
        let display = match read_display_number(read_end, Duration::from_secs(15)) {
            Ok(n) => format!(":{n}"),
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
        // Xvfb's stderr is noisy and unread from now on; don't let the pipe fill.
        drop(xvfb.stderr.take());
        check_display(&display)?;
        if (width, height) != (max_w, max_h)
            && let Err(e) = resize::resize(&display, width, height)
        {
            let _ = xvfb.kill();
            return Err(e);
        }
        let shown = &display;
        tracing::info!("started Xvfb on {shown} at {width}x{height}");
        let mut desktop = Self { display, xvfb, apps: Vec::new(), env };
        match app {
            Some(cmd) => desktop.spawn_app("sh", &["-c", cmd])?,
            None => desktop.start_demo(),
        }
        Ok(desktop)
    }

    fn start_demo(&mut self) {
        if which("xsetroot").is_some() {
            let _ =
                Command::new("xsetroot").args(["-solid", "#1d3b53"]).env("DISPLAY", &self.display).status();
        }
        for (program, args, package) in [
            ("openbox", &[][..], "openbox"),
            ("xterm", &["-geometry", "100x30+80+60", "-fa", "Monospace", "-fs", "12"][..], "xterm"),
        ] {
            if which(program).is_none() {
                tracing::warn!("demo desktop: '{program}' is not installed (Debian package {package})");
                continue;
            }
            if let Err(e) = self.spawn_app(program, args) {
                tracing::warn!("demo desktop: {e}");
            }
        }
    }

    fn spawn_app(&mut self, program: &str, args: &[&str]) -> Result<(), DesktopError> {
        let mut cmd = Command::new(program);
        cmd.args(args).env("DISPLAY", &self.display).envs(self.env.iter().cloned()).stdin(Stdio::null());
        detach_with_parent(&mut cmd);
        let child = cmd.spawn().map_err(|e| DesktopError::Missing {
            program: format!("{program} ({e})"),
            package: "that provides it".into(),
        })?;
        tracing::info!(program, pid = child.id(), "started on the embedded display");
        self.apps.push(child);
        Ok(())
    }

    /// The display name, e.g. `:99`.
    pub fn display(&self) -> &str {
        &self.display
    }

    /// Whether Xvfb is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.xvfb.try_wait(), Ok(None))
    }
}

impl Drop for EmbeddedDesktop {
    fn drop(&mut self) {
        for child in self.apps.iter_mut().chain(std::iter::once(&mut self.xvfb)) {
            stop(child);
        }
        tracing::info!(display = %self.display, "stopped the embedded desktop");
    }
}

/// SIGTERM to the child's process group, then SIGKILL if it lingers.
fn stop(child: &mut Child) {
    let pid = child.id() as i32;
    // SAFETY: signalling our own child's process group.
    unsafe { libc::kill(-pid, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: as above.
    unsafe { libc::kill(-pid, libc::SIGKILL) };
    let _ = child.wait();
}

fn pipe() -> Result<(OwnedFd, OwnedFd), DesktopError> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two descriptors we then own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(DesktopError::Xvfb(format!("pipe: {}", std::io::Error::last_os_error())));
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
    fn embedded_desktop_starts_and_stops_xvfb() {
        let desktop = EmbeddedDesktop::start(320, 240, (640, 480), Some("sleep 30")).unwrap();
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
}
