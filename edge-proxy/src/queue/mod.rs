//! Waiting rooms: one per protected event. `store` keeps the shared state
//! in Redis; `ticker` admits fans on a timer and brings each proxy's local
//! view up to date; `handlers` serve fans (join, status, the live position
//! stream and the waiting page). This file holds the local view: where each
//! ticket stands, worked out in memory from the last tick, so that telling
//! 100,000 fans their position costs Redis nothing.

pub mod handlers;
pub mod store;
pub mod ticker;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use arc_swap::ArcSwap;
use serde::Serialize;
use tokio::sync::watch;

use crate::config::RoomSettings;
use store::Tick;

/// The latest tick, as this proxy saw it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Progress {
    /// Counts this proxy's ticks; also the id of stream events.
    pub tick: u64,
    pub at_ms: i64,
    pub through: u64,
    pub seq: u64,
    pub waiting: u64,
    pub active: u64,
    pub admitted_total: u64,
    /// Whether the last tick reached Redis.
    pub healthy: bool,
}

/// Where one ticket stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Standing {
    Waiting {
        /// 1 for the next fan to be admitted.
        position: u64,
        ahead: u64,
        queue_length: u64,
        admit_per_minute: u32,
        /// An estimate at the current rate.
        eta_secs: u64,
    },
    Admitted,
    /// Not heard from within the grace period: the place went to others.
    Lost,
}

/// Tickets that lost their place, sorted, and how much of Redis's list of
/// them this proxy has read.
#[derive(Debug, Default)]
struct Removed {
    sorted: Vec<u64>,
    read: u64,
}

impl Removed {
    fn contains(&self, ticket: u64) -> bool {
        self.sorted.binary_search(&ticket).is_ok()
    }

    /// How many removed tickets lie strictly between `low` and `high`.
    fn between(&self, low: u64, high: u64) -> u64 {
        let a = self.sorted.partition_point(|t| *t <= low);
        let b = self.sorted.partition_point(|t| *t < high);
        b.saturating_sub(a) as u64
    }
}

pub struct Room {
    pub event: i64,
    settings: ArcSwap<RoomSettings>,
    progress: watch::Sender<Progress>,
    removed: RwLock<Removed>,
    /// Tickets heard from since the last tick, flushed to Redis in one go.
    seen: Mutex<Vec<u64>>,
    /// When each admitted session was last extended in Redis.
    touched: Mutex<HashMap<u64, std::time::Instant>>,
}

impl Room {
    pub fn new(settings: RoomSettings) -> Room {
        Room {
            event: settings.event_id,
            settings: ArcSwap::from_pointee(settings),
            progress: watch::channel(Progress::default()).0,
            removed: RwLock::default(),
            seen: Mutex::default(),
            touched: Mutex::default(),
        }
    }

    pub fn settings(&self) -> Arc<RoomSettings> {
        self.settings.load_full()
    }

    pub fn set_settings(&self, settings: RoomSettings) {
        self.settings.store(Arc::new(settings));
    }

    pub fn progress(&self) -> Progress {
        *self.progress.borrow()
    }

    pub fn watch(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }

    /// How many streams are open on this room, on this proxy.
    pub fn listeners(&self) -> usize {
        self.progress.receiver_count()
    }

    /// Whether an admitted session is due to be extended in Redis.
    pub fn should_touch(&self, ticket: u64, every: std::time::Duration) -> bool {
        let now = std::time::Instant::now();
        let mut touched = self.touched.lock().unwrap_or_else(|e| e.into_inner());
        if touched.len() > 200_000 {
            touched.retain(|_, at| now.duration_since(*at) < every);
        }
        match touched.get(&ticket) {
            Some(at) if now.duration_since(*at) < every => false,
            _ => {
                touched.insert(ticket, now);
                true
            }
        }
    }

    pub fn mark_seen(&self, ticket: u64) {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).push(ticket);
    }

    pub(crate) fn take_seen(&self) -> Vec<u64> {
        let mut seen = std::mem::take(&mut *self.seen.lock().unwrap_or_else(|e| e.into_inner()));
        seen.sort_unstable();
        seen.dedup();
        seen
    }

    pub(crate) fn removed_read(&self) -> u64 {
        self.removed.read().unwrap_or_else(|e| e.into_inner()).read
    }

    /// Takes in a tick and the tickets newly removed since the last one.
    pub(crate) fn apply(&self, tick: Tick, newly_removed: Vec<u64>) {
        if !newly_removed.is_empty() {
            let mut removed = self.removed.write().unwrap_or_else(|e| e.into_inner());
            removed.read += newly_removed.len() as u64;
            removed.sorted.extend(newly_removed);
            removed.sorted.sort_unstable();
            removed.sorted.dedup();
        }
        self.progress.send_modify(|p| {
            *p = Progress {
                tick: p.tick + 1,
                at_ms: tick.at_ms,
                through: tick.through,
                seq: tick.seq,
                waiting: tick.waiting,
                active: tick.active,
                admitted_total: tick.admitted_total,
                healthy: true,
            }
        });
    }

    pub(crate) fn mark_unhealthy(&self) {
        self.progress.send_if_modified(|p| {
            let was = p.healthy;
            p.healthy = false;
            was
        });
    }

    /// Where a ticket stands as of the last tick.
    pub fn standing(&self, ticket: u64) -> Standing {
        let p = self.progress();
        let removed = self.removed.read().unwrap_or_else(|e| e.into_inner());
        if removed.contains(ticket) {
            return Standing::Lost;
        }
        if ticket <= p.through {
            return Standing::Admitted;
        }
        let ahead = ticket - p.through - 1 - removed.between(p.through, ticket);
        let rate = self.settings().admit_per_minute.max(1);
        Standing::Waiting {
            position: ahead + 1,
            ahead,
            queue_length: p.waiting.max(ahead + 1),
            admit_per_minute: rate,
            eta_secs: (ahead * 60).div_ceil(rate as u64),
        }
    }
}

/// Every waiting room this proxy serves, by event.
#[derive(Default)]
pub struct Rooms {
    rooms: RwLock<HashMap<i64, Arc<Room>>>,
}

impl Rooms {
    pub fn from_settings(settings: &[RoomSettings]) -> Rooms {
        let rooms = Rooms::default();
        for s in settings {
            rooms.upsert(s.clone());
        }
        rooms
    }

    pub fn get(&self, event: i64) -> Option<Arc<Room>> {
        self.rooms
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&event)
            .cloned()
    }

    pub fn all(&self) -> Vec<Arc<Room>> {
        let mut v: Vec<Arc<Room>> = self
            .rooms
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        v.sort_by_key(|r| r.event);
        v
    }

    /// Adds a room or changes its settings.
    pub fn upsert(&self, settings: RoomSettings) -> Arc<Room> {
        let mut rooms = self.rooms.write().unwrap_or_else(|e| e.into_inner());
        match rooms.get(&settings.event_id) {
            Some(room) => {
                room.set_settings(settings);
                room.clone()
            }
            None => {
                let room = Arc::new(Room::new(settings));
                rooms.insert(room.event, room.clone());
                room
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rooms.read().unwrap_or_else(|e| e.into_inner()).is_empty()
    }

    pub fn is_protected(&self, event: i64) -> bool {
        self.get(event).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::QueueMode;

    fn room() -> Room {
        Room::new(RoomSettings {
            event_id: 1,
            admit_per_minute: 60,
            max_active: 10,
            session_secs: 60,
            mode: QueueMode::Fifo,
            on_sale_at: None,
            message: String::new(),
            grace_secs: 30,
        })
    }

    #[test]
    fn positions_come_from_the_tick_and_the_removed_list() {
        let r = room();
        r.apply(
            Tick {
                through: 10,
                seq: 20,
                waiting: 8,
                ..Tick::default()
            },
            vec![12, 15, 3],
        );
        assert_eq!(r.standing(5), Standing::Admitted);
        assert_eq!(r.standing(3), Standing::Lost);
        assert_eq!(r.standing(12), Standing::Lost);
        // 11 is next; 12 is gone, so 13 is second and 16 is fourth.
        assert!(matches!(r.standing(11), Standing::Waiting { position: 1, .. }));
        assert!(matches!(r.standing(13), Standing::Waiting { position: 2, .. }));
        match r.standing(16) {
            Standing::Waiting {
                position,
                ahead,
                eta_secs,
                ..
            } => {
                assert_eq!((position, ahead), (4, 3));
                assert_eq!(eta_secs, 3, "3 ahead at one a second");
            }
            other => panic!("{other:?}"),
        }
    }
}
