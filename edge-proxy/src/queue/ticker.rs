//! The admission ticker: a background task on every proxy. Each tick, for
//! each waiting room: report the fans heard from since the last tick, run
//! the admission script (which admits at the configured rate, in order, up
//! to the active cap, whichever instance runs it), read which tickets lost
//! their place, and publish the new progress to the fans' streams. It also
//! picks up settings changed by an operator (through the admin API, on any
//! instance, or in the configuration file).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::config::EdgeConfig;
use crate::config::QueueMode;
use crate::locks;
use crate::queue::store::QueueStore;
use crate::queue::{Room, adaptive, lottery};
use crate::state::EdgeState;

pub const TICK: Duration = Duration::from_millis(200);
/// Failed ticks in a row before the room counts as cut off from Redis.
const UNHEALTHY_AFTER: u32 = 3;
/// A Redis that only answers late is busy, not gone: until this long
/// without a tick the queue just holds (nobody is admitted without a tick)
/// and joins still go to Redis. Counting a busy Redis as down turned a
/// join spike into refused joins (or, failing open, into admissions past
/// the queue).
const SLOW_FOR: Duration = Duration::from_secs(10);
/// The configuration file is checked for changes every this many ticks.
const CONFIG_EVERY: u64 = 10;
/// Rate-limit tables forget quiet clients every this many ticks.
const TIDY_EVERY: u64 = 300;
/// Rooms opened on another instance are served here within this many ticks
/// (a second): until then this instance would not guard their paths.
const ROOMS_EVERY: u64 = 5;

pub struct Ticker {
    pub state: Arc<EdgeState>,
}

#[async_trait]
impl BackgroundService for Ticker {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let state = &self.state;
        let mut interval = tokio::time::interval(TICK);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut n: u64 = 0;
        let mut config_stamp = modified(&state.config_path);
        // Failed ticks in a row, per event: one slow answer from Redis on a
        // busy machine is not an outage, and turning joins away for it
        // would be worse than holding admissions for a tick.
        let mut failed: std::collections::HashMap<i64, Failing> = std::collections::HashMap::new();
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = shutdown.changed() => return,
            }
            n += 1;
            if state.store().is_none() {
                connect(state).await;
            }
            if n.is_multiple_of(TIDY_EVERY) {
                state.limits.tidy();
                state.defences.tidy();
            }
            if n.is_multiple_of(ROOMS_EVERY) {
                discover_rooms(state).await;
            }
            if n.is_multiple_of(CONFIG_EVERY) {
                let stamp = modified(&state.config_path);
                if stamp != config_stamp {
                    config_stamp = stamp;
                    reload(state).await;
                }
            }
            let Some(store) = state.store() else {
                for room in state.rooms.all() {
                    room.mark_unhealthy();
                }
                continue;
            };
            for room in state.rooms.all() {
                if let Err(e) = adapt(state, &store, &room).await {
                    tracing::debug!(event_id = room.event, error = %e, "could not share an adaptive rate");
                }
                match tick(&store, &room).await {
                    Ok(()) => {
                        failed.remove(&room.event);
                    }
                    Err(e) => {
                        room.tick_failed();
                        let failing = failed.entry(room.event).or_insert_with(Failing::new);
                        if failing.failed(&e) {
                            if room.progress().healthy {
                                tracing::warn!(event_id = room.event, error = %e, "admission ticks failing; the queue holds until Redis answers");
                            }
                            room.mark_unhealthy();
                        }
                    }
                }
            }
        }
    }
}

/// A room's run of failed ticks.
struct Failing {
    in_a_row: u32,
    since: std::time::Instant,
    /// Every failure so far was Redis answering too late.
    only_slow: bool,
}

impl Failing {
    fn new() -> Failing {
        Failing {
            in_a_row: 0,
            since: std::time::Instant::now(),
            only_slow: true,
        }
    }

    /// Counts a failure; whether the room is now cut off from Redis: a few
    /// in a row that were not time-outs (refused, dropped), or nothing but
    /// failures for `SLOW_FOR`.
    fn failed(&mut self, e: &redis::RedisError) -> bool {
        self.in_a_row += 1;
        self.only_slow &= e.is_timeout();
        (!self.only_slow && self.in_a_row >= UNHEALTHY_AFTER) || self.since.elapsed() >= SLOW_FOR
    }
}

async fn connect(state: &EdgeState) {
    let cluster_nodes: Vec<&str> = state.config.redis.cluster_nodes.iter().map(|u| u.as_str()).collect();
    match QueueStore::connect(state.config.redis.url.as_str(), &cluster_nodes).await {
        Ok(store) => {
            tracing::info!("connected to Redis");
            state.store.store(Some(Arc::new(store)));
        }
        Err(e) => tracing::warn!(error = %e, "cannot reach Redis yet"),
    }
}

/// Takes on the rooms another instance opened (through its admin API):
/// every instance guards every room's paths, whichever one a fan reaches.
async fn discover_rooms(state: &EdgeState) {
    let Some(store) = state.store() else { return };
    let events = match store.room_events().await {
        Ok(events) => events,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the rooms other instances opened");
            return;
        }
    };
    for event in events {
        if state.rooms.get(event).is_some() {
            continue;
        }
        match store.settings(event).await {
            Ok(Some(settings)) => {
                tracing::info!(
                    event_id = event,
                    "waiting room opened on another instance: serving it here too"
                );
                state.rooms.upsert(settings);
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(event_id = event, error = %e, "cannot read a room's settings"),
        }
    }
}

/// One tick of one room. The shared settings are re-read every tick, so this
/// instance's joins, ETAs and lottery follow an operator's change within a
/// tick (the admission itself reads them in its script).
pub async fn tick(store: &QueueStore, room: &Room) -> Result<(), redis::RedisError> {
    if let Some(shared) = store.settings(room.event).await?
        && *room.settings() != shared
    {
        tracing::info!(event_id = room.event, "waiting-room settings changed");
        room.set_settings(shared);
    }
    lottery_step(store, room).await?;
    let seen = room.take_seen();
    if !seen.is_empty() {
        let now_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        if let Err(e) = store.mark_seen(room.event, &seen, now_ms).await {
            // Those fans were heard from: keep them for the next tick, or a
            // slow Redis turns fans who kept asking into ghosts that lose
            // their places (and rejoin, and slow Redis further).
            room.keep_seen(seen);
            return Err(e);
        }
    }
    let tick = store.tick(&room.settings()).await?;
    if tick.ended > room.ended_read() {
        let ended = store.ended_since(room.event, room.ended_read()).await?;
        room.take_ended(ended, tick.at_ms / 1000);
    }
    let read = room.removed_read();
    let newly_removed = if tick.removed > read {
        store.removed_since(room.event, read).await?
    } else {
        Vec::new()
    };
    room.apply(tick, newly_removed);
    Ok(())
}

/// A lottery room: commits to a seed as soon as the pre-queue opens, draws
/// the places at the on-sale, and keeps this proxy's copy of the record.
async fn lottery_step(store: &QueueStore, room: &Room) -> Result<(), redis::RedisError> {
    let settings = room.settings();
    let known = room.lottery();
    if settings.mode != QueueMode::Lottery || known.state == "drawn" {
        return Ok(());
    }
    let mut record = store.lottery(room.event).await?;
    if record.seed_hash.is_none() {
        let (seed, hash) = lottery::new_seed();
        store.open_lottery(room.event, &seed, &hash).await?;
        record = store.lottery(room.event).await?;
        tracing::info!(event_id = room.event, seed_hash = ?record.seed_hash, "lottery pre-queue open");
    }
    let due = settings.on_sale_at.is_some_and(|t| t <= chrono::Utc::now());
    if due && record.state != "drawn" && store.draw_lottery(room.event).await? {
        record = store.lottery(room.event).await?;
        tracing::info!(event_id = room.event, entrants = ?record.entrants, "lottery drawn");
    }
    room.set_lottery(record);
    Ok(())
}

/// An adaptive room: once per window, the rate this proxy would choose from
/// the core's health goes to Redis, unless another instance got there first.
async fn adapt(state: &EdgeState, store: &QueueStore, room: &Room) -> Result<(), redis::RedisError> {
    let settings = room.settings();
    let Some(bounds) = &settings.adaptive else {
        return Ok(());
    };
    let span = Duration::from_secs(bounds.window_secs);
    {
        let mut at = locks::lock(&room.adapted_at);
        let now = std::time::Instant::now();
        if at.is_some_and(|t| now.duration_since(t) < span) {
            return Ok(());
        }
        *at = Some(now);
    }
    let current = match room.progress().rate {
        0 => settings.admit_per_minute,
        r => r,
    };
    let window = state.core_health.window(span);
    let next = adaptive::next_rate(current, bounds, &window);
    let lease = (span.as_millis() as u64).saturating_sub(TICK.as_millis() as u64);
    if store.adapt_rate(room.event, next, lease).await? && next != current {
        tracing::info!(
            event_id = room.event,
            from = current,
            to = next,
            p99_ms = window.p99_ms,
            error_rate = window.error_rate,
            answers = window.answers,
            "adaptive admission rate changed"
        );
    }
    Ok(())
}

fn modified(path: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Re-reads the configuration file; waiting-room settings that changed in it
/// take effect here and, through Redis, on every other instance.
async fn reload(state: &EdgeState) {
    let config = match EdgeConfig::load(&state.config_path) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "configuration file changed but is invalid; keeping the running settings");
            return;
        }
    };
    for settings in config.events {
        let changed = state
            .rooms
            .get(settings.event_id)
            .is_none_or(|r| *r.settings() != settings);
        if changed {
            tracing::info!(
                event_id = settings.event_id,
                "waiting-room settings reloaded from the configuration file"
            );
            if let Some(store) = state.store()
                && let Err(e) = store.put_settings(&settings).await
            {
                tracing::warn!(error = %e, "could not share reloaded settings through Redis");
            }
            state.rooms.upsert(settings);
        }
    }
}
