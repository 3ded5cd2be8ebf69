//! Refunds of a whole order or some of its tickets, asked for by the fan
//! who bought them (within the event's refund policy: if fans may refund
//! themselves at all, and not later than the cutoff before the start) or by
//! an operator of the event's organisation (at any time, with a reason the
//! refund keeps). In one transaction the tickets stop being valid, their
//! seats go back on sale if the event's policy says so, and a pending
//! refund is recorded; then the provider is asked (idempotency key = the
//! refund), and the refund is marked done. A provider that does not answer
//! leaves it pending for the reconciliation job, never lost and never paid
//! twice.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{PgPool, Row};

use crate::checkout::provider::{PaymentProvider, RefundRequest};
use crate::idempotency::Fingerprint;
use crate::ids::{Cents, EventId, FanId, OperatorId, OrderId, OrganisationId, SeatId, TicketId};
use crate::inventory::claims;
use crate::outbox::{notify, topic};
use crate::pricing::fee_settings;
use crate::states::UnknownState;
use crate::tickets::policy;

/// What a fan sends: which tickets, or none for the whole order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundOrderRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_ids: Option<Vec<TicketId>>,
}

/// What an operator sends: which tickets (none: all the order's valid,
/// unused ones) and why.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OperatorRefundRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_ids: Option<Vec<TicketId>>,
    /// Why (1 to 500 characters): kept with the refund.
    pub reason: String,
}

/// Who asks for a refund.
#[derive(Debug, Clone, Copy)]
pub enum Requester<'a> {
    /// The fan who bought the order, within the event's policy.
    Fan(&'a FanId),
    /// An operator of the event's organisation, at any time.
    Operator {
        operator: OperatorId,
        organisation: OrganisationId,
        reason: &'a str,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RefundState {
    /// Tickets voided; the money is on its way back.
    Pending,
    Succeeded,
}

impl RefundState {
    /// The state a `refunds.state` column names.
    pub fn parse(s: &str) -> Result<RefundState, UnknownState> {
        match s {
            "pending" => Ok(RefundState::Pending),
            "succeeded" => Ok(RefundState::Succeeded),
            other => Err(UnknownState::new("refund", other)),
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OrderRefund {
    pub refund_id: uuid::Uuid,
    pub order_id: OrderId,
    pub ticket_ids: Vec<TicketId>,
    pub amount_cents: Cents,
    pub state: RefundState,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RefundError {
    #[error("no such order")]
    OrderNotFound,
    #[error("only a confirmed order can be refunded (this one is {state})")]
    OrderNotConfirmed { state: String },
    #[error("these tickets are not part of the order")]
    TicketsNotInOrder { ticket_ids: Vec<TicketId> },
    #[error("these tickets cannot be refunded: used at the gate, transferred, or already refunded")]
    TicketsNotRefundable { ticket_ids: Vec<TicketId> },
    #[error("nothing left to refund in this order")]
    NothingToRefund,
    #[error("this event's tickets are refunded only by its organiser")]
    SelfRefundsDisabled,
    #[error("fans could refund themselves until {closed_at}; ask the organiser")]
    RefundWindowClosed { closed_at: DateTime<Utc> },
    #[error("a refund by an operator needs a reason of 1 to 500 characters")]
    InvalidReason,
    #[error("this Idempotency-Key was used for a different request")]
    IdempotencyKeyReused,
    /// The fan's bank took the payment back (or is deciding whether to):
    /// a refund would pay it twice.
    #[error("the payment for this order is disputed at the bank; it cannot be refunded")]
    OrderDisputed,
    #[error("storage failure")]
    #[serde(skip)]
    Storage(String),
}

impl From<sqlx::Error> for RefundError {
    fn from(e: sqlx::Error) -> Self {
        RefundError::Storage(e.to_string())
    }
}

/// Voids the tickets and records the refund; returns its id, and whether
/// the key had already made it.
/// The most characters an operator's reason may have.
const MAX_REASON: usize = 500;

/// Voids the tickets and records the refund; returns its id, whether the
/// key had already made it, and the order's fan (whose card is refunded).
pub async fn open(
    pool: &PgPool,
    who: Requester<'_>,
    key: &str,
    order: OrderId,
    ticket_ids: Option<&[TicketId]>,
) -> Result<(uuid::Uuid, bool, FanId), RefundError> {
    let (fingerprint, reason, operator) = match who {
        Requester::Fan(_) => (
            Fingerprint::of(
                &format!("order.refund/{order}"),
                &RefundOrderRequest {
                    ticket_ids: ticket_ids.map(<[TicketId]>::to_vec),
                },
            ),
            None,
            None,
        ),
        Requester::Operator { operator, reason, .. } => {
            let reason = reason.trim();
            if reason.is_empty() || reason.chars().count() > MAX_REASON || reason.chars().any(char::is_control) {
                return Err(RefundError::InvalidReason);
            }
            let request = OperatorRefundRequest {
                ticket_ids: ticket_ids.map(<[TicketId]>::to_vec),
                reason: reason.to_owned(),
            };
            let print = Fingerprint::of(&format!("order.operator_refund/{order}"), &request);
            (print, Some(reason), Some(operator.0))
        }
    };
    let mut tx = pool.begin().await?;
    // The order's lock makes refunds of one order one at a time. A fan
    // names only their own orders; an operator only their organisation's.
    let o = sqlx::query(
        r#"SELECT o.event_id, o.state, o.fan_id, e.starts_at
           FROM orders o JOIN events e ON e.id = o.event_id
           WHERE o.id = $1 AND (o.fan_id = $2 OR e.organisation_id = $3)
           FOR UPDATE OF o"#,
    )
    .bind(order.0)
    .bind(match who {
        Requester::Fan(fan) => Some(fan.as_str()),
        Requester::Operator { .. } => None,
    })
    .bind(match who {
        Requester::Fan(_) => None,
        Requester::Operator { organisation, .. } => Some(organisation.0),
    })
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(RefundError::OrderNotFound)?;
    let (event_id, state, buyer, starts_at): (i64, String, String, DateTime<Utc>) = (
        o.try_get("event_id")?,
        o.try_get("state")?,
        o.try_get("fan_id")?,
        o.try_get("starts_at")?,
    );
    let fan = FanId(buyer);
    // An operator's keys live beside the buyer's without meeting them.
    let key = match operator {
        Some(op) => format!("operator-{op}:{key}"),
        None => key.to_owned(),
    };
    let prior = sqlx::query!(
        "SELECT id, fingerprint FROM refunds WHERE fan_id = $1 AND idempotency_key = $2",
        fan.as_str(),
        &key
    )
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(p) = prior {
        return if p.fingerprint == fingerprint.0 {
            Ok((p.id, true, fan))
        } else {
            Err(RefundError::IdempotencyKeyReused)
        };
    }
    if state != "confirmed" {
        return Err(RefundError::OrderNotConfirmed { state });
    }
    if crate::checkout::disputes::blocks_refund(&mut tx, order).await? {
        return Err(RefundError::OrderDisputed);
    }
    let event = EventId(event_id);
    let policy = policy::for_event(&mut tx, event).await?;
    if operator.is_none() {
        if !policy.self_refunds {
            return Err(RefundError::SelfRefundsDisabled);
        }
        let closed_at = starts_at - chrono::Duration::hours(i64::from(policy.refund_cutoff_hours));
        if Utc::now() >= closed_at {
            return Err(RefundError::RefundWindowClosed { closed_at });
        }
    }
    let tickets = sqlx::query!(
        r#"SELECT id, seat_id, price_cents, state, owner_fan_id, checked_in_at IS NOT NULL AS "used!"
           FROM tickets WHERE order_id = $1 ORDER BY seat_id FOR UPDATE"#,
        order.0
    )
    .fetch_all(&mut *tx)
    .await?;
    // A fan refunds the tickets still theirs; an operator any valid,
    // unused ticket of the order, whoever holds it now (the money goes
    // back to the card that paid).
    let ok = |state: &str, owner: &str, used: bool| {
        state == "valid" && !used && (operator.is_some() || owner == fan.as_str())
    };
    let chosen: Vec<_> = match ticket_ids {
        Some(ids) => {
            let missing: Vec<TicketId> = ids
                .iter()
                .filter(|id| !tickets.iter().any(|t| t.id == id.0))
                .copied()
                .collect();
            if !missing.is_empty() || ids.is_empty() {
                return Err(RefundError::TicketsNotInOrder { ticket_ids: missing });
            }
            let chosen: Vec<_> = tickets.iter().filter(|t| ids.iter().any(|id| id.0 == t.id)).collect();
            let refused: Vec<TicketId> = chosen
                .iter()
                .filter(|t| !ok(&t.state, &t.owner_fan_id, t.used))
                .map(|t| TicketId(t.id))
                .collect();
            if !refused.is_empty() {
                return Err(RefundError::TicketsNotRefundable { ticket_ids: refused });
            }
            chosen
        }
        None => tickets
            .iter()
            .filter(|t| ok(&t.state, &t.owner_fan_id, t.used))
            .collect(),
    };
    if chosen.is_empty() {
        return Err(RefundError::NothingToRefund);
    }
    let ticket_ids: Vec<uuid::Uuid> = chosen.iter().map(|t| t.id).collect();
    if crate::tickets::resale::any_listed(&mut tx, &ticket_ids).await? {
        return Err(RefundError::TicketsNotRefundable {
            ticket_ids: ticket_ids.into_iter().map(TicketId).collect(),
        });
    }
    let seats: Vec<SeatId> = chosen.iter().map(|t| SeatId(t.seat_id)).collect();
    // With fees and taxes, each ticket's own lines (and the order's fee
    // with its last tickets) by the event's policy (pricing/fees.rs).
    let amount: i64 = match fee_settings::lines_for(&mut tx, order).await? {
        Some(charges) => {
            let seat_ids: Vec<i64> = chosen.iter().map(|t| t.seat_id).collect();
            let left = tickets.iter().filter(|t| t.state == "valid").count();
            charges.refund_for(&seat_ids, left == chosen.len())
        }
        None => chosen.iter().map(|t| t.price_cents).sum(),
    };
    sqlx::query!(
        "UPDATE tickets SET state = 'refunded' WHERE id = ANY($1) AND state = 'valid'",
        &ticket_ids
    )
    .execute(&mut *tx)
    .await?;
    if policy.return_refunded_seats {
        claims::unsell(&mut tx, event, &seats).await?;
    }
    let id = uuid::Uuid::now_v7();
    sqlx::query(
        r#"INSERT INTO refunds (id, order_id, fan_id, idempotency_key, fingerprint, ticket_ids, amount_cents,
                                reason, operator_id)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"#,
    )
    .bind(id)
    .bind(order.0)
    .bind(fan.as_str())
    .bind(&key)
    .bind(&fingerprint.0)
    .bind(&ticket_ids)
    .bind(amount)
    .bind(reason)
    .bind(operator)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((id, false, fan))
}

/// Asks the provider for the money of a pending refund, and records it.
/// Returns whether the refund is done.
pub async fn settle(pool: &PgPool, provider: &dyn PaymentProvider, refund: uuid::Uuid) -> Result<bool, sqlx::Error> {
    let r = sqlx::query!(
        r#"SELECT r.state, r.amount_cents, r.order_id, r.fan_id, r.ticket_ids, o.intent_id, o.event_id
           FROM refunds r JOIN orders o ON o.id = r.order_id WHERE r.id = $1"#,
        refund
    )
    .fetch_one(pool)
    .await?;
    if RefundState::parse(&r.state)? == RefundState::Succeeded {
        return Ok(true);
    }
    let provider_refund = match (&r.intent_id, r.amount_cents) {
        // A free order, or free tickets: nothing to send back.
        (None, _) | (_, 0) => None,
        (Some(intent), amount) => {
            let request = RefundRequest {
                intent_id: intent.clone(),
                amount: Cents(amount),
                idempotency_key: format!("refund-{refund}"),
            };
            match provider.refund(&request).await {
                Ok(done) => Some(done.refund_id),
                Err(e) => {
                    tracing::warn!(refund_id = %refund, error = %e, "refund not confirmed by the provider; will retry");
                    sqlx::query!(
                        "UPDATE refunds SET next_check_at = now() + interval '30 seconds' WHERE id = $1",
                        refund
                    )
                    .execute(pool)
                    .await?;
                    return Ok(false);
                }
            }
        }
    };
    let mut tx = pool.begin().await?;
    let moved = sqlx::query!(
        r#"UPDATE refunds SET state = 'succeeded', succeeded_at = now(), provider_refund_id = $2
           WHERE id = $1 AND state = 'pending'"#,
        refund,
        provider_refund
    )
    .execute(&mut *tx)
    .await?;
    if moved.rows_affected() == 1 {
        notify(
            &mut tx,
            topic::REFUND_ISSUED,
            OrderId(r.order_id),
            &r.fan_id,
            json!({ "order_id": r.order_id, "event_id": r.event_id, "refund_id": refund,
                    "ticket_ids": r.ticket_ids, "amount_cents": r.amount_cents, "reason": "fan_request" }),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(true)
}

pub async fn get(pool: &PgPool, fan: &FanId, refund: uuid::Uuid) -> Result<OrderRefund, RefundError> {
    let r = sqlx::query!(
        "SELECT order_id, ticket_ids, amount_cents, state, created_at FROM refunds WHERE id = $1 AND fan_id = $2",
        refund,
        fan.as_str()
    )
    .fetch_optional(pool)
    .await?
    .ok_or(RefundError::OrderNotFound)?;
    Ok(OrderRefund {
        refund_id: refund,
        order_id: OrderId(r.order_id),
        ticket_ids: r.ticket_ids.into_iter().map(TicketId).collect(),
        amount_cents: Cents(r.amount_cents),
        state: RefundState::parse(&r.state).map_err(sqlx::Error::from)?,
        created_at: r.created_at,
    })
}

/// Pending refunds due another try (for the reconciliation job), each
/// pushed back as it is taken so concurrent runs take different ones.
pub async fn due(pool: &PgPool, batch: i64) -> Result<Vec<uuid::Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"UPDATE refunds SET next_check_at = now() + interval '30 seconds'
           WHERE id IN (SELECT id FROM refunds WHERE state = 'pending' AND next_check_at <= now()
                        ORDER BY next_check_at LIMIT $1 FOR UPDATE SKIP LOCKED)
           RETURNING id"#,
        batch
    )
    .fetch_all(pool)
    .await
}
