//! An admitted fan's session as the proxy sees it: kept alive by the fan's
//! protected requests, ended by the core's `usher-session-done` header.

use std::sync::atomic::Ordering;
use std::time::Duration;

use usher_shared::AccessClaims;

use crate::state::EdgeState;

/// Sessions are extended in Redis at most this often per fan.
const TOUCH_EVERY: Duration = Duration::from_secs(10);

/// Extends an admitted fan's session in Redis, in the background: the
/// answer changes nothing for this request (the token is what admits it),
/// so the request does not wait for it. Waiting made an admitted fan's first
/// hold queue behind the join spike's Redis traffic: in the arena run, hold
/// p99 was 39 ms in the core and 1,100 ms at the edge.
pub fn touch(state: &EdgeState, claims: &AccessClaims) {
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
pub fn session_key(claims: &AccessClaims) -> String {
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
pub async fn end(state: &EdgeState, token: &str, claims: &AccessClaims) {
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
