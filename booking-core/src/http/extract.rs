//! Request extractors whose every rejection is a problem+json with its own
//! code: JSON bodies, path and query parameters, the fan's bearer token and
//! the Idempotency-Key header.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use crate::http::AppState;
use crate::http::problem::ApiError;
use crate::http::text;
use crate::idempotency::IdempotencyKey;
use crate::ids::FanId;

/// A JSON body. Its text is checked (`text.rs`) before it is read into `T`,
/// so no handler sees a NUL, a control character or an absurd string.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as Content-Type: application/json",
            ));
        }
        let bytes = axum::body::Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", "the body is too large")
            } else {
                ApiError::bad_request("unreadable_body", rejection.body_text())
            }
        })?;
        if std::str::from_utf8(&bytes).is_err() {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_text",
                "the body is not valid UTF-8",
            ));
        }
        let value: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::bad_request("malformed_json", format!("the body is not valid JSON: {e}")))?;
        text::check_json(&value)?;
        serde_json::from_value(value).map(ApiJson).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                format!("the body does not have the expected shape: {e}"),
            )
        })
    }
}

/// `application/json`, or any `+json` type, as axum's own `Json` accepts.
fn is_json(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Path parameters.
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(ApiPath(v)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => {
                Err(ApiError::bad_request("invalid_path_parameter", e.body_text()))
            }
            Err(other) => Err(ApiError::bad_request("invalid_path_parameter", other.body_text())),
        }
    }
}

/// Query-string parameters.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        text::check_query(parts.uri.query().unwrap_or(""))?;
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| ApiQuery(v))
            .map_err(|e: QueryRejection| ApiError::bad_request("invalid_query", e.body_text()))
    }
}

/// The token of `Authorization: Bearer <token>` (the scheme in either
/// case), trimmed; None without one. Fans, operators and scanners all send
/// theirs this way.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
}

/// The signed-in fan, from `Authorization: Bearer <fan token>`.
#[derive(Debug, Clone)]
pub struct Fan {
    pub id: FanId,
    pub name: Option<String>,
}

impl FromRequestParts<AppState> for Fan {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if !parts.headers.contains_key(axum::http::header::AUTHORIZATION) {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "sign in: send Authorization: Bearer <token>",
            ));
        }
        let token = bearer(&parts.headers)
            .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", "use the Bearer scheme"))?;
        let claims = state
            .identity
            .authenticate(token)
            .map_err(|e| ApiError::new(StatusCode::UNAUTHORIZED, e.code(), e.to_string()))?;
        Ok(Fan {
            id: FanId(claims.sub),
            name: claims.name,
        })
    }
}

/// The `Idempotency-Key` header every mutating call must carry.
pub struct IdemKey(pub IdempotencyKey);

impl<S: Send + Sync> FromRequestParts<S> for IdemKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let raw = parts.headers.get("idempotency-key").ok_or_else(|| {
            ApiError::bad_request(
                "idempotency_key_missing",
                "every mutating call needs an Idempotency-Key header (e.g. a UUID); a retry sends the same key",
            )
        })?;
        let raw = raw.to_str().map_err(|_| {
            ApiError::bad_request("idempotency_key_invalid", "the Idempotency-Key is not visible ASCII")
        })?;
        IdempotencyKey::parse(raw)
            .map(IdemKey)
            .map_err(|e| ApiError::bad_request("idempotency_key_invalid", e.to_string()))
    }
}
