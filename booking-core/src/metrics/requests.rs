//! HTTP requests by route template, method and status, with their latency.
//! The route is axum's matched template (`/v1/events/{event_id}`), never
//! the path a client sent; a request no route matched is `unmatched`. So
//! the number of series is bounded by the router, whatever URLs arrive.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::metrics::family::Family;
use crate::metrics::histogram::Histogram;
use crate::metrics::text::Text;

/// The route label of a request no route matched (404s for unknown paths).
pub const UNMATCHED: &str = "unmatched";

/// Per route template: a histogram per (method, status).
type Route = Family<(&'static str, u16), Histogram>;

#[derive(Default)]
pub struct Requests {
    routes: RwLock<HashMap<Arc<str>, Arc<Route>>>,
}

/// A method as a label: the standard ones by name, anything else `other`
/// (a client may send any token as a method).
fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
    ];
    KNOWN.iter().find(|m| **m == method).copied().unwrap_or("other")
}

impl Requests {
    pub fn observe(&self, route: Option<&str>, method: &str, status: u16, took: Duration) {
        let route = route.unwrap_or(UNMATCHED);
        let series = {
            let routes = self.routes.read().unwrap_or_else(|e| e.into_inner());
            routes.get(route).cloned()
        };
        let series = match series {
            Some(s) => s,
            None => {
                let mut routes = self.routes.write().unwrap_or_else(|e| e.into_inner());
                routes.entry(Arc::from(route)).or_default().clone()
            }
        };
        series.get(&(method_label(method), status)).observe(took);
    }

    /// How many (route, method, status) series exist.
    pub fn series(&self) -> usize {
        let routes = self.routes.read().unwrap_or_else(|e| e.into_inner());
        routes.values().map(|r| r.len()).sum()
    }

    pub fn render(&self, out: &mut Text) {
        out.family(
            "usher_core_http_request_seconds",
            "histogram",
            "Time to the answer's head, by route template, method and status (its _count is the request count).",
        );
        let mut routes: Vec<(Arc<str>, Arc<Route>)> = {
            let routes = self.routes.read().unwrap_or_else(|e| e.into_inner());
            routes.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
        };
        routes.sort_by(|a, b| a.0.cmp(&b.0));
        for (route, series) in routes {
            for ((method, status), h) in series.all() {
                let status = status.to_string();
                out.histogram(
                    "usher_core_http_request_seconds",
                    &[("route", &route), ("method", method), ("status", &status)],
                    &h.snapshot(),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_outside_the_standard_ones_share_one_label() {
        assert_eq!(method_label("GET"), "GET");
        assert_eq!(method_label("BREW"), "other");
        let r = Requests::default();
        for m in ["FOO", "BAR", "BAZ"] {
            r.observe(None, m, 404, Duration::from_millis(1));
        }
        assert_eq!(r.series(), 1);
    }
}
