//! The outbox's delivery worker: takes due deliveries (pushing each one's
//! next attempt back as it takes it, so concurrent workers take different
//! ones), sends them, and records the outcome: delivered; or failed, to be
//! tried again after a backoff; or, after `max_attempts`, dead (kept for an
//! operator to look at, never retried by itself). Delivery is at least once:
//! a receiver may see a notification twice and should key on its id.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sqlx::{PgPool, Row};

use crate::config::NotificationsConfig;
use crate::ids::{FanId, OrderId, TicketId};
use crate::outbox::mail::{Attachment, MailError, Mailer, Message};
use crate::outbox::templates::{self, Context};
use crate::outbox::topic;
use crate::signature;
use crate::tickets::{self, TicketSigner};

/// How long a taken delivery is left alone before another worker may take
/// it again (a worker that died mid-send).
const LEASE_SECS: f64 = 60.0;

pub struct Deliverer {
    pool: PgPool,
    config: NotificationsConfig,
    mailer: Mailer,
    /// Signs the codes of the PDF tickets an order-confirmed mail attaches.
    signer: Arc<TicketSigner>,
    http: reqwest::Client,
}

struct Due {
    outbox_id: i64,
    channel: String,
    attempts: i32,
    topic: String,
    fan_id: Option<String>,
    payload: serde_json::Value,
    created_at: chrono::DateTime<chrono::Utc>,
}

impl Deliverer {
    pub fn new(pool: PgPool, config: NotificationsConfig, signer: Arc<TicketSigner>) -> Result<Deliverer, MailError> {
        let mailer = Mailer::new(&config.email, &config.smtp)?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Ok(Deliverer {
            pool,
            config,
            mailer,
            signer,
            http,
        })
    }

    /// One pass; returns how many deliveries it attempted.
    pub async fn run_once(&self) -> Result<usize, sqlx::Error> {
        let due = sqlx::query_as!(
            Due,
            r#"WITH taken AS (
                   UPDATE outbox_deliveries d SET next_attempt_at = now() + make_interval(secs => $2)
                   WHERE (d.outbox_id, d.channel) IN (
                       SELECT outbox_id, channel FROM outbox_deliveries
                       WHERE state = 'pending' AND next_attempt_at <= now()
                       ORDER BY next_attempt_at LIMIT $1
                       FOR UPDATE SKIP LOCKED)
                   RETURNING d.outbox_id, d.channel, d.attempts
               )
               SELECT t.outbox_id AS "outbox_id!", t.channel AS "channel!", t.attempts AS "attempts!",
                      o.topic, o.fan_id, o.payload, o.created_at
               FROM taken t JOIN outbox o ON o.id = t.outbox_id
               ORDER BY t.outbox_id"#,
            self.config.batch,
            LEASE_SECS
        )
        .fetch_all(&self.pool)
        .await?;
        for d in &due {
            let outcome = match d.channel.as_str() {
                "operator_webhook" => self.webhook(d).await,
                _ => self.email(d).await,
            };
            self.record(d, outcome).await?;
        }
        Ok(due.len())
    }

    async fn webhook(&self, d: &Due) -> Result<(), String> {
        let Some(url) = &self.config.operator_webhook_url else {
            return Err(NOT_CONFIGURED.into());
        };
        let body = serde_json::to_vec(&json!({
            "id": d.outbox_id,
            "type": d.topic,
            "created": d.created_at.timestamp(),
            "data": d.payload,
        }))
        .map_err(|e| e.to_string())?;
        let now = chrono::Utc::now().timestamp();
        let sig = signature::sign(&body, self.config.operator_webhook_secret.expose().as_bytes(), now);
        let r = self
            .http
            .post(url.as_str())
            .header("content-type", "application/json")
            .header("usher-signature", sig)
            .header("usher-event-id", d.outbox_id.to_string())
            .body(body)
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        if r.status().is_success() {
            Ok(())
        } else {
            Err(format!("status {}", r.status()))
        }
    }

    async fn email(&self, d: &Due) -> Result<(), String> {
        let Some(fan) = &d.fan_id else {
            return Err("no fan to write to".into());
        };
        // An erased fan has no address any more (a later refund of their
        // order still notifies the operators): never mail the pseudonym.
        if crate::fans::is_pseudonym(fan) {
            return Err("the fan's data was erased: no address".into());
        }
        let (cx, attachments) = self.context(d, fan).await.map_err(|e| e.to_string())?;
        let m = Message {
            id: format!("usher-{}", d.outbox_id),
            from: self.config.email_from.clone(),
            to: format!("{fan}@{}", self.config.email_domain),
            mail: templates::compose(&d.topic, &d.payload, &cx),
            attachments,
        };
        self.mailer.send(&m).await.map_err(|e| e.to_string())
    }

    /// What the mail tells beyond its payload: the event, the order's
    /// currency and, for a confirmed order or a received ticket, each
    /// ticket the fan still holds as a PDF. Read at send time, so a retry sees the same tickets
    /// unless they moved on meanwhile.
    async fn context(&self, d: &Due, fan: &str) -> Result<(Context, Vec<Attachment>), tickets::PdfError> {
        let event = d.payload["event_id"].as_i64();
        let order = d.payload["order_id"]
            .as_str()
            .and_then(|s| uuid::Uuid::parse_str(s).ok());
        let mut cx = Context::default();
        let row = sqlx::query(
            r#"SELECT e.title, e.starts_at, v.name AS venue, (SELECT currency FROM orders WHERE id = $2) AS currency
               FROM events e JOIN venues v ON v.id = e.venue_id
               WHERE e.id = coalesce($1, (SELECT event_id FROM orders WHERE id = $2))"#,
        )
        .bind(event)
        .bind(order)
        .fetch_optional(&self.pool)
        .await
        .map_err(tickets::TicketError::from)?;
        if let Some(r) = row {
            let starts: chrono::DateTime<chrono::Utc> = r.try_get("starts_at").map_err(tickets::TicketError::from)?;
            cx.event_title = r.try_get("title").ok();
            cx.starts_at = Some(starts.format("%Y-%m-%d %H:%M UTC").to_string());
            cx.venue = r.try_get("venue").ok();
            cx.currency = r.try_get("currency").ok().flatten();
        }
        // The tickets to attach: a confirmed order's that the fan still
        // holds; a received ticket, if it is still theirs.
        let owner = FanId(fan.to_owned());
        let attach = match (d.topic.as_str(), order) {
            (topic::ORDER_CONFIRMED, Some(order)) => tickets::held_of_order(&self.pool, OrderId(order), &owner)
                .await
                .map_err(tickets::TicketError::from)?,
            (topic::TICKET_TRANSFERRED, _) => d.payload["ticket_id"]
                .as_str()
                .and_then(|t| uuid::Uuid::parse_str(t).ok())
                .map(TicketId)
                .into_iter()
                .collect(),
            _ => vec![],
        };
        let mut attachments = Vec::new();
        for id in attach {
            let (t, face, pdf) = match tickets::pdf(&self.pool, &self.signer, &owner, id).await {
                Ok(made) => made,
                // Passed on again since: no longer this fan's to attach.
                Err(tickets::PdfError::Ticket(tickets::TicketError::NotFound)) => continue,
                Err(e) => return Err(e),
            };
            cx.tickets.push(format!("{}: {}", face.seat, face.price));
            attachments.push(Attachment {
                filename: format!("ticket-{}.pdf", t.ticket_id),
                content_type: "application/pdf",
                bytes: pdf,
            });
        }
        // The receipt's last line: the order's own fee, when it has one.
        if let (topic::ORDER_CONFIRMED, Some(order)) = (d.topic.as_str(), order) {
            let lines = crate::pricing::fee_settings::lines_of(&self.pool, &[order])
                .await
                .map_err(tickets::TicketError::from)?;
            if let Some((_, c)) = lines.first().filter(|(_, c)| c.order_fee_cents > 0) {
                let money = |m: i64| crate::pricing::currency::format(m, &c.currency);
                let code = c.currency.to_ascii_uppercase();
                cx.tickets.push(if c.tax_inclusive {
                    format!(
                        "Order fee: {} {code} (incl. tax {})",
                        money(c.order_fee_cents),
                        money(c.order_fee_tax_cents)
                    )
                } else {
                    format!(
                        "Order fee: {} + tax {} = {} {code}",
                        money(c.order_fee_cents),
                        money(c.order_fee_tax_cents),
                        money(c.order_fee_cents + c.order_fee_tax_cents)
                    )
                });
            }
        }
        Ok((cx, attachments))
    }

    async fn record(&self, d: &Due, outcome: Result<(), String>) -> Result<(), sqlx::Error> {
        match outcome {
            Ok(()) => {
                sqlx::query!(
                    r#"UPDATE outbox_deliveries SET state = 'delivered', delivered_at = now(), attempts = attempts + 1
                       WHERE outbox_id = $1 AND channel = $2 AND state = 'pending'"#,
                    d.outbox_id,
                    d.channel
                )
                .execute(&self.pool)
                .await?;
            }
            Err(why) => {
                let attempts = d.attempts + 1;
                // An unconfigured channel is not going to start working: dead at once.
                let dead = attempts >= self.config.max_attempts || why == NOT_CONFIGURED;
                if dead {
                    tracing::warn!(outbox_id = d.outbox_id, channel = %d.channel, %why, "notification dead-lettered");
                }
                let base = self.config.backoff_base_ms as f64 / 1000.0;
                let backoff = base * 2f64.powi(attempts.min(9)).min(300.0);
                sqlx::query!(
                    r#"UPDATE outbox_deliveries
                       SET attempts = $3, last_error = $4, state = CASE WHEN $5 THEN 'dead' ELSE 'pending' END,
                           next_attempt_at = now() + make_interval(secs => $6)
                       WHERE outbox_id = $1 AND channel = $2 AND state = 'pending'"#,
                    d.outbox_id,
                    d.channel,
                    attempts,
                    why,
                    dead,
                    backoff
                )
                .execute(&self.pool)
                .await?;
            }
        }
        Ok(())
    }
}

const NOT_CONFIGURED: &str = "channel not configured";

pub async fn run(deliverer: Deliverer) {
    let mut tick = tokio::time::interval(Duration::from_millis(deliverer.config.interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match deliverer.run_once().await {
            Ok(n) if n as i64 >= deliverer.config.batch => tick.reset_immediately(),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "outbox delivery pass failed"),
        }
    }
}
