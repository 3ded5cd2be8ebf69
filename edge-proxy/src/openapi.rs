//! The edge's own HTTP surface as an OpenAPI 3.1 document (`openapi.json`,
//! kept by hand and checked by the edge tests' `openapi` module and by
//! `deploy/local/api-fuzz`): the waiting room fans speak to and the admin
//! API. Each listener serves its own part: the proxy `FANS_PATH` (paths
//! under `/queue/`), the admin listener `/openapi.json` (the rest).
//! booking-core's API, which the edge forwards, is described by the core.

use std::sync::OnceLock;

use bytes::Bytes;
use serde_json::Value;

/// Where the proxy listener serves the fan-facing part (`/openapi.json`
/// there is the core's document, forwarded).
pub const FANS_PATH: &str = "/queue/openapi.json";

/// Where the admin listener serves its part.
pub const ADMIN_PATH: &str = "/openapi.json";

/// The whole document, both listeners' paths.
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| serde_json::from_str(include_str!("openapi.json")).expect("openapi.json is JSON"))
}

/// Whether a documented path is served by the proxy listener (else by the
/// admin listener).
pub fn on_proxy(path: &str) -> bool {
    path.starts_with("/queue/")
}

fn part(proxy: bool) -> Bytes {
    let mut doc = document().clone();
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        paths.retain(|path, _| on_proxy(path) == proxy);
    }
    if let Some(tags) = doc.get_mut("tags").and_then(Value::as_array_mut) {
        let keep = if proxy { "fans" } else { "admin" };
        tags.retain(|t| t["name"] == keep);
    }
    // Serialising a JSON value cannot fail.
    Bytes::from(serde_json::to_vec(&doc).unwrap_or_default())
}

/// The fan-facing part, as the proxy listener serves it.
pub fn fans() -> Bytes {
    static PART: OnceLock<Bytes> = OnceLock::new();
    PART.get_or_init(|| part(true)).clone()
}

/// The admin API's part, as the admin listener serves it.
pub fn admin() -> Bytes {
    static PART: OnceLock<Bytes> = OnceLock::new();
    PART.get_or_init(|| part(false)).clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_listener_gets_its_own_paths() {
        let fans: Value = serde_json::from_slice(&fans()).unwrap();
        let admin: Value = serde_json::from_slice(&admin()).unwrap();
        let keys = |v: &Value| v["paths"].as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert!(keys(&fans).iter().all(|p| p.starts_with("/queue/")));
        assert!(keys(&fans).contains(&FANS_PATH.to_owned()));
        assert!(keys(&admin).contains(&ADMIN_PATH.to_owned()));
        assert!(keys(&admin).iter().all(|p| !p.starts_with("/queue/")));
        assert_eq!(
            keys(&fans).len() + keys(&admin).len(),
            document()["paths"].as_object().unwrap().len()
        );
        assert_eq!(fans["openapi"], "3.1.0");
    }
}
