//! The sandbox's books: intents, refunds, disputes, and each idempotency
//! key's first answer; and what each test payment method does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use usher_shared::locks;

use crate::webhooks::Origin;

/// How a test payment method behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Card {
    Ok,
    Declined,
    Slow,
    /// Charges, then holds the answer back longer than any client waits.
    Timeout,
    /// The first request with a key fails (charging nothing); a retry works.
    Flaky,
    WebhookTwice,
    WebhookLate,
    /// The webhook is delivered (and acknowledged) before the answer.
    WebhookFirst,
    NoWebhook,
    /// Charges, then neither answers (held back as `Timeout`'s) nor sends
    /// a webhook: only asking the sandbox tells that it happened.
    LostAnswer,
    /// 3-D Secure: the intent waits (`requires_action`, no webhook) until
    /// the fan's answer, on the challenge page (`next_action`'s URL) or from
    /// a test through `POST /sandbox/payment_intents/{id}/succeed` or `/fail`.
    RequiresAction,
    /// 3-D Secure only for amounts over this many cents
    /// (`pm_card_3ds_over_<cents>`), as issuers ask for large payments.
    ThreeDsOver(i64),
    /// 3-D Secure that the issuer refuses whatever the fan answers: the
    /// intent fails with `authentication_failed`.
    ThreeDsFails,
    /// The processor takes its time: `processing`, then succeeded (and the
    /// webhook sent) after `Delays::processing`, by itself.
    Processing,
}

/// Each behaviour's bare token. `<token>_<suffix>` is another card that
/// behaves the same (`pm_card_ok_alice`), so tests and the simulator can
/// model many people's cards.
const BEHAVIOURS: &[(&str, Card)] = &[
    ("pm_card_ok", Card::Ok),
    ("pm_card_declined", Card::Declined),
    ("pm_card_slow", Card::Slow),
    ("pm_card_timeout", Card::Timeout),
    ("pm_card_flaky", Card::Flaky),
    ("pm_card_webhook_twice", Card::WebhookTwice),
    ("pm_card_webhook_late", Card::WebhookLate),
    ("pm_card_webhook_first", Card::WebhookFirst),
    ("pm_card_no_webhook", Card::NoWebhook),
    ("pm_card_lost_answer", Card::LostAnswer),
    ("pm_card_requires_action", Card::RequiresAction),
    ("pm_card_3ds_fails", Card::ThreeDsFails),
    ("pm_card_processing", Card::Processing),
];

/// `pm_card_3ds_over_<cents>[_<name>]`: the amount is part of the
/// behaviour, the name (if any) names the card as for every other token.
const THREE_DS_OVER: &str = "pm_card_3ds_over_";

impl Card {
    pub fn parse(pm: &str) -> Option<Card> {
        Self::identify(pm).map(|(card, _)| card)
    }

    /// The behaviour of a token and which card it names. The suffix names
    /// the card, whatever the behaviour: `pm_card_ok_alice` and
    /// `pm_card_declined_alice` are one card (once declined, once not), so
    /// they share a fingerprint. A bare token is a card of its own, as each
    /// test card number is.
    pub fn identify(pm: &str) -> Option<(Card, CardIdentity<'_>)> {
        if let Some(rest) = pm.strip_prefix(THREE_DS_OVER) {
            let (digits, name) = match rest.split_once('_') {
                Some((digits, name)) => (digits, Some(name)),
                None => (rest, None),
            };
            if digits.is_empty() || digits.len() > 12 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let over = Card::ThreeDsOver(digits.parse().ok()?);
            return match name {
                None => Some((over, CardIdentity::Bare(pm))),
                Some(name) if !name.is_empty() => Some((over, CardIdentity::Named(name))),
                Some(_) => None,
            };
        }
        BEHAVIOURS.iter().find_map(|&(token, card)| {
            if pm == token {
                return Some((card, CardIdentity::Bare(token)));
            }
            let suffix = pm.strip_prefix(token)?.strip_prefix('_')?;
            (!suffix.is_empty()).then_some((card, CardIdentity::Named(suffix)))
        })
    }
}

/// Which card a token names (see `Card::identify`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardIdentity<'a> {
    Bare(&'a str),
    Named(&'a str),
}

impl CardIdentity<'_> {
    /// A stable hash of the card, shaped like Stripe's (16 characters),
    /// and the last four digits it would show.
    pub fn fingerprint_and_last4(self) -> (String, String) {
        use sha2::{Digest, Sha256};
        let (kind, name) = match self {
            CardIdentity::Bare(token) => ("bare", token),
            CardIdentity::Named(suffix) => ("named", suffix),
        };
        let digest = Sha256::digest(format!("sandbox card\n{kind}\n{name}").as_bytes());
        let fingerprint = hex::encode(&digest[..8]);
        let last4 = format!("{:04}", u16::from_be_bytes([digest[8], digest[9]]) % 10_000);
        (fingerprint, last4)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Delays {
    pub slow: Duration,
    pub timeout: Duration,
    pub late: Duration,
    /// How long pm_card_processing stays `processing`.
    pub processing: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Intent {
    pub id: String,
    pub amount_cents: i64,
    pub currency: String,
    pub payment_method: String,
    pub status: String,
    pub failure_code: Option<String>,
    pub amount_refunded_cents: i64,
    pub metadata: HashMap<String, String>,
    pub created: i64,
    /// What the merchant must do next, Stripe's shape: while
    /// `requires_action`, `{"type": "redirect_to_url", "redirect_to_url":
    /// {"url": <the challenge page>, "return_url": <the merchant's>}}`.
    pub next_action: Option<serde_json::Value>,
    /// Where the challenge page sends the fan back (the merchant's page).
    pub return_url: Option<String>,
    /// Why it was cancelled (`abandoned`, ...), once `canceled`.
    pub cancellation_reason: Option<String>,
    /// The create call's trace, which the intent's webhooks join (not
    /// part of the API's answer).
    #[serde(skip)]
    pub trace: Origin,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Refund {
    pub id: String,
    pub payment_intent: String,
    pub amount_cents: i64,
    pub status: String,
    pub metadata: HashMap<String, String>,
    pub created: i64,
}

/// Money sent to a connected account (Stripe Connect's transfer).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Transfer {
    pub id: String,
    pub amount_cents: i64,
    pub currency: String,
    pub destination: String,
    pub transfer_group: Option<String>,
    pub created: i64,
}

/// A dispute (chargeback) of a succeeded intent, in Stripe's shape with
/// the sandbox's `amount_cents`: `needs_response` while open, then `won`
/// or `lost`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dispute {
    pub id: String,
    pub object: String,
    pub payment_intent: String,
    pub charge: String,
    pub amount_cents: i64,
    pub currency: String,
    pub reason: String,
    pub status: String,
    pub created: i64,
}

/// The first answer to an idempotency key: the request's fingerprint, and
/// the status and body sent.
#[derive(Debug, Clone)]
pub struct Answer {
    pub fingerprint: String,
    pub status: u16,
    pub body: serde_json::Value,
}

#[derive(Debug, Default)]
pub struct Books {
    pub intents: Vec<Intent>,
    pub refunds: Vec<Refund>,
    pub transfers: Vec<Transfer>,
    pub disputes: Vec<Dispute>,
    /// Every dispute event sent, as sent (`GET /sandbox/events`), so a test
    /// can deliver them again, twice or out of order.
    pub dispute_events: Vec<serde_json::Value>,
    pub answers: HashMap<String, Answer>,
    /// Keys whose first pm_card_flaky request has failed.
    pub flaked: std::collections::HashSet<String>,
}

#[derive(Debug, Default)]
pub struct Stats {
    pub webhooks_delivered: u64,
    pub webhooks_failed_attempts: u64,
}

#[derive(Default)]
pub struct Store {
    pub books: Mutex<Books>,
    pub stats: Mutex<Stats>,
    /// One lock per idempotency key: concurrent requests with one key run
    /// one after the other, so the second finds the first's answer.
    key_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Store {
    pub fn key_lock(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut key_locks = locks::lock(&self.key_locks);
        key_locks.entry(key.to_owned()).or_default().clone()
    }

    pub fn books(&self) -> std::sync::MutexGuard<'_, Books> {
        locks::lock(&self.books)
    }

    pub fn stats(&self) -> std::sync::MutexGuard<'_, Stats> {
        locks::lock(&self.stats)
    }
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}
