//! Which requests are protected (need an access token for an event) and
//! which bypass the waiting room, compiled once from the configuration.

use std::net::IpAddr;

use crate::config::{BypassRule, Network, ProtectionConfig};

/// A path pattern with `{event}` in it, e.g. `/v1/events/{event}/holds`.
#[derive(Debug, Clone)]
struct EventPath {
    prefix: String,
    suffix: String,
}

impl EventPath {
    fn parse(pattern: &str) -> Option<EventPath> {
        let (prefix, suffix) = pattern.split_once("{event}")?;
        Some(EventPath {
            prefix: prefix.into(),
            suffix: suffix.into(),
        })
    }

    /// The event id, if the (canonical) path matches: the path itself or
    /// below it.
    fn event_of(&self, path: &str) -> Option<i64> {
        let rest = path.strip_prefix(&self.prefix)?;
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let (id, tail) = rest.split_at(digits);
        let below = tail.strip_prefix(self.suffix.as_str())?;
        (below.is_empty() || below.starts_with('/'))
            .then(|| id.parse().ok())
            .flatten()
    }
}

/// What a path needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protected {
    /// Nothing: pass it through.
    No,
    /// An access token for this event (if the event has a waiting room).
    Event(i64),
    /// An access token for any event.
    AnySession,
    /// No token needed, but one that comes along is checked and forwarded,
    /// so the core's answer can end the fan's session (checkout).
    Optional,
}

#[derive(Debug, Clone)]
pub struct Protection {
    event_paths: Vec<EventPath>,
    session_prefixes: Vec<String>,
    optional_prefixes: Vec<String>,
    after_admission: String,
}

impl Protection {
    pub fn new(config: &ProtectionConfig) -> Protection {
        Protection {
            event_paths: config.event_paths.iter().filter_map(|p| EventPath::parse(p)).collect(),
            session_prefixes: config.session_prefixes.clone(),
            optional_prefixes: config.optional_prefixes.clone(),
            after_admission: config.after_admission.clone(),
        }
    }

    /// The path an admitted fan of `event` is sent to.
    pub fn after_admission(&self, event: i64) -> String {
        self.after_admission.replace("{event}", &event.to_string())
    }

    pub fn classify(&self, path: &str) -> Protected {
        if let Some(event) = self.event_paths.iter().find_map(|p| p.event_of(path)) {
            return Protected::Event(event);
        }
        if self.session_prefixes.iter().any(|p| under(path, p)) {
            return Protected::AnySession;
        }
        if self.optional_prefixes.iter().any(|p| under(path, p)) {
            return Protected::Optional;
        }
        Protected::No
    }
}

/// Whether `path` is `prefix` or below it, segment by segment: a bypass for
/// `/healthz` does not cover `/healthzx`. A prefix ending in `/` (such as
/// `/v1/holds/`) covers what is below it.
fn under(path: &str, prefix: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

#[derive(Debug, Clone)]
enum Bypass {
    Path(String),
    Header(String, String),
    Network(Network),
}

#[derive(Debug, Clone, Default)]
pub struct Bypasses(Vec<Bypass>);

impl Bypasses {
    pub fn new(rules: &[BypassRule]) -> Bypasses {
        Bypasses(
            rules
                .iter()
                .filter_map(|r| match (&r.path_prefix, &r.header, &r.network) {
                    (Some(p), None, None) => Some(Bypass::Path(p.clone())),
                    (None, Some((name, value)), None) => Some(Bypass::Header(name.to_ascii_lowercase(), value.clone())),
                    (None, None, Some(n)) => Some(Bypass::Network(*n)),
                    _ => None,
                })
                .collect(),
        )
    }

    pub fn matches(&self, path: &str, header: impl Fn(&str) -> Option<String>, client: Option<IpAddr>) -> bool {
        self.0.iter().any(|rule| match rule {
            Bypass::Path(p) => under(path, p),
            Bypass::Header(name, value) => header(name).is_some_and(|v| v == *value),
            Bypass::Network(n) => client.is_some_and(|ip| n.contains(ip)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protected_paths_name_their_event() {
        let p = Protection::new(&ProtectionConfig::default());
        assert_eq!(p.classify("/v1/events/42/holds"), Protected::Event(42));
        assert_eq!(p.classify("/v1/events/42/holds/x"), Protected::Event(42));
        assert_eq!(p.classify("/v1/events/42/seat-changes"), Protected::Event(42));
        assert_eq!(p.classify("/v1/events/42/holdsx"), Protected::No);
        assert_eq!(p.classify("/v1/events/42"), Protected::No);
        assert_eq!(p.classify("/v1/events/abc/holds"), Protected::No);
        assert_eq!(p.classify("/v1/holds/0190-abc"), Protected::AnySession);
        assert_eq!(p.classify("/v1/orders"), Protected::Optional);
        assert_eq!(p.classify("/v1/orders/0190-abc"), Protected::Optional);
        assert_eq!(p.classify("/v1/venues/1/seatmap"), Protected::No);
    }

    #[test]
    fn networks_and_bypasses() {
        let n = Network::parse("10.1.0.0/16").unwrap();
        assert!(n.contains("10.1.200.3".parse().unwrap()));
        assert!(!n.contains("10.2.0.1".parse().unwrap()));
        assert!(Network::parse("::1/128").unwrap().contains("::1".parse().unwrap()));
        assert!(Network::parse("10.0.0.0/33").is_none());
        let b = Bypasses::new(&[
            BypassRule {
                path_prefix: Some("/healthz".into()),
                header: None,
                network: None,
            },
            BypassRule {
                path_prefix: None,
                header: Some(("X-Staff".into(), "s3cret".into())),
                network: None,
            },
        ]);
        assert!(b.matches("/healthz", |_| None, None));
        assert!(b.matches("/healthz/deep", |_| None, None));
        assert!(!b.matches("/healthzx", |_| None, None));
        assert!(b.matches("/v1/x", |h| (h == "x-staff").then(|| "s3cret".to_string()), None));
        assert!(!b.matches("/v1/x", |h| (h == "x-staff").then(|| "nope".to_string()), None));
    }
}
