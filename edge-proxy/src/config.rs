//! The edge's configuration: a TOML file (`config/edge-proxy.toml` unless
//! told otherwise) with `USHER_EDGE__<SECTION>__<KEY>` environment
//! overrides, validated at start with every problem listed. The per-event
//! waiting-room settings in it are re-read while running; the rest needs a
//! restart.

mod defence;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::{Deserialize, Serialize};

pub use defence::{
    CaptchaConfig, DefenceConfig, FanIdentityConfig, PowConfig, PublicKeyFile, RiskAction, RiskConfig, RiskRule,
};
// The `[[events]]` entries: the same settings the admin API takes.
pub use usher_shared::admin::{Adaptive, QueueMode, RoomSettings};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeConfig {
    pub listen: ListenConfig,
    pub upstream: UpstreamConfig,
    pub redis: RedisConfig,
    pub tokens: TokensConfig,
    pub admin: AdminConfig,
    #[serde(default)]
    pub protection: ProtectionConfig,
    #[serde(default)]
    pub bypass: Vec<BypassRule>,
    #[serde(default)]
    pub rate_limits: RateLimits,
    #[serde(default)]
    pub events: Vec<RoomSettings>,
    #[serde(default)]
    pub cache: CacheConfig,
    #[serde(default)]
    pub defence: DefenceConfig,
    #[serde(default)]
    pub log: LogConfig,
}

/// The shared cache for responses the core marks public; 0 turns it off.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    pub max_mb: usize,
    pub max_entry_kb: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            max_mb: 64,
            max_entry_kb: 4_096,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenConfig {
    /// Plain-text HTTP/1.1 (and h2c) listeners.
    pub http: Vec<SocketAddr>,
    /// An HTTPS listener (HTTP/1.1 and HTTP/2), if any.
    #[serde(default)]
    pub tls: Option<TlsListener>,
    /// Worker threads for the proxy.
    #[serde(default = "default_threads")]
    pub threads: usize,
    /// How long a graceful shutdown waits for requests in flight.
    #[serde(default = "default_grace")]
    pub grace_period_secs: u64,
    /// Each client connection's read buffer; it stays allocated while a
    /// waiting fan's stream is open, so it sets most of a fan's cost.
    #[serde(default = "default_read_buffer")]
    pub read_buffer_bytes: usize,
    /// A dedicated listener for waiting fans' position streams, much lighter
    /// per fan than the proxy; join answers point fans at `stream_url`.
    #[serde(default)]
    pub streams: Option<SocketAddr>,
    /// The streams' public base URL (default `http://<streams>`).
    #[serde(default)]
    pub stream_url: Option<String>,
    /// Page origins allowed to open streams there (CORS with credentials).
    #[serde(default)]
    pub stream_origins: Vec<String>,
}

fn default_read_buffer() -> usize {
    4096
}

fn default_threads() -> usize {
    2
}

fn default_grace() -> u64 {
    5
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsListener {
    pub addr: SocketAddr,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// booking-core instances as `host:port` (a name or an IP); requests are
    /// spread over the ready ones (`upstreams.rs`).
    pub addrs: Vec<String>,
    /// How often each core's readiness path is asked.
    #[serde(default = "default_health_interval")]
    pub health_check_interval_ms: u64,
    /// A check not answered 200 within this is a failed one.
    #[serde(default = "default_health_timeout")]
    pub health_check_timeout_ms: u64,
    /// booking-core answers 200 here only while it reaches a writable
    /// database leader.
    #[serde(default = "default_health_path")]
    pub health_check_path: String,
    /// How often the names in `addrs` are looked up again.
    #[serde(default = "default_discovery_interval")]
    pub discovery_interval_ms: u64,
    /// Connecting to a core; a refused or timed-out connect is tried once
    /// more on another core (nothing was sent yet).
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_ms: u64,
    /// The longest wait for a core's next bytes. Above the core's own request
    /// deadline (10 s) and its streams' heartbeat (15 s), so it only ends
    /// requests to a core that has stopped answering altogether.
    #[serde(default = "default_read_timeout")]
    pub read_timeout_ms: u64,
}

fn default_health_interval() -> u64 {
    1000
}
fn default_health_timeout() -> u64 {
    1000
}
fn default_health_path() -> String {
    "/readyz".into()
}
fn default_discovery_interval() -> u64 {
    5000
}
fn default_connect_timeout() -> u64 {
    1000
}
fn default_read_timeout() -> u64 {
    30_000
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RedisFailure {
    /// Fans stay on the waiting page, which keeps retrying.
    Closed,
    /// Fans are admitted without the queue, at a fixed rate per instance.
    Open,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    pub url: String,
    #[serde(default = "default_failure")]
    pub on_failure: RedisFailure,
    /// With `on_failure = "open"`: admissions per minute per instance.
    #[serde(default = "default_fail_open_rate")]
    pub fail_open_per_minute: u32,
    /// A Redis Cluster's seed nodes (`redis://host:port`); if given, `url`
    /// is not used.
    #[serde(default)]
    pub cluster_nodes: Vec<String>,
}

fn default_failure() -> RedisFailure {
    RedisFailure::Closed
}

fn default_fail_open_rate() -> u32 {
    60
}

impl std::fmt::Debug for RedisConfig {
    // The URL may carry a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("on_failure", &self.on_failure)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokensConfig {
    /// The `iss` of queue and access tokens; booking-core expects it.
    pub issuer: String,
    /// The key id and private key that sign them.
    pub kid: String,
    pub private_key_file: PathBuf,
    /// How long a queue token stays good (the queue may be long).
    #[serde(default = "default_queue_ttl")]
    pub queue_token_ttl_secs: u64,
    /// Mark cookies Secure (on anything but local development).
    #[serde(default)]
    pub secure_cookies: bool,
}

fn default_queue_ttl() -> u64 {
    6 * 3600
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    /// The bearer token operators send to the admin API.
    pub token: String,
}

impl std::fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminConfig")
            .field("listen", &self.listen)
            .finish_non_exhaustive()
    }
}

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
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            join_per_minute: 600,
            status_per_minute: 3_000,
            protected_per_minute: 3_000,
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
    pub network: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { filter: "info".into() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    #[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
    Invalid(Vec<String>),
}

impl EdgeConfig {
    pub fn load(file: &Path) -> Result<EdgeConfig, ConfigError> {
        let mut figment = Figment::new()
            .merge(Toml::file(file))
            .merge(Env::prefixed("USHER_EDGE__").split("__").lowercase(true));
        if let Ok(url) = std::env::var("REDIS_URL") {
            figment = figment.merge(figment::providers::Serialized::default("redis.url", url));
        }
        let config: EdgeConfig = figment.extract().map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if self.listen.http.is_empty() && self.listen.tls.is_none() {
            problems.push("listen: give at least one http address or a tls listener".into());
        }
        if let Some(url) = &self.listen.stream_url
            && !url.starts_with("http://")
            && !url.starts_with("https://")
        {
            problems.push("listen.stream_url must be an http:// or https:// URL".into());
        }
        if self.listen.stream_url.is_some() && self.listen.streams.is_none() {
            problems.push("listen.stream_url needs listen.streams (the listener it names)".into());
        }
        if !(1024..=1_048_576).contains(&self.listen.read_buffer_bytes) {
            problems.push("listen.read_buffer_bytes must be 1024..=1048576".into());
        }
        if !(1..=64).contains(&self.listen.threads) {
            problems.push("listen.threads must be 1..=64".into());
        }
        if self.upstream.addrs.is_empty() {
            problems.push("upstream.addrs must name at least one booking-core".into());
        }
        for addr in &self.upstream.addrs {
            if !crate::upstreams::valid_name(addr) {
                problems.push(format!("upstream.addrs: {addr:?} is not host:port"));
            }
        }
        let u = &self.upstream;
        for (name, ms) in [
            ("health_check_interval_ms", u.health_check_interval_ms),
            ("health_check_timeout_ms", u.health_check_timeout_ms),
            ("discovery_interval_ms", u.discovery_interval_ms),
            ("connect_timeout_ms", u.connect_timeout_ms),
        ] {
            if !(50..=60_000).contains(&ms) {
                problems.push(format!("upstream.{name} must be 50..=60000"));
            }
        }
        if !(1_000..=600_000).contains(&u.read_timeout_ms) {
            problems.push("upstream.read_timeout_ms must be 1000..=600000".into());
        }
        if !u.health_check_path.starts_with('/') || u.health_check_path.bytes().any(|b| b <= b' ' || b >= 0x7f) {
            problems.push("upstream.health_check_path must be a path starting with /".into());
        }
        let redis_url = |u: &str| u.starts_with("redis://") || u.starts_with("rediss://");
        if !redis_url(&self.redis.url) {
            problems.push("redis.url must be a redis:// URL".into());
        }
        if self.redis.cluster_nodes.iter().any(|u| !redis_url(u)) {
            problems.push("redis.cluster_nodes must be redis:// URLs".into());
        }
        if self.tokens.issuer.trim().is_empty() {
            problems.push("tokens.issuer must not be empty".into());
        }
        if self.admin.token.len() < 16 {
            problems.push("admin.token must be at least 16 characters".into());
        }
        for p in &self.protection.event_paths {
            if !p.contains("{event}") || !p.starts_with('/') {
                problems.push(format!(
                    "protection.event_paths: {p:?} must start with / and contain {{event}}"
                ));
            }
        }
        for rule in &self.bypass {
            let set = [
                rule.path_prefix.is_some(),
                rule.header.is_some(),
                rule.network.is_some(),
            ];
            if set.iter().filter(|s| **s).count() != 1 {
                problems.push("bypass: each rule takes exactly one of path_prefix, header, network".into());
            }
            if let Some(n) = &rule.network
                && crate::rules::Network::parse(n).is_none()
            {
                problems.push(format!("bypass: {n:?} is not a network like 10.0.0.0/8"));
            }
        }
        problems.extend(self.defence.problems());
        let mut seen = std::collections::HashSet::new();
        for room in &self.events {
            problems.extend(room.problems());
            if !seen.insert(room.event_id) {
                problems.push(format!("events: event {} is configured twice", room.event_id));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }
}
