//! The transactional outbox: a notification is a row written in the same
//! transaction as the change it tells of, so a committed change always has
//! its notification and a rolled-back one never does.

use sqlx::PgConnection;

use crate::ids::OrderId;

/// What happened, as the `topic` column names it.
pub mod topic {
    pub const ORDER_CONFIRMED: &str = "order.confirmed";
    pub const PAYMENT_FAILED: &str = "payment.failed";
    pub const HOLD_EXPIRED: &str = "hold.expired";
    pub const REFUND_ISSUED: &str = "refund.issued";
    pub const TICKET_TRANSFERRED: &str = "ticket.transferred";
}

/// Writes a notification, inside the caller's transaction.
pub async fn notify(
    conn: &mut PgConnection,
    topic: &str,
    order: OrderId,
    fan: &str,
    payload: serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO outbox (topic, order_id, fan_id, payload) VALUES ($1, $2, $3, $4)",
        topic,
        order.0,
        fan,
        payload
    )
    .execute(conn)
    .await?;
    Ok(())
}
