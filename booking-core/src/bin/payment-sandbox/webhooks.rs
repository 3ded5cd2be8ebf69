//! Webhook delivery: at least once, each attempt signed afresh as
//! `Sandbox-Signature: t=<unix secs>,v1=<hex HMAC-SHA256 of "<t>.<body>">`,
//! retried with backoff until a 2xx or the attempts run out. A webhook
//! caused by a traced call carries a `traceparent` in that call's trace,
//! so the merchant's handling of it joins the order's trace.

use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tracing::Instrument;
use usher_shared::telemetry;

use crate::store::{Store, new_id, now};

const ATTEMPTS: u32 = 12;

/// The trace a webhook joins: the trace context of the sandbox's span for
/// the call that caused it, kept only when that call arrived with a
/// `traceparent` (a merchant that traces); otherwise none, and the webhook
/// goes untraced as before.
#[derive(Debug, Clone, Default)]
pub struct Origin(Option<HeaderMap>);

impl Origin {
    /// The current call's trace, if its request (`headers`) carried one.
    /// Call it inside the call's span.
    pub fn of_call(headers: &HeaderMap) -> Origin {
        if !headers.contains_key("traceparent") {
            return Origin(None);
        }
        let mut context = HeaderMap::new();
        telemetry::inject(&tracing::Span::current(), &mut context);
        Origin(Some(context))
    }

    /// This one, or `other` when this call came untraced.
    pub fn or(self, other: &Origin) -> Origin {
        if self.0.is_some() { self } else { other.clone() }
    }
}

/// One event to deliver: its type, its bytes (the same in every delivery)
/// and the trace it joins.
#[derive(Debug, Clone)]
pub struct Event {
    kind: &'static str,
    body: Vec<u8>,
    origin: Origin,
}

impl Event {
    /// The JSON every delivery sends.
    pub fn body(&self) -> &[u8] {
        &self.body
    }
}

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
    pub fn event(kind: &'static str, object: &impl serde::Serialize, origin: Origin) -> Event {
        let event = serde_json::json!({
            "id": new_id("evt"),
            "type": kind,
            "created": now(),
            "data": { "object": object },
        });
        Event {
            kind,
            body: serde_json::to_vec(&event).unwrap_or_default(),
            origin,
        }
    }

    /// Delivers `event` until acknowledged (or out of attempts), in a span
    /// of its own under the event's origin, whose context the request
    /// carries.
    pub async fn deliver(&self, store: &Store, event: &Event) {
        let Some(url) = &self.url else {
            return;
        };
        // A root of its own unless the origin names a trace: a webhook is
        // not part of whatever call happens to be delivering it.
        let span = tracing::info_span!(
            parent: None,
            "sandbox.webhook",
            otel.name = %format_args!("webhook {}", event.kind),
            otel.kind = "client",
            kind = event.kind,
            status = tracing::field::Empty,
        );
        let mut headers = HeaderMap::new();
        if let Origin(Some(origin)) = &event.origin {
            telemetry::set_parent(&span, origin);
            telemetry::inject(&span, &mut headers);
        }
        self.attempts(store, url, &event.body, headers, &span)
            .instrument(span.clone())
            .await;
    }

    async fn attempts(&self, store: &Store, url: &str, body: &[u8], headers: HeaderMap, span: &tracing::Span) {
        let mut backoff = Duration::from_millis(100);
        for _ in 0..ATTEMPTS {
            let t = now();
            let status = self
                .http
                .post(url)
                .headers(headers.clone())
                .header("content-type", "application/json")
                .header("sandbox-signature", self.sign(body, t))
                .body(body.to_vec())
                .send()
                .await
                .map(|r| r.status());
            if let Ok(status) = status {
                span.record("status", status.as_u16());
                if status.is_success() {
                    store.stats().webhooks_delivered += 1;
                    return;
                }
            }
            store.stats().webhooks_failed_attempts += 1;
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
        tracing::warn!("webhook given up after {ATTEMPTS} attempts");
    }

    /// Delivers in the background, after `delay`, `times` times.
    pub fn spawn(&self, store: Arc<Store>, event: Event, delay: Duration, times: usize) {
        let sender = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            for _ in 0..times {
                sender.deliver(&store, &event).await;
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
