//! Every seat's state for one event, packed two bits a seat in seat-map
//! order: a 50,000-seat stadium is 12,500 bytes, 16,668 characters of
//! base64. Read from the primary database, never from a cache.

use std::sync::Arc;

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
