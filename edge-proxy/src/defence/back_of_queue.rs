//! What the `back_of_queue` and `block` actions keep in memory: when a
//! deferred client may join, and the places each address took lately, so
//! a client found out late loses them.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use super::Defences;
use crate::config::RiskAction;
use crate::locks;

/// A client sent to the back: until when it waits, and until when the
/// join it then makes is let through.
#[derive(Debug, Clone, Copy)]
pub(super) struct Deferral {
    until: Instant,
    pub(super) lets_through_until: Instant,
}

/// A place an address took: event, ticket, when.
pub(super) type Place = (i64, u64, Instant);

/// How long a place stays liable to be taken back.
const PLACES_KEPT: Duration = Duration::from_secs(600);

/// Places kept per address at most: a farm on one address loses its
/// latest places.
const PLACES_PER_ADDRESS: usize = 1_000;
/// Deferred addresses kept before the served ones are forgotten early.
const DEFERRALS_KEPT: usize = 100_000;

impl Defences {
    /// A new place went to this address.
    pub fn place_taken(&self, ip: Option<IpAddr>, event: i64, ticket: u64) {
        if !self
            .config
            .rules
            .iter()
            .any(|r| matches!(r.action, RiskAction::BackOfQueue | RiskAction::Block))
        {
            return;
        }
        let ip = ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let mut places = locks::lock(&self.places);
        let list = places.entry(ip).or_default();
        if list.len() >= PLACES_PER_ADDRESS {
            list.remove(0);
        }
        list.push((event, ticket, Instant::now()));
    }

    pub(super) fn take_back(&self, ip: IpAddr) -> Vec<(i64, u64)> {
        let list = locks::lock(&self.places).remove(&ip);
        list.unwrap_or_default().into_iter().map(|(e, t, _)| (e, t)).collect()
    }

    /// How long the client must still wait, or None if its deferral is
    /// served and this join goes through.
    pub(super) fn deferral(&self, ip: IpAddr, delay_secs: u64, now: Instant) -> Option<Duration> {
        let mut deferred = locks::lock(&self.deferred);
        if deferred.len() > DEFERRALS_KEPT {
            deferred.retain(|_, d| d.lets_through_until > now);
        }
        match deferred.get(&ip) {
            Some(d) if now < d.until => Some(d.until - now),
            Some(d) if now < d.lets_through_until => None,
            _ => {
                let delay = Duration::from_secs(delay_secs);
                deferred.insert(
                    ip,
                    Deferral {
                        until: now + delay,
                        lets_through_until: now + delay * 2,
                    },
                );
                Some(delay)
            }
        }
    }

    /// Forgets served deferrals, places past taking back, and the risk
    /// scores' old counts.
    pub fn tidy(&self) {
        let now = Instant::now();
        self.risk.tidy(now);
        locks::lock(&self.deferred).retain(|_, d| d.lets_through_until > now);
        let mut places = locks::lock(&self.places);
        places.retain(|_, list| {
            list.retain(|(_, _, at)| now.saturating_duration_since(*at) < PLACES_KEPT);
            !list.is_empty()
        });
    }
}
