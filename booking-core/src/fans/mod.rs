//! Fans' data on request (GDPR, CCPA): everything held about a fan as one
//! JSON document (`export.rs`), its erasure (`erasure.rs`) and the
//! organisation's log of operators' actions on fans' data (`audit.rs`).
//! The rule (what is removed, pseudonymised, kept, and when erasure waits)
//! is in migrations/0023_fan_data.sql.

pub mod audit;
pub mod erasure;
pub mod export;

use serde::Serialize;
use sqlx::PgConnection;

use crate::ids::{FanId, OrganisationId};

/// Who a fan is to the rest of the world: the address their mail goes to
/// and the name their token carries (if any). Erasure takes both out of
/// free text; neither is stored as a column.
#[derive(Debug, Clone)]
pub struct FanIdentity {
    pub id: FanId,
    pub email: String,
    pub name: Option<String>,
}

impl FanIdentity {
    /// The fan as the notifications module addresses them.
    pub fn new(id: FanId, name: Option<String>, email_domain: &str) -> FanIdentity {
        let email = format!("{}@{email_domain}", id.as_str());
        FanIdentity { id, email, name }
    }

    /// Strings erasure removes from inside free text (the id itself is
    /// replaced where a value equals it). A name of one or two characters
    /// would erase too much of unrelated text, so it is left out.
    fn within(&self) -> Vec<String> {
        let mut w = vec![self.email.clone()];
        if let Some(name) = self.name.as_deref().map(str::trim).filter(|n| n.chars().count() >= 3) {
            w.push(name.to_owned());
        }
        w
    }
}

#[derive(Debug, thiserror::Error, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FanDataError {
    #[error("an order of this fan is being paid or refunded: erase once it is settled")]
    OrderInProgress { order_id: uuid::Uuid },
    #[error("a refund of this fan is not confirmed by the payment provider yet: erase once it is")]
    RefundInProgress { refund_id: uuid::Uuid },
    #[error("a resale payout is owed to this fan (or failed and waits for an account): erase once it is paid")]
    PayoutOwed { listing_id: uuid::Uuid },
    #[error("a buyer is paying for a ticket this fan listed for resale: erase once the sale ends")]
    ListingReserved { listing_id: uuid::Uuid },
    #[error("no fan by that id bought from this organisation")]
    FanNotFound,
    #[error("fan_id must be 1 to 128 characters, no control characters")]
    InvalidFanId,
    #[error("reason must be 1 to 500 characters")]
    InvalidReason,
    #[error("storage: {0}")]
    #[serde(skip)]
    Storage(#[from] sqlx::Error),
}

/// How every pseudonym begins (`fan_ref` in the migration).
pub const PSEUDONYM_PREFIX: &str = "erased:";

/// Whether a fan id is an erased fan's pseudonym.
pub fn is_pseudonym(fan: &str) -> bool {
    fan.starts_with(PSEUDONYM_PREFIX)
}

/// The pseudonym a fan's id becomes on erasure, and names them in the
/// audit log (`fan_ref` in the migration).
pub async fn fan_ref(conn: &mut PgConnection, fan: &FanId) -> Result<String, sqlx::Error> {
    sqlx::query_scalar("SELECT fan_ref($1)")
        .bind(fan.as_str())
        .fetch_one(conn)
        .await
}

/// Whether an organisation may act on a fan's data: the fan bought from
/// one of its events, or holds a ticket to one.
pub async fn is_customer(conn: &mut PgConnection, org: OrganisationId, fan: &FanId) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        r#"SELECT EXISTS (SELECT 1 FROM orders o JOIN events e ON e.id = o.event_id
                          WHERE o.fan_id = $1 AND e.organisation_id = $2)
               OR EXISTS (SELECT 1 FROM tickets t JOIN events e ON e.id = t.event_id
                          WHERE t.owner_fan_id = $1 AND e.organisation_id = $2)"#,
    )
    .bind(fan.as_str())
    .bind(org.0)
    .fetch_one(conn)
    .await
}

/// A reason an operator gives: 1 to 500 characters once trimmed.
pub fn check_reason(reason: &str) -> Result<&str, FanDataError> {
    let r = reason.trim();
    if r.is_empty() || r.chars().count() > 500 {
        return Err(FanDataError::InvalidReason);
    }
    Ok(r)
}
