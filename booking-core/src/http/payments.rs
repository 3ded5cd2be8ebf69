//! The payment provider's webhook endpoint. The body is read raw, because
//! the signature covers the exact bytes; it is verified (HMAC, timestamp
//! within tolerance) before anything is parsed or acted on.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::checkout::WebhookError;
use crate::http::AppState;
use crate::http::extract::ApiPath;
use crate::http::problem::{ApiError, Problem};

/// Payment events from the processor (signed; at least once, any order):
/// charges, refunds and disputes (`charge.dispute.created` / `.closed`).
/// `{provider}` is the configured provider's name (`stripe`, `sandbox`).
#[utoipa::path(post, path = "/v1/payments/webhooks/{provider}", tag = "payments",
    params(("provider" = String, Path)),
    request_body(content = String, description = "The processor's event, signed in its signature header (Stripe-Signature, Sandbox-Signature)"),
    responses(
        (status = 200, body = Object, description = "Acted on, or a duplicate (`duplicate: true`)"),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "webhook_signature_invalid, webhook_timestamp_stale, webhook_malformed"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "not acted on now (the database, or the provider asked whose charge a dispute is, did not answer): deliver it again")))]
pub async fn webhook(
    State(state): State<AppState>,
    ApiPath(provider): ApiPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let verifier = state.checkout.provider();
    if provider != verifier.name() {
        return Err(ApiError::not_found("not_found", "no such payment provider here"));
    }
    let signature = headers.get(verifier.signature_header()).and_then(|v| v.to_str().ok());
    let now = chrono::Utc::now().timestamp();
    let event = state
        .checkout
        .provider()
        .verify_webhook(signature, &body, now)
        .map_err(|e| {
            let code = match e {
                WebhookError::MalformedSignature | WebhookError::BadSignature => "webhook_signature_invalid",
                WebhookError::StaleTimestamp => "webhook_timestamp_stale",
                WebhookError::MalformedBody => "webhook_malformed",
            };
            tracing::warn!(code, "webhook refused");
            ApiError::bad_request(code, e.to_string())
        })?;
    let event_id = event.event_id().to_owned();
    let fresh = state
        .checkout
        .on_webhook(event)
        .await
        .map_err(|e| ApiError::unavailable(&e))?;
    Ok((
        StatusCode::OK,
        axum::Json(json!({ "received": event_id, "duplicate": !fresh })),
    )
        .into_response())
}
