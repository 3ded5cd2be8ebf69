//! Answers that several endpoints give alike: fan-specific JSON that no
//! cache may keep, and the answer to an idempotent call (the one place the
//! `Idempotent-Replayed` header is written).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::idempotency::Outcome;

/// The header that tells a client this is the first answer to its
/// Idempotency-Key again, not a second change.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// Marks an answer as one no cache may keep (it is this fan's, or it
/// changes from one moment to the next).
pub fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `value` as JSON, kept by no cache.
pub fn no_store_json<T: Serialize>(status: StatusCode, value: T) -> Response {
    no_store((status, axum::Json(value)).into_response())
}

/// The answer to a call made with an Idempotency-Key: its value as JSON,
/// kept by no cache, with `Idempotent-Replayed: true` when it repeats the
/// first answer to the key.
pub fn idempotent<T: Serialize>(status: StatusCode, outcome: Outcome<T>) -> Response {
    let mut response = no_store_json(status, outcome.value);
    if outcome.replayed {
        response
            .headers_mut()
            .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    }
    response
}

/// Adds `Location: <path>`.
pub fn located(mut response: Response, path: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(path) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}
