//! A hostile request as the edge reads it, from its first line to its
//! decision: the path's canonical rewrite (as `proxy::canonical` does it),
//! the path's classification and bypasses (`rules`), the parts the waiting
//! room reads (`fans::request`, cookies included), the client's address
//! (`forwarded_client`) and the access check (`fans::check_access`). Never a
//! panic, and:
//!
//! - the canonical path is canonical, a fixed point, and the rewritten
//!   target reads back as that path with the query unchanged (what the edge
//!   decides on is what the core receives);
//! - a path named protected names its event's digits or a configured prefix,
//!   and a bypass by path covers only that path and what is below it;
//! - addresses a client writes to the left of `X-Forwarded-For` never change
//!   who the client is, and an untrusted peer is always the client;
//! - only the one genuine access token, for its own event and client, is
//!   ever taken.
//!
//! Input: `METHOD TARGET` on the first line, then `name: value` headers, one
//! a line. `{ACCESS}` in a header stands for a genuine access token (event
//! 1, client `fuzzclient`, user agent `fuzz-agent`, language `en-GB`).
#![no_main]

use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock};

use edge_proxy::config::{EdgeConfig, Network, TokensConfig};
use edge_proxy::defence::Defences;
use edge_proxy::fans::check_access;
use edge_proxy::fans::request::{CLIENT_COOKIE, Request, forwarded_client};
use edge_proxy::limits::Limits;
use edge_proxy::limits::tally::Tallies;
use edge_proxy::queue::Rooms;
use edge_proxy::rules::{Bypasses, Protected, Protection};
use edge_proxy::state::{Bucket, EdgeState};
use edge_proxy::tokens::{EdgeTokens, binding};
use libfuzzer_sys::fuzz_target;
use usher_shared::keys::generate_pair;
use usher_shared::paths::{canonical, is_canonical};

/// The repository's own configuration: its protected paths, bypasses and
/// event 1's waiting room.
const CONFIG: &str = include_str!("../../../config/edge-proxy.toml");

struct World {
    state: EdgeState,
    /// The genuine access token and the binding it was issued to.
    access: String,
    bnd: String,
    trusted: Vec<Network>,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let config: EdgeConfig = toml::from_str(CONFIG).expect("config/edge-proxy.toml reads");
        let pair = generate_pair();
        let tokens_config = TokensConfig {
            private_key_file: "unused".into(),
            previous_keys: Vec::new(),
            ..config.tokens.clone()
        };
        let tokens = EdgeTokens::from_pem(&tokens_config, &pair.private_pem, &[]).expect("a fresh key loads");
        let bnd = binding("fuzzclient", "fuzz-agent", "en-GB");
        let (access, _) = tokens.issue_access(1, 1, &bnd, 24 * 3600);
        let state = EdgeState {
            rooms: Rooms::from_settings(&config.events),
            protection: Protection::new(&config.protection),
            bypass: Bypasses::new(&config.bypass),
            limits: Limits::new(&config.rate_limits, Arc::new(Tallies::off())),
            defences: Defences::off(),
            fail_open: Mutex::new(Bucket::new(config.redis.fail_open_per_minute)),
            tokens,
            store: Default::default(),
            metrics: Default::default(),
            core_health: Default::default(),
            cache: edge_proxy::cache::ResponseCache::new(1 << 20, 1 << 16),
            upstreams: Arc::new(edge_proxy::upstreams::balancer(&config.upstream)),
            config_path: "config/edge-proxy.toml".into(),
            config,
        };
        // The harness's own check: the genuine token, as a browser sends
        // it, is taken (so "only the genuine one" is not said of nothing).
        let mut headers = http::HeaderMap::new();
        let cookie = format!("usher_client=fuzzclient; usher_access_1={access}");
        headers.append("cookie", cookie.parse().expect("a cookie header"));
        headers.append("user-agent", "fuzz-agent".parse().expect("a header"));
        headers.append("accept-language", "en-GB".parse().expect("a header"));
        let uri = "/v1/events/1/holds".parse().expect("a path");
        let req = Request::from_parts("GET", &uri, &headers);
        assert!(check_access(&state, &req, Protected::Event(1)).is_ok());
        World {
            state,
            access,
            bnd,
            trusted: vec![Network::parse("10.0.0.0/8").expect("a network")],
        }
    })
}

/// Whether `path` is `prefix` or below it, as the rules document it.
fn below(path: &str, prefix: &str) -> bool {
    path == prefix
        || path.starts_with(&format!("{}/", prefix.trim_end_matches('/')))
        || (prefix.ends_with('/') && path.starts_with(prefix))
}

fn check_forwarded(w: &World, xff: &[&str]) {
    let peer: IpAddr = "10.0.0.5".parse().unwrap();
    let client = forwarded_client(peer, xff.iter().copied(), &w.trusted);
    // Nothing but the peer or a hop that was written can be the client.
    let hops: Vec<IpAddr> = xff
        .iter()
        .flat_map(|h| h.split(','))
        .filter_map(|h| h.trim().parse().ok())
        .collect();
    assert!(client == peer || hops.contains(&client), "{client} from {xff:?}");
    // What a client writes in front of the trail changes nothing once an
    // untrusted hop has been reached.
    if !w.trusted.iter().any(|n| n.contains(client)) {
        let forged: Vec<&str> = std::iter::once("203.0.113.66, 10.0.0.1")
            .chain(xff.iter().copied())
            .collect();
        assert_eq!(
            forwarded_client(peer, forged.iter().copied(), &w.trusted),
            client,
            "{xff:?}"
        );
    }
    // An untrusted peer is the client, whatever it sends.
    let stranger: IpAddr = "192.0.2.1".parse().unwrap();
    assert_eq!(forwarded_client(stranger, xff.iter().copied(), &w.trusted), stranger);
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    let mut lines = data.split(|b| *b == b'\n');
    let first = lines.next().unwrap_or_default();
    let Some(space) = first.iter().position(|b| *b == b' ') else {
        return;
    };
    let Ok(method) = http::Method::from_bytes(&first[..space]) else {
        return;
    };
    let Ok(uri) = http::Uri::try_from(&first[space + 1..]) else {
        return;
    };
    let mut headers = http::HeaderMap::new();
    for line in lines {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let Ok(name) = http::HeaderName::from_bytes(&line[..colon]) else {
            continue;
        };
        let value = line[colon + 1..].trim_ascii();
        let value = String::from_utf8_lossy(value).replace("{ACCESS}", &w.access);
        if let Ok(value) = http::HeaderValue::from_str(&value) {
            headers.append(name, value);
        }
    }

    // The canonical rewrite: a refused path goes no further.
    let Ok(path) = canonical(uri.path()) else {
        return;
    };
    assert!(is_canonical(&path), "{:?} -> {path:?}", uri.path());
    assert_eq!(canonical(&path).ok().as_deref(), Some(&*path), "not a fixed point");
    let target = match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.clone().into_owned(),
    };
    let Ok(uri) = target.parse::<http::Uri>() else {
        return; // refused with 400
    };
    assert_eq!(uri.path(), path, "the rewritten target reads as another path");
    let path = uri.path();

    // Classification and bypasses.
    let state = &w.state;
    let protection = &state.protection;
    let need = protection.classify(path);
    let config = &state.config.protection;
    match need {
        Protected::Event(event) => {
            assert!(event >= 0 && path.contains(&event.to_string()), "{path} -> {event}");
            assert!(
                config
                    .event_paths
                    .iter()
                    .any(|p| p.split("{event}").next().is_some_and(|pre| path.starts_with(pre))),
                "{path}"
            );
        }
        Protected::AnySession => assert!(config.session_prefixes.iter().any(|p| below(path, p)), "{path}"),
        Protected::Optional => assert!(config.optional_prefixes.iter().any(|p| below(path, p)), "{path}"),
        Protected::No => {}
    }
    if state.bypass.matches(path, |_| None, None) {
        let mut prefixes = state.config.bypass.iter().filter_map(|r| r.path_prefix.as_deref());
        assert!(prefixes.any(|p| below(path, p)), "{path} bypassed");
    }

    // The parts the waiting room reads.
    let req = Request::from_parts(method.as_str(), &uri, &headers);
    assert_eq!(req.path, path);
    assert_eq!(req.query, uri.query().unwrap_or(""));
    if let Some(client) = req.client_id() {
        assert!(!client.is_empty() && client.len() <= 64);
    }
    if let Some(cookie) = req.cookie(CLIENT_COOKIE) {
        assert!(req.client_id().is_none_or(|c| c == cookie));
    }
    let xff: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    check_forwarded(w, &xff);

    // The decision: only the genuine token, for its event and client.
    for need in [need, Protected::Event(1), Protected::Event(2), Protected::AnySession] {
        if let Ok((token, claims)) = check_access(state, &req, need) {
            assert_eq!(token, w.access, "a token other than the genuine one was taken");
            assert_eq!(claims.evt, 1);
            assert!(
                !matches!(need, Protected::Event(e) if e != 1),
                "taken for event {need:?}"
            );
            assert_eq!(req.own_binding(), w.bnd, "taken from another client");
        }
    }
});
