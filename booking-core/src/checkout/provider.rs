//! The payment-provider adapter: what the checkout saga needs from a card
//! processor, as a trait, so that the saga never knows whose API it is.
//!
//! Every call that moves money carries an idempotency key derived from the
//! order (never random), so a retry after a timeout, a crash or a second
//! worker reaches the same charge or refund instead of making a new one.

use std::future::Future;
use std::pin::Pin;

use serde::Deserialize;

use crate::ids::{Cents, OrderId};
use crate::signature::SignatureError;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A charge to make: create, confirm and capture in one call.
#[derive(Debug, Clone)]
pub struct ChargeRequest {
    pub order: OrderId,
    pub amount: Cents,
    pub currency: String,
    pub payment_method: String,
    /// Same order, same key: the provider answers a retry with the first
    /// charge.
    pub idempotency_key: String,
    /// Where the provider's 3-D Secure page sends the fan back once they
    /// have answered it (the order's page).
    pub return_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeStatus {
    Succeeded,
    Declined {
        code: String,
    },
    /// Not decided yet: the fan has to authenticate (3-D Secure), or the
    /// processor is still working on it. It may yet succeed, so it is no
    /// decline: the order waits, and its hold is kept.
    Pending {
        /// The provider's own word for it (`requires_action`, ...).
        status: String,
        /// Where the fan's browser must go to authenticate
        /// (`requires_action`): the provider's challenge page.
        redirect_url: Option<String>,
    },
}

impl ChargeStatus {
    /// Pending, waiting for the processor rather than the fan.
    pub fn pending(status: &str) -> ChargeStatus {
        ChargeStatus::Pending {
            status: status.to_owned(),
            redirect_url: None,
        }
    }
}

/// The provider's record of a charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    pub intent_id: String,
    pub order: Option<OrderId>,
    pub amount: Cents,
    pub refunded: Cents,
    pub status: ChargeStatus,
}

#[derive(Debug, Clone)]
pub struct RefundRequest {
    pub intent_id: String,
    pub amount: Cents,
    pub idempotency_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    pub refund_id: String,
    pub intent_id: String,
    pub amount: Cents,
}

/// Money sent to a seller's account at the provider (Stripe Connect's
/// transfer to a connected account): a resale's payout.
#[derive(Debug, Clone)]
pub struct TransferRequest {
    /// The seller's connected account (`acct_...`).
    pub destination: String,
    pub amount: Cents,
    pub currency: String,
    /// Groups the transfer with the buyer's charge (the order id).
    pub transfer_group: String,
    /// Same payout (and attempt), same key: a retry reaches the first transfer.
    pub idempotency_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    pub transfer_id: String,
    pub amount: Cents,
}

/// A seller's connected account as the provider sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayoutAccount {
    pub account_id: String,
    /// Whether money sent to it can reach the seller.
    pub payouts_enabled: bool,
}

/// A stretch of the provider's books, by when each entry was created
/// (unix seconds, `since` included, `until` not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub since_unix: i64,
    pub until_unix: i64,
}

/// Where a dispute (chargeback) stands, in the provider's words mapped
/// to ours: open while the bank decides, then won or lost for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DisputeStatus {
    Open,
    /// Decided for the merchant: the money stays.
    Won,
    /// Decided for the fan: the money is gone.
    Lost,
}

impl DisputeStatus {
    /// The word a `disputes.state` column holds.
    pub fn as_str(self) -> &'static str {
        match self {
            DisputeStatus::Open => "open",
            DisputeStatus::Won => "won",
            DisputeStatus::Lost => "lost",
        }
    }

    pub fn parse(s: &str) -> Result<DisputeStatus, crate::states::UnknownState> {
        match s {
            "open" => Ok(DisputeStatus::Open),
            "won" => Ok(DisputeStatus::Won),
            "lost" => Ok(DisputeStatus::Lost),
            other => Err(crate::states::UnknownState::new("dispute", other)),
        }
    }

    pub fn is_closed(self) -> bool {
        self != DisputeStatus::Open
    }
}

/// Our status for a dispute's `status` word (Stripe's, which the sandbox
/// copies): an inquiry (`warning_*`) counts as open, and one closed without
/// a chargeback (`warning_closed`) as won. None for a word we do not know
/// (the event is acknowledged and not acted on).
pub(crate) fn dispute_status(word: &str) -> Option<DisputeStatus> {
    match word {
        "needs_response" | "under_review" | "warning_needs_response" | "warning_under_review" => {
            Some(DisputeStatus::Open)
        }
        "won" | "warning_closed" => Some(DisputeStatus::Won),
        "lost" => Some(DisputeStatus::Lost),
        _ => None,
    }
}

/// The dispute event types both adapters act on.
pub(crate) const DISPUTE_EVENTS: &[&str] = &[
    "charge.dispute.created",
    "charge.dispute.updated",
    "charge.dispute.closed",
];

/// A dispute as the provider reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispute {
    pub dispute_id: String,
    /// The disputed charge (None if the provider named none).
    pub intent_id: Option<String>,
    pub amount: Cents,
    pub currency: Option<String>,
    pub reason: Option<String>,
    pub status: DisputeStatus,
}

/// What a verified webhook tells us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookEvent {
    Charged {
        event_id: String,
        charge: Charge,
    },
    Refunded {
        event_id: String,
        refund: Refund,
    },
    /// A dispute opened or closed (`charge.dispute.created`, `.closed`).
    Disputed {
        event_id: String,
        dispute: Dispute,
    },
    /// A type we do not act on; acknowledged so the provider stops sending it.
    Other {
        event_id: String,
        kind: String,
    },
}

impl WebhookEvent {
    pub fn event_id(&self) -> &str {
        match self {
            WebhookEvent::Charged { event_id, .. }
            | WebhookEvent::Refunded { event_id, .. }
            | WebhookEvent::Disputed { event_id, .. }
            | WebhookEvent::Other { event_id, .. } => event_id,
        }
    }

    pub fn kind(&self) -> &str {
        match self {
            WebhookEvent::Charged { .. } => "charge",
            WebhookEvent::Refunded { .. } => "refund",
            WebhookEvent::Disputed { .. } => "dispute",
            WebhookEvent::Other { kind, .. } => kind,
        }
    }
}

/// `{base}/v1/payment_methods/{id}`, the id escaped as one path segment.
pub(crate) fn payment_method_url(base: &str, id: &str) -> Result<reqwest::Url, ProviderError> {
    resource_url(base, &["v1", "payment_methods", id])
}

/// `{base}/v1/payment_intents/{id}`, the id escaped as one path segment.
pub(crate) fn payment_intent_url(base: &str, id: &str) -> Result<reqwest::Url, ProviderError> {
    resource_url(base, &["v1", "payment_intents", id])
}

/// `{base}/v1/accounts/{id}`, the id escaped as one path segment.
pub(crate) fn account_url(base: &str, id: &str) -> Result<reqwest::Url, ProviderError> {
    resource_url(base, &["v1", "accounts", id])
}

/// `{base}/<segments>`, each escaped as one path segment (an id from a
/// fan cannot reach another resource).
fn resource_url(base: &str, segments: &[&str]) -> Result<reqwest::Url, ProviderError> {
    let mut url =
        reqwest::Url::parse(base).map_err(|e| ProviderError::Unknown(format!("bad provider base URL: {e}")))?;
    url.path_segments_mut()
        .map_err(|()| ProviderError::Unknown("bad provider base URL".into()))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

/// A webhook's envelope, as Stripe and the sandbox both send it:
/// `{"id", "type", "data": {"object": ...}}`; each adapter reads `object`
/// by `type`.
#[derive(Debug, Deserialize)]
pub(crate) struct Envelope {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub data: EnvelopeData,
}

#[derive(Debug, Deserialize)]
pub(crate) struct EnvelopeData {
    pub object: serde_json::Value,
}

/// One page of a Stripe-shaped list (the sandbox's lists have the same
/// shape): `{"data": [...], "has_more": bool}`, the next page asked for
/// with `starting_after=<the last entry's id>`.
#[derive(Debug, Deserialize)]
pub(crate) struct Page<T> {
    pub data: Vec<T>,
    #[serde(default)]
    pub has_more: bool,
}

/// A day's books are at most this many pages (of 100): a list that goes
/// on past it is answered as unknown rather than followed for ever.
const MAX_PAGES: usize = 10_000;

/// Follows a list's cursor to its last page. `fetch` asks for the page
/// after the given id (None: the first); `id` names an entry's id.
pub(crate) async fn all_pages<T, F, Fut>(mut fetch: F, id: fn(&T) -> &str) -> Result<Vec<T>, ProviderError>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<Page<T>, ProviderError>>,
{
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let page = fetch(after.take()).await?;
        after = page.data.last().map(|last| id(last).to_owned());
        all.extend(page.data);
        if !page.has_more || after.is_none() {
            return Ok(all);
        }
    }
    Err(ProviderError::Unknown(format!("a list longer than {MAX_PAGES} pages")))
}

/// `{base}{path}` with the query's pairs.
pub(crate) fn list_url(base: &str, path: &str, query: &[(&str, String)]) -> Result<reqwest::Url, ProviderError> {
    let mut url = reqwest::Url::parse(&format!("{base}{path}"))
        .map_err(|e| ProviderError::Unknown(format!("bad provider base URL: {e}")))?;
    url.query_pairs_mut()
        .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
    Ok(url)
}

/// A window as list filters (Stripe's `created[gte]` and `created[lt]`,
/// which the sandbox reads too), 100 a page, after the cursor.
pub(crate) fn window_query(window: Window, after: Option<String>) -> Vec<(&'static str, String)> {
    let mut query = vec![
        ("created[gte]", window.since_unix.to_string()),
        ("created[lt]", window.until_unix.to_string()),
        ("limit", "100".to_owned()),
    ];
    query.extend(after.map(|a| ("starting_after", a)));
    query
}

/// A payment method as both the sandbox and Stripe describe one: only the
/// card's fingerprint matters here.
#[derive(Debug, Deserialize)]
pub(crate) struct PaymentMethod {
    #[serde(default)]
    pub card: Option<PaymentMethodCard>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct PaymentMethodCard {
    #[serde(default)]
    pub fingerprint: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// No answer (timeout, connection refused, 5xx): the charge may or may
    /// not have happened. Only asking again with the same key tells.
    #[error("payment provider did not answer: {0}")]
    Unknown(String),
    /// The provider refused the request itself (not a card decline).
    #[error("payment provider refused the request: {code}")]
    Rejected { code: String, message: String },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("the webhook's signature header is missing or malformed")]
    MalformedSignature,
    #[error("the webhook's signature does not match")]
    BadSignature,
    #[error("the webhook was signed too long ago (or in the future)")]
    StaleTimestamp,
    #[error("the webhook's body is not an event we understand")]
    MalformedBody,
}

impl From<SignatureError> for WebhookError {
    fn from(e: SignatureError) -> Self {
        match e {
            SignatureError::Malformed => WebhookError::MalformedSignature,
            SignatureError::Mismatch => WebhookError::BadSignature,
            SignatureError::Stale => WebhookError::StaleTimestamp,
        }
    }
}

/// A card processor.
pub trait PaymentProvider: Send + Sync {
    /// The name stored on orders (`sandbox`, `stripe`).
    fn name(&self) -> &'static str;

    /// The header its webhooks carry their signature in.
    fn signature_header(&self) -> &'static str;

    /// Creates, confirms and captures; or, for a key seen before, returns the
    /// first charge made with it.
    fn charge<'a>(&'a self, request: &'a ChargeRequest) -> BoxFuture<'a, Result<Charge, ProviderError>>;

    /// The charge as the provider sees it now. A pending charge is asked
    /// about this way, not by creating it again: a create retried with the
    /// same key answers with its first answer, which stays "pending".
    fn retrieve<'a>(&'a self, intent_id: &'a str) -> BoxFuture<'a, Result<Charge, ProviderError>>;

    fn refund<'a>(&'a self, request: &'a RefundRequest) -> BoxFuture<'a, Result<Refund, ProviderError>>;

    /// Cancels a charge that has taken no money yet (the fan never
    /// answered 3-D Secure), so that it never can: answers with the charge
    /// as it is now. Refused (`Rejected`) if it already succeeded or cannot
    /// be stopped (processing): then it is retrieved and taken as it is.
    fn cancel<'a>(
        &'a self,
        intent_id: &'a str,
        idempotency_key: &'a str,
    ) -> BoxFuture<'a, Result<Charge, ProviderError>>;

    /// The fingerprint of the card behind a payment method: the same card
    /// gives the same fingerprint whichever account uses it (the limit on
    /// seats per fan holds per card too). None if the provider has none
    /// for it (not a card).
    fn card_fingerprint<'a>(&'a self, payment_method: &'a str) -> BoxFuture<'a, Result<Option<String>, ProviderError>>;

    /// Sends a payout to a seller's connected account. `Rejected` when the
    /// provider refuses it (the account cannot receive money): nothing
    /// moved, and a new attempt needs a new key.
    fn transfer<'a>(&'a self, request: &'a TransferRequest) -> BoxFuture<'a, Result<Transfer, ProviderError>>;

    /// A seller's connected account; `Rejected` if the provider has none
    /// by that id.
    fn payout_account<'a>(&'a self, account_id: &'a str) -> BoxFuture<'a, Result<PayoutAccount, ProviderError>>;

    /// Every charge the provider holds for the order (by the order id each
    /// carries), whatever its state. Reconciliation asks this before it
    /// creates a charge again for an order whose first try got no answer,
    /// so a charge made then is found rather than made twice (an
    /// idempotency key does not live for ever at the provider).
    fn charges_for_order<'a>(&'a self, order: OrderId) -> BoxFuture<'a, Result<Vec<Charge>, ProviderError>>;

    /// The provider's charges created in the window, all pages (the daily
    /// comparison of the books, `books.rs`).
    fn list_charges<'a>(&'a self, window: Window) -> BoxFuture<'a, Result<Vec<Charge>, ProviderError>>;

    /// The provider's refunds created in the window that took money back
    /// (succeeded), all pages.
    fn list_refunds<'a>(&'a self, window: Window) -> BoxFuture<'a, Result<Vec<Refund>, ProviderError>>;

    /// Checks a webhook's signature and freshness, then parses it.
    /// `signature` is the provider's signature header; `now_unix` the clock.
    fn verify_webhook(&self, signature: Option<&str>, body: &[u8], now_unix: i64)
    -> Result<WebhookEvent, WebhookError>;
}

/// The current span's trace context as headers (`traceparent`), sent with
/// each call so the provider's spans join the order's trace.
pub fn trace_context() -> reqwest::header::HeaderMap {
    let mut headers = reqwest::header::HeaderMap::new();
    usher_shared::telemetry::inject(&tracing::Span::current(), &mut headers);
    headers
}
