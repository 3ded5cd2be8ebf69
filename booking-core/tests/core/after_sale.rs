//! After the sale, over real HTTP with the payment sandbox: refunds of
//! single tickets and whole orders (seats back on sale, or not, by event
//! policy), transfers (the old code stops scanning), and races between them.

use std::sync::Arc;

use crate::common::*;
use booking_core::tickets::policy::{self, AfterSalePolicy};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn get(app: &TestApp, token: &str, path: &str) -> (StatusCode, Value) {
    let r = app.http.get(app.url(path)).bearer_auth(token).send().await.unwrap();
    let s = r.status();
    (s, r.json().await.unwrap_or(Value::Null))
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

async fn sandbox_intent(app: &TestApp, order: &str) -> Value {
    app.sandbox.as_ref().unwrap().intents_for(order).await.remove(0)
}

fn with_sandbox() -> Options {
    Options {
        sandbox: true,
        ..Options::default()
    }
}

#[tokio::test]
async fn refunds_of_one_ticket_then_the_rest_return_seats_and_money_once() {
    let app = TestApp::start_with(with_sandbox()).await;
    let v = venue(&app.pool, &small_chart("ref", &["A"], 1, 6)).await;
    let e = event(&app.pool, "ref", "ref", rules(6)).await;
    let seats = seat_ids(&app.pool, v).await;
    let alice = app.sign_in("alice").await;
    let bob = app.sign_in("bob").await;
    let o = buy_with_own_card(&app, ("alice", &alice), e, "1", &seats[0..3]).await;
    let id = o["order_id"].as_str().unwrap().to_string();
    let t0 = o["tickets"][0]["ticket_id"].as_str().unwrap().to_string();
    let path = format!("/v1/orders/{id}/refunds");

    let (s, _, r) = post_keyed(&app, &alice, "r1", &path, json!({"ticket_ids": [t0]})).await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    assert_eq!(
        (r["state"].as_str(), r["amount_cents"].as_i64()),
        (Some("succeeded"), Some(3000))
    );
    // Replayed, not repeated.
    let (s, h, again) = post_keyed(&app, &alice, "r1", &path, json!({"ticket_ids": [t0]})).await;
    assert_eq!(
        (s, again["refund_id"].clone()),
        (StatusCode::CREATED, r["refund_id"].clone())
    );
    assert_eq!(h["idempotent-replayed"], "true");
    let (s, _, p) = post_keyed(&app, &alice, "r2", &path, json!({"ticket_ids": [t0]})).await;
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::CONFLICT, Some("tickets_not_refundable"))
    );
    let (s, _, p) = post_keyed(&app, &alice, "r3", &path, json!({"ticket_ids": [uuid::Uuid::now_v7()]})).await;
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("tickets_not_in_order"))
    );
    let (s, _, _) = post_keyed(&app, &bob, "r4", &path, json!({})).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "not bob's order");

    // The refunded ticket no longer scans; its seat is on sale again.
    let (_, t) = get(&app, &alice, &format!("/v1/tickets/{t0}")).await;
    assert_eq!(t["state"], "refunded");
    let (s, body) = scan(&app, t["code"].as_str().unwrap()).await;
    assert_eq!(
        (s, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("ticket_not_valid"))
    );
    let (s, _) = app.hold(&bob, e, "b1", &json!({"seat_ids": [seats[0]]})).await;
    assert_eq!(s, StatusCode::CREATED);

    // One ticket used at the gate stays; the rest of the order is refunded.
    let t1 = o["tickets"][1]["ticket_id"].as_str().unwrap();
    let (_, t) = get(&app, &alice, &format!("/v1/tickets/{t1}")).await;
    assert_eq!(scan(&app, t["code"].as_str().unwrap()).await.0, StatusCode::OK);
    let (s, _, rest) = post_keyed(&app, &alice, "r5", &path, json!({})).await;
    assert_eq!(s, StatusCode::CREATED, "{rest}");
    assert_eq!(rest["ticket_ids"].as_array().unwrap().len(), 1);
    assert_eq!(rest["amount_cents"], 3000);
    let (s, _, p) = post_keyed(&app, &alice, "r6", &path, json!({})).await;
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::CONFLICT, Some("nothing_to_refund"))
    );

    let intent = sandbox_intent(&app, &id).await;
    assert_eq!(intent["amount_refunded_cents"], 6000);
    assert_eq!(intent["amount_cents"], 9000);
    let topics: Vec<String> = sqlx::query_scalar("SELECT topic FROM outbox WHERE order_id = $1::uuid ORDER BY id")
        .bind(&id)
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(topics, ["order.confirmed", "refund.issued", "refund.issued"]);
    app.finish().await;
}

#[tokio::test]
async fn an_event_can_keep_refunded_seats_off_sale_and_forbid_transfers() {
    let app = TestApp::start_with(with_sandbox()).await;
    let v = venue(&app.pool, &small_chart("pol", &["A"], 1, 4)).await;
    let e = event(&app.pool, "pol", "pol", rules(4)).await;
    let mut conn = app.pool.acquire().await.unwrap();
    let strict = AfterSalePolicy {
        return_refunded_seats: false,
        transfers_allowed: false,
        ..AfterSalePolicy::default()
    };
    policy::set(&mut conn, e, &strict).await.unwrap();
    assert_eq!(policy::for_event(&mut conn, e).await.unwrap(), strict);
    drop(conn);
    let seats = seat_ids(&app.pool, v).await;
    let alice = app.sign_in("alice").await;
    let o = buy_with_own_card(&app, ("alice", &alice), e, "1", &seats[0..2]).await;
    let t1 = o["tickets"][1]["ticket_id"].as_str().unwrap();
    let (s, _, p) = post_keyed(
        &app,
        &alice,
        "t1",
        &format!("/v1/tickets/{t1}/transfer"),
        json!({"to_fan_id": "bob"}),
    )
    .await;
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::CONFLICT, Some("transfers_not_allowed"))
    );

    let id = o["order_id"].as_str().unwrap();
    let (s, _, _) = post_keyed(&app, &alice, "r1", &format!("/v1/orders/{id}/refunds"), json!({})).await;
    assert_eq!(s, StatusCode::CREATED);
    let bob = app.sign_in("bob").await;
    let (s, _) = app.hold(&bob, e, "b1", &json!({"seat_ids": [seats[0]]})).await;
    assert_eq!(s, StatusCode::CONFLICT, "the seat stays off sale");
    app.finish().await;
}

#[tokio::test]
async fn a_transfer_moves_the_ticket_and_kills_the_old_code() {
    let app = TestApp::start_with(with_sandbox()).await;
    let v = venue(&app.pool, &small_chart("tr", &["A"], 1, 4)).await;
    let e = event(&app.pool, "tr", "tr", rules(4)).await;
    let seats = seat_ids(&app.pool, v).await;
    let alice = app.sign_in("alice").await;
    let bob = app.sign_in("bob").await;
    let o = buy_with_own_card(&app, ("alice", &alice), e, "1", &seats[0..1]).await;
    let t = o["tickets"][0]["ticket_id"].as_str().unwrap().to_string();
    let (_, before) = get(&app, &alice, &format!("/v1/tickets/{t}")).await;
    let old_code = before["code"].as_str().unwrap().to_string();

    let path = format!("/v1/tickets/{t}/transfer");
    let (s, _, p) = post_keyed(&app, &alice, "x0", &path, json!({"to_fan_id": "alice"})).await;
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_recipient"))
    );
    // Longer than any fan token can name: nobody could ever use the ticket.
    let (s, _, p) = post_keyed(&app, &alice, "x0-long", &path, json!({"to_fan_id": "b".repeat(129)})).await;
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_recipient"))
    );
    let (s, _, tr) = post_keyed(&app, &alice, "x1", &path, json!({"to_fan_id": "bob"})).await;
    assert_eq!(s, StatusCode::CREATED, "{tr}");
    assert_eq!(
        (tr["to_fan_id"].as_str(), tr["version"].as_i64()),
        (Some("bob"), Some(2))
    );
    let (s, h, again) = post_keyed(&app, &alice, "x1", &path, json!({"to_fan_id": "bob"})).await;
    assert_eq!((s, &again["transfer_id"]), (StatusCode::CREATED, &tr["transfer_id"]));
    assert_eq!(h["idempotent-replayed"], "true");
    let (s, _, _) = post_keyed(&app, &alice, "x2", &path, json!({"to_fan_id": "carol"})).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "no longer alice's to give");

    // Alice's code is dead; Bob's works once; Alice can neither see nor refund it.
    let (s, body) = scan(&app, &old_code).await;
    assert_eq!(
        (s, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("ticket_superseded"))
    );
    assert_eq!(
        get(&app, &alice, &format!("/v1/tickets/{t}")).await.0,
        StatusCode::NOT_FOUND
    );
    let (_, mine) = get(&app, &bob, "/v1/me/tickets").await;
    assert_eq!(mine[0]["ticket_id"], t.as_str());
    assert_ne!(mine[0]["code"], old_code.as_str());
    assert_eq!(scan(&app, mine[0]["code"].as_str().unwrap()).await.0, StatusCode::OK);
    let id = o["order_id"].as_str().unwrap();
    let (s, _, p) = post_keyed(
        &app,
        &alice,
        "r1",
        &format!("/v1/orders/{id}/refunds"),
        json!({"ticket_ids": [t]}),
    )
    .await;
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::CONFLICT, Some("tickets_not_refundable"))
    );

    let history = booking_core::tickets::transfers::history(&app.pool, booking_core::ids::TicketId(t.parse().unwrap()))
        .await
        .unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!((history[0].0.as_str(), history[0].1.as_str()), ("alice", "bob"));
    app.finish().await;
}

/// Ten transfers of one ticket to ten fans at once, and a refund racing a
/// transfer: exactly one of each race wins, and the loser is told why.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn transfers_race_transfers_and_refunds() {
    let app = Arc::new(TestApp::start_with(with_sandbox()).await);
    let v = venue(&app.pool, &small_chart("race2", &["A"], 1, 4)).await;
    let e = event(&app.pool, "race2", "race2", rules(4)).await;
    let seats = seat_ids(&app.pool, v).await;
    let alice = app.sign_in("alice").await;
    let o = buy_with_own_card(&app, ("alice", &alice), e, "1", &seats[0..2]).await;
    let t0 = o["tickets"][0]["ticket_id"].as_str().unwrap().to_string();
    let t1 = o["tickets"][1]["ticket_id"].as_str().unwrap().to_string();

    let mut tasks = Vec::new();
    for i in 0..10 {
        let (app, alice, t0) = (app.clone(), alice.clone(), t0.clone());
        tasks.push(tokio::spawn(async move {
            let body = json!({"to_fan_id": format!("fan{i}")});
            post_keyed(
                &app,
                &alice,
                &format!("k{i}"),
                &format!("/v1/tickets/{t0}/transfer"),
                body,
            )
            .await
            .0
        }));
    }
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            StatusCode::CREATED => won += 1,
            s => assert_eq!(s, StatusCode::NOT_FOUND),
        }
    }
    assert_eq!(won, 1);
    let owners: i64 = sqlx::query_scalar("SELECT count(*) FROM ticket_transfers WHERE ticket_id = $1::uuid")
        .bind(&t0)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(owners, 1);

    let id = o["order_id"].as_str().unwrap().to_string();
    let refund = {
        let (app, alice, t1, id) = (app.clone(), alice.clone(), t1.clone(), id.clone());
        tokio::spawn(async move {
            post_keyed(
                &app,
                &alice,
                "rr",
                &format!("/v1/orders/{id}/refunds"),
                json!({"ticket_ids": [t1]}),
            )
            .await
            .0
        })
    };
    let transfer = {
        let (app, alice, t1) = (app.clone(), alice.clone(), t1.clone());
        tokio::spawn(async move {
            post_keyed(
                &app,
                &alice,
                "tt",
                &format!("/v1/tickets/{t1}/transfer"),
                json!({"to_fan_id": "zoe"}),
            )
            .await
            .0
        })
    };
    let (r, t) = (refund.await.unwrap(), transfer.await.unwrap());
    let (state, owner): (String, String) =
        sqlx::query_as("SELECT state, owner_fan_id FROM tickets WHERE id = $1::uuid")
            .bind(&t1)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    match (r, t) {
        (StatusCode::CREATED, StatusCode::CONFLICT) => {
            assert_eq!((state.as_str(), owner.as_str()), ("refunded", "alice"))
        }
        (StatusCode::CONFLICT, StatusCode::CREATED) => assert_eq!((state.as_str(), owner.as_str()), ("valid", "zoe")),
        other => panic!("exactly one must win: {other:?}"),
    }
    Arc::into_inner(app).unwrap().finish().await;
}

async fn list(app: &TestApp, token: &str, key: &str, ticket: &str, price: i64) -> (StatusCode, Value) {
    let (s, _, body) = post_keyed(
        app,
        token,
        key,
        &format!("/v1/tickets/{ticket}/listings"),
        json!({"price_cents": price}),
    )
    .await;
    (s, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resale_is_capped_sells_a_listing_once_and_pays_the_seller_less_the_fee() {
    let app = Arc::new(TestApp::start_with(with_sandbox()).await);
    let v = venue(&app.pool, &small_chart("rs", &["A"], 1, 4)).await;
    let e = event(&app.pool, "rs", "rs", rules(4)).await;
    let seats = seat_ids(&app.pool, v).await;
    let alice = app.sign_in("alice").await;
    let o = buy_with_own_card(&app, ("alice", &alice), e, "1", &seats[0..2]).await;
    let t0 = o["tickets"][0]["ticket_id"].as_str().unwrap().to_string();
    let t1 = o["tickets"][1]["ticket_id"].as_str().unwrap().to_string();
    let (_, before) = get(&app, &alice, &format!("/v1/tickets/{t0}")).await;

    // Face value 3000, default cap 120%.
    let (s, p) = list(&app, &alice, "l0", &t0, 3601).await;
    assert_eq!(
        (s, p["code"].as_str(), p["cap_cents"].as_i64()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("price_above_cap"), Some(3600))
    );
    let (s, p) = list(&app, &alice, "l00", &t0, 0).await;
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_price"))
    );
    let (s, listing) = list(&app, &alice, "l1", &t0, 3600).await;
    assert_eq!(s, StatusCode::CREATED, "{listing}");
    let lid = listing["listing_id"].as_str().unwrap().to_string();
    let (s, p) = list(&app, &alice, "l2", &t0, 3000).await;
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::CONFLICT, Some("ticket_not_listable"))
    );
    // A listed ticket is neither transferred nor refunded.
    let (s, _, p) = post_keyed(
        &app,
        &alice,
        "x1",
        &format!("/v1/tickets/{t0}/transfer"),
        json!({"to_fan_id": "zed"}),
    )
    .await;
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::CONFLICT, Some("ticket_not_transferable"))
    );
    let id = o["order_id"].as_str().unwrap();
    let (s, _, p) = post_keyed(
        &app,
        &alice,
        "r1",
        &format!("/v1/orders/{id}/refunds"),
        json!({"ticket_ids": [t0]}),
    )
    .await;
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::CONFLICT, Some("tickets_not_refundable"))
    );
    let (s, _, p) = post_keyed(
        &app,
        &alice,
        "own",
        "/v1/orders",
        json!({"listing_id": lid, "payment_method": "pm_card_ok"}),
    )
    .await;
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("own_listing"))
    );

    // A declined buyer lets the listing go at once.
    let carol = app.sign_in("carol").await;
    let (s, _, failed) = post_keyed(
        &app,
        &carol,
        "c0",
        "/v1/orders",
        json!({"listing_id": lid, "payment_method": "pm_card_declined"}),
    )
    .await;
    assert_eq!(
        (s, failed["state"].as_str()),
        (StatusCode::CREATED, Some("payment_failed"))
    );
    let (_, browse) = app.get(&format!("/v1/events/{}/listings", e.0)).await;
    assert_eq!(browse[0]["listing_id"], lid.as_str());
    assert_eq!(browse[0]["face_value_cents"], 3000);

    // Six buyers at once: one gets it, the rest are told before paying.
    let mut tasks = Vec::new();
    for i in 0..6 {
        let (app, lid) = (app.clone(), lid.clone());
        tasks.push(tokio::spawn(async move {
            let token = app.sign_in(&format!("buyer{i}")).await;
            let (s, _, o) = post_keyed(
                &app,
                &token,
                "b",
                "/v1/orders",
                json!({"listing_id": lid, "payment_method": "pm_card_ok"}),
            )
            .await;
            (i, s, o)
        }));
    }
    let mut winner = None;
    for t in tasks {
        let (i, s, o) = t.await.unwrap();
        if s == StatusCode::CREATED && o["state"] == "confirmed" {
            assert!(winner.replace((i, o)).is_none(), "sold twice");
        } else {
            assert_eq!(
                (s, o["code"].as_str()),
                (StatusCode::CONFLICT, Some("listing_unavailable")),
                "{o}"
            );
        }
    }
    let (w, order) = winner.expect("one buyer wins");
    assert_eq!(order["total_cents"], 3600);
    assert_eq!(order["tickets"][0]["ticket_id"], t0.as_str());
    let buyer = app.sign_in(&format!("buyer{w}")).await;
    let (_, mine) = get(&app, &buyer, "/v1/me/tickets").await;
    assert_eq!(mine[0]["ticket_id"], t0.as_str());
    assert_eq!(mine[0]["version"], 2);
    let (s, body) = scan(&app, before["code"].as_str().unwrap()).await;
    assert_eq!(
        (s, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("ticket_superseded"))
    );
    assert_eq!(scan(&app, mine[0]["code"].as_str().unwrap()).await.0, StatusCode::OK);

    let (gross, fee, net, seller): (i64, i64, i64, String) = sqlx::query_as(
        "SELECT gross_cents, fee_cents, net_cents, seller_fan_id FROM resale_payouts WHERE listing_id = $1::uuid",
    )
    .bind(&lid)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!((gross, fee, net, seller.as_str()), (3600, 360, 3240, "alice"));
    let (_, browse) = app.get(&format!("/v1/events/{}/listings", e.0)).await;
    assert_eq!(browse, json!([]));
    let charged: i64 =
        sqlx::query_scalar("SELECT count(*) FROM orders WHERE listing_id = $1::uuid AND state = 'confirmed'")
            .bind(&lid)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(charged, 1);

    // Withdrawing: the other ticket, listed then cancelled, is alice's to use.
    let (_, l2) = list(&app, &alice, "l3", &t1, 3000).await;
    let r = app
        .http
        .delete(app.url(&format!("/v1/listings/{}", l2["listing_id"].as_str().unwrap())))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (s, _, _) = post_keyed(
        &app,
        &alice,
        "x2",
        &format!("/v1/tickets/{t1}/transfer"),
        json!({"to_fan_id": "zed"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    Arc::into_inner(app).unwrap().finish().await;
}

#[tokio::test]
async fn face_value_markets_and_the_primary_limit_bound_resale() {
    let app = TestApp::start_with(with_sandbox()).await;
    let v = venue(&app.pool, &small_chart("fv", &["A"], 1, 6)).await;
    let e = event(&app.pool, "fv", "fv", rules(2)).await;
    let mut conn = app.pool.acquire().await.unwrap();
    let uk = AfterSalePolicy {
        resale_cap_percent: 100,
        ..AfterSalePolicy::default()
    };
    policy::set(&mut conn, e, &uk).await.unwrap();
    drop(conn);
    let seats = seat_ids(&app.pool, v).await;
    let alice = app.sign_in("alice").await;
    let bob = app.sign_in("bob").await;
    let a = buy_with_own_card(&app, ("alice", &alice), e, "a", &seats[0..2]).await;
    let b = buy_with_own_card(&app, ("bob", &bob), e, "b", &seats[2..4]).await;
    // Bob gives one to alice: she now holds three, but may resell only two.
    let gift = b["tickets"][0]["ticket_id"].as_str().unwrap();
    let (s, _, _) = post_keyed(
        &app,
        &bob,
        "g",
        &format!("/v1/tickets/{gift}/transfer"),
        json!({"to_fan_id": "alice"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let t0 = a["tickets"][0]["ticket_id"].as_str().unwrap();
    let t1 = a["tickets"][1]["ticket_id"].as_str().unwrap();
    let (s, p) = list(&app, &alice, "l0", t0, 3001).await;
    assert_eq!(
        (s, p["cap_cents"].as_i64()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some(3000)),
        "face value only"
    );
    assert_eq!(list(&app, &alice, "l1", t0, 3000).await.0, StatusCode::CREATED);
    assert_eq!(list(&app, &alice, "l2", t1, 2500).await.0, StatusCode::CREATED);
    let (s, p) = list(&app, &alice, "l3", gift, 3000).await;
    assert_eq!(
        (s, p["code"].as_str(), p["limit"].as_i64()),
        (StatusCode::CONFLICT, Some("resale_limit_reached"), Some(2))
    );
    app.finish().await;
}

/// The seller withdraws and gives away each listed ticket while a buyer
/// is buying it, four tickets at once: every ticket ends with exactly one
/// owner, and a buyer who does not get the ticket is not charged (or is
/// refunded).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_transfer_races_a_resale_purchase() {
    let app = Arc::new(TestApp::start_with(with_sandbox()).await);
    let v = venue(&app.pool, &small_chart("rr", &["A"], 1, 4)).await;
    let e = event(&app.pool, "rr", "rr", rules(4)).await;
    let seats = seat_ids(&app.pool, v).await;
    let alice = app.sign_in("alice").await;
    let o = buy_with_own_card(&app, ("alice", &alice), e, "1", &seats[0..4]).await;
    let mut races = Vec::new();
    for i in 0..4 {
        let t = o["tickets"][i]["ticket_id"].as_str().unwrap().to_string();
        let (_, l) = list(&app, &alice, &format!("l{i}"), &t, 3000).await;
        let lid = l["listing_id"].as_str().unwrap().to_string();
        let buyer = {
            let (app, lid) = (app.clone(), lid.clone());
            tokio::spawn(async move {
                let token = app.sign_in(&format!("buyer{i}")).await;
                let body = json!({"listing_id": lid, "payment_method": "pm_card_ok"});
                post_keyed(&app, &token, "b", "/v1/orders", body).await
            })
        };
        let seller = {
            let (app, alice, lid, t) = (app.clone(), alice.clone(), lid.clone(), t.clone());
            tokio::spawn(async move {
                let cancelled = app
                    .http
                    .delete(app.url(&format!("/v1/listings/{lid}")))
                    .bearer_auth(&alice)
                    .send()
                    .await
                    .unwrap()
                    .status();
                let body = json!({"to_fan_id": "zoe"});
                let moved = post_keyed(
                    &app,
                    &alice,
                    &format!("t{i}"),
                    &format!("/v1/tickets/{t}/transfer"),
                    body,
                )
                .await
                .0;
                (cancelled, moved)
            })
        };
        races.push((i, t, buyer, seller));
    }
    for (i, t, buyer, seller) in races {
        let (bs, _, order) = buyer.await.unwrap();
        let (cancelled, moved) = seller.await.unwrap();
        let owner: String = sqlx::query_scalar("SELECT owner_fan_id FROM tickets WHERE id = $1::uuid")
            .bind(&t)
            .fetch_one(&app.pool)
            .await
            .unwrap();
        if owner == format!("buyer{i}") {
            assert_eq!(order["state"], "confirmed");
            // Still listed (409), or already the buyer's (404): not alice's to give.
            assert!(
                moved == StatusCode::CONFLICT || moved == StatusCode::NOT_FOUND,
                "{moved}"
            );
        } else {
            assert_eq!(owner, "zoe", "ticket {i}");
            assert_eq!((cancelled, moved), (StatusCode::OK, StatusCode::CREATED));
            // The buyer was refused before paying, or paid and got it all back.
            match order["state"].as_str() {
                None => assert_eq!(
                    (bs, order["code"].as_str()),
                    (StatusCode::CONFLICT, Some("listing_unavailable"))
                ),
                Some(state) => assert_eq!(state, "refunded", "{order}"),
            }
        }
    }
    Arc::into_inner(app).unwrap().finish().await;
}

#[tokio::test]
async fn ticket_codes_signed_before_a_key_rotation_still_scan() {
    // The key before the rotation, kept as a public key only.
    let old = usher_shared::keys::generate_pair();
    let new = usher_shared::keys::generate_pair();
    let new_file = std::env::temp_dir().join(format!("tickets-2-{}.pem", uuid::Uuid::new_v4()));
    std::fs::write(&new_file, &new.private_pem).unwrap();
    let old_public = old.public_pem.clone();
    let app = TestApp::start_with_config(with_sandbox(), |c| {
        c.tickets.kid = "tickets-2".into();
        c.tickets.signing_key_file = Some(new_file.clone());
        c.tickets.previous_keys = vec![booking_core::config::PublicKeyConfig {
            kid: "tickets-1".into(),
            pem: Some(old_public),
            pem_file: None,
        }];
    })
    .await;
    let v = venue(&app.pool, &small_chart("rot", &["A"], 1, 4)).await;
    let e = event(&app.pool, "rot", "rot", rules(4)).await;
    let seats = seat_ids(&app.pool, v).await;
    let alice = app.sign_in("alice").await;
    let o = buy_with_own_card(&app, ("alice", &alice), e, "1", &seats[0..2]).await;

    // Scanners are told both keys, the current one first.
    let (_, keys) = get(&app, &alice, "/v1/tickets/keys").await;
    let kids: Vec<&str> = keys
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, ["tickets-2", "tickets-1"]);

    // The code a fan saved before the rotation (signed with the old key)
    // still scans; codes handed out now carry the new key.
    let code_under = |kid: &str, private_pem: &str, ticket: &Value| {
        let signer = booking_core::tickets::TicketSigner::from_pem(kid, private_pem).unwrap();
        signer.code(
            booking_core::ids::TicketId(ticket["ticket_id"].as_str().unwrap().parse().unwrap()),
            e,
            booking_core::ids::SeatId(ticket["seat_id"].as_i64().unwrap()),
            ticket["version"].as_i64().unwrap() as i32,
        )
    };
    let path = |n: usize| format!("/v1/tickets/{}", o["tickets"][n]["ticket_id"].as_str().unwrap());
    let (_, first) = get(&app, &alice, &path(0)).await;
    assert_eq!(first["code"], code_under("tickets-2", &new.private_pem, &first));
    let (s, body) = scan(&app, &code_under("tickets-1", &old.private_pem, &first)).await;
    assert_eq!(s, StatusCode::OK, "{body}");

    // A key that is neither current nor kept is refused.
    let stranger = usher_shared::keys::generate_pair();
    let (_, second) = get(&app, &alice, &path(1)).await;
    let (s, body) = scan(&app, &code_under("tickets-0", &stranger.private_pem, &second)).await;
    assert_eq!(
        (s, body["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("code_invalid")),
        "{body}"
    );
    app.finish().await;
}
