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
    pub log: LogConfig,
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
    pub url: String,
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
    /// Whether a new hold's commit waits for the WAL to reach the disk.
    /// Off by default: holds are minutes long and carry no money, and a crash
    /// can only lose the last fraction of a second of them (see
    /// migrations/0003_place_hold.sql). Sales always commit durably.
    pub durable_commit: bool,
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
        let err = c.validate().unwrap_err().to_string();
        for needle in ["database.url", "reaper.batch_size", "log.format", "public_keys"] {
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
