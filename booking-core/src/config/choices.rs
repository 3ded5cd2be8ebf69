//! Settings that are choices among a few kinds, each an enum that reads
//! itself from the file, so an unknown name is refused at start with the
//! key named rather than falling back to something.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Which card processor takes the money.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Stripe's API (`base_url` https://api.stripe.com).
    Stripe,
    /// The stand-in processor (`payment-sandbox`): dev only.
    Sandbox,
}

/// Where the crash tests may stop the process (`checkout.crash_after`):
/// after each saga step's effect, before the next (see checkout/saga.rs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CrashPoint {
    OrderCreated,
    Charged,
    Paid,
    Settled,
    RefundSent,
}

/// Where fan e-mail goes, written `log`, `file:<directory>` (one .eml per
/// message) or `smtp://host:port` (an SMTP server, spoken to as
/// `notifications.smtp` says: TLS, credentials, timeout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailSink {
    Log,
    Files(PathBuf),
    Smtp(String),
}

/// How the SMTP connection is protected (`notifications.smtp.security`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Plain text: only for a relay on the same machine or network (the
    /// local stack, tests); credentials are refused with it.
    None,
    /// Plain connect, then STARTTLS, required (refused if the server does
    /// not offer it): usually port 587.
    Starttls,
    /// TLS from the first byte: usually port 465.
    Tls,
}

#[derive(Debug, thiserror::Error)]
#[error("must be \"log\", \"file:<dir>\" or \"smtp://host:port\", got {0:?}")]
pub struct MailSinkError(String);

impl std::str::FromStr for MailSink {
    type Err = MailSinkError;

    fn from_str(text: &str) -> Result<MailSink, MailSinkError> {
        if text == "log" {
            Ok(MailSink::Log)
        } else if let Some(dir) = text.strip_prefix("file:").filter(|d| !d.is_empty()) {
            Ok(MailSink::Files(PathBuf::from(dir)))
        } else if let Some(addr) = text.strip_prefix("smtp://").map(|a| a.trim_end_matches('/'))
            && addr
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
        {
            Ok(MailSink::Smtp(addr.to_owned()))
        } else {
            Err(MailSinkError(text.to_owned()))
        }
    }
}

impl fmt::Display for MailSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MailSink::Log => f.write_str("log"),
            MailSink::Files(dir) => write!(f, "file:{}", dir.display()),
            MailSink::Smtp(addr) => write!(f, "smtp://{addr}"),
        }
    }
}

impl Serialize for MailSink {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MailSink {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<MailSink, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mail_sinks_read_and_write_the_same_text() {
        for text in ["log", "file:/var/mail/usher", "smtp://127.0.0.1:2525"] {
            let sink: MailSink = text.parse().unwrap();
            assert_eq!(sink.to_string(), text);
        }
        for bad in ["", "logs", "file:", "smtp://nohost", "smtp://:25", "mailto:x"] {
            assert!(bad.parse::<MailSink>().is_err(), "{bad:?} accepted");
        }
    }
}
