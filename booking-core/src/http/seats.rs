//! Seat endpoints: the venue's static seat map (long-cached, ETag), one
//! event's availability and tier prices (never cached), and the live stream
//! of seat and price changes (Server-Sent Events) that keeps a drawn map
//! current without polling.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, Stream, StreamExt};

use crate::catalog::TierPrice;
use crate::http::AppState;
use crate::http::answer::no_store_json;
use crate::http::extract::ApiPath;
use crate::http::problem::{ApiError, Problem};
use crate::ids::{EventId, VenueId};
use crate::inventory::feed::{Snapshot, Start};
use crate::inventory::{Availability, FeedMessage, SeatBatch, SeatFeed};
use crate::pricing::settings::{self as pricing_settings, EventPrices};

/// A venue's seat map: sections, rows and seats with positions, tiers and
/// flags. Never changes for a venue, so it is cached for a day and revalidated
/// by ETag.
#[utoipa::path(get, path = "/v1/venues/{venue_id}/seatmap", tag = "seats",
    params(("venue_id" = i64, Path)),
    responses((status = 200, body = Object, description = "The seat map document"), (status = 304, description = "Not modified"),
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
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}

/// Every seat's state for the event, now, from the primary database.
#[utoipa::path(get, path = "/v1/events/{event_id}/availability", tag = "seats",
    params(("event_id" = i64, Path)),
    responses((status = 200, body = Availability), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn availability(State(state): State<AppState>, ApiPath(id): ApiPath<i64>) -> Result<Response, ApiError> {
    let event = EventId(id);
    let map = state
        .maps
        .for_event(event)
        .await
        .map_err(|e| ApiError::unavailable(&e))?
        .ok_or_else(|| ApiError::not_found("event_not_found", "no such event"))?;
    let snapshot = state.readings.availability(&map, event).await?;
    Ok(no_store_json(StatusCode::OK, &*snapshot))
}

/// The event's tier prices now, and whether they are recalculated on an
/// interval (dynamic pricing). A hold locks the price it was made at.
#[utoipa::path(get, path = "/v1/events/{event_id}/prices", tag = "seats",
    params(("event_id" = i64, Path)),
    responses((status = 200, body = EventPrices), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn prices(State(state): State<AppState>, ApiPath(id): ApiPath<i64>) -> Result<Response, ApiError> {
    let prices = pricing_settings::event_prices(&state.reads, EventId(id))
        .await?
        .ok_or_else(|| ApiError::not_found("event_not_found", "no such event"))?;
    Ok(no_store_json(StatusCode::OK, prices))
}

/// A snapshot as sent: the availability document plus the tier prices.
#[derive(serde::Serialize)]
struct SnapshotBody<'a> {
    #[serde(flatten)]
    availability: Availability,
    prices: &'a [TierPrice],
}

#[derive(serde::Serialize)]
struct PricesBody<'a> {
    event_id: EventId,
    prices: &'a [TierPrice],
}

fn snapshot_event(feed: &SeatFeed, event: EventId, snapshot: &Snapshot) -> Event {
    let body = SnapshotBody {
        availability: Availability::new(event, &snapshot.states, snapshot.server_time),
        prices: &snapshot.prices,
    };
    Event::default()
        .event("snapshot")
        .id(feed.event_id(snapshot.version))
        .json_data(body)
        .unwrap_or_else(|_| reset_event("encoding"))
}

fn seats_event(feed: &SeatFeed, batch: &SeatBatch) -> Event {
    Event::default()
        .event("seats")
        .id(feed.event_id(batch.version))
        .json_data(batch)
        .unwrap_or_else(|_| reset_event("encoding"))
}

/// Not numbered: a price change is not a seat batch, and a client resuming
/// gets the current prices anyway.
fn prices_event(event: EventId, prices: &[TierPrice]) -> Event {
    Event::default()
        .event("prices")
        .json_data(PricesBody {
            event_id: event,
            prices,
        })
        .unwrap_or_else(|_| reset_event("encoding"))
}

fn reset_event(reason: &str) -> Event {
    Event::default()
        .event("reset")
        .data(format!("{{\"reason\":\"{reason}\",\"action\":\"reconnect\"}}"))
}

/// The live part of a stream: batches after what the client already has.
struct Live {
    receiver: tokio::sync::broadcast::Receiver<FeedMessage>,
    feed: SeatFeed,
    event: EventId,
    /// Batches up to this version are already reflected at the client.
    seen: u64,
    /// Whether the client has a snapshot to apply batches to.
    based: bool,
    done: bool,
}

impl Live {
    async fn next(mut self) -> Option<(Event, Live)> {
        use tokio::sync::broadcast::error::RecvError;
        if self.done {
            return None;
        }
        loop {
            match self.receiver.recv().await {
                Ok(FeedMessage::Snapshot(s)) if !self.based => {
                    self.based = true;
                    self.seen = s.version;
                    let e = snapshot_event(&self.feed, self.event, &s);
                    return Some((e, self));
                }
                Ok(FeedMessage::Batch(b)) if self.based && b.version > self.seen => {
                    self.seen = b.version;
                    let e = seats_event(&self.feed, &b);
                    return Some((e, self));
                }
                // Before a snapshot the client has no prices to update; the
                // snapshot brings them.
                Ok(FeedMessage::Prices(p)) if self.based => {
                    return Some((prices_event(self.event, &p), self));
                }
                Ok(_) => continue,
                // Too slow to keep up: end the stream; the client reconnects
                // and starts again from a snapshot.
                Err(RecvError::Lagged(_)) => {
                    self.done = true;
                    return Some((reset_event("client_too_slow"), self));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }
}

/// Live seat changes for one event as Server-Sent Events: first a
/// `snapshot` (every seat, encoded as in availability), then `seats` events
/// `{"available":[ids],"held":[ids],"sold":[ids]}` as seats change, and a
/// `prices` event `{"event_id":..,"prices":[{tier,name,price_cents}]}` when
/// tier prices change (the snapshot carries `prices` too). A client
/// reconnecting with `Last-Event-ID` gets what it missed (and the current
/// prices), or a new snapshot.
#[utoipa::path(get, path = "/v1/events/{event_id}/seat-changes", tag = "seats",
    params(("event_id" = i64, Path), ("Last-Event-ID" = Option<String>, Header)),
    responses((status = 200, description = "text/event-stream of seat changes", content_type = "text/event-stream"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn seat_changes(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let event = EventId(id);
    let map = state
        .maps
        .for_event(event)
        .await
        .map_err(|e| ApiError::unavailable(&e))?
        .ok_or_else(|| ApiError::not_found("event_not_found", "no such event"))?;
    let last_id = headers.get("last-event-id").and_then(|v| v.to_str().ok());
    let feed = state.feed.clone();
    let sub = feed.subscribe(event, map, last_id);
    let (opening, based): (Vec<Event>, bool) = match &sub.start {
        Start::Snapshot(Some(s)) => (vec![snapshot_event(&feed, event, s)], true),
        Start::Snapshot(None) => (vec![], false),
        Start::Resume(batches) => {
            let mut opening: Vec<Event> = batches.iter().map(|b| seats_event(&feed, b)).collect();
            if let Some(p) = &sub.prices {
                opening.push(prices_event(event, p));
            }
            (opening, true)
        }
    };
    let live = Live {
        receiver: sub.receiver,
        feed,
        event,
        seen: sub.from_version,
        based,
        done: false,
    };
    let mut shutdown = state.shutdown.clone();
    let stream = stream::iter(opening)
        .chain(stream::unfold(live, Live::next))
        .take_until(async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        })
        .map(Ok::<_, Infallible>);
    let keep_alive = KeepAlive::new().interval(Duration::from_secs(state.config.feed.heartbeat_secs));
    Ok(Sse::new(stream).keep_alive(keep_alive))
}
