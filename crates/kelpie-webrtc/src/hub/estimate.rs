//! Each peer's bandwidth estimate: str0m's own (read from its stats several times a
//! second), capped while the path is congested and losing packets
//! ([`kelpie_media::congestion::LossGuard`]), and the desired bitrate that makes str0m probe
//! above it while the video uses all of it
//! ([`kelpie_media::congestion::webrtc_desired_bps`]); and what the peer's sound takes of
//! the path, which its video leaves free.

use std::time::{Duration, Instant};

use kelpie_media::congestion::{BitrateLimits, DESIRED_EVERY, LossGuard, webrtc_desired_bps};
use str0m::Rtc;
use str0m::bwe::Bitrate;
use str0m::stats::PeerStats;

use super::PeerId;

/// How often str0m reports each peer's stats, and so its bandwidth estimate.
pub(super) const STATS_EVERY: Duration = Duration::from_millis(100);

/// What is known of one peer's path.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct PathStats {
    /// The bandwidth estimate, in bit/s.
    pub estimate_bps: Option<u64>,
    /// The share of packets lost (the last receiver reports).
    pub loss: Option<f32>,
    /// The round trip.
    pub rtt: Option<Duration>,
    /// NACKs received so far.
    pub nacks: u64,
    /// What its sound takes of the path, bit/s (packets with their headers, as last
    /// measured between two stats reports).
    pub audio_bps: u64,
    /// The audio m-line's bytes and packets sent so far, and when counted.
    audio_sent: Option<(u64, u64, Instant)>,
}

/// Bytes of IP, UDP, RTP and SRTP headers around each RTP packet's payload (IPv4, the
/// header extensions Kelpie negotiates).
const PACKET_OVERHEAD: u64 = 60;

impl PathStats {
    /// No audio counters for a second: the sound stopped (or its stream went).
    pub(super) fn audio_quiet(&mut self, now: Instant) {
        if self.audio_sent.is_some_and(|(_, _, t)| now.saturating_duration_since(t) > Duration::from_secs(1))
        {
            self.audio_bps = 0;
        }
    }

    /// Notes the audio m-line's counters at `now`: the sound's bitrate since the last note.
    pub(super) fn audio_sent(&mut self, now: Instant, bytes: u64, packets: u64) {
        if let Some((b0, p0, t0)) = self.audio_sent {
            let dt = now.saturating_duration_since(t0).as_secs_f64();
            if dt > 0.0 {
                let wire = bytes.saturating_sub(b0) + packets.saturating_sub(p0) * PACKET_OVERHEAD;
                self.audio_bps = (wire as f64 * 8.0 / dt) as u64;
            }
        }
        self.audio_sent = Some((bytes, packets, now));
    }
}

/// A peer's estimate as the hub keeps it.
#[derive(Debug, Default)]
pub(super) struct PeerEstimate {
    /// Caps str0m's estimate while the path is congested and losing packets.
    guard: LossGuard,
    /// The desired bitrate str0m was last told, and when.
    desired: Option<(u64, Instant)>,
    /// Whether feedback ever came, and since when none has (see [`PeerEstimate::outage_over`]).
    heard: bool,
    silent_since: Option<Instant>,
    /// str0m's estimate while feedback last came: what the path carried before an outage.
    before_outage: Option<u64>,
    /// The estimate str0m restarted from at the end of an outage, for the stats that ended
    /// it (taken before the restart).
    restarted: Option<u64>,
    /// Until when the loss reported is the outage's, not the path's (see [`OUTAGE_LOSS`]).
    outage_loss_until: Option<Instant>,
}

/// After an outage, how long the loss str0m reports still counts the packets sent into it
/// (its loss figure covers about the last second).
const OUTAGE_LOSS: Duration = Duration::from_millis(1500);

impl PeerEstimate {
    /// Whether stats `s` end an outage: no feedback (TWCC) for a second or more after some
    /// came. Every frame sent meanwhile is lost, and NACKs would bring them back through a
    /// path whose estimate has just fallen with the loss (a tenth of a second of video took
    /// seconds), behind which the next frames wait: the peer is better served a keyframe.
    ///
    /// The first feedback after an outage reports every packet sent into it lost, and str0m's
    /// loss-based estimate falls with it to almost nothing (recorded over the link emulator:
    /// 1.6 Mbit/s before a 2 s outage, 56 kbit/s after, the keyframe then took a second to
    /// go). An outage is not congestion: str0m's estimator starts again from the estimate
    /// before it (`rtc`), and the loss of the outage is kept from the [`LossGuard`] while
    /// it is still in the figures. A path that came back slower shows it in the delays
    /// within a few round trips.
    pub(super) fn outage_over(&mut self, rtc: &mut Rtc, s: &PeerStats) -> bool {
        match s.egress_loss_fraction {
            None if self.heard => {
                self.silent_since.get_or_insert(s.timestamp);
                false
            }
            None => false,
            Some(_) => {
                self.heard = true;
                let over = self.silent_since.take().is_some();
                match (over, self.before_outage) {
                    (true, Some(before)) => {
                        rtc.bwe().reset(Bitrate::bps(before));
                        self.restarted = Some(before);
                        self.guard = LossGuard::default();
                        self.outage_loss_until = Some(s.timestamp + OUTAGE_LOSS);
                    }
                    _ => self.before_outage = s.bwe_tx.map(|b| b.as_u64()),
                }
                over
            }
        }
    }

    /// Takes in peer `id`'s stats `s`: notes the estimate in `path` and returns it when it
    /// changed; tells `rtc`'s estimator the bitrate the video would like (see
    /// [`webrtc_desired_bps`]; `limited`: its stream is short of bits) when that changed, at
    /// most every [`DESIRED_EVERY`].
    pub(super) fn stats(
        &mut self,
        id: PeerId,
        rtc: &mut Rtc,
        path: &mut PathStats,
        limits: BitrateLimits,
        limited: bool,
        s: &PeerStats,
    ) -> Option<u64> {
        let raw = self.restarted.take().or(s.bwe_tx.map(|b| b.as_u64()))?;
        let now = s.timestamp;
        let loss = s.egress_loss_fraction.filter(|_| self.outage_loss_until.is_none_or(|t| now >= t));
        let capped = self.guard.capped();
        let bps = self.guard.update(now, raw, s.peer_bytes_tx, loss, s.rtt, limits.min_bps);
        if self.guard.capped() != capped {
            tracing::debug!(%id, str0m = raw, bps, ?loss, rtt = ?s.rtt, "estimate capped: {}", self.guard.capped());
        }
        let congested = self.guard.capped() || loss.is_some_and(|l| l > 0.02);
        let sent = self.guard.sent_bps().unwrap_or(0.0);
        let desired = webrtc_desired_bps(raw, sent, congested, limited, limits.max_bps);
        let due = self.desired.is_none_or(|(_, t)| now.saturating_duration_since(t) >= DESIRED_EVERY);
        if due && self.desired.is_none_or(|(d, _)| d != desired) {
            tracing::trace!(%id, desired, "desired bitrate");
            rtc.bwe().set_bitrate(Bitrate::ZERO, Bitrate::bps(desired));
            self.desired = Some((desired, now));
        }
        tracing::trace!(%id, str0m = raw, bps, ?loss, sent = s.peer_bytes_tx, rtt = ?s.rtt, "path stats");
        (Some(bps) != path.estimate_bps).then(|| {
            path.estimate_bps = Some(bps);
            bps
        })
    }
}
