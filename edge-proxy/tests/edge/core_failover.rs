//! Several cores behind one edge: fans are spread over every ready core, a
//! core that dies, hangs or says it is not ready leaves the rotation within
//! the health check's time, and comes back once it is ready again.

use std::time::{Duration, Instant};

use crate::common::*;

/// The test's health check: every 200 ms, a check unanswered after 300 ms
/// fails. A core leaves the rotation at the first failed check and returns
/// after two passing ones, so within these bounds.
const CHECKS: &str =
    "health_check_interval_ms = 200\nhealth_check_timeout_ms = 300\nconnect_timeout_ms = 300\nread_timeout_ms = 1500";
const OUT_WITHIN: Duration = Duration::from_millis(200 + 300 + 500);
const BACK_WITHIN: Duration = Duration::from_millis(2 * 200 + 1000);

async fn two_cores() -> (Upstream, Upstream, Edge) {
    let (a, b) = (Upstream::start().await, Upstream::start().await);
    let edge = Edge::start_before_cores(&[a.addr, b.addr], &redis_url(), &key_dir("core-failover"), CHECKS).await;
    wait_ready(&edge, &[(&a, true), (&b, true)]).await;
    (a, b, edge)
}

/// Waits until the edge's metrics show each core in or out of rotation;
/// returns how long that took.
async fn wait_ready(edge: &Edge, want: &[(&Upstream, bool)]) -> Duration {
    let started = Instant::now();
    loop {
        let metrics = edge.metrics().await;
        let is = |u: &Upstream, ready: bool| {
            metrics.contains(&format!(
                "usher_upstream_ready{{core=\"{}\"}} {}",
                u.addr,
                u8::from(ready)
            ))
        };
        if want.iter().all(|(u, ready)| is(u, *ready)) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "cores never reached {:?}:\n{metrics}",
            want.iter().map(|(u, r)| (u.addr, *r)).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends `n` requests through the edge; returns how many answered 200.
async fn send(edge: &Edge, path: &str, n: usize) -> usize {
    let mut ok = 0;
    for _ in 0..n {
        let r = edge.http.get(edge.url(path)).send().await;
        if r.is_ok_and(|r| r.status() == 200) {
            ok += 1;
        }
    }
    ok
}

#[tokio::test]
async fn fans_are_spread_over_every_ready_core() {
    let (a, b, edge) = two_cores().await;
    assert_eq!(send(&edge, "/v1/events", 40).await, 40);
    let (on_a, on_b) = (a.hits("/v1/events"), b.hits("/v1/events"));
    assert_eq!(on_a + on_b, 40);
    assert!(
        on_a >= 10 && on_b >= 10,
        "round robin over two ready cores: {on_a} and {on_b}"
    );
    edge.stop().await;
}

#[tokio::test]
async fn a_dead_core_leaves_the_rotation_without_failing_a_fan_and_returns_when_restarted() {
    let (mut a, b, edge) = two_cores().await;
    a.kill().await;
    // Before and after the health check notices, every request is answered:
    // a refused connect is tried on the other core.
    assert_eq!(
        send(&edge, "/v1/events", 20).await,
        20,
        "no fan fails while a core is dead"
    );
    let out = wait_ready(&edge, &[(&a, false), (&b, true)]).await;
    assert!(out <= OUT_WITHIN, "the dead core left after {out:?}");
    assert_eq!(send(&edge, "/v1/events", 20).await, 20);
    assert_eq!(b.hits("/v1/events"), 40, "everything went to the live core");

    a.restart().await;
    let back = wait_ready(&edge, &[(&a, true), (&b, true)]).await;
    assert!(back <= BACK_WITHIN, "the restarted core came back after {back:?}");
    let before = a.hits("/v1/events");
    assert_eq!(send(&edge, "/v1/events", 20).await, 20);
    assert!(
        a.hits("/v1/events") - before >= 5,
        "the restarted core takes fans again"
    );
    edge.stop().await;
}

#[tokio::test]
async fn a_core_that_is_not_ready_gets_no_fans_until_it_is() {
    let (a, b, edge) = two_cores().await;
    b.set_ready(false);
    let out = wait_ready(&edge, &[(&a, true), (&b, false)]).await;
    assert!(out <= OUT_WITHIN, "the unready core left after {out:?}");
    let before = b.hits("/v1/events");
    assert_eq!(send(&edge, "/v1/events", 20).await, 20);
    assert_eq!(
        b.hits("/v1/events"),
        before,
        "an unready core (no database leader) gets no fans"
    );

    b.set_ready(true);
    wait_ready(&edge, &[(&a, true), (&b, true)]).await;
    assert_eq!(send(&edge, "/v1/events", 20).await, 20);
    assert!(b.hits("/v1/events") > before);
    edge.stop().await;
}

#[tokio::test]
async fn a_hung_core_is_bounded_and_leaves_the_rotation() {
    let (a, b, edge) = two_cores().await;
    a.hang(true);
    // A request already on its way to the hung core ends by the read
    // timeout (1.5 s here) with an error, never hanging the fan for good.
    let started = Instant::now();
    let mut answered = 0;
    for _ in 0..4 {
        // A 504 problem, or (seen under load, when Pingora gives up on the
        // request itself) the connection closed: either way within the
        // bound, never a fan left hanging.
        if let Ok(r) = edge.http.get(edge.url("/v1/events")).send().await
            && r.status() != 200
        {
            assert_eq!(r.status(), 504, "a silent core is a gateway time-out");
            assert_eq!(r.headers()["content-type"], "application/problem+json");
            let body: serde_json::Value = r.json().await.unwrap();
            assert_eq!(body["code"], "core_timeout");
        }
        answered += 1;
    }
    assert_eq!(answered, 4);
    assert!(
        started.elapsed() < Duration::from_secs(4 * 2),
        "requests to a hung core end within the read timeout: {:?}",
        started.elapsed()
    );
    let out = wait_ready(&edge, &[(&a, false), (&b, true)]).await;
    assert!(
        out <= OUT_WITHIN + Duration::from_secs(2),
        "the hung core left after {out:?}"
    );
    assert_eq!(send(&edge, "/v1/events", 10).await, 10, "fans go to the live core");
    a.hang(false);
    wait_ready(&edge, &[(&a, true), (&b, true)]).await;
    edge.stop().await;
}

#[tokio::test]
async fn with_no_ready_core_fans_get_a_503_problem_to_retry() {
    let (a, b, edge) = two_cores().await;
    a.set_ready(false);
    b.set_ready(false);
    wait_ready(&edge, &[(&a, false), (&b, false)]).await;
    let r = edge.http.get(edge.url("/v1/events")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    assert!(r.headers().contains_key("retry-after"));
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "no_ready_core");
    a.set_ready(true);
    wait_ready(&edge, &[(&a, true)]).await;
    assert_eq!(send(&edge, "/v1/events", 5).await, 5);
    edge.stop().await;
}
