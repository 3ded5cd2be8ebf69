//! Resale payouts, paid: a seller names the connected account at the
//! provider that receives their money; each payout the sale recorded
//! (`tickets/resale.rs`) is sent there as a transfer by the reconciliation
//! job once payable, with a key derived from the payout and its attempt, so
//! a lost answer is retried onto the same transfer and none is sent twice.
//! A refused transfer moved nothing: the payout is `failed`, operators are
//! told and see it, and the seller naming an account again starts a new
//! attempt. A payout whose sale was refunded first is cancelled.

use serde::Serialize;
use serde_json::json;
use sqlx::{PgPool, Row};

use crate::checkout::provider::{PaymentProvider, ProviderError, TransferRequest};
use crate::ids::{Cents, FanId, OrderId};
use crate::outbox::{notify_operators, topic};

/// A seller's payouts as they see them (and operators do).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Payout {
    pub listing_id: uuid::Uuid,
    pub order_id: uuid::Uuid,
    pub seller_fan_id: String,
    pub gross_cents: i64,
    pub fee_cents: i64,
    pub net_cents: i64,
    /// `owed`, `paid`, `failed` or `cancelled`.
    pub state: String,
    pub destination: Option<String>,
    pub transfer_id: Option<String>,
    pub failure_code: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub paid_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The account a seller named, as the provider confirmed it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PayoutAccountView {
    pub account_id: String,
    pub payouts_enabled: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum PayoutError {
    #[error("the account id must be acct_ followed by letters, digits or _ (at most 255 characters)")]
    InvalidAccount,
    #[error("the payment provider has no such account")]
    UnknownAccount,
    #[error("the account cannot receive payouts")]
    AccountDisabled,
    #[error("the payment provider did not answer: {0}")]
    ProviderUnavailable(String),
    #[error(transparent)]
    Storage(#[from] sqlx::Error),
}

/// A seller names (or changes) their account: checked with the provider,
/// then kept; payouts that failed are owed again, on a new attempt.
pub async fn set_account(
    pool: &PgPool,
    provider: &dyn PaymentProvider,
    fan: &FanId,
    account_id: &str,
) -> Result<PayoutAccountView, PayoutError> {
    // A connected account's id (`acct_` and letters, digits or `_`),
    // checked before the provider is asked.
    let account_id = account_id.trim();
    let well_formed = account_id
        .strip_prefix("acct_")
        .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
    if !well_formed || account_id.len() > 255 {
        return Err(PayoutError::InvalidAccount);
    }
    let account = match provider.payout_account(account_id).await {
        Ok(a) => a,
        Err(ProviderError::Rejected { .. }) => return Err(PayoutError::UnknownAccount),
        Err(ProviderError::Unknown(why)) => return Err(PayoutError::ProviderUnavailable(why)),
    };
    if !account.payouts_enabled {
        return Err(PayoutError::AccountDisabled);
    }
    let mut tx = pool.begin().await?;
    sqlx::query(
        r#"INSERT INTO fan_payout_accounts (fan_id, provider, account_id) VALUES ($1, $2, $3)
           ON CONFLICT (fan_id) DO UPDATE SET provider = $2, account_id = $3, updated_at = now()"#,
    )
    .bind(fan.as_str())
    .bind(provider.name())
    .bind(&account.account_id)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        r#"UPDATE resale_payouts SET state = 'owed', attempt = attempt + 1, failure_code = NULL,
                  next_check_at = now(), updated_at = now()
           WHERE seller_fan_id = $1 AND state = 'failed'"#,
    )
    .bind(fan.as_str())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(PayoutAccountView {
        account_id: account.account_id,
        payouts_enabled: account.payouts_enabled,
    })
}

/// A payout row as `Payout`.
fn payout(r: &sqlx::postgres::PgRow) -> Result<Payout, sqlx::Error> {
    Ok(Payout {
        listing_id: r.try_get("listing_id")?,
        order_id: r.try_get("order_id")?,
        seller_fan_id: r.try_get("seller_fan_id")?,
        gross_cents: r.try_get("gross_cents")?,
        fee_cents: r.try_get("fee_cents")?,
        net_cents: r.try_get("net_cents")?,
        state: r.try_get("state")?,
        destination: r.try_get("destination")?,
        transfer_id: r.try_get("transfer_id")?,
        failure_code: r.try_get("failure_code")?,
        created_at: r.try_get("created_at")?,
        paid_at: r.try_get("paid_at")?,
    })
}

/// The seller's payouts, newest first (at most 200).
pub async fn for_seller(pool: &PgPool, fan: &FanId) -> Result<Vec<Payout>, sqlx::Error> {
    let rows =
        sqlx::query(r#"SELECT * FROM resale_payouts WHERE seller_fan_id = $1 ORDER BY created_at DESC LIMIT 200"#)
            .bind(fan.as_str())
            .fetch_all(pool)
            .await?;
    rows.iter().map(payout).collect()
}

/// An organisation's payouts in one state (failed ones for operators to
/// follow up), newest first (at most 500).
pub async fn for_organisation(
    pool: &PgPool,
    organisation: crate::ids::OrganisationId,
    state: Option<&str>,
) -> Result<Vec<Payout>, sqlx::Error> {
    let rows = sqlx::query(
        r#"SELECT p.* FROM resale_payouts p JOIN orders o ON o.id = p.order_id JOIN events e ON e.id = o.event_id
           WHERE e.organisation_id = $1 AND ($2::text IS NULL OR p.state = $2)
           ORDER BY p.created_at DESC LIMIT 500"#,
    )
    .bind(organisation.0)
    .bind(state)
    .fetch_all(pool)
    .await?;
    rows.iter().map(payout).collect()
}

/// Payouts due a try (owed, payable, not tried too recently), each pushed
/// back as it is taken so concurrent jobs take different ones.
pub async fn due(pool: &PgPool, delay_secs: u64, batch: i64) -> Result<Vec<uuid::Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        r#"UPDATE resale_payouts SET next_check_at = now() + interval '60 seconds'
           WHERE listing_id IN (
               SELECT listing_id FROM resale_payouts
               WHERE state = 'owed' AND next_check_at <= now()
                 AND created_at <= now() - make_interval(secs => $1)
               ORDER BY next_check_at LIMIT $2 FOR UPDATE SKIP LOCKED)
           RETURNING listing_id"#,
    )
    .bind(delay_secs as f64)
    .bind(batch)
    .fetch_all(pool)
    .await
}

/// What one try did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Paid {
    Paid {
        transfer_id: String,
    },
    /// The seller has named no account yet: it waits.
    NoAccount,
    /// The buyer's order was refunded first: nothing is owed.
    Cancelled,
    /// The provider refused the transfer.
    Failed {
        code: String,
    },
    /// No answer: the next try asks again with the same key.
    Unknown,
    /// Not owed (any more).
    NotOwed,
}

/// Tries to pay one payout.
#[tracing::instrument(skip(pool, provider))]
pub async fn pay(pool: &PgPool, provider: &dyn PaymentProvider, listing: uuid::Uuid) -> Result<Paid, sqlx::Error> {
    let Some(r) = sqlx::query(
        r#"SELECT p.order_id, p.seller_fan_id, p.net_cents, p.attempt, p.state, o.state AS order_state, o.currency,
                  a.account_id
           FROM resale_payouts p JOIN orders o ON o.id = p.order_id
           LEFT JOIN fan_payout_accounts a ON a.fan_id = p.seller_fan_id
           WHERE p.listing_id = $1"#,
    )
    .bind(listing)
    .fetch_optional(pool)
    .await?
    else {
        return Ok(Paid::NotOwed);
    };
    let state: String = r.try_get("state")?;
    if state != "owed" {
        return Ok(Paid::NotOwed);
    }
    let order = OrderId(r.try_get("order_id")?);
    let order_state: String = r.try_get("order_state")?;
    if matches!(order_state.as_str(), "refunding" | "refunded") {
        sqlx::query(
            "UPDATE resale_payouts SET state = 'cancelled', updated_at = now() WHERE listing_id = $1 AND state = 'owed'",
        )
        .bind(listing)
        .execute(pool)
        .await?;
        return Ok(Paid::Cancelled);
    }
    let Some(destination) = r.try_get::<Option<String>, _>("account_id")? else {
        // Asked again within the hour (and at once when the seller names one).
        sqlx::query("UPDATE resale_payouts SET next_check_at = now() + interval '1 hour' WHERE listing_id = $1")
            .bind(listing)
            .execute(pool)
            .await?;
        return Ok(Paid::NoAccount);
    };
    let attempt: i32 = r.try_get("attempt")?;
    let amount = Cents(r.try_get("net_cents")?);
    let request = TransferRequest {
        destination: destination.clone(),
        amount,
        currency: r.try_get("currency")?,
        transfer_group: order.to_string(),
        idempotency_key: format!("payout-{listing}-{attempt}"),
    };
    match provider.transfer(&request).await {
        Ok(t) => {
            sqlx::query(
                r#"UPDATE resale_payouts SET state = 'paid', transfer_id = $2, destination = $3, paid_at = now(),
                          updated_at = now()
                   WHERE listing_id = $1 AND state = 'owed' AND attempt = $4"#,
            )
            .bind(listing)
            .bind(&t.transfer_id)
            .bind(&destination)
            .bind(attempt)
            .execute(pool)
            .await?;
            tracing::info!(order_id = %order, transfer = %t.transfer_id, "resale payout sent");
            Ok(Paid::Paid {
                transfer_id: t.transfer_id,
            })
        }
        Err(ProviderError::Rejected { code, .. }) => {
            let mut tx = pool.begin().await?;
            let moved = sqlx::query(
                r#"UPDATE resale_payouts SET state = 'failed', failure_code = $2, destination = $3, updated_at = now()
                   WHERE listing_id = $1 AND state = 'owed' AND attempt = $4"#,
            )
            .bind(listing)
            .bind(&code)
            .bind(&destination)
            .bind(attempt)
            .execute(&mut *tx)
            .await?;
            if moved.rows_affected() == 1 {
                notify_operators(
                    &mut tx,
                    topic::PAYOUT_FAILED,
                    Some(order),
                    json!({ "listing_id": listing, "order_id": order, "seller_fan_id": r.try_get::<String, _>("seller_fan_id")?,
                            "net_cents": amount, "destination": destination, "failure_code": code }),
                )
                .await?;
            }
            tx.commit().await?;
            tracing::warn!(order_id = %order, %code, "resale payout refused by the provider");
            Ok(Paid::Failed { code })
        }
        Err(ProviderError::Unknown(why)) => {
            tracing::warn!(order_id = %order, %why, "resale payout not confirmed; will ask again with the same key");
            Ok(Paid::Unknown)
        }
    }
}
