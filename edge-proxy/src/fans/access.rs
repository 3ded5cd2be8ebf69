//! The token checks: an access token on a protected request, a queue token
//! on a waiting fan's status or stream. Both refuse with a `Refusal`, whose
//! `code()` is the stable reason clients, metrics and dashboards see.

use pingora::proxy::Session;
use serde_json::json;
use usher_shared::{AccessClaims, QueueClaims, TokenError};

use super::request::{Request, access_cookie, access_cookies, queue_cookie};
use super::session::session_key;
use crate::queue::Room;
use crate::respond;
use crate::rules::Protected;
use crate::state::EdgeState;

/// Why a request's token was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no access token")]
    AccessMissing,
    #[error("no queue token")]
    QueueMissing,
    /// The token itself did not verify (malformed, unknown key, bad
    /// signature, expired, another issuer or audience).
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("the token is for another event")]
    WrongEvent,
    #[error("the token was issued to another client")]
    OtherClient,
    #[error("the session this token admitted has ended")]
    SessionEnded,
}

impl Refusal {
    /// The stable reason: the 401 and 403 bodies' code or `reason`, and the
    /// rejections metric's label.
    pub fn code(self) -> &'static str {
        match self {
            Refusal::AccessMissing => "access_token_missing",
            Refusal::QueueMissing => "queue_token_missing",
            Refusal::Token(e) => e.code(),
            Refusal::WrongEvent => "token_wrong_event",
            Refusal::OtherClient => "token_other_client",
            Refusal::SessionEnded => "session_ended",
        }
    }
}

/// The access token a protected request must carry: the `usher-access`
/// header (apps) or the event's cookie (browsers); for a path of no one
/// event, any event's cookie. The first that passes every check is taken;
/// if none does, the last one's refusal is the answer.
pub fn check_access(state: &EdgeState, req: &Request, need: Protected) -> Result<(String, AccessClaims), Refusal> {
    let header = req.access.as_deref();
    let candidates: Vec<&str> = match need {
        Protected::Event(event) => header.into_iter().chain(req.cookie(&access_cookie(event))).collect(),
        _ => header.into_iter().chain(access_cookies(req)).collect(),
    };
    let event = match need {
        Protected::Event(event) => Some(event),
        _ => None,
    };
    let bnd = req.own_binding();
    let mut refusal = Refusal::AccessMissing;
    for token in candidates {
        let checked = state
            .tokens
            .verify_access(token)
            .map_err(Refusal::from)
            .and_then(|claims| {
                bound_here(claims.evt, &claims.bnd, event, &bnd)?;
                let ended = state
                    .rooms
                    .get(claims.evt)
                    .is_some_and(|room| room.has_ended(&session_key(&claims)));
                if ended { Err(Refusal::SessionEnded) } else { Ok(claims) }
            });
        match checked {
            Ok(claims) => return Ok((token.to_owned(), claims)),
            Err(e) => refusal = e,
        }
    }
    Err(refusal)
}

/// The fan's queue token (bearer, the event's cookie, or `?token=` for an
/// event stream), checked against this room and this client. Returns the
/// claims and the client's binding.
pub fn check_queue(state: &EdgeState, req: &Request, room: &Room) -> Result<(QueueClaims, String), Refusal> {
    let token = req
        .bearer()
        .or_else(|| req.cookie(&queue_cookie(room.event)))
        .or_else(|| req.query_param("token"))
        .ok_or(Refusal::QueueMissing)?;
    let claims = state.tokens.verify_queue(token)?;
    let bnd = req.own_binding();
    bound_here(claims.evt, &claims.bnd, Some(room.event), &bnd)?;
    Ok((claims, bnd))
}

/// What a waiting fan without a good queue token is told (401).
pub const JOIN_FIRST: &str = "join the queue first (or again)";

/// Answers a waiting fan's request whose queue token was refused, and counts
/// the refusal.
pub async fn refuse_waiting(state: &EdgeState, session: &mut Session, refusal: Refusal) -> respond::Result<()> {
    state.metrics.rejected(refusal.code());
    respond::problem(session, 401, refusal.code(), JOIN_FIRST, json!({})).await
}

/// A verified token counts only for the event asked about (if any) and for
/// the client it was issued to.
fn bound_here(token_event: i64, token_binding: &str, event: Option<i64>, binding: &str) -> Result<(), Refusal> {
    if event.is_some_and(|event| event != token_event) {
        return Err(Refusal::WrongEvent);
    }
    if token_binding != binding {
        return Err(Refusal::OtherClient);
    }
    Ok(())
}
