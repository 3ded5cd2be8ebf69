//! The venue portal's endpoints (`/v1/portal/...`): operators sign in, then
//! read and change their organisation's venues and events, their waiting
//! rooms (forwarded to the edge) and dynamic pricing, and watch sales. Thin: authenticate, call
//! `crate::portal`, answer.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt, stream};
use serde::{Deserialize, Serialize};
use usher_shared::admin::{RoomSettings, RoomView};

use crate::checkout::books::{self, Mismatch};
use crate::checkout::disputes::DisputeView;
use crate::checkout::refunds::{OperatorRefundRequest, OrderRefund, RefundState};
use crate::http::AppState;
use crate::http::answer::idempotent;
use crate::http::extract::{ApiJson, ApiPath, ApiQuery, IdemKey, bearer};
use crate::http::problem::{ApiError, Problem};
use crate::ids::{EventId, OrderId};
use crate::portal::charts::{self, ChartPreview, VenueFields};
use crate::portal::dashboard::{self, History, Stats};
use crate::portal::events::{EventItem, EventPatch, NewEvent, PortalEvent};
use crate::portal::venues::{Imported, VenueItem};
use crate::portal::{self, EdgeError, Operator, PortalError, SignedIn, auth};
use crate::pricing::fee_settings::{self, EventFees};
use crate::pricing::settings::{self as pricing_settings, PricingUpdate, PricingView};
use crate::pricing::{DemandRule, PricingRule};
use crate::venues::import::ChartSpec;
use crate::waitlist::WaitlistSummary;

/// Largest chart file an import takes (a 50,000-seat CSV is about 2 MB).
const IMPORT_LIMIT: usize = 32 * 1024 * 1024;

/// How often the dashboard stream sends figures.
const DASHBOARD_EVERY: Duration = Duration::from_secs(2);

/// How often an idle dashboard stream sends a comment, so that proxies keep
/// it open.
const DASHBOARD_KEEP_ALIVE: Duration = Duration::from_secs(15);

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/portal/sign-in", post(sign_in))
        .route("/v1/portal/sign-out", post(sign_out))
        .route("/v1/portal/me", get(me))
        .route("/v1/portal/venues", get(venues))
        .route("/v1/portal/venues/import", post(import_venue))
        .route("/v1/portal/events", get(events).post(create_event))
        .route("/v1/portal/events/{event_id}", get(event).patch(update_event))
        .route(
            "/v1/portal/events/{event_id}/waiting-room",
            get(waiting_room).put(put_waiting_room),
        )
        .route("/v1/portal/events/{event_id}/dashboard/history", get(history))
        .route("/v1/portal/events/{event_id}/pricing", get(pricing).put(put_pricing))
        .route("/v1/portal/events/{event_id}/fees", get(fees).put(put_fees))
        .route("/v1/portal/events/{event_id}/disputes", get(disputes))
        .route("/v1/portal/orders/{order_id}/refunds", post(refund_order))
        .route("/v1/portal/books/mismatches", get(books_mismatches))
        .route(
            "/v1/portal/books/mismatches/{mismatch_id}/resolve",
            post(resolve_mismatch),
        )
        .route("/v1/portal/events/{event_id}/waitlist", get(waitlist))
}

/// The signed-in operator, from `Authorization: Bearer <session token>`
/// (or, for the dashboard stream, which a browser's EventSource opens
/// without headers, `?access_token=`).
pub struct OperatorAuth {
    pub operator: Operator,
    pub expires_at: DateTime<Utc>,
    token: String,
}

fn session_token(parts: &Parts) -> Option<String> {
    bearer(&parts.headers).map(str::to_owned).or_else(|| {
        if !parts.uri.path().ends_with("/dashboard") {
            return None;
        }
        parts.uri.query()?.split('&').find_map(|kv| {
            kv.strip_prefix("access_token=")
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
        })
    })
}

impl FromRequestParts<AppState> for OperatorAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = session_token(parts).ok_or(PortalError::AuthRequired)?;
        let session = auth::authenticate(&state.pool, &token).await?;
        Ok(OperatorAuth {
            operator: session.operator,
            expires_at: session.expires_at,
            token,
        })
    }
}

/// An event of the signed-in operator's organisation, named by the path's
/// `{event_id}`: another organisation's event is 404 `event_not_found`, as
/// one that does not exist.
pub struct OwnedEvent {
    pub op: OperatorAuth,
    pub event: EventId,
}

/// An [`OwnedEvent`] the operator may change: a viewer is refused (403
/// `role_forbidden`) before the event is looked up.
pub struct EventToChange(pub OwnedEvent);

impl OwnedEvent {
    /// Who, then which event (401, 400), then whether a change is allowed
    /// (403), and only then whether the event is theirs (404).
    async fn extract(parts: &mut Parts, state: &AppState, change: bool) -> Result<OwnedEvent, ApiError> {
        let op = OperatorAuth::from_request_parts(parts, state).await?;
        let ApiPath(id) = ApiPath::<i64>::from_request_parts(parts, state).await?;
        if change {
            op.operator.must_change()?;
        }
        let event = EventId(id);
        portal::events::owned(&state.pool, op.operator.org(), event).await?;
        Ok(OwnedEvent { op, event })
    }
}

impl FromRequestParts<AppState> for OwnedEvent {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        OwnedEvent::extract(parts, state, false).await
    }
}

impl FromRequestParts<AppState> for EventToChange {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        OwnedEvent::extract(parts, state, true).await.map(EventToChange)
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct SignInBody {
    pub email: String,
    pub password: String,
}

/// Operators' sign-in: a session token for `Authorization: Bearer`.
#[utoipa::path(post, path = "/v1/portal/sign-in", tag = "portal", request_body = SignInBody,
    responses((status = 200, body = SignedIn),
              (status = 401, description = "invalid_credentials", body = Problem, content_type = "application/problem+json"),
              (status = 429, description = "sign_in_throttled: too many failures from this address or for this account; `retry_after_secs` (and Retry-After) says when to try again", body = Problem, content_type = "application/problem+json")))]
pub async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<SignInBody>,
) -> Result<Json<SignedIn>, ApiError> {
    let address = client_address(&headers);
    Ok(Json(
        auth::sign_in(&state.pool, &body.email, &body.password, &address).await?,
    ))
}

/// The client's address as the edge forwarded it (the edge replaces any
/// `X-Forwarded-For` a client sent with the address it saw); `direct` for
/// a request that did not come through an edge.
fn client_address(headers: &HeaderMap) -> String {
    headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .map(str::trim)
        .filter(|a| a.parse::<std::net::IpAddr>().is_ok())
        .unwrap_or("direct")
        .to_owned()
}

/// Ends this session.
#[utoipa::path(post, path = "/v1/portal/sign-out", tag = "portal", security(("operator_token" = [])),
    responses((status = 204), (status = 401, body = Problem, content_type = "application/problem+json")))]
pub async fn sign_out(State(state): State<AppState>, op: OperatorAuth) -> Result<StatusCode, ApiError> {
    auth::sign_out(&state.pool, &op.token).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = OperatorMe)]
pub struct Me {
    pub operator: Operator,
    /// When this session ends.
    pub expires_at: DateTime<Utc>,
}

/// Who is signed in.
#[utoipa::path(get, path = "/v1/portal/me", tag = "portal", security(("operator_token" = [])),
    responses((status = 200, body = Me), (status = 401, body = Problem, content_type = "application/problem+json")))]
pub async fn me(op: OperatorAuth) -> Json<Me> {
    Json(Me {
        operator: op.operator,
        expires_at: op.expires_at,
    })
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Items<T> {
    pub items: Vec<T>,
}

/// The organisation's venues.
#[utoipa::path(get, path = "/v1/portal/venues", tag = "portal", security(("operator_token" = [])),
    responses((status = 200, body = Items<VenueItem>), (status = 401, body = Problem, content_type = "application/problem+json")))]
pub async fn venues(State(state): State<AppState>, op: OperatorAuth) -> Result<Json<Items<VenueItem>>, ApiError> {
    let items = portal::venues::list(&state.pool, op.operator.org()).await?;
    Ok(Json(Items { items }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportParams {
    /// Check and preview only; nothing is stored.
    #[serde(default)]
    pub dry_run: bool,
}

/// Imports a seating chart as a venue of the organisation: JSON
/// (`ChartSpec`, Content-Type application/json) or CSV (text/csv, one line
/// per seat; the venue's fields as query parameters). See
/// docs/venue-charts.md. `?dry_run=true` answers the preview and stores
/// nothing. A bad chart: 422 `chart_invalid` with `problems: [{line?, path, message}]`.
/// A 200 from the import: a dry run's preview, or the very chart stored
/// before under its slug (`created: false`). Only documents the answer.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum ImportAnswer {
    Preview(ChartPreview),
    Stored(Imported),
}

#[utoipa::path(post, path = "/v1/portal/venues/import", tag = "portal", security(("operator_token" = [])),
    params(ImportParams, VenueFields),
    request_body(content((ChartSpec = "application/json"), (String = "text/csv"))),
    responses((status = 201, description = "stored", body = Imported),
              (status = 200, description = "a dry run's preview, or the same chart stored before", body = ImportAnswer),
              (status = 403, description = "role_forbidden", body = Problem, content_type = "application/problem+json"),
              (status = 409, description = "slug_taken", body = Problem, content_type = "application/problem+json"),
              (status = 415, body = Problem, content_type = "application/problem+json"),
              (status = 422, description = "chart_invalid", body = Problem, content_type = "application/problem+json")))]
pub async fn import_venue(
    State(state): State<AppState>,
    op: OperatorAuth,
    ApiQuery(params): ApiQuery<ImportParams>,
    ApiQuery(venue): ApiQuery<VenueFields>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    op.operator.must_change()?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let csv = match content_type.as_str() {
        "text/csv" => true,
        t if t == "application/json" || t.ends_with("+json") => false,
        _ => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the chart as application/json or text/csv",
            ));
        }
    };
    let bytes = axum::body::to_bytes(body, IMPORT_LIMIT).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "the chart is larger than 32 MiB",
        )
    })?;
    crate::http::text::check_chart(&bytes, csv)?;
    let parsed = if csv {
        charts::from_csv(&bytes, &venue)
    } else {
        charts::from_json(&bytes)
    };
    let spec = parsed.map_err(|problems| PortalError::ChartInvalid { problems })?;
    if params.dry_run {
        return Ok(Json(portal::venues::dry_run(&spec)?).into_response());
    }
    let imported = portal::venues::import(&state.pool, op.operator.org(), &spec).await?;
    let status = if imported.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(imported)).into_response())
}

/// The organisation's events, by start.
#[utoipa::path(get, path = "/v1/portal/events", tag = "portal", security(("operator_token" = [])),
    responses((status = 200, body = Items<EventItem>), (status = 401, body = Problem, content_type = "application/problem+json")))]
pub async fn events(State(state): State<AppState>, op: OperatorAuth) -> Result<Json<Items<EventItem>>, ApiError> {
    let items = portal::events::list(&state.pool, op.operator.org()).await?;
    Ok(Json(Items { items }))
}

/// One of the organisation's events, with prices, rules and resale policy.
#[utoipa::path(get, path = "/v1/portal/events/{event_id}", tag = "portal", security(("operator_token" = [])),
    params(("event_id" = i64, Path)),
    responses((status = 200, body = PortalEvent), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn event(
    State(state): State<AppState>,
    op: OperatorAuth,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<PortalEvent>, ApiError> {
    Ok(Json(
        portal::events::get(&state.pool, op.operator.org(), EventId(id)).await?,
    ))
}

/// Creates an event at one of the organisation's venues. Every tier of the
/// venue's chart needs a price.
#[utoipa::path(post, path = "/v1/portal/events", tag = "portal", security(("operator_token" = [])),
    request_body = NewEvent,
    responses((status = 201, body = PortalEvent),
              (status = 403, description = "role_forbidden", body = Problem, content_type = "application/problem+json"),
              (status = 404, description = "venue_not_found", body = Problem, content_type = "application/problem+json"),
              (status = 409, description = "slug_taken", body = Problem, content_type = "application/problem+json"),
              (status = 422, description = "tier_missing, unknown_tier, duplicate_tier, invalid_price, on_sale_after_start, invalid_rules, invalid_policy, invalid_event", body = Problem, content_type = "application/problem+json")))]
pub async fn create_event(
    State(state): State<AppState>,
    op: OperatorAuth,
    ApiJson(new): ApiJson<NewEvent>,
) -> Result<(StatusCode, Json<PortalEvent>), ApiError> {
    op.operator.must_change()?;
    let event = portal::events::create(&state.pool, op.operator.org(), new).await?;
    Ok((StatusCode::CREATED, Json(event)))
}

/// Edits an event: only the fields given change. New prices apply to new
/// holds; seats already held or sold keep the prices they were held at.
#[utoipa::path(patch, path = "/v1/portal/events/{event_id}", tag = "portal", security(("operator_token" = [])),
    params(("event_id" = i64, Path)), request_body = EventPatch,
    responses((status = 200, body = PortalEvent),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn update_event(
    State(state): State<AppState>,
    op: OperatorAuth,
    ApiPath(id): ApiPath<i64>,
    ApiJson(patch): ApiJson<EventPatch>,
) -> Result<Json<PortalEvent>, ApiError> {
    op.operator.must_change()?;
    Ok(Json(
        portal::events::update(&state.pool, op.operator.org(), EventId(id), patch).await?,
    ))
}

/// Refunds an order of one of the organisation's events, or some of its
/// tickets: at any time, whatever the event's refund policy says of fans'
/// own refunds, with a reason the refund keeps. Tickets used at the gate
/// are not refunded; the money goes back to the card that paid.
#[utoipa::path(post, path = "/v1/portal/orders/{order_id}/refunds", tag = "portal", security(("operator_token" = [])),
    params(("order_id" = uuid::Uuid, Path), ("Idempotency-Key" = String, Header)),
    request_body = OperatorRefundRequest,
    responses((status = 201, body = OrderRefund, description = "Refunded"),
              (status = 202, body = OrderRefund, description = "Tickets voided; the provider has not confirmed the money yet"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json", description = "order_not_found: no such order of this organisation"),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "order_not_confirmed, tickets_not_refundable, nothing_to_refund, order_disputed"),
              (status = 422, body = Problem, content_type = "application/problem+json", description = "invalid_reason, tickets_not_in_order, idempotency_key_reused")))]
pub async fn refund_order(
    State(state): State<AppState>,
    op: OperatorAuth,
    IdemKey(key): IdemKey,
    ApiPath(id): ApiPath<uuid::Uuid>,
    ApiJson(request): ApiJson<OperatorRefundRequest>,
) -> Result<Response, ApiError> {
    op.operator.must_change()?;
    let outcome = state
        .checkout
        .refund_by_operator(op.operator.id, op.operator.org(), key.as_str(), OrderId(id), &request)
        .await?;
    let status = match outcome.value.state {
        RefundState::Succeeded => StatusCode::CREATED,
        RefundState::Pending => StatusCode::ACCEPTED,
    };
    Ok(idempotent(status, outcome))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MismatchParams {
    /// `open`, `fixed` or `resolved`; all when absent.
    #[param(inline)]
    pub state: Option<MismatchState>,
}

#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MismatchState {
    Open,
    Fixed,
    Resolved,
}

/// The differences the daily comparison of the payment provider's books
/// with ours found in the organisation's orders (newest first, at most
/// 500): charges no order kept, paid orders without their charge, amounts
/// that differ, refunds missing on either side.
#[utoipa::path(get, path = "/v1/portal/books/mismatches", tag = "portal", security(("operator_token" = [])),
    params(MismatchParams),
    responses((status = 200, body = [Mismatch]),
              (status = 400, body = Problem, content_type = "application/problem+json", description = "invalid_query")))]
pub async fn books_mismatches(
    State(state): State<AppState>,
    op: OperatorAuth,
    ApiQuery(params): ApiQuery<MismatchParams>,
) -> Result<Json<Vec<Mismatch>>, ApiError> {
    let wanted = params.state.map(|s| match s {
        MismatchState::Open => "open",
        MismatchState::Fixed => "fixed",
        MismatchState::Resolved => "resolved",
    });
    Ok(Json(books::list_for(&state.pool, op.operator.org(), wanted).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Resolution {
    /// What was done about it (1 to 500 characters).
    pub resolution: String,
}

/// Closes an open mismatch, saying what was done about it.
#[utoipa::path(post, path = "/v1/portal/books/mismatches/{mismatch_id}/resolve", tag = "portal", security(("operator_token" = [])),
    params(("mismatch_id" = i64, Path)),
    request_body = Resolution,
    responses((status = 200, body = Mismatch),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json", description = "mismatch_not_found"),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "mismatch_not_open"),
              (status = 422, body = Problem, content_type = "application/problem+json", description = "invalid_resolution")))]
pub async fn resolve_mismatch(
    State(state): State<AppState>,
    op: OperatorAuth,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<Resolution>,
) -> Result<Json<Mismatch>, ApiError> {
    op.operator.must_change()?;
    let resolved = books::resolve(&state.pool, op.operator.org(), op.operator.id, id, &body.resolution).await?;
    Ok(Json(resolved))
}

/// The event's disputes (chargebacks), newest first: each one's state
/// (open, won, lost), the tickets it voided and when, whether they were
/// restored (won) and whether the seats went back on sale (lost, by the
/// event's `return_refunded_seats`). Any role reads them.
#[utoipa::path(get, path = "/v1/portal/events/{event_id}/disputes", tag = "portal", security(("operator_token" = [])),
    params(("event_id" = i64, Path)),
    responses((status = 200, body = Items<DisputeView>),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 404, description = "event_not_found", body = Problem, content_type = "application/problem+json")))]
pub async fn disputes(State(state): State<AppState>, owned: OwnedEvent) -> Result<Json<Items<DisputeView>>, ApiError> {
    let items = crate::checkout::disputes::for_event(&state.pool, owned.op.operator.org(), owned.event)
        .await
        .map_err(PortalError::Db)?;
    Ok(Json(Items { items }))
}

fn edge(state: &AppState) -> Result<&portal::EdgeAdmin, ApiError> {
    state
        .edge
        .as_ref()
        .ok_or_else(|| PortalError::Edge(EdgeError::NotConfigured).into())
}

/// The event's waiting room as the edge has it (`settings`, `progress`, ...).
#[utoipa::path(get, path = "/v1/portal/events/{event_id}/waiting-room", tag = "portal", security(("operator_token" = [])),
    params(("event_id" = i64, Path)),
    responses((status = 200, description = "the edge's room view: settings, progress, listeners", body = Object),
              (status = 404, description = "event_not_found, or queue_not_found (no room)", body = Problem, content_type = "application/problem+json"),
              (status = 502, description = "edge_unavailable", body = Problem, content_type = "application/problem+json"),
              (status = 503, description = "edge_not_configured", body = Problem, content_type = "application/problem+json")))]
pub async fn waiting_room(State(state): State<AppState>, owned: OwnedEvent) -> Result<Json<RoomView>, ApiError> {
    let room = edge(&state)?.room(owned.event).await.map_err(PortalError::from)?;
    Ok(Json(room))
}

/// Replaces the event's waiting-room settings at the edge (the edge's
/// `RoomSettings`: admit_per_minute, max_active, session_secs, mode,
/// on_sale_at, message, grace_secs, adaptive; `event_id` is filled in).
/// The edge's refusals come back with its status and code.
#[utoipa::path(put, path = "/v1/portal/events/{event_id}/waiting-room", tag = "portal", security(("operator_token" = [])),
    params(("event_id" = i64, Path)), request_body = Object,
    responses((status = 200, description = "the edge's room view after the change", body = Object),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 422, description = "the edge's invalid_settings / invalid_body", body = Problem, content_type = "application/problem+json"),
              (status = 502, description = "edge_unavailable", body = Problem, content_type = "application/problem+json"),
              (status = 503, description = "edge_not_configured", body = Problem, content_type = "application/problem+json")))]
pub async fn put_waiting_room(
    State(state): State<AppState>,
    EventToChange(OwnedEvent { op, event }): EventToChange,
    ApiJson(settings): ApiJson<RoomSettings<Option<i64>>>,
) -> Result<Json<RoomView>, ApiError> {
    let room = edge(&state)?
        .put_room(event, settings)
        .await
        .map_err(PortalError::from)?;
    // Binds this core's holds at once, not at the next read of the edge's list.
    state.holds.rooms().insert(event);
    tracing::info!(event_id = event.0, operator = %usher_shared::redact::hashed(&op.operator.email), "waiting room changed through the portal");
    Ok(Json(room))
}

/// The figures now, with the edge's if it answers.
async fn figures(state: &AppState, event: EventId) -> Result<Stats, sqlx::Error> {
    let mut stats = dashboard::stats(&state.pool, event).await?;
    if let Some(edge) = &state.edge {
        match edge.figures(event).await {
            Ok(f) => stats.edge = f,
            Err(e) => tracing::debug!(event_id = event.0, error = %e, "no edge figures for the dashboard"),
        }
    }
    Ok(stats)
}

/// Live sales figures as Server-Sent Events: a `stats` event at once and
/// then every 2 s (`Stats`). Browsers' EventSource may pass the session
/// token as `?access_token=`.
#[utoipa::path(get, path = "/v1/portal/events/{event_id}/dashboard", tag = "portal", security(("operator_token" = [])),
    params(("event_id" = i64, Path), ("access_token" = Option<String>, Query)),
    responses((status = 200, description = "text/event-stream of `stats` events (Stats)", content_type = "text/event-stream"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn dashboard(
    State(state): State<AppState>,
    OwnedEvent { event, .. }: OwnedEvent,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let mut ticks = tokio::time::interval(DASHBOARD_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shutdown = state.shutdown.clone();
    let stream = stream::unfold((state, ticks), move |(state, mut ticks)| async move {
        // The first tick is at once.
        ticks.tick().await;
        let sse = match figures(&state, event).await {
            Ok(stats) => Event::default()
                .event("stats")
                .json_data(&stats)
                .unwrap_or_else(|_| Event::default().event("error").data("encoding")),
            Err(e) => {
                tracing::warn!(event_id = event.0, error = %e, "dashboard figures failed");
                Event::default()
                    .event("error")
                    .data("{\"code\":\"service_unavailable\",\"retry\":true}")
            }
        };
        Some((sse, (state, ticks)))
    })
    .take_until(async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    })
    .map(Ok::<_, Infallible>);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(DASHBOARD_KEEP_ALIVE)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    /// 1 to 1440, default 60.
    pub minutes: Option<i64>,
}

/// Confirmed sales per minute (count and revenue) over the last `minutes`.
#[utoipa::path(get, path = "/v1/portal/events/{event_id}/dashboard/history", tag = "portal", security(("operator_token" = [])),
    params(("event_id" = i64, Path), HistoryParams),
    responses((status = 200, body = History), (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn history(
    State(state): State<AppState>,
    op: OperatorAuth,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(params): ApiQuery<HistoryParams>,
) -> Result<Json<History>, ApiError> {
    let minutes = params.minutes.unwrap_or(60);
    if !(1..=1440).contains(&minutes) {
        return Err(ApiError::bad_request("invalid_minutes", "minutes must be 1 to 1440"));
    }
    // The query is checked before the event is looked up, so not `OwnedEvent`.
    let event = EventId(id);
    portal::events::owned(&state.pool, op.operator.org(), event).await?;
    Ok(Json(dashboard::history(&state.pool, event, minutes).await?))
}

async fn pricing_view(state: &AppState, event: EventId) -> Result<PricingView, ApiError> {
    Ok(pricing_settings::view(
        &state.pool,
        event,
        state.config.pricing.interval_secs,
        DemandRule.version(),
    )
    .await?)
}

/// The event's dynamic pricing: on or off, frozen, interval, each tier's
/// price and bounds, and the latest changes with the inputs and rule
/// version behind each.
#[utoipa::path(get, path = "/v1/portal/events/{event_id}/pricing", tag = "portal", security(("operator_token" = [])),
    params(("event_id" = i64, Path)),
    responses((status = 200, body = PricingView), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn pricing(
    State(state): State<AppState>,
    OwnedEvent { event, .. }: OwnedEvent,
) -> Result<Json<PricingView>, ApiError> {
    Ok(Json(pricing_view(&state, event).await?))
}

/// Replaces the event's pricing settings: `enabled` (off by default),
/// `frozen`, `interval_secs` (5-3600, absent: the configuration's) and the
/// bounds of each tier that may move (`floor_cents` <= `ceiling_cents`,
/// `max_step_cents` > 0); a tier not listed keeps its price. Holds already
/// made keep the prices they locked.
/// The event's currency, fees and taxes (the deployment's currency and no
/// fees until set).
#[utoipa::path(get, path = "/v1/portal/events/{event_id}/fees", tag = "portal", security(("operator_token" = [])),
    params(("event_id" = i64, Path)),
    responses((status = 200, body = EventFees),
              (status = 404, body = Problem, content_type = "application/problem+json", description = "event_not_found")))]
pub async fn fees(
    State(state): State<AppState>,
    op: OperatorAuth,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<EventFees>, ApiError> {
    let default = &state.config.payments.currency;
    Ok(Json(
        fee_settings::get(&state.pool, op.operator.org(), EventId(id), default).await?,
    ))
}

/// Sets the event's currency (ISO 4217; fixed once the event has sales),
/// fees per ticket (service, facility) and per order, and its tax rate
/// (basis points, inclusive or exclusive; whether fees are taxed and
/// refunded). Orders made from then on carry them as lines; orders made
/// before keep theirs. All or nothing.
#[utoipa::path(put, path = "/v1/portal/events/{event_id}/fees", tag = "portal", security(("operator_token" = [])),
    params(("event_id" = i64, Path)), request_body = EventFees,
    responses((status = 200, body = EventFees),
              (status = 403, description = "role_forbidden", body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json", description = "event_not_found"),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "currency_locked"),
              (status = 422, description = "unknown_currency, invalid_fee, invalid_tax_rate, invalid_body", body = Problem, content_type = "application/problem+json")))]
pub async fn put_fees(
    State(state): State<AppState>,
    op: OperatorAuth,
    ApiPath(id): ApiPath<i64>,
    ApiJson(update): ApiJson<EventFees>,
) -> Result<Json<EventFees>, ApiError> {
    op.operator.must_change()?;
    let default = &state.config.payments.currency;
    let set = fee_settings::set(&state.pool, op.operator.org(), EventId(id), &update, default).await?;
    tracing::info!(event_id = id, currency = %set.currency, "fees and taxes changed through the portal");
    Ok(Json(set))
}

#[utoipa::path(put, path = "/v1/portal/events/{event_id}/pricing", tag = "portal", security(("operator_token" = [])),
    params(("event_id" = i64, Path)), request_body = PricingUpdate,
    responses((status = 200, body = PricingView),
              (status = 403, description = "role_forbidden", body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 422, description = "unknown_tier, duplicate_tier, invalid_bounds, invalid_interval, invalid_body", body = Problem, content_type = "application/problem+json")))]
pub async fn put_pricing(
    State(state): State<AppState>,
    op: OperatorAuth,
    ApiPath(id): ApiPath<i64>,
    ApiJson(update): ApiJson<PricingUpdate>,
) -> Result<Json<PricingView>, ApiError> {
    // The body is read before the event is looked up, so not `EventToChange`.
    op.operator.must_change()?;
    let event = EventId(id);
    portal::events::owned(&state.pool, op.operator.org(), event).await?;
    pricing_settings::replace(&state.pool, event, &update).await?;
    tracing::info!(event_id = id, operator = %usher_shared::redact::hashed(&op.operator.email), enabled = update.enabled, frozen = update.frozen, "pricing changed through the portal");
    Ok(Json(pricing_view(&state, event).await?))
}

/// The event's waitlist: entries waiting and the seats they ask for, offers
/// held now, bought, lapsed and left, and the latest offers (fans not
/// named). States as of now.
#[utoipa::path(get, path = "/v1/portal/events/{event_id}/waitlist", tag = "portal", security(("operator_token" = [])),
    params(("event_id" = i64, Path)),
    responses((status = 200, body = WaitlistSummary), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn waitlist(
    State(state): State<AppState>,
    OwnedEvent { event, .. }: OwnedEvent,
) -> Result<Json<WaitlistSummary>, ApiError> {
    Ok(Json(crate::waitlist::summary(&state.pool, event).await?))
}
