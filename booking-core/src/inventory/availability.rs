//! Every seat's state for one event, packed two bits a seat in seat-map
//! order: a 50,000-seat stadium is 12,500 bytes, 16,668 characters of
//! base64. Read from the primary database, never from a cache.
//!
//! Reading a stadium's claims costs tens of milliseconds, and in an on-sale
//! every admitted fan asks at once, so `Reader` coalesces: one read per
//! event at a time, and a request is answered by the first read that
//! *started after it arrived*. Every answer is as fresh as a read of its
//! own (a fan always sees the hold they were just given), but a thousand
//! fans asking together cost two reads, not a thousand.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

use crate::ids::{EventId, SeatId};
use crate::inventory::claims;
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

pub async fn read(pool: &PgPool, map: &Arc<VenueMap>, event: EventId) -> Result<Availability, sqlx::Error> {
    let (states, now) = read_states(pool, map, event).await?;
    Ok(Availability::new(event, &states, now))
}

/// Availability reads shared between the requests that arrive together.
#[derive(Clone)]
pub struct Reader {
    pool: PgPool,
    events: Arc<Mutex<HashMap<EventId, Arc<LastRead>>>>,
}

/// One event's latest read, behind the lock that lets one read run at a time.
type LastRead = tokio::sync::Mutex<Option<(Instant, Arc<Availability>)>>;

impl Reader {
    pub fn new(pool: PgPool) -> Reader {
        Reader {
            pool,
            events: Arc::default(),
        }
    }

    /// The event's availability from a read that started after this call.
    pub async fn read(&self, map: &Arc<VenueMap>, event: EventId) -> Result<Arc<Availability>, sqlx::Error> {
        let arrived = Instant::now();
        let slot = {
            let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
            events.entry(event).or_default().clone()
        };
        let mut last = slot.lock().await;
        if let Some((started, answer)) = &*last
            && *started >= arrived
            && answer.seat_count == map.seats.len()
        {
            return Ok(answer.clone());
        }
        let started = Instant::now();
        let answer = Arc::new(read(&self.pool, map, event).await?);
        *last = Some((started, answer.clone()));
        Ok(answer)
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
