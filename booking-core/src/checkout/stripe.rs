//! The adapter for Stripe's PaymentIntents API: form-encoded requests with
//! `Idempotency-Key` headers, a PaymentIntent created and confirmed in one
//! call (`confirm=true`, card only, with the `return_url` 3-D Secure sends
//! the fan back to), cancelled through `/v1/payment_intents/{id}/cancel`,
//! refunds through `/v1/refunds`, a card's fingerprint from
//! `GET /v1/payment_methods/{id}`, and webhooks verified by the
//! `Stripe-Signature` scheme (the same `t=..,v1=..` HMAC as
//! `crate::signature`). Card declines come back as HTTP 402 with the
//! PaymentIntent inside the error; they are declines, not failures of the
//! call. Every PaymentIntent status maps to one charge status
//! (`PaymentIntent::status`): an intent that still needs the fan
//! (`requires_action`: 3-D Secure, with the page to send them to) or the
//! processor is pending, not declined: it may succeed later, by webhook or
//! when reconciliation retrieves it (`GET /v1/payment_intents/{id}`).
//! Disputes arrive as `charge.dispute.created` / `.updated` / `.closed`
//! events carrying the Dispute object (status `won` / `lost` once closed).

use std::time::Duration;

use serde::Deserialize;

use crate::checkout::provider::{
    BoxFuture, Charge, ChargeRequest, ChargeStatus, Envelope, Page, PaymentMethod, PaymentProvider, PayoutAccount,
    ProviderError, Refund, RefundRequest, Transfer, TransferRequest, WebhookError, WebhookEvent, Window, account_url,
    all_pages, list_url, payment_intent_url, payment_method_url, trace_context, window_query,
};
use crate::checkout::provider::{DISPUTE_EVENTS, Dispute, dispute_status};
use crate::config::PaymentsConfig;
use crate::ids::{Cents, OrderId};
use crate::signature;

pub const SIGNATURE_HEADER: &str = "stripe-signature";
/// The API version these shapes were written against.
const API_VERSION: &str = "2024-06-20";

pub struct StripeProvider {
    http: reqwest::Client,
    base: String,
    api_key: usher_shared::config::Secret,
    webhook_secret: Vec<u8>,
    tolerance_secs: i64,
}

#[derive(Debug, Deserialize)]
struct PaymentIntent {
    id: String,
    amount: i64,
    status: String,
    #[serde(default)]
    last_payment_error: Option<StripeError>,
    #[serde(default)]
    metadata: std::collections::HashMap<String, String>,
    #[serde(default)]
    next_action: Option<NextAction>,
}

/// `next_action` of a `requires_action` intent. With a `return_url` on the
/// confirm, Stripe asks for `redirect_to_url`; other kinds (`use_stripe_sdk`)
/// need Stripe.js in the page and give no URL here.
#[derive(Debug, Deserialize)]
struct NextAction {
    #[serde(default)]
    redirect_to_url: Option<RedirectToUrl>,
}

#[derive(Debug, Deserialize)]
struct RedirectToUrl {
    url: String,
}

#[derive(Debug, Default, Deserialize)]
struct StripeError {
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    decline_code: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    payment_intent: Option<Box<PaymentIntent>>,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: StripeError,
}

#[derive(Debug, Deserialize)]
struct StripeRefund {
    id: String,
    amount: i64,
    payment_intent: String,
    status: String,
}

/// Stripe's Dispute object (`charge.dispute.*` events): `payment_intent`
/// names the disputed PaymentIntent (null for a charge made without one).
#[derive(Debug, Deserialize)]
struct StripeDispute {
    id: String,
    amount: i64,
    #[serde(default)]
    payment_intent: Option<String>,
    #[serde(default)]
    currency: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    status: String,
}

#[derive(Debug, Deserialize)]
struct StripeTransfer {
    id: String,
    amount: i64,
}

#[derive(Debug, Deserialize)]
struct StripeAccount {
    id: String,
    #[serde(default)]
    payouts_enabled: bool,
}

impl PaymentIntent {
    /// Stripe's status as ours:
    ///
    ///   succeeded                 -> Succeeded (captured: the money is taken)
    ///   requires_payment_method   -> Declined (refused, or 3-D Secure failed:
    ///                                a new payment method is needed)
    ///   canceled                  -> Declined (nothing was or will be taken)
    ///   requires_action           -> Pending, with the page the fan must visit
    ///   processing                -> Pending (the processor decides later)
    ///   requires_confirmation     -> Pending (not confirmed: nothing taken yet)
    ///   requires_capture          -> Pending (authorised, not captured; we ask
    ///                                for automatic capture, so this is brief,
    ///                                and cancelling releases it)
    ///   anything newer            -> Pending: it may still take the money, so
    ///                                calling it a decline could leave a later
    ///                                success without its tickets.
    fn status(&self) -> ChargeStatus {
        match self.status.as_str() {
            "succeeded" => ChargeStatus::Succeeded,
            "requires_payment_method" | "canceled" => ChargeStatus::Declined {
                code: self
                    .last_payment_error
                    .as_ref()
                    .and_then(|e| e.decline_code.clone().or_else(|| e.code.clone()))
                    .unwrap_or_else(|| self.status.clone()),
            },
            "requires_action" => ChargeStatus::Pending {
                status: self.status.clone(),
                redirect_url: self
                    .next_action
                    .as_ref()
                    .and_then(|a| a.redirect_to_url.as_ref())
                    .map(|r| r.url.clone()),
            },
            other => ChargeStatus::pending(other),
        }
    }

    fn into_charge(self) -> Charge {
        let status = self.status();
        Charge {
            order: self
                .metadata
                .get("order_id")
                .and_then(|s| uuid::Uuid::parse_str(s).ok())
                .map(OrderId),
            amount: Cents(self.amount),
            refunded: Cents(0),
            intent_id: self.id,
            status,
        }
    }
}

impl StripeProvider {
    pub fn new(config: &PaymentsConfig) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.request_timeout_ms))
            .build()?;
        Ok(StripeProvider {
            http,
            base: config.base_url.as_str().trim_end_matches('/').to_owned(),
            api_key: config.api_key.clone(),
            webhook_secret: config.webhook_secret.expose().as_bytes().to_vec(),
            tolerance_secs: config.webhook_tolerance_secs as i64,
        })
    }

    /// POSTs a form; Ok(body) on 2xx, or the parsed Stripe error.
    /// A failed call's status and Stripe's error.
    async fn post(
        &self,
        url: impl reqwest::IntoUrl,
        key: &str,
        form: &[(String, String)],
    ) -> Result<Result<Vec<u8>, (u16, StripeError)>, ProviderError> {
        let response = self
            .http
            .post(url)
            .bearer_auth(self.api_key.expose())
            .header("idempotency-key", key)
            .header("stripe-version", API_VERSION)
            .form(form)
            .headers(trace_context())
            .send()
            .await
            .map_err(|e| ProviderError::Unknown(e.without_url().to_string()))?;
        let status = response.status();
        // 409 is Stripe's "a request with this key is still in progress".
        if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 409 {
            return Err(ProviderError::Unknown(format!("status {status}")));
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| ProviderError::Unknown(e.without_url().to_string()))?;
        if status.is_success() {
            return Ok(Ok(bytes.to_vec()));
        }
        let parsed: ErrorBody = serde_json::from_slice(&bytes).unwrap_or(ErrorBody {
            error: StripeError::default(),
        });
        Ok(Err((status.as_u16(), parsed.error)))
    }

    /// GETs a resource: its body on 2xx, Stripe's refusal as `Rejected`.
    async fn get(&self, url: reqwest::Url) -> Result<Vec<u8>, ProviderError> {
        let response = self
            .http
            .get(url)
            .bearer_auth(self.api_key.expose())
            .header("stripe-version", API_VERSION)
            .headers(trace_context())
            .send()
            .await
            .map_err(|e| ProviderError::Unknown(e.without_url().to_string()))?;
        let status = response.status();
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(ProviderError::Unknown(format!("status {status}")));
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| ProviderError::Unknown(e.without_url().to_string()))?;
        if status.is_success() {
            return Ok(bytes.to_vec());
        }
        // e.g. 404 resource_missing for something Stripe does not know.
        let e = serde_json::from_slice::<ErrorBody>(&bytes)
            .map(|b| b.error)
            .unwrap_or_default();
        Err(ProviderError::Rejected {
            code: e.code.unwrap_or(e.kind),
            message: e.message.unwrap_or_default(),
        })
    }
}

fn unreadable(e: serde_json::Error) -> ProviderError {
    ProviderError::Unknown(format!("unreadable answer: {e}"))
}

impl PaymentProvider for StripeProvider {
    fn name(&self) -> &'static str {
        "stripe"
    }

    fn signature_header(&self) -> &'static str {
        SIGNATURE_HEADER
    }

    fn charge<'a>(&'a self, r: &'a ChargeRequest) -> BoxFuture<'a, Result<Charge, ProviderError>> {
        Box::pin(async move {
            let form = vec![
                ("amount".to_owned(), r.amount.0.to_string()),
                ("currency".to_owned(), r.currency.clone()),
                ("payment_method".to_owned(), r.payment_method.clone()),
                ("confirm".to_owned(), "true".to_owned()),
                ("payment_method_types[]".to_owned(), "card".to_owned()),
                ("metadata[order_id]".to_owned(), r.order.to_string()),
            ];
            let mut form = form;
            if let Some(url) = &r.return_url {
                form.push(("return_url".to_owned(), url.clone()));
            }
            match self
                .post(format!("{}/v1/payment_intents", self.base), &r.idempotency_key, &form)
                .await?
            {
                Ok(body) => Ok(serde_json::from_slice::<PaymentIntent>(&body)
                    .map_err(unreadable)?
                    .into_charge()),
                // A decline: the intent rides in the error.
                Err((402, e)) if e.kind == "card_error" => match e.payment_intent {
                    Some(pi) => {
                        let mut charge = pi.into_charge();
                        if let Some(code) = e.decline_code.or(e.code) {
                            charge.status = ChargeStatus::Declined { code };
                        }
                        Ok(charge)
                    }
                    None => Err(ProviderError::Rejected {
                        code: e.code.unwrap_or_else(|| "card_error".into()),
                        message: e.message.unwrap_or_default(),
                    }),
                },
                Err((_, e)) => Err(ProviderError::Rejected {
                    code: e.code.unwrap_or(e.kind),
                    message: e.message.unwrap_or_default(),
                }),
            }
        })
    }

    fn refund<'a>(&'a self, r: &'a RefundRequest) -> BoxFuture<'a, Result<Refund, ProviderError>> {
        Box::pin(async move {
            let form = vec![
                ("payment_intent".to_owned(), r.intent_id.clone()),
                ("amount".to_owned(), r.amount.0.to_string()),
            ];
            match self
                .post(format!("{}/v1/refunds", self.base), &r.idempotency_key, &form)
                .await?
            {
                Ok(body) => {
                    let refund: StripeRefund = serde_json::from_slice(&body).map_err(unreadable)?;
                    if refund.status == "failed" || refund.status == "canceled" {
                        return Err(ProviderError::Rejected {
                            code: format!("refund_{}", refund.status),
                            message: String::new(),
                        });
                    }
                    // "pending" refunds complete at Stripe; the money is committed.
                    Ok(Refund {
                        refund_id: refund.id,
                        intent_id: refund.payment_intent,
                        amount: Cents(refund.amount),
                    })
                }
                Err((_, e)) => Err(ProviderError::Rejected {
                    code: e.code.unwrap_or(e.kind),
                    message: e.message.unwrap_or_default(),
                }),
            }
        })
    }

    fn cancel<'a>(&'a self, intent_id: &'a str, key: &'a str) -> BoxFuture<'a, Result<Charge, ProviderError>> {
        Box::pin(async move {
            let form = vec![("cancellation_reason".to_owned(), "abandoned".to_owned())];
            // The id is one path segment, escaped as retrieve's is.
            let mut url = payment_intent_url(&self.base, intent_id)?;
            url.path_segments_mut()
                .map_err(|()| ProviderError::Unknown("bad provider base URL".into()))?
                .push("cancel");
            match self.post(url, key, &form).await? {
                Ok(body) => Ok(serde_json::from_slice::<PaymentIntent>(&body)
                    .map_err(unreadable)?
                    .into_charge()),
                // 400 payment_intent_unexpected_state: it succeeded, or is
                // processing, and cannot be cancelled.
                Err((_, e)) => Err(ProviderError::Rejected {
                    code: e.code.unwrap_or(e.kind),
                    message: e.message.unwrap_or_default(),
                }),
            }
        })
    }

    fn retrieve<'a>(&'a self, intent_id: &'a str) -> BoxFuture<'a, Result<Charge, ProviderError>> {
        Box::pin(async move {
            let body = self.get(payment_intent_url(&self.base, intent_id)?).await?;
            Ok(serde_json::from_slice::<PaymentIntent>(&body)
                .map_err(unreadable)?
                .into_charge())
        })
    }

    fn card_fingerprint<'a>(&'a self, pm: &'a str) -> BoxFuture<'a, Result<Option<String>, ProviderError>> {
        Box::pin(async move {
            let bytes = self.get(payment_method_url(&self.base, pm)?).await?;
            // Cards have a fingerprint; other kinds of payment method do not.
            let method: PaymentMethod = serde_json::from_slice(&bytes).map_err(unreadable)?;
            Ok(method.card.and_then(|c| c.fingerprint))
        })
    }

    fn transfer<'a>(&'a self, r: &'a TransferRequest) -> BoxFuture<'a, Result<Transfer, ProviderError>> {
        Box::pin(async move {
            let form = vec![
                ("amount".to_owned(), r.amount.0.to_string()),
                ("currency".to_owned(), r.currency.clone()),
                ("destination".to_owned(), r.destination.clone()),
                ("transfer_group".to_owned(), r.transfer_group.clone()),
            ];
            match self
                .post(format!("{}/v1/transfers", self.base), &r.idempotency_key, &form)
                .await?
            {
                Ok(body) => {
                    let t: StripeTransfer = serde_json::from_slice(&body).map_err(unreadable)?;
                    Ok(Transfer {
                        transfer_id: t.id,
                        amount: Cents(t.amount),
                    })
                }
                Err((_, e)) => Err(ProviderError::Rejected {
                    code: e.code.unwrap_or(e.kind),
                    message: e.message.unwrap_or_default(),
                }),
            }
        })
    }

    fn payout_account<'a>(&'a self, account_id: &'a str) -> BoxFuture<'a, Result<PayoutAccount, ProviderError>> {
        Box::pin(async move {
            let body = self.get(account_url(&self.base, account_id)?).await?;
            let a: StripeAccount = serde_json::from_slice(&body).map_err(unreadable)?;
            Ok(PayoutAccount {
                account_id: a.id,
                payouts_enabled: a.payouts_enabled,
            })
        })
    }

    fn charges_for_order<'a>(&'a self, order: OrderId) -> BoxFuture<'a, Result<Vec<Charge>, ProviderError>> {
        Box::pin(async move {
            // The search API (Stripe indexes metadata within about a
            // minute): an order has a handful of intents, one page.
            let query = [
                ("query", format!("metadata['order_id']:'{order}'")),
                ("limit", "100".to_owned()),
            ];
            let body = self
                .get(list_url(&self.base, "/v1/payment_intents/search", &query)?)
                .await?;
            let page: Page<PaymentIntent> = serde_json::from_slice(&body).map_err(unreadable)?;
            Ok(page.data.into_iter().map(PaymentIntent::into_charge).collect())
        })
    }

    fn list_charges<'a>(&'a self, window: Window) -> BoxFuture<'a, Result<Vec<Charge>, ProviderError>> {
        Box::pin(async move {
            let intents = all_pages(
                |after| async move {
                    let body = self
                        .get(list_url(
                            &self.base,
                            "/v1/payment_intents",
                            &window_query(window, after),
                        )?)
                        .await?;
                    serde_json::from_slice::<Page<PaymentIntent>>(&body).map_err(unreadable)
                },
                |pi: &PaymentIntent| &pi.id,
            )
            .await?;
            Ok(intents.into_iter().map(PaymentIntent::into_charge).collect())
        })
    }

    fn list_refunds<'a>(&'a self, window: Window) -> BoxFuture<'a, Result<Vec<Refund>, ProviderError>> {
        Box::pin(async move {
            let refunds = all_pages(
                |after| async move {
                    let body = self
                        .get(list_url(&self.base, "/v1/refunds", &window_query(window, after))?)
                        .await?;
                    serde_json::from_slice::<Page<StripeRefund>>(&body).map_err(unreadable)
                },
                |r: &StripeRefund| &r.id,
            )
            .await?;
            // A pending refund completes at Stripe (as `refund` takes it).
            Ok(refunds
                .into_iter()
                .filter(|r| r.status == "succeeded" || r.status == "pending")
                .map(|r| Refund {
                    refund_id: r.id,
                    intent_id: r.payment_intent,
                    amount: Cents(r.amount),
                })
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
                let pi: PaymentIntent =
                    serde_json::from_value(event.data.object).map_err(|_| WebhookError::MalformedBody)?;
                WebhookEvent::Charged {
                    event_id: event.id,
                    charge: pi.into_charge(),
                }
            }
            "refund.created" | "refund.updated" => {
                let r: StripeRefund =
                    serde_json::from_value(event.data.object).map_err(|_| WebhookError::MalformedBody)?;
                if r.status != "succeeded" {
                    return Ok(WebhookEvent::Other {
                        event_id: event.id,
                        kind: event.kind,
                    });
                }
                WebhookEvent::Refunded {
                    event_id: event.id,
                    refund: Refund {
                        refund_id: r.id,
                        intent_id: r.payment_intent,
                        amount: Cents(r.amount),
                    },
                }
            }
            kind if DISPUTE_EVENTS.contains(&kind) => {
                let d: StripeDispute =
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
                        amount: Cents(d.amount),
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
