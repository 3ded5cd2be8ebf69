//! Fans' data on request: a fan downloads everything held about them
//! (`GET /v1/me/data`) or has it erased (`POST /v1/me/erasure`); an owner
//! of an organisation does either for a fan who asked support
//! (`/v1/portal/fans/{fan_id}/...`), each action in the organisation's
//! audit log (`GET /v1/portal/audit`). Thin: the domain is `crate::fans`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use crate::fans::audit::{self, Action, AuditEntry};
use crate::fans::erasure::{self, Erasure, ErasureBy};
use crate::fans::export::{self, FanData};
use crate::fans::{self, FanDataError, FanIdentity};
use crate::http::AppState;
use crate::http::answer::{idempotent, no_store_json};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery, Fan, IdemKey};
use crate::http::portal::OperatorAuth;
use crate::http::problem::{ApiError, Problem};
use crate::ids::FanId;
use crate::portal::{PortalError, Role};

fn identity(state: &AppState, id: FanId, name: Option<String>) -> FanIdentity {
    FanIdentity::new(id, name, &state.config.notifications.email_domain)
}

/// Everything Usher holds about you, as one JSON document grouped by
/// table (`format`: `usher.fan-data.v1`; each group at most 5,000 rows,
/// a cut one named in `truncated`). After an erasure the groups are empty.
#[utoipa::path(get, path = "/v1/me/data", tag = "identity", security(("fan_token" = [])),
    responses((status = 200, body = FanData),
              (status = 401, body = Problem, content_type = "application/problem+json")))]
pub async fn my_data(State(state): State<AppState>, fan: Fan) -> Result<Response, ApiError> {
    let who = identity(&state, fan.id, fan.name);
    let data = export::export(&state.pool, &who).await?;
    Ok(no_store_json(StatusCode::OK, data))
}

/// Erases your data: your id becomes a pseudonym in the rows the books
/// keep (orders, payments, refunds, tickets, transfers, payouts), your
/// e-mail address and name are taken out of notifications, mail not yet
/// sent is cancelled, your payout account and card fingerprints removed,
/// open holds released, waitlist places left and listings withdrawn. Valid
/// tickets stay valid at the gate, but no sign-in reaches them any more.
/// Erasing again answers the first erasure (`Idempotent-Replayed: true`).
#[utoipa::path(post, path = "/v1/me/erasure", tag = "identity", security(("fan_token" = [])),
    params(("Idempotency-Key" = String, Header)),
    responses((status = 200, body = Erasure),
              (status = 400, body = Problem, content_type = "application/problem+json", description = "idempotency_key_missing, idempotency_key_invalid"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "order_in_progress, refund_in_progress, payout_owed, listing_reserved: try again once it is settled")))]
pub async fn erase_me(State(state): State<AppState>, fan: Fan, IdemKey(key): IdemKey) -> Result<Response, ApiError> {
    let who = identity(&state, fan.id, fan.name);
    let outcome = erasure::erase(&state.pool, &who, key.as_str(), ErasureBy::Fan).await?;
    tracing::info!(fan = %usher_shared::redact::hashed(who.id.as_str()), replayed = outcome.replayed, "fan data erased at the fan's request");
    Ok(idempotent(StatusCode::OK, outcome))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FanDataRequest {
    /// Why (1 to 500 characters), e.g. the support ticket: kept in the
    /// audit log.
    pub reason: String,
}

/// An owner acting on a fan of their organisation: 403 for other roles
/// (before anything is looked up), 400 for an id no token could carry.
fn owner_and_fan(op: &OperatorAuth, fan_id: &str) -> Result<FanId, ApiError> {
    if op.operator.role != Role::Owner {
        return Err(PortalError::RoleForbidden.into());
    }
    if !FanId::is_valid(fan_id) {
        return Err(FanDataError::InvalidFanId.into());
    }
    Ok(FanId(fan_id.to_owned()))
}

/// Exports a fan's data for them (support received their request): the
/// same document as `/v1/me/data`, without the name (only the fan's token
/// carries it). Owners only, for fans who bought from or hold tickets to
/// the organisation's events; recorded in the audit log.
#[utoipa::path(post, path = "/v1/portal/fans/{fan_id}/data", tag = "portal", security(("operator_token" = [])),
    params(("fan_id" = String, Path)),
    request_body = FanDataRequest,
    responses((status = 200, body = FanData),
              (status = 400, body = Problem, content_type = "application/problem+json", description = "invalid_fan_id"),
              (status = 403, body = Problem, content_type = "application/problem+json", description = "role_forbidden"),
              (status = 404, body = Problem, content_type = "application/problem+json", description = "fan_not_found"),
              (status = 422, body = Problem, content_type = "application/problem+json", description = "invalid_reason")))]
pub async fn export_for_fan(
    State(state): State<AppState>,
    op: OperatorAuth,
    ApiPath(fan_id): ApiPath<String>,
    ApiJson(body): ApiJson<FanDataRequest>,
) -> Result<Response, ApiError> {
    let fan = owner_and_fan(&op, &fan_id)?;
    let reason = fans::check_reason(&body.reason)?;
    let org = op.operator.org();
    let mut conn = state.pool.acquire().await?;
    if !fans::is_customer(&mut conn, org, &fan).await? {
        return Err(FanDataError::FanNotFound.into());
    }
    // Recorded before the data is read: no export goes unrecorded.
    let fan_ref = fans::fan_ref(&mut conn, &fan).await?;
    audit::record(&mut conn, org, op.operator.id, Action::Export, &fan_ref, reason).await?;
    drop(conn);
    let data = export::export(&state.pool, &identity(&state, fan, None)).await?;
    Ok(no_store_json(StatusCode::OK, data))
}

/// Erases a fan's data for them, as `/v1/me/erasure` does (the name, which
/// only their token carries, cannot be searched for). Owners only, for fans
/// of the organisation (an erasure it made before is answered again);
/// recorded in the audit log.
#[utoipa::path(post, path = "/v1/portal/fans/{fan_id}/erasure", tag = "portal", security(("operator_token" = [])),
    params(("fan_id" = String, Path), ("Idempotency-Key" = String, Header)),
    request_body = FanDataRequest,
    responses((status = 200, body = Erasure),
              (status = 400, body = Problem, content_type = "application/problem+json", description = "invalid_fan_id, idempotency_key_missing"),
              (status = 403, body = Problem, content_type = "application/problem+json", description = "role_forbidden"),
              (status = 404, body = Problem, content_type = "application/problem+json", description = "fan_not_found"),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "order_in_progress, refund_in_progress, payout_owed, listing_reserved"),
              (status = 422, body = Problem, content_type = "application/problem+json", description = "invalid_reason")))]
pub async fn erase_for_fan(
    State(state): State<AppState>,
    op: OperatorAuth,
    IdemKey(key): IdemKey,
    ApiPath(fan_id): ApiPath<String>,
    ApiJson(body): ApiJson<FanDataRequest>,
) -> Result<Response, ApiError> {
    let fan = owner_and_fan(&op, &fan_id)?;
    let reason = fans::check_reason(&body.reason)?;
    let org = op.operator.org();
    let mut conn = state.pool.acquire().await?;
    if !fans::is_customer(&mut conn, org, &fan).await? {
        // Once erased the fan is nobody's customer: the organisation that
        // erased them gets its answer again, any other a 404.
        let fan_ref = fans::fan_ref(&mut conn, &fan).await?;
        let erased_here: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM fan_data_audit WHERE organisation_id = $1 AND fan_ref = $2 AND action = 'erasure')",
        )
        .bind(org.0)
        .bind(&fan_ref)
        .fetch_one(&mut *conn)
        .await?;
        if !erased_here {
            return Err(FanDataError::FanNotFound.into());
        }
    }
    drop(conn);
    let who = identity(&state, fan, None);
    let by = ErasureBy::Operator {
        id: op.operator.id,
        org,
        reason,
    };
    let outcome = erasure::erase(&state.pool, &who, key.as_str(), by).await?;
    tracing::info!(fan = %usher_shared::redact::hashed(who.id.as_str()), operator = %usher_shared::redact::hashed(&op.operator.email), replayed = outcome.replayed, "fan data erased by an operator");
    Ok(idempotent(StatusCode::OK, outcome))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Entries older than this id (the last id of the previous page).
    pub before: Option<i64>,
}

/// The organisation's log of operators' actions on fans' data, newest
/// first, 200 a page. Owners only.
#[utoipa::path(get, path = "/v1/portal/audit", tag = "portal", security(("operator_token" = [])),
    params(AuditParams),
    responses((status = 200, body = [AuditEntry]),
              (status = 400, body = Problem, content_type = "application/problem+json", description = "invalid_query"),
              (status = 403, body = Problem, content_type = "application/problem+json", description = "role_forbidden")))]
pub async fn audit_log(
    State(state): State<AppState>,
    op: OperatorAuth,
    ApiQuery(params): ApiQuery<AuditParams>,
) -> Result<Json<Vec<AuditEntry>>, ApiError> {
    if op.operator.role != Role::Owner {
        return Err(PortalError::RoleForbidden.into());
    }
    Ok(Json(audit::list(&state.pool, op.operator.org(), params.before).await?))
}
