//! Property test of the seat state machine: random interleavings of hold,
//! release, expire, sell and reap, run against the real database through the
//! inventory module, and checked step by step against a simple model.

use std::collections::BTreeSet;

use crate::common::*;
use booking_core::idempotency::IdempotencyKey;
use booking_core::ids::{EventId, FanId, HoldId, SeatId};
use booking_core::inventory::{Caller, HoldError, HoldRequest, HoldService, claims, reaper};
use booking_core::venues::SeatMaps;
use proptest::prelude::*;
use sqlx::PgPool;

const SEATS: usize = 6;
const FANS: usize = 3;
const LIMIT: usize = 4;

#[derive(Debug, Clone)]
enum Op {
    Hold { fan: usize, seats: BTreeSet<usize> },
    Release { fan: usize, hold: usize },
    Expire { hold: usize },
    Sell { hold: usize },
    Reap,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..FANS, proptest::collection::btree_set(0..SEATS, 1..=3)).prop_map(|(fan, seats)| Op::Hold { fan, seats }),
        2 => (0..FANS, 0..8usize).prop_map(|(fan, hold)| Op::Release { fan, hold }),
        1 => (0..8usize).prop_map(|hold| Op::Expire { hold }),
        1 => (0..8usize).prop_map(|hold| Op::Sell { hold }),
        1 => Just(Op::Reap),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Active,
    Released,
    Expired,
    Sold,
}

#[derive(Debug)]
struct ModelHold {
    id: HoldId,
    fan: usize,
    seats: BTreeSet<usize>,
    state: State,
}

#[derive(Default)]
struct Model {
    holds: Vec<ModelHold>,
}

impl Model {
    fn owner(&self, seat: usize) -> Option<usize> {
        self.holds
            .iter()
            .position(|h| matches!(h.state, State::Active | State::Sold) && h.seats.contains(&seat))
    }
    fn seats_of(&self, fan: usize) -> usize {
        self.holds
            .iter()
            .filter(|h| h.fan == fan && matches!(h.state, State::Active | State::Sold))
            .map(|h| h.seats.len())
            .sum()
    }
}

struct World {
    pool: PgPool,
    service: HoldService,
    event: EventId,
    seats: Vec<i64>,
    step: usize,
}

impl World {
    fn caller(&mut self, fan: usize) -> Caller {
        self.step += 1;
        Caller {
            fan: FanId(format!("fan-{fan}")),
            key: IdempotencyKey::parse(&format!("step-{}-{}", self.event.0, self.step)).unwrap(),
            admitted_for: None,
        }
    }
}

async fn apply(w: &mut World, model: &mut Model, op: &Op) {
    match op {
        Op::Hold { fan, seats } => {
            let request = HoldRequest {
                seat_ids: Some(seats.iter().map(|&s| SeatId(w.seats[s])).collect()),
                best_available: None,
            };
            let caller = w.caller(*fan);
            let got = w.service.place(&caller, w.event, &request).await;
            let taken: BTreeSet<i64> = seats
                .iter()
                .filter(|&&s| model.owner(s).is_some())
                .map(|&s| w.seats[s])
                .collect();
            if model.seats_of(*fan) + seats.len() > LIMIT {
                assert!(
                    matches!(got, Err(HoldError::FanLimitReached { .. })),
                    "{op:?}: expected limit, got {got:?}"
                );
            } else if !taken.is_empty() {
                match got {
                    Err(HoldError::SeatsTaken { seat_ids }) => {
                        assert_eq!(seat_ids.iter().map(|s| s.0).collect::<BTreeSet<_>>(), taken, "{op:?}")
                    }
                    other => panic!("{op:?}: expected seats_taken {taken:?}, got {other:?}"),
                }
            } else {
                let hold = got
                    .unwrap_or_else(|e| panic!("{op:?}: expected a hold, got {e:?}"))
                    .value;
                model.holds.push(ModelHold {
                    id: hold.hold_id,
                    fan: *fan,
                    seats: seats.clone(),
                    state: State::Active,
                });
            }
        }
        Op::Release { fan, hold } => {
            let Some(h) = model.holds.get_mut(*hold) else {
                return;
            };
            let caller = w.caller(*fan);
            let got = w.service.release(&caller, h.id).await;
            match (h.fan == *fan, h.state) {
                (false, _) => assert!(matches!(got, Err(HoldError::HoldNotFound)), "{got:?}"),
                (true, State::Active) => {
                    assert!(got.is_ok(), "{got:?}");
                    h.state = State::Released;
                }
                (true, State::Released) => {
                    assert!(matches!(got, Err(HoldError::HoldReleased)), "{got:?}")
                }
                (true, State::Expired) => {
                    assert!(matches!(got, Err(HoldError::HoldExpired { .. })), "{got:?}")
                }
                (true, State::Sold) => {
                    assert!(matches!(got, Err(HoldError::HoldConverted)), "{got:?}")
                }
            }
        }
        Op::Expire { hold } => {
            let Some(h) = model.holds.get_mut(*hold) else {
                return;
            };
            if h.state != State::Active {
                return;
            }
            // Time passes for this hold: its expiry moves into the past.
            // Its range shrinks to the instant it began, so it cannot
            // overlap any other claim on the seat, before or after.
            sqlx::query("UPDATE holds SET expires_at = created_at + interval '1 microsecond' WHERE id = $1")
                .bind(h.id.0)
                .execute(&w.pool)
                .await
                .unwrap();
            sqlx::query("UPDATE seat_claims SET during = tstzrange(lower(during), lower(during) + interval '1 microsecond') WHERE hold_id = $1 AND kind = 'hold'")
                .bind(h.id.0)
                .execute(&w.pool)
                .await
                .unwrap();
            h.state = State::Expired;
        }
        Op::Sell { hold } => {
            let Some(h) = model.holds.get_mut(*hold) else {
                return;
            };
            let mut tx = w.pool.begin().await.unwrap();
            let sold = claims::sell_hold(&mut tx, h.id).await.unwrap();
            tx.commit().await.unwrap();
            if h.state == State::Active {
                let sold: BTreeSet<i64> = sold.expect("active hold sells").into_iter().map(|s| s.0).collect();
                assert_eq!(sold, h.seats.iter().map(|&s| w.seats[s]).collect());
                h.state = State::Sold;
            } else {
                assert!(sold.is_none(), "{h:?} sold");
            }
        }
        Op::Reap => {
            reaper::reap_once(&w.pool, 100).await.unwrap();
        }
    }
}

/// The database's live claims are exactly the model's held and sold seats.
async fn agree(w: &World, model: &Model) {
    let claims: Vec<(i64, uuid::Uuid, String)> = sqlx::query_as(
        "SELECT seat_id, hold_id, kind FROM seat_claims WHERE event_id = $1 AND during @> now() ORDER BY seat_id",
    )
    .bind(w.event.0)
    .fetch_all(&w.pool)
    .await
    .unwrap();
    let mut expected: Vec<(i64, uuid::Uuid, String)> = Vec::new();
    for h in &model.holds {
        let kind = match h.state {
            State::Active => "hold",
            State::Sold => "sale",
            _ => continue,
        };
        expected.extend(h.seats.iter().map(|&s| (w.seats[s], h.id.0, kind.to_string())));
    }
    expected.sort();
    assert_eq!(claims, expected);
}

#[test]
fn seat_state_machine_matches_the_model() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (db, seats) = rt.block_on(async {
        let db = TestDb::new().await;
        let v = venue(&db.pool, &small_chart("model", &["A"], 1, SEATS)).await;
        let seats = seat_ids(&db.pool, v).await;
        (db, seats)
    });
    let case = std::sync::atomic::AtomicUsize::new(0);
    let config = ProptestConfig {
        cases: 40,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(ops in proptest::collection::vec(op(), 1..30))| {
        let case = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        rt.block_on(async {
            let event = event(&db.pool, &format!("model-{case}"), "model", rules(LIMIT as i32)).await;
            let service = HoldService::new(
                db.pool.clone(),
                SeatMaps::new(db.pool.clone()),
                booking_core::inventory::availability::Readings::new(db.pool.clone()),
                booking_core::inventory::WaitingRooms::default(),
                &booking_core::config::Config::default().holds,
            );
            let mut world = World { pool: db.pool.clone(), service, event, seats: seats.clone(), step: 0 };
            let mut model = Model::default();
            for op in &ops {
                apply(&mut world, &mut model, op).await;
                agree(&world, &model).await;
            }
        });
    });
    rt.block_on(db.finish());
}
