//! Waiting rooms: one per protected event. `store` keeps the shared state
//! in Redis; `ticker` admits fans on a timer and brings each proxy's local
//! view up to date; fans reach it over HTTP through `crate::fans` (join,
//! status, the live position stream and the waiting page). This file holds
//! the local view: where each ticket stands, worked out in memory from the
//! last tick, so that telling 100,000 fans their position costs Redis
//! nothing.

pub mod adaptive;
pub mod lottery;
mod removed;
mod rooms;
pub mod store;
pub mod ticker;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use arc_swap::ArcSwap;
use serde::Serialize;
use tokio::sync::watch;

use crate::config::{QueueMode, RoomSettings};
use crate::locks;
use lottery::Draw;
use removed::{Removed, merged};
pub use rooms::Rooms;
use store::{LotteryRecord, Tick};

/// The latest tick, as this proxy saw it (the admin API shows it as is).
pub use usher_shared::admin::Progress;

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
        /// An estimate at the pace admissions are actually made (the rate,
        /// until that pace is known).
        eta_secs: u64,
        /// When a client that polls should ask again: a quarter of the ETA,
        /// but never later than a third of the time this room waits for a
        /// fan (the claim window of a turn that came, the grace for a
        /// silent place), so an ETA that proves too long costs no turn.
        poll_after_secs: u64,
    },
    Admitted,
    /// Not heard from within the grace period: the place went to others.
    Lost,
    /// In a lottery's pre-queue: places are drawn at the on-sale.
    Entered {
        entrants: u64,
        draw_at: Option<chrono::DateTime<chrono::Utc>>,
    },
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
    /// A lottery's public record, and its draw once done.
    lottery: ArcSwap<LotteryRecord>,
    draw: arc_swap::ArcSwapOption<Draw>,
    /// When this proxy last reconsidered an adaptive room's rate.
    pub(crate) adapted_at: Mutex<Option<std::time::Instant>>,
    /// (Redis time ms, admitted so far) of the last minute's ticks.
    pace: Mutex<std::collections::VecDeque<(i64, u64)>>,
    /// Sessions ended, by session key, with their tokens' expiry (Unix s),
    /// and how much of the shared list of them this proxy has read.
    ended: Mutex<HashMap<String, i64>>,
    ended_read: std::sync::atomic::AtomicU64,
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
            lottery: ArcSwap::from_pointee(LotteryRecord::default()),
            draw: arc_swap::ArcSwapOption::empty(),
            adapted_at: Mutex::new(None),
            pace: Mutex::default(),
            ended: Mutex::default(),
            ended_read: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Marks a session ended on this proxy at once (every other proxy
    /// learns it from the shared list at its next tick).
    pub fn end(&self, session: String, expires: i64) {
        locks::lock(&self.ended).insert(session, expires);
    }

    pub fn has_ended(&self, session: &str) -> bool {
        locks::lock(&self.ended).contains_key(session)
    }

    pub(crate) fn ended_read(&self) -> u64 {
        self.ended_read.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Takes in ended sessions read from the shared list; forgets those
    /// whose tokens have expired anyway.
    pub(crate) fn take_ended(&self, sessions: Vec<(String, i64)>, now: i64) {
        let read = sessions.len() as u64;
        let mut ended = locks::lock(&self.ended);
        ended.extend(sessions);
        ended.retain(|_, expires| *expires > now);
        self.ended_read.fetch_add(read, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn lottery(&self) -> Arc<LotteryRecord> {
        self.lottery.load_full()
    }

    /// Takes in the lottery's record; once drawn, works out the places here
    /// from the revealed seed (the same computation anyone can check).
    pub(crate) fn set_lottery(&self, record: LotteryRecord) {
        if self.draw.load().is_none()
            && let (Some(seed), Some(entrants)) = (&record.seed, record.entrants)
        {
            let draw = Arc::new(Draw::new(seed, entrants));
            let mut removed = locks::write(&self.removed);
            removed.reindex(&draw);
            drop(removed);
            self.draw.store(Some(draw));
            self.lottery.store(Arc::new(record));
            // Every entrant's place just became known: wake the streams.
            self.progress.send_modify(|_| {});
            return;
        }
        self.lottery.store(Arc::new(record));
    }

    /// The ticket's place in the queue.
    fn place(&self, ticket: u64) -> u64 {
        self.draw.load().as_ref().map_or(ticket, |d| d.place(ticket))
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
        let mut touched = locks::lock(&self.touched);
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
        locks::lock(&self.seen).push(ticket);
    }

    /// Puts back marks `take_seen` gave out that could not be written.
    pub(crate) fn keep_seen(&self, tickets: Vec<u64>) {
        locks::lock(&self.seen).extend(tickets);
    }

    pub(crate) fn take_seen(&self) -> Vec<u64> {
        let mut seen = std::mem::take(&mut *locks::lock(&self.seen));
        seen.sort_unstable();
        seen.dedup();
        seen
    }

    pub(crate) fn removed_read(&self) -> u64 {
        locks::read(&self.removed).read
    }

    /// Takes in a tick and the tickets newly removed since the last one.
    pub(crate) fn apply(&self, tick: Tick, newly_removed: Vec<u64>) {
        let newly_removed_is_empty = newly_removed.is_empty();
        if !newly_removed.is_empty() {
            let read = newly_removed.len() as u64;
            let mut batch = newly_removed;
            batch.sort_unstable();
            batch.dedup();
            let draw = self.draw.load_full();
            // Only the ticker writes, so the new lists are made under the
            // read lock and fans' status reads wait only for the swap.
            let (sorted, drawn) = {
                let removed = locks::read(&self.removed);
                let sorted = merged(&removed.sorted, &batch);
                let drawn = draw.as_deref().map(|d| {
                    let mut places: Vec<u64> = batch.iter().map(|t| d.place(*t)).collect();
                    places.sort_unstable();
                    merged(removed.drawn.as_deref().unwrap_or_default(), &places)
                });
                (sorted, drawn)
            };
            let mut removed = locks::write(&self.removed);
            removed.read += read;
            removed.sorted = sorted;
            if drawn.is_some() {
                removed.drawn = drawn;
            }
        }
        let admitting_per_minute = self.pace(tick.at_ms, tick.admitted_total);
        let moved = !newly_removed_is_empty;
        // Every tick updates the progress, but only a change a fan could see
        // wakes the streams: a queue standing still costs no work per fan.
        self.progress.send_if_modified(|p| {
            let next = Progress {
                // The shared count, so that answers from every edge are
                // ordered alike; never backwards here (stream event ids),
                // even should Redis lose the count in a failover.
                tick: tick.shared_tick.max(p.tick + 1),
                at_ms: tick.at_ms,
                through: tick.through,
                seq: tick.seq,
                waiting: tick.waiting,
                active: tick.active,
                admitted_total: tick.admitted_total,
                rate: tick.rate,
                admitting_per_minute,
                lost_total: tick.removed,
                ticks_failed: p.ticks_failed,
                healthy: true,
            };
            let visible = moved
                || (p.through, p.seq, p.waiting, p.rate, p.healthy)
                    != (next.through, next.seq, next.waiting, next.rate, next.healthy);
            *p = next;
            visible
        });
    }

    /// Admissions per minute over the last minute of ticks, once at least
    /// ten seconds of them are known; 0 before.
    fn pace(&self, at_ms: i64, admitted_total: u64) -> u32 {
        let mut pace = locks::lock(&self.pace);
        pace.push_back((at_ms, admitted_total));
        while pace.front().is_some_and(|(t, _)| *t < at_ms - 60_000) {
            pace.pop_front();
        }
        match pace.front() {
            Some((t, n)) if at_ms - t >= 10_000 => {
                (admitted_total.saturating_sub(*n) * 60_000 / (at_ms - t) as u64).min(u32::MAX as u64) as u32
            }
            _ => 0,
        }
    }

    /// Counts a tick that did not reach Redis (it changes nothing a fan
    /// sees, so no stream wakes).
    pub(crate) fn tick_failed(&self) {
        self.progress.send_if_modified(|p| {
            p.ticks_failed += 1;
            false
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
        self.standing_at(ticket).0
    }

    /// Where a ticket stands, and the tick that says so (this proxy's
    /// count): answers carry it so that a client can tell which of two
    /// answers the room gave first, whatever the network did to them.
    pub fn standing_at(&self, ticket: u64) -> (Standing, u64) {
        let p = self.progress();
        (self.standing_in(ticket, &p), p.tick)
    }

    fn standing_in(&self, ticket: u64, p: &Progress) -> Standing {
        let removed = locks::read(&self.removed);
        if removed.contains(ticket) {
            return Standing::Lost;
        }
        let settings = self.settings();
        if settings.mode == QueueMode::Lottery && self.draw.load().is_none() {
            let lottery = self.lottery();
            // Tickets after the sealed entrants queue FIFO behind them.
            if lottery.entrants.is_none_or(|n| ticket <= n) {
                return Standing::Entered {
                    entrants: lottery.entrants.unwrap_or(p.seq),
                    draw_at: settings.on_sale_at,
                };
            }
        }
        let place = self.place(ticket);
        if place <= p.through {
            return Standing::Admitted;
        }
        let ahead = (place - p.through - 1).saturating_sub(removed.between(p.through, place));
        let rate = if p.rate > 0 {
            p.rate
        } else {
            settings.admit_per_minute.max(1)
        };
        // The pace actually seen, when known: with the active cap full the
        // queue moves slower than the rate, and an ETA at the rate would
        // promise fans minutes that turn into quarter-hours.
        let pace = match p.admitting_per_minute {
            0 => rate,
            seen => seen.min(rate),
        };
        let eta_secs = (ahead * 60).div_ceil(pace as u64);
        Standing::Waiting {
            position: ahead + 1,
            ahead,
            queue_length: p.waiting.max(ahead + 1),
            admit_per_minute: rate,
            eta_secs,
            poll_after_secs: poll_after(eta_secs, &settings),
        }
    }
}

/// See `Standing::Waiting::poll_after_secs`.
fn poll_after(eta_secs: u64, settings: &RoomSettings) -> u64 {
    let patience = settings.session_secs.min(settings.grace_secs) / 3;
    (eta_secs / 4).min(patience).max(1)
}

#[cfg(test)]
mod tests;
