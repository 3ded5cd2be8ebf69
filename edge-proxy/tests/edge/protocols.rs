//! The edge speaks HTTP/1.1 and HTTP/2 to clients: over TLS (ALPN) when a
//! certificate is configured, and h2c by prior knowledge on the plain
//! listener; the waiting room and its protection work the same on both.
//! Driven with curl, a client that is not ours.

use std::process::Command;

use crate::common::*;

fn curl(args: &[&str]) -> (String, String) {
    let out = Command::new("curl")
        .args(["-sS", "-o", "-", "-w", "\n%{http_version} %{http_code}"])
        .args(args)
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, last) = text.rsplit_once('\n').unwrap_or(("", ""));
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (body.to_owned(), last.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_over_tls_and_h2c_alongside_http1() {
    let dir = std::env::temp_dir().join(format!("usher-edge-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = self_signed_certificate(&dir);

    let upstream = Upstream::start().await;
    let event = fresh_event();
    let tls_port = free_port();
    let listen = format!(
        "tls = {{ addr = \"127.0.0.1:{tls_port}\", cert_file = \"{}\", key_file = \"{}\" }}",
        cert.display(),
        key.display()
    );
    let edge = Edge::start_with_listen(upstream.addr, &redis_url(), &[room(event, 60, 10)], &dir, "", &listen).await;
    let https = format!("https://127.0.0.1:{tls_port}");
    let cacert = cert.display().to_string();

    // Pass-through traffic, every way in.
    let catalog = "/v1/events?q=x";
    let (_, v) = curl(&["--cacert", &cacert, "--http2", &format!("{https}{catalog}")]);
    assert_eq!(v, "2 200", "HTTP/2 over TLS");
    let (_, v) = curl(&["--cacert", &cacert, "--http1.1", &format!("{https}{catalog}")]);
    assert_eq!(v, "1.1 200", "HTTP/1.1 over TLS");
    let (_, v) = curl(&["--http2-prior-knowledge", &edge.url(catalog)]);
    assert_eq!(v, "2 200", "h2c");
    let (_, v) = curl(&[&edge.url(catalog)]);
    assert_eq!(v, "1.1 200", "plain HTTP/1.1");
    assert_eq!(upstream.hits("/v1/events"), 4);

    // The waiting room over HTTP/2: join, and a protected path stays shut.
    let (body, v) = curl(&[
        "--cacert",
        &cacert,
        "--http2",
        "-X",
        "POST",
        &format!("{https}/queue/{event}/join"),
    ]);
    assert_eq!(v, "2 200", "{body}");
    let joined: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(joined["ticket"].as_u64().unwrap() >= 1, "{joined}");
    let holds = format!("/v1/events/{event}/holds");
    let (body, v) = curl(&["--http2-prior-knowledge", "-X", "POST", &edge.url(&holds)]);
    assert_eq!(v, "2 403", "{body}");
    assert!(body.contains("admission_required"), "{body}");
    assert_eq!(upstream.hits(&holds), 0, "never reached the core");

    edge.stop().await;
    forget_event(event).await;
    std::fs::remove_dir_all(&dir).ok();
}
