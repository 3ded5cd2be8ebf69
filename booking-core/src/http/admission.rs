//! Admission: for a protected event, the edge admits fans from its waiting
//! room and gives each an Ed25519-signed access token naming the event, which
//! it forwards in the `usher-access` header. booking-core checks the token
//! again with the edge's public key alone (defence in depth: a request that
//! got past or around the edge still needs a real token). A missing or bad
//! token is not an error here: the request is simply not admitted, and holds
//! on protected events are refused with 403 `admission_required`. A
//! session this core has ended (its fan's order confirmed) is no admission
//! either, whatever its token's expiry says.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use std::convert::Infallible;
use usher_shared::AccessClaims;

use crate::http::AppState;
use crate::identity::ended;
use crate::ids::EventId;

/// The request's admission: the claims of its access token, when it carries
/// one that verifies (never a rejection: a request without is simply not
/// admitted).
pub struct Admission(pub Option<AccessClaims>);

impl FromRequestParts<AppState> for Admission {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(Admission(access_claims(state, parts)))
    }
}

fn access_claims(state: &AppState, parts: &Parts) -> Option<AccessClaims> {
    let token = parts.headers.get(usher_shared::ACCESS_HEADER)?.to_str().ok()?;
    match state.admission.verify(token)? {
        Ok(claims) => Some(claims),
        Err(e) => {
            tracing::info!(reason = e.code(), "access token refused");
            None
        }
    }
}

impl Admission {
    /// The event the request is admitted to: a good token whose session has
    /// not ended. A failed look-up counts as not admitted (the fan retries).
    pub async fn event(&self, state: &AppState) -> Option<EventId> {
        let claims = self.0.as_ref()?;
        let event = EventId(claims.evt);
        // Ticket 0: admitted without the queue (bypass, fail-open); no session.
        if claims.tkt == 0 {
            return Some(event);
        }
        match ended::has_ended(&state.pool, event, claims.tkt).await {
            Ok(false) => Some(event),
            Ok(true) => {
                tracing::info!(event_id = event.0, "access token of an ended session refused");
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not check whether a session ended");
                None
            }
        }
    }

    /// Records the end of the request's session, if it was admitted from the
    /// queue: called when the core tells the edge the fan is done.
    pub async fn end_session(&self, state: &AppState) {
        let Some(claims) = self.0.as_ref().filter(|c| c.tkt > 0) else {
            return;
        };
        if let Err(e) = ended::end(&state.pool, EventId(claims.evt), claims.tkt).await {
            tracing::warn!(event_id = claims.evt, error = %e, "could not record an ended session; the edge still ends it");
        }
    }
}
