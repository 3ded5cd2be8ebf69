//! Admission as the fan receives it: the access token is issued, counted,
//! and answered (JSON body for apps, cookie for browsers) in this one place,
//! whether a tick admitted the fan or a Redis outage let it in (fail open).

use std::sync::atomic::Ordering;

use pingora::proxy::Session;
use serde::Serialize;

use super::request::{access_cookie, set_cookie};
use crate::config::RedisFailure;
use crate::locks;
use crate::queue::Room;
use crate::respond;
use crate::state::EdgeState;

/// The answer an admitted fan gets.
#[derive(Serialize)]
pub struct Admitted<'a> {
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

/// An access token just issued to a fan.
pub struct Admission {
    event: i64,
    token: String,
    expires_in_secs: u64,
}

/// Why a fan whose ticket came up was not admitted after all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AdmitError {
    /// The fan was not there to take the turn within the claim window.
    #[error("the turn came and went")]
    Expired,
    #[error("the queue's store is out of reach")]
    Unavailable,
}

impl AdmitError {
    pub fn code(self) -> &'static str {
        match self {
            AdmitError::Expired => "admission_expired",
            AdmitError::Unavailable => "queue_unavailable",
        }
    }
}

impl Admission {
    /// Issues the access token (ticket 0: admitted without the queue) and
    /// counts it.
    fn issue(state: &EdgeState, event: i64, ticket: u64, bnd: &str, expires_in_secs: u64) -> Admission {
        let (token, _) = state.tokens.issue_access(event, ticket, bnd, expires_in_secs);
        state
            .metrics
            .event(event)
            .admitted_tokens
            .fetch_add(1, Ordering::Relaxed);
        Admission {
            event,
            token,
            expires_in_secs,
        }
    }

    /// The answer's body; `next` is where the fan goes now.
    pub fn body(&self, next: String, tick: Option<u64>) -> Admitted<'_> {
        Admitted {
            status: "admitted",
            event_id: self.event,
            access_token: &self.token,
            expires_in_secs: self.expires_in_secs,
            next,
            tick,
        }
    }

    /// Answers 200 with the body and the access cookie, and sends the fan on
    /// to the page the operator set (`protection.after_admission`).
    pub async fn send(
        &self,
        state: &EdgeState,
        session: &mut Session,
        tick: Option<u64>,
        mut headers: Vec<(&str, String)>,
    ) -> respond::Result<()> {
        let cookie = set_cookie(state, &access_cookie(self.event), &self.token, self.expires_in_secs);
        headers.push(("set-cookie", cookie));
        let body = self.body(state.protection.after_admission(self.event), tick);
        respond::json(session, 200, &body, &headers).await
    }
}

/// Admits a fan whose ticket came up: confirms the session in Redis (it
/// lapses if the fan was not there to take it) and issues the access token.
pub async fn admit(state: &EdgeState, room: &Room, ticket: u64, bnd: &str) -> Result<Admission, AdmitError> {
    let secs = room.settings().session_secs;
    let store = state.store().ok_or(AdmitError::Unavailable)?;
    match store.touch_session(room.event, ticket, secs * 1000).await {
        Ok(true) => Ok(Admission::issue(state, room.event, ticket, bnd, secs)),
        Ok(false) => Err(AdmitError::Expired),
        Err(_) => Err(AdmitError::Unavailable),
    }
}

/// With Redis out of reach and the edge configured to fail open, admits
/// without the queue (no order) at the configured rate per instance.
pub fn admit_without_queue(state: &EdgeState, room: &Room, bnd: &str) -> Option<Admission> {
    let open = state.config.redis.on_failure == RedisFailure::Open && locks::lock(&state.fail_open).take();
    open.then(|| Admission::issue(state, room.event, 0, bnd, room.settings().session_secs))
}
