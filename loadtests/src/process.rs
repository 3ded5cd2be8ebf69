//! The child processes a benchmark starts and watches: free ports, quiet
//! children that die with us, waiting until one listens or is ready, a
//! private Redis, and what `/proc` and Redis say a process has used.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

/// A port free right now on 127.0.0.1.
pub(crate) use usher_test_kit::free_port as port;

/// Waits up to ten seconds for something to listen on `port`.
pub(crate) async fn wait_for(port: u16) -> anyhow::Result<()> {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("nothing listening on {port}")
}

/// Whether `url` (a `/readyz`) answers 2xx within ten seconds.
pub(crate) async fn ready_within_10s(http: &reqwest::Client, url: &str) -> bool {
    for _ in 0..100 {
        if http.get(url).send().await.is_ok_and(|r| r.status().is_success()) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// A quiet child process that dies with this one.
pub(crate) fn spawn(mut cmd: Command) -> anyhow::Result<Child> {
    Ok(cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?)
}

/// A private, diskless redis-server on a free port: its command counter
/// is the run's alone, and no key of an earlier run can leak in. Returns
/// the child and its URL once it listens.
pub(crate) async fn private_redis() -> anyhow::Result<(Child, String)> {
    let port = port();
    let child = spawn({
        let mut c = Command::new("redis-server");
        c.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "no"]);
        c
    })
    .context("starting redis-server (Debian's redis-server package)")?;
    wait_for(port).await?;
    Ok((child, format!("redis://127.0.0.1:{port}")))
}

/// Commands a Redis has processed since it started.
pub(crate) async fn redis_commands(conn: &mut redis::aio::MultiplexedConnection) -> anyhow::Result<u64> {
    let info: String = redis::cmd("INFO").arg("stats").query_async(conn).await?;
    info.lines()
        .find_map(|l| l.strip_prefix("total_commands_processed:"))
        .and_then(|v| v.trim().parse().ok())
        .context("INFO stats has no total_commands_processed")
}

/// CPU time (user and system) a process has used so far, seconds; 0 if it
/// is gone. `/proc/<pid>/stat` counts in Linux's fixed 1/100 s `USER_HZ`.
pub(crate) fn cpu_secs(pid: u32) -> f64 {
    let ticks = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // The command name may hold spaces: fields count from its ")".
            let after = s.rsplit_once(')')?.1.split_whitespace().collect::<Vec<_>>();
            // utime and stime are fields 14 and 15; after the ")" they are 12 and 13.
            Some(after.get(11)?.parse::<u64>().ok()? + after.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0);
    ticks as f64 / 100.0
}

/// Resident memory of a process now, bytes.
pub(crate) fn rss(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:") * 1024
}

/// The most resident memory a process has had, bytes.
pub(crate) fn peak_rss(pid: u32) -> u64 {
    status_kib(pid, "VmHWM:") * 1024
}

/// A kB figure from `/proc/<pid>/status`; 0 if the process is gone.
fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .unwrap_or(0)
}
