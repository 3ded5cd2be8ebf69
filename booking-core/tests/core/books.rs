//! The provider's books against ours (checkout/books.rs), with the payment
//! sandbox over real HTTP: each kind of mismatch is planted (in the
//! sandbox's books, as its dashboard or a lost answer would, or in ours, as
//! a bug would), one comparison finds every one, fixes only what is safe
//! (a charge its failed order never kept: tickets or the money back), tells
//! the operators once, and the portal lists and resolves them. And the
//! reconciliation job finds a charge whose answer was lost instead of
//! making a second one once the provider has forgotten the key.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::*;
use booking_core::checkout::books::{self, BooksError, Kind};
use booking_core::checkout::provider::Window;
use booking_core::ids::EventId;
use booking_core::portal::Role;
use booking_core::portal::auth;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// A call to the sandbox's own API, as its dashboard (or another client)
/// would make it: outside the core.
async fn sandbox_post(app: &TestApp, path: &str, key: &str, body: Value) -> Value {
    let sandbox = app.sandbox.as_ref().unwrap();
    let r = reqwest::Client::new()
        .post(format!("{}{path}", sandbox.base))
        .bearer_auth(SANDBOX_API_KEY)
        .header("idempotency-key", key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{path}");
    r.json().await.unwrap()
}

async fn order_row(app: &TestApp, order: &str) -> (String, Option<String>, i64) {
    sqlx::query_as("SELECT state, intent_id, total_cents FROM orders WHERE id = $1::uuid")
        .bind(order)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

async fn books_notifications(app: &TestApp) -> Vec<(Value, Vec<String>)> {
    let rows: Vec<(Value, Vec<String>)> = sqlx::query_as(
        r#"SELECT o.payload, array_agg(d.channel ORDER BY d.channel) FROM outbox o
           JOIN outbox_deliveries d ON d.outbox_id = o.id
           WHERE o.topic = 'books.mismatch' GROUP BY o.id ORDER BY o.id"#,
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    rows
}

#[tokio::test]
async fn one_comparison_finds_every_kind_of_mismatch_and_fixes_only_the_safe_ones() {
    let started = unix_now();
    let app = TestApp::start_with(Options {
        sandbox: true,
        ..Options::default()
    })
    .await;
    let v = venue(&app.pool, &small_chart("bk", &["A"], 1, 12)).await;
    let e = event(&app.pool, "bk", "bk", rules(8)).await;
    let org = auth::ensure_organisation(&app.pool, "Books Org").await.unwrap();
    sqlx::query("UPDATE events SET organisation_id = $2 WHERE id = $1")
        .bind(e.0)
        .bind(org.0)
        .execute(&app.pool)
        .await
        .unwrap();
    let seats = seat_ids(&app.pool, v).await;
    let mut orders = HashMap::new();
    for (i, fan) in ["ann", "bob", "cat", "eve", "fay"].into_iter().enumerate() {
        let token = app.sign_in(fan).await;
        let o = buy_with_own_card(&app, (fan, &token), e, fan, &seats[i * 2..i * 2 + 2]).await;
        orders.insert(fan, (o["order_id"].as_str().unwrap().to_owned(), token));
    }
    let id = |fan: &str| orders[fan].0.clone();

    // bob: a bug in our books makes the order cost more than was charged.
    sqlx::query("UPDATE orders SET total_cents = total_cents + 100 WHERE id = $1::uuid")
        .bind(id("bob"))
        .execute(&app.pool)
        .await
        .unwrap();
    // cat: our order names a charge the provider never made (its real
    // charge is then one no order counts: never refunded by itself).
    let cat_real = order_row(&app, &id("cat")).await.1.unwrap();
    sqlx::query("UPDATE orders SET intent_id = 'pi_planted_nowhere' WHERE id = $1::uuid")
        .bind(id("cat"))
        .execute(&app.pool)
        .await
        .unwrap();
    // eve: the provider refunds part of her charge without us (its
    // dashboard); the core's webhook handler has nothing to move.
    let eve_intent = order_row(&app, &id("eve")).await.1.unwrap();
    let eve_refund = sandbox_post(
        &app,
        &format!("/v1/payment_intents/{eve_intent}/refunds"),
        "dashboard-eve",
        json!({"amount_cents": 100}),
    )
    .await;
    // fay: refunds herself, then our record of the refund names another id.
    let (s, _, r) = post_keyed(
        &app,
        &orders["fay"].1,
        "fay-refund",
        &format!("/v1/orders/{}/refunds", id("fay")),
        json!({}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    let fay_real: String = sqlx::query_scalar("SELECT provider_refund_id FROM refunds WHERE order_id = $1::uuid")
        .bind(id("fay"))
        .fetch_one(&app.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE refunds SET provider_refund_id = 're_planted_nowhere' WHERE order_id = $1::uuid")
        .bind(id("fay"))
        .execute(&app.pool)
        .await
        .unwrap();
    // dan: his card is declined, then a charge for his order succeeds at
    // the provider with no webhook (a late success nobody told us of).
    let dan = app.sign_in("dan").await;
    let (s, h) = app.hold(&dan, e, "h-dan", &json!({"seat_ids": &seats[10..12]})).await;
    assert_eq!(s, StatusCode::CREATED, "{h}");
    let (s, _, o) = post_keyed(
        &app,
        &dan,
        "o-dan",
        "/v1/orders",
        json!({"hold_id": h["hold_id"], "payment_method": "pm_card_declined_dan"}),
    )
    .await;
    assert_eq!(
        (s.is_success(), o["state"].as_str()),
        (true, Some("payment_failed")),
        "{o}"
    );
    let dan_order = o["order_id"].as_str().unwrap().to_owned();
    let dan_total = order_row(&app, &dan_order).await.2;
    let dan_late = sandbox_post(
        &app,
        "/v1/payment_intents",
        "late-dan",
        json!({"amount_cents": dan_total, "currency": "usd", "payment_method": "pm_card_no_webhook_dan",
               "metadata": {"order_id": dan_order}}),
    )
    .await;
    // A charge naming an order the core never had.
    let stranger = uuid::Uuid::new_v4();
    let orphan = sandbox_post(
        &app,
        "/v1/payment_intents",
        "orphan",
        json!({"amount_cents": 4200, "currency": "usd", "payment_method": "pm_card_no_webhook",
               "metadata": {"order_id": stranger.to_string()}}),
    )
    .await;

    let checkout = &app.running.state.checkout;
    let window = Window {
        since_unix: started - 5,
        until_unix: unix_now() + 5,
    };
    let report = books::run(checkout, &app.pool, window).await.unwrap();
    let found: Vec<(Kind, String, bool)> = report
        .found
        .iter()
        .map(|f| (f.kind, f.subject.clone(), f.fixed))
        .collect();
    let expected = [
        (
            Kind::AmountMismatch,
            order_row(&app, &id("bob")).await.1.unwrap(),
            false,
        ),
        (Kind::OrderPaidWithoutCharge, id("cat"), false),
        (Kind::ChargeWithoutOrder, cat_real.clone(), false),
        (
            Kind::RefundUnrecorded,
            eve_refund["id"].as_str().unwrap().to_owned(),
            false,
        ),
        (Kind::RefundMissing, "re_planted_nowhere".to_owned(), false),
        (Kind::RefundUnrecorded, fay_real.clone(), false),
        (
            Kind::ChargeWithoutOrder,
            dan_late["id"].as_str().unwrap().to_owned(),
            true,
        ),
        (
            Kind::ChargeWithoutOrder,
            orphan["id"].as_str().unwrap().to_owned(),
            false,
        ),
    ];
    for want in &expected {
        assert!(found.contains(want), "{want:?} not found in {found:#?}");
    }
    assert_eq!(found.len(), expected.len(), "{found:#?}");
    assert!(report.charges >= 7, "{report:?}");
    // Nothing about ann's clean order.
    assert!(
        !report
            .found
            .iter()
            .any(|f| f.order.is_some_and(|o| o.to_string() == id("ann")))
    );

    // Fixed: dan's late charge ended as tickets or all of it refunded, never neither.
    let (dan_state, _, _) = order_row(&app, &dan_order).await;
    let late = app.sandbox.as_ref().unwrap().intents_for(&dan_order).await;
    let late = late.iter().find(|i| i["id"] == dan_late["id"]).unwrap();
    let refunded = late["amount_refunded_cents"].as_i64().unwrap();
    let tickets: i64 = sqlx::query_scalar("SELECT count(*) FROM tickets WHERE order_id = $1::uuid AND state = 'valid'")
        .bind(&dan_order)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(
        (dan_state == "confirmed" && tickets == 2 && refunded == 0)
            || (dan_state == "payment_failed" && tickets == 0 && refunded == dan_total),
        "dan: {dan_state}, {tickets} tickets, {refunded} refunded"
    );
    // Not fixed: cat's real charge is still taken, nobody refunded it.
    let cat_charge = app.sandbox.as_ref().unwrap().intents_for(&id("cat")).await;
    assert_eq!(cat_charge[0]["amount_refunded_cents"], 0);

    // One notification per mismatch, to the operators' webhook only.
    let told = books_notifications(&app).await;
    assert_eq!(told.len(), expected.len());
    assert!(
        told.iter()
            .all(|(_, channels)| channels == &["operator_webhook".to_owned()])
    );

    // The same window again: another core that finds it taken does nothing.
    assert!(matches!(
        books::run(checkout, &app.pool, window).await,
        Err(BooksError::Busy)
    ));
    // An overlapping window sees the open ones again: no new rows, nobody
    // told twice; dan's charge is counted by now.
    let again = books::run(
        checkout,
        &app.pool,
        Window {
            since_unix: window.since_unix + 1,
            until_unix: unix_now() + 5,
        },
    )
    .await
    .unwrap();
    assert_eq!(again.found.len(), expected.len() - 1, "{:#?}", again.found);
    assert_eq!(books_notifications(&app).await.len(), expected.len());
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM books_mismatches")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(rows, expected.len() as i64);

    // The portal: the organisation's mismatches (not the stranger's charge).
    let editor = signed_in_operator(&app, org, "books-editor@example.com", Role::Editor).await;
    let viewer = signed_in_operator(&app, org, "books-viewer@example.com", Role::Viewer).await;
    let list = |token: String, query: &'static str| {
        let app = &app;
        async move {
            let r = app
                .http
                .get(app.url(&format!("/v1/portal/books/mismatches{query}")))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            (r.status(), r.json::<Value>().await.unwrap())
        }
    };
    let (s, all) = list(viewer.clone(), "").await;
    assert_eq!(s, StatusCode::OK, "{all}");
    assert_eq!(all.as_array().unwrap().len(), expected.len() - 1, "{all}");
    let (_, open) = list(viewer.clone(), "?state=open").await;
    assert_eq!(open.as_array().unwrap().len(), expected.len() - 2, "{open}");
    let (s, bad) = list(viewer.clone(), "?state=sideways").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}");
    let cat_row = open
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["kind"] == "order_paid_without_charge")
        .unwrap();
    let fixed = all.as_array().unwrap().iter().find(|m| m["state"] == "fixed").unwrap();
    let resolve = |token: String, id: &Value, body: Value| {
        let app = &app;
        let path = format!("/v1/portal/books/mismatches/{id}/resolve");
        async move {
            let r = app
                .http
                .post(app.url(&path))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            (r.status(), r.json::<Value>().await.unwrap())
        }
    };
    let note = json!({"resolution": "the order's charge id was restored from the provider's dashboard"});
    let (s, p) = resolve(viewer.clone(), &cat_row["id"], note.clone()).await;
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("role_forbidden")),
        "{p}"
    );
    let (s, p) = resolve(editor.clone(), &cat_row["id"], json!({"resolution": "  "})).await;
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_resolution"))
    );
    let (s, done) = resolve(editor.clone(), &cat_row["id"], note.clone()).await;
    assert_eq!(
        (s, done["state"].as_str()),
        (StatusCode::OK, Some("resolved")),
        "{done}"
    );
    let (s, p) = resolve(editor.clone(), &cat_row["id"], note.clone()).await;
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::CONFLICT, Some("mismatch_not_open"))
    );
    let (s, p) = resolve(editor.clone(), &fixed["id"], note.clone()).await;
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::CONFLICT, Some("mismatch_not_open"))
    );
    let stranger_row: i64 = sqlx::query_scalar("SELECT id FROM books_mismatches WHERE subject = $1")
        .bind(orphan["id"].as_str().unwrap())
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let (s, p) = resolve(editor.clone(), &json!(stranger_row), note.clone()).await;
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("mismatch_not_found"))
    );

    // The portal's Money page lists them; an editor resolves one there.
    {
        use crate::common::browser::{Browser, DESKTOP};
        let b = Browser::start_sized(DESKTOP).await;
        b.goto(&format!("{}/portal/sign-in?next=/portal/money", app.direct))
            .await;
        b.wait_for("return document.getElementById('op-email')", Duration::from_secs(10))
            .await;
        b.type_into("#op-email", "books-editor@example.com").await;
        b.type_into("#op-password", OPERATOR_PASSWORD).await;
        b.click("form button[type=submit]", None).await;
        let rows = b
            .wait_for(
                "const n = document.querySelectorAll('[data-mismatch]').length; return n > 0 && n",
                Duration::from_secs(15),
            )
            .await;
        assert_eq!(rows.as_i64(), Some(expected.len() as i64 - 1));
        let open_row = open
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["kind"] == "amount_mismatch")
            .unwrap()["id"]
            .clone();
        b.eval(&format!(
            "const r = document.querySelector('[data-mismatch=\"{open_row}\"]');
             r.querySelector('input[name=resolution]').value = 'refunded the difference by hand';
             r.querySelector('button').click(); return true"
        ))
        .await;
        b.wait_for(
            &format!(
                "const r = document.querySelector('[data-mismatch=\"{open_row}\"]'); return r && r.textContent.endsWith('resolved')"
            ),
            Duration::from_secs(10),
        )
        .await;
        let (state, note): (String, Option<String>) =
            sqlx::query_as("SELECT state, resolution FROM books_mismatches WHERE id = $1")
                .bind(open_row.as_i64().unwrap())
                .fetch_one(&app.pool)
                .await
                .unwrap();
        assert_eq!(
            (state.as_str(), note.as_deref()),
            ("resolved", Some("refunded the difference by hand"))
        );
        b.quit().await;
    }

    // Another organisation sees none of them.
    let other = auth::ensure_organisation(&app.pool, "Other Org").await.unwrap();
    let outsider = signed_in_operator(&app, other, "books-outsider@example.com", Role::Owner).await;
    let (_, theirs) = list(outsider, "").await;
    assert_eq!(theirs, json!([]));
    app.finish().await;
}

#[tokio::test]
async fn reconciliation_finds_a_charge_whose_answer_was_lost_instead_of_making_another() {
    let app = TestApp::start_with(Options {
        sandbox: true,
        reconcile: true,
        reconcile_after_secs: 1,
        payments_timeout_ms: 500,
        ..Options::default()
    })
    .await;
    let v = venue(&app.pool, &small_chart("lost", &["A"], 1, 4)).await;
    let e: EventId = event(&app.pool, "lost", "lost", rules(4)).await;
    let seats = seat_ids(&app.pool, v).await;
    let fan = app.sign_in("lou").await;
    let (s, h) = app.hold(&fan, e, "h-lou", &json!({"seat_ids": &seats[0..2]})).await;
    assert_eq!(s, StatusCode::CREATED, "{h}");
    // The provider charges, but neither its answer nor a webhook arrives.
    let (s, _, o) = post_keyed(
        &app,
        &fan,
        "o-lou",
        "/v1/orders",
        json!({"hold_id": h["hold_id"], "payment_method": "pm_card_lost_answer_lou"}),
    )
    .await;
    assert!(s.is_success(), "{o}");
    assert_eq!(o["state"], "pending_payment", "{o}");
    let order = o["order_id"].as_str().unwrap().to_owned();
    // ...and then forgets the key, as Stripe does after a day: sending the
    // charge again with it would make a second one.
    let sandbox = app.sandbox.as_ref().unwrap();
    let r = reqwest::Client::new()
        .post(format!("{}/sandbox/idempotency_keys/expire", sandbox.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let state = loop {
        let (state, _, _) = order_row(&app, &order).await;
        if state == "confirmed" || std::time::Instant::now() > deadline {
            break state;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(state, "confirmed");
    let intents = sandbox.intents_for(&order).await;
    assert_eq!(
        intents.len(),
        1,
        "one charge, found rather than made again: {intents:#?}"
    );
    assert_eq!(intents[0]["status"], "succeeded");
    app.finish().await;
}
