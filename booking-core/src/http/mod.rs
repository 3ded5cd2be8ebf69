//! The HTTP layer: routes, extractors, and the one mapping of domain errors
//! to problem+json. Handlers are thin: parse, call the domain, answer.

pub mod admission;
pub mod answer;
pub mod catalog;
pub mod extract;
pub mod fans;
pub mod health;
pub mod holds;
pub mod identity;
pub mod metrics;
pub mod openapi;
pub mod orders;
pub mod payments;
pub mod payouts;
pub mod portal;
pub mod problem;
pub mod seats;
pub mod text;
pub mod tickets;
pub mod waitlist;
pub mod web;

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{BoxError, Router};
use sqlx::PgPool;
use tokio::sync::watch;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::trace::TraceLayer;

use crate::checkout::CheckoutService;
use crate::config::Config;
use crate::identity::{Admission, Identity};
use crate::inventory::{HoldService, SeatFeed, availability};
use crate::portal::EdgeAdmin;
use crate::tickets::TicketSigner;
use crate::venues::SeatMaps;
use problem::ApiError;

/// Everything a handler may need, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub pool: PgPool,
    /// The readiness probe's own connection (`db::probe`).
    pub probe: PgPool,
    /// Replicas, for reads that may be a moment stale (catalog search, event
    /// pages, prices); the leader's pool when none is configured.
    pub reads: PgPool,
    pub identity: Arc<Identity>,
    pub admission: Arc<Admission>,
    pub maps: SeatMaps,
    pub holds: HoldService,
    pub feed: SeatFeed,
    /// Readings of events' seats, shared by requests that arrive together
    /// (and by best available's view and the seat feed).
    pub readings: availability::Readings,
    pub checkout: CheckoutService,
    pub ticket_signer: Arc<TicketSigner>,
    /// The edge's admin API (the portal's waiting rooms), if configured.
    pub edge: Option<EdgeAdmin>,
    /// Flips to true when the server is shutting down; open streams end.
    pub shutdown: watch::Receiver<bool>,
    /// The SREs' counters (off unless `http.metrics_listen` is set).
    pub metrics: crate::metrics::Metrics,
    /// Sold-out events' waitlists (joining, entries, leaving).
    pub waitlist: crate::waitlist::Waitlist,
}

/// Request bodies above this are refused with 413.
const BODY_LIMIT: usize = 64 * 1024;

pub fn router(state: AppState) -> Router {
    let timeout = Duration::from_millis(state.config.http.request_timeout_ms);
    let mut api = Router::new()
        .route("/v1/events", get(catalog::search))
        .route("/v1/events/{event_id}", get(catalog::event))
        .route("/v1/venues/{venue_id}/seatmap", get(seats::seatmap))
        .route("/v1/events/{event_id}/availability", get(seats::availability))
        .route("/v1/events/{event_id}/prices", get(seats::prices))
        .route("/v1/events/{event_id}/holds", post(holds::create))
        .route("/v1/holds/{hold_id}", get(holds::get).delete(holds::release))
        .route("/v1/orders", post(orders::create))
        .route("/v1/orders/{order_id}", get(orders::get))
        .route("/v1/orders/{order_id}/refunds", post(orders::refund))
        .route("/v1/me/orders", get(orders::mine))
        .route("/v1/me/tickets", get(tickets::mine))
        .route("/v1/me/payout-account", put(payouts::set_account))
        .route("/v1/me/payouts", get(payouts::mine))
        .route("/v1/portal/payouts", get(payouts::for_organisation))
        .route("/v1/tickets/{ticket_id}/transfer", post(tickets::transfer))
        .route("/v1/tickets/{ticket_id}/listings", post(tickets::list_for_resale))
        .route("/v1/events/{event_id}/listings", get(tickets::listings))
        .route(
            "/v1/listings/{listing_id}",
            axum::routing::delete(tickets::cancel_listing),
        )
        .route("/v1/tickets/keys", get(tickets::keys))
        .route("/v1/tickets/{ticket_id}", get(tickets::get))
        .route("/v1/tickets/{ticket_id}/qr.svg", get(tickets::qr_svg))
        .route("/v1/tickets/{ticket_id}/qr.png", get(tickets::qr_png))
        .route("/v1/tickets/{ticket_id}/ticket.pdf", get(tickets::pdf))
        .route("/v1/checkin", post(tickets::checkin))
        .route("/v1/payments/webhooks/{provider}", post(payments::webhook))
        .route("/v1/me", get(identity::me))
        .route("/v1/me/data", get(fans::my_data))
        .route("/v1/me/erasure", post(fans::erase_me))
        .route("/v1/portal/fans/{fan_id}/data", post(fans::export_for_fan))
        .route("/v1/portal/fans/{fan_id}/erasure", post(fans::erase_for_fan))
        .route("/v1/portal/audit", get(fans::audit_log))
        .route("/v1/events/{event_id}/waitlist", post(waitlist::join))
        .route("/v1/waitlist", get(waitlist::mine))
        .route("/v1/waitlist/{entry_id}", get(waitlist::get).delete(waitlist::leave))
        .merge(portal::routes())
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/openapi.json", get(openapi::serve));
    if state.identity.dev_sign_in_enabled() {
        api = api.route("/v1/dev/sign-in", post(identity::dev_sign_in));
    }
    // Streams stay open by design; everything else has a deadline.
    let api = api.layer(
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(timed_out))
            .timeout(timeout),
    );
    let streams = Router::new()
        .route("/v1/events/{event_id}/seat-changes", get(seats::seat_changes))
        .route("/v1/portal/events/{event_id}/dashboard", get(portal::dashboard));
    let pages = web::routes(&web::WebSettings {
        dev_sign_in: state.identity.dev_sign_in_enabled(),
        payment_provider: state.checkout.provider().name(),
        currency: state.config.payments.currency.clone(),
    });
    let mut app = api
        .merge(streams)
        .merge(pages)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(CompressionLayer::new())
        .layer(axum::middleware::from_fn(canonical_path))
        .layer(axum::middleware::from_fn(server_timing))
        .layer(CatchPanicLayer::custom(panicked));
    if state.metrics.is_on() {
        // Layered on the router, so it runs after routing and reads the
        // route's template (`MatchedPath`); a panic's 500 is counted too.
        app = app.layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            metrics::track,
        ));
    }
    app.layer(TraceLayer::new_for_http().make_span_with(request_span))
        .with_state(state)
}

/// Every request's span (its handler's and everything below), a child of
/// the caller's trace when the request carries a `traceparent` (the edge's
/// forwarding span, as a rule).
fn request_span<B>(req: &Request<B>) -> tracing::Span {
    let span = tracing::info_span!(
        "request",
        otel.name = %format_args!("{} {}", req.method(), req.uri().path()),
        otel.kind = "server",
        method = %req.method(),
        path = %req.uri().path(),
    );
    usher_shared::telemetry::set_parent(&span, req.headers());
    span
}

/// `Server-Timing: core;dur=<ms>` on every answer: the core's own time (to
/// its first byte), and the mark by which a client or load test knows an
/// answer came from the core rather than from the edge in front of it.
async fn server_timing(req: Request<axum::body::Body>, next: axum::middleware::Next) -> Response {
    let started = std::time::Instant::now();
    let mut response = next.run(req).await;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    if let Ok(v) = axum::http::HeaderValue::from_str(&format!("core;dur={ms:.1}")) {
        response.headers_mut().append("server-timing", v);
    }
    response
}

/// Refuses a path not in its one canonical form (`usher_shared::paths`).
/// The edge forwards only canonical paths and decides on them; any other
/// spelling reaching the core came around the edge's reading, and routing it
/// would let the two services read one path two ways (a waiting room walked
/// around with `/v1/events/%37/holds`).
async fn canonical_path(req: Request<axum::body::Body>, next: axum::middleware::Next) -> Response {
    match usher_shared::paths::canonical(req.uri().path()) {
        Ok(std::borrow::Cow::Borrowed(_)) => next.run(req).await,
        Ok(std::borrow::Cow::Owned(canonical)) => ApiError::bad_request(
            "non_canonical_path",
            "the path is not in canonical form: no escapes of plain characters, no dot segments, no empty or trailing segments, numbers without signs or leading zeros",
        )
        .with("canonical_path", canonical)
        .into_response(),
        Err(e) => ApiError::bad_request(e.code(), e.to_string()).into_response(),
    }
}

async fn timed_out(err: BoxError) -> Response {
    if err.is::<tower::timeout::error::Elapsed>() {
        let mut e = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            "the request took too long; try again",
        );
        e.retry_after_secs = Some(1);
        e.into_response()
    } else {
        ApiError::unavailable(&err).into_response()
    }
}

async fn not_found() -> ApiError {
    ApiError::not_found("not_found", "no such resource")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this resource does not take that method",
    )
}

fn panicked(_: Box<dyn Any + Send + 'static>) -> Response {
    tracing::error!("a handler panicked");
    ApiError::internal().into_response()
}
