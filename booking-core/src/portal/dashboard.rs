//! An event's sales figures for the operators' dashboard: one snapshot
//! (seats, holds, orders, revenue; two aggregate queries on indexed
//! columns) and per-minute series from confirmed orders.

use chrono::{DateTime, Duration, DurationRound, Utc};
use serde::Serialize;
use sqlx::PgPool;

use crate::ids::EventId;
use crate::portal::edge::EdgeFigures;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Stats {
    pub server_time: DateTime<Utc>,
    pub seats_total: i64,
    pub seats_available: i64,
    /// Seats in live holds.
    pub seats_held: i64,
    pub seats_sold: i64,
    /// Holds live now.
    pub live_holds: i64,
    pub orders_confirmed: i64,
    /// The totals of confirmed orders (refunded orders are not confirmed).
    pub revenue_cents: i64,
    /// Orders confirmed in the last 60 seconds.
    pub sales_last_minute: i64,
    /// The waiting room's figures; null without a room, or when the edge is
    /// not configured or not reachable.
    pub edge: Option<EdgeFigures>,
}

/// The event's figures now (edge figures are the caller's to add).
#[tracing::instrument(skip_all, fields(event_id = event.0))]
pub async fn stats(pool: &PgPool, event: EventId) -> Result<Stats, sqlx::Error> {
    // Live claims through the exclusion constraint's index (event, seat, during).
    let seats = sqlx::query!(
        r#"SELECT now() AS "now!",
                  (SELECT v.seat_count FROM events e JOIN venues v ON v.id = e.venue_id WHERE e.id = $1) AS "total",
                  count(*) FILTER (WHERE kind = 'hold') AS "held!",
                  count(*) FILTER (WHERE kind = 'sale') AS "sold!",
                  count(DISTINCT hold_id) FILTER (WHERE kind = 'hold') AS "holds!"
           FROM seat_claims WHERE event_id = $1 AND during @> now()"#,
        event.0
    )
    .fetch_one(pool)
    .await?;
    // Confirmed orders through orders_confirmed_by_event.
    let orders = sqlx::query!(
        r#"SELECT count(*) AS "n!",
                  coalesce(sum(total_cents), 0)::bigint AS "revenue!",
                  count(*) FILTER (WHERE confirmed_at > now() - interval '1 minute') AS "last_minute!"
           FROM orders WHERE event_id = $1 AND state = 'confirmed'"#,
        event.0
    )
    .fetch_one(pool)
    .await?;
    let total = i64::from(seats.total.unwrap_or(0));
    Ok(Stats {
        server_time: seats.now,
        seats_total: total,
        seats_available: (total - seats.held - seats.sold).max(0),
        seats_held: seats.held,
        seats_sold: seats.sold,
        live_holds: seats.holds,
        orders_confirmed: orders.n,
        revenue_cents: orders.revenue,
        sales_last_minute: orders.last_minute,
        edge: None,
    })
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct History {
    pub event_id: EventId,
    pub minutes: i64,
    /// One point per minute, oldest first, minutes without sales included.
    pub points: Vec<MinutePoint>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MinutePoint {
    /// The minute's start.
    pub minute: DateTime<Utc>,
    pub sales: i64,
    pub revenue_cents: i64,
}

/// Confirmed orders per minute over the last `minutes` minutes (1-1440).
#[tracing::instrument(skip_all, fields(event_id = event.0))]
pub async fn history(pool: &PgPool, event: EventId, minutes: i64) -> Result<History, sqlx::Error> {
    let minutes = minutes.clamp(1, 1440);
    let now = sqlx::query_scalar!(r#"SELECT now() AS "now!""#).fetch_one(pool).await?;
    let end = now.duration_trunc(Duration::minutes(1)).unwrap_or(now);
    let start = end - Duration::minutes(minutes - 1);
    let rows = sqlx::query!(
        r#"SELECT date_trunc('minute', confirmed_at) AS "minute!", count(*) AS "sales!",
                  coalesce(sum(total_cents), 0)::bigint AS "revenue!"
           FROM orders
           WHERE event_id = $1 AND state = 'confirmed' AND confirmed_at >= $2
           GROUP BY 1 ORDER BY 1"#,
        event.0,
        start
    )
    .fetch_all(pool)
    .await?;
    let mut points: Vec<MinutePoint> = (0..minutes)
        .map(|i| MinutePoint {
            minute: start + Duration::minutes(i),
            sales: 0,
            revenue_cents: 0,
        })
        .collect();
    for r in rows {
        let i = (r.minute - start).num_minutes();
        if let Some(p) = usize::try_from(i).ok().and_then(|i| points.get_mut(i)) {
            p.sales = r.sales;
            p.revenue_cents = r.revenue;
        }
    }
    Ok(History {
        event_id: event,
        minutes,
        points,
    })
}
