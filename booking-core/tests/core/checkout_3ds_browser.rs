//! 3-D Secure in the fan web app, in headless Chromium (Debian's
//! `chromium` and `chromium-driver`), against the real core and the real
//! payment sandbox: a fan holds two seats, pays with a card that asks for
//! 3-D Secure, is sent to the sandbox's challenge page, presses Complete
//! and is brought back to the order's page, which shows the tickets once
//! the order is confirmed. A second fan presses Fail instead: the order's
//! page says nothing was charged, and the seats are still held for them.

use std::time::Duration;

use crate::common::browser::{Browser, DESKTOP};
use crate::common::*;
use booking_core::ids::EventId;
use serde_json::json;
use usher_shared::config::HttpUrl;

const HELD: &str = "const h = document.getElementById('hold-title'); \
    return h && h.textContent === 'Your seats are held' && !h.closest('[hidden]')";

fn shot(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../docs/screenshots/{name}.png"))
}

/// Signs `fan` in, opens the event's seat page, holds the best two seats
/// of tier 1, and pays with `card`: the browser is then on its way to the
/// bank's page.
async fn hold_and_pay(b: &Browser, base: &str, event: EventId, fan: &str, card: &str) {
    let seats = format!("/events/{}/seats", event.0);
    b.goto(&format!("{base}/sign-in?next={seats}")).await;
    b.wait_for("return document.getElementById('fan-id')", Duration::from_secs(10))
        .await;
    b.type_into("#fan-id", fan).await;
    b.click("form button[type=submit]", None).await;
    b.wait_for(
        "return document.documentElement.dataset.seatmap === 'ready' && document.querySelector('form.best')",
        Duration::from_secs(20),
    )
    .await;
    b.eval("const f = document.querySelector('form.best'); f.tier.value = '1'; f.quantity.value = '2';")
        .await;
    b.click("form.best button[type=submit]", None).await;
    b.wait_for(HELD, Duration::from_secs(10)).await;
    b.type_into("input[name=card]", card).await;
    b.click("form.pay button[type=submit]", None).await;
    b.wait_for(
        "return location.pathname.startsWith('/sandbox/challenge/') && document.getElementById('complete')",
        Duration::from_secs(15),
    )
    .await;
}

/// The database's clock now (orders' times are the database's).
async fn db_now(app: &TestApp) -> chrono::DateTime<chrono::Utc> {
    sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_completes_3d_secure_on_the_banks_page_and_another_fails_it_in_the_browser() {
    let app = TestApp::start_with_config(
        Options {
            sandbox: true,
            reconcile: true,
            reconcile_after_secs: 5,
            ..Options::default()
        },
        // The bank's page sends fans back to this core's own pages.
        |c| c.checkout.return_base_url = HttpUrl::parse(format!("http://{}", c.http.listen)).unwrap(),
    )
    .await;
    let base = app.direct.clone();
    let v = venue(&app.pool, &small_chart("web3ds", &["A"], 2, 6)).await;
    let e = event(&app.pool, "web3ds", "web3ds", rules(4)).await;
    assert!(!seat_ids(&app.pool, v).await.is_empty());

    // Fan A: 3-D Secure, completed.
    let a = Browser::start_sized(DESKTOP).await;
    hold_and_pay(&a, &base, e, "fan-a", "4000 0027 6000 3184").await;
    let page = a.eval("return document.body.innerText").await;
    assert!(page.as_str().unwrap().contains("60.00 USD"), "{page}");
    a.screenshot(&shot("desktop-3ds-challenge")).await;
    let answered_at = db_now(&app).await;
    a.click("#complete", None).await;
    a.wait_for(
        "return location.pathname.startsWith('/me/orders/') && document.getElementById('order-title')?.textContent === \"You're going!\" \
         && [...document.querySelectorAll('img.qr')].filter(i => i.dataset.loaded === 'true' && i.complete && i.naturalWidth > 0).length === 2",
        Duration::from_secs(20),
    )
    .await;
    a.screenshot(&shot("desktop-3ds-confirmed")).await;
    let order_id = a
        .eval("return location.pathname.split('/').pop()")
        .await
        .as_str()
        .unwrap()
        .to_owned();
    let (state, confirmed_at, tickets): (String, Option<chrono::DateTime<chrono::Utc>>, i64) = sqlx::query_as(
        "SELECT state, confirmed_at, (SELECT count(*) FROM tickets t WHERE t.order_id = o.id) FROM orders o WHERE id = $1::uuid",
    )
    .bind(&order_id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!((state.as_str(), tickets), ("confirmed", 2));
    let confirm_ms = (confirmed_at.unwrap() - answered_at).num_milliseconds();
    eprintln!("3-D Secure in the browser: Complete pressed to order confirmed in {confirm_ms} ms");
    assert!(confirm_ms > 0, "confirmed after the answer");

    // Fan B: 3-D Secure, failed.
    let b = Browser::start_sized(DESKTOP).await;
    hold_and_pay(&b, &base, e, "fan-b", "4000 0027 6000 3184").await;
    b.click("#fail", None).await;
    b.wait_for(
        "return location.pathname.startsWith('/me/orders/') && document.getElementById('order-title')?.textContent === 'Payment not completed' \
         && document.querySelector('.notice.error')?.textContent.includes('did not confirm')",
        Duration::from_secs(20),
    )
    .await;
    b.screenshot(&shot("desktop-3ds-failed")).await;
    let failed_id = b
        .eval("return location.pathname.split('/').pop()")
        .await
        .as_str()
        .unwrap()
        .to_owned();
    let (state, code, hold): (String, Option<String>, String) = sqlx::query_as(
        "SELECT o.state, o.failure_code, h.state FROM orders o JOIN holds h ON h.id = o.hold_id WHERE o.id = $1::uuid",
    )
    .bind(&failed_id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        (state.as_str(), code.as_deref(), hold.as_str()),
        ("payment_failed", Some("authentication_failed"), "active")
    );
    // Back to the seats: still held for B, who may pay another way.
    b.click("a.button", Some("Back to the seats")).await;
    b.wait_for(HELD, Duration::from_secs(20)).await;
    let stats = app.sandbox.as_ref().unwrap().stats().await;
    assert_eq!(
        (stats["succeeded"].clone(), stats["refunds"].clone()),
        (json!(1), json!(0)),
        "only A was charged: {stats}"
    );

    a.quit().await;
    b.quit().await;
    app.finish().await;
}
