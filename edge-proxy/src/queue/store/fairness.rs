//! The fairness figures the admission script counts per event.

use redis::AsyncCommands;

use super::{Keys, QueueStore, StoreResult};

/// Per-event fairness figures, counted by the admission script.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Fairness {
    pub admitted: u64,
    /// Admissions of a place below one already admitted (0 in FIFO).
    pub inversions: u64,
    pub wait_sum_ms: u64,
    /// Admissions by time waited: (upper bound in seconds, or None for
    /// longer, count), not cumulative.
    pub wait_buckets: Vec<(Option<u64>, u64)>,
}

pub const WAIT_BOUNDS_SECS: [u64; 10] = [5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600];

impl QueueStore {
    pub async fn fairness(&self, event: i64) -> StoreResult<Fairness> {
        let mut conn = self.conn.clone();
        let raw: std::collections::HashMap<String, u64> = conn.hgetall(Keys::of(event).fairness).await?;
        let get = |k: &str| raw.get(k).copied().unwrap_or(0);
        let mut wait_buckets: Vec<(Option<u64>, u64)> = WAIT_BOUNDS_SECS
            .iter()
            .map(|b| (Some(*b), get(&format!("wait_le_{b}"))))
            .collect();
        wait_buckets.push((None, get("wait_le_+Inf")));
        Ok(Fairness {
            admitted: get("admitted"),
            inversions: get("inversions"),
            wait_sum_ms: get("wait_sum_ms"),
            wait_buckets,
        })
    }
}
