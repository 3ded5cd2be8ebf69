//! Behind a balancer every fan arrives from the balancer's address: the
//! edge believes `X-Forwarded-For` from `listen.trusted_proxies` only, so
//! per-address limits count each fan, not the balancer, and nobody else can
//! pick the address they are counted under.

use std::net::IpAddr;

use crate::common::*;

async fn join_from(http: &reqwest::Client, edge: &Edge, event: i64, forwarded: Option<&str>) -> u16 {
    let mut r = http.post(edge.url(&format!("/queue/{event}/join")));
    if let Some(f) = forwarded {
        r = r.header("x-forwarded-for", f);
    }
    r.send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_address_limits_count_the_client_a_trusted_balancer_names() {
    let upstream = Upstream::start().await;
    let event = fresh_event();
    let limits = "[rate_limits]\njoin_per_minute = 3\nstatus_per_minute = 0\nprotected_per_minute = 0\n";
    let edge = Edge::start_with_listen(
        upstream.addr,
        &redis_url(),
        &[room(event, 60, 100)],
        &key_dir("forwarded"),
        limits,
        "trusted_proxies = [\"127.0.0.1/32\"]",
    )
    .await;
    // 127.0.0.1 is the balancer: each fan it names has its own allowance
    // (a burst of five joins at the least).
    let lb = reqwest::Client::new();
    for _ in 0..5 {
        assert_eq!(join_from(&lb, &edge, event, Some("203.0.113.1")).await, 200);
    }
    assert_eq!(join_from(&lb, &edge, event, Some("203.0.113.1")).await, 429);
    assert_eq!(join_from(&lb, &edge, event, Some("203.0.113.2")).await, 200);
    // A fan who writes another address in front is still counted as what
    // the balancer saw.
    assert_eq!(
        join_from(&lb, &edge, event, Some("198.51.100.9, 203.0.113.1")).await,
        429
    );

    // 127.0.0.2 is no balancer: what it forwards is ignored, it is counted
    // as itself, and spending its own allowance does not touch 203.0.113.3's.
    let stranger = reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<IpAddr>().unwrap())
        .build()
        .unwrap();
    for n in 0..5 {
        let forged = format!("203.0.113.{}", 100 + n);
        assert_eq!(join_from(&stranger, &edge, event, Some(&forged)).await, 200);
    }
    assert_eq!(join_from(&stranger, &edge, event, Some("203.0.113.200")).await, 429);
    assert_eq!(join_from(&lb, &edge, event, Some("203.0.113.3")).await, 200);

    edge.stop().await;
    forget_event(event).await;
}
