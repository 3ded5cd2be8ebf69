//! Holds over real HTTP against a real database: the answer's shape, all-or-
//! nothing claims, idempotency, release, limits, best available, and a clear
//! 4xx with its own code for every kind of bad request.

use crate::common::*;
use booking_core::catalog::EventRules;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn ids(v: &Value) -> Vec<i64> {
    v.as_array().unwrap().iter().map(|x| x.as_i64().unwrap()).collect()
}

fn held_ids(hold: &Value) -> Vec<i64> {
    hold["seats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["seat_id"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn a_hold_carries_seats_locked_prices_total_and_expiry() {
    let app = TestApp::start().await;
    let v = venue(&app.pool, &small_chart("v1", &["A"], 4, 10)).await;
    let rules = EventRules {
        hold_ttl_secs: 300,
        hold_jitter_secs: 60,
        max_seats_per_fan: 8,
        protected: false,
    };
    let e = event(&app.pool, "e1", "v1", rules).await;
    let seats = seat_ids(&app.pool, v).await;
    let alice = app.sign_in("alice").await;

    // Row 1 is tier 1 (30.00), row 3 is tier 2 (20.00).
    let (status, hold) = app
        .hold(&alice, e, "k1", &json!({"seat_ids": [seats[0], seats[21]]}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{hold}");
    assert!(hold["hold_id"].is_string());
    assert_eq!(held_ids(&hold), vec![seats[0], seats[21]]);
    let prices: Vec<i64> = hold["seats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["price_cents"].as_i64().unwrap())
        .collect();
    assert_eq!(prices, vec![3000, 2000]);
    assert_eq!(hold["total_cents"], 5000);
    assert_eq!(hold["seats"][0]["section"], "A");
    assert_eq!(hold["seats"][0]["row"], "R1");
    assert_eq!(hold["state"], "active");
    let expires = chrono::DateTime::parse_from_rfc3339(hold["expires_at"].as_str().unwrap()).unwrap();
    let server = chrono::DateTime::parse_from_rfc3339(hold["server_time"].as_str().unwrap()).unwrap();
    let lifetime = (expires - server).num_milliseconds();
    assert!(
        (240_000..=360_000).contains(&lifetime),
        "lifetime {lifetime} ms outside 300 s +/- 60 s"
    );

    // The database agrees.
    let claims = live_claims(&app.pool, e).await;
    assert_eq!(
        claims.iter().map(|c| c.0).collect::<Vec<_>>(),
        vec![seats[0], seats[21]]
    );

    // GET shows the same hold.
    let r = app
        .http
        .get(app.url(&format!("/v1/holds/{}", hold["hold_id"].as_str().unwrap())))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["total_cents"], 5000);
    app.finish().await;
}

#[tokio::test]
async fn jitter_spreads_expiry_of_holds_made_together() {
    let app = TestApp::start().await;
    let v = venue(&app.pool, &small_chart("vj", &["A"], 2, 20)).await;
    let rules = EventRules {
        hold_ttl_secs: 300,
        hold_jitter_secs: 60,
        max_seats_per_fan: 50,
        protected: false,
    };
    let e = event(&app.pool, "ej", "vj", rules).await;
    let seats = seat_ids(&app.pool, v).await;
    let fan = app.sign_in("spreader").await;
    let mut lifetimes = Vec::new();
    for (i, s) in seats.iter().take(20).enumerate() {
        let (status, hold) = app.hold(&fan, e, &format!("j{i}"), &json!({"seat_ids": [s]})).await;
        assert_eq!(status, StatusCode::CREATED);
        let exp = chrono::DateTime::parse_from_rfc3339(hold["expires_at"].as_str().unwrap()).unwrap();
        let now = chrono::DateTime::parse_from_rfc3339(hold["server_time"].as_str().unwrap()).unwrap();
        lifetimes.push((exp - now).num_milliseconds());
    }
    let (min, max) = (*lifetimes.iter().min().unwrap(), *lifetimes.iter().max().unwrap());
    assert!(min >= 240_000 && max <= 360_000, "{lifetimes:?}");
    // Twenty uniform draws over 120 s spread over more than 20 s with
    // overwhelming probability (all within 20 s: about 20 * (1/6)^19).
    assert!(max - min > 20_000, "expiries not spread: {lifetimes:?}");
    app.finish().await;
}

#[tokio::test]
async fn all_or_nothing_and_a_409_lists_the_taken_seats() {
    let app = TestApp::start().await;
    let v = venue(&app.pool, &small_chart("v2", &["A"], 2, 10)).await;
    let e = event(&app.pool, "e2", "v2", rules(8)).await;
    let seats = seat_ids(&app.pool, v).await;
    let alice = app.sign_in("alice").await;
    let bob = app.sign_in("bob").await;

    let (status, _) = app
        .hold(&alice, e, "a1", &json!({"seat_ids": [seats[1], seats[2]]}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, problem) = app
        .hold(
            &bob,
            e,
            "b1",
            &json!({"seat_ids": [seats[0], seats[1], seats[2], seats[3]]}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(problem["code"], "seats_taken");
    let mut taken = ids(&problem["seat_ids"]);
    taken.sort();
    assert_eq!(taken, vec![seats[1], seats[2]]);
    // Bob holds nothing: seats 0 and 3 are still free.
    let claims = live_claims(&app.pool, e).await;
    assert_eq!(claims.iter().map(|c| c.0).collect::<Vec<_>>(), vec![seats[1], seats[2]]);
    let (status, _) = app
        .hold(&bob, e, "b2", &json!({"seat_ids": [seats[0], seats[3]]}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    app.finish().await;
}

#[tokio::test]
async fn idempotency_keys_replay_the_first_answer_and_refuse_a_changed_body() {
    let app = TestApp::start().await;
    let v = venue(&app.pool, &small_chart("v3", &["A"], 2, 10)).await;
    let e = event(&app.pool, "e3", "v3", rules(8)).await;
    let seats = seat_ids(&app.pool, v).await;
    let alice = app.sign_in("alice").await;
    let body = json!({"seat_ids": [seats[4], seats[5]]});

    let (s1, first) = app.hold(&alice, e, "same-key", &body).await;
    let r = app
        .http
        .post(app.url(&format!("/v1/events/{}/holds", e.0)))
        .bearer_auth(&alice)
        .header("idempotency-key", "same-key")
        // Same request, different formatting.
        .header("content-type", "application/json")
        .body(format!("{{ \"seat_ids\" : [ {}, {} ] }}", seats[4], seats[5]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers().get("idempotent-replayed").unwrap(), "true");
    let (s2, second) = (r.status(), r.json::<Value>().await.unwrap());
    assert_eq!((s1, s2), (StatusCode::CREATED, StatusCode::CREATED));
    for field in ["hold_id", "seats", "total_cents", "expires_at", "created_at"] {
        assert_eq!(first[field], second[field], "{field}");
    }
    let holds: i64 = sqlx::query_scalar("SELECT count(*) FROM holds")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(holds, 1, "a replay must not create a second hold");

    let (status, problem) = app.hold(&alice, e, "same-key", &json!({"seat_ids": [seats[6]]})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["code"], "idempotency_key_reused");

    // A refusal is remembered too: the same key gets the same 409 even after
    // the seat frees up.
    let bob = app.sign_in("bob").await;
    let (status, refused) = app.hold(&bob, e, "bob-1", &json!({"seat_ids": [seats[4]]})).await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (StatusCode::CONFLICT, Some("seats_taken"))
    );
    let (status, _) = app.release(&alice, first["hold_id"].as_str().unwrap(), "rel-1").await;
    assert_eq!(status, StatusCode::OK);
    let (status, again) = app.hold(&bob, e, "bob-1", &json!({"seat_ids": [seats[4]]})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(again, refused);
    // A new key tries again for real.
    let (status, _) = app.hold(&bob, e, "bob-2", &json!({"seat_ids": [seats[4]]})).await;
    assert_eq!(status, StatusCode::CREATED);

    // Keys belong to a fan: Bob's key is not Alice's.
    let (status, _) = app.hold(&alice, e, "bob-2", &json!({"seat_ids": [seats[7]]})).await;
    assert_eq!(status, StatusCode::CREATED);
    app.finish().await;
}

#[tokio::test]
async fn concurrent_retries_with_one_key_make_one_hold() {
    let app = TestApp::start().await;
    let v = venue(&app.pool, &small_chart("v4", &["A"], 2, 10)).await;
    let e = event(&app.pool, "e4", "v4", rules(8)).await;
    let seats = seat_ids(&app.pool, v).await;
    let alice = app.sign_in("alice").await;
    let body = json!({"seat_ids": [seats[0], seats[1]]});
    let answers = futures::future::join_all((0..20).map(|_| app.hold(&alice, e, "storm", &body))).await;
    let hold_ids: std::collections::HashSet<String> = answers
        .iter()
        .map(|(s, b)| {
            assert_eq!(*s, StatusCode::CREATED, "{b}");
            b["hold_id"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(hold_ids.len(), 1);
    let holds: i64 = sqlx::query_scalar("SELECT count(*) FROM holds")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(holds, 1);
    app.finish().await;
}

#[tokio::test]
async fn release_frees_seats_and_explains_every_other_case() {
    let app = TestApp::start().await;
    let v = venue(&app.pool, &small_chart("v5", &["A"], 2, 10)).await;
    let e = event(&app.pool, "e5", "v5", rules(8)).await;
    let seats = seat_ids(&app.pool, v).await;
    let alice = app.sign_in("alice").await;
    let bob = app.sign_in("bob").await;
    let (_, hold) = app.hold(&alice, e, "h", &json!({"seat_ids": [seats[0]]})).await;
    let id = hold["hold_id"].as_str().unwrap();

    // Someone else's hold does not exist, as far as they can tell.
    let (status, p) = app.release(&bob, id, "x1").await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("hold_not_found"))
    );
    let (status, p) = app.release(&alice, "00000000-0000-0000-0000-000000000000", "x2").await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("hold_not_found"))
    );
    let (status, p) = app.release(&alice, "not-a-uuid", "x3").await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_path_parameter"))
    );

    let (status, released) = app.release(&alice, id, "r1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(released["state"], "released");
    assert!(live_claims(&app.pool, e).await.is_empty());
    // Retrying the release with its key: the same answer.
    let (status, again) = app.release(&alice, id, "r1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["state"], "released");
    // A new attempt to release: already released.
    let (status, p) = app.release(&alice, id, "r2").await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::CONFLICT, Some("hold_released"))
    );
    // Bob can have the seat now.
    let (status, _) = app.hold(&bob, e, "b", &json!({"seat_ids": [seats[0]]})).await;
    assert_eq!(status, StatusCode::CREATED);

    // An expired hold: 410.
    let (_, hold) = app.hold(&alice, e, "h2", &json!({"seat_ids": [seats[1]]})).await;
    let id2 = hold["hold_id"].as_str().unwrap();
    sqlx::query("UPDATE holds SET created_at = now() - interval '10 min', expires_at = now() - interval '1 min' WHERE id = $1::uuid")
        .bind(id2)
        .execute(&app.pool)
        .await
        .unwrap();
    let (status, p) = app.release(&alice, id2, "r3").await;
    assert_eq!((status, p["code"].as_str()), (StatusCode::GONE, Some("hold_expired")));
    app.finish().await;
}

#[tokio::test]
async fn bad_requests_get_their_own_codes_never_a_500() {
    let app = TestApp::start().await;
    let v = venue(&app.pool, &small_chart("v6", &["A", "B"], 3, 10)).await;
    venue(&app.pool, &small_chart("other", &["Z"], 1, 5)).await;
    let e = event(&app.pool, "e6", "v6", rules(8)).await;
    let seats = seat_ids(&app.pool, v).await;
    let other_seat: i64 = sqlx::query_scalar(
        "SELECT s.id FROM seats s JOIN venues v ON v.id = s.venue_id WHERE v.slug = 'other' LIMIT 1",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let alice = app.sign_in("alice").await;
    let hold_url = app.url(&format!("/v1/events/{}/holds", e.0));

    let cases: Vec<(Value, StatusCode, &str)> = vec![
        (json!({}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_hold_request"),
        (
            json!({"seat_ids": [seats[0]], "best_available": {"quantity": 1}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_hold_request",
        ),
        (
            json!({"seat_ids": []}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "seat_count_out_of_range",
        ),
        (
            json!({"seat_ids": seats[..11].to_vec()}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "seat_count_out_of_range",
        ),
        (
            json!({"seat_ids": [seats[0], seats[0]]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "duplicate_seats",
        ),
        (
            json!({"seat_ids": [999_999_999]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_seats",
        ),
        (
            json!({"seat_ids": [-5]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_seats",
        ),
        (
            json!({"seat_ids": [other_seat]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "seats_not_in_event",
        ),
        (
            json!({"best_available": {"quantity": -1}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "quantity_out_of_range",
        ),
        (
            json!({"best_available": {"quantity": 0}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "quantity_out_of_range",
        ),
        (
            json!({"best_available": {"quantity": 9_000_000_000_000_000i64}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "quantity_out_of_range",
        ),
        (
            json!({"best_available": {"quantity": 2, "section": "nope"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_section",
        ),
        (
            json!({"best_available": {"quantity": 2, "tier": 7}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_tier",
        ),
        (
            json!({"seat_ids": ["x"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (json!({"seats": [1]}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        (json!([1, 2]), StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
    ];
    for (i, (body, status, code)) in cases.into_iter().enumerate() {
        let (got, problem) = app.hold(&alice, e, &format!("bad-{i}"), &body).await;
        assert_eq!(
            (got, problem["code"].as_str()),
            (status, Some(code)),
            "case {i}: {body} -> {problem}"
        );
        assert_eq!(problem["status"], status.as_u16(), "{problem}");
        assert!(problem["type"].as_str().unwrap().ends_with(code));
    }

    // Raw bodies and headers.
    let send = |body: &'static str, ctype: Option<&'static str>, key: Option<&'static str>, token: Option<String>| {
        let mut r = app.http.post(&hold_url).body(body);
        if let Some(c) = ctype {
            r = r.header("content-type", c);
        }
        if let Some(k) = key {
            r = r.header("idempotency-key", k);
        }
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        async move {
            let r = r.send().await.unwrap();
            let ct = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_string());
            (r.status(), ct, r.json::<Value>().await.unwrap())
        }
    };
    let t = || Some(alice.clone());
    let json = Some("application/json");
    let checks = [
        (
            send("{not json", json, Some("r1"), t()).await,
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            send(
                r#"{"best_available":{"quantity":99999999999999999999999}}"#,
                json,
                Some("r0"),
                t(),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            send("", json, Some("r2"), t()).await,
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            send("{}", Some("text/plain"), Some("r3"), t()).await,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            send("{}", json, None, t()).await,
            StatusCode::BAD_REQUEST,
            "idempotency_key_missing",
        ),
        (
            send("{}", json, Some("has space"), t()).await,
            StatusCode::BAD_REQUEST,
            "idempotency_key_invalid",
        ),
        (
            send("{}", json, Some("k"), None).await,
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        ),
        (
            send("{}", json, Some("k"), Some("garbage".into())).await,
            StatusCode::UNAUTHORIZED,
            "token_malformed",
        ),
    ];
    for (i, ((status, ctype, body), want_status, want_code)) in checks.into_iter().enumerate() {
        assert_eq!(
            (status, body["code"].as_str()),
            (want_status, Some(want_code)),
            "check {i}: {body}"
        );
        assert_eq!(ctype.as_deref(), Some("application/problem+json"));
    }

    // Unknown event, non-numeric event id, unknown route, wrong method.
    let (status, p) = app
        .hold(
            &alice,
            booking_core::ids::EventId(987654),
            "u1",
            &json!({"seat_ids": [seats[0]]}),
        )
        .await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("event_not_found"))
    );
    let r = app
        .http
        .post(app.url("/v1/events/abc/holds"))
        .bearer_auth(&alice)
        .header("idempotency-key", "u2")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "invalid_path_parameter");
    let (status, p) = app.get("/v1/nothing-here").await;
    assert_eq!((status, p["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
    let r = app.http.put(app.url("/v1/events")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "method_not_allowed");

    // Nothing was held by any of it.
    assert!(live_claims(&app.pool, e).await.is_empty());
    app.finish().await;
}

#[tokio::test]
async fn tokens_are_checked() {
    let app = TestApp::start().await;
    // A token signed by a key the service does not trust.
    let pair = usher_shared::keys::generate_pair();
    let stranger =
        usher_shared::TokenSigner::new(usher_shared::SigningKey::from_pem("dev-1", &pair.private_pem).unwrap());
    let now = chrono::Utc::now().timestamp();
    let claims = usher_shared::FanClaims {
        iss: "usher-dev".into(),
        aud: "usher".into(),
        sub: "mallory".into(),
        iat: now,
        exp: now + 60,
        name: None,
    };
    let forged = stranger.sign(&claims);
    let r = app
        .http
        .get(app.url("/v1/me"))
        .bearer_auth(&forged)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers().get("www-authenticate").unwrap(), "Bearer");
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "token_bad_signature");

    let good = app.sign_in("carol").await;
    let r = app.http.get(app.url("/v1/me")).bearer_auth(&good).send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["fan_id"], "carol");
    let r = app
        .http
        .post(app.url("/v1/dev/sign-in"))
        .json(&json!({"fan_id": ""}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    app.finish().await;
}

#[tokio::test]
async fn per_fan_limits_count_every_live_hold() {
    let app = TestApp::start().await;
    let v = venue(&app.pool, &small_chart("v7", &["A"], 2, 10)).await;
    let e = event(&app.pool, "e7", "v7", rules(4)).await;
    let seats = seat_ids(&app.pool, v).await;
    let alice = app.sign_in("alice").await;
    let (s, _) = app
        .hold(&alice, e, "l1", &json!({"seat_ids": [seats[0], seats[1], seats[2]]}))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, p) = app
        .hold(&alice, e, "l2", &json!({"seat_ids": [seats[3], seats[4]]}))
        .await;
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::CONFLICT, Some("fan_limit_reached"))
    );
    assert_eq!((p["limit"].as_i64(), p["already"].as_i64()), (Some(4), Some(3)));
    let (s, _) = app.hold(&alice, e, "l3", &json!({"seat_ids": [seats[3]]})).await;
    assert_eq!(s, StatusCode::CREATED);

    // Many concurrent holds by one fan never exceed the limit.
    let bob = app.sign_in("bob").await;
    let answers = futures::future::join_all((0..8).map(|i| {
        let body = json!({"seat_ids": [seats[10 + i]]});
        let bob = bob.clone();
        let app = &app;
        async move { app.hold(&bob, e, &format!("c{i}"), &body).await }
    }))
    .await;
    let ok = answers.iter().filter(|(s, _)| *s == StatusCode::CREATED).count();
    assert_eq!(ok, 4, "{answers:?}");
    let held: i64 = sqlx::query_scalar("SELECT count(*) FROM seat_claims c JOIN holds h ON h.id = c.hold_id WHERE h.fan_id = 'bob' AND c.during @> now()")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(held, 4);
    app.finish().await;
}

#[tokio::test]
async fn event_state_is_enforced() {
    let app = TestApp::start().await;
    let v = venue(&app.pool, &small_chart("v8", &["A"], 1, 5)).await;
    let seats = seat_ids(&app.pool, v).await;
    let soon = event(&app.pool, "soon", "v8", rules(8)).await;
    sqlx::query("UPDATE events SET on_sale_at = now() + interval '1 day' WHERE id = $1")
        .bind(soon.0)
        .execute(&app.pool)
        .await
        .unwrap();
    let off = event(&app.pool, "off", "v8", rules(8)).await;
    sqlx::query("UPDATE events SET cancelled = true WHERE id = $1")
        .bind(off.0)
        .execute(&app.pool)
        .await
        .unwrap();
    let guarded = event(
        &app.pool,
        "guarded",
        "v8",
        EventRules {
            protected: true,
            ..rules(8)
        },
    )
    .await;
    let alice = app.sign_in("alice").await;
    let body = json!({"seat_ids": [seats[0]]});
    let (s, p) = app.hold(&alice, soon, "n1", &body).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::CONFLICT, Some("not_on_sale")));
    assert!(p["on_sale_at"].is_string());
    let (s, p) = app.hold(&alice, off, "n2", &body).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::CONFLICT, Some("event_cancelled")));
    let (s, p) = app.hold(&alice, guarded, "n3", &body).await;
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("admission_required"))
    );
    app.finish().await;
}

#[tokio::test]
async fn best_available_picks_adjacent_seats_nearest_the_stage_without_orphans() {
    let app = TestApp::start().await;
    let v = venue(&app.pool, &small_chart("v9", &["A", "B"], 4, 6)).await;
    let e = event(&app.pool, "e9", "v9", rules(10)).await;
    let seats = seat_ids(&app.pool, v).await;
    let alice = app.sign_in("alice").await;
    let bob = app.sign_in("bob").await;
    // Section A row 1 (seats 1-6): take seat 4, leaving runs 1-3 and 5-6.
    let (s, _) = app.hold(&bob, e, "b", &json!({"seat_ids": [seats[3]]})).await;
    assert_eq!(s, StatusCode::CREATED);
    // Two seats in A: 5-6 strand nobody; 1-2 or 2-3 would strand one.
    let (s, hold) = app
        .hold(
            &alice,
            e,
            "a",
            &json!({"best_available": {"quantity": 2, "section": "A"}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{hold}");
    let labels: Vec<(String, String)> = hold["seats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["row"].as_str().unwrap().into(), x["seat"].as_str().unwrap().into()))
        .collect();
    assert_eq!(labels, vec![("R1".into(), "5".into()), ("R1".into(), "6".into())]);
    // Four in a row: row 1 cannot, so row 2 (the next nearest).
    let (s, hold) = app
        .hold(
            &alice,
            e,
            "a2",
            &json!({"best_available": {"quantity": 4, "section": "A"}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{hold}");
    assert!(hold["seats"].as_array().unwrap().iter().all(|x| x["row"] == "R2"));
    let nos: Vec<i64> = hold["seats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["seat"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(nos.windows(2).all(|w| w[1] == w[0] + 1), "{nos:?}");
    // By tier: tier 2 is rows 3-4.
    let (s, hold) = app
        .hold(&bob, e, "b2", &json!({"best_available": {"quantity": 3, "tier": 2}}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{hold}");
    assert!(
        hold["seats"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["tier"] == 2 && x["row"] == "R3")
    );
    // More than any row holds.
    let (s, p) = app
        .hold(
            &bob,
            e,
            "b3",
            &json!({"best_available": {"quantity": 7, "section": "B"}}),
        )
        .await;
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::CONFLICT, Some("no_adjacent_seats"))
    );
    app.finish().await;
}

#[tokio::test]
async fn protected_events_take_holds_only_with_the_edges_access_token() {
    let app = TestApp::start().await;
    let v = venue(&app.pool, &small_chart("vp", &["A"], 1, 5)).await;
    let seats = seat_ids(&app.pool, v).await;
    let guarded = event(
        &app.pool,
        "guarded",
        "vp",
        EventRules {
            protected: true,
            ..rules(8)
        },
    )
    .await;
    let other = event(
        &app.pool,
        "other",
        "vp",
        EventRules {
            protected: true,
            ..rules(8)
        },
    )
    .await;
    let alice = app.sign_in("alice").await;
    let hold = |access: Option<String>, key: &'static str| {
        let mut r = app
            .http
            .post(app.url(&format!("/v1/events/{}/holds", guarded.0)))
            .bearer_auth(&alice)
            .header("idempotency-key", key)
            .json(&json!({"seat_ids": [seats[0]]}));
        if let Some(a) = access {
            r = r.header("usher-access", a);
        }
        async move {
            let r = r.send().await.unwrap();
            (r.status(), r.json::<Value>().await.unwrap())
        }
    };
    let refused = |(s, b): (StatusCode, Value)| {
        assert_eq!(
            (s, b["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("admission_required")),
            "{b}"
        );
    };
    refused(hold(None, "p1").await);
    refused(hold(Some(app.access_token(other, 60)), "p2").await);
    refused(hold(Some(app.access_token(guarded, -60)), "p3").await);
    refused(hold(Some("not-a-token".into()), "p4").await);
    // Signed by a key booking-core does not trust.
    let stranger = usher_shared::TokenSigner::new(
        usher_shared::SigningKey::from_pem("edge-t", &usher_shared::keys::generate_pair().private_pem).unwrap(),
    );
    let now = chrono::Utc::now().timestamp();
    let forged = stranger.sign(&usher_shared::AccessClaims {
        iss: "usher-edge".into(),
        aud: usher_shared::ACCESS_AUDIENCE.into(),
        sub: "x".into(),
        evt: guarded.0,
        tkt: 1,
        bnd: "b".into(),
        iat: now,
        exp: now + 60,
        jti: "j".into(),
    });
    refused(hold(Some(forged), "p5").await);
    let (s, b) = hold(Some(app.access_token(guarded, 60)), "p6").await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    app.finish().await;
}
