//! What fans see of the waiting room:
//!
//! - `POST /queue/{event}/join`: a place (or the same place again, with a
//!   valid queue token); the token comes back in an HttpOnly cookie for
//!   browsers and in the JSON body for apps;
//! - `GET /queue/{event}/status`: where the fan stands, as JSON; once
//!   admitted, the access token;
//! - `GET /queue/{event}/events`: the same, live, as Server-Sent Events
//!   (ids are the proxy's tick; a position is state, not history, so a
//!   reconnect, with or without `Last-Event-ID`, resumes with the current
//!   standing at once);
//! - `GET /queue/{event}/challenge`: a proof-of-work puzzle to solve before
//!   joining (a join without one is answered 428 with one too);
//! - `GET /queue/{event}/lottery`: a lottery's public record (seed hash
//!   before, seed and entrants after the draw);
//! - `GET /queue/{event}`: the waiting page, which uses the two above.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use pingora::proxy::Session;
use serde::Serialize;
use serde_json::json;

use crate::config::{QueueMode, RedisFailure};
use crate::defence::risk::Signals;
use crate::defence::{Gate, Knock};
use crate::limits::Kind;
use crate::queue::store::{JoinGuard, JoinOutcome};
use crate::queue::{Room, Standing};
use crate::respond;
use crate::state::EdgeState;
use crate::tokens;

/// The parts of a request the waiting room looks at.
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: String,
    cookies: Vec<(String, String)>,
    authorization: Option<String>,
    client_header: Option<String>,
    user_agent: String,
    accept_language: String,
    /// The bot defences' headers: a solved puzzle, a CAPTCHA token, the
    /// fan's identity token.
    pow: Option<String>,
    captcha: Option<String>,
    fan: Option<String>,
}

impl Request {
    pub fn of(session: &Session) -> Request {
        let h = session.req_header();
        Request::from_parts(h.method.as_str(), &h.uri, &h.headers)
    }

    pub fn from_parts(method: &str, uri: &http::Uri, headers: &http::HeaderMap) -> Request {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let cookies = headers
            .get_all("cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
            .collect();
        Request {
            method: method.to_owned(),
            path: uri.path().to_owned(),
            query: uri.query().unwrap_or("").to_owned(),
            cookies,
            authorization: header("authorization"),
            client_header: header("usher-client"),
            user_agent: header("user-agent").unwrap_or_default(),
            accept_language: header("accept-language").unwrap_or_default(),
            pow: header("usher-pow"),
            captcha: header("usher-captcha"),
            fan: header("usher-fan"),
        }
    }

    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn cookies_with_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.cookies
            .iter()
            .filter(move |(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v.as_str())
    }

    fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .split('&')
            .find_map(|kv| kv.split_once('=').filter(|(k, _)| *k == name).map(|(_, v)| v))
    }

    fn bearer(&self) -> Option<&str> {
        self.authorization.as_deref().and_then(|a| a.strip_prefix("Bearer "))
    }

    /// The client id this request carries (cookie for browsers, header for
    /// apps), if any.
    pub fn client_id(&self) -> Option<&str> {
        self.cookie(CLIENT_COOKIE)
            .or(self.client_header.as_deref())
            .filter(|c| !c.is_empty() && c.len() <= 64)
    }

    /// The binding of this request's client, given its client id.
    pub fn binding(&self, client: &str) -> String {
        tokens::binding(client, &self.user_agent, &self.accept_language)
    }
}

pub const CLIENT_COOKIE: &str = "usher_client";

pub fn queue_cookie(event: i64) -> String {
    format!("usher_q_{event}")
}

pub fn access_cookie(event: i64) -> String {
    format!("usher_access_{event}")
}

fn set_cookie(state: &EdgeState, name: &str, value: &str, max_age: u64) -> String {
    let secure = if state.config.tokens.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    format!("{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}")
}

#[derive(Serialize)]
struct Joined<'a> {
    event_id: i64,
    ticket: u64,
    queue_token: &'a str,
    /// Send back as the `usher-client` header if cookies are not kept.
    client_id: &'a str,
    #[serde(flatten)]
    standing: Standing,
    status_url: String,
    stream_url: String,
}

#[derive(Serialize)]
struct Admitted<'a> {
    status: &'static str,
    event_id: i64,
    /// Send as the `usher-access` header (apps) or keep the cookie (browsers).
    access_token: &'a str,
    expires_in_secs: u64,
    next: String,
    /// The room's tick that admitted the fan (absent where no tick did).
    #[serde(skip_serializing_if = "Option::is_none")]
    tick: Option<u64>,
}

/// A status answer while waiting: the standing and the tick it is as of.
#[derive(Serialize)]
struct AsOf {
    #[serde(flatten)]
    standing: Standing,
    tick: u64,
}

/// Serves `/queue/...`. Returns false if the path is not the waiting room's.
pub async fn serve(state: &Arc<EdgeState>, session: &mut Session) -> respond::Result<bool> {
    if !session.req_header().uri.path().starts_with("/queue/") {
        return Ok(false);
    }
    let req = Request::of(session);
    let Some(rest) = req.path.strip_prefix("/queue/") else {
        return Ok(false);
    };
    let kind = if req.method == "POST" { Kind::Join } else { Kind::Status };
    let client = session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip());
    if !state.limits.allow(kind, client) {
        state.metrics.rate_limited.fetch_add(1, Ordering::Relaxed);
        respond::rate_limited(session).await?;
        return Ok(true);
    }
    let (event, action) = rest.split_once('/').unwrap_or((rest, ""));
    let Ok(event) = event.parse::<i64>() else {
        respond::problem(session, 404, "queue_not_found", "no waiting room here", json!({})).await?;
        return Ok(true);
    };
    let Some(room) = state.rooms.get(event) else {
        respond::problem(
            session,
            404,
            "queue_not_found",
            "this event has no waiting room",
            json!({}),
        )
        .await?;
        return Ok(true);
    };
    match (req.method.as_str(), action) {
        ("GET", "") => page(state, session, &room).await?,
        ("POST", "join") => join(state, session, &req, &room).await?,
        ("GET", "status") => status(state, session, &req, &room).await?,
        ("GET", "events") => stream(state, session, &req, &room).await?,
        ("GET", "lottery") => lottery(session, &room).await?,
        ("GET", "challenge") => challenge(state, session, &req, &room).await?,
        (_, "" | "join" | "status" | "events" | "lottery" | "challenge") => {
            respond::problem(
                session,
                405,
                "method_not_allowed",
                "this resource does not take that method",
                json!({}),
            )
            .await?
        }
        _ => respond::problem(session, 404, "not_found", "no such resource", json!({})).await?,
    }
    Ok(true)
}

fn queue_unavailable(state: &EdgeState, room: &Room) -> bool {
    state.store().is_none() || !room.progress().healthy
}

async fn join(state: &Arc<EdgeState>, session: &mut Session, req: &Request, room: &Arc<Room>) -> respond::Result<()> {
    let settings = room.settings();
    if settings.mode == QueueMode::Closed {
        let detail = if settings.message.is_empty() {
            "this sale is closed"
        } else {
            settings.message.as_str()
        };
        return respond::problem(
            session,
            410,
            "queue_closed",
            detail,
            json!({"message": settings.message}),
        )
        .await;
    }
    let (client, new_client) = match req.client_id() {
        Some(c) => (c.to_owned(), false),
        None => (uuid::Uuid::new_v4().simple().to_string(), true),
    };
    let bnd = req.binding(&client);
    let mut headers = Vec::new();
    if new_client {
        headers.push(("set-cookie", set_cookie(state, CLIENT_COOKIE, &client, 30 * 86400)));
    }
    // Rejoining with a valid token for this event and client keeps the place.
    let presented = req
        .bearer()
        .map(str::to_owned)
        .or_else(|| req.cookie(&queue_cookie(room.event)).map(str::to_owned));
    let ip = session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip());
    if let Some(token) = presented
        && let Ok(claims) = state.tokens.verify_queue(&token)
        && claims.evt == room.event
    {
        if claims.bnd != bnd {
            // Another client's token (a copied cookie): counts against this one.
            state.defences.replayed(ip, "queue_token");
        } else if room.standing(claims.tkt) != Standing::Lost {
            room.mark_seen(claims.tkt);
            return joined(state, session, room, &token, claims.tkt, &client, headers).await;
        }
    }
    let (nonce, fan) = match state.defences.gate(&knock(req, room, ip, &bnd), true).await {
        Gate::Pass { nonce, fan } => (nonce, fan),
        other => {
            take_back(state, &other).await;
            return refused(session, other, headers).await;
        }
    };
    let Some(store) = state.store().filter(|_| !queue_unavailable(state, room)) else {
        return unavailable(state, session, room, &bnd, headers).await;
    };
    // A lottery takes entrants only once its seed's hash is published.
    if settings.mode == QueueMode::Lottery && room.lottery().seed_hash.is_none() {
        return respond::problem(
            session,
            503,
            "queue_opening",
            "the waiting room is opening; try again in a second",
            json!({}),
        )
        .await;
    }
    // One retry: a single slow or dropped answer should not cost a fan
    // the place (at worst an unused ticket is skipped like a lost one). The
    // retry carries the same request id, so it may spend its own challenge.
    let request = uuid::Uuid::new_v4().simple().to_string();
    let guard = JoinGuard {
        challenge: nonce.as_deref(),
        challenge_ttl_ms: state.config.defence.pow.as_ref().map_or(0, |p| p.ttl_secs * 1000),
        request: &request,
        fan: fan.as_deref(),
    };
    let attempt = match store.join(room.event, &guard).await {
        Ok(t) => Ok(t),
        Err(_) => store.join(room.event, &guard).await,
    };
    let ticket = match attempt {
        Ok(JoinOutcome::New(t)) => {
            state.defences.token_issued(&bnd);
            state.defences.place_taken(ip, room.event, t);
            if fan.is_some() {
                state.defences.count("usher_fan_places_total", "place=\"new\"".into());
            }
            t
        }
        Ok(JoinOutcome::Again(t)) => {
            state.defences.count("usher_fan_places_total", "place=\"again\"".into());
            room.mark_seen(t);
            t
        }
        Ok(JoinOutcome::ChallengeSpent) => {
            state.defences.replayed(ip, "challenge");
            let gate = state.defences.gate(&knock(req, room, ip, &bnd), false).await;
            // The replay may be what tips the address over: its places go.
            take_back(state, &gate).await;
            return refused(session, with_code(gate, "challenge_spent"), headers).await;
        }
        Err(e) => {
            tracing::warn!(event_id = room.event, error = %e, "join failed: Redis");
            return unavailable(state, session, room, &bnd, headers).await;
        }
    };
    state.metrics.event(room.event).joined.fetch_add(1, Ordering::Relaxed);
    let token = state.tokens.issue_queue(room.event, ticket, &bnd);
    headers.push((
        "set-cookie",
        set_cookie(
            state,
            &queue_cookie(room.event),
            &token,
            state.config.tokens.queue_token_ttl_secs,
        ),
    ));
    joined(state, session, room, &token, ticket, &client, headers).await
}

fn knock<'a>(req: &'a Request, room: &Room, ip: Option<std::net::IpAddr>, bnd: &'a str) -> Knock<'a> {
    Knock {
        event: room.event,
        ip,
        binding: bnd,
        signals: Signals {
            user_agent: &req.user_agent,
            accept_language: &req.accept_language,
        },
        proof: req.pow.as_deref(),
        captcha: req.captcha.as_deref(),
        fan_token: req.fan.as_deref(),
    }
}

/// A client sent to the back or blocked loses the places it took lately.
async fn take_back(state: &EdgeState, gate: &Gate) {
    let (Gate::Defer { rule, take_back, .. } | Gate::Block { rule, take_back }) = gate else {
        return;
    };
    let Some(store) = state.store() else { return };
    let mut by_event: std::collections::BTreeMap<i64, Vec<u64>> = Default::default();
    for (event, ticket) in take_back {
        by_event.entry(*event).or_default().push(*ticket);
    }
    for (event, tickets) in by_event {
        match store.take_back(event, &tickets).await {
            Ok(n) => {
                for _ in 0..n {
                    state
                        .defences
                        .count("usher_places_taken_back_total", format!("rule=\"{rule}\""));
                }
            }
            Err(e) => tracing::warn!(event_id = event, error = %e, "taking places back failed: Redis"),
        }
    }
}

fn with_code(gate: Gate, code: &'static str) -> Gate {
    match gate {
        Gate::Challenge {
            challenge,
            bits,
            ttl_secs,
            ..
        } => Gate::Challenge {
            code,
            challenge,
            bits,
            ttl_secs,
        },
        other => other,
    }
}

/// The defences' refusals, as problems a client can act on.
async fn refused(session: &mut Session, gate: Gate, headers: Vec<(&str, String)>) -> respond::Result<()> {
    match gate {
        // Only after a spent challenge with no puzzle configured any more.
        Gate::Pass { .. } => {
            respond::problem_with(session, 409, "challenge_spent", "join again", json!({}), headers).await
        }
        Gate::Challenge {
            code,
            challenge,
            bits,
            ttl_secs,
        } => {
            let detail = match code {
                "challenge_required" => "solve the proof-of-work challenge, then join again with usher-pow",
                "challenge_spent" => "that challenge was already used; solve this one",
                "challenge_expired" => "that challenge expired; solve this one",
                _ => "that was not a solution to a challenge issued to you; solve this one",
            };
            respond::problem_with(
                session,
                428,
                code,
                detail,
                json!({ "challenge": challenge, "bits": bits, "algorithm": POW_ALGORITHM, "expires_in_secs": ttl_secs }),
                headers,
            )
            .await
        }
        Gate::Captcha {
            code,
            site_key,
            widget_url,
        } => {
            respond::problem_with(
                session,
                428,
                code,
                "complete the CAPTCHA, then join again with its token in usher-captcha",
                json!({ "site_key": site_key, "widget_url": widget_url }),
                headers,
            )
            .await
        }
        Gate::CaptchaUnavailable => {
            respond::problem_with(
                session,
                503,
                "captcha_unavailable",
                "the CAPTCHA check cannot be made right now; try again shortly",
                json!({}),
                headers,
            )
            .await
        }
        Gate::Defer {
            rule, retry_after_secs, ..
        } => {
            let mut headers = headers;
            headers.push(("retry-after", retry_after_secs.to_string()));
            respond::problem_with(
                session,
                429,
                "join_deferred",
                "too much is coming from your network: you can join when the wait is over, behind everyone who joined meanwhile",
                json!({ "reason": rule, "retry_after_secs": retry_after_secs }),
                headers,
            )
            .await
        }
        Gate::Block { rule, .. } => {
            respond::problem_with(
                session,
                403,
                "join_blocked",
                "this client looks automated and may not join",
                json!({ "reason": rule }),
                headers,
            )
            .await
        }
    }
}

/// How a solution is checked, for clients.
const POW_ALGORITHM: &str =
    "sha256: find a decimal counter such that SHA-256(challenge + \":\" + counter) starts with `bits` zero bits";

/// `GET /queue/{event}/challenge`: a puzzle for this client, before it joins.
async fn challenge(
    state: &Arc<EdgeState>,
    session: &mut Session,
    req: &Request,
    room: &Arc<Room>,
) -> respond::Result<()> {
    let (client, new_client) = match req.client_id() {
        Some(c) => (c.to_owned(), false),
        None => (uuid::Uuid::new_v4().simple().to_string(), true),
    };
    let bnd = req.binding(&client);
    let mut headers = Vec::new();
    if new_client {
        headers.push(("set-cookie", set_cookie(state, CLIENT_COOKIE, &client, 30 * 86400)));
    }
    let ip = session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip());
    match state.defences.gate(&knock(req, room, ip, &bnd), false).await {
        Gate::Challenge {
            challenge,
            bits,
            ttl_secs,
            ..
        } => {
            let body = json!({
                "event_id": room.event,
                "challenge": challenge,
                "bits": bits,
                "algorithm": POW_ALGORITHM,
                "expires_in_secs": ttl_secs,
                "client_id": client,
            });
            respond::json(session, 200, &body, &headers).await
        }
        Gate::Pass { .. } => {
            respond::problem_with(
                session,
                404,
                "challenge_not_needed",
                "this edge asks no puzzle: join directly",
                json!({}),
                headers,
            )
            .await
        }
        other => {
            take_back(state, &other).await;
            refused(session, other, headers).await
        }
    }
}

/// Where a fan's position stream is: the dedicated listener if there is
/// one, else this proxy.
fn stream_url(state: &EdgeState, event: i64) -> String {
    let listen = &state.config.listen;
    match (&listen.stream_url, listen.streams) {
        (Some(base), _) => format!("{}/queue/{event}/events", base.trim_end_matches('/')),
        (None, Some(addr)) => format!("http://{addr}/queue/{event}/events"),
        (None, None) => format!("/queue/{event}/events"),
    }
}

async fn joined(
    state: &Arc<EdgeState>,
    session: &mut Session,
    room: &Arc<Room>,
    token: &str,
    ticket: u64,
    client: &str,
    headers: Vec<(&str, String)>,
) -> respond::Result<()> {
    let body = Joined {
        event_id: room.event,
        ticket,
        queue_token: token,
        client_id: client,
        standing: room.standing(ticket),
        status_url: format!("/queue/{}/status", room.event),
        stream_url: stream_url(state, room.event),
    };
    respond::json(session, 200, &body, &headers).await
}

/// Redis is out of reach: fail closed (wait and retry) or open (admit at a
/// fixed rate, with no order), as configured.
async fn unavailable(
    state: &Arc<EdgeState>,
    session: &mut Session,
    room: &Arc<Room>,
    bnd: &str,
    mut headers: Vec<(&str, String)>,
) -> respond::Result<()> {
    let open = state.config.redis.on_failure == RedisFailure::Open
        && state.fail_open.lock().unwrap_or_else(|e| e.into_inner()).take();
    if open {
        let settings = room.settings();
        let (token, _) = state.tokens.issue_access(room.event, 0, bnd, settings.session_secs);
        state
            .metrics
            .event(room.event)
            .admitted_tokens
            .fetch_add(1, Ordering::Relaxed);
        headers.push((
            "set-cookie",
            set_cookie(state, &access_cookie(room.event), &token, settings.session_secs),
        ));
        let body = Admitted {
            status: "admitted",
            event_id: room.event,
            access_token: &token,
            expires_in_secs: settings.session_secs,
            next: state.protection.after_admission(room.event),
            tick: None,
        };
        return respond::json(session, 200, &body, &headers).await;
    }
    respond::problem(
        session,
        503,
        "queue_unavailable",
        "the waiting room cannot take places right now; keep this page open, it retries by itself",
        json!({}),
    )
    .await
}

/// The fan's queue token, checked against this room and this client.
pub(crate) fn claims(
    state: &EdgeState,
    req: &Request,
    room: &Room,
) -> Result<(usher_shared::QueueClaims, String), &'static str> {
    let token = req
        .bearer()
        .or_else(|| req.cookie(&queue_cookie(room.event)))
        .or_else(|| req.query_param("token"))
        .ok_or("queue_token_missing")?;
    let claims = state.tokens.verify_queue(token).map_err(|e| e.code())?;
    if claims.evt != room.event {
        return Err("token_wrong_event");
    }
    let bnd = req.binding(req.client_id().unwrap_or(""));
    if claims.bnd != bnd {
        return Err("token_other_client");
    }
    Ok((claims, bnd))
}

/// Admits a fan whose ticket came up: confirms the session in Redis (it
/// lapses if the fan was not there to take it) and issues the access token.
async fn admit(state: &EdgeState, room: &Room, ticket: u64, bnd: &str) -> Result<(String, u64), &'static str> {
    let settings = room.settings();
    let store = state.store().ok_or("queue_unavailable")?;
    match store
        .touch_session(room.event, ticket, settings.session_secs * 1000)
        .await
    {
        Ok(true) => {
            let (token, _) = state
                .tokens
                .issue_access(room.event, ticket, bnd, settings.session_secs);
            state
                .metrics
                .event(room.event)
                .admitted_tokens
                .fetch_add(1, Ordering::Relaxed);
            Ok((token, settings.session_secs))
        }
        Ok(false) => Err("admission_expired"),
        Err(_) => Err("queue_unavailable"),
    }
}

async fn status(state: &Arc<EdgeState>, session: &mut Session, req: &Request, room: &Arc<Room>) -> respond::Result<()> {
    let (claims, bnd) = match claims(state, req, room) {
        Ok(c) => c,
        Err(code) => {
            state.metrics.rejected(code);
            return respond::problem(session, 401, code, "join the queue first (or again)", json!({})).await;
        }
    };
    room.mark_seen(claims.tkt);
    let (standing, tick) = room.standing_at(claims.tkt);
    match standing {
        Standing::Admitted => match admit(state, room, claims.tkt, &bnd).await {
            Ok((token, secs)) => {
                let cookie = set_cookie(state, &access_cookie(room.event), &token, secs);
                let body = Admitted {
                    status: "admitted",
                    event_id: room.event,
                    access_token: &token,
                    expires_in_secs: secs,
                    next: state.protection.after_admission(room.event),
                    tick: Some(tick),
                };
                respond::json(session, 200, &body, &[("set-cookie", cookie)]).await
            }
            Err("admission_expired") => {
                respond::problem(
                    session,
                    410,
                    "admission_expired",
                    "your turn came and went; join again",
                    json!({}),
                )
                .await
            }
            Err(code) => respond::problem(session, 503, code, "try again in a moment", json!({})).await,
        },
        Standing::Lost => {
            respond::problem(
                session,
                410,
                "place_lost",
                "you were away too long and lost your place; join again",
                json!({}),
            )
            .await
        }
        waiting => {
            respond::json(
                session,
                200,
                &AsOf {
                    standing: waiting,
                    tick,
                },
                &[],
            )
            .await
        }
    }
}

const HEARTBEAT: Duration = Duration::from_secs(15);
/// A fan's position is pushed at most this often: enough for a live page,
/// and it bounds the work per waiting fan however fast the queue moves.
const POSITION_EVERY: Duration = Duration::from_secs(1);

async fn stream(state: &Arc<EdgeState>, session: &mut Session, req: &Request, room: &Arc<Room>) -> respond::Result<()> {
    let (claims, bnd) = match claims(state, req, room) {
        Ok(c) => c,
        Err(code) => {
            state.metrics.rejected(code);
            return respond::problem(session, 401, code, "join the queue first (or again)", json!({})).await;
        }
    };
    let mut progress = room.watch();
    respond::sse_open(session).await?;
    state.metrics.sse_connections.fetch_add(1, Ordering::Relaxed);
    let result = follow(state, session, room, claims.tkt, &bnd, &mut progress).await;
    state.metrics.sse_connections.fetch_sub(1, Ordering::Relaxed);
    result
}

/// Where a position stream's events go: the proxy's own session, or the
/// dedicated stream listener's response body.
pub(crate) trait EventSink {
    type Error;
    async fn event(&mut self, name: &str, id: u64, data: &impl Serialize) -> Result<(), Self::Error>;
    async fn heartbeat(&mut self) -> Result<(), Self::Error>;
    async fn close(&mut self) -> Result<(), Self::Error>;
}

impl EventSink for Session {
    type Error = Box<pingora::Error>;

    async fn event(&mut self, name: &str, id: u64, data: &impl Serialize) -> respond::Result<()> {
        respond::sse_event(self, name, id, data).await
    }

    async fn heartbeat(&mut self) -> respond::Result<()> {
        respond::sse_heartbeat(self).await
    }

    async fn close(&mut self) -> respond::Result<()> {
        respond::sse_close(self).await
    }
}

/// Sends the fan's standing whenever a tick changes it (at most once per
/// `POSITION_EVERY`), until admitted or lost.
pub(crate) async fn follow<S: EventSink>(
    state: &Arc<EdgeState>,
    session: &mut S,
    room: &Arc<Room>,
    ticket: u64,
    bnd: &str,
    progress: &mut tokio::sync::watch::Receiver<crate::queue::Progress>,
) -> Result<(), S::Error> {
    let mut last: Option<Standing> = None;
    let now = tokio::time::Instant::now();
    let mut sent_at = now.checked_sub(POSITION_EVERY).unwrap_or(now);
    let mut wrote_at = now;
    // Telling the room this fan is still here, often enough for the grace
    // period but not on every wake.
    let seen_every = Duration::from_millis((room.settings().grace_secs * 1000 / 4).clamp(1_000, 10_000));
    let mut seen_at: Option<tokio::time::Instant> = None;
    loop {
        let now = tokio::time::Instant::now();
        if seen_at.is_none_or(|t| now.duration_since(t) >= seen_every) {
            room.mark_seen(ticket);
            seen_at = Some(now);
        }
        progress.borrow_and_update();
        let (standing, id) = room.standing_at(ticket);
        let mut pending = false;
        match standing {
            Standing::Admitted => {
                match admit(state, room, ticket, bnd).await {
                    Ok((token, secs)) => {
                        let body = Admitted {
                            status: "admitted",
                            event_id: room.event,
                            access_token: &token,
                            expires_in_secs: secs,
                            next: format!("/queue/{}/status", room.event),
                            tick: Some(id),
                        };
                        session.event("admitted", id, &body).await?;
                    }
                    Err(code) => session.event("expired", id, &json!({"code": code})).await?,
                }
                return session.close().await;
            }
            Standing::Lost => {
                session.event("lost", id, &json!({"code": "place_lost"})).await?;
                return session.close().await;
            }
            waiting if last != Some(waiting) => {
                if now.duration_since(sent_at) >= POSITION_EVERY {
                    session.event("position", id, &waiting).await?;
                    last = Some(waiting);
                    sent_at = now;
                    wrote_at = now;
                } else {
                    pending = true;
                }
            }
            _ => {}
        }
        if pending {
            // A newer position is owed; ticks in between change nothing
            // for this fan that cannot wait for it.
            tokio::time::sleep_until(sent_at + POSITION_EVERY).await;
            continue;
        }
        let wake = (wrote_at + HEARTBEAT).min(seen_at.map_or(now, |t| t + seen_every));
        tokio::select! {
            changed = progress.changed() => {
                if changed.is_err() {
                    return session.close().await;
                }
            }
            _ = tokio::time::sleep_until(wake) => {
                if tokio::time::Instant::now() >= wrote_at + HEARTBEAT {
                    session.heartbeat().await?;
                    wrote_at = tokio::time::Instant::now();
                }
            }
        }
    }
}

async fn lottery(session: &mut Session, room: &Arc<Room>) -> respond::Result<()> {
    let record = room.lottery();
    let body = json!({
        "event_id": room.event,
        "mode": room.settings().mode,
        "draw_at": room.settings().on_sale_at,
        "seed_hash": record.seed_hash,
        "seed": record.seed,
        "entrants": record.entrants,
        "state": record.state,
        "algorithm": "Fisher-Yates over tickets 1..=entrants: for i = entrants-1 down to 1, \
            r = u64 big-endian from the first 8 bytes of SHA-256(seed bytes || i as u64 big-endian), \
            swap order[i] and order[r mod (i+1)]; place of order[k] is k+1; seed_hash = SHA-256(seed bytes). \
            Recompute with: edge-proxy lottery-order --seed <seed> --entrants <n>",
    });
    respond::json(session, 200, &body, &[]).await
}

async fn page(state: &Arc<EdgeState>, session: &mut Session, room: &Arc<Room>) -> respond::Result<()> {
    let settings = room.settings();
    let hidden = if settings.message.is_empty() { "hidden" } else { "" };
    let html = include_str!("page.html")
        .replace("{{EVENT}}", &room.event.to_string())
        .replace("{{MESSAGE_HIDDEN}}", hidden)
        .replace("{{MESSAGE}}", &html_escape(&settings.message));
    let _ = state;
    respond::send(session, 200, "text/html; charset=utf-8", html.into(), &[]).await
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
