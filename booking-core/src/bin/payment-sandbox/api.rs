//! The sandbox's HTTP API: payment intents (create = confirm + capture,
//! cancel), refunds, lookups, payment methods (a card's fingerprint, as
//! Stripe gives it), disputes a test opens and closes (sent as Stripe's
//! `charge.dispute.created` / `charge.dispute.closed` events), and stats. Every money-moving call needs an
//! Idempotency-Key; the same key and body get the first answer again.
//! The 3-D Secure challenge page fans are sent to is in `challenge.rs`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State as AxState};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::store::{Answer, Card, Delays, Dispute, Intent, Refund, Store, new_id, now};
use crate::webhooks::{Origin, Sender};
use crate::{challenge, connect};

#[derive(Clone)]
pub struct State {
    pub store: Arc<Store>,
    pub hooks: Sender,
    pub api_key: Arc<str>,
    pub delays: Delays,
    /// Where browsers reach this sandbox (the challenge page's origin).
    pub public_url: Arc<str>,
}

pub fn router(state: State) -> Router {
    Router::new()
        .route("/v1/payment_intents", post(create_intent).get(list_intents))
        .route("/v1/payment_intents/{id}", get(get_intent))
        .route("/v1/payment_intents/{id}/refunds", post(create_refund))
        .route("/v1/payment_intents/{id}/cancel", post(cancel_intent))
        .route("/v1/refunds", get(list_refunds))
        .route("/v1/accounts/{id}", get(connect::get_account))
        .route(
            "/v1/transfers",
            post(connect::create_transfer).get(connect::list_transfers),
        )
        .route("/v1/payment_methods/{id}", get(get_payment_method))
        .route("/sandbox/payment_intents/{id}/{action}", post(intent_action))
        .route("/sandbox/disputes/{id}/{outcome}", post(close_dispute))
        .route("/sandbox/events", get(list_events))
        .route("/sandbox/challenge/{id}", get(challenge::page).post(challenge::answer))
        .route("/sandbox/stats", get(stats))
        .route("/sandbox/idempotency_keys/expire", post(expire_keys))
        .with_state(state)
}

pub(crate) fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({ "error": { "code": code, "message": message } })),
    )
        .into_response()
}

/// A request refused before it touched the books.
pub struct Refusal(pub StatusCode, pub &'static str, pub &'static str);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        error(self.0, self.1, self.2)
    }
}

pub(crate) fn authorised(state: &State, headers: &HeaderMap) -> Result<(), Refusal> {
    let ok = headers
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .is_some_and(|k| k == state.api_key.as_ref());
    if ok {
        Ok(())
    } else {
        Err(Refusal(
            StatusCode::UNAUTHORIZED,
            "unauthorised",
            "send Authorization: Bearer <api key>",
        ))
    }
}

pub(crate) fn idempotency_key(headers: &HeaderMap) -> Result<String, Refusal> {
    headers
        .get("idempotency-key")
        .and_then(|h| h.to_str().ok())
        .filter(|k| !k.is_empty())
        .map(str::to_owned)
        .ok_or(Refusal(
            StatusCode::BAD_REQUEST,
            "idempotency_key_missing",
            "send an Idempotency-Key header",
        ))
}

pub(crate) fn fingerprint(path: &str, body: &Value) -> String {
    let digest = Sha256::digest(format!("{path}\n{body}").as_bytes());
    hex::encode(digest)
}

pub(crate) fn answer(a: &Answer, replayed: bool) -> Response {
    let status = StatusCode::from_u16(a.status).unwrap_or(StatusCode::OK);
    let mut r = (status, axum::Json(a.body.clone())).into_response();
    if replayed {
        r.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    r
}

/// The key's first answer, if any: Ok(Some) to replay, Err on a mismatch.
pub(crate) fn prior(store: &Store, key: &str, fp: &str) -> Result<Option<Response>, Refusal> {
    match store.books().answers.get(key) {
        Some(a) if a.fingerprint == fp => Ok(Some(answer(a, true))),
        Some(_) => Err(Refusal(
            StatusCode::CONFLICT,
            "idempotency_key_reused",
            "this key was used with a different request",
        )),
        None => Ok(None),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateIntent {
    amount_cents: i64,
    currency: String,
    payment_method: String,
    #[serde(default)]
    metadata: HashMap<String, String>,
    /// Where the challenge page sends the fan back (3-D Secure).
    #[serde(default)]
    return_url: Option<String>,
}

async fn create_intent(AxState(state): AxState<State>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = authorised(&state, &headers) {
        return r.into_response();
    }
    let key = match idempotency_key(&headers) {
        Ok(k) => k,
        Err(r) => return r.into_response(),
    };
    let Ok(raw) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "invalid_request", "the body is not JSON");
    };
    let Ok(req) = serde_json::from_value::<CreateIntent>(raw.clone()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "amount_cents, currency, payment_method",
        );
    };
    if req.amount_cents <= 0 {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "amount_cents must be positive",
        );
    }
    let Some(card) = Card::parse(&req.payment_method) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_payment_method",
            "unknown test payment method",
        );
    };
    if let Some(url) = &req.return_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "return_url must be an http(s) URL",
        );
    }
    let fp = fingerprint("intent", &raw);
    let lock = state.store.key_lock(&key);
    let _serial = lock.lock().await;
    match prior(&state.store, &key, &fp) {
        Ok(Some(replay)) => return replay,
        Err(mismatch) => return mismatch.into_response(),
        Ok(None) => {}
    }
    if card == Card::Flaky && state.store.books().flaked.insert(key.clone()) {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "processor_error",
            "the processor failed; nothing was charged",
        );
    }
    let declined = card == Card::Declined;
    let challenged = match card {
        Card::RequiresAction | Card::ThreeDsFails => true,
        Card::ThreeDsOver(over) => req.amount_cents > over,
        _ => false,
    };
    let status = match card {
        Card::Declined => "failed",
        Card::Processing => "processing",
        _ if challenged => "requires_action",
        _ => "succeeded",
    };
    let id = new_id("pi");
    let next_action = challenged.then(|| {
        json!({
            "type": "redirect_to_url",
            "redirect_to_url": {
                "url": format!("{}/sandbox/challenge/{id}", state.public_url),
                "return_url": req.return_url,
            },
        })
    });
    let intent = Intent {
        id,
        amount_cents: req.amount_cents,
        currency: req.currency,
        payment_method: req.payment_method,
        status: status.into(),
        failure_code: declined.then(|| "card_declined".into()),
        amount_refunded_cents: 0,
        metadata: req.metadata,
        created: now(),
        next_action,
        return_url: req.return_url,
        cancellation_reason: None,
        trace: Origin::of_call(&headers),
    };
    let stored = Answer {
        fingerprint: fp,
        status: 200,
        body: serde_json::to_value(&intent).unwrap_or(Value::Null),
    };
    {
        let mut books = state.store.books();
        books.intents.push(intent.clone());
        books.answers.insert(key, stored.clone());
    }
    let kind = if declined {
        "payment_intent.payment_failed"
    } else {
        "payment_intent.succeeded"
    };
    let event = Sender::event(kind, &intent, intent.trace.clone());
    let d = state.delays;
    match card {
        // Nothing has happened yet: the webhook comes with the fan's answer.
        _ if challenged => {}
        Card::NoWebhook | Card::LostAnswer => {}
        Card::Processing => finish_processing(&state, intent.id.clone()),
        Card::WebhookFirst => state.hooks.deliver(&state.store, &event).await,
        Card::WebhookTwice => state.hooks.spawn(state.store.clone(), event, Duration::ZERO, 2),
        Card::WebhookLate => state.hooks.spawn(state.store.clone(), event, d.late, 1),
        _ => state.hooks.spawn(state.store.clone(), event, Duration::ZERO, 1),
    }
    match card {
        Card::Slow => tokio::time::sleep(d.slow).await,
        Card::Timeout | Card::LostAnswer => tokio::time::sleep(d.timeout).await,
        _ => {}
    }
    answer(&stored, false)
}

/// Whether to send a dispute's webhook (`?deliver=false`: only record it,
/// for a test that delivers the events itself, in its own order).
#[derive(Debug, Deserialize)]
struct DeliverQuery {
    #[serde(default = "yes")]
    deliver: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenDispute {
    /// The bank's reason, Stripe's words (`fraudulent` by default).
    #[serde(default)]
    reason: Option<String>,
}

/// A test's action on an intent: `succeed` or `fail` answers its 3-D
/// Secure challenge, as the fan would on the challenge page (see
/// `settle_challenge`); `dispute` opens a chargeback of a succeeded one.
async fn intent_action(
    AxState(state): AxState<State>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    Query(q): Query<DeliverQuery>,
    body: Bytes,
) -> Response {
    if let Err(r) = authorised(&state, &headers) {
        return r.into_response();
    }
    let succeed = match action.as_str() {
        "succeed" => true,
        "fail" => false,
        "dispute" => {
            let req = if body.is_empty() {
                OpenDispute::default()
            } else {
                match serde_json::from_slice::<OpenDispute>(&body) {
                    Ok(req) => req,
                    Err(_) => return error(StatusCode::BAD_REQUEST, "invalid_request", "reason"),
                }
            };
            return open_dispute(&state, &id, req, q.deliver, Origin::of_call(&headers));
        }
        _ => return error(StatusCode::NOT_FOUND, "not_found", "succeed, fail or dispute"),
    };
    match settle_challenge(&state, &id, succeed) {
        Ok(intent) => axum::Json(intent).into_response(),
        Err(refusal) => refusal.into_response(),
    }
}

/// The fan's answer to a 3-D Secure challenge, as the card issuer would
/// take it: the intent succeeds (charging the card) or fails
/// authentication (always, for `pm_card_3ds_fails`), and the webhook says
/// so at once. As with Stripe, a failed authentication may be tried again
/// and succeed on the same intent, and the create call's stored answer is
/// not changed.
pub fn settle_challenge(state: &State, id: &str, succeed: bool) -> Result<Intent, Refusal> {
    let intent = {
        let mut books = state.store.books();
        let Some(intent) = books.intents.iter_mut().find(|i| i.id == id) else {
            return Err(Refusal(
                StatusCode::NOT_FOUND,
                "no_such_intent",
                "no such payment intent",
            ));
        };
        let retried = intent.status == "failed" && intent.failure_code.as_deref() == Some("authentication_failed");
        if intent.status != "requires_action" && !(succeed && retried) {
            return Err(Refusal(
                StatusCode::BAD_REQUEST,
                "intent_not_awaiting_action",
                "the payment intent is not waiting for authentication",
            ));
        }
        let refused = Card::parse(&intent.payment_method) == Some(Card::ThreeDsFails);
        if succeed && !refused {
            intent.status = "succeeded".into();
            intent.failure_code = None;
        } else {
            intent.status = "failed".into();
            intent.failure_code = Some("authentication_failed".into());
        }
        intent.next_action = None;
        intent.clone()
    };
    let kind = if intent.status == "succeeded" {
        "payment_intent.succeeded"
    } else {
        "payment_intent.payment_failed"
    };
    // The fan's browser answers untraced: the webhook joins the order's
    // trace through the intent's.
    let event = Sender::event(kind, &intent, intent.trace.clone());
    state.hooks.spawn(state.store.clone(), event, Duration::ZERO, 1);
    Ok(intent)
}

/// Opens a dispute of a succeeded intent (one per intent: asked again, the
/// dispute there is answered) and sends `charge.dispute.created`, in the
/// trace of the call that opened it (`origin`: a dispute is its own object,
/// long after the order).
fn open_dispute(state: &State, intent_id: &str, req: OpenDispute, deliver: bool, origin: Origin) -> Response {
    let (dispute, event) = {
        let mut books = state.store.books();
        let Some(intent) = books.intents.iter().find(|i| i.id == intent_id).cloned() else {
            return error(StatusCode::NOT_FOUND, "no_such_intent", "no such payment intent");
        };
        if let Some(d) = books.disputes.iter().find(|d| d.payment_intent == intent_id) {
            return axum::Json(d.clone()).into_response();
        }
        if intent.status != "succeeded" {
            return error(
                StatusCode::BAD_REQUEST,
                "intent_not_succeeded",
                "only a succeeded payment can be disputed",
            );
        }
        let dispute = Dispute {
            id: new_id("du"),
            object: "dispute".into(),
            payment_intent: intent.id.clone(),
            charge: intent.id.clone(),
            amount_cents: intent.amount_cents,
            currency: intent.currency.clone(),
            reason: req.reason.unwrap_or_else(|| "fraudulent".into()),
            status: "needs_response".into(),
            created: now(),
        };
        books.disputes.push(dispute.clone());
        let event = Sender::event("charge.dispute.created", &dispute, origin);
        books
            .dispute_events
            .push(serde_json::from_slice(event.body()).unwrap_or(Value::Null));
        (dispute, event)
    };
    if deliver {
        state.hooks.spawn(state.store.clone(), event, Duration::ZERO, 1);
    }
    axum::Json(dispute).into_response()
}

/// Decides an open dispute, `won` or `lost`, and sends
/// `charge.dispute.closed`. Deciding it again the same way answers it as
/// it is; the other way is refused (a decision is final).
async fn close_dispute(
    AxState(state): AxState<State>,
    headers: HeaderMap,
    Path((id, outcome)): Path<(String, String)>,
    Query(q): Query<DeliverQuery>,
) -> Response {
    if let Err(r) = authorised(&state, &headers) {
        return r.into_response();
    }
    if outcome != "won" && outcome != "lost" {
        return error(StatusCode::NOT_FOUND, "not_found", "won or lost");
    }
    let (dispute, event) = {
        let mut books = state.store.books();
        let Some(dispute) = books.disputes.iter_mut().find(|d| d.id == id) else {
            return error(StatusCode::NOT_FOUND, "no_such_dispute", "no such dispute");
        };
        if dispute.status == outcome {
            return axum::Json(dispute.clone()).into_response();
        }
        if dispute.status != "needs_response" {
            return error(
                StatusCode::BAD_REQUEST,
                "dispute_closed",
                "the dispute was decided already",
            );
        }
        dispute.status = outcome;
        let dispute = dispute.clone();
        let event = Sender::event("charge.dispute.closed", &dispute, Origin::of_call(&headers));
        books
            .dispute_events
            .push(serde_json::from_slice(event.body()).unwrap_or(Value::Null));
        (dispute, event)
    };
    if q.deliver {
        state.hooks.spawn(state.store.clone(), event, Duration::ZERO, 1);
    }
    axum::Json(dispute).into_response()
}

/// The dispute events sent (or recorded without sending), oldest first.
async fn list_events(AxState(state): AxState<State>, headers: HeaderMap) -> Response {
    if let Err(r) = authorised(&state, &headers) {
        return r.into_response();
    }
    let books = state.store.books();
    axum::Json(json!({ "data": books.dispute_events })).into_response()
}

/// pm_card_processing: the processor finishes by itself after a while,
/// and the webhook says so.
fn finish_processing(state: &State, id: String) {
    let state = state.clone();
    tokio::spawn(async move {
        tokio::time::sleep(state.delays.processing).await;
        let done = {
            let mut books = state.store.books();
            books
                .intents
                .iter_mut()
                .find(|i| i.id == id && i.status == "processing")
                .map(|intent| {
                    intent.status = "succeeded".into();
                    intent.clone()
                })
        };
        if let Some(intent) = done {
            let event = Sender::event("payment_intent.succeeded", &intent, intent.trace.clone());
            state.hooks.deliver(&state.store, &event).await;
        }
    });
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CancelIntent {
    #[serde(default)]
    cancellation_reason: Option<String>,
}

/// Cancels an intent that has not taken money (`requires_action`, or a
/// failed one), as Stripe's `POST /v1/payment_intents/{id}/cancel`: a
/// challenge answered after this is refused, and nothing is ever charged.
/// One already cancelled is answered as it is; one that succeeded or is
/// processing cannot be (400 `payment_intent_unexpected_state`).
async fn cancel_intent(
    AxState(state): AxState<State>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if let Err(r) = authorised(&state, &headers) {
        return r.into_response();
    }
    let req = if body.is_empty() {
        CancelIntent::default()
    } else {
        match serde_json::from_slice::<CancelIntent>(&body) {
            Ok(req) => req,
            Err(_) => return error(StatusCode::BAD_REQUEST, "invalid_request", "cancellation_reason"),
        }
    };
    let (intent, moved) = {
        let mut books = state.store.books();
        let Some(intent) = books.intents.iter_mut().find(|i| i.id == id) else {
            return error(StatusCode::NOT_FOUND, "no_such_intent", "no such payment intent");
        };
        match intent.status.as_str() {
            "canceled" => (intent.clone(), false),
            "requires_action" | "failed" => {
                intent.status = "canceled".into();
                intent.next_action = None;
                intent.cancellation_reason = Some(req.cancellation_reason.unwrap_or_else(|| "abandoned".into()));
                (intent.clone(), true)
            }
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "payment_intent_unexpected_state",
                    "only a payment intent that has taken no money can be cancelled",
                );
            }
        }
    };
    if moved {
        // The cancelling call's trace when it came traced, else the order's.
        let origin = Origin::of_call(&headers).or(&intent.trace);
        let event = Sender::event("payment_intent.canceled", &intent, origin);
        state.hooks.spawn(state.store.clone(), event, Duration::ZERO, 1);
    }
    axum::Json(intent).into_response()
}

async fn get_intent(AxState(state): AxState<State>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(r) = authorised(&state, &headers) {
        return r.into_response();
    }
    let books = state.store.books();
    match books.intents.iter().find(|i| i.id == id) {
        Some(i) => axum::Json(i.clone()).into_response(),
        None => error(StatusCode::NOT_FOUND, "no_such_intent", "no such payment intent"),
    }
}

/// A payment method as Stripe shows one: the card's brand, last four digits
/// and fingerprint (one card, one fingerprint, whoever uses it).
async fn get_payment_method(AxState(state): AxState<State>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(r) = authorised(&state, &headers) {
        return r.into_response();
    }
    let Some((_, card)) = Card::identify(&id) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_payment_method",
            "unknown test payment method",
        );
    };
    let (fingerprint, last4) = card.fingerprint_and_last4();
    axum::Json(json!({
        "id": id,
        "object": "payment_method",
        "type": "card",
        "card": { "fingerprint": fingerprint, "brand": "visa", "last4": last4 },
    }))
    .into_response()
}

/// Stripe's list parameters: `created[gte]`, `created[lt]` (unix
/// seconds), `limit` (1..=100, default 10) and `starting_after` (the last
/// id of the page before); ours also filters by the order an intent names.
#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    order_id: Option<String>,
    #[serde(rename = "created[gte]")]
    created_gte: Option<i64>,
    #[serde(rename = "created[lt]")]
    created_lt: Option<i64>,
    limit: Option<usize>,
    starting_after: Option<String>,
}

impl ListQuery {
    pub(crate) fn created_within(&self, created: i64) -> bool {
        self.created_gte.is_none_or(|t| created >= t) && self.created_lt.is_none_or(|t| created < t)
    }

    /// One page of `entries` (oldest first, as kept) in Stripe's shape.
    pub(crate) fn page<T: serde::Serialize>(&self, entries: Vec<(&str, T)>) -> Response {
        let limit = self.limit.unwrap_or(10).clamp(1, 100);
        let start = match &self.starting_after {
            Some(after) => match entries.iter().position(|(id, _)| id == after) {
                Some(i) => i + 1,
                None => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "resource_missing",
                        "starting_after: no such id",
                    );
                }
            },
            None => 0,
        };
        let rest = entries.len().saturating_sub(start);
        let data: Vec<T> = entries.into_iter().skip(start).take(limit).map(|(_, e)| e).collect();
        axum::Json(json!({ "object": "list", "data": data, "has_more": rest > limit })).into_response()
    }
}

async fn list_intents(AxState(state): AxState<State>, headers: HeaderMap, Query(q): Query<ListQuery>) -> Response {
    if let Err(r) = authorised(&state, &headers) {
        return r.into_response();
    }
    let books = state.store.books();
    let entries: Vec<(&str, &Intent)> = books
        .intents
        .iter()
        .filter(|i| q.order_id.is_none() || i.metadata.get("order_id") == q.order_id.as_ref())
        .filter(|i| q.created_within(i.created))
        .map(|i| (i.id.as_str(), i))
        .collect();
    q.page(entries)
}

async fn list_refunds(AxState(state): AxState<State>, headers: HeaderMap, Query(q): Query<ListQuery>) -> Response {
    if let Err(r) = authorised(&state, &headers) {
        return r.into_response();
    }
    let books = state.store.books();
    let entries: Vec<(&str, &Refund)> = books
        .refunds
        .iter()
        .filter(|r| q.created_within(r.created))
        .map(|r| (r.id.as_str(), r))
        .collect();
    q.page(entries)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRefund {
    amount_cents: i64,
    #[serde(default)]
    metadata: HashMap<String, String>,
}

async fn create_refund(
    AxState(state): AxState<State>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if let Err(r) = authorised(&state, &headers) {
        return r.into_response();
    }
    let key = match idempotency_key(&headers) {
        Ok(k) => k,
        Err(r) => return r.into_response(),
    };
    let Ok(raw) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "invalid_request", "the body is not JSON");
    };
    let Ok(req) = serde_json::from_value::<CreateRefund>(raw.clone()) else {
        return error(StatusCode::BAD_REQUEST, "invalid_request", "amount_cents");
    };
    if req.amount_cents <= 0 {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "amount_cents must be positive",
        );
    }
    let fp = fingerprint(&format!("refund/{id}"), &raw);
    let lock = state.store.key_lock(&key);
    let _serial = lock.lock().await;
    match prior(&state.store, &key, &fp) {
        Ok(Some(replay)) => return replay,
        Err(mismatch) => return mismatch.into_response(),
        Ok(None) => {}
    }
    let refund = {
        let mut books = state.store.books();
        let Some(intent) = books.intents.iter_mut().find(|i| i.id == id) else {
            return error(StatusCode::NOT_FOUND, "no_such_intent", "no such payment intent");
        };
        if intent.status != "succeeded" {
            return error(
                StatusCode::BAD_REQUEST,
                "intent_not_succeeded",
                "only a succeeded payment can be refunded",
            );
        }
        if req.amount_cents > intent.amount_cents - intent.amount_refunded_cents {
            return error(
                StatusCode::BAD_REQUEST,
                "amount_too_large",
                "more than is left to refund",
            );
        }
        intent.amount_refunded_cents += req.amount_cents;
        let refund = Refund {
            id: new_id("re"),
            payment_intent: id.clone(),
            amount_cents: req.amount_cents,
            status: "succeeded".into(),
            metadata: req.metadata,
            created: now(),
        };
        books.refunds.push(refund.clone());
        books.answers.insert(
            key.clone(),
            Answer {
                fingerprint: fp,
                status: 200,
                body: serde_json::to_value(&refund).unwrap_or(Value::Null),
            },
        );
        refund
    };
    // A refund is its own object: its webhook joins the refund call's trace.
    let event = Sender::event("refund.succeeded", &refund, Origin::of_call(&headers));
    state.hooks.spawn(state.store.clone(), event, Duration::ZERO, 1);
    axum::Json(refund).into_response()
}

/// Forgets every idempotency key's first answer, as a real processor does
/// after a while (Stripe: 24 hours): a request sent again with an old key
/// is then a new request.
async fn expire_keys(AxState(state): AxState<State>) -> Response {
    let forgotten = {
        let mut books = state.store.books();
        let n = books.answers.len();
        books.answers.clear();
        n
    };
    axum::Json(json!({ "forgotten": forgotten })).into_response()
}

async fn stats(AxState(state): AxState<State>) -> Response {
    let (intents, succeeded, failed, refunds) = {
        let b = state.store.books();
        let succeeded = b.intents.iter().filter(|i| i.status == "succeeded").count();
        (b.intents.len(), succeeded, b.intents.len() - succeeded, b.refunds.len())
    };
    let s = state.store.stats();
    axum::Json(json!({
        "intents": intents,
        "succeeded": succeeded,
        "failed": failed,
        "refunds": refunds,
        "webhooks_delivered": s.webhooks_delivered,
        "webhooks_failed_attempts": s.webhooks_failed_attempts,
    }))
    .into_response()
}
