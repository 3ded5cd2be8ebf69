//! The live seat feed behind each event's seat-change stream.
//!
//! For every event someone is watching, one task per process takes a
//! reading of the event's live claims every `poll_interval_ms` (the shared
//! `Readings`: one made since the last tick, often by fans asking for
//! availability) and compares it with the previous one; what changed is
//! broadcast as a batch of seats with their new states. Nothing is written on
//! the hold path for this, expiries show up by the clock even before the
//! reaper has been by, and the cost is at most one read per watched event per
//! interval, whatever the number of fans or holds.
//!
//! The same tick reads the event's tier prices (a handful of rows by key)
//! and, when they changed (the pricing job or an operator moved them),
//! broadcasts them too; snapshots carry the prices they were read with.
//!
//! A subscriber gets the latest full snapshot first, then every batch after
//! it. Batches are numbered; a client reconnecting with the id of the last
//! batch it saw gets the batches it missed if this process still has them,
//! and a fresh snapshot otherwise.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use tokio::sync::broadcast;
use usher_shared::locks;

use crate::catalog::TierPrice;
use crate::ids::{EventId, SeatId};
use crate::inventory::availability::{self, SeatState, States};
use crate::venues::VenueMap;

/// One event's seats at one version.
#[derive(Debug)]
pub struct Snapshot {
    pub version: u64,
    pub states: States,
    pub server_time: DateTime<Utc>,
    /// The event's tier prices as of this reading, or a later one.
    pub prices: Arc<Vec<TierPrice>>,
}

/// What changed from `version - 1` to `version`: each seat with its new state.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SeatBatch {
    #[serde(skip)]
    pub version: u64,
    pub available: Vec<SeatId>,
    pub held: Vec<SeatId>,
    pub sold: Vec<SeatId>,
}

#[derive(Debug, Clone)]
pub enum FeedMessage {
    Snapshot(Arc<Snapshot>),
    Batch(Arc<SeatBatch>),
    /// The tier prices changed; these are the new ones.
    Prices(Arc<Vec<TierPrice>>),
}

/// Batches kept per event for reconnecting clients.
const RECENT: usize = 128;
const CHANNEL: usize = 256;

static NEXT_BASE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

struct Watch {
    tx: broadcast::Sender<FeedMessage>,
    latest: Option<Arc<Snapshot>>,
    recent: VecDeque<Arc<SeatBatch>>,
}

#[derive(Clone)]
pub struct SeatFeed {
    pool: PgPool,
    readings: availability::Readings,
    interval: Duration,
    /// Names this process's numbering, so ids from another instance are
    /// never mistaken for ours.
    epoch: u32,
    watches: Arc<Mutex<HashMap<EventId, Watch>>>,
}

/// Where a new subscriber starts.
pub enum Start {
    /// The latest snapshot (None: the first reading is on its way and will
    /// arrive on the receiver).
    Snapshot(Option<Arc<Snapshot>>),
    /// Resuming: the batches missed since the client's last one.
    Resume(Vec<Arc<SeatBatch>>),
}

pub struct Subscription {
    pub receiver: broadcast::Receiver<FeedMessage>,
    pub start: Start,
    /// Batches up to this version are covered by `start`.
    pub from_version: u64,
    /// The latest prices, if a reading has been made.
    pub prices: Option<Arc<Vec<TierPrice>>>,
}

impl SeatFeed {
    pub fn new(pool: PgPool, readings: availability::Readings, interval: Duration) -> SeatFeed {
        SeatFeed {
            pool,
            readings,
            interval,
            epoch: rand::random::<u32>() >> 1,
            watches: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<EventId, Watch>> {
        locks::lock(&self.watches)
    }

    /// A stream id for a batch or snapshot version: `<epoch>.<version>`.
    pub fn event_id(&self, version: u64) -> String {
        format!("{}.{}", self.epoch, version)
    }

    /// Subscribes to an event's changes. `last_id` is the id of the last
    /// batch the client saw, if it is reconnecting.
    pub fn subscribe(&self, event: EventId, map: Arc<VenueMap>, last_id: Option<&str>) -> Subscription {
        let mut watches = self.lock();
        let watch = watches.entry(event).or_insert_with(|| {
            let (tx, _) = broadcast::channel(CHANNEL);
            // Versions never repeat within a process, even across watches.
            let base = NEXT_BASE.fetch_add(1 << 32, std::sync::atomic::Ordering::Relaxed);
            tokio::spawn(self.clone().watch(event, map, base));
            Watch {
                tx,
                latest: None,
                recent: VecDeque::new(),
            }
        });
        let receiver = watch.tx.subscribe();
        let prices = watch.latest.as_ref().map(|s| s.prices.clone());
        let latest_version = watch.latest.as_ref().map_or(0, |s| s.version);
        let resume_from = last_id
            .and_then(|id| id.split_once('.'))
            .filter(|(epoch, _)| epoch.parse::<u32>().ok() == Some(self.epoch))
            .and_then(|(_, v)| v.parse::<u64>().ok())
            .filter(|v| *v <= latest_version);
        if let Some(seen) = resume_from {
            let missed: Vec<Arc<SeatBatch>> = watch.recent.iter().filter(|b| b.version > seen).cloned().collect();
            // Only if nothing between `seen` and now has been dropped.
            let complete = missed.first().map_or(seen == latest_version, |b| b.version == seen + 1);
            if complete {
                return Subscription {
                    receiver,
                    start: Start::Resume(missed),
                    from_version: latest_version,
                    prices,
                };
            }
        }
        Subscription {
            receiver,
            start: Start::Snapshot(watch.latest.clone()),
            from_version: latest_version,
            prices,
        }
    }

    /// How many clients are watching, over all events.
    pub fn subscribers(&self) -> usize {
        self.lock().values().map(|w| w.tx.receiver_count()).sum()
    }

    /// One event's watcher: reads, compares, publishes, until nobody watches.
    async fn watch(self, event: EventId, map: Arc<VenueMap>, base: u64) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut previous: Option<Arc<Snapshot>> = None;
        loop {
            tick.tick().await;
            {
                let mut watches = self.lock();
                if watches.get(&event).is_none_or(|w| w.tx.receiver_count() == 0) {
                    watches.remove(&event);
                    return;
                }
            }
            // Any reading made since the last tick will do: in an on-sale
            // fans' availability reads keep one fresh, and this reads nothing.
            let since = Instant::now().checked_sub(self.interval).unwrap_or_else(Instant::now);
            let (states, now) = match self.readings.since(&map, event, since).await {
                Ok(read) => (read.states.clone(), read.availability.server_time),
                Err(e) => {
                    tracing::warn!(event_id = %event, error = %e, "seat feed read failed; retrying");
                    continue;
                }
            };
            // A failed price read keeps the prices we had: seats still flow.
            let read_prices = match crate::pricing::settings::current_prices(&self.pool, event).await {
                Ok(p) => Some(p),
                Err(e) => {
                    tracing::warn!(event_id = %event, error = %e, "seat feed price read failed");
                    None
                }
            };
            let (prices, prices_changed) = match (read_prices, &previous) {
                (Some(now), Some(p)) if *p.prices != now => (Arc::new(now), true),
                (Some(now), None) => (Arc::new(now), false),
                (_, Some(p)) => (p.prices.clone(), false),
                (None, None) => (Arc::new(Vec::new()), false),
            };
            let version = previous.as_ref().map_or(base + 1, |p| p.version + 1);
            let batch = previous.as_ref().map(|p| diff(&map, &p.states, &states, version));
            let seats_changed = !matches!(&batch, Some(b) if b.is_empty());
            if !seats_changed && !prices_changed {
                continue;
            }
            let snapshot = Arc::new(Snapshot {
                // Prices alone keep the version: batches stay consecutive.
                version: if seats_changed { version } else { version - 1 },
                states,
                server_time: now,
                prices: prices.clone(),
            });
            previous = Some(snapshot.clone());
            let mut watches = self.lock();
            let Some(watch) = watches.get_mut(&event) else { return };
            watch.latest = Some(snapshot.clone());
            // Nobody listening is fine: the next tick notices and stops.
            match batch {
                Some(batch) if seats_changed => {
                    let batch = Arc::new(batch);
                    watch.recent.push_back(batch.clone());
                    if watch.recent.len() > RECENT {
                        watch.recent.pop_front();
                    }
                    let _ = watch.tx.send(FeedMessage::Batch(batch));
                }
                Some(_) => {}
                None => {
                    let _ = watch.tx.send(FeedMessage::Snapshot(snapshot));
                }
            }
            if prices_changed {
                let _ = watch.tx.send(FeedMessage::Prices(prices));
            }
        }
    }
}

impl SeatBatch {
    pub fn is_empty(&self) -> bool {
        self.available.is_empty() && self.held.is_empty() && self.sold.is_empty()
    }
}

fn diff(map: &VenueMap, before: &States, after: &States, version: u64) -> SeatBatch {
    let mut batch = SeatBatch {
        version,
        ..SeatBatch::default()
    };
    for (i, (a, b)) in before.0.iter().zip(&after.0).enumerate() {
        if a != b {
            let seat = map.seat(i as u32).id;
            match b {
                SeatState::Available => batch.available.push(seat),
                SeatState::Held => batch.held.push(seat),
                SeatState::Sold => batch.sold.push(seat),
            }
        }
    }
    batch
}
