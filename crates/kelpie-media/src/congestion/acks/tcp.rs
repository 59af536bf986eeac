//! What the kernel's TCP knows of a WebSocket viewer's connection (`TCP_INFO`, read by the
//! server and passed in): the round trip of its segments and what it has in flight.
//!
//! The acknowledgements of frames measure more than the path: a frame behind a lost segment
//! waits for the retransmission (a fifth of a second when the loss is at the tail and the
//! retransmission timer fires), and so do the frames after it; an acknowledgement lost on the
//! way back holds up those after it the same way; and a browser busy decoding or drawing
//! answers late. On a path with 1 % loss that happens several times a second, and read as
//! queueing it drove the estimate to the floor. TCP's own round trip leaves all of that out:
//! it is measured on each segment's ACK (retransmitted ones left out, Karn's rule), and a
//! segment that arrives behind a hole is acknowledged at once (SACK). A queue at the
//! bottleneck still shows in it, as does data waiting because TCP's window is full.
//!
//! TCP's round trip has its own noise: the browser's TCP delays its ACK of a lone small
//! segment (40 ms or more, when a busy page is slow to answer with its acknowledgement, which
//! would carry the ACK). A queue that this sender made holds its data, though: TCP's count of
//! what it has in the path fills the window then.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::Samples;

/// One reading of a connection's `TCP_INFO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpState {
    /// TCP's smoothed round trip (`tcpi_rtt`).
    pub srtt: Duration,
    /// The least round trip TCP has seen (`tcpi_min_rtt`).
    pub min_rtt: Duration,
    /// Bytes in the network: segments sent and neither acknowledged, selectively acknowledged
    /// nor deemed lost (`tcpi_unacked − tcpi_sacked − tcpi_lost + tcpi_retrans`, as the
    /// kernel's `tcp_packets_in_flight`), times the segment size.
    pub in_flight_bytes: u64,
    /// Bytes written and not sent yet (`tcpi_notsent_bytes`): TCP's own window is full.
    pub unsent_bytes: u64,
    /// Segments retransmitted so far (`tcpi_total_retrans`), for the logs.
    pub retransmits: u32,
}

impl TcpState {
    /// What the path holds of this connection and what waits to enter it.
    pub fn queued_bytes(&self) -> u64 {
        self.in_flight_bytes + self.unsent_bytes
    }
}

/// The frames' least round trip may be up to three times TCP's and this much more for TCP's
/// figures to count as the path's: a busy browser takes its time to acknowledge (73 ms
/// against TCP's 33 was seen on a loaded machine). Far more means the TCP connection ends
/// short of the browser: a reverse proxy in between, whose buffers TCP's figures say nothing
/// of (on the same machine, TCP's least round trip is a tenth of a millisecond).
const SPAN_MARGIN: Duration = Duration::from_millis(15);

/// A reading older than this is not used (the caller stopped reading them).
const FRESH: Duration = Duration::from_secs(1);

/// Until this many frames were acknowledged, TCP's figures are taken to span the path: the
/// first acknowledgements come from a page still starting (decoder set-up, a keyframe), and
/// their round trips say nothing yet of a proxy.
const SETTLING: usize = 30;

/// The kernel's readings of one connection.
#[derive(Debug, Default)]
pub(super) struct Kernel {
    latest: Option<(TcpState, Instant)>,
    /// TCP's round trip above its least, over the queue window.
    pub(super) queueing: Samples,
    /// What TCP had in the path or waiting, and when, over the rate window.
    queued: VecDeque<(u64, Instant)>,
}

impl Kernel {
    pub(super) fn sample(&mut self, now: Instant, state: TcpState, window: Duration) {
        self.latest = Some((state, now));
        self.queueing.push(now, state.srtt.saturating_sub(state.min_rtt), window);
    }

    /// Notes what TCP has in the path at `now`, kept over `window`.
    pub(super) fn queued(&mut self, now: Instant, window: Duration) {
        let Some((state, _)) = self.latest else { return };
        self.queued.push_back((state.queued_bytes(), now));
        while self.queued.front().is_some_and(|a| now.saturating_duration_since(a.1) > window) {
            self.queued.pop_front();
        }
    }

    /// The first reading since `since` and the last of what TCP had in the path, if at
    /// least 30 ms apart: what was written between them less what the path holds more is
    /// what it delivered (whether the browser has read it or not, and behind a hole or not:
    /// TCP leaves what was selectively acknowledged out of its count).
    pub(super) fn queued_span(&self, since: Instant) -> Option<((u64, Instant), (u64, Instant))> {
        let first = *self.queued.iter().find(|q| q.1 >= since)?;
        let last = *self.queued.back()?;
        (last.1.saturating_duration_since(first.1) >= Duration::from_millis(30)).then_some((first, last))
    }

    /// The latest reading, if recent and if the connection spans the path the frames'
    /// round trips measure (least `frames_min_rtt`, of `frames` acknowledged).
    pub(super) fn spanning(
        &self,
        now: Instant,
        frames_min_rtt: Option<Duration>,
        frames: usize,
    ) -> Option<&TcpState> {
        let (state, at) = self.latest.as_ref()?;
        let fresh = now.saturating_duration_since(*at) <= FRESH;
        let spans = match frames_min_rtt {
            Some(rtt) if frames >= SETTLING => rtt <= state.min_rtt * 3 + SPAN_MARGIN,
            _ => true,
        };
        (fresh && state.min_rtt > Duration::ZERO && spans).then_some(state)
    }
}
