//! The waiting room against real Redis and the real edge binary: nothing
//! unadmitted reaches the core, fans are admitted in ticket order at the
//! configured rate (with two edges sharing the work), the active cap holds,
//! a finished fan's slot goes to the next, and an operator can change it all
//! live.

mod live;

use std::time::{Duration, Instant};

use crate::common::*;
use edge_proxy::config::TokensConfig;
use edge_proxy::tokens::EdgeTokens;
use serde_json::Value;

/// The edge's own token service, from the key the test gave it.
fn edge_tokens(dir: &std::path::Path) -> EdgeTokens {
    let config = TokensConfig {
        issuer: "usher-edge".into(),
        kid: "edge-test".into(),
        private_key_file: dir.join("edge.pem"),
        queue_token_ttl_secs: 3600,
        secure_cookies: false,
        previous_keys: vec![],
    };
    EdgeTokens::from_config(&config).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_unadmitted_reaches_the_core() {
    let upstream = Upstream::start().await;
    let event = fresh_event();
    let keys = key_dir("protect");
    let edge = Edge::start(upstream.addr, &redis_url(), &[room(event, 60_000, 100)], &keys, "").await;
    let holds = format!("/v1/events/{event}/holds");
    let post = |path: String, client: &'static str, access: Option<String>| {
        let mut r = edge.http.post(edge.url(&path)).header("usher-client", client);
        if let Some(a) = access {
            r = r.header("usher-access", a);
        }
        async move {
            let r = r.send().await.unwrap();
            let s = r.status().as_u16();
            (s, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };

    // No token, a made-up token, a token signed by another key.
    let (s, p) = post(holds.clone(), "a", None).await;
    assert_eq!(
        (s, p["code"].as_str(), p["reason"].as_str()),
        (403, Some("admission_required"), Some("access_token_missing"))
    );
    assert_eq!(p["queue_url"], format!("/queue/{event}"));
    let (s, p) = post(holds.clone(), "a", Some("garbage".into())).await;
    assert_eq!((s, p["reason"].as_str()), (403, Some("token_malformed")));
    let stranger = edge_proxy::tokens::ephemeral("usher-edge");
    let bnd = edge_proxy::tokens::binding("a", "", "");
    let (forged, _) = stranger.issue_access(event, 1, &bnd, 60);
    let (s, p) = post(holds.clone(), "a", Some(forged)).await;
    assert_eq!((s, p["reason"].as_str()), (403, Some("token_unknown_key")));
    // Ours, but expired; ours, but for another event.
    let ours = edge_tokens(&keys);
    let (expired, _) = ours.issue_access(event, 1, &bnd, 0);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (s, p) = post(holds.clone(), "a", Some(expired)).await;
    assert_eq!((s, p["reason"].as_str()), (403, Some("token_expired")));
    let (foreign, _) = ours.issue_access(event + 1, 1, &bnd, 60);
    let (s, p) = post(holds.clone(), "a", Some(foreign)).await;
    assert_eq!((s, p["reason"].as_str()), (403, Some("token_wrong_event")));

    // A browser is sent to the waiting room instead.
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_redirects
        .get(edge.url(&format!("/v1/events/{event}/seat-changes")))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], format!("/queue/{event}"));

    assert_eq!(upstream.total_hits(), 0, "an unadmitted request reached the core");

    // A real admission: join, wait, take the token.
    let mut fan = join(&edge.http, &edge.url(""), event).await;
    wait_admitted(&edge, event, &mut fan).await;
    let token = fan.access.clone().unwrap();
    // Replayed from another client: refused.
    let (s, p) = post(holds.clone(), "someone-else", Some(token.clone())).await;
    assert_eq!((s, p["reason"].as_str()), (403, Some("token_other_client")));
    assert_eq!(upstream.total_hits(), 0);
    // From its own client: through, with the token forwarded to the core.
    let r = edge
        .http
        .post(edge.url(&holds))
        .header("usher-client", &fan.client_id)
        .header("usher-access", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(upstream.hits(&holds), 1);
    assert_eq!(upstream.access_tokens_seen(), vec![token.clone()]);
    // The edge marks its own time on what it forwards.
    let timing = r.headers()["server-timing"].to_str().unwrap();
    let ms: f64 = timing
        .strip_prefix("edge;dur=")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("server-timing {timing:?}"));
    assert!((0.0..10_000.0).contains(&ms), "{timing}");

    // Unprotected paths pass; a client cannot smuggle an access header in.
    let r = edge
        .http
        .get(edge.url("/v1/events"))
        .header("usher-access", "made-up")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(upstream.hits("/v1/events"), 1);
    assert_eq!(
        upstream.access_tokens_seen().len(),
        1,
        "the made-up header was forwarded"
    );
    // An event without a waiting room is not protected.
    let other = format!("/v1/events/{}/holds", event + 7);
    assert_eq!(post(other.clone(), "a", None).await.0, 200);
    assert_eq!(upstream.hits(&other), 1);

    edge.stop().await;
    forget_event(event).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_joiners_are_admitted_in_ticket_order() {
    let (_upstream, event, edge) = one_room("order", 120_000, 100_000).await;
    let base = edge.url("");
    let fans: Vec<Fan> = futures::future::join_all((0..2000).map(|_| join(&edge.http, &base, event))).await;
    let mut tickets: Vec<u64> = fans.iter().map(|f| f.ticket).collect();
    tickets.sort_unstable();
    tickets.dedup();
    assert_eq!(tickets.len(), 2000, "every joiner has a ticket of their own");
    let last = *tickets.last().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while edge.progress(event).await["through"].as_u64().unwrap_or(0) < last {
        assert!(Instant::now() < deadline, "not everyone was admitted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Independently of the edge: Redis's record of when each fan was
    // admitted (session expiry = admission + session) never goes backwards
    // in ticket order.
    let mut conn = redis().await;
    let active: Vec<(String, f64)> = redis::cmd("ZRANGE")
        .arg(format!("usher:{{e{event}}}:active"))
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut by_ticket: Vec<(u64, f64)> = active.into_iter().map(|(t, s)| (t.parse().unwrap(), s)).collect();
    by_ticket.sort_by_key(|(t, _)| *t);
    assert_eq!(by_ticket.len(), 2000);
    let inversions = by_ticket.windows(2).filter(|w| w[1].1 < w[0].1).count();
    assert_eq!(inversions, 0, "fans admitted out of ticket order");
    // The edge's own fairness figures say the same.
    let f = edge.admin_get(&format!("/admin/events/{event}/fairness")).await;
    assert_eq!(f["inversions"], 0, "{f}");
    assert_eq!(f["admitted"], 2000, "{f}");
    assert_eq!(f["abandoned_before_admission"], 0, "{f}");
    let buckets = f["waiting_time"]["buckets"].as_array().unwrap();
    assert_eq!(
        buckets.last().unwrap()["admitted"],
        2000,
        "every admission has a waiting time: {f}"
    );
    // And every fan's own status agrees.
    let (code, v) = status(&edge.http, &base, event, &fans[1234]).await;
    assert_eq!((code, v["status"].as_str()), (200, Some("admitted")));
    edge.stop().await;
    forget_event(event).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_edges_share_one_rate() {
    let upstream = Upstream::start().await;
    let event = fresh_event();
    let keys = key_dir("rate");
    // 3,000 a minute is 50 a second; the backlog is larger than a window.
    let settings = room(event, 3_000, 100_000);
    let a = Edge::start(upstream.addr, &redis_url(), std::slice::from_ref(&settings), &keys, "").await;
    let b = Edge::start(upstream.addr, &redis_url(), std::slice::from_ref(&settings), &keys, "").await;
    let (ua, ub) = (a.url(""), b.url(""));
    let joins = (0..1600).map(|i| {
        let (http, url) = if i % 2 == 0 {
            (&a.http, ua.clone())
        } else {
            (&b.http, ub.clone())
        };
        async move { join(http, &url, event).await }
    });
    futures::future::join_all(joins).await;
    let start_total = a.progress(event).await["admitted_total"].as_u64().unwrap();
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(20)).await;
    let end_total = b.progress(event).await["admitted_total"].as_u64().unwrap();
    let secs = started.elapsed().as_secs_f64();
    let admitted = (end_total - start_total) as f64;
    let expected = 50.0 * secs;
    let off = (admitted - expected) / expected;
    assert!(
        off.abs() <= 0.05,
        "admitted {admitted} in {secs:.1} s, expected {expected:.0} (off by {:.1}%)",
        off * 100.0
    );
    a.stop().await;
    b.stop().await;
    forget_event(event).await;
}
