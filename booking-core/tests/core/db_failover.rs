//! The database leader lost under the service, as a failover loses it: its
//! connections reset (`cut`) or silent (`stall`, a paused node). Requests in
//! flight answer 503 problem+json with Retry-After within their deadline,
//! readiness says no leader, the pool finds the database again by itself,
//! and a retry with the same Idempotency-Key gets the first answer or a
//! clean new one: never a second claim, never a second charge.

use std::time::{Duration, Instant};

use crate::common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The deadline every ordinary request has here (`http.request_timeout_ms`),
/// and how long a request may wait for a connection.
const REQUEST_DEADLINE: Duration = Duration::from_millis(3_000);
const ACQUIRE: Duration = Duration::from_millis(1_000);

async fn linked(sandbox: bool) -> TestApp {
    let options = Options {
        db_link: true,
        sandbox,
        reconcile: sandbox,
        reconcile_after_secs: 1,
        ..Options::default()
    };
    TestApp::start_with_config(options, |c| {
        c.http.request_timeout_ms = REQUEST_DEADLINE.as_millis() as u64;
        c.database.acquire_timeout_ms = ACQUIRE.as_millis() as u64;
    })
    .await
}

/// The answer is the service saying "not now", quickly and in its own words.
async fn assert_unavailable(r: reqwest::Response, started: Instant) {
    let took = started.elapsed();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    assert!(r.headers().contains_key("retry-after"), "a 503 says when to retry");
    let body: Value = r.json().await.unwrap();
    assert!(body["code"].is_string(), "{body}");
    assert!(
        took <= REQUEST_DEADLINE + Duration::from_millis(500),
        "answered after {took:?}, past the request deadline"
    );
}

async fn readiness(app: &TestApp) -> (StatusCode, Value) {
    let r = app.http.get(app.url("/readyz")).send().await.unwrap();
    (r.status(), r.json().await.unwrap_or(Value::Null))
}

/// Waits until readiness answers `want`; returns how long it took.
async fn until_ready(app: &TestApp, want: StatusCode) -> Duration {
    let started = Instant::now();
    loop {
        if readiness(app).await.0 == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "readiness never became {want}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn hold(
    app: &TestApp,
    token: &str,
    e: booking_core::ids::EventId,
    key: &str,
    seats: &[i64],
) -> reqwest::Response {
    app.http
        .post(app.url(&format!("/v1/events/{}/holds", e.0)))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(&json!({"seat_ids": seats}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_dead_leader_gets_quick_503s_and_the_pool_reconnects_by_itself() {
    let app = linked(false).await;
    let v = venue(&app.pool, &small_chart("fo1", &["A"], 1, 6)).await;
    let e = event(&app.pool, "fo1", "fo1", rules(6)).await;
    let seats = seat_ids(&app.pool, v).await;
    let fan = app.sign_in("fo-fan").await;
    assert_eq!(readiness(&app).await.0, StatusCode::OK);

    let link = app.link.as_ref().unwrap();
    link.cut();
    let started = Instant::now();
    assert_unavailable(hold(&app, &fan, e, "h1", &seats[..2]).await, started).await;
    let (status, body) = readiness(&app).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["reason"], "database_unreachable", "{body}");
    assert!(live_claims(&app.pool, e).await.is_empty(), "nothing was claimed");

    link.restore();
    let back = until_ready(&app, StatusCode::OK).await;
    assert!(back < Duration::from_secs(5), "ready again after {back:?}");
    let r = hold(&app, &fan, e, "h1", &seats[..2]).await;
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "the same key after the outage: a clean new hold"
    );
    assert_eq!(live_claims(&app.pool, e).await.len(), 2);
    app.finish().await;
}

#[tokio::test]
async fn a_paused_leader_cannot_hold_a_request_past_its_deadline() {
    let app = linked(false).await;
    let v = venue(&app.pool, &small_chart("fo2", &["A"], 1, 6)).await;
    let e = event(&app.pool, "fo2", "fo2", rules(6)).await;
    let seats = seat_ids(&app.pool, v).await;
    let fan = app.sign_in("fo-fan").await;
    let first = hold(&app, &fan, e, "h1", &seats[..1]).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();

    let link = app.link.as_ref().unwrap();
    link.stall();
    let started = Instant::now();
    assert_unavailable(hold(&app, &fan, e, "h2", &seats[1..3]).await, started).await;
    // Readiness is asked with its own bound, well inside the request's.
    let started = Instant::now();
    let (status, _) = readiness(&app).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        started.elapsed() < REQUEST_DEADLINE,
        "readiness answered after {:?}",
        started.elapsed()
    );

    // The paused node is gone for good; a new leader answers.
    link.cut();
    link.restore();
    until_ready(&app, StatusCode::OK).await;
    // The first hold's key: its first answer, replayed.
    let again = hold(&app, &fan, e, "h1", &seats[..1]).await;
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["hold_id"], first["hold_id"]);
    // The stalled one's key: whatever happened to it, one hold at most.
    let r = hold(&app, &fan, e, "h2", &seats[1..3]).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let claims = live_claims(&app.pool, e).await;
    assert_eq!(claims.len(), 3, "each seat claimed once: {claims:?}");
    app.finish().await;
}

#[tokio::test]
async fn a_charge_in_flight_when_the_leader_dies_is_never_taken_twice_nor_lost() {
    let app = linked(true).await;
    let v = venue(&app.pool, &small_chart("fo3", &["A"], 1, 6)).await;
    let e = event(&app.pool, "fo3", "fo3", rules(6)).await;
    let seats = seat_ids(&app.pool, v).await;
    let fan = app.sign_in("fo-buyer").await;
    let h = hold(&app, &fan, e, "h1", &seats[..2]).await;
    assert_eq!(h.status(), StatusCode::CREATED);
    let hold_id = h.json::<Value>().await.unwrap()["hold_id"]
        .as_str()
        .unwrap()
        .to_string();

    let order = |key: &'static str| {
        app.http
            .post(app.url("/v1/orders"))
            .bearer_auth(&fan)
            .header("idempotency-key", key)
            .json(&json!({"hold_id": hold_id, "payment_method": "pm_card_slow"}))
            .send()
    };
    // The sandbox takes 300 ms over this card: the leader dies while the
    // charge is at the provider, and the service cannot record its outcome.
    let link = app.link.as_ref().unwrap();
    let (first, ()) = tokio::join!(order("o1"), async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        link.cut();
    });
    let first = first.unwrap();
    let first_status = first.status();
    assert!(
        first_status == StatusCode::SERVICE_UNAVAILABLE || first_status == StatusCode::CREATED,
        "{first_status}"
    );
    link.restore();
    until_ready(&app, StatusCode::OK).await;

    // The fan retries with the same key until the answer is final.
    let started = Instant::now();
    let order_id = loop {
        let r = order("o1").await.unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        if status == StatusCode::CREATED || status == StatusCode::ACCEPTED {
            break body["order_id"].as_str().unwrap().to_string();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no final answer: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // Reconciliation settles whatever the outage left open.
    let started = Instant::now();
    let state = loop {
        let s: String = sqlx::query_scalar("SELECT state FROM orders WHERE id = $1::uuid")
            .bind(&order_id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
        if s == "confirmed" || s == "refunded" || s == "payment_failed" {
            break s;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "order stuck in {s}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders WHERE hold_id = $1::uuid")
        .bind(&hold_id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(orders, 1, "one order for the hold");
    let intents = app.sandbox.as_ref().unwrap().intents_for(&order_id).await;
    let captured = intents.iter().filter(|i| i["status"] == "succeeded").count();
    let tickets: i64 = sqlx::query_scalar("SELECT count(*) FROM tickets WHERE event_id = $1 AND state = 'valid'")
        .bind(e.0)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    match state.as_str() {
        "confirmed" => {
            assert_eq!(captured, 1, "charged exactly once: {intents:?}");
            assert_eq!(tickets, 2, "a charged fan has the tickets");
        }
        _ => {
            assert_eq!(tickets, 0);
            assert!(captured <= 1, "never two charges: {intents:?}");
        }
    }
    app.finish().await;
}
