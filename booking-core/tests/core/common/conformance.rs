//! Every answer the tests receive is checked against the service's own
//! OpenAPI description: the tests talk to the core through this small
//! pass-through, which reads each JSON answer against the schema
//! `/openapi.json` documents for its path, method and status, and keeps a
//! list of the answers that do not match (`TestApp::finish` fails the test
//! on any). An answer whose status is not documented must at least be a
//! problem+json `Problem` (4xx/5xx); an undocumented 2xx is a violation.
//! Streams and binary answers pass through unread.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use serde_json::Value;
use utoipa::OpenApi;

/// The answers that did not match, as "METHOD path status: why".
pub type Violations = Arc<Mutex<Vec<String>>>;

fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        serde_json::to_value(booking_core::http::openapi::ApiDoc::openapi()).expect("the OpenAPI document serialises")
    })
}

/// Starts the pass-through in front of `core`; returns its base URL.
pub async fn start(core: SocketAddr, violations: Violations) -> String {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(64)
        .build()
        .expect("client");
    let app = axum::Router::new()
        .fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let (http, violations) = (http.clone(), violations.clone());
            async move { forward(&http, core, &violations, method, uri, headers, body).await }
        })
        // Charts of a stadium are larger than axum's default body limit.
        .layer(axum::extract::DefaultBodyLimit::disable());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    format!("http://{addr}")
}

async fn forward(
    http: &reqwest::Client,
    core: SocketAddr,
    violations: &Violations,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let target = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = http.request(method.clone(), format!("http://{core}{target}"));
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            request = request.header(name, value);
        }
    }
    let answer = match request.body(body).send().await {
        Ok(a) => a,
        Err(e) => {
            return Response::builder()
                .status(StatusCode::BAD_GATEWAY)
                .body(Body::from(format!("conformance pass-through: {e}")))
                .expect("response");
        }
    };
    let status = answer.status();
    let mut builder = Response::builder().status(status);
    for (name, value) in answer.headers() {
        if name != "transfer-encoding" && name != "content-length" {
            builder = builder.header(name, value);
        }
    }
    let content_type = answer
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_owned();
    let encoded = answer.headers().contains_key("content-encoding");
    if !content_type.ends_with("json") || encoded {
        return builder
            .body(Body::from_stream(answer.bytes_stream()))
            .expect("response");
    }
    let bytes = answer.bytes().await.unwrap_or_default();
    if let Err(why) = check(method.as_str(), uri.path(), status.as_u16(), &content_type, &bytes) {
        usher_shared::locks::lock(violations).push(format!("{method} {} {status}: {why}", uri.path()));
    }
    builder.body(Body::from(bytes)).expect("response")
}

/// The documented path template that `path` falls under: the one with the
/// most literal segments (`/v1/tickets/keys` before `/v1/tickets/{id}`).
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

/// Whether `body` is what the document says this answer is.
pub fn check(method: &str, path: &str, status: u16, content_type: &str, body: &[u8]) -> Result<(), String> {
    let doc = document();
    let Some(template) = template(path) else {
        // Not part of the API (pages, assets, the sandbox's own paths).
        return Ok(());
    };
    let operation = &doc["paths"][&template][method.to_ascii_lowercase()];
    if operation.is_null() {
        return if status == 405 {
            problem(doc, body)
        } else {
            Err(format!("{method} is not documented for {template}"))
        };
    }
    let response = &operation["responses"][status.to_string()];
    if response.is_null() {
        if status >= 400 {
            return problem(doc, body).map_err(|e| format!("undocumented status {status}: {e}"));
        }
        return Err(format!("status {status} is not documented for {method} {template}"));
    }
    let Some(content) = response["content"].as_object() else {
        return if body.is_empty() {
            Ok(())
        } else {
            Err("a body where the document says none".into())
        };
    };
    let Some(media) = content.get(content_type) else {
        return Err(format!(
            "content type {content_type} is not documented (documented: {:?})",
            content.keys().collect::<Vec<_>>()
        ));
    };
    match media.get("schema") {
        Some(schema) => validate(doc, schema, body),
        None => Ok(()),
    }
}

fn problem(doc: &Value, body: &[u8]) -> Result<(), String> {
    validate(doc, &serde_json::json!({"$ref": "#/components/schemas/Problem"}), body)
}

fn validate(doc: &Value, schema: &Value, body: &[u8]) -> Result<(), String> {
    let instance: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let mut root = schema.clone();
    if let Some(fields) = root.as_object_mut() {
        fields.insert("components".into(), doc["components"].clone());
    }
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&root)
        .map_err(|e| format!("the documented schema does not compile: {e}"))?;
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .take(3)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        let shown = instance.to_string();
        let shown: String = shown.chars().take(300).collect();
        Err(format!("{} (answer: {shown})", errors.join("; ")))
    }
}
