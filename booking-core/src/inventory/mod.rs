//! Seat inventory: holds on seats, their release and expiry, sales, and the
//! live view of every seat's state. The consistency guarantee lives in the
//! database (see `claims.rs` and migrations/0002_inventory.sql); this module
//! decides which seats to ask for and turns the database's answers into
//! outcomes.

pub mod availability;
pub mod best_available;
pub mod claims;
pub mod feed;
pub mod holds;
pub mod reaper;
pub mod recent;
pub mod rooms;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{Cents, EventId, FanId, HoldId, SeatId};
use crate::states::UnknownState;

pub use availability::{Availability, SeatState};
pub use feed::{FeedMessage, SeatBatch, SeatFeed};
pub use holds::{HoldService, get_hold};
pub use rooms::WaitingRooms;

/// What a fan asks to hold: named seats, or the best N in a section or tier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldRequest {
    /// Specific seats, by id from the seat map.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seat_ids: Option<Vec<SeatId>>,
    /// Or: let Usher pick adjacent seats nearest the stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_available: Option<BestAvailable>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BestAvailable {
    /// How many seats, side by side in one row.
    pub quantity: i64,
    /// Only in this section (by code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section: Option<String>,
    /// Only in this price tier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<i16>,
    /// Wheelchair-accessible seats only; otherwise they are left for those
    /// who need them.
    #[serde(default)]
    pub accessible: bool,
}

/// A hold as the fan sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Hold {
    pub hold_id: HoldId,
    pub event_id: EventId,
    pub state: HoldState,
    pub seats: Vec<HeldSeat>,
    pub total_cents: Cents,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The database clock when this answer was made: count down from
    /// `expires_at - server_time`, not from the device's clock.
    pub server_time: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HeldSeat {
    pub seat_id: SeatId,
    pub section: String,
    pub row: String,
    pub seat: String,
    pub tier: i16,
    /// Locked when the hold was made: what an order from this hold charges.
    pub price_cents: Cents,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HoldState {
    Active,
    Released,
    Expired,
    Converted,
}

impl HoldState {
    /// The state a `holds.state` column names.
    pub fn parse(s: &str) -> Result<HoldState, UnknownState> {
        match s {
            "active" => Ok(HoldState::Active),
            "released" => Ok(HoldState::Released),
            "expired" => Ok(HoldState::Expired),
            "converted" => Ok(HoldState::Converted),
            other => Err(UnknownState::new("hold", other)),
        }
    }
}

/// Why a hold could not be made or released. Serialisable so that an
/// idempotent retry can be refused in exactly the same words.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HoldError {
    #[error("no such event")]
    EventNotFound,
    #[error("the event is not on sale yet")]
    NotOnSale { on_sale_at: DateTime<Utc> },
    #[error("the event has been cancelled")]
    EventCancelled,
    #[error("the event has already started")]
    EventOver,
    #[error("say which seats (seat_ids) or ask for best_available, not both and not neither")]
    AmbiguousRequest,
    #[error("a hold takes 1 to {max} seats")]
    SeatCountOutOfRange { max: usize },
    #[error("the same seat is named twice")]
    DuplicateSeats { seat_ids: Vec<SeatId> },
    #[error("these seats do not exist")]
    UnknownSeats { seat_ids: Vec<SeatId> },
    #[error("these seats are not in this event's venue")]
    SeatsNotInEvent { seat_ids: Vec<SeatId> },
    #[error("these seats are not for sale in this event")]
    SeatsNotForSale { seat_ids: Vec<SeatId> },
    #[error("best_available quantity must be 1 to {max}")]
    QuantityOutOfRange { max: usize },
    #[error("no section {code:?} in this venue")]
    UnknownSection { code: String },
    #[error("no tier {tier} in this venue")]
    UnknownTier { tier: i16 },
    #[error("some of the seats are held or sold")]
    SeatsTaken { seat_ids: Vec<SeatId> },
    #[error("no {quantity} adjacent seats are free there")]
    NoAdjacentSeats { quantity: usize },
    #[error("a fan may hold and buy at most {limit} seats for this event")]
    FanLimitReached { limit: i32, already: i32 },
    #[error("the edge's admission token is required for this event")]
    AdmissionRequired,
    #[error("no such hold")]
    HoldNotFound,
    #[error("the hold has expired")]
    HoldExpired { expired_at: DateTime<Utc> },
    #[error("the hold was already released")]
    HoldReleased,
    #[error("the hold has become an order")]
    HoldConverted,
    #[error("this Idempotency-Key was used for a different request")]
    IdempotencyKeyReused,
    #[error("storage failure")]
    #[serde(skip)]
    Storage(String),
}

impl From<sqlx::Error> for HoldError {
    fn from(e: sqlx::Error) -> Self {
        HoldError::Storage(e.to_string())
    }
}

impl HoldError {
    /// A refusal as stored against an idempotency key (see `place_hold`).
    pub fn from_json(json: serde_json::Value) -> HoldError {
        serde_json::from_value(json).unwrap_or_else(|e| HoldError::Storage(format!("stored refusal unreadable: {e}")))
    }
}

/// Who is asking, and with what key.
#[derive(Debug, Clone)]
pub struct Caller {
    pub fan: FanId,
    pub key: crate::idempotency::IdempotencyKey,
    /// The event the edge admitted this fan to, from a verified admission
    /// token; `None` without one, and then events that are protected or
    /// have a waiting room refuse holds.
    pub admitted_for: Option<EventId>,
}
