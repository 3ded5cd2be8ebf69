//! The edge's configuration: a TOML file (`config/edge-proxy.toml` unless
//! told otherwise) with `USHER_EDGE__<SECTION>__<KEY>` environment
//! overrides, validated at start with every problem listed. The per-event
//! waiting-room settings in it are re-read while running; the rest needs a
//! restart.

mod defence;
mod listen;
mod protection;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
pub use usher_shared::config::ConfigError;
use usher_shared::config::{RedisUrl, Secret, check_distinct_kids, check_range, read, verdict};

pub use defence::{
    CaptchaConfig, DefenceConfig, FanIdentityConfig, PowConfig, PublicKeyFile, RiskAction, RiskConfig, RiskRule,
};
pub use listen::{CoreAddr, ListenConfig, TlsListener, UpstreamConfig};
pub use protection::{BypassRule, Network, ProtectionConfig, RateLimits, SharedCounts};
// The `[[events]]` entries: the same settings the admin API takes.
pub use usher_shared::admin::{Adaptive, QueueMode, RoomSettings};
pub use usher_shared::telemetry::{LogFormat, TraceConfig};

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
    /// Spans exported over OTLP (off unless `trace.otlp_endpoint` is set).
    #[serde(default)]
    pub trace: TraceConfig,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RedisFailure {
    /// Fans stay on the waiting page, which keeps retrying.
    Closed,
    /// Fans are admitted without the queue, at a fixed rate per instance.
    Open,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    pub url: RedisUrl,
    #[serde(default = "default_failure")]
    pub on_failure: RedisFailure,
    /// With `on_failure = "open"`: admissions per minute per instance.
    #[serde(default = "default_fail_open_rate")]
    pub fail_open_per_minute: u32,
    /// A Redis Cluster's seed nodes (`redis://host:port`); if given, `url`
    /// is not used.
    #[serde(default)]
    pub cluster_nodes: Vec<RedisUrl>,
}

fn default_failure() -> RedisFailure {
    RedisFailure::Closed
}

fn default_fail_open_rate() -> u32 {
    60
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
    /// Keys that signed tokens before the current one, still accepted
    /// (never used to sign) while a rotation runs: fans queued or admitted
    /// under the old key keep their places and sessions. Remove a key once
    /// the tokens it signed have expired (`docs/KEY_ROTATION.md`).
    #[serde(default)]
    pub previous_keys: Vec<PublicKeyFile>,
}

fn default_queue_ttl() -> u64 {
    6 * 3600
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    /// The bearer token operators send to the admin API.
    pub token: Secret,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `text` (the default) or `json`, as booking-core's.
    #[serde(default)]
    pub format: LogFormat,
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            filter: "info".into(),
        }
    }
}

impl EdgeConfig {
    pub fn load(file: &Path) -> Result<EdgeConfig, ConfigError> {
        // No defaults: every section without a `#[serde(default)]` must be
        // in the file.
        let config: EdgeConfig = read(None, file, "USHER_EDGE__", &[("REDIS_URL", "redis.url")])?;
        config.validate()?;
        Ok(config)
    }

    /// Ranges, and settings that only make sense together (the typed
    /// values were checked as the file was read): every problem at once.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let p = &mut problems;
        self.trace.check(p, "trace");
        let listen = &self.listen;
        if listen.http.is_empty() && listen.tls.is_none() {
            p.push("listen: give at least one http address or a tls listener".into());
        }
        if listen.stream_url.is_some() && listen.streams.is_none() {
            p.push("listen.stream_url needs listen.streams (the listener it names)".into());
        }
        if listen.streams_tls && (listen.streams.is_none() || listen.tls.is_none()) {
            p.push("listen.streams_tls needs listen.streams and listen.tls (whose certificate it uses)".into());
        }
        check_range(
            p,
            "listen.read_buffer_bytes",
            listen.read_buffer_bytes,
            1024..=1_048_576,
        );
        check_range(p, "listen.threads", listen.threads, 1..=64);
        let u = &self.upstream;
        if u.addrs.is_empty() {
            p.push("upstream.addrs must name at least one booking-core".into());
        }
        for (name, ms) in [
            ("health_check_interval_ms", u.health_check_interval_ms),
            ("health_check_timeout_ms", u.health_check_timeout_ms),
            ("discovery_interval_ms", u.discovery_interval_ms),
            ("connect_timeout_ms", u.connect_timeout_ms),
        ] {
            check_range(p, &format!("upstream.{name}"), ms, 50..=60_000);
        }
        check_range(p, "upstream.read_timeout_ms", u.read_timeout_ms, 1_000..=600_000);
        if !u.health_check_path.starts_with('/') || u.health_check_path.bytes().any(|b| b <= b' ' || b >= 0x7f) {
            p.push("upstream.health_check_path must be a path starting with /".into());
        }
        if self.tokens.issuer.trim().is_empty() {
            p.push("tokens.issuer must not be empty".into());
        }
        let previous = self.tokens.previous_keys.iter().map(|k| k.kid.as_str());
        check_distinct_kids(p, "tokens.previous_keys", &self.tokens.kid, previous);
        if self.admin.token.len() < 16 {
            p.push("admin.token must be at least 16 characters".into());
        }
        for path in &self.protection.event_paths {
            if !path.contains("{event}") || !path.starts_with('/') {
                p.push(format!(
                    "protection.event_paths: {path:?} must start with / and contain {{event}}"
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
                p.push("bypass: each rule takes exactly one of path_prefix, header, network".into());
            }
        }
        let shared = &self.rate_limits.shared;
        if shared.scope.is_empty()
            || shared.scope.len() > 64
            || !shared
                .scope
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            p.push("rate_limits.shared.scope must be 1 to 64 letters, digits, - or _".into());
        }
        check_range(p, "rate_limits.shared.sync_ms", shared.sync_ms, 20..=10_000);
        check_range(p, "rate_limits.shared.stale_ms", shared.stale_ms, 100..=60_000);
        if shared.stale_ms <= shared.sync_ms {
            p.push("rate_limits.shared.stale_ms must be longer than sync_ms".into());
        }
        p.extend(self.defence.problems());
        let mut seen = std::collections::HashSet::new();
        for room in &self.events {
            p.extend(room.problems());
            if !seen.insert(room.event_id) {
                p.push(format!("events: event {} is configured twice", room.event_id));
            }
        }
        verdict(problems)
    }
}
