//! Unprotected GETs the core marked public, answered from the edge's shared
//! cache (`crate::cache`) without reaching a core.

use std::sync::atomic::Ordering;

use pingora::http::ResponseHeader;
use pingora::proxy::Session;

use super::Ctx;
use crate::cache::ResponseCache;
use crate::state::EdgeState;

/// Answers an unprotected request from the cache if it can; otherwise notes
/// the key so the core's answer can fill it.
pub(super) async fn serve_cached(state: &EdgeState, session: &mut Session, ctx: &mut Ctx) -> pingora::Result<bool> {
    if !state.cache.enabled() {
        return Ok(false);
    }
    let req = session.req_header();
    let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok());
    let path = req.uri.path_and_query().map_or("/", |p| p.as_str());
    let Some(key) = ResponseCache::key(
        req.method.as_str(),
        path,
        header("accept-encoding"),
        req.headers.contains_key("authorization"),
    ) else {
        return Ok(false);
    };
    let Some(entry) = state.cache.get(&key) else {
        state.metrics.cache_misses.fetch_add(1, Ordering::Relaxed);
        ctx.cache_key = Some(key);
        return Ok(false);
    };
    state.metrics.cache_hits.fetch_add(1, Ordering::Relaxed);
    let not_modified = entry.etag().is_some_and(|etag| header("if-none-match") == Some(etag));
    let status = if not_modified { 304 } else { entry.status };
    let mut resp = ResponseHeader::build(status, Some(entry.headers.len() + 2))?;
    for (name, value) in &entry.headers {
        if not_modified && (name == "content-length" || name == "content-encoding") {
            continue;
        }
        resp.append_header(name.clone(), value.as_str())?;
    }
    resp.insert_header("age", entry.age_secs().to_string())?;
    resp.insert_header("x-cache", "HIT")?;
    let head_only = not_modified || entry.body.is_empty();
    session.write_response_header(Box::new(resp), head_only).await?;
    if !head_only {
        session.write_response_body(Some(entry.body.clone()), true).await?;
    }
    Ok(true)
}
