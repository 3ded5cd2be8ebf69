//! The venue portal's API over real HTTP and PostgreSQL: operators' sign-in
//! and sessions, chart import (JSON and CSV, dry run, problems by line),
//! events made and edited with stable refusal codes, organisations kept
//! apart (another's venue or event is always 404, its lists never show it),
//! viewers refused every change, waiting-room settings forwarded to a
//! stand-in edge, and the dashboard's figures.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::*;
use booking_core::config::EdgeConfig;
use booking_core::ids::OrganisationId;
use booking_core::portal::Role;
use booking_core::portal::auth::{self, NewOperator};
use reqwest::StatusCode;
use serde_json::{Value, json};
use usher_shared::admin::{AdminCode, AdminProblem, Progress};
use usher_shared::config::HttpUrl;

const PASSWORD: &str = "correct horse battery";

async fn org(app: &TestApp, name: &str) -> OrganisationId {
    auth::ensure_organisation(&app.pool, name).await.unwrap()
}

async fn operator(app: &TestApp, org: OrganisationId, email: &str, role: Role) {
    let new = NewOperator {
        organisation: org,
        email,
        name: Some("Test Operator"),
        role,
        password: PASSWORD,
    };
    auth::upsert_operator(&app.pool, &new, false).await.unwrap();
}

async fn sign_in(app: &TestApp, email: &str, password: &str) -> (StatusCode, Value) {
    let r = app
        .http
        .post(app.url("/v1/portal/sign-in"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap_or(Value::Null))
}

async fn token(app: &TestApp, email: &str) -> String {
    let (s, body) = sign_in(app, email, PASSWORD).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

/// Any call with a bearer token: status and JSON body.
async fn call(app: &TestApp, method: &str, path: &str, token: &str, body: Option<Value>) -> (StatusCode, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut r = app.http.request(method, app.url(path)).bearer_auth(token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    (r.status(), r.json().await.unwrap_or(Value::Null))
}

async fn import_raw(app: &TestApp, token: &str, query: &str, content_type: &str, body: Vec<u8>) -> (StatusCode, Value) {
    let r = app
        .http
        .post(app.url(&format!("/v1/portal/venues/import{query}")))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap_or(Value::Null))
}

/// Imports a small chart (`sections` x 3 rows x 5 seats; tiers 1 and 2) and
/// returns the venue's id.
async fn import_venue(app: &TestApp, token: &str, slug: &str) -> i64 {
    let chart = serde_json::to_vec(&small_chart(slug, &["A", "B"], 3, 5)).unwrap();
    let (s, body) = import_raw(app, token, "", "application/json", chart).await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    body["venue"]["id"].as_i64().unwrap()
}

fn new_event(venue: i64) -> Value {
    json!({
        "venue_id": venue,
        "title": "Portal Night",
        "artist": "The Operators",
        "category": "concert",
        "description": "made in the portal",
        "starts_at": (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339(),
        "on_sale_at": (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339(),
        "tiers": [{"tier": 1, "name": "Front", "price_cents": 5000}, {"tier": 2, "name": "Back", "price_cents": 2500}],
        "rules": {"hold_ttl_secs": 300, "hold_jitter_secs": 0, "max_seats_per_fan": 6, "protected": false},
        "policy": {"return_refunded_seats": true, "resale_cap_percent": 100, "resale_fee_percent": 5, "transfers_allowed": false}
    })
}

async fn create_event(app: &TestApp, token: &str, venue: i64) -> i64 {
    let (s, body) = call(app, "POST", "/v1/portal/events", token, Some(new_event(venue))).await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    body["id"].as_i64().unwrap()
}

fn code(body: &Value) -> &str {
    body["code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn sign_in_sessions_expire_and_end() {
    let app = TestApp::start().await;
    let o = org(&app, "Sign-in Org").await;
    operator(&app, o, "Ops@Example.com", Role::Owner).await;

    // Any case of the address; the answer carries who and where.
    let (s, body) = sign_in(&app, "  OPS@example.COM ", PASSWORD).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 43, "32 bytes of base64url");
    assert_eq!(body["operator"]["email"], "ops@example.com");
    assert_eq!(body["operator"]["role"], "owner");
    assert_eq!(body["operator"]["organisation"]["name"], "Sign-in Org");
    assert_eq!(body["operator"]["organisation"]["id"], o.0);
    assert!(body["expires_at"].is_string());
    // Only a hash of the token is stored.
    let stored: Vec<Vec<u8>> = sqlx::query_scalar("SELECT token_hash FROM operator_sessions")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_ne!(stored[0], token.as_bytes());
    assert_eq!(stored[0].len(), 32);

    let (s, me) = call(&app, "GET", "/v1/portal/me", &token, None).await;
    assert_eq!(s, StatusCode::OK, "{me}");
    assert_eq!(me["operator"]["email"], "ops@example.com");

    // A wrong password and an unknown address get the same answer.
    let (s1, wrong) = sign_in(&app, "ops@example.com", "not the password").await;
    let (s2, unknown) = sign_in(&app, "nobody@example.com", PASSWORD).await;
    assert_eq!((s1, code(&wrong)), (StatusCode::UNAUTHORIZED, "invalid_credentials"));
    assert_eq!(wrong, unknown);
    assert_eq!(s2, StatusCode::UNAUTHORIZED);

    // No token, a made-up one, a fan's JWT: all 401 operator_auth_required.
    let r = app.http.get(app.url("/v1/portal/me")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(code(&r.json().await.unwrap()), "operator_auth_required");
    let (s, body) = call(&app, "GET", "/v1/portal/me", "made-up", None).await;
    assert_eq!((s, code(&body)), (StatusCode::UNAUTHORIZED, "operator_auth_required"));
    let fan = app.sign_in("alice").await;
    let (s, _) = call(&app, "GET", "/v1/portal/venues", &fan, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // An expired session no longer signs anyone in.
    sqlx::query(
        "UPDATE operator_sessions SET created_at = now() - interval '2 days', expires_at = now() - interval '1 day'",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let (s, body) = call(&app, "GET", "/v1/portal/me", &token, None).await;
    assert_eq!((s, code(&body)), (StatusCode::UNAUTHORIZED, "operator_auth_required"));

    // Signing out ends the session at once.
    let token = self::token(&app, "ops@example.com").await;
    let (s, _) = call(&app, "POST", "/v1/portal/sign-out", &token, None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = call(&app, "GET", "/v1/portal/me", &token, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    app.finish().await;
}

#[tokio::test]
async fn charts_import_as_json_and_csv_with_a_preview_and_problems_by_line() {
    let app = TestApp::start().await;
    let o = org(&app, "Import Org").await;
    operator(&app, o, "ops@import.example", Role::Editor).await;
    let t = token(&app, "ops@import.example").await;
    let venues = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM venues")
            .fetch_one(&app.pool)
            .await
            .unwrap()
    };

    // A dry run: the preview, and nothing stored.
    let chart = serde_json::to_vec(&small_chart("json-hall", &["A", "B"], 3, 5)).unwrap();
    let (s, p) = import_raw(&app, &t, "?dry_run=true", "application/json", chart.clone()).await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(p["seat_count"], 30);
    assert_eq!(p["sections"][0]["code"], "A");
    assert_eq!(p["sections"][0]["seat_count"], 15);
    assert_eq!(p["tiers"], json!([{"tier": 1, "seats": 20}, {"tier": 2, "seats": 10}]));
    assert_eq!(p["seats"].as_array().unwrap().len(), 30);
    assert_eq!(p["seats"][0].as_array().unwrap().len(), 4);
    assert_eq!(p["seat_fields"], json!(["x", "y", "tier", "flags"]));
    assert!(p["bounds"]["max_x"].as_f64().unwrap() > p["bounds"]["min_x"].as_f64().unwrap());
    assert_eq!(venues().await, 0, "a dry run stores nothing");

    // Stored, owned by the organisation; the same chart again changes nothing.
    let (s, body) = import_raw(&app, &t, "", "application/json", chart.clone()).await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    assert_eq!(body["venue"]["seat_count"], 30);
    assert_eq!(body["created"], true);
    let owner: Option<i64> = sqlx::query_scalar("SELECT organisation_id FROM venues WHERE slug = 'json-hall'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(owner, Some(o.0));
    let (s, again) = import_raw(&app, &t, "", "application/json", chart).await;
    assert_eq!((s, &again["created"]), (StatusCode::OK, &json!(false)));
    assert_eq!(again["venue"]["id"], body["venue"]["id"]);

    // CSV, the venue's fields in the query.
    let csv = "section_code,section_name,row,seat,x,y,tier,accessible,obstructed\n\
               S,\"Stalls, centre\",A,1,-1,2,1,true,false\n\
               S,\"Stalls, centre\",A,2,0,2,1,,\n\
               S,\"Stalls, centre\",A,3,1,2,1,,\n\
               S,\"Stalls, centre\",B,1,-1,3,2,,yes\n\
               S,\"Stalls, centre\",B,2,0,3,2,,\n\
               C,Circle,A,1,0,10,3,,\n";
    let q = "?slug=csv-hall&name=CSV%20Hall&city=Leeds&country=GB&timezone=Europe/London&focal_x=0&focal_y=0";
    let (s, p) = import_raw(&app, &t, &format!("{q}&dry_run=true"), "text/csv", csv.into()).await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(p["seat_count"], 6);
    assert_eq!(p["sections"][0]["name"], "Stalls, centre");
    assert_eq!(p["seats"][0], json!([-1.0, 2.0, 1, 1]));
    assert_eq!(p["seats"][3], json!([-1.0, 3.0, 2, 2]));
    assert_eq!(venues().await, 1);
    let (s, body) = import_raw(&app, &t, q, "text/csv; charset=utf-8", csv.into()).await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let (s, list) = call(&app, "GET", "/v1/portal/venues", &t, None).await;
    assert_eq!(s, StatusCode::OK);
    let slugs: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, ["json-hall", "csv-hall"]);
    assert_eq!(list["items"][1]["seat_count"], 6);

    // A bad CSV: every problem, by line (and column), nothing stored.
    let bad = "section_code,section_name,row,seat,x,y,tier,accessible,obstructed\n\
               S,Stalls,A,1,0,0,1,,\n\
               S,Stalls,A,two,0,0,1,,\n\
               S,Stalls,A,3,0,0,12,,\n\
               S,Stalls,A,1,5,0,1,,\n\
               S,Stalls,A,4,0,0,1,maybe,\n";
    let q = "?slug=bad-hall&name=Bad&city=Leeds&country=GB&timezone=Europe/London";
    let (s, p) = import_raw(&app, &t, q, "text/csv", bad.into()).await;
    assert_eq!(
        (s, code(&p)),
        (StatusCode::UNPROCESSABLE_ENTITY, "chart_invalid"),
        "{p}"
    );
    let found: Vec<(i64, &str)> = p["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["line"].as_i64().unwrap(), x["path"].as_str().unwrap()))
        .collect();
    assert_eq!(found, [(3, "seat"), (6, "accessible")], "{p}");
    // Those fixed, the chart's own rules: tier 12, and seat 1 twice in row A.
    let bad = bad.replace("A,two,", "A,2,").replace(",maybe,", ",,");
    let (s, p) = import_raw(&app, &t, q, "text/csv", bad.into()).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let found: Vec<(i64, &str)> = p["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["line"].as_i64().unwrap(), x["path"].as_str().unwrap()))
        .collect();
    assert!(found.contains(&(5, "seat")), "{p}");
    assert!(found.contains(&(4, "tier")), "{p}");
    // Missing venue fields are named.
    let (s, p) = import_raw(&app, &t, "?slug=x", "text/csv", b"section_code\n".to_vec()).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let paths: Vec<&str> = p["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["path"].as_str().unwrap())
        .collect();
    assert!(paths.contains(&"name") && paths.contains(&"header"), "{p}");

    // Bad JSON: a problem with its line; the chart's rules with their paths.
    let (s, p) = import_raw(
        &app,
        &t,
        "",
        "application/json",
        b"{\n  \"slug\": \"x\",\n  oops\n}".to_vec(),
    )
    .await;
    assert_eq!((s, code(&p)), (StatusCode::UNPROCESSABLE_ENTITY, "chart_invalid"));
    assert_eq!(p["problems"][0]["line"], 3, "{p}");
    let mut chart = serde_json::to_value(small_chart("bad-json", &["A"], 1, 3)).unwrap();
    chart["sections"][0]["rows"][0]["seats"][2]["tier"] = 0.into();
    let (s, p) = import_raw(&app, &t, "", "application/json", serde_json::to_vec(&chart).unwrap()).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(p["problems"][0]["path"], "sections[0].rows[0].seats[2].tier", "{p}");
    let (s, p) = import_raw(&app, &t, "", "application/xml", b"<chart/>".to_vec()).await;
    assert_eq!(
        (s, code(&p)),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
    );
    assert_eq!(venues().await, 2, "no bad chart was stored");

    // The documented examples (docs/venue-charts.md) describe one venue.
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/examples");
    let json_chart = std::fs::read(format!("{dir}/venue-chart.json")).unwrap();
    let csv_chart = std::fs::read(format!("{dir}/venue-chart.csv")).unwrap();
    let (s, from_json) = import_raw(&app, &t, "?dry_run=true", "application/json", json_chart).await;
    assert_eq!(s, StatusCode::OK, "{from_json}");
    let q = "?dry_run=true&slug=example-hall&name=Example%20Hall&city=Leeds&country=GB&timezone=Europe/London";
    let (s, from_csv) = import_raw(&app, &t, q, "text/csv", csv_chart).await;
    assert_eq!(s, StatusCode::OK, "{from_csv}");
    assert_eq!(from_json, from_csv);
    assert_eq!(from_json["seat_count"], 16);

    // A stadium's chart (50,000 seats, megabytes) is taken whole.
    let stadium = serde_json::to_vec(&booking_core::seed::stadium()).unwrap();
    assert!(stadium.len() > 1_000_000);
    let (s, p) = import_raw(&app, &t, "?dry_run=true", "application/json", stadium).await;
    assert_eq!((s, &p["seat_count"]), (StatusCode::OK, &json!(50_000)));
    app.finish().await;
}

#[tokio::test]
async fn events_are_created_and_edited_with_stable_refusals() {
    let app = TestApp::start().await;
    let o = org(&app, "Events Org").await;
    operator(&app, o, "ops@events.example", Role::Owner).await;
    let t = token(&app, "ops@events.example").await;
    let venue = import_venue(&app, &t, "events-hall").await;

    let (s, e) = call(&app, "POST", "/v1/portal/events", &t, Some(new_event(venue))).await;
    assert_eq!(s, StatusCode::CREATED, "{e}");
    let id = e["id"].as_i64().unwrap();
    assert!(e["slug"].as_str().unwrap().starts_with("portal-night-"), "{e}");
    assert_eq!(e["venue"]["id"], venue);
    assert_eq!(e["chart_tiers"], json!([1, 2]));
    assert_eq!(e["tiers"][0]["price_cents"], 5000);
    assert_eq!(e["rules"]["max_seats_per_fan"], 6);
    assert_eq!(e["policy"]["resale_cap_percent"], 100);
    assert_eq!(e["policy"]["transfers_allowed"], false);
    assert_eq!(e["on_sale"], true);
    let owner: Option<i64> = sqlx::query_scalar("SELECT organisation_id FROM events WHERE id = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(owner, Some(o.0), "an event belongs to its venue's organisation");
    // The public catalog shows it like any other.
    let (s, public) = app.get(&format!("/v1/events/{id}")).await;
    assert_eq!((s, &public["title"]), (StatusCode::OK, &json!("Portal Night")));

    // Refusals, each with its code.
    let refused = |patch: &dyn Fn(&mut Value)| {
        let mut body = new_event(venue);
        patch(&mut body);
        body
    };
    let cases: Vec<(Value, StatusCode, &str)> = vec![
        (
            refused(&|b| b["tiers"] = json!([{"tier": 1, "name": "Front", "price_cents": 5000}])),
            StatusCode::UNPROCESSABLE_ENTITY,
            "tier_missing",
        ),
        (
            refused(&|b| b["tiers"][1]["tier"] = 7.into()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_tier",
        ),
        (
            refused(&|b| b["tiers"][1]["tier"] = 1.into()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "duplicate_tier",
        ),
        (
            refused(&|b| b["tiers"][0]["price_cents"] = (-5).into()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_price",
        ),
        (
            refused(&|b| b["tiers"][0]["price_cents"] = 100_000_001.into()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_price",
        ),
        (
            refused(&|b| b["on_sale_at"] = (chrono::Utc::now() + chrono::Duration::days(90)).to_rfc3339().into()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "on_sale_after_start",
        ),
        (
            refused(&|b| b["on_sale_at"] = "0057-01-01T00:00:00Z".into()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_event",
        ),
        (
            refused(&|b| b["starts_at"] = "9999-12-31T00:00:00Z".into()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_event",
        ),
        (
            refused(&|b| b["title"] = "Tour\u{0}2027".into()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_text",
        ),
        (
            refused(&|b| b["venue_id"] = 999_999.into()),
            StatusCode::NOT_FOUND,
            "venue_not_found",
        ),
        (
            refused(&|b| b["rules"]["hold_jitter_secs"] = 200.into()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_rules",
        ),
        (
            refused(&|b| b["policy"]["resale_fee_percent"] = 101.into()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_policy",
        ),
        (
            refused(&|b| b["title"] = "".into()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_event",
        ),
        (
            refused(&|b| b["slug"] = "Not A Slug".into()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_event",
        ),
        (
            refused(&|b| b["category"] = "opera".into()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            refused(&|b| b["slug"] = e["slug"].clone()),
            StatusCode::CONFLICT,
            "slug_taken",
        ),
    ];
    for (body, status, want) in cases {
        let (s, p) = call(&app, "POST", "/v1/portal/events", &t, Some(body)).await;
        assert_eq!((s, code(&p)), (status, want), "{p}");
        assert_eq!(p["status"], status.as_u16());
    }
    let (s, p) = call(
        &app,
        "POST",
        "/v1/portal/events",
        &t,
        Some(refused(&|b| {
            b["tiers"] = json!([{"tier": 2, "name": "Back", "price_cents": 100}]);
        })),
    )
    .await;
    assert_eq!(
        (s, &p["tiers"]),
        (StatusCode::UNPROCESSABLE_ENTITY, &json!([1])),
        "the missing tiers are listed"
    );
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(events, 1, "no refused event was stored");

    // A fan holds a tier-1 seat at 50.00; then the price changes.
    let fan = app.sign_in("fan").await;
    let seats = seat_ids(&app.pool, booking_core::ids::VenueId(venue)).await;
    let (s, hold) = app
        .hold(
            &fan,
            booking_core::ids::EventId(id),
            "k1",
            &json!({"seat_ids": [seats[0]]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{hold}");
    assert_eq!(hold["total_cents"], 5000);

    let patch = json!({
        "title": "Portal Night (late show)",
        "tiers": [{"tier": 1, "name": "Front row", "price_cents": 6000}],
        "rules": {"max_seats_per_fan": 2},
        "policy": {"resale_cap_percent": 120}
    });
    let (s, e) = call(&app, "PATCH", &format!("/v1/portal/events/{id}"), &t, Some(patch)).await;
    assert_eq!(s, StatusCode::OK, "{e}");
    assert_eq!(e["title"], "Portal Night (late show)");
    assert_eq!(e["artist"], "The Operators", "untouched");
    assert_eq!(
        e["tiers"][0],
        json!({"tier": 1, "name": "Front row", "price_cents": 6000})
    );
    assert_eq!(e["tiers"][1]["price_cents"], 2500);
    assert_eq!(e["rules"]["max_seats_per_fan"], 2);
    assert_eq!(e["rules"]["hold_ttl_secs"], 300);
    assert_eq!(e["policy"]["resale_cap_percent"], 120);
    assert_eq!(e["policy"]["transfers_allowed"], false, "untouched");
    let (s, same) = call(&app, "GET", &format!("/v1/portal/events/{id}"), &t, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(same, e);
    // The hold keeps the price it locked; a new hold pays the new one.
    let (_, held) = app
        .get(&format!("/v1/holds/{}", hold["hold_id"].as_str().unwrap()))
        .await;
    let locked: i64 = sqlx::query_scalar("SELECT total_cents FROM holds WHERE id = $1::uuid")
        .bind(hold["hold_id"].as_str().unwrap())
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(locked, 5000, "{held}");
    let (s, second) = app
        .hold(
            &fan,
            booking_core::ids::EventId(id),
            "k2",
            &json!({"seat_ids": [seats[1]]}),
        )
        .await;
    assert_eq!(
        (s, &second["total_cents"]),
        (StatusCode::CREATED, &json!(6000)),
        "{second}"
    );

    let path = format!("/v1/portal/events/{id}");
    for (patch, want) in [
        (
            json!({"on_sale_at": (chrono::Utc::now() + chrono::Duration::days(90)).to_rfc3339()}),
            "on_sale_after_start",
        ),
        (json!({"on_sale_at": "0057-03-01T09:00:00Z"}), "invalid_event"),
        (json!({"starts_at": "2999-03-01T09:00:00Z"}), "invalid_event"),
        (json!({"description": "a\u{0}b"}), "invalid_text"),
        (
            json!({"tiers": [{"tier": 9, "name": "X", "price_cents": 1}]}),
            "unknown_tier",
        ),
        (
            json!({"tiers": [{"tier": 1, "name": "X", "price_cents": -1}]}),
            "invalid_price",
        ),
        (json!({"rules": {"hold_ttl_secs": 0}}), "invalid_rules"),
        (json!({"artist": ""}), "invalid_event"),
        (json!({"venue_id": 1}), "invalid_body"),
    ] {
        let (s, p) = call(&app, "PATCH", &path, &t, Some(patch)).await;
        assert_eq!((s, code(&p)), (StatusCode::UNPROCESSABLE_ENTITY, want), "{p}");
    }
    let (s, p) = call(
        &app,
        "PATCH",
        "/v1/portal/events/999999",
        &t,
        Some(json!({"title": "x"})),
    )
    .await;
    assert_eq!((s, code(&p)), (StatusCode::NOT_FOUND, "event_not_found"));
    let (s, list) = call(&app, "GET", "/v1/portal/events", &t, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["venue"]["slug"], "events-hall");
    app.finish().await;
}

#[tokio::test]
async fn organisations_are_kept_apart_and_viewers_only_read() {
    let app = TestApp::start().await;
    let a = org(&app, "Org A").await;
    let b = org(&app, "Org B").await;
    operator(&app, a, "owner@a.example", Role::Owner).await;
    operator(&app, a, "viewer@a.example", Role::Viewer).await;
    operator(&app, b, "owner@b.example", Role::Owner).await;
    let ta = token(&app, "owner@a.example").await;
    let tv = token(&app, "viewer@a.example").await;
    let tb = token(&app, "owner@b.example").await;
    let venue = import_venue(&app, &ta, "a-hall").await;
    let event = create_event(&app, &ta, venue).await;
    let b_venue = import_venue(&app, &tb, "b-hall").await;

    // B's lists never show A's venues or events.
    let (_, vs) = call(&app, "GET", "/v1/portal/venues", &tb, None).await;
    let ids: Vec<i64> = vs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [b_venue]);
    let (_, es) = call(&app, "GET", "/v1/portal/events", &tb, None).await;
    assert_eq!(es["items"], json!([]));
    let (_, es) = call(&app, "GET", "/v1/portal/events", &ta, None).await;
    assert_eq!(es["items"].as_array().unwrap().len(), 1);
    let (_, vs) = call(&app, "GET", "/v1/portal/venues", &ta, None).await;
    assert_eq!(vs["items"].as_array().unwrap().len(), 1);

    // Every endpoint on A's event answers B exactly as for an event that
    // does not exist.
    let missing = 9_999_999;
    let event_calls = |e: i64| -> Vec<(&'static str, String, Option<Value>)> {
        vec![
            ("GET", format!("/v1/portal/events/{e}"), None),
            (
                "PATCH",
                format!("/v1/portal/events/{e}"),
                Some(json!({"title": "mine now"})),
            ),
            ("GET", format!("/v1/portal/events/{e}/waiting-room"), None),
            (
                "PUT",
                format!("/v1/portal/events/{e}/waiting-room"),
                Some(json!({"admit_per_minute": 1})),
            ),
            (
                "GET",
                format!("/v1/portal/events/{e}/dashboard/history?minutes=5"),
                None,
            ),
            ("GET", format!("/v1/portal/events/{e}/dashboard"), None),
        ]
    };
    for ((method, path, body), (_, missing_path, _)) in event_calls(event).into_iter().zip(event_calls(missing)) {
        let (s, p) = call(&app, method, &path, &tb, body.clone()).await;
        assert_eq!(
            (s, code(&p)),
            (StatusCode::NOT_FOUND, "event_not_found"),
            "{method} {path}: {p}"
        );
        let (s2, p2) = call(&app, method, &missing_path, &tb, body).await;
        assert_eq!((s2, code(&p2)), (s, code(&p)), "{method} {missing_path}");
        assert_eq!(p["detail"], p2["detail"]);
    }
    // A's venue: B cannot put an event in it, nor import over its slug.
    let (s, p) = call(&app, "POST", "/v1/portal/events", &tb, Some(new_event(venue))).await;
    assert_eq!((s, code(&p)), (StatusCode::NOT_FOUND, "venue_not_found"));
    let chart = serde_json::to_vec(&small_chart("a-hall", &["A", "B"], 3, 5)).unwrap();
    let (s, p) = import_raw(&app, &tb, "", "application/json", chart).await;
    assert_eq!((s, code(&p)), (StatusCode::CONFLICT, "slug_taken"), "{p}");
    assert!(p.get("venue").is_none() && p.get("venue_id").is_none(), "{p}");
    let (_, e) = call(&app, "GET", &format!("/v1/portal/events/{event}"), &ta, None).await;
    assert_eq!(e["title"], "Portal Night", "B changed nothing");

    // A's viewer reads everything of A's, and is refused every change.
    for path in [
        "/v1/portal/venues".to_string(),
        "/v1/portal/events".to_string(),
        format!("/v1/portal/events/{event}"),
        format!("/v1/portal/events/{event}/dashboard/history"),
    ] {
        let (s, p) = call(&app, "GET", &path, &tv, None).await;
        assert_eq!(s, StatusCode::OK, "{path}: {p}");
    }
    let changes: Vec<(&str, String, Option<Value>)> = vec![
        ("POST", "/v1/portal/events".into(), Some(new_event(venue))),
        (
            "PATCH",
            format!("/v1/portal/events/{event}"),
            Some(json!({"title": "viewer was here"})),
        ),
        (
            "PUT",
            format!("/v1/portal/events/{event}/waiting-room"),
            Some(json!({"admit_per_minute": 1})),
        ),
        (
            "PATCH",
            format!("/v1/portal/events/{missing}"),
            Some(json!({"title": "x"})),
        ),
    ];
    for (method, path, body) in changes {
        let (s, p) = call(&app, method, &path, &tv, body).await;
        assert_eq!(
            (s, code(&p)),
            (StatusCode::FORBIDDEN, "role_forbidden"),
            "{method} {path}: {p}"
        );
    }
    let chart = serde_json::to_vec(&small_chart("viewer-hall", &["A"], 1, 2)).unwrap();
    let (s, p) = import_raw(&app, &tv, "", "application/json", chart).await;
    assert_eq!((s, code(&p)), (StatusCode::FORBIDDEN, "role_forbidden"));
    let (_, e) = call(&app, "GET", &format!("/v1/portal/events/{event}"), &ta, None).await;
    assert_eq!(e["title"], "Portal Night", "the viewer changed nothing");
    let venues: i64 = sqlx::query_scalar("SELECT count(*) FROM venues")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(venues, 2);

    // Without an [edge] section, waiting rooms are 503 edge_not_configured.
    let (s, p) = call(
        &app,
        "GET",
        &format!("/v1/portal/events/{event}/waiting-room"),
        &ta,
        None,
    )
    .await;
    assert_eq!((s, code(&p)), (StatusCode::SERVICE_UNAVAILABLE, "edge_not_configured"));
    app.finish().await;
}

/// What the stand-in edge saw.
#[derive(Default)]
struct EdgeSeen {
    requests: Vec<(String, String, Option<String>, Value)>,
}

/// A stand-in for the edge's admin API: answers GET/PUT /admin/events/{id}
/// as the edge does, refuses admit_per_minute 0 as the edge would, and
/// records what it was sent.
async fn fake_edge(seen: Arc<Mutex<EdgeSeen>>) -> String {
    use axum::extract::{Path, State};
    use axum::http::HeaderMap;
    use axum::response::IntoResponse;
    async fn handle(
        State(seen): State<Arc<Mutex<EdgeSeen>>>,
        method: axum::http::Method,
        Path(event): Path<String>,
        headers: HeaderMap,
        body: axum::body::Bytes,
    ) -> axum::response::Response {
        let auth = headers.get("authorization").map(|v| v.to_str().unwrap().to_owned());
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        seen.lock()
            .unwrap()
            .requests
            .push((method.to_string(), event.clone(), auth.clone(), body.clone()));
        if auth.as_deref() != Some("Bearer edge-test-token") {
            return (axum::http::StatusCode::UNAUTHORIZED, "no").into_response();
        }
        if event == "404" {
            return (
                axum::http::StatusCode::NOT_FOUND,
                axum::Json(AdminProblem::new(
                    404,
                    "Not Found",
                    AdminCode::QueueNotFound,
                    "no waiting room for that event",
                )),
            )
                .into_response();
        }
        if method == axum::http::Method::PUT && body["admit_per_minute"] == 0 {
            let mut r = (
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                axum::Json(AdminProblem::new(
                    422,
                    "Unprocessable Entity",
                    AdminCode::InvalidSettings,
                    "admit_per_minute must be at least 1",
                )),
            )
                .into_response();
            r.headers_mut().insert(
                "x-problems",
                "[\"admit_per_minute must be at least 1\"]".parse().unwrap(),
            );
            return r;
        }
        let progress = Progress {
            tick: 7,
            through: 40,
            seq: 50,
            waiting: 10,
            active: 30,
            admitted_total: 40,
            rate: 600,
            healthy: true,
            ..Progress::default()
        };
        let mut room = edge_room(event.parse().unwrap(), 600, progress);
        if method == axum::http::Method::PUT {
            room.settings = serde_json::from_value(body).unwrap();
        }
        axum::Json(room).into_response()
    }
    let app = axum::Router::new()
        .route("/admin/events/{event}", axum::routing::get(handle).put(handle))
        .with_state(seen);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    format!("http://{addr}")
}

#[tokio::test]
async fn waiting_room_settings_are_forwarded_to_the_edge() {
    let seen = Arc::new(Mutex::new(EdgeSeen::default()));
    let edge_url = fake_edge(seen.clone()).await;
    let app = TestApp::start_with_config(Options::default(), |c| {
        c.edge = Some(EdgeConfig {
            admin_url: HttpUrl::parse(edge_url.clone()).unwrap(),
            admin_token: "edge-test-token".into(),
            timeout_ms: 2_000,
        })
    })
    .await;
    let o = org(&app, "Edge Org").await;
    operator(&app, o, "ops@edge.example", Role::Editor).await;
    let t = token(&app, "ops@edge.example").await;
    let venue = import_venue(&app, &t, "edge-hall").await;
    let event = create_event(&app, &t, venue).await;
    let path = format!("/v1/portal/events/{event}/waiting-room");

    let (s, room) = call(&app, "GET", &path, &t, None).await;
    assert_eq!(s, StatusCode::OK, "{room}");
    assert_eq!(room["settings"]["admit_per_minute"], 600);
    assert_eq!(room["progress"]["waiting"], 10);

    // The body goes to the edge with the event's id and the admin token.
    let settings = json!({"admit_per_minute": 120, "max_active": 500, "session_secs": 600, "mode": "fifo", "message": "Doors at 10"});
    let (s, room) = call(&app, "PUT", &path, &t, Some(settings.clone())).await;
    assert_eq!(s, StatusCode::OK, "{room}");
    assert_eq!(room["settings"]["admit_per_minute"], 120);
    {
        let seen = seen.lock().unwrap();
        let (method, id, auth, body) = seen.requests.last().unwrap().clone();
        assert_eq!((method.as_str(), id), ("PUT", event.to_string()));
        assert_eq!(auth.as_deref(), Some("Bearer edge-test-token"));
        // The edge's settings in full: what the body left out at its defaults.
        let want = json!({"event_id": event, "admit_per_minute": 120, "max_active": 500, "session_secs": 600, "mode": "fifo",
                          "on_sale_at": null, "message": "Doors at 10", "grace_secs": 60, "adaptive": null});
        assert_eq!(body, want);
    }

    // The edge's refusal comes back with its status, code and problems.
    let (s, p) = call(
        &app,
        "PUT",
        &path,
        &t,
        Some(json!({"admit_per_minute": 0, "max_active": 500, "session_secs": 600, "mode": "fifo"})),
    )
    .await;
    assert_eq!(
        (s, code(&p)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_settings"),
        "{p}"
    );
    assert_eq!(p["problems"], json!(["admit_per_minute must be at least 1"]));
    let (s, p) = call(&app, "PUT", &path, &t, Some(json!([1, 2]))).await;
    assert_eq!((s, code(&p)), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"), "{p}");
    // Settings the edge could not read are refused the same way, unsent.
    let sent = seen.lock().unwrap().requests.len();
    let (s, p) = call(
        &app,
        "PUT",
        &path,
        &t,
        Some(json!({"admit_per_minute": 0, "mode": "fifo"})),
    )
    .await;
    assert_eq!((s, code(&p)), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"), "{p}");
    assert_eq!(seen.lock().unwrap().requests.len(), sent);

    // The dashboard's first figures include the edge's.
    let mut sse = Sse::open(
        &app,
        &format!("/v1/portal/events/{event}/dashboard?access_token={t}"),
        None,
    )
    .await;
    let first = sse.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(first.event, "stats");
    assert_eq!(
        first.data["edge"],
        json!({"queue_length": 10, "admitted_total": 40, "admitted_per_minute": 600, "active": 30})
    );
    app.finish().await;

    // An edge that does not answer: 502 edge_unavailable, and no edge figures.
    let closed = format!("http://127.0.0.1:{}", free_port());
    let app = TestApp::start_with_config(Options::default(), |c| {
        c.edge = Some(EdgeConfig {
            admin_url: HttpUrl::parse(closed).unwrap(),
            admin_token: "edge-test-token".into(),
            timeout_ms: 500,
        })
    })
    .await;
    let o = org(&app, "Edge Org").await;
    operator(&app, o, "ops@edge.example", Role::Editor).await;
    let t = token(&app, "ops@edge.example").await;
    let venue = import_venue(&app, &t, "edge-hall").await;
    let event = create_event(&app, &t, venue).await;
    let (s, p) = call(
        &app,
        "GET",
        &format!("/v1/portal/events/{event}/waiting-room"),
        &t,
        None,
    )
    .await;
    assert_eq!((s, code(&p)), (StatusCode::BAD_GATEWAY, "edge_unavailable"), "{p}");
    let mut sse = Sse::open(
        &app,
        &format!("/v1/portal/events/{event}/dashboard?access_token={t}"),
        None,
    )
    .await;
    let first = sse.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(first.data["edge"], Value::Null);
    app.finish().await;
}

#[tokio::test]
async fn the_dashboard_counts_holds_and_sales() {
    let app = TestApp::start_with(Options {
        sandbox: true,
        ..Options::default()
    })
    .await;
    let o = org(&app, "Dashboard Org").await;
    operator(&app, o, "ops@dash.example", Role::Viewer).await;
    operator(&app, o, "owner@dash.example", Role::Owner).await;
    let owner = token(&app, "owner@dash.example").await;
    let venue = import_venue(&app, &owner, "dash-hall").await;
    let event = create_event(&app, &owner, venue).await;
    let e = booking_core::ids::EventId(event);
    let seats = seat_ids(&app.pool, booking_core::ids::VenueId(venue)).await;

    // Alice holds two tier-1 seats; Bob holds three and buys them.
    let alice = app.sign_in("alice").await;
    let (s, h) = app
        .hold(&alice, e, "a1", &json!({"seat_ids": [seats[0], seats[1]]}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{h}");
    let bob = app.sign_in("bob").await;
    let (s, h) = app
        .hold(&bob, e, "b1", &json!({"seat_ids": [seats[2], seats[3], seats[12]]}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{h}");
    let r = app
        .http
        .post(app.url("/v1/orders"))
        .bearer_auth(&bob)
        .header("idempotency-key", "o1")
        .json(&json!({"hold_id": h["hold_id"], "payment_method": "pm_card_ok"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let order: Value = r.json().await.unwrap();
    assert_eq!(order["state"], "confirmed", "{order}");
    let total = order["total_cents"].as_i64().unwrap();
    assert_eq!(total, 5000 + 5000 + 2500);

    // A viewer may watch; the first event comes at once.
    let viewer = token(&app, "ops@dash.example").await;
    let started = std::time::Instant::now();
    let mut sse = Sse::open(
        &app,
        &format!("/v1/portal/events/{event}/dashboard?access_token={viewer}"),
        None,
    )
    .await;
    let first = sse.next(Duration::from_secs(5)).await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(1500));
    assert_eq!(first.event, "stats");
    let d = &first.data;
    assert_eq!(d["seats_total"], 30, "{d}");
    assert_eq!(d["seats_held"], 2, "{d}");
    assert_eq!(d["seats_sold"], 3, "{d}");
    assert_eq!(d["seats_available"], 25, "{d}");
    assert_eq!(d["live_holds"], 1, "{d}");
    assert_eq!(d["orders_confirmed"], 1, "{d}");
    assert_eq!(d["revenue_cents"], total, "{d}");
    assert_eq!(d["sales_last_minute"], 1, "{d}");
    assert_eq!(d["edge"], Value::Null, "no edge configured");
    assert!(d["server_time"].is_string());
    // And again two seconds later.
    let second = sse.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(second.event, "stats");
    assert_eq!(second.data["seats_sold"], 3);

    // Without a token the stream is refused.
    let r = app
        .http
        .get(app.url(&format!("/v1/portal/events/{event}/dashboard")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // The per-minute history: the sale in the last minute, the rest empty.
    let (s, hist) = call(
        &app,
        "GET",
        &format!("/v1/portal/events/{event}/dashboard/history?minutes=10"),
        &viewer,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{hist}");
    let points = hist["points"].as_array().unwrap();
    assert_eq!(points.len(), 10);
    let sales: i64 = points.iter().map(|p| p["sales"].as_i64().unwrap()).sum();
    let revenue: i64 = points.iter().map(|p| p["revenue_cents"].as_i64().unwrap()).sum();
    assert_eq!((sales, revenue), (1, total));
    assert!(points.last().unwrap()["sales"].as_i64().unwrap() + points[8]["sales"].as_i64().unwrap() == 1);
    let (s, p) = call(
        &app,
        "GET",
        &format!("/v1/portal/events/{event}/dashboard/history?minutes=0"),
        &viewer,
        None,
    )
    .await;
    assert_eq!((s, code(&p)), (StatusCode::BAD_REQUEST, "invalid_minutes"));
    app.finish().await;
}

#[tokio::test]
async fn the_seed_makes_the_demo_organisations_once() {
    let app = TestApp::start().await;
    let first = booking_core::seed::run(&app.pool).await.unwrap();
    assert_eq!(first.operators_created, 3);
    let second = booking_core::seed::run(&app.pool).await.unwrap();
    assert_eq!(second.operators_created, 0);
    let hashes: Vec<String> = sqlx::query_scalar("SELECT password_hash FROM operators ORDER BY id")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(hashes.len(), 3);

    let (s, body) = sign_in(&app, "ops@meridian.example", "usher-demo").await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["operator"]["role"], "owner");
    assert_eq!(body["operator"]["organisation"]["name"], "Meridian Live");
    let meridian = body["token"].as_str().unwrap().to_owned();
    let (_, vs) = call(&app, "GET", "/v1/portal/venues", &meridian, None).await;
    assert_eq!(vs["items"].as_array().unwrap().len(), 5);
    let (_, es) = call(&app, "GET", "/v1/portal/events", &meridian, None).await;
    assert_eq!(es["items"].as_array().unwrap().len(), 12);

    let (s, body) = sign_in(&app, "viewer@meridian.example", "usher-demo").await;
    assert_eq!((s, &body["operator"]["role"]), (StatusCode::OK, &json!("viewer")));
    let (s, body) = sign_in(&app, "ops@harbour.example", "usher-demo").await;
    assert_eq!(s, StatusCode::OK);
    let harbour = body["token"].as_str().unwrap().to_owned();
    let (_, vs) = call(&app, "GET", "/v1/portal/venues", &harbour, None).await;
    assert_eq!(vs["items"], json!([]));
    let (s, _) = call(&app, "GET", "/v1/portal/events/1", &harbour, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // The portal is in the OpenAPI document.
    let (s, doc) = app.get("/openapi.json").await;
    assert_eq!(s, StatusCode::OK);
    for path in [
        "/v1/portal/sign-in",
        "/v1/portal/venues/import",
        "/v1/portal/events/{event_id}",
        "/v1/portal/events/{event_id}/waiting-room",
        "/v1/portal/events/{event_id}/dashboard",
        "/v1/portal/events/{event_id}/dashboard/history",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
    assert!(doc["components"]["securitySchemes"]["operator_token"].is_object());
    app.finish().await;
}

#[tokio::test]
async fn operator_add_makes_the_organisation_and_reads_the_password_from_the_environment() {
    use sqlx::ConnectOptions;
    let db = TestDb::new().await;
    let url = crate::common::url_for(&db.name).to_url_lossy().to_string();
    let run = |args: &[&str], password: Option<&str>| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_booking-core"));
        c.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .args(["--config", "config/booking-core.toml", "operator", "add"])
            .args(args)
            .env("DATABASE_URL", &url)
            .env("RUST_LOG", "error")
            .env("RUST_BACKTRACE", "0")
            .env_remove("USHER_OPERATOR_PASSWORD");
        if let Some(p) = password {
            c.env("USHER_OPERATOR_PASSWORD", p);
        }
        c.output().unwrap()
    };
    let args = [
        "--org",
        "CLI Org",
        "--email",
        "Ann@CLI.example",
        "--role",
        "editor",
        "--name",
        "Ann",
    ];
    let out = run(&args, Some("first-password"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let made: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(made["created"], true);
    // Again, another role and password: the same operator, its name kept.
    let out = run(
        &args[..4]
            .iter()
            .copied()
            .chain(["--role", "viewer"])
            .collect::<Vec<_>>()[..],
        Some("second-password"),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let again: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (&again["operator_id"], &again["created"]),
        (&made["operator_id"], &json!(false))
    );
    let row: (String, String, String, String) = sqlx::query_as(
        "SELECT o.email, o.name, o.role, g.name FROM operators o JOIN organisations g ON g.id = o.organisation_id",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        row,
        (
            "ann@cli.example".into(),
            "Ann".into(),
            "viewer".into(),
            "CLI Org".into()
        )
    );
    // No password, a short one, an unknown role: refused.
    assert!(!run(&args, None).status.success());
    let out = run(&args, Some("short"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 8 characters"));
    let out = run(
        &["--org", "CLI Org", "--email", "b@cli.example", "--role", "boss"],
        Some("long-enough"),
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("--role"));
    db.finish().await;
}

async fn sign_in_from(
    app: &TestApp,
    email: &str,
    password: &str,
    address: &str,
) -> (StatusCode, Option<String>, Value) {
    let r = app
        .http
        .post(app.url("/v1/portal/sign-in"))
        .header("x-forwarded-for", address)
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap();
    let retry = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (r.status(), retry, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn guessing_a_password_is_slowed_down_but_never_locks_the_owner_out() {
    let app = TestApp::start().await;
    let o = org(&app, "Guarded Org").await;
    operator(&app, o, "owner@guarded.test", Role::Owner).await;
    // An attacker guesses from one address, many times at once.
    let passwords: Vec<String> = (0..12).map(|i| format!("guess-{i}")).collect();
    let guesses = futures::future::join_all(
        passwords
            .iter()
            .map(|p| sign_in_from(&app, "owner@guarded.test", p, "203.0.113.7")),
    )
    .await;
    // Firing them at once gains nothing: each sees the ones before it, and
    // past five failures the rest must wait (a second or two may pass on a
    // slow machine, letting one more through).
    let refused = guesses
        .iter()
        .filter(|(s, _, _)| *s == StatusCode::UNAUTHORIZED)
        .count();
    let throttled = guesses
        .iter()
        .filter(|(s, _, _)| *s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert!((5..=6).contains(&refused) && refused + throttled == 12, "{guesses:?}");
    // Guessing on one at a time: the wait doubles with each failure, so a
    // guess soon has to wait, and says how long.
    let mut waited = None;
    for i in 0..3 {
        let (s, retry, body) = sign_in_from(&app, "owner@guarded.test", &format!("more-{i}"), "203.0.113.7").await;
        if s == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(body["code"], "sign_in_throttled", "{body}");
            assert_eq!(
                body["retry_after_secs"].as_u64().map(|s| s.to_string()),
                retry,
                "{body}"
            );
            waited = retry;
            break;
        }
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{body}");
    }
    let retry = waited;
    let secs: u64 = retry.expect("Retry-After").parse().unwrap();
    assert!((1..=900).contains(&secs), "{secs}");
    // Even the right password waits from that address: a guess that lands
    // during the wait is not even checked.
    let (s, _, _) = sign_in_from(&app, "owner@guarded.test", PASSWORD, "203.0.113.7").await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    // The owner, from an address of their own, signs in at once.
    let (s, _, body) = sign_in_from(&app, "owner@guarded.test", PASSWORD, "198.51.100.20").await;
    assert_eq!(s, StatusCode::OK, "{body}");
    // Every attempt is in the audit log, with its outcome.
    let outcomes: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT address, outcome, count(*) FROM operator_sign_ins WHERE email = 'owner@guarded.test'
         GROUP BY address, outcome ORDER BY address, outcome",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let count = |address: &str, outcome: &str| {
        outcomes
            .iter()
            .find(|(a, o, _)| a == address && o == outcome)
            .map_or(0, |r| r.2)
    };
    assert_eq!(count("198.51.100.20", "signed_in"), 1, "{outcomes:?}");
    assert!(count("203.0.113.7", "refused") >= 5, "{outcomes:?}");
    assert!(count("203.0.113.7", "throttled") >= 2, "{outcomes:?}");
    let logged = count("203.0.113.7", "refused") + count("203.0.113.7", "throttled");
    assert!(
        (14..=16).contains(&logged),
        "every attempt is logged once: {outcomes:?}"
    );
    app.finish().await;
}
