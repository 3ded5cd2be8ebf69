//! The waiting rooms' shared state in Redis, one set of keys per event
//! (`usher:{e<id>}:...`; the braces are a hash tag, so one event's keys sit
//! in one Redis Cluster slot and its scripts work there).
//!
//! Redis is touched per join, per admission tick, and per admitted fan; never
//! per waiting fan per update: positions are worked out on each proxy from
//! what the tick returns.

use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};

use crate::config::{QueueMode, RoomSettings};

/// One event's Redis keys.
struct Keys {
    seq: String,
    waiting: String,
    active: String,
    progress: String,
    seen: String,
    removed: String,
    settings: String,
}

impl Keys {
    fn of(event: i64) -> Keys {
        let k = |name: &str| format!("usher:{{e{event}}}:{name}");
        Keys {
            seq: k("seq"),
            waiting: k("waiting"),
            active: k("active"),
            progress: k("progress"),
            seen: k("seen"),
            removed: k("removed"),
            settings: k("settings"),
        }
    }
}

/// What one admission tick found and did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tick {
    /// Redis's clock, ms.
    pub at_ms: i64,
    pub admitted: u64,
    /// Every ticket up to this one has been admitted or has lost its place.
    pub through: u64,
    /// Tickets issued so far.
    pub seq: u64,
    pub waiting: u64,
    pub active: u64,
    pub admitted_total: u64,
    /// Length of the list of tickets that lost their place.
    pub removed: u64,
}

#[derive(Clone)]
pub struct QueueStore {
    conn: ConnectionManager,
    admit: Script,
    join: Script,
    touch: Script,
}

pub type StoreResult<T> = Result<T, redis::RedisError>;

/// The longest stretch of time one tick may make up for: a pause (or an
/// instance that was down) never turns into a burst of admissions.
const ALLOWANCE_WINDOW_MS: u64 = 2_000;

impl QueueStore {
    pub async fn connect(url: &str) -> StoreResult<QueueStore> {
        let client = redis::Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(std::time::Duration::from_millis(500)))
            .set_response_timeout(Some(std::time::Duration::from_millis(1_000)))
            .set_number_of_retries(2);
        let conn = ConnectionManager::new_with_config(client, config).await?;
        Ok(QueueStore {
            conn,
            admit: Script::new(include_str!("admit.lua")),
            join: Script::new(include_str!("join.lua")),
            touch: Script::new(
                "local t = redis.call('TIME') \
                 return redis.call('ZADD', KEYS[1], 'XX', 'CH', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1]), ARGV[2])",
            ),
        })
    }

    /// A new place at the back of the queue: the ticket number.
    pub async fn join(&self, event: i64) -> StoreResult<u64> {
        let k = Keys::of(event);
        let mut conn = self.conn.clone();
        self.join
            .key(&k.seq)
            .key(&k.waiting)
            .key(&k.seen)
            .invoke_async(&mut conn)
            .await
    }

    /// One admission tick for an event.
    pub async fn tick(&self, room: &RoomSettings) -> StoreResult<Tick> {
        let k = Keys::of(room.event_id);
        let mode = match room.mode {
            QueueMode::Fifo => "fifo",
            QueueMode::Passthrough => "passthrough",
            QueueMode::Paused => "paused",
            QueueMode::Closed => "closed",
        };
        let mut conn = self.conn.clone();
        let r: Vec<i64> = self
            .admit
            .key(&k.waiting)
            .key(&k.active)
            .key(&k.progress)
            .key(&k.seen)
            .key(&k.removed)
            .key(&k.seq)
            .arg(room.admit_per_minute)
            .arg(room.max_active)
            .arg(room.session_secs * 1000)
            .arg(room.grace_secs * 1000)
            .arg(mode)
            .arg(ALLOWANCE_WINDOW_MS)
            .invoke_async(&mut conn)
            .await?;
        let at = |i: usize| r.get(i).copied().unwrap_or(0).max(0) as u64;
        Ok(Tick {
            at_ms: r.first().copied().unwrap_or(0),
            admitted: at(1),
            through: at(2),
            seq: at(3),
            waiting: at(4),
            active: at(5),
            admitted_total: at(6),
            removed: at(7),
        })
    }

    /// Tickets that lost their place, from position `from` of the list on.
    pub async fn removed_since(&self, event: i64, from: u64) -> StoreResult<Vec<u64>> {
        let mut conn = self.conn.clone();
        conn.lrange(Keys::of(event).removed, from as isize, -1).await
    }

    /// Marks waiting fans as heard from, in batches (only those still waiting).
    pub async fn mark_seen(&self, event: i64, tickets: &[u64], now_ms: i64) -> StoreResult<()> {
        let key = Keys::of(event).seen;
        let mut conn = self.conn.clone();
        for chunk in tickets.chunks(1_000) {
            let mut cmd = redis::cmd("ZADD");
            cmd.arg(&key).arg("XX");
            for t in chunk {
                cmd.arg(now_ms).arg(*t);
            }
            cmd.query_async::<()>(&mut conn).await?;
        }
        Ok(())
    }

    /// Extends an admitted fan's session; false if it is no longer active
    /// (never claimed in time, ended, or silent too long).
    pub async fn touch_session(&self, event: i64, ticket: u64, session_ms: u64) -> StoreResult<bool> {
        let mut conn = self.conn.clone();
        let changed: i64 = self
            .touch
            .key(Keys::of(event).active)
            .arg(session_ms)
            .arg(ticket)
            .invoke_async(&mut conn)
            .await?;
        Ok(changed > 0)
    }

    /// Ends an admitted fan's session at once: the slot goes to the next fan.
    pub async fn end_session(&self, event: i64, ticket: u64) -> StoreResult<()> {
        let mut conn = self.conn.clone();
        conn.zrem::<_, _, ()>(Keys::of(event).active, ticket).await
    }

    /// Settings an operator set through the admin API, shared by every
    /// instance.
    pub async fn settings(&self, event: i64) -> StoreResult<Option<RoomSettings>> {
        let mut conn = self.conn.clone();
        let raw: Option<String> = conn.get(Keys::of(event).settings).await?;
        Ok(raw.and_then(|r| serde_json::from_str(&r).ok()))
    }

    pub async fn put_settings(&self, settings: &RoomSettings) -> StoreResult<()> {
        let mut conn = self.conn.clone();
        // Serialising a plain struct cannot fail.
        let json = serde_json::to_string(settings).expect("serialise settings");
        conn.set(Keys::of(settings.event_id).settings, json).await
    }

    pub async fn ping(&self) -> StoreResult<()> {
        let mut conn = self.conn.clone();
        redis::cmd("PING").query_async::<()>(&mut conn).await
    }
}
