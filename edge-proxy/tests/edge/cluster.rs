//! The waiting room on a real 3-master Redis Cluster, started on loopback by
//! the test: each event's keys share one slot (the `{e<id>}` hash tag), so
//! its scripts run on one master, and different events spread over the
//! masters. The admission test is the same as on one Redis: 2,000
//! concurrent joiners, admitted in exactly their ticket order.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// A port p with p + 10000 (its cluster bus) also free.
fn free_port_pair() -> u16 {
    loop {
        let p: u16 = 20_000 + rand::random::<u16>() % 30_000;
        let ok = |port: u16| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
        if ok(p) && ok(p + 10_000) {
            return p;
        }
    }
}

struct Cluster {
    ports: Vec<u16>,
    dir: std::path::PathBuf,
}

impl Cluster {
    fn start() -> Cluster {
        let dir = std::env::temp_dir().join(format!("usher-redis-cluster-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ports: Vec<u16> = (0..3).map(|_| free_port_pair()).collect();
        for p in &ports {
            let status = Command::new("redis-server")
                .args(["--port", &p.to_string(), "--bind", "127.0.0.1", "--daemonize", "yes"])
                .args([
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    &format!("nodes-{p}.conf"),
                ])
                .args(["--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(&dir)
                .args(["--pidfile", &dir.join(format!("{p}.pid")).display().to_string()])
                .args(["--logfile", &dir.join(format!("{p}.log")).display().to_string()])
                .status()
                .expect("redis-server (deploy/local/test installs it)");
            assert!(status.success());
        }
        for p in &ports {
            wait(|| redis_cli(*p, &["ping"]).contains("PONG"), "node up");
        }
        let nodes: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&nodes)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(created.success(), "redis-cli --cluster create");
        for p in &ports {
            wait(
                || redis_cli(*p, &["cluster", "info"]).contains("cluster_state:ok"),
                "cluster ok",
            );
        }
        Cluster { ports, dir }
    }

    fn spec(&self) -> String {
        let nodes: Vec<String> = self.ports.iter().map(|p| format!("redis://127.0.0.1:{p}")).collect();
        format!("cluster:{}", nodes.join(","))
    }

    /// Which master holds a key.
    fn owner(&self, key: &str) -> u16 {
        let slot: u16 = redis_cli(self.ports[0], &["cluster", "keyslot", key])
            .trim()
            .parse()
            .unwrap();
        let shards = redis_cli(self.ports[0], &["cluster", "slots"]);
        // Flat output: start, end, ip, port, id, ... per range.
        let lines: Vec<&str> = shards.lines().map(str::trim).collect();
        let mut i = 0;
        while i + 3 < lines.len() {
            if let (Ok(start), Ok(end)) = (lines[i].parse::<u16>(), lines[i + 1].parse::<u16>())
                && lines[i + 2] == "127.0.0.1"
                && (start..=end).contains(&slot)
            {
                return lines[i + 3].parse().unwrap();
            }
            i += 1;
        }
        panic!("no owner for slot {slot}: {shards}");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for p in &self.ports {
            let _ = redis_cli(*p, &["shutdown", "nosave"]);
        }
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn wait(ok: impl Fn() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_three_master_cluster_joiners_are_admitted_in_ticket_order() {
    let cluster = Cluster::start();
    let upstream = Upstream::start().await;
    // Two events whose keys live on different masters.
    let event = fresh_event();
    let seq_owner = |e: i64| cluster.owner(&format!("usher:{{e{e}}}:seq"));
    let other = loop {
        let e = fresh_event();
        if seq_owner(e) != seq_owner(event) {
            break e;
        }
    };
    let rooms = [room(event, 120_000, 100_000), room(other, 120_000, 100_000)];
    let dir = key_dir("cluster");
    let edge = Edge::start(upstream.addr, &cluster.spec(), &rooms, &dir, "").await;
    let base = edge.url("");

    let fans: Vec<Fan> = futures::future::join_all((0..2000).map(|_| join(&edge.http, &base, event))).await;
    let mut tickets: Vec<u64> = fans.iter().map(|f| f.ticket).collect();
    tickets.sort_unstable();
    tickets.dedup();
    assert_eq!(tickets, (1..=2000).collect::<Vec<_>>(), "one ticket each, no gaps");
    let deadline = Instant::now() + Duration::from_secs(30);
    while edge.progress(event).await["through"].as_u64().unwrap_or(0) < 2000 {
        assert!(Instant::now() < deadline, "not everyone was admitted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Independently of the edge: the owning master's record of admissions
    // (session expiry = admission time + session) never goes backwards in
    // ticket order.
    let active = format!("usher:{{e{event}}}:active");
    let owner = cluster.owner(&active);
    let mut conn = redis::Client::open(format!("redis://127.0.0.1:{owner}"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let admitted: Vec<(u64, f64)> = redis::cmd("ZRANGE")
        .arg(&active)
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut by_ticket = admitted;
    by_ticket.sort_by_key(|(t, _)| *t);
    assert_eq!(by_ticket.len(), 2000);
    assert_eq!(
        by_ticket.windows(2).filter(|w| w[1].1 < w[0].1).count(),
        0,
        "inversions"
    );
    let f = edge.admin_get(&format!("/admin/events/{event}/fairness")).await;
    assert_eq!(
        (f["admitted"].as_u64(), f["inversions"].as_u64()),
        (Some(2000), Some(0)),
        "{f}"
    );

    // An event's keys live together, and the other event, on another
    // master, works alongside.
    for name in ["waiting", "seq", "progress", "joined", "fairness", "lottery"] {
        assert_eq!(cluster.owner(&format!("usher:{{e{event}}}:{name}")), owner);
    }
    assert_ne!(seq_owner(other), owner);
    let mut fan = join(&edge.http, &base, other).await;
    assert_eq!(fan.ticket, 1);
    wait_admitted(&edge, other, &mut fan).await;
    let healthy = edge.admin_get("/admin/events").await;
    assert!(
        healthy
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["progress"]["healthy"] == true),
        "every room ticks on its own master: {healthy}"
    );
    edge.stop().await;
}
