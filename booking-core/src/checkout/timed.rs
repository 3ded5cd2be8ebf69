//! Times every call to the payment provider, whichever part of checkout
//! makes it (the saga, refunds, late payments, reconciliation): a
//! `PaymentProvider` that wraps the real one and records each call's time
//! and result in the metrics, in a span of its own (`provider.<call>`)
//! whose context the adapter sends along as `traceparent`.

use std::sync::Arc;
use std::time::Instant;

use tracing::Instrument;

use crate::checkout::provider::{
    BoxFuture, Charge, ChargeRequest, PaymentProvider, PayoutAccount, ProviderError, Refund, RefundRequest, Transfer,
    TransferRequest, WebhookError, WebhookEvent, Window,
};
use crate::ids::OrderId;
use crate::metrics::Metrics;

pub struct TimedProvider {
    inner: Arc<dyn PaymentProvider>,
    metrics: Metrics,
}

impl TimedProvider {
    pub fn new(inner: Arc<dyn PaymentProvider>, metrics: Metrics) -> TimedProvider {
        TimedProvider { inner, metrics }
    }

    /// Awaits the call and records it as `call`.
    fn timed<'a, T: Send + 'a>(
        &'a self,
        call: &'static str,
        answer: BoxFuture<'a, Result<T, ProviderError>>,
    ) -> BoxFuture<'a, Result<T, ProviderError>> {
        let provider = self.inner.name();
        Box::pin(async move {
            // Made as the call starts, inside its caller's span.
            let span = tracing::info_span!(
                "provider.call",
                otel.name = %format_args!("provider.{call}"),
                otel.kind = "client",
                provider,
                call,
                result = tracing::field::Empty,
            );
            let started = Instant::now();
            let answer = answer.instrument(span.clone()).await;
            let result = match &answer {
                Ok(_) => "ok",
                Err(ProviderError::Rejected { .. }) => "rejected",
                Err(ProviderError::Unknown(_)) => "unknown",
            };
            self.metrics.provider_call(call, result, started.elapsed());
            span.record("result", result);
            answer
        })
    }
}

impl PaymentProvider for TimedProvider {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn signature_header(&self) -> &'static str {
        self.inner.signature_header()
    }

    fn charge<'a>(&'a self, request: &'a ChargeRequest) -> BoxFuture<'a, Result<Charge, ProviderError>> {
        self.timed("charge", self.inner.charge(request))
    }

    fn retrieve<'a>(&'a self, intent_id: &'a str) -> BoxFuture<'a, Result<Charge, ProviderError>> {
        self.timed("retrieve", self.inner.retrieve(intent_id))
    }

    fn refund<'a>(&'a self, request: &'a RefundRequest) -> BoxFuture<'a, Result<Refund, ProviderError>> {
        self.timed("refund", self.inner.refund(request))
    }

    fn cancel<'a>(&'a self, intent_id: &'a str, key: &'a str) -> BoxFuture<'a, Result<Charge, ProviderError>> {
        self.timed("cancel", self.inner.cancel(intent_id, key))
    }

    fn card_fingerprint<'a>(&'a self, payment_method: &'a str) -> BoxFuture<'a, Result<Option<String>, ProviderError>> {
        self.timed("card_fingerprint", self.inner.card_fingerprint(payment_method))
    }

    fn transfer<'a>(&'a self, request: &'a TransferRequest) -> BoxFuture<'a, Result<Transfer, ProviderError>> {
        self.timed("transfer", self.inner.transfer(request))
    }

    fn payout_account<'a>(&'a self, account_id: &'a str) -> BoxFuture<'a, Result<PayoutAccount, ProviderError>> {
        self.timed("payout_account", self.inner.payout_account(account_id))
    }

    fn charges_for_order<'a>(&'a self, order: OrderId) -> BoxFuture<'a, Result<Vec<Charge>, ProviderError>> {
        self.timed("charges_for_order", self.inner.charges_for_order(order))
    }

    fn list_charges<'a>(&'a self, window: Window) -> BoxFuture<'a, Result<Vec<Charge>, ProviderError>> {
        self.timed("list_charges", self.inner.list_charges(window))
    }

    fn list_refunds<'a>(&'a self, window: Window) -> BoxFuture<'a, Result<Vec<Refund>, ProviderError>> {
        self.timed("list_refunds", self.inner.list_refunds(window))
    }

    fn verify_webhook(
        &self,
        signature: Option<&str>,
        body: &[u8],
        now_unix: i64,
    ) -> Result<WebhookEvent, WebhookError> {
        self.inner.verify_webhook(signature, body, now_unix)
    }
}
