//! A lottery room's record in Redis: the seed committed to when the
//! pre-queue opens, the entrants sealed at the on-sale, the drawn places.

use redis::AsyncCommands;

use super::{Keys, QueueStore, StoreResult};

/// Only one instance draws; the lease lapses if it dies half-way.
const DRAW_LEASE_MS: u64 = 60_000;
/// Drawn places are written this many per command.
const DRAW_CHUNK: usize = 5_000;

pub use usher_shared::admin::LotteryRecord;

impl QueueStore {
    /// The lottery's public record (the secret seed stays out until drawn).
    pub async fn lottery(&self, event: i64) -> StoreResult<LotteryRecord> {
        let mut conn = self.ticker.clone();
        let raw: std::collections::HashMap<String, String> = conn.hgetall(Keys::of(event).lottery).await?;
        let state = raw.get("state").cloned().unwrap_or_default();
        let drawn = state == "drawn";
        Ok(LotteryRecord {
            seed_hash: raw.get("seed_hash").cloned(),
            seed: raw.get("secret").filter(|_| drawn).cloned(),
            entrants: raw.get("entrants").and_then(|n| n.parse().ok()),
            state,
        })
    }

    /// Opens the lottery with this seed, unless it is open already; returns
    /// the published hash of the seed in force.
    pub async fn open_lottery(&self, event: i64, seed: &str, seed_hash: &str) -> StoreResult<String> {
        let mut conn = self.ticker.clone();
        self.lottery_open
            .key(Keys::of(event).lottery)
            .arg(seed)
            .arg(seed_hash)
            .invoke_async(&mut conn)
            .await
    }

    /// Draws the lottery's places, if this instance wins the lease: seals
    /// the entrants, gives each waiting pre-queue ticket its drawn place and
    /// then reveals the seed. Safe to repeat after a crash half-way: the
    /// places depend only on the seed and the entrants.
    pub async fn draw_lottery(&self, event: i64) -> StoreResult<bool> {
        let k = Keys::of(event);
        let mut conn = self.ticker.clone();
        let leased: Option<String> = redis::cmd("SET")
            .arg(&k.lottery_lease)
            .arg("1")
            .arg("NX")
            .arg("PX")
            .arg(DRAW_LEASE_MS)
            .query_async(&mut conn)
            .await?;
        if leased.is_none() {
            return Ok(false);
        }
        let (entrants, seed): (u64, String) = self
            .lottery_seal
            .key(&k.lottery)
            .key(&k.seq)
            .invoke_async(&mut conn)
            .await?;
        let order = crate::queue::lottery::order(&seed, entrants);
        for (chunk_no, chunk) in order.chunks(DRAW_CHUNK).enumerate() {
            let mut cmd = redis::cmd("ZADD");
            cmd.arg(&k.waiting).arg("XX");
            for (i, ticket) in chunk.iter().enumerate() {
                cmd.arg(chunk_no * DRAW_CHUNK + i + 1).arg(*ticket);
            }
            cmd.query_async::<()>(&mut conn).await?;
        }
        conn.hset::<_, _, _, ()>(&k.lottery, "state", "drawn").await?;
        Ok(true)
    }
}
