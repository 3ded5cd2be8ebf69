//! The operators' side, on its own listener: the waiting rooms' settings,
//! read and changed live (bearer token), their fairness figures, and
//! `/metrics` for Prometheus.
//! A change made here is shared through Redis, so every edge instance takes
//! it up within a second.

use std::sync::Arc;

use async_trait::async_trait;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use subtle::ConstantTimeEq;
use usher_shared::admin::{
    AdminCode, AdminProblem, FairnessView, PROBLEMS_HEADER, ROOMS_PATH, RoomView, WaitBucket, WaitingTime,
};

use crate::config::RoomSettings;
use crate::queue::store::{Fairness, WAIT_BOUNDS_SECS};
use crate::state::EdgeState;

pub struct Admin {
    pub state: Arc<EdgeState>,
}

fn problem(status: StatusCode, code: AdminCode, detail: impl Into<String>) -> Response {
    let body = AdminProblem::new(
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error"),
        code,
        detail,
    );
    let mut r = (status, Json(body)).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        "application/problem+json".parse().expect("static header"),
    );
    r
}

fn authorised(state: &EdgeState, headers: &HeaderMap) -> bool {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    // In constant time, so the token cannot be guessed byte by byte.
    given.is_some_and(|t| t.as_bytes().ct_eq(state.config.admin.token.expose().as_bytes()).into())
}

fn unauthorised() -> Response {
    problem(
        StatusCode::UNAUTHORIZED,
        AdminCode::Unauthenticated,
        "send Authorization: Bearer <admin token>",
    )
}

fn view(room: &crate::queue::Room) -> RoomView {
    RoomView {
        settings: (*room.settings()).clone(),
        progress: room.progress(),
        listeners: room.listeners(),
        lottery: Some((*room.lottery()).clone()).filter(|l| !l.state.is_empty()),
    }
}

/// Fairness figures for one event: order inversions, how long admitted fans
/// waited, and how many gave up (or were lost) before their turn.
async fn fairness(State(state): State<Arc<EdgeState>>, headers: HeaderMap, Path(event): Path<String>) -> Response {
    if !authorised(&state, &headers) {
        return unauthorised();
    }
    let Some(room) = event.parse::<i64>().ok().and_then(|e| state.rooms.get(e)) else {
        return problem(
            StatusCode::NOT_FOUND,
            AdminCode::QueueNotFound,
            "no waiting room for that event",
        );
    };
    let Some(store) = state.store() else {
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            AdminCode::QueueUnavailable,
            "Redis is not reachable",
        );
    };
    let f = match store.fairness(room.event).await {
        Ok(f) => f,
        Err(e) => {
            return problem(
                StatusCode::SERVICE_UNAVAILABLE,
                AdminCode::QueueUnavailable,
                format!("Redis: {e}"),
            );
        }
    };
    let p = room.progress();
    Json(FairnessView {
        event_id: room.event,
        mode: room.settings().mode,
        admitted: f.admitted,
        inversions: f.inversions,
        abandoned_before_admission: p.seq.saturating_sub(p.admitted_total + p.waiting),
        waiting: p.waiting,
        waiting_time: waiting_time(&f),
    })
    .into_response()
}

/// The waiting-time distribution: buckets (cumulative, like Prometheus),
/// the mean, and percentiles read off the buckets (upper bounds).
fn waiting_time(f: &Fairness) -> WaitingTime {
    let total: u64 = f.wait_buckets.iter().map(|(_, n)| n).sum();
    let mut cumulative = 0;
    let mut buckets = Vec::new();
    for (bound, n) in &f.wait_buckets {
        cumulative += n;
        let le_secs = bound.map_or("+Inf".to_owned(), |b| b.to_string());
        buckets.push(WaitBucket {
            le_secs,
            admitted: cumulative,
        });
    }
    let percentile = |q: f64| -> Option<String> {
        if total == 0 {
            return None;
        }
        let rank = (total as f64 * q).ceil() as u64;
        let mut seen = 0;
        for (bound, n) in &f.wait_buckets {
            seen += n;
            if seen >= rank {
                return Some(
                    bound.map_or(format!(">{}", WAIT_BOUNDS_SECS[WAIT_BOUNDS_SECS.len() - 1]), |b| {
                        format!("<={b}")
                    }),
                );
            }
        }
        None
    };
    WaitingTime {
        mean_secs: if total == 0 {
            0.0
        } else {
            f.wait_sum_ms as f64 / total as f64 / 1000.0
        },
        p50_secs: percentile(0.5),
        p90_secs: percentile(0.9),
        p99_secs: percentile(0.99),
        buckets,
    }
}

async fn list(State(state): State<Arc<EdgeState>>, headers: HeaderMap) -> Response {
    if !authorised(&state, &headers) {
        return unauthorised();
    }
    Json(state.rooms.all().iter().map(|r| view(r)).collect::<Vec<_>>()).into_response()
}

async fn one(State(state): State<Arc<EdgeState>>, headers: HeaderMap, Path(event): Path<String>) -> Response {
    if !authorised(&state, &headers) {
        return unauthorised();
    }
    match event.parse::<i64>().ok().and_then(|e| state.rooms.get(e)) {
        Some(room) => Json(view(&room)).into_response(),
        None => problem(
            StatusCode::NOT_FOUND,
            AdminCode::QueueNotFound,
            "no waiting room for that event",
        ),
    }
}

async fn put(
    State(state): State<Arc<EdgeState>>,
    headers: HeaderMap,
    Path(event): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    if !authorised(&state, &headers) {
        return unauthorised();
    }
    let Ok(event) = event.parse::<i64>() else {
        return problem(
            StatusCode::BAD_REQUEST,
            AdminCode::InvalidPathParameter,
            "the event id must be a number",
        );
    };
    let settings: RoomSettings = match serde_json::from_slice(&body) {
        Ok(s) => s,
        Err(e) => return problem(StatusCode::UNPROCESSABLE_ENTITY, AdminCode::InvalidBody, e.to_string()),
    };
    if settings.event_id != event {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            AdminCode::EventMismatch,
            "event_id in the body differs from the path",
        );
    }
    let problems = settings.problems();
    if !problems.is_empty() {
        let mut r = problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            AdminCode::InvalidSettings,
            problems.join("; "),
        );
        if let Ok(v) = serde_json::to_string(&problems) {
            r.headers_mut().insert(
                PROBLEMS_HEADER,
                v.parse().unwrap_or(header::HeaderValue::from_static("[]")),
            );
        }
        return r;
    }
    // Shared first, so the change survives this instance and reaches the others.
    match state.store() {
        Some(store) => {
            if let Err(e) = store.put_settings(&settings).await {
                return problem(
                    StatusCode::SERVICE_UNAVAILABLE,
                    AdminCode::QueueUnavailable,
                    format!("Redis: {e}"),
                );
            }
        }
        None => {
            return problem(
                StatusCode::SERVICE_UNAVAILABLE,
                AdminCode::QueueUnavailable,
                "Redis is not reachable",
            );
        }
    }
    tracing::info!(event_id = event, "waiting-room settings changed through the admin API");
    let room = state.rooms.upsert(settings);
    Json(view(&room)).into_response()
}

/// The bot defences: settings, counters and the networks with most against
/// them.
async fn defence(State(state): State<Arc<EdgeState>>, headers: HeaderMap) -> Response {
    if !authorised(&state, &headers) {
        return unauthorised();
    }
    Json(state.defences.view()).into_response()
}

/// The admin API's part of the edge's OpenAPI document (`crate::openapi`).
async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], crate::openapi::admin()).into_response()
}

async fn metrics(State(state): State<Arc<EdgeState>>) -> Response {
    let mut body = state
        .metrics
        .render(&state.rooms, &state.defences, state.limits.tallies());
    crate::upstreams::render_readiness(&state.upstreams, &mut body);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

pub fn router(state: Arc<EdgeState>) -> Router {
    Router::new()
        .route(ROOMS_PATH, get(list))
        .route(&format!("{ROOMS_PATH}/{{event}}"), get(one).put(put))
        .route(&format!("{ROOMS_PATH}/{{event}}/fairness"), get(fairness))
        .route("/admin/defence", get(defence))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route(crate::openapi::ADMIN_PATH, get(openapi))
        // Refusals of paths and methods as problems too, like every other.
        .fallback(|| async {
            problem(
                StatusCode::NOT_FOUND,
                AdminCode::NotFound,
                "no such path on the admin API",
            )
        })
        .method_not_allowed_fallback(|| async {
            problem(
                StatusCode::METHOD_NOT_ALLOWED,
                AdminCode::MethodNotAllowed,
                "this path does not take that method",
            )
        })
        .with_state(state)
}

#[async_trait]
impl BackgroundService for Admin {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let addr = self.state.config.admin.listen;
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(%addr, error = %e, "cannot listen for the admin API");
                return;
            }
        };
        tracing::info!(%addr, "admin API listening");
        let serve = axum::serve(listener, router(self.state.clone())).with_graceful_shutdown(async move {
            let _ = shutdown.changed().await;
        });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "admin API stopped");
        }
    }
}
