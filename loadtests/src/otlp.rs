//! A small OTLP/HTTP receiver for tests and benchmarks: accepts `POST
//! /v1/traces` in OTLP's JSON encoding (what the services' exporters send)
//! and keeps every span's service, trace, id, parent and name.

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
