//! Disputes (chargebacks) over real HTTP with the payment sandbox: the
//! sandbox opens a dispute on a succeeded charge and closes it won or lost,
//! sending signed `charge.dispute.*` webhooks. By the event's policy the
//! order's tickets are voided when the dispute opens or only if it is lost;
//! a voided ticket is refused at the gate and its seat cannot be held while
//! the dispute is open; won restores the tickets, lost returns the seats by
//! the refund policy; the operator sees each dispute in the portal and is
//! told once per state through the outbox. Webhooks delivered twice, out of
//! order, concurrently, or for a charge the core never knew all converge.

use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use booking_core::ids::EventId;
use booking_core::portal::Role;
use booking_core::portal::auth;
use booking_core::signature;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn with_sandbox() -> Options {
    Options {
        sandbox: true,
        ..Options::default()
    }
}

/// An event of a fresh organisation, an editor of it, and its seats.
async fn setup(app: &TestApp, slug: &str, seats: usize) -> (EventId, String, Vec<i64>) {
    let v = venue(&app.pool, &small_chart(slug, &["A"], 1, seats)).await;
    let e = event(&app.pool, slug, slug, rules(4)).await;
    let org = auth::ensure_organisation(&app.pool, &format!("Org {slug}"))
        .await
        .unwrap();
    sqlx::query("UPDATE events SET organisation_id = $2 WHERE id = $1")
        .bind(e.0)
        .bind(org.0)
        .execute(&app.pool)
        .await
        .unwrap();
    let editor = signed_in_operator(app, org, &format!("ed@{slug}.example"), Role::Editor).await;
    (e, editor, seat_ids(&app.pool, v).await)
}

/// Sets `dispute_void_on` through the portal's event edit.
async fn void_on(app: &TestApp, editor: &str, e: EventId, word: &str) -> (StatusCode, Value) {
    let r = app
        .http
        .patch(app.url(&format!("/v1/portal/events/{}", e.0)))
        .bearer_auth(editor)
        .json(&json!({"policy": {"dispute_void_on": word}}))
        .send()
        .await
        .unwrap();
    let s = r.status();
    (s, r.json().await.unwrap_or(Value::Null))
}

/// A POST to the sandbox's test API.
async fn sandbox_post(app: &TestApp, path: &str) -> (StatusCode, Value) {
    let r = app
        .http
        .post(format!("{}{path}", app.sandbox.as_ref().unwrap().base))
        .bearer_auth(SANDBOX_API_KEY)
        .send()
        .await
        .unwrap();
    let s = r.status();
    (s, r.json().await.unwrap_or(Value::Null))
}

async fn intent_of(app: &TestApp, order: &str) -> String {
    let intents = app.sandbox.as_ref().unwrap().intents_for(order).await;
    intents[0]["id"].as_str().unwrap().to_owned()
}

/// Opens a dispute of the order's charge at the sandbox: its id.
async fn open(app: &TestApp, order: &str, deliver: bool) -> String {
    let intent = intent_of(app, order).await;
    let (s, d) = sandbox_post(
        app,
        &format!("/sandbox/payment_intents/{intent}/dispute?deliver={deliver}"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{d}");
    assert_eq!(d["status"], "needs_response");
    d["id"].as_str().unwrap().to_owned()
}

async fn close(app: &TestApp, dispute: &str, outcome: &str, deliver: bool) {
    let (s, d) = sandbox_post(app, &format!("/sandbox/disputes/{dispute}/{outcome}?deliver={deliver}")).await;
    assert_eq!((s, d["status"].as_str()), (StatusCode::OK, Some(outcome)), "{d}");
}

/// The dispute events the sandbox recorded, by type.
async fn events_of(app: &TestApp, dispute: &str, kind: &str) -> Value {
    let r = app
        .http
        .get(format!("{}/sandbox/events", app.sandbox.as_ref().unwrap().base))
        .bearer_auth(SANDBOX_API_KEY)
        .send()
        .await
        .unwrap();
    let all: Value = r.json().await.unwrap();
    all["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == kind && e["data"]["object"]["id"] == dispute)
        .cloned()
        .unwrap_or_else(|| panic!("no {kind} event for {dispute}"))
}

/// Delivers an event to the core as the sandbox would, signed now.
async fn deliver(app: &TestApp, event: &Value) -> (StatusCode, Value) {
    let body = serde_json::to_vec(event).unwrap();
    let now = chrono::Utc::now().timestamp();
    let r = app
        .http
        .post(app.url("/v1/payments/webhooks/sandbox"))
        .header("content-type", "application/json")
        .header(
            "sandbox-signature",
            signature::sign(&body, SANDBOX_WEBHOOK_SECRET.as_bytes(), now),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    let s = r.status();
    (s, r.json().await.unwrap_or(Value::Null))
}

/// The dispute's row: state, tickets voided, restored?, seats returned?
async fn row(app: &TestApp, dispute: &str) -> Option<(String, Vec<uuid::Uuid>, bool, bool)> {
    sqlx::query_as(
        r#"SELECT state, voided_ticket_ids, restored_at IS NOT NULL, seats_returned_at IS NOT NULL
           FROM disputes WHERE dispute_id = $1"#,
    )
    .bind(dispute)
    .fetch_optional(&app.pool)
    .await
    .unwrap()
}

/// Waits (10 s at most) until the dispute's row is in `state` with
/// `voided` tickets voided.
async fn until(app: &TestApp, dispute: &str, state: &str, voided: usize) -> (String, Vec<uuid::Uuid>, bool, bool) {
    for _ in 0..200 {
        if let Some(r) = row(app, dispute).await
            && r.0 == state
            && r.1.len() == voided
        {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "dispute {dispute} never became {state} with {voided} voided: {:?}",
        row(app, dispute).await
    );
}

async fn outbox(app: &TestApp, order: &str, topic: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM outbox WHERE order_id = $1::uuid AND topic = $2")
        .bind(order)
        .bind(topic)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

async fn ticket_state(app: &TestApp, token: &str, ticket: &str) -> (String, String) {
    let r = app
        .http
        .get(app.url(&format!("/v1/tickets/{ticket}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let t: Value = r.json().await.unwrap();
    (
        t["state"].as_str().unwrap().to_owned(),
        t["code"].as_str().unwrap().to_owned(),
    )
}

async fn scan(app: &TestApp, code: &str) -> (StatusCode, Value) {
    let r = app
        .http
        .post(app.url("/v1/checkin"))
        .bearer_auth(SCANNER_KEY)
        .json(&json!({ "code": code }))
        .send()
        .await
        .unwrap();
    let s = r.status();
    (s, r.json().await.unwrap())
}

async fn portal_disputes(app: &TestApp, editor: &str, e: EventId) -> Vec<Value> {
    let r = app
        .http
        .get(app.url(&format!("/v1/portal/events/{}/disputes", e.0)))
        .bearer_auth(editor)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json::<Value>().await.unwrap()["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn voided_when_opened_refused_at_the_gate_and_the_seat_kept_then_won_restores() {
    let app = TestApp::start_with(with_sandbox()).await;
    let (e, editor, seats) = setup(&app, "dvc", 4).await;
    // A bad word is refused with a stable code, and nothing changes.
    let (s, p) = void_on(&app, &editor, e, "sometimes").await;
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_policy")),
        "{p}"
    );
    let (s, ev) = void_on(&app, &editor, e, "created").await;
    assert_eq!(
        (s, ev["policy"]["dispute_void_on"].as_str()),
        (StatusCode::OK, Some("created")),
        "{ev}"
    );

    let alice = app.sign_in("alice").await;
    let bob = app.sign_in("bob").await;
    let o = buy_with_own_card(&app, ("alice", &alice), e, "a", &seats[0..2]).await;
    let order = o["order_id"].as_str().unwrap().to_owned();
    let t0 = o["tickets"][0]["ticket_id"].as_str().unwrap().to_owned();
    let (_, code) = ticket_state(&app, &alice, &t0).await;

    let dispute = open(&app, &order, true).await;
    let (_, voided, _, _) = until(&app, &dispute, "open", 2).await;
    assert_eq!(voided.len(), 2);
    let (state, _) = ticket_state(&app, &alice, &t0).await;
    assert_eq!(state, "voided_disputed");
    // The gate refuses it.
    let (s, p) = scan(&app, &code).await;
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::CONFLICT, Some("ticket_not_valid")),
        "{p}"
    );
    // Nobody can have the seat meanwhile.
    let (s, p) = app.hold(&bob, e, "b1", &json!({"seat_ids": [seats[0]]})).await;
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::CONFLICT, Some("seats_taken")),
        "{p}"
    );
    // No refund on top of the chargeback.
    let (s, _, p) = post_keyed(&app, &alice, "r1", &format!("/v1/orders/{order}/refunds"), json!({})).await;
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::CONFLICT, Some("order_disputed")),
        "{p}"
    );
    // The operator sees it, and was told once.
    let items = portal_disputes(&app, &editor, e).await;
    assert_eq!(items.len(), 1);
    assert_eq!(
        (
            items[0]["dispute_id"].as_str(),
            items[0]["state"].as_str(),
            items[0]["order_id"].as_str()
        ),
        (Some(dispute.as_str()), Some("open"), Some(order.as_str())),
        "{items:?}"
    );
    assert_eq!(items[0]["voided_ticket_ids"].as_array().unwrap().len(), 2);
    assert_eq!(outbox(&app, &order, "dispute.opened").await, 1);
    // Another organisation's operator does not see the event at all.
    let other = auth::ensure_organisation(&app.pool, "Other Org").await.unwrap();
    let stranger = signed_in_operator(&app, other, "ed@other.example", Role::Editor).await;
    let r = app
        .http
        .get(app.url(&format!("/v1/portal/events/{}/disputes", e.0)))
        .bearer_auth(&stranger)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // Won: the tickets are valid again and scan.
    close(&app, &dispute, "won", true).await;
    let (_, _, restored, returned) = until(&app, &dispute, "won", 2).await;
    assert!(restored && !returned);
    let (state, _) = ticket_state(&app, &alice, &t0).await;
    assert_eq!(state, "valid");
    let (s, p) = scan(&app, &code).await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(outbox(&app, &order, "dispute.closed").await, 1);
    let items = portal_disputes(&app, &editor, e).await;
    assert_eq!(items[0]["state"], "won");
    assert!(items[0]["restored_at"].is_string());
    app.finish().await;
}

#[tokio::test]
async fn by_default_valid_while_open_then_lost_voids_and_returns_the_seats() {
    let app = TestApp::start_with(with_sandbox()).await;
    let (e, editor, seats) = setup(&app, "dvl", 4).await;
    let alice = app.sign_in("alice").await;
    let bob = app.sign_in("bob").await;
    let o = buy_with_own_card(&app, ("alice", &alice), e, "a", &seats[0..2]).await;
    let order = o["order_id"].as_str().unwrap().to_owned();
    let t0 = o["tickets"][0]["ticket_id"].as_str().unwrap().to_owned();

    let dispute = open(&app, &order, true).await;
    until(&app, &dispute, "open", 0).await;
    // Notified at once, but the tickets stand until the bank decides.
    for _ in 0..100 {
        if outbox(&app, &order, "dispute.opened").await == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(outbox(&app, &order, "dispute.opened").await, 1);
    assert_eq!(ticket_state(&app, &alice, &t0).await.0, "valid");
    let (s, _) = app.hold(&bob, e, "b1", &json!({"seat_ids": [seats[0]]})).await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _, p) = post_keyed(&app, &alice, "r1", &format!("/v1/orders/{order}/refunds"), json!({})).await;
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::CONFLICT, Some("order_disputed")),
        "{p}"
    );
    // Nor is a ticket whose payment is disputed passed on to anyone else.
    let path = format!("/v1/tickets/{t0}/transfer");
    let (s, _, p) = post_keyed(&app, &alice, "t1", &path, json!({"to_fan_id": "bob"})).await;
    assert_eq!(
        (s, p["code"].as_str(), p["reason"].as_str()),
        (
            StatusCode::CONFLICT,
            Some("ticket_not_transferable"),
            Some("payment_disputed")
        ),
        "{p}"
    );
    let path = format!("/v1/tickets/{t0}/listings");
    let (s, _, p) = post_keyed(&app, &alice, "l1", &path, json!({"price_cents": 3000})).await;
    assert_eq!(
        (s, p["code"].as_str(), p["reason"].as_str()),
        (
            StatusCode::CONFLICT,
            Some("ticket_not_listable"),
            Some("payment_disputed")
        ),
        "{p}"
    );

    close(&app, &dispute, "lost", true).await;
    let (_, _, restored, returned) = until(&app, &dispute, "lost", 2).await;
    assert!(!restored && returned);
    let (state, code) = ticket_state(&app, &alice, &t0).await;
    assert_eq!(state, "voided_disputed");
    let (s, p) = scan(&app, &code).await;
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::CONFLICT, Some("ticket_not_valid")),
        "{p}"
    );
    // Lost is a refund the bank made: the seats go back on sale by the
    // event's refund policy (the default returns them).
    let (s, p) = app.hold(&bob, e, "b2", &json!({"seat_ids": [seats[0]]})).await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    // The fan's list says the same.
    let r = app
        .http
        .get(app.url("/v1/me/tickets"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    let mine: Value = r.json().await.unwrap();
    let states: Vec<&str> = mine["data"]
        .as_array()
        .or(mine.as_array())
        .unwrap()
        .iter()
        .map(|t| t["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["voided_disputed", "voided_disputed"]);
    assert_eq!(outbox(&app, &order, "dispute.opened").await, 1);
    assert_eq!(outbox(&app, &order, "dispute.closed").await, 1);
    // Where refunded seats stay off sale, so do a lost dispute's.
    let r = app
        .http
        .patch(app.url(&format!("/v1/portal/events/{}", e.0)))
        .bearer_auth(&editor)
        .json(&json!({"policy": {"return_refunded_seats": false}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let carol = app.sign_in("carol").await;
    let o = buy_with_own_card(&app, ("carol", &carol), e, "c", &seats[2..3]).await;
    let kept = open(&app, o["order_id"].as_str().unwrap(), true).await;
    close(&app, &kept, "lost", true).await;
    let (_, _, _, returned) = until(&app, &kept, "lost", 1).await;
    assert!(!returned);
    let (s, p) = app.hold(&bob, e, "b3", &json!({"seat_ids": [seats[2]]})).await;
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::CONFLICT, Some("seats_taken")),
        "{p}"
    );
    let items = portal_disputes(&app, &editor, e).await;
    let items: Vec<Value> = items
        .into_iter()
        .filter(|d| d["dispute_id"] == dispute.as_str())
        .collect();
    assert_eq!(
        (items[0]["state"].as_str(), items[0]["reason"].as_str()),
        (Some("lost"), Some("fraudulent"))
    );
    app.finish().await;
}

#[tokio::test]
async fn duplicate_and_out_of_order_webhooks_converge_on_one_state() {
    let app = TestApp::start_with(with_sandbox()).await;
    let (e, editor, seats) = setup(&app, "dup", 6).await;
    void_on(&app, &editor, e, "created").await;
    let alice = app.sign_in("alice").await;

    // Closed (lost) arrives before created, then created twice, then closed again.
    let o = buy_with_own_card(&app, ("alice", &alice), e, "a", &seats[0..2]).await;
    let order = o["order_id"].as_str().unwrap().to_owned();
    let dispute = open(&app, &order, false).await;
    close(&app, &dispute, "lost", false).await;
    let created = events_of(&app, &dispute, "charge.dispute.created").await;
    let closed = events_of(&app, &dispute, "charge.dispute.closed").await;
    for event in [&closed, &created, &created, &closed] {
        let (s, body) = deliver(&app, event).await;
        assert_eq!(s, StatusCode::OK, "{body}");
    }
    let (_, voided, restored, returned) = until(&app, &dispute, "lost", 2).await;
    assert!(!restored && returned);
    assert_eq!(outbox(&app, &order, "dispute.closed").await, 1);
    // Never told it opened: it was already decided when the core heard of it.
    assert_eq!(outbox(&app, &order, "dispute.opened").await, 0);
    let void: i64 = sqlx::query_scalar("SELECT count(*) FROM tickets WHERE id = ANY($1) AND state = 'voided_disputed'")
        .bind(&voided)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(void, 2);

    // Won arrives before created: nothing is voided, ever.
    let bob = app.sign_in("bob").await;
    let o = buy_with_own_card(&app, ("bob", &bob), e, "b", &seats[2..4]).await;
    let order = o["order_id"].as_str().unwrap().to_owned();
    let dispute = open(&app, &order, false).await;
    close(&app, &dispute, "won", false).await;
    let created = events_of(&app, &dispute, "charge.dispute.created").await;
    let closed = events_of(&app, &dispute, "charge.dispute.closed").await;
    for event in [&closed, &created] {
        assert_eq!(deliver(&app, event).await.0, StatusCode::OK);
    }
    until(&app, &dispute, "won", 0).await;
    let valid: i64 = sqlx::query_scalar("SELECT count(*) FROM tickets WHERE order_id = $1::uuid AND state = 'valid'")
        .bind(&order)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(valid, 2);

    // Created twice, in order: one void, one notice.
    let carol = app.sign_in("carol").await;
    let o = buy_with_own_card(&app, ("carol", &carol), e, "c", &seats[4..6]).await;
    let order = o["order_id"].as_str().unwrap().to_owned();
    let dispute = open(&app, &order, false).await;
    let created = events_of(&app, &dispute, "charge.dispute.created").await;
    for _ in 0..2 {
        assert_eq!(deliver(&app, &created).await.0, StatusCode::OK);
    }
    until(&app, &dispute, "open", 2).await;
    assert_eq!(outbox(&app, &order, "dispute.opened").await, 1);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM disputes")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(n, 3);
    app.finish().await;
}

#[tokio::test]
async fn a_dispute_for_an_unknown_charge_is_acknowledged_and_kept() {
    let app = TestApp::start_with(with_sandbox()).await;
    let event = |id: &str, intent: Value, status: &str| {
        json!({
            "id": format!("evt_{id}"), "type": "charge.dispute.created", "created": 1764028801,
            "data": {"object": {"id": id, "object": "dispute", "payment_intent": intent, "charge": "ch_x",
                                "amount_cents": 5000, "currency": "usd", "reason": "fraudulent", "status": status}}
        })
    };
    let (s, body) = deliver(&app, &event("du_unknown", json!("pi_nobody_knows"), "needs_response")).await;
    assert_eq!(
        (s, body["duplicate"].as_bool()),
        (StatusCode::OK, Some(false)),
        "{body}"
    );
    let (s, body) = deliver(&app, &event("du_unknown", json!("pi_nobody_knows"), "needs_response")).await;
    assert_eq!((s, body["duplicate"].as_bool()), (StatusCode::OK, Some(true)), "{body}");
    // No charge named at all.
    let (s, _) = deliver(&app, &event("du_nameless", Value::Null, "needs_response")).await;
    assert_eq!(s, StatusCode::OK);
    let rows: Vec<(String, Option<String>, Option<uuid::Uuid>, String)> =
        sqlx::query_as("SELECT dispute_id, intent_id, order_id, state FROM disputes ORDER BY dispute_id")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        rows,
        vec![
            ("du_nameless".into(), None, None, "open".into()),
            ("du_unknown".into(), Some("pi_nobody_knows".into()), None, "open".into()),
        ]
    );
    // A status word nobody knows is acknowledged and not acted on; a body
    // that is no dispute is refused whole, and nothing is kept.
    let (s, _) = deliver(&app, &event("du_odd", json!("pi_x"), "something_new")).await;
    assert_eq!(s, StatusCode::OK);
    let mut bad = event("du_bad", json!("pi_x"), "lost");
    bad["data"]["object"]["amount_cents"] = json!("a lot");
    let (s, p) = deliver(&app, &bad).await;
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("webhook_malformed")),
        "{p}"
    );
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM disputes")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(n, 2);
    // The sandbox refuses to dispute a charge that took no money.
    let (s, p) = sandbox_post(&app, "/sandbox/payment_intents/pi_nope/dispute").await;
    assert_eq!(
        (s, p["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("no_such_intent"))
    );
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_concurrent_deliveries_void_once_and_notify_once() {
    let app = Arc::new(TestApp::start_with(with_sandbox()).await);
    let (e, editor, seats) = setup(&app, "conc", 4).await;
    void_on(&app, &editor, e, "created").await;
    let alice = app.sign_in("alice").await;
    let o = buy_with_own_card(&app, ("alice", &alice), e, "a", &seats[0..3]).await;
    let order = o["order_id"].as_str().unwrap().to_owned();
    let dispute = open(&app, &order, false).await;
    close(&app, &dispute, "lost", false).await;
    let created = Arc::new(events_of(&app, &dispute, "charge.dispute.created").await);
    let closed = Arc::new(events_of(&app, &dispute, "charge.dispute.closed").await);

    let burst = |event: Arc<Value>| {
        (0..24)
            .map(|_| {
                let (app, event) = (app.clone(), event.clone());
                tokio::spawn(async move { deliver(&app, &event).await })
            })
            .collect::<Vec<_>>()
    };
    for task in burst(created) {
        let (s, body) = task.await.unwrap();
        assert_eq!(s, StatusCode::OK, "{body}");
    }
    let (_, voided, _, _) = until(&app, &dispute, "open", 3).await;
    assert_eq!(outbox(&app, &order, "dispute.opened").await, 1);
    for task in burst(closed) {
        let (s, body) = task.await.unwrap();
        assert_eq!(s, StatusCode::OK, "{body}");
    }
    let (_, after, restored, returned) = until(&app, &dispute, "lost", 3).await;
    assert_eq!(after, voided, "voided once, the same tickets");
    assert!(!restored && returned);
    assert_eq!(outbox(&app, &order, "dispute.opened").await, 1);
    assert_eq!(outbox(&app, &order, "dispute.closed").await, 1);
    // The seats went back once: each is free, none claimed twice.
    let claims: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM seat_claims WHERE event_id = $1 AND seat_id = ANY($2) AND during @> now()",
    )
    .bind(e.0)
    .bind(&seats[0..3])
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(claims, 0);

    // Created and closed all at once, in no order: the same end.
    let bob = app.sign_in("bob").await;
    let o = buy_with_own_card(&app, ("bob", &bob), e, "b", &seats[3..4]).await;
    let order = o["order_id"].as_str().unwrap().to_owned();
    let dispute = open(&app, &order, false).await;
    close(&app, &dispute, "lost", false).await;
    let created = Arc::new(events_of(&app, &dispute, "charge.dispute.created").await);
    let closed = Arc::new(events_of(&app, &dispute, "charge.dispute.closed").await);
    let mut tasks = burst(created);
    tasks.extend(burst(closed));
    for task in tasks {
        let (s, body) = task.await.unwrap();
        assert_eq!(s, StatusCode::OK, "{body}");
    }
    let (_, voided, restored, returned) = until(&app, &dispute, "lost", 1).await;
    assert!(!restored && returned);
    assert!(outbox(&app, &order, "dispute.opened").await <= 1);
    assert_eq!(outbox(&app, &order, "dispute.closed").await, 1);
    let state: String = sqlx::query_scalar("SELECT state FROM tickets WHERE id = $1")
        .bind(voided[0])
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(state, "voided_disputed");
    match Arc::try_unwrap(app) {
        Ok(app) => app.finish().await,
        Err(_) => panic!("the app is still shared"),
    }
}

/// A dispute heard of before the order is confirmed (here: its payment
/// still waits for 3-D Secure, and the core has no word of its charge) is
/// kept against the order the provider's charge names, and applied in the
/// transaction that confirms it.
#[tokio::test]
async fn a_dispute_before_the_order_is_confirmed_is_applied_when_it_is() {
    let app = TestApp::start_with(with_sandbox()).await;
    let (e, editor, seats) = setup(&app, "early", 4).await;
    void_on(&app, &editor, e, "created").await;
    let alice = app.sign_in("alice").await;
    let (s, h) = app.hold(&alice, e, "h", &json!({"seat_ids": &seats[0..2]})).await;
    assert_eq!(s, StatusCode::CREATED, "{h}");
    let body = json!({"hold_id": h["hold_id"], "payment_method": "pm_card_requires_action_alice"});
    let (s, _, o) = post_keyed(&app, &alice, "o", "/v1/orders", body).await;
    assert_eq!(
        (s, o["state"].as_str()),
        (StatusCode::ACCEPTED, Some("pending_payment")),
        "{o}"
    );
    let order = o["order_id"].as_str().unwrap().to_owned();
    let intent = intent_of(&app, &order).await;
    // As if the core had not heard of the charge yet (its answer lost): the
    // dispute's order is found through the provider's charge.
    sqlx::query("UPDATE orders SET intent_id = NULL WHERE id = $1::uuid")
        .bind(&order)
        .execute(&app.pool)
        .await
        .unwrap();

    let early = json!({
        "id": "evt_early", "type": "charge.dispute.created", "created": 1764028801,
        "data": {"object": {"id": "du_early", "object": "dispute", "payment_intent": intent, "charge": intent,
                            "amount_cents": 6000, "currency": "usd", "reason": "fraudulent", "status": "needs_response"}}
    });
    let (s, body) = deliver(&app, &early).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (state, voided, _, _) = row(&app, "du_early").await.unwrap();
    assert_eq!((state.as_str(), voided.len()), ("open", 0));
    let linked: Option<uuid::Uuid> = sqlx::query_scalar("SELECT order_id FROM disputes WHERE dispute_id = 'du_early'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(linked.map(|o| o.to_string()), Some(order.clone()));

    // The fan authenticates; the charge's webhook confirms the order, and
    // the dispute voids its new tickets in the same transaction.
    let (s, _) = sandbox_post(&app, &format!("/sandbox/payment_intents/{intent}/succeed")).await;
    assert_eq!(s, StatusCode::OK);
    until(&app, "du_early", "open", 2).await;
    let valid: i64 = sqlx::query_scalar("SELECT count(*) FROM tickets WHERE order_id = $1::uuid AND state = 'valid'")
        .bind(&order)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(valid, 0);
    assert_eq!(outbox(&app, &order, "dispute.opened").await, 1);
    app.finish().await;
}

/// In headless Chromium: the fan's tickets page says the payment was
/// disputed and the ticket is void; the operator's event page lists the
/// dispute and what it did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fans_tickets_page_and_the_operators_event_page_show_the_dispute() {
    use crate::common::browser::{Browser, DESKTOP};
    let app = TestApp::start_with(with_sandbox()).await;
    let base = app.direct.clone();
    let (e, editor, seats) = setup(&app, "webdis", 4).await;
    void_on(&app, &editor, e, "created").await;
    let alice = app.sign_in("alice").await;
    let o = buy_with_own_card(&app, ("alice", &alice), e, "a", &seats[0..1]).await;
    let order = o["order_id"].as_str().unwrap().to_owned();
    let dispute = open(&app, &order, true).await;
    until(&app, &dispute, "open", 1).await;

    let b = Browser::start_sized(DESKTOP).await;
    b.goto(&format!("{base}/sign-in?next=/me/tickets")).await;
    b.wait_for("return document.getElementById('fan-id')", Duration::from_secs(10))
        .await;
    b.type_into("#fan-id", "alice").await;
    b.click("form button[type=submit]", None).await;
    let said = b
        .wait_for(
            "const p = document.querySelector('[data-why=voided_disputed]'); return p && p.textContent",
            Duration::from_secs(15),
        )
        .await;
    assert!(said.as_str().unwrap().contains("disputed with your bank"), "{said}");
    let state = b
        .eval("return document.querySelector('.ticket .state').textContent")
        .await;
    assert_eq!(state, "void (payment disputed)");

    b.goto(&format!("{base}/portal/sign-in?next=/portal/events/{}", e.0))
        .await;
    b.wait_for("return document.getElementById('op-email')", Duration::from_secs(10))
        .await;
    b.type_into("#op-email", "ed@webdis.example").await;
    b.type_into("#op-password", OPERATOR_PASSWORD).await;
    b.click("form button[type=submit]", None).await;
    let row = b
        .wait_for(
            &format!("const r = document.querySelector('[data-dispute=\"{dispute}\"]'); return r && r.textContent"),
            Duration::from_secs(15),
        )
        .await;
    let row = row.as_str().unwrap();
    assert!(row.contains("open") && row.contains("1 ticket(s) voided"), "{row}");
    b.quit().await;
    app.finish().await;
}
