//! The edge-proxy's admin API, as the portal uses it: read and change one
//! event's waiting room, and read its queue figures for the dashboard. The
//! edge stays the owner of waiting rooms; the core only forwards, after
//! checking that the event is the operator's.

use std::time::Duration;

use reqwest::StatusCode;
use serde::Serialize;
use serde_json::Value;

use crate::config::EdgeConfig;
use crate::ids::EventId;

#[derive(Clone)]
pub struct EdgeAdmin {
    http: reqwest::Client,
    base: String,
    token: String,
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
            base: config.admin_url.trim_end_matches('/').to_owned(),
            token: config.admin_token.clone(),
        })
    }

    fn url(&self, event: EventId) -> String {
        format!("{}/admin/events/{}", self.base, event.0)
    }

    /// The room's settings and progress, as the edge gives them.
    #[tracing::instrument(skip(self), fields(event_id = event.0))]
    pub async fn room(&self, event: EventId) -> Result<Value, EdgeError> {
        let r = self.http.get(self.url(event)).bearer_auth(&self.token).send().await;
        answer(r).await
    }

    /// Replaces the room's settings; `event_id` in the body is set to the
    /// event's (the edge wants both to agree).
    #[tracing::instrument(skip(self, settings), fields(event_id = event.0))]
    pub async fn put_room(&self, event: EventId, mut settings: Value) -> Result<Value, EdgeError> {
        let Some(fields) = settings.as_object_mut() else {
            return Err(EdgeError::Refused {
                status: 422,
                code: "invalid_body".into(),
                detail: "the settings must be a JSON object".into(),
                problems: None,
            });
        };
        fields.insert("event_id".into(), event.0.into());
        let r = self
            .http
            .put(self.url(event))
            .bearer_auth(&self.token)
            .json(&settings)
            .send()
            .await;
        answer(r).await
    }

    /// Every event with a waiting room at the edge.
    pub async fn room_events(&self) -> Result<Vec<EventId>, EdgeError> {
        let url = format!("{}/admin/events", self.base);
        let r = self.http.get(url).bearer_auth(&self.token).send().await;
        let rooms = answer(r).await?;
        let rooms = rooms
            .as_array()
            .ok_or_else(|| EdgeError::Unavailable("the edge's room list is not a list".into()))?;
        rooms
            .iter()
            .map(|room| {
                room["settings"]["event_id"]
                    .as_i64()
                    .map(EventId)
                    .ok_or_else(|| EdgeError::Unavailable("a room without an event id".into()))
            })
            .collect()
    }

    /// The dashboard's queue figures; None when the event has no room.
    pub async fn figures(&self, event: EventId) -> Result<Option<EdgeFigures>, EdgeError> {
        let room = match self.room(event).await {
            Ok(room) => room,
            Err(EdgeError::Refused { status: 404, .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let p = &room["progress"];
        let n = |k: &str| p[k].as_u64().unwrap_or(0);
        Ok(Some(EdgeFigures {
            queue_length: n("waiting"),
            admitted_total: n("admitted_total"),
            admitted_per_minute: u32::try_from(n("rate")).unwrap_or(u32::MAX),
            active: n("active"),
        }))
    }
}

async fn answer(r: Result<reqwest::Response, reqwest::Error>) -> Result<Value, EdgeError> {
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
        .get("x-problems")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| serde_json::from_str::<Vec<String>>(v).ok());
    let body: Value = r.json().await.unwrap_or(Value::Null);
    Err(EdgeError::Refused {
        status: status.as_u16(),
        code: body["code"].as_str().unwrap_or("edge_refused").to_owned(),
        detail: body["detail"]
            .as_str()
            .unwrap_or("the edge refused the request")
            .to_owned(),
        problems,
    })
}
