//! Best available's first choice, made in memory.
//!
//! On a 50,000-seat map, choosing under the scope's database lock means
//! reading every live claim of the event for every request, one request at a
//! time: tens of milliseconds each, so an on-sale's "best two" requests queue
//! into time-outs. Instead each process keeps, per event, a reading of the
//! event's live claims no older than `holds.recent_claims_ms` (the process's
//! shared `Readings`: one read at a time, however many fans ask, and usually
//! one a fan's availability request already made) plus the seats it chose
//! itself since, ranks on that, and claims through the database, which stays
//! the only guarantee:
//! a choice that meets a claim the reading did not know of is refused there,
//! forgotten here and ranked again from a reading made after the loss (which
//! of its seats were taken only such a reading knows: marking them all would
//! hide a free neighbour). When this view has nothing to offer,
//! the caller asks again from a reading that started after its request
//! arrived (one such read serves every request waiting for it), so a fan is
//! told "no seats together" only after a reading of the database made for
//! them, and near a sell-out, when most answers are "no", a thousand fans
//! asking together cost two reads rather than a thousand reads in a line.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use usher_shared::locks;

use crate::ids::EventId;
use crate::inventory::availability::{Readings, SeatState};
use crate::inventory::best_available::{self, Scope};
use crate::venues::VenueMap;

#[derive(Clone)]
pub struct RecentClaims {
    readings: Readings,
    max_age: Duration,
    events: Arc<Mutex<HashMap<EventId, Arc<EventView>>>>,
}

/// Seats this process chose and is claiming (or claimed) since the reading.
pub struct Choice {
    pub event: EventId,
    /// Seat-map indexes, left to right.
    pub seats: Vec<u32>,
    id: u64,
}

#[derive(Default)]
struct EventView {
    state: Mutex<ViewState>,
}

#[derive(Default)]
struct ViewState {
    /// Seat-map index -> a live claim, as of `read_at`.
    taken: Vec<bool>,
    /// When the reading's query started (None: no reading yet).
    read_at: Option<Instant>,
    mine: Vec<Mine>,
    next_id: u64,
}

struct Mine {
    id: u64,
    seats: Vec<u32>,
    chosen: Instant,
    /// When the claim was settled in the database (None: still in flight).
    /// A reading that started after it knows it.
    settled: Option<Instant>,
}

impl RecentClaims {
    pub fn new(readings: Readings, max_age: Duration) -> RecentClaims {
        RecentClaims {
            readings,
            max_age,
            events: Arc::default(),
        }
    }

    fn view(&self, event: EventId) -> Arc<EventView> {
        let mut events = locks::lock(&self.events);
        events.entry(event).or_default().clone()
    }

    /// The best window of `quantity` seats as this process sees the event
    /// now, set aside for the caller until `settle`; None if it sees none.
    /// `read_since`: only from a reading that started at or after it.
    pub async fn choose(
        &self,
        event: EventId,
        map: &VenueMap,
        scope: Scope,
        quantity: usize,
        read_since: Option<Instant>,
    ) -> Result<Option<Choice>, sqlx::Error> {
        let view = self.view(event);
        self.refresh(&view, event, map, read_since).await?;
        let mut st = locks::lock(&view.state);
        let mut taken = st.taken.clone();
        for m in &st.mine {
            for &i in &m.seats {
                if let Some(t) = taken.get_mut(i as usize) {
                    *t = true;
                }
            }
        }
        let Some(window) = best_available::rank(
            map,
            |i| taken.get(i as usize).copied().unwrap_or(true),
            scope,
            quantity,
            1,
        )
        .into_iter()
        .next() else {
            return Ok(None);
        };
        st.next_id += 1;
        let id = st.next_id;
        st.mine.push(Mine {
            id,
            seats: window.seats.clone(),
            chosen: Instant::now(),
            settled: None,
        });
        Ok(Some(Choice {
            event,
            seats: window.seats,
            id,
        }))
    }

    /// The claim of a choice is over. `taken`: its seats now have a live
    /// claim (the fan's, or the one it lost to), so they stay marked until a
    /// reading knows; otherwise they are free again here at once.
    pub fn settle(&self, choice: Choice, taken: bool) {
        let view = self.view(choice.event);
        let mut st = locks::lock(&view.state);
        if taken {
            if let Some(m) = st.mine.iter_mut().find(|m| m.id == choice.id) {
                m.settled = Some(Instant::now());
            }
        } else {
            st.mine.retain(|m| m.id != choice.id);
        }
    }

    /// Seats this process claimed another way (named by the fan): marked at
    /// once for the events it keeps a view of.
    pub fn claimed(&self, event: EventId, seats: &[u32]) {
        let view = {
            let events = locks::lock(&self.events);
            match events.get(&event) {
                Some(v) => v.clone(),
                None => return,
            }
        };
        let mut st = locks::lock(&view.state);
        st.next_id += 1;
        let id = st.next_id;
        st.mine.push(Mine {
            id,
            seats: seats.to_vec(),
            chosen: Instant::now(),
            settled: Some(Instant::now()),
        });
    }

    async fn refresh(
        &self,
        view: &EventView,
        event: EventId,
        map: &VenueMap,
        read_since: Option<Instant>,
    ) -> Result<(), sqlx::Error> {
        let now = Instant::now();
        let oldest = now.checked_sub(self.max_age).unwrap_or(now);
        let since = read_since.map_or(oldest, |s| s.max(oldest));
        {
            let st = locks::lock(&view.state);
            if st.read_at.is_some_and(|at| at >= since) && st.taken.len() == map.seats.len() {
                return Ok(());
            }
        }
        let reading = self.readings.since(map, event, since).await?;
        let mut st = locks::lock(&view.state);
        // Another request may have applied this reading, or a newer one.
        if st.read_at.is_some_and(|at| at >= reading.started) && st.taken.len() == map.seats.len() {
            return Ok(());
        }
        let started = reading.started;
        st.taken = reading.states.0.iter().map(|s| *s != SeatState::Available).collect();
        st.read_at = Some(started);
        // Claims settled before this reading began are in it; a claim still
        // in flight long after any request's time-out is a leak, not a claim.
        st.mine.retain(|m| match m.settled {
            Some(at) => at >= started,
            None => m.chosen.elapsed() < Duration::from_secs(60),
        });
        Ok(())
    }
}
