//! The refund policy over real HTTP with the payment sandbox: fans refund
//! their own tickets only while the event's policy lets them (self refunds
//! on, and not later than its cutoff before the start; never after), with
//! stable refusal codes; an operator of the event's organisation refunds at
//! any time with a reason the refund keeps (a viewer, or another
//! organisation, cannot); and a fan's refund racing operators' refunds of
//! the same order returns the money and the seats once.

use std::sync::Arc;

use crate::common::*;
use booking_core::ids::EventId;
use booking_core::portal::Role;
use booking_core::portal::auth;
use booking_core::tickets::policy::{self, AfterSalePolicy};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The kit's keyed POST, without the headers.
async fn post(app: &TestApp, token: &str, key: &str, path: &str, body: Value) -> (StatusCode, Value) {
    let (s, _, body) = post_keyed(app, token, key, path, body).await;
    (s, body)
}

async fn set_policy(app: &TestApp, e: EventId, p: AfterSalePolicy) {
    let mut conn = app.pool.acquire().await.unwrap();
    policy::set(&mut conn, e, &p).await.unwrap();
}

async fn refunded_cents(app: &TestApp, order: &str) -> i64 {
    let intent = app.sandbox.as_ref().unwrap().intents_for(order).await.remove(0);
    intent["amount_refunded_cents"].as_i64().unwrap()
}

/// Seats of the event that are sold (claimed by an order).
async fn sold(app: &TestApp, e: EventId) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM tickets WHERE event_id = $1 AND state = 'valid'")
        .bind(e.0)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn fans_refund_within_the_policy_and_operators_at_any_time_with_a_reason() {
    let app = TestApp::start_with(Options {
        sandbox: true,
        ..Options::default()
    })
    .await;
    let v = venue(&app.pool, &small_chart("rp", &["A"], 1, 8)).await;
    // The event starts in 30 days (the kit's default).
    let e = event(&app.pool, "rp", "rp", rules(8)).await;
    let org = auth::ensure_organisation(&app.pool, "Refund Org").await.unwrap();
    sqlx::query("UPDATE events SET organisation_id = $2 WHERE id = $1")
        .bind(e.0)
        .bind(org.0)
        .execute(&app.pool)
        .await
        .unwrap();
    let seats = seat_ids(&app.pool, v).await;
    let alice = app.sign_in("alice").await;
    let o = buy_with_own_card(&app, ("alice", &alice), e, "a", &seats[0..2]).await;
    let id = o["order_id"].as_str().unwrap().to_owned();
    let fan_path = format!("/v1/orders/{id}/refunds");
    let op_path = format!("/v1/portal/orders/{id}/refunds");

    // Fans may refund up to 31 days before the start: closed already.
    set_policy(
        &app,
        e,
        AfterSalePolicy {
            refund_cutoff_hours: 31 * 24,
            ..AfterSalePolicy::default()
        },
    )
    .await;
    let (s, p) = post(&app, &alice, "f1", &fan_path, json!({})).await;
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::CONFLICT, Some("refund_window_closed")),
        "{p}"
    );
    assert!(p["closed_at"].as_str().is_some(), "{p}");
    // No self refunds at all for this event.
    set_policy(
        &app,
        e,
        AfterSalePolicy {
            self_refunds: false,
            ..AfterSalePolicy::default()
        },
    )
    .await;
    let (s, p) = post(&app, &alice, "f2", &fan_path, json!({})).await;
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("self_refunds_disabled")),
        "{p}"
    );
    assert_eq!(refunded_cents(&app, &id).await, 0);
    assert_eq!(sold(&app, e).await, 2);

    // The organiser's operators refund anyway, with a reason.
    let editor = signed_in_operator(&app, org, "box@refund.example", Role::Editor).await;
    let viewer = signed_in_operator(&app, org, "look@refund.example", Role::Viewer).await;
    let other_org = auth::ensure_organisation(&app.pool, "Other Org").await.unwrap();
    let stranger = signed_in_operator(&app, other_org, "box@other.example", Role::Editor).await;
    for (reason, code) in [
        (json!(""), "invalid_reason"),
        (json!("  "), "invalid_reason"),
        (json!("x".repeat(501)), "invalid_reason"),
    ] {
        let (s, p) = post(&app, &editor, "bad", &op_path, json!({"reason": reason})).await;
        assert_eq!(
            (s, p["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(code)),
            "{p}"
        );
    }
    let (s, p) = post(&app, &editor, "bad", &op_path, json!({})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "no reason: {p}");
    let (s, p) = post(&app, &viewer, "v1", &op_path, json!({"reason": "show cancelled"})).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{p}");
    let (s, p) = post(&app, &stranger, "s1", &op_path, json!({"reason": "show cancelled"})).await;
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("order_not_found")),
        "{p}"
    );
    assert_eq!(refunded_cents(&app, &id).await, 0);

    let t0 = o["tickets"][0]["ticket_id"].as_str().unwrap();
    let body = json!({"ticket_ids": [t0], "reason": "seat with an obstructed view"});
    let (s, r) = post(&app, &editor, "op1", &op_path, body.clone()).await;
    assert_eq!(
        (s, r["state"].as_str()),
        (StatusCode::CREATED, Some("succeeded")),
        "{r}"
    );
    assert_eq!(r["amount_cents"], 3000);
    // Replayed, not repeated; the same key with another body is refused.
    let (s, again) = post(&app, &editor, "op1", &op_path, body).await;
    assert_eq!((s, &again["refund_id"]), (StatusCode::CREATED, &r["refund_id"]));
    let (s, p) = post(&app, &editor, "op1", &op_path, json!({"reason": "another"})).await;
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("idempotency_key_reused")),
        "{p}"
    );
    let (reason, by): (Option<String>, Option<i64>) =
        sqlx::query_as("SELECT reason, operator_id FROM refunds WHERE id = $1::uuid")
            .bind(r["refund_id"].as_str().unwrap())
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(reason.as_deref(), Some("seat with an obstructed view"));
    assert!(by.is_some());
    assert_eq!(refunded_cents(&app, &id).await, 3000);
    assert_eq!(sold(&app, e).await, 1);

    // After the start nobody refunds themselves, whatever the policy; the
    // operator still can.
    set_policy(&app, e, AfterSalePolicy::default()).await;
    sqlx::query(
        "UPDATE events SET on_sale_at = now() - interval '2 days', starts_at = now() - interval '1 hour' WHERE id = $1",
    )
    .bind(e.0)
    .execute(&app.pool)
    .await
    .unwrap();
    let (s, p) = post(&app, &alice, "f3", &fan_path, json!({})).await;
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::CONFLICT, Some("refund_window_closed")),
        "{p}"
    );
    let (s, r) = post(&app, &editor, "op2", &op_path, json!({"reason": "event cancelled"})).await;
    assert_eq!(
        (s, r["amount_cents"].as_i64()),
        (StatusCode::CREATED, Some(3000)),
        "{r}"
    );
    assert_eq!(refunded_cents(&app, &id).await, 6000);
    assert_eq!(sold(&app, e).await, 0);

    // The portal sets the policy, within bounds.
    let patch = |p: Value| {
        app.http
            .patch(app.url(&format!("/v1/portal/events/{}", e.0)))
            .bearer_auth(&editor)
            .json(&json!({"policy": p}))
            .send()
    };
    let r = patch(json!({"refund_cutoff_hours": 8761})).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "invalid_policy");
    let r = patch(json!({"refund_cutoff_hours": 48, "self_refunds": false}))
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        (&body["policy"]["refund_cutoff_hours"], &body["policy"]["self_refunds"]),
        (&json!(48), &json!(false)),
        "{body}"
    );
    app.finish().await;
}

#[tokio::test]
async fn a_fans_refund_racing_operators_refunds_pays_back_once() {
    let app = Arc::new(
        TestApp::start_with(Options {
            sandbox: true,
            ..Options::default()
        })
        .await,
    );
    let v = venue(&app.pool, &small_chart("rr", &["A"], 1, 40)).await;
    let e = event(&app.pool, "rr", "rr", rules(4)).await;
    let org = auth::ensure_organisation(&app.pool, "Race Org").await.unwrap();
    sqlx::query("UPDATE events SET organisation_id = $2 WHERE id = $1")
        .bind(e.0)
        .bind(org.0)
        .execute(&app.pool)
        .await
        .unwrap();
    let editor = signed_in_operator(&app, org, "race@refund.example", Role::Editor).await;
    let seats = seat_ids(&app.pool, v).await;
    // Ten fans' orders of four seats each; on each, the fan and three
    // operators' requests (distinct keys) at once.
    let mut orders = Vec::new();
    for f in 0..10 {
        let fan = format!("fan{f}");
        let token = app.sign_in(&fan).await;
        let o = buy_with_own_card(&app, (&fan, &token), e, &fan, &seats[f * 4..f * 4 + 4]).await;
        orders.push((token, o["order_id"].as_str().unwrap().to_owned()));
    }
    let mut tasks = Vec::new();
    for (token, id) in &orders {
        for who in 0..4 {
            let (app, token, editor, id) = (app.clone(), token.clone(), editor.clone(), id.clone());
            tasks.push(tokio::spawn(async move {
                let (s, p) = if who == 0 {
                    post(&app, &token, "fan", &format!("/v1/orders/{id}/refunds"), json!({})).await
                } else {
                    let body = json!({"reason": "oversold section"});
                    post(
                        &app,
                        &editor,
                        &format!("op{who}"),
                        &format!("/v1/portal/orders/{id}/refunds"),
                        body,
                    )
                    .await
                };
                (id, s, p)
            }));
        }
    }
    let mut wins = std::collections::HashMap::new();
    for t in tasks {
        let (id, s, p) = t.await.unwrap();
        match s {
            StatusCode::CREATED => *wins.entry(id).or_insert(0) += 1,
            StatusCode::CONFLICT => assert_eq!(p["code"], "nothing_to_refund", "{p}"),
            other => panic!("{other}: {p}"),
        }
    }
    for (_, id) in &orders {
        assert_eq!(wins.get(id), Some(&1), "order {id}: {wins:?}");
        assert_eq!(refunded_cents(&app, id).await, 4 * 3000, "order {id}");
    }
    assert_eq!(sold(&app, e).await, 0);
    // Every seat is back on sale exactly once: one fan can hold them all.
    let last = app.sign_in("last").await;
    let (s, h) = app.hold(&last, e, "last", &json!({"seat_ids": &seats[0..4]})).await;
    assert_eq!(s, StatusCode::CREATED, "{h}");
    Arc::into_inner(app).unwrap().finish().await;
}
