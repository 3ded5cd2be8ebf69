//! Fans for a load run: signed in through the development sign-in, over
//! HTTP, like any client.

use anyhow::Context;
use serde_json::{Value, json};

pub async fn sign_in_many(http: &reqwest::Client, base: &str, prefix: &str, n: usize) -> anyhow::Result<Vec<String>> {
    let mut tokens = Vec::with_capacity(n);
    // A few at a time: this is set-up, not the measurement.
    for chunk in (0..n).collect::<Vec<_>>().chunks(64) {
        let batch = chunk.iter().map(|i| {
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
        });
        for t in futures::future::join_all(batch).await {
            tokens.push(t?);
        }
    }
    Ok(tokens)
}
