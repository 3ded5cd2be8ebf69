//! The venue portal end to end, in headless Chromium through the whole
//! stack: an operator signs in, checks and imports a small venue's chart
//! (a bad file lists its problems by line), creates an event there, opens
//! its waiting room at a rate the edge's metrics then show, and watches the
//! live dashboard; an operator of another organisation sees none of it.

use std::time::Duration;

use crate::common::*;
use loadtests::browser::{Browser, DESKTOP};
use serde_json::json;

async fn operator_signs_in(b: &Browser, base: &str, email: &str) {
    b.goto(&format!("{base}/portal")).await;
    b.wait_for(
        "return location.pathname === '/portal/sign-in' && document.getElementById('op-email')",
        Duration::from_secs(10),
    )
    .await;
    b.type_into("#op-email", email).await;
    b.type_into("#op-password", "usher-demo").await;
    b.click("form button[type=submit]", None).await;
    b.wait_for(
        "return location.pathname === '/portal' && document.querySelector('main h1')?.textContent === 'Events'",
        Duration::from_secs(10),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_imports_a_venue_creates_an_event_and_sets_the_waiting_room_live() {
    let stack = start().await;
    let base = stack.edge_base.clone();
    let op = Browser::start_sized(DESKTOP).await;
    operator_signs_in(&op, &base, "ops@meridian.example").await;
    let seeded = op
        .eval("return document.querySelectorAll('main tbody tr').length")
        .await;
    assert!(
        seeded.as_u64().unwrap() >= 10,
        "the organisation's seeded events: {seeded}"
    );

    // A bad chart: its problems, by line.
    let bad = std::env::temp_dir().join(format!("usher-bad-chart-{}.csv", std::process::id()));
    std::fs::write(
        &bad,
        "section_code,section_name,row,seat,x,y,tier,accessible,obstructed\nS,Stalls,A,1,0,4,1,false,false\nS,Stalls,A,1,zero,4,1,false,false\n",
    )
    .unwrap();
    op.goto(&format!("{base}/portal/venues/import")).await;
    op.wait_for("return document.getElementById('chart-file')", Duration::from_secs(10))
        .await;
    for (field, value) in [
        ("slug", "portal-test-hall"),
        ("name", "Portal Test Hall"),
        ("city", "Leeds"),
        ("country", "GB"),
        ("timezone", "Europe/London"),
        ("focal_x", "0"),
        ("focal_y", "0"),
    ] {
        op.type_into(&format!("#v-{field}"), value).await;
    }
    op.upload("#chart-file", &bad).await;
    op.click("form button[name=preview]", None).await;
    let problems = op
        .wait_for(
            "const l = document.querySelector('ul.problems'); return l ? l.textContent : null",
            Duration::from_secs(10),
        )
        .await;
    assert!(problems.as_str().unwrap().contains("line 3"), "{problems}");
    op.screenshot(&shot("desktop-portal-chart-problems")).await;
    std::fs::remove_file(&bad).ok();

    // The example chart: checked with a preview, then imported.
    op.upload("#chart-file", &root().join("config/examples/venue-chart.csv"))
        .await;
    op.click("form button[name=preview]", None).await;
    op.wait_for(
        "return document.querySelector('section[aria-label=\"Chart preview\"] canvas') && document.querySelector('.notice.ok')",
        Duration::from_secs(10),
    )
    .await;
    op.eval("document.querySelector('section[aria-label=\"Chart preview\"]').scrollIntoView()")
        .await;
    op.screenshot(&shot("desktop-portal-chart-preview")).await;
    let problems = accessibility_problems(&op).await;
    assert!(problems.is_empty(), "chart import: {problems:?}");
    op.click("form button[name=import]", None).await;
    op.wait_for(
        "const n = document.querySelector('.notice.ok'); return n && n.textContent.startsWith('Imported: Portal Test Hall')",
        Duration::from_secs(10),
    )
    .await;

    // An event there.
    op.click("a", Some("Create an event there")).await;
    op.wait_for(
        "return location.pathname === '/portal/events/new' && document.getElementById('e-title')",
        Duration::from_secs(10),
    )
    .await;
    op.type_into("#e-title", "Portal Premiere").await;
    op.type_into("#e-artist", "The Operators").await;
    let now = chrono::Utc::now();
    op.eval(&format!(
        "const f = document.querySelector('main form'); \
         f.starts_at.value = {}; f.on_sale_at.value = {}; \
         document.querySelector('button.secondary').click(); document.querySelector('button.secondary').click(); \
         const rows = [...document.querySelectorAll('main form tbody tr')]; \
         [['1','Front','60'],['2','Middle','45'],['3','Back','30']].forEach(([t, n, p], i) => {{ \
           rows[i].querySelector('[name=tier]').value = t; rows[i].querySelector('[name=tier_name]').value = n; \
           rows[i].querySelector('[name=tier_price]').value = p; }}); return rows.length",
        json!((now + chrono::Duration::days(20)).format("%Y-%m-%dT%H:%M").to_string()),
        json!((now - chrono::Duration::hours(1)).format("%Y-%m-%dT%H:%M").to_string()),
    ))
    .await;
    op.click("main form button[type=submit]", Some("Create event")).await;
    let event = op
        .wait_for(
            "const m = location.pathname.match(/^\\/portal\\/events\\/(\\d+)$/); return m && document.getElementById('r-admit_per_minute') ? Number(m[1]) : null",
            Duration::from_secs(10),
        )
        .await
        .as_i64()
        .unwrap();
    op.screenshot(&shot("desktop-portal-event")).await;
    let problems = accessibility_problems(&op).await;
    assert!(problems.is_empty(), "event form: {problems:?}");

    // Edited: a face-value-only resale market, saved.
    op.type_into("#e-resale_cap_percent", "100").await;
    op.click("main form button[type=submit]", Some("Save changes")).await;
    op.wait_for(
        "const n = document.querySelector('main form .notice.ok'); return n && n.textContent === 'Saved.'",
        Duration::from_secs(10),
    )
    .await;
    op.goto(&format!("{base}/portal/events/{event}")).await;
    let cap = op
        .wait_for(
            "const i = document.getElementById('e-resale_cap_percent'); return i && i.value",
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(cap, json!("100"), "the edit was stored");

    // Its waiting room, opened at 1234 a minute: the edge's metrics say so.
    op.type_into("#r-admit_per_minute", "1234").await;
    op.click("form.room button[type=submit]", None).await;
    op.wait_for(
        "const n = document.querySelector('form.room .notice.ok'); return n && n.textContent.includes('1234')",
        Duration::from_secs(10),
    )
    .await;
    let metrics_url = format!("{}/metrics", stack.admin_base);
    let line = format!("usher_admission_rate_per_minute{{event=\"{event}\"}} 1234");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = reqwest::get(&metrics_url).await.unwrap().text().await.unwrap();
        if metrics.lines().any(|l| l == line) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the edge's metrics lack `{line}`");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The live dashboard fills in from its stream.
    op.click("a", Some("Live on-sale dashboard")).await;
    op.wait_for(
        "const s = document.querySelector('main p.muted'); return s && s.textContent.startsWith('Updated') && s.textContent.includes('16 left')",
        Duration::from_secs(15),
    )
    .await;
    op.screenshot(&shot("desktop-portal-live")).await;
    let problems = accessibility_problems(&op).await;
    assert!(problems.is_empty(), "live dashboard: {problems:?}");

    // Another organisation's operator sees none of it.
    let other = Browser::start_sized(DESKTOP).await;
    operator_signs_in(&other, &base, "ops@harbour.example").await;
    assert_eq!(
        other
            .eval("return document.querySelectorAll('main tbody tr').length")
            .await,
        json!(0)
    );
    other.goto(&format!("{base}/portal/events/{event}")).await;
    let refused = other
        .wait_for(
            "const n = document.querySelector('.notice.error'); return n ? n.textContent : null",
            Duration::from_secs(10),
        )
        .await;
    assert!(refused.as_str().unwrap().contains("event_not_found"), "{refused}");
    assert!(
        other
            .eval("return document.body.innerText.includes('Portal Premiere')")
            .await
            == json!(false),
        "no data of the other organisation"
    );

    op.quit().await;
    other.quit().await;
    stack.stop().await.unwrap();
}
