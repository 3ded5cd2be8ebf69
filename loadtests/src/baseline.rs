//! The raw baseline: the bare single-row claim statement (one seat, one
//! autocommit INSERT into seat_claims, checked by the same exclusion
//! constraint), driven by as many tasks as the HTTP run has clients, through
//! a pool the same size as booking-core's. The API is measured against this.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rand::Rng;
use sqlx::PgPool;

use crate::report::Figures;

/// Sets up a hold row for the baseline's claims to reference (claims
/// belong to a hold) on an event the HTTP phases do not use.
pub async fn prepare(pool: &PgPool, event: i64) -> anyhow::Result<uuid::Uuid> {
    let hold = uuid::Uuid::now_v7();
    sqlx::query(
        "INSERT INTO holds (id, event_id, fan_id, idempotency_key, fingerprint, seat_ids, prices_cents, total_cents, created_at, expires_at)
         VALUES ($1, $2, 'baseline', 'baseline-' || $2, '\\x00', '{0}', '{0}', 0, now(), now() + interval '1 hour')",
    )
    .bind(hold)
    .bind(event)
    .execute(pool)
    .await?;
    Ok(hold)
}

pub async fn run(
    pool: &PgPool,
    event: i64,
    hold: uuid::Uuid,
    seats: Arc<Vec<i64>>,
    tasks: usize,
    secs: u64,
) -> anyhow::Result<Figures> {
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let (pool, seats, stop) = (pool.clone(), seats.clone(), stop.clone());
        handles.push(tokio::spawn(async move {
            let mut figures = Figures::new();
            while !stop.load(Ordering::Relaxed) {
                let seat = seats[rand::thread_rng().gen_range(0..seats.len())];
                let t = Instant::now();
                let done = sqlx::query(
                    "INSERT INTO seat_claims (event_id, seat_id, hold_id, kind, during)
                     VALUES ($1, $2, $3, 'hold', tstzrange(now(), now() + interval '1 hour'))
                     ON CONFLICT DO NOTHING",
                )
                .bind(event)
                .bind(seat)
                .bind(hold)
                .execute(&pool)
                .await;
                match done {
                    Ok(r) if r.rows_affected() == 1 => figures.ok(t.elapsed()),
                    Ok(_) => figures.conflict(t.elapsed()),
                    Err(_) => figures.error(t.elapsed()),
                }
            }
            figures
        }));
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut total = Figures::new();
    for h in handles {
        total.merge(&h.await?);
    }
    total.elapsed = start.elapsed();
    Ok(total)
}
