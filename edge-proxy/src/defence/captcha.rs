//! The CAPTCHA step: a provider interface shaped like the common providers'
//! server-side verify call (site key, the widget's token, the client's
//! address), one implementation that speaks that call over HTTP, and the
//! local test provider the stack runs in its place (`edge-proxy
//! captcha-sandbox`): its "widget" is one click that fetches a token, and it
//! verifies each token once.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::config::CaptchaConfig;
use crate::locks;

#[derive(Debug, thiserror::Error)]
pub enum CaptchaError {
    #[error("the CAPTCHA provider could not be reached: {0}")]
    Unreachable(String),
}

#[async_trait]
pub trait CaptchaProvider: Send + Sync {
    /// Whether the widget's token is good for this client.
    async fn verify(&self, token: &str, remote_ip: Option<IpAddr>) -> Result<bool, CaptchaError>;
    /// What the waiting page needs to show the widget.
    fn site_key(&self) -> &str;
    fn widget_url(&self) -> &str;
}

/// The verify call of hCaptcha, Turnstile and reCAPTCHA: a form POST of
/// `secret`, `response`, `remoteip` (and `sitekey`), answered with
/// `{"success": bool, ...}`.
pub struct SiteVerify {
    config: CaptchaConfig,
    http: reqwest::Client,
}

impl SiteVerify {
    pub fn new(config: CaptchaConfig) -> SiteVerify {
        SiteVerify {
            config,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(3))
                .build()
                .unwrap_or_default(),
        }
    }
}

#[derive(Deserialize)]
struct Verdict {
    success: bool,
}

#[async_trait]
impl CaptchaProvider for SiteVerify {
    async fn verify(&self, token: &str, remote_ip: Option<IpAddr>) -> Result<bool, CaptchaError> {
        let ip = remote_ip.map(|i| i.to_string()).unwrap_or_default();
        let form = [
            ("secret", self.config.secret.as_str()),
            ("response", token),
            ("remoteip", ip.as_str()),
            ("sitekey", self.config.site_key.as_str()),
        ];
        let answer = self
            .http
            .post(&self.config.verify_url)
            .form(&form)
            .send()
            .await
            .map_err(|e| CaptchaError::Unreachable(e.without_url().to_string()))?;
        if !answer.status().is_success() {
            return Err(CaptchaError::Unreachable(format!("status {}", answer.status())));
        }
        let verdict: Verdict = answer
            .json()
            .await
            .map_err(|e| CaptchaError::Unreachable(e.without_url().to_string()))?;
        Ok(verdict.success)
    }

    fn site_key(&self) -> &str {
        &self.config.site_key
    }

    fn widget_url(&self) -> &str {
        &self.config.widget_url
    }
}

/// The local test provider's books: tokens handed out and not yet spent.
#[derive(Default)]
struct Sandbox {
    secret: String,
    issued: Mutex<HashMap<String, Instant>>,
}

async fn token(State(s): State<Arc<Sandbox>>) -> Json<serde_json::Value> {
    let token = format!("pass-{}", uuid::Uuid::new_v4().simple());
    let mut issued = locks::lock(&s.issued);
    issued.retain(|_, at| at.elapsed() < Duration::from_secs(120));
    issued.insert(token.clone(), Instant::now());
    Json(json!({ "token": token }))
}

async fn siteverify(State(s): State<Arc<Sandbox>>, body: String) -> Json<serde_json::Value> {
    let field = |name: &str| {
        form_urlencoded::parse(body.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let (secret, response) = (field("secret"), field("response"));
    if secret != s.secret {
        return Json(json!({ "success": false, "error-codes": ["invalid-input-secret"] }));
    }
    let spent = locks::lock(&s.issued)
        .remove(&response)
        .is_some_and(|at| at.elapsed() < Duration::from_secs(120));
    if spent {
        Json(json!({ "success": true }))
    } else {
        Json(json!({ "success": false, "error-codes": ["invalid-or-already-seen-response"] }))
    }
}

/// The local test provider: `POST /token` is the widget (CORS-open, so the
/// waiting page can call it), `POST /siteverify` the verify call.
pub fn sandbox_router(secret: &str) -> Router {
    let state = Arc::new(Sandbox {
        secret: secret.to_owned(),
        issued: Mutex::default(),
    });
    Router::new()
        .route(
            "/token",
            post(token).options(|| async { ([("access-control-allow-methods", "POST")], "") }),
        )
        .route("/siteverify", post(siteverify))
        .layer(axum::middleware::map_response(
            |mut r: axum::response::Response| async move {
                r.headers_mut()
                    .insert("access-control-allow-origin", axum::http::HeaderValue::from_static("*"));
                r
            },
        ))
        .with_state(state)
}

/// Serves the local test provider until the process ends.
pub async fn run_sandbox(addr: SocketAddr, secret: &str) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, sandbox_router(secret)).await
}
