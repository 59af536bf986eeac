//! Kelpie as PID 1 (a container's entry point, `unshare --pid --fork`).
//!
//! PID 1 of a PID namespace inherits every orphan in it and must reap them, and it gets no
//! signal whose default action it has not asked for. So when Kelpie finds itself PID 1 it
//! stays a small init, like `tini`: it starts Kelpie proper (its own binary, same arguments)
//! as its child, passes it the signals it gets (SIGTERM from `podman stop`, SIGINT, SIGHUP,
//! SIGQUIT, SIGUSR1, SIGUSR2), reaps every process that ends in the namespace, and when Kelpie
//! proper exits, stops what is left (SIGTERM, then SIGKILL after 2 s) and exits with its code.

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::keeper::{block, exit_code, signal_set, unblock_in_child, wait_signal};

/// If this process is PID 1, runs as the namespace's init and exits; otherwise returns at
/// once. Call it first thing in `main`, before any thread is started.
pub fn run_if_pid1() {
    if std::process::id() == 1 {
        std::process::exit(init_main());
    }
}

fn init_main() -> i32 {
    let forwarded = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT, libc::SIGUSR1, libc::SIGUSR2];
    let mut all = forwarded.to_vec();
    all.push(libc::SIGCHLD);
    let signals = signal_set(&all);
    block(&signals);
    let mut args = std::env::args_os();
    let mut cmd = Command::new(crate::keeper::self_exe());
    if let Some(argv0) = args.next() {
        cmd.arg0(argv0);
    }
    cmd.args(args);
    unblock_in_child(&mut cmd);
    let kelpie = match cmd.spawn() {
        Ok(c) => c.id() as i32,
        Err(e) => {
            eprintln!("kelpie: error: as PID 1 Kelpie runs itself as a child, and that failed: {e}");
            return 1;
        }
    };
    let status = 'run: loop {
        if let Some(sig) = wait_signal(&signals, Duration::from_secs(1))
            && forwarded.contains(&sig)
        {
            // SAFETY: signalling our child.
            unsafe { libc::kill(kelpie, sig) };
        }
        loop {
            let mut status = 0;
            // SAFETY: reaping any child of this process.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid == kelpie {
                break 'run status;
            }
            if pid <= 0 {
                break;
            }
        }
    };
    stop_everyone();
    exit_code(status)
}

/// Kelpie proper has exited: nothing else in the namespace may outlive it.
fn stop_everyone() {
    for (sig, wait) in [(libc::SIGTERM, Duration::from_secs(2)), (libc::SIGKILL, Duration::from_secs(1))] {
        // SAFETY: as PID 1, -1 reaches every other process of this PID namespace.
        unsafe { libc::kill(-1, sig) };
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            let mut status = 0;
            // SAFETY: reaping any child of this process.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid < 0 {
                return; // no process left
            }
            if pid == 0 {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}
