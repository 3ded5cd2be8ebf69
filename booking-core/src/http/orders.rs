//! Order endpoints: buy a hold's seats, read an order, list the fan's
//! orders. Thin: the saga lives in `checkout`.

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use crate::checkout::refunds::RefundState;
use crate::checkout::{Order, OrderRefund, OrderRequest, OrderState, RefundOrderRequest, orders};
use crate::http::AppState;
use crate::http::admission::Admission;
use crate::http::answer::{idempotent, located, no_store_json};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery, Fan, IdemKey};
use crate::http::problem::{ApiError, Problem};
use crate::idempotency::Outcome;
use crate::ids::OrderId;

fn answer(outcome: Outcome<Order>, provider_time: Duration) -> Response {
    // 201: bought; 202: the processor has not answered yet, poll the order.
    let order = &outcome.value;
    let status = match order.state {
        OrderState::PendingPayment | OrderState::Paid | OrderState::Refunding => StatusCode::ACCEPTED,
        _ => StatusCode::CREATED,
    };
    let confirmed = order.state == OrderState::Confirmed;
    let location = format!("/v1/orders/{}", order.order_id);
    let mut response = located(idempotent(status, outcome), &location);
    let headers = response.headers_mut();
    // How much of this answer's time was the payment provider's.
    let timing = format!("provider;dur={:.1}", provider_time.as_secs_f64() * 1000.0);
    if let Ok(v) = HeaderValue::from_str(&timing) {
        headers.insert("server-timing", v);
    }
    if confirmed {
        // The edge ends this fan's waiting-room session and admits the next.
        headers.insert(usher_shared::SESSION_DONE_HEADER, HeaderValue::from_static("1"));
    }
    response
}

/// Buy the seats of one of your holds, at the prices the hold locked.
#[utoipa::path(post, path = "/v1/orders", tag = "orders",
    params(("Idempotency-Key" = String, Header, description = "Unique per intended purchase; a retry sends the same key and is never charged again")),
    request_body = OrderRequest,
    security(("fan_token" = [])),
    responses(
        (status = 201, body = Order, description = "Confirmed (tickets issued) or payment_failed (card declined; the hold stays)"),
        (status = 202, body = Order, description = "Not final yet: the processor has not answered (poll Location), or the payment waits, as `payment_status` says: `requires_action` (3-D Secure: send the fan's browser to `next_action.redirect_url`; the provider's page sends it back to `/me/orders/{order_id}`) or `processing`. The hold is kept until `payment_deadline` (at most 15 minutes after the order by default); after it the charge is cancelled and the order fails with `authentication_abandoned`"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "hold_already_ordered, hold_released, card_limit_reached (with `limit` and `already`: this card has paid for that many of the event's seats per fan, on any account; the hold stays)"),
        (status = 410, body = Problem, content_type = "application/problem+json", description = "hold_expired"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "hold_not_found"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "service_unavailable: the payment provider could not be asked about the card; nothing was made, retry with the same key")))]
pub async fn create(
    State(state): State<AppState>,
    fan: Fan,
    IdemKey(key): IdemKey,
    admission: Admission,
    ApiJson(request): ApiJson<OrderRequest>,
) -> Result<Response, ApiError> {
    let (outcome, provider_time) = match state.checkout.place(&fan.id, key.as_str(), &request).await {
        Ok(placed) => placed,
        Err(e) => {
            let e = ApiError::from(e);
            state.metrics.order(e.code);
            return Err(e);
        }
    };
    if !outcome.replayed {
        state.metrics.order(outcome.value.state.as_str());
    }
    if outcome.value.state == OrderState::Confirmed {
        admission.end_session(&state).await;
    }
    Ok(answer(outcome, provider_time))
}

/// One of your orders, with its state now.
#[utoipa::path(get, path = "/v1/orders/{order_id}", tag = "orders",
    params(("order_id" = uuid::Uuid, Path)),
    security(("fan_token" = [])),
    responses((status = 200, body = Order), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get(
    State(state): State<AppState>,
    fan: Fan,
    ApiPath(id): ApiPath<uuid::Uuid>,
) -> Result<Response, ApiError> {
    let order = orders::get(&state.pool, &fan.id, OrderId(id)).await?;
    Ok(no_store_json(StatusCode::OK, order))
}

/// Refund your whole order, or some of its tickets (`ticket_ids`). The
/// tickets stop scanning at once; the money follows through the provider.
#[utoipa::path(post, path = "/v1/orders/{order_id}/refunds", tag = "orders",
    params(("order_id" = uuid::Uuid, Path), ("Idempotency-Key" = String, Header)),
    request_body = RefundOrderRequest,
    security(("fan_token" = [])),
    responses(
        (status = 201, body = OrderRefund, description = "Refunded"),
        (status = 202, body = OrderRefund, description = "Tickets voided; the provider has not confirmed the money yet"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "self_refunds_disabled: the event's organiser refunds its tickets"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "order_not_confirmed, tickets_not_refundable, nothing_to_refund, order_disputed (the bank is deciding a chargeback of its payment, or took it back), refund_window_closed (past the event's cutoff before its start; closed_at says when it closed)"),
        (status = 422, body = Problem, content_type = "application/problem+json", description = "tickets_not_in_order"),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn refund(
    State(state): State<AppState>,
    fan: Fan,
    IdemKey(key): IdemKey,
    ApiPath(id): ApiPath<uuid::Uuid>,
    ApiJson(request): ApiJson<RefundOrderRequest>,
) -> Result<Response, ApiError> {
    let outcome = state
        .checkout
        .refund_tickets(&fan.id, key.as_str(), OrderId(id), &request)
        .await?;
    let status = match outcome.value.state {
        RefundState::Succeeded => StatusCode::CREATED,
        RefundState::Pending => StatusCode::ACCEPTED,
    };
    Ok(idempotent(status, outcome))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// At most this many (1 to 100, default 20).
    pub limit: Option<i64>,
    /// The last order id of the previous page.
    pub before: Option<uuid::Uuid>,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct OrderPage {
    pub orders: Vec<Order>,
    /// Pass as `before` for the next page; absent on the last.
    pub next_before: Option<OrderId>,
}

/// Your orders, newest first.
#[utoipa::path(get, path = "/v1/me/orders", tag = "orders",
    params(ListParams),
    security(("fan_token" = [])),
    responses((status = 200, body = OrderPage), (status = 400, body = Problem, content_type = "application/problem+json")))]
pub async fn mine(
    State(state): State<AppState>,
    fan: Fan,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Response, ApiError> {
    let limit = params.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::bad_request("invalid_query", "limit must be 1 to 100"));
    }
    let orders = orders::list(&state.pool, &fan.id, None, limit, params.before.map(OrderId)).await?;
    let next_before = (orders.len() as i64 == limit)
        .then(|| orders.last().map(|o| o.order_id))
        .flatten();
    Ok(no_store_json(StatusCode::OK, OrderPage { orders, next_before }))
}
