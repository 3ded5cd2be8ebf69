//! The metrics' HTTP side: the middleware that counts every answer by its
//! route template (axum's `MatchedPath`, never the path sent), and the
//! admin listener's router serving `/metrics`. That listener is the guard:
//! `/metrics` is not on the public router at all, so no fan reaches it
//! through the edge, and the admin port is only published to Prometheus's
//! network.

use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::metrics::{Metrics, scrape};

/// Records the answer's route template, method, status and time to its head.
pub async fn track(State(metrics): State<Metrics>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    // The template is kept before the request moves on; `None` for a
    // request no route matched (the fallback's 404s).
    let route = req.extensions().get::<MatchedPath>().cloned();
    let method = req.method().clone();
    let response = next.run(req).await;
    metrics.request(
        route.as_ref().map(MatchedPath::as_str),
        method.as_str(),
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

#[derive(Clone)]
struct Admin {
    metrics: Metrics,
    sources: scrape::Sources,
}

/// The admin listener's routes: `/metrics` only.
pub fn admin_router(metrics: Metrics, sources: scrape::Sources) -> Router {
    Router::new()
        .route("/metrics", get(serve))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .with_state(Admin { metrics, sources })
}

async fn serve(State(admin): State<Admin>) -> Response {
    let body = admin.metrics.render(&admin.sources).await;
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}
