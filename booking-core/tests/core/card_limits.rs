//! The limit per fan across accounts that pay with one card, through the
//! real payment sandbox (its card fingerprints), PostgreSQL and HTTP: a
//! second account on the same card is refused past the limit and keeps its
//! hold; other cards are not counted; failed payments do not count, pending
//! and refunded ones do; accounts racing on one card never pass the limit
//! together; retries of a finished order are answered, not checked again.

use std::time::Duration;

use crate::common::*;
use booking_core::catalog::EventRules;
use booking_core::checkout::reconcile;
use booking_core::ids::EventId;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn with_sandbox() -> Options {
    Options {
        sandbox: true,
        ..Options::default()
    }
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

async fn hold_seats(app: &TestApp, token: &str, e: EventId, key: &str, seats: &[i64]) -> String {
    let (s, h) = app.hold(token, e, key, &json!({"seat_ids": seats})).await;
    assert_eq!(s, StatusCode::CREATED, "{h}");
    h["hold_id"].as_str().unwrap().to_string()
}

async fn hold_state(app: &TestApp, token: &str, hold: &str) -> String {
    let r = app
        .http
        .get(app.url(&format!("/v1/holds/{hold}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json::<Value>().await.unwrap()["state"].as_str().unwrap().to_string()
}

/// The sandbox's answer for a payment method.
async fn payment_method(app: &TestApp, pm: &str, key: &str) -> (StatusCode, Value) {
    let sandbox = app.sandbox.as_ref().unwrap();
    let r = app
        .http
        .get(format!("{}/v1/payment_methods/{pm}", sandbox.base))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn fingerprint_of(app: &TestApp, pm: &str) -> String {
    let (s, body) = payment_method(app, pm, SANDBOX_API_KEY).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    body["card"]["fingerprint"].as_str().unwrap().to_string()
}

/// Seats of the event's orders that count against a card: every state but
/// a failed payment.
async fn seats_on_card(app: &TestApp, e: EventId, card: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT coalesce(sum(cardinality(seat_ids)), 0)::bigint FROM orders
         WHERE event_id = $1 AND card_fingerprint = $2 AND state <> 'payment_failed'",
    )
    .bind(e.0)
    .bind(card)
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn the_sandbox_gives_each_card_a_fingerprint() {
    let app = TestApp::start_with(with_sandbox()).await;
    let (s, alice) = payment_method(&app, "pm_card_ok_alice", SANDBOX_API_KEY).await;
    assert_eq!(s, StatusCode::OK, "{alice}");
    assert_eq!(alice["id"], "pm_card_ok_alice");
    assert_eq!(alice["card"]["brand"], "visa");
    let last4 = alice["card"]["last4"].as_str().unwrap();
    assert!(last4.len() == 4 && last4.bytes().all(|b| b.is_ascii_digit()), "{last4}");
    let fp = alice["card"]["fingerprint"].as_str().unwrap();
    assert_eq!(fp.len(), 16);

    // Stable; the suffix names the card whatever its behaviour.
    assert_eq!(fingerprint_of(&app, "pm_card_ok_alice").await, fp);
    assert_eq!(fingerprint_of(&app, "pm_card_declined_alice").await, fp);
    assert_eq!(fingerprint_of(&app, "pm_card_webhook_late_alice").await, fp);
    let (_, again) = payment_method(&app, "pm_card_declined_alice", SANDBOX_API_KEY).await;
    assert_eq!(again["card"]["last4"], last4);
    // Other names, and each bare test card, are cards of their own.
    let others = [
        fingerprint_of(&app, "pm_card_ok_bob").await,
        fingerprint_of(&app, "pm_card_ok").await,
        fingerprint_of(&app, "pm_card_declined").await,
        fingerprint_of(&app, "pm_card_ok_pm_card_ok").await,
    ];
    let mut all: Vec<&str> = others.iter().map(String::as_str).collect();
    all.push(fp);
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 5, "{others:?} {fp}");

    // Unknown tokens get the sandbox's usual refusal; the API key is required.
    for unknown in ["pm_card_nope", "pm_card_ok_", "pm_card_okay", "card_ok"] {
        let (s, body) = payment_method(&app, unknown, SANDBOX_API_KEY).await;
        assert_eq!(
            (s, body["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_payment_method")),
            "{unknown}"
        );
    }
    let (s, _) = payment_method(&app, "pm_card_ok_alice", "sk_wrong").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    app.finish().await;
}

#[tokio::test]
async fn a_second_account_on_the_same_card_is_refused_past_the_limit_and_keeps_its_hold() {
    let app = TestApp::start_with(with_sandbox()).await;
    let v = venue(&app.pool, &small_chart("card", &["A"], 1, 10)).await;
    let e = event(&app.pool, "card", "card", rules(4)).await;
    let seats = seat_ids(&app.pool, v).await;
    let (alice, bob, carol) = (
        app.sign_in("alice").await,
        app.sign_in("bob").await,
        app.sign_in("carol").await,
    );

    let ha = hold_seats(&app, &alice, e, "h", &seats[0..3]).await;
    let (s, a) = order(&app, &alice, "o", &ha, "pm_card_ok_shared").await;
    assert_eq!(
        (s, a["state"].as_str()),
        (StatusCode::CREATED, Some("confirmed")),
        "{a}"
    );
    let card = fingerprint_of(&app, "pm_card_ok_shared").await;
    let stored: Option<String> = sqlx::query_scalar("SELECT card_fingerprint FROM orders WHERE id = $1::uuid")
        .bind(a["order_id"].as_str().unwrap())
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored.as_deref(), Some(card.as_str()), "the order keeps its card");

    // Bob, another account, pays with the same card: 3 + 2 > 4.
    let hb = hold_seats(&app, &bob, e, "h", &seats[3..5]).await;
    let (s, p) = order(&app, &bob, "o", &hb, "pm_card_ok_shared").await;
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::CONFLICT, Some("card_limit_reached")),
        "{p}"
    );
    assert_eq!((p["limit"].as_i64(), p["already"].as_i64()), (Some(4), Some(3)));
    assert_eq!(p["type"], "https://usher.dev/problems/card_limit_reached");
    // Nothing was made or charged for him, and his seats stay held.
    let bobs: i64 = sqlx::query_scalar("SELECT count(*) FROM orders WHERE fan_id = 'bob'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(bobs, 0);
    assert_eq!(app.sandbox.as_ref().unwrap().stats().await["intents"], 1);
    assert_eq!(hold_state(&app, &bob, &hb).await, "active");
    let held: Vec<i64> = live_claims(&app.pool, e)
        .await
        .into_iter()
        .filter(|(_, h)| h.to_string() == hb)
        .map(|(s, _)| s)
        .collect();
    assert_eq!(held, seats[3..5]);

    // Within the limit the shared card still pays (3 + 1 = 4)...
    let hc = hold_seats(&app, &carol, e, "h", &seats[5..6]).await;
    let (s, c) = order(&app, &carol, "o", &hc, "pm_card_ok_shared").await;
    assert_eq!(
        (s, c["state"].as_str()),
        (StatusCode::CREATED, Some("confirmed")),
        "{c}"
    );
    // ...and Bob, with a card of his own, buys the hold the refusal left him.
    let (s, b) = order(&app, &bob, "o2", &hb, "pm_card_ok_bob").await;
    assert_eq!(
        (s, b["state"].as_str()),
        (StatusCode::CREATED, Some("confirmed")),
        "{b}"
    );
    assert_eq!(seats_on_card(&app, e, &card).await, 4);

    // Alice's finished order, asked for again with its key, is answered as
    // before: the card (now at its limit, her own seats among them) is not
    // checked again.
    let r = app
        .http
        .post(app.url("/v1/orders"))
        .bearer_auth(&alice)
        .header("idempotency-key", "o")
        .json(&json!({"hold_id": ha, "payment_method": "pm_card_ok_shared"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["idempotent-replayed"], "true");
    let again: Value = r.json().await.unwrap();
    assert_eq!((&again["order_id"], &again["state"]), (&a["order_id"], &a["state"]));

    // Two bare test cards are two cards: each may buy the limit.
    let e2 = event(&app.pool, "card2", "card", rules(4)).await;
    let h1 = hold_seats(&app, &alice, e2, "h1", &seats[0..4]).await;
    let h2 = hold_seats(&app, &bob, e2, "h2", &seats[4..8]).await;
    let (s1, o1) = order(&app, &alice, "e2o1", &h1, "pm_card_ok").await;
    let (s2, o2) = order(&app, &bob, "e2o2", &h2, "pm_card_slow").await;
    assert_eq!(
        (s1, o1["state"].as_str()),
        (StatusCode::CREATED, Some("confirmed")),
        "{o1}"
    );
    assert_eq!(
        (s2, o2["state"].as_str()),
        (StatusCode::CREATED, Some("confirmed")),
        "{o2}"
    );
    app.finish().await;
}

#[tokio::test]
async fn declined_payments_do_not_count_but_pending_and_refunded_ones_do() {
    let app = TestApp::start_with(Options {
        sandbox: true,
        reconcile: false,
        reconcile_after_secs: 0,
        ..Options::default()
    })
    .await;
    let v = venue(&app.pool, &small_chart("dc", &["A"], 1, 10)).await;
    let seats = seat_ids(&app.pool, v).await;
    let (alice, bob, carol) = (
        app.sign_in("alice").await,
        app.sign_in("bob").await,
        app.sign_in("carol").await,
    );

    // A decline on the card leaves all of the limit to the next account.
    let e = event(&app.pool, "dec", "dc", rules(4)).await;
    let card = fingerprint_of(&app, "pm_card_ok_x").await;
    let ha = hold_seats(&app, &alice, e, "h", &seats[0..4]).await;
    let (s, a) = order(&app, &alice, "o1", &ha, "pm_card_declined_x").await;
    assert_eq!(
        (s, a["state"].as_str()),
        (StatusCode::CREATED, Some("payment_failed")),
        "{a}"
    );
    let hb = hold_seats(&app, &bob, e, "h", &seats[4..8]).await;
    let (s, b) = order(&app, &bob, "o1", &hb, "pm_card_ok_x").await;
    assert_eq!(
        (s, b["state"].as_str()),
        (StatusCode::CREATED, Some("confirmed")),
        "{b}"
    );
    // Alice tries the same card again (it is the same card: its decline
    // was counted as nothing, its sale to Bob is counted).
    let (s, p) = order(&app, &alice, "o2", &ha, "pm_card_ok_x").await;
    assert_eq!(
        (s, p["code"].as_str(), p["already"].as_i64()),
        (StatusCode::CONFLICT, Some("card_limit_reached"), Some(4)),
        "{p}"
    );
    assert_eq!(hold_state(&app, &alice, &ha).await, "active");
    assert_eq!(seats_on_card(&app, e, &card).await, 4);

    // A payment not yet answered counts, and so does one refunded because
    // its seats were gone when the money came.
    let short = EventRules {
        hold_ttl_secs: 1,
        hold_jitter_secs: 0,
        max_seats_per_fan: 4,
        protected: false,
    };
    let e = event(&app.pool, "pend", "dc", short).await;
    let ha = hold_seats(&app, &alice, e, "h2", &seats[0..2]).await;
    let (s, a) = order(&app, &alice, "p1", &ha, "pm_card_flaky_y").await;
    assert_eq!(
        (s, a["state"].as_str()),
        (StatusCode::ACCEPTED, Some("pending_payment")),
        "{a}"
    );
    // Later holds last long enough to be ordered from.
    sqlx::query("UPDATE events SET hold_ttl_secs = 300 WHERE id = $1")
        .bind(e.0)
        .execute(&app.pool)
        .await
        .unwrap();
    let hb = hold_seats(&app, &bob, e, "h2", &seats[2..5]).await;
    let (s, p) = order(&app, &bob, "p1", &hb, "pm_card_ok_y").await;
    assert_eq!(
        (s, p["code"].as_str(), p["already"].as_i64()),
        (StatusCode::CONFLICT, Some("card_limit_reached"), Some(2)),
        "pending counts: {p}"
    );
    // Alice's hold lapses, Carol takes one of its seats, and the late
    // payment is refunded.
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    hold_seats(&app, &carol, e, "h", &seats[1..2]).await;
    let checkout = app.running.state.checkout.clone();
    let alices = a["order_id"].as_str().unwrap().to_string();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        reconcile::run_once(&checkout, &app.pool, 10).await.unwrap();
        let state: String = sqlx::query_scalar("SELECT state FROM orders WHERE id = $1::uuid")
            .bind(&alices)
            .fetch_one(&app.pool)
            .await
            .unwrap();
        if state == "refunded" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "order stuck in {state}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (s, p) = order(&app, &bob, "p2", &hb, "pm_card_ok_y").await;
    assert_eq!(
        (s, p["code"].as_str(), p["already"].as_i64()),
        (StatusCode::CONFLICT, Some("card_limit_reached"), Some(2)),
        "refunded counts: {p}"
    );
    let (s, b) = order(&app, &bob, "p3", &hb, "pm_card_ok_bob").await;
    assert_eq!(
        (s, b["state"].as_str()),
        (StatusCode::CREATED, Some("confirmed")),
        "{b}"
    );
    app.finish().await;
}

/// Several accounts with one card order at once, round after round: the
/// seats sold on the card never pass the limit, and every refusal leaves
/// its hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn accounts_racing_on_one_card_never_pass_the_limit_together() {
    let app = std::sync::Arc::new(
        TestApp::start_with(Options {
            sandbox: true,
            pool_size: 16,
            ..Options::default()
        })
        .await,
    );
    let v = venue(&app.pool, &small_chart("race", &["A"], 1, 12)).await;
    let seats = seat_ids(&app.pool, v).await;
    for round in 0..3 {
        let e = event(&app.pool, &format!("race{round}"), "race", rules(8)).await;
        let pm = format!("pm_card_ok_race{round}");
        let mut holds = Vec::new();
        for fan in 0..4 {
            let token = app.sign_in(&format!("fan{fan}")).await;
            let hold = hold_seats(&app, &token, e, &format!("h{round}"), &seats[fan * 3..fan * 3 + 3]).await;
            holds.push((token, hold));
        }
        let tasks: Vec<_> = holds
            .into_iter()
            .map(|(token, hold)| {
                let (app, pm) = (app.clone(), pm.clone());
                tokio::spawn(async move {
                    let (s, body) = order(&app, &token, &format!("o{round}"), &hold, &pm).await;
                    (s, body, token, hold)
                })
            })
            .collect();
        let mut confirmed = 0;
        for t in tasks {
            let (s, body, token, hold) = t.await.unwrap();
            match s {
                StatusCode::CREATED => {
                    assert_eq!(body["state"], "confirmed", "{body}");
                    confirmed += 1;
                }
                StatusCode::CONFLICT => {
                    assert_eq!(body["code"], "card_limit_reached", "{body}");
                    assert_eq!(body["limit"], 8);
                    assert!(body["already"].as_i64().unwrap() >= 6, "{body}");
                    assert_eq!(hold_state(&app, &token, &hold).await, "active");
                }
                other => panic!("{other}: {body}"),
            }
        }
        // Two orders of three fit under eight; a third would not.
        assert_eq!(confirmed, 2, "round {round}");
        let card = fingerprint_of(&app, &pm).await;
        assert_eq!(seats_on_card(&app, e, &card).await, 6, "round {round}");
        let tickets: i64 = sqlx::query_scalar("SELECT count(*) FROM tickets WHERE event_id = $1 AND state = 'valid'")
            .bind(e.0)
            .fetch_one(&app.pool)
            .await
            .unwrap();
        assert_eq!(tickets, 6, "round {round}");
    }
    std::sync::Arc::into_inner(app).unwrap().finish().await;
}

/// If the provider cannot say which card it is, nothing is made: the fan
/// is told to try again, and keeps the hold.
#[tokio::test]
async fn no_order_is_made_while_the_card_cannot_be_looked_up() {
    let nobody = format!("http://127.0.0.1:{}", free_port());
    let app = TestApp::start_with_config(
        Options {
            payments_timeout_ms: 1_000,
            ..Options::default()
        },
        |c| c.payments.base_url = usher_shared::config::HttpUrl::parse(nobody).unwrap(),
    )
    .await;
    let v = venue(&app.pool, &small_chart("down", &["A"], 1, 4)).await;
    let e = event(&app.pool, "down", "down", rules(4)).await;
    let seats = seat_ids(&app.pool, v).await;
    let alice = app.sign_in("alice").await;
    let h = hold_seats(&app, &alice, e, "h", &seats[0..2]).await;
    let r = app
        .http
        .post(app.url("/v1/orders"))
        .bearer_auth(&alice)
        .header("idempotency-key", "o")
        .json(&json!({"hold_id": h, "payment_method": "pm_card_ok"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.headers().contains_key("retry-after"));
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["code"], "service_unavailable");
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(orders, 0);
    assert_eq!(hold_state(&app, &alice, &h).await, "active");
    app.finish().await;
}
