//! The `[listen]` and `[upstream]` sections: where the edge listens, and
//! the booking-cores behind it, each named `host:port` (checked as the file
//! is read).

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use usher_shared::config::HttpUrl;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenConfig {
    /// Plain-text HTTP/1.1 (and h2c) listeners.
    pub http: Vec<SocketAddr>,
    /// An HTTPS listener (HTTP/1.1 and HTTP/2), if any.
    #[serde(default)]
    pub tls: Option<TlsListener>,
    /// Worker threads for the proxy.
    #[serde(default = "default_threads")]
    pub threads: usize,
    /// How long a graceful shutdown waits for requests in flight.
    #[serde(default = "default_grace")]
    pub grace_period_secs: u64,
    /// Each client connection's read buffer; it stays allocated while a
    /// waiting fan's stream is open, so it sets most of a fan's cost.
    #[serde(default = "default_read_buffer")]
    pub read_buffer_bytes: usize,
    /// A dedicated listener for waiting fans' position streams, much lighter
    /// per fan than the proxy; join answers point fans at `stream_url`.
    #[serde(default)]
    pub streams: Option<SocketAddr>,
    /// Serve the streams over TLS with the `tls` listener's certificate, so
    /// that a page served over HTTPS may open them (a browser refuses an
    /// http:// stream from an https:// page).
    #[serde(default)]
    pub streams_tls: bool,
    /// The streams' public base URL (default `http://<streams>`, or
    /// `https://` with `streams_tls`).
    #[serde(default)]
    pub stream_url: Option<HttpUrl>,
    /// Balancers in front of the edge (networks such as `10.0.0.0/8`) whose
    /// `X-Forwarded-For` is believed: a request from one takes its client
    /// address, for per-address limits, defences and bypass rules, from that
    /// header (`fans::request::forwarded_client`). Empty: the peer is the
    /// client.
    #[serde(default)]
    pub trusted_proxies: Vec<super::Network>,
    /// Page origins allowed to open streams there (CORS with credentials).
    #[serde(default)]
    pub stream_origins: Vec<String>,
}

fn default_read_buffer() -> usize {
    4096
}

fn default_threads() -> usize {
    2
}

fn default_grace() -> u64 {
    5
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsListener {
    pub addr: SocketAddr,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// booking-core instances as `host:port` (a name or an IP); requests are
    /// spread over the ready ones (`upstreams.rs`).
    pub addrs: Vec<CoreAddr>,
    /// How often each core's readiness path is asked.
    #[serde(default = "default_health_interval")]
    pub health_check_interval_ms: u64,
    /// A check not answered 200 within this is a failed one.
    #[serde(default = "default_health_timeout")]
    pub health_check_timeout_ms: u64,
    /// booking-core answers 200 here only while it reaches a writable
    /// database leader.
    #[serde(default = "default_health_path")]
    pub health_check_path: String,
    /// How often the names in `addrs` are looked up again.
    #[serde(default = "default_discovery_interval")]
    pub discovery_interval_ms: u64,
    /// Connecting to a core; a refused or timed-out connect is tried once
    /// more on another core (nothing was sent yet).
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_ms: u64,
    /// The longest wait for a core's next bytes. Above the core's own request
    /// deadline (10 s) and its streams' heartbeat (15 s), so it only ends
    /// requests to a core that has stopped answering altogether.
    #[serde(default = "default_read_timeout")]
    pub read_timeout_ms: u64,
}

fn default_health_interval() -> u64 {
    1000
}
fn default_health_timeout() -> u64 {
    1000
}
fn default_health_path() -> String {
    "/readyz".into()
}
fn default_discovery_interval() -> u64 {
    5000
}
fn default_connect_timeout() -> u64 {
    1000
}
fn default_read_timeout() -> u64 {
    30_000
}

/// A booking-core's `host:port`, a name or an IP (names are looked up again
/// at every discovery round, see `upstreams.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreAddr(String);

impl CoreAddr {
    pub fn parse(text: &str) -> Option<CoreAddr> {
        let valid = text.parse::<SocketAddr>().is_ok()
            || text.rsplit_once(':').is_some_and(|(host, port)| {
                !host.is_empty()
                    && port.parse::<u16>().is_ok_and(|p| p > 0)
                    && host
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
            });
        valid.then(|| CoreAddr(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CoreAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for CoreAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for CoreAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<CoreAddr, D::Error> {
        let text = String::deserialize(d)?;
        CoreAddr::parse(&text).ok_or_else(|| serde::de::Error::custom(format!("{text:?} is not host:port")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cores_read_as_host_and_port() {
        for ok in ["127.0.0.1:8080", "[::1]:8080", "core-1:8080", "core.usher.internal:80"] {
            assert!(CoreAddr::parse(ok).is_some(), "{ok}");
        }
        for bad in [
            "core-1",
            "core-1:",
            ":8080",
            "core 1:8080",
            "core-1:0",
            "core-1:70000",
            "http://core:80",
        ] {
            assert!(CoreAddr::parse(bad).is_none(), "{bad}");
        }
    }
}
