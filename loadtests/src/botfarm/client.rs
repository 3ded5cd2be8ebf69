//! One client as the edge sees it: a source address (its HTTP client), a
//! client id, a user agent and a language; and the answers it gets, read
//! to the status, the advised wait and the JSON body.

use std::net::Ipv4Addr;

use serde_json::Value;

pub const BROWSER_UA: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36";
pub const BROWSER_LANGUAGE: &str = "en-GB,en;q=0.9";
pub const AUTOMATION_UA: &str = "Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/131.0 Safari/537.36";
/// Fans' and the farm's ids (client ids and accounts) start so: the
/// books tell the farm's orders by it.
pub const FAN_PREFIX: &str = "bf-fan";
pub const BOT_PREFIX: &str = "bf-bot";

pub struct Who<'a> {
    pub http: &'a reqwest::Client,
    pub addr: Ipv4Addr,
    pub id: String,
    pub ua: &'static str,
    /// Empty: no Accept-Language at all, as automation sends.
    pub lang: &'static str,
}

pub struct Answer {
    pub status: u16,
    pub retry_after: Option<f64>,
    pub body: Value,
}

impl Who<'_> {
    fn identified(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let rb = rb.header("usher-client", &self.id).header("user-agent", self.ua);
        if self.lang.is_empty() {
            rb
        } else {
            rb.header("accept-language", self.lang)
        }
    }

    /// Sends as this client; None when no answer came (the caller retries
    /// or gives up, as a client would).
    pub async fn send(&self, rb: reqwest::RequestBuilder) -> Option<Answer> {
        let r = self.identified(rb).send().await.ok()?;
        let status = r.status().as_u16();
        let retry_after = r
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let body = r.json().await.unwrap_or(Value::Null);
        Some(Answer {
            status,
            retry_after,
            body,
        })
    }
}
