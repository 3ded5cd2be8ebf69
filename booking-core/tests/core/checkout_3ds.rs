//! 3-D Secure and other payments that wait, end to end (issue 23): through
//! the real payment sandbox (its challenge page answered as a browser
//! would, by a form POST), real PostgreSQL and the real service, with the
//! reconciliation job running and many fans ordering at once. The order
//! says what it waits for (`requires_action` and the page to send the fan
//! to, or `processing`) and until when; its hold is kept until then; the
//! answer (or the processor) finishes it either way, and a challenge never
//! answered ends with nothing charged and the seats back on sale.

use std::time::{Duration, Instant};

use crate::common::*;
use booking_core::catalog::EventRules;
use booking_core::ids::EventId;
use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};
use usher_shared::config::HttpUrl;

const RETURN_BASE: &str = "https://tickets.example";

async fn start(max_wait_secs: u64) -> TestApp {
    TestApp::start_with_config(
        Options {
            sandbox: true,
            reconcile: true,
            reconcile_after_secs: 0,
            pool_size: 16,
            ..Options::default()
        },
        |c| {
            c.checkout.max_payment_wait_secs = max_wait_secs;
            c.checkout.return_base_url = HttpUrl::parse(RETURN_BASE).unwrap();
        },
    )
    .await
}

/// A venue of 4 rows of 10 (rows 1-2 tier 1 at 30.00, rows 3-4 tier 2 at
/// 20.00) and an event on sale with this hold time.
async fn stage(app: &TestApp, slug: &str, hold_ttl_secs: i32) -> (EventId, Vec<i64>) {
    let v = venue(&app.pool, &small_chart(slug, &["A"], 4, 10)).await;
    let e = event(
        &app.pool,
        slug,
        slug,
        EventRules {
            hold_ttl_secs,
            hold_jitter_secs: 0,
            max_seats_per_fan: 4,
            protected: false,
        },
    )
    .await;
    (e, seat_ids(&app.pool, v).await)
}

/// One fan: signed in, holding `seats`.
struct Fan {
    token: String,
    hold: String,
}

async fn fan(app: &TestApp, e: EventId, name: &str, seats: &[i64]) -> Fan {
    let token = app.sign_in(name).await;
    let (s, h) = app
        .hold(&token, e, &format!("h-{name}"), &json!({"seat_ids": seats}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{h}");
    Fan {
        token,
        hold: h["hold_id"].as_str().unwrap().to_string(),
    }
}

async fn order(app: &TestApp, fan: &Fan, key: &str, pm: &str) -> (StatusCode, Value) {
    let r = app
        .http
        .post(app.url("/v1/orders"))
        .bearer_auth(&fan.token)
        .header("idempotency-key", key)
        .json(&json!({"hold_id": fan.hold, "payment_method": pm}))
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

async fn until_state(app: &TestApp, token: &str, id: &str, want: &str, within: Duration) -> Value {
    let deadline = tokio::time::Instant::now() + within;
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
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
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

/// A browser on the challenge page: reads it, presses a button (`complete`
/// or `fail`). Returns where the sandbox sends the browser next.
async fn answer_challenge(url: &str, answer: &str) -> String {
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = browser.get(url).send().await.unwrap().text().await.unwrap();
    assert!(
        page.contains(r#"value="complete""#) && page.contains(r#"value="fail""#),
        "{page}"
    );
    let r = browser
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("answer={answer}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{:?}", r.text().await);
    r.headers()["location"].to_str().unwrap().to_string()
}

/// (state, expires_at = the order's payment deadline) of the order's hold.
async fn hold_kept_until_deadline(app: &TestApp, order: &str) -> (String, bool) {
    sqlx::query_as(
        r#"SELECT h.state, h.expires_at = o.payment_deadline
           FROM orders o JOIN holds h ON h.id = o.hold_id WHERE o.id = $1::uuid"#,
    )
    .bind(order)
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

/// Many fans pay with cards that ask for 3-D Secure: each order waits with
/// the page to send its fan to, its hold kept until the payment deadline
/// (the order's time plus 15 minutes); each fan completes the challenge and
/// is sent back to the order's page; every order is confirmed with its
/// tickets, once, with one charge and no refund.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_fans_complete_3d_secure_and_each_order_is_confirmed_once() {
    const FANS: usize = 12;
    let app = start(900).await;
    let (e, seats) = stage(&app, "tdsok", 300).await;
    let fans = join_all((0..FANS).map(|i| {
        let app = &app;
        let seats = [seats[2 * i], seats[2 * i + 1]];
        async move { fan(app, e, &format!("fan{i}"), &seats).await }
    }))
    .await;
    let placed = join_all(fans.iter().enumerate().map(|(i, f)| {
        let app = &app;
        async move { order(app, f, "o", &format!("pm_card_requires_action_fan{i}")).await }
    }))
    .await;
    let base = sandbox(&app).base.clone();
    let mut ids = Vec::new();
    for (s, o) in &placed {
        assert_eq!(s, &StatusCode::ACCEPTED, "{o}");
        assert_eq!(
            (o["state"].as_str(), o["payment_status"].as_str()),
            (Some("pending_payment"), Some("requires_action")),
            "{o}"
        );
        let url = o["next_action"]["redirect_url"].as_str().unwrap();
        assert!(url.starts_with(&format!("{base}/sandbox/challenge/pi_")), "{o}");
        let created = chrono::DateTime::parse_from_rfc3339(o["created_at"].as_str().unwrap()).unwrap();
        let deadline = chrono::DateTime::parse_from_rfc3339(o["payment_deadline"].as_str().unwrap()).unwrap();
        assert_eq!((deadline - created).num_seconds(), 900, "the bound: {o}");
        ids.push(o["order_id"].as_str().unwrap().to_string());
    }
    for id in &ids {
        assert_eq!(
            hold_kept_until_deadline(&app, id).await,
            ("active".into(), true),
            "the hold is extended to the payment deadline"
        );
    }
    // Reconciliation asks meanwhile: still waiting, nothing charged twice.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(live_claims(&app.pool, e).await.len(), 2 * FANS);

    // Every fan answers at once; each time is from the answer to the order
    // seen confirmed.
    let times = join_all(placed.iter().zip(&fans).map(|((_, o), f)| {
        let app = &app;
        async move {
            let id = o["order_id"].as_str().unwrap();
            let started = Instant::now();
            let back = answer_challenge(o["next_action"]["redirect_url"].as_str().unwrap(), "complete").await;
            let intent = intent_of(app, id).await;
            assert_eq!(
                back,
                format!(
                    "{RETURN_BASE}/me/orders/{id}?payment_intent={}&redirect_status=succeeded",
                    intent["id"].as_str().unwrap()
                )
            );
            let done = until_state(app, &f.token, id, "confirmed", Duration::from_secs(15)).await;
            let took = started.elapsed();
            assert_eq!(done["tickets"].as_array().unwrap().len(), 2, "{done}");
            assert_eq!(done["payment_status"], Value::Null, "{done}");
            took
        }
    }))
    .await;
    let mut ms: Vec<u128> = times.iter().map(Duration::as_millis).collect();
    ms.sort_unstable();
    eprintln!(
        "3-D Secure, answer to confirmed, {FANS} at once: p50 {} ms, max {} ms",
        ms[FANS / 2],
        ms[FANS - 1]
    );

    let tickets: i64 = sqlx::query_scalar("SELECT count(*) FROM tickets WHERE event_id = $1 AND state = 'valid'")
        .bind(e.0)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(tickets, 2 * FANS as i64);
    let stats = sandbox(&app).stats().await;
    assert_eq!(
        (
            stats["intents"].as_i64(),
            stats["succeeded"].as_i64(),
            stats["refunds"].as_i64()
        ),
        (Some(FANS as i64), Some(FANS as i64), Some(0)),
        "{stats}"
    );
    app.finish().await;
}

/// A failed authentication (the fan presses Fail, or the bank refuses
/// whatever the fan does) is a decline: payment_failed with
/// `authentication_failed`, nothing charged, the hold still there (back to
/// its own time, no longer kept until the payment deadline), so another
/// card can pay for the same seats.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_authentication_fails_the_order_charges_nothing_and_keeps_the_hold() {
    const FANS: usize = 8;
    let app = start(900).await;
    let (e, seats) = stage(&app, "tdsno", 300).await;
    let fans = join_all((0..FANS).map(|i| {
        let app = &app;
        let seats = [seats[2 * i], seats[2 * i + 1]];
        async move { fan(app, e, &format!("fan{i}"), &seats).await }
    }))
    .await;
    join_all(fans.iter().enumerate().map(|(i, f)| {
        let app = &app;
        async move {
            // Half press Fail; half have a card whose bank refuses.
            let (pm, answer) = if i % 2 == 0 {
                (format!("pm_card_requires_action_fan{i}"), "fail")
            } else {
                (format!("pm_card_3ds_fails_fan{i}"), "complete")
            };
            let (s, o) = order(app, f, "o1", &pm).await;
            assert_eq!(
                (s, o["payment_status"].as_str()),
                (StatusCode::ACCEPTED, Some("requires_action")),
                "{o}"
            );
            let id = o["order_id"].as_str().unwrap();
            let back = answer_challenge(o["next_action"]["redirect_url"].as_str().unwrap(), answer).await;
            assert!(back.ends_with("&redirect_status=failed"), "{back}");
            let failed = until_state(app, &f.token, id, "payment_failed", Duration::from_secs(15)).await;
            assert_eq!(failed["failure_code"], "authentication_failed", "{failed}");
            let intent = intent_of(app, id).await;
            assert_eq!(intent["status"], "failed", "nothing charged: {intent}");
            let (state, until_deadline) = hold_kept_until_deadline(app, id).await;
            assert_eq!(state, "active", "the hold is still there");
            assert!(!until_deadline, "no longer kept until the payment deadline");
            let back_to_own: bool = sqlx::query_scalar(
                r#"SELECT h.expires_at = o.hold_expires_before AND h.expires_at < o.payment_deadline
                   FROM orders o JOIN holds h ON h.id = o.hold_id WHERE o.id = $1::uuid"#,
            )
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
            assert!(back_to_own, "the hold is back to its own time");

            // Another card pays for the same hold.
            let (s, o) = order(app, f, "o2", &format!("pm_card_ok_fan{i}")).await;
            assert_eq!(
                (s, o["state"].as_str()),
                (StatusCode::CREATED, Some("confirmed")),
                "{o}"
            );
        }
    }))
    .await;
    assert_eq!(live_claims(&app.pool, e).await.len(), 2 * FANS, "every seat sold once");
    let stats = sandbox(&app).stats().await;
    assert_eq!(
        (stats["succeeded"].as_i64(), stats["refunds"].as_i64()),
        (Some(FANS as i64), Some(0)),
        "only the second cards were charged: {stats}"
    );
    app.finish().await;
}

/// Nobody answers: the hold outlives its own time (1 s) up to the payment
/// deadline (here 3 s after the order), then reconciliation gives up: the
/// orders fail (`authentication_abandoned`), the intents are cancelled at
/// the sandbox, nothing is charged, and other fans can have the seats. A
/// challenge answered after that is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_abandoned_challenge_ends_after_the_bound_with_no_charge_and_the_seats_back_on_sale() {
    const FANS: usize = 8;
    let app = start(3).await;
    let (e, seats) = stage(&app, "tdsab", 1).await;
    let fans = join_all((0..FANS).map(|i| {
        let app = &app;
        let seats = [seats[2 * i], seats[2 * i + 1]];
        async move { fan(app, e, &format!("fan{i}"), &seats).await }
    }))
    .await;
    let placed = join_all(fans.iter().enumerate().map(|(i, f)| {
        let app = &app;
        async move { order(app, f, "o", &format!("pm_card_requires_action_fan{i}")).await }
    }))
    .await;
    let ordered_at = Instant::now();
    for (s, o) in &placed {
        assert_eq!(
            (s, o["payment_status"].as_str()),
            (&StatusCode::ACCEPTED, Some("requires_action")),
            "{o}"
        );
    }
    // Past the hold's own second, the seats are still held for the fans.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(
        live_claims(&app.pool, e).await.len(),
        2 * FANS,
        "held past the hold's own time"
    );
    for ((_, o), f) in placed.iter().zip(&fans) {
        let now = get_order(&app, &f.token, o["order_id"].as_str().unwrap()).await;
        assert_eq!(now["state"], "pending_payment", "still waiting for the fan: {now}");
    }

    let failed = join_all(placed.iter().zip(&fans).map(|((_, o), f)| {
        let app = &app;
        async move {
            until_state(
                app,
                &f.token,
                o["order_id"].as_str().unwrap(),
                "payment_failed",
                Duration::from_secs(15),
            )
            .await
        }
    }))
    .await;
    let gave_up_after = ordered_at.elapsed();
    for o in &failed {
        assert_eq!(o["failure_code"], "authentication_abandoned", "{o}");
        let intent = intent_of(&app, o["order_id"].as_str().unwrap()).await;
        assert_eq!(
            (intent["status"].as_str(), intent["cancellation_reason"].as_str()),
            (Some("canceled"), Some("abandoned")),
            "{intent}"
        );
    }
    assert!(gave_up_after >= Duration::from_millis(2_500), "{gave_up_after:?}");
    assert_eq!(live_claims(&app.pool, e).await, vec![], "the seats are back on sale");

    // A late answer cannot charge; other fans buy the seats.
    let url = placed[0].1["next_action"]["redirect_url"].as_str().unwrap();
    let r = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("answer=complete")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let others = join_all((0..FANS).map(|i| {
        let app = &app;
        let seats = [seats[2 * i], seats[2 * i + 1]];
        async move {
            let f = fan(app, e, &format!("other{i}"), &seats).await;
            order(app, &f, "o", &format!("pm_card_ok_other{i}")).await.1["state"].clone()
        }
    }))
    .await;
    assert!(others.iter().all(|s| s == "confirmed"), "{others:?}");
    let stats = sandbox(&app).stats().await;
    assert_eq!(
        (stats["succeeded"].as_i64(), stats["refunds"].as_i64()),
        (Some(FANS as i64), Some(0)),
        "only the other fans were charged: {stats}"
    );
    let topics: Vec<String> = sqlx::query_scalar("SELECT topic FROM outbox WHERE order_id = $1::uuid ORDER BY id")
        .bind(placed[0].1["order_id"].as_str().unwrap())
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(topics, ["payment.failed"]);
    app.finish().await;
}

/// `pm_card_3ds_over_5000` asks for 3-D Secure only over 50.00: one seat
/// (30.00) is bought at once, two (60.00) wait for the fan.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_threshold_card_asks_for_3d_secure_only_over_its_amount() {
    const FANS: usize = 6;
    let app = start(900).await;
    let (e, seats) = stage(&app, "tdsam", 300).await;
    let results = join_all((0..FANS).map(|i| {
        let app = &app;
        // Even fans one seat of tier 1, odd fans two.
        let mine: Vec<i64> = if i % 2 == 0 {
            vec![seats[2 * i]]
        } else {
            vec![seats[2 * i], seats[2 * i + 1]]
        };
        async move {
            let f = fan(app, e, &format!("fan{i}"), &mine).await;
            let (s, o) = order(app, &f, "o", &format!("pm_card_3ds_over_5000_fan{i}")).await;
            (i, s, o)
        }
    }))
    .await;
    for (i, s, o) in results {
        if i % 2 == 0 {
            assert_eq!((s, o["total_cents"].as_i64()), (StatusCode::CREATED, Some(3000)), "{o}");
            assert_eq!(
                (o["state"].as_str(), &o["next_action"]),
                (Some("confirmed"), &Value::Null),
                "{o}"
            );
        } else {
            assert_eq!(
                (s, o["total_cents"].as_i64()),
                (StatusCode::ACCEPTED, Some(6000)),
                "{o}"
            );
            assert_eq!(o["payment_status"], "requires_action", "{o}");
            assert!(o["next_action"]["redirect_url"].is_string(), "{o}");
        }
    }
    app.finish().await;
}

/// `pm_card_processing`: the order waits (`processing`, nothing for the
/// fan to do) with its hold, and the processor's own webhook finishes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_processing_payment_completes_by_itself() {
    const FANS: usize = 10;
    let app = start(900).await;
    let (e, seats) = stage(&app, "tdspr", 300).await;
    join_all((0..FANS).map(|i| {
        let app = &app;
        let seats = [seats[2 * i], seats[2 * i + 1]];
        async move {
            let f = fan(app, e, &format!("fan{i}"), &seats).await;
            let (s, o) = order(app, &f, "o", &format!("pm_card_processing_fan{i}")).await;
            assert_eq!(s, StatusCode::ACCEPTED, "{o}");
            assert_eq!(
                (o["payment_status"].as_str(), &o["next_action"]),
                (Some("processing"), &Value::Null),
                "{o}"
            );
            assert!(o["payment_deadline"].is_string(), "{o}");
            let id = o["order_id"].as_str().unwrap();
            let done = until_state(app, &f.token, id, "confirmed", Duration::from_secs(15)).await;
            assert_eq!(done["tickets"].as_array().unwrap().len(), 2, "{done}");
        }
    }))
    .await;
    let stats = sandbox(&app).stats().await;
    assert_eq!(
        (stats["succeeded"].as_i64(), stats["refunds"].as_i64()),
        (Some(FANS as i64), Some(0)),
        "{stats}"
    );
    // Each processing payment's webhook goes out too; an order may be
    // confirmed first by the core asking (reconciliation), before its
    // webhook has been counted delivered (CI saw 9 of 10 at that moment).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let stats = sandbox(&app).stats().await;
        if stats["webhooks_delivered"].as_i64().unwrap_or(0) >= FANS as i64 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "webhooks not all delivered: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.finish().await;
}
