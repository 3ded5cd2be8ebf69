//! The stand-in for booking-core the edge tests put behind the edge.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;

/// A stand-in for booking-core that counts what reaches it. A path ending
/// in `/done` answers with the header that ends the fan's session; a request
/// with `x-slow-ms` waits that long; a path under `/public/` is marked
/// cacheable (`public, max-age=60`, an ETag); one with `x-load-ms-per-rps: k` waits
/// k ms for every such request in the last second, like a core that slows
/// down as load rises. `/readyz` answers 503 while `set_ready(false)`;
/// `hang` stops it answering anything (a paused host); `kill` stops it
/// listening (a dead process) and `restart` brings it back on its port.
pub struct Upstream {
    pub addr: SocketAddr,
    hits: Arc<Mutex<HashMap<String, u64>>>,
    seen_access: Arc<Mutex<Vec<String>>>,
    ready: Arc<AtomicBool>,
    hung: Arc<AtomicBool>,
    server: Option<(tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>)>,
}

impl Upstream {
    pub async fn start() -> Upstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut upstream = Upstream {
            addr: listener.local_addr().unwrap(),
            hits: Arc::default(),
            seen_access: Arc::default(),
            ready: Arc::new(AtomicBool::new(true)),
            hung: Arc::default(),
            server: None,
        };
        upstream.serve(listener);
        upstream
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let (h, s) = (self.hits.clone(), self.seen_access.clone());
        let (ready, hung) = (self.ready.clone(), self.hung.clone());
        let recent: Arc<Mutex<std::collections::VecDeque<std::time::Instant>>> = Arc::default();
        let app = Router::new().fallback(move |uri: Uri, headers: HeaderMap| {
            let (h, s, recent) = (h.clone(), s.clone(), recent.clone());
            let (ready, hung) = (ready.clone(), hung.clone());
            async move {
                if hung.load(Ordering::SeqCst) {
                    std::future::pending::<()>().await;
                }
                // The edge's health check: answered, not counted as a
                // request that reached the core.
                if uri.path() == "/readyz" {
                    return match ready.load(Ordering::SeqCst) {
                        true => (StatusCode::OK, "{\"status\":\"ready\"}").into_response(),
                        false => (StatusCode::SERVICE_UNAVAILABLE, "{\"status\":\"not ready\"}").into_response(),
                    };
                }
                if let Some(k) = headers
                    .get("x-load-ms-per-rps")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                {
                    let load = {
                        let mut r = recent.lock().unwrap();
                        let now = std::time::Instant::now();
                        r.push_back(now);
                        while r
                            .front()
                            .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(1))
                        {
                            r.pop_front();
                        }
                        r.len() as u64
                    };
                    tokio::time::sleep(Duration::from_millis(k * load)).await;
                }
                *h.lock().unwrap().entry(uri.path().to_string()).or_default() += 1;
                if let Some(a) = headers.get("usher-access").and_then(|v| v.to_str().ok()) {
                    s.lock().unwrap().push(a.to_string());
                }
                if let Some(ms) = headers
                    .get("x-slow-ms")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                let mut r = (StatusCode::OK, "{\"ok\":true}").into_response();
                if uri.path().ends_with("/done") {
                    r.headers_mut().insert("usher-session-done", "1".parse().unwrap());
                }
                if uri.path().starts_with("/public/") {
                    r.headers_mut()
                        .insert("cache-control", "public, max-age=60".parse().unwrap());
                    r.headers_mut().insert("etag", "\"v1\"".parse().unwrap());
                }
                r
            }
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
                .ok();
        });
        self.server = Some((stop, task));
    }

    /// Readiness as the edge's health check reads it.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    /// Stops answering anything, on open and new connections alike.
    pub fn hang(&self, hung: bool) {
        self.hung.store(hung, Ordering::SeqCst);
    }

    /// Stops listening and closes its connections: connects are refused.
    pub async fn kill(&mut self) {
        if let Some((stop, task)) = self.server.take() {
            let _ = stop.send(());
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }

    /// Listens again on the same port.
    pub async fn restart(&mut self) {
        let listener = tokio::net::TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
    }

    pub fn hits(&self, path: &str) -> u64 {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    pub fn total_hits(&self) -> u64 {
        self.hits.lock().unwrap().values().sum()
    }

    pub fn access_tokens_seen(&self) -> Vec<String> {
        self.seen_access.lock().unwrap().clone()
    }
}
