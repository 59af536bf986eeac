//! Opening a TUN device inside a network namespace: a short-lived thread enters the namespace
//! (`setns` changes only the calling thread's) and creates the device there; the file
//! descriptor keeps working from any thread, and the device lives as long as it is open.
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;

/// `struct ifreq` as TUNSETIFF reads it: the name, then the flags (40 bytes in all).
#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// Creates the TUN device `name` (layer 3, no packet information header, non-blocking) in the
/// namespace at `netns` (e.g. `/proc/PID/ns/net`), or in this one for `None`.
pub(crate) fn open_in(netns: Option<PathBuf>, name: &str) -> Result<OwnedFd> {
    let owned = name.to_owned();
    std::thread::spawn(move || -> Result<OwnedFd> {
        if let Some(path) = &netns {
            let ns = File::open(path).with_context(|| format!("opening the namespace {}", path.display()))?;
            // SAFETY: a valid descriptor of a network namespace; this thread only.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error())
                    .with_context(|| format!("entering {} (run as root)", path.display()));
            }
        }
        create(&owned)
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the thread opening {name} panicked"))?
}

fn create(name: &str) -> Result<OwnedFd> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        bail!("device name {name:?}: 1 to {} bytes", libc::IFNAMSIZ - 1);
    }
    let path = CString::new("/dev/net/tun")?;
    // SAFETY: a NUL-terminated path.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error()).context("opening /dev/net/tun (is the tun module loaded?)");
    }
    // SAFETY: `fd` was just opened and is owned by nothing else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags: (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short,
        _pad: [0; 22],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: TUNSETIFF reads and writes a `struct ifreq`, which `IfReq` lays out.
    if unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF as _, &mut req) } != 0 {
        return Err(io::Error::last_os_error()).with_context(|| format!("creating the TUN device {name}"));
    }
    Ok(fd)
}
