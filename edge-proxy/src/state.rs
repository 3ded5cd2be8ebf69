//! Everything the proxy, the admission ticker and the admin API share.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::ArcSwapOption;

use crate::config::EdgeConfig;
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::queue::Rooms;
use crate::queue::store::QueueStore;
use crate::rules::{Bypasses, Protection};
use crate::tokens::EdgeTokens;

pub struct EdgeState {
    pub config: EdgeConfig,
    pub config_path: std::path::PathBuf,
    pub rooms: Rooms,
    pub tokens: EdgeTokens,
    /// Set once Redis has been reached; until then the queue is unavailable.
    pub store: ArcSwapOption<QueueStore>,
    pub metrics: Metrics,
    /// Responses the core marked public.
    pub cache: crate::cache::ResponseCache,
    /// The core's recent answers, for adaptive admission.
    pub core_health: crate::queue::adaptive::CoreHealth,
    pub protection: Protection,
    pub bypass: Bypasses,
    pub limits: Limits,
    /// Bot defences on joining.
    pub defences: crate::defence::Defences,
    pub upstreams: crate::upstreams::Cores,
    /// Admissions without Redis, when configured to fail open.
    pub fail_open: Mutex<Bucket>,
}

impl EdgeState {
    pub fn store(&self) -> Option<Arc<QueueStore>> {
        self.store.load_full()
    }
}

/// A token bucket: `rate` per minute, holding at most one second's worth.
pub struct Bucket {
    rate_per_min: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    pub fn new(rate_per_min: u32) -> Bucket {
        Bucket {
            rate_per_min: rate_per_min as f64,
            tokens: 1.0,
            last: Instant::now(),
        }
    }

    pub fn take(&mut self) -> bool {
        let now = Instant::now();
        let cap = (self.rate_per_min / 60.0).max(1.0);
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate_per_min / 60.0).min(cap);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}
