//! Liveness (the process answers) and readiness (a database leader answers).

use axum::extract::State;
use axum::http::StatusCode;
use serde_json::json;

use crate::db;
use crate::http::AppState;

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Object, description = "`{\"status\": \"ok\"}`")))]
pub async fn healthz() -> axum::Json<serde_json::Value> {
    axum::Json(json!({"status": "ok"}))
}

/// A writable database leader answers; take this instance out of rotation
/// otherwise (the edge's health check reads this). Asked over the probe's
/// own connection (see `db::probe`): a busy pool is load, not a fault, and
/// must not take the instance out of rotation.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200, body = Object, description = "`{\"status\": \"ready\"}`"), (status = 503, body = Object, description = "`{\"status\": \"not ready\", \"reason\": \"database_unreachable\" | \"database_read_only\"}`: no writable database leader answers")))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, axum::Json<serde_json::Value>) {
    match db::leader_answers(&state.probe).await {
        Ok(()) => (StatusCode::OK, axum::Json(json!({"status": "ready"}))),
        Err(why) => {
            tracing::warn!(reason = %why, "not ready: no database leader");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({"status": "not ready", "reason": why.code()})),
            )
        }
    }
}
