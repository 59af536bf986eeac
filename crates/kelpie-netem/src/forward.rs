//! The I/O of one direction: reads packets from one TUN device, passes them through the
//! direction's pipeline and writes each to the other device when it is due. One thread per
//! direction; waits with `ppoll` to the next due packet at nanosecond resolution (the process
//! asks for 1 ns timer slack), so the emulator adds only the cost of two TUN copies.
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use kelpie_netem::pipeline::Pipeline;

/// Largest packet read (above any MTU the namespaces use).
const MAX_PACKET: usize = 65_536;
/// Packets read in one go.
const BATCH: usize = 64;

/// Forwards `from` → `to` through `pipe` until the process ends.
pub(crate) fn run(from: Arc<OwnedFd>, to: Arc<OwnedFd>, pipe: Arc<Mutex<Pipeline>>) -> io::Error {
    let mut buf = vec![0u8; MAX_PACKET];
    loop {
        let now = Instant::now();
        loop {
            let packet = pipe.lock().unwrap_or_else(PoisonError::into_inner).pop_due(now);
            let Some(packet) = packet else { break };
            // SAFETY: writes from a live buffer of its length. A failed write (the other
            // device down, its namespace gone) loses the packet, as a link would.
            unsafe { libc::write(to.as_raw_fd(), packet.as_ptr().cast(), packet.len()) };
        }
        let next = pipe.lock().unwrap_or_else(PoisonError::into_inner).next_due();
        let wait = next.map(|due| due.saturating_duration_since(Instant::now()));
        if let Err(e) = wait_readable(&from, wait) {
            return e;
        }
        // At most a batch before delivering again, so that a flood in cannot hold packets due out.
        for _ in 0..BATCH {
            // SAFETY: reads into a live buffer of its length.
            let n = unsafe { libc::read(from.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n == 0 {
                break;
            }
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted {
                    break;
                }
                return e;
            }
            let packet = buf[..n as usize].to_vec();
            pipe.lock().unwrap_or_else(PoisonError::into_inner).push(Instant::now(), packet);
        }
    }
}

/// Waits until `fd` is readable or `timeout` passes (`None`: no limit).
fn wait_readable(fd: &OwnedFd, timeout: Option<Duration>) -> io::Result<()> {
    let mut pfd = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs().min(i32::MAX as u64) as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let tsp = ts.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: one valid pollfd; `tsp` null or pointing at a live timespec.
    let r = unsafe { libc::ppoll(&mut pfd, 1, tsp, std::ptr::null()) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(())
}
