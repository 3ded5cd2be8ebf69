//! The live position stream (Server-Sent Events), served by the proxy
//! itself and by the dedicated stream listener: positions while waiting,
//! then the access token the moment the fan is admitted, which opens the
//! protected paths. The dedicated listener answers CORS with credentials for
//! the configured page origins only.

use std::time::Duration;

use crate::common::*;
use edge_proxy::config::QueueMode;
use futures::StreamExt;
use serde_json::Value;

/// Reads server-sent events until one named `want` arrives; returns its data.
async fn next_event(
    body: &mut (impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    buf: &mut String,
    want: &str,
) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            let name = frame.lines().find_map(|l| l.strip_prefix("event:")).map(str::trim);
            let data = frame.lines().find_map(|l| l.strip_prefix("data:")).map(str::trim);
            if name == Some(want) {
                return serde_json::from_str(data.unwrap_or("null")).unwrap();
            }
        }
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .unwrap_or_else(|_| panic!("no `{want}` event in time; have {buf:?}"))
            .unwrap_or_else(|| panic!("stream ended before `{want}`; have {buf:?}"))
            .unwrap();
        buf.push_str(&String::from_utf8_lossy(&chunk));
    }
}

async fn admitted_over_the_stream(dedicated: bool) {
    let upstream = Upstream::start().await;
    let event = fresh_event();
    let mut paused = room(event, 60_000, 10);
    paused.mode = QueueMode::Paused;
    let streams_port = free_port();
    let listen = if dedicated {
        format!("streams = \"127.0.0.1:{streams_port}\"\nstream_origins = [\"http://127.0.0.1:{{port}}\"]")
    } else {
        String::new()
    };
    let dir = key_dir(&format!("streams-{dedicated}"));
    let edge = Edge::start_with_listen(upstream.addr, &redis_url(), &[paused], &dir, "", &listen).await;
    let base = edge.url("");
    let ahead = join(&edge.http, &base, event).await;
    let r = edge
        .http
        .post(format!("{base}/queue/{event}/join"))
        .send()
        .await
        .unwrap();
    let joined: Value = r.json().await.unwrap();
    let url = joined["stream_url"].as_str().unwrap().to_owned();
    let url = if dedicated {
        assert_eq!(url, format!("http://127.0.0.1:{streams_port}/queue/{event}/events"));
        url
    } else {
        assert_eq!(url, format!("/queue/{event}/events"));
        edge.url(&url)
    };
    let client_id = joined["client_id"].as_str().unwrap();
    let token = joined["queue_token"].as_str().unwrap();
    let page_origin = format!("http://127.0.0.1:{}", edge.port);
    let r = edge
        .http
        .get(&url)
        .header("usher-client", client_id)
        .header("origin", &page_origin)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    if dedicated {
        assert_eq!(r.headers()["access-control-allow-origin"], page_origin.as_str());
        assert_eq!(r.headers()["access-control-allow-credentials"], "true");
    }
    let mut body = r.bytes_stream();
    let mut buf = String::new();
    let position = next_event(&mut body, &mut buf, "position").await;
    assert_eq!(
        (position["position"].as_u64(), position["ahead"].as_u64()),
        (Some(2), Some(1)),
        "{position}"
    );
    let _ = ahead;
    // Reconnecting (as EventSource does, with Last-Event-ID) resumes at once
    // with the current standing: a position is state, there is no history
    // to replay.
    let last_id = buf.clone();
    let r = edge
        .http
        .get(&url)
        .header("usher-client", client_id)
        .header("last-event-id", "1")
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let mut again = r.bytes_stream();
    let mut again_buf = String::new();
    let resumed = next_event(&mut again, &mut again_buf, "position").await;
    assert_eq!(resumed["position"], position["position"], "{resumed} after {last_id:?}");
    drop(again);

    // The operator opens the room: the stream hands over the access token.
    let mut open = room(event, 60_000, 10);
    open.mode = QueueMode::Fifo;
    let r = edge
        .http
        .put(edge.admin_url(&format!("/admin/events/{event}")))
        .bearer_auth(ADMIN_TOKEN)
        .json(&open)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let admitted = next_event(&mut body, &mut buf, "admitted").await;
    let access = admitted["access_token"].as_str().expect("access token").to_owned();
    let holds = format!("/v1/events/{event}/holds");
    let r = edge
        .http
        .post(edge.url(&holds))
        .header("usher-client", client_id)
        .header("usher-access", access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(upstream.hits(&holds), 1);

    if dedicated {
        // Another page's origin gets no CORS grant; a bad token no stream.
        let r = edge
            .http
            .get(&url)
            .header("usher-client", client_id)
            .header("origin", "http://evil.example")
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert!(r.headers().get("access-control-allow-origin").is_none());
        let r = edge.http.get(&url).bearer_auth("forged").send().await.unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()["content-type"], "application/problem+json");
    }
    edge.stop().await;
    forget_event(event).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_streams_positions_then_the_access_token() {
    admitted_over_the_stream(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dedicated_listener_streams_positions_then_the_access_token() {
    admitted_over_the_stream(true).await;
}
