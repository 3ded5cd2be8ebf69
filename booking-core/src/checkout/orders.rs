//! Every statement that reads or moves an order. Each move is a conditional
//! UPDATE from the state it expects, so a step repeated (a retry, a
//! duplicate webhook, two reconcilers) finds the order already moved and
//! does nothing. Notifications go into the outbox in the same transaction as
//! the move they tell of.

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::{PgConnection, PgPool, Row};

use crate::checkout::{Order, OrderError, OrderNextAction, OrderPaymentStatus, OrderSeat, OrderState, TicketRef};
use crate::ids::{Cents, EventId, FanId, HoldId, OrderId, SeatId, TicketId};
use crate::outbox::{notify, topic};
use crate::pricing::fee_settings;

/// What a new order needs from the request and configuration.
pub struct NewOrder<'a> {
    pub id: OrderId,
    pub hold: Option<HoldId>,
    pub fan: &'a FanId,
    pub key: &'a str,
    pub fingerprint: &'a [u8],
    pub payment_method: &'a str,
    pub currency: &'a str,
    pub provider: &'a str,
    /// Left to its own request this long before reconciliation looks.
    pub reconcile_after_secs: i64,
}

/// Makes an order from a live hold of this fan, or finds the one this key
/// already made. Returns the order's id and whether it is a replay.
///
/// `card` is the provider's fingerprint of the paying card: the seats of
/// the event's orders on that card, by any fan, plus this hold's must stay
/// within the event's limit per fan (the hold itself was checked against
/// the fan's own). Orders being paid, paid, confirmed or refunded count, as
/// refunded seats count toward the fan's limit; failed payments do not.
#[tracing::instrument(name = "sql.create", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn create(pool: &PgPool, n: NewOrder<'_>, card: Option<&str>) -> Result<(OrderId, bool), OrderError> {
    let hold_id = n.hold.ok_or(OrderError::AmbiguousRequest)?;
    let mut tx = pool.begin().await?;
    // The hold's row lock orders concurrent requests for one hold (and one
    // key): each reads what the one before it committed.
    let hold = sqlx::query!(
        r#"SELECT event_id, seat_ids, prices_cents, total_cents, state, expires_at,
                  expires_at <= now() AS "lapsed!"
           FROM holds WHERE id = $1 AND fan_id = $2 FOR UPDATE"#,
        hold_id.0,
        n.fan.as_str()
    )
    .fetch_optional(&mut *tx)
    .await?;
    let prior = sqlx::query!(
        "SELECT id, fingerprint FROM orders WHERE fan_id = $1 AND idempotency_key = $2",
        n.fan.as_str(),
        n.key
    )
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(p) = prior {
        return if p.fingerprint == n.fingerprint {
            Ok((OrderId(p.id), true))
        } else {
            Err(OrderError::IdempotencyKeyReused)
        };
    }
    let hold = hold.ok_or(OrderError::HoldNotFound)?;
    let live = sqlx::query_scalar!(
        "SELECT id FROM orders WHERE hold_id = $1 AND state <> 'payment_failed'",
        hold_id.0
    )
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(existing) = live {
        return Err(OrderError::HoldAlreadyOrdered {
            order_id: OrderId(existing),
        });
    }
    match hold.state.as_str() {
        "active" if !hold.lapsed => {}
        "active" | "expired" => {
            return Err(OrderError::HoldExpired {
                expired_at: hold.expires_at,
            });
        }
        "released" => return Err(OrderError::HoldReleased),
        _ => return Err(OrderError::HoldNotFound),
    }
    if let Some(card) = card {
        // One card's orders for one event are made one at a time, so each
        // counts every order committed before it: accounts sharing a card
        // cannot race past the limit together.
        let scope = format!("card/{}/{card}", hold.event_id);
        sqlx::query!(
            r#"SELECT pg_advisory_xact_lock(hashtextextended($1, 7)) AS "locked!: ()""#,
            scope
        )
        .fetch_one(&mut *tx)
        .await?;
        let count = sqlx::query!(
            r#"SELECT e.max_seats_per_fan AS "limit!",
                      (SELECT coalesce(sum(cardinality(o.seat_ids)), 0)::int FROM orders o
                        WHERE o.event_id = e.id AND o.card_fingerprint = $2
                          AND o.state <> 'payment_failed') AS "already!"
               FROM events e WHERE e.id = $1"#,
            hold.event_id,
            card
        )
        .fetch_one(&mut *tx)
        .await?;
        if i64::from(count.already) + hold.seat_ids.len() as i64 > i64::from(count.limit) {
            tracing::info!(
                event_id = hold.event_id,
                limit = count.limit,
                already = count.already,
                "order refused: the card's limit for this event"
            );
            return Err(OrderError::CardLimitReached {
                limit: count.limit,
                already: count.already,
            });
        }
    }
    sqlx::query!(
        r#"INSERT INTO orders (id, hold_id, event_id, fan_id, idempotency_key, fingerprint, seat_ids, prices_cents,
                               total_cents, currency, payment_method, provider, next_check_at, card_fingerprint)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, now() + make_interval(secs => $13), $14)"#,
        n.id.0,
        hold_id.0,
        hold.event_id,
        n.fan.as_str(),
        n.key,
        n.fingerprint,
        &hold.seat_ids,
        &hold.prices_cents,
        hold.total_cents,
        n.currency,
        n.payment_method,
        n.provider,
        n.reconcile_after_secs as f64,
        card,
    )
    .execute(&mut *tx)
    .await?;
    // The event's currency, fees and taxes: the order's lines and total.
    fee_settings::charge_order(
        &mut tx,
        n.id,
        hold.event_id,
        &hold.seat_ids,
        &hold.prices_cents,
        true,
        n.currency,
    )
    .await?;
    tx.commit().await?;
    Ok((n.id, false))
}

/// Whether this fan's key already made an order (a retry): then there is
/// nothing to check about the card again.
pub async fn exists_for_key(pool: &PgPool, fan: &FanId, key: &str) -> Result<bool, sqlx::Error> {
    let found = sqlx::query_scalar!(
        r#"SELECT true AS "found!" FROM orders WHERE fan_id = $1 AND idempotency_key = $2"#,
        fan.as_str(),
        key
    )
    .fetch_optional(pool)
    .await?;
    Ok(found.is_some())
}

/// Makes an order for a resale listing, reserving the listing for it while
/// it pays (as a hold reserves seats), or finds the one this key made. The
/// limit per fan covers primary sales only, so no card is counted here.
pub async fn create_for_listing(
    pool: &PgPool,
    n: NewOrder<'_>,
    listing: uuid::Uuid,
    reserve_secs: i64,
) -> Result<(OrderId, bool), OrderError> {
    let mut tx = pool.begin().await?;
    let l = sqlx::query!(
        r#"SELECT l.event_id, l.seller_fan_id, l.price_cents, l.state, l.ticket_version,
                  coalesce(l.reserved_until > now(), false) AS "reserved!", t.seat_id, t.version, t.state AS ticket_state
           FROM resale_listings l JOIN tickets t ON t.id = l.ticket_id
           WHERE l.id = $1 FOR UPDATE OF l"#,
        listing
    )
    .fetch_optional(&mut *tx)
    .await?;
    let prior = sqlx::query!(
        "SELECT id, fingerprint FROM orders WHERE fan_id = $1 AND idempotency_key = $2",
        n.fan.as_str(),
        n.key
    )
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(p) = prior {
        return if p.fingerprint == n.fingerprint {
            Ok((OrderId(p.id), true))
        } else {
            Err(OrderError::IdempotencyKeyReused)
        };
    }
    let l = l.ok_or(OrderError::ListingNotFound)?;
    if l.seller_fan_id == n.fan.as_str() {
        return Err(OrderError::OwnListing);
    }
    // Sold, withdrawn, reserved by another buyer's payment, or the ticket
    // changed since it was listed.
    if l.state != "listed" || l.reserved || l.ticket_state != "valid" || l.version != l.ticket_version {
        return Err(OrderError::ListingUnavailable);
    }
    sqlx::query!(
        r#"INSERT INTO orders (id, listing_id, event_id, fan_id, idempotency_key, fingerprint, seat_ids, prices_cents,
                               total_cents, currency, payment_method, provider, next_check_at)
           VALUES ($1, $2, $3, $4, $5, $6, ARRAY[$7::bigint], ARRAY[$8::bigint], $8, $9, $10, $11,
                   now() + make_interval(secs => $12))"#,
        n.id.0,
        listing,
        l.event_id,
        n.fan.as_str(),
        n.key,
        n.fingerprint,
        l.seat_id,
        l.price_cents,
        n.currency,
        n.payment_method,
        n.provider,
        n.reconcile_after_secs as f64,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "UPDATE resale_listings SET reserved_by = $2, reserved_until = now() + make_interval(secs => $3) WHERE id = $1",
        listing,
        n.id.0,
        reserve_secs as f64
    )
    .execute(&mut *tx)
    .await?;
    // The event's currency; a resale's fee comes out of the seller's payout.
    fee_settings::charge_order(
        &mut tx,
        n.id,
        l.event_id,
        &[l.seat_id],
        &[l.price_cents],
        false,
        n.currency,
    )
    .await?;
    tx.commit().await?;
    Ok((n.id, false))
}

/// What the saga needs to take the next step.
#[derive(Debug, Clone)]
pub struct SagaRow {
    pub id: OrderId,
    /// What the order buys: a hold's seats, or one resale listing.
    pub hold: Option<HoldId>,
    pub listing: Option<uuid::Uuid>,
    pub event: EventId,
    pub fan: FanId,
    pub state: OrderState,
    pub seats: Vec<SeatId>,
    pub prices: Vec<i64>,
    pub total: Cents,
    pub currency: String,
    pub payment_method: String,
    pub intent_id: Option<String>,
}

#[tracing::instrument(name = "sql.saga_row", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn saga_row(conn: &mut PgConnection, order: OrderId, lock: bool) -> Result<Option<SagaRow>, sqlx::Error> {
    // Two statements rather than a dynamic FOR UPDATE, so both are checked
    // at compile time.
    let r = if lock {
        sqlx::query_as!(
            RawSaga,
            r#"SELECT id, hold_id, listing_id, event_id, fan_id, state, seat_ids, prices_cents, total_cents, currency,
                      payment_method, intent_id
               FROM orders WHERE id = $1 FOR UPDATE"#,
            order.0
        )
        .fetch_optional(conn)
        .await?
    } else {
        sqlx::query_as!(
            RawSaga,
            r#"SELECT id, hold_id, listing_id, event_id, fan_id, state, seat_ids, prices_cents, total_cents, currency,
                      payment_method, intent_id
               FROM orders WHERE id = $1"#,
            order.0
        )
        .fetch_optional(conn)
        .await?
    };
    r.map(|r| {
        Ok(SagaRow {
            id: OrderId(r.id),
            hold: r.hold_id.map(HoldId),
            listing: r.listing_id,
            event: EventId(r.event_id),
            fan: FanId(r.fan_id),
            state: OrderState::parse(&r.state)?,
            seats: r.seat_ids.into_iter().map(SeatId).collect(),
            prices: r.prices_cents,
            total: Cents(r.total_cents),
            currency: r.currency,
            payment_method: r.payment_method,
            intent_id: r.intent_id,
        })
    })
    .transpose()
}

struct RawSaga {
    id: uuid::Uuid,
    hold_id: Option<uuid::Uuid>,
    listing_id: Option<uuid::Uuid>,
    event_id: i64,
    fan_id: String,
    state: String,
    seat_ids: Vec<i64>,
    prices_cents: Vec<i64>,
    total_cents: i64,
    currency: String,
    payment_method: String,
    intent_id: Option<String>,
}

/// A charge neither taken nor declined yet, as the provider described it.
pub struct PendingCharge<'a> {
    pub intent: &'a str,
    /// The provider's word (`requires_action`, `processing`, ...).
    pub status: &'a str,
    /// Where the fan authenticates (`requires_action`).
    pub redirect_url: Option<&'a str>,
}

/// The charge is neither taken nor declined yet (3-D Secure, processing):
/// the order stays pending_payment and remembers the provider's intent, so
/// that the next look asks about it instead of charging again, and what it
/// waits for. It waits until its payment deadline (made `wait_secs` after
/// the order, once), and its hold (or resale listing) is kept until then.
/// The next look keeps any later time reconciliation set (its backoff), so
/// an abandoned challenge is asked about less and less, but never later
/// than the deadline, when it is given up (`give_up`).
#[tracing::instrument(name = "sql.mark_pending", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn mark_pending(
    pool: &PgPool,
    order: OrderId,
    charge: &PendingCharge<'_>,
    after_secs: i64,
    wait_secs: i64,
) -> Result<bool, sqlx::Error> {
    let row = sqlx::query(
        r#"UPDATE orders SET intent_id = $2, payment_status = $3, next_action_url = $4, updated_at = now(),
                             payment_deadline = coalesce(payment_deadline, created_at + make_interval(secs => $6)),
                             next_check_at = least(greatest(next_check_at, now() + make_interval(secs => $5)),
                                                   coalesce(payment_deadline, created_at + make_interval(secs => $6)))
           WHERE id = $1 AND state = 'pending_payment'
           RETURNING hold_id, listing_id, payment_deadline"#,
    )
    .bind(order.0)
    .bind(charge.intent)
    .bind(charge.status)
    .bind(charge.redirect_url)
    .bind(after_secs as f64)
    .bind(wait_secs as f64)
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else {
        return Ok(false);
    };
    let hold: Option<uuid::Uuid> = row.try_get("hold_id")?;
    let listing: Option<uuid::Uuid> = row.try_get("listing_id")?;
    let deadline: DateTime<Utc> = row.try_get("payment_deadline")?;
    if let Err(e) = keep_until(pool, order, hold, listing, deadline).await {
        // The hold could not be kept (it lapsed meanwhile and a seat was
        // claimed by someone else): a success still becomes tickets if the
        // seats can be had, or a refund (late.rs).
        tracing::warn!(order_id = %order, error = %e, "the hold could not be extended");
    }
    Ok(true)
}

/// Extends a live hold (its claims with it) or a resale listing's
/// reservation to `until`. Only a hold that has not lapsed: its claims
/// cover now, so no other claim on its seats can have begun since, and the
/// longer range overlaps nothing (the exclusion constraint checks anyway).
async fn keep_until(
    pool: &PgPool,
    order: OrderId,
    hold: Option<uuid::Uuid>,
    listing: Option<uuid::Uuid>,
    until: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    if let Some(hold) = hold {
        // The hold's own expiry is remembered on the order (once), so that
        // a decline can give the extension back (`end_extension`).
        sqlx::query(
            r#"WITH before AS (
                   UPDATE orders o SET hold_expires_before = coalesce(o.hold_expires_before, h.expires_at)
                   FROM holds h WHERE o.id = $3 AND h.id = $1
               ), h AS (
                   UPDATE holds SET expires_at = $2
                   WHERE id = $1 AND state = 'active' AND expires_at > now() AND expires_at < $2
                   RETURNING id, event_id, seat_ids
               )
               UPDATE seat_claims c SET during = tstzrange(lower(c.during), $2)
               FROM h, unnest(h.seat_ids) AS s(seat_id)
               WHERE c.event_id = h.event_id AND c.seat_id = s.seat_id AND c.hold_id = h.id
                 AND c.kind = 'hold' AND upper(c.during) > now()"#,
        )
        .bind(hold)
        .bind(until)
        .bind(order.0)
        .execute(pool)
        .await?;
    }
    if let Some(listing) = listing {
        sqlx::query(
            r#"UPDATE resale_listings SET reserved_until = greatest(reserved_until, $3)
               WHERE id = $1 AND reserved_by = $2 AND state = 'listed'"#,
        )
        .bind(listing)
        .bind(order.0)
        .bind(until)
        .execute(pool)
        .await?;
    }
    Ok(())
}

/// After a failed 3-D Secure, the least time the hold keeps for another
/// card (when its own time ran out while the fan was authenticating).
const RETRY_GRACE_SECS: i64 = 120;

/// A waiting payment ended in a decline (the fan failed 3-D Secure): the
/// hold the wait extended goes back to its own expiry, or to `grace_secs`
/// from now if that has passed, so the fan can try another card while the
/// seats are not kept from others until the payment deadline. Only ever
/// shortens a live hold. Part of the decline's own transaction
/// (`mark_failed`), so no one sees the order failed with its seats still
/// kept, and no crash between the two keeps them.
async fn end_extension(conn: &mut sqlx::PgConnection, order: OrderId, grace_secs: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        r#"WITH o AS (
               SELECT hold_id, greatest(hold_expires_before, now() + make_interval(secs => $2)) AS until
               FROM orders WHERE id = $1 AND state = 'payment_failed' AND hold_expires_before IS NOT NULL
           ), h AS (
               UPDATE holds h SET expires_at = o.until
               FROM o WHERE h.id = o.hold_id AND h.state = 'active' AND h.expires_at > o.until
               RETURNING h.id, h.event_id, h.seat_ids, h.expires_at
           )
           UPDATE seat_claims c SET during = tstzrange(lower(c.during), h.expires_at)
           FROM h, unnest(h.seat_ids) AS s(seat_id)
           WHERE c.event_id = h.event_id AND c.seat_id = s.seat_id AND c.hold_id = h.id
             AND c.kind = 'hold' AND upper(c.during) > h.expires_at"#,
    )
    .bind(order.0)
    .bind(grace_secs as f64)
    .execute(conn)
    .await?;
    Ok(())
}

/// Whether a pending order's payment deadline has passed (by the
/// database's clock). False for an order with none (never pending).
pub async fn payment_deadline_passed(pool: &PgPool, order: OrderId) -> Result<bool, sqlx::Error> {
    let passed: Option<bool> =
        sqlx::query_scalar("SELECT payment_deadline <= now() FROM orders WHERE id = $1 AND state = 'pending_payment'")
            .bind(order.0)
            .fetch_optional(pool)
            .await?
            .flatten();
    Ok(passed == Some(true))
}

/// The payment deadline passed with the charge still pending (the fan
/// abandoned 3-D Secure): pending_payment -> payment_failed with `code`,
/// the hold ended and its seats back on sale (or the listing let go) in the
/// same transaction, and the fan told. Returns whether it moved the order.
/// The caller then cancels the charge at the provider; a success that
/// slips in first is taken by late.rs (tickets if the seats are still
/// free, otherwise refunded).
#[tracing::instrument(name = "sql.give_up", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn give_up(pool: &PgPool, order: OrderId, code: &str) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let row = sqlx::query(
        r#"UPDATE orders SET state = 'payment_failed', failure_code = $2, updated_at = now()
           WHERE id = $1 AND state = 'pending_payment' AND payment_deadline <= now()
           RETURNING fan_id, event_id, hold_id"#,
    )
    .bind(order.0)
    .bind(code)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Ok(false);
    };
    let fan: String = row.try_get("fan_id")?;
    let event: i64 = row.try_get("event_id")?;
    let hold: Option<uuid::Uuid> = row.try_get("hold_id")?;
    if let Some(hold) = hold {
        sqlx::query(
            r#"WITH h AS (
                   UPDATE holds SET state = 'expired', ended_at = now(), expires_at = least(expires_at, now())
                   WHERE id = $1 AND state = 'active'
                   RETURNING id, event_id, seat_ids
               )
               DELETE FROM seat_claims c USING h, unnest(h.seat_ids) AS s(seat_id)
               WHERE c.event_id = h.event_id AND c.seat_id = s.seat_id AND c.hold_id = h.id AND c.kind = 'hold'"#,
        )
        .bind(hold)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query("UPDATE resale_listings SET reserved_by = NULL, reserved_until = NULL WHERE reserved_by = $1 AND state = 'listed'")
        .bind(order.0)
        .execute(&mut *tx)
        .await?;
    notify(
        &mut tx,
        topic::PAYMENT_FAILED,
        order,
        &fan,
        json!({ "order_id": order, "event_id": event, "failure_code": code }),
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// What a pending order's payment waits for, for the fan: (order,
/// provider's status, the page to authenticate on, the deadline).
type Waiting = (uuid::Uuid, Option<String>, Option<String>, Option<DateTime<Utc>>);

async fn waiting(pool: &PgPool, orders: &[uuid::Uuid]) -> Result<Vec<Waiting>, sqlx::Error> {
    sqlx::query_as(
        r#"SELECT id, payment_status, next_action_url, payment_deadline FROM orders
           WHERE id = ANY($1) AND state = 'pending_payment' AND payment_status IS NOT NULL"#,
    )
    .bind(orders)
    .fetch_all(pool)
    .await
}

/// The card was declined: pending_payment -> payment_failed, and the fan is
/// told. The hold stays, so the fan can try another card before it lapses.
#[tracing::instrument(name = "sql.mark_failed", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn mark_failed(pool: &PgPool, order: OrderId, intent: Option<&str>, code: &str) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let r = sqlx::query!(
        r#"UPDATE orders SET state = 'payment_failed', intent_id = $2, failure_code = $3, updated_at = now()
           WHERE id = $1 AND state = 'pending_payment'
           RETURNING fan_id, event_id"#,
        order.0,
        intent,
        code
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(r) = r else {
        return Ok(false);
    };
    // A buyer of a resale listing lets go of it.
    sqlx::query!(
        "UPDATE resale_listings SET reserved_by = NULL, reserved_until = NULL WHERE reserved_by = $1 AND state = 'listed'",
        order.0
    )
    .execute(&mut *tx)
    .await?;
    end_extension(&mut tx, order, RETRY_GRACE_SECS).await?;
    notify(
        &mut tx,
        topic::PAYMENT_FAILED,
        order,
        &r.fan_id,
        json!({ "order_id": order, "event_id": r.event_id, "failure_code": code }),
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// Seats sold and tickets issued: paid -> confirmed.
#[tracing::instrument(name = "sql.mark_confirmed", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn mark_confirmed(conn: &mut PgConnection, row: &SagaRow, reclaimed: bool) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"UPDATE orders SET state = 'confirmed', confirmed_at = now(), updated_at = now(), reclaimed = $2
           WHERE id = $1 AND state = 'paid'"#,
        row.id.0,
        reclaimed
    )
    .execute(&mut *conn)
    .await?;
    notify(
        conn,
        topic::ORDER_CONFIRMED,
        row.id,
        row.fan.as_str(),
        json!({ "order_id": row.id, "event_id": row.event, "seat_ids": row.seats, "total_cents": row.total }),
    )
    .await?;
    // A dispute may have come before the order was confirmed: its tickets
    // exist now.
    crate::checkout::disputes::on_order_confirmed(conn, row.id, row.event, row.fan.as_str()).await
}

/// The money was taken but the seats cannot be had: paid -> refunding.
pub async fn mark_refunding(conn: &mut PgConnection, row: &SagaRow, reason: &str) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"UPDATE orders SET state = 'refunding', refund_reason = $2, updated_at = now(), next_check_at = now()
           WHERE id = $1 AND state = 'paid'"#,
        row.id.0,
        reason
    )
    .execute(&mut *conn)
    .await?;
    notify(
        conn,
        topic::HOLD_EXPIRED,
        row.id,
        row.fan.as_str(),
        json!({ "order_id": row.id, "event_id": row.event, "reason": reason,
                "detail": "your hold ran out before the payment arrived and the seats were sold; the payment is being refunded" }),
    )
    .await
}

/// The provider returned the money: refunding -> refunded.
pub async fn mark_refunded(pool: &PgPool, order: OrderId, refund_id: &str, amount: Cents) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let r = sqlx::query!(
        r#"UPDATE orders SET state = 'refunded', refund_id = $2, updated_at = now()
           WHERE id = $1 AND state = 'refunding'
           RETURNING fan_id, event_id, refund_reason"#,
        order.0,
        refund_id
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(r) = r else {
        return Ok(false);
    };
    notify(
        &mut tx,
        topic::REFUND_ISSUED,
        order,
        &r.fan_id,
        json!({ "order_id": order, "event_id": r.event_id, "amount_cents": amount, "reason": r.refund_reason }),
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// The provider did not answer: try again later, backing off.
pub async fn defer(pool: &PgPool, order: OrderId, after_secs: i64) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE orders SET next_check_at = now() + make_interval(secs => $2), updated_at = now() WHERE id = $1",
        order.0,
        after_secs as f64
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Orders due for a look from the reconciliation job, each pushed back
/// (with backoff) as it is taken, so that concurrent runs take different
/// orders and an order that keeps failing is asked about less and less.
pub async fn due_for_reconciliation(pool: &PgPool, batch: i64) -> Result<Vec<OrderId>, sqlx::Error> {
    let ids = sqlx::query_scalar!(
        r#"UPDATE orders o
           SET next_check_at = now() + make_interval(secs => least(300, 2 ^ least(o.checks, 8))),
               checks = o.checks + 1
           WHERE o.id IN (
               SELECT id FROM orders
               WHERE state IN ('pending_payment', 'paid', 'refunding') AND next_check_at <= now()
               ORDER BY next_check_at
               LIMIT $1
               FOR UPDATE SKIP LOCKED)
           RETURNING o.id"#,
        batch
    )
    .fetch_all(pool)
    .await?;
    Ok(ids.into_iter().map(OrderId).collect())
}

/// The order a provider charge belongs to.
pub async fn by_intent(pool: &PgPool, intent: &str) -> Result<Option<OrderId>, sqlx::Error> {
    let id = sqlx::query_scalar!("SELECT id FROM orders WHERE intent_id = $1", intent)
        .fetch_optional(pool)
        .await?;
    Ok(id.map(OrderId))
}

/// Whether a provider webhook event was acted on before.
pub async fn webhook_seen(pool: &PgPool, provider: &str, event_id: &str) -> Result<bool, sqlx::Error> {
    let seen = sqlx::query("SELECT 1 FROM payment_webhooks WHERE provider = $1 AND event_id = $2")
        .bind(provider)
        .bind(event_id)
        .fetch_optional(pool)
        .await?;
    Ok(seen.is_some())
}

/// Records a provider webhook event. Returns false if it was seen before.
pub async fn record_webhook(pool: &PgPool, provider: &str, event_id: &str, kind: &str) -> Result<bool, sqlx::Error> {
    let r = sqlx::query!(
        "INSERT INTO payment_webhooks (provider, event_id, type) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        provider,
        event_id,
        kind
    )
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// A fan's own order, as they see it.
#[tracing::instrument(name = "sql.get", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn get(pool: &PgPool, fan: &FanId, order: OrderId) -> Result<Order, OrderError> {
    let mut orders = list(pool, fan, Some(order), 1, None).await?;
    orders.pop().ok_or(OrderError::OrderNotFound)
}

/// A fan's orders, newest first, `before` an order id for the next page.
pub async fn list(
    pool: &PgPool,
    fan: &FanId,
    only: Option<OrderId>,
    limit: i64,
    before: Option<OrderId>,
) -> Result<Vec<Order>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT o.id, o.hold_id, o.listing_id, o.event_id, o.state, o.seat_ids, o.prices_cents, o.total_cents, o.currency,
                  o.failure_code, o.refund_reason, o.created_at, o.confirmed_at,
                  coalesce(tk.ids, '{}') AS "ticket_ids!", coalesce(tk.seats, '{}') AS "ticket_seats!"
           FROM orders o
           -- The order's own tickets, or the one a confirmed resale bought
           -- (two index lookups: an OR here would scan every ticket).
           LEFT JOIN LATERAL (
               SELECT array_agg(x.id ORDER BY x.seat_id) AS ids, array_agg(x.seat_id ORDER BY x.seat_id) AS seats
               FROM (SELECT t.id, t.seat_id FROM tickets t WHERE t.order_id = o.id
                     UNION ALL
                     SELECT t.id, t.seat_id FROM resale_listings l JOIN tickets t ON t.id = l.ticket_id
                     WHERE l.id = o.listing_id AND o.state = 'confirmed') x
           ) tk ON true
           WHERE o.fan_id = $1 AND ($2::uuid IS NULL OR o.id = $2) AND ($4::uuid IS NULL OR o.id < $4)
           ORDER BY o.id DESC
           LIMIT $3"#,
        fan.as_str(),
        only.map(|o| o.0),
        limit,
        before.map(|o| o.0),
    )
    .fetch_all(pool)
    .await?;
    let pending: Vec<uuid::Uuid> = rows
        .iter()
        .filter(|r| r.state == OrderState::PendingPayment.as_str())
        .map(|r| r.id)
        .collect();
    let waiting = if pending.is_empty() {
        Vec::new()
    } else {
        waiting(pool, &pending).await?
    };
    let ids: Vec<uuid::Uuid> = rows.iter().map(|r| r.id).collect();
    let mut lines = fee_settings::lines_of(pool, &ids).await?;
    rows.into_iter()
        .map(|r| {
            let wait = waiting.iter().find(|w| w.0 == r.id);
            let payment_status = wait.and_then(|w| w.1.as_deref()).map(|s| match s {
                "requires_action" => OrderPaymentStatus::RequiresAction,
                _ => OrderPaymentStatus::Processing,
            });
            let next_action = wait
                .filter(|_| payment_status == Some(OrderPaymentStatus::RequiresAction))
                .and_then(|w| w.2.clone())
                .map(|redirect_url| OrderNextAction { redirect_url });
            Ok(Order {
                order_id: OrderId(r.id),
                hold_id: r.hold_id.map(HoldId),
                listing_id: r.listing_id,
                event_id: EventId(r.event_id),
                state: OrderState::parse(&r.state)?,
                seats: r
                    .seat_ids
                    .iter()
                    .zip(&r.prices_cents)
                    .map(|(s, p)| OrderSeat {
                        seat_id: SeatId(*s),
                        price_cents: Cents(*p),
                    })
                    .collect(),
                total_cents: Cents(r.total_cents),
                currency: r.currency,
                failure_code: r.failure_code,
                refund_reason: r.refund_reason,
                tickets: r
                    .ticket_ids
                    .into_iter()
                    .zip(r.ticket_seats)
                    .map(|(t, s)| TicketRef {
                        ticket_id: TicketId(t),
                        seat_id: SeatId(s),
                    })
                    .collect(),
                created_at: r.created_at,
                confirmed_at: r.confirmed_at,
                payment_status,
                next_action,
                payment_deadline: wait.and_then(|w| w.3),
                charges: lines
                    .iter()
                    .position(|(id, _)| *id == r.id)
                    .map(|i| lines.swap_remove(i).1),
            })
        })
        .collect()
}

/// For tests and the crash checks: (state, intent) of every order.
pub async fn all_states(pool: &PgPool) -> Result<Vec<(OrderId, OrderState, Option<String>)>, sqlx::Error> {
    let rows = sqlx::query!("SELECT id, state, intent_id FROM orders ORDER BY id")
        .fetch_all(pool)
        .await?;
    rows.into_iter()
        .map(|r| Ok((OrderId(r.id), OrderState::parse(&r.state)?, r.intent_id)))
        .collect()
}
