//! `GET /queue/{event}/status`: where a waiting fan stands, as JSON (and it
//! tells the room the fan is still here); once the fan's turn has come, the
//! access token.

use std::sync::Arc;

use pingora::proxy::Session;
use serde::Serialize;
use serde_json::json;

use super::admitted::{AdmitError, admit};
use crate::queue::{Room, Standing};
use crate::respond;
use crate::state::EdgeState;

/// A status answer while waiting: the standing and the tick it is as of.
#[derive(Serialize)]
struct AsOf {
    #[serde(flatten)]
    standing: Standing,
    tick: u64,
}

/// Answers a fan whose queue token passed (`ticket`, its client's `bnd`).
pub async fn status(
    state: &Arc<EdgeState>,
    session: &mut Session,
    room: &Arc<Room>,
    ticket: u64,
    bnd: &str,
) -> respond::Result<()> {
    room.mark_seen(ticket);
    let (standing, tick) = room.standing_at(ticket);
    match standing {
        Standing::Admitted => match admit(state, room, ticket, bnd).await {
            Ok(admission) => admission.send(state, session, Some(tick), Vec::new()).await,
            Err(AdmitError::Expired) => {
                respond::problem(
                    session,
                    410,
                    AdmitError::Expired.code(),
                    "your turn came and went; join again",
                    json!({}),
                )
                .await
            }
            Err(e) => respond::problem(session, 503, e.code(), "try again in a moment", json!({})).await,
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
