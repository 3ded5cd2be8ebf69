//! Dynamic pricing against real PostgreSQL (and, where money moves, the
//! real service and payment sandbox), driven by a controlled clock: the
//! rule stays within the operator's bounds for any input (property test);
//! prices rise under a surge and fall when demand stops; frozen and
//! disabled prices stay; a hold's price is what its order charges after the
//! price moved; two instances recalculate each interval exactly once; every
//! change is stored with its inputs and rule version; the seat stream sends
//! new prices; the portal's settings refuse bad input with stable codes and
//! viewers may only read.

use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use booking_core::ids::{Cents, EventId};
use booking_core::portal::Role;
use booking_core::portal::auth;
use booking_core::pricing::settings::{self, PricingUpdate, TierBoundsUpdate};
use booking_core::pricing::{
    Bounds, DemandRule, FixedQueue, NoQueue, PricingRule, QueueSource, RunOutcome, Runner, Signals,
};
use chrono::{DateTime, Utc};
use proptest::prelude::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

const INTERVAL: i64 = 30;

fn runner(pool: &PgPool, queue: Arc<dyn QueueSource>) -> Runner {
    Runner::new(pool.clone(), Arc::new(DemandRule), queue, INTERVAL as u32)
}

fn bounds(tier: i16, floor: i64, ceiling: i64, step: i64) -> TierBoundsUpdate {
    TierBoundsUpdate {
        tier,
        floor_cents: Cents(floor),
        ceiling_cents: Cents(ceiling),
        max_step_cents: Cents(step),
    }
}

/// Pricing on for the event, tiers 1-3 (3000, 2000, 1000) free to move
/// between 500 and 6000 by at most 300 an interval.
async fn enable(pool: &PgPool, event: EventId, frozen: bool) {
    let update = PricingUpdate {
        enabled: true,
        frozen,
        interval_secs: None,
        tiers: vec![
            bounds(1, 500, 6000, 300),
            bounds(2, 500, 6000, 300),
            bounds(3, 500, 6000, 300),
        ],
    };
    settings::replace(pool, event, &update).await.unwrap();
}

async fn price(pool: &PgPool, event: EventId, tier: i16) -> i64 {
    sqlx::query_scalar("SELECT price_cents FROM event_tiers WHERE event_id = $1 AND tier = $2")
        .bind(event.0)
        .bind(tier)
        .fetch_one(pool)
        .await
        .unwrap()
}

fn changed(outcome: &RunOutcome) -> usize {
    match outcome {
        RunOutcome::Ran { changes, .. } => changes.len(),
        _ => 0,
    }
}

/// An app whose own pricing job is off: the tests are the clock.
async fn app(sandbox: bool) -> TestApp {
    let options = Options {
        sandbox,
        ..Options::default()
    };
    TestApp::start_with_config(options, |c| c.pricing.recalculate = false).await
}

// ---- the rule, for any input ---------------------------------------------

fn any_signals() -> impl Strategy<Value = Signals> {
    (
        5u32..=3600,
        0u32..=60_000,
        0u32..=100,
        0u32..=60_000,
        0u32..=60_000,
        proptest::option::of(0u64..=10_000_000),
        -86_400i64..=400 * 86_400,
    )
        .prop_map(
            |(interval_secs, capacity, left_pct, held, sold, queue_length, secs_to_event)| {
                let remaining = (u64::from(capacity) * u64::from(left_pct) / 100) as u32;
                Signals {
                    interval_secs,
                    capacity,
                    remaining,
                    held,
                    sold,
                    event_remaining: remaining.saturating_mul(3),
                    queue_length,
                    secs_to_event,
                }
            },
        )
}

fn any_bounds() -> impl Strategy<Value = Bounds> {
    (0i64..=100_000_000, 0i64..=100_000_000, 1i64..=100_000_000).prop_map(|(a, b, step)| Bounds {
        floor: Cents(a.min(b)),
        ceiling: Cents(a.max(b)),
        max_step: Cents(step),
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// Within floor and ceiling, and within one step of the current price,
    /// whatever the signals.
    #[test]
    fn the_rule_stays_within_bounds_and_one_step(signals in any_signals(), b in any_bounds(), at in 0.0f64..=1.0) {
        let current = Cents(b.floor.0 + ((b.ceiling.0 - b.floor.0) as f64 * at) as i64);
        let next = DemandRule.price(current, &signals, &b);
        prop_assert!(b.floor <= next && next <= b.ceiling, "{next:?} outside {b:?}");
        prop_assert!((next.0 - current.0).abs() <= b.max_step.0, "{current:?} -> {next:?} beyond {b:?}");
    }

    /// Bounds narrowed past the current price: the price goes to the nearest
    /// bound at once (the operator's bounds are hard, the step paces the rule).
    #[test]
    fn a_price_outside_narrowed_bounds_goes_to_the_bound(signals in any_signals(), b in any_bounds(), off in 1i64..=1_000_000, above in any::<bool>()) {
        let current = if above { Cents(b.ceiling.0 + off) } else { Cents((b.floor.0 - off).max(0)) };
        prop_assume!(current < b.floor || current > b.ceiling);
        let next = DemandRule.price(current, &signals, &b);
        prop_assert_eq!(next, if above { b.ceiling } else { b.floor });
    }

    /// The runner's own clamp holds for any rule's proposal.
    #[test]
    fn bounds_hold_for_any_proposal(b in any_bounds(), at in 0.0f64..=1.0, proposed in -1_000_000_000i64..=1_000_000_000) {
        let current = Cents(b.floor.0 + ((b.ceiling.0 - b.floor.0) as f64 * at) as i64);
        let next = b.apply(current, Cents(proposed));
        prop_assert!(b.floor <= next && next <= b.ceiling);
        prop_assert!((next.0 - current.0).abs() <= b.max_step.0);
    }
}

// ---- with the database and a controlled clock ----------------------------

/// Holds for `fans` fans of `per_fan` seats each, from `seats`.
async fn hold_many(app: &TestApp, e: EventId, seats: &[i64], fans: usize, per_fan: usize) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for f in 0..fans {
        let token = app.sign_in(&format!("fan{f}")).await;
        let mine = &seats[f * per_fan..(f + 1) * per_fan];
        let (s, h) = app.hold(&token, e, &format!("k{f}"), &json!({"seat_ids": mine})).await;
        assert_eq!(s, StatusCode::CREATED, "{h}");
        out.push((token, h["hold_id"].as_str().unwrap().to_owned()));
    }
    out
}

async fn order(app: &TestApp, token: &str, hold: &str, key: &str) -> Value {
    let r = app
        .http
        .post(app.url("/v1/orders"))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(&json!({"hold_id": hold, "payment_method": "pm_card_ok"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    r.json().await.unwrap()
}

#[tokio::test]
async fn a_sales_surge_raises_the_price_and_it_falls_when_demand_stops() {
    let app = app(true).await;
    // 6 rows of 10: tier 1 is rows 1-2 (20 seats), tier 2 rows 3-4, tier 3 rows 5-6.
    let v = venue(&app.pool, &small_chart("surge", &["A"], 6, 10)).await;
    let e = event(&app.pool, "surge", "surge", rules(8)).await;
    let seats = seat_ids(&app.pool, v).await;
    enable(&app.pool, e, false).await;
    let runner = runner(&app.pool, Arc::new(NoQueue));

    // Four fans hold four front seats each; two of them buy.
    let holds = hold_many(&app, e, &seats[..16], 4, 4).await;
    for (i, (token, hold)) in holds.iter().take(2).enumerate() {
        let o = order(&app, token, hold, &format!("o{i}")).await;
        assert_eq!(o["state"], "confirmed", "{o}");
    }
    let t0 = Utc::now();
    let outcome = runner.run_event(e, t0).await.unwrap();
    let RunOutcome::Ran { changes, .. } = &outcome else {
        panic!("{outcome:?}")
    };
    let front = changes.iter().find(|c| c.tier == 1).expect("tier 1 moved");
    assert_eq!(
        (front.old_cents, front.new_cents),
        (Cents(3000), Cents(3300)),
        "up by the largest step"
    );
    assert_eq!(price(&app.pool, e, 1).await, 3300);
    // Tiers nobody touched drift down.
    assert_eq!(price(&app.pool, e, 3).await, 950);

    // The history explains it.
    let (inputs, version): (Value, String) = sqlx::query_as(
        "SELECT inputs, rule_version FROM price_changes WHERE event_id = $1 AND tier = 1 ORDER BY id DESC LIMIT 1",
    )
    .bind(e.0)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(version, "demand-v1");
    assert_eq!(inputs["signals"]["sold"], 8, "{inputs}");
    assert_eq!(inputs["signals"]["held"], 8, "{inputs}");
    assert_eq!(inputs["signals"]["remaining"], 4, "{inputs}");
    assert_eq!(inputs["signals"]["queue_length"], Value::Null);
    assert_eq!(inputs["queue_source"], "none");
    assert_eq!(inputs["bounds"]["max_step"], 300);

    // No new demand for three intervals: down each time.
    let mut last = 3300;
    for k in 1..=3 {
        let outcome = runner
            .run_event(e, t0 + chrono::Duration::seconds(INTERVAL * k))
            .await
            .unwrap();
        assert!(changed(&outcome) > 0, "{outcome:?}");
        let now = price(&app.pool, e, 1).await;
        assert!(now < last, "interval {k}: {now} not below {last}");
        last = now;
    }
    app.finish().await;
}

#[tokio::test]
async fn the_edge_queue_pushes_prices_up() {
    let db = TestDb::new().await;
    venue(&db.pool, &small_chart("queue", &["A"], 6, 10)).await;
    let e = event(&db.pool, "queue", "queue", rules(8)).await;
    enable(&db.pool, e, false).await;
    let t0 = Utc::now();
    runner(&db.pool, Arc::new(FixedQueue(5_000)))
        .run_event(e, t0)
        .await
        .unwrap();
    assert_eq!(price(&db.pool, e, 2).await, 2300, "a long queue and no sales yet: up");
    let inputs: Value = sqlx::query_scalar("SELECT inputs FROM price_changes WHERE event_id = $1 AND tier = 2")
        .bind(e.0)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(inputs["signals"]["queue_length"], 5000);
    assert_eq!(inputs["queue_source"], "fixed");
    db.finish().await;
}

#[tokio::test]
async fn frozen_and_disabled_prices_do_not_move() {
    let db = TestDb::new().await;
    venue(&db.pool, &small_chart("frozen", &["A"], 6, 10)).await;
    let e = event(&db.pool, "frozen", "frozen", rules(8)).await;
    let runner = runner(&db.pool, Arc::new(NoQueue));
    let t0 = Utc::now();

    // Off by default: nothing moves, nothing is even due.
    assert!(runner.run_once(t0).await.unwrap().is_empty());
    assert!(matches!(runner.run_event(e, t0).await.unwrap(), RunOutcome::Skipped));

    // Frozen: still nothing.
    enable(&db.pool, e, true).await;
    for k in 0..3 {
        let at = t0 + chrono::Duration::seconds(INTERVAL * k);
        assert!(runner.run_once(at).await.unwrap().is_empty());
        assert!(matches!(runner.run_event(e, at).await.unwrap(), RunOutcome::Skipped));
    }
    assert_eq!(price(&db.pool, e, 1).await, 3000);

    // Unfrozen, the same quiet intervals do move it (so the above could fail).
    enable(&db.pool, e, false).await;
    let ran = runner
        .run_once(t0 + chrono::Duration::seconds(INTERVAL * 3))
        .await
        .unwrap();
    assert_eq!(ran.len(), 1);
    assert!(price(&db.pool, e, 1).await < 3000);

    // Turned off again: stays.
    let was = price(&db.pool, e, 1).await;
    settings::replace(
        &db.pool,
        e,
        &PricingUpdate {
            enabled: false,
            frozen: false,
            interval_secs: None,
            tiers: vec![bounds(1, 500, 6000, 300)],
        },
    )
    .await
    .unwrap();
    assert!(
        runner
            .run_once(t0 + chrono::Duration::seconds(INTERVAL * 4))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(price(&db.pool, e, 1).await, was);
    let changes: i64 = sqlx::query_scalar("SELECT count(*) FROM price_changes WHERE event_id = $1")
        .bind(e.0)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(changes, 3, "one interval's changes, one per tier");
    db.finish().await;
}

#[tokio::test]
async fn two_instances_recalculate_each_interval_exactly_once() {
    let db = TestDb::new().await;
    venue(&db.pool, &small_chart("twice", &["A"], 6, 10)).await;
    let e = event(&db.pool, "twice", "twice", rules(8)).await;
    enable(&db.pool, e, false).await;
    // A second instance: its own pool, its own runner.
    let other = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect_with(url_for(&db.name))
        .await
        .unwrap();
    let a = runner(&db.pool, Arc::new(NoQueue));
    let b = runner(&other, Arc::new(NoQueue));
    // At an interval's start, so `at` and `at + 1 s` below share an interval
    // (from a random instant the second could cross into the next one).
    let now = Utc::now().timestamp();
    let t0: DateTime<Utc> = DateTime::from_timestamp(now - now.rem_euclid(INTERVAL), 0).unwrap();
    for k in 0..6 {
        // Both at once, a few seconds apart inside one interval.
        let at = t0 + chrono::Duration::seconds(INTERVAL * k);
        let outcomes = if k % 2 == 0 {
            let (ra, rb) = tokio::join!(a.run_event(e, at), b.run_event(e, at));
            [ra.unwrap(), rb.unwrap()]
        } else {
            // The whole pass, as the job runs it; the loser finds nothing due.
            let (ra, rb) = tokio::join!(a.run_once(at), b.run_once(at + chrono::Duration::seconds(1)));
            [first(ra.unwrap()), first(rb.unwrap())]
        };
        let ran = outcomes.iter().filter(|o| matches!(o, RunOutcome::Ran { .. })).count();
        let already = outcomes.iter().filter(|o| matches!(o, RunOutcome::AlreadyRan)).count();
        assert_eq!((ran, already), (1, 1), "interval {k}: {outcomes:?}");
        assert_eq!(
            outcomes.iter().map(changed).sum::<usize>(),
            3,
            "interval {k}: each tier once"
        );
    }
    let per_interval: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT count(DISTINCT interval_start), count(*) FROM price_changes WHERE event_id = $1 GROUP BY tier ORDER BY tier",
    )
    .bind(e.0)
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(per_interval, vec![(6, 6); 3]);
    let runs: i64 = sqlx::query_scalar("SELECT count(*) FROM pricing_runs WHERE event_id = $1")
        .bind(e.0)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(runs, 6);
    // Six quiet intervals of -5% (rounded), each from the last price.
    let mut expect = 3000i64;
    for _ in 0..6 {
        expect = (expect as f64 * (1.0 + -0.05f64)).round() as i64;
    }
    assert_eq!(price(&db.pool, e, 1).await, expect);
    other.close().await;
    db.finish().await;
}

fn first(pass: Vec<(EventId, RunOutcome)>) -> RunOutcome {
    pass.into_iter().next().map_or(RunOutcome::AlreadyRan, |(_, o)| o)
}

#[tokio::test]
async fn a_hold_is_charged_the_price_it_was_made_at() {
    let app = app(true).await;
    let v = venue(&app.pool, &small_chart("locked", &["A"], 6, 10)).await;
    let e = event(&app.pool, "locked", "locked", rules(8)).await;
    let seats = seat_ids(&app.pool, v).await;
    enable(&app.pool, e, false).await;

    // Alice holds two front seats at 3000 each; a surge follows.
    let alice = app.sign_in("alice").await;
    let (s, hold) = app
        .hold(&alice, e, "a1", &json!({"seat_ids": [seats[0], seats[1]]}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{hold}");
    assert_eq!(hold["total_cents"], 6000);
    hold_many(&app, e, &seats[2..18], 4, 4).await;
    runner(&app.pool, Arc::new(NoQueue))
        .run_event(e, Utc::now())
        .await
        .unwrap();
    assert_eq!(price(&app.pool, e, 1).await, 3300, "the price moved");
    let (_, now) = app.get(&format!("/v1/events/{}/prices", e.0)).await;
    assert_eq!(now["tiers"][0]["price_cents"], 3300);
    assert_eq!(now["dynamic"], true);

    // Her order charges what her hold locked, and so does the sandbox.
    let o = order(&app, &alice, hold["hold_id"].as_str().unwrap(), "o1").await;
    assert_eq!(o["state"], "confirmed", "{o}");
    assert_eq!(o["total_cents"], 6000);
    let intents = app
        .sandbox
        .as_ref()
        .unwrap()
        .intents_for(o["order_id"].as_str().unwrap())
        .await;
    assert_eq!(intents[0]["amount_cents"], 6000, "{intents:?}");
    // A new hold pays the new price.
    let bob = app.sign_in("bob").await;
    let (s, later) = app.hold(&bob, e, "b1", &json!({"seat_ids": [seats[18]]})).await;
    assert_eq!(s, StatusCode::CREATED, "{later}");
    assert_eq!(later["total_cents"], 3300);
    app.finish().await;
}

#[tokio::test]
async fn the_seat_stream_sends_price_changes() {
    let app = app(false).await;
    venue(&app.pool, &small_chart("stream", &["A"], 6, 10)).await;
    let e = event(&app.pool, "stream", "stream", rules(8)).await;
    let mut sse = Sse::open(&app, &format!("/v1/events/{}/seat-changes", e.0), None).await;
    let snapshot = sse.next(Duration::from_secs(5)).await.expect("a snapshot");
    assert_eq!(snapshot.event, "snapshot");
    assert_eq!(snapshot.data["prices"][0]["price_cents"], 3000, "{}", snapshot.data);

    enable(&app.pool, e, false).await;
    runner(&app.pool, Arc::new(NoQueue))
        .run_event(e, Utc::now())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let prices = loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let ev = sse.next(left).await.expect("a prices event");
        if ev.event == "prices" {
            break ev;
        }
    };
    assert_eq!(prices.data["event_id"], e.0);
    assert_eq!(prices.data["prices"][0]["price_cents"], 2850, "{}", prices.data);
    assert_eq!(prices.data["prices"][2]["price_cents"], 950);
    // A new subscriber's snapshot has the new prices.
    let mut fresh = Sse::open(&app, &format!("/v1/events/{}/seat-changes", e.0), None).await;
    let snap = fresh.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(snap.data["prices"][0]["price_cents"], 2850);
    app.finish().await;
}

#[tokio::test]
async fn the_service_runs_the_job_by_itself() {
    // The wall clock this time: the service's own job, 5-second intervals.
    let app = TestApp::start_with_config(Options::default(), |c| c.pricing.interval_secs = 5).await;
    venue(&app.pool, &small_chart("job", &["A"], 6, 10)).await;
    let e = event(&app.pool, "job", "job", rules(8)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(price(&app.pool, e, 1).await, 3000, "off by default");
    enable(&app.pool, e, false).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    while price(&app.pool, e, 1).await == 3000 {
        assert!(tokio::time::Instant::now() < deadline, "the job never ran");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let runs: i64 = sqlx::query_scalar("SELECT count(*) FROM pricing_runs WHERE event_id = $1")
        .bind(e.0)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(runs >= 1);
    app.finish().await;
}

// ---- the portal ------------------------------------------------------------

async fn call(app: &TestApp, method: &str, path: &str, token: &str, body: Option<Value>) -> (StatusCode, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut r = app.http.request(method, app.url(path)).bearer_auth(token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    (r.status(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn operators_set_pricing_with_stable_refusals_and_viewers_only_read() {
    let app = app(false).await;
    let v = venue(&app.pool, &small_chart("portal", &["A"], 6, 10)).await;
    let e = event(&app.pool, "portal", "portal", rules(8)).await;
    let org = auth::ensure_organisation(&app.pool, "Pricing Org").await.unwrap();
    let other = auth::ensure_organisation(&app.pool, "Other Org").await.unwrap();
    sqlx::query("UPDATE venues SET organisation_id = $1 WHERE id = $2")
        .bind(org.0)
        .bind(v.0)
        .execute(&app.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE events SET organisation_id = $1 WHERE id = $2")
        .bind(org.0)
        .bind(e.0)
        .execute(&app.pool)
        .await
        .unwrap();
    let editor = signed_in_operator(&app, org, "editor@pricing.example", Role::Editor).await;
    let viewer = signed_in_operator(&app, org, "viewer@pricing.example", Role::Viewer).await;
    let stranger = signed_in_operator(&app, other, "ops@other.example", Role::Owner).await;
    let path = format!("/v1/portal/events/{}/pricing", e.0);

    // Off by default, readable by a viewer.
    let (s, view) = call(&app, "GET", &path, &viewer, None).await;
    assert_eq!(s, StatusCode::OK, "{view}");
    assert_eq!(view["enabled"], false);
    assert_eq!(view["effective_interval_secs"], 30);
    assert_eq!(view["rule_version"], "demand-v1");
    assert_eq!(view["tiers"][0]["bounds"], Value::Null);

    let good = json!({"enabled": true, "tiers": [
        {"tier": 1, "floor_cents": 2000, "ceiling_cents": 5000, "max_step_cents": 250}
    ]});
    // A viewer may not change it; another organisation cannot see it.
    let (s, body) = call(&app, "PUT", &path, &viewer, Some(good.clone())).await;
    assert_eq!(
        (s, body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("role_forbidden"))
    );
    let (s, body) = call(&app, "GET", &path, &stranger, None).await;
    assert_eq!(
        (s, body["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("event_not_found"))
    );
    let (s, body) = call(&app, "PUT", &path, &stranger, Some(good.clone())).await;
    assert_eq!(
        (s, body["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("event_not_found"))
    );

    // Bad input: stable codes, nothing stored.
    let t = |floor: i64, ceiling: i64, step: i64| json!({"tier": 1, "floor_cents": floor, "ceiling_cents": ceiling, "max_step_cents": step});
    let cases = [
        (
            json!({"enabled": true, "tiers": [t(5000, 2000, 100)]}),
            "invalid_bounds",
        ),
        (json!({"enabled": true, "tiers": [t(1000, 2000, 0)]}), "invalid_bounds"),
        (json!({"enabled": true, "tiers": [t(-1, 2000, 10)]}), "invalid_bounds"),
        (
            json!({"enabled": true, "tiers": [t(0, 100_000_001, 10)]}),
            "invalid_bounds",
        ),
        (
            json!({"enabled": true, "tiers": [t(1000, 2000, 10), t(1000, 2000, 10)]}),
            "duplicate_tier",
        ),
        (
            json!({"enabled": true, "tiers": [{"tier": 7, "floor_cents": 1, "ceiling_cents": 2, "max_step_cents": 1}]}),
            "unknown_tier",
        ),
        (json!({"enabled": true, "interval_secs": 1}), "invalid_interval"),
        (json!({"enabled": true, "interval_secs": 86_400}), "invalid_interval"),
        (json!({"enabled": "yes"}), "invalid_body"),
        (json!({"enabled": true, "surge": true}), "invalid_body"),
    ];
    for (body, want) in cases {
        let (s, p) = call(&app, "PUT", &path, &editor, Some(body.clone())).await;
        assert_eq!(
            (s, p["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(want)),
            "{body} -> {p}"
        );
    }
    let (_, view) = call(&app, "GET", &path, &viewer, None).await;
    assert_eq!(view["enabled"], false, "nothing stored by refusals");

    // A good one.
    let (s, view) = call(&app, "PUT", &path, &editor, Some(good)).await;
    assert_eq!(s, StatusCode::OK, "{view}");
    assert_eq!(view["enabled"], true);
    assert_eq!(view["tiers"][0]["bounds"]["max_step_cents"], 250);
    assert_eq!(view["tiers"][1]["bounds"], Value::Null);

    // A run moves only the tier with bounds; the history shows why.
    runner(&app.pool, Arc::new(NoQueue))
        .run_event(e, Utc::now())
        .await
        .unwrap();
    let (_, view) = call(&app, "GET", &path, &viewer, None).await;
    assert_eq!(view["tiers"][0]["price_cents"], 2850);
    assert_eq!(view["tiers"][1]["price_cents"], 2000, "no bounds: never moves");
    let h = &view["history"][0];
    assert_eq!(
        (h["tier"].as_i64(), h["old_cents"].as_i64(), h["new_cents"].as_i64()),
        (Some(1), Some(3000), Some(2850))
    );
    assert_eq!(h["rule_version"], "demand-v1");
    assert_eq!(h["inputs"]["signals"]["capacity"], 20, "{h}");

    // Frozen through the portal: the next interval changes nothing.
    let (s, _) = call(
        &app,
        "PUT",
        &path,
        &editor,
        Some(json!({"enabled": true, "frozen": true, "tiers": [t(2000, 5000, 250)]})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let later = Utc::now() + chrono::Duration::seconds(INTERVAL);
    assert!(matches!(
        runner(&app.pool, Arc::new(NoQueue)).run_event(e, later).await.unwrap(),
        RunOutcome::Skipped
    ));
    assert_eq!(price(&app.pool, e, 1).await, 2850);

    // An operator's own price edit is in the history too.
    let (s, body) = call(
        &app,
        "PATCH",
        &format!("/v1/portal/events/{}", e.0),
        &editor,
        Some(json!({"tiers": [{"tier": 1, "name": "Front", "price_cents": 4000}, {"tier": 2, "name": "Back", "price_cents": 2000}]})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (_, view) = call(&app, "GET", &path, &viewer, None).await;
    let h = &view["history"][0];
    assert_eq!(
        (h["tier"].as_i64(), h["old_cents"].as_i64(), h["new_cents"].as_i64()),
        (Some(1), Some(2850), Some(4000)),
        "{view}"
    );
    assert_eq!(h["rule_version"], "operator");
    assert_eq!(h["inputs"]["source"], "operator");
    assert_eq!(h["interval_start"], Value::Null);
    assert_eq!(
        view["history"].as_array().map(Vec::len),
        Some(2),
        "tier 2 kept its price: no row"
    );
    sqlx::query("UPDATE event_tiers SET price_cents = 2850 WHERE event_id = $1 AND tier = 1")
        .bind(e.0)
        .execute(&app.pool)
        .await
        .unwrap();

    // Fans read the prices too; an unknown event is 404.
    let (s, fan) = app.get(&format!("/v1/events/{}/prices", e.0)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(fan["dynamic"], false, "frozen");
    assert_eq!(fan["tiers"][0]["price_cents"], 2850);
    let (s, body) = app.get("/v1/events/999999/prices").await;
    assert_eq!(
        (s, body["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("event_not_found"))
    );
    app.finish().await;
}
