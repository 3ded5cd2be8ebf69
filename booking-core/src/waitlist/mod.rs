//! The waitlist of a sold-out event or tier: fans join it (how many seats,
//! which tier, the most they will pay a seat), read their entries with the
//! offer made to them, and leave. Offers are made by the job in
//! `offers.rs`; an offer is a hold of the fan's (migrations/0020_waitlist.sql
//! has the rules and why).

pub mod offers;

use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, Row};

use crate::ids::{Cents, EventId, FanId, HoldId, SeatId, WaitlistEntryId};
use crate::inventory::SeatState;
use crate::inventory::availability::Readings;
use crate::inventory::claims;
use crate::venues::SeatMaps;

/// What a fan asks for when joining.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    /// How many seats, side by side in one row (1 to the event's limit per fan).
    pub quantity: i64,
    /// Only seats of this price tier; absent: any tier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<i16>,
    /// The most the fan will pay a seat, in cents; absent: no ceiling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_price_cents: Option<i64>,
    /// Wheelchair-accessible seats (true) or other seats (false), as best
    /// available chooses them.
    #[serde(default)]
    pub accessible: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EntryState {
    /// In line for seats.
    Waiting,
    /// Seats are held for the fan (`offer`): buy them with POST /v1/orders.
    Offered,
    /// The offer was bought.
    Bought,
    /// The offer ran out (or was released) unbought; its seats went on.
    Lapsed,
    /// The fan left the waitlist.
    Left,
}

impl EntryState {
    fn parse(s: &str) -> Result<EntryState, crate::states::UnknownState> {
        Ok(match s {
            "waiting" => EntryState::Waiting,
            "offered" => EntryState::Offered,
            "bought" => EntryState::Bought,
            "lapsed" => EntryState::Lapsed,
            "left" => EntryState::Left,
            other => return Err(crate::states::UnknownState::new("waitlist entry", other)),
        })
    }
}

/// Seats held for a waiting fan.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Offer {
    /// The hold to buy: POST /v1/orders with this `hold_id`.
    pub hold_id: HoldId,
    pub seat_ids: Vec<SeatId>,
    /// At the prices locked into the hold.
    pub total_cents: Cents,
    pub offered_at: DateTime<Utc>,
    /// After this the seats go to the next fan.
    pub expires_at: DateTime<Utc>,
}

/// One fan's place on one event's waitlist.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WaitlistEntry {
    pub entry_id: WaitlistEntryId,
    pub event_id: EventId,
    pub tier: Option<i16>,
    pub quantity: i32,
    pub max_price_cents: Option<Cents>,
    pub accessible: bool,
    /// As of now: an offer past its expiry reads as lapsed at once.
    pub state: EntryState,
    /// While waiting: how many entries of the event are waiting ahead.
    pub ahead: Option<i64>,
    pub joined_at: DateTime<Utc>,
    /// The offer, once one was made.
    pub offer: Option<Offer>,
    /// The database clock: count down from `offer.expires_at - server_time`.
    pub server_time: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WaitlistEntries {
    /// Newest first, at most 100.
    pub items: Vec<WaitlistEntry>,
}

/// Why a join or a leave was refused.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WaitlistError {
    #[error("no such event")]
    EventNotFound,
    #[error("the event has been cancelled")]
    EventCancelled,
    #[error("the event has already started")]
    EventOver,
    #[error("the event is not on sale yet")]
    NotOnSale { on_sale_at: DateTime<Utc> },
    #[error("quantity must be 1 to {max}")]
    QuantityOutOfRange { max: i64 },
    #[error("no tier {tier} in this event")]
    UnknownTier { tier: i16 },
    #[error("max_price_cents must be 0 or more")]
    InvalidPriceCeiling,
    #[error("seats of this kind are still on sale: hold them instead")]
    NotSoldOut { available: usize },
    #[error("no such waitlist entry")]
    EntryNotFound,
    #[error("this waitlist entry is over ({state:?})")]
    EntryClosed { state: EntryState },
    #[error("storage failure")]
    #[serde(skip)]
    Storage(String),
}

impl From<sqlx::Error> for WaitlistError {
    fn from(e: sqlx::Error) -> Self {
        WaitlistError::Storage(e.to_string())
    }
}

impl From<crate::venues::store::LoadError> for WaitlistError {
    fn from(e: crate::venues::store::LoadError) -> Self {
        WaitlistError::Storage(e.to_string())
    }
}

/// The waitlist's reads and changes for fans.
#[derive(Clone)]
pub struct Waitlist {
    pool: PgPool,
    maps: SeatMaps,
    readings: Readings,
    /// `holds.max_seats_per_request`: an offer is one hold.
    max_seats_per_hold: usize,
}

impl Waitlist {
    pub fn new(pool: PgPool, maps: SeatMaps, readings: Readings, max_seats_per_hold: usize) -> Waitlist {
        Waitlist {
            pool,
            maps,
            readings,
            max_seats_per_hold,
        }
    }

    /// Joins the event's waitlist, or finds the fan's open entry for this
    /// event and tier (then `replayed`, and the entry as it is). Only while
    /// no seat of the asked kind is free.
    #[tracing::instrument(skip_all, fields(event_id = %event, fan = %usher_shared::redact::hashed(&fan.0)))]
    pub async fn join(
        &self,
        fan: &FanId,
        event: EventId,
        request: &JoinRequest,
    ) -> Result<crate::idempotency::Outcome<WaitlistEntry>, WaitlistError> {
        let map = self.maps.for_event(event).await?.ok_or(WaitlistError::EventNotFound)?;
        let e = sqlx::query(
            r#"SELECT cancelled, starts_at <= now() AS over, on_sale_at, on_sale_at > now() AS early, max_seats_per_fan
               FROM events WHERE id = $1"#,
        )
        .bind(event.0)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(WaitlistError::EventNotFound)?;
        let limit: i32 = e.try_get("max_seats_per_fan")?;
        let max = i64::from(limit).min(self.max_seats_per_hold as i64);
        if request.quantity < 1 || request.quantity > max {
            return Err(WaitlistError::QuantityOutOfRange { max });
        }
        if let Some(tier) = request.tier
            && !map.tiers().contains(&tier)
        {
            return Err(WaitlistError::UnknownTier { tier });
        }
        if request.max_price_cents.is_some_and(|c| c < 0) {
            return Err(WaitlistError::InvalidPriceCeiling);
        }
        if e.try_get("cancelled")? {
            return Err(WaitlistError::EventCancelled);
        }
        if e.try_get("over")? {
            return Err(WaitlistError::EventOver);
        }
        if e.try_get("early")? {
            return Err(WaitlistError::NotOnSale {
                on_sale_at: e.try_get("on_sale_at")?,
            });
        }
        if let Some(entry) = self.open_entry(fan, event, request.tier).await? {
            return Ok(crate::idempotency::Outcome {
                value: entry,
                replayed: true,
            });
        }
        // Sold out: no seat of this kind is free by a reading made after
        // the request arrived (shared with fans' availability requests).
        let reading = self.readings.since(&map, event, Instant::now()).await?;
        let available = reading
            .states
            .0
            .iter()
            .enumerate()
            .filter(|(i, s)| {
                let seat = map.seat(*i as u32);
                **s == SeatState::Available
                    && seat.accessible == request.accessible
                    && request.tier.is_none_or(|t| t == seat.tier)
            })
            .count();
        if available > 0 {
            return Err(WaitlistError::NotSoldOut { available });
        }
        let mut tx = self.pool.begin().await?;
        // Only the event's first join writes the queue's row: inserting over
        // an existing row would wait for a pass holding it.
        sqlx::query(
            r#"INSERT INTO waitlist_queues (event_id)
               SELECT $1 WHERE NOT EXISTS (SELECT 1 FROM waitlist_queues WHERE event_id = $1)
               ON CONFLICT DO NOTHING"#,
        )
        .bind(event.0)
        .execute(&mut *tx)
        .await?;
        let made: Option<i64> = sqlx::query_scalar(
            r#"INSERT INTO waitlist_entries (event_id, fan_id, tier, quantity, max_price_cents, accessible)
               VALUES ($1, $2, $3, $4, $5, $6)
               ON CONFLICT (event_id, fan_id, coalesce(tier, 0)) WHERE state IN ('waiting', 'offered') DO NOTHING
               RETURNING id"#,
        )
        .bind(event.0)
        .bind(fan.as_str())
        .bind(request.tier)
        .bind(request.quantity as i32)
        .bind(request.max_price_cents)
        .bind(request.accessible)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        match made {
            Some(id) => {
                tracing::debug!(entry_id = id, "joined the waitlist");
                let value = self
                    .entry(fan, WaitlistEntryId(id))
                    .await?
                    .ok_or(WaitlistError::EntryNotFound)?;
                Ok(crate::idempotency::Outcome { value, replayed: false })
            }
            // The same fan's join at the same moment won.
            None => {
                let value = self
                    .open_entry(fan, event, request.tier)
                    .await?
                    .ok_or(WaitlistError::EntryNotFound)?;
                Ok(crate::idempotency::Outcome { value, replayed: true })
            }
        }
    }

    async fn open_entry(
        &self,
        fan: &FanId,
        event: EventId,
        tier: Option<i16>,
    ) -> Result<Option<WaitlistEntry>, WaitlistError> {
        let id: Option<i64> = sqlx::query_scalar(
            r#"SELECT id FROM waitlist_entries
               WHERE event_id = $1 AND fan_id = $2 AND coalesce(tier, 0) = coalesce($3::smallint, 0)
                 AND state IN ('waiting', 'offered')"#,
        )
        .bind(event.0)
        .bind(fan.as_str())
        .bind(tier)
        .fetch_optional(&self.pool)
        .await?;
        match id {
            Some(id) => self.entry(fan, WaitlistEntryId(id)).await,
            None => Ok(None),
        }
    }

    /// The fan's entries, newest first.
    pub async fn mine(&self, fan: &FanId) -> Result<WaitlistEntries, WaitlistError> {
        Ok(WaitlistEntries {
            items: read_entries(&self.pool, fan, None).await?,
        })
    }

    /// One entry of the fan's.
    pub async fn entry(&self, fan: &FanId, id: WaitlistEntryId) -> Result<Option<WaitlistEntry>, WaitlistError> {
        Ok(read_entries(&self.pool, fan, Some(id)).await?.into_iter().next())
    }

    /// Leaves the waitlist. An offer not yet bought is released (its seats
    /// go to the next fan). Leaving again answers the entry as it is.
    #[tracing::instrument(skip_all, fields(entry_id = %id, fan = %usher_shared::redact::hashed(&fan.0)))]
    pub async fn leave(&self, fan: &FanId, id: WaitlistEntryId) -> Result<WaitlistEntry, WaitlistError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query("SELECT state, hold_id FROM waitlist_entries WHERE id = $1 AND fan_id = $2 FOR UPDATE")
            .bind(id.0)
            .bind(fan.as_str())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(WaitlistError::EntryNotFound)?;
        let state = EntryState::parse(row.try_get("state")?).map_err(sqlx::Error::from)?;
        let hold: Option<uuid::Uuid> = row.try_get("hold_id")?;
        match state {
            EntryState::Left => {}
            EntryState::Bought | EntryState::Lapsed => return Err(WaitlistError::EntryClosed { state }),
            EntryState::Waiting | EntryState::Offered => {
                if let Some(hold) = hold {
                    let h = sqlx::query("SELECT state FROM holds WHERE id = $1 FOR UPDATE")
                        .bind(hold)
                        .fetch_one(&mut *tx)
                        .await?;
                    if h.try_get::<&str, _>("state")? == "converted" {
                        return Err(WaitlistError::EntryClosed {
                            state: EntryState::Bought,
                        });
                    }
                    // Nothing if it already lapsed.
                    claims::release_hold(&mut tx, HoldId(hold), fan).await?;
                }
                sqlx::query("UPDATE waitlist_entries SET state = 'left', ended_at = now() WHERE id = $1")
                    .bind(id.0)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        self.entry(fan, id).await?.ok_or(WaitlistError::EntryNotFound)
    }
}

/// A fan's entries (or one), each with its offer and its state as of now.
async fn read_entries(
    pool: &PgPool,
    fan: &FanId,
    only: Option<WaitlistEntryId>,
) -> Result<Vec<WaitlistEntry>, WaitlistError> {
    let rows = sqlx::query(
        r#"SELECT w.id, w.event_id, w.tier, w.quantity, w.max_price_cents, w.accessible, w.state,
                  w.joined_at, w.offered_at, h.id AS hold_id, h.seat_ids, h.total_cents, h.expires_at,
                  h.state AS hold_state, coalesce(h.expires_at <= now(), false) AS lapsed,
                  CASE WHEN w.state = 'waiting' THEN
                      (SELECT count(*) FROM waitlist_entries a
                        WHERE a.event_id = w.event_id AND a.state = 'waiting' AND a.id < w.id)
                  END AS ahead,
                  now() AS now
           FROM waitlist_entries w LEFT JOIN holds h ON h.id = w.hold_id
           WHERE w.fan_id = $1 AND ($2::bigint IS NULL OR w.id = $2)
           ORDER BY w.id DESC LIMIT 100"#,
    )
    .bind(fan.as_str())
    .bind(only.map(|i| i.0))
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| -> Result<WaitlistEntry, sqlx::Error> {
            let stored = EntryState::parse(r.try_get("state")?)?;
            let hold_state: Option<String> = r.try_get("hold_state")?;
            let lapsed: bool = r.try_get("lapsed")?;
            let state = match (stored, hold_state.as_deref()) {
                (EntryState::Offered, Some("converted")) => EntryState::Bought,
                (EntryState::Offered, Some("active")) if !lapsed => EntryState::Offered,
                (EntryState::Offered, _) => EntryState::Lapsed,
                (s, _) => s,
            };
            let offer = match (r.try_get::<Option<uuid::Uuid>, _>("hold_id")?, r.try_get("offered_at")?) {
                (Some(hold), Some(offered_at)) => Some(Offer {
                    hold_id: HoldId(hold),
                    seat_ids: r
                        .try_get::<Option<Vec<i64>>, _>("seat_ids")?
                        .unwrap_or_default()
                        .into_iter()
                        .map(SeatId)
                        .collect(),
                    total_cents: Cents(r.try_get::<Option<i64>, _>("total_cents")?.unwrap_or(0)),
                    offered_at,
                    expires_at: r
                        .try_get::<Option<DateTime<Utc>>, _>("expires_at")?
                        .unwrap_or(offered_at),
                }),
                _ => None,
            };
            Ok(WaitlistEntry {
                entry_id: WaitlistEntryId(r.try_get("id")?),
                event_id: EventId(r.try_get("event_id")?),
                tier: r.try_get("tier")?,
                quantity: r.try_get("quantity")?,
                max_price_cents: r.try_get::<Option<i64>, _>("max_price_cents")?.map(Cents),
                accessible: r.try_get("accessible")?,
                state,
                ahead: r.try_get("ahead")?,
                joined_at: r.try_get("joined_at")?,
                offer,
                server_time: r.try_get("now")?,
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(WaitlistError::from)
}

/// An event's waitlist as the venue portal shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WaitlistSummary {
    pub event_id: EventId,
    /// Entries waiting, and the seats they ask for.
    pub waiting: i64,
    pub waiting_seats: i64,
    /// Offers held for fans now, and their seats.
    pub offered: i64,
    pub offered_seats: i64,
    pub bought: i64,
    pub lapsed: i64,
    pub left: i64,
    /// The latest offers, newest first (at most 50).
    pub offers: Vec<OfferLine>,
    pub server_time: DateTime<Utc>,
}

/// One offer, for operators (no fan named).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OfferLine {
    pub entry_id: WaitlistEntryId,
    pub tier: Option<i16>,
    pub quantity: i32,
    pub state: EntryState,
    pub hold_id: HoldId,
    pub offered_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// The event's waitlist figures and latest offers (states as of now).
pub async fn summary(pool: &PgPool, event: EventId) -> Result<WaitlistSummary, sqlx::Error> {
    // An offer's live state: its hold decides, by the clock.
    const LIVE: &str = r#"CASE WHEN w.state <> 'offered' THEN w.state
                               WHEN h.state = 'converted' THEN 'bought'
                               WHEN h.state = 'active' AND h.expires_at > now() THEN 'offered'
                               ELSE 'lapsed' END"#;
    let counts = sqlx::query(sqlx::AssertSqlSafe(format!(
        r#"SELECT count(*) FILTER (WHERE s = 'waiting') AS waiting,
                  coalesce(sum(quantity) FILTER (WHERE s = 'waiting'), 0)::bigint AS waiting_seats,
                  count(*) FILTER (WHERE s = 'offered') AS offered,
                  coalesce(sum(quantity) FILTER (WHERE s = 'offered'), 0)::bigint AS offered_seats,
                  count(*) FILTER (WHERE s = 'bought') AS bought,
                  count(*) FILTER (WHERE s = 'lapsed') AS lapsed,
                  count(*) FILTER (WHERE s = 'left') AS left_,
                  now() AS now
           FROM (SELECT w.quantity, {LIVE} AS s
                 FROM waitlist_entries w LEFT JOIN holds h ON h.id = w.hold_id
                 WHERE w.event_id = $1) e"#
    )))
    .bind(event.0)
    .fetch_one(pool)
    .await?;
    let lines = sqlx::query(sqlx::AssertSqlSafe(format!(
        r#"SELECT w.id, w.tier, w.quantity, {LIVE} AS s, h.id AS hold_id, w.offered_at, h.expires_at
           FROM waitlist_entries w JOIN holds h ON h.id = w.hold_id
           WHERE w.event_id = $1
           ORDER BY w.offered_at DESC, w.id DESC LIMIT 50"#
    )))
    .bind(event.0)
    .fetch_all(pool)
    .await?;
    let offers = lines
        .iter()
        .map(|r| -> Result<OfferLine, sqlx::Error> {
            Ok(OfferLine {
                entry_id: WaitlistEntryId(r.try_get("id")?),
                tier: r.try_get("tier")?,
                quantity: r.try_get("quantity")?,
                state: EntryState::parse(r.try_get("s")?)?,
                hold_id: HoldId(r.try_get("hold_id")?),
                offered_at: r.try_get("offered_at")?,
                expires_at: r.try_get("expires_at")?,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(WaitlistSummary {
        event_id: event,
        waiting: counts.try_get("waiting")?,
        waiting_seats: counts.try_get("waiting_seats")?,
        offered: counts.try_get("offered")?,
        offered_seats: counts.try_get("offered_seats")?,
        bought: counts.try_get("bought")?,
        lapsed: counts.try_get("lapsed")?,
        left: counts.try_get("left_")?,
        offers,
        server_time: counts.try_get("now")?,
    })
}
