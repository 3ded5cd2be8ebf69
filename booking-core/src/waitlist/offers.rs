//! The offer job: finds seats back on sale for events with fans waiting and
//! holds them for those fans, in join order, each offer one hold made by
//! `place_hold` (the seat-claim path every hold takes) in a transaction of
//! its own with its `waitlist.offer` notification; and closes offers whose
//! hold ended (bought, or lapsed: their seats go to the next fan on the next
//! pass). Every instance runs it; an event's pass holds that event's
//! `waitlist_queues` row (SKIP LOCKED), so one instance at a time offers an
//! event's seats and the order holds across instances. See
//! migrations/0020_waitlist.sql for the rules.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::{PgPool, Row};

use crate::config::WaitlistConfig;
use crate::ids::{EventId, FanId, HoldId, SeatId, WaitlistEntryId};
use crate::inventory::SeatState;
use crate::inventory::availability::Readings;
use crate::inventory::best_available::{self, Scope};
use crate::inventory::claims::{self, PlaceArgs, Placed};
use crate::outbox::{notify_fan, topic};
use crate::venues::{SeatMaps, VenueMap};

/// How many times one entry is ranked again after losing seats to a claim
/// the reading did not show (a fan's hold in flight).
const ATTEMPTS: usize = 3;

/// Passes over one event are at least this part of the interval apart.
const PASS_SPACING: f64 = 0.8;

/// Most events one pass looks at.
const EVENTS_PER_PASS: i64 = 100;

/// Most waiting entries of one event read in one pass.
const ENTRIES_PER_PASS: i64 = 2_000;

#[derive(Clone)]
pub struct Offerer {
    pool: PgPool,
    maps: SeatMaps,
    readings: Readings,
    config: WaitlistConfig,
}

/// What one run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    pub offers: usize,
    pub lapsed: i64,
    pub bought: i64,
}

/// A waiting entry as a pass sees it.
struct Waiting {
    id: WaitlistEntryId,
    fan: FanId,
    tier: Option<i16>,
    quantity: usize,
    max_price: Option<i64>,
    accessible: bool,
}

/// What became of one attempt to offer seats to an entry.
enum Made {
    Offered(Vec<SeatId>),
    /// Some seats were claimed meanwhile (these): rank again without them.
    Lost(Vec<SeatId>),
    /// Not this entry now (the fan's limit, a price moved): next entry.
    Skip,
}

impl Offerer {
    pub fn new(pool: PgPool, maps: SeatMaps, readings: Readings, config: WaitlistConfig) -> Offerer {
        Offerer {
            pool,
            maps,
            readings,
            config,
        }
    }

    /// One run: closes ended offers, then makes the offers due in every
    /// event this instance can take now.
    pub async fn run_once(&self) -> Result<Pass, sqlx::Error> {
        // Every event's, including those nobody waits for any more.
        let (lapsed, bought) = settle(&self.pool, None).await?;
        let due: Vec<i64> = sqlx::query_scalar(
            r#"SELECT q.event_id FROM waitlist_queues q JOIN events e ON e.id = q.event_id
               WHERE q.next_pass_at <= now() AND NOT e.cancelled AND e.starts_at > now() AND e.on_sale_at <= now()
                 AND EXISTS (SELECT 1 FROM waitlist_entries w WHERE w.event_id = q.event_id AND w.state = 'waiting')
               ORDER BY q.next_pass_at LIMIT $1"#,
        )
        .bind(EVENTS_PER_PASS)
        .fetch_all(&self.pool)
        .await?;
        let mut offers = 0;
        for event in due {
            match self.event_pass(EventId(event)).await {
                Ok(n) => offers += n,
                Err(e) => tracing::warn!(event_id = event, error = %e, "waitlist pass failed; next pass retries"),
            }
        }
        Ok(Pass { offers, lapsed, bought })
    }

    /// One event: its queue row locked (or skipped, if another instance has
    /// it or it ran within the interval) for the whole pass; each offer
    /// commits on its own, so a fan's lock is held only for their offer.
    /// The row lock is NO KEY UPDATE: fans joining meanwhile (whose entries'
    /// foreign key share-locks the row's key) never wait for a pass.
    #[tracing::instrument(skip_all, fields(event_id = %event))]
    async fn event_pass(&self, event: EventId) -> Result<usize, sqlx::Error> {
        let mut turn = self.pool.begin().await?;
        let mine: Option<i64> = sqlx::query_scalar(
            r#"UPDATE waitlist_queues SET next_pass_at = now() + make_interval(secs => $2)
               WHERE event_id = (SELECT event_id FROM waitlist_queues
                                 WHERE event_id = $1 AND next_pass_at <= now() FOR NO KEY UPDATE SKIP LOCKED)
               RETURNING event_id"#,
        )
        .bind(event.0)
        // A little under the interval: a core's next tick must find the
        // event due, or its passes would come every other tick.
        .bind(self.config.interval_ms as f64 * PASS_SPACING / 1000.0)
        .fetch_optional(&mut *turn)
        .await?;
        if mine.is_none() {
            return Ok(0);
        }
        let made = self.offer_event(event).await;
        turn.commit().await?;
        made
    }

    async fn offer_event(&self, event: EventId) -> Result<usize, sqlx::Error> {
        let Some(map) = self
            .maps
            .for_event(event)
            .await
            .map_err(|e| sqlx::Error::Protocol(e.to_string()))?
        else {
            return Ok(0);
        };
        let limit: i32 = sqlx::query_scalar("SELECT max_seats_per_fan FROM events WHERE id = $1")
            .bind(event.0)
            .fetch_one(&self.pool)
            .await?;
        let prices: HashMap<i16, i64> = sqlx::query("SELECT tier, price_cents FROM event_tiers WHERE event_id = $1")
            .bind(event.0)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| -> Result<(i16, i64), sqlx::Error> { Ok((r.try_get("tier")?, r.try_get("price_cents")?)) })
            .collect::<Result<_, sqlx::Error>>()?;
        let rows = sqlx::query(
            r#"SELECT w.id, w.fan_id, w.tier, w.quantity, w.max_price_cents, w.accessible
               FROM waitlist_entries w WHERE w.event_id = $1 AND w.state = 'waiting'
               ORDER BY w.id LIMIT $2"#,
        )
        .bind(event.0)
        .bind(ENTRIES_PER_PASS)
        .fetch_all(&self.pool)
        .await?;
        let waiting = rows
            .iter()
            .map(|r| -> Result<Waiting, sqlx::Error> {
                Ok(Waiting {
                    id: WaitlistEntryId(r.try_get("id")?),
                    fan: FanId(r.try_get("fan_id")?),
                    tier: r.try_get("tier")?,
                    quantity: r.try_get::<i32, _>("quantity")?.max(1) as usize,
                    max_price: r.try_get("max_price_cents")?,
                    accessible: r.try_get("accessible")?,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        // Read after the queue's lock was taken: every offer of an earlier
        // pass is in it. A fan's hold in flight may be missing, and then the
        // claim refuses those seats and the entry is ranked again.
        let reading = self.readings.since(&map, event, Instant::now()).await?;
        // Offers whose seats the reading shows free are closed first (their
        // hold ended before the reading, so before this), so a seat is
        // never offered on while its last offer still reads as open.
        settle(&self.pool, Some(event)).await?;
        let mut taken: Vec<bool> = reading.states.0.iter().map(|s| *s != SeatState::Available).collect();
        if taken.iter().all(|t| *t) {
            return Ok(0);
        }
        // Seats each fan holds or bought, as place_hold counts them; the
        // fans' own requests may add to it, and place_hold has the last word.
        let fans: Vec<&str> = waiting.iter().map(|w| w.fan.as_str()).collect();
        let mut used: HashMap<String, i64> = sqlx::query(
            r#"SELECT fan_id, coalesce(sum(cardinality(seat_ids)), 0)::bigint AS used FROM holds
               WHERE event_id = $1 AND fan_id = ANY($2)
                 AND (state = 'converted' OR (state = 'active' AND expires_at > now()))
               GROUP BY fan_id"#,
        )
        .bind(event.0)
        .bind(&fans)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| -> Result<(String, i64), sqlx::Error> { Ok((r.try_get("fan_id")?, r.try_get("used")?)) })
        .collect::<Result<_, sqlx::Error>>()?;

        let mut offers = 0usize;
        for entry in &waiting {
            if offers as i64 >= self.config.batch || taken.iter().all(|t| *t) {
                break;
            }
            let already = used.get(entry.fan.as_str()).copied().unwrap_or(0);
            if already + entry.quantity as i64 > i64::from(limit) {
                tracing::debug!(entry_id = %entry.id, "waitlist: fan at the limit per fan; stays waiting");
                continue;
            }
            let for_entry = |idx: u32| {
                let seat = map.seat(idx);
                match prices.get(&seat.tier) {
                    // A seat of a tier without a price is not for sale.
                    None => false,
                    Some(price) => entry.max_price.is_none_or(|c| *price <= c),
                }
            };
            for _ in 0..ATTEMPTS {
                let scope = Scope {
                    section: None,
                    tier: entry.tier,
                    accessible: entry.accessible,
                };
                let Some(window) =
                    best_available::rank(&map, |i| taken[i as usize] || !for_entry(i), scope, entry.quantity, 1)
                        .into_iter()
                        .next()
                else {
                    break;
                };
                match self.offer(event, &map, entry, &window.seats).await? {
                    Made::Offered(seats) => {
                        for idx in &window.seats {
                            taken[*idx as usize] = true;
                        }
                        *used.entry(entry.fan.0.clone()).or_default() += seats.len() as i64;
                        offers += 1;
                        break;
                    }
                    Made::Lost(seats) => {
                        for s in seats {
                            if let Some(i) = map.index_of(s) {
                                taken[i as usize] = true;
                            }
                        }
                    }
                    Made::Skip => break,
                }
            }
        }
        if offers > 0 {
            tracing::info!(offers, "waitlist offers made");
        }
        Ok(offers)
    }

    /// Holds these seats for the entry's fan through `place_hold`, sets the
    /// offer's own expiry, moves the entry to offered and writes the
    /// notification: all in one transaction, or nothing.
    async fn offer(&self, event: EventId, map: &VenueMap, entry: &Waiting, seats: &[u32]) -> Result<Made, sqlx::Error> {
        let mut chosen: Vec<&crate::venues::Seat> = seats.iter().map(|&i| map.seat(i)).collect();
        chosen.sort_by_key(|s| s.id);
        // One offer per entry, ever: the key names the entry.
        let key = format!("waitlist-offer-{}", entry.id);
        let fingerprint = Sha256::digest(key.as_bytes());
        let mut tx = self.pool.begin().await?;
        let placed = claims::place_hold(
            &mut tx,
            PlaceArgs {
                hold: HoldId::new(),
                event,
                fan: &entry.fan,
                key: &key,
                fingerprint: &fingerprint[..],
                seats: chosen.iter().map(|s| s.id).collect(),
                tiers: chosen.iter().map(|s| s.tier).collect(),
                jitter: 0.0,
                // Being first in line is this offer's admission.
                admitted: true,
                // It carries a notification: commit it as durably as one.
                durable: true,
            },
        )
        .await?;
        let (hold, seat_ids, prices, total) = match placed {
            Placed::Held {
                hold,
                seat_ids,
                prices_cents,
                total_cents,
                ..
            } => (hold, seat_ids, prices_cents, total_cents),
            Placed::Refused(json) if json["kind"] == "seats_taken" => {
                tx.rollback().await?;
                let lost = json["seat_ids"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|v| v.as_i64()).map(SeatId).collect())
                    .unwrap_or_default();
                return Ok(Made::Lost(lost));
            }
            other => {
                // The fan's limit (their own hold landed first), or the
                // event closed: the refusal is rolled back with the rest.
                tracing::debug!(entry_id = %entry.id, outcome = ?other, "waitlist: no offer to this entry now");
                tx.rollback().await?;
                return Ok(Made::Skip);
            }
        };
        if let Some(ceiling) = entry.max_price
            && prices.iter().any(|p| *p > ceiling)
        {
            // The price moved between the read and the hold.
            tx.rollback().await?;
            return Ok(Made::Skip);
        }
        // The offer's own time, not the event's hold time: the hold and its
        // claims end together. The claims only ever start now, so nothing
        // can overlap the longer range; the constraint checks it anyway.
        let expires_at: chrono::DateTime<chrono::Utc> = sqlx::query_scalar(
            r#"WITH h AS (
                   UPDATE holds SET expires_at = now() + make_interval(secs => $2)
                   WHERE id = $1 RETURNING id, event_id, seat_ids, expires_at
               ), c AS (
                   UPDATE seat_claims c SET during = tstzrange(lower(c.during), h.expires_at)
                   FROM h, unnest(h.seat_ids) AS s(seat_id)
                   WHERE c.event_id = h.event_id AND c.seat_id = s.seat_id AND c.hold_id = h.id AND c.kind = 'hold'
               )
               SELECT expires_at FROM h"#,
        )
        .bind(hold.0)
        .bind(f64::from(self.config.offer_secs))
        .fetch_one(&mut *tx)
        .await?;
        let moved = sqlx::query(
            r#"UPDATE waitlist_entries SET state = 'offered', hold_id = $2, offered_at = now()
               WHERE id = $1 AND state = 'waiting'"#,
        )
        .bind(entry.id.0)
        .bind(hold.0)
        .execute(&mut *tx)
        .await?;
        if moved.rows_affected() == 0 {
            // The fan left meanwhile.
            tx.rollback().await?;
            return Ok(Made::Skip);
        }
        notify_fan(
            &mut tx,
            topic::WAITLIST_OFFER,
            entry.fan.as_str(),
            json!({
                "entry_id": entry.id,
                "event_id": event,
                "hold_id": hold,
                "quantity": seat_ids.len(),
                "seat_ids": seat_ids,
                "total_cents": total,
                "expires_at": expires_at,
            }),
        )
        .await?;
        tx.commit().await?;
        tracing::debug!(entry_id = %entry.id, hold_id = %hold, "waitlist offer made");
        Ok(Made::Offered(seat_ids))
    }
}

/// Closes offers whose hold ended: bought if it became an order's sale,
/// else lapsed (expired, or released). Their seats are already free by the
/// clock; the next event pass offers them on. One event's, or all.
/// Returns (lapsed, bought).
pub async fn settle(pool: &PgPool, event: Option<EventId>) -> Result<(i64, i64), sqlx::Error> {
    let r = sqlx::query(
        r#"WITH ended AS (
               UPDATE waitlist_entries w
               SET state = CASE WHEN h.state = 'converted' THEN 'bought' ELSE 'lapsed' END, ended_at = now()
               FROM holds h
               WHERE w.state = 'offered' AND h.id = w.hold_id AND (h.state <> 'active' OR h.expires_at <= now())
                 AND ($1::bigint IS NULL OR w.event_id = $1)
               RETURNING w.state
           )
           SELECT count(*) FILTER (WHERE state = 'lapsed') AS lapsed,
                  count(*) FILTER (WHERE state = 'bought') AS bought
           FROM ended"#,
    )
    .bind(event.map(|e| e.0))
    .fetch_one(pool)
    .await?;
    Ok((r.try_get("lapsed")?, r.try_get("bought")?))
}

/// Runs the job every `interval_ms` until the process ends.
pub async fn run(offerer: Offerer) {
    let mut tick = tokio::time::interval(Duration::from_millis(offerer.config.interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match offerer.run_once().await {
            Ok(p) if p.offers > 0 || p.lapsed > 0 => {
                tracing::debug!(offers = p.offers, lapsed = p.lapsed, bought = p.bought, "waitlist pass")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "waitlist pass failed; retrying next tick"),
        }
    }
}
