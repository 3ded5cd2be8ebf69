//! The configuration's sections, one struct each, as the file writes them.
//! Secrets, URLs and choices are typed (`usher_shared::config`,
//! `choices.rs`), so reading the file checks them; `mod.rs` checks ranges.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use usher_shared::config::{HttpUrl, PostgresUrl, Secret};

use super::{CrashPoint, MailSink, ProviderKind, SmtpSecurity};
use usher_shared::telemetry::LogFormat;

/// Where the edge-proxy's admin API listens and the token it wants.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeConfig {
    /// e.g. `http://127.0.0.1:8001` (edge-proxy.toml's `admin.listen`).
    pub admin_url: HttpUrl,
    /// Secret: edge-proxy.toml's `admin.token`; in production from
    /// USHER_CORE__EDGE__ADMIN_TOKEN.
    pub admin_token: Secret,
    /// One call to the admin API may take this long.
    #[serde(default = "default_edge_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_edge_timeout_ms() -> u64 {
    2_000
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// Ordinary requests are cut off after this long (streams are exempt).
    pub request_timeout_ms: u64,
    /// Where the admin listener serves `/metrics` (Prometheus text) to
    /// SREs' scrapers; never the public port. Unset: no metrics are kept.
    #[serde(default)]
    pub metrics_listen: Option<SocketAddr>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// The leader (writes, and every read that decides a sale). Behind a
    /// failover it names whatever routes to the current leader (HAProxy on
    /// Patroni's leader check, or several hosts with
    /// `target_session_attrs=read-write`); a connection that lands on a
    /// replica is refused and tried again (`db.rs`).
    pub url: PostgresUrl,
    /// Replicas, for reads that may be a moment stale: catalog search, event
    /// pages and prices. Absent, those read from the leader too.
    #[serde(default)]
    pub read_url: Option<PostgresUrl>,
    pub max_connections: u32,
    pub acquire_timeout_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// The `iss` that fan tokens must carry.
    pub issuer: String,
    /// The `aud` that fan tokens must carry.
    pub audience: String,
    pub leeway_secs: u64,
    /// Public keys trusted for fan tokens, by key id.
    pub public_keys: Vec<PublicKeyConfig>,
    pub dev_sign_in: DevSignInConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicKeyConfig {
    pub kid: String,
    /// PEM text, or a file holding it.
    #[serde(default)]
    pub pem: Option<String>,
    #[serde(default)]
    pub pem_file: Option<PathBuf>,
}

impl PublicKeyConfig {
    /// The key's PEM text, read from its file if it names one. Empty when
    /// neither is given, which `Config::validate` refuses at start.
    pub fn read_pem(&self) -> Result<String, usher_shared::KeyFileError> {
        match (&self.pem, &self.pem_file) {
            (Some(pem), _) => Ok(pem.clone()),
            (None, Some(path)) => usher_shared::read_pem(path),
            (None, None) => Ok(String::new()),
        }
    }
}

/// The edge's access tokens: for protected events, a hold needs one naming
/// the event, signed by one of these keys.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdmissionConfig {
    /// The `iss` the edge puts in access tokens.
    pub issuer: String,
    pub leeway_secs: u64,
    /// The edge's public keys, by key id. Empty: nobody is ever admitted, so
    /// protected events take no holds.
    pub public_keys: Vec<PublicKeyConfig>,
}

/// A sign-in endpoint that hands out fan tokens for any name: for the local
/// stack and tests only. Refused at start outside `environment = "dev"`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevSignInConfig {
    pub enabled: bool,
    pub kid: String,
    pub private_key_file: Option<PathBuf>,
    pub token_ttl_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldsConfig {
    /// Most seats one hold request may name.
    pub max_seats_per_request: usize,
    /// How many times best-available picks again after losing a race.
    pub best_available_attempts: u32,
    /// Best available chooses first from a reading of the event's claims at
    /// most this old, plus this process's own choices since (see
    /// inventory/recent.rs); 0 chooses every time under the scope's lock
    /// from a fresh read.
    #[serde(default = "default_recent_claims_ms")]
    pub recent_claims_ms: u64,
    /// Whether a new hold's commit waits for the WAL to reach the disk.
    /// Off by default: holds are minutes long and carry no money, and a crash
    /// can only lose the last fraction of a second of them (see
    /// migrations/0003_place_hold.sql). Sales always commit durably.
    pub durable_commit: bool,
}

pub(super) fn default_recent_claims_ms() -> u64 {
    500
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReaperConfig {
    pub enabled: bool,
    pub interval_ms: u64,
    pub batch_size: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedConfig {
    /// How often each instance reads a watched event's seats for changes.
    pub poll_interval_ms: u64,
    pub heartbeat_secs: u64,
}

/// Which card processor takes the money, and how to reach it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentsConfig {
    pub provider: ProviderKind,
    /// The processor's API root.
    pub base_url: HttpUrl,
    /// Secret: the API key sent as a bearer token.
    pub api_key: Secret,
    /// Secret: the key the processor signs its webhooks with.
    pub webhook_secret: Secret,
    /// A webhook signed longer ago than this is refused as a replay.
    pub webhook_tolerance_secs: u64,
    /// How long one call to the processor may take before the order is left
    /// for the reconciliation job.
    pub request_timeout_ms: u64,
    /// ISO 4217, lower case: what every price is in.
    pub currency: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckoutConfig {
    /// Run the reconciliation job in this instance.
    pub reconcile: bool,
    pub reconcile_interval_ms: u64,
    /// An order is left this long to finish by itself (its request, or the
    /// provider's webhook) before the job asks the provider about it.
    pub reconcile_after_secs: u64,
    pub reconcile_batch: i64,
    /// The longest an order waits for a payment that is neither taken nor
    /// refused (the fan's 3-D Secure answer, or the processor), counted
    /// from when the order was made. Its hold is kept (and extended) until
    /// then; past it the charge is cancelled at the provider, the order
    /// fails (`authentication_abandoned`) and the seats go back on sale.
    #[serde(default = "default_max_payment_wait_secs")]
    pub max_payment_wait_secs: u64,
    /// The fan app's address as browsers reach it (the edge): the
    /// provider's 3-D Secure page sends the fan back to
    /// `{return_base_url}/me/orders/{order_id}`.
    #[serde(default = "default_return_base_url")]
    pub return_base_url: HttpUrl,
    /// How often the reconciliation job compares the provider's books of
    /// charges and refunds with ours (`checkout/books.rs`): a day.
    #[serde(default = "default_books_every_secs")]
    pub books_every_secs: u64,
    /// The books' window ends this long before the run, so that charges
    /// still being decided (a request, a webhook, 3-D Secure) are not taken
    /// for mismatches. At least `max_payment_wait_secs`.
    #[serde(default = "default_books_lag_secs")]
    pub books_lag_secs: u64,
    /// A resale's payout is sent to the seller this long after the sale
    /// (`checkout/payouts.rs`), so that the buyer's refund or chargeback
    /// can still cancel it before money leaves.
    #[serde(default = "default_payout_delay_secs")]
    pub payout_delay_secs: u64,
    /// Fault injection for the crash tests: abort the process right after
    /// this saga step (see checkout/saga.rs). Never set in production.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crash_after: Option<CrashPoint>,
}

pub(super) fn default_max_payment_wait_secs() -> u64 {
    900
}

pub(super) fn default_books_every_secs() -> u64 {
    86_400
}

pub(super) fn default_payout_delay_secs() -> u64 {
    172_800
}

pub(super) fn default_books_lag_secs() -> u64 {
    1_800
}

pub(super) fn default_return_base_url() -> HttpUrl {
    HttpUrl::parse("http://127.0.0.1:8000").expect("a valid default")
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketsConfig {
    /// Key id of the key that signs ticket QR codes (scanners look it up).
    pub kid: String,
    /// Ed25519 private key (PKCS#8 PEM). Required in production; in dev a
    /// missing file means a throwaway key, so old QR codes stop scanning
    /// after a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key_file: Option<PathBuf>,
    /// Keys that signed codes before the current one, still accepted at
    /// check-in and published to scanners while a rotation runs (see
    /// docs/KEY_ROTATION.md); never used to sign.
    #[serde(default)]
    pub previous_keys: Vec<PublicKeyConfig>,
    /// Rotating codes change this often.
    pub rotation_secs: u64,
    /// Gate scanners allowed to check tickets in, each with its key.
    pub scanners: Vec<ScannerConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScannerConfig {
    /// Shown to the next scanner of a ticket already scanned here.
    pub id: String,
    /// Secret: sent by the scanner as its bearer token.
    pub key: Secret,
}

/// Delivering the outbox: operator webhooks and fan e-mail.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationsConfig {
    /// Run the delivery worker in this instance (safe on all of them).
    pub enabled: bool,
    pub interval_ms: u64,
    pub batch: i64,
    /// After this many failed attempts a delivery is dead (kept, not retried).
    pub max_attempts: i32,
    /// Retry n waits backoff_base_ms * 2^n, at most 300 times the base.
    pub backoff_base_ms: u64,
    /// The operator's endpoint for every notification; none if unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator_webhook_url: Option<HttpUrl>,
    /// Secret: signs operator webhooks (`Usher-Signature: t=..,v1=..`).
    pub operator_webhook_secret: Secret,
    /// Where fan e-mail goes (see `MailSink`).
    pub email: MailSink,
    pub email_from: String,
    /// Fans are known by id; mail goes to `<fan id>@<email_domain>` until the
    /// identity provider supplies addresses.
    pub email_domain: String,
    /// How to speak to the server of an `smtp://` sink.
    #[serde(default)]
    pub smtp: SmtpConfig,
}

/// The SMTP session of an `smtp://host:port` mail sink.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// `none`, `starttls` or `tls` (see `SmtpSecurity`).
    pub security: SmtpSecurity,
    /// AUTH (PLAIN or LOGIN, as the server offers) when set; needs
    /// `password` and a security other than `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// For connecting; a whole send (TLS, AUTH, the message) may take three
    /// times it before it is given up and retried (100..=120000).
    pub timeout_ms: u64,
    /// A PEM certificate to trust beside the public roots: the CA of a
    /// private relay (and the tests' own server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        // Safe by default: a plain relay has to be asked for.
        SmtpConfig {
            security: SmtpSecurity::Starttls,
            username: None,
            password: None,
            timeout_ms: 10_000,
            ca_file: None,
        }
    }
}

/// Dynamic pricing (see pricing/): off for every event until an operator
/// turns it on; this is the job that recalculates, and its default interval.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PricingConfig {
    /// Run the recalculation job in this instance. Safe on every instance
    /// at once: each interval of each event is recalculated exactly once.
    pub recalculate: bool,
    /// How often an event's prices are recalculated unless the event sets
    /// its own interval (5..=3600).
    pub interval_secs: u32,
}

impl Default for PricingConfig {
    fn default() -> Self {
        PricingConfig {
            recalculate: true,
            interval_secs: 30,
        }
    }
}

/// The waitlist of sold-out events (see waitlist/): the job that offers
/// seats coming back to waiting fans, and how long an offer lasts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitlistConfig {
    /// Run the offer job in this instance. Safe on every instance at once:
    /// one at a time makes an event's offers (SKIP LOCKED).
    pub offers: bool,
    /// The least time between two passes over one event, across all
    /// instances; also how often each instance looks for events due one.
    pub interval_ms: u64,
    /// How long an offer's seats are held for the fan (1..=86400).
    pub offer_secs: u32,
    /// Most offers one pass makes for one event.
    pub batch: i64,
}

impl Default for WaitlistConfig {
    fn default() -> Self {
        WaitlistConfig {
            offers: true,
            interval_ms: 250,
            offer_secs: 600,
            batch: 200,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A tracing filter, e.g. `info,booking_core=debug`.
    pub filter: String,
}
