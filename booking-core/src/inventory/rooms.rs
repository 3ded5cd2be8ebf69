//! Which events have a waiting room at the edge. Holds on such an event need
//! the edge's admission, whether or not the event's own `protected` rule was
//! set: an operator may open a room on the edge directly (its admin API or
//! its configuration file), and a hold that came around the edge's reading
//! must still be refused. The edge owns the rooms; the core keeps the last
//! list it read (see `app.rs`, which refreshes it from the edge's admin API)
//! and never forgets a room because the edge could not be asked.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use usher_shared::locks;

use crate::ids::EventId;

#[derive(Debug, Clone, Default)]
pub struct WaitingRooms {
    events: Arc<RwLock<HashSet<i64>>>,
}

impl WaitingRooms {
    pub fn has(&self, event: EventId) -> bool {
        locks::read(&self.events).contains(&event.0)
    }

    /// The edge's whole list, as just read from it.
    pub fn replace(&self, events: impl IntoIterator<Item = EventId>) {
        let fresh: HashSet<i64> = events.into_iter().map(|e| e.0).collect();
        *locks::write(&self.events) = fresh;
    }

    /// One room the core has just opened through the edge (the portal).
    pub fn insert(&self, event: EventId) {
        locks::write(&self.events).insert(event.0);
    }
}
