//! Seat endpoints: the venue's static seat map (long-cached, ETag), one
//! event's availability (never cached), and the live stream of seat changes
//! (Server-Sent Events) that keeps a drawn map current without polling.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, Stream, StreamExt};
use serde::Deserialize;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use crate::http::AppState;
use crate::http::extract::{ApiPath, ApiQuery};
use crate::http::problem::{ApiError, Problem};
use crate::ids::{EventId, VenueId};
use crate::inventory::feed::CatchUp;
use crate::inventory::{Availability, SeatBatch, availability};

/// A venue's seat map: sections, rows and seats with positions, tiers and
/// flags. Never changes for a venue, so it is cached for a day and revalidated
/// by ETag.
#[utoipa::path(get, path = "/v1/venues/{venue_id}/seatmap", tag = "seats",
    params(("venue_id" = i64, Path)),
    responses((status = 200, description = "The seat map document"), (status = 304, description = "Not modified"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn seatmap(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let map = state
        .maps
        .venue(VenueId(id))
        .await
        .map_err(|e| ApiError::unavailable(&e))?
        .ok_or_else(|| ApiError::not_found("venue_not_found", "no such venue"))?;
    let etag = format!("\"{}\"", map.etag);
    let cache = [
        (header::ETAG, etag.clone()),
        (
            header::CACHE_CONTROL,
            "public, max-age=86400, stale-while-revalidate=604800".to_string(),
        ),
        (header::VARY, "Accept-Encoding".to_string()),
    ];
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if matches {
        return Ok((StatusCode::NOT_MODIFIED, cache).into_response());
    }
    let gzip = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    let mut response = if gzip {
        let mut r = (cache, map.document_gzip.clone()).into_response();
        r.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        r
    } else {
        (cache, map.document.clone()).into_response()
    };
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// Every seat's state for the event, now, from the primary database.
#[utoipa::path(get, path = "/v1/events/{event_id}/availability", tag = "seats",
    params(("event_id" = i64, Path)),
    responses((status = 200, body = Availability), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn availability(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Response, ApiError> {
    let event = EventId(id);
    let map = state
        .maps
        .for_event(event)
        .await
        .map_err(|e| ApiError::unavailable(&e))?
        .ok_or_else(|| ApiError::not_found("event_not_found", "no such event"))?;
    let snapshot = availability::read(&state.pool, &map, event).await?;
    let mut response = axum::Json(snapshot).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamParams {
    /// The `cursor` of an availability answer: changes since then are
    /// replayed first. `Last-Event-ID` takes precedence when reconnecting.
    since: Option<String>,
}

fn parse_cursor(raw: &str) -> Result<i64, ApiError> {
    raw.trim()
        .parse::<i64>()
        .ok()
        .filter(|v| *v >= 0)
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_cursor",
                "the cursor must be one this service issued",
            )
        })
}

fn seats_event(batch: &SeatBatch) -> Event {
    Event::default()
        .event("seats")
        .id(batch.watermark.to_string())
        .json_data(batch)
        .unwrap_or_else(|_| Event::default().event("reset"))
}

fn reset_event(reason: &str) -> Event {
    Event::default().event("reset").data(format!(
        "{{\"reason\":\"{reason}\",\"action\":\"re-read availability\"}}"
    ))
}

/// Live seat changes for one event as Server-Sent Events: `ready` (with the
/// cursor), then `seats` events `{"available":[ids],"held":[ids],"sold":[ids]}`,
/// and `reset` when the client must re-read availability.
#[utoipa::path(get, path = "/v1/events/{event_id}/seat-changes", tag = "seats",
    params(("event_id" = i64, Path), StreamParams),
    responses((status = 200, description = "text/event-stream of seat changes", content_type = "text/event-stream"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn seat_changes(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(params): ApiQuery<StreamParams>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let event = EventId(id);
    if state.maps.event_venue(event).await?.is_none() {
        return Err(ApiError::not_found("event_not_found", "no such event"));
    }
    let last_event_id = headers.get("last-event-id").and_then(|v| v.to_str().ok());
    let since = match last_event_id.or(params.since.as_deref()) {
        Some(raw) => Some(parse_cursor(raw)?),
        None => None,
    };
    let subscription = state.feed.subscribe(event);
    let from = subscription.from;
    let mut opening = vec![
        Event::default()
            .event("ready")
            .id(from.to_string())
            .data(format!("{{\"cursor\":\"{from}\"}}")),
    ];
    if let Some(since) = since.filter(|s| *s < from) {
        match state.feed.catch_up(event, since, from).await? {
            CatchUp::Changes(batch) if !batch.is_empty() => opening.push(seats_event(&batch)),
            CatchUp::Changes(_) => {}
            CatchUp::TooOld => opening.push(reset_event("cursor_too_old")),
        }
    }
    let live = BroadcastStream::new(subscription.receiver).filter_map(move |item| async move {
        match item {
            Ok(batch) if batch.watermark > from => Some(seats_event(&batch)),
            Ok(_) => None,
            Err(BroadcastStreamRecvError::Lagged(_)) => Some(reset_event("client_too_slow")),
        }
    });
    let mut shutdown = state.shutdown.clone();
    let stream = stream::iter(opening)
        .chain(live)
        .take_until(async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        })
        .map(Ok::<_, Infallible>);
    let keep_alive =
        KeepAlive::new().interval(Duration::from_secs(state.config.feed.heartbeat_secs));
    Ok(Sse::new(stream).keep_alive(keep_alive))
}
