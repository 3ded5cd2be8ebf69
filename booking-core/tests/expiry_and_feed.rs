//! Expiry needs no background job to be correct; the reaper still frees
//! seats promptly and tells seat maps. The seat-change stream delivers live
//! changes, replays what a client missed, and says when it cannot.

mod common;

use std::time::Duration;

use booking_core::catalog::EventRules;
use common::*;
use reqwest::StatusCode;
use serde_json::json;

fn ms_until_expiry(hold: &serde_json::Value) -> u64 {
    let exp = chrono::DateTime::parse_from_rfc3339(hold["expires_at"].as_str().unwrap()).unwrap();
    let now = chrono::DateTime::parse_from_rfc3339(hold["server_time"].as_str().unwrap()).unwrap();
    (exp - now).num_milliseconds().max(0) as u64
}

#[tokio::test]
async fn a_seat_is_holdable_again_the_moment_its_hold_expires_without_the_reaper() {
    let app = TestApp::start_with(Options {
        reaper: false,
        ..Options::default()
    })
    .await;
    let v = venue(&app.pool, &small_chart("x1", &["A"], 1, 4)).await;
    let rules = EventRules {
        hold_ttl_secs: 2,
        hold_jitter_secs: 0,
        max_seats_per_fan: 2,
        protected: false,
    };
    let e = event(&app.pool, "x1", "x1", rules).await;
    let seats = seat_ids(&app.pool, v).await;
    let alice = app.sign_in("alice").await;
    let bob = app.sign_in("bob").await;

    let (s, hold) = app
        .hold(&alice, e, "a1", &json!({"seat_ids": [seats[0], seats[1]]}))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = app
        .hold(&bob, e, "b1", &json!({"seat_ids": [seats[0]]}))
        .await;
    assert_eq!(
        s,
        StatusCode::CONFLICT,
        "the hold is live: the seat is taken"
    );

    tokio::time::sleep(Duration::from_millis(ms_until_expiry(&hold) + 20)).await;
    let (s, body) = app
        .hold(&bob, e, "b2", &json!({"seat_ids": [seats[0]]}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");

    // No reaper ran: the old hold's row still says active, and it did not
    // block anyone. Reading it reports the truth.
    let state: String = sqlx::query_scalar("SELECT state FROM holds WHERE id = $1::uuid")
        .bind(hold["hold_id"].as_str().unwrap())
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(state, "active");
    let r = app
        .http
        .get(app.url(&format!("/v1/holds/{}", hold["hold_id"].as_str().unwrap())))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["state"],
        "expired"
    );
    // Nor does it count against Alice's limit of two.
    let (s, body) = app
        .hold(&alice, e, "a2", &json!({"seat_ids": [seats[2], seats[3]]}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    // The availability read agrees: seat 0 held (by Bob), seat 1 free.
    let (_, avail) = app.get(&format!("/v1/events/{}/availability", e.0)).await;
    assert_eq!(
        (avail["held"].as_i64(), avail["available"].as_i64()),
        (Some(3), Some(1))
    );
    app.finish().await;
}

#[tokio::test]
async fn the_reaper_frees_expired_seats_and_the_stream_says_so() {
    let app = TestApp::start_with(Options {
        reaper: true,
        reaper_interval_ms: 100,
        ..Options::default()
    })
    .await;
    let v = venue(&app.pool, &small_chart("x2", &["A"], 1, 4)).await;
    let rules = EventRules {
        hold_ttl_secs: 1,
        hold_jitter_secs: 0,
        max_seats_per_fan: 4,
        protected: false,
    };
    let e = event(&app.pool, "x2", "x2", rules).await;
    let seats = seat_ids(&app.pool, v).await;
    let alice = app.sign_in("alice").await;
    let mut stream = Sse::open(&app, &format!("/v1/events/{}/seat-changes", e.0), None).await;
    let ready = stream.next(Duration::from_secs(2)).await.unwrap();
    assert_eq!(ready.event, "ready");

    let (s, hold) = app
        .hold(&alice, e, "a1", &json!({"seat_ids": [seats[1]]}))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert!(
        stream
            .until_seat(seats[1], "held", Duration::from_secs(2))
            .await
            .is_some(),
        "held seat not streamed"
    );
    assert!(
        stream
            .until_seat(seats[1], "available", Duration::from_secs(3))
            .await
            .is_some(),
        "expiry not streamed"
    );
    let state: String = sqlx::query_scalar("SELECT state FROM holds WHERE id = $1::uuid")
        .bind(hold["hold_id"].as_str().unwrap())
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(state, "expired");
    let claims: i64 = sqlx::query_scalar("SELECT count(*) FROM seat_claims")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(claims, 0, "the reaper removes ended claims");
    app.finish().await;
}

#[tokio::test]
async fn the_stream_is_live_resumable_and_honest_about_gaps() {
    let app = TestApp::start().await;
    let v = venue(&app.pool, &small_chart("x3", &["A"], 2, 5)).await;
    let e = event(&app.pool, "x3", "x3", rules(10)).await;
    let seats = seat_ids(&app.pool, v).await;
    let alice = app.sign_in("alice").await;
    let bob = app.sign_in("bob").await;
    let path = format!("/v1/events/{}/seat-changes", e.0);

    // A snapshot, then a change, then a stream from the snapshot's cursor:
    // the change is replayed first.
    let (_, snap) = app.get(&format!("/v1/events/{}/availability", e.0)).await;
    let cursor = snap["cursor"].as_str().unwrap().to_string();
    let (s, _) = app
        .hold(&alice, e, "a1", &json!({"seat_ids": [seats[0]]}))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut stream = Sse::open(&app, &format!("{path}?since={cursor}"), None).await;
    assert_eq!(
        stream.next(Duration::from_secs(2)).await.unwrap().event,
        "ready"
    );
    assert!(
        stream
            .until_seat(seats[0], "held", Duration::from_secs(2))
            .await
            .is_some(),
        "missed change not replayed"
    );

    // Live: Bob's hold shows up within two seconds; his release too.
    let (s, hold) = app
        .hold(&bob, e, "b1", &json!({"seat_ids": [seats[1], seats[2]]}))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let seen = stream
        .until_seat(seats[2], "held", Duration::from_secs(2))
        .await
        .expect("live hold");
    let last_id = seen.id.clone().unwrap();
    drop(stream);

    // While disconnected, Bob releases; reconnecting with Last-Event-ID
    // replays it.
    let (s, _) = app
        .release(&bob, hold["hold_id"].as_str().unwrap(), "r1")
        .await;
    assert_eq!(s, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut stream = Sse::open(&app, &path, Some(&last_id)).await;
    assert!(
        stream
            .until_seat(seats[1], "available", Duration::from_secs(2))
            .await
            .is_some(),
        "resume lost a change"
    );

    // Once the log is pruned past a cursor, a client asking for it is told
    // to re-read availability.
    drop(stream);
    booking_core::inventory::feed::prune(&app.pool, 0.0, 10_000)
        .await
        .unwrap();
    let mut stream = Sse::open(&app, &format!("{path}?since={cursor}"), None).await;
    assert_eq!(
        stream.next(Duration::from_secs(2)).await.unwrap().event,
        "ready"
    );
    let reset = stream.next(Duration::from_secs(2)).await.unwrap();
    assert_eq!(reset.event, "reset");

    // Bad cursors are a 400, unknown events a 404.
    let r = app
        .http
        .get(app.url(&format!("{path}?since=banana")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = app
        .http
        .get(app.url("/v1/events/424242/seat-changes"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    app.finish().await;
}
