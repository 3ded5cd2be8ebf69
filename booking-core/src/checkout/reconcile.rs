//! The reconciliation job: finds orders stuck in an intermediate state
//! (their request died, the provider never answered, the webhook never came,
//! the core crashed mid-saga) and drives each to a final state by taking the
//! saga's next step again. Safe at any time and alongside itself: taking an
//! order pushes its next look back (SKIP LOCKED), and every step is
//! idempotent anyway.

use std::time::Duration;

use crate::checkout::saga::CheckoutService;
use crate::checkout::{books, orders, payouts};
use crate::config::CheckoutConfig;

/// One pass: drives every due order, every pending refund, and every
/// refund of a stray charge (one no order could keep), once.
/// Returns how many it looked at.
pub async fn run_once(checkout: &CheckoutService, pool: &sqlx::PgPool, batch: i64) -> Result<usize, sqlx::Error> {
    let due = orders::due_for_reconciliation(pool, batch).await?;
    for order in &due {
        match checkout.drive(*order).await {
            Ok(state) => tracing::info!(order_id = %order, ?state, "reconciled"),
            Err(e) => tracing::warn!(order_id = %order, error = %e, "reconciliation step failed; will retry"),
        }
    }
    let refunds = crate::checkout::refunds::due(pool, batch).await?;
    for refund in &refunds {
        match checkout.settle_refund(*refund).await {
            Ok(done) => tracing::info!(refund_id = %refund, done, "refund reconciled"),
            Err(e) => tracing::warn!(refund_id = %refund, error = %e, "refund retry failed"),
        }
    }
    let strays = crate::checkout::late::due(pool, checkout.provider().name(), batch).await?;
    for intent in &strays {
        match checkout.refund_stray(intent).await {
            Ok(done) => tracing::info!(%intent, done, "stray charge's refund reconciled"),
            Err(e) => tracing::warn!(%intent, error = %e, "stray charge's refund retry failed"),
        }
    }
    Ok(due.len() + refunds.len() + strays.len())
}

/// How often the job looks whether the books' daily comparison is due.
const BOOKS_CHECK: Duration = Duration::from_secs(60);

/// One pass over resale payouts that are due (owed, payable after
/// `delay_secs`): each tried once. Returns how many it looked at.
pub async fn payouts_once(
    checkout: &CheckoutService,
    pool: &sqlx::PgPool,
    delay_secs: u64,
    batch: i64,
) -> Result<usize, sqlx::Error> {
    let due = payouts::due(pool, delay_secs, batch).await?;
    for listing in &due {
        match payouts::pay(pool, checkout.provider(), *listing).await {
            Ok(outcome) => tracing::info!(%listing, ?outcome, "payout reconciled"),
            Err(e) => tracing::warn!(%listing, error = %e, "payout step failed; will retry"),
        }
    }
    Ok(due.len())
}

pub async fn run(checkout: CheckoutService, pool: sqlx::PgPool, config: CheckoutConfig) {
    let mut tick = tokio::time::interval(Duration::from_millis(config.reconcile_interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut books_checked: Option<std::time::Instant> = None;
    loop {
        tick.tick().await;
        if books_checked.is_none_or(|t| t.elapsed() >= BOOKS_CHECK) {
            books_checked = Some(std::time::Instant::now());
            let every = Duration::from_secs(config.books_every_secs);
            let lag = Duration::from_secs(config.books_lag_secs);
            if let Err(e) = books::run_due(&checkout, &pool, every, lag).await {
                tracing::warn!(error = %e, "the books' comparison failed; will try again");
            }
        }
        if let Err(e) = payouts_once(&checkout, &pool, config.payout_delay_secs, config.reconcile_batch).await {
            tracing::warn!(error = %e, "payouts pass failed");
        }
        match run_once(&checkout, &pool, config.reconcile_batch).await {
            // A full batch: more are waiting, go again at once.
            Ok(n) if n as i64 >= config.reconcile_batch => tick.reset_immediately(),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "reconciliation pass failed"),
        }
    }
}
