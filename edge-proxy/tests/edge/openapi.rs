//! The edge's OpenAPI document (`edge-proxy/src/openapi.json`) against the
//! edge itself: each listener serves its part, every route the edge's
//! routers serve is documented (read off their source: the admin API's
//! `.route(...)` calls and the waiting room's `match` arms) and every
//! documented operation is answered by the running edge, and the answers
//! of real calls (join, status, the page, the stream, admin room get and
//! put, refusals of each kind) are what the document says they are,
//! checked with a JSON Schema validator. `deploy/local/api-fuzz` goes on
//! from here with schemathesis.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::*;

fn document() -> &'static Value {
    edge_proxy::openapi::document()
}

/// The documented path template that `path` falls under: the one with the
/// most literal segments (`/queue/openapi.json` before `/queue/{event}`).
fn template(path: &str) -> Option<String> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    document()["paths"]
        .as_object()?
        .keys()
        .filter_map(|t| {
            let parts: Vec<&str> = t.trim_start_matches('/').split('/').collect();
            if parts.len() != segments.len() {
                return None;
            }
            let mut literal = 0;
            for (p, s) in parts.iter().zip(&segments) {
                if p.starts_with('{') {
                    continue;
                }
                if p != s {
                    return None;
                }
                literal += 1;
            }
            Some((literal, t.clone()))
        })
        .max()
        .map(|(_, t)| t)
}

/// Whether an answer is what the document says: the status documented for
/// the operation, the content type documented for it, and a JSON body valid
/// against its schema.
fn check(method: &str, path: &str, status: u16, content_type: &str, body: &[u8]) -> Result<(), String> {
    let doc = document();
    let template = template(path).ok_or_else(|| format!("{path} is not documented"))?;
    let operation = &doc["paths"][&template][method.to_ascii_lowercase()];
    if operation.is_null() {
        return Err(format!("{method} {template} is not documented"));
    }
    let response = &operation["responses"][status.to_string()];
    if response.is_null() {
        return Err(format!("status {status} is not documented for {method} {template}"));
    }
    let media = content_type.split(';').next().unwrap_or("").trim();
    let content = response["content"]
        .as_object()
        .ok_or_else(|| format!("{method} {template} {status} documents no content"))?;
    let documented = content.get(media).ok_or_else(|| {
        format!(
            "{method} {template} {status}: content type {media} is not documented ({:?})",
            content.keys().collect::<Vec<_>>()
        )
    })?;
    if !media.ends_with("json") {
        return Ok(());
    }
    let instance: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let mut root = documented["schema"].clone();
    root.as_object_mut()
        .expect("a schema object")
        .insert("components".into(), doc["components"].clone());
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&root)
        .map_err(|e| format!("the schema of {method} {template} {status} does not compile: {e}"))?;
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .take(3)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{method} {template} {status}: {} (answer: {instance})",
            errors.join("; ")
        ))
    }
}

/// Sends a request and checks its answer against the document; returns the
/// status and the JSON body (Null if none).
async fn call(request: reqwest::RequestBuilder) -> (u16, Value) {
    let request = request.build().unwrap();
    let (method, path) = (request.method().to_string(), request.url().path().to_owned());
    let answer = reqwest::Client::new().execute(request).await.unwrap();
    let status = answer.status().as_u16();
    let content_type = answer
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = answer.bytes().await.unwrap();
    if let Err(why) = check(&method, &path, status, &content_type, &body) {
        panic!("{method} {path} answered {status} unlike the document: {why}");
    }
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// The routes the edge's routers serve, read off their source: the admin
/// API's `.route(path, get(..).put(..))` calls and the waiting room's
/// `("METHOD", "action")` arms, as (method, template).
fn served_routes() -> BTreeSet<(String, String)> {
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/src/");
    let admin = std::fs::read_to_string(format!("{src}admin.rs")).unwrap();
    let mut routes = BTreeSet::new();
    for call in admin.split(".route(").skip(1) {
        let (path, rest) = call.split_once(',').unwrap();
        let path = path
            .trim()
            .replace("&format!(", "")
            .replace("{ROOMS_PATH}", usher_shared::admin::ROOMS_PATH)
            .replace("ROOMS_PATH", usher_shared::admin::ROOMS_PATH)
            .replace("crate::openapi::ADMIN_PATH", edge_proxy::openapi::ADMIN_PATH)
            .replace(['"', ')'], "")
            .replace("{{", "{")
            .replace("}}", "}");
        // The handlers of this call: up to its closing parenthesis.
        let mut depth = 1;
        let end = rest
            .char_indices()
            .find(|(_, c)| {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                depth == 0
            })
            .map_or(rest.len(), |(i, _)| i);
        let chain = &rest[..end];
        for method in ["get", "put", "post", "delete", "patch"] {
            let named = chain.trim_start().starts_with(&format!("{method}(")) || chain.contains(&format!(".{method}("));
            if named {
                routes.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    let fans = std::fs::read_to_string(format!("{src}fans/mod.rs")).unwrap();
    let arms = fans
        .split_once("match (req.method.as_str(), action) {")
        .expect("the waiting room's match")
        .1;
    for line in arms.lines().map(str::trim).filter(|l| l.starts_with("(\"")) {
        let (method, rest) = line[2..].split_once('"').unwrap();
        let actions = rest.split_once(')').unwrap().0;
        for action in actions
            .split('|')
            .filter_map(|a| a.trim().strip_prefix(", ").or(Some(a.trim())))
        {
            let action = action.trim_matches(|c| c == '"' || c == ',' || c == ' ');
            let path = if action.is_empty() {
                "/queue/{event}".to_owned()
            } else {
                format!("/queue/{{event}}/{action}")
            };
            routes.insert((method.to_owned(), path));
        }
    }
    routes.insert(("GET".into(), edge_proxy::openapi::FANS_PATH.into()));
    routes
}

fn documented_routes() -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    for (path, item) in document()["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            routes.insert((method.to_uppercase(), path.clone()));
        }
    }
    routes
}

#[test]
fn every_route_the_edge_serves_is_documented() {
    let served = served_routes();
    assert!(served.len() >= 14, "reading the routers found too little: {served:?}");
    let documented = documented_routes();
    let missing: Vec<_> = served.difference(&documented).collect();
    assert!(missing.is_empty(), "served but not in openapi.json: {missing:?}");
    let extra: Vec<_> = documented.difference(&served).collect();
    assert!(extra.is_empty(), "in openapi.json but not served: {extra:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edges_answers_are_what_its_openapi_document_says() {
    let (upstream, event, edge) = one_room("openapi", 6000, 1000).await;
    let http = reqwest::Client::new();
    let admin = |method: Method, path: &str| http.request(method, edge.admin_url(path)).bearer_auth(ADMIN_TOKEN);

    // Each listener serves its part; the proxy's /openapi.json stays the core's.
    let (s, fans_doc) = call(http.get(edge.url("/queue/openapi.json"))).await;
    assert_eq!(s, 200);
    let (s, admin_doc) = call(http.get(edge.admin_url("/openapi.json"))).await;
    assert_eq!(s, 200);
    for doc in [&fans_doc, &admin_doc] {
        assert_eq!(doc["openapi"], "3.1.0");
    }
    let mut both: Vec<String> = fans_doc["paths"].as_object().unwrap().keys().cloned().collect();
    both.extend(admin_doc["paths"].as_object().unwrap().keys().cloned());
    both.sort();
    let mut all: Vec<String> = document()["paths"].as_object().unwrap().keys().cloned().collect();
    all.sort();
    assert_eq!(both, all);
    assert!(
        fans_doc["paths"]
            .as_object()
            .unwrap()
            .keys()
            .all(|p| p.starts_with("/queue/"))
    );
    http.get(edge.url("/openapi.json")).send().await.unwrap();
    assert_eq!(
        upstream.hits("/openapi.json"),
        1,
        "the proxy's /openapi.json is the core's"
    );

    // Every documented operation is answered by the edge (not refused as an
    // unknown path or method).
    for (method, path) in documented_routes() {
        if path.ends_with("/events") && path.starts_with("/queue/") {
            continue; // a stream: below
        }
        let url_path = path.replace("{event}", &event.to_string());
        let base = if edge_proxy::openapi::on_proxy(&path) {
            edge.url(&url_path)
        } else {
            edge.admin_url(&url_path)
        };
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        let r = http.request(m, base).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
        let code = r.headers().get("content-type").map(|c| c.to_str().unwrap().to_owned());
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert!(
            !matches!(body["code"].as_str(), Some("not_found" | "method_not_allowed")),
            "{method} {path} is documented but not served: {body} ({code:?})"
        );
    }

    // The fans' side: the page, a join, status, the stream, refusals.
    let r = http.get(edge.url(&format!("/queue/{event}"))).send().await.unwrap();
    let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
    check("GET", &format!("/queue/{event}"), r.status().as_u16(), &ct, b"").unwrap();
    let (s, joined) = call(http.post(edge.url(&format!("/queue/{event}/join")))).await;
    assert_eq!(s, 200, "{joined}");
    let fan = Fan::joined(&joined);
    let status_of = |fan: &Fan| {
        http.get(edge.url(&format!("/queue/{event}/status")))
            .header("usher-client", &fan.client_id)
            .bearer_auth(&fan.queue_token)
    };
    let (s, v) = call(status_of(&fan)).await;
    assert_eq!(s, 200, "{v}");
    // A rejoin with the token keeps the place.
    let (s, again) = call(
        http.post(edge.url(&format!("/queue/{event}/join")))
            .header("usher-client", &fan.client_id)
            .bearer_auth(&fan.queue_token),
    )
    .await;
    assert_eq!((s, &again["ticket"]), (200, &joined["ticket"]));
    // Admitted (6000 a minute): the access token.
    let mut admitted = Value::Null;
    for _ in 0..100 {
        let (s, v) = call(status_of(&fan)).await;
        assert_eq!(s, 200, "{v}");
        if v["status"] == "admitted" {
            admitted = v;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(admitted["access_token"].is_string(), "never admitted");
    let (s, v) = call(http.get(edge.url(&format!("/queue/{event}/status")))).await;
    assert_eq!((s, v["code"].as_str()), (401, Some("queue_token_missing")));
    let other = Fan {
        client_id: "someone-else".into(),
        ..fan.clone()
    };
    let (s, v) = call(status_of(&other)).await;
    assert_eq!((s, v["code"].as_str()), (401, Some("token_other_client")));
    let (s, v) = call(http.get(edge.url(&format!("/queue/{event}/status?token=garbage")))).await;
    assert_eq!((s, v["code"].as_str()), (401, Some("token_malformed")));
    let stream = http
        .get(edge.url(&format!("/queue/{event}/events")))
        .header("usher-client", &fan.client_id)
        .bearer_auth(&fan.queue_token)
        .send()
        .await
        .unwrap();
    let ct = stream.headers()["content-type"].to_str().unwrap().to_owned();
    check(
        "GET",
        &format!("/queue/{event}/events"),
        stream.status().as_u16(),
        &ct,
        b"",
    )
    .unwrap();
    drop(stream);
    let (s, _) = call(http.get(edge.url(&format!("/queue/{event}/events")))).await;
    assert_eq!(s, 401);
    let (s, v) = call(http.get(edge.url(&format!("/queue/{event}/lottery")))).await;
    assert_eq!((s, v["state"].as_str()), (200, Some("")));
    let (s, v) = call(http.get(edge.url(&format!("/queue/{event}/challenge")))).await;
    assert_eq!((s, v["code"].as_str()), (404, Some("challenge_not_needed")));
    let (s, v) = call(http.post(edge.url(&format!("/queue/{}/join", event + 1)))).await;
    assert_eq!((s, v["code"].as_str()), (404, Some("queue_not_found")));
    let (s, v) = call(http.post(edge.url("/queue/99999999999999999999999/join"))).await;
    assert_eq!((s, v["code"].as_str()), (400, Some("path_number_too_large")));

    // The admin API: rooms, one room got and put, fairness, the defences,
    // and its refusals.
    let (s, v) = call(admin(Method::GET, "/admin/events")).await;
    assert_eq!(s, 200);
    assert!(v.as_array().unwrap().iter().any(|r| r["settings"]["event_id"] == event));
    let path = format!("/admin/events/{event}");
    let (s, mut room) = call(admin(Method::GET, &path)).await;
    assert_eq!(s, 200);
    room["settings"]["message"] = json!("back soon");
    room["settings"]["on_sale_at"] = json!("2030-01-01T10:00:00Z");
    room["settings"]["adaptive"] = json!({"min_per_minute": 10, "max_per_minute": 100, "target_p99_ms": 250});
    let (s, v) = call(admin(Method::PUT, &path).json(&room["settings"])).await;
    assert_eq!((s, v["settings"]["message"].as_str()), (200, Some("back soon")), "{v}");
    let (s, v) = call(admin(Method::GET, &format!("{path}/fairness"))).await;
    assert_eq!(s, 200, "{v}");
    let (s, _) = call(admin(Method::GET, "/admin/defence")).await;
    assert_eq!(s, 200);
    let (s, v) = call(http.get(edge.admin_url(&path))).await;
    assert_eq!((s, v["code"].as_str()), (401, Some("unauthenticated")));
    let (s, v) = call(admin(Method::GET, &format!("/admin/events/{}", event + 1))).await;
    assert_eq!((s, v["code"].as_str()), (404, Some("queue_not_found")));
    let (s, v) = call(admin(Method::PUT, "/admin/events/abc").json(&room["settings"])).await;
    assert_eq!((s, v["code"].as_str()), (400, Some("invalid_path_parameter")));
    let (s, v) = call(admin(Method::PUT, &path).body("{not json")).await;
    assert_eq!((s, v["code"].as_str()), (422, Some("invalid_body")));
    let (s, v) = call(admin(Method::PUT, &format!("/admin/events/{}", event + 1)).json(&room["settings"])).await;
    assert_eq!((s, v["code"].as_str()), (422, Some("event_mismatch")));
    let mut bad = room["settings"].clone();
    bad["admit_per_minute"] = json!(0);
    let (s, v) = call(admin(Method::PUT, &path).json(&bad)).await;
    assert_eq!((s, v["code"].as_str()), (422, Some("invalid_settings")));
    // Unknown paths and methods are problems too (not documented: any code).
    for (method, url) in [
        (Method::GET, edge.admin_url("/admin/nothing")),
        (Method::DELETE, edge.admin_url(&path)),
    ] {
        let r = http.request(method, url).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
        let status = r.status().as_u16();
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        let v: Value = r.json().await.unwrap();
        assert!(
            matches!(status, 404 | 405) && v["status"] == status && v["code"].is_string(),
            "{v}"
        );
    }

    // A closed room refuses joins with the operator's message.
    let mut closed = room["settings"].clone();
    closed["mode"] = json!("closed");
    closed["adaptive"] = Value::Null;
    let (s, _) = call(admin(Method::PUT, &path).json(&closed)).await;
    assert_eq!(s, 200);
    let (s, v) = call(http.post(edge.url(&format!("/queue/{event}/join")))).await;
    assert_eq!((s, v["message"].as_str()), (410, Some("back soon")), "{v}");
    edge.stop().await;
    forget_event(event).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_defences_refusals_are_what_the_document_says() {
    let upstream = Upstream::start().await;
    let event = fresh_event();
    let pow =
        "[defence.pow]\nbase_bits = 8\nmin_bits = 4\nmax_bits = 14\nnetwork_joins_per_minute = 1000\nttl_secs = 60\n";
    let edge = Edge::start(
        upstream.addr,
        &redis_url(),
        &[room(event, 60, 10)],
        &key_dir("openapi-pow"),
        pow,
    )
    .await;
    let http = reqwest::Client::new();
    let join = format!("/queue/{event}/join");
    let (s, v) = call(http.post(edge.url(&join))).await;
    assert_eq!((s, v["code"].as_str()), (428, Some("challenge_required")), "{v}");
    let (s, v) = call(http.post(edge.url(&join)).header("usher-pow", "nonsense:1")).await;
    assert_eq!(s, 428, "{v}");
    let (s, v) = call(http.get(edge.url(&format!("/queue/{event}/challenge")))).await;
    assert_eq!(s, 200, "{v}");
    // Solved, with the client the puzzle was issued to: a place.
    let challenge = v["challenge"].as_str().unwrap();
    let solution = edge_proxy::defence::pow::solve(challenge, v["bits"].as_u64().unwrap() as u8);
    let (s, v) = call(
        http.post(edge.url(&join))
            .header("usher-client", v["client_id"].as_str().unwrap())
            .header("usher-pow", format!("{challenge}:{solution}")),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    edge.stop().await;
    forget_event(event).await;
}
