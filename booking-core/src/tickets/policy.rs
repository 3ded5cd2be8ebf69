//! An event's after-sale policy: whether refunded seats go back on sale,
//! whether tickets may be transferred, the resale caps, and whether and
//! until when fans may refund themselves, and when a chargeback voids the
//! tickets. Events without their own row get the defaults of
//! migrations/0005_after_sale.sql, 0017_refund_policy.sql and 0019_disputes.sql.

use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, Row};

use crate::ids::EventId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AfterSalePolicy {
    pub return_refunded_seats: bool,
    /// The most a ticket may be resold for, in percent of face value.
    pub resale_cap_percent: i32,
    /// The platform's cut of a resale, in percent, from the seller's payout.
    pub resale_fee_percent: i32,
    pub transfers_allowed: bool,
    /// Whether fans may refund their own tickets (operators always may).
    #[serde(default = "yes")]
    pub self_refunds: bool,
    /// Fans may refund themselves until this many hours before the event
    /// starts (0: until it starts; 0 to 8760); never after the start.
    #[serde(default)]
    pub refund_cutoff_hours: i32,
    /// When a chargeback voids the disputed order's tickets: as soon as the
    /// dispute opens (`created`) or only if it is lost (`lost`, the default).
    #[serde(default)]
    pub dispute_void_on: DisputeVoidOn,
}

/// When a dispute (chargeback) voids the disputed order's tickets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DisputeVoidOn {
    /// As soon as the dispute opens (valid again if it is won).
    Created,
    /// Only if the dispute is lost: the fan keeps using them meanwhile.
    #[default]
    Lost,
}

impl DisputeVoidOn {
    /// The word the column and the API use.
    pub fn as_str(self) -> &'static str {
        match self {
            DisputeVoidOn::Created => "created",
            DisputeVoidOn::Lost => "lost",
        }
    }

    /// None for a word that is not one.
    pub fn parse(s: &str) -> Option<DisputeVoidOn> {
        match s {
            "created" => Some(DisputeVoidOn::Created),
            "lost" => Some(DisputeVoidOn::Lost),
            _ => None,
        }
    }
}

fn yes() -> bool {
    true
}

impl Default for AfterSalePolicy {
    fn default() -> Self {
        AfterSalePolicy {
            return_refunded_seats: true,
            resale_cap_percent: 120,
            resale_fee_percent: 10,
            transfers_allowed: true,
            self_refunds: true,
            refund_cutoff_hours: 0,
            dispute_void_on: DisputeVoidOn::Lost,
        }
    }
}

pub async fn for_event(conn: &mut PgConnection, event: EventId) -> Result<AfterSalePolicy, sqlx::Error> {
    let row = sqlx::query(
        r#"SELECT return_refunded_seats, resale_cap_percent, resale_fee_percent, transfers_allowed,
                  self_refunds, refund_cutoff_hours, dispute_void_on
           FROM event_policies WHERE event_id = $1"#,
    )
    .bind(event.0)
    .fetch_optional(conn)
    .await?;
    let Some(r) = row else {
        return Ok(AfterSalePolicy::default());
    };
    Ok(AfterSalePolicy {
        return_refunded_seats: r.try_get("return_refunded_seats")?,
        resale_cap_percent: r.try_get("resale_cap_percent")?,
        resale_fee_percent: r.try_get("resale_fee_percent")?,
        transfers_allowed: r.try_get("transfers_allowed")?,
        self_refunds: r.try_get("self_refunds")?,
        refund_cutoff_hours: r.try_get("refund_cutoff_hours")?,
        dispute_void_on: {
            let word: String = r.try_get("dispute_void_on")?;
            DisputeVoidOn::parse(&word)
                .ok_or_else(|| sqlx::Error::from(crate::states::UnknownState::new("dispute_void_on", &word)))?
        },
    })
}

/// Sets an event's policy (the operator's call).
pub async fn set(conn: &mut PgConnection, event: EventId, p: &AfterSalePolicy) -> Result<(), sqlx::Error> {
    sqlx::query(
        r#"INSERT INTO event_policies (event_id, return_refunded_seats, resale_cap_percent, resale_fee_percent,
                                       transfers_allowed, self_refunds, refund_cutoff_hours, dispute_void_on)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           ON CONFLICT (event_id) DO UPDATE SET
               return_refunded_seats = EXCLUDED.return_refunded_seats,
               resale_cap_percent = EXCLUDED.resale_cap_percent,
               resale_fee_percent = EXCLUDED.resale_fee_percent,
               transfers_allowed = EXCLUDED.transfers_allowed,
               self_refunds = EXCLUDED.self_refunds,
               refund_cutoff_hours = EXCLUDED.refund_cutoff_hours,
               dispute_void_on = EXCLUDED.dispute_void_on"#,
    )
    .bind(event.0)
    .bind(p.return_refunded_seats)
    .bind(p.resale_cap_percent)
    .bind(p.resale_fee_percent)
    .bind(p.transfers_allowed)
    .bind(p.self_refunds)
    .bind(p.refund_cutoff_hours)
    .bind(p.dispute_void_on.as_str())
    .execute(conn)
    .await?;
    Ok(())
}
