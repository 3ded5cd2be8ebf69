//! Stripe Connect's shape, for resale payouts: sellers' connected accounts
//! (`GET /v1/accounts/{id}`) and transfers to them (`POST /v1/transfers`,
//! idempotent by key like every call that moves money; `GET` lists them
//! as the other lists do). Which account does what is in its id:
//! `acct_closed_*` cannot receive money (payouts disabled, transfers
//! refused with `account_closed`), `acct_missing_*` (or any id not
//! starting `acct_`) does not exist; every other `acct_*` works.

use axum::body::Bytes;
use axum::extract::{Path, Query, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::{ListQuery, State, authorised, error, fingerprint, idempotency_key, prior};
use crate::store::{Answer, Transfer, new_id, now};

enum Account {
    Open,
    Closed,
    Missing,
}

fn account(id: &str) -> Account {
    if !id.starts_with("acct_") || id.starts_with("acct_missing") {
        Account::Missing
    } else if id.starts_with("acct_closed") {
        Account::Closed
    } else {
        Account::Open
    }
}

pub async fn get_account(AxState(state): AxState<State>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(r) = authorised(&state, &headers) {
        return r.into_response();
    }
    let enabled = match account(&id) {
        Account::Missing => return error(StatusCode::NOT_FOUND, "resource_missing", "no such account"),
        Account::Closed => false,
        Account::Open => true,
    };
    axum::Json(json!({ "id": id, "object": "account", "payouts_enabled": enabled, "charges_enabled": enabled }))
        .into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateTransfer {
    amount_cents: i64,
    currency: String,
    destination: String,
    #[serde(default)]
    transfer_group: Option<String>,
}

pub async fn create_transfer(AxState(state): AxState<State>, headers: HeaderMap, body: Bytes) -> Response {
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
    let Ok(req) = serde_json::from_value::<CreateTransfer>(raw.clone()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "amount_cents, currency, destination",
        );
    };
    if req.amount_cents <= 0 {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "amount_cents must be positive",
        );
    }
    let fp = fingerprint("transfer", &raw);
    let lock = state.store.key_lock(&key);
    let _serial = lock.lock().await;
    match prior(&state.store, &key, &fp) {
        Ok(Some(replay)) => return replay,
        Err(mismatch) => return mismatch.into_response(),
        Ok(None) => {}
    }
    // Refusals are not kept for the key: nothing moved, and Stripe does
    // not keep a request it refused before acting on it.
    match account(&req.destination) {
        Account::Missing => {
            return error(
                StatusCode::BAD_REQUEST,
                "no_such_destination",
                "no such connected account",
            );
        }
        Account::Closed => {
            return error(
                StatusCode::BAD_REQUEST,
                "account_closed",
                "the account cannot receive transfers",
            );
        }
        Account::Open => {}
    }
    let transfer = Transfer {
        id: new_id("tr"),
        amount_cents: req.amount_cents,
        currency: req.currency,
        destination: req.destination,
        transfer_group: req.transfer_group,
        created: now(),
    };
    let body = serde_json::to_value(&transfer).unwrap_or(Value::Null);
    {
        let mut books = state.store.books();
        books.transfers.push(transfer);
        books.answers.insert(
            key,
            Answer {
                fingerprint: fp,
                status: 200,
                body: body.clone(),
            },
        );
    }
    axum::Json(body).into_response()
}

pub async fn list_transfers(
    AxState(state): AxState<State>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Response {
    if let Err(r) = authorised(&state, &headers) {
        return r.into_response();
    }
    let books = state.store.books();
    let entries: Vec<(&str, &Transfer)> = books
        .transfers
        .iter()
        .filter(|t| q.created_within(t.created))
        .map(|t| (t.id.as_str(), t))
        .collect();
    q.page(entries)
}
