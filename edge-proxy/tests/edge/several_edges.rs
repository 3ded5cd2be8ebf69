//! Several edges in front of the same cores and Redis: a room an operator
//! opens through one edge's admin API is guarded by every edge within a
//! second, so no edge lets an unadmitted fan through for lack of knowing it.

use std::time::{Duration, Instant};

use crate::common::*;

#[tokio::test]
async fn a_room_opened_on_one_edge_is_guarded_by_every_edge() {
    let upstream = Upstream::start().await;
    let keys = key_dir("several-edges");
    let a = Edge::start(upstream.addr, &redis_url(), &[], &keys, "").await;
    let b = Edge::start(upstream.addr, &redis_url(), &[], &keys, "").await;
    let event = fresh_event();
    let holds = format!("/v1/events/{event}/holds");

    // No room yet: both edges forward the path.
    let r = b.http.post(b.url(&holds)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let before = upstream.hits(&holds);

    let r = a
        .http
        .put(a.admin_url(&format!("/admin/events/{event}")))
        .bearer_auth(ADMIN_TOKEN)
        .json(&room(event, 600, 100))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());

    // The other edge takes the room on by itself, within a second.
    let started = Instant::now();
    loop {
        let r = b.http.post(b.url(&holds)).send().await.unwrap();
        if r.status() == 403 || r.status() == 401 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "edge b still forwards the room's paths after {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(1_500),
        "edge b took {took:?} to guard the room"
    );
    let forwarded_meanwhile = upstream.hits(&holds) - before;
    assert!(
        forwarded_meanwhile <= 30,
        "at most the first second's requests went through: {forwarded_meanwhile}"
    );

    // And it is a real room there: a fan joins on b, is admitted, and the
    // token works on a (one queue, shared).
    let mut fan = join(&b.http, &b.url(""), event).await;
    wait_admitted(&b, event, &mut fan).await;
    let token = fan.access.clone().expect("admitted");
    let r = a
        .http
        .post(a.url(&holds))
        .header("usher-client", &fan.client_id)
        .header("usher-access", token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    forget_event(event).await;
    a.stop().await;
    b.stop().await;
}
