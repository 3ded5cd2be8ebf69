//! The payment sandbox as a child process for a load run: started on a
//! port, with its webhooks pointed at booking-core, and ready when it says
//! it is listening.

use std::path::Path;

use anyhow::{Context, bail};
use tokio::io::AsyncBufReadExt;
use tokio::process::{Child, Command};

pub const API_KEY: &str = "sk_bench";
pub const WEBHOOK_SECRET: &str = "whsec_bench";

pub struct Sandbox {
    pub url: String,
    pub child: Child,
    /// Its standard error: the log lines.
    pub log: std::path::PathBuf,
}

impl Sandbox {
    pub async fn start(bin: &Path, port: u16, core_port: u16) -> anyhow::Result<Sandbox> {
        Self::start_with_env(bin, port, core_port, &[]).await
    }

    /// As `start`, with extra environment (`RUST_LOG`, `SANDBOX_LOG_FORMAT`,
    /// `SANDBOX_OTLP_ENDPOINT`, ...).
    pub async fn start_with_env(
        bin: &Path,
        port: u16,
        core_port: u16,
        env: &[(String, String)],
    ) -> anyhow::Result<Sandbox> {
        if !bin.exists() {
            bail!(
                "{} not found: build with `cargo build --release -p booking-core -p edge-proxy -p loadtests`",
                bin.display()
            );
        }
        let log = std::env::temp_dir().join(format!("usher-payment-sandbox-{port}.log"));
        let mut child = Command::new(bin)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--api-key", API_KEY, "--webhook-secret", WEBHOOK_SECRET])
            .args([
                "--webhook-url",
                &format!("http://127.0.0.1:{core_port}/v1/payments/webhooks/sandbox"),
            ])
            .env("RUST_LOG", "warn")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(&log)?)
            .kill_on_drop(true)
            .spawn()
            .context("starting payment-sandbox")?;
        let mut line = String::new();
        let stdout = child.stdout.take().context("sandbox stdout")?;
        tokio::io::BufReader::new(stdout).read_line(&mut line).await?;
        if !line.contains("listening on") {
            bail!("payment-sandbox did not start: {line:?}");
        }
        Ok(Sandbox {
            url: format!("http://127.0.0.1:{port}"),
            child,
            log,
        })
    }

    /// booking-core's configuration overrides that point it here.
    pub fn core_env(&self) -> Vec<(String, String)> {
        [
            ("USHER_CORE__PAYMENTS__BASE_URL", self.url.as_str()),
            ("USHER_CORE__PAYMENTS__API_KEY", API_KEY),
            ("USHER_CORE__PAYMENTS__WEBHOOK_SECRET", WEBHOOK_SECRET),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .to_vec()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}
