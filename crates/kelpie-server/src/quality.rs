//! What viewers measure (`viewerstats` reports: frame rate, round-trip time, loss, the
//! browser's part of the delay), gathered into histograms by transport for `/metrics`. The
//! only label is the transport the server knows the viewer uses (two values), so the number
//! of series stays the same however many viewers come and go.

use std::sync::atomic::{AtomicU64, Ordering};

use kelpie_protocol::ViewerReport;

use crate::prometheus::{self, Series};
use crate::session::MediaPath;

const RTT_BOUNDS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];
const LOSS_BOUNDS: &[f64] = &[0.0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5];
const FPS_BOUNDS: &[f64] = &[1.0, 5.0, 10.0, 15.0, 24.0, 30.0, 45.0, 60.0, 90.0, 120.0];
const G2G_BOUNDS: &[f64] = &[0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0];

/// A histogram of fixed bounds; the sum is kept in millionths.
#[derive(Debug)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    sum_micro: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micro: AtomicU64::new(0),
        }
    }

    fn observe(&self, value: f64) {
        let i = self.bounds.iter().position(|b| value <= *b).unwrap_or(self.bounds.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micro.fetch_add((value * 1e6).round() as u64, Ordering::Relaxed);
    }

    fn counts(&self) -> Vec<u64> {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).collect()
    }

    fn sum(&self) -> f64 {
        self.sum_micro.load(Ordering::Relaxed) as f64 / 1e6
    }
}

/// The histograms of one transport.
#[derive(Debug)]
struct PerPath {
    reports: AtomicU64,
    rtt: Histogram,
    loss: Histogram,
    fps: Histogram,
    glass: Histogram,
}

impl Default for PerPath {
    fn default() -> Self {
        Self {
            reports: AtomicU64::new(0),
            rtt: Histogram::new(RTT_BOUNDS),
            loss: Histogram::new(LOSS_BOUNDS),
            fps: Histogram::new(FPS_BOUNDS),
            glass: Histogram::new(G2G_BOUNDS),
        }
    }
}

/// Every viewer's reports, by transport.
#[derive(Debug, Default)]
pub struct Quality {
    webrtc: PerPath,
    websocket: PerPath,
    /// Reports refused: too soon after the one before, or without media.
    pub ignored: AtomicU64,
}

impl Quality {
    fn path(&self, path: MediaPath) -> &PerPath {
        match path {
            MediaPath::WebRtc => &self.webrtc,
            MediaPath::WebSocket => &self.websocket,
        }
    }

    /// Adds one report. `server_delay_s`: the server's part of a frame's way (capture to
    /// hand-over), if known; with the report's round-trip time and browser delay it gives
    /// the glass-to-glass estimate (server part + half the RTT + the browser's part).
    pub fn observe(&self, path: MediaPath, r: &ViewerReport, server_delay_s: Option<f64>) {
        let p = self.path(path);
        p.reports.fetch_add(1, Ordering::Relaxed);
        if let Some(ms) = r.rtt_ms {
            p.rtt.observe(f64::from(ms) / 1e3);
        }
        if let Some(ppm) = r.loss_ppm {
            p.loss.observe(f64::from(ppm) / 1e6);
        }
        if let Some(fps) = r.fps {
            p.fps.observe(f64::from(fps));
        }
        if let (Some(rtt), Some(delay), Some(server)) = (r.rtt_ms, r.delay_ms, server_delay_s) {
            p.glass.observe(server + f64::from(rtt) / 2e3 + f64::from(delay) / 1e3);
        }
    }

    /// Writes the histograms and counters in Prometheus' text format.
    pub fn write_metrics(&self, out: &mut String) {
        let paths = [("webrtc", &self.webrtc), ("websocket", &self.websocket)];
        prometheus::header(
            out,
            "kelpie_viewer_reports_total",
            prometheus::Kind::Counter,
            "Viewer stats reports counted, by the transport the viewer uses.",
        );
        for (label, p) in paths {
            let value = p.reports.load(Ordering::Relaxed);
            prometheus::sample(out, "kelpie_viewer_reports_total", &[("transport", label)], value);
        }
        prometheus::scalar(
            out,
            "kelpie_viewer_reports_ignored_total",
            prometheus::Kind::Counter,
            "Viewer stats reports not counted: sooner than 2 s after the viewer's last, or before its media started.",
            self.ignored.load(Ordering::Relaxed),
        );
        type Pick = fn(&PerPath) -> &Histogram;
        let all: [(&str, &str, &[f64], Pick); 4] = [
            (
                "kelpie_viewer_rtt_seconds",
                "Round-trip time viewers report (WebRTC's selected candidate pair).",
                RTT_BOUNDS,
                |p| &p.rtt,
            ),
            (
                "kelpie_viewer_loss_ratio",
                "Share of video packets viewers report lost, per report.",
                LOSS_BOUNDS,
                |p| &p.loss,
            ),
            ("kelpie_viewer_fps", "Frames per second viewers report decoding.", FPS_BOUNDS, |p| &p.fps),
            (
                "kelpie_viewer_glass_to_glass_seconds",
                "Estimated capture-to-decoded delay: the server's capture-to-send time, half the reported RTT and the browser's reported delay.",
                G2G_BOUNDS,
                |p| &p.glass,
            ),
        ];
        for (name, help, bounds, pick) in all {
            let counts: Vec<Vec<u64>> = paths.iter().map(|(_, p)| pick(p).counts()).collect();
            let series: Vec<Series<'_>> = paths
                .iter()
                .zip(&counts)
                .map(|((label, p), c)| Series { label, counts: c, sum: pick(p).sum() })
                .collect();
            prometheus::histogram(out, name, help, "transport", bounds, &series);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_land_in_the_buckets_of_their_transport() {
        let q = Quality::default();
        let r = ViewerReport { fps: Some(60), rtt_ms: Some(4), loss_ppm: Some(20_000), delay_ms: Some(6) };
        q.observe(MediaPath::WebRtc, &r, Some(0.010));
        q.observe(MediaPath::WebSocket, &ViewerReport { fps: Some(30), ..Default::default() }, None);
        let mut out = String::new();
        q.write_metrics(&mut out);
        for line in [
            "kelpie_viewer_reports_total{transport=\"webrtc\"} 1",
            "kelpie_viewer_reports_total{transport=\"websocket\"} 1",
            "kelpie_viewer_rtt_seconds_bucket{transport=\"webrtc\",le=\"0.0025\"} 0",
            "kelpie_viewer_rtt_seconds_bucket{transport=\"webrtc\",le=\"0.005\"} 1",
            "kelpie_viewer_rtt_seconds_count{transport=\"websocket\"} 0",
            "kelpie_viewer_loss_ratio_bucket{transport=\"webrtc\",le=\"0.01\"} 0",
            "kelpie_viewer_loss_ratio_bucket{transport=\"webrtc\",le=\"0.02\"} 1",
            "kelpie_viewer_fps_bucket{transport=\"websocket\",le=\"30\"} 1",
            "kelpie_viewer_fps_sum{transport=\"webrtc\"} 60",
            // 10 ms on the server, 2 ms one way, 6 ms in the browser.
            "kelpie_viewer_glass_to_glass_seconds_bucket{transport=\"webrtc\",le=\"0.01\"} 0",
            "kelpie_viewer_glass_to_glass_seconds_bucket{transport=\"webrtc\",le=\"0.02\"} 1",
            "kelpie_viewer_glass_to_glass_seconds_sum{transport=\"webrtc\"} 0.018",
            "kelpie_viewer_glass_to_glass_seconds_count{transport=\"websocket\"} 0",
        ] {
            assert!(out.lines().any(|l| l == line), "missing {line} in\n{out}");
        }
    }

    #[test]
    fn values_beyond_the_last_bound_count_in_inf_only() {
        let q = Quality::default();
        q.observe(MediaPath::WebRtc, &ViewerReport { rtt_ms: Some(60_000), ..Default::default() }, None);
        let mut out = String::new();
        q.write_metrics(&mut out);
        assert!(out.contains("kelpie_viewer_rtt_seconds_bucket{transport=\"webrtc\",le=\"1\"} 0\n"));
        assert!(out.contains("kelpie_viewer_rtt_seconds_bucket{transport=\"webrtc\",le=\"+Inf\"} 1\n"));
    }
}
