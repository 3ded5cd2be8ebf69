//! Webhook delivery: at least once, each attempt signed afresh as
//! `Sandbox-Signature: t=<unix secs>,v1=<hex HMAC-SHA256 of "<t>.<body>">`,
//! retried with backoff until a 2xx or the attempts run out.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::store::{Store, new_id, now};

const ATTEMPTS: u32 = 12;

#[derive(Clone)]
pub struct Sender {
    url: Option<Arc<str>>,
    secret: Arc<[u8]>,
    http: reqwest::Client,
}

impl Sender {
    pub fn new(url: Option<String>, secret: String) -> Sender {
        Sender {
            url: url.map(Arc::from),
            secret: Arc::from(secret.into_bytes()),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
        }
    }

    /// The event for `object`, serialised once: every delivery of it
    /// carries the same id and bytes.
    pub fn event(kind: &str, object: &impl serde::Serialize) -> Vec<u8> {
        let event = serde_json::json!({
            "id": new_id("evt"),
            "type": kind,
            "created": now(),
            "data": { "object": object },
        });
        serde_json::to_vec(&event).unwrap_or_default()
    }

    /// Delivers `body` until acknowledged (or out of attempts).
    pub async fn deliver(&self, store: &Store, body: Vec<u8>) {
        let Some(url) = &self.url else {
            return;
        };
        let mut backoff = Duration::from_millis(100);
        for _ in 0..ATTEMPTS {
            let t = now();
            let ok = self
                .http
                .post(url.as_ref())
                .header("content-type", "application/json")
                .header("sandbox-signature", self.sign(&body, t))
                .body(body.clone())
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                store.stats().webhooks_delivered += 1;
                return;
            }
            store.stats().webhooks_failed_attempts += 1;
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
        tracing::warn!("webhook given up after {ATTEMPTS} attempts");
    }

    /// Delivers in the background, after `delay`, `times` times.
    pub fn spawn(&self, store: Arc<Store>, body: Vec<u8>, delay: Duration, times: usize) {
        let sender = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            for _ in 0..times {
                sender.deliver(&store, body.clone()).await;
            }
        });
    }

    fn sign(&self, body: &[u8], t: i64) -> String {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.secret) else {
            return String::new();
        };
        mac.update(t.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        let tag = hex::encode(mac.finalize().into_bytes());
        format!("t={t},v1={tag}")
    }
}
