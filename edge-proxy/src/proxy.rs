//! The one `ProxyHttp` impl. A request's life at the edge:
//!
//! 1. `request_filter`: the path is rewritten to its one canonical form
//!    (`usher_shared::paths`), or refused, before anything reads it, so
//!    what the edge decides on is what the core routes; the waiting room's
//!    own pages answer here; bypass
//!    rules let staff and health checks through; a protected path needs a
//!    valid access token for its event, bound to this client, or it never
//!    reaches the core.
//!    Unprotected GETs the core marked public are answered from the cache.
//! 2. `upstream_peer`: a healthy booking-core, round robin.
//! 3. `upstream_request_filter`: only the verified access token is
//!    forwarded (`usher-access`), never one the client made up.
//! 4. `response_filter`: the core's "this fan is done" header ends the
//!    fan's session, so the next fan is admitted at the next tick; a
//!    cacheable answer starts filling the cache (`response_body_filter`).
//! 5. `logging`: metrics.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::proxy::{ProxyHttp, Session};
use serde_json::json;
use usher_shared::{ACCESS_HEADER, AccessClaims, SESSION_DONE_HEADER, paths};

use crate::cache::ResponseCache;
use crate::limits::Kind;
use crate::queue::handlers::{self, Request, access_cookie};
use crate::respond;
use crate::rules::Protected;
use crate::state::EdgeState;

pub struct Edge {
    pub state: Arc<EdgeState>,
}

/// Per-request state.
#[derive(Default)]
pub struct Ctx {
    /// When the edge began on the request (its headers read).
    received: Option<Instant>,
    /// The verified access token and its claims, for a protected request.
    access: Option<(String, AccessClaims)>,
    upstream_started: Option<Instant>,
    upstream_latency: Option<Duration>,
    upstream_failed: bool,
    /// The cache key of a cacheable request that missed.
    cache_key: Option<String>,
    filling: Option<crate::cache::Filling>,
}

/// Sessions are extended in Redis at most this often per fan.
const TOUCH_EVERY: Duration = Duration::from_secs(10);

impl Edge {
    /// The access token a protected request must carry: the `usher-access`
    /// header (apps) or the event's cookie (browsers).
    fn check_access(
        &self,
        req: &Request,
        header: Option<&str>,
        need: Protected,
    ) -> Result<(String, AccessClaims), &'static str> {
        let candidates: Vec<&str> = match need {
            Protected::Event(event) => header.into_iter().chain(req.cookie(&access_cookie(event))).collect(),
            _ => header
                .into_iter()
                .chain(req.cookies_with_prefix("usher_access_"))
                .collect(),
        };
        let mut reason = "access_token_missing";
        for token in candidates {
            match self.state.tokens.verify_access(token) {
                Ok(claims) => {
                    if let Protected::Event(event) = need
                        && claims.evt != event
                    {
                        reason = "token_wrong_event";
                        continue;
                    }
                    let bnd = req.binding(req.client_id().unwrap_or(""));
                    if claims.bnd != bnd {
                        reason = "token_other_client";
                        continue;
                    }
                    if self
                        .state
                        .rooms
                        .get(claims.evt)
                        .is_some_and(|room| room.has_ended(&session_key(&claims)))
                    {
                        reason = "session_ended";
                        continue;
                    }
                    return Ok((token.to_owned(), claims));
                }
                Err(e) => reason = e.code(),
            }
        }
        Err(reason)
    }
}

#[async_trait]
impl ProxyHttp for Edge {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx::default()
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> pingora::Result<bool> {
        ctx.received = Some(Instant::now());
        let state = &self.state;
        if canonicalise(session).await? {
            return Ok(true);
        }
        if handlers::serve(state, session).await? {
            return Ok(true);
        }
        let path = session.req_header().uri.path().to_owned();
        let need = match state.protection.classify(&path) {
            Protected::Event(event) if !state.rooms.is_protected(event) => Protected::No,
            Protected::AnySession | Protected::Optional if state.rooms.is_empty() => Protected::No,
            need => need,
        };
        if need == Protected::No {
            return serve_cached(state, session, ctx).await;
        }
        if need == Protected::Optional {
            let req = Request::of(session);
            let header = session
                .req_header()
                .headers
                .get(ACCESS_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            if let Ok((token, claims)) = self.check_access(&req, header.as_deref(), Protected::AnySession) {
                touch(state, &claims);
                ctx.access = Some((token, claims));
            }
            return Ok(false);
        }
        let client = session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip());
        let header = |name: &str| {
            session
                .req_header()
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        if state.bypass.matches(&path, header, client) {
            state.metrics.bypassed.fetch_add(1, Ordering::Relaxed);
            // Bypassed traffic is not counted, but the core still wants an
            // admission token for a protected event: mint a short one.
            if let Protected::Event(event) = need {
                let (token, claims) = state.tokens.issue_access(event, 0, "bypass", 60);
                ctx.access = Some((token, claims));
            }
            return Ok(false);
        }
        if !state.limits.allow(Kind::Protected, client) {
            state.metrics.rate_limited.fetch_add(1, Ordering::Relaxed);
            respond::rate_limited(session).await?;
            return Ok(true);
        }
        let req = Request::of(session);
        let access_header = header(ACCESS_HEADER);
        match self.check_access(&req, access_header.as_deref(), need) {
            Ok((token, claims)) => {
                state
                    .metrics
                    .event(claims.evt)
                    .protected_requests
                    .fetch_add(1, Ordering::Relaxed);
                touch(state, &claims);
                ctx.access = Some((token, claims));
                Ok(false)
            }
            Err(reason) => {
                state.metrics.rejected(reason);
                if reason == "token_other_client" {
                    let ip = session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip());
                    state.defences.replayed(ip, "access_token");
                }
                let queue = match need {
                    Protected::Event(event) => Some(format!("/queue/{event}")),
                    _ => None,
                };
                let wants_html = req.method == "GET" && header("accept").is_some_and(|a| a.contains("text/html"));
                if let (true, Some(queue)) = (wants_html, &queue) {
                    respond::send(
                        session,
                        303,
                        "text/plain",
                        bytes::Bytes::new(),
                        &[("location", queue.clone())],
                    )
                    .await?;
                } else {
                    respond::problem(
                        session,
                        403,
                        "admission_required",
                        "this part of the sale is open to fans admitted from the waiting room",
                        json!({"reason": reason, "queue_url": queue}),
                    )
                    .await?;
                }
                Ok(true)
            }
        }
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> pingora::Result<Box<HttpPeer>> {
        let upstream =
            self.state.upstreams.select(b"", 256).ok_or_else(|| {
                pingora::Error::explain(pingora::ErrorType::ConnectNoRoute, "no healthy booking-core")
            })?;
        ctx.upstream_started = Some(Instant::now());
        Ok(Box::new(HttpPeer::new(upstream, false, String::new())))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> pingora::Result<()> {
        upstream_request.remove_header(ACCESS_HEADER);
        if let Some((token, _)) = &ctx.access {
            upstream_request.insert_header(ACCESS_HEADER, token.as_str())?;
        }
        if let Some(ip) = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip().to_string())
        {
            upstream_request.insert_header("x-forwarded-for", ip)?;
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        response: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> pingora::Result<()> {
        if let Some(key) = ctx.cache_key.take() {
            ctx.filling = self.state.cache.admit(key, response);
        }
        if let Some(started) = ctx.upstream_started {
            let latency = started.elapsed();
            ctx.upstream_latency = Some(latency);
            self.state.metrics.upstream_latency(latency);
        }
        if response.status.is_server_error() {
            ctx.upstream_failed = true;
        }
        // The edge's own time to the core's answer, beside the core's mark:
        // a client tells from the two where its time went (no secrets: two
        // durations).
        if let Some(received) = ctx.received {
            let ms = received.elapsed().as_secs_f64() * 1000.0;
            response.append_header("server-timing", format!("edge;dur={ms:.1}"))?;
        }
        let done = response.headers.get(SESSION_DONE_HEADER).is_some();
        response.remove_header(SESSION_DONE_HEADER);
        if done && let Some((token, claims)) = &ctx.access {
            end_session(&self.state, token, claims).await;
            let cookie = format!(
                "{}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax",
                access_cookie(claims.evt)
            );
            response.append_header("set-cookie", cookie)?;
        }
        Ok(())
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> pingora::Result<Option<Duration>> {
        if let Some(filling) = ctx.filling.as_mut() {
            let fits = body.as_ref().is_none_or(|b| self.state.cache.append(filling, b));
            if !fits {
                ctx.filling = None;
            } else if end_of_stream && let Some(done) = ctx.filling.take() {
                self.state.cache.store(done);
            }
        }
        Ok(None)
    }

    async fn logging(&self, session: &mut Session, e: Option<&pingora::Error>, ctx: &mut Ctx) {
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        if status > 0 {
            self.state.metrics.response(status);
        }
        let failed = e.is_some() || ctx.upstream_failed;
        if failed {
            self.state.metrics.upstream_errors.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(started) = ctx.upstream_started {
            let latency = ctx.upstream_latency.unwrap_or_else(|| started.elapsed());
            self.state.core_health.record(latency, failed);
        }
    }
}

/// Rewrites the request to its canonical path (the exact bytes that will be
/// forwarded), or refuses a path that has none with 400. Everything after
/// this reads, and the core receives, one spelling of each path.
async fn canonicalise(session: &mut Session) -> pingora::Result<bool> {
    let req = session.req_header();
    if !req.raw_path_is_utf8() {
        respond::problem(session, 400, "bad_path", "the path is not valid UTF-8", json!({})).await?;
        return Ok(true);
    }
    let target = match paths::canonical(req.uri.path()) {
        Ok(path) => match req.uri.query() {
            Some(query) => format!("{path}?{query}"),
            None => path.into_owned(),
        },
        Err(e) => {
            respond::problem(session, 400, e.code(), &e.to_string(), json!({})).await?;
            return Ok(true);
        }
    };
    if req.raw_path() != target.as_bytes() {
        match target.parse::<http::Uri>() {
            Ok(uri) => session.req_header_mut().set_uri(uri),
            Err(_) => {
                respond::problem(session, 400, "bad_path", "the request target cannot be read", json!({})).await?;
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// Answers an unprotected request from the cache if it can; otherwise notes
/// the key so the core's answer can fill it.
async fn serve_cached(state: &EdgeState, session: &mut Session, ctx: &mut Ctx) -> pingora::Result<bool> {
    if !state.cache.enabled() {
        return Ok(false);
    }
    let req = session.req_header();
    let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok());
    let path = req.uri.path_and_query().map_or("/", |p| p.as_str());
    let Some(key) = ResponseCache::key(
        req.method.as_str(),
        path,
        header("accept-encoding"),
        req.headers.contains_key("authorization"),
    ) else {
        return Ok(false);
    };
    let Some(entry) = state.cache.get(&key) else {
        state.metrics.cache_misses.fetch_add(1, Ordering::Relaxed);
        ctx.cache_key = Some(key);
        return Ok(false);
    };
    state.metrics.cache_hits.fetch_add(1, Ordering::Relaxed);
    let not_modified = entry.etag().is_some_and(|etag| header("if-none-match") == Some(etag));
    let status = if not_modified { 304 } else { entry.status };
    let mut resp = ResponseHeader::build(status, Some(entry.headers.len() + 2))?;
    for (name, value) in &entry.headers {
        if not_modified && (name == "content-length" || name == "content-encoding") {
            continue;
        }
        resp.append_header(name.clone(), value.as_str())?;
    }
    resp.insert_header("age", entry.age_secs().to_string())?;
    resp.insert_header("x-cache", "HIT")?;
    let head_only = not_modified || entry.body.is_empty();
    session.write_response_header(Box::new(resp), head_only).await?;
    if !head_only {
        session.write_response_body(Some(entry.body.clone()), true).await?;
    }
    Ok(true)
}

/// Keeps an admitted fan's session alive while they are active.
/// Extends an admitted fan's session in Redis, in the background: the
/// answer changes nothing for this request (the token is what admits it),
/// so the request does not wait for it. Waiting made an admitted fan's first
/// hold queue behind the join spike's Redis traffic: in the arena run, hold
/// p99 was 39 ms in the core and 1,100 ms at the edge.
fn touch(state: &EdgeState, claims: &AccessClaims) {
    if claims.tkt == 0 {
        return; // admitted without the queue (Redis was down, fail-open)
    }
    let Some(room) = state.rooms.get(claims.evt) else {
        return;
    };
    if !room.should_touch(claims.tkt, TOUCH_EVERY) {
        return;
    }
    let Some(store) = state.store() else {
        return;
    };
    let (event, ticket, session_ms) = (claims.evt, claims.tkt, room.settings().session_secs * 1000);
    tokio::spawn(async move {
        if let Err(e) = store.touch_session(event, ticket, session_ms).await {
            tracing::debug!(event_id = event, error = %e, "could not extend a session; the token still holds");
        }
    });
}

/// What an ended session is known by: its queue ticket, or for a token
/// admitted without the queue (ticket 0), the token itself.
fn session_key(claims: &AccessClaims) -> String {
    if claims.tkt > 0 {
        format!("t{}", claims.tkt)
    } else {
        format!("j{}", claims.jti)
    }
}

/// Ends a fan's session: its slot goes to the next fan, and its access
/// token stops working here at once and on every other proxy from its next
/// tick; until then the token would still reach the core, beyond the
/// active-fan cap.
async fn end_session(state: &EdgeState, token: &str, claims: &AccessClaims) {
    state.tokens.forget(token);
    state
        .metrics
        .event(claims.evt)
        .sessions_ended
        .fetch_add(1, Ordering::Relaxed);
    let key = session_key(claims);
    if let Some(room) = state.rooms.get(claims.evt) {
        room.end(key.clone(), claims.exp);
    }
    if let Some(store) = state.store()
        && let Err(e) = store.end_session(claims.evt, claims.tkt, &key, claims.exp).await
    {
        tracing::warn!(event_id = claims.evt, error = %e, "could not share a session's end; other proxies accept its token until it expires");
    }
}
