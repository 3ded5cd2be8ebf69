//! A headless Chromium for the browser tests, driven over the W3C WebDriver
//! protocol (Debian's `chromium` and `chromedriver`, which
//! `deploy/local/test` installs). Only what the tests need: open a page, run
//! a script, press keys, type, click, take a screenshot. A test helper: it
//! panics with what went wrong rather than returning errors. (edge-proxy's
//! tests include this file too, by path, so there is one driver.)

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use tokio::process::Child;
use usher_test_kit::free_port;

pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
}

/// Phone (375 px wide) or desktop.
#[derive(Debug, Clone, Copy)]
pub struct Size {
    pub width: u32,
    pub height: u32,
}

pub const PHONE: Size = Size {
    width: 375,
    height: 812,
};
pub const DESKTOP: Size = Size {
    width: 1280,
    height: 900,
};

impl Browser {
    pub async fn start() -> Browser {
        Browser::start_sized(PHONE).await
    }

    pub async fn start_sized(size: Size) -> Browser {
        let port = free_port();
        let driver = tokio::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver (apt-get install chromium chromium-driver; deploy/local/test does)");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        for _ in 0..100 {
            let ready = match http.get(format!("{base}/status")).send().await {
                Ok(r) => r.json::<Value>().await.ok().and_then(|v| v["value"]["ready"].as_bool()),
                Err(_) => None,
            };
            if ready == Some(true) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Test servers' TLS certificates are self-signed.
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "acceptInsecureCerts": true,
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--hide-scrollbars", "--force-device-scale-factor=1",
                         format!("--window-size={},{}", size.width, size.height)]
            }
        }}});
        let v: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .expect("chromedriver answers")
            .json()
            .await
            .expect("chromedriver's answer is JSON");
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no browser session: {v}"))
            .to_owned();
        let browser = Browser {
            driver,
            base,
            session,
            http,
        };
        browser.resize(size).await;
        browser
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut req = self.http.request(method, url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let v: Value = req
            .send()
            .await
            .expect("chromedriver answers")
            .json()
            .await
            .expect("chromedriver's answer is JSON");
        v["value"].clone()
    }

    /// Forgets every cookie of the current page's site (a new visitor).
    pub async fn delete_cookies(&self) {
        self.call(reqwest::Method::DELETE, "/cookie", None).await;
    }

    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    pub async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    /// Runs a script in the page and returns what it returns.
    pub async fn eval(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    /// Runs an async script: it ends by calling `done(value)`.
    pub async fn eval_async(&self, script: &str) -> Value {
        let script = format!("const done = arguments[arguments.length - 1]; {script}");
        self.call(
            reqwest::Method::POST,
            "/execute/async",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    /// Waits until `script` returns something truthy; returns it.
    pub async fn wait_for(&self, script: &str, timeout: Duration) -> Value {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let v = self.eval(script).await;
            let truthy = !(v.is_null() || v == false || v == "" || v == 0);
            if truthy {
                return v;
            }
            if std::time::Instant::now() >= deadline {
                let text = self
                    .eval(
                        "const t = document.body ? document.body.innerText : ''; \
                         return t.length > 3000 ? t.slice(0, 1500) + '\\n[...]\\n' + t.slice(-1500) : t",
                    )
                    .await;
                panic!(
                    "timed out waiting for `{script}`; page at {} shows:\n{}",
                    self.url().await,
                    text.as_str().unwrap_or("")
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Presses keys (WebDriver key codes, e.g. "\u{E015}" for arrow down)
    /// in the focused element, as a user would.
    pub async fn press(&self, keys: &[&str]) {
        let actions: Vec<Value> = keys
            .iter()
            .flat_map(|k| {
                [
                    json!({"type": "keyDown", "value": k}),
                    json!({"type": "keyUp", "value": k}),
                ]
            })
            .collect();
        self.call(
            reqwest::Method::POST,
            "/actions",
            Some(json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]})),
        )
        .await;
    }

    /// Focuses the element matching `selector` and types `text` into it.
    pub async fn type_into(&self, selector: &str, text: &str) {
        let found = self
            .eval(&format!(
                "const e = document.querySelector({}); if (!e) return false; e.focus(); e.value = ''; return true",
                json!(selector)
            ))
            .await;
        assert_eq!(found, json!(true), "no element {selector} to type into");
        let keys: Vec<String> = text.chars().map(String::from).collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        self.press(&keys).await;
    }

    /// Clicks the first element matching `selector` (whose text contains
    /// `text`, if given), through the page as a user's click would; just
    /// after this returns, so that a dialog the click opens cannot block it.
    pub async fn click(&self, selector: &str, text: Option<&str>) {
        let script = format!(
            "const all = [...document.querySelectorAll({})]; \
             const e = all.find(e => {} === null || e.textContent.includes({})); \
             if (!e || e.disabled) return false; e.scrollIntoView({{block: 'center'}}); \
             setTimeout(() => e.click(), 0); return true",
            json!(selector),
            json!(text),
            json!(text)
        );
        let clicked = self.eval(&script).await;
        assert_eq!(clicked, json!(true), "nothing clickable: {selector} {text:?}");
    }

    /// Chooses a file in the file input matching `selector`, as a user
    /// picking it in the file dialog would.
    pub async fn upload(&self, selector: &str, file: &Path) {
        let found = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": selector})),
            )
            .await;
        let id = found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no file input {selector}: {found}"))
            .to_owned();
        let path = file.canonicalize().expect("the file to upload");
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({"text": path.display().to_string()})),
        )
        .await;
    }

    /// Answers the page's open confirm() dialog with OK, once it is open.
    pub async fn accept_dialog(&self) {
        for _ in 0..50 {
            let text = self.call(reqwest::Method::GET, "/alert/text", None).await;
            if text.is_string() {
                self.call(reqwest::Method::POST, "/alert/accept", Some(json!({}))).await;
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no dialog opened");
    }

    /// Makes the viewport this size (phone or desktop). Headless Chromium
    /// will not make a window narrower than 500 px, so the size is emulated
    /// as DevTools' device mode does (a phone is also a touch screen).
    pub async fn resize(&self, size: Size) {
        let phone = size.width < 600;
        self.cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": size.width, "height": size.height, "deviceScaleFactor": 1, "mobile": phone}),
        )
        .await;
        self.cdp("Emulation.setTouchEmulationEnabled", json!({"enabled": phone}))
            .await;
    }

    async fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.call(
            reqwest::Method::POST,
            "/goog/cdp/execute",
            Some(json!({"cmd": cmd, "params": params})),
        )
        .await
    }

    /// Saves a PNG of the viewport.
    pub async fn screenshot(&self, path: &Path) {
        let b64 = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap_or(""))
            .expect("a base64 screenshot");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("the screenshot folder");
        }
        std::fs::write(path, png).expect("the screenshot written");
    }

    pub async fn quit(mut self) {
        self.call(reqwest::Method::DELETE, "", None).await;
        self.driver.kill().await.ok();
    }
}
