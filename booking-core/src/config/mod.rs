//! Typed configuration, loaded once at start: built-in defaults, then a TOML
//! file (`config/booking-core.toml` unless told otherwise), then environment
//! variables `USHER_CORE__<SECTION>__<KEY>` (and `DATABASE_URL`). Reading it
//! checks every typed value (secrets, URLs, choices); `validate` then checks
//! ranges and how settings combine, listing every problem at once, before
//! anything listens.

mod choices;
mod sections;

use std::net::SocketAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};
pub use usher_shared::config::ConfigError;
use usher_shared::config::{HttpUrl, PostgresUrl, check_distinct_kids, check_range, read, verdict};

pub use choices::{CrashPoint, MailSink, MailSinkError, ProviderKind, SmtpSecurity};
pub use sections::*;
pub use usher_shared::telemetry::{LogFormat, TraceConfig};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Dev,
    Prod,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub environment: Environment,
    pub http: HttpConfig,
    pub database: DatabaseConfig,
    pub identity: IdentityConfig,
    pub admission: AdmissionConfig,
    pub holds: HoldsConfig,
    pub reaper: ReaperConfig,
    pub feed: FeedConfig,
    pub payments: PaymentsConfig,
    pub checkout: CheckoutConfig,
    pub tickets: TicketsConfig,
    pub notifications: NotificationsConfig,
    #[serde(default)]
    pub pricing: PricingConfig,
    #[serde(default)]
    pub waitlist: WaitlistConfig,
    /// The edge's admin API, for the portal's waiting-room settings and
    /// dashboard figures. Optional: without it those answer 503 / null.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edge: Option<EdgeConfig>,
    pub log: LogConfig,
    /// Spans exported over OTLP (off unless `trace.otlp_endpoint` is set).
    #[serde(default)]
    pub trace: TraceConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            environment: Environment::Prod,
            http: HttpConfig {
                listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
                request_timeout_ms: 10_000,
                metrics_listen: None,
            },
            database: DatabaseConfig {
                url: PostgresUrl::parse("postgres://postgres@127.0.0.1:5432/usher").expect("a valid default"),
                read_url: None,
                max_connections: 16,
                acquire_timeout_ms: 5_000,
            },
            identity: IdentityConfig {
                issuer: "usher-dev".into(),
                audience: "usher".into(),
                leeway_secs: 30,
                public_keys: vec![],
                dev_sign_in: DevSignInConfig {
                    enabled: false,
                    kid: "dev-1".into(),
                    private_key_file: None,
                    token_ttl_secs: 12 * 3600,
                },
            },
            admission: AdmissionConfig {
                issuer: "usher-edge".into(),
                leeway_secs: 5,
                public_keys: vec![],
            },
            holds: HoldsConfig {
                max_seats_per_request: 10,
                best_available_attempts: 4,
                recent_claims_ms: sections::default_recent_claims_ms(),
                durable_commit: false,
            },
            reaper: ReaperConfig {
                enabled: true,
                interval_ms: 1_000,
                batch_size: 500,
            },
            feed: FeedConfig {
                poll_interval_ms: 250,
                heartbeat_secs: 15,
            },
            payments: PaymentsConfig {
                provider: ProviderKind::Sandbox,
                base_url: HttpUrl::parse("http://127.0.0.1:8090").expect("a valid default"),
                api_key: "sk_sandbox".into(),
                webhook_secret: "whsec_sandbox".into(),
                webhook_tolerance_secs: 300,
                request_timeout_ms: 5_000,
                currency: "usd".into(),
            },
            checkout: CheckoutConfig {
                reconcile: true,
                reconcile_interval_ms: 1_000,
                reconcile_after_secs: 30,
                reconcile_batch: 50,
                max_payment_wait_secs: sections::default_max_payment_wait_secs(),
                return_base_url: sections::default_return_base_url(),
                books_every_secs: sections::default_books_every_secs(),
                books_lag_secs: sections::default_books_lag_secs(),
                payout_delay_secs: sections::default_payout_delay_secs(),
                crash_after: None,
            },
            tickets: TicketsConfig {
                kid: "tickets-1".into(),
                signing_key_file: None,
                previous_keys: vec![],
                rotation_secs: 30,
                scanners: vec![],
            },
            notifications: NotificationsConfig {
                enabled: true,
                interval_ms: 500,
                batch: 100,
                max_attempts: 12,
                backoff_base_ms: 1_000,
                operator_webhook_url: None,
                operator_webhook_secret: "whsec_operator_dev".into(),
                email: MailSink::Log,
                email_from: "tickets@usher.invalid".into(),
                email_domain: "fans.usher.invalid".into(),
                smtp: SmtpConfig::default(),
            },
            pricing: PricingConfig::default(),
            waitlist: WaitlistConfig::default(),
            edge: None,
            log: LogConfig {
                format: LogFormat::Text,
                filter: "info".into(),
            },
            trace: TraceConfig::default(),
        }
    }
}

impl Config {
    /// Defaults, then the file (if it exists), then the environment.
    pub fn load(file: &Path) -> Result<Config, ConfigError> {
        let config: Config = read(
            Some(&Config::default()),
            file,
            "USHER_CORE__",
            &[("DATABASE_URL", "database.url")],
        )?;
        config.validate()?;
        Ok(config)
    }

    /// Ranges, and settings that only make sense together: every problem
    /// at once, so an operator fixes the file in one go.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let p = &mut problems;
        let dev = self.environment == Environment::Dev;
        self.trace.check(p, "trace");
        check_range(
            p,
            "database.acquire_timeout_ms",
            self.database.acquire_timeout_ms,
            100..=60_000,
        );
        check_range(p, "database.max_connections", self.database.max_connections, 1..=1000);
        check_range(
            p,
            "http.request_timeout_ms",
            self.http.request_timeout_ms,
            100..=600_000,
        );
        if let Some(m) = self.http.metrics_listen
            && m.port() != 0
            && m == self.http.listen
        {
            p.push("http.metrics_listen must not be the public http.listen".into());
        }
        if self.identity.issuer.trim().is_empty() || self.identity.audience.trim().is_empty() {
            p.push("identity.issuer and identity.audience must not be empty".into());
        }
        if self.identity.public_keys.is_empty() && !self.identity.dev_sign_in.enabled {
            p.push("identity.public_keys is empty: no fan could ever sign in".into());
        }
        for key in &self.identity.public_keys {
            if key.pem.is_some() == key.pem_file.is_some() {
                p.push(format!(
                    "identity.public_keys[{}]: give exactly one of pem or pem_file",
                    key.kid
                ));
            }
        }
        let sign_in = &self.identity.dev_sign_in;
        if sign_in.enabled {
            if !dev {
                p.push("identity.dev_sign_in.enabled is only allowed with environment = \"dev\"".into());
            }
            if sign_in.private_key_file.is_none() {
                p.push("identity.dev_sign_in.private_key_file is required when dev sign-in is enabled".into());
            }
            check_range(
                p,
                "identity.dev_sign_in.token_ttl_secs",
                sign_in.token_ttl_secs,
                60..=7 * 86400,
            );
        }
        check_range(
            p,
            "holds.max_seats_per_request",
            self.holds.max_seats_per_request,
            1..=50,
        );
        check_range(
            p,
            "holds.best_available_attempts",
            self.holds.best_available_attempts,
            1..=20,
        );
        check_range(p, "reaper.interval_ms", self.reaper.interval_ms, 50..=3_600_000);
        check_range(p, "reaper.batch_size", self.reaper.batch_size, 1..=10_000);
        check_range(p, "feed.poll_interval_ms", self.feed.poll_interval_ms, 20..=5_000);
        check_range(p, "feed.heartbeat_secs", self.feed.heartbeat_secs, 1..=120);
        let pay = &self.payments;
        if pay.provider == ProviderKind::Sandbox && !dev {
            p.push(
                "payments.provider = \"sandbox\" takes no real money: only allowed with environment = \"dev\"".into(),
            );
        }
        if pay.api_key.is_empty() || pay.webhook_secret.is_empty() {
            p.push("payments.api_key and payments.webhook_secret must not be empty".into());
        }
        check_range(
            p,
            "payments.webhook_tolerance_secs",
            pay.webhook_tolerance_secs,
            10..=3600,
        );
        check_range(p, "payments.request_timeout_ms", pay.request_timeout_ms, 100..=120_000);
        if pay.currency.len() != 3 || !pay.currency.bytes().all(|b| b.is_ascii_lowercase()) {
            p.push(format!(
                "payments.currency must be a lower-case ISO 4217 code, got {:?}",
                pay.currency
            ));
        }
        let co = &self.checkout;
        check_range(
            p,
            "checkout.reconcile_interval_ms",
            co.reconcile_interval_ms,
            50..=3_600_000,
        );
        check_range(p, "checkout.reconcile_batch", co.reconcile_batch, 1..=1000);
        check_range(
            p,
            "checkout.max_payment_wait_secs",
            co.max_payment_wait_secs,
            1..=86_400,
        );
        check_range(p, "checkout.books_every_secs", co.books_every_secs, 60..=7 * 86_400);
        check_range(p, "checkout.books_lag_secs", co.books_lag_secs, 0..=86_400);
        check_range(p, "checkout.payout_delay_secs", co.payout_delay_secs, 0..=90 * 86_400);
        if co.books_lag_secs < co.max_payment_wait_secs {
            // A charge still waiting for its fan would be taken for a mismatch.
            p.push(format!(
                "checkout.books_lag_secs ({}) must be at least checkout.max_payment_wait_secs ({})",
                co.books_lag_secs, co.max_payment_wait_secs
            ));
        }
        if co.crash_after.is_some() && !dev {
            p.push("checkout.crash_after is fault injection: only allowed with environment = \"dev\"".into());
        }
        let t = &self.tickets;
        if t.signing_key_file.is_none() && !dev {
            p.push("tickets.signing_key_file is required outside dev: scanners need a stable public key".into());
        }
        check_range(p, "tickets.rotation_secs", t.rotation_secs, 5..=300);
        for key in &t.previous_keys {
            if key.pem.is_some() == key.pem_file.is_some() {
                p.push(format!(
                    "tickets.previous_keys[{}]: give exactly one of pem or pem_file",
                    key.kid
                ));
            }
        }
        let previous = t.previous_keys.iter().map(|k| k.kid.as_str());
        check_distinct_kids(p, "tickets.previous_keys", &t.kid, previous);
        for s in &t.scanners {
            if s.id.is_empty() || s.key.len() < 16 {
                p.push(format!(
                    "tickets.scanners[{:?}]: needs an id and a key of 16+ characters",
                    s.id
                ));
            }
        }
        let w = &self.waitlist;
        check_range(p, "waitlist.interval_ms", w.interval_ms, 10..=60_000);
        check_range(p, "waitlist.offer_secs", w.offer_secs, 1..=86_400);
        check_range(p, "waitlist.batch", w.batch, 1..=10_000);
        let n = &self.notifications;
        check_range(p, "notifications.interval_ms", n.interval_ms, 50..=3_600_000);
        check_range(p, "notifications.batch", n.batch, 1..=1000);
        check_range(p, "notifications.max_attempts", n.max_attempts, 1..=100);
        check_mail(p, n);
        check_range(p, "pricing.interval_secs", self.pricing.interval_secs, 5..=3600);
        if let Some(edge) = &self.edge {
            if edge.admin_token.is_empty() {
                p.push("edge.admin_token must not be empty".into());
            }
            check_range(p, "edge.timeout_ms", edge.timeout_ms, 100..=60_000);
        }
        verdict(problems)
    }
}

/// The sender and fan addresses, and an SMTP sink's session: refused at
/// start rather than at the first message.
fn check_mail(p: &mut Vec<String>, n: &NotificationsConfig) {
    if n.email_from.parse::<lettre::message::Mailbox>().is_err() {
        p.push(format!(
            "notifications.email_from must be a mail address (\"tickets@example.com\" or \"Usher <tickets@example.com>\"), got {:?}",
            n.email_from
        ));
    }
    if format!("fan@{}", n.email_domain).parse::<lettre::Address>().is_err() {
        p.push(format!(
            "notifications.email_domain must be a mail domain, got {:?}",
            n.email_domain
        ));
    }
    if !matches!(n.email, MailSink::Smtp(_)) {
        return;
    }
    let s = &n.smtp;
    check_range(p, "notifications.smtp.timeout_ms", s.timeout_ms, 100..=120_000);
    match (&s.username, &s.password) {
        (Some(u), Some(pw)) => {
            if u.is_empty() || pw.is_empty() {
                p.push("notifications.smtp.username and password must not be empty".into());
            }
            if s.security == SmtpSecurity::None {
                p.push(
                    "notifications.smtp: credentials need security = \"starttls\" or \"tls\" (\"none\" would send them in clear text)"
                        .into(),
                );
            }
        }
        (Some(_), None) => p.push("notifications.smtp.username is set without a password".into()),
        (None, Some(_)) => p.push("notifications.smtp.password is set without a username".into()),
        (None, None) => {}
    }
    if let Some(ca) = &s.ca_file {
        if s.security == SmtpSecurity::None {
            p.push("notifications.smtp.ca_file is only used with security = \"starttls\" or \"tls\"".into());
        } else if !std::fs::read_to_string(ca).is_ok_and(|pem| pem.contains("-----BEGIN CERTIFICATE-----")) {
            p.push(format!(
                "notifications.smtp.ca_file: {} is not a readable PEM certificate",
                ca.display()
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_need_a_key_and_say_so() {
        let err = Config::default().validate().unwrap_err().to_string();
        assert!(err.contains("identity.public_keys is empty"), "{err}");
    }

    #[test]
    fn dev_sign_in_outside_dev_is_refused() {
        let mut c = Config::default();
        c.identity.dev_sign_in.enabled = true;
        c.identity.dev_sign_in.private_key_file = Some("k.pem".into());
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("only allowed with environment"), "{err}");
        c.environment = Environment::Dev;
        c.validate().unwrap();
    }

    #[test]
    fn every_problem_is_listed() {
        let mut c = Config::default();
        c.reaper.batch_size = 0;
        c.checkout.crash_after = Some(CrashPoint::Charged);
        c.pricing.interval_secs = 1;
        let err = c.validate().unwrap_err().to_string();
        for needle in [
            "reaper.batch_size must be 1..=10000, got 0",
            "checkout.crash_after is fault injection",
            "public_keys",
            "pricing.interval_secs",
            "payments.provider = \"sandbox\"",
        ] {
            assert!(err.contains(needle), "{needle} missing from {err}");
        }
    }

    #[test]
    fn no_secret_is_printed() {
        let mut c = Config::default();
        c.payments.api_key = "sk_live_one".into();
        c.payments.webhook_secret = "whsec_two".into();
        c.notifications.operator_webhook_secret = "whsec_three".into();
        c.database.url = PostgresUrl::parse("postgres://app:pw_four@db/usher").unwrap();
        c.tickets.scanners = vec![ScannerConfig {
            id: "gate-a".into(),
            key: "scanner_key_five_long".into(),
        }];
        c.edge = Some(EdgeConfig {
            admin_url: HttpUrl::parse("http://edge:8001").unwrap(),
            admin_token: "edge_token_six".into(),
            timeout_ms: 2_000,
        });
        let printed = format!("{c:?}");
        for secret in [
            "sk_live_one",
            "whsec_two",
            "whsec_three",
            "pw_four",
            "key_five",
            "token_six",
        ] {
            assert!(!printed.contains(secret), "{secret} printed in {printed}");
        }
        assert!(printed.contains("gate-a") && printed.contains("http://edge:8001"));
    }

    #[test]
    fn smtp_sessions_are_checked() {
        let mut c = Config::default();
        c.notifications.email = "smtp://mail.example.com:587".parse().unwrap();
        c.notifications.smtp.security = SmtpSecurity::None;
        c.notifications.smtp.username = Some("usher".into());
        c.notifications.smtp.timeout_ms = 5;
        c.notifications.email_from = "not an address".into();
        let err = c.validate().unwrap_err().to_string();
        for needle in [
            "username is set without a password",
            "notifications.smtp.timeout_ms must be 100..=120000, got 5",
            "notifications.email_from must be a mail address",
        ] {
            assert!(err.contains(needle), "{needle} missing from {err}");
        }
        c.notifications.smtp.password = Some("smtp_pw_seven".into());
        let err = c.validate().unwrap_err().to_string();
        assert!(
            err.contains("credentials need security = \"starttls\" or \"tls\""),
            "{err}"
        );
        c.notifications.smtp.security = SmtpSecurity::Starttls;
        c.notifications.smtp.ca_file = Some("/nonexistent/ca.pem".into());
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("ca.pem is not a readable PEM certificate"), "{err}");
        c.notifications.smtp.ca_file = None;
        c.notifications.smtp.timeout_ms = 10_000;
        c.notifications.email_from = "Usher <tickets@usher.invalid>".into();
        let err = c.validate().map(|_| String::new()).unwrap_or_else(|e| e.to_string());
        assert!(!err.contains("notifications"), "{err}");
        assert!(!format!("{c:?}").contains("smtp_pw_seven"));
    }

    #[test]
    fn file_and_environment_are_layered() {
        let dir = std::env::temp_dir().join(format!("usher-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("core.toml");
        std::fs::write(
            &file,
            "environment = \"dev\"\n[http]\nlisten = \"127.0.0.1:9999\"\n[[identity.public_keys]]\nkid = \"a\"\npem = \"x\"\n",
        )
        .unwrap();
        let c = Config::load(&file).unwrap();
        assert_eq!(c.http.listen.port(), 9999);
        assert_eq!(c.environment, Environment::Dev);

        std::fs::write(&file, "[http]\nlisten = \"not an address\"\n").unwrap();
        let err = Config::load(&file).unwrap_err().to_string();
        assert!(err.contains("listen"), "{err}");

        std::fs::write(&file, "[http]\nlisten_typo = 1\n").unwrap();
        let err = Config::load(&file).unwrap_err().to_string();
        assert!(err.contains("listen_typo"), "{err}");

        // Choices, URLs and mail sinks are refused with their key named,
        // never read as a default.
        for (text, key) in [
            ("[payments]\nprovider = \"paypal\"\n", "provider"),
            ("[payments]\nbase_url = \"api.stripe.com\"\n", "base_url"),
            ("[notifications]\nemail = \"smtp://nohost\"\n", "email"),
            (
                "[notifications.smtp]\nsecurity = \"ssl\"\ntimeout_ms = 1000\n",
                "security",
            ),
            ("[log]\nformat = \"xml\"\n", "format"),
            ("[checkout]\ncrash_after = \"lunch\"\n", "crash_after"),
        ] {
            std::fs::write(&file, text).unwrap();
            let err = Config::load(&file).unwrap_err().to_string();
            assert!(err.contains(key), "{text}: {err}");
        }
    }
}
