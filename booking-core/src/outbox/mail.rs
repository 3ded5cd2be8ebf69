//! Fan e-mail for a notification: the message, and where it goes (a log
//! line, a file per message, or a plain SMTP relay).

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::config::MailSink;

pub struct Message {
    /// Unique per notification: the file name, and the Message-ID.
    pub id: String,
    pub from: String,
    pub to: String,
    pub subject: String,
    pub body: String,
}

impl Message {
    fn rfc5322(&self) -> String {
        // SMTP's end of data is a lone dot on a line: double any leading dot.
        let body = self
            .body
            .lines()
            .map(|l| {
                if l.starts_with('.') {
                    format!(".{l}")
                } else {
                    l.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\r\n");
        format!(
            "From: {}\r\nTo: {}\r\nSubject: {}\r\nMessage-ID: <{}@usher>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n",
            self.from, self.to, self.subject, self.id
        )
    }
}

/// The subject and text a fan gets for a topic.
pub fn compose(topic: &str, payload: &serde_json::Value) -> (String, String) {
    let order = payload["order_id"].as_str().unwrap_or("");
    match topic {
        "order.confirmed" => (
            "Your tickets are confirmed".into(),
            format!("Order {order} is confirmed. Your tickets are in the app under My tickets."),
        ),
        "payment.failed" => (
            "Your payment did not go through".into(),
            format!(
                "The payment for order {order} was declined. Your seats stay held for a few minutes: try another card."
            ),
        ),
        "hold.expired" => (
            "Your seats were released before your payment arrived".into(),
            format!(
                "Your hold ran out before the payment for order {order} arrived and the seats were sold. The payment is being refunded in full."
            ),
        ),
        "refund.issued" => (
            "Your refund is on its way".into(),
            format!(
                "We refunded {} cents for order {order}. It can take a few days to appear on your statement.",
                payload["amount_cents"]
            ),
        ),
        "ticket.transferred" => (
            "A ticket was transferred".into(),
            format!(
                "Ticket {} moved from {} to {}.",
                payload["ticket_id"], payload["from_fan_id"], payload["to_fan_id"]
            ),
        ),
        "dispute.opened" => (
            "Your bank disputed a payment".into(),
            if payload["voided_ticket_ids"].as_array().is_some_and(|t| !t.is_empty()) {
                format!(
                    "Your bank told us you disputed the payment for order {order}. Its tickets are void while the dispute is open; they become valid again if the dispute is decided for the payment."
                )
            } else {
                format!(
                    "Your bank told us you disputed the payment for order {order}. If the dispute is decided against the payment, the order's tickets will be void."
                )
            },
        ),
        "dispute.closed" => (
            "Your payment dispute was decided".into(),
            if payload["status"] == "lost" {
                format!(
                    "Your bank decided the dispute of the payment for order {order} in your favour and returned the money. The order's tickets are void."
                )
            } else {
                format!(
                    "Your bank decided the dispute of the payment for order {order} in favour of the payment. The order's tickets are valid."
                )
            },
        ),
        "waitlist.offer" => (
            "Seats from the waitlist are held for you".into(),
            format!(
                "{} seat(s) for event {} came back and are held for you until {} (UTC), at {} cents in all. \
                 Buy them from your waitlist page (hold {}); after that they go to the next fan in line.",
                payload["quantity"],
                payload["event_id"],
                payload["expires_at"].as_str().unwrap_or(""),
                payload["total_cents"],
                payload["hold_id"].as_str().unwrap_or("")
            ),
        ),
        other => (format!("Usher: {other}"), payload.to_string()),
    }
}

#[derive(Debug, thiserror::Error)]
#[error("e-mail: {0}")]
pub struct MailError(String);

pub async fn send(sink: &MailSink, m: &Message) -> Result<(), MailError> {
    match sink {
        MailSink::Log => {
            // The recipient (hashed: an address names the fan) and subject
            // only: bodies may carry order details.
            tracing::info!(to = %usher_shared::redact::hashed(&m.to), subject = %m.subject, "e-mail (log sink)");
            Ok(())
        }
        MailSink::Files(dir) => {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| MailError(e.to_string()))?;
            // Same name on a retry: at-least-once delivery writes it again.
            tokio::fs::write(dir.join(format!("{}.eml", m.id)), m.rfc5322())
                .await
                .map_err(|e| MailError(e.to_string()))
        }
        MailSink::Smtp(addr) => tokio::time::timeout(Duration::from_secs(10), smtp(addr, m))
            .await
            .map_err(|_| MailError("SMTP timed out".into()))?,
    }
}

/// Plain SMTP to a relay: EHLO, MAIL, RCPT, DATA, QUIT, each answer checked.
async fn smtp(addr: &str, m: &Message) -> Result<(), MailError> {
    let e = |x: std::io::Error| MailError(x.to_string());
    let stream = TcpStream::connect(addr).await.map_err(e)?;
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    async fn expect(
        lines: &mut tokio::io::Lines<BufReader<tokio::net::tcp::OwnedReadHalf>>,
        code: &str,
    ) -> Result<(), MailError> {
        loop {
            let line = lines
                .next_line()
                .await
                .map_err(|x| MailError(x.to_string()))?
                .ok_or_else(|| MailError("SMTP server hung up".into()))?;
            if !line.starts_with(code) {
                return Err(MailError(format!("SMTP: expected {code}, got {line:?}")));
            }
            // "250-" continues a multi-line answer; "250 " ends it.
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(());
            }
        }
    }
    expect(&mut lines, "220").await?;
    for (cmd, code) in [
        ("EHLO usher\r\n".to_string(), "250"),
        (format!("MAIL FROM:<{}>\r\n", m.from), "250"),
        (format!("RCPT TO:<{}>\r\n", m.to), "250"),
        ("DATA\r\n".to_string(), "354"),
    ] {
        write.write_all(cmd.as_bytes()).await.map_err(e)?;
        expect(&mut lines, code).await?;
    }
    write.write_all(m.rfc5322().as_bytes()).await.map_err(e)?;
    write.write_all(b".\r\n").await.map_err(e)?;
    expect(&mut lines, "250").await?;
    write.write_all(b"QUIT\r\n").await.map_err(e)?;
    Ok(())
}
