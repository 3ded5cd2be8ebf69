//! `POST /queue/{event}/join`: a place in the queue. A rejoin with a valid
//! queue token keeps its place; a new join passes the bot defences, then
//! takes a ticket in Redis and gets a queue token (cookie and body).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use pingora::proxy::Session;
use serde::Serialize;
use serde_json::json;

use super::admitted::admit_without_queue;
use super::gate::{knock, refused, take_back, with_code};
use super::request::{Request, client_ip, queue_cookie, set_cookie};
use crate::config::QueueMode;
use crate::defence::Gate;
use crate::queue::store::{JoinGuard, JoinOutcome};
use crate::queue::{Room, Standing};
use crate::respond;
use crate::state::EdgeState;

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

pub async fn join(
    state: &Arc<EdgeState>,
    session: &mut Session,
    req: &Request,
    room: &Arc<Room>,
) -> respond::Result<()> {
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
    let (client, mut headers) = req.client_or_new(state);
    let bnd = req.binding(&client);
    // Rejoining with a valid token for this event and client keeps the place.
    let presented = req
        .bearer()
        .map(str::to_owned)
        .or_else(|| req.cookie(&queue_cookie(room.event)).map(str::to_owned));
    let ip = client_ip(state, session);
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
    // A room whose ticks fail is cut off from Redis: joins would fail too.
    let Some(store) = state.store().filter(|_| room.progress().healthy) else {
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

/// Where a fan's position stream is: the dedicated listener if there is
/// one, else this proxy.
fn stream_url(state: &EdgeState, event: i64) -> String {
    let listen = &state.config.listen;
    match (&listen.stream_url, listen.streams) {
        (Some(base), _) => format!("{}/queue/{event}/events", base.as_str().trim_end_matches('/')),
        (None, Some(addr)) => {
            let scheme = if listen.streams_tls { "https" } else { "http" };
            format!("{scheme}://{addr}/queue/{event}/events")
        }
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
    headers: Vec<(&str, String)>,
) -> respond::Result<()> {
    if let Some(admission) = admit_without_queue(state, room, bnd) {
        return admission.send(state, session, None, headers).await;
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
