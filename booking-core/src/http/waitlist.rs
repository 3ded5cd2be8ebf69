//! Waitlist endpoints for fans: join a sold-out event's (or tier's)
//! waitlist, read one's entries and offers, leave. Thin: the rules live in
//! `waitlist`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use crate::http::AppState;
use crate::http::answer::{idempotent, located, no_store_json};
use crate::http::extract::{ApiJson, ApiPath, Fan};
use crate::http::problem::{ApiError, Problem};
use crate::ids::{EventId, WaitlistEntryId};
use crate::waitlist::{JoinRequest, WaitlistEntries, WaitlistEntry};

/// Join the event's waitlist: `quantity` seats side by side, optionally of
/// one `tier` and at most `max_price_cents` a seat. Only while no seat of
/// that kind is free (409 `not_sold_out`). One open entry per fan, event and
/// tier: joining again answers that entry (200, `Idempotent-Replayed: true`).
/// When seats come back they are held for the fans in join order and
/// announced by e-mail; `GET /v1/waitlist` shows the offer.
#[utoipa::path(post, path = "/v1/events/{event_id}/waitlist", tag = "waitlist",
    params(("event_id" = i64, Path)),
    request_body = JoinRequest,
    security(("fan_token" = [])),
    responses(
        (status = 201, body = WaitlistEntry, description = "Joined"),
        (status = 200, body = WaitlistEntry, description = "Already on it: the open entry, unchanged"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "event_not_found"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "not_sold_out, not_on_sale, event_over, event_cancelled"),
        (status = 422, body = Problem, content_type = "application/problem+json", description = "quantity_out_of_range, unknown_tier, invalid_price_ceiling, invalid_body"),
        (status = 401, body = Problem, content_type = "application/problem+json")))]
pub async fn join(
    State(state): State<AppState>,
    fan: Fan,
    ApiPath(event_id): ApiPath<i64>,
    ApiJson(request): ApiJson<JoinRequest>,
) -> Result<Response, ApiError> {
    let outcome = state.waitlist.join(&fan.id, EventId(event_id), &request).await?;
    let status = if outcome.replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let location = format!("/v1/waitlist/{}", outcome.value.entry_id);
    Ok(located(idempotent(status, outcome), &location))
}

/// The signed-in fan's waitlist entries, newest first, each with its state
/// as of now and the offer (the hold to buy, its seats and expiry).
#[utoipa::path(get, path = "/v1/waitlist", tag = "waitlist",
    security(("fan_token" = [])),
    responses((status = 200, body = WaitlistEntries), (status = 401, body = Problem, content_type = "application/problem+json")))]
pub async fn mine(State(state): State<AppState>, fan: Fan) -> Result<Response, ApiError> {
    Ok(no_store_json(StatusCode::OK, state.waitlist.mine(&fan.id).await?))
}

/// One of the fan's waitlist entries.
#[utoipa::path(get, path = "/v1/waitlist/{entry_id}", tag = "waitlist",
    params(("entry_id" = i64, Path)),
    security(("fan_token" = [])),
    responses((status = 200, body = WaitlistEntry),
              (status = 404, body = Problem, content_type = "application/problem+json", description = "waitlist_entry_not_found")))]
pub async fn get(State(state): State<AppState>, fan: Fan, ApiPath(id): ApiPath<i64>) -> Result<Response, ApiError> {
    let entry = state
        .waitlist
        .entry(&fan.id, WaitlistEntryId(id))
        .await?
        .ok_or(crate::waitlist::WaitlistError::EntryNotFound)?;
    Ok(no_store_json(StatusCode::OK, entry))
}

/// Leave the waitlist. An offer not yet bought is released at once and its
/// seats go to the next fan. Leaving again answers the entry as it is.
#[utoipa::path(delete, path = "/v1/waitlist/{entry_id}", tag = "waitlist",
    params(("entry_id" = i64, Path)),
    security(("fan_token" = [])),
    responses((status = 200, body = WaitlistEntry),
              (status = 404, body = Problem, content_type = "application/problem+json", description = "waitlist_entry_not_found"),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "waitlist_entry_closed: bought or lapsed")))]
pub async fn leave(State(state): State<AppState>, fan: Fan, ApiPath(id): ApiPath<i64>) -> Result<Response, ApiError> {
    let entry = state.waitlist.leave(&fan.id, WaitlistEntryId(id)).await?;
    Ok(no_store_json(StatusCode::OK, entry))
}
