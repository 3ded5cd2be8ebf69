//! Traces and logs, set up the same way in every service (edge-proxy,
//! booking-core, payment-sandbox): `tracing` spans become OpenTelemetry
//! spans (exported over OTLP/HTTP when an endpoint is configured, sampled
//! by ratio, following the caller's decision), W3C `traceparent` carries a
//! trace from one service to the next, and every log line, text or JSON,
//! names its trace. A trace id exists even with export off, so an error
//! answer can always point at its logs.

mod context;
mod export;
mod gate;
mod logs;

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider};
use serde::{Deserialize, Serialize};
use tracing_subscriber::Registry;
use tracing_subscriber::filter::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{Http, Url, check_range};

pub use context::{current_trace_id, inject, set_parent, trace_id};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One readable line per event.
    #[default]
    Text,
    /// One JSON object per line: timestamp, level, service, target,
    /// message, trace_id, then the spans' fields and the event's.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("must be \"text\" or \"json\", got {other:?}")),
        }
    }
}

/// The `[trace]` section of a service's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TraceConfig {
    /// An OTLP/HTTP collector, e.g. `http://127.0.0.1:4318`: spans are
    /// POSTed as JSON to `<endpoint>/v1/traces`. None (the default): no
    /// export, though trace ids are still made and passed on.
    pub otlp_endpoint: Option<Url<Http>>,
    /// The share of new traces exported (0..=1); a trace begun elsewhere
    /// follows its caller's decision (parent-based).
    pub sample_ratio: f64,
}

impl Default for TraceConfig {
    fn default() -> Self {
        TraceConfig {
            otlp_endpoint: None,
            sample_ratio: 1.0,
        }
    }
}

impl TraceConfig {
    /// Adds this section's problems (its key named `section`).
    pub fn check(&self, problems: &mut Vec<String>, section: &str) {
        // NaN is in no range, so it is refused here too.
        check_range(
            problems,
            &format!("{section}.sample_ratio"),
            self.sample_ratio,
            0.0..=1.0,
        );
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("log filter: {0}")]
    Filter(#[from] tracing_subscriber::filter::ParseError),
    #[error("OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    #[error("OTLP exporter's runtime: {0}")]
    Runtime(#[from] std::io::Error),
    #[error("a global subscriber is already set: {0}")]
    AlreadySet(#[from] tracing_subscriber::util::TryInitError),
}

/// What a service sets up at start.
pub struct Settings<'a> {
    /// `service.name` of its spans, `service` of its log lines.
    pub service: &'static str,
    pub format: LogFormat,
    /// A tracing filter for log lines (`RUST_LOG` wins when set).
    pub filter: &'a str,
    pub trace: &'a TraceConfig,
}

/// Keeps the exporter running; dropping it sends what is left.
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        // Best effort at exit: a collector that is down loses the last batch.
        let _ = self.provider.shutdown();
    }
}

/// How often batched spans are sent: soon enough that a trace is whole in
/// the collector a moment after its request.
const EXPORT_EVERY: Duration = Duration::from_secs(1);

/// Installs the global subscriber: spans at INFO and above (to
/// OpenTelemetry, and their fields kept for the log lines inside them) and
/// the events the log filter lets through.
pub fn init(settings: Settings<'_>) -> Result<Telemetry, TelemetryError> {
    let filter = match EnvFilter::try_from_default_env() {
        Ok(filter) => filter,
        Err(_) => EnvFilter::builder().parse(settings.filter)?,
    };
    let provider = provider(settings.service, settings.trace)?;
    let tracer = provider.tracer(settings.service);
    let otel_layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_threads(false);
    Registry::default()
        .with(gate::Gate { events: filter })
        .with(otel_layer)
        .with(logs::LogLayer::new(settings.service, settings.format))
        .try_init()?;
    Ok(Telemetry { provider })
}

fn provider(service: &'static str, trace: &TraceConfig) -> Result<SdkTracerProvider, TelemetryError> {
    let resource = Resource::builder().with_service_name(service).build();
    let builder = SdkTracerProvider::builder().with_resource(resource);
    let Some(endpoint) = &trace.otlp_endpoint else {
        // Ids are still made (and passed on, marked unsampled); nothing is
        // recorded.
        return Ok(builder.with_sampler(Sampler::AlwaysOff).build());
    };
    let exporter = export::span_exporter(endpoint.as_str())?;
    let batches = BatchConfigBuilder::default().with_scheduled_delay(EXPORT_EVERY).build();
    let processor = BatchSpanProcessor::builder(exporter).with_batch_config(batches).build();
    let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(trace.sample_ratio)));
    Ok(builder.with_sampler(sampler).with_span_processor(processor).build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ratio_is_checked() {
        for (ratio, ok) in [
            (0.0, true),
            (0.01, true),
            (1.0, true),
            (-0.1, false),
            (1.5, false),
            (f64::NAN, false),
        ] {
            let mut problems = Vec::new();
            TraceConfig {
                otlp_endpoint: None,
                sample_ratio: ratio,
            }
            .check(&mut problems, "trace");
            assert_eq!(problems.is_empty(), ok, "{ratio}: {problems:?}");
        }
    }

    #[test]
    fn the_endpoint_must_be_http() {
        let bad: Result<TraceConfig, _> = serde_json::from_str(r#"{"otlp_endpoint": "ftp://collector"}"#);
        assert!(bad.is_err());
        let good: TraceConfig = serde_json::from_str(r#"{"otlp_endpoint": "https://collector:4318"}"#).unwrap();
        assert_eq!(good.sample_ratio, 1.0);
    }
}
