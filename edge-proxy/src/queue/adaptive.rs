//! Adaptive admission: the booking core's health as this proxy sees it
//! (latency and failures of the requests it forwards), and the rule that
//! turns it into an admission rate within the operator's bounds.
//!
//! The rule is proportional with a dead band: the rate is scaled by
//! `target p99 / measured p99` (at most halved, at most +25% per window),
//! cut by at least 30% when the error rate is over its limit, and left alone
//! within 10% of the target so that it settles instead of hunting.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::Adaptive;
use crate::locks;

/// Recent answers from the core: when, how long, and whether they failed.
pub struct CoreHealth {
    samples: Mutex<VecDeque<(Instant, u32, bool)>>,
}

/// Enough samples to judge a window by, even at high rates.
const KEEP: usize = 20_000;
/// Fewer answers than this in a window say nothing either way.
const MIN_SAMPLES: usize = 10;

/// The core's health over one window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub answers: usize,
    pub p99_ms: f64,
    pub error_rate: f64,
}

impl Default for CoreHealth {
    fn default() -> Self {
        CoreHealth {
            samples: Mutex::new(VecDeque::with_capacity(1024)),
        }
    }
}

impl CoreHealth {
    pub fn record(&self, latency: Duration, failed: bool) {
        let ms = latency.as_millis().min(u32::MAX as u128) as u32;
        let mut s = locks::lock(&self.samples);
        if s.len() == KEEP {
            s.pop_front();
        }
        s.push_back((Instant::now(), ms, failed));
    }

    /// The answers received within the last `span`.
    pub fn window(&self, span: Duration) -> Window {
        let since = Instant::now().checked_sub(span);
        let s = locks::lock(&self.samples);
        let mut latencies: Vec<u32> = Vec::new();
        let mut failed = 0usize;
        for (at, ms, f) in s.iter().rev() {
            if since.is_some_and(|since| *at < since) {
                break;
            }
            latencies.push(*ms);
            failed += *f as usize;
        }
        drop(s);
        let answers = latencies.len();
        if answers == 0 {
            return Window {
                answers: 0,
                p99_ms: 0.0,
                error_rate: 0.0,
            };
        }
        latencies.sort_unstable();
        let rank = ((answers as f64) * 0.99).ceil() as usize;
        Window {
            answers,
            p99_ms: latencies[rank.clamp(1, answers) - 1] as f64,
            error_rate: failed as f64 / answers as f64,
        }
    }
}

/// The next admission rate, given the current one and the last window.
pub fn next_rate(current: u32, bounds: &Adaptive, w: &Window) -> u32 {
    let current = current.clamp(bounds.min_per_minute, bounds.max_per_minute);
    if w.answers < MIN_SAMPLES {
        return current;
    }
    let mut factor = (bounds.target_p99_ms as f64 / w.p99_ms.max(1.0)).clamp(0.5, 1.25);
    if w.error_rate > bounds.max_error_rate {
        factor = factor.min(0.7);
    } else if (factor - 1.0).abs() < 0.1 {
        return current;
    }
    let next = (current as f64 * factor).round();
    // Always move by at least one fan a minute, so small rates can still rise.
    let next = if factor > 1.0 {
        next.max(current as f64 + 1.0)
    } else {
        next
    };
    (next as u32).clamp(bounds.min_per_minute, bounds.max_per_minute)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds() -> Adaptive {
        Adaptive {
            min_per_minute: 60,
            max_per_minute: 6_000,
            target_p99_ms: 200,
            max_error_rate: 0.01,
            window_secs: 5,
        }
    }

    fn w(p99_ms: f64, error_rate: f64) -> Window {
        Window {
            answers: 100,
            p99_ms,
            error_rate,
        }
    }

    #[test]
    fn slow_core_lowers_fast_core_raises_near_target_holds() {
        let b = bounds();
        assert_eq!(next_rate(1_000, &b, &w(400.0, 0.0)), 500);
        assert_eq!(next_rate(1_000, &b, &w(1_000.0, 0.0)), 500, "at most halved");
        assert_eq!(next_rate(1_000, &b, &w(50.0, 0.0)), 1_250, "at most +25%");
        assert_eq!(next_rate(1_000, &b, &w(190.0, 0.0)), 1_000, "dead band");
        assert_eq!(next_rate(1_000, &b, &w(100.0, 0.05)), 700, "errors cut it");
    }

    #[test]
    fn stays_within_the_operators_bounds_and_ignores_thin_windows() {
        let b = bounds();
        assert_eq!(next_rate(100, &b, &w(5_000.0, 1.0)), 60);
        assert_eq!(next_rate(5_900, &b, &w(1.0, 0.0)), 6_000);
        assert_eq!(next_rate(20_000, &b, &w(200.0, 0.0)), 6_000, "clamped first");
        let thin = Window {
            answers: 3,
            p99_ms: 9_000.0,
            error_rate: 1.0,
        };
        assert_eq!(next_rate(1_000, &b, &thin), 1_000);
    }

    #[test]
    fn the_window_sees_only_recent_answers() {
        let h = CoreHealth::default();
        for i in 1..=100 {
            h.record(Duration::from_millis(i), i % 10 == 0);
        }
        let all = h.window(Duration::from_secs(60));
        assert_eq!(all.answers, 100);
        assert_eq!(all.p99_ms, 99.0);
        assert!((all.error_rate - 0.1).abs() < 1e-9);
        std::thread::sleep(Duration::from_millis(30));
        h.record(Duration::from_millis(7), false);
        let recent = h.window(Duration::from_millis(20));
        assert_eq!(recent.answers, 1);
        assert_eq!(recent.p99_ms, 7.0);
    }
}
