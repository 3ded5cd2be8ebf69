//! Trace context across services: the W3C `traceparent` read from a
//! request into its span, written from a span into an outgoing request,
//! and a span's trace id for answers and logs.

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Makes `span` a child of the trace in `headers`' `traceparent`, if any
/// (a malformed one is ignored: the span begins a trace of its own). Call
/// it before anything is logged in the span.
pub fn set_parent(span: &tracing::Span, headers: &http::HeaderMap) {
    if !headers.contains_key("traceparent") {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    if parent.span().span_context().is_valid() {
        // Fails only for a span already begun, which would keep its own trace.
        let _ = span.set_parent(parent);
    }
}

/// Writes `span`'s trace context into `headers` (`traceparent`, and
/// `tracestate` when there is one), replacing any already there.
pub fn inject(span: &tracing::Span, headers: &mut http::HeaderMap) {
    headers.remove("traceparent");
    headers.remove("tracestate");
    TraceContextPropagator::new().inject_context(&span.context(), &mut HeaderInjector(headers));
    if headers.get("tracestate").is_some_and(|v| v.is_empty()) {
        headers.remove("tracestate");
    }
}

/// `span`'s trace id (32 hex digits), if it has one: none without the
/// subscriber `init` installs, or for a disabled span.
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    let otel = cx.span();
    let context = otel.span_context();
    context.is_valid().then(|| context.trace_id().to_string())
}

/// The current span's trace id.
pub fn current_trace_id() -> Option<String> {
    trace_id(&tracing::Span::current())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::{LogFormat, Settings, TraceConfig, init};

    #[test]
    fn a_span_passes_its_trace_on_and_takes_its_callers() {
        let _t = init(Settings {
            service: "test",
            format: LogFormat::Json,
            filter: "info",
            trace: &TraceConfig::default(),
        })
        .unwrap();
        let outer = tracing::info_span!("outer");
        let mut incoming = http::HeaderMap::new();
        incoming.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .unwrap(),
        );
        set_parent(&outer, &incoming);
        let _in = outer.enter();
        let inner = tracing::info_span!("inner", call = "x");
        let _in2 = inner.enter();
        let mut out = http::HeaderMap::new();
        inject(&tracing::Span::current(), &mut out);
        tracing::warn!("hello");
        assert!(out.contains_key("traceparent"));
        assert_eq!(current_trace_id().as_deref(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
    }
}
