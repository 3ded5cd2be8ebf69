//! A fixed-bucket latency histogram on atomics: one relaxed increment per
//! bucket hit, count and sum, no lock; buckets are made cumulative only when
//! rendered, so an observation costs the same whatever its size.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds, in seconds: from a cached read (1 ms) to a payment
/// provider at its time-out (10 s).
pub const BOUNDS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default)]
pub struct Histogram {
    /// Per bucket (not cumulative); the last counts what is above every bound.
    buckets: [AtomicU64; BOUNDS.len() + 1],
    sum_us: AtomicU64,
}

/// A histogram's counts as read at one moment.
pub struct Snapshot {
    /// Cumulative, one per bound, then +Inf (= the count).
    pub cumulative: [u64; BOUNDS.len() + 1],
    pub sum_secs: f64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = BOUNDS.iter().position(|b| secs <= *b).unwrap_or(BOUNDS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us
            .fetch_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        let mut cumulative = [0u64; BOUNDS.len() + 1];
        let mut total = 0u64;
        for (i, b) in self.buckets.iter().enumerate() {
            total += b.load(Ordering::Relaxed);
            cumulative[i] = total;
        }
        Snapshot {
            cumulative,
            sum_secs: self.sum_us.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_the_last_is_the_count() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(30));
        h.observe(Duration::from_secs(60));
        let s = h.snapshot();
        assert_eq!(s.cumulative[0], 1, "0.5 ms is under 1 ms");
        assert_eq!(s.cumulative[5], 2, "30 ms is under 50 ms");
        assert_eq!(s.cumulative[BOUNDS.len() - 1], 2, "60 s is above every bound");
        assert_eq!(s.cumulative[BOUNDS.len()], 3);
        assert!((s.sum_secs - 60.0305).abs() < 1e-9);
    }
}
