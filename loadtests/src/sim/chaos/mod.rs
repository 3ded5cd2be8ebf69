//! `usher-load chaos`: a scenario's on-sale against the cluster
//! (`deploy/cluster`) while faults strike one node at a time on a schedule:
//! the PostgreSQL leader killed and paused, the queue's Redis master
//! stopped, an edge and a core killed, a core cut off from the database.
//! Each fault is timed (noticed, served around) and healed; afterwards the
//! same invariants as the simulator's are read from the database and the
//! processor's books, plus: every order a fan was told is confirmed is
//! confirmed and ticketed, and under 1% of fans' requests failed.

pub mod cluster;
pub mod faults;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::sim::chart::{Series, line_chart};
use crate::sim::scenario::Scenario;
use crate::sim::{Run, Target, herd, report, stack};
use cluster::Cluster;
use faults::{Fault, Struck};

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// A scenario file, e.g. loadtests/scenarios/arena.toml.
    #[arg(long)]
    pub scenario: PathBuf,
    /// Faults and when they strike, in seconds after the on-sale:
    /// `pg-leader-kill@5,core-kill@20`; `all` strikes each of the six in
    /// turn, from --first every --every seconds.
    #[arg(long, default_value = "all")]
    pub faults: String,
    #[arg(long, default_value_t = 3.0)]
    pub first: f64,
    #[arg(long, default_value_t = 25.0)]
    pub every: f64,
    /// Seconds from a fault to its healing (the node started again,
    /// unpaused, reconnected).
    #[arg(long, default_value_t = 15)]
    pub heal_after: u64,
    /// The settings file deploy/cluster/up writes.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/usher-cluster/cluster.env"))]
    pub cluster_env: PathBuf,
    /// Where the report goes (default target/usher-chaos/<scenario>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Said in the report: how the run was started.
    #[arg(long, default_value = "")]
    pub command_line: String,
}

/// The schedule, run beside the herd: `begin` when the fans are let loose,
/// `finish` once they are done (it waits for every fault to be healed).
pub struct Injector {
    plan: Vec<(Fault, f64)>,
    cluster: Cluster,
    heal_after: Duration,
    event: i64,
    task: Mutex<Option<JoinHandle<Vec<Struck>>>>,
    start: Mutex<Option<Instant>>,
}

impl Injector {
    pub fn begin(&self, start: Instant, on_sale: Instant) {
        let plan = self.plan.clone();
        let (cluster, heal_after, event) = (self.cluster.clone(), self.heal_after, self.event);
        *self.start.lock().unwrap_or_else(|e| e.into_inner()) = Some(start);
        let task = tokio::spawn(async move {
            let mut struck = Vec::new();
            // One fault at a time: each waits for its turn and for the one
            // before it to be healed, so no two overlap.
            for (fault, at) in plan {
                tokio::time::sleep_until(on_sale + Duration::from_secs_f64(at)).await;
                struck.push(faults::strike(fault, &cluster, event, heal_after).await);
            }
            struck
        });
        *self.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
    }

    /// Every fault struck and healed; with each window on the run's clock
    /// (from a request deadline before the strike to its recovery or its
    /// healing, whichever came later, plus the fans' back-off).
    pub async fn finish(&self) -> (Vec<Struck>, Vec<(u32, u32)>, Vec<u32>) {
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        let struck = match task {
            Some(t) => t.await.unwrap_or_default(),
            None => Vec::new(),
        };
        let start = self
            .start
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .unwrap_or_else(Instant::now);
        let windows = struck
            .iter()
            .filter(|s| s.note.is_none() || s.healed_at.is_some())
            .map(|s| {
                let from = ms(s.at - start);
                // Until it recovered or was healed, whichever came later:
                // a node coming back (a rewind, a resync) disturbs too.
                let end = match (s.recovered.map(|r| s.at + r), s.healed_at) {
                    (Some(r), Some(h)) => r.max(h),
                    (r, h) => r.or(h).unwrap_or_else(Instant::now),
                };
                (from.saturating_sub(WINDOW_LEAD_MS), ms(end - start) + WINDOW_SLACK_MS)
            })
            .collect();
        let at = struck.iter().map(|s| ms(s.at - start)).collect();
        (struck, windows, at)
    }
}

/// After a recovery, fans still finish answers that began in the outage.
const WINDOW_SLACK_MS: u32 = 5_000;
/// A request is recorded when it was sent: one sent this long before the
/// fault (the core's request deadline) may still be failed by it.
const WINDOW_LEAD_MS: u32 = 10_000;

fn ms(d: Duration) -> u32 {
    d.as_millis().min(u128::from(u32::MAX)) as u32
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let scenario = Scenario::load(&args.scenario)?;
    let cluster = Cluster::from_env_file(&args.cluster_env)?;
    let plan = faults::schedule(&args.faults, args.first, args.every)?;
    let out = args.out.clone().unwrap_or_else(|| {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/usher-chaos")).join(&scenario.name)
    });
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    eprintln!(
        "chaos on {}: {} fans; faults {}",
        scenario.name,
        scenario.fans,
        plan.iter()
            .map(|(f, at)| format!("{}@{at:.0}s", f.name()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let later = chrono::Utc::now() + chrono::Duration::days(1);
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(30))
        .connect(&cluster.database_url)
        .await
        .context("connecting to the cluster's database (is deploy/cluster/up running?)")?;
    let (event, venue) = stack::import_sale_in(&scenario, &cluster::container("core-1"), &out, later)
        .await
        .context("setting up the sale")?;
    let target = Target {
        edge: cluster.fans.clone(),
        admin: cluster.admin.clone(),
        admin_token: cluster.admin_token.clone(),
        core: cluster.core.clone(),
        sandbox: cluster.sandbox.clone(),
        sandbox_key: cluster::SANDBOX_KEY.into(),
        redis: None,
        pool,
        event,
        venue,
    };
    let injector = Injector {
        plan,
        cluster: cluster.clone(),
        heal_after: Duration::from_secs(args.heal_after),
        event,
        task: Mutex::new(None),
        start: Mutex::new(None),
    };
    let began = Instant::now();
    let mut run = herd(&scenario, &target, false, Some(&injector)).await?;
    run.stack_secs = began.elapsed().as_secs_f64();
    let command = if args.command_line.is_empty() {
        std::env::args().collect::<Vec<_>>().join(" ")
    } else {
        args.command_line.clone()
    };
    let summary = report::write(&out, &scenario, &run, None, &command)?;
    let chaos = chaos_section(&run);
    let mut text = std::fs::read_to_string(out.join("report.md")).unwrap_or_default();
    text.push_str(&chaos);
    std::fs::write(out.join("report.md"), text)?;
    std::fs::write(out.join("faults.svg"), faults_chart(&run))?;
    println!("{summary}");
    println!("{chaos}");
    println!("report: {}", out.join("report.md").display());
    if !run.findings.violations.is_empty() {
        bail!("invariants broken:\n  {}", run.findings.violations.join("\n  "));
    }
    if let Some(s) = run.faults.iter().find(|s| s.note.is_some()) {
        bail!("{} on {}: {}", s.fault.name(), s.node, s.note.as_deref().unwrap_or(""));
    }
    Ok(())
}

/// The faults' table and the invariants the chaos run adds.
fn chaos_section(run: &Run) -> String {
    let f = &run.findings;
    let mut s = String::from("\n## Faults\n\n![fans' requests per second, faults marked](faults.svg)\n\n");
    s.push_str("| fault | node | at (s after on-sale) | detected (s) | recovered (s) | fans' requests failed in its window |\n|---|---|---|---|---|---|\n");
    let secs = |d: Option<Duration>| d.map_or("never".to_string(), |d| format!("{:.1}", d.as_secs_f64()));
    for (i, st) in run.faults.iter().enumerate() {
        let (from, to) = run.fault_windows.get(i).copied().unwrap_or((0, 0));
        let failed = run
            .requests
            .iter()
            .filter(|r| (from..=to).contains(&r.at_ms) && (r.status >= 500 || r.status == 0))
            .count();
        let struck = run.fault_at_ms.get(i).copied().unwrap_or(from);
        let at = (f64::from(struck) - f64::from(run.on_sale_ms)) / 1000.0;
        let _ = writeln!(
            s,
            "| {} | {} | {at:.1} | {} | {} | {failed} |{}",
            st.fault.name(),
            st.node,
            secs(st.detected),
            secs(st.recovered),
            st.note.as_deref().map(|n| format!(" {n}")).unwrap_or_default()
        );
    }
    s.push_str("\nDetected and recovered mean, per fault:\n\n");
    for fault in faults::ALL {
        if run.faults.iter().any(|st| st.fault == fault) {
            let _ = writeln!(
                s,
                "- {}: detected when {}; recovered when {}.",
                fault.name(),
                fault.detection(),
                fault.recovery()
            );
        }
    }
    let share = if f.requests > 0 {
        100.0 * f.failed as f64 / f.requests as f64
    } else {
        0.0
    };
    let _ = write!(
        s,
        "\n### Invariants after the faults\n\n\
         - seats sold twice: {}\n\
         - confirmed orders lost (told confirmed, not confirmed with every ticket now): {}\n\
         - charges without tickets or refund: {}\n\
         - double charges: {}\n\
         - FIFO inversions: {}\n\
         - places fans were told they lost: {}\n\
         - fans' requests failed (5xx or no answer): {} of {} ({share:.2}%, goal under {:.0}%: {}), {} of them inside a fault's window, {} 5xx outside every window\n",
        f.oversold,
        f.confirmed_lost.len(),
        f.charged_without_ticket.len(),
        f.charged_twice.len(),
        f.inversions,
        run.fans.iter().map(|r| r.losses.len()).sum::<usize>(),
        f.failed,
        f.requests,
        crate::sim::verify::CHAOS_MAX_FAILED_SHARE * 100.0,
        if share < crate::sim::verify::CHAOS_MAX_FAILED_SHARE * 100.0 {
            "met"
        } else {
            "missed"
        },
        f.failed_in_faults,
        f.server_errors,
    );
    s
}

/// Fans' requests per second, answered and failed, with each fault as a
/// dashed line where it struck.
fn faults_chart(run: &Run) -> String {
    let secs = run.requests.iter().map(|r| r.at_ms / 1000).max().unwrap_or(0) as usize + 1;
    let (mut ok, mut failed) = (vec![0u32; secs], vec![0u32; secs]);
    for r in &run.requests {
        let i = (r.at_ms / 1000) as usize;
        if r.status >= 500 || r.status == 0 {
            failed[i] += 1;
        } else {
            ok[i] += 1;
        }
    }
    let on_sale = f64::from(run.on_sale_ms) / 1000.0;
    let x = |i: usize| i as f64;
    let top = f64::from(ok.iter().chain(&failed).copied().max().unwrap_or(1));
    let mut series = vec![
        Series::new(
            "answered",
            ok.iter().enumerate().map(|(i, n)| (x(i), f64::from(*n))).collect(),
        ),
        Series::new(
            "failed",
            failed.iter().enumerate().map(|(i, n)| (x(i), f64::from(*n))).collect(),
        ),
    ];
    for (i, st) in run.faults.iter().enumerate() {
        let at = f64::from(run.fault_at_ms.get(i).copied().unwrap_or(0)) / 1000.0;
        series.push(Series::new(st.fault.name(), vec![(at, 0.0), (at, top)]).dashed());
    }
    line_chart(
        "Fans' requests per second through the balancer, faults marked",
        &format!("seconds into the run (the on-sale at {on_sale:.0} s)"),
        "requests/s",
        &series,
    )
}
