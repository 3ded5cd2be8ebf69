//! The first step of every request: its path rewritten to the one canonical
//! form both services read (`usher_shared::paths`), or refused.

use pingora::proxy::Session;
use serde_json::json;
use usher_shared::paths;

use crate::respond;

/// Rewrites the request to its canonical path (the exact bytes that will be
/// forwarded), or refuses a path that has none with 400. Everything after
/// this reads, and the core receives, one spelling of each path.
pub(super) async fn canonicalise(session: &mut Session) -> pingora::Result<bool> {
    let req = session.req_header();
    if !req.raw_path_is_utf8() {
        respond::problem(session, 400, "bad_path", "the path is not valid UTF-8", json!({})).await?;
        return Ok(true);
    }
    let target = match paths::canonical(req.uri.path()) {
        Ok(path) => match req.uri.query() {
            Some(query) => format!("{path}?{query}"),
            None => path.into_owned(),
        },
        Err(e) => {
            respond::problem(session, 400, e.code(), &e.to_string(), json!({})).await?;
            return Ok(true);
        }
    };
    if req.raw_path() != target.as_bytes() {
        match target.parse::<http::Uri>() {
            Ok(uri) => session.req_header_mut().set_uri(uri),
            Err(_) => {
                respond::problem(session, 400, "bad_path", "the request target cannot be read", json!({})).await?;
                return Ok(true);
            }
        }
    }
    Ok(false)
}
