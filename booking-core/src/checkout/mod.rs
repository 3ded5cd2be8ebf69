//! Checkout: from a hold to a confirmed order with tickets, through a card
//! processor that can time out, decline, and send its webhooks late, twice
//! or before it answers. The purchase is a saga persisted in `orders`
//! (`saga.rs` drives it, `orders.rs` holds its SQL); the processor sits
//! behind the `PaymentProvider` trait (`provider.rs`); `reconcile.rs`
//! finishes whatever a crash or a lost answer left half done; `late.rs`
//! takes a success that arrives after its order moved on (tickets, or the
//! money back); `books.rs` compares the provider's books with ours daily;
//! `payouts.rs` sends resale sellers their money; `disputes.rs` takes
//! chargebacks (tickets voided, restored).

pub mod books;
pub mod disputes;
pub mod late;
pub mod orders;
pub mod payouts;
pub mod provider;
pub mod reconcile;
pub mod refunds;
pub mod saga;
pub mod sandbox;
pub mod stripe;
pub mod timed;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{Cents, EventId, HoldId, OrderId, SeatId, TicketId};
use crate::states::UnknownState;

pub use provider::{PaymentProvider, ProviderError, WebhookError, WebhookEvent};
pub use refunds::{OrderRefund, RefundError, RefundOrderRequest};
pub use saga::CheckoutService;

/// What a fan sends to buy a hold's seats.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderRequest {
    /// Buy this hold's seats...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_id: Option<HoldId>,
    /// ...or this resale listing (one of the two).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listing_id: Option<uuid::Uuid>,
    /// The processor's token for the fan's card, from its client-side form
    /// (the sandbox's test cards: `pm_card_ok`, `pm_card_declined`, ...).
    pub payment_method: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderState {
    /// Waiting for the processor's answer (the fan may poll).
    PendingPayment,
    /// Money taken, seats being sold: moments, unless a crash intervened.
    Paid,
    Confirmed,
    PaymentFailed,
    /// The seats could not be had after the money was taken.
    Refunding,
    Refunded,
}

impl OrderState {
    /// The state an `orders.state` column names.
    pub fn parse(s: &str) -> Result<OrderState, UnknownState> {
        match s {
            "pending_payment" => Ok(OrderState::PendingPayment),
            "paid" => Ok(OrderState::Paid),
            "confirmed" => Ok(OrderState::Confirmed),
            "payment_failed" => Ok(OrderState::PaymentFailed),
            "refunding" => Ok(OrderState::Refunding),
            "refunded" => Ok(OrderState::Refunded),
            other => Err(UnknownState::new("order", other)),
        }
    }

    /// The word for this state, as the column and the API spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderState::PendingPayment => "pending_payment",
            OrderState::Paid => "paid",
            OrderState::Confirmed => "confirmed",
            OrderState::PaymentFailed => "payment_failed",
            OrderState::Refunding => "refunding",
            OrderState::Refunded => "refunded",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            OrderState::Confirmed | OrderState::PaymentFailed | OrderState::Refunded
        )
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OrderSeat {
    pub seat_id: SeatId,
    pub price_cents: Cents,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TicketRef {
    pub ticket_id: TicketId,
    pub seat_id: SeatId,
}

/// An order as the fan sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Order {
    pub order_id: OrderId,
    pub hold_id: Option<HoldId>,
    pub listing_id: Option<uuid::Uuid>,
    pub event_id: EventId,
    pub state: OrderState,
    pub seats: Vec<OrderSeat>,
    pub total_cents: Cents,
    pub currency: String,
    /// Why the card was declined (`payment_failed`).
    pub failure_code: Option<String>,
    /// Why the money went back (`refunding`, `refunded`).
    pub refund_reason: Option<String>,
    pub tickets: Vec<TicketRef>,
    pub created_at: DateTime<Utc>,
    pub confirmed_at: Option<DateTime<Utc>>,
    /// While `pending_payment`: what the payment waits for (absent before
    /// the provider has answered).
    pub payment_status: Option<OrderPaymentStatus>,
    /// With `requires_action`: where to send the fan's browser to
    /// authenticate. The provider's page sends them back to the order's
    /// page (`/me/orders/{order_id}`).
    pub next_action: Option<OrderNextAction>,
    /// While the payment waits: the order waits until then, and its hold is
    /// kept until then (at most `checkout.max_payment_wait_secs` after the
    /// order was made, 15 minutes by default). After it the charge is
    /// cancelled, the order fails (`authentication_abandoned`) and the seats
    /// go back on sale.
    pub payment_deadline: Option<DateTime<Utc>>,
    /// The order's lines (each ticket's price, fees and taxes, the order's
    /// own fee) when its event has fees or taxes: `total_cents` is their
    /// sum. Absent when the total is the seats' prices alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charges: Option<crate::pricing::fees::Charges>,
}

/// What a pending payment waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderPaymentStatus {
    /// The fan must authenticate (3-D Secure): send them to
    /// `next_action.redirect_url`.
    RequiresAction,
    /// The processor is still at it: nothing for the fan to do but wait.
    Processing,
}

/// What the client must do for a `requires_action` payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct OrderNextAction {
    /// The provider's authentication page: open it in the fan's browser
    /// (a top-level navigation, not a frame).
    pub redirect_url: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OrderError {
    #[error("no such hold")]
    HoldNotFound,
    #[error("the hold has expired")]
    HoldExpired { expired_at: DateTime<Utc> },
    #[error("the hold was released")]
    HoldReleased,
    #[error("this hold already has an order")]
    HoldAlreadyOrdered { order_id: OrderId },
    #[error("name either hold_id or listing_id")]
    AmbiguousRequest,
    #[error("no such listing")]
    ListingNotFound,
    #[error("the listing is sold, withdrawn, or another buyer is paying for it")]
    ListingUnavailable,
    #[error("you cannot buy your own listing")]
    OwnListing,
    #[error("payment_method must be 1 to 255 visible ASCII characters")]
    InvalidPaymentMethod,
    #[error("this Idempotency-Key was used for a different request")]
    IdempotencyKeyReused,
    /// The seats ordered on this card for this event, by any account, would
    /// pass the event's limit per fan. The hold stays: another card may pay.
    #[error("this card has already paid for {already} of the {limit} seats one fan may buy for this event")]
    CardLimitReached { limit: i32, already: i32 },
    #[error("no such order")]
    OrderNotFound,
    /// The provider could not tell us the card's fingerprint: nothing was
    /// made, the fan may try again with the same key.
    #[error("payment provider did not answer")]
    #[serde(skip)]
    ProviderUnavailable(String),
    #[error("storage failure")]
    #[serde(skip)]
    Storage(String),
}

impl From<sqlx::Error> for OrderError {
    fn from(e: sqlx::Error) -> Self {
        OrderError::Storage(e.to_string())
    }
}
