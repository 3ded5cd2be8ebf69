//! Who am I, and (in development only) a sign-in that hands out fan tokens.

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::http::AppState;
use crate::http::extract::{ApiJson, Fan};
use crate::http::problem::{ApiError, Problem};
use crate::ids::FanId;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DevSignIn {
    /// Any name; it becomes the fan id.
    pub fan_id: String,
    pub name: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SignedIn {
    pub fan_id: FanId,
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

/// Development sign-in: a fan token for any fan id. Only present when
/// `identity.dev_sign_in.enabled` (never outside `environment = "dev"`).
#[utoipa::path(post, path = "/v1/dev/sign-in", tag = "identity", request_body = DevSignIn,
    responses((status = 200, body = SignedIn), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn dev_sign_in(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<DevSignIn>,
) -> Result<axum::Json<SignedIn>, ApiError> {
    let fan_id = body.fan_id.trim();
    if !FanId::is_valid(fan_id) {
        return Err(ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_fan_id",
            "fan_id must be 1 to 128 characters",
        ));
    }
    let fan = FanId(fan_id.to_owned());
    let (token, expires_at) = state
        .identity
        .dev_sign_in(&fan, body.name)
        .ok_or_else(|| ApiError::not_found("not_found", "dev sign-in is off"))?;
    Ok(axum::Json(SignedIn {
        fan_id: fan,
        token,
        expires_at,
    }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Me {
    pub fan_id: FanId,
    pub name: Option<String>,
}

/// The signed-in fan.
#[utoipa::path(get, path = "/v1/me", tag = "identity", security(("fan_token" = [])),
    responses((status = 200, body = Me), (status = 401, body = Problem, content_type = "application/problem+json")))]
pub async fn me(fan: Fan) -> axum::Json<Me> {
    axum::Json(Me {
        fan_id: fan.id,
        name: fan.name,
    })
}
