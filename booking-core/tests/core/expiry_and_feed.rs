//! Expiry needs no background job to be correct; the reaper still frees
//! seats promptly and tells seat maps. The seat-change stream delivers live
//! changes, replays what a client missed, and says when it cannot.

use std::time::Duration;

use crate::common::*;
use booking_core::catalog::EventRules;
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
    let (s, _) = app.hold(&bob, e, "b1", &json!({"seat_ids": [seats[0]]})).await;
    assert_eq!(s, StatusCode::CONFLICT, "the hold is live: the seat is taken");

    tokio::time::sleep(Duration::from_millis(ms_until_expiry(&hold) + 20)).await;
    let (s, body) = app.hold(&bob, e, "b2", &json!({"seat_ids": [seats[0]]})).await;
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
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["state"], "expired");
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

/// The state of seat `idx` in a snapshot event's packed states.
fn snapshot_state(event: &SseEvent, idx: usize) -> u8 {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(event.data["states"].as_str().unwrap())
        .unwrap();
    (bytes[idx / 4] >> (2 * (idx % 4))) & 3
}

#[tokio::test]
async fn the_stream_shows_expiry_by_the_clock_and_the_reaper_cleans_up() {
    let app = TestApp::start_with(Options {
        reaper: false,
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
    let first = stream.next(Duration::from_secs(2)).await.unwrap();
    assert_eq!(first.event, "snapshot");
    assert_eq!(
        (first.data["seat_count"].as_i64(), first.data["available"].as_i64()),
        (Some(4), Some(4))
    );

    let (s, hold) = app.hold(&alice, e, "a1", &json!({"seat_ids": [seats[1]]})).await;
    assert_eq!(s, StatusCode::CREATED);
    assert!(
        stream
            .until_seat(seats[1], "held", Duration::from_secs(2))
            .await
            .is_some(),
        "held seat not streamed"
    );
    // No reaper is running: the seat comes back when the clock says so.
    assert!(
        stream
            .until_seat(seats[1], "available", Duration::from_secs(3))
            .await
            .is_some(),
        "expiry not streamed"
    );

    // The reaper removes the ended claim and marks the hold expired.
    booking_core::inventory::reaper::reap_once(&app.pool, 100)
        .await
        .unwrap();
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
async fn the_running_reaper_expires_holds_promptly() {
    let app = TestApp::start_with(Options {
        reaper: true,
        reaper_interval_ms: 100,
        ..Options::default()
    })
    .await;
    let v = venue(&app.pool, &small_chart("x4", &["A"], 1, 4)).await;
    let rules = EventRules {
        hold_ttl_secs: 1,
        hold_jitter_secs: 0,
        max_seats_per_fan: 4,
        protected: false,
    };
    let e = event(&app.pool, "x4", "x4", rules).await;
    let seats = seat_ids(&app.pool, v).await;
    let alice = app.sign_in("alice").await;
    let (s, hold) = app
        .hold(&alice, e, "a1", &json!({"seat_ids": [seats[0], seats[1]]}))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let id = hold["hold_id"].as_str().unwrap().to_string();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(4);
    loop {
        let state: String = sqlx::query_scalar("SELECT state FROM holds WHERE id = $1::uuid")
            .bind(&id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
        if state == "expired" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the reaper did not expire the hold"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.finish().await;
}

#[tokio::test]
async fn the_stream_is_live_and_resumable() {
    let app = TestApp::start().await;
    let v = venue(&app.pool, &small_chart("x3", &["A"], 2, 5)).await;
    let e = event(&app.pool, "x3", "x3", rules(10)).await;
    let seats = seat_ids(&app.pool, v).await;
    let alice = app.sign_in("alice").await;
    let bob = app.sign_in("bob").await;
    let path = format!("/v1/events/{}/seat-changes", e.0);

    // A hold made before connecting is in the opening snapshot.
    let (s, _) = app.hold(&alice, e, "a1", &json!({"seat_ids": [seats[0]]})).await;
    assert_eq!(s, StatusCode::CREATED);
    let mut watcher = Sse::open(&app, &path, None).await;
    let snapshot = watcher.next(Duration::from_secs(2)).await.unwrap();
    assert_eq!(snapshot.event, "snapshot");
    assert_eq!(snapshot_state(&snapshot, 0), 1, "seat 0 held");
    assert_eq!(snapshot_state(&snapshot, 1), 0, "seat 1 free");

    // Live: Bob's hold shows up within two seconds.
    let mut stream = Sse::open(&app, &path, None).await;
    assert_eq!(stream.next(Duration::from_secs(2)).await.unwrap().event, "snapshot");
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

    // While disconnected, Bob releases. Reconnecting with Last-Event-ID
    // resumes with exactly what was missed, no snapshot.
    let (s, _) = app.release(&bob, hold["hold_id"].as_str().unwrap(), "r1").await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        watcher
            .until_seat(seats[1], "available", Duration::from_secs(2))
            .await
            .is_some()
    );
    let mut stream = Sse::open(&app, &path, Some(&last_id)).await;
    let resumed = stream.next(Duration::from_secs(2)).await.unwrap();
    assert_eq!(resumed.event, "seats", "{resumed:?}");
    let freed: Vec<i64> = resumed.data["available"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect();
    assert!(freed.contains(&seats[1]) && freed.contains(&seats[2]), "{resumed:?}");

    // An id this process never gave out: a fresh snapshot instead.
    let mut stream = Sse::open(&app, &path, Some("12.34")).await;
    assert_eq!(stream.next(Duration::from_secs(2)).await.unwrap().event, "snapshot");

    let r = app
        .http
        .get(app.url("/v1/events/424242/seat-changes"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    app.finish().await;
}
