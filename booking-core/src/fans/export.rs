//! Everything Usher holds about one fan, as one JSON document grouped by
//! table (format `usher.fan-data.v1`). Each group's objects are the
//! table's rows as stored, less internal columns (request hashes, ticket
//! secrets, the reconciliation job's schedule): a column added later shows
//! up by itself, so the export never silently misses data; columns are
//! never renamed or dropped without a new format version. Each group is
//! bounded (`GROUP_LIMIT` rows); a cut group is named in `truncated`.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgConnection, PgPool, Row};

use super::FanIdentity;

pub const FORMAT: &str = "usher.fan-data.v1";

/// The most rows of one table a document carries: a fan with more gets
/// the oldest this many and the group named in `truncated` (a fan has
/// tens; this bounds the answer's memory, about 1 KB a row).
pub const GROUP_LIMIT: i64 = 5_000;

/// The groups, in the document's order: (field, SQL giving one jsonb array
/// of the fan's rows, $1 the fan id, $2 the limit).
const GROUPS: &[(&str, &str)] = &[
    (
        "orders",
        "SELECT coalesce(jsonb_agg(to_jsonb(x) - 'fingerprint' - 'next_check_at' - 'checks' ORDER BY x.created_at, x.id), '[]')
         FROM (SELECT * FROM orders WHERE fan_id = $1 ORDER BY created_at, id LIMIT $2) x",
    ),
    (
        "tickets",
        "SELECT coalesce(jsonb_agg(to_jsonb(x) - 'secret' ORDER BY x.issued_at, x.id), '[]')
         FROM (SELECT * FROM tickets WHERE owner_fan_id = $1 ORDER BY issued_at, id LIMIT $2) x",
    ),
    (
        "holds",
        "SELECT coalesce(jsonb_agg(to_jsonb(x) - 'fingerprint' ORDER BY x.created_at, x.id), '[]')
         FROM (SELECT * FROM holds WHERE fan_id = $1 ORDER BY created_at, id LIMIT $2) x",
    ),
    (
        "refunds",
        "SELECT coalesce(jsonb_agg(to_jsonb(x) - 'fingerprint' - 'next_check_at' ORDER BY x.created_at, x.id), '[]')
         FROM (SELECT * FROM refunds WHERE fan_id = $1 ORDER BY created_at, id LIMIT $2) x",
    ),
    (
        "transfers",
        "SELECT coalesce(jsonb_agg(to_jsonb(x) - 'fingerprint' ORDER BY x.created_at, x.id), '[]')
         FROM (SELECT * FROM ticket_transfers WHERE from_fan_id = $1 OR to_fan_id = $1
               ORDER BY created_at, id LIMIT $2) x",
    ),
    (
        "resale_listings",
        "SELECT coalesce(jsonb_agg(to_jsonb(x) - 'fingerprint' ORDER BY x.created_at, x.id), '[]')
         FROM (SELECT * FROM resale_listings WHERE seller_fan_id = $1 ORDER BY created_at, id LIMIT $2) x",
    ),
    (
        "resale_payouts",
        "SELECT coalesce(jsonb_agg(to_jsonb(x) - 'next_check_at' ORDER BY x.created_at, x.listing_id), '[]')
         FROM (SELECT * FROM resale_payouts WHERE seller_fan_id = $1 ORDER BY created_at, listing_id LIMIT $2) x",
    ),
    (
        "payout_accounts",
        "SELECT coalesce(jsonb_agg(to_jsonb(x)), '[]') FROM (SELECT * FROM fan_payout_accounts WHERE fan_id = $1 LIMIT $2) x",
    ),
    (
        "waitlist_entries",
        "SELECT coalesce(jsonb_agg(to_jsonb(x) ORDER BY x.id), '[]')
         FROM (SELECT * FROM waitlist_entries WHERE fan_id = $1 ORDER BY id LIMIT $2) x",
    ),
    (
        "refused_requests",
        "SELECT coalesce(jsonb_agg(to_jsonb(x) - 'fingerprint' ORDER BY x.created_at, x.key), '[]')
         FROM (SELECT * FROM idempotency_keys WHERE fan_id = $1 ORDER BY created_at, key LIMIT $2) x",
    ),
    (
        // Each notification to or naming the fan (a transfer's other side:
        // a scan of the outbox), with how its mail to the fan went.
        "notifications",
        "SELECT coalesce(jsonb_agg(to_jsonb(x) ORDER BY x.id), '[]')
         FROM (SELECT o.id, o.topic, o.order_id, o.fan_id, o.payload, o.created_at,
                      d.state AS email_state, d.delivered_at AS email_delivered_at
               FROM outbox o LEFT JOIN outbox_deliveries d ON d.outbox_id = o.id AND d.channel = 'email'
               WHERE o.fan_id = $1 OR strpos(o.payload::text, to_jsonb($1::text)::text) > 0
               ORDER BY o.id LIMIT $2) x",
    ),
];

/// The document. Every group is an array of objects, one per row, with the
/// table's columns as named in the migrations (ids as strings, times in
/// RFC 3339, money in the minor unit).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FanData {
    /// `usher.fan-data.v1`
    pub format: String,
    pub generated_at: DateTime<Utc>,
    pub fan_id: String,
    /// The name your sign-in token carries (Usher stores no name).
    pub name: Option<String>,
    /// Where your notifications are mailed.
    pub email: String,
    /// Your orders: seats, prices, `charge_lines` (what was charged, line
    /// by line), total and currency, state, the provider's ids, dates, the
    /// payment-method token and the card's fingerprint.
    #[schema(value_type = Vec<Object>)]
    pub orders: Vec<Value>,
    /// Tickets you own now: event, seat, price, state, version, check-in.
    #[schema(value_type = Vec<Object>)]
    pub tickets: Vec<Value>,
    /// Seats you held (made, expired, released or bought).
    #[schema(value_type = Vec<Object>)]
    pub holds: Vec<Value>,
    /// Refunds of your orders: tickets, amount, state, the provider's id,
    /// and the reason an operator gave.
    #[schema(value_type = Vec<Object>)]
    pub refunds: Vec<Value>,
    /// Tickets you gave (`from_fan_id`) or received (`to_fan_id`).
    #[schema(value_type = Vec<Object>)]
    pub transfers: Vec<Value>,
    /// Tickets you listed for resale.
    #[schema(value_type = Vec<Object>)]
    pub resale_listings: Vec<Value>,
    /// What your resales paid you (or owe you): gross, fee, net, where to.
    #[schema(value_type = Vec<Object>)]
    pub resale_payouts: Vec<Value>,
    /// The account your payouts go to (none or one).
    #[schema(value_type = Vec<Object>)]
    pub payout_accounts: Vec<Value>,
    /// Your places on waitlists, with the offers made.
    #[schema(value_type = Vec<Object>)]
    pub waitlist_entries: Vec<Value>,
    /// Requests of yours that were refused, kept a day for retries.
    #[schema(value_type = Vec<Object>)]
    pub refused_requests: Vec<Value>,
    /// Notifications about you: topic, what they said, whether the mail to
    /// you went out.
    #[schema(value_type = Vec<Object>)]
    pub notifications: Vec<Value>,
    /// Groups cut at 5,000 rows (ask support for the rest).
    pub truncated: Vec<String>,
}

/// Reads the document in one snapshot (a repeatable-read transaction), so
/// the groups agree with each other.
pub async fn export(pool: &PgPool, fan: &FanIdentity) -> Result<FanData, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *tx)
        .await?;
    let (groups, now) = read_groups(&mut tx, fan).await?;
    tx.commit().await?;
    let mut groups = groups.into_iter();
    let mut truncated = Vec::new();
    let mut next = |name: &str| -> Vec<Value> {
        let mut rows = groups.next().unwrap_or_default();
        if rows.len() as i64 > GROUP_LIMIT {
            rows.truncate(GROUP_LIMIT as usize);
            truncated.push(name.to_owned());
        }
        rows
    };
    let data = FanData {
        format: FORMAT.into(),
        generated_at: now,
        fan_id: fan.id.as_str().to_owned(),
        name: fan.name.clone(),
        email: fan.email.clone(),
        orders: next("orders"),
        tickets: next("tickets"),
        holds: next("holds"),
        refunds: next("refunds"),
        transfers: next("transfers"),
        resale_listings: next("resale_listings"),
        resale_payouts: next("resale_payouts"),
        payout_accounts: next("payout_accounts"),
        waitlist_entries: next("waitlist_entries"),
        refused_requests: next("refused_requests"),
        notifications: next("notifications"),
        truncated: vec![],
    };
    Ok(FanData { truncated, ..data })
}

async fn read_groups(
    conn: &mut PgConnection,
    fan: &FanIdentity,
) -> Result<(Vec<Vec<Value>>, DateTime<Utc>), sqlx::Error> {
    let mut groups = Vec::with_capacity(GROUPS.len());
    for (_, sql) in GROUPS {
        let v: Value = sqlx::query_scalar(*sql)
            .bind(fan.id.as_str())
            .bind(GROUP_LIMIT + 1)
            .fetch_one(&mut *conn)
            .await?;
        groups.push(match v {
            Value::Array(rows) => rows,
            _ => vec![],
        });
    }
    let now: DateTime<Utc> = sqlx::query("SELECT now() AS now")
        .fetch_one(&mut *conn)
        .await?
        .try_get("now")?;
    Ok((groups, now))
}
