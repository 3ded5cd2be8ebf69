//! The one `ProxyHttp` impl. A request's life at the edge:
//!
//! 1. `request_filter`, in steps: the path is rewritten to its one
//!    canonical form (`usher_shared::paths`), or refused, before anything
//!    reads it, so what the edge decides on is what the core routes; the
//!    waiting room's own pages answer (`crate::fans`); the path is
//!    classified; unprotected GETs the core marked public are answered from
//!    the cache; bypass rules let staff and health checks through; the
//!    client's rate is limited; a protected path needs a valid access token
//!    for its event, bound to this client (`fans::check_access`), or it is
//!    refused and never reaches the core.
//! 2. `upstream_peer`: a healthy booking-core, round robin.
//! 3. `upstream_request_filter`: only the verified access token is
//!    forwarded (`usher-access`), never one the client made up.
//! 4. `response_filter`: the core's "this fan is done" header ends the
//!    fan's session, so the next fan is admitted at the next tick; a
//!    cacheable answer starts filling the cache (`response_body_filter`).
//! 5. `logging`: metrics.
//!
//! Each request has a span (`edge.request`, a child of the client's
//! `traceparent` if it sent one) that every step runs in, with the event's
//! id once known; forwarding to a core is a child span (`edge.forward`)
//! whose context goes to the core as `traceparent`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use serde_json::json;
use tracing::Instrument;
use usher_shared::telemetry;
use usher_shared::{ACCESS_HEADER, AccessClaims, SESSION_DONE_HEADER};

use crate::fans::request::{Request, clear_access_cookie, client_ip};
use crate::fans::{self, Refusal, check_access, session};
use crate::limits::Kind;
use crate::respond;
use crate::rules::Protected;
use crate::state::EdgeState;

mod cached;
mod canonical;
mod failure;

use cached::serve_cached;
use canonical::canonicalise;

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
    /// Connections to a core that failed and were tried on another.
    connect_retries: u8,
    /// The cache key of a cacheable request that missed.
    cache_key: Option<String>,
    filling: Option<crate::cache::Filling>,
    /// The request's span, from its first filter to `logging`.
    span: RequestSpan,
    /// Forwarding to a core: from `upstream_peer` to the core's answer.
    forward: Option<tracing::Span>,
}

/// A span that is none until `request_filter` makes it.
struct RequestSpan(tracing::Span);

impl Default for RequestSpan {
    fn default() -> Self {
        RequestSpan(tracing::Span::none())
    }
}

impl std::ops::Deref for RequestSpan {
    type Target = tracing::Span;
    fn deref(&self) -> &tracing::Span {
        &self.0
    }
}

/// How long the token minted for bypassed traffic to a protected event lasts.
const BYPASS_TOKEN_SECS: u64 = 60;
/// Connect failures retried on the next core before the fan gets a 502:
/// enough to step over one or two dead cores between health checks.
const CONNECT_RETRIES: u8 = 2;

#[async_trait]
impl ProxyHttp for Edge {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx::default()
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> pingora::Result<bool> {
        ctx.received = Some(Instant::now());
        let req = session.req_header();
        let span = tracing::info_span!(
            "edge.request",
            otel.kind = "server",
            method = %req.method,
            path = %req.uri.path(),
            event_id = tracing::field::Empty,
            status = tracing::field::Empty,
        );
        telemetry::set_parent(&span, &req.headers);
        ctx.span = RequestSpan(span.clone());
        self.filter_request(session, ctx).instrument(span).await
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> pingora::Result<Box<HttpPeer>> {
        let upstream = self
            .state
            .upstreams
            .select(b"", 256)
            .ok_or_else(|| pingora::Error::explain(pingora::ErrorType::ConnectNoRoute, "no ready booking-core"))?;
        ctx.upstream_started = Some(Instant::now());
        // A retry on the next core ends the span of the failed attempt.
        ctx.forward = Some(tracing::info_span!(
            parent: &ctx.span.0,
            "edge.forward",
            otel.kind = "client",
            upstream = %upstream.addr,
            status = tracing::field::Empty,
        ));
        let mut peer = HttpPeer::new(upstream, false, String::new());
        let limits = &self.state.config.upstream;
        peer.options.connection_timeout = Some(Duration::from_millis(limits.connect_timeout_ms));
        peer.options.read_timeout = Some(Duration::from_millis(limits.read_timeout_ms));
        Ok(Box::new(peer))
    }

    /// The edge's own answer when the core could not give one, as a
    /// problem (never Pingora's bare 500): no ready core or a refused
    /// connection is 503 with Retry-After (nothing reached a core: safe to
    /// send again), a core that stopped answering is 504, anything else 502.
    async fn fail_to_proxy(&self, session: &mut Session, e: &pingora::Error, ctx: &mut Ctx) -> FailToProxy {
        if matches!(
            e.esource(),
            pingora::ErrorSource::Upstream | pingora::ErrorSource::Unset
        ) {
            ctx.upstream_failed = true;
        }
        let Some((status, code, detail)) = failure::answer(e) else {
            // The client went away: nobody to tell.
            return FailToProxy {
                error_code: 0,
                can_reuse_downstream: false,
            };
        };
        // Once the core's answer has begun, nothing else can be said.
        if session.response_written().is_none() {
            // The connection is not kept after a failure: say so, or a
            // client sends its next request on it as it closes.
            let retry = vec![("retry-after", "1".to_string()), ("connection", "close".to_string())];
            let answer = respond::problem_with(session, status, code, detail, json!({}), retry);
            if let Err(e) = answer.instrument(ctx.span.clone()).await {
                tracing::debug!(error = %e, "could not tell the client the core failed");
            }
        }
        FailToProxy {
            error_code: status,
            can_reuse_downstream: false,
        }
    }

    /// A core that refused or did not take the connection got nothing of
    /// the request: send it to the next core (round robin moves on) rather
    /// than fail the fan in the second before the health check notices.
    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Ctx,
        mut e: Box<pingora::Error>,
    ) -> Box<pingora::Error> {
        if ctx.connect_retries < CONNECT_RETRIES {
            ctx.connect_retries += 1;
            e.set_retry(true);
        }
        e
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
        // The core's spans are children of this forwarding; whatever trace
        // context the client sent was read into the request's span already.
        upstream_request.remove_header("traceparent");
        upstream_request.remove_header("tracestate");
        let mut context = http::HeaderMap::new();
        telemetry::inject(ctx.forward.as_ref().unwrap_or(&ctx.span), &mut context);
        for (name, value) in context {
            if let Some(name) = name {
                upstream_request.insert_header(name, value)?;
            }
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
        if let Some(forward) = ctx.forward.take() {
            forward.record("status", response.status.as_u16());
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
            session::end(&self.state, token, claims).await;
            response.append_header("set-cookie", clear_access_cookie(&self.state, claims.evt))?;
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
            ctx.span.record("status", status);
        }
        ctx.forward = None;
        let failed = e.is_some() || ctx.upstream_failed;
        tracing::debug!(parent: &ctx.span.0, status, failed, "answered");
        if failed {
            self.state.metrics.upstream_errors.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(started) = ctx.upstream_started {
            let latency = ctx.upstream_latency.unwrap_or_else(|| started.elapsed());
            self.state.core_health.record(latency, failed);
        }
    }
}

impl Edge {
    /// `request_filter`'s steps, in the request's span.
    async fn filter_request(&self, session: &mut Session, ctx: &mut Ctx) -> pingora::Result<bool> {
        if canonicalise(session).await? {
            return Ok(true);
        }
        if fans::serve(&self.state, session).await? {
            return Ok(true);
        }
        let need = self.classify(session);
        if let Protected::Event(event) = need {
            ctx.span.record("event_id", event);
        }
        match need {
            Protected::No => return serve_cached(&self.state, session, ctx).await,
            Protected::Optional => {
                self.carry_access_if_any(session, ctx);
                return Ok(false);
            }
            Protected::Event(_) | Protected::AnySession => {}
        }
        if self.bypass(session, need, ctx) {
            return Ok(false);
        }
        if !self
            .state
            .limits
            .allow(Kind::Protected, client_ip(&self.state, session))
        {
            self.state.metrics.rate_limited.fetch_add(1, Ordering::Relaxed);
            respond::rate_limited(session).await?;
            return Ok(true);
        }
        let req = Request::of(session);
        match check_access(&self.state, &req, need) {
            Ok(access) => {
                self.admit(access, ctx);
                Ok(false)
            }
            Err(refusal) => {
                self.refuse(session, &req, need, refusal).await?;
                Ok(true)
            }
        }
    }

    /// What the request's path needs: nothing where no waiting room is
    /// open for it.
    fn classify(&self, session: &Session) -> Protected {
        let state = &self.state;
        match state.protection.classify(session.req_header().uri.path()) {
            Protected::Event(event) if !state.rooms.is_protected(event) => Protected::No,
            Protected::AnySession | Protected::Optional if state.rooms.is_empty() => Protected::No,
            need => need,
        }
    }

    /// A path that takes an access token without needing one: forward it
    /// if the request carries a good one.
    fn carry_access_if_any(&self, session: &Session, ctx: &mut Ctx) {
        let req = Request::of(session);
        if let Ok((token, claims)) = check_access(&self.state, &req, Protected::AnySession) {
            session::touch(&self.state, &claims);
            ctx.span.record("event_id", claims.evt);
            ctx.access = Some((token, claims));
        }
    }

    /// Bypass rules let staff and health checks through uncounted. The core
    /// still wants an admission token for a protected event: they get a
    /// short one of their own.
    fn bypass(&self, session: &Session, need: Protected, ctx: &mut Ctx) -> bool {
        let state = &self.state;
        let header = |name: &str| header(session, name).map(str::to_owned);
        if !state
            .bypass
            .matches(session.req_header().uri.path(), header, client_ip(state, session))
        {
            return false;
        }
        state.metrics.bypassed.fetch_add(1, Ordering::Relaxed);
        if let Protected::Event(event) = need {
            ctx.access = Some(state.tokens.issue_access(event, 0, "bypass", BYPASS_TOKEN_SECS));
        }
        true
    }

    /// A protected request with a good access token: counted, its session
    /// kept alive, and the token forwarded.
    fn admit(&self, (token, claims): (String, AccessClaims), ctx: &mut Ctx) {
        self.state
            .metrics
            .event(claims.evt)
            .protected_requests
            .fetch_add(1, Ordering::Relaxed);
        session::touch(&self.state, &claims);
        ctx.access = Some((token, claims));
    }

    /// A protected request without admission never reaches the core: a
    /// browser is sent to the waiting page, anything else gets 403 with the
    /// refusal's reason.
    async fn refuse(
        &self,
        session: &mut Session,
        req: &Request,
        need: Protected,
        refusal: Refusal,
    ) -> pingora::Result<()> {
        let state = &self.state;
        state.metrics.rejected(refusal.code());
        if refusal == Refusal::OtherClient {
            state.defences.replayed(client_ip(state, session), "access_token");
        }
        let queue = match need {
            Protected::Event(event) => Some(format!("/queue/{event}")),
            _ => None,
        };
        let wants_html = req.method == "GET" && header(session, "accept").is_some_and(|a| a.contains("text/html"));
        match queue {
            Some(queue) if wants_html => {
                respond::send(session, 303, "text/plain", bytes::Bytes::new(), &[("location", queue)]).await
            }
            queue => {
                respond::problem(
                    session,
                    403,
                    "admission_required",
                    "this part of the sale is open to fans admitted from the waiting room",
                    json!({"reason": refusal.code(), "queue_url": queue}),
                )
                .await
            }
        }
    }
}

fn header<'a>(session: &'a Session, name: &str) -> Option<&'a str> {
    session.req_header().headers.get(name).and_then(|v| v.to_str().ok())
}
