//! A small shared cache for what the core marks cacheable (`Cache-Control:
//! public` with a max-age): catalog pages, seat maps. It takes the static
//! part of an on-sale's load off the core: a seat map fetched by 10,000
//! fans just admitted costs the core one request per expiry.
//!
//! Deliberately narrow: GET only, unprotected paths only, no `private`,
//! `no-store`, `no-cache` or `Set-Cookie`, and `Vary` only on
//! `Accept-Encoding` (gzip or not is part of the key). Entries are
//! bounded in size and in total; the oldest go first.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::locks;
use bytes::{Bytes, BytesMut};
use pingora::http::ResponseHeader;

/// One cached response.
pub struct Entry {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    stored: Instant,
    max_age: Duration,
}

impl Entry {
    pub fn fresh(&self) -> bool {
        self.stored.elapsed() < self.max_age
    }

    pub fn age_secs(&self) -> u64 {
        self.stored.elapsed().as_secs()
    }

    pub fn etag(&self) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("etag"))
            .map(|(_, v)| v.as_str())
    }
}

/// A response on its way to the cache, collected as it streams past.
pub struct Filling {
    key: String,
    status: u16,
    headers: Vec<(String, String)>,
    max_age: Duration,
    body: BytesMut,
}

struct Inner {
    entries: HashMap<String, Arc<Entry>>,
    order: VecDeque<String>,
    bytes: usize,
}

pub struct ResponseCache {
    inner: Mutex<Inner>,
    max_bytes: usize,
    max_entry_bytes: usize,
}

impl ResponseCache {
    pub fn new(max_bytes: usize, max_entry_bytes: usize) -> ResponseCache {
        ResponseCache {
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                order: VecDeque::new(),
                bytes: 0,
            }),
            max_bytes,
            max_entry_bytes,
        }
    }

    pub fn enabled(&self) -> bool {
        self.max_bytes > 0
    }

    /// The cache key of a request, if it may be served from the cache.
    pub fn key(method: &str, path_and_query: &str, accept_encoding: Option<&str>, authorized: bool) -> Option<String> {
        if method != "GET" || authorized {
            return None;
        }
        let gzip = accept_encoding.is_some_and(|a| a.contains("gzip"));
        Some(format!("{}|{path_and_query}", if gzip { "gz" } else { "id" }))
    }

    /// A fresh entry for the key.
    pub fn get(&self, key: &str) -> Option<Arc<Entry>> {
        let inner = locks::lock(&self.inner);
        inner.entries.get(key).filter(|e| e.fresh()).cloned()
    }

    /// Starts collecting a response if the core marked it cacheable.
    pub fn admit(&self, key: String, resp: &ResponseHeader) -> Option<Filling> {
        let status = resp.status.as_u16();
        if !matches!(status, 200 | 203 | 300 | 301 | 404 | 410) {
            return None;
        }
        let header = |name: &str| resp.headers.get(name).and_then(|v| v.to_str().ok());
        if resp.headers.contains_key("set-cookie") {
            return None;
        }
        if let Some(vary) = header("vary")
            && vary
                .split(',')
                .any(|v| !v.trim().eq_ignore_ascii_case("accept-encoding"))
        {
            return None;
        }
        let max_age = max_age(header("cache-control")?)?;
        if let Some(len) = header("content-length").and_then(|l| l.parse::<usize>().ok())
            && len > self.max_entry_bytes
        {
            return None;
        }
        let headers = resp
            .headers
            .iter()
            .filter(|(k, _)| !is_hop_by_hop(k.as_str()))
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        Some(Filling {
            key,
            status,
            headers,
            max_age,
            body: BytesMut::new(),
        })
    }

    /// Adds a body chunk; false if the response outgrew an entry.
    pub fn append(&self, filling: &mut Filling, chunk: &[u8]) -> bool {
        if filling.body.len() + chunk.len() > self.max_entry_bytes {
            return false;
        }
        filling.body.extend_from_slice(chunk);
        true
    }

    pub fn store(&self, filling: Filling) {
        let size = filling.body.len() + filling.key.len() + 256;
        let entry = Arc::new(Entry {
            status: filling.status,
            headers: filling.headers,
            body: filling.body.freeze(),
            stored: Instant::now(),
            max_age: filling.max_age,
        });
        let mut inner = locks::lock(&self.inner);
        if let Some(old) = inner.entries.insert(filling.key.clone(), entry) {
            inner.bytes = inner.bytes.saturating_sub(old.body.len() + filling.key.len() + 256);
            inner.order.retain(|k| *k != filling.key);
        }
        inner.order.push_back(filling.key);
        inner.bytes += size;
        while inner.bytes > self.max_bytes {
            let Some(oldest) = inner.order.pop_front() else {
                break;
            };
            if let Some(e) = inner.entries.remove(&oldest) {
                inner.bytes = inner.bytes.saturating_sub(e.body.len() + oldest.len() + 256);
            }
        }
    }

    pub fn len(&self) -> usize {
        locks::lock(&self.inner).entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How long a response may be shared, from its Cache-Control; None if it
/// may not be (not public, private, no-store, no-cache, or no max-age).
fn max_age(cache_control: &str) -> Option<Duration> {
    let mut public = false;
    let mut age = None;
    let mut shared_age = None;
    for d in cache_control.split(',').map(|d| d.trim().to_ascii_lowercase()) {
        match d.as_str() {
            "public" => public = true,
            "private" | "no-store" | "no-cache" => return None,
            _ => {
                if let Some(v) = d.strip_prefix("s-maxage=") {
                    shared_age = v.parse::<u64>().ok();
                } else if let Some(v) = d.strip_prefix("max-age=") {
                    age = v.parse::<u64>().ok();
                }
            }
        }
    }
    let secs = shared_age.or(age).filter(|s| *s > 0)?;
    public.then(|| Duration::from_secs(secs))
}

fn is_hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "connection" | "keep-alive" | "transfer-encoding" | "te" | "trailer" | "upgrade" | "proxy-connection"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(cache_control: &str, extra: &[(&str, &str)]) -> ResponseHeader {
        let mut r = ResponseHeader::build(200, None).unwrap();
        r.insert_header("cache-control", cache_control).unwrap();
        for (k, v) in extra {
            r.insert_header(k.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn only_public_responses_with_an_age_are_kept() {
        assert_eq!(max_age("public, max-age=60"), Some(Duration::from_secs(60)));
        assert_eq!(max_age("public, max-age=60, s-maxage=5"), Some(Duration::from_secs(5)));
        assert_eq!(max_age("max-age=60"), None, "not public");
        assert_eq!(max_age("public, max-age=60, private"), None);
        assert_eq!(max_age("public, no-store"), None);
        assert_eq!(max_age("public"), None, "no age");
        let c = ResponseCache::new(1 << 20, 1 << 16);
        assert!(c.admit("k".into(), &response("public, max-age=9", &[])).is_some());
        assert!(
            c.admit("k".into(), &response("public, max-age=9", &[("set-cookie", "a=b")]))
                .is_none()
        );
        assert!(
            c.admit("k".into(), &response("public, max-age=9", &[("vary", "Cookie")]))
                .is_none()
        );
        assert!(
            c.admit(
                "k".into(),
                &response("public, max-age=9", &[("vary", "Accept-Encoding")])
            )
            .is_some()
        );
        assert!(
            c.admit(
                "k".into(),
                &response("public, max-age=9", &[("content-length", "999999")])
            )
            .is_none()
        );
    }

    #[test]
    fn keys_separate_encodings_and_skip_what_is_not_shared() {
        assert_eq!(
            ResponseCache::key("GET", "/a?b", Some("gzip, br"), false).as_deref(),
            Some("gz|/a?b")
        );
        assert_eq!(
            ResponseCache::key("GET", "/a?b", None, false).as_deref(),
            Some("id|/a?b")
        );
        assert_eq!(ResponseCache::key("POST", "/a", None, false), None);
        assert_eq!(ResponseCache::key("GET", "/a", None, true), None);
    }

    #[test]
    fn the_total_size_is_bounded_oldest_out_first() {
        let c = ResponseCache::new(3 * (1000 + 256 + 2), 10_000);
        for k in ["k1", "k2", "k3", "k4"] {
            let mut f = c.admit(k.into(), &response("public, max-age=60", &[])).unwrap();
            assert!(c.append(&mut f, &[0u8; 1000]));
            c.store(f);
        }
        assert_eq!(c.len(), 3);
        assert!(c.get("k1").is_none(), "the oldest went");
        assert!(c.get("k4").is_some());
        let mut big = c.admit("big".into(), &response("public, max-age=60", &[])).unwrap();
        assert!(!c.append(&mut big, &[0u8; 10_001]), "too big for one entry");
    }
}
