//! Small OTLP/HTTP receivers for tests and benchmarks: each accepts `POST
//! /v1/traces` in OTLP's JSON encoding (what the services' exporters send).
//! `Collector` keeps every span's service, trace, id, parent and name;
//! `Sink`, a collector stand-in for benchmarks, only counts what arrives.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::Value;

/// One exported span, as the collector saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenSpan {
    /// The `service.name` resource attribute.
    pub service: String,
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    pub name: String,
}

#[derive(Clone, Default)]
struct Seen {
    spans: Arc<Mutex<Vec<SeenSpan>>>,
    /// Requests whose body was not OTLP JSON.
    malformed: Arc<Mutex<u64>>,
}

pub struct Collector {
    /// What to configure as the OTLP endpoint: http://127.0.0.1:<port>.
    pub url: String,
    seen: Seen,
    task: tokio::task::JoinHandle<()>,
}

impl Collector {
    pub async fn start() -> anyhow::Result<Collector> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let seen = Seen::default();
        let app = Router::new()
            .route("/v1/traces", post(receive))
            .with_state(seen.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Collector { url, seen, task })
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<SeenSpan> {
        self.seen.spans.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// How many requests could not be read as OTLP JSON.
    pub fn malformed(&self) -> u64 {
        self.seen.malformed.lock().map(|m| *m).unwrap_or_default()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(State(seen): State<Seen>, body: axum::body::Bytes) -> (StatusCode, &'static str) {
    match serde_json::from_slice::<Value>(&body).ok().and_then(|v| spans_of(&v)) {
        Some(spans) => {
            if let Ok(mut all) = seen.spans.lock() {
                all.extend(spans);
            }
            (StatusCode::OK, "{}")
        }
        None => {
            if let Ok(mut m) = seen.malformed.lock() {
                *m += 1;
            }
            (StatusCode::BAD_REQUEST, "{}")
        }
    }
}

/// An `ExportTraceServiceRequest` in OTLP/JSON: resourceSpans, each with
/// its resource's attributes and scopeSpans of spans.
fn spans_of(request: &Value) -> Option<Vec<SeenSpan>> {
    let mut out = Vec::new();
    for rs in request.get("resourceSpans")?.as_array()? {
        let service = rs["resource"]["attributes"]
            .as_array()
            .and_then(|attrs| attrs.iter().find(|a| a["key"] == "service.name"))
            .and_then(|a| a["value"]["stringValue"].as_str())
            .unwrap_or_default()
            .to_owned();
        for ss in rs["scopeSpans"].as_array()? {
            for span in ss["spans"].as_array()? {
                let text = |key: &str| span[key].as_str().unwrap_or_default().to_owned();
                out.push(SeenSpan {
                    service: service.clone(),
                    trace_id: text("traceId"),
                    span_id: text("spanId"),
                    parent_span_id: text("parentSpanId"),
                    name: text("name"),
                });
            }
        }
    }
    Some(out)
}

/// What a `Sink` has received.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Received {
    pub exports: u64,
    pub bytes: u64,
    pub spans: u64,
}

#[derive(Default)]
struct Counts {
    exports: AtomicU64,
    bytes: AtomicU64,
    spans: AtomicU64,
}

/// A collector stand-in for benchmarks: answers every export at once and
/// counts exports, bytes and spans without parsing or keeping them, so
/// that the machine's cores go to the services measured rather than to the
/// collector (a real one runs elsewhere).
pub struct Sink {
    /// What to configure as the OTLP endpoint: http://127.0.0.1:<port>.
    pub url: String,
    counts: Arc<Counts>,
    task: tokio::task::JoinHandle<()>,
}

impl Sink {
    pub async fn start() -> anyhow::Result<Sink> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let counts = Arc::new(Counts::default());
        let app = Router::new()
            .route("/v1/traces", post(count))
            .with_state(counts.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Sink { url, counts, task })
    }

    pub fn received(&self) -> Received {
        Received {
            exports: self.counts.exports.load(Ordering::Relaxed),
            bytes: self.counts.bytes.load(Ordering::Relaxed),
            spans: self.counts.spans.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::ops::Add for Received {
    type Output = Received;
    fn add(self, other: Received) -> Received {
        Received {
            exports: self.exports + other.exports,
            bytes: self.bytes + other.bytes,
            spans: self.spans + other.spans,
        }
    }
}

impl std::ops::Sub for Received {
    type Output = Received;
    fn sub(self, earlier: Received) -> Received {
        Received {
            exports: self.exports - earlier.exports,
            bytes: self.bytes - earlier.bytes,
            spans: self.spans - earlier.spans,
        }
    }
}

async fn count(State(counts): State<Arc<Counts>>, body: axum::body::Bytes) -> (StatusCode, &'static str) {
    counts.exports.fetch_add(1, Ordering::Relaxed);
    counts.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
    counts.spans.fetch_add(spans_in(&body), Ordering::Relaxed);
    (StatusCode::OK, "{}")
}

/// Spans in an OTLP/JSON body, by their `"spanId"` keys (a parent's is
/// `"parentSpanId"`, which does not match): no parsing.
fn spans_in(body: &[u8]) -> u64 {
    const KEY: &[u8] = b"\"spanId\"";
    body.windows(KEY.len()).filter(|w| *w == KEY).count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_are_counted_by_their_own_ids_only() {
        let body = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[
            {"traceId":"a","spanId":"1","parentSpanId":"","name":"x"},
            {"traceId":"a","spanId":"2","parentSpanId":"1","name":"y"}]}]}]}"#;
        assert_eq!(spans_in(body), 2);
        assert_eq!(spans_in(b"{}"), 0);
    }
}
