//! Typed configuration, loaded once at start: built-in defaults, then a TOML
//! file (`config/booking-core.toml` unless told otherwise), then environment
//! variables `USHER_CORE__<SECTION>__<KEY>` (and `DATABASE_URL`). Validated
//! before anything listens, with every problem listed at once.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Dev,
    Prod,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub environment: Environment,
    pub http: HttpConfig,
    pub database: DatabaseConfig,
    pub identity: IdentityConfig,
    pub admission: AdmissionConfig,
    pub holds: HoldsConfig,
    pub reaper: ReaperConfig,
    pub feed: FeedConfig,
    pub payments: PaymentsConfig,
    pub checkout: CheckoutConfig,
    pub tickets: TicketsConfig,
    pub notifications: NotificationsConfig,
    #[serde(default)]
    pub pricing: PricingConfig,
    /// The edge's admin API, for the portal's waiting-room settings and
    /// dashboard figures. Optional: without it those answer 503 / null.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edge: Option<EdgeConfig>,
    pub log: LogConfig,
}

/// Where the edge-proxy's admin API listens and the token it wants.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeConfig {
    /// e.g. `http://127.0.0.1:8001` (edge-proxy.toml's `admin.listen`).
    pub admin_url: String,
    /// Secret: edge-proxy.toml's `admin.token`; in production from
    /// USHER_CORE__EDGE__ADMIN_TOKEN.
    pub admin_token: String,
    /// One call to the admin API may take this long.
    #[serde(default = "default_edge_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_edge_timeout_ms() -> u64 {
    2_000
}

impl std::fmt::Debug for EdgeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeConfig")
            .field("admin_url", &self.admin_url)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// Ordinary requests are cut off after this long (streams are exempt).
    pub request_timeout_ms: u64,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// The leader (writes, and every read that decides a sale). Behind a
    /// failover it names whatever routes to the current leader (HAProxy on
    /// Patroni's leader check, or several hosts with
    /// `target_session_attrs=read-write`); a connection that lands on a
    /// replica is refused and tried again (`db.rs`).
    pub url: String,
    /// Replicas, for reads that may be a moment stale: catalog search, event
    /// pages and prices. Absent, those read from the leader too.
    #[serde(default)]
    pub read_url: Option<String>,
    pub max_connections: u32,
    pub acquire_timeout_ms: u64,
}

impl std::fmt::Debug for DatabaseConfig {
    // The URL may carry a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("max_connections", &self.max_connections)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// The `iss` that fan tokens must carry.
    pub issuer: String,
    /// The `aud` that fan tokens must carry.
    pub audience: String,
    pub leeway_secs: u64,
    /// Public keys trusted for fan tokens, by key id.
    pub public_keys: Vec<PublicKeyConfig>,
    pub dev_sign_in: DevSignInConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicKeyConfig {
    pub kid: String,
    /// PEM text, or a file holding it.
    #[serde(default)]
    pub pem: Option<String>,
    #[serde(default)]
    pub pem_file: Option<PathBuf>,
}

/// The edge's access tokens: for protected events, a hold needs one naming
/// the event, signed by one of these keys.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdmissionConfig {
    /// The `iss` the edge puts in access tokens.
    pub issuer: String,
    pub leeway_secs: u64,
    /// The edge's public keys, by key id. Empty: nobody is ever admitted, so
    /// protected events take no holds.
    pub public_keys: Vec<PublicKeyConfig>,
}

/// A sign-in endpoint that hands out fan tokens for any name: for the local
/// stack and tests only. Refused at start outside `environment = "dev"`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevSignInConfig {
    pub enabled: bool,
    pub kid: String,
    pub private_key_file: Option<PathBuf>,
    pub token_ttl_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldsConfig {
    /// Most seats one hold request may name.
    pub max_seats_per_request: usize,
    /// How many times best-available picks again after losing a race.
    pub best_available_attempts: u32,
    /// Best available chooses first from a reading of the event's claims at
    /// most this old, plus this process's own choices since (see
    /// inventory/recent.rs); 0 chooses every time under the scope's lock
    /// from a fresh read.
    #[serde(default = "default_recent_claims_ms")]
    pub recent_claims_ms: u64,
    /// Whether a new hold's commit waits for the WAL to reach the disk.
    /// Off by default: holds are minutes long and carry no money, and a crash
    /// can only lose the last fraction of a second of them (see
    /// migrations/0003_place_hold.sql). Sales always commit durably.
    pub durable_commit: bool,
}

fn default_recent_claims_ms() -> u64 {
    500
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReaperConfig {
    pub enabled: bool,
    pub interval_ms: u64,
    pub batch_size: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedConfig {
    /// How often each instance reads a watched event's seats for changes.
    pub poll_interval_ms: u64,
    pub heartbeat_secs: u64,
}

/// Which card processor takes the money, and how to reach it.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentsConfig {
    /// `stripe` (base_url https://api.stripe.com), or `sandbox`: the
    /// stand-in processor (`payment-sandbox`), dev only.
    pub provider: String,
    /// The processor's API root.
    pub base_url: String,
    /// Secret: the API key sent as a bearer token.
    pub api_key: String,
    /// Secret: the key the processor signs its webhooks with.
    pub webhook_secret: String,
    /// A webhook signed longer ago than this is refused as a replay.
    pub webhook_tolerance_secs: u64,
    /// How long one call to the processor may take before the order is left
    /// for the reconciliation job.
    pub request_timeout_ms: u64,
    /// ISO 4217, lower case: what every price is in.
    pub currency: String,
}

impl std::fmt::Debug for PaymentsConfig {
    // Keys are secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaymentsConfig")
            .field("provider", &self.provider)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckoutConfig {
    /// Run the reconciliation job in this instance.
    pub reconcile: bool,
    pub reconcile_interval_ms: u64,
    /// An order is left this long to finish by itself (its request, or the
    /// provider's webhook) before the job asks the provider about it.
    pub reconcile_after_secs: u64,
    pub reconcile_batch: i64,
    /// Fault injection for the crash tests: abort the process right after
    /// this saga step (see checkout/saga.rs). Never set in production.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crash_after: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketsConfig {
    /// Key id of the key that signs ticket QR codes (scanners look it up).
    pub kid: String,
    /// Ed25519 private key (PKCS#8 PEM). Required in production; in dev a
    /// missing file means a throwaway key, so old QR codes stop scanning
    /// after a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key_file: Option<PathBuf>,
    /// Rotating codes change this often.
    pub rotation_secs: u64,
    /// Gate scanners allowed to check tickets in, each with its key.
    pub scanners: Vec<ScannerConfig>,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScannerConfig {
    /// Shown to the next scanner of a ticket already scanned here.
    pub id: String,
    /// Secret: sent by the scanner as its bearer token.
    pub key: String,
}

impl std::fmt::Debug for ScannerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScannerConfig")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Delivering the outbox: operator webhooks and fan e-mail.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationsConfig {
    /// Run the delivery worker in this instance (safe on all of them).
    pub enabled: bool,
    pub interval_ms: u64,
    pub batch: i64,
    /// After this many failed attempts a delivery is dead (kept, not retried).
    pub max_attempts: i32,
    /// Retry n waits backoff_base_ms * 2^n, at most 300 times the base.
    pub backoff_base_ms: u64,
    /// The operator's endpoint for every notification; none if unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator_webhook_url: Option<String>,
    /// Secret: signs operator webhooks (`Usher-Signature: t=..,v1=..`).
    pub operator_webhook_secret: String,
    /// Where fan e-mail goes: `log`, `file:<directory>` (one .eml per
    /// message) or `smtp://host:port` (plain SMTP, e.g. a local relay).
    pub email: String,
    pub email_from: String,
    /// Fans are known by id; mail goes to `<fan id>@<email_domain>` until the
    /// identity provider supplies addresses.
    pub email_domain: String,
}

impl std::fmt::Debug for NotificationsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotificationsConfig")
            .field("operator_webhook_url", &self.operator_webhook_url)
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

/// Dynamic pricing (see pricing/): off for every event until an operator
/// turns it on; this is the job that recalculates, and its default interval.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PricingConfig {
    /// Run the recalculation job in this instance. Safe on every instance
    /// at once: each interval of each event is recalculated exactly once.
    pub recalculate: bool,
    /// How often an event's prices are recalculated unless the event sets
    /// its own interval (5..=3600).
    pub interval_secs: u32,
}

impl Default for PricingConfig {
    fn default() -> Self {
        PricingConfig {
            recalculate: true,
            interval_secs: 30,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: String,
    /// A tracing filter, e.g. `info,booking_core=debug`.
    pub filter: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            environment: Environment::Prod,
            http: HttpConfig {
                listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
                request_timeout_ms: 10_000,
            },
            database: DatabaseConfig {
                url: "postgres://postgres@127.0.0.1:5432/usher".into(),
                read_url: None,
                max_connections: 16,
                acquire_timeout_ms: 5_000,
            },
            identity: IdentityConfig {
                issuer: "usher-dev".into(),
                audience: "usher".into(),
                leeway_secs: 30,
                public_keys: vec![],
                dev_sign_in: DevSignInConfig {
                    enabled: false,
                    kid: "dev-1".into(),
                    private_key_file: None,
                    token_ttl_secs: 12 * 3600,
                },
            },
            admission: AdmissionConfig {
                issuer: "usher-edge".into(),
                leeway_secs: 5,
                public_keys: vec![],
            },
            holds: HoldsConfig {
                max_seats_per_request: 10,
                best_available_attempts: 4,
                recent_claims_ms: default_recent_claims_ms(),
                durable_commit: false,
            },
            reaper: ReaperConfig {
                enabled: true,
                interval_ms: 1_000,
                batch_size: 500,
            },
            feed: FeedConfig {
                poll_interval_ms: 250,
                heartbeat_secs: 15,
            },
            payments: PaymentsConfig {
                provider: "sandbox".into(),
                base_url: "http://127.0.0.1:8090".into(),
                api_key: "sk_sandbox".into(),
                webhook_secret: "whsec_sandbox".into(),
                webhook_tolerance_secs: 300,
                request_timeout_ms: 5_000,
                currency: "usd".into(),
            },
            checkout: CheckoutConfig {
                reconcile: true,
                reconcile_interval_ms: 1_000,
                reconcile_after_secs: 30,
                reconcile_batch: 50,
                crash_after: None,
            },
            tickets: TicketsConfig {
                kid: "tickets-1".into(),
                signing_key_file: None,
                rotation_secs: 30,
                scanners: vec![],
            },
            notifications: NotificationsConfig {
                enabled: true,
                interval_ms: 500,
                batch: 100,
                max_attempts: 12,
                backoff_base_ms: 1_000,
                operator_webhook_url: None,
                operator_webhook_secret: "whsec_operator_dev".into(),
                email: "log".into(),
                email_from: "tickets@usher.invalid".into(),
                email_domain: "fans.usher.invalid".into(),
            },
            pricing: PricingConfig::default(),
            edge: None,
            log: LogConfig {
                format: "text".into(),
                filter: "info".into(),
            },
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    #[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
    Invalid(Vec<String>),
}

impl Config {
    /// Defaults, then the file (if it exists), then the environment.
    pub fn load(file: &Path) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::file(file))
            .merge(Env::prefixed("USHER_CORE__").split("__").lowercase(true));
        if let Ok(url) = std::env::var("DATABASE_URL") {
            figment = figment.merge(Serialized::default("database.url", url));
        }
        let config: Config = figment.extract().map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    /// Every problem at once, so an operator fixes the file in one go.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if !(self.database.url.starts_with("postgres://") || self.database.url.starts_with("postgresql://")) {
            problems.push("database.url must be a postgres:// URL".to_string());
        }
        if let Some(url) = &self.database.read_url
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            problems.push("database.read_url must be a postgres:// URL".to_string());
        }
        if !(100..=60_000).contains(&self.database.acquire_timeout_ms) {
            problems.push(format!(
                "database.acquire_timeout_ms must be 100..=60000, got {}",
                self.database.acquire_timeout_ms
            ));
        }
        if !(1..=1000).contains(&self.database.max_connections) {
            problems.push(format!(
                "database.max_connections must be 1..=1000, got {}",
                self.database.max_connections
            ));
        }
        if self.http.request_timeout_ms < 100 {
            problems.push("http.request_timeout_ms must be at least 100".into());
        }
        if self.identity.issuer.trim().is_empty() {
            problems.push("identity.issuer must not be empty".into());
        }
        if self.identity.audience.trim().is_empty() {
            problems.push("identity.audience must not be empty".into());
        }
        if self.identity.public_keys.is_empty() && !self.identity.dev_sign_in.enabled {
            problems.push("identity.public_keys is empty: no fan could ever sign in".into());
        }
        for key in &self.identity.public_keys {
            if key.pem.is_some() == key.pem_file.is_some() {
                problems.push(format!(
                    "identity.public_keys[{}]: give exactly one of pem or pem_file",
                    key.kid
                ));
            }
        }
        let dev = &self.identity.dev_sign_in;
        if dev.enabled {
            if self.environment != Environment::Dev {
                problems.push("identity.dev_sign_in.enabled is only allowed with environment = \"dev\"".into());
            }
            if dev.private_key_file.is_none() {
                problems.push("identity.dev_sign_in.private_key_file is required when dev sign-in is enabled".into());
            }
            if !(60..=7 * 86400).contains(&dev.token_ttl_secs) {
                problems.push("identity.dev_sign_in.token_ttl_secs must be 60..=604800".into());
            }
        }
        if !(1..=50).contains(&self.holds.max_seats_per_request) {
            problems.push("holds.max_seats_per_request must be 1..=50".into());
        }
        if !(1..=20).contains(&self.holds.best_available_attempts) {
            problems.push("holds.best_available_attempts must be 1..=20".into());
        }
        if self.reaper.interval_ms < 50 {
            problems.push("reaper.interval_ms must be at least 50".into());
        }
        if !(1..=10_000).contains(&self.reaper.batch_size) {
            problems.push("reaper.batch_size must be 1..=10000".into());
        }
        if !(20..=5_000).contains(&self.feed.poll_interval_ms) {
            problems.push("feed.poll_interval_ms must be 20..=5000".into());
        }
        if !(1..=120).contains(&self.feed.heartbeat_secs) {
            problems.push("feed.heartbeat_secs must be 1..=120".into());
        }
        let pay = &self.payments;
        if pay.provider != "sandbox" && pay.provider != "stripe" {
            problems.push(format!(
                "payments.provider must be \"stripe\" or \"sandbox\", got {:?}",
                pay.provider
            ));
        } else if pay.provider == "sandbox" && self.environment != Environment::Dev {
            problems.push(
                "payments.provider = \"sandbox\" takes no real money: only allowed with environment = \"dev\"".into(),
            );
        }
        if !(pay.base_url.starts_with("http://") || pay.base_url.starts_with("https://")) {
            problems.push("payments.base_url must be an http(s):// URL".into());
        }
        if pay.api_key.is_empty() || pay.webhook_secret.is_empty() {
            problems.push("payments.api_key and payments.webhook_secret must not be empty".into());
        }
        if !(10..=3600).contains(&pay.webhook_tolerance_secs) {
            problems.push("payments.webhook_tolerance_secs must be 10..=3600".into());
        }
        if !(100..=120_000).contains(&pay.request_timeout_ms) {
            problems.push("payments.request_timeout_ms must be 100..=120000".into());
        }
        if pay.currency.len() != 3 || !pay.currency.bytes().all(|b| b.is_ascii_lowercase()) {
            problems.push(format!(
                "payments.currency must be a lower-case ISO 4217 code, got {:?}",
                pay.currency
            ));
        }
        let co = &self.checkout;
        if co.reconcile_interval_ms < 50 {
            problems.push("checkout.reconcile_interval_ms must be at least 50".into());
        }
        if !(1..=1000).contains(&co.reconcile_batch) {
            problems.push("checkout.reconcile_batch must be 1..=1000".into());
        }
        if let Some(step) = &co.crash_after {
            if self.environment != Environment::Dev {
                problems
                    .push("checkout.crash_after is fault injection: only allowed with environment = \"dev\"".into());
            }
            if !crate::checkout::saga::STEPS.contains(&step.as_str()) {
                problems.push(format!(
                    "checkout.crash_after must be one of {:?}, got {step:?}",
                    crate::checkout::saga::STEPS
                ));
            }
        }
        let t = &self.tickets;
        if t.signing_key_file.is_none() && self.environment != Environment::Dev {
            problems.push("tickets.signing_key_file is required outside dev: scanners need a stable public key".into());
        }
        if !(5..=300).contains(&t.rotation_secs) {
            problems.push("tickets.rotation_secs must be 5..=300".into());
        }
        for s in &t.scanners {
            if s.id.is_empty() || s.key.len() < 16 {
                problems.push(format!(
                    "tickets.scanners[{:?}]: needs an id and a key of 16+ characters",
                    s.id
                ));
            }
        }
        let n = &self.notifications;
        if n.interval_ms < 50 || !(1..=1000).contains(&n.batch) || !(1..=100).contains(&n.max_attempts) {
            problems.push("notifications: interval_ms >= 50, batch 1..=1000, max_attempts 1..=100".into());
        }
        if let Some(url) = &n.operator_webhook_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            problems.push("notifications.operator_webhook_url must be an http(s):// URL".into());
        }
        if !(n.email == "log" || n.email.starts_with("file:") || n.email.starts_with("smtp://")) {
            problems.push(format!(
                "notifications.email must be \"log\", \"file:<dir>\" or \"smtp://host:port\", got {:?}",
                n.email
            ));
        }
        if !(5..=3600).contains(&self.pricing.interval_secs) {
            problems.push("pricing.interval_secs must be 5..=3600".into());
        }
        if let Some(edge) = &self.edge {
            if !(edge.admin_url.starts_with("http://") || edge.admin_url.starts_with("https://")) {
                problems.push("edge.admin_url must be an http(s):// URL".into());
            }
            if edge.admin_token.is_empty() {
                problems.push("edge.admin_token must not be empty".into());
            }
            if !(100..=60_000).contains(&edge.timeout_ms) {
                problems.push("edge.timeout_ms must be 100..=60000".into());
            }
        }
        if !["text", "json"].contains(&self.log.format.as_str()) {
            problems.push(format!(
                "log.format must be \"text\" or \"json\", got {:?}",
                self.log.format
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_need_a_key_and_say_so() {
        let err = Config::default().validate().unwrap_err().to_string();
        assert!(err.contains("identity.public_keys is empty"), "{err}");
    }

    #[test]
    fn dev_sign_in_outside_dev_is_refused() {
        let mut c = Config::default();
        c.identity.dev_sign_in.enabled = true;
        c.identity.dev_sign_in.private_key_file = Some("k.pem".into());
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("only allowed with environment"), "{err}");
        c.environment = Environment::Dev;
        c.validate().unwrap();
    }

    #[test]
    fn every_problem_is_listed() {
        let mut c = Config::default();
        c.database.url = "mysql://x".into();
        c.reaper.batch_size = 0;
        c.log.format = "xml".into();
        c.pricing.interval_secs = 1;
        let err = c.validate().unwrap_err().to_string();
        for needle in [
            "database.url",
            "reaper.batch_size",
            "log.format",
            "public_keys",
            "pricing.interval_secs",
        ] {
            assert!(err.contains(needle), "{needle} missing from {err}");
        }
    }

    #[test]
    fn file_and_environment_are_layered() {
        let dir = std::env::temp_dir().join(format!("usher-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("core.toml");
        std::fs::write(
            &file,
            "environment = \"dev\"\n[http]\nlisten = \"127.0.0.1:9999\"\n[[identity.public_keys]]\nkid = \"a\"\npem = \"x\"\n",
        )
        .unwrap();
        let c = Config::load(&file).unwrap();
        assert_eq!(c.http.listen.port(), 9999);
        assert_eq!(c.environment, Environment::Dev);

        std::fs::write(&file, "[http]\nlisten = \"not an address\"\n").unwrap();
        let err = Config::load(&file).unwrap_err().to_string();
        assert!(err.contains("listen"), "{err}");

        std::fs::write(&file, "[http]\nlisten_typo = 1\n").unwrap();
        let err = Config::load(&file).unwrap_err().to_string();
        assert!(err.contains("listen_typo"), "{err}");
    }
}
