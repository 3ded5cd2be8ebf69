//! Ways around the waiting room that were found from outside, each closed
//! as a class: other spellings of a protected path, an access token used
//! again after its session ended, and a new edge admitting by its file's
//! settings before reading the shared ones.

use std::time::{Duration, Instant};

use crate::common::*;
use rand::Rng;
use serde_json::Value;
use usher_shared::paths::{self, spellings};
use usher_test_kit::raw;

/// Random spellings of the protected paths of `event`: escapes, signs and
/// zeros, dot segments, doubled and trailing slashes.
fn spellings_of(event: i64, n: usize) -> Vec<(String, String)> {
    let mut rng = rand::thread_rng();
    let id = event.to_string();
    (0..n)
        .map(|_| {
            let tail = ["holds", "seat-changes"][rng.gen_range(0..2)];
            let choices: Vec<u32> = (0..4).map(|_| rng.r#gen()).collect();
            let raw = spellings::path(&["v1", "events", &id, tail], &choices);
            (raw, format!("/v1/events/{event}/{tail}"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_spelling_of_a_protected_path_gets_past_the_edge_and_the_core_gets_the_canonical_one() {
    let (upstream, event, edge) = one_room("spell", 60_000, 100).await;
    let edge_addr = format!("127.0.0.1:{}", edge.port);
    let cases = spellings_of(event, 300);

    // Without admission: refused at the edge, whatever the spelling.
    for (raw_path, _) in &cases {
        let (status, body) = raw(&edge_addr, "POST", raw_path, b"", &[("usher-client", "c")]).await;
        let code = serde_json::from_str::<Value>(&body).unwrap_or(Value::Null)["code"].clone();
        assert_eq!(
            (status, code.as_str()),
            (403, Some("admission_required")),
            "{raw_path}: {body}"
        );
    }
    // Spellings with no canonical form are refused outright.
    for bad in [
        format!("/v1/events%2F{event}/holds"),
        format!("/v1/events/{event}%00/holds"),
        format!("/v1\\events\\{event}\\holds"),
        "/v1/events/99999999999999999999/holds".to_string(),
        format!("/v1/events/{event}/%zz"),
        format!("/healthz/../v1/events/{event}/holds"),
    ] {
        let (status, body) = raw(&edge_addr, "POST", &bad, b"", &[("usher-client", "c")]).await;
        assert!(matches!(status, 400 | 403), "{bad}: {status} {body}");
    }
    // An absolute-form target is read by its path, like any other.
    let id = event.to_string();
    let absolute = format!(
        "http://127.0.0.1:{}/v1/events/%{:02X}{}/holds",
        edge.port,
        id.as_bytes()[0],
        &id[1..]
    );
    let (status, _) = raw(&edge_addr, "POST", &absolute, b"", &[("usher-client", "c")]).await;
    assert!(matches!(status, 400 | 403), "{absolute}: {status}");
    assert_eq!(upstream.total_hits(), 0, "an unadmitted spelling reached the core");

    // Admitted: through, and what reaches the core is the canonical path
    // (the one the core's router reads, and the only one it accepts).
    let fan = admitted_fan(&edge, event).await;
    let token = fan.access.clone().unwrap();
    for (raw_path, canonical) in cases.iter().take(60) {
        let before = upstream.hits(canonical);
        let (status, body) = raw(
            &edge_addr,
            "POST",
            raw_path,
            b"",
            &[("usher-client", &fan.client_id), ("usher-access", &token)],
        )
        .await;
        assert_eq!(status, 200, "{raw_path}: {body}");
        assert_eq!(
            upstream.hits(canonical),
            before + 1,
            "{raw_path} did not reach the core as {canonical}"
        );
        assert!(paths::is_canonical(canonical));
    }
    edge.stop().await;
    forget_event(event).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_sessions_token_is_refused_on_every_edge() {
    let upstream = Upstream::start().await;
    let event = fresh_event();
    let keys = key_dir("ended");
    let settings = room(event, 60_000, 100);
    let a = Edge::start(upstream.addr, &redis_url(), std::slice::from_ref(&settings), &keys, "").await;
    let b = Edge::start(upstream.addr, &redis_url(), std::slice::from_ref(&settings), &keys, "").await;
    let fan = admitted_fan(&a, event).await;
    let token = fan.access.clone().unwrap();
    let holds = format!("/v1/events/{event}/holds");
    let hold = |edge: &Edge| {
        edge.http
            .post(edge.url(&holds))
            .header("usher-client", &fan.client_id)
            .header("usher-access", &token)
            .send()
    };
    assert_eq!(hold(&a).await.unwrap().status(), 200);
    assert_eq!(hold(&b).await.unwrap().status(), 200);

    // The fan's order is confirmed: the core says the session is done.
    let r = a
        .http
        .post(a.url("/v1/orders/done"))
        .header("usher-client", &fan.client_id)
        .header("usher-access", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let reached = upstream.hits(&holds);

    // The same token again: refused at once where the session ended...
    let r = hold(&a).await.unwrap();
    assert_eq!(r.status(), 403);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["reason"], "session_ended", "{p}");
    // ...and on the other edge from its next ticks.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let r = hold(&b).await.unwrap();
        if r.status() == 403 {
            let p: Value = r.json().await.unwrap();
            assert_eq!(p["reason"], "session_ended", "{p}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the other edge still accepts the ended session's token"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let leaked = upstream.hits(&holds) - reached;
    assert!(leaked <= 15, "{leaked} requests with an ended token reached the core");
    // A third edge started afterwards knows it from its first tick.
    let c = Edge::start(upstream.addr, &redis_url(), std::slice::from_ref(&settings), &keys, "").await;
    let before = upstream.hits(&holds);
    assert_eq!(hold(&c).await.unwrap().status(), 403);
    assert_eq!(upstream.hits(&holds), before);
    for e in [a, b, c] {
        e.stop().await;
    }
    forget_event(event).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_edge_admits_by_the_shared_settings_from_its_first_tick() {
    let upstream = Upstream::start().await;
    let event = fresh_event();
    let keys = key_dir("first-tick");
    let file = room(event, 60_000, 1_000);
    let a = Edge::start(upstream.addr, &redis_url(), std::slice::from_ref(&file), &keys, "").await;
    // The operator pauses the room live, then fans join.
    let mut paused = file.clone();
    paused.mode = edge_proxy::config::QueueMode::Paused;
    let r = a
        .http
        .put(a.admin_url(&format!("/admin/events/{event}")))
        .bearer_auth(ADMIN_TOKEN)
        .json(&paused)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    let before = a.progress(event).await["admitted_total"].as_u64().unwrap_or(0);
    let base = a.url("");
    futures::future::join_all((0..20).map(|_| join(&a.http, &base, event))).await;

    // Several new edges, each started from the file (which says fifo at
    // 1,000 a second): none may admit anybody while the room is paused.
    for _ in 0..3 {
        let b = Edge::start(upstream.addr, &redis_url(), std::slice::from_ref(&file), &keys, "").await;
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let p = b.progress(event).await;
        assert_eq!(
            p["admitted_total"].as_u64(),
            Some(before),
            "a new edge admitted by its file's settings while the room was paused: {p}"
        );
        b.stop().await;
    }
    // A live rate change binds every tick too: unpaused at 60 a minute, at
    // most a couple are admitted in a second, not the file's 1,000 a second.
    let mut slow = file.clone();
    slow.admit_per_minute = 60;
    let r = a
        .http
        .put(a.admin_url(&format!("/admin/events/{event}")))
        .bearer_auth(ADMIN_TOKEN)
        .json(&slow)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let b = Edge::start(upstream.addr, &redis_url(), std::slice::from_ref(&file), &keys, "").await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let admitted = b.progress(event).await["admitted_total"].as_u64().unwrap() - before;
    assert!(admitted <= 3, "{admitted} admitted in a second at 60 a minute");
    a.stop().await;
    b.stop().await;
    forget_event(event).await;
}
