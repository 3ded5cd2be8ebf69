//! Disputes (chargebacks): the fan's bank takes a charge back. The
//! provider's webhooks say a dispute opened, then that it was won or lost;
//! they may come twice, concurrently, in any order, before the charge's own
//! webhook, or for a charge the core never knew. So each dispute is one row
//! keyed by the provider's id (migrations/0019_disputes.sql), its state only
//! moves forward (open -> won | lost), and every effect is recorded on the
//! row when it is made, under the order's row lock then the dispute's, so
//! it is made once:
//!
//! - the order's valid tickets are voided (`voided_disputed`) when the
//!   dispute opens or only when it is lost, by the event's policy
//!   (`dispute_void_on`); their seats keep their sale claim, so nobody can
//!   buy them while the dispute is open;
//! - won: the tickets it voided are valid again (their seats never left);
//! - lost: the tickets stay void, and the seats are taken as refunded ones:
//!   back on sale if the event's `return_refunded_seats` says so;
//! - each new state is told once through the outbox (`dispute.opened`,
//!   `dispute.closed`: the operator's webhook and the fan's e-mail).
//!
//! An order not yet confirmed has no tickets: its disputes are applied by
//! `on_order_confirmed`, inside the transaction that confirms it. While a
//! dispute is open or lost the order cannot be refunded (`refunds.rs`): the
//! bank has the money; nor are its tickets transferred or listed
//! (`ticket_disputed`), so nobody else takes a ticket a lost dispute voids.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use sqlx::{PgConnection, PgPool, Row};

use crate::checkout::orders;
use crate::checkout::provider::{Dispute, DisputeStatus, PaymentProvider, ProviderError};
use crate::ids::{Cents, EventId, OrderId, OrganisationId, SeatId, TicketId};
use crate::inventory::claims;
use crate::outbox::{notify, topic};
use crate::tickets::policy::{self, DisputeVoidOn};

/// The ticket state a dispute leaves behind.
pub const VOIDED_DISPUTED: &str = "voided_disputed";

#[derive(Debug, thiserror::Error)]
pub enum DisputeError {
    #[error("storage: {0}")]
    Storage(#[from] sqlx::Error),
    /// The provider could not say whose charge it is: nothing was stored,
    /// and the provider's next delivery asks again.
    #[error("payment provider did not answer: {0}")]
    ProviderUnavailable(String),
}

/// A dispute as an operator sees it in the portal.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DisputeView {
    /// The provider's id for it.
    pub dispute_id: String,
    pub provider: String,
    pub order_id: Option<OrderId>,
    pub intent_id: Option<String>,
    pub amount_cents: Cents,
    pub currency: Option<String>,
    /// The bank's reason (`fraudulent`, `product_not_received`, ...).
    pub reason: Option<String>,
    pub state: DisputeStatus,
    /// The tickets it voided (valid again once `restored_at` is set).
    pub voided_ticket_ids: Vec<TicketId>,
    pub voided_at: Option<DateTime<Utc>>,
    pub restored_at: Option<DateTime<Utc>>,
    /// When a lost dispute's seats went back on sale (the event's policy
    /// permitting).
    pub seats_returned_at: Option<DateTime<Utc>>,
    pub opened_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
}

/// Takes a dispute the provider reported (a verified webhook).
#[tracing::instrument(skip_all, fields(dispute = %dispute.dispute_id, status = dispute.status.as_str()))]
pub async fn on_webhook(pool: &PgPool, provider: &dyn PaymentProvider, dispute: &Dispute) -> Result<(), DisputeError> {
    let order = whose(pool, provider, dispute).await?;
    let mut tx = pool.begin().await?;
    // The order first, then the dispute: the order that confirms an order
    // (`on_order_confirmed`) takes them in, so neither waits on the other.
    let order = match order {
        Some(order) => lock_order(&mut tx, order, dispute.intent_id.as_deref()).await?,
        None => None,
    };
    let (event, order_id) = match &order {
        Some(o) => (Some(o.event.0), Some(o.id.0)),
        None => (None, None),
    };
    sqlx::query(
        r#"INSERT INTO disputes (provider, dispute_id, intent_id, order_id, event_id, amount_cents, currency, reason,
                                 state, closed_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, CASE WHEN $9 = 'open' THEN NULL ELSE now() END)
           ON CONFLICT (provider, dispute_id) DO NOTHING"#,
    )
    .bind(provider.name())
    .bind(&dispute.dispute_id)
    .bind(&dispute.intent_id)
    .bind(order_id)
    .bind(event)
    .bind(dispute.amount.0)
    .bind(&dispute.currency)
    .bind(
        dispute
            .reason
            .as_deref()
            .map(|r| r.chars().take(100).collect::<String>()),
    )
    .bind(dispute.status.as_str())
    .execute(&mut *tx)
    .await?;
    // Forward only: a closed dispute stays closed whatever arrives after.
    sqlx::query(
        r#"UPDATE disputes SET state = $3, closed_at = now(), updated_at = now()
           WHERE provider = $1 AND dispute_id = $2 AND state = 'open' AND $3 <> 'open'"#,
    )
    .bind(provider.name())
    .bind(&dispute.dispute_id)
    .bind(dispute.status.as_str())
    .execute(&mut *tx)
    .await?;
    if let (Some(order), Some(event)) = (order_id, event) {
        // A dispute kept before its order was known.
        sqlx::query(
            r#"UPDATE disputes SET order_id = $3, event_id = $4, updated_at = now()
               WHERE provider = $1 AND dispute_id = $2 AND order_id IS NULL"#,
        )
        .bind(provider.name())
        .bind(&dispute.dispute_id)
        .bind(order)
        .bind(event)
        .execute(&mut *tx)
        .await?;
    }
    if let Some(o) = &order {
        apply(&mut tx, o, provider.name(), &dispute.dispute_id).await?;
    } else {
        tracing::warn!(intent = ?dispute.intent_id, "a dispute for a charge the core does not know; kept");
    }
    tx.commit().await?;
    Ok(())
}

/// The order whose charge is disputed: the one that has the intent, else
/// the one the provider's charge names (its webhook may not have come yet).
/// None if nobody knows it.
async fn whose(
    pool: &PgPool,
    provider: &dyn PaymentProvider,
    dispute: &Dispute,
) -> Result<Option<OrderId>, DisputeError> {
    let Some(intent) = &dispute.intent_id else {
        return Ok(None);
    };
    if let Some(order) = orders::by_intent(pool, intent).await? {
        return Ok(Some(order));
    }
    match provider.retrieve(intent).await {
        Ok(charge) => Ok(charge.order),
        // The provider does not know it either (or refuses to say).
        Err(ProviderError::Rejected { code, .. }) => {
            tracing::info!(%code, %intent, "the provider gave no order for the disputed charge");
            Ok(None)
        }
        Err(ProviderError::Unknown(why)) => Err(DisputeError::ProviderUnavailable(why)),
    }
}

/// An order a dispute applies to, locked.
struct Locked {
    id: OrderId,
    event: EventId,
    fan: String,
    confirmed: bool,
}

/// Locks the order, if it exists and the disputed charge is its own (a
/// second, stray charge of one order was refunded on its own: its dispute
/// is no reason to void the order's tickets).
async fn lock_order(
    tx: &mut PgConnection,
    order: OrderId,
    intent: Option<&str>,
) -> Result<Option<Locked>, sqlx::Error> {
    let row = sqlx::query("SELECT event_id, fan_id, state, intent_id FROM orders WHERE id = $1 FOR UPDATE")
        .bind(order.0)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(r) = row else {
        return Ok(None);
    };
    let own: Option<String> = r.try_get("intent_id")?;
    if own.is_some() && own.as_deref() != intent {
        tracing::warn!(order_id = %order, "a dispute of a charge that is not the order's own; kept apart");
        return Ok(None);
    }
    let state: String = r.try_get("state")?;
    Ok(Some(Locked {
        id: order,
        event: EventId(r.try_get("event_id")?),
        fan: r.try_get("fan_id")?,
        confirmed: state == "confirmed",
    }))
}

/// Applies the disputes of an order that has just been confirmed (its
/// tickets issued), in the confirming transaction, which holds the
/// order's row lock.
pub async fn on_order_confirmed(
    tx: &mut PgConnection,
    order: OrderId,
    event: EventId,
    fan: &str,
) -> Result<(), sqlx::Error> {
    let ids: Vec<(String, String)> =
        sqlx::query_as("SELECT provider, dispute_id FROM disputes WHERE order_id = $1 ORDER BY opened_at")
            .bind(order.0)
            .fetch_all(&mut *tx)
            .await?;
    let o = Locked {
        id: order,
        event,
        fan: fan.to_owned(),
        confirmed: true,
    };
    for (provider, dispute) in ids {
        apply(tx, &o, &provider, &dispute).await?;
    }
    Ok(())
}

/// Brings the order's tickets, seats and notifications in line with the
/// dispute's state, doing only what the row says is not done yet. The
/// caller holds the order's row lock.
async fn apply(tx: &mut PgConnection, order: &Locked, provider: &str, dispute_id: &str) -> Result<(), sqlx::Error> {
    let d = sqlx::query(
        r#"SELECT state, intent_id, amount_cents, reason, voided_ticket_ids, voided_at IS NOT NULL AS voided,
                  restored_at IS NOT NULL AS restored, seats_returned_at IS NOT NULL AS returned, notified_state
           FROM disputes WHERE provider = $1 AND dispute_id = $2 FOR UPDATE"#,
    )
    .bind(provider)
    .bind(dispute_id)
    .fetch_one(&mut *tx)
    .await?;
    let state = DisputeStatus::parse(&d.try_get::<String, _>("state")?)?;
    let mut voided: Vec<uuid::Uuid> = d.try_get("voided_ticket_ids")?;
    let (was_voided, restored, returned): (bool, bool, bool) =
        (d.try_get("voided")?, d.try_get("restored")?, d.try_get("returned")?);
    let notified: Option<String> = d.try_get("notified_state")?;
    let policy = policy::for_event(tx, order.event).await?;
    let mut restored_now = false;
    let mut returned_now = false;
    if order.confirmed {
        let void_now = match state {
            DisputeStatus::Open => policy.dispute_void_on == DisputeVoidOn::Created,
            DisputeStatus::Lost => true,
            DisputeStatus::Won => false,
        };
        if void_now && !was_voided {
            voided = void_tickets(tx, order.id).await?;
            sqlx::query(
                r#"UPDATE disputes SET voided_ticket_ids = $3, voided_at = now(), updated_at = now()
                   WHERE provider = $1 AND dispute_id = $2"#,
            )
            .bind(provider)
            .bind(dispute_id)
            .bind(&voided)
            .execute(&mut *tx)
            .await?;
            tracing::info!(tickets = voided.len(), "tickets voided by a dispute");
        }
        let voided_any = was_voided || void_now;
        if state == DisputeStatus::Won && voided_any && !restored {
            // Their seats kept their sale claims, so no other ticket can be
            // valid for them: the one-ticket-per-seat index stays whole.
            sqlx::query("UPDATE tickets SET state = 'valid' WHERE id = ANY($1) AND state = 'voided_disputed'")
                .bind(&voided)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "UPDATE disputes SET restored_at = now(), updated_at = now() WHERE provider = $1 AND dispute_id = $2",
            )
            .bind(provider)
            .bind(dispute_id)
            .execute(&mut *tx)
            .await?;
            restored_now = true;
        }
        if state == DisputeStatus::Lost && policy.return_refunded_seats && !returned {
            let seats: Vec<i64> = sqlx::query_scalar("SELECT seat_id FROM tickets WHERE id = ANY($1)")
                .bind(&voided)
                .fetch_all(&mut *tx)
                .await?;
            let seats: Vec<SeatId> = seats.into_iter().map(SeatId).collect();
            claims::unsell(tx, order.event, &seats).await?;
            sqlx::query(
                "UPDATE disputes SET seats_returned_at = now(), updated_at = now() WHERE provider = $1 AND dispute_id = $2",
            )
            .bind(provider)
            .bind(dispute_id)
            .execute(&mut *tx)
            .await?;
            returned_now = true;
        }
    }
    if notified.as_deref() != Some(state.as_str()) {
        let topic = if state.is_closed() {
            topic::DISPUTE_CLOSED
        } else {
            topic::DISPUTE_OPENED
        };
        let intent: Option<String> = d.try_get("intent_id")?;
        let amount: i64 = d.try_get("amount_cents")?;
        let reason: Option<String> = d.try_get("reason")?;
        notify(
            tx,
            topic,
            order.id,
            &order.fan,
            json!({ "dispute_id": dispute_id, "order_id": order.id, "event_id": order.event, "intent_id": intent,
                    "amount_cents": amount, "reason": reason, "status": state.as_str(),
                    "void_on": policy.dispute_void_on.as_str(), "voided_ticket_ids": voided,
                    "tickets_restored": restored_now, "seats_returned": returned_now }),
        )
        .await?;
        sqlx::query(
            "UPDATE disputes SET notified_state = $3, updated_at = now() WHERE provider = $1 AND dispute_id = $2",
        )
        .bind(provider)
        .bind(dispute_id)
        .bind(state.as_str())
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// Voids the order's valid tickets (those it bought, or the one a resale
/// order bought, whoever holds them now: the money for them is gone) and
/// withdraws their resale listings. Returns the tickets voided.
async fn void_tickets(tx: &mut PgConnection, order: OrderId) -> Result<Vec<uuid::Uuid>, sqlx::Error> {
    let voided: Vec<uuid::Uuid> = sqlx::query_scalar(
        r#"UPDATE tickets SET state = 'voided_disputed'
           WHERE state = 'valid'
             AND (order_id = $1
                  OR id IN (SELECT l.ticket_id FROM orders o JOIN resale_listings l ON l.id = o.listing_id
                            WHERE o.id = $1 AND l.state = 'sold' AND l.reserved_by = $1))
           RETURNING id"#,
    )
    .bind(order.0)
    .fetch_all(&mut *tx)
    .await?;
    sqlx::query(
        r#"UPDATE resale_listings SET state = 'cancelled', ended_at = now()
           WHERE ticket_id = ANY($1) AND state = 'listed'"#,
    )
    .bind(&voided)
    .execute(&mut *tx)
    .await?;
    Ok(voided)
}

/// Whether the order has a dispute that is open or lost (the bank holds
/// or kept the money: no refund on top).
pub async fn blocks_refund(conn: &mut PgConnection, order: OrderId) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM disputes WHERE order_id = $1 AND state IN ('open', 'lost'))")
        .bind(order.0)
        .fetch_one(conn)
        .await
}

/// Whether the payment behind a ticket (its order's, or that of the resale
/// order that bought it) is disputed and not won: such a ticket is neither
/// transferred nor listed, so that no one else takes a ticket a lost
/// dispute will void.
pub async fn ticket_disputed(conn: &mut PgConnection, ticket: TicketId) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        r#"SELECT EXISTS (
               SELECT 1 FROM disputes d
               WHERE d.state IN ('open', 'lost')
                 AND d.order_id IN (SELECT order_id FROM tickets WHERE id = $1
                                    UNION ALL
                                    SELECT o.id FROM resale_listings l JOIN orders o ON o.listing_id = l.id
                                    WHERE l.ticket_id = $1 AND l.state = 'sold' AND l.reserved_by = o.id))"#,
    )
    .bind(ticket.0)
    .fetch_one(conn)
    .await
}

/// An event's disputes, newest first, for its organisation's operators.
pub async fn for_event(pool: &PgPool, org: OrganisationId, event: EventId) -> Result<Vec<DisputeView>, sqlx::Error> {
    let rows = sqlx::query(
        r#"SELECT d.provider, d.dispute_id, d.order_id, d.intent_id, d.amount_cents, d.currency, d.reason, d.state,
                  d.voided_ticket_ids, d.voided_at, d.restored_at, d.seats_returned_at, d.opened_at, d.closed_at
           FROM disputes d JOIN events e ON e.id = d.event_id
           WHERE d.event_id = $1 AND e.organisation_id = $2
           ORDER BY d.opened_at DESC, d.dispute_id LIMIT 500"#,
    )
    .bind(event.0)
    .bind(org.0)
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|r| -> Result<DisputeView, sqlx::Error> {
            let voided: Vec<uuid::Uuid> = r.try_get("voided_ticket_ids")?;
            Ok(DisputeView {
                dispute_id: r.try_get("dispute_id")?,
                provider: r.try_get("provider")?,
                order_id: r.try_get::<Option<uuid::Uuid>, _>("order_id")?.map(OrderId),
                intent_id: r.try_get("intent_id")?,
                amount_cents: Cents(r.try_get("amount_cents")?),
                currency: r.try_get("currency")?,
                reason: r.try_get("reason")?,
                state: DisputeStatus::parse(&r.try_get::<String, _>("state")?)?,
                voided_ticket_ids: voided.into_iter().map(TicketId).collect(),
                voided_at: r.try_get("voided_at")?,
                restored_at: r.try_get("restored_at")?,
                seats_returned_at: r.try_get("seats_returned_at")?,
                opened_at: r.try_get("opened_at")?,
                closed_at: r.try_get("closed_at")?,
            })
        })
        .collect()
}
