//! Many concurrent clients fighting for the same seats, over real HTTP,
//! against a real database. Afterwards the database must show at most one
//! live claim per seat, and every answer a client got must match it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::common::*;
use booking_core::ids::EventId;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::Barrier;

struct Answer {
    fan: String,
    wanted: Vec<i64>,
    status: StatusCode,
    body: Value,
}

/// Fires every request at once (after a barrier) and collects the answers.
async fn storm(app: &Arc<TestApp>, event: EventId, requests: Vec<(String, Value)>) -> Vec<Answer> {
    let barrier = Arc::new(Barrier::new(requests.len()));
    let mut tasks = Vec::new();
    for (i, (fan, body)) in requests.into_iter().enumerate() {
        let app = app.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let token = app.sign_in(&fan).await;
            let wanted: Vec<i64> = body["seat_ids"]
                .as_array()
                .map(|a| a.iter().map(|x| x.as_i64().unwrap()).collect())
                .unwrap_or_default();
            barrier.wait().await;
            let (status, body) = app.hold(&token, event, &format!("storm-{i}"), &body).await;
            Answer {
                fan,
                wanted,
                status,
                body,
            }
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

fn seats_of(hold: &Value) -> Vec<i64> {
    let mut v: Vec<i64> = hold["seats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["seat_id"].as_i64().unwrap())
        .collect();
    v.sort();
    v
}

/// The invariants, checked against the database itself.
async fn check(app: &TestApp, event: EventId, answers: &[Answer]) -> usize {
    // At most one live claim per seat (the constraint makes more impossible;
    // this checks it is really there and that claims are live as expected).
    let doubled: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT seat_id FROM seat_claims WHERE event_id = $1 AND during @> now() GROUP BY seat_id HAVING count(*) > 1) d",
    )
    .bind(event.0)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(doubled, 0, "a seat has two live claims");

    let claims = live_claims(&app.pool, event).await;
    let mut by_hold: HashMap<String, Vec<i64>> = HashMap::new();
    for (seat, hold) in &claims {
        by_hold.entry(hold.to_string()).or_default().push(*seat);
    }
    let mut granted = HashSet::new();
    let mut successes = 0;
    for a in answers {
        assert!(!a.status.is_server_error(), "{} got {}: {}", a.fan, a.status, a.body);
        match a.status {
            StatusCode::CREATED => {
                successes += 1;
                let id = a.body["hold_id"].as_str().unwrap().to_string();
                let seats = seats_of(&a.body);
                if !a.wanted.is_empty() {
                    let mut wanted = a.wanted.clone();
                    wanted.sort();
                    assert_eq!(seats, wanted, "a hold must be exactly the seats asked for");
                }
                let mut in_db = by_hold.remove(&id).unwrap_or_default();
                in_db.sort();
                assert_eq!(in_db, seats, "the answer to {} does not match the database", a.fan);
                for s in seats {
                    assert!(granted.insert(s), "seat {s} granted twice");
                }
            }
            StatusCode::CONFLICT => {
                let code = a.body["code"].as_str().unwrap();
                assert!(["seats_taken", "no_adjacent_seats"].contains(&code), "{}", a.body);
                if code == "seats_taken" {
                    // The seats it names really are held by someone else.
                    for s in a.body["seat_ids"].as_array().unwrap() {
                        let s = s.as_i64().unwrap();
                        assert!(a.wanted.contains(&s));
                        assert!(claims.iter().any(|c| c.0 == s), "seat {s} reported taken but is free");
                    }
                }
            }
            other => panic!("unexpected {other}: {}", a.body),
        }
    }
    assert!(by_hold.is_empty(), "claims nobody was told about: {by_hold:?}");
    let holds: i64 = sqlx::query_scalar("SELECT count(*) FROM holds WHERE event_id = $1")
        .bind(event.0)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(holds as usize, successes, "a refused request left a hold behind");
    successes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_clients_fight_over_the_same_twenty_seats() {
    let app = Arc::new(
        TestApp::start_with(Options {
            pool_size: 16,
            ..Options::default()
        })
        .await,
    );
    let v = venue(&app.pool, &small_chart("hot", &["A"], 2, 10)).await;
    let e = event(&app.pool, "hot", "hot", rules(8)).await;
    let seats = seat_ids(&app.pool, v).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(500);
    let requests = (0..500)
        .map(|i| {
            let n = rng.gen_range(1..=2);
            let picked: Vec<i64> = seats.choose_multiple(&mut rng, n).copied().collect();
            (format!("fan-{i}"), json!({"seat_ids": picked}))
        })
        .collect();
    let answers = storm(&app, e, requests).await;
    let won = check(&app, e, &answers).await;
    assert!(
        won >= 10,
        "only {won} holds out of 20 seats: the seats should mostly go"
    );
    assert!(won <= 20);
    Arc::try_unwrap(app).ok().unwrap().finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_clients_hold_overlapping_multi_seat_sets() {
    let app = Arc::new(
        TestApp::start_with(Options {
            pool_size: 16,
            ..Options::default()
        })
        .await,
    );
    let v = venue(&app.pool, &small_chart("overlap", &["A", "B"], 3, 10)).await;
    let e = event(&app.pool, "overlap", "overlap", rules(10)).await;
    let seats = seat_ids(&app.pool, v).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(200);
    let requests = (0..200)
        .map(|i| {
            let n = rng.gen_range(2..=6);
            // Shuffled order: the service must still not deadlock.
            let picked: Vec<i64> = seats.choose_multiple(&mut rng, n).copied().collect();
            (format!("fan-{i}"), json!({"seat_ids": picked}))
        })
        .collect();
    let answers = storm(&app, e, requests).await;
    let won = check(&app, e, &answers).await;
    assert!(won >= 5, "{won}");
    Arc::try_unwrap(app).ok().unwrap().finish().await;
}

/// A booking core whose best available chooses first from a reading of the
/// claims this old (0: always exactly, under the scope's lock).
async fn app_with_recent_claims(recent_claims_ms: u64) -> Arc<TestApp> {
    Arc::new(
        TestApp::start_with_config(
            Options {
                pool_size: 16,
                ..Options::default()
            },
            |c| c.holds.recent_claims_ms = recent_claims_ms,
        )
        .await,
    )
}

/// Every best-available hold is two seats side by side, and a fan told
/// there were no two seats together was told the truth: no row has two free
/// seats side by side any more.
async fn check_pairs(app: &TestApp, event: EventId, answers: &[Answer]) {
    let free_pairs: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM seats a JOIN seats b ON b.section_id = a.section_id AND b.row_no = a.row_no AND b.seat_no = a.seat_no + 1
         WHERE NOT EXISTS (SELECT 1 FROM seat_claims c WHERE c.event_id = $1 AND c.seat_id = a.id AND c.during @> now())
           AND NOT EXISTS (SELECT 1 FROM seat_claims c WHERE c.event_id = $1 AND c.seat_id = b.id AND c.during @> now())",
    )
    .bind(event.0)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let best = |a: &&Answer| a.wanted.is_empty();
    let refused = answers
        .iter()
        .filter(best)
        .filter(|a| a.status == StatusCode::CONFLICT)
        .count();
    assert!(
        refused == 0 || free_pairs == 0,
        "{refused} fans refused while {free_pairs} pairs are free"
    );
    for a in answers.iter().filter(best).filter(|a| a.status == StatusCode::CREATED) {
        let seats = a.body["seats"].as_array().unwrap();
        assert_eq!(seats.len(), 2);
        assert_eq!(seats[0]["row"], seats[1]["row"]);
        let n: Vec<i64> = seats
            .iter()
            .map(|s| s["seat"].as_str().unwrap().parse().unwrap())
            .collect();
        assert_eq!((n[1] - n[0]).abs(), 1, "not adjacent: {}", a.body);
    }
}

async fn best_available_storm(recent_claims_ms: u64) {
    let app = app_with_recent_claims(recent_claims_ms).await;
    let slug = format!("best{recent_claims_ms}");
    venue(&app.pool, &small_chart(&slug, &["A"], 5, 12)).await;
    let e = event(&app.pool, &slug, &slug, rules(10)).await;
    let requests = (0..150)
        .map(|i| {
            (
                format!("fan-{i}"),
                json!({"best_available": {"quantity": 2, "section": "A"}}),
            )
        })
        .collect();
    let answers = storm(&app, e, requests).await;
    let won = check(&app, e, &answers).await;
    // 60 seats: up to 30 pairs.
    assert!(won >= 20, "{won}");
    check_pairs(&app, e, &answers).await;
    Arc::try_unwrap(app).ok().unwrap().finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn best_available_under_contention_never_shares_a_seat() {
    // The default: first from the recent reading plus this process's choices.
    best_available_storm(500).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn best_available_chosen_exactly_never_shares_a_seat() {
    best_available_storm(0).await;
}

/// Fans naming seats race fans asking for the best two: the recent reading
/// does not know the named seats' claims in flight, so best available's
/// first choices lose races in the database and must choose again, and a
/// reading a few seconds stale (the longest the view allows here) must never
/// hand out a seat twice or refuse while pairs are free.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn best_available_from_a_stale_reading_races_named_seats_safely() {
    let app = app_with_recent_claims(5_000).await;
    let v = venue(&app.pool, &small_chart("mixed", &["A"], 5, 12)).await;
    let e = event(&app.pool, "mixed", "mixed", rules(10)).await;
    let seats = seat_ids(&app.pool, v).await;
    // Warm the reading while the house is empty, so that it is stale for
    // the whole storm.
    let warm = app.sign_in("warm").await;
    let (status, body) = app
        .hold(
            &warm,
            e,
            "warm",
            &json!({"best_available": {"quantity": 1, "section": "A"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(77);
    let requests = (0..200)
        .map(|i| {
            let body = if i % 2 == 0 {
                json!({"best_available": {"quantity": 2, "section": "A"}})
            } else {
                let n = rng.gen_range(1..=2);
                let picked: Vec<i64> = seats.choose_multiple(&mut rng, n).copied().collect();
                json!({"seat_ids": picked})
            };
            (format!("fan-{i}"), body)
        })
        .collect();
    let answers = storm(&app, e, requests).await;
    // The warm-up hold is one more live claim nobody in the storm was told of.
    let warm_seat = seats_of(&body)[0];
    let mut all = answers;
    all.push(Answer {
        fan: "warm".into(),
        wanted: vec![warm_seat],
        status,
        body,
    });
    let won = check(&app, e, &all).await;
    assert!(won >= 20, "{won}");
    check_pairs(&app, e, &all).await;
    Arc::try_unwrap(app).ok().unwrap().finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn holds_and_releases_churning_on_ten_seats_stay_consistent() {
    let app = Arc::new(
        TestApp::start_with(Options {
            pool_size: 16,
            ..Options::default()
        })
        .await,
    );
    let v = venue(&app.pool, &small_chart("churn", &["A"], 1, 10)).await;
    let e = event(&app.pool, "churn", "churn", rules(10)).await;
    let seats = Arc::new(seat_ids(&app.pool, v).await);
    let mut tasks = Vec::new();
    for c in 0..40 {
        let app = app.clone();
        let seats = seats.clone();
        tasks.push(tokio::spawn(async move {
            let token = app.sign_in(&format!("churner-{c}")).await;
            let mut rng = rand::rngs::StdRng::seed_from_u64(c);
            let mut kept = Vec::new();
            for round in 0..15 {
                let n = rng.gen_range(1..=3);
                let picked: Vec<i64> = seats.choose_multiple(&mut rng, n).copied().collect();
                let (status, body) = app
                    .hold(&token, e, &format!("h-{c}-{round}"), &json!({"seat_ids": picked}))
                    .await;
                assert!(!status.is_server_error(), "{status} {body}");
                if status == StatusCode::CREATED {
                    let id = body["hold_id"].as_str().unwrap().to_string();
                    if rng.gen_bool(0.7) {
                        let (s, b) = app.release(&token, &id, &format!("r-{c}-{round}")).await;
                        assert_eq!(s, StatusCode::OK, "{b}");
                    } else {
                        kept.push((id, seats_of(&body)));
                    }
                }
            }
            kept
        }));
    }
    let mut kept: Vec<(String, Vec<i64>)> = Vec::new();
    for t in tasks {
        kept.extend(t.await.unwrap());
    }
    // What clients believe they still hold is exactly what the database holds.
    let mut expected: Vec<(i64, String)> = kept
        .iter()
        .flat_map(|(id, s)| s.iter().map(move |x| (*x, id.clone())))
        .collect();
    expected.sort();
    let mut actual: Vec<(i64, String)> = live_claims(&app.pool, e)
        .await
        .into_iter()
        .map(|(s, h)| (s, h.to_string()))
        .collect();
    actual.sort();
    assert_eq!(actual, expected);
    Arc::try_unwrap(app).ok().unwrap().finish().await;
}

/// Availability reads are shared between requests that arrive together, yet
/// every answer must be as fresh as a read of its own: a fan who was just
/// given a hold, and then asks, sees it (with every hold answered before).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn availability_read_together_never_misses_a_hold_answered_before() {
    use std::sync::atomic::{AtomicUsize, Ordering};

    let app = app_with_recent_claims(500).await;
    let v = venue(&app.pool, &small_chart("fresh", &["A", "B"], 5, 12)).await;
    let e = event(&app.pool, "fresh", "fresh", rules(10)).await;
    let seats = seat_ids(&app.pool, v).await;
    let answered = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(seats.len() + 40));
    let mut tasks = Vec::new();
    for (i, seat) in seats.iter().copied().enumerate() {
        let (app, answered, barrier) = (app.clone(), answered.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            let token = app.sign_in(&format!("fan-{i}")).await;
            barrier.wait().await;
            let (status, body) = app
                .hold(&token, e, &format!("k-{i}"), &json!({"seat_ids": [seat]}))
                .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            let before = answered.fetch_add(1, Ordering::SeqCst) + 1;
            let (status, avail) = app.get(&format!("/v1/events/{}/availability", e.0)).await;
            assert_eq!(status, StatusCode::OK, "{avail}");
            let held = avail["held"].as_u64().unwrap() as usize;
            assert!(
                held >= before,
                "{before} holds answered before the read, it shows {held}"
            );
        }));
    }
    // Onlookers keep the reads busy, so the fans' reads are coalesced.
    for _ in 0..40 {
        let (app, barrier) = (app.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            for _ in 0..10 {
                let (status, avail) = app.get(&format!("/v1/events/{}/availability", e.0)).await;
                assert_eq!(status, StatusCode::OK, "{avail}");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let (_, avail) = app.get(&format!("/v1/events/{}/availability", e.0)).await;
    assert_eq!(avail["held"].as_u64(), Some(seats.len() as u64));
    Arc::try_unwrap(app).ok().unwrap().finish().await;
}

/// Best available's view and fans' availability reads take the same
/// readings of the event (one read at a time, each caller asking for one
/// fresh enough for it). Fans racing for the best two while onlookers keep
/// the reads busy: no seat is handed out twice, and a fan's availability
/// read made after its hold was answered always shows that hold, even when
/// the reading it gets was started for best available.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn best_available_and_availability_share_readings_without_going_stale() {
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let app = app_with_recent_claims(500).await;
    let v = venue(&app.pool, &small_chart("sharing", &["A", "B"], 5, 12)).await;
    let e = event(&app.pool, "sharing", "sharing", rules(10)).await;
    let capacity = seat_ids(&app.pool, v).await.len();
    let held_seats = Arc::new(AtomicUsize::new(0));
    let fans = capacity / 2 + 20;
    let barrier = Arc::new(Barrier::new(fans + 30));
    let mut tasks = Vec::new();
    for i in 0..fans {
        let (app, held_seats, barrier) = (app.clone(), held_seats.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            let token = app.sign_in(&format!("fan-{i}")).await;
            barrier.wait().await;
            let (status, body) = app
                .hold(
                    &token,
                    e,
                    &format!("k-{i}"),
                    &json!({"best_available": {"quantity": 2}}),
                )
                .await;
            if status != StatusCode::CREATED {
                assert_eq!(status, StatusCode::CONFLICT, "{body}");
                return Vec::new();
            }
            let seats: Vec<String> = body["seats"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["seat_id"].to_string())
                .collect();
            let before = held_seats.fetch_add(seats.len(), Ordering::SeqCst) + seats.len();
            let (status, avail) = app.get(&format!("/v1/events/{}/availability", e.0)).await;
            assert_eq!(status, StatusCode::OK, "{avail}");
            let held = avail["held"].as_u64().unwrap() as usize;
            assert!(
                held >= before,
                "{before} seats held in answers before the read, it shows {held}"
            );
            seats
        }));
    }
    for _ in 0..30 {
        let (app, barrier) = (app.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            for _ in 0..10 {
                let (status, avail) = app.get(&format!("/v1/events/{}/availability", e.0)).await;
                assert_eq!(status, StatusCode::OK, "{avail}");
            }
            Vec::new()
        }));
    }
    let mut given = HashSet::new();
    for t in tasks {
        for seat in t.await.unwrap() {
            assert!(given.insert(seat.clone()), "seat {seat} was handed out twice");
        }
    }
    assert!(
        given.len() >= capacity / 2,
        "only {} of {capacity} seats held",
        given.len()
    );
    let (_, avail) = app.get(&format!("/v1/events/{}/availability", e.0)).await;
    assert_eq!(avail["held"].as_u64(), Some(given.len() as u64));
    Arc::try_unwrap(app).ok().unwrap().finish().await;
}

/// Best available's view takes a reading half a second old; it must get the
/// latest one at once, not queue behind a fan's read that needs a newer one
/// (in the stadium, reads run back to back and best available waited behind
/// them). A read held up in the database shows it: the old reading is
/// handed out while the newer read waits, and the fan's read still gets a
/// reading started after it asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_recent_enough_reading_is_shared_without_waiting_for_a_read_in_progress() {
    use std::time::{Duration, Instant};

    use booking_core::inventory::availability::Readings;
    use booking_core::venues::store::load_map;

    let app = app_with_recent_claims(500).await;
    let v = venue(&app.pool, &small_chart("waitless", &["A"], 2, 6)).await;
    let e = event(&app.pool, "waitless", "waitless", rules(10)).await;
    let map = Arc::new(load_map(&app.pool, v).await.unwrap().expect("the venue's map"));
    let readings = Readings::new(app.pool.clone());
    let first = readings.since(&map, e, Instant::now()).await.unwrap();

    // Hold every read of the claims up in the database.
    let mut blocker = app.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE seat_claims IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *blocker)
        .await
        .unwrap();
    let asked = Instant::now();
    let fan = tokio::spawn({
        let (readings, map) = (readings.clone(), map.clone());
        async move { readings.since(&map, e, Instant::now()).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!fan.is_finished(), "the fan's read should be held up by the lock");

    let recent = tokio::time::timeout(Duration::from_secs(2), readings.since(&map, e, first.started))
        .await
        .expect("a reading recent enough was there, yet the call waited for the read in progress")
        .unwrap();
    assert!(Arc::ptr_eq(&recent, &first), "the latest reading is the one handed out");

    blocker.commit().await.unwrap();
    let newer = tokio::time::timeout(Duration::from_secs(10), fan)
        .await
        .expect("the fan's read ends once the lock is gone")
        .unwrap()
        .unwrap();
    assert!(newer.started >= asked, "the fan's reading started after the fan asked");
    assert!(newer.started > first.started);
}
