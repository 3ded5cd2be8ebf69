//! The provider's books against ours. Once a day (and when an operator
//! asks) the core reads the provider's lists of charges and refunds for a
//! window and compares them with its orders, refunds and stray charges.
//! What can be put right safely is: a charge the provider took that names
//! one of our orders but that no order keeps is taken as a late success is
//! (`late.rs`: tickets if the seats are still free, otherwise refunded in
//! full), and a refund of ours still waiting for its answer is asked about
//! again. Everything else is recorded once per subject (migration 0018
//! names the kinds) and sent to the operators through the outbox, to be
//! resolved by hand in the portal: guessing there could pay a fan twice.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde::Serialize;
use serde_json::json;
use sqlx::{PgPool, Row};

use crate::checkout::late::Taken;
use crate::checkout::provider::{Charge, ChargeStatus, ProviderError, Refund, Window};
use crate::checkout::saga::{CheckoutService, SagaError};
use crate::ids::{Cents, OrderId};
use crate::outbox::{notify_operators, topic};

/// Orders and refunds of ours in the window are looked for in the
/// provider's lists of a window this much wider on each side, so that one
/// made at the window's edge (our clock and theirs differ by the call's
/// length) is not taken for missing.
const MARGIN_SECS: i64 = 3600;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    ChargeWithoutOrder,
    OrderPaidWithoutCharge,
    AmountMismatch,
    RefundMissing,
    RefundUnrecorded,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::ChargeWithoutOrder => "charge_without_order",
            Kind::OrderPaidWithoutCharge => "order_paid_without_charge",
            Kind::AmountMismatch => "amount_mismatch",
            Kind::RefundMissing => "refund_missing",
            Kind::RefundUnrecorded => "refund_unrecorded",
        }
    }
}

/// One difference between the books.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub kind: Kind,
    /// The provider's intent or refund id, or our order id.
    pub subject: String,
    pub order: Option<OrderId>,
    pub intent: Option<String>,
    pub refund: Option<String>,
    pub ours: Option<Cents>,
    pub theirs: Option<Cents>,
    pub detail: String,
    /// Put right by this run (no operator needed).
    pub fixed: bool,
}

/// What one run compared and found.
#[derive(Debug, Clone)]
pub struct Report {
    pub run: i64,
    pub window: Window,
    pub charges: usize,
    pub refunds: usize,
    pub found: Vec<Found>,
}

#[derive(Debug, thiserror::Error)]
pub enum BooksError {
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error("the provider's books could not be read: {0}")]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    Saga(#[from] SagaError),
    /// Another run has this window (or the last run was too recent).
    #[error("a run of the books for this window is already under way")]
    Busy,
}

/// Runs the comparison if one is due: the last finished run ended its
/// window more than `every` ago (or there has been none: the first covers
/// the day before). The window ends `lag` before now, so charges still on
/// their way (in a request, a webhook, the reconciliation job) are not
/// taken for mismatches. Safe on every core at once: one of them takes the
/// window.
pub async fn run_due(
    checkout: &CheckoutService,
    pool: &PgPool,
    every: Duration,
    lag: Duration,
) -> Result<Option<Report>, BooksError> {
    let provider = checkout.provider().name();
    let due: Option<(i64, i64)> = sqlx::query_as(
        r#"SELECT extract(epoch FROM coalesce(max(until), now() - make_interval(secs => $2 + $3)))::bigint,
                  extract(epoch FROM now() - make_interval(secs => $3))::bigint
           FROM books_runs WHERE provider = $1 AND finished_at IS NOT NULL
           HAVING coalesce(max(until), '-infinity') < now() - make_interval(secs => $2 + $3)"#,
    )
    .bind(provider)
    .bind(every.as_secs_f64())
    .bind(lag.as_secs_f64())
    .fetch_optional(pool)
    .await?;
    let Some((since, until)) = due else {
        return Ok(None);
    };
    match run(
        checkout,
        pool,
        Window {
            since_unix: since,
            until_unix: until,
        },
    )
    .await
    {
        Err(BooksError::Busy) => Ok(None),
        other => other.map(Some),
    }
}

/// Compares one window now, records what it found and tells the
/// operators of what is new.
#[tracing::instrument(skip_all, fields(since = window.since_unix, until = window.until_unix))]
pub async fn run(checkout: &CheckoutService, pool: &PgPool, window: Window) -> Result<Report, BooksError> {
    let provider = checkout.provider().name();
    let run = claim(pool, provider, window).await?.ok_or(BooksError::Busy)?;
    let compared = compare(checkout, pool, window).await;
    let (charges, refunds, found) = match compared {
        Ok(c) => c,
        Err(e) => {
            // The window stays unfinished: the next due check takes it again.
            sqlx::query("UPDATE books_runs SET error = $2 WHERE id = $1")
                .bind(run)
                .bind(e.to_string())
                .execute(pool)
                .await?;
            return Err(e);
        }
    };
    record(pool, provider, run, &found).await?;
    sqlx::query(
        "UPDATE books_runs SET finished_at = now(), charges = $2, refunds = $3, mismatches = $4, error = NULL WHERE id = $1",
    )
    .bind(run)
    .bind(charges as i32)
    .bind(refunds as i32)
    .bind(found.len() as i32)
    .execute(pool)
    .await?;
    tracing::info!(run, charges, refunds, mismatches = found.len(), "the books compared");
    Ok(Report {
        run,
        window,
        charges,
        refunds,
        found,
    })
}

/// Takes the window for this core: a new row, or one whose earlier try
/// failed or died ten minutes ago. None if another core has it.
async fn claim(pool: &PgPool, provider: &str, window: Window) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(
        r#"INSERT INTO books_runs (provider, since, until) VALUES ($1, to_timestamp($2), to_timestamp($3))
           ON CONFLICT (provider, since) DO UPDATE SET started_at = now(), until = excluded.until, error = NULL
               WHERE books_runs.finished_at IS NULL
                 AND (books_runs.error IS NOT NULL OR books_runs.started_at < now() - interval '10 minutes')
           RETURNING id"#,
    )
    .bind(provider)
    .bind(window.since_unix as f64)
    .bind(window.until_unix as f64)
    .fetch_optional(pool)
    .await
}

/// Our view of one order.
struct OrderFacts {
    state: String,
    intent: Option<String>,
    total: Cents,
}

const PAID_STATES: [&str; 4] = ["paid", "confirmed", "refunding", "refunded"];

/// The comparison itself: how many charges and refunds the provider
/// listed, and every difference (after fixing what it safely can).
async fn compare(
    checkout: &CheckoutService,
    pool: &PgPool,
    window: Window,
) -> Result<(usize, usize, Vec<Found>), BooksError> {
    let provider = checkout.provider();
    let wide = Window {
        since_unix: window.since_unix - MARGIN_SECS,
        until_unix: window.until_unix + MARGIN_SECS,
    };
    let charges = provider.list_charges(window).await?;
    let mut found = Vec::new();
    found.extend(their_charges(checkout, pool, &charges).await?);
    found.extend(our_charges(checkout, pool, wide, window).await?);
    let refunds = provider.list_refunds(window).await?;
    found.extend(their_refunds(checkout, pool, &refunds).await?);
    found.extend(our_refunds(checkout, pool, wide, window).await?);
    Ok((charges.len(), refunds.len(), found))
}

/// Each charge the provider took, against the order it names.
async fn their_charges(
    checkout: &CheckoutService,
    pool: &PgPool,
    charges: &[Charge],
) -> Result<Vec<Found>, BooksError> {
    let taken: Vec<&Charge> = charges.iter().filter(|c| c.status == ChargeStatus::Succeeded).collect();
    let ids: Vec<uuid::Uuid> = taken.iter().filter_map(|c| c.order.map(|o| o.0)).collect();
    let orders = orders_by_id(pool, &ids).await?;
    let intents: Vec<String> = taken.iter().map(|c| c.intent_id.clone()).collect();
    let stray: HashSet<String> =
        sqlx::query_scalar("SELECT intent_id FROM stray_charges WHERE provider = $1 AND intent_id = ANY($2)")
            .bind(checkout.provider().name())
            .bind(&intents)
            .fetch_all(pool)
            .await?
            .into_iter()
            .collect();
    let mut found = Vec::new();
    for charge in taken {
        let without = |detail: String, fixed: bool| Found {
            kind: Kind::ChargeWithoutOrder,
            subject: charge.intent_id.clone(),
            order: charge.order,
            intent: Some(charge.intent_id.clone()),
            refund: None,
            ours: None,
            theirs: Some(charge.amount),
            detail,
            fixed,
        };
        let Some(order) = charge.order else {
            found.push(without("the charge names no order".into(), false));
            continue;
        };
        let Some(facts) = orders.get(&order) else {
            found.push(Found {
                order: None,
                ..without(
                    format!("the charge names order {order}, which the core does not have"),
                    false,
                )
            });
            continue;
        };
        if stray.contains(&charge.intent_id) || facts.state == "pending_payment" {
            // Being refunded already, or still being decided by the saga.
            continue;
        }
        let kept = facts.intent.as_deref() == Some(charge.intent_id.as_str());
        if kept && PAID_STATES.contains(&facts.state.as_str()) {
            if charge.amount != facts.total {
                found.push(Found {
                    kind: Kind::AmountMismatch,
                    subject: charge.intent_id.clone(),
                    order: Some(order),
                    intent: Some(charge.intent_id.clone()),
                    refund: None,
                    ours: Some(facts.total),
                    theirs: Some(charge.amount),
                    detail: format!(
                        "order {order} charged {} where it costs {}",
                        charge.amount.0, facts.total.0
                    ),
                    fixed: false,
                });
            }
            continue;
        }
        if PAID_STATES.contains(&facts.state.as_str()) {
            // The order counts another charge. Only if that one really was
            // taken is this one a second charge to give back; otherwise
            // this may be the very charge that paid: an operator decides.
            let other = facts.intent.as_deref().unwrap_or_default();
            if !taken_at_provider(checkout, charges, other).await? {
                found.push(without(
                    format!(
                        "order {order} counts charge {other}, which the provider does not have as taken: \
                         this charge may be the one that paid, so it is not refunded by itself"
                    ),
                    false,
                ));
                continue;
            }
        }
        // A success no order keeps (its order failed, or was paid by
        // another charge): taken as a late success is.
        let detail = match checkout.take_charge(order, charge).await? {
            Some(Taken::AlreadyCounted) | None => continue,
            Some(Taken::Paid) => format!(
                "order {order} ({}) had not counted it: it is sold after all",
                facts.state
            ),
            Some(Taken::Stray) => format!("order {order} ({}) cannot keep it: refunded in full", facts.state),
            Some(Taken::NoOrder) => continue,
        };
        found.push(without(detail, true));
    }
    Ok(found)
}

/// Whether the provider has this charge as taken (from its list, or asked).
async fn taken_at_provider(checkout: &CheckoutService, listed: &[Charge], intent: &str) -> Result<bool, BooksError> {
    if let Some(c) = listed.iter().find(|c| c.intent_id == intent) {
        return Ok(c.status == ChargeStatus::Succeeded);
    }
    if intent.is_empty() {
        return Ok(false);
    }
    match checkout.provider().retrieve(intent).await {
        Ok(c) => Ok(c.status == ChargeStatus::Succeeded),
        Err(ProviderError::Rejected { .. }) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Each order of ours in the window counted as paid, against the
/// provider's charge.
async fn our_charges(
    checkout: &CheckoutService,
    pool: &PgPool,
    wide: Window,
    window: Window,
) -> Result<Vec<Found>, BooksError> {
    let provider = checkout.provider();
    let rows = sqlx::query(
        r#"SELECT id, intent_id, total_cents FROM orders
           WHERE provider = $1 AND total_cents > 0 AND state = ANY($2)
             AND created_at >= to_timestamp($3) AND created_at < to_timestamp($4)"#,
    )
    .bind(provider.name())
    .bind(PAID_STATES.as_slice())
    .bind(window.since_unix as f64)
    .bind(window.until_unix as f64)
    .fetch_all(pool)
    .await?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let theirs: HashMap<String, Charge> = provider
        .list_charges(wide)
        .await?
        .into_iter()
        .map(|c| (c.intent_id.clone(), c))
        .collect();
    let mut found = Vec::new();
    for row in rows {
        let order = OrderId(row.try_get("id")?);
        let total = Cents(row.try_get("total_cents")?);
        // The CHECK on orders: a paid order with a price has its intent.
        let Some(intent) = row.try_get::<Option<String>, _>("intent_id")? else {
            continue;
        };
        let charge = match theirs.get(&intent) {
            Some(c) => Some(c.clone()),
            // Not in the list (made long before the window?): ask for it.
            None => match provider.retrieve(&intent).await {
                Ok(c) => Some(c),
                Err(ProviderError::Rejected { .. }) => None,
                Err(e) => return Err(e.into()),
            },
        };
        match charge {
            Some(c) if c.status == ChargeStatus::Succeeded => {
                // Amounts of listed charges were compared from their side.
                if c.amount != total && !theirs.contains_key(&intent) {
                    found.push(Found {
                        kind: Kind::AmountMismatch,
                        subject: intent.clone(),
                        order: Some(order),
                        intent: Some(intent),
                        refund: None,
                        ours: Some(total),
                        theirs: Some(c.amount),
                        detail: format!("order {order} charged {} where it costs {}", c.amount.0, total.0),
                        fixed: false,
                    });
                }
            }
            other => found.push(Found {
                kind: Kind::OrderPaidWithoutCharge,
                subject: order.to_string(),
                order: Some(order),
                refund: None,
                ours: Some(total),
                theirs: None,
                detail: match &other {
                    Some(c) => format!(
                        "order {order} is paid, but its charge {intent} is {:?} at the provider",
                        c.status
                    ),
                    None => format!("order {order} is paid, but the provider has no charge {intent}"),
                },
                intent: Some(intent),
                fixed: false,
            }),
        }
    }
    Ok(found)
}

/// Each refund the provider made, against ours. One we never recorded
/// whose order still waits for a refund's answer is asked about again
/// first (the answer may just have been lost).
async fn their_refunds(
    checkout: &CheckoutService,
    pool: &PgPool,
    refunds: &[Refund],
) -> Result<Vec<Found>, BooksError> {
    let provider = checkout.provider().name();
    let mut unknown = unrecorded(pool, provider, refunds).await?;
    if !unknown.is_empty() {
        for refund in &unknown {
            settle_waiting(checkout, pool, &refund.intent_id).await?;
        }
        let again: Vec<Refund> = unknown.iter().map(|r| (*r).clone()).collect();
        let still = unrecorded(pool, provider, &again).await?;
        let still: HashSet<&str> = still.iter().map(|r| r.refund_id.as_str()).collect();
        unknown.retain(|r| still.contains(r.refund_id.as_str()));
    }
    let mut found = Vec::new();
    for refund in unknown {
        let order: Option<uuid::Uuid> =
            sqlx::query_scalar("SELECT id FROM orders WHERE provider = $1 AND intent_id = $2")
                .bind(provider)
                .bind(&refund.intent_id)
                .fetch_optional(pool)
                .await?;
        found.push(Found {
            kind: Kind::RefundUnrecorded,
            subject: refund.refund_id.clone(),
            order: order.map(OrderId),
            intent: Some(refund.intent_id.clone()),
            refund: Some(refund.refund_id.clone()),
            ours: None,
            theirs: Some(refund.amount),
            detail: format!(
                "the provider refunded {} of charge {} without the core asking",
                refund.amount.0, refund.intent_id
            ),
            fixed: false,
        });
    }
    Ok(found)
}

/// The refunds of `refunds` that no refund, stray charge or order of ours
/// names.
async fn unrecorded<'a>(pool: &PgPool, provider: &str, refunds: &'a [Refund]) -> Result<Vec<&'a Refund>, sqlx::Error> {
    let ids: Vec<&str> = refunds.iter().map(|r| r.refund_id.as_str()).collect();
    let known: HashSet<String> = sqlx::query_scalar(
        r#"SELECT r.provider_refund_id FROM refunds r JOIN orders o ON o.id = r.order_id
           WHERE o.provider = $1 AND r.provider_refund_id = ANY($2)
           UNION SELECT provider_refund_id FROM stray_charges WHERE provider = $1 AND provider_refund_id = ANY($2)
           UNION SELECT refund_id FROM orders WHERE provider = $1 AND refund_id = ANY($2)"#,
    )
    .bind(provider)
    .bind(&ids)
    .fetch_all(pool)
    .await?
    .into_iter()
    .collect();
    Ok(refunds.iter().filter(|r| !known.contains(&r.refund_id)).collect())
}

/// Asks again about every refund of ours still waiting on this charge.
async fn settle_waiting(checkout: &CheckoutService, pool: &PgPool, intent: &str) -> Result<(), BooksError> {
    let provider = checkout.provider().name();
    let waiting: Vec<uuid::Uuid> = sqlx::query_scalar(
        r#"SELECT r.id FROM refunds r JOIN orders o ON o.id = r.order_id
           WHERE o.provider = $1 AND o.intent_id = $2 AND r.state = 'pending'"#,
    )
    .bind(provider)
    .bind(intent)
    .fetch_all(pool)
    .await?;
    for refund in waiting {
        checkout.settle_refund(refund).await?;
    }
    checkout.refund_stray(intent).await?;
    let refunding: Option<uuid::Uuid> =
        sqlx::query_scalar("SELECT id FROM orders WHERE provider = $1 AND intent_id = $2 AND state = 'refunding'")
            .bind(provider)
            .bind(intent)
            .fetch_optional(pool)
            .await?;
    if let Some(order) = refunding {
        checkout.drive(OrderId(order)).await?;
    }
    Ok(())
}

/// Each refund of ours that succeeded in the window, against the
/// provider's.
async fn our_refunds(
    checkout: &CheckoutService,
    pool: &PgPool,
    wide: Window,
    window: Window,
) -> Result<Vec<Found>, BooksError> {
    let provider = checkout.provider();
    let ours = sqlx::query(
        r#"SELECT r.provider_refund_id AS id, r.amount_cents AS cents, r.order_id, o.intent_id
             FROM refunds r JOIN orders o ON o.id = r.order_id
            WHERE o.provider = $1 AND r.state = 'succeeded' AND r.amount_cents > 0
              AND r.succeeded_at >= to_timestamp($2) AND r.succeeded_at < to_timestamp($3)
           UNION ALL
           SELECT provider_refund_id, amount_cents, order_id, intent_id FROM stray_charges
            WHERE provider = $1 AND state = 'succeeded'
              AND succeeded_at >= to_timestamp($2) AND succeeded_at < to_timestamp($3)
           UNION ALL
           SELECT refund_id, total_cents, id, intent_id FROM orders
            WHERE provider = $1 AND state = 'refunded' AND total_cents > 0 AND refund_id <> ''
              AND updated_at >= to_timestamp($2) AND updated_at < to_timestamp($3)"#,
    )
    .bind(provider.name())
    .bind(window.since_unix as f64)
    .bind(window.until_unix as f64)
    .fetch_all(pool)
    .await?;
    if ours.is_empty() {
        return Ok(Vec::new());
    }
    let theirs: HashMap<String, Refund> = provider
        .list_refunds(wide)
        .await?
        .into_iter()
        .map(|r| (r.refund_id.clone(), r))
        .collect();
    let mut found = Vec::new();
    for row in ours {
        let id: Option<String> = row.try_get("id")?;
        let cents = Cents(row.try_get("cents")?);
        let order = OrderId(row.try_get("order_id")?);
        let intent: Option<String> = row.try_get("intent_id")?;
        let id = id.unwrap_or_default();
        match theirs.get(&id) {
            Some(r) if r.amount == cents => {}
            Some(r) => found.push(Found {
                kind: Kind::AmountMismatch,
                subject: id.clone(),
                order: Some(order),
                intent,
                refund: Some(id.clone()),
                ours: Some(cents),
                theirs: Some(r.amount),
                detail: format!(
                    "refund {id} of order {order} is {} at the provider, {} here",
                    r.amount.0, cents.0
                ),
                fixed: false,
            }),
            None => found.push(Found {
                kind: Kind::RefundMissing,
                subject: if id.is_empty() { order.to_string() } else { id.clone() },
                order: Some(order),
                intent,
                refund: Some(id.clone()).filter(|s| !s.is_empty()),
                ours: Some(cents),
                theirs: None,
                detail: format!(
                    "order {order}'s refund {id} of {} is not in the provider's books",
                    cents.0
                ),
                fixed: false,
            }),
        }
    }
    Ok(found)
}

async fn orders_by_id(pool: &PgPool, ids: &[uuid::Uuid]) -> Result<HashMap<OrderId, OrderFacts>, sqlx::Error> {
    let rows = sqlx::query("SELECT id, state, intent_id, total_cents FROM orders WHERE id = ANY($1)")
        .bind(ids)
        .fetch_all(pool)
        .await?;
    let mut out = HashMap::with_capacity(rows.len());
    for r in rows {
        out.insert(
            OrderId(r.try_get("id")?),
            OrderFacts {
                state: r.try_get("state")?,
                intent: r.try_get("intent_id")?,
                total: Cents(r.try_get("total_cents")?),
            },
        );
    }
    Ok(out)
}

/// Records what a run found: a new subject is a new row (and, unless
/// fixed, a notification to the operators); one seen before only has its
/// `last_seen_at` moved, so a daily run does not page anyone twice.
async fn record(pool: &PgPool, provider: &str, run: i64, found: &[Found]) -> Result<(), sqlx::Error> {
    for f in found {
        let mut tx = pool.begin().await?;
        let state = if f.fixed { "fixed" } else { "open" };
        let new: Option<(i64, bool)> = sqlx::query_as(
            r#"INSERT INTO books_mismatches
                   (provider, kind, subject, order_id, intent_id, refund_id, ours_cents, theirs_cents, detail, state, run_id)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
               ON CONFLICT (provider, kind, subject) DO UPDATE SET last_seen_at = now()
               RETURNING id, (xmax = 0)"#,
        )
        .bind(provider)
        .bind(f.kind.as_str())
        .bind(&f.subject)
        .bind(f.order.map(|o| o.0))
        .bind(&f.intent)
        .bind(&f.refund)
        .bind(f.ours.map(|c| c.0))
        .bind(f.theirs.map(|c| c.0))
        .bind(&f.detail)
        .bind(state)
        .bind(run)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some((id, true)) = new {
            tracing::warn!(mismatch = id, kind = f.kind.as_str(), fixed = f.fixed, detail = %f.detail, "the books differ");
            notify_operators(
                &mut tx,
                topic::BOOKS_MISMATCH,
                f.order,
                json!({ "mismatch_id": id, "kind": f.kind, "state": state, "order_id": f.order,
                        "intent_id": f.intent, "refund_id": f.refund, "ours_cents": f.ours,
                        "theirs_cents": f.theirs, "detail": f.detail }),
            )
            .await?;
        }
        tx.commit().await?;
    }
    Ok(())
}

/// A mismatch as operators see it in the portal.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Mismatch {
    pub id: i64,
    pub kind: String,
    /// `open` (needs an operator), `fixed` (put right by the comparison),
    /// `resolved` (an operator closed it).
    pub state: String,
    pub order_id: Option<uuid::Uuid>,
    pub intent_id: Option<String>,
    pub refund_id: Option<String>,
    /// Minor units of the event's currency: ours and the provider's.
    pub ours_cents: Option<i64>,
    pub theirs_cents: Option<i64>,
    pub detail: String,
    pub found_at: chrono::DateTime<chrono::Utc>,
    pub last_seen_at: chrono::DateTime<chrono::Utc>,
    pub resolution: Option<String>,
    pub resolved_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// No such mismatch among the organisation's orders.
    #[error("no such mismatch")]
    NotFound,
    #[error("the mismatch is {state}, not open")]
    NotOpen { state: String },
    #[error("the resolution must say what was done, in 1 to 500 characters")]
    InvalidResolution,
    #[error(transparent)]
    Storage(#[from] sqlx::Error),
}

/// A mismatch's columns, as `mismatch` reads them (a macro so that each
/// statement stays one literal).
macro_rules! mismatch_columns {
    () => {
        "m.id, m.kind, m.state, m.order_id, m.intent_id, m.refund_id, m.ours_cents, m.theirs_cents, m.detail, \
         m.found_at, m.last_seen_at, m.resolution, m.resolved_at"
    };
}

fn mismatch(r: &sqlx::postgres::PgRow) -> Result<Mismatch, sqlx::Error> {
    Ok(Mismatch {
        id: r.try_get("id")?,
        kind: r.try_get("kind")?,
        state: r.try_get("state")?,
        order_id: r.try_get("order_id")?,
        intent_id: r.try_get("intent_id")?,
        refund_id: r.try_get("refund_id")?,
        ours_cents: r.try_get("ours_cents")?,
        theirs_cents: r.try_get("theirs_cents")?,
        detail: r.try_get("detail")?,
        found_at: r.try_get("found_at")?,
        last_seen_at: r.try_get("last_seen_at")?,
        resolution: r.try_get("resolution")?,
        resolved_at: r.try_get("resolved_at")?,
    })
}

/// The organisation's mismatches (those about its events' orders), newest
/// first; `state` narrows them. A charge that names no order of ours
/// belongs to no organisation: only the operators' webhook hears of it.
pub async fn list_for(
    pool: &PgPool,
    organisation: crate::ids::OrganisationId,
    state: Option<&str>,
) -> Result<Vec<Mismatch>, sqlx::Error> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        mismatch_columns!(),
        r#" FROM books_mismatches m
           JOIN orders o ON o.id = m.order_id JOIN events e ON e.id = o.event_id
           WHERE e.organisation_id = $1 AND ($2::text IS NULL OR m.state = $2)
           ORDER BY m.found_at DESC, m.id DESC LIMIT 500"#
    ))
    .bind(organisation.0)
    .bind(state)
    .fetch_all(pool)
    .await?;
    rows.iter().map(mismatch).collect()
}

/// An operator closes an open mismatch, saying what was done.
pub async fn resolve(
    pool: &PgPool,
    organisation: crate::ids::OrganisationId,
    operator: crate::ids::OperatorId,
    id: i64,
    resolution: &str,
) -> Result<Mismatch, ResolveError> {
    let resolution = resolution.trim();
    if resolution.is_empty() || resolution.chars().count() > 500 {
        return Err(ResolveError::InvalidResolution);
    }
    let mut tx = pool.begin().await?;
    let state: Option<String> = sqlx::query_scalar(
        r#"SELECT m.state FROM books_mismatches m
           JOIN orders o ON o.id = m.order_id JOIN events e ON e.id = o.event_id
           WHERE m.id = $1 AND e.organisation_id = $2 FOR UPDATE OF m"#,
    )
    .bind(id)
    .bind(organisation.0)
    .fetch_optional(&mut *tx)
    .await?;
    match state.as_deref() {
        None => return Err(ResolveError::NotFound),
        Some("open") => {}
        Some(other) => {
            return Err(ResolveError::NotOpen {
                state: other.to_owned(),
            });
        }
    }
    let row = sqlx::query(concat!(
        r#"UPDATE books_mismatches m SET state = 'resolved', resolved_at = now(), resolved_by = $2, resolution = $3
           WHERE m.id = $1 RETURNING "#,
        mismatch_columns!()
    ))
    .bind(id)
    .bind(operator.0)
    .bind(resolution)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(mismatch(&row)?)
}
