//! Pass-through overhead of the edge, against nginx, in one run: wrk drives
//! a trivial keep-alive upstream directly, then through nginx, then through
//! a minimal Pingora proxy (no filters: Pingora's own cost), then through
//! edge-proxy on an unprotected path and on a protected path carrying an
//! access token (so every request is checked). Same machine, same upstream,
//! same connection count, one after the other.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::Command;
use usher_shared::admin::{QueueMode, RoomSettings};

use crate::edge_config::EdgeConfig;
use crate::process::{port, spawn, wait_for};

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/release/edge-proxy"))]
    pub edge_bin: PathBuf,
    #[arg(long, default_value = "/usr/sbin/nginx")]
    pub nginx_bin: PathBuf,
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/release/minimal-pingora"))]
    pub minimal_pingora_bin: PathBuf,
    /// Redis for the edge's waiting room (the protected path needs a room).
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,
    #[arg(long, default_value_t = 10)]
    pub secs: u64,
    #[arg(long, default_value_t = 64)]
    pub connections: u32,
    /// Worker threads for the edge and worker processes for nginx.
    #[arg(long, default_value_t = 2)]
    pub workers: u32,
    /// Another edge-proxy build (e.g. the previous commit's) measured in the
    /// same run on the same paths, for a before/after ratio.
    #[arg(long)]
    pub baseline_edge_bin: Option<PathBuf>,
    /// Also write the figures as a Markdown report here (machine, command,
    /// date, table), e.g. loadtests/reports/edge-overhead.md.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

struct Wrk {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

fn ms(text: &str) -> f64 {
    let t = text.trim();
    let (num, unit) = t.split_at(t.find(|c: char| c.is_alphabetic()).unwrap_or(t.len()));
    let n: f64 = num.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        _ => f64::NAN,
    }
}

async fn wrk(args: &Args, url: &str, headers: &[(&str, &str)]) -> anyhow::Result<Wrk> {
    let mut cmd = Command::new("wrk");
    cmd.arg("-t2")
        .arg(format!("-c{}", args.connections))
        .arg(format!("-d{}s", args.secs))
        .arg("--latency");
    for (k, v) in headers {
        cmd.arg("-H").arg(format!("{k}: {v}"));
    }
    let out = cmd
        .arg(url)
        .output()
        .await
        .context("running wrk (apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut r = Wrk {
        rps: 0.0,
        p50_ms: f64::NAN,
        p99_ms: f64::NAN,
        errors: 0,
    };
    for line in text.lines() {
        let l = line.trim();
        if let Some(v) = l.strip_prefix("Requests/sec:") {
            r.rps = v.trim().parse().unwrap_or(0.0);
        } else if let Some(v) = l.strip_prefix("50%") {
            r.p50_ms = ms(v);
        } else if let Some(v) = l.strip_prefix("99%") {
            r.p99_ms = ms(v);
        } else if l.starts_with("Non-2xx or 3xx responses:") {
            r.errors += l.rsplit(' ').next().and_then(|n| n.parse().ok()).unwrap_or(0);
        } else if l.starts_with("Socket errors:") {
            r.errors += l
                .split(',')
                .filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok())
                .sum::<u64>();
        }
    }
    if r.rps == 0.0 {
        bail!("wrk printed no rate:\n{text}");
    }
    Ok(r)
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    if !args.edge_bin.exists() {
        bail!(
            "{} not found: cargo build --release -p edge-proxy",
            args.edge_bin.display()
        );
    }
    let dir = std::env::temp_dir().join(format!("usher-edge-bench-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("logs"))?;

    // A trivial keep-alive upstream, as small an answer as can be.
    let upstream = port();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", upstream)).await?;
    let app = axum::Router::new().fallback(|| async { "ok" });
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });

    // nginx, as a plain reverse proxy with upstream keep-alive.
    let nginx = port();
    std::fs::write(
        dir.join("nginx.conf"),
        format!(
            "worker_processes {w};\npid {d}/nginx.pid;\nerror_log {d}/logs/error.log;\ndaemon off;\n\
             events {{ worker_connections 4096; }}\n\
             http {{ access_log off;\n  upstream core {{ server 127.0.0.1:{upstream}; keepalive 128; }}\n\
               server {{ listen 127.0.0.1:{nginx}; location / {{ proxy_pass http://core; proxy_http_version 1.1; proxy_set_header Connection \"\"; }} }}\n}}\n",
            w = args.workers,
            d = dir.display()
        ),
    )?;
    let mut nginx_cmd = Command::new(&args.nginx_bin);
    nginx_cmd.arg("-p").arg(&dir).arg("-c").arg(dir.join("nginx.conf"));
    let _nginx = spawn(nginx_cmd).context("starting nginx (apt-get install nginx)")?;

    // Pingora with nothing of ours in it.
    let minimal = port();
    let mut minimal_cmd = Command::new(&args.minimal_pingora_bin);
    minimal_cmd
        .arg(format!("127.0.0.1:{minimal}"))
        .arg(format!("127.0.0.1:{upstream}"))
        .arg(args.workers.to_string());
    let _minimal = spawn(minimal_cmd).context("starting minimal-pingora (cargo build --release -p loadtests)")?;

    // The edge, with one protected event and a key to sign its token (and
    // the baseline build beside it, with the same configuration).
    let pair = usher_shared::keys::generate_pair();
    std::fs::write(dir.join("edge.pem"), &pair.private_pem)?;
    let event = 1_000_000_000_000i64 + i64::from(rand::random::<u32>());
    let edge_config = |name: &str, edge: u16, admin: u16| -> anyhow::Result<PathBuf> {
        let path = dir.join(format!("{name}.toml"));
        let mut config = EdgeConfig::new(
            edge,
            &format!("127.0.0.1:{upstream}"),
            &args.redis_url,
            ("bench", &dir.join("edge.pem")),
            (admin, "bench-admin-token-0123456789"),
            vec![RoomSettings::new(event, QueueMode::Fifo, 60, 10, 3600)],
        );
        config.listen.threads = args.workers;
        config.write(&path, "")?;
        Ok(path)
    };
    let (edge, admin) = (port(), port());
    let mut edge_cmd = Command::new(&args.edge_bin);
    edge_cmd.arg("--config").arg(edge_config("edge", edge, admin)?);
    let _edge = spawn(edge_cmd)?;
    let mut baseline = None;
    if let Some(bin) = &args.baseline_edge_bin {
        let (port_b, admin_b) = (port(), port());
        let mut cmd = Command::new(bin);
        cmd.arg("--config").arg(edge_config("baseline", port_b, admin_b)?);
        baseline = Some((port_b, spawn(cmd).context("starting the baseline edge")?));
        wait_for(port_b).await?;
    }
    for p in [nginx, minimal, edge] {
        wait_for(p).await?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // An access token for wrk's requests: bound to the client id it sends
    // and to no user agent (wrk sends none).
    let signer = usher_shared::TokenSigner::new(usher_shared::SigningKey::from_pem("bench", &pair.private_pem)?);
    let now = chrono::Utc::now().timestamp();
    let client = "bench-client";
    let bnd = {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for part in [client, "", ""] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        hex::encode(&h.finalize()[..12])
    };
    let token = signer.sign(&usher_shared::AccessClaims {
        iss: "usher-edge".into(),
        aud: usher_shared::ACCESS_AUDIENCE.into(),
        sub: format!("{event}.0"),
        evt: event,
        tkt: 0,
        bnd,
        iat: now,
        exp: now + 3600,
        jti: "bench".into(),
    });

    let protected = format!("/v1/events/{event}/holds");
    let runs = [
        (
            "upstream, direct",
            format!("http://127.0.0.1:{upstream}/v1/events"),
            vec![],
        ),
        ("nginx", format!("http://127.0.0.1:{nginx}/v1/events"), vec![]),
        (
            "minimal Pingora proxy (no filters)",
            format!("http://127.0.0.1:{minimal}/v1/events"),
            vec![],
        ),
        (
            "edge-proxy, unprotected path",
            format!("http://127.0.0.1:{edge}/v1/events"),
            vec![],
        ),
        (
            "edge-proxy, protected path + token check",
            format!("http://127.0.0.1:{edge}{protected}"),
            vec![("usher-client", client), ("usher-access", token.as_str())],
        ),
    ];
    let mut runs = runs.to_vec();
    if let Some((b, _)) = &baseline {
        runs.push((
            "baseline edge-proxy, unprotected path",
            format!("http://127.0.0.1:{b}/v1/events"),
            vec![],
        ));
        runs.push((
            "baseline edge-proxy, protected path + token",
            format!("http://127.0.0.1:{b}{protected}"),
            vec![("usher-client", client), ("usher-access", token.as_str())],
        ));
    }
    let mut results = Vec::new();
    for (name, url, headers) in &runs {
        eprintln!("{name}: wrk -t2 -c{} -d{}s", args.connections, args.secs);
        results.push((*name, wrk(&args, url, headers).await?));
    }
    println!();
    println!(
        "edge pass-through: wrk -t2 -c{} -d{}s, {} workers each, one machine",
        args.connections, args.secs, args.workers
    );
    println!(
        "{:<44} {:>10} {:>9} {:>9} {:>8}",
        "target", "req/s", "p50 ms", "p99 ms", "errors"
    );
    for (name, r) in &results {
        println!(
            "{name:<44} {:>10.0} {:>9.3} {:>9.3} {:>8}",
            r.rps, r.p50_ms, r.p99_ms, r.errors
        );
    }
    let nginx_rps = results[1].1.rps;
    let minimal_rps = results[2].1.rps;
    println!();
    println!(
        "edge / nginx throughput: unprotected {:.2}, protected with token check {:.2} (goal >= 1.00)",
        results[3].1.rps / nginx_rps,
        results[4].1.rps / nginx_rps
    );
    println!(
        "minimal Pingora / nginx: {:.2}; edge / minimal Pingora: unprotected {:.2}, protected {:.2}",
        minimal_rps / nginx_rps,
        results[3].1.rps / minimal_rps,
        results[4].1.rps / minimal_rps
    );
    let mut ratios = vec![
        format!(
            "edge / nginx throughput: unprotected {:.2}, protected with token check {:.2} (goal >= 1.00)",
            results[3].1.rps / nginx_rps,
            results[4].1.rps / nginx_rps
        ),
        format!(
            "minimal Pingora / nginx: {:.2}; edge / minimal Pingora: unprotected {:.2}, protected {:.2}",
            minimal_rps / nginx_rps,
            results[3].1.rps / minimal_rps,
            results[4].1.rps / minimal_rps
        ),
    ];
    if results.len() > 6 {
        let line = format!(
            "edge / baseline edge: unprotected {:.3}, protected {:.3} (goal >= 0.95)",
            results[3].1.rps / results[5].1.rps,
            results[4].1.rps / results[6].1.rps
        );
        println!("{line}");
        ratios.push(line);
    }
    if let Some(out) = &args.out {
        write_report(out, &args, &results, &ratios)?;
        eprintln!("report: {}", out.display());
    }
    // Killing nginx's master would orphan its workers: ask it to stop.
    let _ = Command::new(&args.nginx_bin)
        .arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .arg("-s")
        .arg("stop")
        .output()
        .await;
    std::fs::remove_dir_all(&dir).ok();
    if results.iter().any(|(_, r)| r.errors > 0) {
        bail!("some requests failed");
    }
    Ok(())
}

/// The figures as Markdown, with where, when and how they were measured.
fn write_report(out: &std::path::Path, args: &Args, results: &[(&str, Wrk)], ratios: &[String]) -> anyhow::Result<()> {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let command: Vec<String> = std::env::args().collect();
    let mut md = format!(
        "# Edge pass-through overhead\n\n- date: {}\n- machine: {cpu}, {cores} cores (shared by wrk, the proxies and the upstream)\n- command: `{}`\n- wrk -t2 -c{} -d{}s per target, one after the other, {} workers each\n\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        command.join(" "),
        args.connections,
        args.secs,
        args.workers
    );
    md.push_str("| target | req/s | p50 ms | p99 ms | errors |\n| --- | ---: | ---: | ---: | ---: |\n");
    for (name, r) in results {
        md.push_str(&format!(
            "| {name} | {:.0} | {:.3} | {:.3} | {} |\n",
            r.rps, r.p50_ms, r.p99_ms, r.errors
        ));
    }
    md.push('\n');
    for line in ratios {
        md.push_str(&format!("- {line}\n"));
    }
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(out, md)?;
    Ok(())
}
