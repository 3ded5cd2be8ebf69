//! Fans' data on request over real HTTP with the payment sandbox: a fan
//! who bought, transferred a ticket and refunded one downloads all of it;
//! erasure (two racing, one effect) leaves no column of any table holding
//! the fan's id, name or e-mail address while the books still add up; the
//! old token gets nothing back; an owner's export and erasure of another
//! fan are in the organisation's audit log; refusals have stable codes.

use std::time::Duration;

use crate::common::*;
use booking_core::ids::EventId;
use booking_core::portal::Role;
use booking_core::portal::auth;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

const FAN: &str = "fan-gdpr-7f3c9a1e52";
const NAME: &str = "Zelda Quixote-Marwick";
const FRIEND: &str = "friend-gdpr-0b8d44c1";

async fn sign_in_named(app: &TestApp, fan: &str, name: &str) -> String {
    let r = app
        .http
        .post(app.url("/v1/dev/sign-in"))
        .json(&json!({"fan_id": fan, "name": name}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned()
}

async fn get_with(app: &TestApp, token: &str, path: &str) -> (StatusCode, Value) {
    let r = app.http.get(app.url(path)).bearer_auth(token).send().await.unwrap();
    let s = r.status();
    (s, r.json().await.unwrap_or(Value::Null))
}

async fn post_plain(app: &TestApp, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
    let r = app
        .http
        .post(app.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let s = r.status();
    (s, r.json().await.unwrap_or(Value::Null))
}

/// An event of a new organisation, and the organisation's id.
async fn stage(app: &TestApp, slug: &str, org_name: &str) -> (EventId, Vec<i64>, booking_core::ids::OrganisationId) {
    let v = venue(&app.pool, &small_chart(slug, &["A"], 1, 8)).await;
    let e = event(&app.pool, slug, slug, rules(8)).await;
    let org = auth::ensure_organisation(&app.pool, org_name).await.unwrap();
    sqlx::query("UPDATE events SET organisation_id = $2 WHERE id = $1")
        .bind(e.0)
        .bind(org.0)
        .execute(&app.pool)
        .await
        .unwrap();
    (e, seat_ids(&app.pool, v).await, org)
}

/// Every (table, column) of the database whose text form contains any of
/// `needles` (case-insensitive): each column of each table, whatever its
/// type, read as text.
async fn columns_holding(pool: &PgPool, needles: &[&str]) -> Vec<String> {
    let columns: Vec<(String, String)> = sqlx::query_as(
        r#"SELECT c.table_name::text, c.column_name::text FROM information_schema.columns c
           JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
           WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE' AND c.data_type <> 'bytea'
           ORDER BY 1, 2"#,
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(columns.len() > 100, "only {} columns?", columns.len());
    let mut found = Vec::new();
    for (table, column) in columns {
        for needle in needles {
            let sql = format!(r#"SELECT count(*) FROM "{table}" WHERE "{column}"::text ILIKE '%' || $1 || '%'"#);
            let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .bind(*needle)
                .fetch_one(pool)
                .await
                .unwrap();
            if n > 0 {
                found.push(format!("{table}.{column} holds {needle:?} ({n} rows)"));
            }
        }
    }
    found
}

/// What the books say of the event: orders' totals, refunds, tickets.
async fn books(pool: &PgPool, e: EventId) -> (i64, i64, i64, Vec<String>) {
    let (totals, orders): (i64, Vec<uuid::Uuid>) = sqlx::query_as(
        "SELECT coalesce(sum(total_cents), 0)::bigint, coalesce(array_agg(id ORDER BY id), '{}') FROM orders WHERE event_id = $1",
    )
    .bind(e.0)
    .fetch_one(pool)
    .await
    .unwrap();
    let refunds: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(r.amount_cents), 0)::bigint FROM refunds r JOIN orders o ON o.id = r.order_id WHERE o.event_id = $1",
    )
    .bind(e.0)
    .fetch_one(pool)
    .await
    .unwrap();
    let tickets: i64 = sqlx::query_scalar("SELECT count(*) FROM tickets WHERE event_id = $1")
        .bind(e.0)
        .fetch_one(pool)
        .await
        .unwrap();
    (totals, refunds, tickets, orders.iter().map(|o| o.to_string()).collect())
}

/// The sandbox's charges and refunds for these orders.
async fn charged(app: &TestApp, orders: &[String]) -> (i64, i64) {
    let sandbox = app.sandbox.as_ref().unwrap();
    let (mut charged, mut refunded) = (0, 0);
    for o in orders {
        for intent in sandbox.intents_for(o).await {
            if intent["status"] == "succeeded" {
                charged += intent["amount_cents"].as_i64().unwrap();
                refunded += intent["amount_refunded_cents"].as_i64().unwrap_or(0);
            }
        }
    }
    (charged, refunded)
}

async fn wait_refunds_settled(pool: &PgPool) {
    for _ in 0..100 {
        let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM refunds WHERE state = 'pending'")
            .fetch_one(pool)
            .await
            .unwrap();
        if pending == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("a refund stayed pending");
}

#[tokio::test]
async fn a_fan_downloads_everything_then_erasure_leaves_no_trace_and_the_books_add_up() {
    let app = TestApp::start_with(Options {
        sandbox: true,
        reconcile: true,
        reconcile_after_secs: 1,
        ..Options::default()
    })
    .await;
    let (e, seats, org) = stage(&app, "gd", "GDPR Org").await;
    let (_, _, other_org) = stage(&app, "gd2", "Other Org").await;
    let owner = signed_in_operator(&app, org, "owner@gdpr.test", Role::Owner).await;
    let viewer = signed_in_operator(&app, org, "viewer@gdpr.test", Role::Viewer).await;
    let stranger = signed_in_operator(&app, other_org, "owner@other.test", Role::Owner).await;

    // The fan buys three seats, gives one to a friend, refunds one, and
    // holds one more seat without buying it.
    let fan = sign_in_named(&app, FAN, NAME).await;
    let o = buy_with_own_card(&app, (FAN, &fan), e, "a", &seats[0..3]).await;
    let order = o["order_id"].as_str().unwrap().to_owned();
    let t0 = o["tickets"][0]["ticket_id"].as_str().unwrap().to_owned();
    let t1 = o["tickets"][1]["ticket_id"].as_str().unwrap().to_owned();
    let (s, _, p) = post_keyed(
        &app,
        &fan,
        "t0",
        &format!("/v1/tickets/{t0}/transfer"),
        json!({"to_fan_id": FRIEND}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let (s, _, p) = post_keyed(
        &app,
        &fan,
        "r1",
        &format!("/v1/orders/{order}/refunds"),
        json!({"ticket_ids": [t1]}),
    )
    .await;
    assert!(s == StatusCode::CREATED || s == StatusCode::ACCEPTED, "{s} {p}");
    wait_refunds_settled(&app.pool).await;
    let (s, h) = app.hold(&fan, e, "open", &json!({"seat_ids": [seats[5]]})).await;
    assert_eq!(s, StatusCode::CREATED, "{h}");

    // The export holds all of it.
    let (s, doc) = get_with(&app, &fan, "/v1/me/data").await;
    assert_eq!(s, StatusCode::OK, "{doc}");
    assert_eq!(doc["format"], "usher.fan-data.v1");
    assert_eq!((doc["fan_id"].as_str(), doc["name"].as_str()), (Some(FAN), Some(NAME)));
    let email = doc["email"].as_str().unwrap().to_owned();
    assert!(email.starts_with(&format!("{FAN}@")), "{email}");
    let len = |k: &str| doc[k].as_array().map(Vec::len).unwrap_or(usize::MAX);
    assert_eq!(len("orders"), 1);
    assert_eq!(doc["orders"][0]["id"].as_str(), Some(order.as_str()));
    assert!(doc["orders"][0].get("charge_lines").is_some(), "the order's lines");
    assert_eq!(len("tickets"), 2, "the transferred ticket is the friend's now");
    assert_eq!(len("transfers"), 1);
    assert_eq!(doc["transfers"][0]["to_fan_id"], FRIEND);
    assert_eq!(len("refunds"), 1);
    assert_eq!(len("holds"), 2);
    assert!(len("notifications") >= 3, "{}", doc["notifications"]);
    assert_eq!(doc["truncated"], json!([]));
    assert!(doc["tickets"][0].get("secret").is_none(), "no ticket secrets");
    assert!(doc["orders"][0].get("fingerprint").is_none());

    // Operators: owners only, their organisation's fans only, with a reason.
    let data = format!("/v1/portal/fans/{FAN}/data");
    let (s, p) = post_plain(&app, &viewer, &data, json!({"reason": "ticket 1"})).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::FORBIDDEN, Some("role_forbidden")));
    let (s, p) = post_plain(&app, &stranger, &data, json!({"reason": "ticket 1"})).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::NOT_FOUND, Some("fan_not_found")));
    let (s, p) = post_plain(&app, &owner, &data, json!({"reason": "  "})).await;
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_reason"))
    );
    let (s, p) = post_plain(&app, &owner, &data, json!({"why": "x"})).await;
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_body"))
    );
    let (s, p) = post_plain(&app, &owner, "/v1/portal/fans/nobody-here/data", json!({"reason": "x"})).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::NOT_FOUND, Some("fan_not_found")));
    let long = format!("/v1/portal/fans/{}/data", "x".repeat(129));
    let (s, p) = post_plain(&app, &owner, &long, json!({"reason": "x"})).await;
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_fan_id"))
    );
    let (s, p) = post_plain(&app, &owner, &data, json!({"reason": "support ticket 4711"})).await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(p["fan_id"], FAN);
    assert_eq!(p["orders"], doc["orders"]);

    // Bad input to the fan's erasure.
    let r = app
        .http
        .post(app.url("/v1/me/erasure"))
        .bearer_auth(&fan)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "idempotency_key_missing");
    let r = app
        .http
        .post(app.url("/v1/me/erasure"))
        .header("idempotency-key", "k")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    let (totals, refunds, tickets, orders) = books(&app.pool, e).await;
    let (charges, refunded) = charged(&app, &orders).await;
    assert_eq!((totals, refunds), (charges, refunded), "the books add up before");
    assert!(refunds > 0);

    // Two erasures at once: one does it, the other answers it again.
    let started = std::time::Instant::now();
    let (a, b) = tokio::join!(
        post_keyed(&app, &fan, "erase-1", "/v1/me/erasure", json!({})),
        post_keyed(&app, &fan, "erase-2", "/v1/me/erasure", json!({})),
    );
    eprintln!("two racing erasures answered in {:?}", started.elapsed());
    assert_eq!((a.0, b.0), (StatusCode::OK, StatusCode::OK), "{} {}", a.2, b.2);
    assert_eq!(a.2["fan_ref"], b.2["fan_ref"]);
    let fan_ref = a.2["fan_ref"].as_str().unwrap().to_owned();
    assert!(fan_ref.starts_with("erased:"), "{fan_ref}");
    let replays = [&a.1, &b.1]
        .iter()
        .filter(|h| h.get("idempotent-replayed").is_some())
        .count();
    assert_eq!(replays, 1, "exactly one erasure did it: {} / {}", a.2, b.2);
    let done = if a.1.get("idempotent-replayed").is_some() {
        &b.2
    } else {
        &a.2
    };
    assert_eq!(done["changed"]["holds_released"], 1, "{done}");
    assert_eq!(done["changed"]["orders"], 1, "{done}");
    let held: i64 = sqlx::query_scalar("SELECT count(*) FROM seat_claims WHERE event_id = $1 AND seat_id = $2")
        .bind(e.0)
        .bind(seats[5])
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(held, 0, "the open hold's seat is free again");

    // No column of any table holds the fan's id, name or address.
    let found = columns_holding(&app.pool, &[FAN, NAME, &email]).await;
    assert!(found.is_empty(), "{found:#?}");

    // The books still add up, with the same figures.
    let after = books(&app.pool, e).await;
    assert_eq!(after, (totals, refunds, tickets, orders.clone()));
    assert_eq!(charged(&app, &orders).await, (charges, refunded));
    let owners: Vec<String> =
        sqlx::query_scalar("SELECT owner_fan_id FROM tickets WHERE order_id = $1::uuid ORDER BY id")
            .bind(&order)
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert!(
        owners.contains(&FRIEND.to_owned()) && owners.contains(&fan_ref),
        "{owners:?}"
    );

    // The books keep working: the owner refunds the erased fan's last
    // valid ticket; the money goes back, the mail goes nowhere.
    let t2 = o["tickets"][2]["ticket_id"].as_str().unwrap().to_owned();
    let last_outbox: i64 = sqlx::query_scalar("SELECT max(id) FROM outbox")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let (s, _, p) = post_keyed(
        &app,
        &owner,
        "late",
        &format!("/v1/portal/orders/{order}/refunds"),
        json!({"ticket_ids": [t2], "reason": "seat moved"}),
    )
    .await;
    assert!(s == StatusCode::CREATED || s == StatusCode::ACCEPTED, "{s} {p}");
    wait_refunds_settled(&app.pool).await;
    let (_, refunds_now, _, _) = books(&app.pool, e).await;
    assert!(refunds_now > refunds);
    assert_eq!(charged(&app, &orders).await, (charges, refunds_now));
    let mut tried = None;
    for _ in 0..100 {
        tried = sqlx::query_as::<_, (String, Option<String>)>(
            r#"SELECT d.state, d.last_error FROM outbox_deliveries d JOIN outbox o ON o.id = d.outbox_id
               WHERE o.fan_id = $1 AND o.topic = 'refund.issued' AND d.channel = 'email' AND d.attempts > 0 AND o.id > $2"#,
        )
        .bind(&fan_ref)
        .bind(last_outbox)
        .fetch_optional(&app.pool)
        .await
        .unwrap();
        if tried.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (state, error) = tried.expect("the mail was tried");
    assert_ne!(state, "delivered");
    assert!(error.unwrap_or_default().contains("erased"));

    // The old token gets nothing back.
    let (s, doc) = get_with(&app, &fan, "/v1/me/data").await;
    assert_eq!(s, StatusCode::OK);
    for group in [
        "orders",
        "tickets",
        "holds",
        "refunds",
        "transfers",
        "notifications",
        "waitlist_entries",
    ] {
        assert_eq!(doc[group], json!([]), "{group}");
    }
    let (_, mine) = get_with(&app, &fan, "/v1/me/tickets").await;
    assert_eq!(mine, json!([]));
    // Erasing again answers the first erasure.
    let (s, h, again) = post_keyed(&app, &fan, "erase-3", "/v1/me/erasure", json!({})).await;
    assert_eq!((s, again["fan_ref"].as_str()), (StatusCode::OK, Some(fan_ref.as_str())));
    assert!(h.get("idempotent-replayed").is_some());

    // The owner erases the friend (who holds a ticket to the event) for them.
    let erase_friend = format!("/v1/portal/fans/{FRIEND}/erasure");
    let (s, _, p) = post_keyed(&app, &viewer, "v1", &erase_friend, json!({"reason": "x"})).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::FORBIDDEN, Some("role_forbidden")));
    let (s, _, p) = post_keyed(&app, &stranger, "s1", &erase_friend, json!({"reason": "x"})).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::NOT_FOUND, Some("fan_not_found")));
    let (s, _, p) = post_keyed(
        &app,
        &owner,
        "o1",
        &erase_friend,
        json!({"reason": "support ticket 4712"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    let friend_ref = p["fan_ref"].as_str().unwrap().to_owned();
    let (s, _, p) = post_keyed(
        &app,
        &owner,
        "o2",
        &erase_friend,
        json!({"reason": "support ticket 4712"}),
    )
    .await;
    assert_eq!(
        (s, p["fan_ref"].as_str()),
        (StatusCode::OK, Some(friend_ref.as_str())),
        "answered again"
    );
    let (s, _, p) = post_keyed(&app, &stranger, "s2", &erase_friend, json!({"reason": "x"})).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::NOT_FOUND, Some("fan_not_found")));
    let found = columns_holding(&app.pool, &[FRIEND]).await;
    assert!(found.is_empty(), "{found:#?}");

    // The audit log: the export and the erasures, by pseudonym, this
    // organisation's only, owners only.
    let (s, log) = get_with(&app, &owner, "/v1/portal/audit").await;
    assert_eq!(s, StatusCode::OK, "{log}");
    let entries: Vec<(String, String, String)> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["action"].as_str().unwrap().to_owned(),
                x["fan_ref"].as_str().unwrap().to_owned(),
                x["operator_email"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let by_owner = "owner@gdpr.test".to_owned();
    assert_eq!(
        entries,
        vec![
            ("erasure".to_owned(), friend_ref.clone(), by_owner.clone()),
            ("erasure".to_owned(), friend_ref.clone(), by_owner.clone()),
            ("export".to_owned(), fan_ref.clone(), by_owner.clone()),
        ]
    );
    assert_eq!(log[2]["reason"], "support ticket 4711");
    let (s, log) = get_with(&app, &stranger, "/v1/portal/audit").await;
    assert_eq!((s, log), (StatusCode::OK, json!([])));
    let (s, p) = get_with(&app, &viewer, "/v1/portal/audit").await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::FORBIDDEN, Some("role_forbidden")));
    let (s, p) = get_with(&app, &owner, "/v1/portal/audit?before=x").await;
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_query"))
    );
    app.finish().await;
}

#[tokio::test]
async fn erasure_waits_while_an_order_is_being_paid() {
    let app = TestApp::start_with(Options {
        sandbox: true,
        ..Options::default()
    })
    .await;
    let (e, seats, _) = stage(&app, "gw", "Wait Org").await;
    let fan = sign_in_named(&app, "fan-waits-3c1d", "Waiting Fan").await;
    let (s, h) = app.hold(&fan, e, "h", &json!({"seat_ids": [seats[0]]})).await;
    assert_eq!(s, StatusCode::CREATED, "{h}");
    // 3-D Secure: the order waits for the fan's answer.
    let (s, _, o) = post_keyed(
        &app,
        &fan,
        "o",
        "/v1/orders",
        json!({"hold_id": h["hold_id"], "payment_method": "pm_card_requires_action"}),
    )
    .await;
    assert_eq!(
        (s, o["payment_status"].as_str()),
        (StatusCode::ACCEPTED, Some("requires_action")),
        "{o}"
    );
    let (s, _, p) = post_keyed(&app, &fan, "e", "/v1/me/erasure", json!({})).await;
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::CONFLICT, Some("order_in_progress")),
        "{p}"
    );
    assert_eq!(p["order_id"], o["order_id"]);
    // Nothing was changed.
    let still: i64 = sqlx::query_scalar("SELECT count(*) FROM orders WHERE fan_id = 'fan-waits-3c1d'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(still, 1);
    app.finish().await;
}

#[tokio::test]
async fn erasure_waits_for_a_payout_owed_then_ends_listings_and_waitlist_places_and_removes_the_account() {
    let app = TestApp::start_with_config(
        Options {
            sandbox: true,
            ..Options::default()
        },
        |c| c.checkout.payout_delay_secs = 0,
    )
    .await;
    let (e, seats, _) = stage(&app, "gp", "Payout Org").await;
    const SELLER: &str = "seller-gdpr-5e2a91";
    let seller = sign_in_named(&app, SELLER, "Sally Seller-Gdpr").await;
    let o = buy_with_own_card(&app, (SELLER, &seller), e, "s", &seats[0..2]).await;
    let bea = app.sign_in("bea").await;
    buy_with_own_card(&app, ("bea", &bea), e, "b", &seats[2..8]).await;
    let r = app
        .http
        .put(app.url("/v1/me/payout-account"))
        .bearer_auth(&seller)
        .json(&json!({"account_id": "acct_ok_sally"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let mut listings = vec![];
    for (i, t) in o["tickets"].as_array().unwrap().iter().enumerate() {
        let ticket = t["ticket_id"].as_str().unwrap();
        let (s, _, l) = post_keyed(
            &app,
            &seller,
            &format!("list-{i}"),
            &format!("/v1/tickets/{ticket}/listings"),
            json!({"price_cents": 3000}),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{l}");
        listings.push(l["listing_id"].as_str().unwrap().to_owned());
    }
    // Bea buys the first listing: a payout is owed to the seller.
    let (s, _, bought) = post_keyed(
        &app,
        &bea,
        "buy",
        "/v1/orders",
        json!({"listing_id": listings[0], "payment_method": "pm_card_ok_bea"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{bought}");
    // The event is sold out: the seller joins its waitlist.
    let r = app
        .http
        .post(app.url(&format!("/v1/events/{}/waitlist", e.0)))
        .bearer_auth(&seller)
        .json(&json!({"quantity": 1}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());

    let (s, _, p) = post_keyed(&app, &seller, "e1", "/v1/me/erasure", json!({})).await;
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::CONFLICT, Some("payout_owed")),
        "{p}"
    );
    assert_eq!(p["listing_id"].as_str(), Some(listings[0].as_str()));

    // Paid: now the erasure goes through.
    let checkout = &app.running.state.checkout;
    booking_core::checkout::reconcile::payouts_once(checkout, &app.pool, 0, 50)
        .await
        .unwrap();
    let (s, _, p) = post_keyed(&app, &seller, "e2", "/v1/me/erasure", json!({})).await;
    assert_eq!(s, StatusCode::OK, "{p}");
    let changed = &p["changed"];
    assert_eq!(
        (
            &changed["listings_cancelled"],
            &changed["waitlist_entries_left"],
            &changed["payout_accounts_removed"],
            &changed["resale_payouts"]
        ),
        (&json!(1), &json!(1), &json!(1), &json!(1)),
        "{p}"
    );
    let found = columns_holding(&app.pool, &[SELLER, "Sally Seller-Gdpr"]).await;
    assert!(found.is_empty(), "{found:#?}");
    // The payout keeps what the books need (amount, destination, transfer).
    let (state, net, transfer): (String, i64, Option<String>) =
        sqlx::query_as("SELECT state, net_cents, transfer_id FROM resale_payouts WHERE listing_id = $1::uuid")
            .bind(&listings[0])
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(state, "paid");
    assert!(net > 0 && transfer.is_some());
    let open: i64 = sqlx::query_scalar("SELECT count(*) FROM resale_listings WHERE state = 'listed'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(open, 0);
    app.finish().await;
}
