//! The waiting page in a real browser (headless Chromium): it joins by
//! itself, shows the fan's place live over EventSource (from the dedicated
//! stream listener, cross-origin with the queue cookie), is marked up for
//! assistive technology, and moves on into the event by itself once the fan
//! is admitted, with the access cookie that opens the protected paths.

use std::time::Duration;

use crate::common::browser::Browser;
use crate::common::*;
use edge_proxy::config::QueueMode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_waiting_page_shows_the_place_live_and_moves_on_by_itself() {
    let upstream = Upstream::start().await;
    let event = fresh_event();
    let mut paused = room(event, 60_000, 100);
    paused.mode = QueueMode::Paused;
    let dir = key_dir("page");
    let streams = free_port();
    let listen = format!("streams = \"127.0.0.1:{streams}\"\nstream_origins = [\"http://127.0.0.1:{{port}}\"]");
    let edge = Edge::start_with_listen(upstream.addr, &redis_url(), &[paused], &dir, "", &listen).await;
    let base = edge.url("");
    for _ in 0..3 {
        join(&edge.http, &base, event).await;
    }

    let browser = Browser::start().await;
    browser.goto(&edge.url(&format!("/queue/{event}"))).await;
    let place = browser
        .wait_for(
            "const p = document.getElementById('position').textContent; return /^[0-9]/.test(p) ? p : null",
            Duration::from_secs(15),
        )
        .await;
    assert_eq!(place, json!("4"), "three app fans joined first");
    assert_eq!(
        browser
            .eval("return document.getElementById('ahead').textContent")
            .await,
        json!("3")
    );
    assert_eq!(
        browser
            .eval("return document.getElementById('length').textContent")
            .await,
        json!("4")
    );
    // Marked up for assistive technology: language, a live region around
    // the figures, a labelled progress bar.
    assert_eq!(browser.eval("return document.documentElement.lang").await, json!("en"));
    assert_eq!(
        browser
            .eval("return document.querySelector('[aria-live]').contains(document.getElementById('position'))")
            .await,
        json!(true)
    );
    assert_eq!(
        browser
            .eval("return document.querySelector('label[for=bar]').textContent")
            .await,
        json!("Progress")
    );
    // (The browser's own favicon request passes through, as any unprotected
    // path does.)
    assert_eq!(
        upstream.total_hits() - upstream.hits("/favicon.ico"),
        0,
        "waiting fans never reach the core"
    );

    // The operator opens the doors: the page moves on by itself.
    let mut open = room(event, 60_000, 100);
    open.mode = QueueMode::Fifo;
    let r = edge
        .http
        .put(edge.admin_url(&format!("/admin/events/{event}")))
        .bearer_auth(ADMIN_TOKEN)
        .json(&open)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    browser
        .wait_for(
            &format!("return location.pathname === '/v1/events/{event}'"),
            Duration::from_secs(15),
        )
        .await;
    assert_eq!(upstream.hits(&format!("/v1/events/{event}")), 1);

    // The browser now holds the event's access cookie: a protected path opens.
    let protected = format!("/v1/events/{event}/seat-changes");
    browser.goto(&edge.url(&protected)).await;
    browser
        .wait_for(
            "return document.body.textContent.includes('ok')",
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(upstream.hits(&protected), 1);

    browser.quit().await;
    edge.stop().await;
    forget_event(event).await;
}

/// The page with the defences on: it solves the proof-of-work puzzle in the
/// browser (at the default difficulty), then, because headless Chromium says
/// so in its user agent, is asked for a CAPTCHA, shows the local provider's
/// button, and joins once it is clicked. The solve time is printed (the
/// figure for the note comes from `usher-load defences`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_waiting_page_solves_the_puzzle_and_passes_a_captcha() {
    let upstream = Upstream::start().await;
    let event = fresh_event();
    let mut paused = room(event, 60_000, 100);
    paused.mode = QueueMode::Paused;
    let dir = key_dir("page-pow");
    let provider_port = free_port();
    let _provider = tokio::process::Command::new(env!("CARGO_BIN_EXE_edge-proxy"))
        .args(["captcha-sandbox", "--listen", &format!("127.0.0.1:{provider_port}")])
        .env("USHER_CAPTCHA_SECRET", "page-secret")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let provider = format!("http://127.0.0.1:{provider_port}");
    let config = format!(
        "[defence.pow]
base_bits = 16
min_bits = 12
max_bits = 22

[[defence.rules]]
name = \"headless\"
min_score = 10.0
action = \"captcha\"

[defence.captcha]
verify_url = \"{provider}/siteverify\"
widget_url = \"{provider}/token\"
site_key = \"local\"
secret = \"page-secret\"
"
    );
    let edge = Edge::start(upstream.addr, &redis_url(), &[paused], &dir, &config).await;
    let browser = Browser::start().await;
    browser.goto(&edge.url(&format!("/queue/{event}"))).await;
    browser
        .wait_for(
            "return !document.getElementById('captcha').hidden",
            Duration::from_secs(30),
        )
        .await;
    let pow = browser.eval("return window.usherPow").await;
    assert_eq!(pow["bits"], 16, "{pow}");
    println!("solved 16 bits in {} ms ({} hashes)", pow["ms"], pow["hashes"]);
    browser.click("#captcha-button", None).await;
    let place = browser
        .wait_for(
            "const p = document.getElementById('position').textContent; return /^[0-9]/.test(p) ? p : null",
            Duration::from_secs(15),
        )
        .await;
    assert_eq!(place, json!("1"));
    let metrics = edge.metrics().await;
    for line in [
        "usher_challenges_total{result=\"solved\",bits=\"16\"} 2",
        "usher_captcha_total{result=\"passed\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} not in\n{metrics}");
    }
    browser.quit().await;
    edge.stop().await;
    forget_event(event).await;
}

/// The page served over HTTPS opens its position stream over HTTPS too:
/// the dedicated stream listener speaks TLS with the edge's certificate
/// (`listen.streams_tls`), so the browser, which refuses an http:// stream
/// from an https:// page, shows the place live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_served_over_https_streams_the_place_over_https() {
    let upstream = Upstream::start().await;
    let event = fresh_event();
    let mut paused = room(event, 60_000, 100);
    paused.mode = QueueMode::Paused;
    let dir = key_dir("page-tls");
    let (cert, key) = self_signed_certificate(&dir);
    let (tls_port, streams) = (free_port(), free_port());
    let listen = format!(
        "tls = {{ addr = \"127.0.0.1:{tls_port}\", cert_file = \"{}\", key_file = \"{}\" }}\n\
         streams = \"127.0.0.1:{streams}\"\nstreams_tls = true\n\
         stream_origins = [\"https://127.0.0.1:{tls_port}\"]",
        cert.display(),
        key.display()
    );
    let edge = Edge::start_with_listen(upstream.addr, &redis_url(), &[paused], &dir, "", &listen).await;
    for _ in 0..2 {
        join(&edge.http, &edge.url(""), event).await;
    }
    // Join answers name the stream with its scheme.
    let r: serde_json::Value = edge
        .http
        .post(edge.url(&format!("/queue/{event}/join")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        r["stream_url"],
        json!(format!("https://127.0.0.1:{streams}/queue/{event}/events"))
    );
    // Plain HTTP on the TLS stream listener gets nothing.
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{streams}/queue/{event}/events"))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());

    let browser = Browser::start().await;
    browser
        .goto(&format!("https://127.0.0.1:{tls_port}/queue/{event}"))
        .await;
    let place = browser
        .wait_for(
            "const p = document.getElementById('position').textContent; return /^[0-9]/.test(p) ? p : null",
            Duration::from_secs(15),
        )
        .await;
    assert_eq!(place, json!("4"), "three fans joined first");
    // The browser holds the stream open over TLS (the edge counts it), and
    // the page is not stuck reconnecting.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !edge.metrics().await.contains("\nusher_sse_connections 1") {
        assert!(
            std::time::Instant::now() < deadline,
            "the page never opened the TLS stream"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let state = browser
        .eval("return document.getElementById('state').textContent")
        .await;
    assert!(!state.as_str().unwrap_or("").contains("Reconnecting"), "{state}");

    browser.quit().await;
    edge.stop().await;
    forget_event(event).await;
}
