//! Writing the Prometheus text exposition format (version 0.0.4): a
//! family's HELP and TYPE once, then its samples, with label values escaped.

use std::fmt::Write;

use crate::metrics::histogram::{BOUNDS, Snapshot};

#[derive(Default)]
pub struct Text {
    out: String,
}

impl Text {
    /// A family's header; its samples follow.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.out.push_str(name);
        self.labels(labels, None);
        let _ = writeln!(self.out, " {value}");
    }

    /// A histogram's `_bucket`, `_sum` and `_count` lines.
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &Snapshot) {
        for (i, n) in h.cumulative.iter().enumerate() {
            let le = BOUNDS.get(i).map_or_else(|| "+Inf".to_string(), |b| b.to_string());
            let _ = write!(self.out, "{name}_bucket");
            self.labels(labels, Some(&le));
            let _ = writeln!(self.out, " {n}");
        }
        self.sample(&format!("{name}_sum"), labels, h.sum_secs);
        self.sample(&format!("{name}_count"), labels, h.cumulative[BOUNDS.len()]);
    }

    fn labels(&mut self, labels: &[(&str, &str)], le: Option<&str>) {
        if labels.is_empty() && le.is_none() {
            return;
        }
        self.out.push('{');
        let mut first = true;
        for (k, v) in labels.iter().copied().chain(le.map(|le| ("le", le))) {
            if !first {
                self.out.push(',');
            }
            first = false;
            let _ = write!(self.out, "{k}=\"");
            for c in v.chars() {
                match c {
                    '\\' => self.out.push_str("\\\\"),
                    '"' => self.out.push_str("\\\""),
                    '\n' => self.out.push_str("\\n"),
                    c => self.out.push(c),
                }
            }
            self.out.push('"');
        }
        self.out.push('}');
    }

    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::histogram::Histogram;

    #[test]
    fn samples_escape_label_values_and_histograms_end_with_inf() {
        let mut t = Text::default();
        t.family("x_total", "counter", "Things.");
        t.sample("x_total", &[("route", "/v1/\"a\"\\b")], 3);
        let h = Histogram::default();
        h.observe(std::time::Duration::from_millis(2));
        t.histogram("y_seconds", &[("step", "charge")], &h.snapshot());
        let out = t.finish();
        assert!(out.starts_with("# HELP x_total Things.\n# TYPE x_total counter\n"));
        assert!(out.contains("x_total{route=\"/v1/\\\"a\\\"\\\\b\"} 3\n"), "{out}");
        assert!(
            out.contains("y_seconds_bucket{step=\"charge\",le=\"0.001\"} 0\n"),
            "{out}"
        );
        assert!(
            out.contains("y_seconds_bucket{step=\"charge\",le=\"0.0025\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("y_seconds_bucket{step=\"charge\",le=\"+Inf\"} 1\n"),
            "{out}"
        );
        assert!(out.contains("y_seconds_count{step=\"charge\"} 1\n"), "{out}");
    }
}
