//! Every seat's state for one event, read from the primary in one statement
//! (never from a cache), packed two bits a seat in seat-map order: a
//! 50,000-seat stadium is 12,500 bytes, 16,668 characters of base64.
//!
//! The snapshot carries a cursor (the snapshot's xmin): a seat-change stream
//! opened `since` that cursor replays every change the snapshot might have
//! missed, so a client never has a gap between the two.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

use crate::ids::{EventId, SeatId};
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
    /// Open the seat-change stream with `since=<cursor>` to continue from here.
    pub cursor: String,
    pub server_time: DateTime<Utc>,
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
    (0..seat_count)
        .map(|i| (bytes[i / 4] >> (2 * (i % 4))) & 3)
        .collect()
}

pub async fn read(
    pool: &PgPool,
    map: &VenueMap,
    event: EventId,
) -> Result<Availability, sqlx::Error> {
    let r = sqlx::query!(
        r#"SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS "cursor!",
                  now() AS "now!",
                  ARRAY(SELECT seat_id FROM seat_claims WHERE event_id = $1 AND during @> now() AND kind = 'hold') AS "held!",
                  ARRAY(SELECT seat_id FROM seat_claims WHERE event_id = $1 AND during @> now() AND kind = 'sale') AS "sold!""#,
        event.0
    )
    .fetch_one(pool)
    .await?;
    let mut states = vec![SeatState::Available; map.seats.len()];
    let (mut held, mut sold) = (0, 0);
    for (ids, state, count) in [
        (&r.held, SeatState::Held, &mut held),
        (&r.sold, SeatState::Sold, &mut sold),
    ] {
        for id in ids {
            if let Some(i) = map.index_of(SeatId(*id)) {
                states[i as usize] = state;
                *count += 1;
            }
        }
    }
    Ok(Availability {
        event_id: event,
        seat_count: states.len(),
        encoding: ENCODING,
        states: STANDARD.encode(pack(&states)),
        available: states.len() - held - sold,
        held,
        sold,
        cursor: r.cursor.to_string(),
        server_time: r.now,
    })
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
        assert_eq!(
            STANDARD
                .encode(pack(&vec![SeatState::Available; 50_000]))
                .len(),
            16_668
        );
    }
}
