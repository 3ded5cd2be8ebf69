//! Integration-test harness: each test gets its own database (a copy of a
//! migrated template), the real service listening on a free port, and a
//! signed-in fan or two. Nothing is mocked: real PostgreSQL, real HTTP.
#![allow(dead_code)]

/// Headless Chromium over WebDriver: the browser tests' one driver.
#[path = "../../../../loadtests/src/browser.rs"]
pub mod browser;
pub mod conformance;
pub mod db_link;
pub mod smtp;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use booking_core::app::{self, Running};
use booking_core::catalog::{self, Category, EventRules, EventSpec, TierSpec};
use booking_core::config::{Config, Environment};
use booking_core::ids::{Cents, EventId, VenueId};
use booking_core::venues::import::{self, ChartSpec, Point, RowSpec, SeatSpec, SectionSpec};
use chrono::{Duration, Utc};
use reqwest::StatusCode;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};
use usher_shared::admin::{Progress, QueueMode, RoomSettings, RoomView};
use usher_shared::config::{HttpUrl, PostgresUrl};

pub fn admin_url() -> String {
    std::env::var("USHER_TEST_DATABASE_URL")
        .or_else(|_| std::env::var("DATABASE_URL"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn url_for(database: &str) -> PgConnectOptions {
    let options: PgConnectOptions = admin_url().parse().expect("DATABASE_URL");
    options.database(database)
}

/// Database names here are made by this file, never from input.
fn ddl(sql: String) -> sqlx::RawSql {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A fresh database, copied from a template that has every migration.
pub async fn fresh_database() -> String {
    let mut admin = PgConnection::connect_with(&admin_url().parse::<PgConnectOptions>().expect("DATABASE_URL"))
        .await
        .expect("connect to PostgreSQL (set DATABASE_URL)");
    let mut h = Sha256::new();
    for m in booking_core::db::MIGRATOR.iter() {
        h.update(&m.checksum);
    }
    let template = format!("usher_tmpl_{}", hex::encode(&h.finalize()[..6]));
    // One process at a time makes the template and copies it.
    sqlx::query("SELECT pg_advisory_lock(72747201)")
        .execute(&mut admin)
        .await
        .unwrap();
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(&template)
        .fetch_optional(&mut admin)
        .await
        .unwrap();
    if exists.is_none() {
        // A crashed run may have left a half-made one behind.
        ddl(format!("DROP DATABASE IF EXISTS \"{template}_wip\" WITH (FORCE)"))
            .execute(&mut admin)
            .await
            .unwrap();
        ddl(format!("CREATE DATABASE \"{template}_wip\""))
            .execute(&mut admin)
            .await
            .unwrap();
        let mut conn = PgConnection::connect_with(&url_for(&format!("{template}_wip")))
            .await
            .unwrap();
        booking_core::db::MIGRATOR
            .run(&mut conn)
            .await
            .expect("migrate template");
        conn.close().await.unwrap();
        ddl(format!("ALTER DATABASE \"{template}_wip\" RENAME TO \"{template}\""))
            .execute(&mut admin)
            .await
            .unwrap();
    }
    // Databases left behind by crashed runs are dropped after a few hours.
    let stale: Vec<String> = sqlx::query_scalar(r"SELECT datname FROM pg_database WHERE datname LIKE 'usher\_test\_%'")
        .fetch_all(&mut admin)
        .await
        .unwrap();
    for name in stale {
        let born: u64 = name.split('_').nth(2).and_then(|s| s.parse().ok()).unwrap_or(0);
        if born + 3 * 3600 < now_secs() {
            ddl(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .execute(&mut admin)
                .await
                .ok();
        }
    }
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "usher_test_{}_{}_{}",
        now_secs(),
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    );
    ddl(format!("CREATE DATABASE \"{name}\" TEMPLATE \"{template}\""))
        .execute(&mut admin)
        .await
        .expect("create test database");
    sqlx::query("SELECT pg_advisory_unlock(72747201)")
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.ok();
    name
}

pub async fn drop_database(name: &str) {
    if let Ok(mut admin) = PgConnection::connect_with(&admin_url().parse::<PgConnectOptions>().unwrap()).await {
        ddl(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .execute(&mut admin)
            .await
            .ok();
        admin.close().await.ok();
    }
}

/// A pool on a fresh database, for tests of the domain without HTTP.
pub struct TestDb {
    pub name: String,
    pub pool: PgPool,
}

impl TestDb {
    pub async fn new() -> TestDb {
        let name = fresh_database().await;
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .connect_with(url_for(&name).disable_statement_logging())
            .await
            .unwrap();
        TestDb { name, pool }
    }

    pub async fn finish(self) {
        self.pool.close().await;
        drop_database(&self.name).await;
    }
}

pub struct Options {
    pub reaper: bool,
    pub reaper_interval_ms: u64,
    pub pool_size: u32,
    /// Start a payment sandbox whose webhooks reach this core.
    pub sandbox: bool,
    pub reconcile: bool,
    pub reconcile_after_secs: u64,
    pub payments_timeout_ms: u64,
    /// Where operator webhooks go, and fan e-mail (`log`, `file:..`, `smtp://..`).
    pub operator_webhook: Option<String>,
    pub email: String,
    /// How an `smtp://` sink's server is spoken to (plain by default, as
    /// the local stack's server is).
    pub smtp: booking_core::config::SmtpConfig,
    pub max_attempts: i32,
    /// Reach PostgreSQL through a link the test can cut or stall
    /// (`TestApp::link`), as a failover would.
    pub db_link: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            reaper: true,
            reaper_interval_ms: 200,
            pool_size: 10,
            sandbox: false,
            reconcile: false,
            reconcile_after_secs: 30,
            payments_timeout_ms: 10_000,
            operator_webhook: None,
            email: "log".into(),
            smtp: booking_core::config::SmtpConfig {
                security: booking_core::config::SmtpSecurity::None,
                ..Default::default()
            },
            max_attempts: 12,
            db_link: false,
        }
    }
}

pub struct TestApp {
    /// Signs access tokens as the edge would.
    pub edge: usher_shared::TokenSigner,
    /// Where tests send requests: a pass-through that checks every JSON
    /// answer against the OpenAPI document (`conformance.rs`).
    pub base: String,
    /// The core itself, for requests the pass-through would rewrite (a
    /// request target sent byte for byte).
    pub direct: String,
    pub violations: conformance::Violations,
    pub http: reqwest::Client,
    pub pool: PgPool,
    pub running: Running,
    pub sandbox: Option<Sandbox>,
    /// The service's way to PostgreSQL, when `Options::db_link`.
    pub link: Option<db_link::DbLink>,
    db: String,
    key_file: std::path::PathBuf,
}

impl TestApp {
    pub async fn start() -> TestApp {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> TestApp {
        Self::start_with_config(options, |_| {}).await
    }

    /// As `start_with`, with a last word on the configuration.
    pub async fn start_with_config(options: Options, adjust: impl FnOnce(&mut Config)) -> TestApp {
        let db = fresh_database().await;
        let pair = usher_shared::keys::generate_pair();
        let key_file = std::env::temp_dir().join(format!("{db}.pem"));
        std::fs::write(&key_file, pair.private_pem).unwrap();

        let mut config = Config {
            environment: Environment::Dev,
            ..Config::default()
        };
        config.http.listen = "127.0.0.1:0".parse().unwrap();
        // Every test runs with metrics kept (and so with their middleware
        // in front of every route), on an admin port of its own.
        config.http.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
        let sandbox = if options.sandbox {
            // The sandbox must know where to send webhooks before the core
            // starts, so the core's port is chosen first.
            let port = free_port();
            config.http.listen = format!("127.0.0.1:{port}").parse().unwrap();
            let sandbox = Sandbox::start(&format!("http://127.0.0.1:{port}/v1/payments/webhooks/sandbox"));
            config.payments.base_url = HttpUrl::parse(sandbox.base.clone()).unwrap();
            config.payments.api_key = SANDBOX_API_KEY.into();
            config.payments.webhook_secret = SANDBOX_WEBHOOK_SECRET.into();
            Some(sandbox)
        } else {
            None
        };
        config.payments.request_timeout_ms = options.payments_timeout_ms;
        config.checkout.reconcile = options.reconcile;
        config.checkout.reconcile_interval_ms = 200;
        config.checkout.reconcile_after_secs = options.reconcile_after_secs;
        config.notifications.interval_ms = 100;
        config.notifications.backoff_base_ms = 20;
        config.notifications.operator_webhook_url =
            options.operator_webhook.clone().map(|u| HttpUrl::parse(u).unwrap());
        config.notifications.operator_webhook_secret = OPERATOR_SECRET.into();
        config.notifications.email = options.email.parse().expect("a mail sink");
        config.notifications.smtp = options.smtp.clone();
        config.notifications.max_attempts = options.max_attempts;
        config.tickets.scanners = vec![booking_core::config::ScannerConfig {
            id: "gate-a".into(),
            key: SCANNER_KEY.into(),
        }];
        let link = if options.db_link {
            let server = url_for(&db);
            let target = tokio::net::lookup_host((server.get_host(), server.get_port()))
                .await
                .unwrap()
                .next()
                .unwrap();
            Some(db_link::DbLink::start(target).await)
        } else {
            None
        };
        config.database.url = PostgresUrl::parse(
            match &link {
                Some(l) => url_for(&db).host("127.0.0.1").port(l.addr.port()),
                None => url_for(&db),
            }
            .to_url_lossy()
            .to_string(),
        )
        .unwrap();
        config.database.max_connections = options.pool_size;
        config.identity.dev_sign_in.enabled = true;
        config.identity.dev_sign_in.private_key_file = Some(key_file.clone());
        let edge_pair = usher_shared::keys::generate_pair();
        config.admission.public_keys = vec![booking_core::config::PublicKeyConfig {
            kid: "edge-t".into(),
            pem: Some(edge_pair.public_pem),
            pem_file: None,
        }];
        let edge = usher_shared::TokenSigner::new(
            usher_shared::SigningKey::from_pem("edge-t", &edge_pair.private_pem).unwrap(),
        );
        config.reaper.enabled = options.reaper;
        config.reaper.interval_ms = options.reaper_interval_ms;
        config.feed.poll_interval_ms = 100;
        config.feed.heartbeat_secs = 1;
        adjust(&mut config);
        config.validate().expect("test config");

        let running = app::start(config).await.expect("start booking-core");
        let direct = format!("http://{}", running.addr);
        let violations = conformance::Violations::default();
        let base = conformance::start(running.addr, violations.clone()).await;
        // The test's own reads go straight to PostgreSQL, whatever the
        // service's link is doing.
        let pool = match &link {
            Some(_) => PgPoolOptions::new()
                .max_connections(4)
                .connect_with(url_for(&db))
                .await
                .unwrap(),
            None => running.state.pool.clone(),
        };
        let http = reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap();
        TestApp {
            edge,
            base,
            direct,
            violations,
            http,
            pool,
            running,
            sandbox,
            link,
            db,
            key_file,
        }
    }

    pub async fn finish(self) {
        self.running.shutdown().await.ok();
        self.pool.close().await;
        drop_database(&self.db).await;
        std::fs::remove_file(&self.key_file).ok();
        let violations = usher_shared::locks::lock(&self.violations).clone();
        assert!(
            violations.is_empty(),
            "answers that do not match /openapi.json:\n{}",
            violations.join("\n")
        );
    }

    /// The database goes away as an outage would take it: it refuses new
    /// connections and drops the service's open ones.
    pub async fn cut_off_database(&self) {
        let mut admin = PgConnection::connect_with(&admin_url().parse::<PgConnectOptions>().unwrap())
            .await
            .unwrap();
        ddl(format!("ALTER DATABASE \"{}\" ALLOW_CONNECTIONS false", self.db))
            .execute(&mut admin)
            .await
            .unwrap();
        sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
            .bind(&self.db)
            .execute(&mut admin)
            .await
            .unwrap();
        admin.close().await.ok();
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A fan token from the development sign-in, over HTTP.
    pub async fn sign_in(&self, fan: &str) -> String {
        let r = self
            .http
            .post(self.url("/v1/dev/sign-in"))
            .json(&serde_json::json!({"fan_id": fan}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_string()
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let r = self.http.get(self.url(path)).send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// POST a hold with this key; returns status and body.
    pub async fn hold(&self, token: &str, event: EventId, key: &str, body: &Value) -> (StatusCode, Value) {
        let r = self
            .http
            .post(self.url(&format!("/v1/events/{}/holds", event.0)))
            .bearer_auth(token)
            .header("idempotency-key", key)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// An access token for `event`, as the edge issues them.
    pub fn access_token(&self, event: EventId, expires_in_secs: i64) -> String {
        let now = Utc::now().timestamp();
        self.edge.sign(&usher_shared::AccessClaims {
            iss: "usher-edge".into(),
            aud: usher_shared::ACCESS_AUDIENCE.into(),
            sub: format!("{}.1", event.0),
            evt: event.0,
            tkt: 1,
            bnd: "test".into(),
            iat: now,
            exp: now + expires_in_secs,
            jti: uuid::Uuid::new_v4().to_string(),
        })
    }

    pub async fn release(&self, token: &str, hold: &str, key: &str) -> (StatusCode, Value) {
        let r = self
            .http
            .delete(self.url(&format!("/v1/holds/{hold}")))
            .bearer_auth(token)
            .header("idempotency-key", key)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

pub const SANDBOX_API_KEY: &str = "sk_test_harness";
pub const SANDBOX_WEBHOOK_SECRET: &str = "whsec_test_harness";
pub const SCANNER_KEY: &str = "scanner-key-for-gate-a";
pub const OPERATOR_SECRET: &str = "whsec_operator_test";

/// A waiting room as the edge's admin API shows it, for stand-ins of the
/// edge: FIFO, `admit_per_minute` a minute, with this progress.
pub fn edge_room(event: i64, admit_per_minute: u32, progress: Progress) -> RoomView {
    RoomView {
        settings: RoomSettings::new(event, QueueMode::Fifo, admit_per_minute, 1000, 600),
        progress,
        listeners: 3,
        lottery: None,
    }
}

pub use usher_test_kit::{ChildGuard, free_port};

/// The password test operators sign in with.
pub const OPERATOR_PASSWORD: &str = "correct horse battery";

/// An operator of `org` with `role`, made and signed in through the portal:
/// their session token.
pub async fn signed_in_operator(
    app: &TestApp,
    org: booking_core::ids::OrganisationId,
    email: &str,
    role: booking_core::portal::Role,
) -> String {
    let new = booking_core::portal::auth::NewOperator {
        organisation: org,
        email,
        name: Some("Test Operator"),
        role,
        password: OPERATOR_PASSWORD,
    };
    booking_core::portal::auth::upsert_operator(&app.pool, &new, false)
        .await
        .unwrap();
    let r = app
        .http
        .post(app.url("/v1/portal/sign-in"))
        .json(&serde_json::json!({"email": email, "password": OPERATOR_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned()
}

/// A fan buys `seats` with their own card (`pm_card_ok_<fan>`: accounts
/// sharing a card share the limit per fan); returns the order.
pub async fn buy_with_own_card(
    app: &TestApp,
    (fan, token): (&str, &str),
    e: booking_core::ids::EventId,
    key: &str,
    seats: &[i64],
) -> Value {
    let (s, h) = app
        .hold(token, e, &format!("h-{key}"), &serde_json::json!({"seat_ids": seats}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{h}");
    let body = serde_json::json!({"hold_id": h["hold_id"], "payment_method": format!("pm_card_ok_{fan}")});
    let (s, _, o) = post_keyed(app, token, &format!("o-{key}"), "/v1/orders", body).await;
    assert_eq!(
        (s, o["state"].as_str()),
        (StatusCode::CREATED, Some("confirmed")),
        "{o}"
    );
    o
}

/// A POST with a bearer token and an Idempotency-Key: status, headers and
/// JSON body (Null if none).
pub async fn post_keyed(
    app: &TestApp,
    token: &str,
    key: &str,
    path: &str,
    body: Value,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let r = app
        .http
        .post(app.url(path))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let (s, h) = (r.status(), r.headers().clone());
    (s, h, r.json().await.unwrap_or(Value::Null))
}

/// The payment sandbox, as a child process (killed on drop).
pub struct Sandbox {
    pub base: String,
    _child: ChildGuard,
}

impl Sandbox {
    pub fn start(webhook_url: &str) -> Sandbox {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_payment-sandbox"))
            .args(["--listen", "127.0.0.1:0", "--api-key", SANDBOX_API_KEY])
            .args(["--webhook-secret", SANDBOX_WEBHOOK_SECRET, "--webhook-url", webhook_url])
            .args([
                "--slow-ms",
                "300",
                "--timeout-ms",
                "6000",
                "--late-ms",
                "1500",
                "--processing-ms",
                "500",
            ])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start payment-sandbox");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        std::io::BufReader::new(stdout).read_line(&mut line).unwrap();
        let addr = line.trim().rsplit(' ').next().unwrap().to_string();
        assert!(line.contains("listening on"), "sandbox said {line:?}");
        Sandbox {
            base: format!("http://{addr}"),
            _child: ChildGuard::new(child),
        }
    }

    /// The sandbox's intents for one order.
    pub async fn intents_for(&self, order: &str) -> Vec<Value> {
        let r = reqwest::Client::new()
            .get(format!("{}/v1/payment_intents?order_id={order}&limit=100", self.base))
            .bearer_auth(SANDBOX_API_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.json::<Value>().await.unwrap()["data"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub async fn stats(&self) -> Value {
        reqwest::get(format!("{}/sandbox/stats", self.base))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

/// A small venue: `rows` rows of `seats` seats per section, row 1 nearest
/// the focal point at (0, 0); tier 1 for the first two rows, then 2, then 3.
pub fn small_chart(slug: &str, sections: &[&str], rows: usize, seats: usize) -> ChartSpec {
    ChartSpec {
        slug: slug.into(),
        name: format!("Test venue {slug}"),
        city: "Testville".into(),
        country: "GB".into(),
        timezone: "Europe/London".into(),
        focal: Point { x: 0.0, y: 0.0 },
        sections: sections
            .iter()
            .enumerate()
            .map(|(si, code)| SectionSpec {
                code: (*code).into(),
                name: format!("Section {code}"),
                rows: (0..rows)
                    .map(|r| RowSpec {
                        label: format!("R{}", r + 1),
                        seats: (0..seats)
                            .map(|k| SeatSpec {
                                number: k as i32 + 1,
                                label: None,
                                x: si as f32 * 100.0 + k as f32 - seats as f32 / 2.0,
                                y: 2.0 + r as f32,
                                tier: (r as i16).clamp(0, 4) / 2 + 1,
                                accessible: false,
                                obstructed: false,
                            })
                            .collect(),
                    })
                    .collect(),
            })
            .collect(),
    }
}

pub async fn venue(pool: &PgPool, chart: &ChartSpec) -> VenueId {
    import::create_venue(pool, chart).await.expect("create venue").venue_id
}

/// An event at the venue, on sale since an hour ago, tiers 1-3 at 10, 20
/// and 30 (in cents: 1000, 2000, 3000).
pub async fn event(pool: &PgPool, slug: &str, venue_slug: &str, rules: EventRules) -> EventId {
    let spec = EventSpec {
        slug: slug.into(),
        venue_slug: venue_slug.into(),
        title: format!("Test event {slug}"),
        artist: "Test Artist".into(),
        category: Category::Concert,
        description: String::new(),
        starts_at: Utc::now() + Duration::days(30),
        on_sale_at: Utc::now() - Duration::hours(1),
        rules,
        tiers: vec![
            TierSpec {
                tier: 1,
                name: "Front".into(),
                price_cents: Cents(3000),
            },
            TierSpec {
                tier: 2,
                name: "Middle".into(),
                price_cents: Cents(2000),
            },
            TierSpec {
                tier: 3,
                name: "Back".into(),
                price_cents: Cents(1000),
            },
        ],
    };
    catalog::create_event(pool, &spec).await.expect("create event").0
}

/// Seat ids of a venue in seat-map order.
pub async fn seat_ids(pool: &PgPool, venue: VenueId) -> Vec<i64> {
    sqlx::query_scalar("SELECT id FROM seats WHERE venue_id = $1 ORDER BY idx")
        .bind(venue.0)
        .fetch_all(pool)
        .await
        .unwrap()
}

pub fn rules(max_seats_per_fan: i32) -> EventRules {
    EventRules {
        hold_ttl_secs: 300,
        hold_jitter_secs: 0,
        max_seats_per_fan,
        protected: false,
    }
}

/// Every live claim of an event: (seat_id, hold_id) pairs.
pub async fn live_claims(pool: &PgPool, event: EventId) -> Vec<(i64, uuid::Uuid)> {
    sqlx::query_as("SELECT seat_id, hold_id FROM seat_claims WHERE event_id = $1 AND during @> now() ORDER BY seat_id")
        .bind(event.0)
        .fetch_all(pool)
        .await
        .unwrap()
}

/// A Server-Sent Events client over a real HTTP response.
pub struct Sse {
    stream: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buf: String,
}

#[derive(Debug, Clone)]
pub struct SseEvent {
    pub event: String,
    pub id: Option<String>,
    pub data: Value,
}

impl Sse {
    pub async fn open(app: &TestApp, path: &str, last_event_id: Option<&str>) -> Sse {
        let mut r = app.http.get(app.url(path)).header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            r = r.header("last-event-id", id);
        }
        let response = r.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        Sse {
            stream: Box::pin(response.bytes_stream()),
            buf: String::new(),
        }
    }

    /// The next event (comments and heartbeats skipped), or None on timeout.
    pub async fn next(&mut self, within: std::time::Duration) -> Option<SseEvent> {
        use futures::StreamExt;
        let deadline = tokio::time::Instant::now() + within;
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let (mut event, mut id, mut data) = (String::from("message"), None, String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim().to_string());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if !data.is_empty() {
                    return Some(SseEvent {
                        event,
                        id,
                        data: serde_json::from_str(&data).unwrap_or(Value::String(data)),
                    });
                }
            }
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Ok(Some(Ok(chunk))) => self.buf.push_str(&String::from_utf8_lossy(&chunk)),
                _ => return None,
            }
        }
    }

    /// Waits for a `seats` event that puts `seat` in `state`.
    pub async fn until_seat(&mut self, seat: i64, state: &str, within: std::time::Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let e = self.next(left).await?;
            if e.event == "seats"
                && e.data[state]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x.as_i64() == Some(seat)))
            {
                return Some(e);
            }
        }
    }
}
