//! Edge integration-test harness: the real edge-proxy binary, started with
//! its own configuration on free ports, in front of a small counting
//! upstream, against real Redis (each test uses fresh event ids, so nothing
//! left in Redis by another run can matter).
#![allow(dead_code)]

// One WebDriver client for every browser test, kept with the loadtests that
// drive the whole stack; included by path (edge-proxy does not depend on it).
#[allow(dead_code)]
#[path = "../../../../loadtests/src/browser.rs"]
pub mod browser;
mod upstream;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use edge_proxy::config::{
    AdminConfig, CoreAddr, EdgeConfig, ListenConfig, LogConfig, QueueMode, RateLimits, RedisConfig, RedisFailure,
    RoomSettings, SharedCounts, TokensConfig, UpstreamConfig,
};
use serde_json::Value;
use tokio::process::Child;
pub use upstream::Upstream;
use usher_shared::config::RedisUrl;

/// A directory for a test's edge key (`edge.pem`): the edges of one test
/// that must accept each other's tokens share it.
pub fn key_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("usher-edge-keys-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Stalls every client of `redis` (the edge's connections) for `ms`.
pub async fn pause(redis: &usher_test_kit::PrivateRedis, ms: u64) {
    let mut admin = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(ms)
        .arg("ALL")
        .query_async(&mut admin)
        .await
        .unwrap();
}

/// The shared counts' scope of this test's edges: one per test process
/// (nextest runs each test in its own), so tests running side by side,
/// all from 127.0.0.1, never count against each other.
pub fn shared_scope() -> &'static str {
    static SCOPE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SCOPE.get_or_init(|| format!("test-{:016x}", rand::random::<u64>()))
}

pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

pub use usher_test_kit::free_port;

/// An HTTP client on its own source address, like a client on that
/// network (any 127.x.y.z).
pub fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip.parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap()
}

/// A fresh event id, unused by any earlier run.
pub fn fresh_event() -> i64 {
    1_000_000_000 + (rand::random::<u32>() as i64)
}

pub fn room(event: i64, per_minute: u32, max_active: u32) -> RoomSettings {
    RoomSettings::new(event, QueueMode::Fifo, per_minute, max_active, 600)
}

/// The edge every test starts from: the proxy and admin API on the given
/// ports, the cores, Redis (`cluster:redis://a,redis://b` names a Redis
/// Cluster's nodes), the rooms, and no per-address limits.
fn base_config(
    cores: &[SocketAddr],
    redis: &str,
    rooms: &[RoomSettings],
    key: &std::path::Path,
    port: u16,
    admin_port: u16,
) -> EdgeConfig {
    let (url, cluster_nodes) = match redis.strip_prefix("cluster:") {
        Some(nodes) => (
            "redis://unused",
            nodes.split(',').map(|n| RedisUrl::parse(n).unwrap()).collect(),
        ),
        None => (redis, vec![]),
    };
    EdgeConfig {
        listen: ListenConfig {
            http: vec![SocketAddr::from(([127, 0, 0, 1], port))],
            tls: None,
            threads: 2,
            grace_period_secs: 1,
            read_buffer_bytes: 4096,
            streams: None,
            streams_tls: false,
            trusted_proxies: vec![],
            stream_url: None,
            stream_origins: vec![],
        },
        upstream: UpstreamConfig {
            addrs: cores.iter().map(|c| CoreAddr::parse(&c.to_string()).unwrap()).collect(),
            health_check_interval_ms: 1_000,
            health_check_timeout_ms: 1_000,
            health_check_path: "/readyz".into(),
            discovery_interval_ms: 5_000,
            connect_timeout_ms: 1_000,
            read_timeout_ms: 30_000,
        },
        redis: RedisConfig {
            url: RedisUrl::parse(url).unwrap(),
            on_failure: RedisFailure::Closed,
            fail_open_per_minute: 60,
            cluster_nodes,
        },
        tokens: TokensConfig {
            issuer: "usher-edge".into(),
            kid: "edge-test".into(),
            private_key_file: key.to_path_buf(),
            queue_token_ttl_secs: 6 * 3600,
            secure_cookies: false,
            previous_keys: vec![],
        },
        admin: AdminConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], admin_port)),
            token: ADMIN_TOKEN.into(),
        },
        protection: Default::default(),
        bypass: vec![],
        rate_limits: RateLimits {
            join_per_minute: 0,
            status_per_minute: 0,
            protected_per_minute: 0,
            network_join_per_minute: 0,
            shared: SharedCounts {
                scope: shared_scope().into(),
                sync_ms: 50,
                ..SharedCounts::default()
            },
        },
        events: rooms.to_vec(),
        cache: Default::default(),
        defence: Default::default(),
        log: LogConfig {
            filter: "warn".into(),
            ..LogConfig::default()
        },
        trace: Default::default(),
    }
}

/// A self-signed certificate for localhost and 127.0.0.1 (`cert.pem`,
/// `key.pem` in `dir`), made by openssl.
pub fn self_signed_certificate(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"])
        .args(["-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    (cert, key)
}

/// The most common set-up: a counting core, a fresh event, and one edge
/// (keys of its own, named `name`) guarding that event with a FIFO room.
pub async fn one_room(name: &str, per_minute: u32, max_active: u32) -> (Upstream, i64, Edge) {
    let upstream = Upstream::start().await;
    let event = fresh_event();
    let edge = Edge::start(
        upstream.addr,
        &redis_url(),
        &[room(event, per_minute, max_active)],
        &key_dir(name),
        "",
    )
    .await;
    (upstream, event, edge)
}

pub struct Edge {
    child: Child,
    pub port: u16,
    pub admin_port: u16,
    pub dir: std::path::PathBuf,
    pub http: reqwest::Client,
}

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

impl Edge {
    /// Starts the real binary. `key_dir` holds `edge.pem`, shared by
    /// instances that must accept each other's tokens.
    pub async fn start(
        upstream: SocketAddr,
        redis: &str,
        rooms: &[RoomSettings],
        key_dir: &std::path::Path,
        extra: &str,
    ) -> Edge {
        Edge::start_with_listen(upstream, redis, rooms, key_dir, extra, "").await
    }

    /// As `start`, with more keys for the `[listen]` table (e.g. `tls`);
    /// `{port}` in them stands for the proxy's own port.
    pub async fn start_with_listen(
        upstream: SocketAddr,
        redis: &str,
        rooms: &[RoomSettings],
        key_dir: &std::path::Path,
        extra: &str,
        listen: &str,
    ) -> Edge {
        Edge::start_full(
            &[upstream],
            redis,
            rooms,
            key_dir,
            extra,
            listen,
            "health_check_interval_ms = 200",
        )
        .await
    }

    /// The edge in front of several cores; `upstream` holds more keys for
    /// the `[upstream]` table (health check timings).
    pub async fn start_before_cores(
        cores: &[SocketAddr],
        redis: &str,
        key_dir: &std::path::Path,
        upstream: &str,
    ) -> Edge {
        Edge::start_full(cores, redis, &[], key_dir, "", "", upstream).await
    }

    async fn start_full(
        cores: &[SocketAddr],
        redis: &str,
        rooms: &[RoomSettings],
        key_dir: &std::path::Path,
        extra: &str,
        listen: &str,
        upstream: &str,
    ) -> Edge {
        let port = free_port();
        let admin_port = free_port();
        let dir = std::env::temp_dir().join(format!("usher-edge-test-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = key_dir.join("edge.pem");
        if !key.exists() {
            std::fs::write(&key, usher_shared::keys::generate_pair().private_pem).unwrap();
        }
        let base = base_config(cores, redis, rooms, &key, port, admin_port);
        // A test's own settings are written as an operator writes them, in
        // TOML, and layered over the typed base; the result is checked here
        // as the edge will check it.
        let layered = format!(
            "[listen]\n{}\n[upstream]\n{upstream}\n{extra}",
            listen.replace("{port}", &port.to_string())
        );
        let config: EdgeConfig = figment::Figment::from(figment::providers::Serialized::defaults(base))
            .merge(<figment::providers::Toml as figment::providers::Format>::string(
                &layered,
            ))
            .extract()
            .unwrap_or_else(|e| panic!("test edge configuration: {e}"));
        config
            .validate()
            .unwrap_or_else(|e| panic!("test edge configuration: {e}"));
        let toml = toml::to_string(&config).unwrap();
        let config = dir.join("edge.toml");
        std::fs::write(&config, toml).unwrap();
        let log = std::fs::File::create(dir.join("edge.log")).unwrap();
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_edge-proxy"))
            .arg("--config")
            .arg(&config)
            .env_remove("REDIS_URL")
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let http = reqwest::Client::builder().pool_max_idle_per_host(256).build().unwrap();
        let edge = Edge {
            child,
            port,
            admin_port,
            dir,
            http,
        };
        for _ in 0..100 {
            let ok = edge.http.get(edge.admin_url("/healthz")).send().await.is_ok();
            let queue_ready = rooms.is_empty()
                || edge
                    .admin_get("/admin/events")
                    .await
                    .as_array()
                    .is_some_and(|a| a.iter().all(|r| r["progress"]["healthy"].as_bool() == Some(true)));
            // The proxy's listener starts in a service of its own, which a
            // busy machine may run after the admin API already answers.
            let proxy_up = tokio::net::TcpStream::connect(("127.0.0.1", edge.port)).await.is_ok();
            if ok && queue_ready && proxy_up {
                return edge;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("edge did not start; see {}", edge.dir.join("edge.log").display());
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.admin_port, path)
    }

    /// The Prometheus text on the admin listener.
    pub async fn metrics(&self) -> String {
        self.http
            .get(self.admin_url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn admin_get(&self, path: &str) -> Value {
        match self
            .http
            .get(self.admin_url(path))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
        {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        }
    }

    pub async fn progress(&self, event: i64) -> Value {
        self.admin_get(&format!("/admin/events/{event}")).await["progress"].clone()
    }

    pub async fn stop(mut self) {
        self.child.kill().await.ok();
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

/// A fan's client, app-style: the client id and tokens go in headers.
#[derive(Clone, Debug)]
pub struct Fan {
    pub client_id: String,
    pub queue_token: String,
    pub ticket: u64,
    pub access: Option<String>,
}

impl Fan {
    /// The fan a join's 200 answer describes.
    pub fn joined(v: &Value) -> Fan {
        Fan {
            client_id: v["client_id"].as_str().unwrap().into(),
            queue_token: v["queue_token"].as_str().unwrap().into(),
            ticket: v["ticket"].as_u64().unwrap(),
            access: None,
        }
    }
}

pub async fn join(http: &reqwest::Client, edge_url: &str, event: i64) -> Fan {
    let r = http
        .post(format!("{edge_url}/queue/{event}/join"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    Fan::joined(&r.json().await.unwrap())
}

/// Polls status until the fan is admitted (10 s at most) and keeps its
/// access token.
pub async fn wait_admitted(edge: &Edge, event: i64, fan: &mut Fan) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (code, v) = status(&edge.http, &edge.url(""), event, fan).await;
        if code == 200 && v["status"] == "admitted" {
            fan.access = Some(v["access_token"].as_str().unwrap().to_string());
            return;
        }
        assert!(Instant::now() < deadline, "not admitted: {code} {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A fan who joined and was admitted.
pub async fn admitted_fan(edge: &Edge, event: i64) -> Fan {
    let mut fan = join(&edge.http, &edge.url(""), event).await;
    wait_admitted(edge, event, &mut fan).await;
    fan
}

/// Polls status once: the JSON answer and its status code.
pub async fn status(http: &reqwest::Client, edge_url: &str, event: i64, fan: &Fan) -> (u16, Value) {
    let r = http
        .get(format!("{edge_url}/queue/{event}/status"))
        .header("usher-client", &fan.client_id)
        .bearer_auth(&fan.queue_token)
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

pub async fn redis() -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Removes an event's keys after a test.
pub async fn forget_event(event: i64) {
    let mut conn = redis().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("usher:{{e{event}}}:*"))
        .query_async(&mut conn)
        .await
        .unwrap_or_default();
    if !keys.is_empty() {
        let _: Result<(), _> = redis::cmd("DEL").arg(keys).query_async(&mut conn).await;
    }
}
