//! The dedicated listener for waiting fans' position streams (optional,
//! `listen.streams`). A stream held open through the Pingora proxy carries
//! the proxy's per-connection state (~45 KiB) for the whole wait, and a
//! general HTTP server's buffers are not much lighter. This listener does
//! one thing: read one small request head, check the queue token, and
//! answer with a close-delimited `text/event-stream`, so a waiting fan costs
//! a socket and the `stream::follow` task. That is what lets one instance
//! hold 100,000 waiting fans. Browsers reach it cross-origin (another port
//! or host): it answers CORS with credentials for the configured origins.
//! With `listen.streams_tls` it speaks TLS with the edge's certificate, so
//! that a page served over HTTPS can open it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use pingora::tls::{ServerConfig, TlsAcceptor};
use serde::Serialize;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::access::{JOIN_FIRST, check_queue};
use super::request::{Request, forwarded_client};
use super::stream::{EventSink, follow};
use crate::config::TlsListener;
use crate::limits::Kind;
use crate::state::EdgeState;

/// A fan's connection: plain TCP, or TLS over it.
pub trait Conn: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Conn for T {}

pub struct Streams {
    pub state: Arc<EdgeState>,
}

/// The longest request head taken, and how long a client may take to send it.
const MAX_HEAD: usize = 8 * 1024;
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Events written straight to the socket.
struct SocketSink<S>(S);

impl<S: Conn> EventSink for SocketSink<S> {
    type Error = std::io::Error;

    async fn event(&mut self, name: &str, id: u64, data: &impl Serialize) -> std::io::Result<()> {
        let data = serde_json::to_string(data).unwrap_or_default();
        let frame = format!("event: {name}\nid: {id}\ndata: {data}\n\n");
        self.0.write_all(frame.as_bytes()).await
    }

    async fn heartbeat(&mut self) -> std::io::Result<()> {
        self.0.write_all(b": heartbeat\n\n").await
    }

    async fn close(&mut self) -> std::io::Result<()> {
        self.0.shutdown().await
    }
}

/// Reads a request head; None if it is too big, too slow or not HTTP.
async fn read_head(sock: &mut impl Conn) -> Option<(String, http::Uri, http::HeaderMap)> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let read = async {
        loop {
            let n = sock.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
            if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                return Some(());
            }
            if buf.len() > MAX_HEAD {
                return None;
            }
        }
    };
    tokio::time::timeout(HEAD_TIMEOUT, read).await.ok()??;
    let mut headers = [httparse::EMPTY_HEADER; 48];
    let mut req = httparse::Request::new(&mut headers);
    req.parse(&buf).ok()?;
    let method = req.method?.to_owned();
    let uri: http::Uri = req.path?.parse().ok()?;
    let mut map = http::HeaderMap::new();
    for h in req.headers.iter() {
        let name = http::HeaderName::from_bytes(h.name.as_bytes()).ok()?;
        let value = http::HeaderValue::from_bytes(h.value).ok()?;
        map.append(name, value);
    }
    Some((method, uri, map))
}

/// CORS headers for the configured origins, with credentials (the cookie).
fn cors(state: &EdgeState, headers: &http::HeaderMap) -> String {
    match headers.get("origin").and_then(|o| o.to_str().ok()) {
        Some(origin) if state.config.listen.stream_origins.iter().any(|o| o == origin) => format!(
            "access-control-allow-origin: {origin}\r\naccess-control-allow-credentials: true\r\nvary: Origin\r\n"
        ),
        _ => String::new(),
    }
}

async fn refuse(sock: &mut impl Conn, status: u16, code: &str, detail: &str, cors: &str) {
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    let body = json!({
        "type": format!("https://usher.dev/problems/{code}"),
        "title": reason,
        "status": status,
        "detail": detail,
        "code": code,
    })
    .to_string();
    // As the proxy's own problems: busy answers say when to come back.
    let retry = if status == 429 || status == 503 {
        "retry-after: 2\r\n"
    } else {
        ""
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/problem+json\r\ncontent-length: {}\r\ncache-control: no-store\r\nconnection: close\r\n{retry}{cors}\r\n",
        body.len()
    );
    let _ = sock.write_all(head.as_bytes()).await;
    let _ = sock.write_all(body.as_bytes()).await;
    let _ = sock.shutdown().await;
}

async fn serve(state: Arc<EdgeState>, mut sock: impl Conn, peer: SocketAddr) {
    let Some((method, uri, headers)) = read_head(&mut sock).await else {
        refuse(&mut sock, 400, "bad_request", "not a request this listener takes", "").await;
        return;
    };
    let cors = cors(&state, &headers);
    let event = uri
        .path()
        .strip_prefix("/queue/")
        .and_then(|rest| rest.strip_suffix("/events"));
    let Some(event) = event else {
        refuse(
            &mut sock,
            404,
            "not_found",
            "only position streams are served here",
            &cors,
        )
        .await;
        return;
    };
    if method != "GET" {
        refuse(&mut sock, 405, "method_not_allowed", "position streams take GET", &cors).await;
        return;
    }
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok());
    let client = forwarded_client(peer.ip(), hops, &state.config.listen.trusted_proxies);
    if !state.limits.allow(Kind::Status, Some(client)) {
        state.metrics.rate_limited.fetch_add(1, Ordering::Relaxed);
        refuse(&mut sock, 429, "rate_limited", crate::respond::RATE_LIMITED, &cors).await;
        return;
    }
    let Some(room) = event.parse::<i64>().ok().and_then(|e| state.rooms.get(e)) else {
        refuse(
            &mut sock,
            404,
            "queue_not_found",
            "this event has no waiting room",
            &cors,
        )
        .await;
        return;
    };
    let req = Request::from_parts("GET", &uri, &headers);
    drop(headers);
    let (claims, bnd) = match check_queue(&state, &req, &room) {
        Ok(c) => c,
        Err(refusal) => {
            state.metrics.rejected(refusal.code());
            refuse(&mut sock, 401, refusal.code(), JOIN_FIRST, &cors).await;
            return;
        }
    };
    drop(req);
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-store\r\nx-accel-buffering: no\r\nconnection: close\r\n{cors}\r\n"
    );
    if sock.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    drop(cors);
    state.metrics.sse_connections.fetch_add(1, Ordering::Relaxed);
    let mut progress = room.watch();
    let mut sink = SocketSink(sock);
    let _ = follow(&state, &mut sink, &room, claims.tkt, &bnd, &mut progress).await;
    state.metrics.sse_connections.fetch_sub(1, Ordering::Relaxed);
}

/// Serves one connection, after the TLS handshake when there is one (which,
/// like the request head, must finish within `HEAD_TIMEOUT`).
async fn accept(state: Arc<EdgeState>, tls: Option<TlsAcceptor>, sock: TcpStream, peer: SocketAddr) {
    match tls {
        None => serve(state, sock, peer).await,
        Some(acceptor) => match tokio::time::timeout(HEAD_TIMEOUT, acceptor.accept(sock)).await {
            Ok(Ok(tls)) => serve(state, tls, peer).await,
            Ok(Err(e)) => tracing::debug!(%peer, error = %e, "a position stream's TLS handshake failed"),
            Err(_) => tracing::debug!(%peer, "a position stream's TLS handshake timed out"),
        },
    }
}

/// The TLS side of the listener, from the `tls` listener's certificate.
fn acceptor(tls: &TlsListener) -> Result<TlsAcceptor, String> {
    pingora::tls::install_default_crypto_provider();
    let (cert, key) = (tls.cert_file.display().to_string(), tls.key_file.display().to_string());
    let (certs, key) = pingora::tls::load_certs_and_key_files(&cert, &key)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no certificate and key in {cert} and {key}"))?;
    let mut config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| e.to_string())?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
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
        let tls = match (self.state.config.listen.streams_tls, &self.state.config.listen.tls) {
            (true, Some(tls)) => match acceptor(tls) {
                Ok(acceptor) => Some(acceptor),
                Err(e) => {
                    tracing::error!(%addr, error = %e, "cannot serve position streams over TLS");
                    return;
                }
            },
            _ => None,
        };
        tracing::info!(%addr, tls = tls.is_some(), "position streams listening");
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((sock, peer)) => {
                        let _ = sock.set_nodelay(true);
                        tokio::spawn(accept(self.state.clone(), tls.clone(), sock, peer));
                    }
                    Err(e) => {
                        // Out of file descriptors, most likely: wait, don't spin.
                        tracing::warn!(error = %e, "accepting a position stream failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                _ = shutdown.changed() => return,
            }
        }
    }
}
