//! Rotating the edge's token key without downtime: an edge restarted with a
//! new key and the old one among `tokens.previous_keys` keeps every fan who
//! was queued or admitted under the old key, and signs new tokens with the
//! new one; once the old key is dropped, what it signed is refused.

use std::time::Duration;

use base64::Engine;
use futures::future::join_all;

use crate::common::*;

/// The key id in a token's header.
fn kid(token: &str) -> String {
    let header = token.split('.').next().unwrap();
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    v["kid"].as_str().unwrap().to_owned()
}

/// A protected request, as an admitted fan sends it.
async fn hold(edge: &Edge, event: i64, fan: &Fan) -> u16 {
    let mut r = edge
        .http
        .post(edge.url(&format!("/v1/events/{event}/holds")))
        .header("usher-client", &fan.client_id);
    if let Some(access) = &fan.access {
        r = r.header("usher-access", access);
    }
    r.send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_key_rotates_while_fans_are_queued_and_admitted() {
    let upstream = Upstream::start().await;
    let event = fresh_event();
    let keys = key_dir("rotate");
    // The old edge signs with `edge-test` (the harness's key): five fans are
    // admitted (the active cap), seven wait.
    let old = Edge::start(upstream.addr, &redis_url(), &[room(event, 60_000, 5)], &keys, "").await;
    let base = old.url("");
    let mut fans: Vec<Fan> = join_all((0..12).map(|_| join(&old.http, &base, event))).await;
    fans.sort_by_key(|f| f.ticket);
    for fan in fans[..5].iter_mut() {
        wait_admitted(&old, event, fan).await;
        assert_eq!(kid(fan.access.as_deref().unwrap()), "edge-test");
    }
    assert_eq!(kid(&fans[5].queue_token), "edge-test");
    old.stop().await;

    // Step 1 of the procedure: the new key signs, the old one still verifies.
    let old_private = std::fs::read_to_string(keys.join("edge.pem")).unwrap();
    let old_public = usher_shared::SigningKey::from_pem("edge-test", &old_private)
        .unwrap()
        .public_pem()
        .to_owned();
    std::fs::write(keys.join("edge-test.pub.pem"), old_public).unwrap();
    std::fs::write(keys.join("edge-2.pem"), usher_shared::keys::generate_pair().private_pem).unwrap();
    let rotating = format!(
        "[tokens]\nkid = \"edge-2\"\nprivate_key_file = \"{}\"\nprevious_keys = [{{ kid = \"edge-test\", pem_file = \"{}\" }}]\n",
        keys.join("edge-2.pem").display(),
        keys.join("edge-test.pub.pem").display()
    );
    let new = Edge::start(upstream.addr, &redis_url(), &[room(event, 60_000, 5)], &keys, &rotating).await;
    let holds = format!("/v1/events/{event}/holds");
    // An admitted fan's old token still reaches the core.
    assert_eq!(hold(&new, event, &fans[1]).await, 200);
    assert_eq!(upstream.hits(&holds), 1);
    // A fan who finishes frees a slot; the next in line, queued under the
    // old key, keeps its place and is admitted under the new one.
    let r = new
        .http
        .post(new.url("/v1/orders/done"))
        .header("usher-client", &fans[0].client_id)
        .header("usher-access", fans[0].access.as_deref().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut next = fans[5].clone();
    wait_admitted(&new, event, &mut next).await;
    assert_eq!(kid(next.access.as_deref().unwrap()), "edge-2");
    assert_eq!(hold(&new, event, &next).await, 200);
    // Fans still waiting hold their places under the old queue tokens.
    let (code, v) = status(&new.http, &new.url(""), event, &fans[11]).await;
    assert_eq!((code, v["status"].as_str()), (200, Some("waiting")), "{v}");
    // New joins get the new key.
    let late = join(&new.http, &new.url(""), event).await;
    assert_eq!(kid(&late.queue_token), "edge-2");
    new.stop().await;

    // Step 2, once the old key's tokens have expired: it is dropped, and
    // whatever it signed is refused while the new key's tokens keep working.
    let done = format!(
        "[tokens]\nkid = \"edge-2\"\nprivate_key_file = \"{}\"\n",
        keys.join("edge-2.pem").display()
    );
    let after = Edge::start(upstream.addr, &redis_url(), &[room(event, 60_000, 5)], &keys, &done).await;
    let before = upstream.hits(&holds);
    assert_eq!(hold(&after, event, &fans[2]).await, 403, "a token of the dropped key");
    assert_eq!(upstream.hits(&holds), before, "it never reached the core");
    assert_eq!(hold(&after, event, &next).await, 200);
    let (code, _) = status(&after.http, &after.url(""), event, &fans[11]).await;
    assert_ne!(code, 200, "a queue token of the dropped key");
    let (code, v) = status(&after.http, &after.url(""), event, &late).await;
    assert_eq!(code, 200, "{v}");

    after.stop().await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    forget_event(event).await;
}
