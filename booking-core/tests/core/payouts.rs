//! Resale payouts, paid through the payment sandbox's connected accounts
//! and transfers (Stripe Connect's shape), over real HTTP: a payout waits
//! for its seller's account; the account is checked with the provider when
//! named; a refused transfer is `failed`, told to operators and listed in
//! the portal, and naming an account again pays it on a new attempt;
//! concurrent jobs and retries send exactly one transfer.

use std::sync::Arc;

use crate::common::*;
use booking_core::checkout::payouts::{self, Paid};
use booking_core::checkout::reconcile;
use booking_core::portal::Role;
use booking_core::portal::auth;
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn put_account(app: &TestApp, token: &str, account: &str) -> (StatusCode, Value) {
    let r = app
        .http
        .put(app.url("/v1/me/payout-account"))
        .bearer_auth(token)
        .json(&json!({"account_id": account}))
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap())
}

async fn get_json(app: &TestApp, token: &str, path: &str) -> (StatusCode, Value) {
    let r = app.http.get(app.url(path)).bearer_auth(token).send().await.unwrap();
    (r.status(), r.json().await.unwrap())
}

async fn transfers(app: &TestApp) -> Vec<Value> {
    let sandbox = app.sandbox.as_ref().unwrap();
    let r = reqwest::Client::new()
        .get(format!("{}/v1/transfers?limit=100", sandbox.base))
        .bearer_auth(SANDBOX_API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json::<Value>().await.unwrap()["data"].as_array().cloned().unwrap()
}

async fn payout_state(app: &TestApp, listing: &str) -> (String, i32) {
    sqlx::query_as("SELECT state, attempt FROM resale_payouts WHERE listing_id = $1::uuid")
        .bind(listing)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_resale_payout_waits_for_an_account_fails_visibly_and_is_sent_exactly_once() {
    let app = Arc::new(
        TestApp::start_with_config(
            Options {
                sandbox: true,
                ..Options::default()
            },
            |c| c.checkout.payout_delay_secs = 0,
        )
        .await,
    );
    let v = venue(&app.pool, &small_chart("po", &["A"], 1, 4)).await;
    let e = event(&app.pool, "po", "po", rules(4)).await;
    let org = auth::ensure_organisation(&app.pool, "Payout Org").await.unwrap();
    sqlx::query("UPDATE events SET organisation_id = $2 WHERE id = $1")
        .bind(e.0)
        .bind(org.0)
        .execute(&app.pool)
        .await
        .unwrap();
    let seats = seat_ids(&app.pool, v).await;
    let sal = app.sign_in("sal").await;
    let o = buy_with_own_card(&app, ("sal", &sal), e, "s", &seats[0..1]).await;
    let ticket = o["tickets"][0]["ticket_id"].as_str().unwrap().to_owned();
    let (s, _, listing) = post_keyed(
        &app,
        &sal,
        "list",
        &format!("/v1/tickets/{ticket}/listings"),
        json!({"price_cents": 3000}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{listing}");
    let lid = listing["listing_id"].as_str().unwrap().to_owned();
    let bea = app.sign_in("bea").await;
    let (s, _, bought) = post_keyed(
        &app,
        &bea,
        "buy",
        "/v1/orders",
        json!({"listing_id": lid, "payment_method": "pm_card_ok_bea"}),
    )
    .await;
    assert_eq!(
        (s, bought["state"].as_str()),
        (StatusCode::CREATED, Some("confirmed")),
        "{bought}"
    );
    let checkout = &app.running.state.checkout;

    // No account yet: the payout waits, nothing is sent.
    reconcile::payouts_once(checkout, &app.pool, 0, 50).await.unwrap();
    assert_eq!(payout_state(&app, &lid).await, ("owed".to_owned(), 1));
    assert!(transfers(&app).await.is_empty());

    // Accounts are checked with the provider when named.
    for (account, status, code) in [
        ("", StatusCode::UNPROCESSABLE_ENTITY, "invalid_payout_account"),
        (
            "acct_missing_sal",
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_payout_account",
        ),
        (
            "../v1/payment_intents",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_payout_account",
        ),
        ("0", StatusCode::UNPROCESSABLE_ENTITY, "invalid_payout_account"),
        (
            "acct_../../v1/refunds",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_payout_account",
        ),
        ("acct_closed_sal", StatusCode::CONFLICT, "payout_account_disabled"),
    ] {
        let (s, p) = put_account(&app, &sal, account).await;
        assert_eq!((s, p["code"].as_str()), (status, Some(code)), "{account}: {p}");
    }
    // The account is closed after it was named: the transfer is refused.
    sqlx::query(
        "INSERT INTO fan_payout_accounts (fan_id, provider, account_id) VALUES ('sal', 'sandbox', 'acct_closed_later')",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    // Make the payout due again at once (the wait above pushed it back).
    sqlx::query("UPDATE resale_payouts SET next_check_at = now()")
        .execute(&app.pool)
        .await
        .unwrap();
    reconcile::payouts_once(checkout, &app.pool, 0, 50).await.unwrap();
    assert_eq!(payout_state(&app, &lid).await, ("failed".to_owned(), 1));
    assert!(transfers(&app).await.is_empty());
    let told: Vec<(Value, i64)> = sqlx::query_as(
        r#"SELECT o.payload, (SELECT count(*) FROM outbox_deliveries d WHERE d.outbox_id = o.id AND d.channel = 'email')
           FROM outbox o WHERE o.topic = 'payout.failed'"#,
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(told.len(), 1);
    assert_eq!(
        (told[0].0["failure_code"].as_str(), told[0].1),
        (Some("account_closed"), 0)
    );
    let op = signed_in_operator(&app, org, "payouts@example.com", Role::Viewer).await;
    let (s, failed) = get_json(&app, &op, "/v1/portal/payouts?state=failed").await;
    assert_eq!(s, StatusCode::OK, "{failed}");
    assert_eq!(failed.as_array().unwrap().len(), 1);
    assert_eq!(failed[0]["listing_id"], lid.as_str());
    let (s, p) = get_json(&app, &op, "/v1/portal/payouts?state=lost").await;
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_query"))
    );

    // The seller names a working account: owed again, on a new attempt,
    // and many jobs (and direct retries) at once send one transfer.
    let (s, a) = put_account(&app, &sal, "acct_ok_sal").await;
    assert_eq!((s, a["payouts_enabled"].as_bool()), (StatusCode::OK, Some(true)), "{a}");
    assert_eq!(payout_state(&app, &lid).await, ("owed".to_owned(), 2));
    let listing_id: uuid::Uuid = lid.parse().unwrap();
    let mut jobs = Vec::new();
    for i in 0..6 {
        let app = app.clone();
        jobs.push(tokio::spawn(async move {
            let checkout = &app.running.state.checkout;
            if i % 2 == 0 {
                reconcile::payouts_once(checkout, &app.pool, 0, 50)
                    .await
                    .map(|_| None)
                    .unwrap()
            } else {
                Some(payouts::pay(&app.pool, checkout.provider(), listing_id).await.unwrap())
            }
        }));
    }
    for j in jobs {
        if let Some(outcome) = j.await.unwrap() {
            assert!(matches!(outcome, Paid::Paid { .. } | Paid::NotOwed), "{outcome:?}");
        }
    }
    assert_eq!(payout_state(&app, &lid).await, ("paid".to_owned(), 2));
    let sent = transfers(&app).await;
    assert_eq!(sent.len(), 1, "{sent:#?}");
    let net: i64 = sqlx::query_scalar("SELECT net_cents FROM resale_payouts WHERE listing_id = $1::uuid")
        .bind(&lid)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(sent[0]["amount_cents"], net);
    assert_eq!(sent[0]["destination"], "acct_ok_sal");
    assert_eq!(sent[0]["transfer_group"], bought["order_id"]);

    // The seller sees it paid; the buyer has no payouts.
    let (_, mine) = get_json(&app, &sal, "/v1/me/payouts").await;
    assert_eq!(
        (mine[0]["state"].as_str(), mine[0]["transfer_id"] == sent[0]["id"]),
        (Some("paid"), true),
        "{mine}"
    );
    let (_, none) = get_json(&app, &bea, "/v1/me/payouts").await;
    assert_eq!(none, json!([]));
    // Paid once: more passes send nothing more.
    reconcile::payouts_once(checkout, &app.pool, 0, 50).await.unwrap();
    assert_eq!(transfers(&app).await.len(), 1);
    match Arc::try_unwrap(app) {
        Ok(app) => app.finish().await,
        Err(_) => panic!("the app is still shared"),
    }
}
