//! The core's `/metrics` over real HTTP against a real database: the
//! counters move with a hold and an order, the series stay bounded however
//! many distinct URLs arrive, a fan cannot read them on the public
//! listener, and a scrape still answers with the database gone.

use std::collections::BTreeSet;

use crate::common::*;
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::json;

/// The exposition from the core's admin listener.
async fn scrape(app: &TestApp) -> String {
    let addr = app.running.metrics_addr.expect("metrics_listen is set by the harness");
    let r = app.http.get(format!("http://{addr}/metrics")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let kind = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    r.text().await.unwrap()
}

/// The value of the sample written exactly as `series` (name and labels).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .map(|v| v.parse().unwrap())
}

/// Every series (sample line) in the exposition, by name and labels.
fn series(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.rsplit_once(' ').unwrap().0.to_string())
        .collect()
}

#[tokio::test]
async fn a_hold_and_an_order_move_their_counters() {
    // No delivery worker: the order's notifications stay in the outbox.
    let options = Options {
        sandbox: true,
        ..Options::default()
    };
    let app = TestApp::start_with_config(options, |c| c.notifications.enabled = false).await;
    let v = venue(&app.pool, &small_chart("m1", &["A"], 2, 4)).await;
    let e = event(&app.pool, "m1", "m1", rules(4)).await;
    let seats = seat_ids(&app.pool, v).await;
    let alice = app.sign_in("alice").await;
    let bob = app.sign_in("bob").await;

    let before = scrape(&app).await;
    assert_eq!(value(&before, "usher_core_holds_placed_total"), Some(0.0));
    assert_eq!(value(&before, "usher_core_db_up"), Some(1.0), "{before}");
    let holds =
        r#"usher_core_http_request_seconds_count{route="/v1/events/{event_id}/holds",method="POST",status="201"}"#;
    assert_eq!(value(&before, holds), None);

    let (s, hold) = app
        .hold(&alice, e, "m-k1", &json!({"seat_ids": [seats[0], seats[1]]}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{hold}");
    // A retry of the same key is the same hold, not another.
    let (s, _) = app
        .hold(&alice, e, "m-k1", &json!({"seat_ids": [seats[0], seats[1]]}))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = app.hold(&bob, e, "m-k2", &json!({"seat_ids": [seats[1]]})).await;
    assert_eq!(s, StatusCode::CONFLICT);
    let r = app
        .http
        .post(app.url("/v1/orders"))
        .bearer_auth(&alice)
        .header("idempotency-key", "m-o1")
        .json(&json!({"hold_id": hold["hold_id"], "payment_method": "pm_card_ok"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);

    let after = scrape(&app).await;
    assert_eq!(value(&after, "usher_core_holds_placed_total"), Some(1.0), "{after}");
    assert_eq!(
        value(&after, r#"usher_core_holds_refused_total{code="seats_taken"}"#),
        Some(1.0),
        "{after}"
    );
    assert_eq!(value(&after, holds), Some(2.0), "{after}");
    assert_eq!(
        value(&after, r#"usher_core_orders_total{outcome="confirmed"}"#),
        Some(1.0),
        "{after}"
    );
    for counted in [
        r#"usher_core_http_request_seconds_count{route="/v1/orders",method="POST",status="201"}"#,
        r#"usher_core_saga_step_seconds_count{step="charge"}"#,
        r#"usher_core_saga_step_seconds_count{step="settle"}"#,
        r#"usher_core_provider_seconds_count{call="charge",result="ok"}"#,
        r#"usher_core_provider_seconds_count{call="card_fingerprint",result="ok"}"#,
        "usher_core_db_acquire_seconds_count",
    ] {
        assert!(
            value(&after, counted).unwrap_or(0.0) >= 1.0,
            "{counted} did not move:\n{after}"
        );
    }
    // A webhook's saga may be taking a connection as this is read.
    assert!(value(&after, "usher_core_db_acquire_waiting").is_some());
    assert!(value(&after, r#"usher_core_db_pool_connections{pool="primary",state="idle"}"#).is_some());
    assert_eq!(
        value(&after, r#"usher_core_db_pool_max_connections{pool="primary"}"#),
        Some(10.0)
    );
    // The order's confirmation waits in the outbox.
    assert!(value(&after, "usher_core_outbox_backlog").unwrap() >= 1.0, "{after}");
    assert!(value(&after, "usher_core_outbox_oldest_age_seconds").unwrap() >= 0.0);
    assert_eq!(value(&after, "usher_core_reconciliation_backlog"), Some(0.0));
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_distinct_urls_leave_the_series_flat() {
    let app = TestApp::start().await;
    let get = |path: String| {
        let (http, direct) = (app.http.clone(), app.direct.clone());
        async move {
            let r = http.get(format!("{direct}{path}")).send().await.unwrap();
            r.status()
        }
    };
    // One of each kind first: an unknown event, a path no route knows.
    assert_eq!(get("/v1/events/1".into()).await, StatusCode::NOT_FOUND);
    assert_eq!(get("/no/such/thing".into()).await, StatusCode::NOT_FOUND);
    let warm = series(&scrape(&app).await);

    let paths: Vec<String> = (0..10_000u64)
        .map(|n| match n % 2 {
            0 => format!("/v1/events/{}", 1_000_000 + n),
            _ => format!("/junk-{n:x}/{}/x{}", uuid::Uuid::new_v4().simple(), n * 7919),
        })
        .collect();
    let statuses: Vec<StatusCode> = futures::stream::iter(paths.into_iter().map(get))
        .buffer_unordered(32)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == StatusCode::NOT_FOUND));

    let text = scrape(&app).await;
    let after = series(&text);
    let new: Vec<_> = after.difference(&warm).collect();
    assert!(new.is_empty(), "new series after 10,000 URLs: {new:?}");
    assert_eq!(after.len(), warm.len());
    assert_eq!(app.running.state.metrics.request_series(), 2, "{text}");
    let unmatched = r#"usher_core_http_request_seconds_count{route="unmatched",method="GET",status="404"}"#;
    assert_eq!(value(&text, unmatched), Some(5_001.0));
    println!(
        "series: {} before, {} after 10,000 distinct URLs ({} request series)",
        warm.len(),
        after.len(),
        app.running.state.metrics.request_series()
    );
    app.finish().await;
}

#[tokio::test]
async fn a_fan_cannot_read_metrics_on_the_public_listener() {
    let app = TestApp::start().await;
    let alice = app.sign_in("alice").await;
    for url in [app.url("/metrics"), format!("{}/metrics", app.direct)] {
        let r = app.http.get(&url).bearer_auth(&alice).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let body = r.text().await.unwrap();
        assert!(!body.contains("usher_core_"), "{body}");
    }
    // The admin listener is another port, and answers nothing else.
    let admin = app.running.metrics_addr.unwrap();
    assert_ne!(admin, app.running.addr);
    let r = app.http.get(format!("http://{admin}/v1/events")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(scrape(&app).await.contains("usher_core_http_request_seconds"));
    app.finish().await;

    // Without an admin listener there is nothing to read, anywhere.
    let app = TestApp::start_with_config(Options::default(), |c| c.http.metrics_listen = None).await;
    assert!(app.running.metrics_addr.is_none());
    assert!(!app.running.state.metrics.is_on());
    let (s, _) = app.get("/metrics").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    app.finish().await;
}

#[tokio::test]
async fn a_scrape_answers_with_the_database_gone() {
    let app = TestApp::start().await;
    let (s, _) = app.get("/v1/events").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(value(&scrape(&app).await, "usher_core_db_up"), Some(1.0));
    app.cut_off_database().await;
    let started = std::time::Instant::now();
    let text = scrape(&app).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    assert_eq!(value(&text, "usher_core_db_up"), Some(0.0), "{text}");
    assert_eq!(value(&text, "usher_core_outbox_backlog"), None);
    // What was counted is still there.
    assert!(
        text.contains(r#"route="/v1/events",method="GET",status="200""#),
        "{text}"
    );
    app.finish().await;
}
