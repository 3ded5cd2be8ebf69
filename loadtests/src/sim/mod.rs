//! The flash-sale simulator: one command that starts the whole stack, lets
//! a scenario's herd of fans loose on it through the edge, checks the
//! invariants from the database and the processor's books, and writes a
//! report with charts. With `compare_passthrough`, the same herd runs again
//! with the waiting room in passthrough, side by side in the report.

pub mod books;
pub mod chaos;
pub mod chart;
pub mod fan;
pub mod record;
pub mod report;
pub mod scenario;
pub mod stack;
pub mod verify;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use usher_shared::admin::QueueMode;

use crate::edge_admin;
use crate::process::{cpu_secs, peak_rss, redis_commands};

use record::{FanRecord, Recorder, Req, Sample};
use scenario::Scenario;
use stack::{ADMIN_TOKEN, Bins, SimStack};

/// What the herd is let loose on: the simulator's own stack, or the
/// cluster (`chaos`).
pub struct Target {
    /// Fans' entry (the edge, or the balancer in front of the edges).
    pub edge: String,
    pub admin: String,
    pub admin_token: String,
    /// The core past the edge: sign-in, the seat map, readiness.
    pub core: String,
    pub sandbox: String,
    /// The key the sandbox's books are read with.
    pub sandbox_key: String,
    /// Sampled for its command count, when reachable.
    pub redis: Option<String>,
    /// The database, for set-up, samples and the invariants.
    pub pool: sqlx::PgPool,
    pub event: i64,
    pub venue: i64,
}

impl SimStack {
    fn target(&self) -> Target {
        Target {
            edge: self.edge_base.clone(),
            admin: self.admin_base.clone(),
            admin_token: ADMIN_TOKEN.into(),
            core: self.core.base.clone(),
            sandbox: self.sandbox.url.clone(),
            sandbox_key: crate::sandbox::API_KEY.into(),
            redis: Some(self.redis_url.clone()),
            pool: self.core.pool.clone(),
            event: self.event,
            venue: self.venue,
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// A scenario file, e.g. loadtests/scenarios/smoke.toml.
    #[arg(long)]
    pub scenario: PathBuf,
    #[command(flatten)]
    pub stack: stack::StackPlace,
    /// Where the report goes (default target/usher-sim/<scenario>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also run the herd with the waiting room in passthrough (the
    /// scenario's `compare_passthrough` does the same).
    #[arg(long)]
    pub compare_passthrough: bool,
    /// Said in the report: how the run was started.
    #[arg(long, default_value = "")]
    pub command_line: String,
}

/// Everything one run produced.
pub struct Run {
    pub fans: Vec<FanRecord>,
    pub requests: Vec<Req>,
    pub errors: std::collections::BTreeMap<(record::Kind, u16, String), u64>,
    pub samples: Vec<Sample>,
    pub findings: verify::Findings,
    /// Milliseconds from the start of arrivals to the on-sale.
    pub on_sale_ms: u32,
    pub elapsed: Duration,
    pub processes: Vec<Usage>,
    /// Wall time from starting the stack to reading its usage.
    pub stack_secs: f64,
    pub streams_peak: i64,
    pub core_ready_fail: u64,
    /// The faults a chaos run struck, and their windows on the run's clock.
    pub faults: Vec<chaos::faults::Struck>,
    pub fault_windows: Vec<(u32, u32)>,
    pub fault_at_ms: Vec<u32>,
    /// The PostgreSQL settings the run had (name, value), for the report.
    pub pg_settings: Vec<(String, String)>,
}

/// The server settings that shape the on-sale's latency
/// (deploy/postgres/usher.conf chooses them).
const PG_SETTINGS: [&str; 14] = [
    "server_version",
    "max_connections",
    "shared_buffers",
    "effective_cache_size",
    "work_mem",
    "max_wal_size",
    "synchronous_commit",
    "random_page_cost",
    "jit",
    "autovacuum_naptime",
    "autovacuum_vacuum_scale_factor",
    "autovacuum_vacuum_cost_limit",
    "shared_preload_libraries",
    "log_lock_waits",
];

/// The settings of the server behind `pool`, as `SHOW` prints them.
async fn pg_settings(pool: &sqlx::PgPool) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for name in PG_SETTINGS {
        let value: Result<String, _> = sqlx::query_scalar("SELECT current_setting($1)")
            .bind(name)
            .fetch_one(pool)
            .await;
        out.push((name.to_owned(), value.unwrap_or_else(|e| format!("? ({e})"))));
    }
    out
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let scenario = Scenario::load(&args.scenario)?;
    let bins = Bins::in_dir(&args.stack.bin_dir);
    let out = args.out.clone().unwrap_or_else(|| {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/usher-sim")).join(&scenario.name)
    });
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    eprintln!(
        "scenario {}: {} fans, waiting room at {}/min, {} active",
        scenario.name, scenario.fans, scenario.admission.admit_per_minute, scenario.admission.max_active
    );
    let main = run_once(&scenario, &bins, &args.stack.database_url, false).await?;
    let compare = if args.compare_passthrough || scenario.compare_passthrough {
        eprintln!("the same herd again, waiting room in passthrough...");
        Some(run_once(&scenario, &bins, &args.stack.database_url, true).await?)
    } else {
        None
    };
    let command = if args.command_line.is_empty() {
        std::env::args().collect::<Vec<_>>().join(" ")
    } else {
        args.command_line.clone()
    };
    let summary = report::write(&out, &scenario, &main, compare.as_ref(), &command)?;
    println!("{summary}");
    println!("report: {}", out.join("report.md").display());
    if !main.findings.violations.is_empty() {
        bail!("invariants broken:\n  {}", main.findings.violations.join("\n  "));
    }
    Ok(())
}

async fn run_once(scenario: &Scenario, bins: &Bins, database_url: &str, passthrough: bool) -> anyhow::Result<Run> {
    // The core sells from now; the edge admits nobody until the herd is
    // ready, then the on-sale is set through its admin API.
    let later = chrono::Utc::now() + chrono::Duration::days(1);
    let fans_cpu = cpu_secs(std::process::id());
    let began = Instant::now();
    let mut st = SimStack::start(scenario, bins, database_url, passthrough, later).await?;
    let result = herd(scenario, &st.target(), passthrough, None).await;
    if result.is_err() {
        eprintln!("logs: {}", st.dir.display());
    }
    let mut run = result?;
    run.stack_secs = began.elapsed().as_secs_f64();
    run.processes = st
        .pids()
        .into_iter()
        .map(|(name, pid)| Usage {
            name,
            peak_rss: pid.map_or(0, peak_rss),
            cpu_secs: pid.map_or(0.0, cpu_secs),
        })
        .chain([Usage {
            name: "usher-load (the fans)",
            peak_rss: peak_rss(std::process::id()),
            cpu_secs: cpu_secs(std::process::id()) - fans_cpu,
        }])
        .collect();
    st.stop().await?;
    Ok(run)
}

async fn herd(
    scenario: &Scenario,
    st: &Target,
    passthrough: bool,
    chaos: Option<&chaos::Injector>,
) -> anyhow::Result<Run> {
    let began_unix = chrono::Utc::now().timestamp();
    let setup = reqwest::Client::new();
    // Starts from the past for the core: the edge alone decides when fans
    // get in.
    sqlx::query("UPDATE events SET on_sale_at = now() - interval '1 minute' WHERE id = $1")
        .bind(st.event)
        .execute(&st.pool)
        .await?;
    let map = fan::SeatMap::read(&setup, &st.core, st.venue).await?;
    eprintln!(
        "signing in {} fans; {} seats on sale (event {})...",
        scenario.fans, map.seat_count, st.event
    );
    let tokens = crate::fans::sign_in_many(&setup, &st.core, "fan", scenario.fans).await?;
    let clients: Vec<reqwest::Client> = (0..scenario.client.source_addresses)
        .map(|i| {
            fan::client_on(std::net::Ipv4Addr::new(127, 0, 1, 1 + i as u8))
                .pool_max_idle_per_host(
                    (scenario.client.max_in_flight
                        + scenario.client.max_poll_in_flight
                        + scenario.client.max_shop_in_flight)
                        / scenario.client.source_addresses as usize
                        + 1,
                )
                .build()
        })
        .collect::<Result<_, _>>()?;

    // Every edge takes on a room opened through any one's admin API within
    // a second; the herd starts once they all have.
    let on_sale_wall = chrono::Utc::now()
        + chrono::Duration::from_std(ROOM_SPREAD)?
        + chrono::Duration::milliseconds((scenario.sale.on_sale_after_secs * 1000.0) as i64);
    let mode = if passthrough {
        QueueMode::Passthrough
    } else {
        QueueMode::Fifo
    };
    let room = scenario.admission.room(st.event, mode, on_sale_wall);
    // A busy or just-healed edge may turn the first try away (503): the
    // set-up retries, as an operator would, before it gives up.
    let mut tries = 0;
    while let Err(e) = edge_admin::put_room(&setup, &st.admin, &st.admin_token, &room).await {
        tries += 1;
        if tries >= 10 {
            return Err(e.context("setting the on-sale"));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    tokio::time::sleep(ROOM_SPREAD).await;
    let start = Instant::now();
    let on_sale = start + Duration::from_secs_f64(scenario.sale.on_sale_after_secs);
    let deadline = on_sale + Duration::from_secs(scenario.max_secs);
    let world = Arc::new(fan::World {
        scenario: scenario.clone(),
        edge: st.edge.clone(),
        event: st.event,
        map,
        clients,
        in_flight: Semaphore::new(scenario.client.max_in_flight),
        poll_in_flight: Semaphore::new(scenario.client.max_poll_in_flight),
        shop_in_flight: Semaphore::new(scenario.client.max_shop_in_flight),
        streams: Semaphore::new(scenario.client.max_streams),
        rec: Recorder::new(start.into_std()),
        deadline,
        sold_out: AtomicBool::new(false),
    });
    let plans = fan::plans(scenario, start, on_sale, &tokens);
    drop(tokens);

    if let Some(chaos) = chaos {
        chaos.begin(start, on_sale);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = tokio::spawn(sample(world.clone(), SampleTargets::of(st), stop.clone()));
    // Each fan's task starts when the fan arrives: a fan not yet here costs
    // only its plan.
    let mut plans = plans;
    plans.sort_by_key(|p| std::cmp::Reverse(p.arrive));
    let mut tasks = tokio::task::JoinSet::new();
    let mut fans = Vec::with_capacity(scenario.fans);
    let give_up = deadline + Duration::from_secs(90);
    loop {
        let next_arrival = plans.last().map(|p| p.arrive);
        tokio::select! {
            _ = tokio::time::sleep_until(next_arrival.unwrap_or(give_up)), if next_arrival.is_some() => {
                let now = Instant::now();
                while plans.last().is_some_and(|p| p.arrive <= now) {
                    if let Some(plan) = plans.pop() {
                        tasks.spawn(fan::live(world.clone(), plan));
                    }
                }
            }
            done = tokio::time::timeout_at(give_up, tasks.join_next()), if !tasks.is_empty() || plans.is_empty() => {
                match done {
                    Ok(Some(Ok(r))) => fans.push(r),
                    Ok(Some(Err(e))) => bail!("a fan's task failed: {e}"),
                    Ok(None) => break,
                    Err(_) => {
                        eprintln!("{} fans still busy 90 s after the deadline; stopping them", tasks.len());
                        tasks.abort_all();
                        break;
                    }
                }
            }
        }
    }
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (faults, fault_windows, fault_at_ms) = match chaos {
        Some(chaos) => chaos.finish().await,
        None => (Vec::new(), Vec::new(), Vec::new()),
    };
    let (samples, core_ready_fail) = sampler.await.context("sampler")?;
    fans.sort_by_key(|f| f.id);
    let requests = world.rec.take_requests();
    eprintln!("fans done after {:.0} s; checking the books...", elapsed.as_secs_f64());
    let pg_settings = pg_settings(&st.pool).await;
    let findings = verify::check(
        scenario,
        &st.pool,
        (&st.sandbox, &st.sandbox_key),
        st.event,
        &verify::Observed {
            fans: &fans,
            requests: &requests,
            passthrough,
            clock: &world.rec,
            on_sale_ms: (on_sale - start).as_millis() as u32,
            fault_windows: &fault_windows,
            began_unix,
        },
    )
    .await?;
    Ok(Run {
        fans,
        requests,
        errors: world.rec.take_errors(),
        samples,
        findings,
        on_sale_ms: (on_sale - start).as_millis() as u32,
        elapsed,
        processes: Vec::new(),
        stack_secs: 0.0,
        streams_peak: world.rec.streams_peak.load(Ordering::Relaxed),
        core_ready_fail,
        faults,
        fault_windows,
        fault_at_ms,
        pg_settings,
    })
}

/// How long a room opened through one edge takes to reach the others
/// (their tickers look once a second), with a margin.
const ROOM_SPREAD: Duration = Duration::from_millis(1_500);

struct SampleTargets {
    admin: String,
    admin_token: String,
    event: i64,
    redis: Option<String>,
    core: String,
    pool: sqlx::PgPool,
}

impl SampleTargets {
    fn of(st: &Target) -> SampleTargets {
        SampleTargets {
            admin: st.admin.clone(),
            admin_token: st.admin_token.clone(),
            event: st.event,
            redis: st.redis.clone(),
            core: st.core.clone(),
            pool: st.pool.clone(),
        }
    }
}

/// Once a second: the waiting room's figures from the edge's admin API,
/// Redis's command count, PostgreSQL's transaction count, seats sold, open
/// streams, and whether the core answers its readiness check within 2 s.
async fn sample(w: Arc<fan::World>, t: SampleTargets, stop: Arc<AtomicBool>) -> (Vec<Sample>, u64) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap_or_default();
    let mut redis = match t.redis.as_deref().map(redis::Client::open) {
        Some(Ok(c)) => c.get_multiplexed_async_connection().await.ok(),
        _ => None,
    };
    let mut samples = Vec::new();
    let mut ready_fail = 0;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let mut s = Sample {
            at_ms: w.rec.now_ms(),
            streams: w.rec.streams_open.load(Ordering::Relaxed),
            ..Sample::default()
        };
        if let Ok(room) = edge_admin::room(&http, &t.admin, &t.admin_token, t.event).await {
            let p = room.progress;
            s.waiting = p.waiting;
            s.active = p.active;
            s.admitted_total = p.admitted_total;
            s.rate = p.rate;
            s.lost_total = p.lost_total;
            s.ticks_failed = p.ticks_failed;
        }
        if let Some(conn) = redis.as_mut() {
            s.redis_commands = redis_commands(conn).await.unwrap_or(0);
        }
        s.pg_transactions = sqlx::query_scalar(
            "SELECT (xact_commit + xact_rollback)::bigint FROM pg_stat_database WHERE datname = current_database()",
        )
        .fetch_one(&t.pool)
        .await
        .unwrap_or(0);
        s.sold = verify::valid_tickets(&t.pool, t.event).await.unwrap_or(0);
        if !http
            .get(format!("{}/readyz", t.core))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            ready_fail += 1;
        }
        samples.push(s);
    }
    (samples, ready_fail)
}

/// What one process of the run used.
pub struct Usage {
    pub name: &'static str,
    /// The most resident memory it had, bytes.
    pub peak_rss: u64,
    /// CPU time (user and system) it used during this run.
    pub cpu_secs: f64,
}
