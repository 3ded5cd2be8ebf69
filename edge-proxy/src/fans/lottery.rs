//! `GET /queue/{event}/lottery`: a lottery room's public record (the
//! seed's hash before the draw, the seed and the entrants after), with how
//! anyone can recompute every place from it.

use std::sync::Arc;

use pingora::proxy::Session;
use serde_json::json;

use crate::queue::Room;
use crate::respond;

pub async fn record(session: &mut Session, room: &Arc<Room>) -> respond::Result<()> {
    let record = room.lottery();
    let body = json!({
        "event_id": room.event,
        "mode": room.settings().mode,
        "draw_at": room.settings().on_sale_at,
        "seed_hash": record.seed_hash,
        "seed": record.seed,
        "entrants": record.entrants,
        "state": record.state,
        "algorithm": "Fisher-Yates over tickets 1..=entrants: for i = entrants-1 down to 1, \
            r = u64 big-endian from the first 8 bytes of SHA-256(seed bytes || i as u64 big-endian), \
            swap order[i] and order[r mod (i+1)]; place of order[k] is k+1; seed_hash = SHA-256(seed bytes). \
            Recompute with: edge-proxy lottery-order --seed <seed> --entrants <n>",
    });
    respond::json(session, 200, &body, &[]).await
}
