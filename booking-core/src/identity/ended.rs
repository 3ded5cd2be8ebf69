//! Waiting-room sessions the core has ended (migration 0013): a confirmed
//! order ends its fan's session at the edge, and the same session's access
//! token is no admission here either afterwards.

use sqlx::PgPool;

use crate::ids::EventId;

/// Records that the session (`event`, queue `ticket`) is over.
pub async fn end(pool: &PgPool, event: EventId, ticket: u64) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO ended_admissions (event_id, ticket) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(event.0)
        .bind(ticket_number(ticket))
        .execute(pool)
        .await
        .map(|_| ())
}

pub async fn has_ended(pool: &PgPool, event: EventId, ticket: u64) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM ended_admissions WHERE event_id = $1 AND ticket = $2)")
        .bind(event.0)
        .bind(ticket_number(ticket))
        .fetch_one(pool)
        .await
}

/// Tickets are counted from 1 by a Redis counter: far below i64's range.
fn ticket_number(ticket: u64) -> i64 {
    i64::try_from(ticket).unwrap_or(i64::MAX)
}
