//! The waiting page in a real browser (headless Chromium): it joins by
//! itself, shows the fan's place live over EventSource (from the dedicated
//! stream listener, cross-origin with the queue cookie), is marked up for
//! assistive technology, and moves on into the event by itself once the fan
//! is admitted, with the access cookie that opens the protected paths.

mod common;

use std::time::Duration;

use common::browser::Browser;
use common::*;
use edge_proxy::config::QueueMode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_waiting_page_shows_the_place_live_and_moves_on_by_itself() {
    let upstream = Upstream::start().await;
    let event = fresh_event();
    let mut paused = room(event, 60_000, 100);
    paused.mode = QueueMode::Paused;
    let dir = std::env::temp_dir().join(format!("usher-edge-keys-page-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
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
