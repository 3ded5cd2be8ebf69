//! The waiting room as fans reach it over HTTP (`queue/` holds the room
//! itself). This file routes `/queue/{event}/...` to the file that answers:
//!
//! - `POST /queue/{event}/join` (`join.rs`): a place (or the same place
//!   again, with a valid queue token); the token comes back in an HttpOnly
//!   cookie for browsers and in the JSON body for apps; new joins pass the
//!   bot defences first (`gate.rs`);
//! - `GET /queue/{event}/status` (`status.rs`): where the fan stands, as
//!   JSON; once admitted, the access token (`admitted.rs`);
//! - `GET /queue/{event}/events` (`stream.rs`): the same, live, as
//!   Server-Sent Events (ids are the proxy's tick; a position is state, not
//!   history, so a reconnect, with or without `Last-Event-ID`, resumes with
//!   the current standing at once); `stream_listener.rs` serves the same
//!   stream on a dedicated port;
//! - `GET /queue/{event}/challenge` (`challenge.rs`): a proof-of-work puzzle
//!   to solve before joining (a join without one is answered 428 with one
//!   too);
//! - `GET /queue/{event}/lottery` (`lottery.rs`): a lottery's public record
//!   (seed hash before, seed and entrants after the draw);
//! - `GET /queue/{event}` (`page.rs`): the waiting page, which uses the
//!   above;
//! - `GET /queue/openapi.json`: these endpoints' OpenAPI document
//!   (`crate::openapi`).
//!
//! The proxy checks protected requests with `access.rs` and keeps admitted
//! fans' sessions with `session.rs`.

mod access;
mod admitted;
mod challenge;
mod gate;
mod join;
mod lottery;
mod page;
pub mod request;
pub mod session;
mod status;
mod stream;
pub mod stream_listener;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use pingora::proxy::Session;
use serde_json::json;

use crate::limits::Kind;
use crate::respond;
use crate::state::EdgeState;
pub use access::{Refusal, check_access};
use access::{check_queue, refuse_waiting};
pub use request::Request;
use request::client_ip;

/// Serves `/queue/...`. Returns false if the path is not the waiting room's.
pub async fn serve(state: &Arc<EdgeState>, session: &mut Session) -> respond::Result<bool> {
    if !session.req_header().uri.path().starts_with("/queue/") {
        return Ok(false);
    }
    let req = Request::of(session);
    let Some(rest) = req.path.strip_prefix("/queue/") else {
        return Ok(false);
    };
    if req.path == crate::openapi::FANS_PATH && req.method == "GET" {
        respond::send(session, 200, "application/json", crate::openapi::fans(), &[]).await?;
        return Ok(true);
    }
    let kind = if req.method == "POST" { Kind::Join } else { Kind::Status };
    if !state.limits.allow(kind, client_ip(state, session)) {
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
        ("GET", "") => page::page(session, &room).await?,
        ("POST", "join") => join::join(state, session, &req, &room).await?,
        // A waiting fan's own answers need its queue token.
        ("GET", "status" | "events") => match check_queue(state, &req, &room) {
            Err(refusal) => refuse_waiting(state, session, refusal).await?,
            Ok((claims, bnd)) if action == "status" => status::status(state, session, &room, claims.tkt, &bnd).await?,
            Ok((claims, bnd)) => stream::stream(state, session, &room, claims.tkt, &bnd).await?,
        },
        ("GET", "lottery") => lottery::record(session, &room).await?,
        ("GET", "challenge") => challenge::challenge(state, session, &req, &room).await?,
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
