//! The dedicated listener for waiting fans' position streams (optional,
//! `listen.streams`). A stream held open through the Pingora proxy costs
//! about 45 KiB of the proxy's per-connection state for the whole wait; a
//! plain HTTP server holding the same stream costs a fraction of that, which
//! is what lets one instance hold 100,000 waiting fans. The stream is the
//! same (`handlers::follow`); browsers reach it cross-origin (another port
//! or host), so it answers CORS with credentials for the configured origins.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use async_trait::async_trait;
use axum::Router;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::admin::problem;
use crate::limits::Kind;
use crate::queue::handlers::{EventSink, Request, claims, follow};
use crate::state::EdgeState;

pub struct Streams {
    pub state: Arc<EdgeState>,
}

/// Events go through a short channel to the response body.
struct ChannelSink(mpsc::Sender<Event>);

impl EventSink for ChannelSink {
    type Error = ();

    async fn event(&mut self, name: &str, id: u64, data: &impl Serialize) -> Result<(), ()> {
        let data = serde_json::to_string(data).unwrap_or_default();
        let event = Event::default().event(name).id(id.to_string()).data(data);
        self.0.send(event).await.map_err(|_| ())
    }

    async fn heartbeat(&mut self) -> Result<(), ()> {
        self.0.send(Event::default().comment("heartbeat")).await.map_err(|_| ())
    }

    async fn close(&mut self) -> Result<(), ()> {
        Ok(())
    }
}

/// CORS for the configured origins, with credentials (the queue cookie).
fn cors(state: &EdgeState, headers: &HeaderMap, response: &mut Response) {
    let origin = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok());
    if let Some(origin) = origin
        && state.config.listen.stream_origins.iter().any(|o| o == origin)
        && let Ok(value) = HeaderValue::from_str(origin)
    {
        let h = response.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
    }
}

async fn events(
    State(state): State<Arc<EdgeState>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Path(event): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let mut response = open(&state, addr, &event, &uri, &headers);
    cors(&state, &headers, &mut response);
    response
}

fn open(state: &Arc<EdgeState>, addr: SocketAddr, event: &str, uri: &Uri, headers: &HeaderMap) -> Response {
    if !state.limits.allow(Kind::Status, Some(addr.ip())) {
        state.metrics.rate_limited.fetch_add(1, Ordering::Relaxed);
        return problem(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many requests from your address; slow down",
        );
    }
    let Some(room) = event.parse::<i64>().ok().and_then(|e| state.rooms.get(e)) else {
        return problem(
            StatusCode::NOT_FOUND,
            "queue_not_found",
            "this event has no waiting room",
        );
    };
    let req = Request::from_parts("GET", uri, headers);
    let (claims, bnd) = match claims(state, &req, &room) {
        Ok(c) => c,
        Err(code) => {
            state.metrics.rejected(code);
            return problem(StatusCode::UNAUTHORIZED, code, "join the queue first (or again)");
        }
    };
    let (tx, mut rx) = mpsc::channel::<Event>(4);
    let state = state.clone();
    tokio::spawn(async move {
        state.metrics.sse_connections.fetch_add(1, Ordering::Relaxed);
        let mut progress = room.watch();
        let mut sink = ChannelSink(tx);
        let _ = follow(&state, &mut sink, &room, claims.tkt, &bnd, &mut progress).await;
        state.metrics.sse_connections.fetch_sub(1, Ordering::Relaxed);
    });
    let body = futures::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|e| e.map(Ok::<_, std::convert::Infallible>)));
    let mut response = Sse::new(body).into_response();
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

pub fn router(state: Arc<EdgeState>) -> Router {
    Router::new()
        .route("/queue/{event}/events", get(events))
        .with_state(state)
}

#[async_trait]
impl BackgroundService for Streams {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let Some(addr) = self.state.config.listen.streams else {
            return;
        };
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(%addr, error = %e, "cannot listen for position streams");
                return;
            }
        };
        tracing::info!(%addr, "position streams listening");
        let app = router(self.state.clone()).into_make_service_with_connect_info::<SocketAddr>();
        let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = shutdown.changed().await;
        });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "position streams stopped");
        }
    }
}
