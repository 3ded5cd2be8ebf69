//! The sandbox's own 3-D Secure challenge page, as Stripe's test page is:
//! an intent waiting for the fan (`requires_action`) names this page in
//! its `next_action`; the fan's browser is sent here, answers with
//! "Complete" or "Fail", and is sent back to the merchant's `return_url`
//! (with `payment_intent` and `redirect_status` added, as Stripe does)
//! while the webhook tells the merchant. No API key: the fan's browser is
//! not the merchant, and the intent's id is the only secret, as a
//! challenge URL is.

use axum::body::Bytes;
use axum::extract::{Path, State as AxState};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use crate::api::{State, settle_challenge};
use crate::store::Intent;

/// The page for one intent.
pub async fn page(AxState(state): AxState<State>, Path(id): Path<String>) -> Response {
    let intent = state.store.books().intents.iter().find(|i| i.id == id).cloned();
    let Some(intent) = intent else {
        return (
            StatusCode::NOT_FOUND,
            Html(shell("No such payment", "<p>This payment does not exist.</p>")),
        )
            .into_response();
    };
    if intent.status != "requires_action" {
        let body = format!(
            "<p>This payment is not waiting for authentication (it is <b>{}</b>).</p>{}",
            escape(&intent.status),
            back_link(&intent)
        );
        return Html(shell("Nothing to authenticate", &body)).into_response();
    }
    let body = format!(
        r#"<p>The merchant asks you to confirm a payment of <b>{amount} {currency}</b>.</p>
<p class="note">Sandbox: no bank is asked. <b>Complete</b> authenticates (the payment succeeds), <b>Fail</b> refuses it.</p>
<form method="post" action="/sandbox/challenge/{id}">
<button type="submit" name="answer" value="complete" id="complete">Complete</button>
<button type="submit" name="answer" value="fail" id="fail" class="fail">Fail</button>
</form>"#,
        amount = format_args!("{}.{:02}", intent.amount_cents / 100, intent.amount_cents % 100),
        currency = escape(&intent.currency.to_uppercase()),
        id = escape(&intent.id),
    );
    Html(shell("3-D Secure test page", &body)).into_response()
}

#[derive(Debug, Deserialize)]
struct Answer {
    answer: String,
}

/// The fan's answer: moves the intent (and sends the webhook), then sends
/// the browser back to the merchant.
pub async fn answer(AxState(state): AxState<State>, Path(id): Path<String>, body: Bytes) -> Response {
    let succeed = match serde_urlencoded::from_bytes::<Answer>(&body).map(|a| a.answer) {
        Ok(a) if a == "complete" => true,
        Ok(a) if a == "fail" => false,
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                Html(shell("Bad answer", "<p>Answer complete or fail.</p>")),
            )
                .into_response();
        }
    };
    let intent = match settle_challenge(&state, &id, succeed) {
        Ok(intent) => intent,
        Err(refusal) => {
            let body = format!("<p>{}</p>", escape(refusal.2));
            return (refusal.0, Html(shell("Not done", &body))).into_response();
        }
    };
    let Some(url) = return_to(&intent) else {
        let body = format!("<p>Done: the payment {}.</p>", escape(&intent.status));
        return Html(shell("Done", &body)).into_response();
    };
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(&url) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// The merchant's return URL with what Stripe adds to it.
fn return_to(intent: &Intent) -> Option<String> {
    let url = intent.return_url.as_deref()?;
    let status = if intent.status == "succeeded" {
        "succeeded"
    } else {
        "failed"
    };
    let joiner = if url.contains('?') { '&' } else { '?' };
    Some(format!(
        "{url}{joiner}payment_intent={}&redirect_status={status}",
        intent.id
    ))
}

fn back_link(intent: &Intent) -> String {
    match return_to(intent) {
        Some(url) => format!(r#"<p><a href="{}">Back to the merchant</a></p>"#, escape(&url)),
        None => String::new(),
    }
}

fn shell(title: &str, body: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · payment sandbox</title>
<style>
body {{ font: 16px/1.5 system-ui, sans-serif; max-width: 28rem; margin: 3rem auto; padding: 0 1rem; color: #111; }}
h1 {{ font-size: 1.3rem; }} .note {{ color: #444; }}
button {{ font: inherit; padding: .6rem 1.4rem; margin-right: .8rem; border: 0; border-radius: .3rem; background: #1d4ed8; color: #fff; cursor: pointer; }}
button.fail {{ background: #b91c1c; }}
</style></head>
<body><h1>{title}</h1>
{body}
</body></html>"#
    )
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}
