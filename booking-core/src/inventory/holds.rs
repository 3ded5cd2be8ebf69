//! Making, reading and releasing holds: validation against the chart, the
//! call that claims (see `claims.rs`), best-available's choice (first in
//! memory, see `recent.rs`, then exactly under its scope lock) with retries,
//! and idempotent answers for retried keys.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use sqlx::PgPool;
use usher_shared::locks;

use crate::config::HoldsConfig;
use crate::idempotency::{self, Answer, Fingerprint, Outcome, Prior};
use crate::ids::{Cents, EventId, FanId, HoldId, SeatId};
use crate::inventory::availability::Readings;
use crate::inventory::best_available::{self, Scope};
use crate::inventory::claims::{self, PlaceArgs, Placed};
use crate::inventory::recent::RecentClaims;
use crate::inventory::rooms::WaitingRooms;
use crate::inventory::{Caller, HeldSeat, Hold, HoldError, HoldRequest, HoldState};
use crate::metrics::Metrics;
use crate::venues::{SeatMaps, VenueMap};

#[derive(Clone)]
pub struct HoldService {
    pool: PgPool,
    maps: SeatMaps,
    max_seats_per_request: usize,
    best_available_attempts: u32,
    durable_commit: bool,
    /// One in-process turn per best-available scope: requests for the same
    /// scope wait here, in memory, rather than each holding a pooled
    /// connection while it waits for the scope's database lock (which still
    /// orders choices across instances). Without it a burst of "best two"
    /// requests for one tier takes the whole pool and starves every other
    /// request.
    scopes: Arc<std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    /// Best available's first choice, from a recent reading of the claims.
    recent: Option<RecentClaims>,
    /// Events with a waiting room at the edge: holds need its admission.
    rooms: WaitingRooms,
    /// Where waits for a pooled connection on the hold path are recorded.
    metrics: Metrics,
}

/// What to claim, once the request has been checked against the chart.
enum Plan {
    Seats(Vec<u32>),
    Best { scope: Scope, quantity: usize },
}

/// How an attempt ended, short of an error.
enum Attempt {
    Held(Hold),
    Replay(Answer),
}

impl HoldService {
    pub fn new(pool: PgPool, maps: SeatMaps, readings: Readings, rooms: WaitingRooms, config: &HoldsConfig) -> Self {
        HoldService {
            pool: pool.clone(),
            maps,
            max_seats_per_request: config.max_seats_per_request,
            best_available_attempts: config.best_available_attempts,
            durable_commit: config.durable_commit,
            scopes: Arc::default(),
            recent: (config.recent_claims_ms > 0)
                .then(|| RecentClaims::new(readings, Duration::from_millis(config.recent_claims_ms))),
            rooms,
            metrics: Metrics::default(),
        }
    }

    /// Times this service's waits for pooled connections in `metrics`.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// The events whose holds need the edge's admission.
    pub fn rooms(&self) -> &WaitingRooms {
        &self.rooms
    }

    fn scope_turn(&self, key: String) -> Arc<tokio::sync::Mutex<()>> {
        let mut scopes = locks::lock(&self.scopes);
        scopes.entry(key).or_default().clone()
    }

    async fn chart(&self, event: EventId) -> Result<Arc<VenueMap>, HoldError> {
        self.maps
            .for_event(event)
            .await
            .map_err(|e| HoldError::Storage(e.to_string()))?
            .ok_or(HoldError::EventNotFound)
    }

    #[tracing::instrument(skip_all, fields(event_id = %event, hold_id = tracing::field::Empty, fan = %usher_shared::redact::hashed(&caller.fan.0)))]
    pub async fn place(
        &self,
        caller: &Caller,
        event: EventId,
        request: &HoldRequest,
    ) -> Result<Outcome<Hold>, HoldError> {
        // The `protected` rule is checked where the seats are claimed; a room
        // opened at the edge alone is checked here, before anything is read.
        if self.rooms.has(event) && caller.admitted_for != Some(event) {
            return Err(HoldError::AdmissionRequired);
        }
        let map = self.chart(event).await?;
        let plan = self.plan(&map, request).await?;
        let fingerprint = Fingerprint::of(&format!("hold.create/{event}"), request);
        let attempt = match self.run_plan(caller, event, &map, plan, &fingerprint).await {
            // Refusals made by place_hold are recorded there; best
            // available's own verdict is recorded here.
            Err(refusal @ HoldError::NoAdjacentSeats { .. }) => {
                self.remember_refusal(caller, &fingerprint, refusal).await
            }
            other => other,
        }?;
        match attempt {
            Attempt::Held(hold) => {
                tracing::Span::current().record("hold_id", tracing::field::display(hold.hold_id));
                tracing::debug!(seats = hold.seats.len(), "hold placed");
                Ok(Outcome {
                    value: hold,
                    replayed: false,
                })
            }
            Attempt::Replay(answer) => self.replay(caller, answer).await,
        }
    }

    /// Checks the request against the chart without touching inventory.
    async fn plan(&self, map: &VenueMap, request: &HoldRequest) -> Result<Plan, HoldError> {
        match (&request.seat_ids, &request.best_available) {
            (Some(ids), None) => {
                if ids.is_empty() || ids.len() > self.max_seats_per_request {
                    return Err(HoldError::SeatCountOutOfRange {
                        max: self.max_seats_per_request,
                    });
                }
                let mut seen = HashSet::new();
                let dupes: BTreeSet<SeatId> = ids.iter().filter(|id| !seen.insert(**id)).copied().collect();
                if !dupes.is_empty() {
                    return Err(HoldError::DuplicateSeats {
                        seat_ids: dupes.into_iter().collect(),
                    });
                }
                let missing: Vec<SeatId> = ids.iter().filter(|id| map.index_of(**id).is_none()).copied().collect();
                if !missing.is_empty() {
                    return Err(self.classify_missing(missing).await);
                }
                Ok(Plan::Seats(ids.iter().filter_map(|id| map.index_of(*id)).collect()))
            }
            (None, Some(best)) => {
                let max = self.max_seats_per_request;
                if best.quantity < 1 || best.quantity > max as i64 {
                    return Err(HoldError::QuantityOutOfRange { max });
                }
                let section = match &best.section {
                    Some(code) => Some(
                        map.section_index(code)
                            .ok_or_else(|| HoldError::UnknownSection { code: code.clone() })?,
                    ),
                    None => None,
                };
                if let Some(tier) = best.tier
                    && !map.tiers().contains(&tier)
                {
                    return Err(HoldError::UnknownTier { tier });
                }
                let scope = Scope {
                    section,
                    tier: best.tier,
                    accessible: best.accessible,
                };
                Ok(Plan::Best {
                    scope,
                    quantity: best.quantity as usize,
                })
            }
            _ => Err(HoldError::AmbiguousRequest),
        }
    }

    /// Seats not in this venue: unknown everywhere, or another venue's.
    async fn classify_missing(&self, missing: Vec<SeatId>) -> HoldError {
        let ids: Vec<i64> = missing.iter().map(|s| s.0).collect();
        match sqlx::query_scalar!("SELECT id FROM seats WHERE id = ANY($1)", &ids)
            .fetch_all(&self.pool)
            .await
        {
            Ok(elsewhere) if elsewhere.is_empty() => HoldError::UnknownSeats { seat_ids: missing },
            Ok(elsewhere) => HoldError::SeatsNotInEvent {
                seat_ids: elsewhere.into_iter().map(SeatId).collect(),
            },
            Err(e) => e.into(),
        }
    }

    async fn run_plan(
        &self,
        caller: &Caller,
        event: EventId,
        map: &VenueMap,
        plan: Plan,
        fingerprint: &Fingerprint,
    ) -> Result<Attempt, HoldError> {
        match plan {
            Plan::Seats(seats) => {
                let mut conn = self.metrics.acquire(&self.pool).await?;
                let placed = claims::place_hold(&mut conn, self.args(caller, event, map, &seats, fingerprint)).await?;
                if let (Some(recent), Placed::Held { .. }) = (&self.recent, &placed) {
                    recent.claimed(event, &seats);
                }
                settle(map, event, placed)
            }
            Plan::Best { scope, quantity } => {
                if let Some(recent) = &self.recent {
                    let arrived = std::time::Instant::now();
                    // When this request last lost a race: every later choice
                    // comes from a reading made after it.
                    let mut lost_at = None;
                    for _ in 0..self.best_available_attempts {
                        let choice = match recent.choose(event, map, scope, quantity, lost_at).await? {
                            Some(choice) => choice,
                            // Nothing in a reading from before: ask one made
                            // since the request arrived (and after its last
                            // lost race), and believe it.
                            None => match recent
                                .choose(event, map, scope, quantity, Some(lost_at.unwrap_or(arrived)))
                                .await?
                            {
                                Some(choice) => choice,
                                None => return Err(HoldError::NoAdjacentSeats { quantity }),
                            },
                        };
                        // In a transaction: a lost race must not be
                        // recorded as the answer to the fan's key.
                        let placed = self.place_chosen(caller, event, map, &choice.seats, fingerprint).await;
                        match placed {
                            Ok(None) => {
                                // Someone the reading did not know of was
                                // quicker, on at least one of these seats;
                                // which, only a reading made after the loss
                                // tells. Marking them all taken here would
                                // hide a free neighbour, and a fan could be
                                // told "no seats together" beside one.
                                recent.settle(choice, false);
                                lost_at = Some(std::time::Instant::now());
                            }
                            Ok(Some(placed)) => {
                                recent.settle(choice, matches!(placed, Placed::Held { .. }));
                                return settle(map, event, placed);
                            }
                            Err(e) => {
                                recent.settle(choice, false);
                                return Err(e.into());
                            }
                        }
                    }
                }
                // The exact choice: no recent view, or its choices kept
                // losing races.
                // The choice is made under the scope's lock, so it only loses
                // a race to a fan who named specific seats; a few attempts
                // cover that.
                let section = scope.section.map(|s| map.sections[s as usize].code.as_str());
                let turn = self.scope_turn(format!(
                    "{}/{}/{:?}/{}",
                    event.0,
                    section.unwrap_or("*"),
                    scope.tier,
                    scope.accessible
                ));
                let _turn = turn.lock().await;
                for _ in 0..self.best_available_attempts {
                    let mut tx = self.metrics.begin(&self.pool).await?;
                    claims::lock_scope(&mut tx, event, section, scope.tier, scope.accessible).await?;
                    // Every live claim of the event: the ranking itself keeps
                    // to the scope, from the chart.
                    let (live, _) = claims::live_claims(&mut tx, event).await?;
                    let taken: HashSet<u32> = live.into_iter().filter_map(|(id, _)| map.index_of(id)).collect();
                    let Some(window) = best_available::rank(map, |i| taken.contains(&i), scope, quantity, 1)
                        .into_iter()
                        .next()
                    else {
                        tx.rollback().await?;
                        return Err(HoldError::NoAdjacentSeats { quantity });
                    };
                    let placed =
                        claims::place_hold(&mut tx, self.args(caller, event, map, &window.seats, fingerprint)).await?;
                    if let Placed::Refused(json) = &placed
                        && json["kind"] == "seats_taken"
                    {
                        // Not a refusal of the fan's request: choose again.
                        tx.rollback().await?;
                        continue;
                    }
                    tx.commit().await?;
                    return settle(map, event, placed);
                }
                Err(HoldError::NoAdjacentSeats { quantity })
            }
        }
    }

    /// Claims seats best available chose, in a transaction that a lost race
    /// rolls back (None), so that the refusal is not kept as the key's answer.
    async fn place_chosen(
        &self,
        caller: &Caller,
        event: EventId,
        map: &VenueMap,
        seats: &[u32],
        fingerprint: &Fingerprint,
    ) -> Result<Option<Placed>, sqlx::Error> {
        let mut tx = self.metrics.begin(&self.pool).await?;
        let placed = claims::place_hold(&mut tx, self.args(caller, event, map, seats, fingerprint)).await?;
        if let Placed::Refused(json) = &placed
            && json["kind"] == "seats_taken"
        {
            tx.rollback().await?;
            return Ok(None);
        }
        tx.commit().await?;
        Ok(Some(placed))
    }

    fn args<'a>(
        &self,
        caller: &'a Caller,
        event: EventId,
        map: &VenueMap,
        seats: &[u32],
        fingerprint: &'a Fingerprint,
    ) -> PlaceArgs<'a> {
        let mut seats: Vec<&crate::venues::Seat> = seats.iter().map(|&i| map.seat(i)).collect();
        seats.sort_by_key(|s| s.id);
        PlaceArgs {
            hold: HoldId::new(),
            event,
            fan: &caller.fan,
            key: caller.key.as_str(),
            fingerprint: &fingerprint.0,
            seats: seats.iter().map(|s| s.id).collect(),
            tiers: seats.iter().map(|s| s.tier).collect(),
            // Spread expiries over +/- the event's jitter so a burst of holds
            // does not all come back in the same second.
            jitter: rand::thread_rng().gen_range(-1.0..=1.0),
            admitted: caller.admitted_for == Some(event),
            durable: self.durable_commit,
        }
    }

    /// Stores the refusal against the key; if the key already had an
    /// answer, that answer wins.
    async fn remember_refusal(
        &self,
        caller: &Caller,
        fingerprint: &Fingerprint,
        refusal: HoldError,
    ) -> Result<Attempt, HoldError> {
        // Serialising the error enum cannot fail.
        let json = serde_json::to_value(&refusal).expect("serialise refusal");
        match idempotency::record_refusal(&self.pool, &caller.fan, &caller.key, fingerprint, json).await? {
            Prior::None => Err(refusal),
            Prior::Replay(answer) => Ok(Attempt::Replay(answer)),
            Prior::Mismatch => Err(HoldError::IdempotencyKeyReused),
        }
    }

    /// Gives the first answer again.
    async fn replay(&self, caller: &Caller, answer: Answer) -> Result<Outcome<Hold>, HoldError> {
        let (hold, as_state) = match answer {
            Answer::HoldCreated(h) => (h, HoldState::Active),
            Answer::HoldReleased(h) => (h, HoldState::Released),
            Answer::Refused(json) => return Err(HoldError::from_json(json)),
        };
        let mut value = get_hold(&self.pool, &self.maps, &caller.fan, hold).await?;
        value.state = as_state;
        Ok(Outcome { value, replayed: true })
    }

    #[tracing::instrument(skip_all, fields(hold_id = %hold))]
    pub async fn release(&self, caller: &Caller, hold: HoldId) -> Result<Outcome<Hold>, HoldError> {
        let fingerprint = Fingerprint::of("hold.release", &hold);
        let mut tx = self.pool.begin().await?;
        let refusal = match idempotency::record_in_tx(
            &mut tx,
            &caller.fan,
            &caller.key,
            &fingerprint,
            &Answer::HoldReleased(hold),
        )
        .await?
        {
            Prior::Replay(answer) => {
                tx.rollback().await?;
                return self.replay(caller, answer).await;
            }
            Prior::Mismatch => {
                tx.rollback().await?;
                return Err(HoldError::IdempotencyKeyReused);
            }
            Prior::None if claims::release_hold(&mut tx, hold, &caller.fan).await? => {
                tx.commit().await?;
                let value = get_hold(&self.pool, &self.maps, &caller.fan, hold).await?;
                return Ok(Outcome { value, replayed: false });
            }
            Prior::None => why_not_active(&mut tx, hold, &caller.fan).await?,
        };
        tx.rollback().await?;
        match self.remember_refusal(caller, &fingerprint, refusal).await? {
            Attempt::Replay(answer) => self.replay(caller, answer).await,
            Attempt::Held(_) => Err(HoldError::Storage("a release produced a hold".into())),
        }
    }
}

/// Turns what place_hold did into the fan's answer.
fn settle(map: &VenueMap, event: EventId, placed: Placed) -> Result<Attempt, HoldError> {
    match placed {
        Placed::Held {
            hold,
            seat_ids,
            created_at,
            expires_at,
            prices_cents,
            total_cents,
        } => Ok(Attempt::Held(render(
            map,
            HoldFacts {
                id: hold,
                event,
                state: HoldState::Active,
                seat_ids,
                prices_cents,
                total_cents,
                created_at,
                expires_at,
                server_time: created_at,
            },
        ))),
        Placed::ReplayHold(hold) => Ok(Attempt::Replay(Answer::HoldCreated(hold))),
        Placed::ReplayRefusal(json) => Ok(Attempt::Replay(Answer::Refused(json))),
        Placed::Refused(json) => Err(HoldError::from_json(json)),
    }
}

/// Why a hold of this fan could not be released.
async fn why_not_active(tx: &mut sqlx::PgConnection, hold: HoldId, fan: &FanId) -> Result<HoldError, HoldError> {
    let row = sqlx::query!(
        r#"SELECT state, expires_at, expires_at <= now() AS "lapsed!" FROM holds WHERE id = $1 AND fan_id = $2"#,
        hold.0,
        fan.as_str()
    )
    .fetch_optional(tx)
    .await?;
    Ok(match row {
        None => HoldError::HoldNotFound,
        Some(r) => match HoldState::parse(&r.state).map_err(sqlx::Error::from)? {
            HoldState::Released => HoldError::HoldReleased,
            HoldState::Converted => HoldError::HoldConverted,
            HoldState::Expired => HoldError::HoldExpired {
                expired_at: r.expires_at,
            },
            HoldState::Active if r.lapsed => HoldError::HoldExpired {
                expired_at: r.expires_at,
            },
            HoldState::Active => HoldError::Storage("active hold was not released".into()),
        },
    })
}

struct HoldFacts {
    id: HoldId,
    event: EventId,
    state: HoldState,
    seat_ids: Vec<SeatId>,
    prices_cents: Vec<i64>,
    total_cents: i64,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    server_time: DateTime<Utc>,
}

fn render(map: &VenueMap, f: HoldFacts) -> Hold {
    let seats = f
        .seat_ids
        .iter()
        .zip(&f.prices_cents)
        .map(|(id, price)| {
            let (section, row, seat, tier) = match map.index_of(*id).map(|i| map.seat(i)) {
                Some(s) => (
                    map.sections[s.section as usize].code.clone(),
                    map.row_of(s).label.clone(),
                    s.label.clone(),
                    s.tier,
                ),
                None => (String::new(), String::new(), String::new(), 0),
            };
            HeldSeat {
                seat_id: *id,
                section,
                row,
                seat,
                tier,
                price_cents: Cents(*price),
            }
        })
        .collect();
    Hold {
        hold_id: f.id,
        event_id: f.event,
        state: f.state,
        seats,
        total_cents: Cents(f.total_cents),
        created_at: f.created_at,
        expires_at: f.expires_at,
        server_time: f.server_time,
    }
}

/// A fan's own hold, with its state as of now (an active hold past its
/// expiry reads as expired even before the reaper has been by).
pub async fn get_hold(pool: &PgPool, maps: &SeatMaps, fan: &FanId, hold: HoldId) -> Result<Hold, HoldError> {
    let r = sqlx::query!(
        r#"SELECT event_id, state, seat_ids, prices_cents, total_cents, created_at, expires_at,
                  now() AS "now!", expires_at <= now() AS "lapsed!"
           FROM holds WHERE id = $1 AND fan_id = $2"#,
        hold.0,
        fan.as_str()
    )
    .fetch_optional(pool)
    .await?
    .ok_or(HoldError::HoldNotFound)?;
    let event = EventId(r.event_id);
    let map = maps
        .for_event(event)
        .await
        .map_err(|e| HoldError::Storage(e.to_string()))?
        .ok_or(HoldError::EventNotFound)?;
    let state = match HoldState::parse(&r.state).map_err(sqlx::Error::from)? {
        HoldState::Active if r.lapsed => HoldState::Expired,
        s => s,
    };
    Ok(render(
        &map,
        HoldFacts {
            id: hold,
            event,
            state,
            seat_ids: r.seat_ids.into_iter().map(SeatId).collect(),
            prices_cents: r.prices_cents,
            total_cents: r.total_cents,
            created_at: r.created_at,
            expires_at: r.expires_at,
            server_time: r.now,
        },
    ))
}
