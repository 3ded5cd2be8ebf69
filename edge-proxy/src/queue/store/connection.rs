//! The store's ways to Redis: one Redis or a cluster behind one type, and
//! the lanes that keep each kind of call from queueing behind another.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

use super::StoreResult;

/// One Redis, or a Redis Cluster (each event's keys share a slot, so every
/// script runs on the one master that owns it).
#[derive(Clone)]
pub(super) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// Calls of one kind on their way to Redis: at most so many at once, the
/// rest wait their turn here, in order.
#[derive(Clone)]
pub(super) struct Lane(pub(super) std::sync::Arc<tokio::sync::Semaphore>);

impl Lane {
    pub(super) fn new(calls: usize) -> Lane {
        Lane(std::sync::Arc::new(tokio::sync::Semaphore::new(calls)))
    }

    pub(super) async fn turn(&self) -> StoreResult<tokio::sync::SemaphorePermit<'_>> {
        match tokio::time::timeout(CALL_WAIT, self.0.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            // Never closed; and a wait this long is what a time-out means.
            _ => Err(std::io::Error::from(std::io::ErrorKind::TimedOut).into()),
        }
    }
}

/// Fans' calls sent to Redis at once, at most; the rest wait their turn
/// here. In a join spike thousands were queued on the connection itself,
/// where the answer's time-out counted the wait behind all the others, and
/// a Redis working well within its means answered 503s through the edge.
pub(super) const FAN_CALLS: usize = 256;
/// Admitted fans' session calls sent at once, at most.
pub(super) const SESSION_CALLS: usize = 64;
/// How long a call may wait for its turn in a lane before it counts as failed.
const CALL_WAIT: Duration = Duration::from_secs(10);

/// A connection of its own to one Redis, or to a cluster.
pub(super) async fn open(url: &str, cluster_nodes: &[&str]) -> StoreResult<Conn> {
    Ok(if cluster_nodes.is_empty() {
        let client = redis::Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(Duration::from_millis(2_000)))
            .set_number_of_retries(2);
        Conn::Single(ConnectionManager::new_with_config(client, config).await?)
    } else {
        let client = redis::cluster::ClusterClientBuilder::new(cluster_nodes.iter().copied())
            .connection_timeout(Duration::from_millis(500))
            .response_timeout(Duration::from_millis(2_000))
            .build()?;
        Conn::Cluster(client.get_async_connection().await?)
    })
}
