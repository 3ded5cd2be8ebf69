//! The demand signals the rule reads, from what the core already has: the
//! event's live claims (held and sold seats, and when each claim began) and
//! its venue's seats by tier, in one statement; and the queue length from
//! the edge's admin API, behind `QueueSource` so that tests can feed one.
//!
//! A claim that began within the interval counts as new demand: a hold
//! claim begins when the hold is made, a sale's claim when the seat is sold
//! (see inventory/claims.rs). A hold released within the interval is gone
//! and not counted: interest that ended at once is no signal worth having.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::Serialize;
use sqlx::PgConnection;

use crate::ids::EventId;
use crate::portal::{EdgeAdmin, EdgeError};

/// One tier's seats now and over the interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TierCounts {
    pub capacity: u32,
    pub remaining: u32,
    pub held: u32,
    pub sold: u32,
}

/// Every tier of the event with seats in its venue, as of `now`, counting
/// claims that began at or after `since`.
pub async fn tier_counts(
    conn: &mut PgConnection,
    event: EventId,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<BTreeMap<i16, TierCounts>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"WITH capacity AS (
               SELECT s.tier, count(*) AS seats
               FROM events e JOIN seats s ON s.venue_id = e.venue_id
               WHERE e.id = $1
               GROUP BY s.tier
           ), claimed AS (
               SELECT s.tier,
                      count(*) AS taken,
                      count(*) FILTER (WHERE c.kind = 'hold' AND lower(c.during) >= $2) AS held,
                      count(*) FILTER (WHERE c.kind = 'sale' AND lower(c.during) >= $2) AS sold
               FROM seat_claims c JOIN seats s ON s.id = c.seat_id
               WHERE c.event_id = $1 AND c.during @> $3::timestamptz
               GROUP BY s.tier
           )
           SELECT k.tier AS "tier!", k.seats AS "seats!",
                  coalesce(c.taken, 0) AS "taken!", coalesce(c.held, 0) AS "held!", coalesce(c.sold, 0) AS "sold!"
           FROM capacity k LEFT JOIN claimed c ON c.tier = k.tier
           ORDER BY k.tier"#,
        event.0,
        since,
        now,
    )
    .fetch_all(conn)
    .await?;
    let n = |v: i64| u32::try_from(v.max(0)).unwrap_or(u32::MAX);
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r.tier,
                TierCounts {
                    capacity: n(r.seats),
                    remaining: n(r.seats - r.taken),
                    held: n(r.held),
                    sold: n(r.sold),
                },
            )
        })
        .collect())
}

/// The queue length for one event, and where it came from (recorded with
/// every change, so "unknown" is never mistaken for "nobody waiting").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct QueueReading {
    pub length: Option<u64>,
    /// `edge`, `edge_no_room` (the event has no waiting room: 0),
    /// `edge_unavailable` (unknown), `none` (no edge configured: unknown),
    /// or `fixed` (a test's).
    pub source: &'static str,
}

/// Where the runner gets queue lengths.
pub trait QueueSource: Send + Sync {
    fn queue_length(&self, event: EventId) -> BoxFuture<'_, QueueReading>;
}

/// No edge configured: the queue is unknown (the rule counts it as 0).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoQueue;

impl QueueSource for NoQueue {
    fn queue_length(&self, _event: EventId) -> BoxFuture<'_, QueueReading> {
        Box::pin(async {
            QueueReading {
                length: None,
                source: "none",
            }
        })
    }
}

/// A queue length fixed in advance: for tests and tools.
#[derive(Debug, Clone, Copy)]
pub struct FixedQueue(pub u64);

impl QueueSource for FixedQueue {
    fn queue_length(&self, _event: EventId) -> BoxFuture<'_, QueueReading> {
        let length = self.0;
        Box::pin(async move {
            QueueReading {
                length: Some(length),
                source: "fixed",
            }
        })
    }
}

/// The edge's figure of fans waiting (its admin API's room `progress`).
impl QueueSource for EdgeAdmin {
    fn queue_length(&self, event: EventId) -> BoxFuture<'_, QueueReading> {
        Box::pin(async move {
            match self.figures(event).await {
                Ok(Some(f)) => QueueReading {
                    length: Some(f.queue_length),
                    source: "edge",
                },
                Ok(None) => QueueReading {
                    length: Some(0),
                    source: "edge_no_room",
                },
                Err(e) => {
                    if !matches!(e, EdgeError::NotConfigured) {
                        tracing::warn!(event_id = event.0, error = %e, "no queue length from the edge for pricing");
                    }
                    QueueReading {
                        length: None,
                        source: "edge_unavailable",
                    }
                }
            }
        })
    }
}
