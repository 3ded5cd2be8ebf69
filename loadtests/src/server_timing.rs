//! Reading the `Server-Timing` marks booking-core puts on its answers
//! (`core;dur=…` on every one, `provider;dur=…` on orders) and the edge adds
//! to those it forwards (`edge;dur=…`, from reading the request to the
//! core's answer): how the load tools tell the core's, the edge's and the
//! payment provider's time from the rest.

use reqwest::header::HeaderMap;

/// The part of a `Server-Timing` header for `name`, in microseconds.
pub fn timing(headers: &HeaderMap, name: &str) -> Option<u32> {
    headers.get_all("server-timing").iter().find_map(|v| {
        let v = v.to_str().ok()?;
        v.split(',').find_map(|part| {
            let part = part.trim();
            let rest = part.strip_prefix(name)?.strip_prefix(";dur=")?;
            rest.parse::<f64>().ok().map(|ms| (ms * 1000.0) as u32)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_timing_parts_are_found_by_name() {
        let mut h = HeaderMap::new();
        h.append("server-timing", "provider;dur=12.5".parse().unwrap());
        h.append("server-timing", "core;dur=40.0".parse().unwrap());
        assert_eq!(timing(&h, "provider"), Some(12_500));
        assert_eq!(timing(&h, "core"), Some(40_000));
        assert_eq!(timing(&h, "edge"), None);
        h.append("server-timing", "edge;dur=41.5".parse().unwrap());
        assert_eq!(timing(&h, "edge"), Some(41_500));
    }
}
