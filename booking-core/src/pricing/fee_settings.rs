//! An event's currency, fees and taxes as operators set them in the portal
//! (`event_fees`, `events.currency`), checked before anything is saved and
//! saved in one transaction; and the lines they put on a new order
//! (`fees.rs`), stored with it in the order's own transaction.

use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool, Row};

use crate::ids::{EventId, OrderId, OrganisationId};
use crate::pricing::currency;
use crate::pricing::fees::{Charges, FeeSettings};

/// The largest fee, in minor units, of any kind: a fee beyond it is a typo.
pub const MAX_FEE: i64 = 10_000_000;

/// An event's currency, fees and taxes, as read and as set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventFees {
    /// ISO 4217 (`usd`, `jpy`, `kwd`); every amount is in its minor unit.
    pub currency: String,
    #[serde(default)]
    pub service_fee_per_ticket_cents: i64,
    #[serde(default)]
    pub facility_fee_per_ticket_cents: i64,
    #[serde(default)]
    pub order_fee_cents: i64,
    /// Basis points, 0 to 10000 (2000 is 20%).
    #[serde(default)]
    pub tax_rate_bp: i32,
    #[serde(default)]
    pub tax_inclusive: bool,
    #[serde(default = "yes")]
    pub fees_taxable: bool,
    #[serde(default)]
    pub fees_refundable: bool,
}

fn yes() -> bool {
    true
}

impl EventFees {
    fn settings(&self) -> FeeSettings {
        FeeSettings {
            service_fee_per_ticket_cents: self.service_fee_per_ticket_cents,
            facility_fee_per_ticket_cents: self.facility_fee_per_ticket_cents,
            order_fee_cents: self.order_fee_cents,
            tax_rate_bp: self.tax_rate_bp,
            tax_inclusive: self.tax_inclusive,
            fees_taxable: self.fees_taxable,
            fees_refundable: self.fees_refundable,
        }
    }
}

#[derive(Debug, thiserror::Error, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FeeError {
    #[error("{currency:?} is not an ISO 4217 currency")]
    UnknownCurrency { currency: String },
    #[error("{field} must be 0 to {max} minor units")]
    InvalidFee { field: &'static str, max: i64 },
    #[error("tax_rate_bp must be 0 to 10000 (0% to 100%)")]
    InvalidTaxRate,
    #[error("the event has sales in {currency}: its currency cannot change")]
    CurrencyLocked { currency: String },
    #[error("no such event")]
    EventNotFound,
    #[error(transparent)]
    #[serde(skip)]
    Storage(#[from] sqlx::Error),
}

/// Checks every field before anything is saved.
pub fn validate(f: &EventFees) -> Result<String, FeeError> {
    let code = f.currency.trim().to_ascii_lowercase();
    if currency::minor_units(&code).is_none() {
        return Err(FeeError::UnknownCurrency {
            currency: f.currency.clone(),
        });
    }
    for (field, value) in [
        ("service_fee_per_ticket_cents", f.service_fee_per_ticket_cents),
        ("facility_fee_per_ticket_cents", f.facility_fee_per_ticket_cents),
        ("order_fee_cents", f.order_fee_cents),
    ] {
        if !(0..=MAX_FEE).contains(&value) {
            return Err(FeeError::InvalidFee { field, max: MAX_FEE });
        }
    }
    if !(0..=10_000).contains(&f.tax_rate_bp) {
        return Err(FeeError::InvalidTaxRate);
    }
    Ok(code)
}

/// The organisation's event's settings (the deployment's currency and no
/// fees until set).
pub async fn get(
    pool: &PgPool,
    org: OrganisationId,
    event: EventId,
    default_currency: &str,
) -> Result<EventFees, FeeError> {
    let row = sqlx::query(
        r#"SELECT e.currency, f.service_fee_per_ticket_cents, f.facility_fee_per_ticket_cents, f.order_fee_cents,
                  f.tax_rate_bp, f.tax_inclusive, f.fees_taxable, f.fees_refundable
           FROM events e LEFT JOIN event_fees f ON f.event_id = e.id
           WHERE e.id = $1 AND e.organisation_id = $2"#,
    )
    .bind(event.0)
    .bind(org.0)
    .fetch_optional(pool)
    .await?
    .ok_or(FeeError::EventNotFound)?;
    let (currency, settings) = read(&row, default_currency)?;
    Ok(view(currency, &settings))
}

fn view(currency: String, s: &FeeSettings) -> EventFees {
    EventFees {
        currency,
        service_fee_per_ticket_cents: s.service_fee_per_ticket_cents,
        facility_fee_per_ticket_cents: s.facility_fee_per_ticket_cents,
        order_fee_cents: s.order_fee_cents,
        tax_rate_bp: s.tax_rate_bp,
        tax_inclusive: s.tax_inclusive,
        fees_taxable: s.fees_taxable,
        fees_refundable: s.fees_refundable,
    }
}

/// (currency, settings) from a row of `events LEFT JOIN event_fees`.
fn read(row: &sqlx::postgres::PgRow, default_currency: &str) -> Result<(String, FeeSettings), sqlx::Error> {
    let currency: Option<String> = row.try_get("currency")?;
    let settings = match row.try_get::<Option<i64>, _>("service_fee_per_ticket_cents")? {
        None => FeeSettings {
            fees_taxable: true,
            ..FeeSettings::default()
        },
        Some(service) => FeeSettings {
            service_fee_per_ticket_cents: service,
            facility_fee_per_ticket_cents: row.try_get("facility_fee_per_ticket_cents")?,
            order_fee_cents: row.try_get("order_fee_cents")?,
            tax_rate_bp: row.try_get("tax_rate_bp")?,
            tax_inclusive: row.try_get("tax_inclusive")?,
            fees_taxable: row.try_get("fees_taxable")?,
            fees_refundable: row.try_get("fees_refundable")?,
        },
    };
    Ok((currency.unwrap_or_else(|| default_currency.to_owned()), settings))
}

/// Sets them, all or nothing. The currency cannot change once the event
/// has sales (orders not failed): their charges and refunds are in it.
pub async fn set(
    pool: &PgPool,
    org: OrganisationId,
    event: EventId,
    update: &EventFees,
    default_currency: &str,
) -> Result<EventFees, FeeError> {
    let currency = validate(update)?;
    let mut tx = pool.begin().await?;
    let current: Option<Option<String>> =
        sqlx::query_scalar("SELECT currency FROM events WHERE id = $1 AND organisation_id = $2 FOR UPDATE")
            .bind(event.0)
            .bind(org.0)
            .fetch_optional(&mut *tx)
            .await?;
    let current = current
        .ok_or(FeeError::EventNotFound)?
        .unwrap_or_else(|| default_currency.to_owned());
    if current != currency {
        let sold: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM orders WHERE event_id = $1 AND state <> 'payment_failed' LIMIT 1")
                .bind(event.0)
                .fetch_optional(&mut *tx)
                .await?;
        if sold.is_some() {
            return Err(FeeError::CurrencyLocked { currency: current });
        }
    }
    let s = update.settings();
    sqlx::query("UPDATE events SET currency = $2 WHERE id = $1")
        .bind(event.0)
        .bind(&currency)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        r#"INSERT INTO event_fees (event_id, service_fee_per_ticket_cents, facility_fee_per_ticket_cents,
                                   order_fee_cents, tax_rate_bp, tax_inclusive, fees_taxable, fees_refundable)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           ON CONFLICT (event_id) DO UPDATE SET
               service_fee_per_ticket_cents = $2, facility_fee_per_ticket_cents = $3, order_fee_cents = $4,
               tax_rate_bp = $5, tax_inclusive = $6, fees_taxable = $7, fees_refundable = $8, updated_at = now()"#,
    )
    .bind(event.0)
    .bind(s.service_fee_per_ticket_cents)
    .bind(s.facility_fee_per_ticket_cents)
    .bind(s.order_fee_cents)
    .bind(s.tax_rate_bp)
    .bind(s.tax_inclusive)
    .bind(s.fees_taxable)
    .bind(s.fees_refundable)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(view(currency, &s))
}

/// Puts the event's currency and fee lines on a new order, inside its
/// transaction: the order's total becomes the lines' total. Nothing is
/// changed for an event with neither (the order keeps the hold's total in
/// the deployment's currency). `fees` is false for a resale, which pays
/// the listing's price alone (its fee comes out of the seller's payout).
pub async fn charge_order(
    conn: &mut PgConnection,
    order: OrderId,
    event: i64,
    seats: &[i64],
    prices: &[i64],
    fees: bool,
    default_currency: &str,
) -> Result<(), sqlx::Error> {
    let Some(row) = sqlx::query(
        r#"SELECT e.currency, f.service_fee_per_ticket_cents, f.facility_fee_per_ticket_cents, f.order_fee_cents,
                  f.tax_rate_bp, f.tax_inclusive, f.fees_taxable, f.fees_refundable
           FROM events e LEFT JOIN event_fees f ON f.event_id = e.id WHERE e.id = $1"#,
    )
    .bind(event)
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(());
    };
    let own_currency = row.try_get::<Option<String>, _>("currency")?.is_some();
    let (currency, settings) = read(&row, default_currency)?;
    let settings = if fees { settings } else { FeeSettings::default() };
    if settings.is_none() {
        if own_currency {
            sqlx::query("UPDATE orders SET currency = $2 WHERE id = $1")
                .bind(order.0)
                .bind(&currency)
                .execute(&mut *conn)
                .await?;
        }
        return Ok(());
    }
    let pairs: Vec<(i64, i64)> = seats.iter().copied().zip(prices.iter().copied()).collect();
    let charges = Charges::compute(&currency, &pairs, &settings);
    sqlx::query("UPDATE orders SET total_cents = $2, currency = $3, charge_lines = $4 WHERE id = $1")
        .bind(order.0)
        .bind(charges.total_cents)
        .bind(&currency)
        .bind(sqlx::types::Json(&charges))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// What an order of these seats would be charged now (the hold's page
/// shows it before the fan pays): the event's currency, and its lines when
/// the event has fees or taxes.
pub async fn quote(
    pool: &PgPool,
    event: EventId,
    seats: &[(i64, i64)],
    default_currency: &str,
) -> Result<(String, Option<Charges>), sqlx::Error> {
    let row = sqlx::query(
        r#"SELECT e.currency, f.service_fee_per_ticket_cents, f.facility_fee_per_ticket_cents, f.order_fee_cents,
                  f.tax_rate_bp, f.tax_inclusive, f.fees_taxable, f.fees_refundable
           FROM events e LEFT JOIN event_fees f ON f.event_id = e.id WHERE e.id = $1"#,
    )
    .bind(event.0)
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else {
        return Ok((default_currency.to_owned(), None));
    };
    let (currency, settings) = read(&row, default_currency)?;
    let charges = (!settings.is_none()).then(|| Charges::compute(&currency, seats, &settings));
    Ok((currency, charges))
}

/// The stored lines of these orders (those that have any).
pub async fn lines_of(pool: &PgPool, orders: &[uuid::Uuid]) -> Result<Vec<(uuid::Uuid, Charges)>, sqlx::Error> {
    let rows: Vec<(uuid::Uuid, sqlx::types::Json<Charges>)> =
        sqlx::query_as("SELECT id, charge_lines FROM orders WHERE id = ANY($1) AND charge_lines IS NOT NULL")
            .bind(orders)
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().map(|(id, c)| (id, c.0)).collect())
}

/// One order's stored lines, inside a transaction.
pub async fn lines_for(conn: &mut PgConnection, order: OrderId) -> Result<Option<Charges>, sqlx::Error> {
    let row: Option<Option<sqlx::types::Json<Charges>>> =
        sqlx::query_scalar("SELECT charge_lines FROM orders WHERE id = $1")
            .bind(order.0)
            .fetch_optional(conn)
            .await?;
    Ok(row.flatten().map(|c| c.0))
}
