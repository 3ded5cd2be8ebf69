//! Hold endpoints: make a hold (named seats or best available), read it,
//! release it. Thin: the rules live in `inventory`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use crate::http::AppState;
use crate::http::admission::Admission;
use crate::http::answer::{idempotent, located, no_store_json};
use crate::http::extract::{ApiJson, ApiPath, Fan, IdemKey};
use crate::http::problem::{ApiError, Problem};
use crate::idempotency::Outcome;
use crate::ids::{EventId, HoldId};
use crate::inventory::{self, Caller, Hold, HoldRequest};
use crate::pricing::fee_settings;
use crate::pricing::fees::Charges;

fn answer(status: StatusCode, outcome: Outcome<Hold>) -> Response {
    let location = format!("/v1/holds/{}", outcome.value.hold_id);
    located(idempotent(status, outcome), &location)
}

/// Hold seats: either `seat_ids`, or `best_available` (quantity, and a
/// section or tier). All or nothing: a 409 `seats_taken` lists the seats
/// someone else has.
#[utoipa::path(post, path = "/v1/events/{event_id}/holds", tag = "holds",
    params(("event_id" = i64, Path), ("Idempotency-Key" = String, Header, description = "Unique per intended hold; a retry sends the same key")),
    request_body = HoldRequest,
    security(("fan_token" = [])),
    responses(
        (status = 201, body = Hold, description = "Held (or, with `Idempotent-Replayed: true`, the first answer again)"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "seats_taken, no_adjacent_seats, fan_limit_reached, not_on_sale"),
        (status = 422, body = Problem, content_type = "application/problem+json", description = "a request that can never succeed"),
        (status = 401, body = Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(state): State<AppState>,
    fan: Fan,
    IdemKey(key): IdemKey,
    ApiPath(event_id): ApiPath<i64>,
    admission: Admission,
    ApiJson(request): ApiJson<HoldRequest>,
) -> Result<Response, ApiError> {
    let caller = Caller {
        fan: fan.id,
        key,
        admitted_for: admission.event(&state).await,
    };
    let outcome = match state.holds.place(&caller, EventId(event_id), &request).await {
        Ok(outcome) => outcome,
        Err(e) => {
            let e = ApiError::from(e);
            state.metrics.hold_refused(e.code);
            return Err(e);
        }
    };
    if !outcome.replayed {
        state.metrics.hold_placed();
    }
    Ok(answer(StatusCode::CREATED, outcome))
}

/// One of the fan's holds, with its state now.
#[utoipa::path(get, path = "/v1/holds/{hold_id}", tag = "holds",
    params(("hold_id" = uuid::Uuid, Path)),
    security(("fan_token" = [])),
    responses((status = 200, body = QuotedHold), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get(
    State(state): State<AppState>,
    fan: Fan,
    ApiPath(id): ApiPath<uuid::Uuid>,
) -> Result<Response, ApiError> {
    let hold = inventory::get_hold(&state.pool, &state.maps, &fan.id, HoldId(id)).await?;
    let seats: Vec<(i64, i64)> = hold.seats.iter().map(|s| (s.seat_id.0, s.price_cents.0)).collect();
    let (currency, charges) =
        fee_settings::quote(&state.pool, hold.event_id, &seats, &state.config.payments.currency).await?;
    Ok(no_store_json(
        StatusCode::OK,
        QuotedHold {
            hold,
            currency,
            charges,
        },
    ))
}

/// A hold with what an order of it would be charged now.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct QuotedHold {
    #[serde(flatten)]
    pub hold: Hold,
    /// The event's currency (ISO 4217): every amount is in its minor unit.
    pub currency: String,
    /// The order's lines (fees and taxes) when the event has any: its
    /// `total_cents` is what the order will charge. Absent otherwise: the
    /// seats' prices are the total.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub charges: Option<Charges>,
}

/// Release a hold now; its seats go back on sale at once.
#[utoipa::path(delete, path = "/v1/holds/{hold_id}", tag = "holds",
    params(("hold_id" = uuid::Uuid, Path), ("Idempotency-Key" = String, Header)),
    security(("fan_token" = [])),
    responses((status = 200, body = Hold), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 410, body = Problem, content_type = "application/problem+json", description = "hold_expired"),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "hold_released, hold_converted")))]
pub async fn release(
    State(state): State<AppState>,
    fan: Fan,
    IdemKey(key): IdemKey,
    ApiPath(id): ApiPath<uuid::Uuid>,
) -> Result<Response, ApiError> {
    let caller = Caller {
        fan: fan.id,
        key,
        admitted_for: None,
    };
    let outcome = state.holds.release(&caller, HoldId(id)).await?;
    Ok(answer(StatusCode::OK, outcome))
}
