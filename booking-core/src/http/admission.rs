//! Admission: for a protected event, the edge admits fans from its waiting
//! room and gives each an Ed25519-signed access token naming the event, which
//! it forwards in the `usher-access` header. booking-core checks the token
//! again with the edge's public key alone (defence in depth: a request that
//! got past or around the edge still needs a real token). A missing or bad
//! token is not an error here: the request is simply not admitted, and holds
//! on protected events are refused with 403 `admission_required`.

use axum::http::HeaderMap;

use crate::http::AppState;
use crate::ids::EventId;

pub fn admitted_event(state: &AppState, headers: &HeaderMap) -> Option<EventId> {
    let token = headers.get(usher_shared::ACCESS_HEADER)?.to_str().ok()?;
    match state.admission.verify(token)? {
        Ok(claims) => Some(EventId(claims.evt)),
        Err(e) => {
            tracing::info!(reason = e.code(), "access token refused");
            None
        }
    }
}
