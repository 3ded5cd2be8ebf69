//! The cluster as the chaos run sees it: its addresses and secrets (the
//! settings file `deploy/cluster/up` writes), and its nodes, reached with the
//! `docker` command (kill, pause, stop, start, network disconnect, exec).

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};

/// Where the cluster answers, from `target/usher-cluster/cluster.env`.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// The load balancer in front of the edges: what fans reach.
    pub fans: String,
    /// One edge's admin API (the room settings live in Redis, shared).
    pub admin: String,
    pub admin_token: String,
    /// Either ready core, past the edges (sign-in, set-up).
    pub core: String,
    pub sandbox: String,
    /// The PostgreSQL leader (through haproxy-db).
    pub database_url: String,
}

impl Cluster {
    pub fn from_env_file(path: &Path) -> anyhow::Result<Cluster> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading {} (start the cluster with deploy/cluster/up)", path.display()))?;
        let vars: HashMap<&str, &str> = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim(), v.trim().trim_matches('"').trim_matches('\'')))
            .collect();
        let get = |k: &str| {
            vars.get(k)
                .map(|v| v.to_string())
                .with_context(|| format!("{} has no {k}", path.display()))
        };
        let host = get("USHER_CLUSTER_BIND")?;
        let url = |port: &str| -> anyhow::Result<String> { Ok(format!("http://{host}:{}", get(port)?)) };
        Ok(Cluster {
            fans: url("USHER_CLUSTER_HTTP_PORT")?,
            admin: url("USHER_CLUSTER_ADMIN_PORT")?,
            admin_token: get("USHER_CLUSTER_EDGE_ADMIN_TOKEN")?,
            core: url("USHER_CLUSTER_CORE_PORT")?,
            sandbox: url("USHER_CLUSTER_SANDBOX_PORT")?,
            database_url: get("DATABASE_URL")?,
        })
    }
}

/// The Redis Cluster's nodes (deploy/cluster/compose.yml), asked in turn
/// until one answers.
pub const REDIS_NODES: [&str; 6] = ["redis-1", "redis-2", "redis-3", "redis-4", "redis-5", "redis-6"];

/// The payment sandbox's API key in the cluster (deploy/cluster/compose.yml).
pub const SANDBOX_KEY: &str = "sk_sandbox";

/// Runs `docker args...`; its standard output, or why it failed.
pub async fn docker(args: &[&str]) -> anyhow::Result<String> {
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new("docker").args(args).output(),
    )
    .await
    .with_context(|| format!("docker {} took over a minute", args.join(" ")))?
    .context("running docker")?;
    if !out.status.success() {
        bail!(
            "docker {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The container of a compose service (`pg-1` is `usher-pg-1`).
pub fn container(node: &str) -> String {
    format!("usher-{node}")
}

/// The PostgreSQL leader's node name, asked of the first member that
/// answers (Patroni's own view, from etcd).
pub async fn pg_leader() -> Option<String> {
    for node in ["pg-1", "pg-2", "pg-3"] {
        let Ok(out) = docker(&[
            "exec",
            &container(node),
            "patronictl",
            "-c",
            "/etc/patroni/patroni.yml",
            "list",
            "-f",
            "json",
        ])
        .await
        else {
            continue;
        };
        let Ok(members) = serde_json::from_str::<serde_json::Value>(&out) else {
            continue;
        };
        if let Some(leader) = members.as_array().and_then(|m| {
            m.iter()
                .find(|m| m["Role"] == "Leader" && m["State"] == "running")
                .and_then(|m| m["Member"].as_str())
        }) {
            return Some(leader.to_string());
        }
    }
    None
}

/// The Redis node serving `key`'s slot as master, by its announced
/// hostname, asked of the first node that answers.
pub async fn redis_master_of(key: &str) -> Option<String> {
    for node in REDIS_NODES {
        let c = container(node);
        let Ok(slot) = docker(&["exec", &c, "redis-cli", "cluster", "keyslot", key]).await else {
            continue;
        };
        let Ok(slot) = slot.trim().parse::<u16>() else { continue };
        let Ok(nodes) = docker(&["exec", &c, "redis-cli", "cluster", "nodes"]).await else {
            continue;
        };
        if let Some(master) = master_serving(&nodes, slot) {
            return Some(master);
        }
    }
    None
}

/// From `CLUSTER NODES`: the hostname of the live master whose ranges hold
/// `slot`. A line: `id ip:port@cport,hostname flags master ping pong epoch
/// link-state slot-ranges...`.
fn master_serving(nodes: &str, slot: u16) -> Option<String> {
    nodes.lines().find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 9 || !f[2].contains("master") || f[2].contains("fail") || f[7] != "connected" {
            return None;
        }
        let serves = f[8..].iter().any(|range| match range.split_once('-') {
            Some((a, b)) => a.parse::<u16>().is_ok_and(|a| a <= slot) && b.parse::<u16>().is_ok_and(|b| slot <= b),
            None => range.parse::<u16>().is_ok_and(|s| s == slot),
        });
        let host = f[1].split_once(',').map(|(_, h)| h.to_string());
        if serves { host } else { None }
    })
}

/// A container's address on one of the cluster's networks.
pub async fn address_on(node: &str, network: &str) -> Option<String> {
    let format = format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}");
    docker(&["inspect", "-f", &format, &container(node)])
        .await
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty() && s != "<no value>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_master_of_a_slot_is_read_from_cluster_nodes() {
        let nodes = "\
a1 172.20.0.2:6379@16379,redis-1 myself,master - 0 0 1 connected 0-5460
b2 172.20.0.3:6379@16379,redis-2 master - 0 1 2 connected 5461-10922
c3 172.20.0.4:6379@16379,redis-3 master,fail - 0 1 3 disconnected 10923-16383
d4 172.20.0.5:6379@16379,redis-4 slave a1 0 1 1 connected
e5 172.20.0.6:6379@16379,redis-5 master - 0 1 7 connected 10923-16383 42";
        assert_eq!(master_serving(nodes, 0).as_deref(), Some("redis-1"));
        assert_eq!(master_serving(nodes, 5461).as_deref(), Some("redis-2"));
        assert_eq!(
            master_serving(nodes, 12000).as_deref(),
            Some("redis-5"),
            "not the failed one"
        );
        assert_eq!(master_serving(nodes, 42).as_deref(), Some("redis-1"));
    }
}
