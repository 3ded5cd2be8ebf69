//! The fan web app end to end, in headless Chromium, through the whole stack
//! the simulator starts (edge-proxy with its waiting room in front of
//! booking-core, the payment sandbox, a private Redis, a scratch database):
//! a fan searches, waits in line, is admitted straight into the seat map,
//! picks two adjacent seats by keyboard, is declined, pays with another card
//! and sees the QR codes; a second fan on a phone watching the same section
//! sees those seats go without reloading. The pages' screenshots are written
//! to docs/screenshots/ as the tests pass.

use std::time::{Duration, Instant};

use crate::common::*;
use loadtests::browser::{Browser, DESKTOP, PHONE};
use serde_json::json;
use usher_shared::admin::QueueMode;

const ARROW_RIGHT: &str = "\u{E014}";
const ENTER: &str = "\u{E007}";

/// The checkbox of a seat in the map's list, opening its section if needed.
fn seat_box(id: i64) -> String {
    format!(
        "const list = document.querySelector('details.seat-list'); list.open = true; \
         const first = list.querySelector('details'); if (!first.open) first.open = true; \
         const b = document.getElementById('seat-{id}'); return b ? {{disabled: b.disabled, checked: b.checked}} : null"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_waits_picks_two_seats_is_declined_then_pays_and_another_fan_sees_them_go() {
    let stack = start().await;
    let base = stack.edge_base.clone();
    let event = stack.event;
    let http = reqwest::Client::new();
    let seatmap = get_json(&format!("{base}/v1/venues/{}/seatmap", stack.venue), None).await;
    let first_row = &seatmap["sections"][0]["rows"][0]["seats"];
    let (seat1, seat2) = (first_row[0][0].as_i64().unwrap(), first_row[1][0].as_i64().unwrap());

    // Doors shut: two fans already in line ahead.
    set_mode(&stack, QueueMode::Paused).await;
    for _ in 0..2 {
        let r = http.post(format!("{base}/queue/{event}/join")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }

    // Fan A, on a desktop: signs in, searches, opens the event.
    let a = Browser::start_sized(DESKTOP).await;
    sign_in(&a, &base, "fan-a", "/").await;
    a.wait_for(
        "return document.querySelectorAll('.cards li').length",
        Duration::from_secs(10),
    )
    .await;
    a.screenshot(&shot("desktop-home")).await;
    let problems = accessibility_problems(&a).await;
    assert!(problems.is_empty(), "home page: {problems:?}");
    a.type_into("#q", "flash sale").await;
    a.click("form[role=search] button[type=submit]", None).await;
    a.wait_for(
        "return location.search.includes('q=flash') && document.querySelectorAll('.cards li').length === 1",
        Duration::from_secs(10),
    )
    .await;
    a.click(".cards a.title", Some("Flash sale")).await;
    a.wait_for(
        &format!("return location.pathname === '/events/{event}' && document.querySelector('a.button')"),
        Duration::from_secs(10),
    )
    .await;
    a.screenshot(&shot("desktop-event")).await;
    let problems = accessibility_problems(&a).await;
    assert!(problems.is_empty(), "event page: {problems:?}");

    // Find seats: the edge sends A to the waiting room, behind the two.
    a.click("a.button", Some("Find seats")).await;
    let place = a
        .wait_for(
            "const p = document.getElementById('position'); return p && /^[0-9]/.test(p.textContent) ? p.textContent : null",
            Duration::from_secs(15),
        )
        .await;
    assert_eq!(place, json!("3"), "two fans joined first");
    assert!(a.url().await.contains(&format!("/queue/{event}")));
    a.resize(PHONE).await;
    a.screenshot(&shot("phone-waiting-room")).await;
    a.resize(DESKTOP).await;

    // The operator opens the doors: A moves on into the seat map by itself.
    set_mode(&stack, QueueMode::Fifo).await;
    a.wait_for(
        &format!("return location.pathname === '/events/{event}/seats' && document.documentElement.dataset.seatmap === 'ready'"),
        Duration::from_secs(20),
    )
    .await;

    // Fan B, on a phone, watches the same section.
    let b = Browser::start_sized(PHONE).await;
    sign_in(&b, &base, "fan-b", "/").await;
    b.goto(&format!("{base}/events/{event}/seats")).await;
    b.wait_for(
        &format!("return location.pathname === '/events/{event}/seats' && document.documentElement.dataset.seatmap === 'ready'"),
        Duration::from_secs(20),
    )
    .await;
    let before = b.wait_for(&seat_box(seat1), Duration::from_secs(5)).await;
    assert_eq!(before["disabled"], json!(false), "B sees seat 1 free: {before}");

    // A picks two adjacent seats with the keyboard: the first seat of the
    // first section is focused, Enter, one to the right, Enter.
    a.eval("document.querySelector('.map-wrap canvas').focus()").await;
    a.press(&[ENTER, ARROW_RIGHT, ENTER]).await;
    let picked = a
        .wait_for(
            "const items = [...document.querySelectorAll('.selection li')].map(li => li.firstChild.firstChild.textContent); return items.length === 2 ? items : null",
            Duration::from_secs(5),
        )
        .await;
    assert_eq!(
        picked,
        json!(["Section 1, row 1, seat 1", "Section 1, row 1, seat 2"]),
        "two adjacent seats"
    );
    a.screenshot(&shot("desktop-seat-map")).await;
    let problems = accessibility_problems(&a).await;
    assert!(problems.is_empty(), "seat page: {problems:?}");
    a.click("#hold-button", None).await;
    a.wait_for(
        "const h = document.getElementById('hold-title'); return h && h.textContent === 'Your seats are held'",
        Duration::from_secs(10),
    )
    .await;

    // B sees both go, without reloading.
    let held_at = Instant::now();
    for seat in [seat1, seat2] {
        b.wait_for(
            &format!("const s = (() => {{ {} }})(); return s && s.disabled", seat_box(seat)),
            Duration::from_secs(10),
        )
        .await;
    }
    let seen_after = held_at.elapsed();
    b.eval("document.querySelector('details.seat-list').open = false; window.scrollTo(0, 0)")
        .await;
    b.screenshot(&shot("phone-seat-map")).await;

    // A declined card: the seats stay held and A may try again.
    a.type_into("input[name=card]", "4000 0000 0000 0002").await;
    a.click("form.pay button[type=submit]", None).await;
    a.wait_for(
        "const n = document.querySelector('form.pay .notice.error'); return n && n.textContent.includes('declined')",
        Duration::from_secs(15),
    )
    .await;
    assert_eq!(
        a.eval("return document.getElementById('hold-title').textContent").await,
        json!("Your seats are held")
    );
    a.screenshot(&shot("desktop-card-declined")).await;
    let problems = accessibility_problems(&a).await;
    assert!(problems.is_empty(), "checkout with a declined card: {problems:?}");

    // The right card, clicked twice in a hurry: one order, one charge.
    a.type_into("input[name=card]", "4242 4242 4242 4242").await;
    a.eval("const b = document.querySelector('form.pay button[type=submit]'); b.click(); b.click();")
        .await;
    a.wait_for(
        "return document.querySelectorAll('img.qr[data-loaded=true]').length === 2 && [...document.querySelectorAll('img.qr')].every(i => i.complete && i.naturalWidth > 0)",
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(
        a.eval("return document.getElementById('hold-title').textContent").await,
        json!("You're going!")
    );
    a.screenshot(&shot("desktop-confirmed")).await;

    // What the fan sees is what the core has: one failed order, one
    // confirmed with two tickets on those seats.
    let token = fan_token(&base, "fan-a").await;
    let orders = get_json(&format!("{base}/v1/me/orders"), Some(&token)).await;
    let mut states: Vec<&str> = orders["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["state"].as_str().unwrap())
        .collect();
    states.sort_unstable();
    assert_eq!(states, ["confirmed", "payment_failed"], "{orders}");
    let tickets = get_json(&format!("{base}/v1/me/tickets"), Some(&token)).await;
    let mut seats: Vec<i64> = tickets
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["seat_id"].as_i64().unwrap())
        .collect();
    seats.sort_unstable();
    assert_eq!(seats, [seat1, seat2]);

    // My tickets, on both screens.
    a.goto(&format!("{base}/me/tickets")).await;
    a.wait_for(
        "return [...document.querySelectorAll('img.qr')].filter(i => i.complete && i.naturalWidth > 0).length === 2",
        Duration::from_secs(15),
    )
    .await;
    a.screenshot(&shot("desktop-my-tickets")).await;
    let problems = accessibility_problems(&a).await;
    assert!(problems.is_empty(), "my tickets: {problems:?}");
    a.resize(PHONE).await;
    a.screenshot(&shot("phone-my-tickets")).await;

    eprintln!("a second fan saw both seats go {seen_after:?} after the hold was answered");
    a.quit().await;
    b.quit().await;
    stack.stop().await.unwrap();
}

/// Admitted and on the seat page, signed in as `fan`.
async fn on_the_seat_page(browser: &Browser, base: &str, event: i64, fan: &str) {
    sign_in(browser, base, fan, "/").await;
    browser.goto(&format!("{base}/events/{event}/seats")).await;
    browser
        .wait_for(
            &format!("return location.pathname === '/events/{event}/seats' && document.documentElement.dataset.seatmap === 'ready'"),
            Duration::from_secs(20),
        )
        .await;
}

const HELD_SEATS: &str = "const h = document.getElementById('hold-title'); \
    return h && h.textContent === 'Your seats are held' && !h.closest('[hidden]') \
      ? [...h.parentElement.querySelectorAll('.selection li')].map(li => li.firstChild.textContent) : null";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn best_available_expiry_release_transfer_and_resale_in_the_browser() {
    let stack = start().await;
    let base = stack.edge_base.clone();
    let event = stack.event;

    // Best available in the second tier (the last section): adjacent seats.
    let c = Browser::start_sized(DESKTOP).await;
    on_the_seat_page(&c, &base, event, "fan-c").await;
    c.eval("const f = document.querySelector('form.best'); f.tier.value = '2'; f.quantity.value = '2';")
        .await;
    c.click("form.best button[type=submit]", None).await;
    let held = c.wait_for(HELD_SEATS, Duration::from_secs(10)).await;
    // "S3, row 2, seat 1": two seats side by side in the second tier's section.
    let parts: Vec<Vec<String>> = held
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().split(", ").map(str::to_owned).collect())
        .collect();
    assert_eq!(parts.len(), 2, "{held}");
    assert_eq!(parts[0][..2], parts[1][..2], "one row: {held}");
    assert_eq!(parts[0][0], "S3", "the second tier's section: {held}");
    let number = |p: &Vec<String>| p[2].trim_start_matches("seat ").parse::<i32>().unwrap();
    assert_eq!((number(&parts[1]) - number(&parts[0])).abs(), 1, "side by side: {held}");

    // Released: the hold is gone and the seats are back for everyone.
    c.click("button", Some("Release seats")).await;
    c.wait_for(
        "const n = document.querySelector('.panel .notice'); return n && n.textContent.includes('released')",
        Duration::from_secs(10),
    )
    .await;
    let live_holds: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM holds WHERE event_id = $1 AND state = 'active' AND expires_at > now()",
    )
    .bind(event)
    .fetch_one(&stack.core.pool)
    .await
    .unwrap();
    assert_eq!(live_holds, 0);

    // A hold that runs out says so, and the seats go back.
    sqlx::query("UPDATE events SET hold_ttl_secs = 2, hold_jitter_secs = 0 WHERE id = $1")
        .bind(event)
        .execute(&stack.core.pool)
        .await
        .unwrap();
    c.click("form.best button[type=submit]", None).await;
    c.wait_for(HELD_SEATS, Duration::from_secs(10)).await;
    c.wait_for(
        "const n = document.querySelector('.panel .notice.error'); return n && n.textContent.includes('hold ran out')",
        Duration::from_secs(10),
    )
    .await;
    c.screenshot(&shot("desktop-hold-ran-out")).await;
    sqlx::query("UPDATE events SET hold_ttl_secs = 300 WHERE id = $1")
        .bind(event)
        .execute(&stack.core.pool)
        .await
        .unwrap();

    // Bought, then given to fan D from My tickets.
    c.eval("const f = document.querySelector('form.best'); f.tier.value = '1'; f.quantity.value = '1';")
        .await;
    c.click("form.best button[type=submit]", None).await;
    c.wait_for(HELD_SEATS, Duration::from_secs(10)).await;
    // A slow card, and the page reloaded while it is paying: the reloaded
    // page sends the same payment again, which makes no second order.
    c.type_into("input[name=card]", "4000 0000 0000 0077").await;
    c.click("form.pay button[type=submit]", None).await;
    c.wait_for(
        "return sessionStorage.length > 0 && document.querySelector('form.pay button').disabled",
        Duration::from_secs(5),
    )
    .await;
    c.eval("location.reload()").await;
    c.wait_for(
        "return document.querySelectorAll('img.qr[data-loaded=true]').length === 1",
        Duration::from_secs(20),
    )
    .await;
    let orders = get_json(&format!("{base}/v1/me/orders"), Some(&fan_token(&base, "fan-c").await)).await;
    assert_eq!(orders["orders"].as_array().unwrap().len(), 1, "one order: {orders}");
    c.goto(&format!("{base}/me/tickets")).await;
    c.wait_for(
        "return document.querySelector('.ticket input[name=to]')",
        Duration::from_secs(10),
    )
    .await;
    c.type_into(".ticket input[name=to]", "fan-d").await;
    c.click(".ticket button", Some("Transfer")).await;
    c.accept_dialog().await;
    c.wait_for(
        "const n = document.querySelector('.ticket .notice.ok'); return n && n.textContent.includes('Transferred to fan-d')",
        Duration::from_secs(10),
    )
    .await;

    // Fan D has it (with a code that works), and lists it: over the cap is
    // refused with the reason, at face value it is listed.
    let d = Browser::start_sized(PHONE).await;
    sign_in(&d, &base, "fan-d", "/me/tickets").await;
    d.wait_for(
        "return [...document.querySelectorAll('img.qr')].filter(i => i.complete && i.naturalWidth > 0).length === 1",
        Duration::from_secs(15),
    )
    .await;
    let face = d
        .eval("return document.querySelector('.ticket input[name=price]').labels[0].textContent")
        .await;
    assert!(face.as_str().unwrap().contains("$90.00"), "{face}");
    d.type_into(".ticket input[name=price]", "500").await;
    d.click(".ticket button", Some("List")).await;
    d.wait_for(
        "const n = document.querySelector('.ticket .notice.error'); return n && n.textContent.length > 0",
        Duration::from_secs(10),
    )
    .await;
    d.type_into(".ticket input[name=price]", "90").await;
    d.click(".ticket button", Some("List")).await;
    d.wait_for(
        "const n = document.querySelector('.ticket .notice.ok'); return n && n.textContent.includes('Listed for $90.00')",
        Duration::from_secs(10),
    )
    .await;
    d.screenshot(&shot("phone-ticket-listed")).await;

    // Fan E buys it on the event's resale page and has it.
    let e = Browser::start_sized(PHONE).await;
    sign_in(&e, &base, "fan-e", &format!("/events/{event}/resale")).await;
    e.wait_for(
        "return document.querySelectorAll('.cards li').length === 1",
        Duration::from_secs(10),
    )
    .await;
    e.screenshot(&shot("phone-resale")).await;
    e.click(".cards button", Some("Buy for $90.00")).await;
    e.type_into("input[name=card]", "4242 4242 4242 4242").await;
    e.click("form.pay button[type=submit]", None).await;
    e.wait_for(
        "return [...document.querySelectorAll('.card .notice.ok')].some(n => n.textContent.includes('Bought'))",
        Duration::from_secs(20),
    )
    .await;
    e.goto(&format!("{base}/me/tickets")).await;
    e.wait_for(
        "return [...document.querySelectorAll('img.qr')].filter(i => i.complete && i.naturalWidth > 0).length === 1",
        Duration::from_secs(15),
    )
    .await;
    // D's copy is gone from D's valid tickets.
    d.goto(&format!("{base}/me/tickets")).await;
    d.wait_for(
        "return document.querySelector('main h1').textContent === 'My tickets' && !document.querySelector('.loading') \
         && document.querySelectorAll('img.qr').length === 0",
        Duration::from_secs(10),
    )
    .await;

    for b in [c, d, e] {
        b.quit().await;
    }
    stack.stop().await.unwrap();
}
