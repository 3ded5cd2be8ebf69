//! What a farm's run checks afterwards, from the records themselves (the
//! database and the payment sandbox's books, read as the simulator reads
//! them), and the edge's defence counters for the report.

use sqlx::PgPool;

use super::client::BOT_PREFIX;
use crate::sim::books::read_books;
use crate::sim::verify::{seats_sold, seats_sold_twice, settle};

/// The seats best available offers: accessible seats are kept for those
/// who ask for them, and everyone here buys best available, so the sale
/// is over when the others are sold.
pub async fn seats_for_sale(pool: &PgPool, event: i64) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT count(*) FROM seats s JOIN events e ON e.venue_id = s.venue_id WHERE e.id = $1 AND NOT s.accessible",
    )
    .bind(event)
    .fetch_one(pool)
    .await
}

/// The run's sales as the records show them.
pub struct Sales {
    pub sold: i64,
    /// Seats on valid tickets of orders by the farm's accounts.
    pub bot_seats: i64,
    pub oversold: i64,
    /// Kept charges without their tickets, and orders charged twice.
    pub charge_problems: Vec<String>,
    pub unsettled_orders: i64,
}

/// Waits for the orders to settle (up to a minute), then reads the sales
/// and the processor's books (`sandbox`: its URL and key).
pub async fn sales(pool: &PgPool, sandbox: (&str, &str), event: i64) -> anyhow::Result<Sales> {
    let unsettled_orders = settle(pool, event, 60).await?;
    let sold = seats_sold(pool, event).await?;
    let bot_seats: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT t.seat_id) FROM tickets t JOIN orders o ON o.id = t.order_id
         WHERE t.event_id = $1 AND t.state = 'valid' AND o.fan_id LIKE $2",
    )
    .bind(event)
    .bind(format!("{BOT_PREFIX}-%"))
    .fetch_one(pool)
    .await?;
    let oversold = seats_sold_twice(pool, event).await?;
    // The farm's accounts may buy more than once (a hold smaller than the
    // limit leaves room): only orders charged twice count, not fans.
    let books = read_books(pool, sandbox, event, 0).await?;
    let mut charge_problems = books.charged_without_ticket;
    charge_problems.extend(books.orders_charged_twice);
    Ok(Sales {
        sold,
        bot_seats,
        oversold,
        charge_problems,
        unsettled_orders,
    })
}

/// The edge's defence and rate-limit counters, as Prometheus lines.
pub async fn edge_metrics(http: &reqwest::Client, admin: &str) -> Vec<String> {
    const COUNTERS: [&str; 6] = [
        "usher_challenges_total",
        "usher_defence_actions_total",
        "usher_replays_total",
        "usher_places_taken_back_total",
        "usher_fan_places_total",
        "usher_rate_limited_total",
    ];
    let Ok(r) = http.get(format!("{admin}/metrics")).send().await else {
        return vec!["(the edge's metrics could not be read)".into()];
    };
    let text = r.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| !l.starts_with('#') && COUNTERS.iter().any(|m| l.starts_with(m)))
        .map(str::to_owned)
        .collect()
}
