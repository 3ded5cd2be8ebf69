//! The read path: the seeded demo catalog, search and pagination, the event
//! page, the long-cached seat map, the compact availability answer, the
//! OpenAPI description and the health endpoints.

use std::collections::HashSet;

use crate::common::*;
use reqwest::StatusCode;
use serde_json::Value;

async fn all_pages(app: &TestApp, query: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/events?{query}&cursor={c}"),
            None => format!("/v1/events?{query}"),
        };
        let (status, page) = app.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        items.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return items,
        }
    }
}

#[tokio::test]
async fn the_seeded_demo_is_searchable_and_seeding_twice_changes_nothing() {
    let app = TestApp::start().await;
    let first = booking_core::seed::run(&app.pool).await.unwrap();
    assert_eq!((first.venues_created, first.events_created), (5, 12));
    let fingerprint = || async {
        sqlx::query_scalar::<_, String>(
            "SELECT md5(string_agg(t, ',' ORDER BY t)) FROM (
                 SELECT id || slug || geometry_hash AS t FROM venues
                 UNION ALL SELECT id || slug || starts_at::text FROM events
                 UNION ALL SELECT count(*)::text FROM seats
                 UNION ALL SELECT event_id || '/' || tier || '/' || price_cents FROM event_tiers) x",
        )
        .fetch_one(&app.pool)
        .await
        .unwrap()
    };
    let before = fingerprint().await;
    let second = booking_core::seed::run(&app.pool).await.unwrap();
    assert_eq!((second.venues_created, second.events_created), (0, 0));
    assert_eq!(fingerprint().await, before, "a second seed changed something");
    let stadium_seats: i32 = sqlx::query_scalar("SELECT seat_count FROM venues WHERE slug = 'meridian-stadium'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stadium_seats, 50_000);

    // Everything, paged in small pages: each event exactly once, in order.
    let all = all_pages(&app, "limit=5").await;
    assert_eq!(all.len(), 12);
    let ids: HashSet<i64> = all.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert_eq!(ids.len(), 12);
    let starts: Vec<&str> = all.iter().map(|e| e["starts_at"].as_str().unwrap()).collect();
    assert!(starts.windows(2).all(|w| w[0] <= w[1]), "{starts:?}");

    // Text over artist, title and venue; prefix matching; filters.
    let by_artist = all_pages(&app, "q=aurora").await;
    assert_eq!(by_artist.len(), 1);
    assert_eq!(by_artist[0]["artist"], "Aurora Vale");
    assert_eq!(by_artist[0]["price_min_cents"], 4500);
    assert_eq!(by_artist[0]["price_max_cents"], 18950);
    assert_eq!(all_pages(&app, "q=meridian").await.len(), 3, "venue name");
    assert_eq!(all_pages(&app, "q=hamle").await.len(), 1, "prefix of a title");
    assert_eq!(all_pages(&app, "city=london").await.len(), 5);
    assert_eq!(all_pages(&app, "city=Berlin&category=family").await.len(), 1);
    assert_eq!(all_pages(&app, "category=comedy").await.len(), 2);
    assert_eq!(all_pages(&app, "q=nothing+matches+this").await.len(), 0);
    let soon = chrono::Utc::now() + chrono::Duration::days(16);
    let in_range = all_pages(&app, &format!("to={}", soon.format("%Y-%m-%d"))).await;
    assert!(!in_range.is_empty() && in_range.len() < 12);
    assert!(
        in_range
            .iter()
            .all(|e| e["starts_at"].as_str().unwrap() < soon.to_rfc3339().as_str())
    );

    // Bad queries: 400 with a code each.
    for (query, code) in [
        ("limit=0", "invalid_limit"),
        ("limit=1000", "invalid_limit"),
        ("limit=x", "invalid_query"),
        ("category=opera", "invalid_category"),
        ("from=yesterday", "invalid_date"),
        ("from=2030-01-02&to=2030-01-01", "invalid_date_range"),
        ("cursor=%21%21", "invalid_cursor"),
    ] {
        let (status, p) = app.get(&format!("/v1/events?{query}")).await;
        assert_eq!(
            (status, p["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some(code)),
            "{query}"
        );
    }

    // The event page.
    let id = by_artist[0]["id"].as_i64().unwrap();
    let (status, page) = app.get(&format!("/v1/events/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["on_sale"], true);
    assert_eq!(page["tiers"].as_array().unwrap().len(), 5);
    assert_eq!(page["venue"]["city"], "London");
    assert!(page["server_time"].is_string());
    let (status, p) = app.get("/v1/events/99999999").await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("event_not_found"))
    );

    // Availability of 50,000 seats: well under 100 KB, all available.
    let r = app
        .http
        .get(app.url(&format!("/v1/events/{id}/availability")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["cache-control"], "no-store");
    let raw = r.bytes().await.unwrap();
    assert!(raw.len() < 20_000, "availability is {} bytes", raw.len());
    let avail: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(
        (avail["seat_count"].as_i64(), avail["available"].as_i64()),
        (Some(50_000), Some(50_000))
    );

    // The seat map: cacheable, ETag, 304, gzip.
    let seatmap = page["seatmap_url"].as_str().unwrap();
    let r = app.http.get(app.url(seatmap)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["cache-control"].to_str().unwrap().contains("max-age=86400"));
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    let map: Value = r.json().await.unwrap();
    assert_eq!(map["seat_count"], 50_000);
    let counted: usize = map["sections"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["rows"].as_array().unwrap())
        .map(|r| r["seats"].as_array().unwrap().len())
        .sum();
    assert_eq!(counted, 50_000);
    let r = app
        .http
        .get(app.url(seatmap))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    let r = app
        .http
        .get(app.url(seatmap))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-encoding"], "gzip");
    assert!(r.bytes().await.unwrap().len() < 500_000);
    app.finish().await;
}

#[tokio::test]
async fn openapi_and_health() {
    let app = TestApp::start().await;
    let (status, doc) = app.get("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/v1/events",
        "/v1/events/{event_id}/holds",
        "/v1/holds/{hold_id}",
        "/v1/events/{event_id}/availability",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing from OpenAPI");
    }
    assert!(doc["components"]["schemas"]["HoldRequest"].is_object());
    assert_eq!(app.get("/healthz").await.0, StatusCode::OK);
    assert_eq!(app.get("/readyz").await.0, StatusCode::OK);
    // Readiness follows the database.
    app.cut_off_database().await;
    assert_eq!(app.get("/readyz").await.0, StatusCode::SERVICE_UNAVAILABLE);
    app.finish().await;
}

#[tokio::test]
async fn an_instance_with_every_pooled_connection_busy_is_still_ready() {
    let app = TestApp::start().await;
    // Take every connection of the service's pool, as an on-sale's requests
    // would: the next acquire waits.
    let mut busy = Vec::new();
    while let Ok(Ok(conn)) = tokio::time::timeout(std::time::Duration::from_millis(300), app.pool.acquire()).await {
        busy.push(conn);
    }
    assert!(!busy.is_empty());
    // Before the probe had its own connection, this waited out the pool's
    // acquire timeout and answered 503.
    let (status, body) = app.get("/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    drop(busy);
    app.finish().await;
}
