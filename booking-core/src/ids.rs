//! Typed identifiers and money, so that a seat id can never be passed where
//! an event id is expected and an amount is always in whole cents.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

macro_rules! int_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema, sqlx::Type)]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(pub i64);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

int_id!(
    /// An event: one performance at one venue.
    EventId
);
int_id!(
    /// A venue and its (immutable) seating chart.
    VenueId
);
int_id!(
    /// A physical seat in a venue; the same seat is sold once per event.
    SeatId
);
int_id!(
    /// An organisation: owns venues and events, employs operators.
    OrganisationId
);
int_id!(
    /// An operator: a person who manages an organisation's venues and events.
    OperatorId
);
int_id!(
    /// A fan's place on an event's waitlist; ids go in join order.
    WaitlistEntryId
);

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema, sqlx::Type)]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(pub uuid::Uuid);

        impl $name {
            pub fn new() -> Self {
                // v7: time-ordered, so ids index well and sort by creation.
                $name(uuid::Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

uuid_id!(
    /// A hold: a time-bounded claim by one fan on some seats of one event.
    HoldId
);
uuid_id!(
    /// An order: one purchase of one hold's seats, and its payment.
    OrderId
);
uuid_id!(
    /// A ticket: one sold seat, owned by one fan at a time.
    TicketId
);

/// A fan, as named by the identity issuer's `sub` claim.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
pub struct FanId(pub String);

/// The longest fan id a token may name, in bytes.
pub const MAX_FAN_ID_LEN: usize = 128;

impl FanId {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `id` can name a fan: 1 to [`MAX_FAN_ID_LEN`] bytes, no
    /// control characters.
    pub fn is_valid(id: &str) -> bool {
        !id.is_empty() && id.len() <= MAX_FAN_ID_LEN && !id.chars().any(char::is_control)
    }
}

impl std::fmt::Display for FanId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// An amount of money in the event's currency, in cents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema, sqlx::Type)]
#[serde(transparent)]
#[sqlx(transparent)]
pub struct Cents(pub i64);

impl std::fmt::Display for Cents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::ops::Add for Cents {
    type Output = Cents;
    fn add(self, rhs: Cents) -> Cents {
        Cents(self.0 + rhs.0)
    }
}

impl std::iter::Sum for Cents {
    fn sum<I: Iterator<Item = Cents>>(iter: I) -> Cents {
        Cents(iter.map(|c| c.0).sum())
    }
}
