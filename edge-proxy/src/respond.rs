//! Writing the edge's own answers (waiting-room pages, JSON, problems and
//! event streams) straight to the client from within a request filter.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use serde::Serialize;
use serde_json::{Value, json};

pub type Result<T> = pingora::Result<T>;

/// Writes a whole response.
pub async fn send(
    session: &mut Session,
    status: u16,
    content_type: &str,
    body: Bytes,
    headers: &[(&str, String)],
) -> Result<()> {
    let mut resp = ResponseHeader::build(status, Some(4 + headers.len()))?;
    resp.insert_header("content-type", content_type)?;
    resp.insert_header("content-length", body.len().to_string())?;
    resp.insert_header("cache-control", "no-store")?;
    for (name, value) in headers {
        resp.append_header(name.to_string(), value.as_str())?;
    }
    session.write_response_header(Box::new(resp), body.is_empty()).await?;
    if !body.is_empty() {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(())
}

pub async fn json<T: Serialize>(
    session: &mut Session,
    status: u16,
    value: &T,
    headers: &[(&str, String)],
) -> Result<()> {
    // Serialising plain answer structs cannot fail.
    let body = serde_json::to_vec(value).unwrap_or_default();
    send(session, status, "application/json", body.into(), headers).await
}

/// An RFC 9457 problem with a stable `code`, and any extra fields.
pub async fn problem(session: &mut Session, status: u16, code: &str, detail: &str, extra: Value) -> Result<()> {
    problem_with(session, status, code, detail, extra, Vec::new()).await
}

/// A problem with headers of its own (a cookie, Retry-After).
pub async fn problem_with(
    session: &mut Session,
    status: u16,
    code: &str,
    detail: &str,
    extra: Value,
    mut headers: Vec<(&str, String)>,
) -> Result<()> {
    let mut body = json!({
        "type": format!("https://usher.dev/problems/{code}"),
        "title": http::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("Error"),
        "status": status,
        "detail": detail,
        "code": code,
    });
    if let (Some(map), Value::Object(more)) = (body.as_object_mut(), extra) {
        map.extend(more);
    }
    // The request's trace, so a fan's report of this answer leads to its
    // spans and log lines.
    if let (Some(map), Some(trace_id)) = (body.as_object_mut(), usher_shared::telemetry::current_trace_id()) {
        map.insert("trace_id".into(), trace_id.into());
    }
    if (status == 429 || status == 503) && !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("retry-after")) {
        headers.push(("retry-after", "2".to_string()));
    }
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    send(session, status, "application/problem+json", bytes.into(), &headers).await
}

/// The answer to a client over its rate limit (429, with Retry-After).
pub async fn rate_limited(session: &mut Session) -> Result<()> {
    problem(session, 429, "rate_limited", RATE_LIMITED, json!({})).await
}

pub const RATE_LIMITED: &str = "too many requests from your address; slow down";

/// Starts a Server-Sent Events stream.
pub async fn sse_open(session: &mut Session) -> Result<()> {
    let mut resp = ResponseHeader::build(200, Some(4))?;
    resp.insert_header("content-type", "text/event-stream")?;
    resp.insert_header("cache-control", "no-store")?;
    // Tell buffering proxies in between to pass events on at once.
    resp.insert_header("x-accel-buffering", "no")?;
    session.write_response_header(Box::new(resp), false).await
}

pub async fn sse_event(session: &mut Session, event: &str, id: u64, data: &impl Serialize) -> Result<()> {
    let data = serde_json::to_string(data).unwrap_or_default();
    let chunk = format!("event: {event}\nid: {id}\ndata: {data}\n\n");
    session.write_response_body(Some(Bytes::from(chunk)), false).await
}

/// A comment line: keeps idle connections open through proxies and browsers.
pub async fn sse_heartbeat(session: &mut Session) -> Result<()> {
    session
        .write_response_body(Some(Bytes::from_static(b": heartbeat\n\n")), false)
        .await
}

pub async fn sse_close(session: &mut Session) -> Result<()> {
    session.write_response_body(None, true).await
}
