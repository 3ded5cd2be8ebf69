//! Resale sellers' payouts (`/v1/me/payout-account`, `/v1/me/payouts`) and
//! the organisation's view of them (`/v1/portal/payouts`). Thin: the
//! domain is `checkout/payouts.rs`.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;

use crate::checkout::payouts::{self, Payout, PayoutAccountView};
use crate::http::AppState;
use crate::http::extract::{ApiJson, ApiQuery, Fan};
use crate::http::portal::OperatorAuth;
use crate::http::problem::{ApiError, Problem};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PayoutAccountRequest {
    /// Your connected account at the payment provider (`acct_...`).
    pub account_id: String,
}

/// Names the account your resale payouts go to. The provider is asked
/// that it exists and can receive money; payouts that failed are tried
/// again to it.
#[utoipa::path(put, path = "/v1/me/payout-account", tag = "tickets", security(("fan_token" = [])),
    request_body = PayoutAccountRequest,
    responses((status = 200, body = PayoutAccountView),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "payout_account_disabled"),
              (status = 422, body = Problem, content_type = "application/problem+json", description = "invalid_payout_account, unknown_payout_account"),
              (status = 503, body = Problem, content_type = "application/problem+json", description = "the provider did not answer")))]
pub async fn set_account(
    State(state): State<AppState>,
    fan: Fan,
    ApiJson(body): ApiJson<PayoutAccountRequest>,
) -> Result<Json<PayoutAccountView>, ApiError> {
    let provider = state.checkout.provider();
    Ok(Json(
        payouts::set_account(&state.pool, provider, &fan.id, &body.account_id).await?,
    ))
}

/// Your resale payouts, newest first.
#[utoipa::path(get, path = "/v1/me/payouts", tag = "tickets", security(("fan_token" = [])),
    responses((status = 200, body = [Payout])))]
pub async fn mine(State(state): State<AppState>, fan: Fan) -> Result<Json<Vec<Payout>>, ApiError> {
    Ok(Json(payouts::for_seller(&state.pool, &fan.id).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PayoutParams {
    /// `owed`, `paid`, `failed` or `cancelled`; all when absent.
    #[param(inline)]
    pub state: Option<PayoutState>,
}

#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PayoutState {
    Owed,
    Paid,
    Failed,
    Cancelled,
}

/// The resale payouts of the organisation's events (newest first, at most
/// 500): `?state=failed` lists those the provider refused.
#[utoipa::path(get, path = "/v1/portal/payouts", tag = "portal", security(("operator_token" = [])),
    params(PayoutParams),
    responses((status = 200, body = [Payout]),
              (status = 400, body = Problem, content_type = "application/problem+json", description = "invalid_query")))]
pub async fn for_organisation(
    State(state): State<AppState>,
    op: OperatorAuth,
    ApiQuery(params): ApiQuery<PayoutParams>,
) -> Result<Json<Vec<Payout>>, ApiError> {
    let wanted = params.state.map(|s| match s {
        PayoutState::Owed => "owed",
        PayoutState::Paid => "paid",
        PayoutState::Failed => "failed",
        PayoutState::Cancelled => "cancelled",
    });
    Ok(Json(
        payouts::for_organisation(&state.pool, op.operator.org(), wanted).await?,
    ))
}
