//! The reaper: removes the claims of expired holds in small batches and
//! marks the holds expired, and forgets old idempotency keys and the ends
//! of sessions whose tokens have long expired. Correctness
//! never waits for it: an expired claim blocks nobody, and seat maps see it
//! end by the clock. It keeps the claims table small. Any number of
//! instances may run it at once.

use std::time::Duration;

use sqlx::PgPool;

use crate::config::ReaperConfig;
use crate::inventory::claims;

/// Idempotency keys are kept a day, like the payment processors' own.
const IDEMPOTENCY_KEY_AGE_SECS: f64 = 24.0 * 3600.0;
/// Housekeeping runs once every this many ticks.
const PRUNE_EVERY: u64 = 30;

/// One pass: expire until a batch comes back short. Returns seats freed.
pub async fn reap_once(pool: &PgPool, batch: i64) -> Result<u64, sqlx::Error> {
    let mut total = 0;
    loop {
        let mut conn = pool.acquire().await?;
        let n = claims::reap_expired(&mut conn, batch).await?;
        total += n;
        if n < batch as u64 {
            return Ok(total);
        }
    }
}

pub async fn run(pool: PgPool, reaper: ReaperConfig) {
    let mut tick = tokio::time::interval(Duration::from_millis(reaper.interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n: u64 = 0;
    loop {
        tick.tick().await;
        n += 1;
        match reap_once(&pool, reaper.batch_size).await {
            Ok(0) => {}
            Ok(removed) => tracing::debug!(removed, "reaper removed claims of expired holds"),
            Err(e) => tracing::warn!(error = %e, "reaper pass failed; retrying next tick"),
        }
        if n.is_multiple_of(PRUNE_EVERY)
            && let Err(e) = crate::idempotency::prune(&pool, IDEMPOTENCY_KEY_AGE_SECS, 5_000).await
        {
            tracing::warn!(error = %e, "pruning idempotency keys failed");
        }
        if n.is_multiple_of(PRUNE_EVERY)
            && let Err(e) = crate::identity::ended::prune(&pool, crate::identity::ended::KEEP_SECS, 5_000).await
        {
            tracing::warn!(error = %e, "pruning ended admissions failed");
        }
    }
}
