//! Liveness (the process answers) and readiness (the database answers).

use axum::extract::State;
use axum::http::StatusCode;
use serde_json::json;

use crate::http::AppState;

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Object, description = "`{\"status\": \"ok\"}`")))]
pub async fn healthz() -> axum::Json<serde_json::Value> {
    axum::Json(json!({"status": "ok"}))
}

/// The database answers; take this instance out of rotation otherwise.
/// Asked over the probe's own connection (see `db::probe`): a busy pool is
/// load, not a fault, and must not take the instance out of rotation.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200, body = Object, description = "`{\"status\": \"ready\"}`"), (status = 503, body = Object, description = "`{\"status\": \"database unreachable\"}`")))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, axum::Json<serde_json::Value>) {
    match sqlx::query_scalar!("SELECT 1 AS \"one!\"")
        .fetch_one(&state.probe)
        .await
    {
        Ok(_) => (StatusCode::OK, axum::Json(json!({"status": "ready"}))),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check: database unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({"status": "database unreachable"})),
            )
        }
    }
}
