//! The edge's shared cache: what the core marks public is answered at the
//! edge until it expires (with Age and ETag revalidation), per encoding;
//! nothing else is, and never a protected path.

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_answers_are_served_from_the_edge_and_nothing_else_is() {
    let upstream = Upstream::start().await;
    let event = fresh_event();
    let dir = key_dir("cache");
    let edge = Edge::start(upstream.addr, &redis_url(), &[room(event, 60, 10)], &dir, "").await;
    let http = &edge.http;

    let map = edge.url("/public/venues/1/map?v=2");
    let first = http.get(&map).send().await.unwrap();
    assert_eq!(first.status(), 200);
    assert!(first.headers().get("x-cache").is_none(), "a miss goes to the core");
    assert_eq!(first.text().await.unwrap(), "{\"ok\":true}");
    for _ in 0..20 {
        let r = http.get(&map).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-cache"], "HIT");
        assert!(r.headers().contains_key("age"));
        assert_eq!(r.headers()["etag"], "\"v1\"");
        assert_eq!(r.text().await.unwrap(), "{\"ok\":true}");
    }
    assert_eq!(upstream.hits("/public/venues/1/map"), 1, "the core answered once");

    // Revalidation from the edge, a separate entry per encoding and query.
    let r = http.get(&map).header("if-none-match", "\"v1\"").send().await.unwrap();
    assert_eq!(r.status(), 304);
    http.get(&map).header("accept-encoding", "gzip").send().await.unwrap();
    http.get(edge.url("/public/venues/1/map?v=3")).send().await.unwrap();
    assert_eq!(upstream.hits("/public/venues/1/map"), 3);

    // Not marked public: every request reaches the core.
    for _ in 0..3 {
        http.get(edge.url("/v1/events?q=x")).send().await.unwrap();
    }
    assert_eq!(upstream.hits("/v1/events"), 3);
    // Authorised requests are not shared.
    for _ in 0..2 {
        http.get(edge.url("/public/me")).bearer_auth("x").send().await.unwrap();
    }
    assert_eq!(upstream.hits("/public/me"), 2);

    let metrics = http
        .get(edge.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("usher_cache_hits_total 21"), "{metrics}");
    edge.stop().await;
    forget_event(event).await;
}
