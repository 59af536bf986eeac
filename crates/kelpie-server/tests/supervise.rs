//! Process supervision of the real `kelpie` binary with a real Xvfb and PulseAudio: the
//! session ends with its app (`--exit-with-app`), with its X server or sound server, leaves
//! nothing behind when Kelpie is killed with SIGKILL, and reaps orphans as PID 1 of a PID
//! namespace.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kelpie_desktop::keeper::descendants;

/// A running `kelpie` (or `unshare … kelpie`) whose output is collected.
struct Kelpie {
    child: Child,
    stderr: Arc<Mutex<String>>,
}

impl Kelpie {
    /// Starts `prefix… kelpie args…` on a small embedded display and waits until it serves.
    fn start(prefix: &[&str], args: &[&str]) -> Self {
        let bin = env!("CARGO_BIN_EXE_kelpie");
        let mut cmd = match prefix.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        cmd.args(["--listen", "127.0.0.1:0", "--size", "320x240", "--resize", "off"])
            .args(args)
            .env_remove("DISPLAY")
            .env("KELPIE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("kelpie runs");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (err, mut pipe) = (stderr.clone(), child.stderr.take().unwrap());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                err.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("Kelpie is serving") {
                    let _ = tx.send(line);
                }
            }
        });
        let k = Self { child, stderr };
        if rx.recv_timeout(Duration::from_secs(30)).is_err() {
            panic!("kelpie did not start:\n{}", k.stderr());
        }
        k
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits up to `limit` for kelpie to exit.
    fn wait(&mut self, limit: Duration) -> Option<(ExitStatus, Duration)> {
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some((s, t0.elapsed()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Kelpie {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The name a process was started as (its `argv[0]`, without the directory).
fn comm(pid: i32) -> Option<String> {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let argv0 = cmdline.split(|&b| b == 0).next()?;
    let name = String::from_utf8_lossy(argv0);
    Some(name.rsplit('/').next().unwrap_or_default().to_string())
}

/// Whether `pid` runs (exists and is not a zombie).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rfind(')').map(|i| s[i + 2..].starts_with('Z')))
        .is_some_and(|zombie| !zombie)
}

/// Waits until `find` returns something, for up to 10 s.
fn eventually<T>(what: &str, mut find: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = find() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The direct child of `parent` started as `name`.
fn child_named(parent: i32, name: &str) -> i32 {
    eventually(&format!("{name} under {parent}"), || {
        descendants(parent).into_iter().find(|&p| {
            comm(p).as_deref() == Some(name)
                && std::fs::read_to_string(format!("/proc/{p}/stat"))
                    .is_ok_and(|s| s[s.rfind(')').unwrap() + 4..].starts_with(&format!("{parent} ")))
        })
    })
}

#[test]
fn exit_with_app_ends_the_session_with_the_apps_code() {
    let mut k = Kelpie::start(&[], &["--audio", "off", "--app", "sleep 1; exit 7", "--exit-with-app"]);
    let (status, _) = k.wait(Duration::from_secs(10)).expect("kelpie exits with its app");
    assert_eq!(status.code(), Some(7), "{}", k.stderr());
    assert!(k.stderr().contains("--exit-with-app"), "{}", k.stderr());
}

#[test]
fn without_exit_with_app_the_desktop_outlives_its_app() {
    let mut k = Kelpie::start(&[], &["--audio", "off", "--app", "exit 3"]);
    eventually("the app's end in the log", || k.stderr().contains("exited with status 3").then_some(()));
    assert!(k.wait(Duration::from_millis(500)).is_none(), "kelpie stays up:\n{}", k.stderr());
}

#[test]
fn exit_with_app_needs_the_embedded_display() {
    let out = Command::new(env!("CARGO_BIN_EXE_kelpie"))
        .args(["--display", ":7391", "--listen", "127.0.0.1:0", "--exit-with-app"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("--exit-with-app needs an app Kelpie starts"), "{stderr}");
}

#[test]
fn killed_x_server_ends_the_session_within_5_s() {
    let mut k = Kelpie::start(&[], &["--audio", "off", "--app", "sleep 600"]);
    let xvfb = child_named(k.pid(), "Xvfb");
    // SAFETY: killing the Xvfb our kelpie started.
    unsafe { libc::kill(xvfb, libc::SIGKILL) };
    let (status, took) = k.wait(Duration::from_secs(5)).expect("kelpie exits within 5 s");
    let stderr = k.stderr();
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("the X server") && stderr.contains("the session is over"), "{stderr}");
    eprintln!("exited {took:?} after Xvfb was killed");
}

#[test]
fn killed_pulseaudio_ends_the_session() {
    let mut k = Kelpie::start(&[], &["--app", "sleep 600"]);
    let pulse = child_named(k.pid(), "pulseaudio");
    // SAFETY: killing the PulseAudio our kelpie started.
    unsafe { libc::kill(pulse, libc::SIGKILL) };
    let (status, _) = k.wait(Duration::from_secs(5)).expect("kelpie exits within 5 s");
    let stderr = k.stderr();
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("PulseAudio") && stderr.contains("--audio off"), "{stderr}");
}

/// An app whose processes try to get away: a background job, a new session (`setsid`) with
/// its own child, and a double fork that leaves its parent at once.
const RUNAWAY_APP: &str =
    "sleep 600 & setsid sh -c 'sleep 600 & wait' & (sleep 600 &) ; xterm -e sleep 600 & exec sleep 600";

#[test]
fn sigkill_leaves_no_process_behind_within_3_s() {
    let mut k = Kelpie::start(&[], &["--app", RUNAWAY_APP]);
    // Xvfb, PulseAudio, the keeper, its sh (now a sleep), 3 more sleeps, the setsid sh,
    // xterm and its sleep.
    let tree = eventually("the whole session", || {
        let t = descendants(k.pid());
        let named = |n: &str| t.iter().filter(|&&p| comm(p).as_deref() == Some(n)).count();
        (named("sleep") == 5 && named("xterm") == 1 && named("Xvfb") == 1 && named("pulseaudio") == 1)
            .then_some(t)
    });
    // SAFETY: killing our kelpie.
    unsafe { libc::kill(k.pid(), libc::SIGKILL) };
    let _ = k.child.wait();
    let t0 = Instant::now();
    let mut left: Vec<(i32, String)> = Vec::new();
    while t0.elapsed() < Duration::from_secs(3) {
        left = tree.iter().filter(|&&p| alive(p)).map(|&p| (p, comm(p).unwrap_or_default())).collect();
        if left.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(left.is_empty(), "still running 3 s after SIGKILL: {left:?}");
    eprintln!("{} processes gone {:?} after SIGKILL", tree.len(), t0.elapsed());
}

#[test]
fn as_pid_1_kelpie_reaps_orphans_and_passes_sigterm_on() {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let mut prefix = vec!["unshare", "--pid", "--fork", "--mount-proc"];
    if !root {
        prefix.push("--map-root-user");
    }
    let mut k =
        Kelpie::start(&prefix, &["--audio", "off", "--app", "sleep 600 & sleep 600 & exec sleep 600"]);
    // unshare → kelpie as PID 1 (the init) → kelpie proper → keeper → the app's sleeps.
    let init = child_named(k.pid(), "kelpie");
    let kelpie = child_named(init, "kelpie");
    let keeper = child_named(kelpie, "kelpie-keeper");
    let app = child_named(keeper, "sleep");
    let sleeps = eventually("the app's two background sleeps", || {
        let s = descendants(app);
        (s.len() == 2).then_some(s)
    });
    // Without its keeper the app and its children are orphans of PID 1; once they are killed
    // their zombies are PID 1's to reap.
    // SAFETY: killing processes below our kelpie.
    unsafe { libc::kill(keeper, libc::SIGKILL) };
    eventually("the app reparented to PID 1", || {
        let s = std::fs::read_to_string(format!("/proc/{app}/stat")).ok()?;
        s[s.rfind(')').unwrap() + 4..].starts_with(&format!("{init} ")).then_some(())
    });
    for pid in sleeps.iter().chain([&app]) {
        // SAFETY: as above.
        unsafe { libc::kill(*pid, libc::SIGKILL) };
    }
    let zombies_of_init = || {
        (std::fs::read_dir("/proc").unwrap().flatten())
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|p| {
                std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|s| {
                    let rest = &s[s.rfind(')').unwrap() + 2..];
                    rest.starts_with('Z') && rest[2..].starts_with(&format!("{init} "))
                })
            })
            .count()
    };
    eventually("PID 1 to reap the orphans", || (zombies_of_init() == 0).then_some(()));
    assert!(alive(kelpie), "kelpie proper still serves:\n{}", k.stderr());
    // SIGTERM to PID 1 (what `podman stop` sends) reaches Kelpie, which ends cleanly.
    // SAFETY: signalling our kelpie's init.
    unsafe { libc::kill(init, libc::SIGTERM) };
    let (status, _) = k.wait(Duration::from_secs(10)).expect("the namespace ends");
    assert!(status.success(), "{status:?}\n{}", k.stderr());
    assert!(k.stderr().contains("shutting down"), "{}", k.stderr());
}
