//! What frames cost lately at each QP, per kind of frame: the rate control's evidence where
//! its model (a frame's cost halving every 6 QPs) is wrong, as on the cliffs of noise and on
//! libx264's missed skips (see the parent module's notes).

use std::time::{Duration, Instant};

use super::{FrameKind, QP_MAX, QP_MIN, QP_SPEC_MAX};

/// How long the cost seen at one QP is remembered.
pub(super) const MEMORY: Duration = Duration::from_secs(3);

/// What a frame of complexity `per_pixel` over `pixels` costs at `qp`, by the model.
pub(super) fn bits_at(per_pixel: f64, pixels: f64, qp: u8) -> f64 {
    per_pixel * pixels * 2f64.powf(-f64::from(qp) / 6.0)
}

/// The complexity per pixel seen at each QP, per kind of frame, and when.
#[derive(Debug)]
pub(super) struct CostMemory {
    at_qp: [[Option<(f64, Instant)>; QP_MAX as usize + 1]; 4],
}

impl Default for CostMemory {
    fn default() -> Self {
        Self { at_qp: [[None; QP_MAX as usize + 1]; 4] }
    }
}

impl CostMemory {
    /// Notes that a frame of `kind` at `qp` cost `per_pixel` (complexity per pixel) at `at`.
    pub(super) fn note(&mut self, kind: FrameKind, qp: u8, per_pixel: f64, at: Instant) {
        self.at_qp[kind.index()][usize::from(qp.min(QP_MAX))] = Some((per_pixel, at));
    }

    /// The complexity per pixel seen at `qp` within [`MEMORY`] of `now`.
    pub(super) fn per_pixel(&self, kind: FrameKind, qp: u8, now: Instant) -> Option<f64> {
        self.at_qp[kind.index()][usize::from(qp.min(QP_MAX))]
            .filter(|(_, t)| now.saturating_duration_since(*t) < MEMORY)
            .map(|(c, _)| c)
    }

    /// What a frame of `kind` over `pixels` was seen to cost at `qp` lately.
    pub(super) fn bits(&self, kind: FrameKind, qp: u8, pixels: f64, now: Instant) -> Option<f64> {
        self.per_pixel(kind, qp, now).map(|c| bits_at(c, pixels, qp))
    }

    /// The highest QP at which what this or a lower QP was seen to cost, taken down at the
    /// model's 6 QPs per halving, is over `limit` bits (a lower QP never costing less, by
    /// the model).
    pub(super) fn overshoots_up_to(
        &self,
        kind: FrameKind,
        pixels: f64,
        limit: f64,
        now: Instant,
    ) -> Option<u8> {
        let mut worst: Option<f64> = None;
        let mut overshot = None;
        for q in QP_MIN..QP_MAX {
            worst = match (worst, self.per_pixel(kind, q, now)) {
                (Some(w), Some(c)) => Some(w.max(c)),
                (w, c) => w.or(c),
            };
            if worst.is_some_and(|c| bits_at(c, pixels, q) > limit) {
                overshot = Some(q);
            }
        }
        overshot
    }

    /// The lowest QP under `below` seen to cost at most `target` bits.
    pub(super) fn lowest_fitting(
        &self,
        kind: FrameKind,
        pixels: f64,
        target: f64,
        below: u8,
        now: Instant,
    ) -> Option<u8> {
        (QP_MIN..below).find(|&q| self.bits(kind, q, pixels, now).is_some_and(|b| b <= target))
    }

    /// The QP of H.264 seen to cost least lately (the lowest of equals), and its cost.
    pub(super) fn cheapest(&self, kind: FrameKind, pixels: f64, now: Instant) -> Option<(u8, f64)> {
        (QP_MIN..=QP_SPEC_MAX).filter_map(|q| self.bits(kind, q, pixels, now).map(|b| (q, b))).fold(
            None,
            |best, (q, b)| match best {
                Some((_, bb)) if bb <= b => best,
                _ => Some((q, b)),
            },
        )
    }

    /// The QPs above `qp` seen to cost more than `factor` times `bits`.
    pub(super) fn costlier_above(
        &self,
        kind: FrameKind,
        qp: u8,
        bits: f64,
        factor: f64,
        pixels: f64,
        now: Instant,
    ) -> Vec<u8> {
        (qp + 1..=QP_MAX)
            .filter(|&q| self.bits(kind, q, pixels, now).is_some_and(|b| b > bits * factor))
            .collect()
    }

    /// Keeps the costs seen at `qps` as if seen at `now`.
    pub(super) fn renew(&mut self, kind: FrameKind, qps: &[u8], now: Instant) {
        for &q in qps {
            if let Some(m) = self.at_qp[kind.index()][usize::from(q.min(QP_MAX))].as_mut() {
                m.1 = now;
            }
        }
    }
}
