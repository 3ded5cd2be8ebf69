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
//! somebody else's service, not part of Usher's state.

mod api;
mod challenge;
mod store;
mod webhooks;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;

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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
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
    axum::serve(listener, api::router(state))
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
