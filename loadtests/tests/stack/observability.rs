//! Traces and logs across the stack (issue 26): one purchase through the
//! edge, booking-core and the payment sandbox with OTLP export on at ratio
//! 1.0 and JSON logs at debug, into a collector started here. One trace
//! holds spans of all three services, the core's under the edge's, and the
//! core's handling of the charge's webhook (the sandbox's delivery carries
//! the order's trace); problem answers name the trace; every log line is
//! JSON with the common fields, and no line holds the fan's id, its tokens,
//! the card or a secret.

use std::time::{Duration, Instant};

use chrono::Utc;
use loadtests::otlp::{Collector, SeenSpan};
use loadtests::sim::scenario::Scenario;
use loadtests::sim::stack::{ADMIN_TOKEN, SimStack, StackEnv};
use serde_json::{Value, json};

use crate::common::{bins, fan_token, root};

/// A fan id no log line has any other reason to contain.
const FAN: &str = "fan-obs-4d1c9e";
const CARD: &str = "pm_card_ok";
/// The trace a client starts itself and sends to the edge.
const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

async fn start(collector: &Collector) -> SimStack {
    let scenario = Scenario::load(&root().join("loadtests/scenarios/browser.toml")).expect("the browser scenario");
    let database =
        std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let env = StackEnv::telemetry(
        "info,edge_proxy=debug,booking_core=debug,payment_sandbox=debug,tower_http=debug",
        "json",
        Some((&collector.url, 1.0)),
    );
    SimStack::start_with_env(
        &scenario,
        &bins(),
        &database,
        false,
        Utc::now() - chrono::Duration::seconds(1),
        &env,
    )
    .await
    .expect("the stack starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_purchase_is_one_trace_across_three_services_and_the_logs_keep_the_fan_hidden() {
    let collector = Collector::start().await.expect("the collector starts");
    let stack = start(&collector).await;
    let (base, event) = (stack.edge_base.clone(), stack.event);
    let http = reqwest::Client::new();
    let token = fan_token(&base, FAN).await;

    // In line, then admitted (the room admits 600 a minute).
    let joined: Value = http
        .post(format!("{base}/queue/{event}/join"))
        .header("usher-fan", &token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let client = joined["client_id"].as_str().expect("a client id").to_owned();
    let queue = joined["queue_token"].as_str().expect("a queue token").to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    let access = loop {
        let status: Value = http
            .get(format!("{base}/queue/{event}/status"))
            .header("usher-client", &client)
            .bearer_auth(&queue)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if status["status"] == "admitted" {
            break status["access_token"].as_str().expect("an access token").to_owned();
        }
        assert!(Instant::now() < deadline, "not admitted: {status}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let fan = |rb: reqwest::RequestBuilder| {
        rb.bearer_auth(&token)
            .header("usher-client", &client)
            .header(usher_shared::ACCESS_HEADER, &access)
    };

    // The edge's own refusal names its trace; so does the core's, and a
    // client's traceparent carries through the edge to the core.
    let refused = http
        .post(format!("{base}/v1/events/{event}/holds"))
        .header("idempotency-key", uuid::Uuid::new_v4().to_string())
        .json(&json!({"best_available": {"quantity": 2, "tier": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let refused: Value = refused.json().await.unwrap();
    assert_eq!(refused["code"], "admission_required");
    assert!(is_trace_id(&refused["trace_id"]), "the edge's problem: {refused}");
    let missing = fan(http.get(format!("{base}/v1/orders/{}", uuid::Uuid::new_v4())))
        .header("traceparent", format!("00-{CLIENT_TRACE}-00f067aa0ba902b7-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let missing: Value = missing.json().await.unwrap();
    assert_eq!(
        missing["trace_id"], CLIENT_TRACE,
        "the core's problem, under the client's trace: {missing}"
    );

    // The purchase.
    let hold = fan(http.post(format!("{base}/v1/events/{event}/holds")))
        .header("idempotency-key", uuid::Uuid::new_v4().to_string())
        .json(&json!({"best_available": {"quantity": 2, "tier": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(hold.status(), 201);
    let hold: Value = hold.json().await.unwrap();
    let hold_id = hold["hold_id"].as_str().expect("a hold id").to_owned();
    let order = fan(http.post(format!("{base}/v1/orders")))
        .header("idempotency-key", uuid::Uuid::new_v4().to_string())
        .json(&json!({"hold_id": hold_id, "payment_method": CARD}))
        .send()
        .await
        .unwrap();
    assert!(order.status().is_success(), "the order: {}", order.status());
    let order: Value = order.json().await.unwrap();
    assert_eq!(order["state"], "confirmed", "{order}");
    let order_id = order["order_id"].as_str().expect("an order id").to_owned();

    // One trace with spans of all three services (the charge's), the
    // core's request span a child of the edge's forwarding span.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (trace, spans) = loop {
        let spans = collector.spans();
        let charged = spans
            .iter()
            .filter(|s| s.service == "payment-sandbox")
            .map(|s| s.trace_id.clone())
            .find(|t| services(&spans, t).len() == 3);
        if let Some(trace) = charged {
            break (trace, spans);
        }
        assert!(
            Instant::now() < deadline,
            "no trace with spans of all three services among {} spans ({} malformed exports): {:#?}",
            spans.len(),
            collector.malformed(),
            spans
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let in_trace: Vec<&SeenSpan> = spans.iter().filter(|s| s.trace_id == trace).collect();
    let of = |service: &'static str| in_trace.iter().filter(move |s| s.service == service);
    let parent_of = |child: &SeenSpan| in_trace.iter().find(|s| s.span_id == child.parent_span_id);
    let core_request = of("booking-core")
        .find(|s| parent_of(s).is_some_and(|p| p.service == "edge-proxy"))
        .unwrap_or_else(|| panic!("no core span under an edge span: {in_trace:#?}"));
    assert_eq!(parent_of(core_request).map(|p| p.name.as_str()), Some("edge.forward"));
    assert!(of("edge-proxy").any(|s| s.name == "edge.request" && s.parent_span_id.is_empty()));
    assert!(
        of("payment-sandbox").any(|s| parent_of(s).is_some_and(|p| p.service == "booking-core")),
        "the sandbox's spans are under the core's provider calls: {in_trace:#?}"
    );
    for name in ["sql.create", "sql.apply_charge", "sql.settle", "provider.charge"] {
        assert!(
            of("booking-core").any(|s| s.name == name),
            "no {name} span: {in_trace:#?}"
        );
    }
    // The charge's webhook joins the order's trace: the sandbox's delivery
    // under its own span for the charge, the core's handling under the
    // delivery (it may come a moment after the rest of the trace).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let spans = collector.spans();
        let in_trace: Vec<&SeenSpan> = spans.iter().filter(|s| s.trace_id == trace).collect();
        let parent_of = |child: &SeenSpan| in_trace.iter().find(|s| s.span_id == child.parent_span_id).copied();
        let handled = in_trace.iter().find(|s| {
            s.service == "booking-core"
                && s.name == "POST /v1/payments/webhooks/sandbox"
                && parent_of(s).is_some_and(|delivery| {
                    delivery.service == "payment-sandbox"
                        && delivery.name == "webhook payment_intent.succeeded"
                        && parent_of(delivery).is_some_and(|charge| {
                            charge.service == "payment-sandbox" && charge.name == "POST /v1/payment_intents"
                        })
                })
        });
        if handled.is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the core's webhook handling is not in the order's trace under the sandbox's delivery: {in_trace:#?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let client_trace = spans.iter().filter(|s| s.trace_id == CLIENT_TRACE);
    let client_services: std::collections::HashSet<&str> = client_trace.map(|s| s.service.as_str()).collect();
    assert!(
        client_services.contains("edge-proxy") && client_services.contains("booking-core"),
        "the client's trace: {client_services:?}"
    );

    // The logs: every line JSON with the common fields; the purchase's
    // lines name their trace and hold or order; nothing secret in any.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let logs = [
        ("booking-core", stack.dir.join("booking-core.log")),
        ("edge-proxy", stack.dir.join("edge-proxy.log")),
        ("payment-sandbox", stack.sandbox.log.clone()),
    ];
    let mut lines = Vec::new();
    for (service, path) in &logs {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for secret in [
            FAN,
            token.as_str(),
            access.as_str(),
            queue.as_str(),
            CARD,
            "@fans.usher.invalid",
            ADMIN_TOKEN,
            loadtests::sandbox::API_KEY,
            loadtests::sandbox::WEBHOOK_SECRET,
        ] {
            assert!(!text.contains(secret), "{service}'s log holds {secret:?}");
        }
        let mut count = 0;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{service}: not JSON ({e}): {line}"));
            for field in ["timestamp", "level", "target", "message"] {
                assert!(v[field].is_string(), "{service}: no {field}: {line}");
            }
            assert_eq!(v["service"], *service, "{line}");
            assert!(v["trace_id"].is_null() || is_trace_id(&v["trace_id"]), "{line}");
            count += 1;
            lines.push(v);
        }
        assert!(count > 0, "{service} logged nothing at debug");
    }
    let hashed = usher_shared::redact::hashed(FAN);
    let hold_line = lines
        .iter()
        .find(|v| v["message"] == "hold placed")
        .expect("the hold's line");
    assert_eq!(hold_line["hold_id"], hold_id.as_str());
    assert_eq!(hold_line["fan"], hashed.as_str());
    assert_eq!(hold_line["event_id"], event.to_string());
    assert!(is_trace_id(&hold_line["trace_id"]));
    let order_line = lines
        .iter()
        .find(|v| v["message"] == "order placed")
        .expect("the order's line");
    assert_eq!(order_line["order_id"], order_id.as_str());
    assert_eq!(
        order_line["trace_id"],
        trace.as_str(),
        "the order's line names the charge's trace"
    );
    assert!(
        lines
            .iter()
            .any(|v| v["service"] == "edge-proxy" && v["trace_id"] == trace.as_str()),
        "the edge logged nothing in the purchase's trace"
    );

    stack.stop().await.unwrap();
}

fn services<'a>(spans: &'a [SeenSpan], trace: &str) -> std::collections::HashSet<&'a str> {
    spans
        .iter()
        .filter(|s| s.trace_id == trace)
        .map(|s| s.service.as_str())
        .collect()
}

fn is_trace_id(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|t| t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit()) && t != "0".repeat(32))
}
