//! Capped resale. A fan lists a ticket at no more than the event's cap
//! (`resale_cap_percent` of face value; 100 for face-value-only markets),
//! and may have at most as many tickets listed or resold for an event as
//! they could have bought in the primary sale. A buyer pays through the
//! ordinary checkout (an order naming the listing, which reserves it while
//! the payment runs); `complete` moves the ticket and records the seller's
//! payout in the transaction that confirms the order. A listing's state
//! leaves `listed` once, so it cannot be sold twice.

use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{PgConnection, PgPool};

use crate::idempotency::{Fingerprint, Outcome};
use crate::ids::{Cents, EventId, FanId, OrderId, SeatId, TicketId};
use crate::outbox::{notify, topic};
use crate::tickets::policy;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListRequest {
    pub price_cents: Cents,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Listing {
    pub listing_id: uuid::Uuid,
    pub ticket_id: TicketId,
    pub event_id: EventId,
    pub seat_id: SeatId,
    pub price_cents: Cents,
    pub face_value_cents: Cents,
    /// `listed`, `sold` or `cancelled`.
    pub state: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ResaleError {
    #[error("no such ticket")]
    TicketNotFound,
    #[error("the ticket cannot be listed ({reason})")]
    NotListable { reason: String },
    #[error("the price is above this event's resale cap of {cap_cents} cents")]
    AboveCap { cap_cents: Cents },
    #[error("the price must be positive")]
    InvalidPrice,
    #[error("you may resell at most {limit} tickets for this event")]
    ResaleLimitReached { limit: i32 },
    #[error("no such listing")]
    ListingNotFound,
    #[error("the listing is sold, withdrawn, or a buyer is paying for it")]
    ListingUnavailable,
    #[error("this Idempotency-Key was used for a different request")]
    IdempotencyKeyReused,
    #[error("storage failure")]
    #[serde(skip)]
    Storage(String),
}

impl From<sqlx::Error> for ResaleError {
    fn from(e: sqlx::Error) -> Self {
        ResaleError::Storage(e.to_string())
    }
}

pub async fn list(
    pool: &PgPool,
    seller: &FanId,
    key: &str,
    ticket: TicketId,
    request: &ListRequest,
) -> Result<Outcome<Listing>, ResaleError> {
    if request.price_cents.0 <= 0 {
        return Err(ResaleError::InvalidPrice);
    }
    let fingerprint = Fingerprint::of(&format!("ticket.list/{ticket}"), request);
    let mut tx = pool.begin().await?;
    let t = sqlx::query!(
        r#"SELECT t.event_id, t.seat_id, t.price_cents, t.state, t.version, t.owner_fan_id,
                  t.checked_in_at IS NOT NULL AS "used!", e.max_seats_per_fan
           FROM tickets t JOIN events e ON e.id = t.event_id WHERE t.id = $1 FOR UPDATE OF t"#,
        ticket.0
    )
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(prior) = sqlx::query!(
        "SELECT id, fingerprint FROM resale_listings WHERE seller_fan_id = $1 AND idempotency_key = $2",
        seller.as_str(),
        key
    )
    .fetch_optional(&mut *tx)
    .await?
    {
        if prior.fingerprint != fingerprint.0 {
            return Err(ResaleError::IdempotencyKeyReused);
        }
        tx.rollback().await?;
        return Ok(Outcome::replay(get(pool, prior.id).await?));
    }
    let t = t
        .filter(|t| t.owner_fan_id == seller.as_str())
        .ok_or(ResaleError::TicketNotFound)?;
    if t.state != "valid" || t.used {
        let reason = if t.used { "checked_in".into() } else { t.state };
        return Err(ResaleError::NotListable { reason });
    }
    if crate::checkout::disputes::ticket_disputed(&mut tx, ticket).await? {
        return Err(ResaleError::NotListable {
            reason: "payment_disputed".into(),
        });
    }
    let event = EventId(t.event_id);
    let p = policy::for_event(&mut tx, event).await?;
    // Face value is what the fan paid: prices are all-in (Usher adds no
    // separate fees), so the unavoidable fees are inside it.
    let cap = Cents(t.price_cents * i64::from(p.resale_cap_percent) / 100);
    if request.price_cents > cap {
        return Err(ResaleError::AboveCap { cap_cents: cap });
    }
    let already = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM resale_listings
           WHERE event_id = $1 AND seller_fan_id = $2 AND state IN ('listed', 'sold')"#,
        t.event_id,
        seller.as_str()
    )
    .fetch_one(&mut *tx)
    .await?;
    if already >= i64::from(t.max_seats_per_fan) {
        return Err(ResaleError::ResaleLimitReached {
            limit: t.max_seats_per_fan,
        });
    }
    let id = uuid::Uuid::now_v7();
    let inserted = sqlx::query!(
        r#"INSERT INTO resale_listings (id, ticket_id, event_id, seller_fan_id, ticket_version, price_cents, face_cents,
                                        idempotency_key, fingerprint)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
           ON CONFLICT DO NOTHING"#,
        id,
        ticket.0,
        t.event_id,
        seller.as_str(),
        t.version,
        request.price_cents.0,
        t.price_cents,
        key,
        &fingerprint.0
    )
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        // one_listing_per_ticket: it is listed already.
        return Err(ResaleError::NotListable {
            reason: "already_listed".into(),
        });
    }
    tx.commit().await?;
    Ok(Outcome::new(get(pool, id).await?))
}

pub async fn get(pool: &PgPool, listing: uuid::Uuid) -> Result<Listing, ResaleError> {
    let r = sqlx::query!(
        r#"SELECT l.ticket_id, l.event_id, t.seat_id, l.price_cents, l.face_cents, l.state, l.created_at
           FROM resale_listings l JOIN tickets t ON t.id = l.ticket_id WHERE l.id = $1"#,
        listing
    )
    .fetch_optional(pool)
    .await?
    .ok_or(ResaleError::ListingNotFound)?;
    Ok(Listing {
        listing_id: listing,
        ticket_id: TicketId(r.ticket_id),
        event_id: EventId(r.event_id),
        seat_id: SeatId(r.seat_id),
        price_cents: Cents(r.price_cents),
        face_value_cents: Cents(r.face_cents),
        state: r.state,
        created_at: r.created_at,
    })
}

/// Listings of an event a buyer can buy now, cheapest first.
pub async fn browse(pool: &PgPool, event: EventId) -> Result<Vec<Listing>, ResaleError> {
    let rows = sqlx::query!(
        r#"SELECT l.id, l.ticket_id, t.seat_id, l.price_cents, l.face_cents, l.state, l.created_at
           FROM resale_listings l JOIN tickets t ON t.id = l.ticket_id
           WHERE l.event_id = $1 AND l.state = 'listed' AND (l.reserved_until IS NULL OR l.reserved_until <= now())
           ORDER BY l.price_cents, l.id LIMIT 500"#,
        event.0
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Listing {
            listing_id: r.id,
            ticket_id: TicketId(r.ticket_id),
            event_id: event,
            seat_id: SeatId(r.seat_id),
            price_cents: Cents(r.price_cents),
            face_value_cents: Cents(r.face_cents),
            state: r.state,
            created_at: r.created_at,
        })
        .collect())
}

/// Withdraws a listing nobody is paying for.
pub async fn cancel(pool: &PgPool, seller: &FanId, listing: uuid::Uuid) -> Result<Listing, ResaleError> {
    let r = sqlx::query!(
        r#"UPDATE resale_listings SET state = 'cancelled', ended_at = now()
           WHERE id = $1 AND seller_fan_id = $2 AND state = 'listed'
             AND (reserved_until IS NULL OR reserved_until <= now())"#,
        listing,
        seller.as_str()
    )
    .execute(pool)
    .await?;
    let l = get(pool, listing).await?;
    if r.rows_affected() == 0 && l.state != "cancelled" {
        return Err(ResaleError::ListingUnavailable);
    }
    Ok(l)
}

/// Whether any of these tickets is listed (listed tickets are not
/// transferred or refunded until the listing is withdrawn).
pub async fn any_listed(conn: &mut PgConnection, tickets: &[uuid::Uuid]) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM resale_listings WHERE ticket_id = ANY($1) AND state = 'listed') AS "x!""#,
        tickets
    )
    .fetch_one(conn)
    .await
}

/// Completes a paid resale inside the confirming transaction: the listing
/// is sold, the ticket moves to the buyer with a new version and secret, and
/// the seller's payout is recorded. False if the listing can no longer be
/// sold to this order (the caller refunds).
pub async fn complete(
    tx: &mut PgConnection,
    listing: uuid::Uuid,
    order: OrderId,
    buyer: &FanId,
) -> Result<bool, sqlx::Error> {
    let l = sqlx::query!(
        r#"SELECT l.ticket_id, l.event_id, l.seller_fan_id, l.price_cents, l.ticket_version, t.version, t.state AS ticket_state,
                  coalesce(l.state = 'listed' AND (l.reserved_by = $2 OR l.reserved_until IS NULL OR l.reserved_until <= now()), false)
                      AS "sellable!"
           FROM resale_listings l JOIN tickets t ON t.id = l.ticket_id
           WHERE l.id = $1 FOR UPDATE OF l, t"#,
        listing,
        order.0
    )
    .fetch_one(&mut *tx)
    .await?;
    if !l.sellable || l.ticket_state != "valid" || l.version != l.ticket_version {
        return Ok(false);
    }
    sqlx::query!(
        "UPDATE resale_listings SET state = 'sold', ended_at = now(), reserved_by = $2 WHERE id = $1",
        listing,
        order.0
    )
    .execute(&mut *tx)
    .await?;
    let mut secret = vec![0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let version = sqlx::query_scalar!(
        "UPDATE tickets SET owner_fan_id = $2, version = version + 1, secret = $3 WHERE id = $1 RETURNING version",
        l.ticket_id,
        buyer.as_str(),
        secret
    )
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query!(
        r#"INSERT INTO ticket_transfers (id, ticket_id, from_fan_id, to_fan_id, version, kind, idempotency_key, fingerprint)
           VALUES ($1, $2, $3, $4, $5, 'resale', $6, '')"#,
        uuid::Uuid::now_v7(),
        l.ticket_id,
        l.seller_fan_id,
        buyer.as_str(),
        version,
        format!("resale-{listing}")
    )
    .execute(&mut *tx)
    .await?;
    let fee_percent = policy::for_event(tx, EventId(l.event_id)).await?.resale_fee_percent;
    let fee = l.price_cents * i64::from(fee_percent) / 100;
    sqlx::query!(
        r#"INSERT INTO resale_payouts (listing_id, order_id, seller_fan_id, gross_cents, fee_cents, net_cents)
           VALUES ($1, $2, $3, $4, $5, $6)"#,
        listing,
        order.0,
        l.seller_fan_id,
        l.price_cents,
        fee,
        l.price_cents - fee
    )
    .execute(&mut *tx)
    .await?;
    notify(
        tx,
        topic::TICKET_TRANSFERRED,
        order,
        buyer.as_str(),
        json!({ "ticket_id": l.ticket_id, "event_id": l.event_id, "from_fan_id": l.seller_fan_id,
                "to_fan_id": buyer, "resale_listing_id": listing, "seller_payout_cents": l.price_cents - fee }),
    )
    .await?;
    Ok(true)
}
