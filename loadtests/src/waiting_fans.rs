//! Waiting fans per edge instance: N fans join, then each holds a live
//! position stream (SSE) open, spread over several 127.0.0.x source
//! addresses, as a browser's EventSource would. It reports, for each N:
//! the edge's memory per open stream, its CPU, the Redis commands per second
//! it causes (a private Redis, so nothing else is counted) while the queue
//! stands still and while it moves (positions pushed to every fan on every
//! tick), and the position events delivered. The baseline beside it is the
//! naive design: one Redis read per fan per update.
//!
//! One process can hold about 19,900 sockets here (20,000 open files, not
//! raisable), so N stops at about 18,000 per edge; the 100,000 figure is a
//! projection from the measured memory per stream, stated as such.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use usher_shared::admin::{QueueMode, RoomSettings};

use crate::edge_admin;
use crate::edge_config::EdgeConfig;
use crate::process::{cpu_secs, port, private_redis, redis_commands, rss, spawn, wait_for};

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/release/edge-proxy"))]
    pub edge_bin: PathBuf,
    /// Numbers of waiting fans to measure, in increasing order.
    #[arg(long, value_delimiter = ',', default_value = "1000,18000")]
    pub fans: Vec<usize>,
    /// Seconds to measure each phase (standing, moving).
    #[arg(long, default_value_t = 10)]
    pub secs: u64,
    /// Source addresses 127.0.0.1 ..= 127.0.0.<sources>.
    #[arg(long, default_value_t = 4)]
    pub sources: u8,
    /// Admissions per minute while the queue moves.
    #[arg(long, default_value_t = 6000)]
    pub admit_per_minute: u32,
    /// Hold the streams through the proxy itself instead of the edge's
    /// dedicated stream listener.
    #[arg(long)]
    pub through_proxy: bool,
}

struct Joined {
    client: String,
    token: String,
}

fn source(i: usize, sources: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (i % sources.max(1) as usize) as u8))
}

/// Holds one fan's position stream open, counting the events that arrive.
async fn hold_stream(
    edge: SocketAddr,
    from: IpAddr,
    event: i64,
    fan: Joined,
    events: Arc<AtomicU64>,
    open: Arc<AtomicU64>,
) {
    let Ok(socket) = tokio::net::TcpSocket::new_v4() else {
        return;
    };
    if socket.bind(SocketAddr::new(from, 0)).is_err() {
        return;
    }
    let Ok(mut stream) = socket.connect(edge).await else {
        return;
    };
    let request = format!(
        "GET /queue/{event}/events HTTP/1.1\r\nHost: edge\r\nAccept: text/event-stream\r\nusher-client: {}\r\nAuthorization: Bearer {}\r\n\r\n",
        fan.client, fan.token
    );
    if stream.write_all(request.as_bytes()).await.is_err() {
        return;
    }
    open.fetch_add(1, Ordering::Relaxed);
    let mut buf = vec![0u8; 2048];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let got = buf[..n].windows(7).filter(|w| w == b"event: ").count();
                events.fetch_add(got as u64, Ordering::Relaxed);
            }
        }
    }
    open.fetch_sub(1, Ordering::Relaxed);
}

/// The edge's admin token in this benchmark's configuration.
const ADMIN_TOKEN: &str = "bench-admin-token-0123456789";

async fn set_room(http: &reqwest::Client, admin: u16, event: i64, mode: QueueMode, rate: u32) -> anyhow::Result<()> {
    let room = RoomSettings {
        grace_secs: 3600,
        ..RoomSettings::new(event, mode, rate, 10_000_000, 3600)
    };
    edge_admin::put_room(http, &format!("http://127.0.0.1:{admin}"), ADMIN_TOKEN, &room).await
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    if !args.edge_bin.exists() {
        bail!(
            "{} not found: cargo build --release -p edge-proxy",
            args.edge_bin.display()
        );
    }
    let dir = std::env::temp_dir().join(format!("usher-fans-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;

    // A private Redis: its command counter is the edge's alone.
    let (_redis, redis_url) = private_redis().await?;
    let mut redis_conn = redis::Client::open(redis_url.as_str())?
        .get_multiplexed_async_connection()
        .await?;

    let upstream = port();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", upstream)).await?;
    tokio::spawn(async move {
        axum::serve(listener, axum::Router::new().fallback(|| async { "ok" }))
            .await
            .ok()
    });

    let (edge_port, admin, streams_port) = (port(), port(), port());
    std::fs::write(dir.join("edge.pem"), usher_shared::keys::generate_pair().private_pem)?;
    let event = 1_000_000_000_000i64 + i64::from(rand::random::<u32>());
    // Paused: nobody is admitted, every fan waits with a stream open.
    let mut room = RoomSettings::new(event, QueueMode::Paused, 60, 10_000_000, 3600);
    room.grace_secs = 3600;
    let mut config = EdgeConfig::new(
        edge_port,
        &format!("127.0.0.1:{upstream}"),
        &redis_url,
        ("bench", &dir.join("edge.pem")),
        (admin, ADMIN_TOKEN),
        vec![room],
    );
    config.listen.streams = Some(format!("127.0.0.1:{streams_port}"));
    config.write(&dir.join("edge.toml"), "")?;
    let edge = spawn({
        let mut c = Command::new(&args.edge_bin);
        c.arg("--config").arg(dir.join("edge.toml"));
        c
    })?;
    let edge_pid = edge.id().context("edge pid")?;
    wait_for(edge_port).await?;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let edge_addr = SocketAddr::from(([127, 0, 0, 1], edge_port));
    let stream_addr = if args.through_proxy {
        edge_addr
    } else {
        SocketAddr::from(([127, 0, 0, 1], streams_port))
    };
    let admin_http = reqwest::Client::new();
    let joiners: Vec<reqwest::Client> = (0..args.sources)
        .map(|i| {
            reqwest::Client::builder()
                .local_address(source(i as usize, args.sources))
                .pool_max_idle_per_host(64)
                .build()
        })
        .collect::<Result<_, _>>()?;

    let events = Arc::new(AtomicU64::new(0));
    let open = Arc::new(AtomicU64::new(0));
    let rss_start = rss(edge_pid);
    let mut rows = Vec::new();
    let mut held = 0usize;
    for &n in &args.fans {
        set_room(&admin_http, admin, event, QueueMode::Paused, args.admit_per_minute).await?;
        // Join the fans this step adds (64 at a time per source address).
        let new = n.saturating_sub(held);
        let joined: Vec<Joined> = {
            use futures::StreamExt;
            futures::stream::iter(0..new)
                .map(|i| {
                    let http = joiners[i % joiners.len()].clone();
                    async move {
                        let v: serde_json::Value = http
                            .post(format!("http://{edge_addr}/queue/{event}/join"))
                            .send()
                            .await?
                            .json()
                            .await?;
                        Ok::<_, anyhow::Error>(Joined {
                            client: v["client_id"].as_str().context("client id")?.to_owned(),
                            token: v["queue_token"].as_str().context("queue token")?.to_owned(),
                        })
                    }
                })
                .buffer_unordered(64 * args.sources as usize)
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .collect::<anyhow::Result<_>>()?
        };
        let rss_before = rss(edge_pid);
        let opened_at = Instant::now();
        for (i, fan) in joined.into_iter().enumerate() {
            let from = source(held + i, args.sources);
            tokio::spawn(hold_stream(stream_addr, from, event, fan, events.clone(), open.clone()));
            if i % 500 == 499 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        while (open.load(Ordering::Relaxed) as usize) < n {
            if opened_at.elapsed() > Duration::from_secs(60) {
                bail!("only {} of {n} streams opened", open.load(Ordering::Relaxed));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let rss_streams = rss(edge_pid);

        // Standing still: the tick and the heartbeats.
        let (c0, cpu0, t0) = (
            redis_commands(&mut redis_conn).await?,
            cpu_secs(edge_pid),
            Instant::now(),
        );
        tokio::time::sleep(Duration::from_secs(args.secs)).await;
        let (c1, cpu1, t1) = (
            redis_commands(&mut redis_conn).await?,
            cpu_secs(edge_pid),
            Instant::now(),
        );
        let still_cmds = (c1 - c0) as f64 / (t1 - t0).as_secs_f64();
        let still_cpu = (cpu1 - cpu0) / (t1 - t0).as_secs_f64();

        // Moving: admissions at the operator's rate, every fan's position
        // pushed on every tick.
        set_room(&admin_http, admin, event, QueueMode::Fifo, args.admit_per_minute).await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (c0, cpu0, e0, t0) = (
            redis_commands(&mut redis_conn).await?,
            cpu_secs(edge_pid),
            events.load(Ordering::Relaxed),
            Instant::now(),
        );
        tokio::time::sleep(Duration::from_secs(args.secs)).await;
        let (c1, cpu1, e1, t1) = (
            redis_commands(&mut redis_conn).await?,
            cpu_secs(edge_pid),
            events.load(Ordering::Relaxed),
            Instant::now(),
        );
        set_room(&admin_http, admin, event, QueueMode::Paused, args.admit_per_minute).await?;
        let secs = (t1 - t0).as_secs_f64();
        let moving_cmds = (c1 - c0) as f64 / secs;
        let moving_cpu = (cpu1 - cpu0) / secs;
        let events_per_sec = (e1 - e0) as f64 / secs;
        let per_stream = rss_streams.saturating_sub(rss_before) as f64 / new.max(1) as f64;
        rows.push((
            n,
            rss_streams,
            per_stream,
            still_cmds,
            still_cpu,
            moving_cmds,
            moving_cpu,
            events_per_sec,
        ));
        // Fans admitted while moving closed their streams; top up next step.
        held = open.load(Ordering::Relaxed) as usize;
    }

    println!();
    println!(
        "waiting fans on one edge (2 threads), streams {} from {} source addresses, {} s per phase; edge RSS at start {:.1} MiB",
        if args.through_proxy {
            "through the proxy"
        } else {
            "on the dedicated stream listener"
        },
        args.sources,
        args.secs,
        rss_start as f64 / 1048576.0
    );
    println!(
        "{:>7} {:>10} {:>10} {:>11} {:>8} {:>11} {:>11} {:>8} {:>12}",
        "fans", "RSS MiB", "KiB/stream", "redis cmd/s", "cpu", "naive cmd/s", "redis cmd/s", "cpu", "events/s"
    );
    println!(
        "{:>7} {:>10} {:>10} {:>11} {:>8} {:>11} {:>11} {:>8} {:>12}",
        "", "", "", "(still)", "(still)", "(moving)", "(moving)", "(moving)", "(moving)"
    );
    for (n, rss_streams, per_stream, still_cmds, still_cpu, moving_cmds, moving_cpu, eps) in &rows {
        // The naive design reads each fan's position from Redis on each tick.
        let naive = *n as f64 * 5.0;
        println!(
            "{n:>7} {:>10.1} {:>10.1} {still_cmds:>11.1} {:>7.0}% {naive:>11.0} {moving_cmds:>11.1} {:>7.0}% {eps:>12.0}",
            *rss_streams as f64 / 1048576.0,
            per_stream / 1024.0,
            still_cpu * 100.0,
            moving_cpu * 100.0,
        );
    }
    if let Some((n, rss_streams, per_stream, ..)) = rows.last() {
        let projected = *rss_streams as f64 + (100_000 - (*n).min(100_000)) as f64 * per_stream;
        println!();
        println!(
            "projection to 100,000 waiting fans on one edge: {:.0} MiB (goal < 2048 MiB) from {:.1} KiB per stream measured at {n}",
            projected / 1048576.0,
            per_stream / 1024.0
        );
        if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
            println!(
                "Redis commands/s while moving: {:.1} at {} fans, {:.1} at {} fans (ratio {:.2}; the naive design's would be {:.0})",
                first.5,
                first.0,
                last.5,
                last.0,
                last.5 / first.5.max(0.001),
                last.0 as f64 / first.0 as f64
            );
        }
    }
    drop(edge);
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}
