//! The outbox delivered: signed operator webhooks (retried with backoff
//! after failures, dead-lettered after the last attempt) and fan e-mail
//! (files, and a real SMTP conversation over TCP), each exactly for the
//! changes that committed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::*;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode as AxStatus};
use booking_core::signature;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// An operator endpoint that fails its first `fail_first` requests.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
    calls: Arc<AtomicUsize>,
}

async fn receiver(fail_first: usize) -> Receiver {
    let got = Arc::new(Mutex::new(Vec::new()));
    let calls = Arc::new(AtomicUsize::new(0));
    let (g, c) = (got.clone(), calls.clone());
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let (g, c) = (g.clone(), c.clone());
            async move {
                if c.fetch_add(1, Ordering::SeqCst) < fail_first {
                    return AxStatus::INTERNAL_SERVER_ERROR;
                }
                g.lock().unwrap().push((headers, body));
                AxStatus::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    Receiver { url, got, calls }
}

/// A minimal SMTP server that keeps each message's DATA.
async fn smtp_server() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let mail = Arc::new(Mutex::new(Vec::new()));
    let kept = mail.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let kept = kept.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 test smtp\r\n").await.ok();
                let mut data: Option<String> = None;
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(d) = data.as_mut() {
                        if line == "." {
                            kept.lock().unwrap().push(data.take().unwrap());
                            write.write_all(b"250 queued\r\n").await.ok();
                        } else {
                            d.push_str(&line);
                            d.push('\n');
                        }
                        continue;
                    }
                    let reply: &[u8] = match line.split(' ').next().unwrap_or("") {
                        "EHLO" => b"250-test\r\n250 8BITMIME\r\n",
                        "DATA" => {
                            data = Some(String::new());
                            b"354 go ahead\r\n"
                        }
                        "QUIT" => b"221 bye\r\n",
                        _ => b"250 ok\r\n",
                    };
                    write.write_all(reply).await.ok();
                }
            });
        }
    });
    (addr, mail)
}

async fn buy(app: &TestApp, fan: &str, e: booking_core::ids::EventId, seats: &[i64], pm: &str) -> Value {
    let token = app.sign_in(fan).await;
    let (s, h) = app
        .hold(&token, e, &format!("h-{fan}-{pm}"), &json!({"seat_ids": seats}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{h}");
    let r = app
        .http
        .post(app.url("/v1/orders"))
        .bearer_auth(&token)
        .header("idempotency-key", format!("o-{fan}-{pm}"))
        .json(&json!({"hold_id": h["hold_id"], "payment_method": pm}))
        .send()
        .await
        .unwrap();
    r.json().await.unwrap()
}

async fn delivery_states(app: &TestApp) -> Vec<(String, String, i32)> {
    sqlx::query_as("SELECT channel, state, attempts FROM outbox_deliveries ORDER BY outbox_id, channel")
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

async fn until<F: Fn() -> bool>(what: &str, f: F) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn operator_webhooks_are_signed_retried_and_delivered_and_fans_get_mail() {
    let hook = receiver(2).await;
    let dir = std::env::temp_dir().join(format!("usher-mail-{}", uuid::Uuid::now_v7()));
    let app = TestApp::start_with(Options {
        sandbox: true,
        operator_webhook: Some(hook.url.clone()),
        email: format!("file:{}", dir.display()),
        ..Options::default()
    })
    .await;
    let v = venue(&app.pool, &small_chart("nt", &["A"], 1, 4)).await;
    let e = event(&app.pool, "nt", "nt", rules(4)).await;
    let seats = seat_ids(&app.pool, v).await;
    let o = buy(&app, "alice", e, &seats[0..1], "pm_card_ok").await;
    assert_eq!(o["state"], "confirmed", "{o}");
    let d = buy(&app, "bob", e, &seats[1..2], "pm_card_declined").await;
    assert_eq!(d["state"], "payment_failed");

    // Two notifications; the receiver refused the first two attempts.
    until("two webhooks", || hook.got.lock().unwrap().len() >= 2).await;
    let got = hook.got.lock().unwrap().clone();
    assert!(hook.calls.load(Ordering::SeqCst) >= 4);
    let mut types = Vec::new();
    for (headers, body) in &got {
        let sig = headers["usher-signature"].to_str().unwrap();
        let now = chrono::Utc::now().timestamp();
        signature::verify(Some(sig), body, OPERATOR_SECRET.as_bytes(), 300, now)
            .expect("signed with the operator secret");
        let v: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(headers["usher-event-id"].to_str().unwrap(), v["id"].to_string());
        types.push(v["type"].as_str().unwrap().to_string());
    }
    types.sort();
    assert_eq!(types, ["order.confirmed", "payment.failed"]);

    // Mail, one file per message, to each fan.
    let dir2 = dir.clone();
    until("two e-mails", move || {
        std::fs::read_dir(&dir2).map(|d| d.count()).unwrap_or(0) >= 2
    })
    .await;
    let mut mails: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|f| std::fs::read_to_string(f.unwrap().path()).unwrap())
        .collect();
    mails.sort();
    assert!(
        mails
            .iter()
            .any(|m| m.contains("To: alice@fans.usher.invalid") && m.contains("Subject: Your tickets are confirmed"))
    );
    assert!(
        mails
            .iter()
            .any(|m| m.contains("To: bob@fans.usher.invalid") && m.contains("did not go through"))
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let states = delivery_states(&app).await;
    assert!(states.iter().all(|(_, s, _)| s == "delivered"), "{states:?}");
    std::fs::remove_dir_all(&dir).ok();
    app.finish().await;
}

#[tokio::test]
async fn a_webhook_that_keeps_failing_is_dead_lettered_and_mail_goes_over_smtp() {
    let hook = receiver(usize::MAX).await;
    let (smtp, mail) = smtp_server().await;
    let app = TestApp::start_with(Options {
        sandbox: true,
        operator_webhook: Some(hook.url.clone()),
        email: format!("smtp://{smtp}"),
        max_attempts: 3,
        ..Options::default()
    })
    .await;
    let v = venue(&app.pool, &small_chart("dl", &["A"], 1, 4)).await;
    let e = event(&app.pool, "dl", "dl", rules(4)).await;
    let seats = seat_ids(&app.pool, v).await;
    assert_eq!(
        buy(&app, "carol", e, &seats[0..1], "pm_card_ok").await["state"],
        "confirmed"
    );

    until("the SMTP message", || !mail.lock().unwrap().is_empty()).await;
    let m = mail.lock().unwrap()[0].clone();
    assert!(m.contains("To: carol@fans.usher.invalid"), "{m}");
    assert!(m.contains("Subject: Your tickets are confirmed"), "{m}");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let states = delivery_states(&app).await;
        if states.contains(&("operator_webhook".into(), "dead".into(), 3)) {
            assert!(states.contains(&("email".into(), "delivered".into(), 1)), "{states:?}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never dead-lettered: {states:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(hook.calls.load(Ordering::SeqCst), 3, "no attempts after the last");
    app.finish().await;
}
