//! Fan e-mail through a real SMTP server (aiosmtpd, keeping a Maildir):
//! the order-confirmed message is text and HTML with each ticket's PDF
//! attached, organiser-written text is escaped in the HTML, and a server
//! that cannot be reached, or will not speak TLS when told to, leaves the
//! message to the outbox's retries rather than losing it.

use std::time::Duration;

use crate::common::smtp::{MailServer, free_port, header, parts};
use crate::common::*;
use booking_core::config::{SmtpConfig, SmtpSecurity};
use reqwest::StatusCode;
use serde_json::{Value, json};

const HOSTILE: &str = "<script>alert('x')</script> & \"The Band\"";

async fn buy(app: &TestApp, fan: &str, e: booking_core::ids::EventId, seats: &[i64]) -> Value {
    let token = app.sign_in(fan).await;
    let (s, h) = app
        .hold(&token, e, &format!("h-{fan}"), &json!({"seat_ids": seats}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{h}");
    let r = app
        .http
        .post(app.url("/v1/orders"))
        .bearer_auth(&token)
        .header("idempotency-key", format!("o-{fan}"))
        .json(&json!({"hold_id": h["hold_id"], "payment_method": "pm_card_ok"}))
        .send()
        .await
        .unwrap();
    let o: Value = r.json().await.unwrap();
    assert_eq!(o["state"], "confirmed", "{o}");
    o
}

/// An event titled by a hostile organiser, with seats to sell.
async fn hostile_event(app: &TestApp, slug: &str) -> (booking_core::ids::EventId, Vec<i64>) {
    let v = venue(&app.pool, &small_chart(slug, &["A"], 1, 4)).await;
    let e = event(&app.pool, slug, slug, rules(4)).await;
    sqlx::query("UPDATE events SET title = $1 WHERE id = $2")
        .bind(HOSTILE)
        .bind(e.0)
        .execute(&app.pool)
        .await
        .unwrap();
    (e, seat_ids(&app.pool, v).await)
}

/// The e-mail delivery of the fan's notification: (state, attempts, last error).
async fn email_delivery(app: &TestApp, fan: &str) -> Option<(String, i32, Option<String>)> {
    sqlx::query_as(
        "SELECT d.state, d.attempts, d.last_error FROM outbox_deliveries d JOIN outbox o ON o.id = d.outbox_id
         WHERE d.channel = 'email' AND o.fan_id = $1 AND o.topic = 'order.confirmed'",
    )
    .bind(fan)
    .fetch_optional(&app.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn order_mail_is_text_and_escaped_html_with_one_pdf_per_ticket() {
    let smtp = MailServer::start().await;
    let app = TestApp::start_with(Options {
        sandbox: true,
        email: format!("smtp://{}", smtp.addr),
        ..Options::default()
    })
    .await;
    let (e, seats) = hostile_event(&app, "ml").await;
    let order = buy(&app, "mia", e, &seats[0..2]).await;
    let confirmed = std::time::Instant::now();

    let m = smtp.wait_for("mia@fans.usher.invalid").await;
    println!(
        "order confirmed -> its mail (2 PDFs) kept by the SMTP server: {} ms, {} bytes",
        confirmed.elapsed().as_millis(),
        m.len()
    );
    let head = m.split("\n\n").next().unwrap();
    assert_eq!(header(head, "subject").as_deref(), Some("Your tickets are confirmed"));
    assert!(header(head, "from").unwrap().contains("tickets@usher.invalid"));
    assert!(header(head, "message-id").unwrap().ends_with("@usher>"));
    assert!(
        header(head, "content-type").unwrap().starts_with("multipart/mixed"),
        "{head}"
    );

    let parts = parts(&m);
    let kinds: Vec<&str> = parts
        .iter()
        .map(|p| p.content_type.split(';').next().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["text/plain", "text/html", "application/pdf", "application/pdf"],
        "{parts:?}"
    );
    let text = String::from_utf8(parts[0].body.clone()).unwrap();
    let html = String::from_utf8(parts[1].body.clone()).unwrap();
    let order_id = order["order_id"].as_str().unwrap();
    for body in [&text, &html] {
        assert!(body.contains(order_id), "{body}");
        assert!(body.contains("Section A, row"), "{body}");
    }
    // The text keeps the title as written; the HTML shows it, never runs it.
    assert!(text.contains(HOSTILE), "{text}");
    assert!(
        html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;The Band&quot;"),
        "{html}"
    );
    assert!(!html.contains("<script"), "{html}");

    // One PDF per ticket, named for it, each a whole PDF document.
    let tickets: Vec<String> = sqlx::query_scalar("SELECT id::text FROM tickets WHERE order_id = $1::uuid")
        .bind(order_id)
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(tickets.len(), 2);
    for pdf in &parts[2..] {
        assert!(pdf.body.starts_with(b"%PDF-"), "not a PDF");
        assert!(pdf.body.trim_ascii_end().ends_with(b"%%EOF"), "a cut PDF");
        assert!(pdf.disposition.starts_with("attachment"), "{}", pdf.disposition);
        assert!(
            tickets
                .iter()
                .any(|t| pdf.disposition.contains(&format!("ticket-{t}.pdf"))),
            "{}",
            pdf.disposition
        );
    }
    // Mia passes a ticket on: its new holder gets it by mail, as a PDF.
    let token = app.sign_in("mia").await;
    let r = app
        .http
        .post(app.url(&format!("/v1/tickets/{}/transfer", tickets[0])))
        .bearer_auth(&token)
        .header("idempotency-key", "tr-mia-noa")
        .json(&json!({"to_fan_id": "noa"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let m = smtp.wait_for("noa@fans.usher.invalid").await;
    let got = crate::common::smtp::parts(&m);
    let kinds: Vec<&str> = got.iter().map(|p| p.content_type.split(';').next().unwrap()).collect();
    assert_eq!(kinds, ["text/plain", "text/html", "application/pdf"], "{got:?}");
    assert!(String::from_utf8_lossy(&got[0].body).contains("from mia"));
    assert!(got[2].body.starts_with(b"%PDF-"));
    assert!(got[2].disposition.contains(&format!("ticket-{}.pdf", tickets[0])));

    // Recorded once the server said 250 (just after it kept the message).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (state, attempts, _) = email_delivery(&app, "mia").await.unwrap();
        if state == "delivered" {
            assert_eq!(attempts, 1);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never marked delivered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.finish().await;
}

#[tokio::test]
async fn an_unreachable_smtp_server_means_retries_then_delivery_not_loss() {
    let port = free_port();
    let app = TestApp::start_with(Options {
        sandbox: true,
        email: format!("smtp://127.0.0.1:{port}"),
        ..Options::default()
    })
    .await;
    let (e, seats) = hostile_event(&app, "mu").await;
    buy(&app, "max", e, &seats[0..1]).await;

    // Nobody listens: attempts fail, the delivery stays pending.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Some((state, attempts, error)) = email_delivery(&app, "max").await
            && attempts >= 2
        {
            assert_eq!(state, "pending");
            assert!(error.unwrap_or_default().contains("SMTP"));
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no failed attempts");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The server comes up: a retry delivers it, once.
    let smtp = MailServer::start_on(port).await;
    let m = smtp.wait_for("max@fans.usher.invalid").await;
    assert!(m.contains("application/pdf"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while email_delivery(&app, "max").await.unwrap().0 != "delivered" {
        assert!(tokio::time::Instant::now() < deadline, "never marked delivered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(smtp.messages().len(), 1);
    app.finish().await;
}

#[tokio::test]
async fn starttls_required_is_never_skipped_for_a_plain_server() {
    let smtp = MailServer::start().await;
    let app = TestApp::start_with(Options {
        sandbox: true,
        email: format!("smtp://{}", smtp.addr),
        smtp: SmtpConfig::default(),
        ..Options::default()
    })
    .await;
    let (e, seats) = hostile_event(&app, "mt").await;
    buy(&app, "tia", e, &seats[0..1]).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Some((state, attempts, error)) = email_delivery(&app, "tia").await
            && attempts >= 2
        {
            // Kept for a retry (an operator may fix the server), not sent in clear.
            assert_eq!(state, "pending");
            let error = error.unwrap_or_default();
            assert!(error.to_ascii_lowercase().contains("tls"), "{error}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no failed attempts");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(smtp.messages().is_empty(), "sent without TLS");
    app.finish().await;
}

#[tokio::test]
async fn starttls_and_auth_reach_a_private_relay_and_a_wrong_password_is_retried() {
    let (relay, ca) = MailServer::start_tls("usher", "relay-pw-1").await;
    let smtp = |password: &str| SmtpConfig {
        security: SmtpSecurity::Starttls,
        username: Some("usher".into()),
        password: Some(password.into()),
        timeout_ms: 5_000,
        ca_file: Some(ca.clone()),
    };
    // The relay takes mail only after STARTTLS and AUTH: its arrival
    // shows both were done.
    let app = TestApp::start_with(Options {
        sandbox: true,
        email: format!("smtp://{}", relay.addr),
        smtp: smtp("relay-pw-1"),
        ..Options::default()
    })
    .await;
    let (e, seats) = hostile_event(&app, "ms").await;
    buy(&app, "sam", e, &seats[0..1]).await;
    let m = relay.wait_for("sam@fans.usher.invalid").await;
    assert!(m.contains("application/pdf"));
    app.finish().await;

    let app = TestApp::start_with(Options {
        sandbox: true,
        email: format!("smtp://{}", relay.addr),
        smtp: smtp("wrong-pw"),
        ..Options::default()
    })
    .await;
    let (e, seats) = hostile_event(&app, "mw").await;
    buy(&app, "wes", e, &seats[0..1]).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Some((state, attempts, error)) = email_delivery(&app, "wes").await
            && attempts >= 2
        {
            assert_eq!(state, "pending");
            let error = error.unwrap_or_default();
            assert!(
                error.contains("535") || error.to_ascii_lowercase().contains("auth"),
                "{error}"
            );
            assert!(!error.contains("wrong-pw"), "the password in {error}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no failed attempts: {:?} {:?}",
            email_delivery(&app, "wes").await,
            relay.messages().len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!relay.messages().iter().any(|m| m.contains("wes@")));
    app.finish().await;
}

#[tokio::test]
async fn a_server_that_stops_answering_is_given_up_on_and_retried() {
    // lettre bounds only the connect with its timeout; the whole send is
    // bounded by three times it (outbox/mail.rs).
    let (relay, ca) = MailServer::start_tls_with("usher", "relay-pw-2", true).await;
    let app = TestApp::start_with(Options {
        sandbox: true,
        email: format!("smtp://{}", relay.addr),
        smtp: SmtpConfig {
            security: SmtpSecurity::Starttls,
            username: Some("usher".into()),
            password: Some("not-it".into()),
            timeout_ms: 300,
            ca_file: Some(ca),
        },
        ..Options::default()
    })
    .await;
    let (e, seats) = hostile_event(&app, "mz").await;
    buy(&app, "zoe", e, &seats[0..1]).await;
    let started = tokio::time::Instant::now();
    loop {
        if let Some((state, attempts, error)) = email_delivery(&app, "zoe").await
            && attempts >= 2
        {
            assert_eq!(state, "pending");
            assert_eq!(error.as_deref(), Some("e-mail: SMTP: timed out"));
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "a stalled send was not given up on"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.finish().await;
}
