//! `GET /queue/{event}/challenge`: a proof-of-work puzzle for this client,
//! to solve before it joins.

use std::sync::Arc;

use pingora::proxy::Session;
use serde_json::json;

use super::gate::{POW_ALGORITHM, knock, refused, take_back};
use super::request::{Request, client_ip};
use crate::defence::Gate;
use crate::queue::Room;
use crate::respond;
use crate::state::EdgeState;

/// `GET /queue/{event}/challenge`: a puzzle for this client, before it joins.
pub async fn challenge(
    state: &Arc<EdgeState>,
    session: &mut Session,
    req: &Request,
    room: &Arc<Room>,
) -> respond::Result<()> {
    let (client, headers) = req.client_or_new(state);
    let bnd = req.binding(&client);
    match state
        .defences
        .gate(&knock(req, room, client_ip(state, session), &bnd), false)
        .await
    {
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
