//! The faults a chaos run injects, each done to one node as an outage
//! would: how it strikes, how the run sees the cluster notice it
//! (detection) and serve again (recovery), and how it is healed afterwards.

use std::time::Duration;

use anyhow::{Context, bail};
use tokio::time::Instant;

use super::cluster::{self, Cluster, container, docker};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `docker kill` (SIGKILL) of the PostgreSQL leader.
    PgLeaderKill,
    /// `docker pause` of the PostgreSQL leader: alive, silent.
    PgLeaderPause,
    /// `docker stop` of the Redis master holding the event's queue.
    RedisMasterStop,
    /// `docker kill` of one edge.
    EdgeKill,
    /// `docker kill` of one booking-core.
    CoreKill,
    /// One booking-core cut off from the database network.
    CoreDbCut,
}

pub const ALL: [Fault; 6] = [
    Fault::PgLeaderKill,
    Fault::RedisMasterStop,
    Fault::EdgeKill,
    Fault::CoreKill,
    Fault::CoreDbCut,
    Fault::PgLeaderPause,
];

impl Fault {
    pub fn name(self) -> &'static str {
        match self {
            Fault::PgLeaderKill => "pg-leader-kill",
            Fault::PgLeaderPause => "pg-leader-pause",
            Fault::RedisMasterStop => "redis-master-stop",
            Fault::EdgeKill => "edge-kill",
            Fault::CoreKill => "core-kill",
            Fault::CoreDbCut => "core-db-cut",
        }
    }

    pub fn parse(s: &str) -> Option<Fault> {
        ALL.into_iter().find(|f| f.name() == s)
    }

    /// What "noticed" means for this fault.
    pub fn detection(self) -> &'static str {
        match self {
            Fault::PgLeaderKill | Fault::PgLeaderPause => "another member is Patroni's leader",
            Fault::RedisMasterStop => "another node serves the queue's slot as master",
            Fault::EdgeKill => "the balancer's check marks the edge down",
            Fault::CoreKill | Fault::CoreDbCut => "the edges take the core out of rotation",
        }
    }

    /// What "serving again" means for this fault.
    pub fn recovery(self) -> &'static str {
        match self {
            Fault::PgLeaderKill | Fault::PgLeaderPause => "the first write through haproxy-db commits",
            Fault::RedisMasterStop => "the first write to the queue's slot succeeds",
            Fault::EdgeKill | Fault::CoreKill | Fault::CoreDbCut => {
                "fans' requests through the balancer answer again (they may never have stopped)"
            }
        }
    }
}

/// One fault as it happened.
#[derive(Debug, Clone)]
pub struct Struck {
    pub fault: Fault,
    /// The node it was done to.
    pub node: String,
    pub at: Instant,
    pub detected: Option<Duration>,
    pub recovered: Option<Duration>,
    pub healed_at: Option<Instant>,
    pub note: Option<String>,
}

/// How long detection and recovery are watched for before the fault is
/// reported as not recovered.
const WATCH: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(200);

/// Strikes `fault`, watches it noticed and served around, and heals it
/// `heal_after` after the strike (or once recovered, if later).
pub async fn strike(fault: Fault, cluster: &Cluster, event: i64, heal_after: Duration) -> Struck {
    let node = match victim(fault, event).await {
        Ok(n) => n,
        Err(e) => {
            return Struck {
                fault,
                node: "-".into(),
                at: Instant::now(),
                detected: None,
                recovered: None,
                healed_at: None,
                note: Some(format!("not struck: {e}")),
            };
        }
    };
    let before = Before::read(fault, &node).await;
    let at = Instant::now();
    let mut struck = Struck {
        fault,
        node: node.clone(),
        at,
        detected: None,
        recovered: None,
        healed_at: None,
        note: None,
    };
    if let Err(e) = inflict(fault, &node).await {
        struck.note = Some(format!("not struck: {e}"));
        return struck;
    }
    eprintln!("chaos: {} on {node}", fault.name());
    let (detected, recovered) = tokio::join!(
        watch(|| detected(fault, &node, &before, event)),
        watch(|| recovered(fault, cluster, event)),
    );
    struck.detected = detected.map(|t| t - at);
    struck.recovered = recovered.map(|t| t - at);
    tokio::time::sleep_until(at + heal_after).await;
    match heal(fault, &node).await {
        Ok(()) => struck.healed_at = Some(Instant::now()),
        Err(e) => struck.note = Some(format!("healing failed: {e}")),
    }
    struck
}

/// Polls `check` until it says yes (or the watch ends): when it did.
async fn watch<F, Fut>(check: F) -> Option<Instant>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = Instant::now() + WATCH;
    while Instant::now() < until {
        // Generous: on a machine the herd keeps busy a `docker exec` alone
        // can take seconds, and a check cut short would read as "not yet".
        if tokio::time::timeout(Duration::from_secs(10), check())
            .await
            .unwrap_or(false)
        {
            return Some(Instant::now());
        }
        tokio::time::sleep(POLL).await;
    }
    None
}

/// The node the fault is done to, chosen now (the leader moves).
async fn victim(fault: Fault, event: i64) -> anyhow::Result<String> {
    match fault {
        Fault::PgLeaderKill | Fault::PgLeaderPause => cluster::pg_leader().await.context("no PostgreSQL leader"),
        Fault::RedisMasterStop => cluster::redis_master_of(&queue_key(event))
            .await
            .context("no Redis master for the queue"),
        Fault::EdgeKill => Ok("edge-1".into()),
        Fault::CoreKill => Ok("core-1".into()),
        Fault::CoreDbCut => Ok("core-2".into()),
    }
}

/// A key in the event's queue slot (the edge's keys share the `{e<id>}` tag).
fn queue_key(event: i64) -> String {
    format!("usher:{{e{event}}}:chaos")
}

async fn inflict(fault: Fault, node: &str) -> anyhow::Result<()> {
    let c = container(node);
    match fault {
        Fault::PgLeaderKill | Fault::EdgeKill | Fault::CoreKill => docker(&["kill", "-s", "KILL", &c]).await?,
        Fault::PgLeaderPause => docker(&["pause", &c]).await?,
        Fault::RedisMasterStop => docker(&["stop", "-t", "1", &c]).await?,
        Fault::CoreDbCut => docker(&["network", "disconnect", "usher-data", &c]).await?,
    };
    Ok(())
}

async fn heal(fault: Fault, node: &str) -> anyhow::Result<()> {
    let c = container(node);
    match fault {
        Fault::PgLeaderKill | Fault::EdgeKill | Fault::CoreKill | Fault::RedisMasterStop => {
            docker(&["start", &c]).await?
        }
        Fault::PgLeaderPause => docker(&["unpause", &c]).await?,
        Fault::CoreDbCut => docker(&["network", "connect", "usher-data", &c]).await?,
    };
    Ok(())
}

/// What detection compares against: the core's address as the edges name
/// it in their metrics.
struct Before {
    core_addr: Option<String>,
}

impl Before {
    async fn read(fault: Fault, node: &str) -> Before {
        let core_addr = match fault {
            Fault::CoreKill | Fault::CoreDbCut => cluster::address_on(node, "usher-app").await,
            _ => None,
        };
        Before { core_addr }
    }
}

async fn detected(fault: Fault, node: &str, before: &Before, event: i64) -> bool {
    match fault {
        Fault::PgLeaderKill | Fault::PgLeaderPause => cluster::pg_leader().await.is_some_and(|l| l != node),
        Fault::RedisMasterStop => {
            // The stopped node cannot answer: the others say who serves.
            cluster::redis_master_of(&queue_key(event))
                .await
                .is_some_and(|m| m != node)
        }
        Fault::EdgeKill => balancer_says_down(node).await,
        Fault::CoreKill | Fault::CoreDbCut => match &before.core_addr {
            Some(addr) => edges_say_unready(addr).await,
            None => false,
        },
    }
}

async fn recovered(fault: Fault, cluster: &Cluster, event: i64) -> bool {
    match fault {
        Fault::PgLeaderKill | Fault::PgLeaderPause => write_commits(&cluster.database_url).await.is_ok(),
        Fault::RedisMasterStop => {
            let key = queue_key(event);
            for node in cluster::REDIS_NODES {
                if let Ok(out) = docker(&["exec", &container(node), "redis-cli", "-c", "set", &key, "1"]).await {
                    return out.trim() == "OK";
                }
            }
            false
        }
        Fault::EdgeKill | Fault::CoreKill | Fault::CoreDbCut => reqwest::Client::new()
            .get(format!("{}/v1/events", cluster.fans))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success()),
    }
}

/// One write on a fresh connection to the leader, as a new request would.
async fn write_commits(url: &str) -> anyhow::Result<()> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await?;
    sqlx::query("CREATE TABLE IF NOT EXISTS chaos_probe (at timestamptz NOT NULL DEFAULT now())")
        .execute(&mut conn)
        .await?;
    sqlx::query("INSERT INTO chaos_probe DEFAULT VALUES")
        .execute(&mut conn)
        .await?;
    conn.close().await.ok();
    Ok(())
}

/// HAProxy's own view of the edges, from its stats page (CSV).
async fn balancer_says_down(node: &str) -> bool {
    let Ok(csv) = docker(&["exec", &container("lb"), "bash", "-c", STATS]).await else {
        return false;
    };
    csv.lines().any(|l| {
        let f: Vec<&str> = l.split(',').collect();
        f.len() > 17 && f[1] == node && f[17].starts_with("DOWN")
    })
}

/// Reads HAProxy's stats socket-free: the stats page over bash's /dev/tcp.
const STATS: &str = "exec 3<>/dev/tcp/127.0.0.1/8404 && printf 'GET /stats;csv HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3";

/// Whether every edge that answers shows the core out of rotation.
async fn edges_say_unready(core_addr: &str) -> bool {
    let mut answered = 0;
    for edge in ["edge-1", "edge-2"] {
        let Ok(metrics) = docker(&["exec", &container(edge), "bash", "-c", METRICS]).await else {
            continue;
        };
        answered += 1;
        let ready = metrics
            .lines()
            .find(|l| l.starts_with("usher_upstream_ready{") && l.contains(&format!("\"{core_addr}:")));
        if !ready.is_some_and(|l| l.trim_end().ends_with(" 0")) {
            return false;
        }
    }
    answered > 0
}

const METRICS: &str = "exec 3<>/dev/tcp/127.0.0.1/8001 && printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3";

/// Reads `name@secs,name@secs` (or `all`, spread from `first` every `every`
/// seconds) into the schedule, seconds after the on-sale.
pub fn schedule(spec: &str, first: f64, every: f64) -> anyhow::Result<Vec<(Fault, f64)>> {
    if spec == "all" {
        return Ok(ALL
            .iter()
            .enumerate()
            .map(|(i, f)| (*f, first + every * i as f64))
            .collect());
    }
    spec.split(',')
        .map(|item| {
            let (name, at) = item.split_once('@').unwrap_or((item, "0"));
            let fault = Fault::parse(name.trim())
                .with_context(|| format!("unknown fault {name:?}; known: {}", ALL.map(Fault::name).join(", ")))?;
            let at: f64 = at
                .trim()
                .parse()
                .with_context(|| format!("{item:?}: seconds after @"))?;
            if !(0.0..=3600.0).contains(&at) {
                bail!("{item:?}: the time must be 0..=3600 seconds after the on-sale");
            }
            Ok((fault, at))
        })
        .collect()
}
