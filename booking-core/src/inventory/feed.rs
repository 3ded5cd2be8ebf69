//! The seat-change feed behind each event's live stream.
//!
//! Writers log *which* seats changed (`seat_changes`, in the same
//! transaction as the change). One poller per process reads the log every
//! `poll_interval_ms`, taking only rows of transactions that have finished
//! (xid below the snapshot's xmin, so a slow transaction that commits late
//! is never skipped), looks up each changed seat's state *as it is now*, and
//! broadcasts one batch per event to that event's subscribers. Because
//! states are read at poll time, batches can repeat a state but never
//! leave a client with a stale one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use sqlx::PgPool;
use tokio::sync::broadcast;

use crate::ids::{EventId, SeatId};

/// Changes to one event's seats between two watermarks.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SeatBatch {
    /// Resume a stream from here (`Last-Event-ID`).
    #[serde(skip)]
    pub watermark: i64,
    pub available: Vec<SeatId>,
    pub held: Vec<SeatId>,
    pub sold: Vec<SeatId>,
}

impl SeatBatch {
    pub fn is_empty(&self) -> bool {
        self.available.is_empty() && self.held.is_empty() && self.sold.is_empty()
    }

    fn add(&mut self, seat: SeatId, state: Option<i32>) {
        match state {
            Some(2) => self.sold.push(seat),
            Some(_) => self.held.push(seat),
            None => self.available.push(seat),
        }
    }
}

/// Per-process fan-out of seat changes to stream subscribers.
#[derive(Clone)]
pub struct SeatFeed {
    pool: PgPool,
    inner: Arc<Mutex<FeedState>>,
}

struct FeedState {
    /// Everything below this has been published.
    watermark: i64,
    channels: HashMap<EventId, broadcast::Sender<Arc<SeatBatch>>>,
}

/// A subscription and the watermark it starts from: batches published after
/// it cover transactions at or above `from`.
pub struct Subscription {
    pub receiver: broadcast::Receiver<Arc<SeatBatch>>,
    pub from: i64,
}

/// What a client resuming from an old cursor gets.
pub enum CatchUp {
    Changes(SeatBatch),
    /// The log no longer reaches back that far: re-read availability.
    TooOld,
}

const CHANNEL_CAPACITY: usize = 256;

impl SeatFeed {
    /// Starts at the database's current watermark: changes from before the
    /// process started are for catch-up, not for broadcast.
    pub async fn new(pool: PgPool) -> Result<SeatFeed, sqlx::Error> {
        let watermark = current_watermark(&pool).await?;
        Ok(SeatFeed {
            pool,
            inner: Arc::new(Mutex::new(FeedState {
                watermark,
                channels: HashMap::new(),
            })),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, FeedState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn subscribe(&self, event: EventId) -> Subscription {
        let mut state = self.state();
        let from = state.watermark;
        let receiver = state
            .channels
            .entry(event)
            .or_insert_with(|| broadcast::channel(CHANNEL_CAPACITY).0)
            .subscribe();
        Subscription { receiver, from }
    }

    /// How many clients are listening, over all events.
    pub fn subscribers(&self) -> usize {
        self.state()
            .channels
            .values()
            .map(|c| c.receiver_count())
            .sum()
    }

    /// Reads the log once and publishes what finished since the last poll.
    pub async fn poll_once(&self) -> Result<usize, sqlx::Error> {
        let since = self.state().watermark;
        let (watermark, batches) = read_changes(&self.pool, since, None, None).await?;
        let mut state = self.state();
        let published = batches.len();
        for (event, mut batch) in batches {
            batch.watermark = watermark;
            if let Some(tx) = state.channels.get(&event) {
                // No receivers is fine: nobody is watching this event.
                let _ = tx.send(Arc::new(batch));
            }
        }
        state.channels.retain(|_, tx| tx.receiver_count() > 0);
        state.watermark = state.watermark.max(watermark);
        Ok(published)
    }

    /// Runs the poller until the process ends.
    pub async fn run(self, interval: Duration) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = self.poll_once().await {
                tracing::warn!(error = %e, "seat feed poll failed; retrying");
            }
        }
    }

    /// Changes to `event` from `since` up to (not including) `until`.
    pub async fn catch_up(
        &self,
        event: EventId,
        since: i64,
        until: i64,
    ) -> Result<CatchUp, sqlx::Error> {
        let horizon = sqlx::query_scalar!("SELECT min_xid FROM seat_changes_horizon")
            .fetch_one(&self.pool)
            .await?;
        if since < horizon {
            return Ok(CatchUp::TooOld);
        }
        let (watermark, mut batches) =
            read_changes(&self.pool, since, Some(until), Some(event)).await?;
        let mut batch = batches.remove(&event).unwrap_or_default();
        batch.watermark = watermark.min(until);
        Ok(CatchUp::Changes(batch))
    }
}

pub async fn current_watermark(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(r#"SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS "w!""#)
        .fetch_one(pool)
        .await
}

/// Changed seats of finished transactions in [since, min(until, xmin)), with
/// each seat's current state, grouped by event.
async fn read_changes(
    pool: &PgPool,
    since: i64,
    until: Option<i64>,
    event: Option<EventId>,
) -> Result<(i64, HashMap<EventId, SeatBatch>), sqlx::Error> {
    let rows = sqlx::query!(
        r#"WITH w AS (
               SELECT least(pg_snapshot_xmin(pg_current_snapshot())::text::bigint, coalesce($2, 9223372036854775807)) AS xmin
           ), changed AS (
               SELECT DISTINCT c.event_id, s.seat_id
               FROM seat_changes c, w, unnest(c.seat_ids) AS s(seat_id)
               WHERE c.xid >= $1 AND c.xid < w.xmin AND ($3::bigint IS NULL OR c.event_id = $3)
           )
           SELECT w.xmin AS "watermark!", ch.event_id AS "event_id?", ch.seat_id AS "seat_id?",
                  (SELECT CASE WHEN upper_inf(sc.during) THEN 2 ELSE 1 END
                   FROM seat_claims sc
                   WHERE sc.event_id = ch.event_id AND sc.seat_id = ch.seat_id AND sc.during @> now()
                   LIMIT 1) AS state
           FROM w LEFT JOIN changed ch ON true"#,
        since,
        until,
        event.map(|e| e.0),
    )
    .fetch_all(pool)
    .await?;
    let watermark = rows.first().map_or(since, |r| r.watermark);
    let mut batches: HashMap<EventId, SeatBatch> = HashMap::new();
    for r in rows {
        if let (Some(event), Some(seat)) = (r.event_id, r.seat_id) {
            batches
                .entry(EventId(event))
                .or_default()
                .add(SeatId(seat), r.state);
        }
    }
    Ok((watermark, batches))
}

/// Deletes log rows older than `retention_secs` and moves the horizon past
/// them, so a client asking for older changes is told to re-read instead.
pub async fn prune(pool: &PgPool, retention_secs: f64, batch: i64) -> Result<u64, sqlx::Error> {
    let n = sqlx::query_scalar!(
        r#"WITH gone AS (
               DELETE FROM seat_changes WHERE id = ANY(ARRAY(
                   SELECT id FROM seat_changes WHERE at < now() - make_interval(secs => $1) ORDER BY id LIMIT $2))
               RETURNING xid
           ), moved AS (
               UPDATE seat_changes_horizon SET min_xid = greatest(min_xid, (SELECT max(xid) + 1 FROM gone))
               WHERE EXISTS (SELECT 1 FROM gone)
           )
           SELECT count(*) AS "n!" FROM gone"#,
        retention_secs,
        batch
    )
    .fetch_one(pool)
    .await?;
    Ok(n as u64)
}
