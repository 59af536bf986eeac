//! Prometheus' text exposition format: the one place that spells `# HELP` and `# TYPE`.

use std::fmt::{Display, Write as _};

/// What a metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// A sum and a count.
    Summary,
    /// Cumulative buckets, a sum and a count.
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Summary => "summary",
            Self::Histogram => "histogram",
        }
    }
}

/// Writes the `# HELP` and `# TYPE` lines of metric `name`; its samples follow.
pub fn header(out: &mut String, name: &str, kind: Kind, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {}", kind.as_str());
}

/// Writes metric `name` with one sample, `value`, and no labels.
pub fn scalar(out: &mut String, name: &str, kind: Kind, help: &str, value: impl Display) {
    header(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

/// Writes one sample of metric `name` (its header written before) with `labels`, whose
/// values are Kelpie's own words (codec, encoder, transport names), never a client's.
pub fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: impl Display) {
    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    let _ = writeln!(out, "{name}{{{}}} {value}", labels.join(","));
}

/// Writes each `(name, help, value)` as a counter with one sample.
pub fn counters<V: Display>(
    out: &mut String,
    metrics: impl IntoIterator<Item = (&'static str, &'static str, V)>,
) {
    for (name, help, value) in metrics {
        scalar(out, name, Kind::Counter, help, value);
    }
}

/// Writes metric `name` with one sample per `(label, value, sample)`: `name{label="value"}`.
/// Label values must be bounded (codec and transport names, never per-viewer ids).
pub fn labelled<V: Display>(
    out: &mut String,
    name: &str,
    kind: Kind,
    help: &str,
    samples: impl IntoIterator<Item = (&'static str, &'static str, V)>,
) {
    header(out, name, kind, help);
    for (label, value, v) in samples {
        sample(out, name, &[(label, value)], v);
    }
}

/// One labelled series of a histogram: `label="value"`, the count of observations in each
/// bucket (not cumulative; one more than `bounds`, the last for `+Inf`) and their sum.
pub struct Series<'a> {
    /// The label's value.
    pub label: &'a str,
    /// Observations per bucket, the last beyond every bound.
    pub counts: &'a [u64],
    /// The sum of the observations.
    pub sum: f64,
}

/// Writes histogram `name` (its header, then each series' cumulative `_bucket`s with `le`,
/// `_sum` and `_count`), every series labelled `label`.
pub fn histogram(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    bounds: &[f64],
    series: &[Series<'_>],
) {
    header(out, name, Kind::Histogram, help);
    for s in series {
        let mut cumulative = 0;
        for (i, n) in s.counts.iter().enumerate() {
            cumulative += n;
            let le = bounds.get(i).map_or_else(|| "+Inf".to_string(), |b| b.to_string());
            let _ = writeln!(out, "{name}_bucket{{{label}=\"{}\",le=\"{le}\"}} {cumulative}", s.label);
        }
        let _ = writeln!(out, "{name}_sum{{{label}=\"{}\"}} {}", s.label, s.sum);
        let _ = writeln!(out, "{name}_count{{{label}=\"{}\"}} {cumulative}", s.label);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_gauge_with_one_sample_per_label_value() {
        let mut out = String::new();
        labelled(&mut out, "kelpie_x", Kind::Gauge, "X.", [("codec", "h264", 5u64), ("codec", "vp8", 6)]);
        assert_eq!(
            out,
            "# HELP kelpie_x X.\n# TYPE kelpie_x gauge\nkelpie_x{codec=\"h264\"} 5\nkelpie_x{codec=\"vp8\"} 6\n"
        );
    }

    #[test]
    fn writes_the_text_format() {
        let mut out = String::new();
        scalar(&mut out, "kelpie_viewers", Kind::Gauge, "Connected viewers.", 3);
        counters(&mut out, [("kelpie_a_total", "A.", 1u64), ("kelpie_b_total", "B.", 2)]);
        assert_eq!(
            out,
            "# HELP kelpie_viewers Connected viewers.\n# TYPE kelpie_viewers gauge\nkelpie_viewers 3\n\
             # HELP kelpie_a_total A.\n# TYPE kelpie_a_total counter\nkelpie_a_total 1\n\
             # HELP kelpie_b_total B.\n# TYPE kelpie_b_total counter\nkelpie_b_total 2\n"
        );
    }

    #[test]
    fn writes_labelled_samples() {
        let mut out = String::new();
        sample(&mut out, "kelpie_x_sum", &[("codec", "h264"), ("encoder", "x264")], 0.25);
        assert_eq!(out, "kelpie_x_sum{codec=\"h264\",encoder=\"x264\"} 0.25\n");
    }

    #[test]
    fn writes_histograms_with_cumulative_buckets() {
        let mut out = String::new();
        let series = [Series { label: "webrtc", counts: &[1, 0, 2], sum: 0.5 }];
        histogram(&mut out, "kelpie_x_seconds", "X.", "transport", &[0.01, 0.1], &series);
        assert_eq!(
            out,
            "# HELP kelpie_x_seconds X.\n# TYPE kelpie_x_seconds histogram\n\
             kelpie_x_seconds_bucket{transport=\"webrtc\",le=\"0.01\"} 1\n\
             kelpie_x_seconds_bucket{transport=\"webrtc\",le=\"0.1\"} 1\n\
             kelpie_x_seconds_bucket{transport=\"webrtc\",le=\"+Inf\"} 3\n\
             kelpie_x_seconds_sum{transport=\"webrtc\"} 0.5\n\
             kelpie_x_seconds_count{transport=\"webrtc\"} 3\n"
        );
    }
}
