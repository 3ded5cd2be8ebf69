//! The purchase saga: each step reads the order's persisted state, does
//! one thing, and records the result, so that any step can be run again —
//! after a crash, by the reconciliation job, or because a webhook and the
//! fan's own request arrived together — and lands in the same place.
//!
//!   pending_payment  charge (idempotency key = the order) -> paid | payment_failed,
//!                    or still pending_payment (the fan must authenticate,
//!                    or the processor is still at it: the hold is kept and
//!                    extended to the payment deadline, and the charge is
//!                    asked about again, never made again); past the
//!                    deadline, still pending -> payment_failed, seats back
//!                    on sale, the charge cancelled at the provider
//!   paid             one transaction: sell the seats (or re-claim them, if
//!                    the hold lapsed and they are still free), issue tickets
//!                    -> confirmed; or, if the seats are gone -> refunding
//!   refunding        refund (idempotency key = the order) -> refunded
//!
//! A charge whose answer never came (timeout, 5xx, crash) is asked again
//! with the same key later; the provider answers with the first charge,
//! so a fan is never charged twice for one order. A success that arrives
//! when the order has moved on (declined meanwhile, or paid by another
//! charge) is taken by `late.rs`: tickets if the seats can still be had,
//! otherwise all of the money back, once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::PgPool;

use crate::checkout::late::{self, Taken};
use crate::checkout::orders::{self, NewOrder, SagaRow};
use crate::checkout::provider::{
    Charge, ChargeRequest, ChargeStatus, PaymentProvider, ProviderError, RefundRequest, WebhookEvent,
};
use crate::checkout::{Order, OrderError, OrderRequest, OrderState, disputes, refunds};
use crate::config::{CheckoutConfig, CrashPoint, PaymentsConfig};
use crate::idempotency::{Fingerprint, Outcome};
use crate::ids::{Cents, FanId, OperatorId, OrderId, OrganisationId, TicketId};
use crate::inventory::claims;
use crate::metrics::Metrics;
use crate::tickets;

/// How long a buyer's order keeps a resale listing from other buyers while
/// it pays (a decline releases it at once).
const LISTING_RESERVATION_SECS: i64 = 600;

/// The longest payment-method token (the provider's) an order takes.
const MAX_PAYMENT_METHOD_LEN: usize = 255;

/// What driving an order came to: its state, and how long the payment
/// provider took over it.
struct Driven {
    state: OrderState,
    provider_time: Duration,
}

#[derive(Clone)]
pub struct CheckoutService {
    pool: PgPool,
    provider: Arc<dyn PaymentProvider>,
    currency: String,
    reconcile_after_secs: i64,
    max_payment_wait_secs: i64,
    /// The fan app's origin: 3-D Secure sends the fan back to the order's page there.
    return_base: String,
    crash_after: Option<CrashPoint>,
    metrics: Metrics,
}

#[derive(Debug, thiserror::Error)]
pub enum SagaError {
    #[error("storage: {0}")]
    Storage(#[from] sqlx::Error),
    #[error("no such order")]
    NoOrder,
    /// The provider could not be asked about a webhook's charge: the
    /// webhook is refused, and the provider delivers it again.
    #[error("payment provider did not answer: {0}")]
    ProviderUnavailable(String),
}

impl CheckoutService {
    pub fn new(
        pool: PgPool,
        provider: Arc<dyn PaymentProvider>,
        payments: &PaymentsConfig,
        checkout: &CheckoutConfig,
    ) -> Self {
        CheckoutService {
            pool,
            provider,
            currency: payments.currency.clone(),
            reconcile_after_secs: checkout.reconcile_after_secs as i64,
            max_payment_wait_secs: checkout.max_payment_wait_secs as i64,
            return_base: checkout.return_base_url.as_str().trim_end_matches('/').to_owned(),
            crash_after: checkout.crash_after,
            metrics: Metrics::default(),
        }
    }

    /// Records the saga's steps and its waits for connections in `metrics`.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    pub fn provider(&self) -> &dyn PaymentProvider {
        self.provider.as_ref()
    }

    /// Makes an order from the fan's hold (or for a resale listing) and
    /// takes it as far as it goes now: usually to `confirmed` or
    /// `payment_failed`; to `pending_payment` if the provider did not answer
    /// (the webhook or reconciliation finish it). Also returns the time spent
    /// waiting for the provider, so the answer can say how much of its
    /// latency was ours (Server-Timing).
    #[tracing::instrument(skip_all, fields(order_id = tracing::field::Empty, fan = %usher_shared::redact::hashed(&fan.0)))]
    pub async fn place(
        &self,
        fan: &FanId,
        key: &str,
        request: &OrderRequest,
    ) -> Result<(Outcome<Order>, Duration), OrderError> {
        let pm = request.payment_method.as_str();
        if pm.is_empty() || pm.len() > MAX_PAYMENT_METHOD_LEN || !pm.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(OrderError::InvalidPaymentMethod);
        }
        let fingerprint = Fingerprint::of("order.create", request);
        let new = NewOrder {
            id: OrderId::new(),
            hold: request.hold_id,
            fan,
            key,
            fingerprint: &fingerprint.0,
            payment_method: pm,
            currency: &self.currency,
            provider: self.provider.name(),
            reconcile_after_secs: self.reconcile_after_secs,
        };
        let mut provider_time = Duration::ZERO;
        let (order, replayed) = match (request.hold_id, request.listing_id) {
            (Some(_), None) => {
                let (card, asking) = self.card_of(fan, key, pm).await?;
                provider_time += asking;
                orders::create(&self.pool, new, card.as_deref()).await?
            }
            (None, Some(listing)) => {
                orders::create_for_listing(&self.pool, new, listing, LISTING_RESERVATION_SECS).await?
            }
            _ => return Err(OrderError::AmbiguousRequest),
        };
        tracing::Span::current().record("order_id", tracing::field::display(order));
        if !replayed {
            self.crash_point(CrashPoint::OrderCreated);
        }
        // A replay drives too: the first request may have died mid-way.
        match self.steps(order, !replayed).await {
            Ok(driven) => provider_time += driven.provider_time,
            Err(e) => tracing::warn!(error = %e, "order left for reconciliation"),
        }
        let order = orders::get(&self.pool, fan, order).await?;
        tracing::debug!(state = ?order.state, replayed, "order placed");
        Ok((Outcome { value: order, replayed }, provider_time))
    }

    /// The fingerprint of the card a new order would pay with, asked of the
    /// provider before anything is made or charged. None for a retry of an
    /// order already made (it is not checked again), and for a payment
    /// method the provider does not know (its charge is refused as before).
    /// Also the time the provider took to answer.
    async fn card_of(&self, fan: &FanId, key: &str, pm: &str) -> Result<(Option<String>, Duration), OrderError> {
        if orders::exists_for_key(&self.pool, fan, key).await? {
            return Ok((None, Duration::ZERO));
        }
        let asked = Instant::now();
        let answer = self.provider.card_fingerprint(pm).await;
        let asking = asked.elapsed();
        match answer {
            Ok(card) => Ok((card, asking)),
            Err(ProviderError::Rejected { code, .. }) => {
                tracing::info!(%code, "the provider gave no card for the payment method");
                Ok((None, asking))
            }
            // Without the card the limit cannot be checked: nothing is made,
            // and the fan's retry (same key) asks again.
            Err(ProviderError::Unknown(why)) => Err(OrderError::ProviderUnavailable(why)),
        }
    }

    /// Takes steps until the order is final or a step cannot be taken now.
    #[tracing::instrument(skip(self), fields(order_id = %order))]
    pub async fn drive(&self, order: OrderId) -> Result<OrderState, SagaError> {
        self.steps(order, false).await.map(|driven| driven.state)
    }

    /// `first_try`: the order was made by this very request, so no charge
    /// can exist for it yet.
    async fn steps(&self, order: OrderId, first_try: bool) -> Result<Driven, SagaError> {
        let mut provider_time = Duration::ZERO;
        loop {
            let mut conn = self.metrics.acquire(&self.pool).await?;
            let row = orders::saga_row(&mut conn, order, false)
                .await?
                .ok_or(SagaError::NoOrder)?;
            drop(conn);
            let before = row.state;
            let started = Instant::now();
            let step = match row.state {
                OrderState::PendingPayment => {
                    provider_time += self.charge(&row, first_try).await?;
                    "charge"
                }
                OrderState::Paid => {
                    self.settle(order).await?;
                    "settle"
                }
                OrderState::Refunding => {
                    provider_time += self.give_back(&row).await?;
                    "refund"
                }
                done => {
                    return Ok(Driven {
                        state: done,
                        provider_time,
                    });
                }
            };
            self.metrics.saga_step(step, started.elapsed());
            let mut conn = self.metrics.acquire(&self.pool).await?;
            let after = orders::saga_row(&mut conn, order, false)
                .await?
                .ok_or(SagaError::NoOrder)?
                .state;
            if after == before {
                // The step could not be taken now (no answer from the provider).
                return Ok(Driven {
                    state: after,
                    provider_time,
                });
            }
        }
    }

    /// Charges the order (or asks about its charge); returns how long the
    /// provider took.
    async fn charge(&self, row: &SagaRow, first_try: bool) -> Result<Duration, SagaError> {
        if row.total == Cents(0) {
            // Nothing to charge (complimentary seats): straight to the sale.
            let mut conn = self.pool.acquire().await?;
            sqlx::query!(
                "UPDATE orders SET state = 'paid', updated_at = now() WHERE id = $1 AND state = 'pending_payment'",
                row.id.0
            )
            .execute(&mut *conn)
            .await?;
            return Ok(Duration::ZERO);
        }
        let request = ChargeRequest {
            order: row.id,
            amount: row.total,
            currency: row.currency.clone(),
            payment_method: row.payment_method.clone(),
            idempotency_key: format!("order-{}-charge", row.id),
            return_url: Some(format!("{}/me/orders/{}", self.return_base, row.id)),
        };
        let asked = Instant::now();
        // A pending order that already has its intent (waiting for 3-D
        // Secure, or processing) is asked about, not charged again: the
        // provider would answer a repeated create with its first answer.
        let answer = match &row.intent_id {
            Some(intent) => self.provider.retrieve(intent).await,
            None if first_try => self.provider.charge(&request).await,
            // An earlier try got no answer: look for the charge it may have
            // made before making one (the key that would find it does not
            // live for ever at the provider).
            None => match self.charge_made_for(row).await {
                Ok(Some(charge)) => Ok(charge),
                Ok(None) if orders::payment_deadline_passed(&self.pool, row.id).await? => {
                    // Nothing was taken, and it is too late to take it now:
                    // the seats go back on sale. A charge that still turns
                    // up is taken by late.rs (or the books' comparison).
                    if orders::give_up(&self.pool, row.id, "payment_unconfirmed").await? {
                        tracing::info!("no charge was made before the payment deadline; the seats are back on sale");
                    }
                    return Ok(asked.elapsed());
                }
                Ok(None) => self.provider.charge(&request).await,
                Err(e) => Err(e),
            },
        };
        let mut waited = asked.elapsed();
        match answer {
            Ok(charge)
                if matches!(charge.status, ChargeStatus::Pending { .. })
                    && orders::payment_deadline_passed(&self.pool, row.id).await? =>
            {
                waited += self.give_up(row, &charge).await?;
            }
            Ok(charge) => {
                self.crash_point(CrashPoint::Charged);
                let (taken, refunding) = self.apply_charge(row.id, &charge).await?;
                waited += refunding;
                if taken == Some(Taken::Paid) {
                    self.crash_point(CrashPoint::Paid);
                }
            }
            Err(ProviderError::Unknown(why)) => {
                tracing::warn!(%why, "no answer from the payment provider; will ask again");
                orders::defer(&self.pool, row.id, self.reconcile_after_secs).await?;
            }
            Err(ProviderError::Rejected { code, message }) => {
                // The provider refused the request itself (e.g. an unknown
                // payment method): nothing was charged.
                tracing::warn!(%code, %message, "payment provider refused the charge");
                orders::mark_failed(&self.pool, row.id, None, &code).await?;
            }
        }
        Ok(waited)
    }

    /// The charge the provider holds for the order, if any: a success
    /// first (any other success is taken too, and so refunded as a second
    /// charge), else one still pending, else a decline.
    async fn charge_made_for(&self, row: &SagaRow) -> Result<Option<Charge>, ProviderError> {
        let mut found = match self.provider.charges_for_order(row.id).await {
            Ok(found) => found,
            // The provider cannot list them (not an outage): the key is
            // the only way to find it, as before.
            Err(ProviderError::Rejected { code, .. }) => {
                tracing::warn!(%code, "the provider could not list the order's charges");
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let rank = |c: &Charge| match c.status {
            ChargeStatus::Succeeded => 0,
            ChargeStatus::Pending { .. } => 1,
            ChargeStatus::Declined { .. } => 2,
        };
        found.sort_by_key(rank);
        let mut found = found.into_iter();
        let first = found.next();
        for extra in found.filter(|c| c.status == ChargeStatus::Succeeded) {
            if let Err(e) = self.apply_charge(row.id, &extra).await {
                tracing::warn!(error = %e, intent = %extra.intent_id, "a second charge's refund waits for reconciliation");
            }
        }
        Ok(first)
    }

    /// The payment deadline passed and the charge still waits (the fan never
    /// answered 3-D Secure, or the processor is slower than we wait): the
    /// order fails and its seats go back on sale, then the charge is
    /// cancelled so that it can never take money. If it took money first
    /// (or cannot be cancelled and does later), the success is taken as any
    /// late one is: tickets if the seats are still free, otherwise refunded.
    /// Returns how long the provider took.
    async fn give_up(&self, row: &SagaRow, charge: &Charge) -> Result<Duration, SagaError> {
        let code = match &charge.status {
            ChargeStatus::Pending { status, .. } if status == "requires_action" => "authentication_abandoned",
            _ => "payment_timed_out",
        };
        if orders::give_up(&self.pool, row.id, code).await? {
            tracing::info!(intent = %charge.intent_id, code, "the payment deadline passed; the seats are back on sale");
        }
        let asked = Instant::now();
        let key = format!("order-{}-cancel", row.id);
        let now = match self.provider.cancel(&charge.intent_id, &key).await {
            Ok(now) => Some(now),
            Err(ProviderError::Rejected { code, .. }) => {
                // It moved on (succeeded, or processing cannot be stopped):
                // take it as it is now.
                tracing::info!(%code, intent = %charge.intent_id, "the charge could not be cancelled");
                self.provider.retrieve(&charge.intent_id).await.ok()
            }
            Err(ProviderError::Unknown(why)) => {
                // Its success, if the fan still answers, is taken by late.rs.
                tracing::warn!(%why, intent = %charge.intent_id, "the charge's cancel was not confirmed");
                None
            }
        };
        let mut waited = asked.elapsed();
        if let Some(now) = now {
            waited += self.apply_charge(row.id, &now).await?.1;
        }
        Ok(waited)
    }

    /// paid -> confirmed (seats sold, tickets issued) or -> refunding, in one
    /// transaction under the order's row lock.
    #[tracing::instrument(name = "sql.settle", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    async fn settle(&self, order: OrderId) -> Result<(), SagaError> {
        let mut tx = self.metrics.begin(&self.pool).await?;
        let Some(row) = orders::saga_row(&mut tx, order, true).await? else {
            return Err(SagaError::NoOrder);
        };
        if row.state != OrderState::Paid {
            return Ok(());
        }
        if let Some(listing) = row.listing {
            if tickets::resale::complete(&mut tx, listing, row.id, &row.fan).await? {
                orders::mark_confirmed(&mut tx, &row, false).await?;
            } else {
                orders::mark_refunding(&mut tx, &row, "listing_no_longer_available").await?;
            }
            tx.commit().await?;
            self.crash_point(CrashPoint::Settled);
            return Ok(());
        }
        let Some(hold) = row.hold else {
            return Err(SagaError::NoOrder);
        };
        let (sold, reclaimed) = match claims::sell_hold(&mut tx, hold).await? {
            Some(seats) if seats.len() == row.seats.len() => (true, false),
            Some(_) => (false, false),
            None => (
                claims::reclaim_for_sale(&mut tx, row.event, hold, &row.seats).await?,
                true,
            ),
        };
        if sold {
            let issued = tickets::issue(&mut tx, row.id, row.event, &row.fan, &row.seats, &row.prices).await;
            match issued {
                Ok(_) => orders::mark_confirmed(&mut tx, &row, reclaimed).await?,
                Err(e) if is_unique_violation(&e) => {
                    // The last guarantee fired: some seat already has a valid
                    // ticket. Sell nothing; give the money back.
                    tracing::error!(error = %e, "a seat already had a ticket; refunding");
                    tx.rollback().await?;
                    let mut tx = self.pool.begin().await?;
                    if let Some(row) = orders::saga_row(&mut tx, order, true).await?
                        && row.state == OrderState::Paid
                    {
                        orders::mark_refunding(&mut tx, &row, "seat_already_ticketed").await?;
                    }
                    tx.commit().await?;
                    self.crash_point(CrashPoint::Settled);
                    return Ok(());
                }
                Err(e) => return Err(e.into()),
            }
        } else {
            orders::mark_refunding(&mut tx, &row, "seats_no_longer_available").await?;
        }
        tx.commit().await?;
        self.crash_point(CrashPoint::Settled);
        Ok(())
    }

    /// Records what the provider says of one of the order's charges, in
    /// whatever state the order is. Returns what became of a success, and
    /// how long the provider took to refund a charge no order could keep.
    #[tracing::instrument(name = "sql.apply_charge", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    async fn apply_charge(&self, order: OrderId, charge: &Charge) -> Result<(Option<Taken>, Duration), SagaError> {
        match &charge.status {
            ChargeStatus::Succeeded => {
                let taken = late::take(
                    &self.pool,
                    self.provider.name(),
                    order,
                    charge,
                    self.reconcile_after_secs,
                )
                .await?;
                let mut refunding = Duration::ZERO;
                if taken == Taken::Stray {
                    let asked = Instant::now();
                    late::refund_stray(&self.pool, self.provider.as_ref(), &charge.intent_id).await?;
                    refunding = asked.elapsed();
                }
                Ok((Some(taken), refunding))
            }
            ChargeStatus::Declined { code } => {
                orders::mark_failed(&self.pool, order, Some(&charge.intent_id), code).await?;
                Ok((None, Duration::ZERO))
            }
            ChargeStatus::Pending { status, redirect_url } => {
                tracing::info!(%status, intent = %charge.intent_id, "the charge is pending; the hold is kept");
                let pending = orders::PendingCharge {
                    intent: &charge.intent_id,
                    status,
                    redirect_url: redirect_url.as_deref(),
                };
                orders::mark_pending(
                    &self.pool,
                    order,
                    &pending,
                    self.reconcile_after_secs,
                    self.max_payment_wait_secs,
                )
                .await?;
                Ok((None, Duration::ZERO))
            }
        }
    }

    /// Refunds the order's charge; returns how long the provider took.
    async fn give_back(&self, row: &SagaRow) -> Result<Duration, SagaError> {
        let Some(intent) = &row.intent_id else {
            // Nothing was charged (a free order): nothing to give back.
            orders::mark_refunded(&self.pool, row.id, "", Cents(0)).await?;
            return Ok(Duration::ZERO);
        };
        let request = RefundRequest {
            intent_id: intent.clone(),
            amount: row.total,
            idempotency_key: format!("order-{}-refund", row.id),
        };
        let asked = Instant::now();
        let answer = self.provider.refund(&request).await;
        let waited = asked.elapsed();
        match answer {
            Ok(refund) => {
                self.crash_point(CrashPoint::RefundSent);
                orders::mark_refunded(&self.pool, row.id, &refund.refund_id, refund.amount).await?;
            }
            Err(e) => {
                tracing::warn!(error = %e, "refund not confirmed by the provider; will ask again");
                orders::defer(&self.pool, row.id, self.reconcile_after_secs).await?;
            }
        }
        Ok(waited)
    }

    /// Refunds some or all of a confirmed order's tickets (see `refunds.rs`).
    #[tracing::instrument(skip_all, fields(order_id = %order))]
    pub async fn refund_tickets(
        &self,
        fan: &FanId,
        key: &str,
        order: OrderId,
        request: &refunds::RefundOrderRequest,
    ) -> Result<Outcome<refunds::OrderRefund>, refunds::RefundError> {
        let ids = request.ticket_ids.as_deref();
        self.refund(refunds::Requester::Fan(fan), key, order, ids).await
    }

    /// An operator's refund of some or all of an order's tickets, at any
    /// time, with a reason (see `refunds.rs`).
    #[tracing::instrument(skip_all, fields(order_id = %order, operator))]
    pub async fn refund_by_operator(
        &self,
        operator: OperatorId,
        organisation: OrganisationId,
        key: &str,
        order: OrderId,
        request: &refunds::OperatorRefundRequest,
    ) -> Result<Outcome<refunds::OrderRefund>, refunds::RefundError> {
        let who = refunds::Requester::Operator {
            operator,
            organisation,
            reason: &request.reason,
        };
        self.refund(who, key, order, request.ticket_ids.as_deref()).await
    }

    async fn refund(
        &self,
        who: refunds::Requester<'_>,
        key: &str,
        order: OrderId,
        ticket_ids: Option<&[TicketId]>,
    ) -> Result<Outcome<refunds::OrderRefund>, refunds::RefundError> {
        let (id, replayed, buyer) = refunds::open(&self.pool, who, key, order, ticket_ids).await?;
        refunds::settle(&self.pool, self.provider.as_ref(), id).await?;
        let refund = refunds::get(&self.pool, &buyer, id).await?;
        Ok(Outcome {
            value: refund,
            replayed,
        })
    }

    /// Takes a charge the provider reports for the order, whatever state
    /// the order is in (the books' comparison found it): what became of a
    /// success; an order it pays is driven on to its tickets.
    pub async fn take_charge(&self, order: OrderId, charge: &Charge) -> Result<Option<Taken>, SagaError> {
        let (taken, _) = self.apply_charge(order, charge).await?;
        if taken == Some(Taken::Paid) {
            self.drive(order).await?;
        }
        Ok(taken)
    }

    /// Retries a pending refund (reconciliation).
    pub async fn settle_refund(&self, refund: uuid::Uuid) -> Result<bool, sqlx::Error> {
        refunds::settle(&self.pool, self.provider.as_ref(), refund).await
    }

    /// Retries the refund of a charge no order could keep (reconciliation).
    pub async fn refund_stray(&self, intent: &str) -> Result<bool, sqlx::Error> {
        late::refund_stray(&self.pool, self.provider.as_ref(), intent).await
    }

    /// Applies a verified webhook: acts on the fact it carries and drives
    /// the order on, then records the event. Returns false for a duplicate
    /// delivery.
    pub async fn on_webhook(&self, event: WebhookEvent) -> Result<bool, SagaError> {
        let provider = self.provider.name();
        let (id, kind) = (event.event_id().to_owned(), event.kind().to_owned());
        if orders::webhook_seen(&self.pool, provider, &id).await? {
            return Ok(false);
        }
        self.act_on_webhook(event).await?;
        // Recorded once acted on, not before: if acting failed, the
        // provider's next delivery acts again (every step is idempotent)
        // instead of being taken for a duplicate, which would lose a late
        // success that no reconciliation looks for.
        Ok(orders::record_webhook(&self.pool, provider, &id, &kind).await?)
    }

    async fn act_on_webhook(&self, event: WebhookEvent) -> Result<(), SagaError> {
        let order = match event {
            WebhookEvent::Charged { charge, .. } => {
                let Some(order) = charge.order else {
                    tracing::warn!(intent = %charge.intent_id, "webhook for a charge that names no order");
                    return Ok(());
                };
                self.apply_charge(order, &charge).await?;
                order
            }
            WebhookEvent::Refunded { refund, .. } => {
                let Some(order) = orders::by_intent(&self.pool, &refund.intent_id).await? else {
                    return Ok(());
                };
                orders::mark_refunded(&self.pool, order, &refund.refund_id, refund.amount).await?;
                order
            }
            WebhookEvent::Disputed { dispute, .. } => {
                return disputes::on_webhook(&self.pool, self.provider.as_ref(), &dispute)
                    .await
                    .map_err(|e| match e {
                        disputes::DisputeError::Storage(e) => SagaError::Storage(e),
                        disputes::DisputeError::ProviderUnavailable(why) => SagaError::ProviderUnavailable(why),
                    });
            }
            WebhookEvent::Other { .. } => return Ok(()),
        };
        match self.drive(order).await {
            Ok(_) | Err(SagaError::NoOrder) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Test-only fault injection: die here, as a crash would.
    fn crash_point(&self, step: CrashPoint) {
        if self.crash_after == Some(step) {
            tracing::error!(?step, "checkout.crash_after: aborting the process");
            std::process::abort();
        }
    }
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.kind() == sqlx::error::ErrorKind::UniqueViolation)
}
