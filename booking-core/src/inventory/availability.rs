//! Every seat's state for one event, packed two bits a seat in seat-map
//! order: a 50,000-seat stadium is 12,500 bytes, 16,668 characters of
//! base64. Read from the primary database, never from a cache.
//!
//! Reading a stadium's claims costs tens of milliseconds, and in an on-sale
//! every admitted fan asks at once, so `Readings` coalesces: one read per
//! event at a time, and a request is answered by the first read that
//! *started after it arrived*. Every answer is as fresh as a read of its
//! own (a fan always sees the hold they were just given), but a thousand
//! fans asking together cost two reads, not a thousand. Best available's
//! view and the seat-change feed take the same readings.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use usher_shared::locks;

use crate::ids::{EventId, SeatId};
use crate::inventory::claims;
use crate::metrics::Metrics;
use crate::venues::VenueMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SeatState {
    Available = 0,
    Held = 1,
    Sold = 2,
}

/// The encoding, stated in every answer so a client need not guess.
pub const ENCODING: &str = "2 bits per seat in seat-map order, seat n in bits (2*(n%4))..(2*(n%4)+1) of byte n/4 \
                            (least significant first); 0 available, 1 held, 2 sold; base64 (standard, padded)";

/// Every seat's state, indexed by seat-map position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct States(pub Vec<SeatState>);

impl States {
    pub fn from_claims(map: &VenueMap, claims: &[(SeatId, bool)]) -> States {
        let mut states = vec![SeatState::Available; map.seats.len()];
        for (seat, sold) in claims {
            if let Some(i) = map.index_of(*seat) {
                states[i as usize] = if *sold { SeatState::Sold } else { SeatState::Held };
            }
        }
        States(states)
    }

    pub fn count(&self, state: SeatState) -> usize {
        self.0.iter().filter(|s| **s == state).count()
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Availability {
    pub event_id: EventId,
    pub seat_count: usize,
    pub encoding: &'static str,
    /// The packed states.
    pub states: String,
    pub available: usize,
    pub held: usize,
    pub sold: usize,
    pub server_time: DateTime<Utc>,
}

impl Availability {
    pub fn new(event: EventId, states: &States, server_time: DateTime<Utc>) -> Availability {
        Availability {
            event_id: event,
            seat_count: states.0.len(),
            encoding: ENCODING,
            states: STANDARD.encode(pack(&states.0)),
            available: states.count(SeatState::Available),
            held: states.count(SeatState::Held),
            sold: states.count(SeatState::Sold),
            server_time,
        }
    }
}

/// Packs states two bits each, seat n in the low bits first.
pub fn pack(states: &[SeatState]) -> Vec<u8> {
    let mut out = vec![0u8; states.len().div_ceil(4)];
    for (i, s) in states.iter().enumerate() {
        out[i / 4] |= (*s as u8) << (2 * (i % 4));
    }
    out
}

pub fn unpack(bytes: &[u8], seat_count: usize) -> Vec<u8> {
    (0..seat_count).map(|i| (bytes[i / 4] >> (2 * (i % 4))) & 3).collect()
}

/// Reads every live claim of the event and the database clock.
pub async fn read_states(
    pool: &PgPool,
    map: &VenueMap,
    event: EventId,
) -> Result<(States, DateTime<Utc>), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let (claims, now) = claims::live_claims(&mut conn, event).await?;
    Ok((States::from_claims(map, &claims), now))
}

/// One reading of an event's seats, and the answer a fan gets from it.
#[derive(Debug)]
pub struct Reading {
    /// When the read's query was sent (this process's clock).
    pub started: Instant,
    pub states: States,
    pub availability: Arc<Availability>,
}

/// The process's readings of each event's seats, shared by everyone who
/// needs one: fans asking for availability, best available's view and the
/// seat-change feed. One read per event at a time; a caller names how fresh
/// its reading must be (started at or after an instant) and gets the latest
/// one if that is fresh enough, else the next. In an on-sale the three
/// would otherwise each scan the stadium's 50,000 claims several times a
/// second.
#[derive(Clone)]
pub struct Readings {
    pool: PgPool,
    events: Arc<Mutex<HashMap<EventId, Arc<Slot>>>>,
    /// Where each read's time and each handed-out reading's age go.
    metrics: Metrics,
}

/// One event's latest reading, and the gate that lets one read run at a time.
/// The latest is published apart from the gate: a caller whose need the
/// latest already meets (best available's half-second-old view) takes it
/// without queueing behind fans who need a newer one, and everyone waiting
/// wakes when a reading is published, not one by one through the gate.
#[derive(Default)]
struct Slot {
    gate: tokio::sync::Mutex<()>,
    latest: tokio::sync::watch::Sender<Option<Arc<Reading>>>,
}

impl Readings {
    pub fn new(pool: PgPool) -> Readings {
        Readings {
            pool,
            events: Arc::default(),
            metrics: Metrics::default(),
        }
    }

    /// Records reads and the age of the readings handed out in `metrics`.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// A reading as it is handed to a caller: its age is recorded.
    fn hand_out(&self, reading: Arc<Reading>) -> Arc<Reading> {
        self.metrics.seat_reading_age(reading.started.elapsed());
        reading
    }

    /// A reading of the event whose read started at or after `since`.
    pub async fn since(&self, map: &VenueMap, event: EventId, since: Instant) -> Result<Arc<Reading>, sqlx::Error> {
        let slot = {
            let mut events = locks::lock(&self.events);
            events.entry(event).or_default().clone()
        };
        let fresh = |latest: &Option<Arc<Reading>>| {
            latest
                .as_ref()
                .filter(|r| r.started >= since && r.states.0.len() == map.seats.len())
                .cloned()
        };
        let mut published = slot.latest.subscribe();
        loop {
            // Marks what was seen, so a reading published from here on wakes
            // `changed` below: none is missed between the look and the wait.
            if let Some(r) = fresh(&published.borrow_and_update()) {
                return Ok(self.hand_out(r));
            }
            tokio::select! {
                _gate = slot.gate.lock() => {
                    if let Some(r) = fresh(&slot.latest.borrow()) {
                        return Ok(self.hand_out(r));
                    }
                    let started = Instant::now();
                    let (states, now) = read_states(&self.pool, map, event).await?;
                    self.metrics.seat_reading(started.elapsed());
                    let availability = Arc::new(Availability::new(event, &states, now));
                    let reading = Arc::new(Reading {
                        started,
                        states,
                        availability,
                    });
                    slot.latest.send_replace(Some(reading.clone()));
                    return Ok(self.hand_out(reading));
                }
                // The sender lives in the slot, which this call holds, so
                // this only ever ends with a new reading.
                _ = published.changed() => {}
            }
        }
    }

    /// The event's availability from a read that started after this call:
    /// as fresh as a read of its own (a fan always sees the hold they were
    /// just given), but a thousand fans asking together cost two reads.
    pub async fn availability(&self, map: &VenueMap, event: EventId) -> Result<Arc<Availability>, sqlx::Error> {
        let reading = self.since(map, event, Instant::now()).await?;
        Ok(reading.availability.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_two_bits_per_seat() {
        let s = [
            SeatState::Available,
            SeatState::Held,
            SeatState::Sold,
            SeatState::Held,
            SeatState::Sold,
        ];
        let packed = pack(&s);
        assert_eq!(packed, vec![0b01_10_01_00, 0b10]);
        assert_eq!(unpack(&packed, 5), vec![0, 1, 2, 1, 2]);
        assert_eq!(STANDARD.encode(pack(&vec![SeatState::Available; 50_000])).len(), 16_668);
    }
}
