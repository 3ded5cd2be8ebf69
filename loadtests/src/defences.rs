//! The bot defences' cost, in one run: how long a real browser (headless
//! Chromium, on the waiting page, fresh each time) takes to solve the join
//! puzzle at the local stack's default difficulty, and how many joins per
//! second one edge takes with the defences off and on (same machine, same
//! Redis, same clients), with the edge's own CPU per join. The edge's
//! verify cost alone is `cargo bench -p edge-proxy --bench pow`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;
use tokio::process::Command;
use usher_shared::admin::{QueueMode, RoomSettings};

use crate::browser::{Browser, DESKTOP};
use crate::edge_config::EdgeConfig;
use crate::process::{cpu_secs, port, private_redis, spawn, wait_for};

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/release/edge-proxy"))]
    pub edge_bin: PathBuf,
    /// The puzzle's difficulty in the browser (the local stack's default).
    #[arg(long, default_value_t = 16)]
    pub browser_bits: u8,
    /// Page loads in Chromium.
    #[arg(long, default_value_t = 9)]
    pub solves: usize,
    /// Seconds of joining, each way.
    #[arg(long, default_value_t = 10)]
    pub secs: u64,
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// The puzzle's difficulty for the join throughput (the edge's verify
    /// cost does not depend on it; the load generator's solving does).
    #[arg(long, default_value_t = 8)]
    pub join_bits: u8,
}

const UA: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36";

/// The defences as the local stack has them (puzzle, risk score, rules),
/// with the puzzle at `bits` and velocity thresholds above what this load
/// generator's few addresses send, so every join is checked and none is
/// refused.
fn defences(bits: u8) -> String {
    format!(
        "[defence.pow]\nbase_bits = {bits}\nmin_bits = {bits}\nmax_bits = 24\nnetwork_joins_per_minute = 100000000\n\
         [defence.risk]\nip_joins_per_minute = 100000000\nnetwork_joins_per_minute = 100000000\ntokens_per_binding = 100000000\n\
         [[defence.rules]]\nname = \"suspicious\"\nmin_score = 20.0\naction = \"harder\"\nextra_bits = 2\n\
         [[defence.rules]]\nname = \"flood\"\nmin_score = 50.0\naction = \"back_of_queue\"\ndelay_secs = 120\n\
         [[defence.rules]]\nname = \"bot\"\nmin_score = 80.0\naction = \"block\"\n"
    )
}

struct Edge {
    child: tokio::process::Child,
    base: String,
}

async fn start_edge(args: &Args, dir: &std::path::Path, redis: &str, event: i64, extra: &str) -> anyhow::Result<Edge> {
    let (http, admin) = (port(), port());
    let name = format!("edge-{http}");
    // Paused: joins take places and nobody is admitted; the upstream is
    // never reached.
    let config = EdgeConfig::new(
        http,
        "127.0.0.1:9",
        redis,
        ("bench", &dir.join("edge.pem")),
        (admin, "bench-admin-token-0123456789"),
        vec![RoomSettings::new(event, QueueMode::Paused, 60, 10, 600)],
    );
    config.write(&dir.join(format!("{name}.toml")), extra)?;
    let mut cmd = Command::new(&args.edge_bin);
    cmd.arg("--config")
        .arg(dir.join(format!("{name}.toml")))
        .env_remove("REDIS_URL");
    let child = spawn(cmd).context("starting edge-proxy")?;
    wait_for(http).await?;
    // Joins wait for the room's first tick.
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(Edge {
        child,
        base: format!("http://127.0.0.1:{http}"),
    })
}

/// One join as a client does it: with the defences on, a puzzle first.
async fn join(http: &reqwest::Client, base: &str, event: i64, client: &str, defended: bool) -> anyhow::Result<()> {
    let url = format!("{base}/queue/{event}/join");
    let req = |pow: Option<String>| {
        let mut r = http
            .post(&url)
            .header("usher-client", client)
            .header("user-agent", UA)
            .header("accept-language", "en-GB");
        if let Some(p) = pow {
            r = r.header("usher-pow", p);
        }
        r
    };
    let pow = if defended {
        let v: Value = http
            .get(format!("{base}/queue/{event}/challenge"))
            .header("usher-client", client)
            .header("user-agent", UA)
            .header("accept-language", "en-GB")
            .send()
            .await?
            .json()
            .await?;
        let (Some(c), Some(bits)) = (v["challenge"].as_str(), v["bits"].as_u64()) else {
            bail!("no challenge: {v}");
        };
        Some(crate::puzzle::proof(c, bits as u8))
    } else {
        None
    };
    let r = req(pow).send().await?;
    if r.status() != 200 {
        bail!("join answered {}: {}", r.status(), r.text().await.unwrap_or_default());
    }
    Ok(())
}

struct Throughput {
    joins_per_sec: f64,
    edge_cpu_us_per_join: f64,
    errors: u64,
}

async fn throughput(args: &Args, edge: &Edge, event: i64, defended: bool) -> anyhow::Result<Throughput> {
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let pid = edge.child.id().unwrap_or(0);
    let cpu0 = cpu_secs(pid);
    let started = Instant::now();
    let until = started + Duration::from_secs(args.secs);
    let mut tasks = Vec::new();
    for i in 0..args.concurrency {
        let (done, errors, base) = (done.clone(), errors.clone(), edge.base.clone());
        // Each task its own address, as separate clients would be.
        let ip: IpAddr = format!("127.0.60.{}", 1 + i % 250).parse()?;
        let http = reqwest::Client::builder().local_address(ip).build()?;
        tasks.push(tokio::spawn(async move {
            let mut k = 0u64;
            while Instant::now() < until {
                k += 1;
                match join(&http, &base, event, &format!("c{i}-{k}"), defended).await {
                    Ok(()) => done.fetch_add(1, Ordering::Relaxed),
                    Err(_) => errors.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let secs = started.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed);
    Ok(Throughput {
        joins_per_sec: n as f64 / secs,
        edge_cpu_us_per_join: (cpu_secs(pid) - cpu0) * 1e6 / n.max(1) as f64,
        errors: errors.load(Ordering::Relaxed),
    })
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    if !args.edge_bin.exists() {
        bail!(
            "{} not found: cargo build --release -p edge-proxy",
            args.edge_bin.display()
        );
    }
    let dir = std::env::temp_dir().join(format!("usher-defence-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("edge.pem"), usher_shared::keys::generate_pair().private_pem)?;
    let (_redis, redis) = private_redis().await?;

    // 1. The browser's solve time, fresh visitor each time.
    let event = 7_001;
    let edge = start_edge(&args, &dir, &redis, event, &defences(args.browser_bits)).await?;
    let browser = Browser::start_sized(DESKTOP).await;
    let mut solves = Vec::new();
    for _ in 0..args.solves {
        browser.goto(&format!("{}/queue/{event}", edge.base)).await;
        let pow = browser
            .wait_for(
                "const p = window.usherPow; return p && /^[0-9]/.test(document.getElementById('position').textContent) ? p : null",
                Duration::from_secs(60),
            )
            .await;
        solves.push((
            pow["ms"].as_f64().unwrap_or(f64::NAN),
            pow["hashes"].as_f64().unwrap_or(0.0),
        ));
        browser.delete_cookies().await;
    }
    browser.quit().await;
    drop(edge);
    let mut ms: Vec<f64> = solves.iter().map(|s| s.0).collect();
    ms.sort_by(f64::total_cmp);
    let hashes: f64 = solves.iter().map(|s| s.1).sum();
    let total_ms: f64 = solves.iter().map(|s| s.0).sum();

    // 2. Joins per second, off then on, one edge each, the same Redis.
    let off_edge = start_edge(&args, &dir, &redis, 7_002, "").await?;
    let off = throughput(&args, &off_edge, 7_002, false).await?;
    drop(off_edge);
    let on_edge = start_edge(&args, &dir, &redis, 7_003, &defences(args.join_bits)).await?;
    let on = throughput(&args, &on_edge, 7_003, true).await?;
    drop(on_edge);

    println!("# Bot defences: what they cost\n");
    println!(
        "## The puzzle in headless Chromium ({} bits, {} fresh page loads)\n",
        args.browser_bits, args.solves
    );
    println!("| | ms |\n| --- | ---: |");
    println!("| median solve | {:.0} |", ms[ms.len() / 2]);
    println!("| fastest | {:.0} |", ms[0]);
    println!("| slowest | {:.0} |", ms[ms.len() - 1]);
    println!(
        "\nhashes per second in the page: {:.0} (expected work at {} bits: {} hashes)\n",
        hashes / (total_ms / 1000.0),
        args.browser_bits,
        1u64 << args.browser_bits
    );
    println!(
        "## Joins through one edge ({} clients, {} s each way, puzzle at {} bits)\n",
        args.concurrency, args.secs, args.join_bits
    );
    println!("| | joins/s | vs off | edge CPU per join (µs) | errors |\n| --- | ---: | ---: | ---: | ---: |");
    for (name, t) in [("defences off", &off), ("defences on", &on)] {
        println!(
            "| {name} | {:.0} | {:.2}x | {:.0} | {} |",
            t.joins_per_sec,
            t.joins_per_sec / off.joins_per_sec,
            t.edge_cpu_us_per_join,
            t.errors
        );
    }
    println!(
        "\nWith the defences on a join is two requests (the challenge, then the join with its solution); the clients solve on the same two cores."
    );
    Ok(())
}
