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
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Summary => "summary",
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
    for (label, value, sample) in samples {
        let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {sample}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_labelled_samples() {
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
}
