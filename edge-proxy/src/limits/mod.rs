//! Per-client rate limits on joining, asking for status and protected
//! requests, and per network on joining: a client over its limit gets 429
//! with Retry-After. Each edge counts in memory (governor); joins and
//! protected requests are also counted across every edge through Redis
//! (`tally`), so N edges enforce one limit, and each edge falls back to its
//! own counts when Redis is slow.

pub mod sync;
pub mod tally;

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use governor::clock::DefaultClock;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use crate::config::RateLimits;
use tally::{Measure, Tallies};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Join,
    Status,
    Protected,
}

/// A client network: an IPv4 /24 or an IPv6 /64, as text (`10.1.2`,
/// `2001:db8:0:1`).
pub fn network_of(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}", o[0], o[1], o[2])
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}", s[0], s[1], s[2], s[3])
        }
    }
}

/// One limit: this edge's own counts, and its name among the shared ones.
struct Limit<K: Hash + Eq + Clone> {
    local: RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock>,
    /// `None`: counted on this edge only.
    shared: Option<&'static str>,
    interval_ms: u64,
    burst: u32,
}

impl<K: Hash + Eq + Clone + std::fmt::Display> Limit<K> {
    fn new(per_minute: u32, shared: Option<&'static str>) -> Option<Limit<K>> {
        // A burst of a tenth of the minute's allowance (at least 5): a page
        // load makes a few requests at once.
        let rate = NonZeroU32::new(per_minute)?;
        let burst = NonZeroU32::new((per_minute / 10).max(5)).unwrap_or(NonZeroU32::MIN);
        Some(Limit {
            local: RateLimiter::keyed(Quota::per_minute(rate).allow_burst(burst)),
            shared,
            interval_ms: 60_000u64.div_ceil(u64::from(per_minute)),
            burst: burst.get(),
        })
    }

    /// This edge's counts first (a request over them never reaches the
    /// shared ones); then every edge's, where they are known.
    /// `network`: the client's, which chooses the count's shard.
    fn allow(&self, key: &K, network: &str, tallies: &Tallies) -> bool {
        if self.local.check_key(key).is_err() {
            return false;
        }
        let Some(name) = self.shared else {
            return true;
        };
        let key = tally::key(name, key, network);
        if tallies.rate_allows(&key, self.interval_ms, self.burst) == Some(false) {
            return false;
        }
        tallies.add(
            &key,
            Measure::Rate {
                interval_ms: self.interval_ms,
            },
            1.0,
        );
        true
    }
}

pub struct Limits {
    join: Option<Limit<IpAddr>>,
    network_join: Option<Limit<String>>,
    status: Option<Limit<IpAddr>>,
    protected: Option<Limit<IpAddr>>,
    tallies: Arc<Tallies>,
}

impl Limits {
    pub fn new(config: &RateLimits, tallies: Arc<Tallies>) -> Limits {
        Limits {
            join: Limit::new(config.join_per_minute, Some("join")),
            network_join: Limit::new(config.network_join_per_minute, Some("join-net")),
            status: Limit::new(config.status_per_minute, None),
            protected: Limit::new(config.protected_per_minute, Some("protected")),
            tallies,
        }
    }

    /// Whether a request of this kind from this client may go ahead.
    pub fn allow(&self, kind: Kind, client: Option<IpAddr>) -> bool {
        let Some(ip) = client else {
            return true;
        };
        let t = &self.tallies;
        let net = network_of(ip);
        match kind {
            Kind::Join => {
                self.join.as_ref().is_none_or(|l| l.allow(&ip, &net, t))
                    && self.network_join.as_ref().is_none_or(|l| l.allow(&net, &net, t))
            }
            Kind::Status => self.status.as_ref().is_none_or(|l| l.allow(&ip, &net, t)),
            Kind::Protected => self.protected.as_ref().is_none_or(|l| l.allow(&ip, &net, t)),
        }
    }

    /// The counts shared with other edges.
    pub fn tallies(&self) -> &Arc<Tallies> {
        &self.tallies
    }

    /// Forgets quiet clients now and then, so the tables do not grow forever.
    pub fn tidy(&self) {
        for l in [&self.join, &self.status, &self.protected].into_iter().flatten() {
            l.local.retain_recent();
        }
        if let Some(l) = &self.network_join {
            l.local.retain_recent();
        }
        self.tallies.tidy();
    }
}
