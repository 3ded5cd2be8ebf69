//! Input an attacker would send, against the real service: other spellings
//! of a path (the core must read only the canonical one, the one the edge
//! decided on), holds on an event whose waiting room exists only at the
//! edge, and text no store can hold (NUL, control characters, invalid UTF-8,
//! absurd lengths), which must be a 4xx with a stable code, never a 503.

use std::sync::{Arc, Mutex};

use axum::response::IntoResponse;
use std::time::{Duration, Instant};

use crate::common::*;
use booking_core::catalog::EventRules;
use rand::Rng;
use reqwest::StatusCode;
use serde_json::{Value, json};
use usher_shared::admin::{Progress, RoomView};
use usher_shared::paths::{is_canonical, spellings};

/// One HTTP/1.1 request with its target exactly as given (an HTTP client
/// library normalises it first): the status and the body as JSON (null
/// when it is not).
async fn raw(base: &str, method: &str, target: &str, body: &[u8], headers: &[(&str, &str)]) -> (u16, Value) {
    let addr = base.trim_start_matches("http://");
    let (status, body) = usher_test_kit::raw(addr, method, target, body, headers).await;
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_core_routes_only_the_canonical_spelling_of_a_path() {
    let app = TestApp::start().await;
    let v = venue(&app.pool, &small_chart("vc", &["A"], 1, 4)).await;
    let seats = seat_ids(&app.pool, v).await;
    let guarded = event(
        &app.pool,
        "canon",
        "vc",
        EventRules {
            protected: true,
            ..rules(8)
        },
    )
    .await;
    let alice = app.sign_in("alice").await;
    let auth = format!("Bearer {alice}");
    let id = guarded.0.to_string();
    let hold = serde_json::to_vec(&json!({"seat_ids": [seats[0]]})).unwrap();

    // Every other spelling of the event's paths is refused before routing,
    // with the canonical one named; an admission for the event does not
    // change that.
    let access = app.access_token(guarded, 60);
    let mut rng = rand::thread_rng();
    let mut refused = 0;
    for i in 0..200 {
        let choices: Vec<u32> = (0..4).map(|_| rng.r#gen()).collect();
        let tail = ["holds", "availability"][i % 2];
        let target = spellings::path(&["v1", "events", &id, tail], &choices);
        let canonical = format!("/v1/events/{id}/{tail}");
        let (method, body) = if tail == "holds" {
            ("POST", &hold[..])
        } else {
            ("GET", &[][..])
        };
        let key = format!("k{i}");
        let (status, answer) = raw(
            &app.direct,
            method,
            &target,
            body,
            &[
                ("authorization", &auth),
                ("usher-access", &access),
                ("idempotency-key", &key),
                ("content-type", "application/json"),
            ],
        )
        .await;
        if target == canonical {
            continue;
        }
        refused += 1;
        assert_eq!(
            (status, answer["code"].as_str(), answer["canonical_path"].as_str()),
            (400, Some("non_canonical_path"), Some(canonical.as_str())),
            "{target}: {answer}"
        );
    }
    assert!(refused > 150, "the generator made too few other spellings");
    // Paths with no canonical form at all.
    for bad in [
        format!("/v1/events/{id}%2F/holds"),
        format!("/v1/events/{id}%00"),
        "/v1/events/99999999999999999999".into(),
    ] {
        let (status, answer) = raw(&app.direct, "GET", &bad, &[], &[]).await;
        assert_eq!(status, 400, "{bad}: {answer}");
        assert!(answer["code"].as_str().is_some(), "{bad}: {answer}");
    }
    // Nothing was held by any of them.
    assert!(live_claims(&app.pool, guarded).await.is_empty());
    // The canonical spelling is served as always.
    let (status, answer) = raw(&app.direct, "GET", &format!("/v1/events/{id}"), &[], &[]).await;
    assert_eq!(status, 200, "{answer}");
    assert!(is_canonical(&format!("/v1/events/{id}/holds")));
    app.finish().await;
}

/// A stand-in for the edge's admin API: its list of waiting rooms, which
/// the test changes.
async fn edge_admin(rooms: Arc<Mutex<Vec<i64>>>) -> String {
    let app = axum::Router::new().route(
        "/admin/events",
        axum::routing::get(move |headers: axum::http::HeaderMap| {
            let rooms = rooms.clone();
            async move {
                if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer edge-admin-token") {
                    return (axum::http::StatusCode::UNAUTHORIZED, axum::Json(json!({}))).into_response();
                }
                let list: Vec<RoomView> = rooms
                    .lock()
                    .unwrap()
                    .iter()
                    .map(|e| edge_room(*e, 60, Progress::default()))
                    .collect();
                (axum::http::StatusCode::OK, axum::Json(list)).into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    format!("http://{addr}")
}

#[tokio::test]
async fn an_event_with_a_waiting_room_at_the_edge_needs_admission_though_not_marked_protected() {
    let rooms: Arc<Mutex<Vec<i64>>> = Arc::default();
    let admin = edge_admin(rooms.clone()).await;
    let app = TestApp::start_with_config(Options::default(), |c| {
        c.edge = Some(booking_core::config::EdgeConfig {
            admin_url: usher_shared::config::HttpUrl::parse(admin.clone()).unwrap(),
            admin_token: "edge-admin-token".into(),
            timeout_ms: 1_000,
        });
    })
    .await;
    let v = venue(&app.pool, &small_chart("vr", &["A"], 1, 6)).await;
    let seats = seat_ids(&app.pool, v).await;
    // Not protected by its own rule: the operator opened the room at the edge.
    let open = event(&app.pool, "roomed", "vr", rules(8)).await;
    let alice = app.sign_in("alice").await;
    let (s, b) = app.hold(&alice, open, "before", &json!({"seat_ids": [seats[0]]})).await;
    assert_eq!(s, StatusCode::CREATED, "no room yet: {b}");

    rooms.lock().unwrap().push(open.0);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut n = 0;
    loop {
        n += 1;
        let (s, b) = app
            .hold(&alice, open, &format!("k{n}"), &json!({"seat_ids": [seats[1]]}))
            .await;
        if s == StatusCode::FORBIDDEN {
            assert_eq!(b["code"], "admission_required", "{b}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the room at the edge never bound the core's holds: {s} {b}"
        );
        // Let the seat go again so the next try is the same request.
        let hold = b["hold_id"].as_str().unwrap().to_owned();
        app.release(&alice, &hold, &format!("r{n}")).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // With the edge's admission, as an admitted fan's request carries it.
    let r = app
        .http
        .post(app.url(&format!("/v1/events/{}/holds", open.0)))
        .bearer_auth(&alice)
        .header("idempotency-key", "admitted")
        .header("usher-access", app.access_token(open, 60))
        .json(&json!({"seat_ids": [seats[2]]}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap_or_default()
    );
    app.finish().await;
}

#[tokio::test]
async fn bad_text_is_a_422_with_a_stable_code_never_a_503() {
    let app = TestApp::start().await;
    let json_headers = [("content-type", "application/json")];
    let check = |(status, body): (u16, Value), what: &str| {
        assert_eq!(
            (status, body["code"].as_str()),
            (422, Some("invalid_text")),
            "{what}: {body}"
        );
    };
    // NUL in any string: the portal's sign-in, a fan's name.
    check(
        raw(
            &app.base,
            "POST",
            "/v1/portal/sign-in",
            br#"{"email": "a\u0000@b.c", "password": "x"}"#,
            &json_headers,
        )
        .await,
        "NUL in an e-mail",
    );
    check(
        raw(
            &app.base,
            "POST",
            "/v1/dev/sign-in",
            br#"{"fan_id": "f", "name": "Al\u0000"}"#,
            &json_headers,
        )
        .await,
        "NUL in a name",
    );
    check(
        raw(
            &app.base,
            "POST",
            "/v1/dev/sign-in",
            br#"{"fan_id": "f\u0007"}"#,
            &json_headers,
        )
        .await,
        "a control character",
    );
    // Invalid UTF-8, a lone surrogate, an absurd length.
    check(
        raw(
            &app.base,
            "POST",
            "/v1/dev/sign-in",
            b"{\"fan_id\": \"\xff\xfe\"}",
            &json_headers,
        )
        .await,
        "invalid UTF-8",
    );
    // A lone surrogate escape is not text either: refused as malformed.
    let (status, body) = raw(
        &app.base,
        "POST",
        "/v1/dev/sign-in",
        br#"{"fan_id": "\ud800"}"#,
        &json_headers,
    )
    .await;
    assert!(
        matches!(status, 400 | 422) && body["code"].is_string(),
        "a lone surrogate: {status} {body}"
    );
    let long = serde_json::to_vec(&json!({"fan_id": "x".repeat(20_000)})).unwrap();
    check(
        raw(&app.direct, "POST", "/v1/dev/sign-in", &long, &json_headers).await,
        "20,000 characters",
    );
    // NUL in a query: the catalog's search.
    check(
        raw(&app.direct, "GET", "/v1/events?q=rock%00", &[], &[]).await,
        "NUL in a search",
    );
    // Ordinary text still works, newlines and all.
    let (status, body) = raw(
        &app.base,
        "POST",
        "/v1/dev/sign-in",
        "{\"fan_id\": \"zoë\", \"name\": \"Zoë\\nB\"}".as_bytes(),
        &json_headers,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = raw(&app.direct, "GET", "/v1/events?q=rock", &[], &[]).await;
    assert_eq!(status, 200);
    app.finish().await;
}

#[tokio::test]
async fn a_session_ended_by_a_confirmed_order_is_no_admission_at_the_core() {
    let app = TestApp::start_with(Options {
        sandbox: true,
        ..Options::default()
    })
    .await;
    let v = venue(&app.pool, &small_chart("ve", &["A"], 1, 6)).await;
    let seats = seat_ids(&app.pool, v).await;
    let guarded = event(
        &app.pool,
        "ended",
        "ve",
        EventRules {
            protected: true,
            ..rules(8)
        },
    )
    .await;
    let alice = app.sign_in("alice").await;
    let access = app.access_token(guarded, 900);
    let hold = |seat: i64, key: &'static str, access: String| {
        app.http
            .post(app.url(&format!("/v1/events/{}/holds", guarded.0)))
            .bearer_auth(&alice)
            .header("idempotency-key", key)
            .header("usher-access", access)
            .json(&json!({"seat_ids": [seat]}))
            .send()
    };
    let r = hold(seats[0], "h1", access.clone()).await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let held: Value = r.json().await.unwrap();
    let r = app
        .http
        .post(app.url("/v1/orders"))
        .bearer_auth(&alice)
        .header("idempotency-key", "o1")
        .header("usher-access", &access)
        .json(&json!({"hold_id": held["hold_id"], "payment_method": "pm_card_ok"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert!(r.headers().contains_key("usher-session-done"));
    // The same session's token again, still unexpired: no admission.
    let r = hold(seats[1], "h2", access.clone()).await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["code"], "admission_required", "{p}");
    // Another fan's session (another ticket) is not touched by it.
    let now = chrono::Utc::now().timestamp();
    let other = app.edge.sign(&usher_shared::AccessClaims {
        iss: "usher-edge".into(),
        aud: usher_shared::ACCESS_AUDIENCE.into(),
        sub: format!("{}.2", guarded.0),
        evt: guarded.0,
        tkt: 2,
        bnd: "test".into(),
        iat: now,
        exp: now + 900,
        jti: "other".into(),
    });
    assert_eq!(hold(seats[2], "h3", other).await.unwrap().status(), StatusCode::CREATED);
    app.finish().await;
}

#[tokio::test]
async fn answers_match_the_published_schema_and_the_check_can_fail() {
    let app = TestApp::start().await;
    // Through the checking pass-through: a fan's sign-in and profile, which
    // used to point at the portal operator's schemas of the same name.
    let token = app.sign_in("zed").await;
    let r = app
        .http
        .get(app.url("/v1/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let me: Value = r.json().await.unwrap();
    assert_eq!(me["fan_id"], "zed", "{me}");
    // The check itself refuses an answer of the wrong shape.
    let operator =
        serde_json::to_vec(&json!({"token": "t", "expires_at": "2027-01-01T00:00:00Z", "operator": {}})).unwrap();
    assert!(conformance::check("POST", "/v1/dev/sign-in", 200, "application/json", &operator).is_err());
    assert!(conformance::check("GET", "/v1/me", 200, "application/json", b"{\"email\": \"x\"}").is_err());
    assert!(
        conformance::check(
            "GET",
            "/v1/me",
            200,
            "application/json",
            &serde_json::to_vec(&me).unwrap()
        )
        .is_ok()
    );
    assert!(
        conformance::check("GET", "/v1/me", 299, "application/json", b"{}").is_err(),
        "an undocumented 2xx"
    );
    app.finish().await;
}

#[tokio::test]
async fn ended_sessions_are_forgotten_once_no_token_of_theirs_can_live() {
    // The reaper prunes too; without it the count below is this call's.
    let app = TestApp::start_with(Options {
        reaper: false,
        ..Options::default()
    })
    .await;
    use booking_core::identity::ended;
    let event = booking_core::ids::EventId(7);
    ended::end(&app.pool, event, 1).await.unwrap();
    ended::end(&app.pool, event, 2).await.unwrap();
    sqlx::query("UPDATE ended_admissions SET ended_at = now() - interval '3 days' WHERE ticket = 1")
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(ended::prune(&app.pool, ended::KEEP_SECS, 100).await.unwrap(), 1);
    assert!(!ended::has_ended(&app.pool, event, 1).await.unwrap());
    assert!(
        ended::has_ended(&app.pool, event, 2).await.unwrap(),
        "a recent end is kept"
    );
    app.finish().await;
}
