//! The transactional outbox: a notification is a row written in the same
//! transaction as the change it tells of, so a committed change always has
//! its notification and a rolled-back one never does. `deliver.rs` sends
//! each one, at least once, to the operator's webhook and to the fan's
//! e-mail (`mail.rs`, written from `templates.rs`), retrying with backoff
//! until it is delivered or dead.

pub mod deliver;
pub mod mail;
pub mod templates;

use sqlx::PgConnection;

use crate::ids::OrderId;

/// What happened, as the `topic` column names it.
pub mod topic {
    pub const ORDER_CONFIRMED: &str = "order.confirmed";
    pub const PAYMENT_FAILED: &str = "payment.failed";
    pub const HOLD_EXPIRED: &str = "hold.expired";
    pub const REFUND_ISSUED: &str = "refund.issued";
    pub const TICKET_TRANSFERRED: &str = "ticket.transferred";
    pub const BOOKS_MISMATCH: &str = "books.mismatch";
    pub const PAYOUT_FAILED: &str = "payout.failed";
    /// A chargeback opened against an order's charge (checkout/disputes.rs).
    pub const DISPUTE_OPENED: &str = "dispute.opened";
    /// A chargeback decided: `status` won or lost.
    pub const DISPUTE_CLOSED: &str = "dispute.closed";
    /// Seats from the waitlist are held for the fan (no order yet).
    pub const WAITLIST_OFFER: &str = "waitlist.offer";
}

/// Writes a notification, inside the caller's transaction.
pub async fn notify(
    conn: &mut PgConnection,
    topic: &str,
    order: OrderId,
    fan: &str,
    payload: serde_json::Value,
) -> Result<(), sqlx::Error> {
    // The notification and one delivery per channel, in one statement.
    sqlx::query!(
        r#"WITH n AS (
               INSERT INTO outbox (topic, order_id, fan_id, payload) VALUES ($1, $2, $3, $4) RETURNING id
           )
           INSERT INTO outbox_deliveries (outbox_id, channel)
           SELECT n.id, c.channel FROM n, (VALUES ('operator_webhook'), ('email')) AS c(channel)"#,
        topic,
        order.0,
        fan,
        payload
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Writes a notification for the operators alone (their webhook; no fan
/// is mailed), inside the caller's transaction.
pub async fn notify_operators(
    conn: &mut PgConnection,
    topic: &str,
    order: Option<OrderId>,
    payload: serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        r#"WITH n AS (
               INSERT INTO outbox (topic, order_id, payload) VALUES ($1, $2, $3) RETURNING id
           )
           INSERT INTO outbox_deliveries (outbox_id, channel) SELECT n.id, 'operator_webhook' FROM n"#,
    )
    .bind(topic)
    .bind(order.map(|o| o.0))
    .bind(payload)
    .execute(conn)
    .await?;
    Ok(())
}

/// Writes a notification that concerns a fan but no order (a waitlist
/// offer), inside the caller's transaction. Returns the outbox row's id.
pub async fn notify_fan(
    conn: &mut PgConnection,
    topic: &str,
    fan: &str,
    payload: serde_json::Value,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        r#"WITH n AS (
               INSERT INTO outbox (topic, fan_id, payload) VALUES ($1, $2, $3) RETURNING id
           ), d AS (
               INSERT INTO outbox_deliveries (outbox_id, channel)
               SELECT n.id, c.channel FROM n, (VALUES ('operator_webhook'), ('email')) AS c(channel)
           )
           SELECT id FROM n"#,
    )
    .bind(topic)
    .bind(fan)
    .bind(payload)
    .fetch_one(conn)
    .await
}
