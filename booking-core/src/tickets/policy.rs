//! An event's after-sale policy: whether refunded seats go back on sale,
//! whether tickets may be transferred, and the resale caps. Events without
//! their own row get the defaults of migrations/0005_after_sale.sql.

use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use crate::ids::EventId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AfterSalePolicy {
    pub return_refunded_seats: bool,
    /// The most a ticket may be resold for, in percent of face value.
    pub resale_cap_percent: i32,
    /// The platform's cut of a resale, in percent, from the seller's payout.
    pub resale_fee_percent: i32,
    pub transfers_allowed: bool,
}

impl Default for AfterSalePolicy {
    fn default() -> Self {
        AfterSalePolicy {
            return_refunded_seats: true,
            resale_cap_percent: 120,
            resale_fee_percent: 10,
            transfers_allowed: true,
        }
    }
}

pub async fn for_event(conn: &mut PgConnection, event: EventId) -> Result<AfterSalePolicy, sqlx::Error> {
    let row = sqlx::query_as!(
        AfterSalePolicy,
        r#"SELECT return_refunded_seats, resale_cap_percent, resale_fee_percent, transfers_allowed
           FROM event_policies WHERE event_id = $1"#,
        event.0
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.unwrap_or_default())
}

/// Sets an event's policy (the operator's call).
pub async fn set(conn: &mut PgConnection, event: EventId, p: &AfterSalePolicy) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"INSERT INTO event_policies (event_id, return_refunded_seats, resale_cap_percent, resale_fee_percent, transfers_allowed)
           VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (event_id) DO UPDATE SET
               return_refunded_seats = EXCLUDED.return_refunded_seats,
               resale_cap_percent = EXCLUDED.resale_cap_percent,
               resale_fee_percent = EXCLUDED.resale_fee_percent,
               transfers_allowed = EXCLUDED.transfers_allowed"#,
        event.0,
        p.return_refunded_seats,
        p.resale_cap_percent,
        p.resale_fee_percent,
        p.transfers_allowed
    )
    .execute(conn)
    .await?;
    Ok(())
}
