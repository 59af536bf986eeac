//! What one viewer may cost the server, and what happens to one that costs more: the viewer
//! limit (`--max-viewers`), the size of each viewer's outgoing queue, why a viewer is dropped,
//! and the counters of all of it in `/metrics`. The queue itself is [`crate::outbox`]; the ping
//! and write-time rules are [`crate::heartbeat`].

use crate::prometheus::{self, Kind};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use kelpie_protocol::{CLIPBOARD_CHUNK_BASE64, CLIPBOARD_CHUNK_BYTES};

use crate::heartbeat::{SILENCE_LIMIT, WRITE_TIMEOUT};

/// Room in every viewer's queue besides one clipboard transfer: rosters, cursor shapes and
/// clipboards replace their queued predecessors (see [`crate::outbox`]), so what else can pile
/// up is answers to the viewer's own messages (errors, SDP), each a few hundred bytes to a few
/// KiB. 16 MiB of them is a viewer that sends and never reads.
pub const QUEUE_BASE: usize = 16 << 20;

/// JSON around one clipboard chunk's base64: `{"type":"clipboard","seq":4294967295,
/// "mime":"text/plain","data":"","last":false}` is 79 bytes.
const CLIPBOARD_CHUNK_OVERHEAD: usize = 96;

/// The most a viewer's queue may hold, in bytes, when clipboards of up to `clipboard_max`
/// bytes are passed: [`QUEUE_BASE`] and one whole clipboard transfer as sent (base64 in JSON
/// chunks: 21.4 MiB for the default 16 MiB), so that the largest clipboard always reaches a
/// viewer that reads, however slowly. 37.4 MiB by default.
pub fn queue_budget(clipboard_max: u64) -> usize {
    let max = usize::try_from(clipboard_max).unwrap_or(usize::MAX);
    let chunks = max.div_ceil(CLIPBOARD_CHUNK_BYTES).max(1);
    QUEUE_BASE.saturating_add(chunks.saturating_mul(CLIPBOARD_CHUNK_BASE64 + CLIPBOARD_CHUNK_OVERHEAD))
}

/// Allocations from this size up get pages of their own, given back to the system when freed.
const MMAP_THRESHOLD: usize = 4 << 20;

/// Makes large buffers (a clipboard as read from X, as sent to viewers) go back to the system
/// when freed. glibc starts with them mapped apart, but raises the threshold to the size of
/// the first one freed (up to 32 MiB), after which every later 16 MiB clipboard is carved from
/// the heap, where a few small allocations made meanwhile keep it from ever being returned:
/// measured, five 16 MiB clipboards left Kelpie 134 MiB larger by default and 64 MiB larger
/// with this (the latest clipboard, kept for viewers who join, is most of it). Setting the
/// threshold turns glibc's adjustment off.
pub fn bound_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a parameter of glibc's allocator; any value is valid.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int);
    }
}

/// Bytes a connection's socket may hold that TCP has not sent yet (`TCP_NOTSENT_LOWAT`).
pub const UNSENT_LIMIT: usize = 128 << 10;

/// Caps what the kernel keeps unsent for a connection at [`UNSENT_LIMIT`] (data in flight is
/// not counted, so throughput is unaffected). Linux otherwise lets a socket's send buffer grow
/// to 4 MiB (`tcp_wmem`): that much of every viewer that stopped reading would sit in kernel
/// memory (hundreds of MiB for a few hundred of them, and a copy of it made by Kelpie), its
/// writes would stall only once it is full, and video would wait behind it instead of being
/// dropped by the writer's lag rule.
pub fn limit_unsent(tcp: &tokio::net::TcpStream) -> std::io::Result<()> {
    use std::os::fd::AsRawFd as _;
    let value = libc::c_int::try_from(UNSENT_LIMIT).expect("fits");
    // SAFETY: the descriptor is open for the borrow of `tcp`; the option value is a c_int that
    // outlives the call, and its size is passed with it.
    let rc = unsafe {
        libc::setsockopt(
            tcp.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_NOTSENT_LOWAT,
            (&raw const value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

/// Why a viewer was disconnected by the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// Its queue grew past its budget: it reads slower than messages come, or not at all.
    QueueFull {
        /// The budget, in bytes.
        budget: usize,
    },
    /// Nothing (not even a pong) arrived for [`SILENCE_LIMIT`].
    Silent,
    /// One write did not complete within [`WRITE_TIMEOUT`]: it stopped reading.
    WriteTimeout,
}

impl Dropped {
    /// The `reason` label in `/metrics`.
    pub fn label(self) -> &'static str {
        match self {
            Self::QueueFull { .. } => "queue_full",
            Self::Silent => "silent",
            Self::WriteTimeout => "write_timeout",
        }
    }

    /// The close code and reason sent, where it can still reach the viewer (a close reason
    /// is at most 123 bytes). 1008: policy violation.
    pub fn close_frame(self) -> (u16, String) {
        (1008, self.to_string())
    }
}

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::QueueFull { budget } => {
                write!(f, "too slow: over {} MiB waiting to be sent", budget >> 20)
            }
            Self::Silent => write!(f, "no answer to pings for {} s", SILENCE_LIMIT.as_secs()),
            Self::WriteTimeout => write!(f, "not reading: a write waited {} s", WRITE_TIMEOUT.as_secs()),
        }
    }
}

/// What a viewer over the limit is told (in the page), and the close frame after it.
pub fn full_message(max: usize) -> String {
    format!(
        "This desktop already has {max} viewers, the most it allows (--max-viewers). Ask one \
         to close their tab, or ask whoever runs Kelpie to raise --max-viewers, then retry."
    )
}

/// Close code sent to a viewer over the limit: 1013, try again later.
pub const FULL_CLOSE_CODE: u16 = 1013;

/// Counters of the viewer limits.
#[derive(Debug, Default)]
pub struct LimitCounters {
    /// Connections refused at `--max-viewers`.
    pub refused: AtomicU64,
    /// Viewers dropped because their queue was full.
    pub dropped_queue_full: AtomicU64,
    /// Viewers dropped for silence.
    pub dropped_silent: AtomicU64,
    /// Viewers dropped for a write that did not complete.
    pub dropped_write_timeout: AtomicU64,
    /// Pings sent.
    pub pings: AtomicU64,
}

impl LimitCounters {
    /// Counts a viewer dropped for `why`.
    pub fn dropped(&self, why: Dropped) {
        let c = match why {
            Dropped::QueueFull { .. } => &self.dropped_queue_full,
            Dropped::Silent => &self.dropped_silent,
            Dropped::WriteTimeout => &self.dropped_write_timeout,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Writes the counters in Prometheus' text format, with the limit, and the bytes now
    /// queued for all viewers.
    pub fn write_metrics(&self, out: &mut String, max_viewers: usize, queued_bytes: usize) {
        let r = Ordering::Relaxed;
        let scalars = [
            (
                "kelpie_viewers_max",
                Kind::Gauge,
                "The most viewers allowed at once (--max-viewers).",
                max_viewers as u64,
            ),
            (
                "kelpie_viewers_refused_total",
                Kind::Counter,
                "Signalling connections refused because --max-viewers were connected.",
                self.refused.load(r),
            ),
            (
                "kelpie_viewer_queued_bytes",
                Kind::Gauge,
                "Bytes of messages waiting in all viewers' queues (video and sound excluded; a message queued for several viewers counts for each).",
                queued_bytes as u64,
            ),
            (
                "kelpie_viewer_pings_total",
                Kind::Counter,
                "WebSocket pings sent to viewers.",
                self.pings.load(r),
            ),
        ];
        for (name, kind, help, value) in scalars {
            prometheus::scalar(out, name, kind, help, value);
        }
        let help = format!(
            "Viewers disconnected by the server, by reason: queue_full (its queue passed its \
             budget), silent (no answer to pings for {} s), write_timeout (a write waited {} s).",
            SILENCE_LIMIT.as_secs(),
            WRITE_TIMEOUT.as_secs()
        );
        prometheus::header(out, "kelpie_viewers_dropped_total", Kind::Counter, &help);
        for (why, c) in [
            ("queue_full", &self.dropped_queue_full),
            ("silent", &self.dropped_silent),
            ("write_timeout", &self.dropped_write_timeout),
        ] {
            let _ = writeln!(out, "kelpie_viewers_dropped_total{{reason=\"{why}\"}} {}", c.load(r));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_holds_the_largest_clipboard_as_sent_and_the_base() {
        use kelpie_clipboard::Mime;
        use kelpie_protocol::ServerMessage;
        for max in [1u64, 1000, 16 << 20, (16 << 20) + 1] {
            let data = vec![0xa5u8; max as usize];
            let sent: usize = crate::clipboard::chunks(u32::MAX, Mime::Png, &data)
                .into_iter()
                .map(|c| ServerMessage::Clipboard(c).to_json().len())
                .sum();
            let budget = queue_budget(max);
            assert!(budget >= QUEUE_BASE + sent, "{max}: budget {budget} < {QUEUE_BASE} + {sent}");
            // And not much more than that (a partial last chunk, counted whole, and 96 bytes
            // of JSON per chunk where 79 to 84 are used).
            assert!(
                budget <= QUEUE_BASE + sent + sent / 500 + CLIPBOARD_CHUNK_BASE64 + 256,
                "{max}: budget {budget} for {sent}"
            );
        }
        // 16 MiB + 456 chunks of 48 KiB of base64 and their JSON.
        assert_eq!(queue_budget(16 << 20), (16 << 20) + 456 * (49_152 + 96));
    }

    #[test]
    fn reasons_fit_a_close_frame_and_are_counted_by_label() {
        let c = LimitCounters::default();
        for why in
            [Dropped::QueueFull { budget: queue_budget(256 << 20) }, Dropped::Silent, Dropped::WriteTimeout]
        {
            let (code, reason) = why.close_frame();
            assert_eq!(code, 1008);
            assert!(reason.len() <= 123, "{reason}");
            c.dropped(why);
        }
        c.dropped(Dropped::Silent);
        let mut out = String::new();
        c.write_metrics(&mut out, 16, 1234);
        assert!(out.contains("kelpie_viewers_dropped_total{reason=\"silent\"} 2\n"), "{out}");
        assert!(out.contains("kelpie_viewers_dropped_total{reason=\"queue_full\"} 1\n"));
        assert!(out.contains("kelpie_viewers_dropped_total{reason=\"write_timeout\"} 1\n"));
        assert!(out.contains("kelpie_viewers_max 16\n") && out.contains("kelpie_viewer_queued_bytes 1234\n"));
        assert_eq!(
            Dropped::QueueFull { budget: queue_budget(16 << 20) }.to_string(),
            "too slow: over 37 MiB waiting to be sent"
        );
    }

    #[tokio::test]
    async fn sockets_keep_at_most_128_kib_unsent() {
        use std::os::fd::AsRawFd as _;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        limit_unsent(&server).unwrap();
        let value = crate::tcpinfo::tcp_option(server.as_raw_fd(), libc::TCP_NOTSENT_LOWAT).unwrap();
        assert_eq!(value as usize, UNSENT_LIMIT);
        // A peer that never reads: writes stop after its receive buffer and 128 KiB, not 4 MiB.
        let mut sent = 0usize;
        let chunk = vec![0u8; 64 << 10];
        while let Ok(n) = server.try_write(&chunk) {
            sent += n;
        }
        let mut peer_buffer: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: as above, for SO_RCVBUF of the client.
        unsafe {
            libc::getsockopt(
                client.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&raw mut peer_buffer).cast(),
                &raw mut len,
            );
        }
        assert!(sent <= peer_buffer as usize + UNSENT_LIMIT + chunk.len(), "{sent} bytes taken");
    }

    #[test]
    fn the_full_message_names_the_limit_and_the_flag() {
        let m = full_message(16);
        assert!(m.starts_with("This desktop already has 16 viewers, the most it allows (--max-viewers)."));
        assert!(m.contains("raise --max-viewers"));
    }
}
