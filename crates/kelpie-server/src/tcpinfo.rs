//! Reads what the kernel knows of a viewer's TCP connection (`getsockopt(TCP_INFO)`) for the
//! WebSocket video's flow control ([`crate::wsflow`]): TCP's own round trip, which leaves out
//! retransmission stalls and the browser's delays that the frames' acknowledgements include,
//! and what it has in flight and not sent yet (see `kelpie_media::congestion::acks`).
//!
//! While the video flows over it, the connection's retransmission timer is also shortened
//! ([`TcpProbe::shorten_retransmissions`]): a segment lost at the tail of a frame waits for it,
//! and every frame behind it.
//!
//! The connection's descriptor is taken when it is accepted ([`crate::listener::ConnInfo`]);
//! the socket is read only while its WebSocket is held by the reader or the writer of the
//! viewer's signalling socket, which keep it open.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use kelpie_media::congestion::acks::TcpState;

/// The kernel's `struct tcp_info` (`include/uapi/linux/tcp.h`) up to `tcpi_bytes_retrans`
/// (Linux 4.19); the kernel fills what it has and says how much.
#[repr(C)]
#[derive(Default)]
struct RawTcpInfo {
    state: u8,
    ca_state: u8,
    retransmits: u8,
    probes: u8,
    backoff: u8,
    options: u8,
    wscale: u8,
    delivery_rate_app_limited: u8,
    rto: u32,
    ato: u32,
    snd_mss: u32,
    rcv_mss: u32,
    unacked: u32,
    sacked: u32,
    lost: u32,
    retrans: u32,
    fackets: u32,
    last_data_sent: u32,
    last_ack_sent: u32,
    last_data_recv: u32,
    last_ack_recv: u32,
    pmtu: u32,
    rcv_ssthresh: u32,
    rtt: u32,
    rttvar: u32,
    snd_ssthresh: u32,
    snd_cwnd: u32,
    advmss: u32,
    reordering: u32,
    rcv_rtt: u32,
    rcv_space: u32,
    total_retrans: u32,
    pacing_rate: u64,
    max_pacing_rate: u64,
    bytes_acked: u64,
    bytes_received: u64,
    segs_out: u32,
    segs_in: u32,
    notsent_bytes: u32,
    min_rtt: u32,
    data_segs_in: u32,
    data_segs_out: u32,
    delivery_rate: u64,
    busy_time: u64,
    rwnd_limited: u64,
    sndbuf_limited: u64,
    delivered: u32,
    delivered_ce: u32,
    bytes_sent: u64,
    bytes_retrans: u64,
}

/// The fields read need a kernel that fills at least this much (`tcpi_min_rtt`, Linux 4.6).
const NEEDED: usize = std::mem::offset_of!(RawTcpInfo, min_rtt) + std::mem::size_of::<u32>();

/// With this much, the bytes sent are there too (Linux 4.19).
const WITH_BYTES_SENT: usize = std::mem::size_of::<RawTcpInfo>();

impl RawTcpInfo {
    /// The state, from the first `len` bytes the kernel filled.
    fn state(&self, len: usize) -> TcpState {
        // The kernel's tcp_packets_in_flight(): sent, less those selectively acknowledged or
        // deemed lost, plus their retransmissions, in whole segments...
        let packets =
            (self.unacked.saturating_sub(self.sacked.saturating_add(self.lost))).saturating_add(self.retrans);
        let segments = u64::from(packets) * u64::from(self.snd_mss);
        // ... which overcounts small ones (a frame of a still screen, a sound packet): never
        // more than the bytes sent and not acknowledged.
        let outstanding = (len >= WITH_BYTES_SENT)
            .then(|| self.bytes_sent.saturating_sub(self.bytes_retrans).saturating_sub(self.bytes_acked));
        TcpState {
            srtt: Duration::from_micros(self.rtt.into()),
            min_rtt: Duration::from_micros(self.min_rtt.into()),
            in_flight_bytes: outstanding.map_or(segments, |o| o.min(segments)),
            unsent_bytes: self.notsent_bytes.into(),
            retransmits: self.total_retrans,
        }
    }
}

/// `TCP_RTO_MAX_MS` and `TCP_RTO_MIN_US` (recent Linux, 6.15 on; not in libc yet).
const TCP_RTO_MAX_MS: libc::c_int = 44;
const TCP_RTO_MIN_US: libc::c_int = 45;

/// The least retransmission timeout of a video connection (Linux's default is 200 ms). The
/// timeout is TCP's round trip plus four times its variation, and at least this: a lost
/// segment at a frame's tail is resent after 2 round trips plus this (the tail-loss probe,
/// which allows this much for a delayed ACK of a lone segment), or after the timeout. Above
/// the browser's delayed ACK (40 ms on Linux); a spurious retransmission costs a segment, and
/// TCP undoes what it did to its window (F-RTO).
pub const RTO_MIN: Duration = Duration::from_millis(50);

/// The longest retransmission timeout (Linux's default is 120 s; 1 s is the least it takes):
/// the timeout doubles at each retransmission of an outage, and the first after the path is
/// back is what ends it for the viewer.
pub const RTO_MAX: Duration = Duration::from_secs(1);

/// A viewer's TCP connection, by its descriptor.
#[derive(Debug, Clone, Copy)]
pub struct TcpProbe {
    fd: RawFd,
}

impl TcpProbe {
    /// The connection whose socket is `fd`. The caller reads it only while the connection is
    /// open (see the module's note).
    pub fn new(fd: RawFd) -> Self {
        Self { fd }
    }

    /// Sets the connection's retransmission timeouts to [`RTO_MIN`] and [`RTO_MAX`], each
    /// on its own. An older kernel refuses either (its default stays): the first refusal is
    /// returned.
    pub fn shorten_retransmissions(&self) -> io::Result<()> {
        let min_us = libc::c_int::try_from(RTO_MIN.as_micros()).expect("fits");
        let max_ms = libc::c_int::try_from(RTO_MAX.as_millis()).expect("fits");
        let mut result = Ok(());
        for (option, value) in [(TCP_RTO_MIN_US, min_us), (TCP_RTO_MAX_MS, max_ms)] {
            // SAFETY: the option value is a c_int that outlives the call, and its size is
            // passed with it; a descriptor that is not a TCP socket only makes the call fail.
            let rc = unsafe {
                libc::setsockopt(
                    self.fd,
                    libc::IPPROTO_TCP,
                    option,
                    (&raw const value).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if rc != 0 && result.is_ok() {
                result = Err(io::Error::last_os_error());
            }
        }
        result
    }

    /// What the kernel says of the connection now.
    pub fn read(&self) -> io::Result<TcpState> {
        let mut info = RawTcpInfo::default();
        let mut len = std::mem::size_of::<RawTcpInfo>() as libc::socklen_t;
        // SAFETY: `info` is a plain repr(C) struct of integers that outlives the call, and
        // `len` is its size: the kernel writes at most that many bytes into it. A descriptor
        // that is not a TCP socket only makes the call fail.
        let rc = unsafe {
            libc::getsockopt(self.fd, libc::IPPROTO_TCP, libc::TCP_INFO, (&raw mut info).cast(), &raw mut len)
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        if (len as usize) < NEEDED {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "this kernel's TCP_INFO lacks tcpi_min_rtt",
            ));
        }
        Ok(info.state(len as usize))
    }
}

/// Reads the `IPPROTO_TCP` option `option` of socket `fd` (for tests).
#[cfg(test)]
pub(crate) fn tcp_option(fd: std::os::fd::RawFd, option: libc::c_int) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: reads one c_int option into `value`, whose size is in `len`; a descriptor
    // that is not a TCP socket only makes the call fail.
    let rc =
        unsafe { libc::getsockopt(fd, libc::IPPROTO_TCP, option, (&raw mut value).cast(), &raw mut len) };
    if rc == 0 { Ok(value) } else { Err(io::Error::last_os_error()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read as _, Write as _};
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd as _;

    #[test]
    fn a_loopback_connection_reads_its_round_trip_and_what_it_has_not_sent() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        let probe = TcpProbe::new(server.as_raw_fd());
        // A round trip of data and its ACK.
        server.write_all(&[7; 1000]).unwrap();
        let mut buf = [0; 1000];
        client.read_exact(&mut buf).unwrap();
        client.write_all(b"ack").unwrap();
        server.read_exact(&mut buf[..3]).unwrap();
        let s = probe.read().unwrap();
        assert!(s.min_rtt > Duration::ZERO && s.min_rtt < Duration::from_millis(100), "{s:?}");
        assert!(s.srtt >= s.min_rtt, "{s:?}");
        assert_eq!(s.retransmits, 0);
        // The client stops reading: what the server writes fills the client's window, then
        // waits in the server's socket, unsent.
        server.set_nonblocking(true).unwrap();
        let chunk = [0; 65536];
        while server.write(&chunk).is_ok() {}
        std::thread::sleep(Duration::from_millis(50));
        let s = probe.read().unwrap();
        assert!(s.unsent_bytes > 0, "{s:?}");
        // The timers, where the kernel has them (Linux 6.15).
        if probe.shorten_retransmissions().is_ok() {
            assert_eq!(tcp_option(server.as_raw_fd(), TCP_RTO_MAX_MS).unwrap(), 1000);
        }
        // Not a socket: an error, not garbage.
        let file = std::fs::File::open("/dev/null").unwrap();
        assert!(TcpProbe::new(file.as_raw_fd()).read().is_err());
    }
}
