//! Fans for a load run: signed in through the development sign-in, over
//! HTTP, like any client.

use anyhow::Context;
use serde_json::{Value, json};

pub async fn sign_in_many(http: &reqwest::Client, base: &str, prefix: &str, n: usize) -> anyhow::Result<Vec<String>> {
    use futures::StreamExt;
    // Set-up, not the measurement: enough at once to keep the core busy
    // (a fixed batch waited on its slowest call), answers kept in order.
    let mut answers = futures::stream::iter(0..n)
        .map(|i| {
            let http = http.clone();
            let url = format!("{base}/v1/dev/sign-in");
            let body = json!({"fan_id": format!("{prefix}-{i}")});
            async move {
                let r: Value = http.post(url).json(&body).send().await?.json().await?;
                r["token"]
                    .as_str()
                    .map(str::to_owned)
                    .context("no token in sign-in answer")
            }
        })
        .buffered(256);
    let mut tokens = Vec::with_capacity(n);
    while let Some(t) = answers.next().await {
        tokens.push(t?);
    }
    Ok(tokens)
}
