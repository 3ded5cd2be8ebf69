//! Check-in at the gate: a ticket is admitted once. The first scan wins by
//! a conditional UPDATE; every later scan is refused with where and when
//! the ticket was first scanned.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

use crate::ids::{EventId, SeatId, TicketId};
use crate::tickets::qr::{self, CodeError, Scanned};

/// An admitted ticket.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CheckIn {
    pub ticket_id: TicketId,
    pub event_id: EventId,
    pub seat_id: SeatId,
    pub checked_in_at: DateTime<Utc>,
    pub checked_in_by: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CheckInError {
    #[error("{0}")]
    #[serde(skip)]
    Code(CodeError),
    #[error("no such ticket")]
    UnknownTicket,
    #[error("this code belongs to an earlier owner of the ticket; it was transferred")]
    Superseded,
    #[error("the ticket is no longer valid ({state})")]
    NotValid { state: String },
    #[error("the rotating code is stale or wrong; ask the fan to show the live code")]
    StaleCode,
    #[error("the ticket was already scanned")]
    AlreadyCheckedIn {
        checked_in_at: DateTime<Utc>,
        checked_in_by: String,
    },
    #[error("storage failure")]
    #[serde(skip)]
    Storage(String),
}

impl From<sqlx::Error> for CheckInError {
    fn from(e: sqlx::Error) -> Self {
        CheckInError::Storage(e.to_string())
    }
}

/// Scans `code` at `scanner`. `require_rotating`: refuse static codes.
pub async fn scan(
    pool: &PgPool,
    code: &str,
    key_for: impl Fn(&str) -> Option<ed25519_dalek::VerifyingKey>,
    scanner: &str,
    rotation_secs: i64,
    require_rotating: bool,
) -> Result<CheckIn, CheckInError> {
    let Scanned { payload, rotating } = qr::verify(code, key_for).map_err(CheckInError::Code)?;
    let t = sqlx::query!(
        r#"SELECT state, version, secret, checked_in_at, checked_in_by, extract(epoch FROM now())::bigint AS "now!"
           FROM tickets WHERE id = $1 AND event_id = $2 AND seat_id = $3"#,
        payload.ticket.0,
        payload.event.0,
        payload.seat.0
    )
    .fetch_optional(pool)
    .await?
    .ok_or(CheckInError::UnknownTicket)?;
    if t.version != payload.version {
        return Err(CheckInError::Superseded);
    }
    match &rotating {
        Some((window, c)) if !qr::rotating_ok(&t.secret, *window, c, t.now / rotation_secs) => {
            return Err(CheckInError::StaleCode);
        }
        None if require_rotating => return Err(CheckInError::StaleCode),
        _ => {}
    }
    let admitted = sqlx::query!(
        r#"UPDATE tickets SET checked_in_at = now(), checked_in_by = $3
           WHERE id = $1 AND version = $2 AND state = 'valid' AND checked_in_at IS NULL
           RETURNING checked_in_at AS "at!""#,
        payload.ticket.0,
        payload.version,
        scanner
    )
    .fetch_optional(pool)
    .await?;
    if let Some(a) = admitted {
        return Ok(CheckIn {
            ticket_id: payload.ticket,
            event_id: payload.event,
            seat_id: payload.seat,
            checked_in_at: a.at,
            checked_in_by: scanner.to_owned(),
        });
    }
    // Lost: read the winner (or why not) after the fact.
    let now = sqlx::query!(
        "SELECT state, version, checked_in_at, checked_in_by FROM tickets WHERE id = $1",
        payload.ticket.0
    )
    .fetch_one(pool)
    .await?;
    Err(match (now.checked_in_at, now.checked_in_by) {
        (Some(at), Some(by)) => CheckInError::AlreadyCheckedIn {
            checked_in_at: at,
            checked_in_by: by,
        },
        _ if now.version != payload.version => CheckInError::Superseded,
        _ => CheckInError::NotValid { state: now.state },
    })
}
