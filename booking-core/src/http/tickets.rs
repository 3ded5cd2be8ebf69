//! Ticket endpoints: a fan's ticket and its QR code, the public keys gate
//! scanners verify codes with, and check-in. Thin: the rules live in
//! `tickets`.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::http::AppState;
use crate::http::answer::{idempotent, no_store};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery, Fan, IdemKey, bearer};
use crate::http::problem::{ApiError, Problem};
use crate::ids::EventId;
use crate::ids::TicketId;
use crate::tickets::{
    self, CheckIn, ListRequest, Listing, Ticket, Transfer, TransferRequest, qr, render, resale, transfers,
};

/// One of your tickets, with its signed code.
#[utoipa::path(get, path = "/v1/tickets/{ticket_id}", tag = "tickets",
    params(("ticket_id" = uuid::Uuid, Path)),
    security(("fan_token" = [])),
    responses((status = 200, body = Ticket), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get(
    State(state): State<AppState>,
    fan: Fan,
    ApiPath(id): ApiPath<uuid::Uuid>,
) -> Result<Response, ApiError> {
    let ticket = tickets::get(&state.pool, &state.ticket_signer, &fan.id, TicketId(id)).await?;
    Ok(no_store(axum::Json(ticket).into_response()))
}

/// Your tickets, bought or received, newest first.
#[utoipa::path(get, path = "/v1/me/tickets", tag = "tickets",
    security(("fan_token" = [])),
    responses((status = 200, body = [Ticket])))]
pub async fn mine(State(state): State<AppState>, fan: Fan) -> Result<Response, ApiError> {
    let tickets = tickets::list(&state.pool, &state.ticket_signer, &fan.id).await?;
    Ok(no_store(axum::Json(tickets).into_response()))
}

/// Give your ticket to another fan: your code stops scanning, theirs works.
#[utoipa::path(post, path = "/v1/tickets/{ticket_id}/transfer", tag = "tickets",
    params(("ticket_id" = uuid::Uuid, Path), ("Idempotency-Key" = String, Header)),
    request_body = TransferRequest,
    security(("fan_token" = [])),
    responses((status = 201, body = Transfer),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "ticket_not_transferable, transfers_not_allowed"),
              (status = 422, body = Problem, content_type = "application/problem+json", description = "invalid_recipient")))]
pub async fn transfer(
    State(state): State<AppState>,
    fan: Fan,
    IdemKey(key): IdemKey,
    ApiPath(id): ApiPath<uuid::Uuid>,
    ApiJson(request): ApiJson<TransferRequest>,
) -> Result<Response, ApiError> {
    let outcome = transfers::transfer(&state.pool, &fan.id, key.as_str(), TicketId(id), &request).await?;
    Ok(idempotent(StatusCode::CREATED, outcome))
}

/// List your ticket for resale, at no more than the event's cap.
#[utoipa::path(post, path = "/v1/tickets/{ticket_id}/listings", tag = "resale",
    params(("ticket_id" = uuid::Uuid, Path), ("Idempotency-Key" = String, Header)),
    request_body = ListRequest,
    security(("fan_token" = [])),
    responses((status = 201, body = Listing),
              (status = 422, body = Problem, content_type = "application/problem+json", description = "price_above_cap (with cap_cents), invalid_price"),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "ticket_not_listable, resale_limit_reached"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn list_for_resale(
    State(state): State<AppState>,
    fan: Fan,
    IdemKey(key): IdemKey,
    ApiPath(id): ApiPath<uuid::Uuid>,
    ApiJson(request): ApiJson<ListRequest>,
) -> Result<Response, ApiError> {
    let outcome = resale::list(&state.pool, &fan.id, key.as_str(), TicketId(id), &request).await?;
    Ok(idempotent(StatusCode::CREATED, outcome))
}

/// Resale listings of an event that can be bought now, cheapest first. Buy
/// one with `POST /v1/orders` and `listing_id`.
#[utoipa::path(get, path = "/v1/events/{event_id}/listings", tag = "resale",
    params(("event_id" = i64, Path)),
    responses((status = 200, body = [Listing])))]
pub async fn listings(State(state): State<AppState>, ApiPath(event): ApiPath<i64>) -> Result<Response, ApiError> {
    let listings = resale::browse(&state.pool, EventId(event)).await?;
    Ok(no_store(axum::Json(listings).into_response()))
}

/// Withdraw your listing (unless a buyer is paying for it right now).
#[utoipa::path(delete, path = "/v1/listings/{listing_id}", tag = "resale",
    params(("listing_id" = uuid::Uuid, Path)),
    security(("fan_token" = [])),
    responses((status = 200, body = Listing),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "listing_unavailable"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn cancel_listing(
    State(state): State<AppState>,
    fan: Fan,
    ApiPath(id): ApiPath<uuid::Uuid>,
) -> Result<Response, ApiError> {
    let listing = resale::cancel(&state.pool, &fan.id, id).await?;
    Ok(no_store(axum::Json(listing).into_response()))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct QrParams {
    /// The rotating code for the current window, instead of the static one.
    #[serde(default)]
    pub rotating: bool,
}

/// Your ticket's QR code as SVG.
#[utoipa::path(get, path = "/v1/tickets/{ticket_id}/qr.svg", tag = "tickets",
    params(("ticket_id" = uuid::Uuid, Path), QrParams),
    security(("fan_token" = [])),
    responses((status = 200, content_type = "image/svg+xml", body = String),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn qr_svg(
    State(state): State<AppState>,
    fan: Fan,
    ApiPath(id): ApiPath<uuid::Uuid>,
    ApiQuery(params): ApiQuery<QrParams>,
) -> Result<Response, ApiError> {
    let (ticket, secret) = tickets::get_with_secret(&state.pool, &state.ticket_signer, &fan.id, TicketId(id)).await?;
    let code = current_code(&state, &ticket, &secret, params.rotating);
    let svg = render::svg(&code).map_err(|e| ApiError::unavailable(&e))?;
    let mut response = svg.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("image/svg+xml"));
    Ok(no_store(response))
}

/// The code for the QR: rotating for the current window if asked.
fn current_code(state: &AppState, ticket: &Ticket, secret: &[u8], rotating: bool) -> String {
    if rotating {
        let period = state.config.tickets.rotation_secs as i64;
        qr::rotating(&ticket.code, secret, chrono::Utc::now().timestamp() / period)
    } else {
        ticket.code.clone()
    }
}

/// Your ticket's QR code as PNG (8 pixels per module).
#[utoipa::path(get, path = "/v1/tickets/{ticket_id}/qr.png", tag = "tickets",
    params(("ticket_id" = uuid::Uuid, Path), QrParams),
    security(("fan_token" = [])),
    responses((status = 200, content_type = "image/png", body = Vec<u8>),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn qr_png(
    State(state): State<AppState>,
    fan: Fan,
    ApiPath(id): ApiPath<uuid::Uuid>,
    ApiQuery(params): ApiQuery<QrParams>,
) -> Result<Response, ApiError> {
    let (ticket, secret) = tickets::get_with_secret(&state.pool, &state.ticket_signer, &fan.id, TicketId(id)).await?;
    let png = render::png(&current_code(&state, &ticket, &secret, params.rotating), 8)
        .map_err(|e| ApiError::unavailable(&e))?;
    let mut response = png.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("image/png"));
    Ok(no_store(response))
}

/// Your ticket as a one-page PDF, to print or keep.
#[utoipa::path(get, path = "/v1/tickets/{ticket_id}/ticket.pdf", tag = "tickets",
    params(("ticket_id" = uuid::Uuid, Path)),
    security(("fan_token" = [])),
    responses((status = 200, content_type = "application/pdf", body = Vec<u8>),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn pdf(
    State(state): State<AppState>,
    fan: Fan,
    ApiPath(id): ApiPath<uuid::Uuid>,
) -> Result<Response, ApiError> {
    let (ticket, _, doc) = match tickets::pdf(&state.pool, &state.ticket_signer, &fan.id, TicketId(id)).await {
        Ok(made) => made,
        Err(tickets::PdfError::Ticket(e)) => return Err(e.into()),
        Err(tickets::PdfError::Render(e)) => return Err(ApiError::unavailable(&e)),
    };
    let mut response = doc.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/pdf"));
    if let Ok(v) = HeaderValue::from_str(&format!("inline; filename=\"ticket-{}.pdf\"", ticket.ticket_id)) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(no_store(response))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TicketKey {
    pub kid: String,
    /// Ed25519, SPKI PEM.
    pub public_key_pem: String,
}

/// The keys ticket codes are signed with, the current one first (during a
/// key rotation, also the earlier ones): load them into gate scanners to
/// verify codes offline.
#[utoipa::path(get, path = "/v1/tickets/keys", tag = "tickets",
    responses((status = 200, body = [TicketKey])))]
pub async fn keys(State(state): State<AppState>) -> Response {
    let keys: Vec<TicketKey> = state
        .ticket_signer
        .public_keys()
        .into_iter()
        .map(|(kid, public_key_pem)| TicketKey { kid, public_key_pem })
        .collect();
    axum::Json(keys).into_response()
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScanRequest {
    /// What the scanner read from the QR code.
    pub code: String,
}

/// Admit a ticket at a gate: once. A second scan is refused with where and
/// when it was first scanned.
#[utoipa::path(post, path = "/v1/checkin", tag = "tickets",
    request_body = ScanRequest,
    security(("scanner_key" = [])),
    responses((status = 200, body = CheckIn),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "already_checked_in (with checked_in_at and checked_in_by), ticket_superseded, ticket_not_valid"),
              (status = 422, body = Problem, content_type = "application/problem+json", description = "code_invalid, code_stale"),
              (status = 401, body = Problem, content_type = "application/problem+json")))]
pub async fn checkin(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(scan): ApiJson<ScanRequest>,
) -> Result<Response, ApiError> {
    let scanner = scanner_id(&state, &headers)?;
    let signer = &state.ticket_signer;
    let admitted = tickets::checkin::scan(
        &state.pool,
        &scan.code,
        |kid| signer.key_for(kid),
        &scanner,
        state.config.tickets.rotation_secs as i64,
        false,
    )
    .await?;
    Ok((StatusCode::OK, axum::Json(admitted)).into_response())
}

/// The scanner named by `Authorization: Bearer <scanner key>`.
fn scanner_id(state: &AppState, headers: &HeaderMap) -> Result<String, ApiError> {
    let presented = bearer(headers).unwrap_or_default();
    state
        .config
        .tickets
        .scanners
        .iter()
        // In constant time, so a key cannot be guessed byte by byte.
        .find(|s| !presented.is_empty() && bool::from(s.key.expose().as_bytes().ct_eq(presented.as_bytes())))
        .map(|s| s.id.clone())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "scanner_unauthenticated",
                "send Authorization: Bearer <scanner key>",
            )
        })
}
