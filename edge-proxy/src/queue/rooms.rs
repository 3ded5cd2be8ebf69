//! Every waiting room this proxy serves, by event.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::Room;
use crate::config::RoomSettings;
use crate::locks;

/// The rooms, by event.
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
        locks::read(&self.rooms).get(&event).cloned()
    }

    pub fn all(&self) -> Vec<Arc<Room>> {
        let mut v: Vec<Arc<Room>> = locks::read(&self.rooms).values().cloned().collect();
        v.sort_by_key(|r| r.event);
        v
    }

    /// Adds a room or changes its settings.
    pub fn upsert(&self, settings: RoomSettings) -> Arc<Room> {
        let mut rooms = locks::write(&self.rooms);
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
        locks::read(&self.rooms).is_empty()
    }

    pub fn is_protected(&self, event: i64) -> bool {
        self.get(event).is_some()
    }
}
