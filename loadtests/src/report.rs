//! Counting outcomes and latencies of one phase, and printing them.

use std::time::Duration;

use hdrhistogram::Histogram;

pub struct Figures {
    pub ok: u64,
    pub conflicts: u64,
    pub errors: u64,
    pub latency: Histogram<u64>,
    pub elapsed: Duration,
}

impl Default for Figures {
    fn default() -> Self {
        Figures::new()
    }
}

impl Figures {
    pub fn new() -> Figures {
        Figures {
            ok: 0,
            conflicts: 0,
            errors: 0,
            // Microseconds, up to a minute, 3 significant figures.
            latency: Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds"),
            elapsed: Duration::ZERO,
        }
    }

    fn record(&mut self, d: Duration) {
        let _ = self.latency.record((d.as_micros() as u64).clamp(1, 60_000_000));
    }

    pub fn ok(&mut self, d: Duration) {
        self.ok += 1;
        self.record(d);
    }

    pub fn conflict(&mut self, d: Duration) {
        self.conflicts += 1;
        self.record(d);
    }

    pub fn error(&mut self, d: Duration) {
        self.errors += 1;
        self.record(d);
    }

    pub fn merge(&mut self, other: &Figures) {
        self.ok += other.ok;
        self.conflicts += other.conflicts;
        self.errors += other.errors;
        let _ = self.latency.add(&other.latency);
    }

    pub fn attempts(&self) -> u64 {
        self.ok + self.conflicts + self.errors
    }

    pub fn per_sec(&self, n: u64) -> f64 {
        n as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn ms(&self, q: f64) -> f64 {
        self.latency.value_at_quantile(q) as f64 / 1000.0
    }

    pub fn p50(&self) -> f64 {
        self.ms(0.5)
    }

    pub fn p99(&self) -> f64 {
        self.ms(0.99)
    }

    pub fn max(&self) -> f64 {
        self.latency.max() as f64 / 1000.0
    }

    pub fn header() -> String {
        format!(
            "{:<34} {:>10} {:>9} {:>9} {:>7} {:>9} {:>9} {:>9}",
            "phase", "attempts/s", "holds/s", "409s/s", "errors", "p50 ms", "p99 ms", "max ms"
        )
    }

    pub fn line(&self, name: &str) -> String {
        format!(
            "{:<34} {:>10.0} {:>9.0} {:>9.0} {:>7} {:>9.2} {:>9.2} {:>9.2}",
            name,
            self.per_sec(self.attempts()),
            self.per_sec(self.ok),
            self.per_sec(self.conflicts),
            self.errors,
            self.p50(),
            self.p99(),
            self.max()
        )
    }
}
