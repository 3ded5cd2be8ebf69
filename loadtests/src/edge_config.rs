//! The edge's configuration as each load test writes it: one typed
//! description (`EdgeConfig`) written out as the TOML edge-proxy reads,
//! instead of a TOML string per test. Its defaults are what the load tests
//! share: two worker threads, a one-second grace, limits per address off
//! (all fans of a load test share 127.0.0.1), errors only in the log, and
//! a scope of this run's own for the counts edges share through Redis, so
//! that one run's counts never weigh on the next's. The rooms are the
//! shared `RoomSettings`, the edge's own type for them.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use serde::Serialize;
use usher_shared::admin::RoomSettings;

/// This run's scope for the edges' shared counts.
pub fn shared_scope() -> &'static str {
    static SCOPE: OnceLock<String> = OnceLock::new();
    SCOPE.get_or_init(|| {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        format!("run-{}-{now:x}", std::process::id())
    })
}

/// One edge's configuration file.
#[derive(Debug, Clone, Serialize)]
pub struct EdgeConfig {
    pub listen: Listen,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protection: Option<Protection>,
    pub upstream: Upstream,
    pub redis: Redis,
    pub tokens: Tokens,
    pub admin: Admin,
    pub rate_limits: RateLimits,
    pub log: Log,
    pub events: Vec<RoomSettings>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Listen {
    pub http: Vec<String>,
    pub threads: u32,
    pub grace_period_secs: u64,
    /// The dedicated position-stream listener.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub streams: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stream_origins: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Protection {
    pub event_paths: Vec<String>,
    pub session_prefixes: Vec<String>,
    pub optional_prefixes: Vec<String>,
    pub after_admission: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Upstream {
    pub addrs: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_check_interval_ms: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Redis {
    pub url: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Tokens {
    pub issuer: String,
    pub kid: String,
    pub private_key_file: PathBuf,
}

#[derive(Debug, Clone, Serialize)]
pub struct Admin {
    pub listen: String,
    pub token: String,
}

/// Limits per address and minute (0: off); the per-network join limit is
/// off.
#[derive(Debug, Clone, Serialize)]
pub struct RateLimits {
    pub join_per_minute: u32,
    pub status_per_minute: u32,
    pub protected_per_minute: u32,
    pub network_join_per_minute: u32,
    pub shared: Shared,
}

#[derive(Debug, Clone, Serialize)]
pub struct Shared {
    pub scope: String,
}

impl RateLimits {
    pub fn per_address(join: u32, status: u32, protected: u32) -> RateLimits {
        RateLimits {
            join_per_minute: join,
            status_per_minute: status,
            protected_per_minute: protected,
            network_join_per_minute: 0,
            shared: Shared {
                scope: shared_scope().to_owned(),
            },
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Log {
    pub filter: String,
}

impl EdgeConfig {
    /// An edge on `http_port` in front of `upstream`, with its admin API on
    /// `admin_port` (bearer `admin_token`), signing with `key_file` under
    /// `kid`, for `rooms`; everything else at the load tests' defaults.
    pub fn new(
        http_port: u16,
        upstream: &str,
        redis_url: &str,
        (kid, key_file): (&str, &Path),
        (admin_port, admin_token): (u16, &str),
        rooms: Vec<RoomSettings>,
    ) -> EdgeConfig {
        EdgeConfig {
            listen: Listen {
                http: vec![format!("127.0.0.1:{http_port}")],
                threads: 2,
                grace_period_secs: 1,
                streams: None,
                stream_origins: Vec::new(),
            },
            protection: None,
            upstream: Upstream {
                addrs: vec![upstream.to_owned()],
                health_check_interval_ms: None,
            },
            redis: Redis {
                url: redis_url.to_owned(),
            },
            tokens: Tokens {
                issuer: "usher-edge".into(),
                kid: kid.to_owned(),
                private_key_file: key_file.to_path_buf(),
            },
            admin: Admin {
                listen: format!("127.0.0.1:{admin_port}"),
                token: admin_token.to_owned(),
            },
            rate_limits: RateLimits::per_address(0, 0, 0),
            log: Log { filter: "error".into() },
            events: rooms,
        }
    }

    /// The file's text, with `extra` (TOML tables of a scenario's own, such
    /// as `[defence]`) after it.
    pub fn to_toml(&self, extra: &str) -> anyhow::Result<String> {
        let mut text = toml::to_string(self).context("the edge's configuration as TOML")?;
        if !extra.is_empty() {
            text.push('\n');
            text.push_str(extra);
            text.push('\n');
        }
        Ok(text)
    }

    /// Writes the file to `path` (with `extra`, as `to_toml`).
    pub fn write(&self, path: &Path, extra: &str) -> anyhow::Result<()> {
        std::fs::write(path, self.to_toml(extra)?).with_context(|| format!("writing {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use usher_shared::admin::QueueMode;

    #[test]
    fn the_file_has_every_section_and_reads_back() {
        let mut config = EdgeConfig::new(
            8000,
            "127.0.0.1:8080",
            "redis://127.0.0.1:6379",
            ("bench", Path::new("/tmp/edge.pem")),
            (8001, "token"),
            vec![RoomSettings::new(7, QueueMode::Fifo, 60, 10, 600)],
        );
        config.listen.streams = Some("127.0.0.1:8002".into());
        let text = config.to_toml("[defence]\nenabled = true").unwrap();
        let v: toml::Table = text.parse().unwrap();
        assert_eq!(v["listen"]["http"][0].as_str(), Some("127.0.0.1:8000"));
        assert_eq!(v["listen"]["streams"].as_str(), Some("127.0.0.1:8002"));
        assert!(v["listen"].get("stream_origins").is_none());
        assert!(v.get("protection").is_none());
        assert_eq!(v["rate_limits"]["shared"]["scope"].as_str(), Some(shared_scope()));
        assert_eq!(v["rate_limits"]["join_per_minute"].as_integer(), Some(0));
        assert_eq!(v["events"][0]["event_id"].as_integer(), Some(7));
        assert_eq!(v["events"][0]["mode"].as_str(), Some("fifo"));
        assert_eq!(v["defence"]["enabled"].as_bool(), Some(true));
    }
}
