//! Catalog endpoints: search and list events, and one event's page.
//! Both are safe for the edge to cache briefly.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;

use crate::catalog::{self, Category, Cursor, EventDetail, EventSummary, Page, SearchQuery};
use crate::http::AppState;
use crate::http::extract::{ApiPath, ApiQuery};
use crate::http::problem::{ApiError, Problem};
use crate::ids::EventId;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// Free text over artist, title, venue and city (prefix match per word).
    q: Option<String>,
    /// Exact city name, any case.
    city: Option<String>,
    /// One of concert, sports, theatre, comedy, family, festival.
    category: Option<String>,
    /// Events starting at or after this (RFC 3339 or YYYY-MM-DD); default now.
    from: Option<String>,
    /// Events starting before this (RFC 3339 or YYYY-MM-DD).
    to: Option<String>,
    /// `next_cursor` from the previous page.
    cursor: Option<String>,
    /// 1 to 100, default 20.
    limit: Option<i64>,
}

fn parse_time(field: &'static str, raw: &str) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| ApiError::bad_request("invalid_date", format!("{field} must be RFC 3339 or YYYY-MM-DD")))
}

fn to_query(p: SearchParams) -> Result<SearchQuery, ApiError> {
    let limit = p.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::bad_request("invalid_limit", "limit must be 1 to 100"));
    }
    if p.q.as_ref().is_some_and(|q| q.chars().count() > 200) {
        return Err(ApiError::bad_request(
            "query_too_long",
            "q may be at most 200 characters",
        ));
    }
    let category = match p.category.as_deref().filter(|c| !c.is_empty()) {
        Some(c) => Some(Category::parse(c).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_category",
                "category must be concert, sports, theatre, comedy, family or festival",
            )
        })?),
        None => None,
    };
    let from = p.from.as_deref().map(|f| parse_time("from", f)).transpose()?;
    let to = p.to.as_deref().map(|t| parse_time("to", t)).transpose()?;
    if let (Some(f), Some(t)) = (from, to)
        && f > t
    {
        return Err(ApiError::bad_request("invalid_date_range", "from is after to"));
    }
    let after = p
        .cursor
        .as_deref()
        .map(Cursor::decode)
        .transpose()
        .map_err(|e| ApiError::bad_request("invalid_cursor", e.to_string()))?;
    Ok(SearchQuery {
        text: p.q.filter(|q| !q.trim().is_empty()),
        city: p.city.filter(|c| !c.trim().is_empty()),
        category,
        from,
        to,
        after,
        limit,
    })
}

fn cacheable(mut response: Response, max_age: u32) -> Response {
    if let Ok(v) = HeaderValue::from_str(&format!("public, max-age={max_age}")) {
        response.headers_mut().insert(header::CACHE_CONTROL, v);
    }
    response
}

/// Search and list upcoming events.
#[utoipa::path(get, path = "/v1/events", params(SearchParams), tag = "catalog",
    responses((status = 200, body = Page<EventSummary>), (status = 400, body = Problem, content_type = "application/problem+json")))]
pub async fn search(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> Result<Response, ApiError> {
    let query = to_query(params)?;
    let page = catalog::search_events(&state.reads, &query).await?;
    Ok(cacheable(axum::Json(page).into_response(), 30))
}

/// One event's page: venue, dates, price tiers, hold rules, server time.
#[utoipa::path(get, path = "/v1/events/{event_id}", tag = "catalog",
    params(("event_id" = i64, Path)),
    responses((status = 200, body = EventDetail), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn event(State(state): State<AppState>, ApiPath(id): ApiPath<i64>) -> Result<Response, ApiError> {
    let detail = catalog::get_event(&state.reads, EventId(id))
        .await?
        .ok_or_else(|| ApiError::not_found("event_not_found", "no such event"))?;
    Ok(cacheable(axum::Json(detail).into_response(), 5))
}
