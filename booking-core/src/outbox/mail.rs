//! Fan e-mail: the MIME message (text and HTML alternatives, attachments)
//! and where it goes: a log line, a file per message, or an SMTP server
//! through `lettre` (STARTTLS or TLS, AUTH, timeouts).

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Attachment as MimeAttachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::config::{MailSink, SmtpConfig, SmtpSecurity};
use crate::outbox::templates;

pub struct Message {
    /// Unique per notification: the file name, and the Message-ID.
    pub id: String,
    pub from: String,
    pub to: String,
    pub mail: templates::Mail,
    pub attachments: Vec<Attachment>,
}

pub struct Attachment {
    pub filename: String,
    pub content_type: &'static str,
    pub bytes: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
#[error("e-mail: {0}")]
pub struct MailError(String);

impl Message {
    /// The MIME message: multipart/alternative (text, HTML), inside
    /// multipart/mixed when there are attachments.
    pub fn build(&self) -> Result<lettre::Message, MailError> {
        let bad = |what: &str, e: &dyn std::fmt::Display| MailError(format!("{what}: {e}"));
        let from: Mailbox = self.from.parse().map_err(|e| bad("from address", &e))?;
        let to: Mailbox = self.to.parse().map_err(|e| bad("to address", &e))?;
        let alternative = MultiPart::alternative_plain_html(self.mail.text.clone(), self.mail.html.clone());
        let builder = lettre::Message::builder()
            .from(from)
            .to(to)
            .subject(self.mail.subject.clone())
            .message_id(Some(format!("<{}@usher>", self.id)));
        let built = if self.attachments.is_empty() {
            builder.multipart(alternative)
        } else {
            let mut mixed = MultiPart::mixed().multipart(alternative);
            for a in &self.attachments {
                let kind = ContentType::parse(a.content_type).map_err(|e| bad("content type", &e))?;
                let part: SinglePart = MimeAttachment::new(a.filename.clone()).body(a.bytes.clone(), kind);
                mixed = mixed.singlepart(part);
            }
            builder.multipart(mixed)
        };
        built.map_err(|e| bad("message", &e))
    }
}

/// Where messages go, with its SMTP transport built once at start.
pub enum Mailer {
    Log,
    Files(std::path::PathBuf),
    Smtp {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        /// A bound on a whole send: lettre's own timeout covers only the
        /// connect, so a server that stops answering mid-conversation
        /// would otherwise hold the deliverer forever.
        whole: Duration,
    },
}

impl Mailer {
    /// Reads the sink and its SMTP settings (already validated by config).
    pub fn new(sink: &MailSink, smtp: &SmtpConfig) -> Result<Mailer, MailError> {
        Ok(match sink {
            MailSink::Log => Mailer::Log,
            MailSink::Files(dir) => Mailer::Files(dir.clone()),
            MailSink::Smtp(addr) => {
                let (host, port) = addr
                    .rsplit_once(':')
                    .and_then(|(h, p)| Some((h.trim_start_matches('[').trim_end_matches(']'), p.parse::<u16>().ok()?)))
                    .ok_or_else(|| MailError(format!("not host:port: {addr:?}")))?;
                let tls = |e: lettre::transport::smtp::Error| MailError(format!("TLS for {host}: {e}"));
                let params = || -> Result<TlsParameters, MailError> {
                    let mut b = TlsParameters::builder(host.to_owned());
                    if let Some(ca) = &smtp.ca_file {
                        let pem = std::fs::read(ca).map_err(|e| MailError(format!("{}: {e}", ca.display())))?;
                        b = b.add_root_certificate(Certificate::from_pem(&pem).map_err(tls)?);
                    }
                    b.build_rustls().map_err(tls)
                };
                // Plain is what lettre calls dangerous; config refuses
                // credentials with it. STARTTLS is required, never optional:
                // a server that does not offer it gets nothing.
                let builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host).tls(match smtp.security {
                    SmtpSecurity::None => Tls::None,
                    SmtpSecurity::Starttls => Tls::Required(params()?),
                    SmtpSecurity::Tls => Tls::Wrapper(params()?),
                });
                let timeout = Duration::from_millis(smtp.timeout_ms);
                let mut builder = builder.port(port).timeout(Some(timeout));
                if let (Some(user), Some(password)) = (&smtp.username, &smtp.password) {
                    builder = builder.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
                }
                Mailer::Smtp {
                    transport: builder.build(),
                    whole: timeout * 3,
                }
            }
        })
    }

    pub async fn send(&self, m: &Message) -> Result<(), MailError> {
        match self {
            Mailer::Log => {
                // The recipient (hashed: an address names the fan) and subject
                // only: bodies may carry order details.
                tracing::info!(to = %usher_shared::redact::hashed(&m.to), subject = %m.mail.subject,
                    attachments = m.attachments.len(), "e-mail (log sink)");
                Ok(())
            }
            Mailer::Files(dir) => {
                let e = |x: std::io::Error| MailError(x.to_string());
                let formatted = m.build()?.formatted();
                tokio::fs::create_dir_all(dir).await.map_err(e)?;
                // Same name on a retry: at-least-once delivery writes it again.
                tokio::fs::write(dir.join(format!("{}.eml", m.id)), formatted)
                    .await
                    .map_err(e)
            }
            Mailer::Smtp { transport, whole } => {
                let message = m.build()?;
                match tokio::time::timeout(*whole, transport.send(message)).await {
                    Ok(Ok(_)) => Ok(()),
                    // lettre's errors name the server's answer, never the credentials.
                    Ok(Err(e)) => Err(MailError(format!("SMTP: {e}"))),
                    Err(_) => Err(MailError("SMTP: timed out".into())),
                }
            }
        }
    }
}
