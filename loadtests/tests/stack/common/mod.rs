//! What the browser tests share: the stack the simulator starts (edge with
//! a waiting room, booking-core, the payment sandbox, a private Redis, a
//! scratch database), the operator's switch on the edge, signing fans in,
//! and where screenshots go.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use loadtests::browser::Browser;
use loadtests::edge_admin;
use loadtests::sim::scenario::Scenario;
use loadtests::sim::stack::{ADMIN_TOKEN, Bins, SimStack};
use serde_json::{Value, json};
use usher_shared::admin::QueueMode;

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn shot(name: &str) -> PathBuf {
    root().join("docs/screenshots").join(format!("{name}.png"))
}

/// The services' binaries sit beside this test's own build (target/debug):
/// `cargo nextest run --workspace` builds them first.
pub fn bins() -> Bins {
    let exe = std::env::current_exe().expect("the test's path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/..")
        .to_path_buf();
    let bins = Bins::in_dir(&dir);
    for b in [&bins.core, &bins.edge, &bins.sandbox] {
        assert!(
            b.exists(),
            "{} is missing: run the workspace's tests (`cargo nextest run --workspace`), which build it",
            b.display()
        );
    }
    bins
}

pub async fn start() -> SimStack {
    let scenario = Scenario::load(&root().join("loadtests/scenarios/browser.toml")).expect("the browser scenario");
    let database =
        std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    SimStack::start(
        &scenario,
        &bins(),
        &database,
        false,
        Utc::now() - chrono::Duration::seconds(1),
    )
    .await
    .expect("the stack starts")
}

/// The operator's switch, through the edge's admin API.
pub async fn set_mode(stack: &SimStack, mode: QueueMode) {
    let http = reqwest::Client::new();
    let mut settings = edge_admin::room(&http, &stack.admin_base, ADMIN_TOKEN, stack.event)
        .await
        .unwrap()
        .settings;
    settings.mode = mode;
    edge_admin::put_room(&http, &stack.admin_base, ADMIN_TOKEN, &settings)
        .await
        .unwrap();
}

pub async fn sign_in(browser: &Browser, base: &str, fan: &str, next: &str) {
    browser.goto(&format!("{base}/sign-in?next={next}")).await;
    browser
        .wait_for("return document.getElementById('fan-id')", Duration::from_secs(10))
        .await;
    browser.type_into("#fan-id", fan).await;
    browser.click("form button[type=submit]", None).await;
    browser
        .wait_for(
            &format!(
                "return location.pathname === {} && !document.querySelector('.loading')",
                json!(next)
            ),
            Duration::from_secs(10),
        )
        .await;
}

/// GET a JSON answer, as the fan with this token if given.
pub async fn get_json(url: &str, token: Option<&str>) -> Value {
    let mut r = reqwest::Client::new().get(url);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    r.send().await.unwrap().json().await.unwrap()
}

pub async fn fan_token(base: &str, fan: &str) -> String {
    let v: Value = reqwest::Client::new()
        .post(format!("{base}/v1/dev/sign-in"))
        .json(&json!({"fan_id": fan}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["token"].as_str().unwrap().to_owned()
}

/// A page's WCAG 2.2 AA basics, checked in the page: every form control has
/// a label, every button and link a name, every image an alt text, and
/// every visible text its contrast against its background (4.5:1, or 3:1
/// for large text; disabled controls are exempt). Returns the failures.
pub async fn accessibility_problems(browser: &Browser) -> Vec<String> {
    let script = r#"
const problems = [];
const name = (e) => (e.getAttribute('aria-label') || e.textContent || e.getAttribute('title') || '').trim();
for (const e of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
  const labelled = e.labels?.length || e.getAttribute('aria-label') || e.getAttribute('aria-labelledby');
  if (!labelled) problems.push(`unlabelled ${e.tagName.toLowerCase()} ${e.name || e.id}`);
}
for (const e of document.querySelectorAll('button, a[href]')) if (!name(e)) problems.push(`nameless ${e.tagName.toLowerCase()} ${e.outerHTML.slice(0, 60)}`);
for (const e of document.querySelectorAll('img')) if (!e.hasAttribute('alt')) problems.push(`img without alt ${e.src.slice(0, 60)}`);
const rgb = (c) => (c.match(/[\d.]+/g) || []).map(Number);
const lum = ([r, g, b]) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; }; return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
const background = (e) => { for (let n = e; n; n = n.parentElement) { const c = rgb(getComputedStyle(n).backgroundColor); if (c.length === 3 || (c.length === 4 && c[3] > 0.5)) return c.slice(0, 3); } return [255, 255, 255]; };
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
const seen = new Set();
for (let t = walker.nextNode(); t; t = walker.nextNode()) {
  const e = t.parentElement;
  if (!t.textContent.trim() || !e || seen.has(e)) continue;
  seen.add(e);
  const s = getComputedStyle(e);
  if (s.visibility === 'hidden' || s.display === 'none' || !e.getClientRects().length || e.closest('[hidden], .sr-only, .skip, option, :disabled')) continue;
  const fg = lum(rgb(s.color)), bg = lum(background(e));
  const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
  const size = parseFloat(s.fontSize), bold = Number(s.fontWeight) >= 700;
  const need = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
  if (ratio < need) problems.push(`contrast ${ratio.toFixed(2)} < ${need}: "${t.textContent.trim().slice(0, 40)}"`);
}
return problems;"#;
    browser
        .eval(script)
        .await
        .as_array()
        .map(|a| a.iter().map(|v| v.as_str().unwrap_or("").to_owned()).collect())
        .unwrap_or_default()
}
