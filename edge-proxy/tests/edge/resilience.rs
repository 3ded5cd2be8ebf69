//! The edge under strain: Redis going away and coming back, clients that
//! ask too often, and configuration edited while running.

use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::Value;
use usher_test_kit::PrivateRedis;

async fn until(what: &str, secs: u64, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_fans_wait_and_admitted_fans_keep_going() {
    let upstream = Upstream::start().await;
    let mut redis = PrivateRedis::start(free_port());
    let event = fresh_event();
    let edge = Edge::start(
        upstream.addr,
        &redis.url(),
        &[room(event, 60_000, 100)],
        &key_dir("outage"),
        "",
    )
    .await;
    let base = edge.url("");
    let fan = admitted_fan(&edge, event).await;

    redis.kill();
    until("the edge to notice", 5, async || {
        edge.progress(event).await["healthy"] == false
    })
    .await;
    // Fail closed: no new places, a 503 the waiting page retries on.
    let r = edge
        .http
        .post(edge.url(&format!("/queue/{event}/join")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "queue_unavailable");
    // An admitted fan's token verifies without Redis.
    let holds = format!("/v1/events/{event}/holds");
    let r = edge
        .http
        .post(edge.url(&holds))
        .header("usher-client", &fan.client_id)
        .header("usher-access", fan.access.as_deref().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(upstream.hits(&holds), 1);

    // Redis comes back: the edge reconnects and takes places again.
    let _redis = PrivateRedis::start(redis.port);
    until("recovery", 10, async || edge.progress(event).await["healthy"] == true).await;
    let again = join(&edge.http, &base, event).await;
    assert!(again.ticket >= 1);
    edge.stop().await;
}

/// Extending an admitted fan's session is Redis's business, not the
/// request's: with Redis stalled, the fan's first protected request (the one
/// that extends the session) still goes through at once instead of waiting
/// for Redis's answer or the 2 s time-out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admitted_fans_request_does_not_wait_for_a_stalled_redis() {
    let upstream = Upstream::start().await;
    let redis = PrivateRedis::start(free_port());
    let event = fresh_event();
    let edge = Edge::start(
        upstream.addr,
        &redis.url(),
        &[room(event, 60_000, 100)],
        &key_dir("stall"),
        "",
    )
    .await;
    let fan = admitted_fan(&edge, event).await;

    pause(&redis, 6_000).await;
    let holds = format!("/v1/events/{event}/holds");
    let started = Instant::now();
    let r = edge
        .http
        .post(edge.url(&holds))
        .header("usher-client", &fan.client_id)
        .header("usher-access", fan.access.as_deref().unwrap())
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(r.status(), 200);
    assert_eq!(upstream.hits(&holds), 1);
    assert!(
        took < Duration::from_millis(1_900),
        "the request waited {took:?} for a stalled Redis"
    );
    edge.stop().await;
}

/// A Redis that answers late (a busy machine in a join spike) is not a
/// Redis that is gone: while it stalls for longer than three ticks' time-outs
/// the room holds (no admissions) but stays open for joins, and joins go
/// through as soon as it answers. Counting it as down refused every join in
/// the spike (or, failing open, let fans past the queue).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_redis_holds_the_queue_without_closing_it() {
    let upstream = Upstream::start().await;
    let redis = PrivateRedis::start(free_port());
    let event = fresh_event();
    let edge = Edge::start(
        upstream.addr,
        &redis.url(),
        &[room(event, 60_000, 100)],
        &key_dir("slow"),
        "",
    )
    .await;
    let _fan = admitted_fan(&edge, event).await;
    // Three 2-second tick time-outs fit in the stall.
    let stall = Duration::from_millis(8_500);
    pause(&redis, stall.as_millis() as u64).await;
    let started = Instant::now();
    while started.elapsed() < stall {
        let p = edge.progress(event).await;
        assert_eq!(p["healthy"], true, "a slow Redis closed the queue: {p}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // It was felt (ticks failed) and is over: a new fan gets a place.
    until("a tick to fail", 5, async || {
        edge.progress(event).await["ticks_failed"].as_u64().unwrap_or(0) >= 3
    })
    .await;
    let again = join(&edge.http, &edge.url(""), event).await;
    assert!(again.ticket >= 2);
    assert_eq!(edge.progress(event).await["healthy"], true);
    edge.stop().await;
}

/// A waiting fan's poll is remembered until Redis has it: a tick whose
/// write fails keeps the marks for the next one, so a slow Redis does not
/// turn fans who kept asking into ghosts that lose their places.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_tick_keeps_the_fans_it_heard_from() {
    use edge_proxy::config::{QueueMode, RoomSettings};
    use edge_proxy::queue::Room;
    use edge_proxy::queue::store::QueueStore;

    let event = fresh_event();
    let store = QueueStore::connect(&redis_url(), &[]).await.unwrap();
    let room = Room::new(RoomSettings {
        grace_secs: 300,
        ..RoomSettings::new(event, QueueMode::Fifo, 0, 0, 60)
    });
    let mut redis = redis::Client::open(redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let seen = format!("usher:{{e{event}}}:seen");
    // Ticket 7 was last heard from a minute ago; it polls now.
    room.mark_seen(7);
    // The write fails (the key is, for now, not a sorted set).
    let () = redis::cmd("SET")
        .arg(&seen)
        .arg("x")
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(edge_proxy::queue::ticker::tick(&store, &room).await.is_err());
    let () = redis::cmd("DEL").arg(&seen).query_async(&mut redis).await.unwrap();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let () = redis::cmd("ZADD")
        .arg(&seen)
        .arg(now_ms - 60_000)
        .arg(7)
        .query_async(&mut redis)
        .await
        .unwrap();
    // The next tick writes the poll the failed one could not.
    edge_proxy::queue::ticker::tick(&store, &room).await.unwrap();
    let score: Option<f64> = redis::cmd("ZSCORE")
        .arg(&seen)
        .arg(7)
        .query_async(&mut redis)
        .await
        .unwrap();
    let score = score.expect("ticket 7 left the queue") as i64;
    assert!(
        score >= now_ms,
        "ticket 7's poll was forgotten: last heard {score}, polled after {now_ms}"
    );
    forget_event(event).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_ask_too_often_get_429() {
    let upstream = Upstream::start().await;
    let event = fresh_event();
    let limits = "[rate_limits]\njoin_per_minute = 60\nstatus_per_minute = 60\nprotected_per_minute = 60\n";
    let edge = Edge::start(
        upstream.addr,
        &redis_url(),
        &[room(event, 60_000, 100)],
        &key_dir("limits"),
        limits,
    )
    .await;
    let mut codes = Vec::new();
    for _ in 0..12 {
        let r = edge
            .http
            .post(edge.url(&format!("/queue/{event}/join")))
            .send()
            .await
            .unwrap();
        codes.push(r.status().as_u16());
        if r.status() == 429 {
            assert_eq!(r.headers()["retry-after"], "2");
            assert_eq!(r.json::<Value>().await.unwrap()["code"], "rate_limited");
        }
    }
    assert!(
        codes.iter().take(6).all(|c| *c == 200),
        "a burst of six is allowed: {codes:?}"
    );
    assert!(codes.contains(&429), "{codes:?}");
    let m = edge.metrics().await;
    assert!(
        m.lines()
            .any(|l| l.starts_with("usher_rate_limited_total ") && !l.ends_with(" 0")),
        "{m}"
    );
    edge.stop().await;
    forget_event(event).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editing_the_configuration_file_changes_the_room_without_a_restart() {
    let (_upstream, event, edge) = one_room("reload", 600, 100).await;
    let file = edge.dir.join("edge.toml");
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("admit_per_minute = 600", "admit_per_minute = 1234");
    // A broken edit is ignored (and logged); the room keeps running.
    std::fs::write(&file, text.replace("[upstream]", "[upstream")).unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let s = edge.admin_get(&format!("/admin/events/{event}")).await;
    assert_eq!(s["settings"]["admit_per_minute"], 600);
    std::fs::write(&file, &text).unwrap();
    until("the new rate", 10, async || {
        edge.admin_get(&format!("/admin/events/{event}")).await["settings"]["admit_per_minute"] == 1234
    })
    .await;
    edge.stop().await;
    forget_event(event).await;
}
