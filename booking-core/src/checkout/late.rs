//! A success the provider reports, whatever state its order is in. A card
//! payment can succeed after we stopped waiting for it (the fan finishes
//! 3-D Secure, the processor finishes processing, a webhook comes late or
//! twice, reconciliation finds it), and the money must end up as tickets or
//! be given back in full, exactly once:
//!
//!   pending_payment                    -> paid: the saga sells the seats
//!                                         (or re-claims them) or refunds
//!   payment_failed, its hold / listing
//!     not bought by another order      -> paid: the same
//!   payment_failed, bought by another  -> a stray charge: refunded
//!   paid, confirmed, refunding,
//!     refunded, by this charge         -> nothing (a duplicate)
//!   ... by another charge              -> a stray charge: refunded (a fan
//!                                         never pays twice for one order)
//!
//! Each decision is taken under the order's row lock, and a charge once
//! recorded as stray stays one, so no two deliveries can both sell with it,
//! or both refund it, or one sell and the other refund. The database is the
//! last word on seats (the saga's claims) and on orders (the partial unique
//! indexes on an order's hold and listing).

use serde_json::json;
use sqlx::{PgPool, Postgres, Row, Transaction};

use crate::checkout::provider::{Charge, PaymentProvider, RefundRequest};
use crate::ids::{Cents, OrderId};
use crate::outbox::{notify, topic};

/// What became of a successful charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// It pays for the order, now `paid`: drive the saga on.
    Paid,
    /// The order already counts this charge: nothing to do.
    AlreadyCounted,
    /// The order cannot keep it: it is to be refunded (`refund_stray`).
    Stray,
    /// No such order.
    NoOrder,
}

/// Records a successful charge against its order (see the module's table).
pub async fn take(
    pool: &PgPool,
    provider: &str,
    order: OrderId,
    charge: &Charge,
    reconcile_after_secs: i64,
) -> Result<Taken, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let Some(row) = sqlx::query("SELECT state, hold_id, listing_id, intent_id FROM orders WHERE id = $1 FOR UPDATE")
        .bind(order.0)
        .fetch_optional(&mut *tx)
        .await?
    else {
        return Ok(Taken::NoOrder);
    };
    let state: String = row.try_get("state")?;
    let hold: Option<uuid::Uuid> = row.try_get("hold_id")?;
    let listing: Option<uuid::Uuid> = row.try_get("listing_id")?;
    let kept: Option<String> = row.try_get("intent_id")?;
    let stray = sqlx::query("SELECT 1 FROM stray_charges WHERE provider = $1 AND intent_id = $2")
        .bind(provider)
        .bind(&charge.intent_id)
        .fetch_optional(&mut *tx)
        .await?;
    if stray.is_some() {
        // Decided before: it is being given back, and stays so.
        return Ok(Taken::Stray);
    }
    let reason = match state.as_str() {
        "pending_payment" => {
            sqlx::query(
                r#"UPDATE orders SET state = 'paid', intent_id = $2, updated_at = now(),
                                     next_check_at = now() + make_interval(secs => $3)
                   WHERE id = $1 AND state = 'pending_payment'"#,
            )
            .bind(order.0)
            .bind(&charge.intent_id)
            .bind(reconcile_after_secs as f64)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(Taken::Paid);
        }
        "payment_failed" => {
            if revive(&mut tx, order, hold, listing, &charge.intent_id, reconcile_after_secs).await? {
                tx.commit().await?;
                return Ok(Taken::Paid);
            }
            "bought_by_another_order"
        }
        _ if kept.as_deref() == Some(charge.intent_id.as_str()) => return Ok(Taken::AlreadyCounted),
        _ => "order_already_paid",
    };
    let amount = charge.amount.0 - charge.refunded.0;
    if amount <= 0 {
        return Ok(Taken::AlreadyCounted);
    }
    sqlx::query(
        r#"INSERT INTO stray_charges (provider, intent_id, order_id, amount_cents, reason)
           VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING"#,
    )
    .bind(provider)
    .bind(&charge.intent_id)
    .bind(order.0)
    .bind(amount)
    .bind(reason)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    tracing::warn!(order_id = %order, intent = %charge.intent_id, reason, "a charge the order cannot keep; refunding it");
    Ok(Taken::Stray)
}

/// payment_failed -> paid by a late charge, unless another order of the
/// hold (or listing) is live. The hold or listing is locked first, as a new
/// order for it locks it, so none is made while this looks.
async fn revive(
    tx: &mut Transaction<'_, Postgres>,
    order: OrderId,
    hold: Option<uuid::Uuid>,
    listing: Option<uuid::Uuid>,
    intent: &str,
    reconcile_after_secs: i64,
) -> Result<bool, sqlx::Error> {
    let other = match (hold, listing) {
        (Some(hold), _) => {
            sqlx::query("SELECT 1 FROM holds WHERE id = $1 FOR UPDATE")
                .bind(hold)
                .execute(&mut **tx)
                .await?;
            sqlx::query("SELECT 1 FROM orders WHERE hold_id = $1 AND id <> $2 AND state <> 'payment_failed' LIMIT 1")
                .bind(hold)
                .bind(order.0)
                .fetch_optional(&mut **tx)
                .await?
        }
        (None, Some(listing)) => {
            sqlx::query("SELECT 1 FROM resale_listings WHERE id = $1 FOR UPDATE")
                .bind(listing)
                .execute(&mut **tx)
                .await?;
            sqlx::query(
                r#"SELECT 1 FROM orders WHERE listing_id = $1 AND id <> $2
                     AND state NOT IN ('payment_failed', 'refunded') LIMIT 1"#,
            )
            .bind(listing)
            .bind(order.0)
            .fetch_optional(&mut **tx)
            .await?
        }
        (None, None) => return Ok(false),
    };
    if other.is_some() {
        return Ok(false);
    }
    // The partial unique indexes on orders' holds and listings have the last
    // word: if they refuse, the charge is a stray after all.
    let mut savepoint = sqlx::Connection::begin(&mut **tx).await?;
    let moved = sqlx::query(
        r#"UPDATE orders SET state = 'paid', intent_id = $2, failure_code = NULL, updated_at = now(),
                             next_check_at = now() + make_interval(secs => $3)
           WHERE id = $1 AND state = 'payment_failed'"#,
    )
    .bind(order.0)
    .bind(intent)
    .bind(reconcile_after_secs as f64)
    .execute(&mut *savepoint)
    .await;
    match moved {
        Ok(r) if r.rows_affected() == 1 => {}
        Ok(_) => return Ok(false),
        Err(e) if e.as_database_error().is_some_and(|d| d.is_unique_violation()) => {
            savepoint.rollback().await?;
            return Ok(false);
        }
        Err(e) => return Err(e),
    }
    if let Some(listing) = listing {
        // Keep the listing for this buyer while the sale completes.
        sqlx::query(
            r#"UPDATE resale_listings SET reserved_by = $2, reserved_until = now() + interval '600 seconds'
               WHERE id = $1 AND state = 'listed'"#,
        )
        .bind(listing)
        .bind(order.0)
        .execute(&mut *savepoint)
        .await?;
    }
    savepoint.commit().await?;
    tracing::info!(order_id = %order, intent, "a late payment for a failed order; selling it after all");
    Ok(true)
}

/// Gives a stray charge back in full (idempotency key from its row), and
/// tells the fan. Returns whether it is done; if the provider did not
/// confirm, reconciliation asks again.
pub async fn refund_stray(pool: &PgPool, provider: &dyn PaymentProvider, intent: &str) -> Result<bool, sqlx::Error> {
    let Some(r) = sqlx::query(
        r#"SELECT s.order_id, s.amount_cents, s.state, s.reason, o.fan_id, o.event_id
           FROM stray_charges s JOIN orders o ON o.id = s.order_id
           WHERE s.provider = $1 AND s.intent_id = $2"#,
    )
    .bind(provider.name())
    .bind(intent)
    .fetch_optional(pool)
    .await?
    else {
        return Ok(true);
    };
    let state: String = r.try_get("state")?;
    if state == "succeeded" {
        return Ok(true);
    }
    let order = OrderId(r.try_get("order_id")?);
    let amount = Cents(r.try_get("amount_cents")?);
    let request = RefundRequest {
        intent_id: intent.to_owned(),
        amount,
        idempotency_key: format!("stray-{intent}-refund"),
    };
    let refund = match provider.refund(&request).await {
        Ok(refund) => refund,
        Err(e) => {
            tracing::warn!(order_id = %order, intent, error = %e, "stray charge's refund not confirmed; will retry");
            sqlx::query(
                r#"UPDATE stray_charges SET next_check_at = now() + interval '30 seconds'
                   WHERE provider = $1 AND intent_id = $2"#,
            )
            .bind(provider.name())
            .bind(intent)
            .execute(pool)
            .await?;
            return Ok(false);
        }
    };
    let mut tx = pool.begin().await?;
    let moved = sqlx::query(
        r#"UPDATE stray_charges SET state = 'succeeded', succeeded_at = now(), provider_refund_id = $3
           WHERE provider = $1 AND intent_id = $2 AND state = 'pending'"#,
    )
    .bind(provider.name())
    .bind(intent)
    .bind(&refund.refund_id)
    .execute(&mut *tx)
    .await?;
    if moved.rows_affected() == 1 {
        let fan: String = r.try_get("fan_id")?;
        let event: i64 = r.try_get("event_id")?;
        let reason: String = r.try_get("reason")?;
        notify(
            &mut tx,
            topic::REFUND_ISSUED,
            order,
            &fan,
            json!({ "order_id": order, "event_id": event, "amount_cents": refund.amount, "reason": reason,
                    "detail": "a payment arrived after this order could no longer use it; all of it is refunded" }),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(true)
}

/// Stray charges whose refund is due another try (for the reconciliation
/// job), each pushed back as it is taken so concurrent runs take different
/// ones.
pub async fn due(pool: &PgPool, provider: &str, batch: i64) -> Result<Vec<String>, sqlx::Error> {
    let rows = sqlx::query(
        r#"UPDATE stray_charges SET next_check_at = now() + interval '30 seconds'
           WHERE (provider, intent_id) IN (
               SELECT provider, intent_id FROM stray_charges
               WHERE provider = $1 AND state = 'pending' AND next_check_at <= now()
               ORDER BY next_check_at LIMIT $2 FOR UPDATE SKIP LOCKED)
           RETURNING intent_id"#,
    )
    .bind(provider)
    .bind(batch)
    .fetch_all(pool)
    .await?;
    rows.iter().map(|r| r.try_get("intent_id")).collect()
}
