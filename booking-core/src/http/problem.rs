//! Errors as RFC 9457 problem details (`application/problem+json`), each
//! with a stable machine-readable `code`. Every domain error is mapped to a
//! status and code here, once.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};
use usher_shared::admin::AdminCode;

use crate::catalog::CatalogError;
use crate::checkout::books::ResolveError;
use crate::checkout::payouts::PayoutError;
use crate::checkout::{OrderError, RefundError};
use crate::fans::FanDataError;
use crate::inventory::HoldError;
use crate::portal::{EdgeError, PortalError};
use crate::pricing::PricingError;
use crate::pricing::fee_settings::FeeError;
use crate::tickets::{CheckInError, ResaleError, TicketError, TransferError};
use crate::waitlist::WaitlistError;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// When an operator may try the edge's admin API again after it failed.
const EDGE_RETRY_AFTER_SECS: u64 = 5;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    pub extra: Map<String, Value>,
    pub retry_after_secs: Option<u64>,
}

/// The body, as documented in the OpenAPI description.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// `https://usher.dev/problems/<code>`
    #[serde(rename = "type")]
    pub type_: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable, machine-readable: branch on this, not on the text.
    pub code: String,
    /// The request's trace id (32 hex digits): quote it when reporting
    /// the problem.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            detail: detail.into(),
            extra: Map::new(),
            retry_after_secs: None,
        }
    }

    pub fn with(mut self, key: &str, value: impl Serialize) -> Self {
        self.extra
            .insert(key.to_owned(), serde_json::to_value(value).unwrap_or(Value::Null));
        self
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    pub fn not_found(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, detail)
    }

    /// A failure of ours or of a dependency: logged with its cause, shown to
    /// the client without it.
    pub fn unavailable(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "request failed on a dependency");
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "the service could not complete this request; nothing was changed, try again shortly",
        );
        e.retry_after_secs = Some(1);
        e
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "an unexpected error; it has been logged",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = Map::new();
        body.insert(
            "type".into(),
            format!("https://usher.dev/problems/{}", self.code).into(),
        );
        body.insert("title".into(), self.status.canonical_reason().unwrap_or("Error").into());
        body.insert("status".into(), self.status.as_u16().into());
        body.insert("detail".into(), self.detail.into());
        body.insert("code".into(), self.code.into());
        // The request's trace, so a fan's report of this answer leads to
        // its spans and log lines.
        if let Some(trace_id) = usher_shared::telemetry::current_trace_id() {
            body.insert("trace_id".into(), trace_id.into());
        }
        for (k, v) in self.extra {
            body.entry(k).or_insert(v);
        }
        let mut response = (self.status, axum::Json(Value::Object(body))).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(secs) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<HoldError> for ApiError {
    fn from(e: HoldError) -> Self {
        use HoldError as H;
        let (status, code) = match &e {
            H::EventNotFound => (StatusCode::NOT_FOUND, "event_not_found"),
            H::NotOnSale { .. } => (StatusCode::CONFLICT, "not_on_sale"),
            H::EventCancelled => (StatusCode::CONFLICT, "event_cancelled"),
            H::EventOver => (StatusCode::CONFLICT, "event_over"),
            H::AmbiguousRequest => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_hold_request"),
            H::SeatCountOutOfRange { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "seat_count_out_of_range"),
            H::DuplicateSeats { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "duplicate_seats"),
            H::UnknownSeats { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "unknown_seats"),
            H::SeatsNotInEvent { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "seats_not_in_event"),
            H::SeatsNotForSale { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "seats_not_for_sale"),
            H::QuantityOutOfRange { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "quantity_out_of_range"),
            H::UnknownSection { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "unknown_section"),
            H::UnknownTier { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "unknown_tier"),
            H::SeatsTaken { .. } => (StatusCode::CONFLICT, "seats_taken"),
            H::NoAdjacentSeats { .. } => (StatusCode::CONFLICT, "no_adjacent_seats"),
            H::FanLimitReached { .. } => (StatusCode::CONFLICT, "fan_limit_reached"),
            H::AdmissionRequired => (StatusCode::FORBIDDEN, "admission_required"),
            H::HoldNotFound => (StatusCode::NOT_FOUND, "hold_not_found"),
            H::HoldExpired { .. } => (StatusCode::GONE, "hold_expired"),
            H::HoldReleased => (StatusCode::CONFLICT, "hold_released"),
            H::HoldConverted => (StatusCode::CONFLICT, "hold_converted"),
            H::IdempotencyKeyReused => (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused"),
            H::Storage(cause) => return ApiError::unavailable(cause),
        };
        let mut api = ApiError::new(status, code, e.to_string());
        // The error's own fields (seat ids, limits, times) ride along.
        if let Ok(Value::Object(fields)) = serde_json::to_value(&e) {
            for (k, v) in fields {
                if k != "kind" {
                    api.extra.insert(k, v);
                }
            }
        }
        api
    }
}

/// The error's own fields (ids, times) ride along in the problem body.
fn with_fields(mut api: ApiError, e: &impl Serialize) -> ApiError {
    if let Ok(Value::Object(fields)) = serde_json::to_value(e) {
        for (k, v) in fields {
            if k != "kind" {
                api.extra.insert(k, v);
            }
        }
    }
    api
}

impl From<OrderError> for ApiError {
    fn from(e: OrderError) -> Self {
        use OrderError as O;
        let (status, code) = match &e {
            O::HoldNotFound => (StatusCode::NOT_FOUND, "hold_not_found"),
            O::HoldExpired { .. } => (StatusCode::GONE, "hold_expired"),
            O::HoldReleased => (StatusCode::CONFLICT, "hold_released"),
            O::HoldAlreadyOrdered { .. } => (StatusCode::CONFLICT, "hold_already_ordered"),
            O::InvalidPaymentMethod => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_payment_method"),
            O::AmbiguousRequest => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_order_request"),
            O::ListingNotFound => (StatusCode::NOT_FOUND, "listing_not_found"),
            O::ListingUnavailable => (StatusCode::CONFLICT, "listing_unavailable"),
            O::OwnListing => (StatusCode::UNPROCESSABLE_ENTITY, "own_listing"),
            O::IdempotencyKeyReused => (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused"),
            O::CardLimitReached { .. } => (StatusCode::CONFLICT, "card_limit_reached"),
            O::OrderNotFound => (StatusCode::NOT_FOUND, "order_not_found"),
            O::ProviderUnavailable(cause) | O::Storage(cause) => return ApiError::unavailable(cause),
        };
        with_fields(ApiError::new(status, code, e.to_string()), &e)
    }
}

impl From<RefundError> for ApiError {
    fn from(e: RefundError) -> Self {
        use RefundError as R;
        let (status, code) = match &e {
            R::OrderNotFound => (StatusCode::NOT_FOUND, "order_not_found"),
            R::OrderNotConfirmed { .. } => (StatusCode::CONFLICT, "order_not_confirmed"),
            R::TicketsNotInOrder { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "tickets_not_in_order"),
            R::TicketsNotRefundable { .. } => (StatusCode::CONFLICT, "tickets_not_refundable"),
            R::NothingToRefund => (StatusCode::CONFLICT, "nothing_to_refund"),
            R::OrderDisputed => (StatusCode::CONFLICT, "order_disputed"),
            R::SelfRefundsDisabled => (StatusCode::FORBIDDEN, "self_refunds_disabled"),
            R::RefundWindowClosed { .. } => (StatusCode::CONFLICT, "refund_window_closed"),
            R::InvalidReason => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_reason"),
            R::IdempotencyKeyReused => (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused"),
            R::Storage(cause) => return ApiError::unavailable(cause),
        };
        with_fields(ApiError::new(status, code, e.to_string()), &e)
    }
}

impl From<ResolveError> for ApiError {
    fn from(e: ResolveError) -> Self {
        use ResolveError as R;
        let (status, code) = match &e {
            R::NotFound => (StatusCode::NOT_FOUND, "mismatch_not_found"),
            R::NotOpen { .. } => (StatusCode::CONFLICT, "mismatch_not_open"),
            R::InvalidResolution => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_resolution"),
            R::Storage(cause) => return ApiError::unavailable(cause),
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl From<PayoutError> for ApiError {
    fn from(e: PayoutError) -> Self {
        use PayoutError as P;
        let (status, code) = match &e {
            P::InvalidAccount => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_payout_account"),
            P::UnknownAccount => (StatusCode::UNPROCESSABLE_ENTITY, "unknown_payout_account"),
            P::AccountDisabled => (StatusCode::CONFLICT, "payout_account_disabled"),
            P::ProviderUnavailable(cause) => return ApiError::unavailable(cause),
            P::Storage(cause) => return ApiError::unavailable(cause),
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl From<WaitlistError> for ApiError {
    fn from(e: WaitlistError) -> Self {
        use WaitlistError as W;
        let (status, code) = match &e {
            W::EventNotFound => (StatusCode::NOT_FOUND, "event_not_found"),
            W::EventCancelled => (StatusCode::CONFLICT, "event_cancelled"),
            W::EventOver => (StatusCode::CONFLICT, "event_over"),
            W::NotOnSale { .. } => (StatusCode::CONFLICT, "not_on_sale"),
            W::QuantityOutOfRange { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "quantity_out_of_range"),
            W::UnknownTier { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "unknown_tier"),
            W::InvalidPriceCeiling => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_price_ceiling"),
            W::NotSoldOut { .. } => (StatusCode::CONFLICT, "not_sold_out"),
            W::EntryNotFound => (StatusCode::NOT_FOUND, "waitlist_entry_not_found"),
            W::EntryClosed { .. } => (StatusCode::CONFLICT, "waitlist_entry_closed"),
            W::Storage(cause) => return ApiError::unavailable(cause),
        };
        with_fields(ApiError::new(status, code, e.to_string()), &e)
    }
}

impl From<FanDataError> for ApiError {
    fn from(e: FanDataError) -> Self {
        use FanDataError as F;
        let (status, code) = match &e {
            F::OrderInProgress { .. } => (StatusCode::CONFLICT, "order_in_progress"),
            F::RefundInProgress { .. } => (StatusCode::CONFLICT, "refund_in_progress"),
            F::PayoutOwed { .. } => (StatusCode::CONFLICT, "payout_owed"),
            F::ListingReserved { .. } => (StatusCode::CONFLICT, "listing_reserved"),
            F::FanNotFound => (StatusCode::NOT_FOUND, "fan_not_found"),
            F::InvalidFanId => (StatusCode::BAD_REQUEST, "invalid_fan_id"),
            F::InvalidReason => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_reason"),
            F::Storage(cause) => return ApiError::unavailable(cause),
        };
        with_fields(ApiError::new(status, code, e.to_string()), &e)
    }
}

impl From<TransferError> for ApiError {
    fn from(e: TransferError) -> Self {
        use TransferError as T;
        let (status, code) = match &e {
            T::TicketNotFound => (StatusCode::NOT_FOUND, "ticket_not_found"),
            T::NotTransferable { .. } => (StatusCode::CONFLICT, "ticket_not_transferable"),
            T::InvalidRecipient => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_recipient"),
            T::TransfersNotAllowed => (StatusCode::CONFLICT, "transfers_not_allowed"),
            T::IdempotencyKeyReused => (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused"),
            T::Storage(cause) => return ApiError::unavailable(cause),
        };
        with_fields(ApiError::new(status, code, e.to_string()), &e)
    }
}

impl From<ResaleError> for ApiError {
    fn from(e: ResaleError) -> Self {
        use ResaleError as R;
        let (status, code) = match &e {
            R::TicketNotFound => (StatusCode::NOT_FOUND, "ticket_not_found"),
            R::NotListable { .. } => (StatusCode::CONFLICT, "ticket_not_listable"),
            R::AboveCap { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "price_above_cap"),
            R::InvalidPrice => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_price"),
            R::ResaleLimitReached { .. } => (StatusCode::CONFLICT, "resale_limit_reached"),
            R::ListingNotFound => (StatusCode::NOT_FOUND, "listing_not_found"),
            R::ListingUnavailable => (StatusCode::CONFLICT, "listing_unavailable"),
            R::IdempotencyKeyReused => (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused"),
            R::Storage(cause) => return ApiError::unavailable(cause),
        };
        with_fields(ApiError::new(status, code, e.to_string()), &e)
    }
}

impl From<TicketError> for ApiError {
    fn from(e: TicketError) -> Self {
        match e {
            TicketError::NotFound => ApiError::not_found("ticket_not_found", "no such ticket"),
            TicketError::Storage(cause) => ApiError::unavailable(&cause),
        }
    }
}

impl From<CheckInError> for ApiError {
    fn from(e: CheckInError) -> Self {
        use CheckInError as C;
        let (status, code) = match &e {
            C::Code(_) => (StatusCode::UNPROCESSABLE_ENTITY, "code_invalid"),
            C::UnknownTicket => (StatusCode::NOT_FOUND, "ticket_not_found"),
            C::Superseded => (StatusCode::CONFLICT, "ticket_superseded"),
            C::NotValid { .. } => (StatusCode::CONFLICT, "ticket_not_valid"),
            C::StaleCode => (StatusCode::UNPROCESSABLE_ENTITY, "code_stale"),
            C::AlreadyCheckedIn { .. } => (StatusCode::CONFLICT, "already_checked_in"),
            C::Storage(cause) => return ApiError::unavailable(cause),
        };
        with_fields(ApiError::new(status, code, e.to_string()), &e)
    }
}

impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::UnknownVenue(slug) => ApiError::not_found("venue_not_found", format!("no venue {slug:?}")),
            CatalogError::SlugTaken(slug) => {
                ApiError::new(StatusCode::CONFLICT, "slug_taken", format!("{slug:?} is taken"))
            }
            CatalogError::Invalid(why) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_event", why),
            CatalogError::Db(e) => ApiError::unavailable(&e),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::unavailable(&e)
    }
}

impl From<PortalError> for ApiError {
    fn from(e: PortalError) -> Self {
        use PortalError as P;
        let (status, code) = match &e {
            P::InvalidCredentials => (StatusCode::UNAUTHORIZED, "invalid_credentials"),
            P::SignInThrottled { retry_after_secs } => {
                let mut api = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "sign_in_throttled", e.to_string())
                    .with("retry_after_secs", retry_after_secs);
                api.retry_after_secs = Some(*retry_after_secs);
                return api;
            }
            P::AuthRequired => (StatusCode::UNAUTHORIZED, "operator_auth_required"),
            P::RoleForbidden => (StatusCode::FORBIDDEN, "role_forbidden"),
            P::VenueNotFound => (StatusCode::NOT_FOUND, "venue_not_found"),
            P::EventNotFound => (StatusCode::NOT_FOUND, "event_not_found"),
            P::ChartInvalid { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "chart_invalid"),
            P::SlugTaken { .. } => (StatusCode::CONFLICT, "slug_taken"),
            P::TierMissing { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "tier_missing"),
            P::UnknownTier { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "unknown_tier"),
            P::DuplicateTier { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "duplicate_tier"),
            P::InvalidPrice { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_price"),
            P::OnSaleAfterStart => (StatusCode::UNPROCESSABLE_ENTITY, "on_sale_after_start"),
            P::InvalidRules { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_rules"),
            P::InvalidPolicy { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_policy"),
            P::InvalidEvent { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_event"),
            P::InvalidOperator { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_operator"),
            P::Edge(edge) => return edge_problem(edge),
            P::Db(cause) => return ApiError::unavailable(cause),
            P::Hashing(cause) => {
                tracing::error!(error = %cause, "password hashing failed");
                return ApiError::internal();
            }
        };
        with_fields(ApiError::new(status, code, e.to_string()), &e)
    }
}

impl From<FeeError> for ApiError {
    fn from(e: FeeError) -> Self {
        use FeeError as F;
        let (status, code) = match &e {
            F::UnknownCurrency { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "unknown_currency"),
            F::InvalidFee { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_fee"),
            F::InvalidTaxRate => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_tax_rate"),
            F::CurrencyLocked { .. } => (StatusCode::CONFLICT, "currency_locked"),
            F::EventNotFound => (StatusCode::NOT_FOUND, "event_not_found"),
            F::Storage(cause) => return ApiError::unavailable(cause),
        };
        with_fields(ApiError::new(status, code, e.to_string()), &e)
    }
}

impl From<PricingError> for ApiError {
    fn from(e: PricingError) -> Self {
        use PricingError as P;
        let code = match &e {
            P::UnknownTier { .. } => "unknown_tier",
            P::DuplicateTier { .. } => "duplicate_tier",
            P::InvalidBounds { .. } => "invalid_bounds",
            P::InvalidInterval => "invalid_interval",
            P::Db(cause) => return ApiError::unavailable(cause),
        };
        with_fields(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, e.to_string()), &e)
    }
}

/// The edge's answers: its refusals keep their status and (known) code;
/// anything else is the edge being unavailable, which the operator cannot fix.
fn edge_problem(e: &EdgeError) -> ApiError {
    match e {
        EdgeError::NotConfigured => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "edge_not_configured", e.to_string())
        }
        EdgeError::Unavailable(cause) => {
            tracing::warn!(error = %cause, "the edge's admin API failed");
            let mut api = ApiError::new(
                StatusCode::BAD_GATEWAY,
                "edge_unavailable",
                "the edge's admin API did not answer; nothing was changed, try again shortly",
            );
            api.retry_after_secs = Some(EDGE_RETRY_AFTER_SECS);
            api
        }
        EdgeError::Refused {
            status,
            code,
            detail,
            problems,
        } => {
            // The edge's refusals an operator can act on pass as they are;
            // anything else as edge_refused, with the edge's own code beside.
            let known = match AdminCode::parse(code) {
                Some(
                    c @ (AdminCode::InvalidSettings
                    | AdminCode::InvalidBody
                    | AdminCode::EventMismatch
                    | AdminCode::QueueNotFound
                    | AdminCode::InvalidPathParameter),
                ) => c.as_str(),
                _ => "edge_refused",
            };
            let status = StatusCode::from_u16(*status)
                .ok()
                .filter(|s| s.is_client_error())
                .unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
            let mut api = ApiError::new(status, known, detail.clone()).with("edge_code", code);
            if let Some(list) = problems {
                api = api.with("problems", list);
            }
            api
        }
    }
}
