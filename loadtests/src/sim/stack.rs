//! The whole stack for one simulated on-sale, as child processes: a scratch
//! database with booking-core on it (`crate::stack`), the payment sandbox,
//! a private Redis (its command counter is the run's alone, and no key of
//! an earlier run can leak in), and edge-proxy in front, configured with the
//! scenario's waiting room. Dropped at the end of the run.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::process::{Child, Command};
use usher_shared::admin::QueueMode;

use crate::StackArgs;
use crate::edge_config::{EdgeConfig, Protection, RateLimits};
use crate::process::{port, private_redis, ready_within_10s, wait_for};
use crate::sandbox::Sandbox;
use crate::sim::scenario::Scenario;
use crate::stack::Stack;

pub const ADMIN_TOKEN: &str = "sim-admin-token-0123456789abcdef";

pub struct SimStack {
    pub core: Stack,
    pub sandbox: Sandbox,
    pub redis: Child,
    pub redis_url: String,
    pub edge: Child,
    /// Fans' entry: http://127.0.0.1:<port>.
    pub edge_base: String,
    pub admin_base: String,
    /// booking-core's metrics listener: http://127.0.0.1:<port>/metrics.
    pub core_metrics: String,
    pub dir: PathBuf,
    pub event: i64,
    pub venue: i64,
}

/// Where the stack's binaries are, and the PostgreSQL its scratch
/// database goes in.
#[derive(Debug, Clone, clap::Args)]
pub struct StackPlace {
    /// Where booking-core, payment-sandbox and edge-proxy are.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/release"))]
    pub bin_dir: PathBuf,
    /// PostgreSQL to create the run's scratch database in.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub database_url: String,
}

pub struct Bins {
    pub core: PathBuf,
    pub sandbox: PathBuf,
    pub edge: PathBuf,
}

impl Bins {
    pub fn in_dir(dir: &Path) -> Bins {
        Bins {
            core: dir.join("booking-core"),
            sandbox: dir.join("payment-sandbox"),
            edge: dir.join("edge-proxy"),
        }
    }
}

/// Extra environment for each of the stack's processes (logs, traces).
#[derive(Debug, Clone, Default)]
pub struct StackEnv {
    pub core: Vec<(String, String)>,
    pub edge: Vec<(String, String)>,
    pub sandbox: Vec<(String, String)>,
}

impl StackEnv {
    /// Every service logging with `filter` in `format` (`text` or `json`)
    /// and, with a collector, exporting its spans there at `ratio`.
    pub fn telemetry(filter: &str, format: &str, otlp: Option<(&str, f64)>) -> StackEnv {
        let pairs = |prefix: &str| {
            let mut env = vec![
                ("RUST_LOG".to_owned(), filter.to_owned()),
                (format!("{prefix}LOG__FILTER"), filter.to_owned()),
                (format!("{prefix}LOG__FORMAT"), format.to_owned()),
            ];
            if let Some((url, ratio)) = otlp {
                env.push((format!("{prefix}TRACE__OTLP_ENDPOINT"), url.to_owned()));
                env.push((format!("{prefix}TRACE__SAMPLE_RATIO"), ratio.to_string()));
            }
            env
        };
        let mut sandbox = vec![
            ("RUST_LOG".to_owned(), filter.to_owned()),
            ("SANDBOX_LOG_FORMAT".to_owned(), format.to_owned()),
        ];
        if let Some((url, ratio)) = otlp {
            sandbox.push(("SANDBOX_OTLP_ENDPOINT".to_owned(), url.to_owned()));
            sandbox.push(("SANDBOX_TRACE_SAMPLE_RATIO".to_owned(), ratio.to_string()));
        }
        StackEnv {
            core: pairs("USHER_CORE__"),
            edge: pairs("USHER_EDGE__"),
            sandbox,
        }
    }
}

impl SimStack {
    pub async fn start(
        scenario: &Scenario,
        bins: &Bins,
        database_url: &str,
        passthrough: bool,
        on_sale_at: DateTime<Utc>,
    ) -> anyhow::Result<SimStack> {
        Self::start_with_env(
            scenario,
            bins,
            database_url,
            passthrough,
            on_sale_at,
            &StackEnv::default(),
        )
        .await
    }

    /// As `start`, with extra environment for the processes.
    pub async fn start_with_env(
        scenario: &Scenario,
        bins: &Bins,
        database_url: &str,
        passthrough: bool,
        on_sale_at: DateTime<Utc>,
        extra: &StackEnv,
    ) -> anyhow::Result<SimStack> {
        for b in [&bins.core, &bins.sandbox, &bins.edge] {
            if !b.exists() {
                bail!(
                    "{} not found: build with `cargo build --release -p booking-core -p edge-proxy -p loadtests` (or pass --bin-dir)",
                    b.display()
                );
            }
        }
        let core_port = port();
        let sandbox = Sandbox::start_with_env(&bins.sandbox, port(), core_port, &extra.sandbox).await?;
        let stack_args = StackArgs {
            database_url: database_url.to_owned(),
            core_bin: bins.core.clone(),
            core_config: Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/booking-core.toml"),
            pool: 16,
            port: core_port,
        };
        let (edge_port, admin_port, streams_port) = (port(), port(), port());
        let mut env = sandbox.core_env();
        // The venue portal reaches this run's edge through its admin API.
        env.push((
            "USHER_CORE__EDGE__ADMIN_URL".into(),
            format!("http://127.0.0.1:{admin_port}"),
        ));
        env.push(("USHER_CORE__EDGE__ADMIN_TOKEN".into(), ADMIN_TOKEN.into()));
        // Fans' confirmation mails go nowhere; the outbox still runs.
        env.push(("USHER_CORE__NOTIFICATIONS__EMAIL".into(), "log".into()));
        // Scraped as an SRE's Prometheus would (on its own listener).
        let metrics_port = port();
        env.push((
            "USHER_CORE__HTTP__METRICS_LISTEN".into(),
            format!("127.0.0.1:{metrics_port}"),
        ));
        env.extend(extra.core.iter().cloned());
        let core = Stack::start_with_env(&stack_args, &env).await?;
        let dir = core.log_path().to_path_buf();

        let (event, venue) = set_up_sale(scenario, &core, bins, &dir, on_sale_at)
            .await
            .context("setting up the sale")?;

        let (redis, redis_url) = private_redis().await?;

        let key = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/usher-local/keys/edge-1.pem");
        let ad = &scenario.admission;
        let mode = if passthrough {
            QueueMode::Passthrough
        } else {
            QueueMode::Fifo
        };
        let mut config = EdgeConfig::new(
            edge_port,
            &format!("127.0.0.1:{core_port}"),
            &redis_url,
            ("edge-1", &key),
            (admin_port, ADMIN_TOKEN),
            vec![ad.room(event, mode, on_sale_at)],
        );
        config.listen.streams = Some(format!("127.0.0.1:{streams_port}"));
        config.listen.stream_origins = vec![format!("http://127.0.0.1:{edge_port}")];
        config.protection = Some(Protection {
            event_paths: vec![
                "/v1/events/{event}/holds".into(),
                "/v1/events/{event}/seat-changes".into(),
                "/events/{event}/seats".into(),
            ],
            session_prefixes: Vec::new(),
            optional_prefixes: vec!["/v1/orders".into(), "/v1/holds/".into()],
            after_admission: "/events/{event}/seats".into(),
        });
        config.upstream.health_check_interval_ms = Some(500);
        config.rate_limits = RateLimits::per_address(ad.join_per_minute, ad.status_per_minute, ad.protected_per_minute);
        config.log.filter = "warn,pingora=error".into();
        // A scenario's own tables ([defence] for the bot farm) go after.
        let tables = scenario.edge_extra.replace("{stack_dir}", &dir.display().to_string());
        config.write(&dir.join("edge.toml"), &tables)?;
        let log = std::fs::File::create(dir.join("edge-proxy.log"))?;
        let edge = Command::new(&bins.edge)
            .arg("--config")
            .arg(dir.join("edge.toml"))
            .env_remove("REDIS_URL")
            .envs(extra.edge.iter().map(|(k, v)| (k, v)))
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("starting edge-proxy")?;
        wait_for(edge_port).await?;
        wait_for(admin_port).await?;
        let edge_base = format!("http://127.0.0.1:{edge_port}");
        // Ready once the edge sees a healthy core behind it.
        if !ready_within_10s(&reqwest::Client::new(), &format!("{edge_base}/readyz")).await {
            bail!("edge-proxy does not reach booking-core; see {}", dir.display());
        }
        Ok(SimStack {
            core,
            sandbox,
            redis,
            redis_url,
            edge,
            edge_base,
            admin_base: format!("http://127.0.0.1:{admin_port}"),
            core_metrics: format!("http://127.0.0.1:{metrics_port}/metrics"),
            dir,
            event,
            venue,
        })
    }

    pub fn pids(&mut self) -> Vec<(&'static str, Option<u32>)> {
        vec![
            ("booking-core", self.core.pid()),
            ("edge-proxy", self.edge.id()),
            ("payment-sandbox", self.sandbox.pid()),
            ("redis-server", self.redis.id()),
        ]
    }

    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.edge.kill().await.ok();
        self.sandbox.child.kill().await.ok();
        self.redis.kill().await.ok();
        self.core.stop().await
    }
}

/// The event on sale: a generated venue imported through `booking-core
/// import`, or a protected copy of the seeded stadium event.
async fn set_up_sale(
    scenario: &Scenario,
    core: &Stack,
    bins: &Bins,
    dir: &Path,
    on_sale_at: DateTime<Utc>,
) -> anyhow::Result<(i64, i64)> {
    let sale = &scenario.sale;
    if scenario.venue.seeded.is_some() {
        let http = reqwest::Client::new();
        let (source, _) = crate::holds::stadium(&http, &core.base, 0).await?;
        let event = crate::holds::copy_event(core, source, &format!("sim-{}", scenario.name)).await?;
        let venue: i64 = sqlx::query_scalar(
            "UPDATE events SET protected = true, on_sale_at = $2, hold_ttl_secs = $3, hold_jitter_secs = $4,
                               max_seats_per_fan = $5
             WHERE id = $1 RETURNING venue_id",
        )
        .bind(event)
        .bind(on_sale_at)
        .bind(sale.hold_secs as i32)
        .bind((sale.hold_secs / 10) as i32)
        .bind(sale.max_seats_per_fan as i32)
        .fetch_one(&core.pool)
        .await?;
        return Ok((event, venue));
    }
    let (chart, event) = generated(scenario, on_sale_at);
    std::fs::write(dir.join("venue.json"), serde_json::to_vec(&chart)?)?;
    std::fs::write(dir.join("event.json"), serde_json::to_vec(&event)?)?;
    let mut import = core.command(&bins.core, "import");
    import_ids(&mut import, dir).await
}

/// The scenario's generated venue and event, imported by one of the
/// cluster's own cores (`booking-core import` in its container, with its
/// configuration): the chaos run's set-up. The seeded stadium is not
/// offered here.
pub async fn import_sale_in(
    scenario: &Scenario,
    container: &str,
    dir: &Path,
    on_sale_at: DateTime<Utc>,
) -> anyhow::Result<(i64, i64)> {
    if scenario.venue.seeded.is_some() {
        bail!("the scenario sells the seeded stadium; a cluster run needs a generated venue");
    }
    let (chart, event) = generated(scenario, on_sale_at);
    std::fs::write(dir.join("venue.json"), serde_json::to_vec(&chart)?)?;
    std::fs::write(dir.join("event.json"), serde_json::to_vec(&event)?)?;
    for file in ["venue.json", "event.json"] {
        let copied = Command::new("docker")
            .arg("cp")
            .arg(dir.join(file))
            .arg(format!("{container}:/tmp/{file}"))
            .status()
            .await
            .context("running docker cp")?;
        if !copied.success() {
            bail!("docker cp {file} to {container} failed");
        }
    }
    let mut import = Command::new("docker");
    import.args([
        "exec",
        "-e",
        "RUST_LOG=warn",
        container,
        "booking-core",
        "--config",
        "/etc/usher/booking-core.toml",
        "import",
    ]);
    import_ids(&mut import, Path::new("/tmp")).await
}

async fn import_ids(import: &mut Command, dir: &Path) -> anyhow::Result<(i64, i64)> {
    let out = import
        .arg("--venue")
        .arg(dir.join("venue.json"))
        .arg("--event")
        .arg(dir.join("event.json"))
        .output()
        .await?;
    if !out.status.success() {
        bail!("booking-core import: {}", String::from_utf8_lossy(&out.stderr));
    }
    let ids: Value = serde_json::from_slice(&out.stdout).context("booking-core import's answer")?;
    let event = ids["event_id"].as_i64().context("no event id")?;
    let venue = ids["venue_id"].as_i64().context("no venue id")?;
    Ok((event, venue))
}

/// A block of sections in front of a stage, rows of seats in each; the
/// front sections are the dearest tier. Written in the import format.
fn generated(scenario: &Scenario, on_sale_at: DateTime<Utc>) -> (Value, Value) {
    let v = &scenario.venue;
    let per_tier = v.sections.div_ceil(v.tiers);
    let sections: Vec<Value> = (0..v.sections)
        .map(|s| {
            let rows: Vec<Value> = (0..v.rows)
                .map(|r| {
                    let seats: Vec<Value> = (0..v.seats_per_row)
                        .map(|n| {
                            serde_json::json!({
                                "number": n + 1,
                                "x": (s * (v.seats_per_row + 2) + n) as f32,
                                "y": (r + 2) as f32,
                                "tier": (s / per_tier + 1) as i16,
                                "accessible": r == 0 && n < 2,
                                "obstructed": false,
                            })
                        })
                        .collect();
                    serde_json::json!({"label": format!("{}", r + 1), "seats": seats})
                })
                .collect();
            serde_json::json!({"code": format!("S{}", s + 1), "name": format!("Section {}", s + 1), "rows": rows})
        })
        .collect();
    let slug = format!("sim-{}-{}", scenario.name, on_sale_at.timestamp());
    let width = (v.sections * (v.seats_per_row + 2)) as f32;
    let chart = serde_json::json!({
        "slug": slug,
        "name": format!("Simulation hall ({})", scenario.name),
        "city": "Testville",
        "country": "GB",
        "timezone": "Europe/London",
        "focal": {"x": width / 2.0, "y": 0.0},
        "sections": sections,
    });
    let tiers: Vec<Value> = (0..v.tiers)
        .map(|t| serde_json::json!({"tier": t + 1, "name": format!("Tier {}", t + 1), "price_cents": 9_000 - 2_000 * t as i64}))
        .collect();
    let event = serde_json::json!({
        "slug": slug,
        "venue_slug": slug,
        "title": format!("Flash sale: {}", scenario.name),
        "artist": "The Simulated",
        "category": "concert",
        "description": "A simulated on-sale.",
        "starts_at": on_sale_at + chrono::Duration::days(30),
        "on_sale_at": on_sale_at,
        "rules": {
            "hold_ttl_secs": scenario.sale.hold_secs,
            "hold_jitter_secs": scenario.sale.hold_secs / 10,
            "max_seats_per_fan": scenario.sale.max_seats_per_fan,
            "protected": true,
        },
        "tiers": tiers,
    });
    (chart, event)
}
