//! A payment that succeeds late (issue 23): the fan finishes 3-D Secure
//! after we stopped waiting, or the success comes for an order that was
//! declined meanwhile, or already confirmed, or a second charge appears for
//! one order. Through the real payment sandbox (a separate process; its
//! `pm_card_requires_action` card waits for the fan's answer, which the
//! test gives), real PostgreSQL and the real service, with the success
//! delivered several times at once (the sandbox's webhook, redeliveries
//! under the same and other event ids) while reconciliation runs. Every
//! time: tickets once, or all the money back once; never both, never twice.

use std::time::Duration;

use crate::common::*;
use booking_core::catalog::EventRules;
use booking_core::checkout::reconcile;
use booking_core::ids::{EventId, OrderId};
use booking_core::signature;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn options() -> Options {
    Options {
        sandbox: true,
        reconcile: false,
        reconcile_after_secs: 0,
        pool_size: 16,
        ..Options::default()
    }
}

async fn hold_seats(app: &TestApp, token: &str, e: EventId, key: &str, seats: &[i64]) -> String {
    let (s, h) = app.hold(token, e, key, &json!({"seat_ids": seats})).await;
    assert_eq!(s, StatusCode::CREATED, "{h}");
    h["hold_id"].as_str().unwrap().to_string()
}

async fn order(app: &TestApp, token: &str, key: &str, hold: &str, pm: &str) -> (StatusCode, Value) {
    let r = app
        .http
        .post(app.url("/v1/orders"))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(&json!({"hold_id": hold, "payment_method": pm}))
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
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

async fn until_state(app: &TestApp, token: &str, id: &str, want: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let o = get_order(app, token, id).await;
        if o["state"] == want {
            return o;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "order {id} stuck in {} (want {want}): {o}",
            o["state"]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn valid_tickets(app: &TestApp, e: EventId) -> Vec<(i64, String)> {
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

fn sandbox(app: &TestApp) -> &Sandbox {
    app.sandbox.as_ref().unwrap()
}

/// The order's one intent at the sandbox.
async fn intent_of(app: &TestApp, order: &str) -> Value {
    let intents = sandbox(app).intents_for(order).await;
    assert_eq!(intents.len(), 1, "one charge per order: {intents:?}");
    intents[0].clone()
}

/// The fan's answer to the 3-D Secure challenge (`succeed` or `fail`); the
/// sandbox sends its webhook. Returns the intent as it is now.
async fn authenticate(app: &TestApp, intent: &str, outcome: &str) -> Value {
    let r = reqwest::Client::new()
        .post(format!(
            "{}/sandbox/payment_intents/{intent}/{outcome}",
            sandbox(app).base
        ))
        .bearer_auth(SANDBOX_API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

/// Delivers a signed `payment_intent.succeeded` for `intent` under
/// `event_id`, as the sandbox (or a redelivery of it) would.
async fn deliver_success(app: &TestApp, event_id: &str, intent: &Value) {
    let now = chrono::Utc::now().timestamp();
    let body = json!({"id": event_id, "type": "payment_intent.succeeded", "created": now,
                      "data": {"object": intent}})
    .to_string();
    let r = app
        .http
        .post(app.url("/v1/payments/webhooks/sandbox"))
        .header("content-type", "application/json")
        .header(
            "sandbox-signature",
            signature::sign(body.as_bytes(), SANDBOX_WEBHOOK_SECRET.as_bytes(), now),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{:?}", r.text().await);
}

/// The success delivered three times at once (twice under one event id,
/// once under another) while reconciliation runs and drives the order.
async fn storm(app: &TestApp, order: &str, intent: &Value) {
    let checkout = app.running.state.checkout.clone();
    let id = OrderId(order.parse().unwrap());
    let (_, _, _, reconciled, driven) = tokio::join!(
        deliver_success(app, "evt_redelivered", intent),
        deliver_success(app, "evt_redelivered", intent),
        deliver_success(app, "evt_other", intent),
        reconcile::run_once(&checkout, &app.pool, 10),
        checkout.drive(id),
    );
    reconciled.unwrap();
    driven.unwrap();
}

/// Waits until the sandbox has delivered `n` webhooks (they are acted on
/// before they are acknowledged).
async fn until_delivered(app: &TestApp, n: i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while sandbox(app).stats().await["webhooks_delivered"].as_i64().unwrap() < n {
        assert!(tokio::time::Instant::now() < deadline, "{}", sandbox(app).stats().await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn stray_charges(app: &TestApp) -> Vec<(String, String, i64, String)> {
    sqlx::query_as("SELECT intent_id, state, amount_cents, reason FROM stray_charges ORDER BY created_at")
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_charge_awaiting_3d_secure_keeps_its_hold_and_sells_once_when_the_fan_authenticates() {
    let app = TestApp::start_with(options()).await;
    let v = venue(&app.pool, &small_chart("tds", &["A"], 1, 4)).await;
    let e = event(&app.pool, "tds", "tds", rules(4)).await;
    let seats = seat_ids(&app.pool, v).await;
    let alice = app.sign_in("alice").await;
    let hold = hold_seats(&app, &alice, e, "h", &[seats[0], seats[1]]).await;

    let (s, o) = order(&app, &alice, "o", &hold, "pm_card_requires_action").await;
    assert_eq!(
        (s, o["state"].as_str()),
        (StatusCode::ACCEPTED, Some("pending_payment")),
        "{o}"
    );
    let id = o["order_id"].as_str().unwrap().to_string();
    // Reconciliation asks while the fan is authenticating: still pending,
    // the hold kept, and no second charge.
    let checkout = app.running.state.checkout.clone();
    reconcile::run_once(&checkout, &app.pool, 10).await.unwrap();
    assert_eq!(get_order(&app, &alice, &id).await["state"], "pending_payment");
    assert_eq!(live_claims(&app.pool, e).await.len(), 2, "the hold is kept");
    let intent = intent_of(&app, &id).await;
    assert_eq!(intent["status"], "requires_action");

    let intent = authenticate(&app, intent["id"].as_str().unwrap(), "succeed").await;
    storm(&app, &id, &intent).await;
    until_delivered(&app, 1).await;

    let o = until_state(&app, &alice, &id, "confirmed").await;
    assert_eq!(o["tickets"].as_array().unwrap().len(), 2);
    assert_eq!(
        valid_tickets(&app, e).await,
        vec![(seats[0], "alice".into()), (seats[1], "alice".into())]
    );
    assert_eq!(outbox_topics(&app, &id).await, ["order.confirmed"]);
    let stats = sandbox(&app).stats().await;
    assert_eq!(
        (stats["intents"].as_i64(), stats["refunds"].as_i64()),
        (Some(1), Some(0)),
        "{stats}"
    );
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_late_success_for_a_declined_order_sells_its_seats_if_its_hold_is_still_free() {
    let app = TestApp::start_with(options()).await;
    let v = venue(&app.pool, &small_chart("rev", &["A"], 1, 4)).await;
    let e = event(&app.pool, "rev", "rev", rules(4)).await;
    let seats = seat_ids(&app.pool, v).await;
    let alice = app.sign_in("alice").await;
    let hold = hold_seats(&app, &alice, e, "h", &[seats[0], seats[1]]).await;
    let (_, o) = order(&app, &alice, "o", &hold, "pm_card_requires_action").await;
    let id = o["order_id"].as_str().unwrap().to_string();

    // The first challenge fails (the webhook says so), then the fan tries
    // again on the same intent and it succeeds.
    let intent = intent_of(&app, &id).await;
    authenticate(&app, intent["id"].as_str().unwrap(), "fail").await;
    let failed = until_state(&app, &alice, &id, "payment_failed").await;
    assert_eq!(failed["failure_code"], "authentication_failed");
    let intent = authenticate(&app, intent["id"].as_str().unwrap(), "succeed").await;
    storm(&app, &id, &intent).await;
    until_delivered(&app, 2).await;

    let o = until_state(&app, &alice, &id, "confirmed").await;
    assert_eq!(o["failure_code"], Value::Null, "{o}");
    assert_eq!(
        valid_tickets(&app, e).await,
        vec![(seats[0], "alice".into()), (seats[1], "alice".into())]
    );
    assert_eq!(outbox_topics(&app, &id).await, ["payment.failed", "order.confirmed"]);
    assert_eq!(sandbox(&app).stats().await["refunds"], 0);
    assert!(stray_charges(&app).await.is_empty());
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_late_success_for_a_declined_order_whose_hold_was_bought_again_is_refunded_once() {
    let app = TestApp::start_with(options()).await;
    let v = venue(&app.pool, &small_chart("ref", &["A"], 1, 4)).await;
    let e = event(&app.pool, "ref", "ref", rules(4)).await;
    let seats = seat_ids(&app.pool, v).await;
    let alice = app.sign_in("alice").await;
    let hold = hold_seats(&app, &alice, e, "h", &[seats[0], seats[1]]).await;
    let (_, first) = order(&app, &alice, "o1", &hold, "pm_card_requires_action").await;
    let first = first["order_id"].as_str().unwrap().to_string();
    let intent = intent_of(&app, &first).await;
    authenticate(&app, intent["id"].as_str().unwrap(), "fail").await;
    until_state(&app, &alice, &first, "payment_failed").await;
    // The fan pays for the hold with another card...
    let (s, second) = order(&app, &alice, "o2", &hold, "pm_card_ok").await;
    assert_eq!(second["state"], "confirmed", "{s}: {second}");
    let second = second["order_id"].as_str().unwrap().to_string();

    // ...and then the first card's challenge succeeds after all.
    let intent = authenticate(&app, intent["id"].as_str().unwrap(), "succeed").await;
    storm(&app, &first, &intent).await;
    until_delivered(&app, 3).await;
    reconcile::run_once(&app.running.state.checkout, &app.pool, 10)
        .await
        .unwrap();

    // The first charge is given back in full, once; the second order's
    // tickets stand; nobody holds two sets.
    let charged = intent_of(&app, &first).await;
    assert_eq!(charged["status"], "succeeded");
    assert_eq!(
        charged["amount_refunded_cents"], charged["amount_cents"],
        "all of it back"
    );
    assert_eq!(sandbox(&app).stats().await["refunds"], 1, "exactly one refund");
    assert_eq!(
        stray_charges(&app).await,
        vec![(
            charged["id"].as_str().unwrap().to_string(),
            "succeeded".into(),
            6000,
            "bought_by_another_order".into()
        )]
    );
    assert_eq!(get_order(&app, &alice, &first).await["state"], "payment_failed");
    assert_eq!(outbox_topics(&app, &first).await, ["payment.failed", "refund.issued"]);
    assert_eq!(get_order(&app, &alice, &second).await["state"], "confirmed");
    assert_eq!(outbox_topics(&app, &second).await, ["order.confirmed"]);
    assert_eq!(
        valid_tickets(&app, e).await,
        vec![(seats[0], "alice".into()), (seats[1], "alice".into())]
    );
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_late_success_for_a_confirmed_order_issues_nothing_twice_and_a_second_charge_is_refunded() {
    let app = TestApp::start_with(options()).await;
    let v = venue(&app.pool, &small_chart("dup", &["A"], 1, 4)).await;
    let e = event(&app.pool, "dup", "dup", rules(4)).await;
    let seats = seat_ids(&app.pool, v).await;
    let alice = app.sign_in("alice").await;
    let hold = hold_seats(&app, &alice, e, "h", &[seats[0], seats[1]]).await;
    let (_, o) = order(&app, &alice, "o", &hold, "pm_card_no_webhook").await;
    assert_eq!(o["state"], "confirmed", "{o}");
    let id = o["order_id"].as_str().unwrap().to_string();

    // Its own success again, late and repeatedly: nothing changes.
    let intent = intent_of(&app, &id).await;
    storm(&app, &id, &intent).await;
    assert_eq!(valid_tickets(&app, e).await.len(), 2);
    assert_eq!(outbox_topics(&app, &id).await, ["order.confirmed"]);

    // A second charge for the same order (made outside its key): refunded
    // in full, once, whether the sandbox's webhook or a redelivery is first.
    let r = reqwest::Client::new()
        .post(format!("{}/v1/payment_intents", sandbox(&app).base))
        .bearer_auth(SANDBOX_API_KEY)
        .header("idempotency-key", "another-key")
        .json(
            &json!({"amount_cents": 6000, "currency": "usd", "payment_method": "pm_card_ok",
                      "metadata": {"order_id": id}}),
        )
        .send()
        .await
        .unwrap();
    let extra: Value = r.json().await.unwrap();
    storm(&app, &id, &extra).await;
    until_delivered(&app, 1).await;

    let intents = sandbox(&app).intents_for(&id).await;
    assert_eq!(intents.len(), 2);
    for i in &intents {
        let refunded = if i["id"] == extra["id"] { 6000 } else { 0 };
        assert_eq!(i["amount_refunded_cents"], refunded, "{i}");
    }
    assert_eq!(sandbox(&app).stats().await["refunds"], 1);
    assert_eq!(get_order(&app, &alice, &id).await["state"], "confirmed");
    assert_eq!(valid_tickets(&app, e).await.len(), 2, "no second set of tickets");
    assert_eq!(outbox_topics(&app, &id).await, ["order.confirmed", "refund.issued"]);
    app.finish().await;
}

/// The hold lapses while the fan authenticates (the payment deadline, here
/// a second, passed before anything gave up on the order) and another fan
/// buys a seat: the late success cannot have the seats, so it is refunded.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_success_after_the_hold_lapsed_and_a_seat_was_sold_is_refunded_once() {
    let app = TestApp::start_with_config(options(), |c| c.checkout.max_payment_wait_secs = 1).await;
    let v = venue(&app.pool, &small_chart("lap", &["A"], 1, 4)).await;
    let e = event(
        &app.pool,
        "lap",
        "lap",
        EventRules {
            hold_ttl_secs: 1,
            hold_jitter_secs: 0,
            max_seats_per_fan: 4,
            protected: false,
        },
    )
    .await;
    let seats = seat_ids(&app.pool, v).await;
    let alice = app.sign_in("alice").await;
    let bob = app.sign_in("bob").await;
    let hold = hold_seats(&app, &alice, e, "h", &[seats[0], seats[1]]).await;
    let (_, o) = order(&app, &alice, "o", &hold, "pm_card_requires_action").await;
    let id = o["order_id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let bobs = hold_seats(&app, &bob, e, "b", &[seats[1]]).await;
    let (_, b) = order(&app, &bob, "bo", &bobs, "pm_card_ok_bob").await;
    assert_eq!(b["state"], "confirmed", "{b}");

    let intent = intent_of(&app, &id).await;
    let intent = authenticate(&app, intent["id"].as_str().unwrap(), "succeed").await;
    storm(&app, &id, &intent).await;
    until_delivered(&app, 2).await;

    let o = until_state(&app, &alice, &id, "refunded").await;
    assert_eq!(o["refund_reason"], "seats_no_longer_available");
    let charged = intent_of(&app, &id).await;
    assert_eq!(charged["amount_refunded_cents"], charged["amount_cents"]);
    assert_eq!(sandbox(&app).stats().await["refunds"], 1);
    assert_eq!(valid_tickets(&app, e).await, vec![(seats[1], "bob".into())]);
    app.finish().await;
}
