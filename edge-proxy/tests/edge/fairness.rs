//! Fairness beyond plain FIFO, against real Redis and the real edge binary:
//! the pre-queue lottery is drawn verifiably (the seed's hash is published
//! before anyone joins, and every fan's place is what anyone recomputes from
//! the revealed seed), the fairness figures catch an out-of-order
//! admission, and adaptive admission settles the rate where a slowing core
//! meets its latency target.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::common::*;
use edge_proxy::config::{Adaptive, QueueMode};
use edge_proxy::queue::lottery;
use serde_json::Value;
use sha2::{Digest, Sha256};

async fn get_json(http: &reqwest::Client, url: &str) -> Value {
    http.get(url).send().await.unwrap().json().await.unwrap()
}

/// Joins, retrying while the room is still opening (503).
async fn join_when_open(http: &reqwest::Client, base: &str, event: i64) -> Fan {
    for _ in 0..50 {
        let r = http.post(format!("{base}/queue/{event}/join")).send().await.unwrap();
        if r.status() == 503 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        assert_eq!(r.status(), 200);
        return Fan::joined(&r.json().await.unwrap());
    }
    panic!("the room never opened");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pre_queue_lottery_is_a_permutation_anyone_can_recompute() {
    let upstream = Upstream::start().await;
    let event = fresh_event();
    let mut settings = room(event, 1, 100_000);
    settings.mode = QueueMode::Lottery;
    settings.on_sale_at = Some(chrono::Utc::now() + chrono::Duration::seconds(6));
    let edge = Edge::start(upstream.addr, &redis_url(), &[settings], &key_dir("lottery"), "").await;
    let base = edge.url("");

    // The commitment is public before anyone is in.
    let mut before = Value::Null;
    for _ in 0..50 {
        before = get_json(&edge.http, &format!("{base}/queue/{event}/lottery")).await;
        if before["seed_hash"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seed_hash = before["seed_hash"].as_str().expect("seed hash published").to_owned();
    assert!(
        before["seed"].is_null(),
        "the seed stays secret until the draw: {before}"
    );

    let fans: Vec<Fan> = futures::future::join_all((0..150).map(|_| join_when_open(&edge.http, &base, event))).await;
    let (code, v) = status(&edge.http, &base, event, &fans[0]).await;
    assert_eq!((code, v["status"].as_str()), (200, Some("entered")), "{v}");

    // After the on-sale: the draw, then the seed.
    let deadline = Instant::now() + Duration::from_secs(20);
    let after = loop {
        let v = get_json(&edge.http, &format!("{base}/queue/{event}/lottery")).await;
        if v["state"] == "drawn" && v["seed"].is_string() {
            break v;
        }
        assert!(Instant::now() < deadline, "never drawn: {v}");
        // Fans keep their places by being heard from.
        status(&edge.http, &base, event, &fans[0]).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let seed = after["seed"].as_str().unwrap();
    let entrants = after["entrants"].as_u64().unwrap();
    assert_eq!(after["seed_hash"].as_str(), Some(seed_hash.as_str()));
    let recomputed_hash = hex::encode(Sha256::digest(hex::decode(seed).unwrap()));
    assert_eq!(recomputed_hash, seed_hash, "the revealed seed is the one committed to");
    assert_eq!(entrants, 150, "everyone who joined before the on-sale is in the draw");

    // Every fan stands exactly where the recomputed order puts them (at one
    // admission a minute, the first is a minute away).
    let order = lottery::order(seed, entrants);
    let place: HashMap<u64, u64> = order.iter().enumerate().map(|(k, t)| (*t, k as u64 + 1)).collect();
    for fan in &fans {
        let (code, v) = status(&edge.http, &base, event, fan).await;
        assert_eq!((code, v["status"].as_str()), (200, Some("waiting")), "{v}");
        assert_eq!(
            v["position"].as_u64(),
            Some(place[&fan.ticket]),
            "ticket {}: {v}",
            fan.ticket
        );
    }
    assert_ne!(
        order,
        (1..=entrants).collect::<Vec<_>>(),
        "the draw shuffled the pre-queue"
    );
    // A fan joining now queues FIFO behind the whole draw.
    let late = join_when_open(&edge.http, &base, event).await;
    let (_, v) = status(&edge.http, &base, event, &late).await;
    assert_eq!(v["status"], "waiting", "{v}");
    assert_eq!(v["position"].as_u64(), Some(151), "{v}");

    // Open the doors: everyone goes in, in drawn order, with no inversion.
    let mut fast = room(event, 60_000, 100_000);
    fast.mode = QueueMode::Lottery;
    fast.on_sale_at = Some(chrono::Utc::now() - chrono::Duration::seconds(1));
    let r = edge
        .http
        .put(edge.admin_url(&format!("/admin/events/{event}")))
        .bearer_auth(ADMIN_TOKEN)
        .json(&fast)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let f = edge.admin_get(&format!("/admin/events/{event}/fairness")).await;
        if f["admitted"].as_u64() == Some(151) {
            assert_eq!(f["inversions"], 0, "{f}");
            break;
        }
        assert!(Instant::now() < deadline, "not all admitted: {f}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    edge.stop().await;
    forget_event(event).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fairness_figures_catch_an_out_of_order_admission() {
    let (_upstream, event, edge) = one_room("inversion", 1, 100_000).await;
    let base = edge.url("");
    let mut fans = Vec::new();
    for _ in 0..5 {
        fans.push(join(&edge.http, &base, event).await);
    }
    // Plant what a bug would do: ticket 5 gets a place below ticket 3's after
    // tickets 1 and 2 are in (the operator's rate does the admitting).
    let waiting = format!("usher:{{e{event}}}:waiting");
    let mut conn = redis().await;
    let set_rate = |rate: u32| {
        let http = edge.http.clone();
        let url = edge.admin_url(&format!("/admin/events/{event}"));
        async move {
            let r = http
                .put(url)
                .bearer_auth(ADMIN_TOKEN)
                .json(&room(event, rate, 2))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
    };
    set_rate(60_000).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while edge.progress(event).await["active"].as_u64() < Some(2) {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let f = edge.admin_get(&format!("/admin/events/{event}/fairness")).await;
    assert_eq!(
        (f["admitted"].as_u64(), f["inversions"].as_u64()),
        (Some(2), Some(0)),
        "{f}"
    );
    redis::cmd("ZADD")
        .arg(&waiting)
        .arg("XX")
        .arg(1)
        .arg(fans[4].ticket)
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    // Free the two slots so the next admissions happen.
    redis::cmd("DEL")
        .arg(format!("usher:{{e{event}}}:active"))
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let f = edge.admin_get(&format!("/admin/events/{event}/fairness")).await;
        if f["admitted"].as_u64() >= Some(3) {
            assert_eq!(f["inversions"], 1, "a place below one already admitted is counted: {f}");
            break;
        }
        assert!(Instant::now() < deadline, "{f}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    edge.stop().await;
    forget_event(event).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adaptive_admission_settles_where_a_slowing_core_meets_its_target() {
    // The stand-in core answers in 10 ms for every request it had in the
    // last second, so its p99 meets a 200 ms target at about 20 requests a
    // second. Each admitted fan makes one request and is done, so the core
    // sees the admission rate: the edge should settle near 1,200 a minute,
    // starting from 4,800.
    let upstream = Upstream::start().await;
    let event = fresh_event();
    let mut settings = room(event, 4_800, 100_000);
    settings.grace_secs = 3_600;
    settings.adaptive = Some(Adaptive {
        min_per_minute: 60,
        max_per_minute: 6_000,
        target_p99_ms: 200,
        max_error_rate: 0.05,
        window_secs: 2,
    });
    let edge = Edge::start(upstream.addr, &redis_url(), &[settings], &key_dir("adaptive"), "").await;
    let base = edge.url("");
    let fans: Vec<Fan> = futures::future::join_all((0..1_200).map(|_| join(&edge.http, &base, event))).await;
    let mut fans = fans;
    fans.sort_by_key(|f| f.ticket);

    // The fans' side: poll the next few in line; each one admitted makes
    // its one request to the core and is done.
    let started = Instant::now();
    let mut next = 0usize;
    let mut rates: Vec<(f64, u64)> = Vec::new();
    let mut in_flight = Vec::new();
    while started.elapsed() < Duration::from_secs(30) && next < fans.len() {
        let window: Vec<Fan> = fans[next..(next + 40).min(fans.len())].to_vec();
        let answers = futures::future::join_all(window.iter().map(|f| status(&edge.http, &base, event, f))).await;
        for (fan, (code, v)) in window.iter().zip(answers) {
            if code == 200 && v["status"] == "admitted" {
                next += 1;
                let token = v["access_token"].as_str().unwrap().to_owned();
                let (http, url, client) = (
                    edge.http.clone(),
                    edge.url(&format!("/v1/events/{event}/holds/done")),
                    fan.client_id.clone(),
                );
                in_flight.push(tokio::spawn(async move {
                    let r = http
                        .get(url)
                        .header("usher-access", token)
                        .header("usher-client", client)
                        .header("x-load-ms-per-rps", "10")
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 200);
                }));
            } else {
                break;
            }
        }
        let rate = edge.progress(event).await["rate"].as_u64().unwrap_or(0);
        rates.push((started.elapsed().as_secs_f64(), rate));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for t in in_flight {
        t.await.unwrap();
    }
    let late: Vec<u64> = rates
        .iter()
        .filter(|(t, _)| *t > rates.last().unwrap().0 - 8.0)
        .map(|(_, r)| *r)
        .collect();
    let summary: Vec<String> = rates.iter().step_by(10).map(|(t, r)| format!("{t:.0}s:{r}")).collect();
    eprintln!("admission rate over time: {summary:?}; fans admitted: {next}");
    assert!(rates.iter().any(|(_, r)| *r < 4_800), "the rate came down: {summary:?}");
    assert!(!late.is_empty());
    for r in &late {
        assert!(
            (500..=2_500).contains(r),
            "settled near 1,200/min in the last 8 s: {summary:?}"
        );
    }
    edge.stop().await;
    forget_event(event).await;
}
