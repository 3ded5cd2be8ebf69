//! Which requests the waiting room guards (`[protection]`), which skip it
//! (`[[bypass]]`), and the per-address limits (`[rate_limits]`).

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Which paths need an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtectionConfig {
    /// Paths of one event; `{event}` stands for its id. A protected event's
    /// paths need that event's access token.
    pub event_paths: Vec<String>,
    /// Path prefixes that need an access token for some protected event
    /// (holds by id carry no event in the path; the core checks they belong
    /// to the fan).
    pub session_prefixes: Vec<String>,
    /// Path prefixes where an access token is forwarded if the fan has one,
    /// never required: checkout, whose confirmed answer ends the fan's
    /// session (an order needs a hold, and the hold needed admission), and
    /// which a fan must still reach afterwards to read the order.
    #[serde(default = "default_optional_prefixes")]
    pub optional_prefixes: Vec<String>,
    /// Where an admitted fan goes next (`{event}` stands for its id): the
    /// waiting page follows it, and API clients find it in the answer.
    #[serde(default = "default_after_admission")]
    pub after_admission: String,
}

fn default_after_admission() -> String {
    "/v1/events/{event}".into()
}

fn default_optional_prefixes() -> Vec<String> {
    vec!["/v1/orders".into()]
}

impl Default for ProtectionConfig {
    fn default() -> Self {
        ProtectionConfig {
            event_paths: vec![
                "/v1/events/{event}/holds".into(),
                "/v1/events/{event}/seat-changes".into(),
            ],
            session_prefixes: vec!["/v1/holds/".into()],
            optional_prefixes: default_optional_prefixes(),
            after_admission: default_after_admission(),
        }
    }
}

/// Per client address, per minute; 0 turns a limit off. Generous by
/// default: many fans can share one address behind carrier-grade NAT.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimits {
    pub join_per_minute: u32,
    pub status_per_minute: u32,
    pub protected_per_minute: u32,
    /// Joins per minute from one network (an IPv4 /24 or IPv6 /64), all its
    /// addresses together: a bot farm on many addresses of one network.
    #[serde(default = "default_network_join")]
    pub network_join_per_minute: u32,
    /// Counting joins and protected requests across every edge.
    #[serde(default)]
    pub shared: SharedCounts,
}

fn default_network_join() -> u32 {
    6_000
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            join_per_minute: 600,
            status_per_minute: 3_000,
            protected_per_minute: 3_000,
            network_join_per_minute: default_network_join(),
            shared: SharedCounts::default(),
        }
    }
}

/// Counts shared by every edge through Redis (`[rate_limits.shared]`): the
/// join, network-join and protected limits and the bot defences' risk
/// state, so that N edges enforce one limit. Status polls stay counted per
/// edge: sharing them would cost Redis a call per waiting fan, and a poll
/// is answered from the edge's memory.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SharedCounts {
    pub enabled: bool,
    /// Edges with the same scope count together (one deployment, one
    /// scope; tests give each run its own).
    pub scope: String,
    /// How often each edge sends its counts and reads the sums.
    pub sync_ms: u64,
    /// A sum older than this (Redis slow or away) is not believed: each
    /// edge then decides by its own counts.
    pub stale_ms: u64,
}

impl Default for SharedCounts {
    fn default() -> Self {
        SharedCounts {
            enabled: true,
            scope: "usher".into(),
            sync_ms: 250,
            stale_ms: 2_000,
        }
    }
}

/// Traffic that skips the waiting room (and is not counted): health checks,
/// staff, partners.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BypassRule {
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// A header and the exact value it must have.
    #[serde(default)]
    pub header: Option<(String, String)>,
    /// A client network, e.g. `10.0.0.0/8`.
    #[serde(default)]
    pub network: Option<Network>,
}

/// An IPv4 or IPv6 network in CIDR form, e.g. `10.0.0.0/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    bits: u8,
}

impl Network {
    pub fn parse(text: &str) -> Option<Network> {
        let (addr, bits) = text.split_once('/')?;
        let addr: IpAddr = addr.parse().ok()?;
        let bits: u8 = bits.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (bits <= max).then_some(Network { addr, bits })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = if self.bits == 0 {
                    0
                } else {
                    u32::MAX << (32 - self.bits)
                };
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = if self.bits == 0 {
                    0
                } else {
                    u128::MAX << (128 - self.bits)
                };
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.bits)
    }
}

impl Serialize for Network {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Network {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Network, D::Error> {
        let text = String::deserialize(d)?;
        Network::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("{text:?} is not a network like 10.0.0.0/8")))
    }
}
