//! The keeper: the parent of each program Kelpie runs on its display.
//!
//! Programs on a desktop start others (a session manager starts a panel, a terminal a shell,
//! a shell a background job), and some of those leave their parent (a double fork, `setsid`,
//! a D-Bus daemon). Kelpie's own children get a signal when Kelpie dies, even by SIGKILL
//! (`PR_SET_PDEATHSIG`); their children do not. So each program runs under a keeper: Kelpie's
//! own binary started again in a mode of its own (see [`run_if_keeper`]), which
//!
//! - is a *child subreaper* (`PR_SET_CHILD_SUBREAPER`): every process below it whose parent
//!   exits becomes its child, so the whole tree the program starts stays below it, and it
//!   reaps their zombies;
//! - tells Kelpie the program's exit status through a pipe as soon as the program exits
//!   (`--exit-with-app`), and stays while anything the program started still runs;
//! - when Kelpie stops it (SIGTERM to its process group) or dies (the kernel sends it
//!   SIGTERM), sends SIGTERM to every process below it, SIGKILL after [`GRACE`] to those
//!   left, reaps them and exits.
//!
//! Processes below the keeper are found through `/proc`. Where `/proc` belongs to another PID
//! namespace than the keeper (its numbers would not be the keeper's), the keeper signals only
//! the program's process group.
//!
//! Only binaries that call [`run_if_keeper`] first thing in `main` (the `kelpie` binary) can
//! be keepers; they call [`enable`] so that [`crate::EmbeddedDesktop`] uses one. Elsewhere
//! (the crates' tests) programs are started directly, as before.

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Write;
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The first argument that makes the `kelpie` binary a keeper.
const MARKER: &str = "__kelpie_keeper";

/// How long processes below a keeper have between SIGTERM and SIGKILL when the session ends.
pub const GRACE: Duration = Duration::from_millis(1500);

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Makes [`crate::EmbeddedDesktop`] start programs under a keeper. Only for binaries whose
/// `main` calls [`run_if_keeper`] before anything else.
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Whether programs are started under a keeper.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// A command that runs `program args` under a keeper (this binary started again), which
/// writes the program's wait status to `status_fd` when it exits. The keeper must be spawned
/// by the process whose pid is `std::process::id()` (it checks that its parent is Kelpie).
pub(crate) fn command(program: &str, args: &[&str], status_fd: RawFd) -> Command {
    let mut cmd = Command::new(self_exe());
    cmd.arg0("kelpie-keeper")
        .arg(MARKER)
        .arg(std::process::id().to_string())
        .arg(status_fd.to_string())
        .arg("--")
        .arg(program)
        .args(args);
    cmd
}

/// This binary's path, so that the process started from it is called `kelpie` in `ps` and
/// `top`; `/proc/self/exe` when the file is gone (Kelpie was upgraded while running).
pub(crate) fn self_exe() -> std::path::PathBuf {
    std::env::current_exe().ok().filter(|p| p.is_file()).unwrap_or_else(|| "/proc/self/exe".into())
}

/// If this process was started as a keeper, runs it and exits; otherwise returns at once.
/// Call it first thing in `main`, before any thread is started.
pub fn run_if_keeper() {
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref() != Some(OsStr::new(MARKER)) {
        return;
    }
    let rest: Vec<OsString> = args.collect();
    std::process::exit(keeper_main(&rest));
}

/// `rest`: parent pid, status descriptor, `--`, program, arguments.
fn keeper_main(rest: &[OsString]) -> i32 {
    let num = |i: usize| rest.get(i).and_then(|s| s.to_str()).and_then(|s| s.parse::<i32>().ok());
    let (Some(parent), Some(status_fd), Some("--"), Some(program)) =
        (num(0), num(1), rest.get(2).and_then(|s| s.to_str()), rest.get(3))
    else {
        eprintln!("kelpie-keeper: bad arguments (this mode is started by Kelpie itself)");
        return 2;
    };
    // SAFETY: plain prctl/getppid calls on this process.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1);
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
        if libc::getppid() != parent {
            // Kelpie died before the death signal was armed.
            return 1;
        }
    }
    let mut report = status_pipe(status_fd);
    let signals = signal_set(&[libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT, libc::SIGCHLD]);
    block(&signals);
    let mut cmd = Command::new(program);
    cmd.args(&rest[4..]);
    unblock_in_child(&mut cmd);
    let main = match cmd.spawn() {
        Ok(child) => child.id() as i32,
        Err(e) => {
            eprintln!("kelpie: cannot run '{}': {e}", program.to_string_lossy());
            report_status(&mut report, 127 << 8);
            return 127;
        }
    };
    let mut main_status: Option<i32> = None;
    loop {
        let signal = wait_signal(&signals, Duration::from_millis(250));
        let (left, status) = reap(main);
        if let Some(s) = status {
            main_status = Some(s);
            report_status(&mut report, s);
        }
        // SAFETY: getppid has no preconditions.
        let orphaned = unsafe { libc::getppid() } != parent;
        match signal {
            Some(sig) if sig != libc::SIGCHLD => return terminate(main, main_status, sig, &mut report),
            _ if orphaned => return terminate(main, main_status, libc::SIGTERM, &mut report),
            _ => {}
        }
        if !left && let Some(s) = main_status {
            return exit_code(s);
        }
    }
}

/// Ends everything below the keeper: SIGTERM, SIGKILL after [`GRACE`], reaped. Returns the
/// keeper's exit code (the program's, or 128 + `signal` if it had not exited).
fn terminate(main: i32, mut main_status: Option<i32>, signal: i32, report: &mut Option<File>) -> i32 {
    let me = own_pid_in_proc();
    let mut signalled = HashSet::new();
    let mut record = |status: Option<i32>, main_status: &mut Option<i32>| {
        if let Some(s) = status {
            *main_status = Some(s);
            report_status(report, s);
        }
    };
    signal_below(me, main, main_status.is_none(), libc::SIGTERM, Some(&mut signalled));
    let deadline = Instant::now() + GRACE;
    let mut left = true;
    while left && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        let (l, status) = reap(main);
        left = l;
        record(status, &mut main_status);
        // Processes started since the first SIGTERM get theirs too.
        signal_below(me, main, main_status.is_none(), libc::SIGTERM, Some(&mut signalled));
    }
    if left {
        signal_below(me, main, main_status.is_none(), libc::SIGKILL, None);
        let deadline = Instant::now() + Duration::from_secs(1);
        while left && Instant::now() < deadline {
            let (l, status) = reap(main);
            left = l;
            record(status, &mut main_status);
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    main_status.map_or(128 + signal, exit_code)
}

/// Sends `sig` to every process below the keeper (`me`: its pid in `/proc`, `None` when
/// `/proc` is another namespace's) and to `main` while it runs; with `signalled`, only to
/// processes not in it yet.
fn signal_below(
    me: Option<i32>,
    main: i32,
    main_runs: bool,
    sig: i32,
    mut signalled: Option<&mut HashSet<i32>>,
) {
    let mut targets = me.map(descendants).unwrap_or_default();
    if main_runs {
        targets.push(main);
    }
    for pid in targets {
        if signalled.as_mut().is_none_or(|s| s.insert(pid)) {
            // SAFETY: signalling a process below this one.
            unsafe { libc::kill(pid, sig) };
        }
    }
    if me.is_none() && sig != libc::SIGKILL {
        // /proc is not ours: the program's process group is all we can reach. The keeper
        // leads it and has SIGTERM blocked (SIGKILL went to `main` above only).
        // SAFETY: signalling our own process group.
        unsafe { libc::kill(0, sig) };
    }
}

/// Reaps every exited child. Returns whether children are left and `main`'s wait status if
/// it was among them.
fn reap(main: i32) -> (bool, Option<i32>) {
    let mut main_status = None;
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes the status of a child we are allowed to reap.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid > 0 {
            if pid == main {
                main_status = Some(status);
            }
            continue;
        }
        // 0: children left, none exited; -1 (ECHILD): no children at all.
        return (pid == 0, main_status);
    }
}

/// The exit code that mirrors a wait status: the code, or 128 + the signal.
pub fn exit_code(status: i32) -> i32 {
    if libc::WIFSIGNALED(status) { 128 + libc::WTERMSIG(status) } else { libc::WEXITSTATUS(status) }
}

fn status_pipe(fd: RawFd) -> Option<File> {
    // SAFETY: F_GETFD only checks the descriptor; F_SETFD keeps it from the program.
    if fd < 3 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return None;
    }
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    // SAFETY: Kelpie passed us this descriptor to own.
    Some(unsafe { File::from_raw_fd(fd) })
}

fn report_status(report: &mut Option<File>, status: i32) {
    if let Some(mut f) = report.take() {
        let _ = writeln!(f, "{status}");
    }
}

/// This process's number as `/proc` shows it, if `/proc` belongs to its PID namespace.
fn own_pid_in_proc() -> Option<i32> {
    let shown: i32 = std::fs::read_link("/proc/self").ok()?.to_str()?.parse().ok()?;
    (shown == std::process::id() as i32).then_some(shown)
}

/// Processes below `root` that have not exited (zombies left out), from `/proc` (numbers as
/// `/proc` shows them).
pub fn descendants(root: i32) -> Vec<i32> {
    let mut children: HashMap<i32, Vec<(i32, bool)>> = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    for entry in dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        if let Some((state, ppid)) = parse_stat(&stat) {
            children.entry(ppid).or_default().push((pid, state == 'Z'));
        }
    }
    let mut found = Vec::new();
    let mut stack = vec![root];
    while let Some(p) = stack.pop() {
        for &(child, zombie) in children.get(&p).map(Vec::as_slice).unwrap_or_default() {
            if !zombie {
                found.push(child);
            }
            stack.push(child);
        }
    }
    found
}

/// State and parent pid from a `/proc/<pid>/stat` line (the command name may hold spaces
/// and parentheses, so fields are counted from the last `)`).
fn parse_stat(stat: &str) -> Option<(char, i32)> {
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

pub(crate) fn signal_set(signals: &[i32]) -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set before sigaddset uses it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// Blocks `set` in this (single-threaded) process, so that [`wait_signal`] receives them.
pub(crate) fn block(set: &libc::sigset_t) {
    // SAFETY: a valid set; the process has one thread.
    unsafe { libc::sigprocmask(libc::SIG_BLOCK, set, std::ptr::null_mut()) };
}

/// Gives the program an empty signal mask (the keeper's blocked set is not inherited).
pub(crate) fn unblock_in_child(cmd: &mut Command) {
    let empty = signal_set(&[]);
    // SAFETY: sigprocmask is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            Ok(())
        });
    }
}

/// Waits up to `timeout` for one of the blocked signals in `set`.
pub(crate) fn wait_signal(set: &libc::sigset_t, timeout: Duration) -> Option<i32> {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
    };
    // SAFETY: valid set and timeout; no siginfo wanted.
    let sig = unsafe { libc::sigtimedwait(set, std::ptr::null_mut(), &ts) };
    (sig > 0).then_some(sig)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_parse_with_odd_command_names() {
        assert_eq!(parse_stat("42 (sleep) S 7 42 42 0 -1"), Some(('S', 7)));
        assert_eq!(parse_stat("43 (a b) (c)) Z 1 43 43 0 -1"), Some(('Z', 1)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn exit_codes_mirror_wait_statuses() {
        assert_eq!(exit_code(7 << 8), 7);
        assert_eq!(exit_code(libc::SIGKILL), 128 + 9);
        assert_eq!(exit_code(0), 0);
    }

    #[test]
    fn descendants_are_found_through_proc() {
        let mut child = Command::new("sh").args(["-c", "sleep 30 & sleep 30 & wait"]).spawn().unwrap();
        let sh = child.id() as i32;
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut below = Vec::new();
        while Instant::now() < deadline {
            below = descendants(sh);
            if below.len() >= 2 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(below.len(), 2, "the two sleeps: {below:?}");
        assert!(descendants(std::process::id() as i32).contains(&sh));
        for pid in below.iter().chain([&sh]) {
            // SAFETY: our own child and grandchildren.
            unsafe { libc::kill(*pid, libc::SIGKILL) };
        }
        let _ = child.wait();
    }
}
