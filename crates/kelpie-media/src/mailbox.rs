//! Commands to a thread that sleeps in `poll()`: a channel plus an `eventfd` that becomes
//! readable when a command is sent, so the thread can wait for its own file descriptors (the X
//! connection) and for commands at once, without waking up periodically to look.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use crate::MediaError;

/// The sending side; cheap to share between threads.
pub(crate) struct Mailbox<C> {
    tx: mpsc::Sender<C>,
    wake: Arc<OwnedFd>,
}

/// The receiving side, owned by the thread.
pub(crate) struct Inbox<C> {
    rx: mpsc::Receiver<C>,
    wake: Arc<OwnedFd>,
}

/// A connected mailbox and inbox.
pub(crate) fn mailbox<C>() -> Result<(Mailbox<C>, Inbox<C>), MediaError> {
    // SAFETY: plain syscall; the result is checked and owned from here on.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        return Err(MediaError::io("eventfd", std::io::Error::last_os_error()));
    }
    // SAFETY: `fd` is a new descriptor nothing else owns.
    let wake = Arc::new(unsafe { OwnedFd::from_raw_fd(fd) });
    let (tx, rx) = mpsc::channel();
    Ok((Mailbox { tx, wake: wake.clone() }, Inbox { rx, wake }))
}

impl<C> Mailbox<C> {
    /// Sends a command and wakes the thread. False when the thread has gone.
    pub(crate) fn send(&self, command: C) -> bool {
        if self.tx.send(command).is_err() {
            return false;
        }
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to our own eventfd. It can only fail when
        // the counter would overflow, and then the thread is awake anyway.
        unsafe { libc::write(self.wake.as_raw_fd(), (&raw const one).cast(), 8) };
        true
    }
}

/// What the inbox holds after a wake-up.
pub(crate) enum Drained<C> {
    /// These commands (maybe none).
    Commands(Vec<C>),
    /// Every mailbox was dropped.
    Closed,
}

impl<C> Inbox<C> {
    /// The descriptor that is readable while commands may be waiting.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.wake.as_fd()
    }

    /// Takes every command sent so far.
    pub(crate) fn drain(&mut self) -> Drained<C> {
        // Clear the wake-up first: a command sent after this read makes the descriptor
        // readable again, so none is slept through.
        let mut buf = [0u8; 8];
        // SAFETY: reads at most 8 bytes into a live buffer from our own non-blocking eventfd.
        unsafe { libc::read(self.wake.as_raw_fd(), buf.as_mut_ptr().cast(), 8) };
        let mut out = Vec::new();
        loop {
            match self.rx.try_recv() {
                Ok(c) => out.push(c),
                Err(mpsc::TryRecvError::Empty) => return Drained::Commands(out),
                Err(mpsc::TryRecvError::Disconnected) if out.is_empty() => return Drained::Closed,
                Err(mpsc::TryRecvError::Disconnected) => return Drained::Commands(out),
            }
        }
    }

    /// Sleeps for `d` unless a command arrives first.
    pub(crate) fn sleep(&self, d: Duration) -> Result<(), MediaError> {
        wait_readable(&[self.fd()], Some(d)).map(|_| ())
    }
}

/// Waits until one of `fds` is readable, or `timeout` (`None`: forever) passes, with
/// nanosecond precision (`ppoll`). Returns which were readable.
pub(crate) fn wait_readable(
    fds: &[BorrowedFd<'_>],
    timeout: Option<Duration>,
) -> Result<Vec<bool>, MediaError> {
    let mut pfds: Vec<libc::pollfd> =
        fds.iter().map(|fd| libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 }).collect();
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: d.as_secs().min(i32::MAX as u64) as libc::time_t,
        tv_nsec: libc::c_long::from(d.subsec_nanos() as i32),
    });
    let tsp = ts.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `pfds` is a live array of `pfds.len()` pollfds, `tsp` null or a live timespec,
    // and no signal mask is changed.
    let r = unsafe { libc::ppoll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, tsp, std::ptr::null()) };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(MediaError::io("poll", e));
        }
    }
    Ok(pfds.iter().map(|p| p.revents != 0).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn a_command_wakes_a_sleeping_inbox_at_once() {
        let (mailbox, mut inbox) = mailbox::<u32>().unwrap();
        let t = Instant::now();
        inbox.sleep(Duration::from_millis(20)).unwrap();
        assert!(t.elapsed() >= Duration::from_millis(20), "nothing sent: slept the whole time");
        assert!(matches!(inbox.drain(), Drained::Commands(c) if c.is_empty()));

        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            mailbox.send(7);
            mailbox.send(8);
            mailbox
        });
        let t = Instant::now();
        let ready = wait_readable(&[inbox.fd()], None).unwrap();
        assert_eq!(ready, [true]);
        assert!(t.elapsed() < Duration::from_secs(5));
        let mailbox = sender.join().unwrap();
        assert!(matches!(inbox.drain(), Drained::Commands(c) if c == [7, 8]));
        // Drained: not readable any more.
        assert_eq!(wait_readable(&[inbox.fd()], Some(Duration::ZERO)).unwrap(), [false]);
        drop(mailbox);
        assert!(matches!(inbox.drain(), Drained::Closed));
    }
}
