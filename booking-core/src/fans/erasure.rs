//! Erasing a fan: in one transaction, refuse while something still needs
//! them, end what is open (holds, waitlist places, listings, mail not yet
//! sent), remove what only identifies them, and replace their id by its
//! pseudonym everywhere the books keep rows. The rule and why are in
//! migrations/0023_fan_data.sql. Erasures of one fan are serialised by an
//! advisory lock on the pseudonym; a second one changes nothing and answers
//! the first one's record again.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use sqlx::{PgConnection, PgPool, Row};

use super::{FanDataError, FanIdentity, audit};
use crate::idempotency::Outcome;
use crate::ids::{OperatorId, OrganisationId};

/// Who asks: the fan, or an operator for them (recorded in the audit log).
#[derive(Debug, Clone)]
pub enum ErasureBy<'a> {
    Fan,
    Operator {
        id: OperatorId,
        org: OrganisationId,
        reason: &'a str,
    },
}

/// The erasure's record: the pseudonym the fan's id became, when, and how
/// many rows each step changed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Erasure {
    /// `erased:` and 32 hex digits; the same for the same fan id.
    pub fan_ref: String,
    pub erased_at: DateTime<Utc>,
    /// Rows changed per step, e.g. `holds_released`, `orders`,
    /// `mails_cancelled`, `payout_accounts_removed`.
    #[schema(value_type = Object)]
    pub changed: Value,
}

/// An id shorter than this is not searched for inside free text (it would
/// match unrelated words); values equal to it are still replaced.
const MIN_ID_IN_TEXT: usize = 6;

/// Erases the fan, or answers the record of an earlier erasure if there is
/// nothing left to erase.
pub async fn erase(
    pool: &PgPool,
    fan: &FanIdentity,
    key: &str,
    by: ErasureBy<'_>,
) -> Result<Outcome<Erasure>, FanDataError> {
    let mut tx = pool.begin().await?;
    let fan_ref = super::fan_ref(&mut tx, &fan.id).await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('fan-data:' || $1, 0))")
        .bind(&fan_ref)
        .execute(&mut *tx)
        .await?;
    refuse_while_needed(&mut tx, fan).await?;
    let changed = apply(&mut tx, fan, &fan_ref).await?;
    let total: i64 = changed.values().filter_map(Value::as_i64).sum();
    let operator = match &by {
        ErasureBy::Operator { id, .. } => Some(id.0),
        ErasureBy::Fan => None,
    };
    let prior = sqlx::query("SELECT erased_at, changed FROM fan_data_erasures WHERE fan_ref = $1")
        .bind(&fan_ref)
        .fetch_optional(&mut *tx)
        .await?;
    let outcome = match prior {
        Some(row) if total == 0 => Outcome::replay(Erasure {
            fan_ref: fan_ref.clone(),
            erased_at: row.try_get("erased_at")?,
            changed: row.try_get("changed")?,
        }),
        _ => {
            // New, or the fan came back after an erasure and left data again.
            let changed = Value::Object(changed);
            let erased_at: DateTime<Utc> = sqlx::query_scalar(
                r#"INSERT INTO fan_data_erasures (fan_ref, idempotency_key, operator_id, changed)
                   VALUES ($1, $2, $3, $4)
                   ON CONFLICT (fan_ref) DO UPDATE
                   SET erased_at = now(), idempotency_key = $2, operator_id = $3, changed = $4
                   RETURNING erased_at"#,
            )
            .bind(&fan_ref)
            .bind(key)
            .bind(operator)
            .bind(&changed)
            .fetch_one(&mut *tx)
            .await?;
            Outcome::new(Erasure {
                fan_ref: fan_ref.clone(),
                erased_at,
                changed,
            })
        }
    };
    if let ErasureBy::Operator { id, org, reason } = by {
        audit::record(&mut tx, org, id, audit::Action::Erasure, &fan_ref, reason).await?;
    }
    tx.commit().await?;
    Ok(outcome)
}

/// 409 while the fan is needed: money moving to or from them, or a buyer
/// paying for their listing.
async fn refuse_while_needed(tx: &mut PgConnection, fan: &FanIdentity) -> Result<(), FanDataError> {
    let id = fan.id.as_str();
    let order: Option<uuid::Uuid> = sqlx::query_scalar(
        "SELECT id FROM orders WHERE fan_id = $1 AND state IN ('pending_payment', 'paid', 'refunding') LIMIT 1",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(order_id) = order {
        return Err(FanDataError::OrderInProgress { order_id });
    }
    let refund: Option<uuid::Uuid> =
        sqlx::query_scalar("SELECT id FROM refunds WHERE fan_id = $1 AND state = 'pending' LIMIT 1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    if let Some(refund_id) = refund {
        return Err(FanDataError::RefundInProgress { refund_id });
    }
    let payout: Option<uuid::Uuid> = sqlx::query_scalar(
        "SELECT listing_id FROM resale_payouts WHERE seller_fan_id = $1 AND state IN ('owed', 'failed') LIMIT 1",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(listing_id) = payout {
        return Err(FanDataError::PayoutOwed { listing_id });
    }
    let reserved: Option<uuid::Uuid> = sqlx::query_scalar(
        r#"SELECT id FROM resale_listings
           WHERE seller_fan_id = $1 AND state = 'listed' AND reserved_by IS NOT NULL AND reserved_until > now()
           LIMIT 1"#,
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(listing_id) = reserved {
        return Err(FanDataError::ListingReserved { listing_id });
    }
    Ok(())
}

/// Each step: (name in the answer, SQL returning one count). $1 the fan
/// id, $2 the pseudonym, $3 the strings to take out of free text. Ending
/// and scrubbing come before the id is replaced, since they find the rows
/// by it.
const STEPS: &[(&str, &str)] = &[
    (
        "holds_released",
        r#"WITH h AS (
               UPDATE holds SET state = 'released', ended_at = now()
               WHERE fan_id = $1 AND state = 'active'
               RETURNING id, event_id, seat_ids
           ), freed AS (
               DELETE FROM seat_claims c USING h, unnest(h.seat_ids) AS s(seat_id)
               WHERE c.event_id = h.event_id AND c.seat_id = s.seat_id AND c.hold_id = h.id AND c.kind = 'hold'
               RETURNING c.seat_id
           )
           -- freed runs whether read or not (a data-modifying WITH).
           SELECT count(*) FROM h"#,
    ),
    (
        "waitlist_entries_left",
        r#"WITH w AS (UPDATE waitlist_entries SET state = 'left', ended_at = now()
                      WHERE fan_id = $1 AND state IN ('waiting', 'offered') RETURNING 1)
           SELECT count(*) FROM w"#,
    ),
    (
        "listings_cancelled",
        r#"WITH l AS (UPDATE resale_listings SET state = 'cancelled', ended_at = now(),
                                                 reserved_by = NULL, reserved_until = NULL
                      WHERE seller_fan_id = $1 AND state = 'listed' RETURNING 1)
           SELECT count(*) FROM l"#,
    ),
    (
        "mails_cancelled",
        r#"WITH d AS (UPDATE outbox_deliveries d SET state = 'dead', last_error = 'cancelled: the fan''s data was erased'
                      FROM outbox o
                      WHERE o.id = d.outbox_id AND o.fan_id = $1 AND d.channel = 'email' AND d.state = 'pending'
                      RETURNING 1)
           SELECT count(*) FROM d"#,
    ),
    (
        // Errors of deliveries (an SMTP answer may quote the address).
        "delivery_errors_scrubbed",
        r#"WITH d AS (UPDATE outbox_deliveries SET last_error = 'erased: the error named ' || $2
                      WHERE last_error IS NOT NULL
                        AND EXISTS (SELECT 1 FROM unnest($3::text[]) w WHERE strpos(last_error, w) > 0)
                      RETURNING 1)
           SELECT count(*) FROM d"#,
    ),
    (
        // The fan's notifications, and any other naming them in a value
        // (a transfer's receiver): a scan of the outbox.
        "notifications",
        r#"WITH n AS (UPDATE outbox
                      SET payload = fan_data_scrub(payload, $1, $2, $3),
                          fan_id = CASE WHEN fan_id = $1 THEN $2 ELSE fan_id END
                      WHERE fan_id = $1
                         OR strpos(payload::text, to_jsonb($1::text)::text) > 0
                         OR EXISTS (SELECT 1 FROM unnest($3::text[]) w WHERE strpos(payload::text, w) > 0)
                      RETURNING 1)
           SELECT count(*) FROM n"#,
    ),
    (
        // Operators' free text about the fan's orders.
        "mismatch_notes_scrubbed",
        r#"WITH m AS (UPDATE books_mismatches b
                      SET detail = fan_data_scrub(to_jsonb(b.detail), $1, $2, $3) #>> '{}',
                          resolution = fan_data_scrub(to_jsonb(b.resolution), $1, $2, $3) #>> '{}'
                      FROM orders o
                      WHERE o.id = b.order_id AND o.fan_id = $1
                      RETURNING 1)
           SELECT count(*) FROM m"#,
    ),
    (
        "refunds",
        r#"WITH r AS (UPDATE refunds SET fan_id = $2, reason = fan_data_scrub(to_jsonb(reason), $1, $2, $3) #>> '{}'
                      WHERE fan_id = $1 RETURNING 1)
           SELECT count(*) FROM r"#,
    ),
    (
        // The card's fingerprint and payment-method token only identify
        // the fan's card; the charge (intent id) is what the books need.
        "orders",
        r#"WITH o AS (UPDATE orders SET fan_id = $2, card_fingerprint = NULL, payment_method = 'erased'
                      WHERE fan_id = $1 RETURNING 1)
           SELECT count(*) FROM o"#,
    ),
    (
        "holds",
        "WITH h AS (UPDATE holds SET fan_id = $2 WHERE fan_id = $1 RETURNING 1) SELECT count(*) FROM h",
    ),
    (
        "tickets",
        "WITH t AS (UPDATE tickets SET owner_fan_id = $2 WHERE owner_fan_id = $1 RETURNING 1) SELECT count(*) FROM t",
    ),
    (
        "transfers_given",
        "WITH t AS (UPDATE ticket_transfers SET from_fan_id = $2 WHERE from_fan_id = $1 RETURNING 1) SELECT count(*) FROM t",
    ),
    (
        "transfers_received",
        "WITH t AS (UPDATE ticket_transfers SET to_fan_id = $2 WHERE to_fan_id = $1 RETURNING 1) SELECT count(*) FROM t",
    ),
    (
        "resale_listings",
        "WITH l AS (UPDATE resale_listings SET seller_fan_id = $2 WHERE seller_fan_id = $1 RETURNING 1) SELECT count(*) FROM l",
    ),
    (
        "resale_payouts",
        "WITH p AS (UPDATE resale_payouts SET seller_fan_id = $2 WHERE seller_fan_id = $1 RETURNING 1) SELECT count(*) FROM p",
    ),
    (
        "waitlist_entries",
        "WITH w AS (UPDATE waitlist_entries SET fan_id = $2 WHERE fan_id = $1 RETURNING 1) SELECT count(*) FROM w",
    ),
    (
        "refused_requests_removed",
        "WITH k AS (DELETE FROM idempotency_keys WHERE fan_id = $1 RETURNING 1) SELECT count(*) FROM k",
    ),
    (
        "payout_accounts_removed",
        "WITH a AS (DELETE FROM fan_payout_accounts WHERE fan_id = $1 RETURNING 1) SELECT count(*) FROM a",
    ),
];

async fn apply(tx: &mut PgConnection, fan: &FanIdentity, fan_ref: &str) -> Result<Map<String, Value>, sqlx::Error> {
    let mut within = fan.within();
    if fan.id.as_str().chars().count() >= MIN_ID_IN_TEXT {
        within.push(fan.id.as_str().to_owned());
    }
    let mut changed = Map::new();
    for (name, sql) in STEPS {
        // A statement takes only the parameters it names (and each naming
        // $3 names $2).
        let mut q = sqlx::query_scalar::<_, i64>(*sql).bind(fan.id.as_str());
        if sql.contains("$2") {
            q = q.bind(fan_ref);
        }
        if sql.contains("$3") {
            q = q.bind(&within);
        }
        let n = q.fetch_one(&mut *tx).await?;
        changed.insert((*name).to_owned(), n.into());
    }
    Ok(changed)
}
