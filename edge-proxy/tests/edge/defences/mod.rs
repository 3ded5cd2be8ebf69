//! The bot defences against the real edge binary and real Redis: a join
//! needs a solved puzzle, good only for its client and only once (across
//! instances); the risk rules make the puzzle harder, send a client to the
//! back of the queue and block it, while a fan on another network is not
//! touched; a signed-in fan keeps one place; the CAPTCHA step goes through
//! the local test provider. Clients get distinct networks by binding to
//! different loopback addresses (127.0.x.y).

mod places;

use std::time::Duration;

use crate::common::*;
use edge_proxy::config::QueueMode;
use edge_proxy::defence::pow::solve;
use serde_json::Value;

const BROWSER_UA: &str =
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36";

/// A client as a browser would send it: its id, a browser's UA and language.
fn browser(r: reqwest::RequestBuilder, client: &str) -> reqwest::RequestBuilder {
    r.header("usher-client", client)
        .header("user-agent", BROWSER_UA)
        .header("accept-language", "en-GB,en;q=0.9")
}

async fn answer(r: reqwest::RequestBuilder) -> (u16, Value) {
    let r = r.send().await.unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

fn paused(event: i64) -> edge_proxy::config::RoomSettings {
    let mut r = room(event, 60, 100);
    r.mode = QueueMode::Paused;
    r
}

const POW: &str =
    "[defence.pow]\nbase_bits = 8\nmin_bits = 4\nmax_bits = 14\nnetwork_joins_per_minute = 1000\nttl_secs = 60\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_needs_a_solved_puzzle_good_for_its_client_and_only_once() {
    let upstream = Upstream::start().await;
    let event = fresh_event();
    let keys = key_dir("pow");
    let a = Edge::start(upstream.addr, &redis_url(), &[paused(event)], &keys, POW).await;
    let b = Edge::start(upstream.addr, &redis_url(), &[paused(event)], &keys, POW).await;
    let http = client_from("127.0.3.1");
    let join = |edge: &Edge, client: &str, proof: Option<&str>| {
        let mut r = browser(http.post(edge.url(&format!("/queue/{event}/join"))), client);
        if let Some(p) = proof {
            r = r.header("usher-pow", p);
        }
        answer(r)
    };

    // No proof: 428 with a puzzle at the base difficulty.
    let (s, p) = join(&a, "fan-1", None).await;
    assert_eq!((s, p["code"].as_str()), (428, Some("challenge_required")), "{p}");
    assert_eq!(p["bits"], 8);
    let challenge = p["challenge"].as_str().unwrap().to_owned();
    // A counter that does not solve it, and one claiming an easier puzzle.
    let good = solve(&challenge, 8);
    let bad = (0..)
        .find(|c| {
            use sha2::Digest;
            let h = sha2::Sha256::digest(format!("{challenge}:{c}"));
            edge_proxy::defence::pow::leading_zero_bits(&h) < 8
        })
        .unwrap();
    let (s, p) = join(&a, "fan-1", Some(&format!("{challenge}:{bad}"))).await;
    assert_eq!((s, p["code"].as_str()), (428, Some("challenge_unsolved")), "{p}");
    assert!(p["challenge"].is_string(), "a fresh puzzle comes with the refusal");
    let easier = challenge.replacen(".8.", ".0.", 1);
    let (s, p) = join(&a, "fan-1", Some(&format!("{easier}:0"))).await;
    assert_eq!((s, p["code"].as_str()), (428, Some("challenge_forged")));
    // The right solution from another client (a bot sharing solutions).
    let proof = format!("{challenge}:{good}");
    let (s, p) = join(&a, "fan-2", Some(&proof)).await;
    assert_eq!((s, p["code"].as_str()), (428, Some("challenge_forged")));
    // From its own client: a place.
    let (s, first) = join(&a, "fan-1", Some(&proof)).await;
    assert_eq!(s, 200, "{first}");
    assert_eq!(first["status"], "waiting");
    // Spent: the same proof again, here or on the other instance, is refused.
    for edge in [&a, &b] {
        let (s, p) = join(edge, "fan-1", Some(&proof)).await;
        assert_eq!((s, p["code"].as_str()), (428, Some("challenge_spent")), "{p}");
    }
    // A challenge from one instance is good on the other (one key).
    let (_, p) = answer(browser(http.get(a.url(&format!("/queue/{event}/challenge"))), "fan-3")).await;
    assert_eq!(p["bits"], 8, "{p}");
    let c = p["challenge"].as_str().unwrap();
    let (s, second) = join(&b, "fan-3", Some(&format!("{c}:{}", solve(c, 8)))).await;
    assert_eq!(s, 200, "{second}");
    assert!(second["ticket"].as_u64() > first["ticket"].as_u64());

    let m = a.metrics().await;
    for line in [
        // The replay on this instance was a valid solution too.
        "usher_challenges_total{result=\"solved\",bits=\"8\"} 2",
        "usher_challenges_total{result=\"challenge_unsolved\"} 1",
        "usher_challenges_total{result=\"challenge_forged\"} 2",
        "usher_replays_total{kind=\"challenge\"} 1",
    ] {
        assert!(m.contains(line), "{line} not in\n{m}");
    }
    a.stop().await;
    b.stop().await;
    forget_event(event).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rules_make_it_harder_then_send_to_the_back_then_block_and_spare_other_networks() {
    let upstream = Upstream::start().await;
    let event = fresh_event();
    let keys = key_dir("rules");
    // Points come from speed alone here: 10 per join beyond 3 a minute.
    let config = format!(
        "{POW}
[defence.risk]
ip_joins_per_minute = 3
ip_points_per_join = 10.0
network_joins_per_minute = 100000
velocity_cap = 1000.0
headless_points = 0.0
no_language_points = 0.0

[[defence.rules]]
name = \"fast\"
min_score = 10.0
action = \"harder\"
extra_bits = 4

[[defence.rules]]
name = \"flood\"
min_score = 30.0
action = \"back_of_queue\"
delay_secs = 2

[[defence.rules]]
name = \"farm\"
min_score = 60.0
action = \"block\"
"
    );
    let edge = Edge::start(upstream.addr, &redis_url(), &[paused(event)], &keys, &config).await;
    let bot = client_from("127.0.9.9");
    let fan = client_from("127.0.8.8");
    let challenge = |http: &reqwest::Client, client: &str| {
        answer(browser(
            http.get(edge.url(&format!("/queue/{event}/challenge"))),
            client,
        ))
    };
    let join = |http: &reqwest::Client, client: &str, proof: String| {
        answer(browser(http.post(edge.url(&format!("/queue/{event}/join"))), client).header("usher-pow", proof))
    };

    // Three requests a minute are free; the fourth and fifth get 4 more bits.
    let mut bits = Vec::new();
    for _ in 0..5 {
        let (s, p) = challenge(&bot, "bot").await;
        assert_eq!(s, 200, "{p}");
        bits.push(p["bits"].as_u64().unwrap());
    }
    assert_eq!(bits, [8, 8, 8, 12, 12]);
    // The sixth: to the back of the queue, for 2 seconds.
    let (s, p) = challenge(&bot, "bot").await;
    assert_eq!(
        (s, p["code"].as_str(), p["reason"].as_str()),
        (429, Some("join_deferred"), Some("flood")),
        "{p}"
    );
    assert_eq!(p["retry_after_secs"], 2);
    // Meanwhile a fan on another network joins at the base difficulty.
    let (_, p) = challenge(&fan, "fan").await;
    assert_eq!(p["bits"], 8, "{p}");
    let c = p["challenge"].as_str().unwrap().to_owned();
    let (s, fan_place) = join(&fan, "fan", format!("{c}:{}", solve(&c, 8))).await;
    assert_eq!(s, 200, "{fan_place}");
    // After the wait the bot's join goes through, behind the fan.
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let (s, p) = challenge(&bot, "bot").await;
    assert_eq!(s, 200, "{p}");
    let c = p["challenge"].as_str().unwrap().to_owned();
    let bits = p["bits"].as_u64().unwrap() as u8;
    let (s, bot_place) = join(&bot, "bot", format!("{c}:{}", solve(&c, bits))).await;
    assert_eq!(s, 200, "{bot_place}");
    assert!(bot_place["ticket"].as_u64() > fan_place["ticket"].as_u64());
    // One more and it is blocked, with the rule as the reason.
    let (s, p) = challenge(&bot, "bot").await;
    assert_eq!(
        (s, p["code"].as_str(), p["reason"].as_str()),
        (403, Some("join_blocked"), Some("farm")),
        "{p}"
    );
    // The fan is still untouched.
    let (s, p) = challenge(&fan, "fan").await;
    assert_eq!((s, p["bits"].as_u64()), (200, Some(8)), "{p}");

    let m = edge.metrics().await;
    for line in [
        "usher_defence_actions_total{rule=\"fast\",action=\"harder\"} 2",
        "usher_defence_actions_total{rule=\"flood\",action=\"back_of_queue\"} 1",
        "usher_defence_actions_total{rule=\"farm\",action=\"block\"} 1",
    ] {
        assert!(m.contains(line), "{line} not in\n{m}");
    }
    let view = edge.admin_get("/admin/defence").await;
    assert_eq!(view["worst_networks"][0]["network"], "127.0.9", "{view}");
    assert_eq!(view["rules"].as_array().map(Vec::len), Some(3));
    edge.stop().await;
    forget_event(event).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_risky_client_passes_a_captcha_from_the_provider_once() {
    let upstream = Upstream::start().await;
    let event = fresh_event();
    let keys = key_dir("captcha");
    let provider_port = free_port();
    let mut provider = tokio::process::Command::new(env!("CARGO_BIN_EXE_edge-proxy"))
        .args(["captcha-sandbox", "--listen", &format!("127.0.0.1:{provider_port}")])
        .env("USHER_CAPTCHA_SECRET", "test-secret")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let provider_url = format!("http://127.0.0.1:{provider_port}");
    for _ in 0..50 {
        if reqwest::Client::new()
            .post(format!("{provider_url}/token"))
            .send()
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A client without a browser's signals scores 15: a CAPTCHA first.
    let config = format!(
        "[[defence.rules]]
name = \"automated\"
min_score = 10.0
action = \"captcha\"

[defence.captcha]
verify_url = \"{provider_url}/siteverify\"
widget_url = \"{provider_url}/token\"
site_key = \"local-site\"
secret = \"test-secret\"
"
    );
    let edge = Edge::start(upstream.addr, &redis_url(), &[paused(event)], &keys, &config).await;
    let url = edge.url(&format!("/queue/{event}/join"));
    let script = |captcha: Option<&str>| {
        let mut r = edge
            .http
            .post(&url)
            .header("usher-client", "script")
            .header("user-agent", "python-requests/2.32")
            .header("accept-language", "en");
        if let Some(c) = captcha {
            r = r.header("usher-captcha", c);
        }
        answer(r)
    };
    let (s, p) = script(None).await;
    assert_eq!((s, p["code"].as_str()), (428, Some("captcha_required")), "{p}");
    assert_eq!(p["site_key"], "local-site");
    // A browser is not asked.
    let (s, p2) = answer(browser(edge.http.post(&url), "browser")).await;
    assert_eq!(s, 200, "{p2}");
    let widget: Value = edge
        .http
        .post(p["widget_url"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = widget["token"].as_str().unwrap().to_owned();
    let (s, p) = script(Some(&token)).await;
    assert_eq!(s, 200, "{p}");
    // A token is good once.
    let (s, p) = script(Some(&token)).await;
    assert_eq!((s, p["code"].as_str()), (428, Some("captcha_failed")), "{p}");
    // The provider down: the risky client is told to come back, not let in.
    provider.kill().await.unwrap();
    let (s, p) = script(Some("pass-anything")).await;
    assert_eq!((s, p["code"].as_str()), (503, Some("captcha_unavailable")), "{p}");
    let m = edge.metrics().await;
    for line in [
        "usher_captcha_total{result=\"passed\"} 1",
        "usher_captcha_total{result=\"failed\"} 1",
        "usher_captcha_total{result=\"unavailable\"} 1",
        "usher_defence_actions_total{rule=\"automated\",action=\"captcha\"} 3",
    ] {
        assert!(m.contains(line), "{line} not in\n{m}");
    }
    edge.stop().await;
    forget_event(event).await;
}
