//! payment-sandbox: a stand-in card processor for the local stack and the
//! tests. It speaks a small payment-intent API (create + confirm + capture
//! in one call, refunds), honours an idempotency key on every call that
//! moves money, and sends HMAC-signed webhooks at least once. Test payment
//! methods make it decline, answer slowly, time out, fail once, or deliver
//! its webhook twice, late, never, or before its own answer, wait for a
//! 3-D Secure answer (always, over an amount, or one the issuer refuses)
//! given on its own challenge page (`challenge.rs`) or by a test, or
//! process for a while by itself (see `store.rs`); `<token>_<name>` is
//! another card with the same behaviour, and each card has a fingerprint
//! as Stripe's do. It keeps everything in memory: it is a test double of
//! somebody else's service, not part of Usher's state. It logs and traces
//! as the services do (`usher_shared::telemetry`): each call's span is a
//! child of the caller's `traceparent`, so a charge shows in the order's
//! trace.

mod api;
mod challenge;
mod connect;
mod store;
mod webhooks;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use clap::Parser;
use tracing::Instrument;
use usher_shared::config::Url;
use usher_shared::telemetry::{self, LogFormat, TraceConfig};

#[derive(Parser, Debug, Clone)]
#[command(
    name = "payment-sandbox",
    about = "A stand-in card processor for Usher's local stack and tests"
)]
pub struct Args {
    #[arg(long, env = "SANDBOX_LISTEN", default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    /// The bearer key every API call must carry.
    #[arg(long, env = "SANDBOX_API_KEY", default_value = "sk_sandbox")]
    api_key: String,
    /// Where to POST webhooks; none are sent without it.
    #[arg(long, env = "SANDBOX_WEBHOOK_URL")]
    webhook_url: Option<String>,
    #[arg(long, env = "SANDBOX_WEBHOOK_SECRET", default_value = "whsec_sandbox")]
    webhook_secret: String,
    /// How long pm_card_slow takes to answer.
    #[arg(long, default_value_t = 1500)]
    slow_ms: u64,
    /// How long pm_card_timeout holds its answer back.
    #[arg(long, default_value_t = 30000)]
    timeout_ms: u64,
    /// How long pm_card_webhook_late holds its webhook back.
    #[arg(long, default_value_t = 3000)]
    late_ms: u64,
    /// How long pm_card_processing stays `processing` before it succeeds.
    #[arg(long, default_value_t = 2000)]
    processing_ms: u64,
    /// Where fans' browsers reach this sandbox (the 3-D Secure challenge
    /// page's origin); by default the address it listens on.
    #[arg(long, env = "SANDBOX_PUBLIC_URL")]
    public_url: Option<String>,
    /// Log lines as `text` or `json`.
    #[arg(long, env = "SANDBOX_LOG_FORMAT", default_value = "text")]
    log_format: LogFormat,
    /// An OTLP/HTTP collector to export spans to (off without it).
    #[arg(long, env = "SANDBOX_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    /// The share of new traces exported (0..=1); calls with a
    /// `traceparent` follow their caller's decision.
    #[arg(long, env = "SANDBOX_TRACE_SAMPLE_RATIO", default_value_t = 1.0)]
    trace_sample_ratio: f64,
}

/// The `[trace]` settings from the arguments, checked as the services
/// check theirs.
fn trace_config(args: &Args) -> anyhow::Result<TraceConfig> {
    let otlp_endpoint = match &args.otlp_endpoint {
        Some(url) => Some(Url::parse(url.as_str()).context("--otlp-endpoint")?),
        None => None,
    };
    let trace = TraceConfig {
        otlp_endpoint,
        sample_ratio: args.trace_sample_ratio,
    };
    let mut problems = Vec::new();
    trace.check(&mut problems, "--trace");
    anyhow::ensure!(problems.is_empty(), "{}", problems.join("; "));
    Ok(trace)
}

/// Each call's span, named by its route (never its path: a payment
/// method's id is in some), under the caller's trace.
async fn traced(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let span = tracing::info_span!(
        "sandbox.request",
        otel.name = %format_args!("{} {route}", req.method()),
        otel.kind = "server",
        method = %req.method(),
        route = %route,
        status = tracing::field::Empty,
    );
    telemetry::set_parent(&span, req.headers());
    let response = next.run(req).instrument(span.clone()).await;
    let status = response.status().as_u16();
    span.record("status", status);
    tracing::debug!(parent: &span, status, "answered");
    response
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let trace = trace_config(&args)?;
    let _telemetry = telemetry::init(telemetry::Settings {
        service: "payment-sandbox",
        format: args.log_format,
        filter: "info",
        trace: &trace,
    })?;
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let addr = listener.local_addr()?;
    let hooks = webhooks::Sender::new(args.webhook_url.clone(), args.webhook_secret.clone());
    let state = api::State {
        store: Arc::new(store::Store::default()),
        hooks,
        api_key: Arc::from(args.api_key.as_str()),
        delays: store::Delays {
            slow: Duration::from_millis(args.slow_ms),
            timeout: Duration::from_millis(args.timeout_ms),
            late: Duration::from_millis(args.late_ms),
            processing: Duration::from_millis(args.processing_ms),
        },
        public_url: Arc::from(
            args.public_url
                .clone()
                .unwrap_or_else(|| format!("http://{addr}"))
                .trim_end_matches('/'),
        ),
    };
    // The one line a test or script waits for to learn the port.
    println!("payment-sandbox listening on {addr}");
    use std::io::Write;
    std::io::stdout().flush()?;
    let app = api::router(state).route_layer(axum::middleware::from_fn(traced));
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
            }
        })
        .await?;
    Ok(())
}
