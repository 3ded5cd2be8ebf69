//! The edge's configuration: a TOML file (`config/edge-proxy.toml` unless
//! told otherwise) with `USHER_EDGE__<SECTION>__<KEY>` environment
//! overrides, validated at start with every problem listed. The per-event
//! waiting-room settings in it are re-read while running; the rest needs a
//! restart.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::{Deserialize, Serialize};

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

/// Defences against bots on joining a waiting room (`defence/`). Each part
/// is off unless configured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefenceConfig {
    /// A proof-of-work puzzle on every new join.
    #[serde(default)]
    pub pow: Option<PowConfig>,
    /// How the risk score is made from what the edge sees.
    #[serde(default)]
    pub risk: RiskConfig,
    /// What a score leads to: the rule with the highest `min_score` at or
    /// below the client's score applies; below all of them, allow.
    #[serde(default)]
    pub rules: Vec<RiskRule>,
    /// A CAPTCHA provider, for rules whose action is `captcha`.
    #[serde(default)]
    pub captcha: Option<CaptchaConfig>,
    /// The fan identity issuer, so that a signed-in fan keeps one place.
    #[serde(default)]
    pub fans: Option<FanIdentityConfig>,
}

impl DefenceConfig {
    /// Whether anything here is switched on.
    pub fn any(&self) -> bool {
        self.pow.is_some() || !self.rules.is_empty() || self.fans.is_some()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowConfig {
    /// Leading zero bits of SHA-256 an ordinary client must find (each bit
    /// doubles the expected work: 16 is ~65,000 hashes).
    pub base_bits: u8,
    /// The operator's bounds on any difficulty the edge sets.
    pub min_bits: u8,
    pub max_bits: u8,
    /// Joins per minute from one client network (IPv4 /24, IPv6 /64) above
    /// which every doubling of the rate adds a bit.
    #[serde(default = "default_network_joins")]
    pub network_joins_per_minute: u32,
    /// How long a challenge may be solved and spent.
    #[serde(default = "default_challenge_ttl")]
    pub ttl_secs: u64,
}

fn default_network_joins() -> u32 {
    60
}

fn default_challenge_ttl() -> u64 {
    120
}

/// The score's parts, in points. Velocity and token counts are over the
/// last minute; replays and failed challenges decay by half every
/// `half_life_secs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RiskConfig {
    /// Joins (and challenge requests) per minute from one address before
    /// velocity counts, and points per join beyond.
    pub ip_joins_per_minute: u32,
    pub ip_points_per_join: f64,
    /// The same for the client's network, where many fans may share.
    pub network_joins_per_minute: u32,
    pub network_points_per_join: f64,
    /// The most velocity can add.
    pub velocity_cap: f64,
    /// Queue tokens one client binding may take per minute before each
    /// further one adds `points_per_token`.
    pub tokens_per_binding: u32,
    pub points_per_token: f64,
    /// A user agent that names an automation tool or a headless browser,
    /// or none at all; no Accept-Language.
    pub headless_points: f64,
    pub no_language_points: f64,
    /// A token presented by a client it was not issued to, or a spent
    /// challenge presented again.
    pub replay_points: f64,
    /// A forged, expired or wrong puzzle solution, or a failed CAPTCHA.
    pub failed_challenge_points: f64,
    pub half_life_secs: u64,
}

impl Default for RiskConfig {
    fn default() -> Self {
        RiskConfig {
            ip_joins_per_minute: 20,
            ip_points_per_join: 2.0,
            network_joins_per_minute: 120,
            network_points_per_join: 0.25,
            velocity_cap: 60.0,
            tokens_per_binding: 3,
            points_per_token: 10.0,
            headless_points: 15.0,
            no_language_points: 5.0,
            replay_points: 25.0,
            failed_challenge_points: 10.0,
            half_life_secs: 600,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskAction {
    Allow,
    /// A harder puzzle: `extra_bits` more.
    Harder,
    /// A CAPTCHA before the join (needs `[defence.captcha]`).
    Captcha,
    /// The join is taken only after `delay_secs`: behind everyone who
    /// joins meanwhile.
    BackOfQueue,
    /// 403 with the rule's name as the reason.
    Block,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskRule {
    pub name: String,
    pub min_score: f64,
    pub action: RiskAction,
    #[serde(default)]
    pub extra_bits: u8,
    #[serde(default)]
    pub delay_secs: u64,
}

/// A CAPTCHA provider's server-side verify call, as hCaptcha, Turnstile and
/// reCAPTCHA shape it: a form POST of `secret`, `response` and `remoteip`
/// answered with `{"success": bool}`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptchaConfig {
    pub verify_url: String,
    pub site_key: String,
    pub secret: String,
    /// Where the waiting page gets its widget (the provider's script or,
    /// for the local test provider, its token endpoint).
    pub widget_url: String,
}

impl std::fmt::Debug for CaptchaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptchaConfig")
            .field("verify_url", &self.verify_url)
            .field("site_key", &self.site_key)
            .finish_non_exhaustive()
    }
}

/// The issuer of fan identity tokens (the same one booking-core trusts).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FanIdentityConfig {
    pub issuer: String,
    pub audience: String,
    pub public_keys: Vec<PublicKeyFile>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicKeyFile {
    pub kid: String,
    pub pem_file: PathBuf,
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
    /// booking-core instances; requests are spread over the healthy ones.
    pub addrs: Vec<SocketAddr>,
    #[serde(default = "default_health_interval")]
    pub health_check_interval_ms: u64,
}

fn default_health_interval() -> u64 {
    1000
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueMode {
    /// First come, first served.
    Fifo,
    /// Everyone who joins is admitted at once (demand under capacity).
    Passthrough,
    /// Nobody is admitted; joins still take a place.
    Paused,
    /// Pre-queue lottery: everyone who joins before `on_sale_at` gets a
    /// random place (drawn verifiably at on-sale), later fans queue FIFO
    /// behind them.
    Lottery,
    /// No joins, no admissions: sold out or over, with a message.
    Closed,
}

/// One event's waiting room, as operators set it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomSettings {
    pub event_id: i64,
    /// New fans admitted per minute.
    pub admit_per_minute: u32,
    /// Most fans admitted and not yet done at once.
    pub max_active: u32,
    /// How long an admitted fan may stay silent before the slot is freed
    /// (and how long an access token lasts).
    pub session_secs: u64,
    pub mode: QueueMode,
    /// When the sale opens: nobody is admitted before it (except in
    /// passthrough), and a lottery draws its places at this time.
    #[serde(default)]
    pub on_sale_at: Option<DateTime<Utc>>,
    /// Shown on the waiting page, e.g. why the room is closed.
    #[serde(default)]
    pub message: String,
    /// A waiting fan not heard from for this long loses the place.
    #[serde(default = "default_grace_secs")]
    pub grace_secs: u64,
    /// If set, the edge moves the admission rate within these bounds from
    /// the core's health; `admit_per_minute` is then only the start.
    #[serde(default)]
    pub adaptive: Option<Adaptive>,
}

/// Adaptive admission: the operator's bounds and the core's health targets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Adaptive {
    pub min_per_minute: u32,
    pub max_per_minute: u32,
    /// The core's p99 latency the edge steers towards, as seen from the edge.
    pub target_p99_ms: u32,
    /// Share of the core's answers that may be 5xx or failures (0..1).
    #[serde(default = "default_max_error_rate")]
    pub max_error_rate: f64,
    /// How often the rate is reconsidered.
    #[serde(default = "default_adaptive_window")]
    pub window_secs: u64,
}

fn default_max_error_rate() -> f64 {
    0.01
}

fn default_adaptive_window() -> u64 {
    5
}

fn default_grace_secs() -> u64 {
    60
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

impl RoomSettings {
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let e = self.event_id;
        if e <= 0 {
            out.push(format!("events: event_id must be positive, got {e}"));
        }
        if !(1..=1_000_000).contains(&self.admit_per_minute) {
            out.push(format!("events[{e}].admit_per_minute must be 1..=1000000"));
        }
        if !(1..=10_000_000).contains(&self.max_active) {
            out.push(format!("events[{e}].max_active must be 1..=10000000"));
        }
        if !(10..=86_400).contains(&self.session_secs) {
            out.push(format!("events[{e}].session_secs must be 10..=86400"));
        }
        if !(5..=3_600).contains(&self.grace_secs) {
            out.push(format!("events[{e}].grace_secs must be 5..=3600"));
        }
        if self.message.len() > 500 {
            out.push(format!("events[{e}].message must be at most 500 bytes"));
        }
        if self.mode == QueueMode::Lottery && self.on_sale_at.is_none() {
            out.push(format!(
                "events[{e}]: mode lottery needs on_sale_at (when places are drawn)"
            ));
        }
        if let Some(a) = &self.adaptive {
            if a.min_per_minute < 1 || a.min_per_minute > a.max_per_minute || a.max_per_minute > 1_000_000 {
                out.push(format!(
                    "events[{e}].adaptive: need 1 <= min_per_minute <= max_per_minute <= 1000000"
                ));
            }
            if !(1..=60_000).contains(&a.target_p99_ms) {
                out.push(format!("events[{e}].adaptive.target_p99_ms must be 1..=60000"));
            }
            if !(0.0..=1.0).contains(&a.max_error_rate) {
                out.push(format!("events[{e}].adaptive.max_error_rate must be between 0 and 1"));
            }
            if !(1..=300).contains(&a.window_secs) {
                out.push(format!("events[{e}].adaptive.window_secs must be 1..=300"));
            }
        }
        out
    }
}

impl DefenceConfig {
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(p) = &self.pow {
            if !(p.min_bits <= p.base_bits && p.base_bits <= p.max_bits && p.max_bits <= 32) {
                out.push("defence.pow: need min_bits <= base_bits <= max_bits <= 32".into());
            }
            if p.network_joins_per_minute == 0 {
                out.push("defence.pow.network_joins_per_minute must be positive".into());
            }
            if !(10..=3_600).contains(&p.ttl_secs) {
                out.push("defence.pow.ttl_secs must be 10..=3600".into());
            }
        }
        let r = &self.risk;
        let points = [
            r.ip_points_per_join,
            r.network_points_per_join,
            r.velocity_cap,
            r.points_per_token,
            r.headless_points,
            r.no_language_points,
            r.replay_points,
            r.failed_challenge_points,
        ];
        if points.iter().any(|p| !p.is_finite() || *p < 0.0) {
            out.push("defence.risk: points must be finite and not negative".into());
        }
        if r.half_life_secs == 0 {
            out.push("defence.risk.half_life_secs must be positive".into());
        }
        let mut names = std::collections::HashSet::new();
        for rule in &self.rules {
            let n = &rule.name;
            if n.is_empty() || n.len() > 64 || !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                out.push(format!("defence.rules: name {n:?} must be 1..=64 of [A-Za-z0-9_-]"));
            }
            if !names.insert(n.clone()) {
                out.push(format!("defence.rules: {n:?} is named twice"));
            }
            if !rule.min_score.is_finite() || rule.min_score <= 0.0 {
                out.push(format!("defence.rules[{n}].min_score must be positive"));
            }
            match rule.action {
                RiskAction::Harder if rule.extra_bits == 0 => {
                    out.push(format!("defence.rules[{n}]: action harder needs extra_bits"))
                }
                RiskAction::Harder if self.pow.is_none() => {
                    out.push(format!("defence.rules[{n}]: action harder needs [defence.pow]"))
                }
                RiskAction::BackOfQueue if !(1..=86_400).contains(&rule.delay_secs) => out.push(format!(
                    "defence.rules[{n}]: action back_of_queue needs delay_secs 1..=86400"
                )),
                RiskAction::Captcha if self.captcha.is_none() => {
                    out.push(format!("defence.rules[{n}]: action captcha needs [defence.captcha]"))
                }
                _ => {}
            }
        }
        if let Some(c) = &self.captcha {
            for (key, url) in [("verify_url", &c.verify_url), ("widget_url", &c.widget_url)] {
                if !url.starts_with("http://") && !url.starts_with("https://") {
                    out.push(format!("defence.captcha.{key} must be an http(s) URL"));
                }
            }
            if c.secret.is_empty() || c.site_key.is_empty() {
                out.push("defence.captcha: site_key and secret must not be empty".into());
            }
        }
        if let Some(f) = &self.fans
            && (f.issuer.is_empty() || f.public_keys.is_empty())
        {
            out.push("defence.fans: need an issuer and at least one public key".into());
        }
        out
    }
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
