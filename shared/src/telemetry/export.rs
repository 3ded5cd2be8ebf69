//! The OTLP/HTTP span exporter, sending with the project's own reqwest
//! client on a small runtime of its own: the SDK's batch processor runs on
//! its own thread outside any Tokio runtime, and the edge's runtimes are
//! one per worker thread, so the exporter cannot borrow theirs.

use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig, WithHttpConfig};

/// A collector that does not answer in this long loses the batch, not the
/// service's time.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) fn span_exporter(endpoint: &str) -> Result<SpanExporter, super::TelemetryError> {
    let client = Sender::new()?;
    let endpoint = endpoint.trim_end_matches('/');
    let url = if endpoint.ends_with("/v1/traces") {
        endpoint.to_owned()
    } else {
        format!("{endpoint}/v1/traces")
    };
    Ok(SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpJson)
        .with_endpoint(url)
        .with_timeout(EXPORT_TIMEOUT)
        .with_http_client(client)
        .build()?)
}

#[derive(Debug, Clone)]
struct Sender {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

/// One export thread per process, whatever the number of providers.
static RUNTIME: OnceLock<tokio::runtime::Handle> = OnceLock::new();

impl Sender {
    fn new() -> Result<Sender, std::io::Error> {
        let runtime = match RUNTIME.get() {
            Some(handle) => handle.clone(),
            None => {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                let handle = runtime.handle().clone();
                // The thread lives as long as the process; it only waits.
                std::thread::Builder::new()
                    .name("otlp-export".into())
                    .spawn(move || runtime.block_on(std::future::pending::<()>()))?;
                RUNTIME.get_or_init(|| handle).clone()
            }
        };
        let client = reqwest::Client::builder()
            .timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(std::io::Error::other)?;
        Ok(Sender { client, runtime })
    }
}

#[async_trait::async_trait]
impl HttpClient for Sender {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let request = reqwest::Request::try_from(request)?;
        let client = self.client.clone();
        let answer = self
            .runtime
            .spawn(async move {
                let response = client.execute(request).await?;
                let status = response.status();
                let body = response.bytes().await?;
                Ok::<_, reqwest::Error>((status, body))
            })
            .await??;
        let (status, body) = answer;
        Ok(Response::builder().status(status).body(body)?)
    }
}
