//! What the browser tests share: the stack the simulator starts (edge with
//! a waiting room, booking-core, the payment sandbox, a private Redis, a
//! scratch database), the operator's switch on the edge, signing fans in,
//! and where screenshots go.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use loadtests::browser::Browser;
use loadtests::sim::scenario::Scenario;
use loadtests::sim::stack::{ADMIN_TOKEN, Bins, SimStack};
use serde_json::{Value, json};

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
pub async fn set_mode(stack: &SimStack, mode: &str) {
    let http = reqwest::Client::new();
    let url = format!("{}/admin/events/{}", stack.admin_base, stack.event);
    let current = get_json(&url, Some(ADMIN_TOKEN)).await;
    let mut settings = current.get("settings").cloned().unwrap_or(current);
    settings["mode"] = json!(mode);
    let r = http
        .put(&url)
        .bearer_auth(ADMIN_TOKEN)
        .json(&settings)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
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
