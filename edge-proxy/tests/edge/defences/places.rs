//! A fan's places against the defences: a signed-in fan keeps one place
//! from any client, a copied queue cookie counts against the client that
//! uses it, an address sent to the back loses the places it took before,
//! and replaying a spent puzzle can cost the place it bought.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_in_fan_keeps_one_place_from_any_client() {
    let upstream = Upstream::start().await;
    let event = fresh_event();
    let keys = key_dir("fans");
    let issuer = usher_shared::keys::generate_pair();
    let public = keys.join("idp.pub.pem");
    std::fs::write(&public, &issuer.public_pem).unwrap();
    let config = format!(
        "[defence.fans]\nissuer = \"test-idp\"\naudience = \"usher\"\npublic_keys = [{{ kid = \"idp-1\", pem_file = \"{}\" }}]\n",
        public.display()
    );
    let edge = Edge::start(upstream.addr, &redis_url(), &[paused(event)], &keys, &config).await;
    let signer =
        usher_shared::TokenSigner::new(usher_shared::SigningKey::from_pem("idp-1", &issuer.private_pem).unwrap());
    let now = chrono::Utc::now().timestamp();
    let token = |sub: &str| {
        signer.sign(&usher_shared::FanClaims {
            iss: "test-idp".into(),
            aud: "usher".into(),
            sub: sub.into(),
            iat: now,
            exp: now + 600,
            name: None,
        })
    };
    let join = |client: &str, fan: Option<String>| {
        let mut r = browser(edge.http.post(edge.url(&format!("/queue/{event}/join"))), client);
        if let Some(f) = fan {
            r = r.header("usher-fan", f);
        }
        answer(r)
    };
    let (s, first) = join("phone", Some(token("alice"))).await;
    assert_eq!(s, 200, "{first}");
    // The same fan from a laptop and a second tab: the same place.
    for client in ["laptop", "tab-2"] {
        let (s, again) = join(client, Some(token("alice"))).await;
        assert_eq!(s, 200);
        assert_eq!(again["ticket"], first["ticket"], "{again}");
    }
    // Someone else, someone anonymous, and a forged token: places of their own.
    let (_, bob) = join("bob", Some(token("bob"))).await;
    let (_, anon) = join("anon", None).await;
    let forged = token("alice").replace('.', ".x");
    let (_, forged) = join("mallory", Some(forged)).await;
    let tickets: Vec<u64> = [&first, &bob, &anon, &forged]
        .iter()
        .map(|v| v["ticket"].as_u64().unwrap())
        .collect();
    let mut distinct = tickets.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 4, "{tickets:?}");
    let m = edge.metrics().await;
    assert!(m.contains("usher_fan_places_total{place=\"again\"} 2"), "{m}");
    assert!(m.contains("usher_fan_places_total{place=\"new\"} 2"), "{m}");
    edge.stop().await;
    forget_event(event).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copied_queue_cookie_counts_against_the_client_that_uses_it() {
    let upstream = Upstream::start().await;
    let event = fresh_event();
    let keys = key_dir("replay");
    // A replay alone (25 points) blocks here.
    let config = "[[defence.rules]]\nname = \"replayer\"\nmin_score = 20.0\naction = \"block\"\n";
    let edge = Edge::start(upstream.addr, &redis_url(), &[paused(event)], &keys, config).await;
    let owner = client_from("127.0.5.1");
    let thief = client_from("127.0.6.1");
    let url = edge.url(&format!("/queue/{event}/join"));
    let (s, place) = answer(browser(owner.post(&url), "owner")).await;
    assert_eq!(s, 200, "{place}");
    let token = place["queue_token"].as_str().unwrap();
    // The thief presents the owner's token from its own client: no place
    // for it, and it is blocked.
    let (s, p) = answer(browser(thief.post(&url), "thief").bearer_auth(token)).await;
    assert_eq!(
        (s, p["code"].as_str(), p["reason"].as_str()),
        (403, Some("join_blocked"), Some("replayer")),
        "{p}"
    );
    // The owner keeps its place.
    let (s, again) = answer(browser(owner.post(&url), "owner").bearer_auth(token)).await;
    assert_eq!((s, &again["ticket"]), (200, &place["ticket"]));
    let m = edge.metrics().await;
    assert!(m.contains("usher_replays_total{kind=\"queue_token\"} 1"), "{m}");
    edge.stop().await;
    forget_event(event).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_sent_to_the_back_loses_the_places_it_took_before() {
    let upstream = Upstream::start().await;
    let event = fresh_event();
    let keys = key_dir("takeback");
    let config = "[defence.risk]\nip_joins_per_minute = 2\nip_points_per_join = 10.0\nheadless_points = 0.0\nno_language_points = 0.0\n\n\
                  [[defence.rules]]\nname = \"flood\"\nmin_score = 30.0\naction = \"back_of_queue\"\ndelay_secs = 60\n";
    let edge = Edge::start(upstream.addr, &redis_url(), &[paused(event)], &keys, config).await;
    let bot = client_from("127.0.11.1");
    let fan = client_from("127.0.12.1");
    let url = edge.url(&format!("/queue/{event}/join"));
    // Four places from one address (the third and fourth already scored).
    let mut bots = Vec::new();
    let mut fan_token = String::new();
    for i in 0..4 {
        let client = format!("bot-{i}");
        let (s, p) = answer(browser(bot.post(&url), &client)).await;
        assert_eq!(s, 200, "{p}");
        bots.push((client, p["queue_token"].as_str().unwrap().to_owned()));
        if i == 1 {
            let (s, p) = answer(browser(fan.post(&url), "fan")).await;
            assert_eq!((s, p["position"].as_u64()), (200, Some(3)), "{p}");
            fan_token = p["queue_token"].as_str().unwrap().to_owned();
        }
    }
    // The fifth: sent to the back, and the four places go back.
    let (s, p) = answer(browser(bot.post(&url), "bot-4")).await;
    assert_eq!((s, p["code"].as_str()), (429, Some("join_deferred")), "{p}");
    let m = edge.metrics().await;
    assert!(m.contains("usher_places_taken_back_total{rule=\"flood\"} 4"), "{m}");
    // Every proxy learns it on its next tick: the bot's places are lost, the
    // fan is first.
    let status = |http: &reqwest::Client, client: &str, token: &str| {
        answer(browser(http.get(edge.url(&format!("/queue/{event}/status"))), client).bearer_auth(token.to_owned()))
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (s, p) = status(&bot, &bots[0].0, &bots[0].1).await;
        if s == 410 {
            assert_eq!(p["code"], "place_lost");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still {s} {p}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (client, token) in &bots {
        assert_eq!(status(&bot, client, token).await.0, 410);
    }
    let (_, p) = status(&fan, "fan", &fan_token).await;
    assert_eq!(p["position"], 1, "{p}");
    edge.stop().await;
    forget_event(event).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_a_spent_puzzle_can_cost_the_place_it_bought() {
    let upstream = Upstream::start().await;
    let event = fresh_event();
    let keys = key_dir("replay-takeback");
    // A replay (25 points) blocks here, and a blocked address loses its places.
    let config = format!("{POW}\n[[defence.rules]]\nname = \"replayer\"\nmin_score = 20.0\naction = \"block\"\n");
    let edge = Edge::start(upstream.addr, &redis_url(), &[paused(event)], &keys, &config).await;
    let bot = client_from("127.0.13.1");
    let url = edge.url(&format!("/queue/{event}/join"));
    let (_, p) = answer(browser(bot.get(edge.url(&format!("/queue/{event}/challenge"))), "bot")).await;
    let c = p["challenge"].as_str().unwrap();
    let proof = format!("{c}:{}", solve(c, 8));
    let (s, place) = answer(browser(bot.post(&url), "bot").header("usher-pow", &proof)).await;
    assert_eq!(s, 200, "{place}");
    // The same solution again: spent, and the replay blocks the address.
    let (s, p) = answer(browser(bot.post(&url), "bot").header("usher-pow", &proof)).await;
    assert_eq!((s, p["code"].as_str()), (403, Some("join_blocked")), "{p}");
    assert!(
        edge.metrics()
            .await
            .contains("usher_places_taken_back_total{rule=\"replayer\"} 1")
    );
    let token = place["queue_token"].as_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (s, _) =
            answer(browser(bot.get(edge.url(&format!("/queue/{event}/status"))), "bot").bearer_auth(&token)).await;
        if s == 410 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the place is still {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    edge.stop().await;
    forget_event(event).await;
}
