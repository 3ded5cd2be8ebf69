//! Limits and risk shared by several edges through Redis
//! (`[rate_limits.shared]`): a client spread over two edges gets one
//! allowance between them, not one per edge; a misdeed seen by one edge
//! counts on the other; a Redis that stalls leaves each edge deciding by
//! its own counts, without a request waiting for Redis.

use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::Value;
use usher_test_kit::PrivateRedis;

/// 60 joins a minute per address: one a second, a burst of 6.
const JOIN_LIMIT: &str = "[rate_limits]\njoin_per_minute = 60\n";

/// POSTs to a waiting room that does not exist, alternating between the
/// edges, a pause between each: the limit is checked before the room, so
/// the answer is 429 (limited) or 404 (let through). Returns how many were
/// let through on each edge, and the slowest answer.
async fn joins(edges: &[&Edge], client: &reqwest::Client, n: usize, pause_ms: u64) -> (Vec<usize>, Duration) {
    let mut through = vec![0; edges.len()];
    let mut slowest = Duration::ZERO;
    for i in 0..n {
        let which = i % edges.len();
        let started = Instant::now();
        let r = client.post(edges[which].url("/queue/999/join")).send().await.unwrap();
        slowest = slowest.max(started.elapsed());
        match r.status().as_u16() {
            404 => through[which] += 1,
            429 => {}
            other => panic!("unexpected {other}: {}", r.text().await.unwrap_or_default()),
        }
        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
    }
    (through, slowest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_spread_over_two_edges_gets_one_allowance() {
    let upstream = Upstream::start().await;
    let keys = key_dir("shared-limit");
    let a = Edge::start(upstream.addr, &redis_url(), &[], &keys, JOIN_LIMIT).await;
    let b = Edge::start(upstream.addr, &redis_url(), &[], &keys, JOIN_LIMIT).await;
    let client = client_from("127.0.9.1");
    // 24 joins over about 1.7 s, half on each edge. One edge alone would let
    // through its burst of 6 and about one more a second; two edges counting
    // apart, twice that (13 or 14).
    let (through, _) = joins(&[&a, &b], &client, 24, 70).await;
    let total: usize = through.iter().sum();
    assert!(
        (6..=9).contains(&total),
        "let through {through:?}: more than one allowance"
    );
    assert!(through.iter().all(|n| *n > 0), "{through:?}");
    // Another address has an allowance of its own.
    let (other, _) = joins(&[&a, &b], &client_from("127.0.10.1"), 4, 70).await;
    assert_eq!(other.iter().sum::<usize>(), 4, "{other:?}");
    let m = a.metrics().await;
    assert!(!m.contains("usher_shared_counts_syncs_total 0\n"), "{m}");
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misdeed_on_one_edge_counts_on_the_other() {
    let upstream = Upstream::start().await;
    let event = fresh_event();
    let keys = key_dir("shared-risk");
    // A replay alone (25 points) blocks.
    let config = "[[defence.rules]]\nname = \"replayer\"\nmin_score = 20.0\naction = \"block\"\n";
    let mut settings = room(event, 60, 100);
    settings.mode = edge_proxy::config::QueueMode::Paused;
    let a = Edge::start(upstream.addr, &redis_url(), &[settings.clone()], &keys, config).await;
    let b = Edge::start(upstream.addr, &redis_url(), &[settings], &keys, config).await;
    let browser = |r: reqwest::RequestBuilder, client: &str| {
        r.header("usher-client", client.to_owned())
            .header("user-agent", "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0")
            .header("accept-language", "en-GB,en;q=0.9")
    };
    let answer = async |r: reqwest::RequestBuilder| {
        let r = r.send().await.unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null))
    };
    let owner = client_from("127.0.11.1");
    let thief = client_from("127.0.12.1");
    let join = |e: &Edge| e.url(&format!("/queue/{event}/join"));
    let (s, place) = answer(browser(owner.post(join(&a)), "owner")).await;
    assert_eq!(s, 200, "{place}");
    let token = place["queue_token"].as_str().unwrap();
    // On edge A the thief replays the owner's token and is blocked there.
    let (s, p) = answer(browser(thief.post(join(&a)), "thief").bearer_auth(token)).await;
    assert_eq!((s, p["code"].as_str()), (403, Some("join_blocked")), "{p}");
    // On edge B, which saw nothing of it, an honest-looking join from the
    // same address is blocked too once the edges have synced.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (s, p) = answer(browser(thief.post(join(&b)), "thief-2")).await;
    assert_eq!(
        (s, p["code"].as_str(), p["reason"].as_str()),
        (403, Some("join_blocked"), Some("replayer")),
        "{p}"
    );
    // The owner, on B as well, is untouched.
    let (s, again) = answer(browser(owner.post(join(&b)), "owner").bearer_auth(token)).await;
    assert_eq!((s, &again["ticket"]), (200, &place["ticket"]), "{again}");
    a.stop().await;
    b.stop().await;
    forget_event(event).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_redis_leaves_each_edge_to_count_alone_without_waiting() {
    let upstream = Upstream::start().await;
    let redis = PrivateRedis::start(free_port());
    let keys = key_dir("shared-stall");
    let a = Edge::start(upstream.addr, &redis.url(), &[], &keys, JOIN_LIMIT).await;
    let b = Edge::start(upstream.addr, &redis.url(), &[], &keys, JOIN_LIMIT).await;
    let client = client_from("127.0.13.1");
    // The client uses up its one allowance across both edges: every later
    // join would be refused by the shared sum for several seconds.
    let (before, _) = joins(&[&a, &b], &client, 20, 40).await;
    assert!(before.iter().sum::<usize>() <= 9, "{before:?}");
    // Redis stalls every client for 8 s; after the 2 s staleness bound the
    // edges stop believing the last sums and go by their own counts, which
    // have room for a few more each by then.
    pause(&redis, 8_000).await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let (during, slowest) = joins(&[&a, &b], &client, 8, 20).await;
    assert!(
        during.iter().sum::<usize>() >= 6,
        "{during:?}: the stale sums were believed"
    );
    assert!(
        slowest < Duration::from_millis(500),
        "an answer took {slowest:?}: it waited for Redis"
    );
    tokio::time::sleep(Duration::from_millis(6_000)).await;
    let m = a.metrics().await;
    let failures = m
        .lines()
        .find_map(|l| l.strip_prefix("usher_shared_counts_failures_total "))
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(failures >= 1, "{m}");
    a.stop().await;
    b.stop().await;
}
