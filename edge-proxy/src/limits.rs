//! Per-client rate limits (by address) on joining, asking for status and
//! protected requests: a client over its limit gets 429 with Retry-After.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::DefaultClock;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use crate::config::RateLimits;

type Keyed = RateLimiter<IpAddr, DefaultKeyedStateStore<IpAddr>, DefaultClock>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Join,
    Status,
    Protected,
}

pub struct Limits {
    join: Option<Keyed>,
    status: Option<Keyed>,
    protected: Option<Keyed>,
}

fn limiter(per_minute: u32) -> Option<Keyed> {
    // A burst of a tenth of the minute's allowance (at least 5): a page
    // load makes a few requests at once.
    let rate = NonZeroU32::new(per_minute)?;
    let burst = NonZeroU32::new((per_minute / 10).max(5)).unwrap_or(NonZeroU32::MIN);
    Some(RateLimiter::keyed(Quota::per_minute(rate).allow_burst(burst)))
}

impl Limits {
    pub fn new(config: &RateLimits) -> Limits {
        Limits {
            join: limiter(config.join_per_minute),
            status: limiter(config.status_per_minute),
            protected: limiter(config.protected_per_minute),
        }
    }

    /// Whether a request of this kind from this client may go ahead.
    pub fn allow(&self, kind: Kind, client: Option<IpAddr>) -> bool {
        let limiter = match kind {
            Kind::Join => &self.join,
            Kind::Status => &self.status,
            Kind::Protected => &self.protected,
        };
        match (limiter, client) {
            (Some(l), Some(ip)) => l.check_key(&ip).is_ok(),
            _ => true,
        }
    }

    /// Forgets quiet clients now and then, so the tables do not grow forever.
    pub fn tidy(&self) {
        for l in [&self.join, &self.status, &self.protected].into_iter().flatten() {
            l.retain_recent();
        }
    }
}
