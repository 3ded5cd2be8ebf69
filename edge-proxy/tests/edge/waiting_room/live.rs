//! A room while it runs: the active cap holds and a finished fan frees a
//! slot, operators change the room live and read its metrics, and fans who
//! keep asking keep their places while the silent lose theirs.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_active_cap_holds_and_a_finished_fan_frees_a_slot() {
    let (_upstream, event, edge) = one_room("cap", 60_000, 20).await;
    let base = edge.url("");
    let mut fans: Vec<Fan> = futures::future::join_all((0..60).map(|_| join(&edge.http, &base, event))).await;
    fans.sort_by_key(|f| f.ticket);
    for _ in 0..15 {
        let p = edge.progress(event).await;
        assert!(p["active"].as_u64().unwrap() <= 20, "active cap exceeded: {p}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let p = edge.progress(event).await;
    assert_eq!(
        (
            p["active"].as_u64(),
            p["admitted_total"].as_u64(),
            p["through"].as_u64()
        ),
        (Some(20), Some(20), Some(fans[19].ticket))
    );
    // Checkout needs no access token (an order needs a hold, which did)...
    let r = edge.http.post(edge.url("/v1/orders")).send().await.unwrap();
    assert_eq!(r.status(), 200, "checkout is not gated");
    // ...but carries one if the fan has it: the first fan's order is
    // confirmed, the core says so, and the slot goes to fan 21.
    let mut first = fans[0].clone();
    wait_admitted(&edge, event, &mut first).await;
    let r = edge
        .http
        .post(edge.url("/v1/orders/done"))
        .header("usher-client", &first.client_id)
        .header("usher-access", first.access.as_deref().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers().get("usher-session-done").is_none(),
        "the internal header leaked to the client"
    );
    let deadline = Instant::now() + Duration::from_secs(3);
    while edge.progress(event).await["admitted_total"].as_u64() != Some(21) {
        assert!(
            Instant::now() < deadline,
            "the freed slot was not given to the next fan"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(edge.progress(event).await["through"].as_u64(), Some(fans[20].ticket));
    edge.stop().await;
    forget_event(event).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_change_the_room_live_and_read_metrics() {
    let (_upstream, event, edge) = one_room("admin", 60, 10).await;
    let url = edge.admin_url(&format!("/admin/events/{event}"));
    let r = edge.http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = edge
        .http
        .get(&url)
        .bearer_auth("wrong-token-wrong-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let mut s = room(event, 6_000, 10);
    s.mode = edge_proxy::config::QueueMode::Paused;
    s.message = "Back at 10:00".into();
    let r = edge
        .http
        .put(&url)
        .bearer_auth(ADMIN_TOKEN)
        .json(&s)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["settings"]["admit_per_minute"], 6_000);
    // Bad settings: 422 with the problems named.
    let mut bad = s.clone();
    bad.admit_per_minute = 0;
    let r = edge
        .http
        .put(&url)
        .bearer_auth(ADMIN_TOKEN)
        .json(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert!(body["detail"].as_str().unwrap().contains("admit_per_minute"), "{body}");
    // Paused: joins take places but nobody is admitted.
    let fan = join(&edge.http, &edge.url(""), event).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (_, v) = status(&edge.http, &edge.url(""), event, &fan).await;
    assert_eq!(v["status"], "waiting");
    // Each answer says which tick of the room it is as of, so a client can
    // order two answers whatever the network did to them.
    let first = v["tick"].as_u64().expect("a waiting answer carries its tick");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (_, v) = status(&edge.http, &edge.url(""), event, &fan).await;
    assert!(v["tick"].as_u64().unwrap() > first, "{v}");
    // Closed: joins refused with the message.
    s.mode = edge_proxy::config::QueueMode::Closed;
    s.message = "Sold out".into();
    edge.http
        .put(&url)
        .bearer_auth(ADMIN_TOKEN)
        .json(&s)
        .send()
        .await
        .unwrap();
    let r = edge
        .http
        .post(edge.url(&format!("/queue/{event}/join")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 410);
    assert_eq!(r.json::<Value>().await.unwrap()["message"], "Sold out");
    // Metrics.
    let m = edge.metrics().await;
    assert!(m.contains(&format!("usher_joined_total{{event=\"{event}\"}} 1")), "{m}");
    assert!(m.contains(&format!("usher_queue_length{{event=\"{event}\"}} 1")), "{m}");
    assert!(m.contains("usher_upstream_seconds_bucket"), "{m}");
    edge.stop().await;
    forget_event(event).await;
}

/// The grace period is a promise both ways: a waiting fan who keeps asking
/// keeps the place however long the wait, one who goes silent for longer
/// loses it (to the fans behind), and the edge counts what it dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fans_who_keep_asking_keep_their_places_and_the_silent_lose_theirs() {
    use edge_proxy::config::QueueMode;

    let upstream = Upstream::start().await;
    let event = fresh_event();
    // Nobody is admitted (paused), so every fan waits the whole test.
    let mut settings = room(event, 60, 10);
    settings.mode = QueueMode::Paused;
    settings.grace_secs = 5;
    // One address asks for 300 fans: out of the per-address limits' way.
    let limits = "[rate_limits]\njoin_per_minute = 100000\nstatus_per_minute = 100000\nprotected_per_minute = 100000\n";
    let edge = Edge::start(upstream.addr, &redis_url(), &[settings], &key_dir("grace"), limits).await;
    let base = edge.url("");
    let fans: Vec<Fan> = futures::future::join_all((0..300).map(|_| join(&edge.http, &base, event))).await;
    let (askers, silent) = fans.split_at(200);
    // The askers poll every 1.5 s, together, for three grace periods.
    let until = Instant::now() + Duration::from_secs(15);
    while Instant::now() < until {
        let answers = futures::future::join_all(askers.iter().map(|f| status(&edge.http, &base, event, f))).await;
        for (fan, (code, v)) in askers.iter().zip(answers) {
            assert_eq!(
                (code, v["status"].as_str()),
                (200, Some("waiting")),
                "ticket {} kept asking and was dropped: {v}",
                fan.ticket
            );
        }
        tokio::time::sleep(Duration::from_millis(1_500)).await;
    }
    for fan in silent {
        let (code, v) = status(&edge.http, &base, event, fan).await;
        assert_eq!(
            (code, v["code"].as_str()),
            (410, Some("place_lost")),
            "ticket {}",
            fan.ticket
        );
    }
    // The last asker in the queue moved up past every silent fan.
    let last = askers.iter().max_by_key(|f| f.ticket).unwrap();
    let (_, v) = status(&edge.http, &base, event, last).await;
    assert_eq!(v["position"], 200, "{v}");
    assert_eq!(edge.progress(event).await["lost_total"], 100);
    let m = edge.metrics().await;
    assert!(
        m.contains(&format!("usher_places_lost_total{{event=\"{event}\"}} 100")),
        "{m}"
    );
    assert!(
        m.contains(&format!("usher_ticks_failed_total{{event=\"{event}\"}} 0")),
        "{m}"
    );
    edge.stop().await;
    forget_event(event).await;
}
