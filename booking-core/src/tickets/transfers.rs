//! Transfers: a fan gives a ticket to another fan. The ticket's version
//! goes up and its rotating-code secret is replaced, so the sender's QR
//! code stops scanning and the new owner's works; every transfer is kept.

use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{PgConnection, PgPool};

use crate::idempotency::{Fingerprint, Outcome};
use crate::ids::{EventId, FanId, OrderId, TicketId};
use crate::outbox::{notify, topic};
use crate::tickets::policy;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferRequest {
    /// The receiving fan's id.
    pub to_fan_id: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Transfer {
    pub transfer_id: uuid::Uuid,
    pub ticket_id: TicketId,
    pub from_fan_id: String,
    pub to_fan_id: String,
    /// The ticket's version now (the receiver's code carries it).
    pub version: i32,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TransferError {
    #[error("no such ticket")]
    TicketNotFound,
    #[error("the ticket cannot be transferred ({reason})")]
    NotTransferable { reason: String },
    #[error("to_fan_id must be another fan's id (1 to 128 bytes, as a fan token names one)")]
    InvalidRecipient,
    #[error("this event does not allow transfers")]
    TransfersNotAllowed,
    #[error("this Idempotency-Key was used for a different request")]
    IdempotencyKeyReused,
    #[error("storage failure")]
    #[serde(skip)]
    Storage(String),
}

impl From<sqlx::Error> for TransferError {
    fn from(e: sqlx::Error) -> Self {
        TransferError::Storage(e.to_string())
    }
}

pub async fn transfer(
    pool: &PgPool,
    from: &FanId,
    key: &str,
    ticket: TicketId,
    request: &TransferRequest,
) -> Result<Outcome<Transfer>, TransferError> {
    let to = request.to_fan_id.trim();
    // Only an id a fan token can name: a ticket given to any other could
    // never be seen or used by anyone.
    if !FanId::is_valid(to) || to == from.as_str() {
        return Err(TransferError::InvalidRecipient);
    }
    let fingerprint = Fingerprint::of(&format!("ticket.transfer/{ticket}"), request);
    let mut tx = pool.begin().await?;
    let t = sqlx::query!(
        r#"SELECT order_id, event_id, owner_fan_id, state, checked_in_at IS NOT NULL AS "used!"
           FROM tickets WHERE id = $1 FOR UPDATE"#,
        ticket.0
    )
    .fetch_optional(&mut *tx)
    .await?;
    // After the ticket's lock: a concurrent retry with this key sees the
    // first one's row.
    if let Some(prior) = by_key(&mut tx, from, key).await? {
        return if prior.1 == fingerprint.0 {
            Ok(Outcome::replay(prior.0))
        } else {
            Err(TransferError::IdempotencyKeyReused)
        };
    }
    let t = t
        .filter(|t| t.owner_fan_id == from.as_str())
        .ok_or(TransferError::TicketNotFound)?;
    if t.state != "valid" {
        return Err(TransferError::NotTransferable { reason: t.state });
    }
    if t.used {
        return Err(TransferError::NotTransferable {
            reason: "checked_in".into(),
        });
    }
    if crate::tickets::resale::any_listed(&mut tx, &[ticket.0]).await? {
        return Err(TransferError::NotTransferable {
            reason: "listed_for_resale".into(),
        });
    }
    if crate::checkout::disputes::ticket_disputed(&mut tx, ticket).await? {
        return Err(TransferError::NotTransferable {
            reason: "payment_disputed".into(),
        });
    }
    let event = EventId(t.event_id);
    if !policy::for_event(&mut tx, event).await?.transfers_allowed {
        return Err(TransferError::TransfersNotAllowed);
    }
    let mut secret = vec![0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let version = sqlx::query_scalar!(
        r#"UPDATE tickets SET owner_fan_id = $2, version = version + 1, secret = $3
           WHERE id = $1 RETURNING version"#,
        ticket.0,
        to,
        secret
    )
    .fetch_one(&mut *tx)
    .await?;
    let id = uuid::Uuid::now_v7();
    let created_at = sqlx::query_scalar!(
        r#"INSERT INTO ticket_transfers (id, ticket_id, from_fan_id, to_fan_id, version, idempotency_key, fingerprint)
           VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING created_at"#,
        id,
        ticket.0,
        from.as_str(),
        to,
        version,
        key,
        &fingerprint.0
    )
    .fetch_one(&mut *tx)
    .await?;
    notify(
        &mut tx,
        topic::TICKET_TRANSFERRED,
        OrderId(t.order_id),
        to,
        json!({ "ticket_id": ticket, "event_id": event, "from_fan_id": from, "to_fan_id": to }),
    )
    .await?;
    tx.commit().await?;
    Ok(Outcome::new(Transfer {
        transfer_id: id,
        ticket_id: ticket,
        from_fan_id: from.as_str().to_owned(),
        to_fan_id: to.to_owned(),
        version,
        created_at,
    }))
}

async fn by_key(conn: &mut PgConnection, from: &FanId, key: &str) -> Result<Option<(Transfer, Vec<u8>)>, sqlx::Error> {
    let r = sqlx::query!(
        r#"SELECT id, ticket_id, from_fan_id, to_fan_id, version, created_at, fingerprint
           FROM ticket_transfers WHERE from_fan_id = $1 AND idempotency_key = $2"#,
        from.as_str(),
        key
    )
    .fetch_optional(conn)
    .await?;
    Ok(r.map(|r| {
        (
            Transfer {
                transfer_id: r.id,
                ticket_id: TicketId(r.ticket_id),
                from_fan_id: r.from_fan_id,
                to_fan_id: r.to_fan_id,
                version: r.version,
                created_at: r.created_at,
            },
            r.fingerprint,
        )
    }))
}

/// A ticket's owners in order: (from, to, when).
pub async fn history(pool: &PgPool, ticket: TicketId) -> Result<Vec<(String, String, DateTime<Utc>)>, sqlx::Error> {
    let rows = sqlx::query!(
        "SELECT from_fan_id, to_fan_id, created_at FROM ticket_transfers WHERE ticket_id = $1 ORDER BY created_at, id",
        ticket.0
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.from_fan_id, r.to_fan_id, r.created_at))
        .collect())
}
