//! Making, reading and releasing holds: validation against the chart, the
//! transaction around the claim (idempotency record, per-fan lock, rules,
//! claim), best-available retries, and remembering refusals so that a retry
//! with the same Idempotency-Key is answered the same way.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rand::Rng;
use sqlx::{PgPool, Postgres, Transaction};

use crate::idempotency::{self, Answer, Fingerprint, Prior};
use crate::ids::{Cents, EventId, FanId, HoldId, SeatId};
use crate::inventory::best_available::{self, Scope};
use crate::inventory::claims::{self, ClaimArgs};
use crate::inventory::{Caller, HeldSeat, Hold, HoldError, HoldRequest, HoldState};
use crate::venues::{SeatMaps, VenueMap};

/// The answer to a mutating call, and whether it is a replay of the first
/// answer given to its Idempotency-Key.
#[derive(Debug)]
pub struct Outcome<T> {
    pub value: T,
    pub replayed: bool,
}

#[derive(Clone)]
pub struct HoldService {
    pool: PgPool,
    maps: SeatMaps,
    max_seats_per_request: usize,
    best_available_attempts: u32,
}

/// What to claim, once the request has been checked against the chart.
enum Plan {
    Seats(Vec<u32>),
    Best { scope: Scope, quantity: usize },
}

/// How one transaction ended.
enum Attempt {
    Held(Hold),
    Replay(Answer),
}

impl HoldService {
    pub fn new(
        pool: PgPool,
        maps: SeatMaps,
        max_seats_per_request: usize,
        best_available_attempts: u32,
    ) -> Self {
        HoldService {
            pool,
            maps,
            max_seats_per_request,
            best_available_attempts,
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn chart(&self, event: EventId) -> Result<Arc<VenueMap>, HoldError> {
        self.maps
            .for_event(event)
            .await
            .map_err(|e| HoldError::Storage(e.to_string()))?
            .ok_or(HoldError::EventNotFound)
    }

    #[tracing::instrument(skip_all, fields(event_id = %event, fan_id = %caller.fan, hold_id = tracing::field::Empty))]
    pub async fn place(
        &self,
        caller: &Caller,
        event: EventId,
        request: &HoldRequest,
    ) -> Result<Outcome<Hold>, HoldError> {
        let map = self.chart(event).await?;
        let plan = self.plan(&map, request).await?;
        let fingerprint = Fingerprint::of(&format!("hold.create/{event}"), request);
        let result = self.run_plan(caller, event, &map, plan, &fingerprint).await;
        let result = match result {
            Err(refusal) if refusal.is_refusal() => {
                self.remember_refusal(caller, &fingerprint, refusal).await
            }
            other => other,
        };
        match result? {
            Attempt::Held(hold) => {
                tracing::Span::current().record("hold_id", tracing::field::display(hold.hold_id));
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
                let dupes: BTreeSet<SeatId> = ids
                    .iter()
                    .filter(|id| !seen.insert(**id))
                    .copied()
                    .collect();
                if !dupes.is_empty() {
                    return Err(HoldError::DuplicateSeats {
                        seat_ids: dupes.into_iter().collect(),
                    });
                }
                let missing: Vec<SeatId> = ids
                    .iter()
                    .filter(|id| map.index_of(**id).is_none())
                    .copied()
                    .collect();
                if !missing.is_empty() {
                    return Err(self.classify_missing(missing).await);
                }
                Ok(Plan::Seats(
                    ids.iter().filter_map(|id| map.index_of(*id)).collect(),
                ))
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
        // Best available chooses under a per-scope lock and so only loses a
        // race to a fan who named specific seats; a few attempts cover that.
        let attempts = match plan {
            Plan::Seats(_) => 1,
            Plan::Best { .. } => self.best_available_attempts,
        };
        let mut last = HoldError::Storage("no attempt made".into());
        for _ in 0..attempts {
            match self.attempt(caller, event, map, &plan, fingerprint).await {
                Err(e @ HoldError::SeatsTaken { .. }) if matches!(plan, Plan::Best { .. }) => {
                    last = e
                }
                other => return other,
            }
        }
        match plan {
            Plan::Best { quantity, .. } => Err(HoldError::NoAdjacentSeats { quantity }),
            Plan::Seats(_) => Err(last),
        }
    }

    /// One all-or-nothing transaction: choose the seats (best available
    /// chooses here, under its scope lock, from a fresh read) and claim them.
    async fn attempt(
        &self,
        caller: &Caller,
        event: EventId,
        map: &VenueMap,
        plan: &Plan,
        fingerprint: &Fingerprint,
    ) -> Result<Attempt, HoldError> {
        let hold_id = HoldId::new();
        let mut tx = self.pool.begin().await?;
        match idempotency::record_in_tx(
            &mut tx,
            &caller.fan,
            &caller.key,
            fingerprint,
            &Answer::HoldCreated(hold_id),
        )
        .await?
        {
            Prior::None => {}
            Prior::Replay(answer) => return abandon(tx, Ok(Attempt::Replay(answer))).await,
            Prior::Mismatch => return abandon(tx, Err(HoldError::IdempotencyKeyReused)).await,
        }
        let Some(rules) = claims::lock_fan_and_read_rules(&mut tx, event, &caller.fan).await?
        else {
            return abandon(tx, Err(HoldError::EventNotFound)).await;
        };
        let refusal = if rules.cancelled {
            Some(HoldError::EventCancelled)
        } else if rules.over {
            Some(HoldError::EventOver)
        } else if !rules.on_sale {
            Some(HoldError::NotOnSale {
                on_sale_at: rules.on_sale_at,
            })
        } else if rules.protected && caller.admitted_for != Some(event) {
            Some(HoldError::AdmissionRequired)
        } else {
            None
        };
        if let Some(refusal) = refusal {
            return abandon(tx, Err(refusal)).await;
        }

        let mut seats = match plan {
            Plan::Seats(seats) => seats.clone(),
            Plan::Best { scope, quantity } => {
                let section = scope
                    .section
                    .map(|s| map.sections[s as usize].code.as_str());
                claims::lock_scope(&mut tx, event, section, scope.tier, scope.accessible).await?;
                let taken: HashSet<u32> = claims::live_seats_in_scope(
                    &mut tx,
                    event,
                    section,
                    scope.tier,
                    scope.accessible,
                )
                .await?
                .into_iter()
                .filter_map(|id| map.index_of(id))
                .collect();
                match best_available::rank(map, |i| taken.contains(&i), *scope, *quantity, 1)
                    .into_iter()
                    .next()
                {
                    Some(window) => window.seats,
                    None => {
                        return abandon(
                            tx,
                            Err(HoldError::NoAdjacentSeats {
                                quantity: *quantity,
                            }),
                        )
                        .await;
                    }
                }
            }
        };
        seats.sort_by_key(|&i| map.seat(i).id);
        let seat_ids: Vec<SeatId> = seats.iter().map(|&i| map.seat(i).id).collect();
        let tiers: Vec<i16> = seats.iter().map(|&i| map.seat(i).tier).collect();

        // Spread expiries over +/- jitter so a burst of holds does not all
        // come back in the same second.
        let jitter = rules.jitter_secs as f64;
        let offset = if jitter > 0.0 {
            rand::thread_rng().gen_range(-jitter..=jitter)
        } else {
            0.0
        };
        let lifetime_secs = (rules.ttl_secs as f64 + offset).max(1.0);

        let claim = claims::claim_seats(
            &mut tx,
            ClaimArgs {
                hold: hold_id,
                event,
                fan: &caller.fan,
                seats: &seat_ids,
                tiers: &tiers,
                lifetime_secs,
                max_seats_per_fan: rules.max_seats_per_fan,
            },
        )
        .await?;
        let wanted = seat_ids.len();
        if claim.already as usize + wanted > rules.max_seats_per_fan as usize {
            return abandon(
                tx,
                Err(HoldError::FanLimitReached {
                    limit: rules.max_seats_per_fan,
                    already: claim.already,
                }),
            )
            .await;
        }
        if (claim.priced as usize) < wanted {
            let priced: Vec<i16> =
                sqlx::query_scalar!("SELECT tier FROM event_tiers WHERE event_id = $1", event.0)
                    .fetch_all(&mut *tx)
                    .await?;
            let unpriced = seats
                .iter()
                .filter(|&&i| !priced.contains(&map.seat(i).tier))
                .map(|&i| map.seat(i).id);
            return abandon(
                tx,
                Err(HoldError::SeatsNotForSale {
                    seat_ids: unpriced.collect(),
                }),
            )
            .await;
        }
        if claim.claimed.len() < wanted {
            let got: HashSet<SeatId> = claim.claimed.iter().copied().collect();
            let taken = seat_ids
                .iter()
                .filter(|s| !got.contains(s))
                .copied()
                .collect();
            return abandon(tx, Err(HoldError::SeatsTaken { seat_ids: taken })).await;
        }
        let expires_at = claim
            .expires_at
            .ok_or_else(|| HoldError::Storage("hold row missing".into()))?;
        tx.commit().await?;
        Ok(Attempt::Held(render(
            map,
            HoldFacts {
                id: hold_id,
                event,
                state: HoldState::Active,
                seat_ids,
                prices_cents: claim.prices_cents,
                total_cents: claim.total_cents,
                created_at: claim.created_at,
                expires_at,
                server_time: claim.created_at,
            },
        )))
    }

    /// Stores the refusal against the key; if a concurrent request with the
    /// key got its answer stored first, that answer wins.
    async fn remember_refusal(
        &self,
        caller: &Caller,
        fingerprint: &Fingerprint,
        refusal: HoldError,
    ) -> Result<Attempt, HoldError> {
        // Serialising the error enum cannot fail.
        let json = serde_json::to_value(&refusal).expect("serialise refusal");
        match idempotency::record_refusal(&self.pool, &caller.fan, &caller.key, fingerprint, json)
            .await?
        {
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
            Answer::Refused(json) => {
                return Err(serde_json::from_value(json).unwrap_or_else(|e| {
                    HoldError::Storage(format!("stored refusal unreadable: {e}"))
                }));
            }
        };
        let mut value = get_hold(&self.pool, &self.maps, &caller.fan, hold).await?;
        value.state = as_state;
        Ok(Outcome {
            value,
            replayed: true,
        })
    }

    #[tracing::instrument(skip_all, fields(hold_id = %hold, fan_id = %caller.fan))]
    pub async fn release(&self, caller: &Caller, hold: HoldId) -> Result<Outcome<Hold>, HoldError> {
        let fingerprint = Fingerprint::of("hold.release", &hold);
        let result: Result<Option<Answer>, HoldError> = async {
            let mut tx = self.pool.begin().await?;
            match idempotency::record_in_tx(
                &mut tx,
                &caller.fan,
                &caller.key,
                &fingerprint,
                &Answer::HoldReleased(hold),
            )
            .await?
            {
                Prior::None => {}
                Prior::Replay(answer) => return abandon(tx, Ok(Some(answer))).await,
                Prior::Mismatch => return abandon(tx, Err(HoldError::IdempotencyKeyReused)).await,
            }
            if claims::release_hold(&mut tx, hold, &caller.fan).await? {
                tx.commit().await?;
                return Ok(None);
            }
            let why = why_not_active(&mut tx, hold, &caller.fan).await?;
            abandon(tx, Err(why)).await
        }
        .await;
        let answer = match result {
            Ok(None) => {
                return Ok(Outcome {
                    value: get_hold(&self.pool, &self.maps, &caller.fan, hold).await?,
                    replayed: false,
                });
            }
            Ok(Some(answer)) => answer,
            Err(refusal) if refusal.is_refusal() => {
                match self.remember_refusal(caller, &fingerprint, refusal).await? {
                    Attempt::Replay(answer) => answer,
                    Attempt::Held(_) => return Err(HoldError::Storage("unexpected hold".into())),
                }
            }
            Err(other) => return Err(other),
        };
        self.replay(caller, answer).await
    }
}

/// Rolls back and passes the result on.
async fn abandon<T>(
    tx: Transaction<'static, Postgres>,
    result: Result<T, HoldError>,
) -> Result<T, HoldError> {
    tx.rollback().await?;
    result
}

/// Why a hold of this fan could not be released.
async fn why_not_active(
    tx: &mut sqlx::PgConnection,
    hold: HoldId,
    fan: &FanId,
) -> Result<HoldError, HoldError> {
    let row = sqlx::query!(
        r#"SELECT state, expires_at, expires_at <= now() AS "lapsed!" FROM holds WHERE id = $1 AND fan_id = $2"#,
        hold.0,
        fan.as_str()
    )
    .fetch_optional(tx)
    .await?;
    Ok(match row {
        None => HoldError::HoldNotFound,
        Some(r) => match HoldState::parse(&r.state) {
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
pub async fn get_hold(
    pool: &PgPool,
    maps: &SeatMaps,
    fan: &FanId,
    hold: HoldId,
) -> Result<Hold, HoldError> {
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
    let state = match HoldState::parse(&r.state) {
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
