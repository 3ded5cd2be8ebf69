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

/// An access token lives at most a day (the edge's `session_secs` is at
/// most 86,400): a record of its session's end is kept twice that long.
pub const KEEP_SECS: f64 = 2.0 * 86_400.0;

/// Forgets ends older than `max_age_secs`, at most `batch` of them; returns
/// how many went.
pub async fn prune(pool: &PgPool, max_age_secs: f64, batch: i64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        r#"DELETE FROM ended_admissions WHERE ctid = ANY(ARRAY(
               SELECT ctid FROM ended_admissions
               WHERE ended_at < now() - make_interval(secs => $1)
               LIMIT $2))"#,
    )
    .bind(max_age_secs)
    .bind(batch)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Tickets are counted from 1 by a Redis counter: far below i64's range.
fn ticket_number(ticket: u64) -> i64 {
    i64::try_from(ticket).unwrap_or(i64::MAX)
}
