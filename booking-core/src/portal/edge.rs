//! The edge-proxy's admin API, as the portal uses it: read and change one
//! event's waiting room, and read its queue figures for the dashboard. The
//! edge stays the owner of waiting rooms; the core only forwards, after
//! checking that the event is the operator's.

use std::time::Duration;

use reqwest::StatusCode;
use serde::Serialize;
use serde::de::DeserializeOwned;
use usher_shared::admin::{AdminProblem, PROBLEMS_HEADER, ROOMS_PATH, RoomSettings, RoomView, room_path};

use crate::config::EdgeConfig;
use crate::ids::EventId;

#[derive(Clone)]
pub struct EdgeAdmin {
    http: reqwest::Client,
    base: String,
    token: usher_shared::config::Secret,
}

impl std::fmt::Debug for EdgeAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeAdmin")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    #[error("the edge's admin API is not configured ([edge] in the core's configuration)")]
    NotConfigured,
    #[error("the edge's admin API could not be reached or failed: {0}")]
    Unavailable(String),
    /// The edge refused the request (a 4xx): its status, code and words.
    #[error("the edge refused: {detail}")]
    Refused {
        status: u16,
        code: String,
        detail: String,
        /// The edge's list of problems with the settings, when it gave one.
        problems: Option<Vec<String>>,
    },
}

/// The queue figures the dashboard shows.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct EdgeFigures {
    /// Fans waiting now.
    pub queue_length: u64,
    /// Fans admitted since the room opened.
    pub admitted_total: u64,
    /// The admission rate in force (an adaptive room's current one).
    pub admitted_per_minute: u32,
    /// Admitted fans whose session is still running.
    pub active: u64,
}

impl EdgeAdmin {
    pub fn new(config: &EdgeConfig) -> Result<EdgeAdmin, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.timeout_ms))
            .connect_timeout(Duration::from_millis(config.timeout_ms))
            .build()?;
        Ok(EdgeAdmin {
            http,
            base: config.admin_url.as_str().trim_end_matches('/').to_owned(),
            token: config.admin_token.clone(),
        })
    }

    fn url(&self, event: EventId) -> String {
        format!("{}{}", self.base, room_path(event.0))
    }

    /// The room's settings and progress, as the edge gives them.
    #[tracing::instrument(skip(self), fields(event_id = event.0))]
    pub async fn room(&self, event: EventId) -> Result<RoomView, EdgeError> {
        let r = self
            .http
            .get(self.url(event))
            .bearer_auth(self.token.expose())
            .send()
            .await;
        answer(r).await
    }

    /// Replaces the room's settings; their `event_id` is the event's (the
    /// edge wants both to agree).
    #[tracing::instrument(skip(self, settings), fields(event_id = event.0))]
    pub async fn put_room(&self, event: EventId, settings: RoomSettings<Option<i64>>) -> Result<RoomView, EdgeError> {
        let r = self
            .http
            .put(self.url(event))
            .bearer_auth(self.token.expose())
            .json(&settings.for_event(event.0))
            .send()
            .await;
        answer(r).await
    }

    /// Every event with a waiting room at the edge.
    pub async fn room_events(&self) -> Result<Vec<EventId>, EdgeError> {
        let url = format!("{}{ROOMS_PATH}", self.base);
        let r = self.http.get(url).bearer_auth(self.token.expose()).send().await;
        let rooms: Vec<RoomView> = answer(r).await?;
        Ok(rooms.iter().map(|room| EventId(room.settings.event_id)).collect())
    }

    /// The dashboard's queue figures; None when the event has no room.
    pub async fn figures(&self, event: EventId) -> Result<Option<EdgeFigures>, EdgeError> {
        let room = match self.room(event).await {
            Ok(room) => room,
            Err(EdgeError::Refused { status: 404, .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let p = room.progress;
        Ok(Some(EdgeFigures {
            queue_length: p.waiting,
            admitted_total: p.admitted_total,
            admitted_per_minute: p.rate,
            active: p.active,
        }))
    }
}

async fn answer<T: DeserializeOwned>(r: Result<reqwest::Response, reqwest::Error>) -> Result<T, EdgeError> {
    let r = r.map_err(|e| EdgeError::Unavailable(e.to_string()))?;
    let status = r.status();
    if status.is_success() {
        return r.json().await.map_err(|e| EdgeError::Unavailable(e.to_string()));
    }
    // Our token is wrong, or the edge failed: the operator cannot fix it.
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN || status.is_server_error() {
        return Err(EdgeError::Unavailable(format!("the edge answered {status}")));
    }
    let problems = r
        .headers()
        .get(PROBLEMS_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| serde_json::from_str::<Vec<String>>(v).ok());
    let (code, detail) = match r.json::<AdminProblem>().await {
        Ok(p) => (p.code, p.detail),
        Err(_) => ("edge_refused".to_owned(), "the edge refused the request".to_owned()),
    };
    Err(EdgeError::Refused {
        status: status.as_u16(),
        code,
        detail,
        problems,
    })
}
