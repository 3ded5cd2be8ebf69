//! What operators set (pricing on or off, frozen, interval, bounds per tier)
//! and read (current prices and recent changes with their inputs), and the
//! current tier prices fans and the seat feed read. Ownership of the event
//! is checked by the caller (the portal), as for every portal change.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};

use crate::catalog::TierPrice;
use crate::ids::{Cents, EventId};
use crate::pricing::PricingError;

/// Most a seat may cost, as the schema allows.
const MAX_PRICE_CENTS: i64 = 100_000_000;
/// Changes listed with the settings.
const HISTORY: i64 = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TierBounds {
    pub floor_cents: Cents,
    pub ceiling_cents: Cents,
    /// The largest change in one interval, up or down.
    pub max_step_cents: Cents,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TierPricing {
    pub tier: i16,
    pub name: String,
    pub price_cents: Cents,
    /// None: this tier's price never moves.
    pub bounds: Option<TierBounds>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PriceChange {
    pub tier: i16,
    pub old_cents: Cents,
    pub new_cents: Cents,
    /// The signals, bounds and queue source the rule saw.
    #[schema(value_type = Object)]
    pub inputs: serde_json::Value,
    pub rule_version: String,
    /// The run's interval; none for an operator's own edit.
    pub interval_start: Option<DateTime<Utc>>,
    pub changed_at: DateTime<Utc>,
}

/// An event's pricing as its operators see it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PricingView {
    pub event_id: EventId,
    pub enabled: bool,
    pub frozen: bool,
    /// The event's own interval, if set.
    pub interval_secs: Option<i32>,
    /// The interval in force (the event's, or the configuration's).
    pub effective_interval_secs: i32,
    pub rule_version: String,
    pub tiers: Vec<TierPricing>,
    /// The latest changes, newest first (at most 50).
    pub history: Vec<PriceChange>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TierBoundsUpdate {
    pub tier: i16,
    pub floor_cents: Cents,
    pub ceiling_cents: Cents,
    /// The largest change in one interval, up or down (> 0).
    pub max_step_cents: Cents,
}

/// The whole of an event's pricing settings (a PUT replaces them).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PricingUpdate {
    pub enabled: bool,
    #[serde(default)]
    pub frozen: bool,
    /// 5 to 3600; absent: the configuration's interval.
    #[serde(default)]
    pub interval_secs: Option<i32>,
    /// Bounds per tier; a tier not listed never moves.
    #[serde(default)]
    pub tiers: Vec<TierBoundsUpdate>,
}

/// The event's settings, prices and recent history.
pub async fn view(
    pool: &PgPool,
    event: EventId,
    default_interval_secs: u32,
    rule_version: &str,
) -> Result<PricingView, PricingError> {
    let settings = sqlx::query!(
        "SELECT enabled, frozen, interval_secs FROM event_pricing WHERE event_id = $1",
        event.0
    )
    .fetch_optional(pool)
    .await?;
    let tiers = sqlx::query!(
        r#"SELECT t.tier, t.name, t.price_cents,
                  b.floor_cents AS "floor_cents?", b.ceiling_cents AS "ceiling_cents?", b.max_step_cents AS "max_step_cents?"
           FROM event_tiers t LEFT JOIN tier_price_bounds b ON b.event_id = t.event_id AND b.tier = t.tier
           WHERE t.event_id = $1
           ORDER BY t.tier"#,
        event.0
    )
    .fetch_all(pool)
    .await?;
    let history = sqlx::query!(
        "SELECT tier, old_cents, new_cents, inputs, rule_version, interval_start, changed_at
         FROM price_changes WHERE event_id = $1
         ORDER BY changed_at DESC, id DESC
         LIMIT $2",
        event.0,
        HISTORY
    )
    .fetch_all(pool)
    .await?;
    let (enabled, frozen, interval_secs) =
        settings.map_or((false, false, None), |s| (s.enabled, s.frozen, s.interval_secs));
    Ok(PricingView {
        event_id: event,
        enabled,
        frozen,
        interval_secs,
        effective_interval_secs: interval_secs.unwrap_or(default_interval_secs as i32),
        rule_version: rule_version.to_owned(),
        tiers: tiers
            .into_iter()
            .map(|t| TierPricing {
                tier: t.tier,
                name: t.name,
                price_cents: Cents(t.price_cents),
                bounds: match (t.floor_cents, t.ceiling_cents, t.max_step_cents) {
                    (Some(f), Some(c), Some(s)) => Some(TierBounds {
                        floor_cents: Cents(f),
                        ceiling_cents: Cents(c),
                        max_step_cents: Cents(s),
                    }),
                    _ => None,
                },
            })
            .collect(),
        history: history
            .into_iter()
            .map(|h| PriceChange {
                tier: h.tier,
                old_cents: Cents(h.old_cents),
                new_cents: Cents(h.new_cents),
                inputs: h.inputs,
                rule_version: h.rule_version,
                interval_start: h.interval_start,
                changed_at: h.changed_at,
            })
            .collect(),
    })
}

/// Checks everything before anything is written; the first problem wins.
pub fn check(update: &PricingUpdate, tiers: &[i16]) -> Result<(), PricingError> {
    if let Some(secs) = update.interval_secs
        && !(5..=3600).contains(&secs)
    {
        return Err(PricingError::InvalidInterval);
    }
    let mut seen = HashSet::new();
    for t in &update.tiers {
        if !seen.insert(t.tier) {
            return Err(PricingError::DuplicateTier { tier: t.tier });
        }
        if !tiers.contains(&t.tier) {
            return Err(PricingError::UnknownTier { tier: t.tier });
        }
        let reason = if t.floor_cents.0 < 0 || t.ceiling_cents.0 > MAX_PRICE_CENTS {
            Some("floor and ceiling must be 0 to 100000000 cents")
        } else if t.floor_cents > t.ceiling_cents {
            Some("the floor is above the ceiling")
        } else if t.max_step_cents.0 <= 0 {
            Some("max_step_cents must be more than 0")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(PricingError::InvalidBounds { tier: t.tier, reason });
        }
    }
    Ok(())
}

/// Replaces the event's pricing settings and bounds in one transaction.
#[tracing::instrument(skip(pool, update), fields(event_id = event.0))]
pub async fn replace(pool: &PgPool, event: EventId, update: &PricingUpdate) -> Result<(), PricingError> {
    let mut tx = pool.begin().await?;
    let tiers = sqlx::query_scalar!("SELECT tier FROM event_tiers WHERE event_id = $1", event.0)
        .fetch_all(&mut *tx)
        .await?;
    check(update, &tiers)?;
    write(&mut tx, event, update).await?;
    tx.commit().await?;
    Ok(())
}

async fn write(tx: &mut PgConnection, event: EventId, u: &PricingUpdate) -> Result<(), sqlx::Error> {
    // The settings row is the one a run locks FOR SHARE: this waits for a
    // run in flight, and the next run sees the change.
    sqlx::query!(
        "INSERT INTO event_pricing (event_id, enabled, frozen, interval_secs, updated_at)
         VALUES ($1, $2, $3, $4, now())
         ON CONFLICT (event_id) DO UPDATE
         SET enabled = EXCLUDED.enabled, frozen = EXCLUDED.frozen,
             interval_secs = EXCLUDED.interval_secs, updated_at = now()",
        event.0,
        u.enabled,
        u.frozen,
        u.interval_secs,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!("DELETE FROM tier_price_bounds WHERE event_id = $1", event.0)
        .execute(&mut *tx)
        .await?;
    let tiers: Vec<i16> = u.tiers.iter().map(|t| t.tier).collect();
    let floors: Vec<i64> = u.tiers.iter().map(|t| t.floor_cents.0).collect();
    let ceilings: Vec<i64> = u.tiers.iter().map(|t| t.ceiling_cents.0).collect();
    let steps: Vec<i64> = u.tiers.iter().map(|t| t.max_step_cents.0).collect();
    sqlx::query!(
        "INSERT INTO tier_price_bounds (event_id, tier, floor_cents, ceiling_cents, max_step_cents)
         SELECT $1, u.tier, u.floor, u.ceiling, u.step
         FROM unnest($2::smallint[], $3::bigint[], $4::bigint[], $5::bigint[]) AS u(tier, floor, ceiling, step)",
        event.0,
        &tiers,
        &floors,
        &ceilings,
        &steps,
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The event's tier prices now, cheapest to read (a handful of rows by key):
/// what fans see and what the seat feed compares each tick.
pub async fn current_prices(pool: &PgPool, event: EventId) -> Result<Vec<TierPrice>, sqlx::Error> {
    sqlx::query_as!(
        TierPrice,
        r#"SELECT tier, name, price_cents AS "price_cents: Cents" FROM event_tiers WHERE event_id = $1 ORDER BY tier"#,
        event.0
    )
    .fetch_all(pool)
    .await
}

/// Fans' view: the prices, and whether they may move.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EventPrices {
    pub event_id: EventId,
    pub tiers: Vec<TierPrice>,
    /// Recalculated on an interval (on and not frozen). A hold locks the
    /// price it was made at whatever happens after.
    pub dynamic: bool,
    pub server_time: DateTime<Utc>,
}

/// None when there is no such event.
pub async fn event_prices(pool: &PgPool, event: EventId) -> Result<Option<EventPrices>, sqlx::Error> {
    let found = sqlx::query!(
        r#"SELECT coalesce(p.enabled AND NOT p.frozen, false) AS "dynamic!", now() AS "now!"
           FROM events e LEFT JOIN event_pricing p ON p.event_id = e.id
           WHERE e.id = $1"#,
        event.0
    )
    .fetch_optional(pool)
    .await?;
    let Some(found) = found else { return Ok(None) };
    Ok(Some(EventPrices {
        event_id: event,
        tiers: current_prices(pool, event).await?,
        dynamic: found.dynamic,
        server_time: found.now,
    }))
}
