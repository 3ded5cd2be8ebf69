//! The adapter for `payment-sandbox`, the stand-in card processor of the
//! local stack and the tests (src/bin/payment-sandbox). JSON over HTTP:
//! POST /v1/payment_intents (create + confirm + capture, with the
//! `return_url` its 3-D Secure page sends the fan back to), GET
//! /v1/payment_intents/{id}, POST /v1/payment_intents/{id}/refunds and
//! /cancel,
//! GET /v1/payment_methods/{id} (the
//! card's fingerprint), webhooks (charges, refunds, disputes) signed as in `signature.rs` under the
//! `Sandbox-Signature` header.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use crate::checkout::provider::{
    BoxFuture, Charge, ChargeRequest, ChargeStatus, Envelope, Page, PaymentMethod, PaymentProvider, PayoutAccount,
    ProviderError, Refund, RefundRequest, Transfer, TransferRequest, WebhookError, WebhookEvent, Window, account_url,
    all_pages, list_url, payment_intent_url, payment_method_url, trace_context, window_query,
};
use crate::checkout::provider::{DISPUTE_EVENTS, Dispute, dispute_status};
use crate::config::PaymentsConfig;
use crate::ids::{Cents, OrderId};
use crate::signature;

pub const SIGNATURE_HEADER: &str = "sandbox-signature";

/// A card number the sandbox knows, and the payment-method token its
/// client-side form turns it into (as a real processor's does: the number
/// never reaches Usher). The fan pages list these in the local stack.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct TestCard {
    pub number: &'static str,
    pub token: &'static str,
    pub outcome: &'static str,
}

pub const TEST_CARDS: &[TestCard] = &[
    TestCard {
        number: "4242 4242 4242 4242",
        token: "pm_card_ok",
        outcome: "succeeds",
    },
    TestCard {
        number: "4000 0000 0000 0002",
        token: "pm_card_declined",
        outcome: "is declined",
    },
    TestCard {
        number: "4000 0000 0000 0077",
        token: "pm_card_slow",
        outcome: "succeeds after a pause",
    },
    TestCard {
        number: "4000 0000 0000 0119",
        token: "pm_card_timeout",
        outcome: "times out, then succeeds in the background",
    },
    TestCard {
        number: "4000 0027 6000 3184",
        token: "pm_card_requires_action",
        outcome: "asks for 3-D Secure (the sandbox's page: Complete or Fail)",
    },
    TestCard {
        number: "4000 0025 0000 3155",
        token: "pm_card_3ds_over_10000",
        outcome: "asks for 3-D Secure over $100",
    },
    TestCard {
        number: "4000 0082 6000 3178",
        token: "pm_card_3ds_fails",
        outcome: "asks for 3-D Secure, which the bank refuses",
    },
    TestCard {
        number: "4000 0000 0000 3055",
        token: "pm_card_processing",
        outcome: "processes for a moment, then succeeds",
    },
];

pub struct SandboxProvider {
    http: reqwest::Client,
    base: String,
    api_key: usher_shared::config::Secret,
    webhook_secret: Vec<u8>,
    tolerance_secs: i64,
}

impl SandboxProvider {
    pub fn new(config: &PaymentsConfig) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.request_timeout_ms))
            .connect_timeout(Duration::from_millis(config.request_timeout_ms.min(2_000)))
            .build()?;
        Ok(SandboxProvider {
            http,
            base: config.base_url.as_str().trim_end_matches('/').to_owned(),
            api_key: config.api_key.clone(),
            webhook_secret: config.webhook_secret.expose().as_bytes().to_vec(),
            tolerance_secs: config.webhook_tolerance_secs as i64,
        })
    }

    async fn get<T: for<'de> Deserialize<'de>>(&self, url: reqwest::Url) -> Result<T, ProviderError> {
        let response = self
            .http
            .get(url)
            .bearer_auth(self.api_key.expose())
            .headers(trace_context())
            .send()
            .await
            .map_err(|e| ProviderError::Unknown(without_url(e)))?;
        read_answer(response).await
    }

    async fn post<T: for<'de> Deserialize<'de>>(
        &self,
        path: &str,
        key: &str,
        body: serde_json::Value,
    ) -> Result<T, ProviderError> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(self.api_key.expose())
            .header("idempotency-key", key)
            .json(&body)
            .headers(trace_context())
            .send()
            .await
            .map_err(|e| ProviderError::Unknown(without_url(e)))?;
        read_answer(response).await
    }
}

/// A sandbox answer: the body on 2xx; its refusal on another 4xx; on a
/// 5xx or 429 we cannot know what happened.
async fn read_answer<T: for<'de> Deserialize<'de>>(response: reqwest::Response) -> Result<T, ProviderError> {
    let status = response.status();
    if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        return Err(ProviderError::Unknown(format!("status {status}")));
    }
    if !status.is_success() {
        let e: ApiErrorBody = response.json().await.unwrap_or_default();
        return Err(ProviderError::Rejected {
            code: e.error.code,
            message: e.error.message,
        });
    }
    response
        .json()
        .await
        .map_err(|e| ProviderError::Unknown(format!("unreadable answer: {}", without_url(e))))
}

/// reqwest's errors name the URL; ours carries no secrets, but keep logs short.
fn without_url(e: reqwest::Error) -> String {
    e.without_url().to_string()
}

#[derive(Debug, Default, Deserialize)]
struct ApiErrorBody {
    #[serde(default)]
    error: ApiErrorDetail,
}

#[derive(Debug, Default, Deserialize)]
struct ApiErrorDetail {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

#[derive(Debug, Deserialize)]
struct Intent {
    id: String,
    amount_cents: i64,
    status: String,
    #[serde(default)]
    failure_code: Option<String>,
    #[serde(default)]
    amount_refunded_cents: i64,
    #[serde(default)]
    metadata: HashMap<String, String>,
    #[serde(default)]
    next_action: Option<NextAction>,
}

/// Stripe's shape: `{"type": "redirect_to_url", "redirect_to_url": {"url": ..}}`.
#[derive(Debug, Deserialize)]
struct NextAction {
    #[serde(default)]
    redirect_to_url: Option<RedirectToUrl>,
}

#[derive(Debug, Deserialize)]
struct RedirectToUrl {
    url: String,
}

impl From<Intent> for Charge {
    fn from(i: Intent) -> Charge {
        let status = match i.status.as_str() {
            "succeeded" => ChargeStatus::Succeeded,
            // Waiting for the fan's authentication, or the processor: it
            // may still succeed.
            "requires_action" | "processing" => ChargeStatus::Pending {
                redirect_url: i.next_action.and_then(|a| a.redirect_to_url).map(|r| r.url),
                status: i.status,
            },
            _ => ChargeStatus::Declined {
                code: i.failure_code.unwrap_or_else(|| i.status.clone()),
            },
        };
        Charge {
            intent_id: i.id,
            order: i
                .metadata
                .get("order_id")
                .and_then(|s| uuid::Uuid::parse_str(s).ok())
                .map(OrderId),
            amount: Cents(i.amount_cents),
            refunded: Cents(i.amount_refunded_cents),
            status,
        }
    }
}

#[derive(Debug, Deserialize)]
struct RefundBody {
    id: String,
    payment_intent: String,
    amount_cents: i64,
    #[serde(default = "succeeded")]
    status: String,
}

#[derive(Debug, Deserialize)]
struct TransferBody {
    id: String,
    amount_cents: i64,
}

#[derive(Debug, Deserialize)]
struct AccountBody {
    id: String,
    #[serde(default)]
    payouts_enabled: bool,
}

fn succeeded() -> String {
    "succeeded".to_owned()
}

impl From<RefundBody> for Refund {
    fn from(r: RefundBody) -> Refund {
        Refund {
            refund_id: r.id,
            intent_id: r.payment_intent,
            amount: Cents(r.amount_cents),
        }
    }
}

/// The sandbox's dispute, Stripe's shape with the sandbox's `amount_cents`.
#[derive(Debug, Deserialize)]
struct DisputeBody {
    id: String,
    #[serde(default)]
    payment_intent: Option<String>,
    amount_cents: i64,
    #[serde(default)]
    currency: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    status: String,
}

impl PaymentProvider for SandboxProvider {
    fn name(&self) -> &'static str {
        "sandbox"
    }

    fn signature_header(&self) -> &'static str {
        SIGNATURE_HEADER
    }

    fn charge<'a>(&'a self, r: &'a ChargeRequest) -> BoxFuture<'a, Result<Charge, ProviderError>> {
        Box::pin(async move {
            let mut body = json!({
                "amount_cents": r.amount.0,
                "currency": r.currency,
                "payment_method": r.payment_method,
                "metadata": { "order_id": r.order.to_string() },
            });
            if let Some(url) = &r.return_url {
                body["return_url"] = json!(url);
            }
            let intent: Intent = self.post("/v1/payment_intents", &r.idempotency_key, body).await?;
            Ok(intent.into())
        })
    }

    fn retrieve<'a>(&'a self, intent_id: &'a str) -> BoxFuture<'a, Result<Charge, ProviderError>> {
        Box::pin(async move {
            let intent: Intent = self.get(payment_intent_url(&self.base, intent_id)?).await?;
            Ok(intent.into())
        })
    }

    fn refund<'a>(&'a self, r: &'a RefundRequest) -> BoxFuture<'a, Result<Refund, ProviderError>> {
        Box::pin(async move {
            let path = format!("/v1/payment_intents/{}/refunds", r.intent_id);
            let refund: RefundBody = self
                .post(&path, &r.idempotency_key, json!({ "amount_cents": r.amount.0 }))
                .await?;
            Ok(refund.into())
        })
    }

    fn cancel<'a>(&'a self, intent_id: &'a str, key: &'a str) -> BoxFuture<'a, Result<Charge, ProviderError>> {
        Box::pin(async move {
            let mut url = payment_intent_url(&self.base, intent_id)?;
            url.path_segments_mut()
                .map_err(|()| ProviderError::Unknown("bad provider base URL".into()))?
                .push("cancel");
            let response = self
                .http
                .post(url)
                .bearer_auth(self.api_key.expose())
                .header("idempotency-key", key)
                .json(&json!({ "cancellation_reason": "abandoned" }))
                .headers(trace_context())
                .send()
                .await
                .map_err(|e| ProviderError::Unknown(without_url(e)))?;
            let intent: Intent = read_answer(response).await?;
            Ok(intent.into())
        })
    }

    fn card_fingerprint<'a>(&'a self, pm: &'a str) -> BoxFuture<'a, Result<Option<String>, ProviderError>> {
        Box::pin(async move {
            let method: PaymentMethod = self.get(payment_method_url(&self.base, pm)?).await?;
            Ok(method.card.and_then(|c| c.fingerprint))
        })
    }

    fn transfer<'a>(&'a self, r: &'a TransferRequest) -> BoxFuture<'a, Result<Transfer, ProviderError>> {
        Box::pin(async move {
            let body = json!({
                "amount_cents": r.amount.0,
                "currency": r.currency,
                "destination": r.destination,
                "transfer_group": r.transfer_group,
            });
            let t: TransferBody = self.post("/v1/transfers", &r.idempotency_key, body).await?;
            Ok(Transfer {
                transfer_id: t.id,
                amount: Cents(t.amount_cents),
            })
        })
    }

    fn payout_account<'a>(&'a self, account_id: &'a str) -> BoxFuture<'a, Result<PayoutAccount, ProviderError>> {
        Box::pin(async move {
            let a: AccountBody = self.get(account_url(&self.base, account_id)?).await?;
            Ok(PayoutAccount {
                account_id: a.id,
                payouts_enabled: a.payouts_enabled,
            })
        })
    }

    fn charges_for_order<'a>(&'a self, order: OrderId) -> BoxFuture<'a, Result<Vec<Charge>, ProviderError>> {
        Box::pin(async move {
            let intents = all_pages(
                |after| async move {
                    let mut query = vec![("order_id", order.to_string()), ("limit", "100".to_owned())];
                    query.extend(after.map(|a| ("starting_after", a)));
                    self.get::<Page<Intent>>(list_url(&self.base, "/v1/payment_intents", &query)?)
                        .await
                },
                |i: &Intent| &i.id,
            )
            .await?;
            Ok(intents.into_iter().map(Charge::from).collect())
        })
    }

    fn list_charges<'a>(&'a self, window: Window) -> BoxFuture<'a, Result<Vec<Charge>, ProviderError>> {
        Box::pin(async move {
            let intents = all_pages(
                |after| async move {
                    let query = window_query(window, after);
                    self.get::<Page<Intent>>(list_url(&self.base, "/v1/payment_intents", &query)?)
                        .await
                },
                |i: &Intent| &i.id,
            )
            .await?;
            Ok(intents.into_iter().map(Charge::from).collect())
        })
    }

    fn list_refunds<'a>(&'a self, window: Window) -> BoxFuture<'a, Result<Vec<Refund>, ProviderError>> {
        Box::pin(async move {
            let refunds = all_pages(
                |after| async move {
                    let query = window_query(window, after);
                    self.get::<Page<RefundBody>>(list_url(&self.base, "/v1/refunds", &query)?)
                        .await
                },
                |r: &RefundBody| &r.id,
            )
            .await?;
            Ok(refunds
                .into_iter()
                .filter(|r| r.status == "succeeded")
                .map(Refund::from)
                .collect())
        })
    }

    fn verify_webhook(
        &self,
        signature: Option<&str>,
        body: &[u8],
        now_unix: i64,
    ) -> Result<WebhookEvent, WebhookError> {
        signature::verify(signature, body, &self.webhook_secret, self.tolerance_secs, now_unix)?;
        let event: Envelope = serde_json::from_slice(body).map_err(|_| WebhookError::MalformedBody)?;
        Ok(match event.kind.as_str() {
            "payment_intent.succeeded" | "payment_intent.payment_failed" | "payment_intent.canceled" => {
                let intent: Intent =
                    serde_json::from_value(event.data.object).map_err(|_| WebhookError::MalformedBody)?;
                WebhookEvent::Charged {
                    event_id: event.id,
                    charge: intent.into(),
                }
            }
            "refund.succeeded" => {
                let refund: RefundBody =
                    serde_json::from_value(event.data.object).map_err(|_| WebhookError::MalformedBody)?;
                WebhookEvent::Refunded {
                    event_id: event.id,
                    refund: refund.into(),
                }
            }
            kind if DISPUTE_EVENTS.contains(&kind) => {
                let d: DisputeBody =
                    serde_json::from_value(event.data.object).map_err(|_| WebhookError::MalformedBody)?;
                let Some(status) = dispute_status(&d.status) else {
                    return Ok(WebhookEvent::Other {
                        event_id: event.id,
                        kind: event.kind,
                    });
                };
                WebhookEvent::Disputed {
                    event_id: event.id,
                    dispute: Dispute {
                        dispute_id: d.id,
                        intent_id: d.payment_intent,
                        amount: Cents(d.amount_cents),
                        currency: d.currency,
                        reason: d.reason,
                        status,
                    },
                }
            }
            _ => WebhookEvent::Other {
                event_id: event.id,
                kind: event.kind,
            },
        })
    }
}
