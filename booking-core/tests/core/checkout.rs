//! Checkout through a real payment sandbox (a separate process speaking
//! HTTP), real PostgreSQL and the real service: happy path, declines,
//! timeouts, webhooks early/late/twice, forged and stale webhooks, payments
//! that arrive after their hold lapsed, and check-in.

use std::time::Duration;

use crate::common::*;
use booking_core::catalog::EventRules;
use booking_core::checkout::reconcile;
use booking_core::signature;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn with_sandbox() -> Options {
    Options {
        sandbox: true,
        ..Options::default()
    }
}

async fn order(
    app: &TestApp,
    token: &str,
    key: &str,
    hold: &str,
    pm: &str,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let r = app
        .http
        .post(app.url("/v1/orders"))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(&json!({"hold_id": hold, "payment_method": pm}))
        .send()
        .await
        .unwrap();
    let (status, headers) = (r.status(), r.headers().clone());
    (status, headers, r.json().await.unwrap_or(Value::Null))
}

async fn get_order(app: &TestApp, token: &str, id: &str) -> Value {
    let r = app
        .http
        .get(app.url(&format!("/v1/orders/{id}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

/// Polls the order until its state is `want` (or fails after `within`).
async fn until_state(app: &TestApp, token: &str, id: &str, want: &str, within: Duration) -> Value {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let o = get_order(app, token, id).await;
        if o["state"] == want {
            return o;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "order {id} stuck in {} (want {want})",
            o["state"]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn hold_seats(app: &TestApp, token: &str, e: booking_core::ids::EventId, key: &str, seats: &[i64]) -> String {
    let (s, h) = app.hold(token, e, key, &json!({"seat_ids": seats})).await;
    assert_eq!(s, StatusCode::CREATED, "{h}");
    h["hold_id"].as_str().unwrap().to_string()
}

async fn valid_tickets(app: &TestApp, e: booking_core::ids::EventId) -> Vec<(i64, String)> {
    sqlx::query_as("SELECT seat_id, owner_fan_id FROM tickets WHERE event_id = $1 AND state = 'valid' ORDER BY seat_id")
        .bind(e.0)
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

async fn outbox_topics(app: &TestApp, order: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT topic FROM outbox WHERE order_id = $1::uuid ORDER BY id")
        .bind(order)
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_fan_buys_a_hold_gets_tickets_and_gets_in_once() {
    let app = TestApp::start_with(with_sandbox()).await;
    let v = venue(&app.pool, &small_chart("buy", &["A"], 2, 4)).await;
    let e = event(&app.pool, "buy", "buy", rules(4)).await;
    let seats = seat_ids(&app.pool, v).await;
    let alice = app.sign_in("alice").await;
    let hold = hold_seats(&app, &alice, e, "h1", &[seats[0], seats[1]]).await;

    let (s, headers, o) = order(&app, &alice, "o1", &hold, "pm_card_ok").await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    assert_eq!(o["state"], "confirmed", "{o}");
    assert_eq!(o["total_cents"], 6000, "the prices the hold locked");
    assert_eq!(o["tickets"].as_array().unwrap().len(), 2);
    assert!(
        headers.contains_key("usher-session-done"),
        "the edge is told the fan is done"
    );
    let id = o["order_id"].as_str().unwrap().to_string();

    // A retry with the key: the same order, no second charge.
    let (s, headers, again) = order(&app, &alice, "o1", &hold, "pm_card_ok").await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(again["order_id"], o["order_id"]);
    assert_eq!(headers["idempotent-replayed"], "true");
    // The same key for another request is refused; another key for the same hold too.
    let (s, _, p) = order(&app, &alice, "o1", &hold, "pm_card_declined").await;
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("idempotency_key_reused"))
    );
    let (s, _, p) = order(&app, &alice, "o2", &hold, "pm_card_ok").await;
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::CONFLICT, Some("hold_already_ordered"))
    );
    assert_eq!(p["order_id"], o["order_id"]);
    let sandbox = app.sandbox.as_ref().unwrap();
    assert_eq!(sandbox.intents_for(&id).await.len(), 1);

    // The seats are sold for good, and the hold is spent.
    let claims: Vec<String> = sqlx::query_scalar("SELECT kind FROM seat_claims WHERE event_id = $1 ORDER BY seat_id")
        .bind(e.0)
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(claims, ["sale", "sale"]);
    assert_eq!(
        valid_tickets(&app, e).await,
        vec![(seats[0], "alice".into()), (seats[1], "alice".into())]
    );
    let bob = app.sign_in("bob").await;
    let (s, _) = app.hold(&bob, e, "b1", &json!({"seat_ids": [seats[0]]})).await;
    assert_eq!(s, StatusCode::CONFLICT);

    // Order history, newest first; others cannot see it.
    let mine: Value = app
        .http
        .get(app.url("/v1/me/orders"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(mine["orders"][0]["order_id"], o["order_id"]);
    let r = app
        .http
        .get(app.url(&format!("/v1/orders/{id}")))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // The webhook arrives too, and changes nothing; one confirmation is sent.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(outbox_topics(&app, &id).await, vec!["order.confirmed"]);

    // The ticket, its QR code, and the gate.
    let ticket_id = o["tickets"][0]["ticket_id"].as_str().unwrap();
    let t: Value = app
        .http
        .get(app.url(&format!("/v1/tickets/{ticket_id}")))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let code = t["code"].as_str().unwrap().to_string();
    assert!(code.starts_with("UT1."), "{code}");
    let svg = app
        .http
        .get(app.url(&format!("/v1/tickets/{ticket_id}/qr.svg")))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(svg.headers()["content-type"], "image/svg+xml");
    assert!(svg.text().await.unwrap().contains("<svg"));
    let png = app
        .http
        .get(app.url(&format!("/v1/tickets/{ticket_id}/qr.png?rotating=true")))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(png.headers()["content-type"], "image/png");
    assert!(png.bytes().await.unwrap().starts_with(b"\x89PNG\r\n\x1a\n"));
    let pdf = app
        .http
        .get(app.url(&format!("/v1/tickets/{ticket_id}/ticket.pdf")))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(pdf.headers()["content-type"], "application/pdf");
    let pdf = pdf.bytes().await.unwrap();
    assert!(pdf.starts_with(b"%PDF-1.4"));
    let text = String::from_utf8_lossy(&pdf);
    assert!(text.contains("(Section A, row R1, seat "), "the seat is printed");
    assert!(text.contains("(Test event buy) Tj"));
    let r = app
        .http
        .get(app.url(&format!("/v1/tickets/{ticket_id}")))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "only the owner sees a ticket");

    let scan = |code: String, key: &'static str| {
        let app = &app;
        async move {
            let r = app
                .http
                .post(app.url("/v1/checkin"))
                .bearer_auth(key)
                .json(&json!({ "code": code }))
                .send()
                .await
                .unwrap();
            (r.status(), r.json::<Value>().await.unwrap())
        }
    };
    let (s, body) = scan(code.clone(), "not-a-scanner").await;
    assert_eq!(
        (s, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("scanner_unauthenticated"))
    );
    let (s, first) = scan(code.clone(), SCANNER_KEY).await;
    assert_eq!(s, StatusCode::OK, "{first}");
    assert_eq!(first["checked_in_by"], "gate-a");
    let (s, second) = scan(code.clone(), SCANNER_KEY).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(second["code"], "already_checked_in");
    assert_eq!(second["checked_in_by"], "gate-a");
    assert_eq!(second["checked_in_at"], first["checked_in_at"]);
    // A forged code (another seat, same signature) is refused.
    let parts: Vec<&str> = code.split('.').collect();
    let forged = format!("UT1.{}x.{}", parts[1], parts[2]);
    let (s, body) = scan(forged, SCANNER_KEY).await;
    assert_eq!(
        (s, body["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("code_invalid"))
    );
    // A rotating code from the QR endpoint scans once the static one has not.
    let ticket2 = o["tickets"][1]["ticket_id"].as_str().unwrap();
    let (_, keys) = app.get("/v1/tickets/keys").await;
    assert!(keys[0]["public_key_pem"].as_str().unwrap().contains("PUBLIC KEY"));
    let t2: Value = app
        .http
        .get(app.url(&format!("/v1/tickets/{ticket2}")))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let stale = format!("{}.1.0000000000000000", t2["code"].as_str().unwrap());
    let (s, body) = scan(stale, SCANNER_KEY).await;
    assert_eq!(
        (s, body["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("code_stale"))
    );
    app.finish().await;
}

#[tokio::test]
async fn a_declined_card_leaves_the_hold_for_another_card() {
    let app = TestApp::start_with(with_sandbox()).await;
    let v = venue(&app.pool, &small_chart("dec", &["A"], 1, 4)).await;
    let e = event(&app.pool, "dec", "dec", rules(4)).await;
    let seats = seat_ids(&app.pool, v).await;
    let alice = app.sign_in("alice").await;
    let hold = hold_seats(&app, &alice, e, "h1", &[seats[0]]).await;

    let (s, _, o) = order(&app, &alice, "o1", &hold, "pm_card_declined").await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    assert_eq!(o["state"], "payment_failed");
    assert_eq!(o["failure_code"], "card_declined");
    assert!(o["tickets"].as_array().unwrap().is_empty());
    let id = o["order_id"].as_str().unwrap();
    assert!(valid_tickets(&app, e).await.is_empty());

    let (s, _, o2) = order(&app, &alice, "o2", &hold, "pm_card_ok").await;
    assert_eq!(s, StatusCode::CREATED, "{o2}");
    assert_eq!(o2["state"], "confirmed");
    // The decline's webhook arrives late and out of order: nothing changes.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(get_order(&app, &alice, id).await["state"], "payment_failed");
    assert_eq!(
        get_order(&app, &alice, o2["order_id"].as_str().unwrap()).await["state"],
        "confirmed"
    );
    assert_eq!(outbox_topics(&app, id).await, vec!["payment.failed"]);

    let (s, _, p) = order(&app, &alice, "o3", &hold, "").await;
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_payment_method"))
    );
    let (s, _, p) = order(&app, &alice, "o4", "not-a-uuid", "pm_card_ok").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    let (s, _, p) = order(&app, &alice, "o5", &uuid::Uuid::now_v7().to_string(), "pm_card_ok").await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::NOT_FOUND, Some("hold_not_found")));
    app.finish().await;
}

#[tokio::test]
async fn webhooks_first_twice_or_late_settle_each_order_exactly_once() {
    let app = TestApp::start_with(with_sandbox()).await;
    let v = venue(&app.pool, &small_chart("wh", &["A"], 1, 6)).await;
    let e = event(&app.pool, "wh", "wh", rules(6)).await;
    let seats = seat_ids(&app.pool, v).await;
    let alice = app.sign_in("alice").await;
    let mut ids = Vec::new();
    for (i, pm) in [
        "pm_card_webhook_first",
        "pm_card_webhook_twice",
        "pm_card_webhook_late",
        "pm_card_slow",
    ]
    .iter()
    .enumerate()
    {
        let hold = hold_seats(&app, &alice, e, &format!("h{i}"), &[seats[i]]).await;
        let (s, headers, o) = order(&app, &alice, &format!("o{i}"), &hold, pm).await;
        assert_eq!(s, StatusCode::CREATED, "{pm}: {o}");
        if *pm == "pm_card_slow" {
            // The sandbox answers after 300 ms; the answer says whose time that was.
            let timing = headers["server-timing"].to_str().unwrap();
            let ms: f64 = timing.trim_start_matches("provider;dur=").parse().unwrap();
            assert!(ms >= 290.0, "{timing}");
        }
        assert_eq!(o["state"], "confirmed", "{pm}");
        ids.push(o["order_id"].as_str().unwrap().to_string());
    }
    // Let the late and the repeated deliveries land.
    let sandbox = app.sandbox.as_ref().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while sandbox.stats().await["webhooks_delivered"].as_i64().unwrap() < 5 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "webhooks not delivered: {}",
            sandbox.stats().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for id in &ids {
        assert_eq!(outbox_topics(&app, id).await, vec!["order.confirmed"], "order {id}");
        assert_eq!(sandbox.intents_for(id).await.len(), 1);
    }
    assert_eq!(valid_tickets(&app, e).await.len(), 4);
    let receipts: i64 = sqlx::query_scalar("SELECT count(*) FROM payment_webhooks")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(receipts, 4, "one receipt per event; the repeat was recognised");
    app.finish().await;
}

#[tokio::test]
async fn forged_stale_and_replayed_webhooks_are_refused_or_ignored() {
    let app = TestApp::start_with(with_sandbox()).await;
    let v = venue(&app.pool, &small_chart("sig", &["A"], 1, 4)).await;
    let e = event(&app.pool, "sig", "sig", rules(4)).await;
    let seats = seat_ids(&app.pool, v).await;
    let alice = app.sign_in("alice").await;
    let hold = hold_seats(&app, &alice, e, "h1", &[seats[0]]).await;
    let (_, _, o) = order(&app, &alice, "o1", &hold, "pm_card_no_webhook").await;
    assert_eq!(o["state"], "confirmed", "{o}");
    let id = o["order_id"].as_str().unwrap();

    let post = |body: String, sig: Option<String>| {
        let app = &app;
        async move {
            let mut r = app
                .http
                .post(app.url("/v1/payments/webhooks/sandbox"))
                .header("content-type", "application/json")
                .body(body);
            if let Some(sig) = sig {
                r = r.header("sandbox-signature", sig);
            }
            let r = r.send().await.unwrap();
            (r.status(), r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let now = chrono::Utc::now().timestamp();
    // A "failed" event for the confirmed order, as an attacker might send.
    let body = json!({"id": "evt_forged", "type": "payment_intent.payment_failed", "created": now,
        "data": {"object": {"id": "pi_x", "amount_cents": 1000, "currency": "usd", "payment_method": "pm_card_ok",
                            "status": "failed", "failure_code": "card_declined", "amount_refunded_cents": 0,
                            "metadata": {"order_id": id}, "created": now}}})
    .to_string();
    let secret = SANDBOX_WEBHOOK_SECRET.as_bytes();

    let (s, p) = post(body.clone(), None).await;
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("webhook_signature_invalid"))
    );
    let (s, p) = post(
        body.clone(),
        Some(signature::sign(body.as_bytes(), b"wrong secret", now)),
    )
    .await;
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("webhook_signature_invalid"))
    );
    let tampered = body.replace("pi_x", "pi_y");
    let (s, _) = post(tampered, Some(signature::sign(body.as_bytes(), secret, now))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, p) = post(body.clone(), Some(signature::sign(body.as_bytes(), secret, now - 3600))).await;
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("webhook_timestamp_stale"))
    );
    let (s, p) = post("not json".into(), Some(signature::sign(b"not json", secret, now))).await;
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("webhook_malformed"))
    );

    // Correctly signed but out of order (a failure after the success): no
    // effect; the same event again is a recognised duplicate.
    let (s, p) = post(body.clone(), Some(signature::sign(body.as_bytes(), secret, now))).await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(p["duplicate"], false);
    let (s, p) = post(body.clone(), Some(signature::sign(body.as_bytes(), secret, now + 1))).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(p["duplicate"], true);
    assert_eq!(get_order(&app, &alice, id).await["state"], "confirmed");
    assert_eq!(valid_tickets(&app, e).await.len(), 1);
    app.finish().await;
}

fn short_holds() -> EventRules {
    EventRules {
        hold_ttl_secs: 1,
        hold_jitter_secs: 0,
        max_seats_per_fan: 4,
        protected: false,
    }
}

#[tokio::test]
async fn an_unanswered_charge_is_finished_by_reconciliation_with_one_charge() {
    let app = TestApp::start_with(Options {
        sandbox: true,
        reconcile: true,
        reconcile_after_secs: 1,
        payments_timeout_ms: 1_000,
        ..Options::default()
    })
    .await;
    let v = venue(&app.pool, &small_chart("rec", &["A"], 1, 4)).await;
    let e = event(&app.pool, "rec", "rec", rules(4)).await;
    let seats = seat_ids(&app.pool, v).await;
    let alice = app.sign_in("alice").await;

    // The processor errors (charging nothing): the order waits, and the job
    // charges it later with the same key.
    let hold = hold_seats(&app, &alice, e, "h1", &[seats[0]]).await;
    let (s, headers, o) = order(&app, &alice, "o1", &hold, "pm_card_flaky").await;
    assert_eq!(s, StatusCode::ACCEPTED, "{o}");
    assert_eq!(o["state"], "pending_payment");
    assert!(headers["location"].to_str().unwrap().starts_with("/v1/orders/"));
    let id = o["order_id"].as_str().unwrap().to_string();
    until_state(&app, &alice, &id, "confirmed", Duration::from_secs(15)).await;

    // The processor charges but its answer never comes in time; the webhook
    // or the job finishes the order, and the fan is charged once.
    let hold2 = hold_seats(&app, &alice, e, "h2", &[seats[1]]).await;
    let (s, _, o2) = order(&app, &alice, "o2", &hold2, "pm_card_timeout").await;
    assert!(s == StatusCode::ACCEPTED || s == StatusCode::CREATED, "{s}: {o2}");
    let id2 = o2["order_id"].as_str().unwrap().to_string();
    until_state(&app, &alice, &id2, "confirmed", Duration::from_secs(15)).await;

    let sandbox = app.sandbox.as_ref().unwrap();
    for id in [&id, &id2] {
        let intents = sandbox.intents_for(id).await;
        assert_eq!(intents.len(), 1, "{intents:?}");
        assert_eq!(intents[0]["status"], "succeeded");
    }
    assert_eq!(valid_tickets(&app, e).await.len(), 2);
    app.finish().await;
}

/// A pending order whose hold lapses before the payment lands: the seats are
/// sold anyway if still free, otherwise the payment is refunded.
#[tokio::test]
async fn a_payment_after_the_hold_lapsed_reclaims_free_seats_or_is_refunded() {
    let app = TestApp::start_with(Options {
        sandbox: true,
        reconcile: false,
        reconcile_after_secs: 0,
        ..Options::default()
    })
    .await;
    let v = venue(&app.pool, &small_chart("late", &["A"], 1, 4)).await;
    let e = event(&app.pool, "late", "late", short_holds()).await;
    let seats = seat_ids(&app.pool, v).await;
    let alice = app.sign_in("alice").await;
    let bob = app.sign_in("bob").await;
    let checkout = app.running.state.checkout.clone();

    // Two orders left pending (the processor errored).
    let h1 = hold_seats(&app, &alice, e, "h1", &[seats[0]]).await;
    let h2 = hold_seats(&app, &alice, e, "h2", &[seats[1], seats[2]]).await;
    let (_, _, o1) = order(&app, &alice, "o1", &h1, "pm_card_flaky").await;
    let (_, _, o2) = order(&app, &alice, "o2", &h2, "pm_card_flaky").await;
    assert_eq!(
        (o1["state"].as_str(), o2["state"].as_str()),
        (Some("pending_payment"), Some("pending_payment"))
    );
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    // Bob takes one of the second order's seats once the hold has lapsed.
    hold_seats(&app, &bob, e, "b1", &[seats[2]]).await;

    let mut rounds = 0;
    while reconcile::run_once(&checkout, &app.pool, 10).await.unwrap() > 0 && rounds < 5 {
        rounds += 1;
        tokio::time::sleep(Duration::from_millis(1_100)).await;
    }
    let (id1, id2) = (o1["order_id"].as_str().unwrap(), o2["order_id"].as_str().unwrap());
    let o1 = get_order(&app, &alice, id1).await;
    assert_eq!(o1["state"], "confirmed", "seat still free: sold after all");
    let o2 = until_state(&app, &alice, id2, "refunded", Duration::from_secs(5)).await;
    assert_eq!(o2["refund_reason"], "seats_no_longer_available");
    assert_eq!(outbox_topics(&app, id2).await, vec!["hold.expired", "refund.issued"]);

    let sandbox = app.sandbox.as_ref().unwrap();
    let refunded = &sandbox.intents_for(id2).await[0];
    assert_eq!(
        refunded["amount_refunded_cents"], refunded["amount_cents"],
        "all of it back"
    );
    assert_eq!(valid_tickets(&app, e).await, vec![(seats[0], "alice".into())]);
    // Bob's hold on the seat is untouched, and seat 1 (freed by the refund
    // path's rollback) is on sale again.
    hold_seats(&app, &bob, e, "b2", &[seats[1]]).await;
    app.finish().await;
}

/// Forty fans race for eight seats through the whole checkout, each hold
/// ordered twice at once (a double-clicked "Pay"); then every seat has at
/// most one ticket, every ticket's order was charged once, and no charge is
/// left without its tickets.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forty_fans_race_through_checkout_for_eight_seats() {
    let app = std::sync::Arc::new(
        TestApp::start_with(Options {
            sandbox: true,
            pool_size: 16,
            ..Options::default()
        })
        .await,
    );
    let v = venue(&app.pool, &small_chart("race", &["A"], 1, 8)).await;
    let e = event(&app.pool, "race", "race", rules(4)).await;
    let seats = seat_ids(&app.pool, v).await;
    let mut tasks = Vec::new();
    for fan in 0..40 {
        let app = app.clone();
        let seats = seats.clone();
        tasks.push(tokio::spawn(async move {
            let token = app.sign_in(&format!("fan{fan}")).await;
            // Two overlapping seats each, so most requests collide.
            let pick = [seats[fan % 8], seats[(fan + 1) % 8]];
            let (s, h) = app
                .hold(&token, e, &format!("h{fan}"), &json!({"seat_ids": pick}))
                .await;
            if s != StatusCode::CREATED {
                return 0;
            }
            let hold = h["hold_id"].as_str().unwrap().to_string();
            let (ka, kb) = (format!("o{fan}a"), format!("o{fan}b"));
            // Each fan's own card: one card shares the limit per fan.
            let card = format!("pm_card_ok_fan{fan}");
            let (a, b) = tokio::join!(
                order(&app, &token, &ka, &hold, &card),
                order(&app, &token, &kb, &hold, &card),
            );
            let confirmed = [&a, &b].iter().filter(|(_, _, o)| o["state"] == "confirmed").count();
            let conflicts = [&a, &b]
                .iter()
                .filter(|(s, _, o)| *s == StatusCode::CONFLICT && o["code"] == "hold_already_ordered")
                .count();
            assert_eq!(confirmed + conflicts, 2, "one order per hold: {a:?} {b:?}");
            assert_eq!(confirmed, 1);
            1
        }));
    }
    let mut bought = 0;
    for t in tasks {
        bought += t.await.unwrap();
    }
    // Every neighbouring pair was tried, so the pairs sold block all the
    // others: on a ring of eight that is at least three.
    assert!(bought >= 3, "got {bought}");
    let tickets = valid_tickets(&app, e).await;
    assert_eq!(tickets.len(), bought * 2);
    let mut seen = std::collections::HashSet::new();
    assert!(
        tickets.iter().all(|(seat, _)| seen.insert(*seat)),
        "a seat with two tickets"
    );
    let sandbox = app.sandbox.as_ref().unwrap();
    let orders: Vec<(uuid::Uuid, String)> = sqlx::query_as("SELECT id, state FROM orders")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(orders.len(), bought);
    for (id, state) in orders {
        assert_eq!(state, "confirmed");
        assert_eq!(sandbox.intents_for(&id.to_string()).await.len(), 1);
    }
    assert_eq!(sandbox.stats().await["succeeded"], bought);
    std::sync::Arc::into_inner(app).unwrap().finish().await;
}

/// Four reconciliation passes at once over twenty stuck orders: every order
/// ends confirmed, each charged once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reconciliation_is_safe_alongside_itself() {
    let app = TestApp::start_with(Options {
        sandbox: true,
        reconcile: false,
        reconcile_after_secs: 0,
        pool_size: 16,
        ..Options::default()
    })
    .await;
    let v = venue(&app.pool, &small_chart("rc", &["A"], 2, 10)).await;
    let e = event(&app.pool, "rc", "rc", rules(1)).await;
    let seats = seat_ids(&app.pool, v).await;
    let mut ids = Vec::new();
    for (i, seat) in seats.iter().enumerate() {
        let fan = app.sign_in(&format!("fan{i}")).await;
        let hold = hold_seats(&app, &fan, e, "h", &[*seat]).await;
        let (_, _, o) = order(&app, &fan, "o", &hold, &format!("pm_card_flaky_fan{i}")).await;
        assert_eq!(o["state"], "pending_payment");
        ids.push(o["order_id"].as_str().unwrap().to_string());
    }
    let checkout = app.running.state.checkout.clone();
    let passes: Vec<_> = (0..4)
        .map(|_| {
            let (checkout, pool) = (checkout.clone(), app.pool.clone());
            tokio::spawn(async move {
                for _ in 0..3 {
                    reconcile::run_once(&checkout, &pool, 5).await.unwrap();
                }
            })
        })
        .collect();
    for p in passes {
        p.await.unwrap();
    }
    let states: Vec<String> = sqlx::query_scalar("SELECT state FROM orders")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(states.len(), 20);
    assert!(states.iter().all(|s| s == "confirmed"), "{states:?}");
    let sandbox = app.sandbox.as_ref().unwrap();
    for id in &ids {
        let intents = sandbox.intents_for(id).await;
        assert_eq!(intents.len(), 1, "order {id}: {intents:?}");
    }
    assert_eq!(valid_tickets(&app, e).await.len(), 20);
    app.finish().await;
}
