//! kelpie-netem: joins two network namespaces through a TUN device in each and forwards
//! packets between them through an impaired link; commands on stdin change it at run time
//! (see `kelpie_netem::control`). Prints `ready` once both devices exist; the caller then
//! gives them addresses and brings them up (`ip addr add … peer …`, `ip link set … up`).
mod forward;
mod tun;

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Parser;
use kelpie_netem::control::{self, Command, Dir};
use kelpie_netem::pipeline::{Params, Pipeline, Stats};

/// Userspace link emulator between two network namespaces (tests and benchmark only).
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Network namespace of side A (e.g. /proc/PID/ns/net); this process's if not given.
    #[arg(long)]
    netns_a: Option<PathBuf>,
    /// Network namespace of side B.
    #[arg(long)]
    netns_b: Option<PathBuf>,
    /// TUN device created on side A.
    #[arg(long, default_value = "netem0")]
    dev_a: String,
    /// TUN device created on side B.
    #[arg(long, default_value = "netem0")]
    dev_b: String,
    /// Seed of the loss and jitter draws (a run is reproducible from it).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Commands run before forwarding starts (as on stdin), e.g. --set "set both delay=20".
    #[arg(long = "set")]
    commands: Vec<String>,
}

struct Link {
    a2b: Arc<Mutex<Pipeline>>,
    b2a: Arc<Mutex<Pipeline>>,
}

impl Link {
    fn each(&self, dir: Dir, mut f: impl FnMut(&mut Pipeline)) {
        for (a_to_b, pipe) in [(true, &self.a2b), (false, &self.b2a)] {
            if dir.includes(a_to_b) {
                f(&mut pipe.lock().unwrap_or_else(PoisonError::into_inner));
            }
        }
    }

    fn stats(&self) -> (Stats, Stats) {
        let get = |p: &Arc<Mutex<Pipeline>>| p.lock().unwrap_or_else(PoisonError::into_inner).stats();
        (get(&self.a2b), get(&self.b2a))
    }
}

fn stats_json(s: Stats) -> String {
    format!(
        r#"{{"received":{},"delivered":{},"delivered_bytes":{},"lost":{},"queue_full":{},"down":{}}}"#,
        s.received, s.delivered, s.delivered_bytes, s.lost, s.queue_full, s.down
    )
}

/// Runs one command; `Ok(false)` for quit.
fn apply(
    link: &Link,
    cmd: Command,
    now: Instant,
    schedule: &mut Vec<(Instant, Command)>,
) -> Result<bool, String> {
    match cmd {
        Command::Set(dir, changes) => link.each(dir, |p| {
            let mut params = p.params().clone();
            changes.iter().for_each(|c| c.apply(&mut params));
            p.set_params(params);
        }),
        Command::Outage(dir, length) => link.each(dir, |p| p.outage(now, length)),
        Command::At(after, cmd) => schedule.push((now + after, *cmd)),
        Command::Stats => {
            let (a, b) = link.stats();
            println!(r#"{{"a2b":{},"b2a":{}}}"#, stats_json(a), stats_json(b));
        }
        Command::Quit => return Ok(false),
    }
    Ok(true)
}

fn main() -> Result<()> {
    let args = Args::parse();
    // Timers fire within 1 ns of asked rather than the default 50 µs (threads inherit it).
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
    let link = Link {
        a2b: Arc::new(Mutex::new(Pipeline::new(Params::default(), args.seed))),
        b2a: Arc::new(Mutex::new(Pipeline::new(Params::default(), args.seed.wrapping_add(1)))),
    };
    let mut schedule: Vec<(Instant, Command)> = Vec::new();
    for line in &args.commands {
        let cmd = control::parse(line).map_err(|e| anyhow::anyhow!("--set {line:?}: {e}"))?;
        apply(&link, cmd, Instant::now(), &mut schedule).map_err(|e| anyhow::anyhow!(e))?;
    }
    let a = Arc::new(tun::open_in(args.netns_a, &args.dev_a)?);
    let b = Arc::new(tun::open_in(args.netns_b, &args.dev_b)?);
    for (from, to, pipe) in [(a.clone(), b.clone(), link.a2b.clone()), (b, a, link.b2a.clone())] {
        std::thread::spawn(move || {
            let e = forward::run(from, to, pipe);
            eprintln!("kelpie-netem: forwarding stopped: {e}");
            std::process::exit(1);
        });
    }
    println!("ready");

    // Lines from stdin; EOF ends the emulator (so it cannot outlive its caller's pipe).
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    loop {
        schedule.sort_by_key(|(t, _)| *t);
        let now = Instant::now();
        while schedule.first().is_some_and(|(t, _)| *t <= now) {
            let (_, cmd) = schedule.remove(0);
            if !apply(&link, cmd, now, &mut schedule).unwrap_or(true) {
                return Ok(());
            }
        }
        let wait =
            schedule.first().map_or(Duration::from_secs(3600), |(t, _)| t.saturating_duration_since(now));
        let line = match rx.recv_timeout(wait) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        };
        if line.trim().is_empty() {
            continue;
        }
        match control::parse(&line).and_then(|cmd| apply(&link, cmd, Instant::now(), &mut schedule)) {
            Ok(true) => println!("ok"),
            Ok(false) => return Ok(()),
            Err(e) => println!("error: {e}"),
        }
        std::io::stdout().flush()?;
    }
}
