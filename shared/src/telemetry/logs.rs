//! The log lines, text or JSON, the same in every service: timestamp,
//! level, service, target, message, the trace id of the span the event is
//! in, then the fields of its spans (root first: event_id, hold_id, ...)
//! and its own. Written to standard error, one line per event.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::OnceLock;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Dispatch, Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use super::LogFormat;

pub(super) struct LogLayer {
    service: &'static str,
    format: LogFormat,
    /// The subscriber this layer is in, to ask the OpenTelemetry layer for
    /// a span's trace id (a weak handle: the subscriber owns this layer).
    dispatch: OnceLock<tracing::dispatcher::WeakDispatch>,
}

/// A span's fields, kept for the lines logged inside it.
struct SpanFields(Map<String, Value>);

struct Fields<'a>(&'a mut Map<String, Value>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.insert(field.name().to_owned(), value.to_string().into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}").into());
    }
}

impl LogLayer {
    pub(super) fn new(service: &'static str, format: LogFormat) -> LogLayer {
        LogLayer {
            service,
            format,
            dispatch: OnceLock::new(),
        }
    }

    fn trace_id(&self, span: &Id) -> Option<String> {
        use opentelemetry::trace::TraceContextExt;
        let dispatch = self.dispatch.get()?.upgrade()?;
        let cx = tracing_opentelemetry::get_otel_context(span, &dispatch)?;
        let otel = cx.span();
        let context = otel.span_context();
        context.is_valid().then(|| context.trace_id().to_string())
    }
}

impl<S> Layer<S> for LogLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_register_dispatch(&self, subscriber: &Dispatch) {
        let _ = self.dispatch.set(subscriber.downgrade());
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Map::new();
        attrs.record(&mut Fields(&mut fields));
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(fields));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(SpanFields(fields)) = span.extensions_mut().get_mut::<SpanFields>()
        {
            values.record(&mut Fields(fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut fields = Map::new();
        let mut leaf = None;
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(SpanFields(f)) = span.extensions().get::<SpanFields>() {
                    fields.extend(f.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
                leaf = Some(span.id());
            }
        }
        let mut own = Map::new();
        event.record(&mut Fields(&mut own));
        let message = match own.remove("message") {
            Some(Value::String(m)) => m,
            Some(other) => other.to_string(),
            None => String::new(),
        };
        fields.extend(own);
        // Fields of OpenTelemetry's own (the span's name, kind) are not the
        // reader's business.
        fields.retain(|k, _| !k.starts_with("otel."));
        let trace_id = leaf.and_then(|id| self.trace_id(&id));
        let timestamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let mut line = match self.format {
            LogFormat::Json => {
                let mut out = Map::new();
                out.insert("timestamp".into(), timestamp.into());
                out.insert("level".into(), meta.level().as_str().into());
                out.insert("service".into(), self.service.into());
                out.insert("target".into(), meta.target().into());
                out.insert("message".into(), message.into());
                out.insert("trace_id".into(), trace_id.map_or(Value::Null, Value::from));
                for (k, v) in fields {
                    out.entry(k).or_insert(v);
                }
                Value::Object(out).to_string()
            }
            LogFormat::Text => {
                let mut out = format!("{timestamp} {:>5} {}: {message}", meta.level(), meta.target());
                for (k, v) in &fields {
                    match v {
                        Value::String(s) => write!(out, " {k}={s}"),
                        other => write!(out, " {k}={other}"),
                    }
                    .ok();
                }
                if let Some(t) = trace_id {
                    write!(out, " trace_id={t}").ok();
                }
                out
            }
        };
        line.push('\n');
        // A log line that cannot be written is dropped: nowhere to say so.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}
