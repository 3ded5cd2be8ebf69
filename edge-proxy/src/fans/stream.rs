//! `GET /queue/{event}/events`: a waiting fan's standing, live, as
//! Server-Sent Events, then the access token once admitted. `follow` writes
//! the events to any `EventSink`: this proxy's session here, a bare socket
//! in `stream_listener.rs`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use pingora::proxy::Session;
use serde::Serialize;
use serde_json::json;

use super::admitted::admit;
use crate::queue::{Progress, Room, Standing};
use crate::respond;
use crate::state::EdgeState;

/// A comment line this often keeps an idle stream open through proxies and
/// browsers.
const HEARTBEAT: Duration = Duration::from_secs(15);
/// A fan's position is pushed at most this often: enough for a live page,
/// and it bounds the work per waiting fan however fast the queue moves.
const POSITION_EVERY: Duration = Duration::from_secs(1);

/// Streams to a fan whose queue token passed (`ticket`, its client's `bnd`).
pub async fn stream(
    state: &Arc<EdgeState>,
    session: &mut Session,
    room: &Arc<Room>,
    ticket: u64,
    bnd: &str,
) -> respond::Result<()> {
    let mut progress = room.watch();
    respond::sse_open(session).await?;
    state.metrics.sse_connections.fetch_add(1, Ordering::Relaxed);
    let result = follow(state, session, room, ticket, bnd, &mut progress).await;
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
    progress: &mut tokio::sync::watch::Receiver<Progress>,
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
                    // A stream's headers went out long ago, so it cannot set
                    // the access cookie: `next` sends the page to status,
                    // which answers again with the cookie.
                    Ok(admission) => {
                        let body = admission.body(format!("/queue/{}/status", room.event), Some(id));
                        session.event("admitted", id, &body).await?;
                    }
                    Err(e) => session.event("expired", id, &json!({"code": e.code()})).await?,
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
