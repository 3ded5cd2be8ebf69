//! A room's settings shared through Redis: the whole settings for every
//! instance's copy, and the admission fields the admission script reads.

use redis::AsyncCommands;

use super::{Keys, QueueStore, StoreResult};
use crate::config::{QueueMode, RoomSettings};

impl QueueStore {
    /// Settings an operator set through the admin API (or a reloaded file),
    /// shared by every instance.
    pub async fn settings(&self, event: i64) -> StoreResult<Option<RoomSettings>> {
        let mut conn = self.ticker.clone();
        let raw: Option<String> = conn.get(Keys::of(event).settings).await?;
        Ok(raw.and_then(|r| serde_json::from_str(&r).ok()))
    }

    /// Every event with a room opened through the admin API, on any
    /// instance: each instance serves them all.
    pub async fn room_events(&self) -> StoreResult<Vec<i64>> {
        let mut conn = self.ticker.clone();
        conn.smembers(ROOMS_KEY).await
    }

    /// Shares `settings`: the whole of them for every instance's copy, and
    /// their admission fields for the admission script, in one step; then
    /// names the event among the rooms (a key of its own slot, so apart:
    /// a room found there always has its settings).
    pub async fn put_settings(&self, settings: &RoomSettings) -> StoreResult<()> {
        let mut conn = self.conn.clone();
        let k = Keys::of(settings.event_id);
        // Serialising a plain struct cannot fail.
        let json = serde_json::to_string(settings).expect("serialise settings");
        let f = AdmissionFields::of(settings);
        redis::pipe()
            .atomic()
            .set(&k.settings, json)
            .ignore()
            .hset_multiple(
                &k.admission,
                &[
                    ("rate", f.rate.to_string()),
                    ("max_active", f.max_active.to_string()),
                    ("session_ms", f.session_ms.to_string()),
                    ("grace_ms", f.grace_ms.to_string()),
                    ("mode", f.mode.to_string()),
                    ("on_sale_ms", f.on_sale_ms.to_string()),
                    ("adaptive", f.adaptive.to_string()),
                    ("min", f.min.to_string()),
                    ("max", f.max.to_string()),
                ],
            )
            .ignore()
            .query_async::<()>(&mut conn)
            .await?;
        conn.sadd(ROOMS_KEY, settings.event_id).await
    }
}

/// The events that have rooms (`room_events`).
const ROOMS_KEY: &str = "usher:rooms";

/// The settings the admission script reads, as it reads them (its ARGV, or
/// the shared `admission` hash).
pub(super) struct AdmissionFields {
    pub(super) rate: u32,
    pub(super) max_active: u32,
    pub(super) session_ms: u64,
    pub(super) grace_ms: u64,
    pub(super) mode: &'static str,
    pub(super) on_sale_ms: i64,
    pub(super) adaptive: &'static str,
    pub(super) min: u32,
    pub(super) max: u32,
}

impl AdmissionFields {
    pub(super) fn of(room: &RoomSettings) -> AdmissionFields {
        let (adaptive, min, max) = match &room.adaptive {
            Some(a) => ("1", a.min_per_minute, a.max_per_minute),
            None => ("0", 0, 0),
        };
        AdmissionFields {
            rate: room.admit_per_minute,
            max_active: room.max_active,
            session_ms: room.session_secs * 1000,
            grace_ms: room.grace_secs * 1000,
            mode: match room.mode {
                QueueMode::Fifo => "fifo",
                QueueMode::Passthrough => "passthrough",
                QueueMode::Paused => "paused",
                QueueMode::Closed => "closed",
                QueueMode::Lottery => "lottery",
            },
            on_sale_ms: room.on_sale_at.map_or(0, |t| t.timestamp_millis().max(1)),
            adaptive,
            min,
            max,
        }
    }
}
