//! The waiting rooms' shared state in Redis, one set of keys per event
//! (`usher:{e<id>}:...`; the braces are a hash tag, so one event's keys sit
//! in one Redis Cluster slot and its scripts work there).
//!
//! Redis is touched per join, per admission tick, and per admitted fan; never
//! per waiting fan per update: positions are worked out on each proxy from
//! what the tick returns.

mod connection;
mod fairness;
mod lottery;
mod sessions;
mod settings;
mod tallies;

use redis::{AsyncCommands, Script};

use crate::config::RoomSettings;
use connection::{Conn, FAN_CALLS, Lane, SESSION_CALLS};
pub use fairness::{Fairness, WAIT_BOUNDS_SECS};
pub use lottery::LotteryRecord;
use settings::AdmissionFields;

/// One event's Redis keys.
struct Keys {
    seq: String,
    waiting: String,
    active: String,
    progress: String,
    seen: String,
    removed: String,
    settings: String,
    /// The shared settings' admission fields, for the admission script.
    admission: String,
    /// Sessions ended (list of `<session key> <expiry s>`), so every
    /// instance refuses their access tokens.
    ended: String,
    joined: String,
    fairness: String,
    lottery: String,
    lottery_lease: String,
    adaptive_lease: String,
    fans: String,
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
            admission: k("admission"),
            ended: k("ended"),
            joined: k("joined"),
            fairness: k("fairness"),
            lottery: k("lottery"),
            lottery_lease: k("lottery-lease"),
            adaptive_lease: k("adaptive-lease"),
            fans: k("fans"),
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
    /// The admission rate used, per minute (an adaptive room's current one).
    pub rate: u32,
    /// Length of the list of ended sessions.
    pub ended: u64,
    /// The room's admission runs so far, by every instance.
    pub shared_tick: u64,
}

#[derive(Clone)]
pub struct QueueStore {
    /// Waiting fans' calls (joins, take-backs) and the admin's reads.
    conn: Conn,
    /// At most `FAN_CALLS` of the waiting fans' calls at once.
    fan_calls: Lane,
    /// Admitted fans' sessions: claiming a turn, extending and ending a
    /// session, on a connection and lane of their own. A fan whose turn came
    /// never waits behind a join spike: in the stadium run two claims timed
    /// out behind 256 joins and the fans were told to retry (503).
    sessions: Conn,
    session_calls: Lane,
    /// The admission ticker's own connection. One connection answers in
    /// order, so on a shared one a tick waited behind every join of a spike
    /// (thousands in flight) and timed out while Redis itself was idle.
    ticker: Conn,
    /// Shared counts (rate limits, risk), synced in the background.
    tallies: Conn,
    tally: Script,
    admit: Script,
    join: Script,
    touch: Script,
    lottery_open: Script,
    lottery_seal: Script,
    adapt: Script,
    take_back: Script,
}

pub type StoreResult<T> = Result<T, redis::RedisError>;

/// What a join carries besides the event: the proof-of-work challenge it
/// spends, and the signed-in fan it is for.
#[derive(Debug, Clone, Copy, Default)]
pub struct JoinGuard<'a> {
    pub challenge: Option<&'a str>,
    pub challenge_ttl_ms: u64,
    /// Unique per request (kept across its retry).
    pub request: &'a str,
    pub fan: Option<&'a str>,
}

/// How a join went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinOutcome {
    New(u64),
    /// The signed-in fan's place, still waiting or admitted.
    Again(u64),
    /// The challenge was already spent on another join.
    ChallengeSpent,
}

/// The longest stretch of time one tick may make up for: a pause (or an
/// instance that was down) never turns into a burst of admissions.
const ALLOWANCE_WINDOW_MS: u64 = 2_000;

impl QueueStore {
    /// Connects to one Redis at `url`, or to a cluster through its seed
    /// nodes if `cluster_nodes` is not empty.
    /// Answers may take up to two seconds: on a busy machine Redis has been
    /// seen to take over one at the peak of a join spike, and a timed-out
    /// join turns a fan away.
    pub async fn connect(url: &str, cluster_nodes: &[&str]) -> StoreResult<QueueStore> {
        Ok(QueueStore {
            conn: connection::open(url, cluster_nodes).await?,
            fan_calls: Lane::new(FAN_CALLS),
            sessions: connection::open(url, cluster_nodes).await?,
            session_calls: Lane::new(SESSION_CALLS),
            ticker: connection::open(url, cluster_nodes).await?,
            tallies: connection::open(url, cluster_nodes).await?,
            tally: Script::new(tallies::SCRIPT),
            admit: Script::new(include_str!("admit.lua")),
            join: Script::new(include_str!("join.lua")),
            // 1 if the session is (still) active, extended; 0 if not. (Not
            // ZADD's CH count: a touch in the admission's own millisecond
            // changes nothing and would read as "gone".)
            touch: Script::new(
                "if not redis.call('ZSCORE', KEYS[1], ARGV[2]) then return 0 end \
                 local t = redis.call('TIME') \
                 redis.call('ZADD', KEYS[1], 'XX', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1]), ARGV[2]) \
                 return 1",
            ),
            // The first instance to open the lottery commits to its seed.
            lottery_open: Script::new(
                "if redis.call('HSETNX', KEYS[1], 'secret', ARGV[1]) == 1 then \
                   redis.call('HSET', KEYS[1], 'seed_hash', ARGV[2], 'state', 'open') end \
                 return redis.call('HGET', KEYS[1], 'seed_hash')",
            ),
            // Seals the entrants once: everyone who joined so far.
            lottery_seal: Script::new(
                "local n = redis.call('HGET', KEYS[1], 'entrants') \
                 if not n then n = redis.call('GET', KEYS[2]) or '0' \
                   redis.call('HSET', KEYS[1], 'entrants', n, 'state', 'drawing') end \
                 return {tonumber(n), redis.call('HGET', KEYS[1], 'secret') or ''}",
            ),
            // Only places still waiting: an admitted fan keeps the session.
            take_back: Script::new(
                "local n = 0 \
                 for _, t in ipairs(ARGV) do \
                   if redis.call('ZREM', KEYS[1], t) == 1 then \
                     redis.call('ZREM', KEYS[2], t) redis.call('ZREM', KEYS[3], t) \
                     redis.call('RPUSH', KEYS[4], t) n = n + 1 end end \
                 return n",
            ),
            // One instance per window sets an adaptive room's rate.
            adapt: Script::new(
                "if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[2]) then \
                   redis.call('HSET', KEYS[1], 'adaptive_rate', ARGV[1]) return 1 end \
                 return 0",
            ),
        })
    }

    /// A new place at the back of the queue: the ticket number.
    pub async fn join(&self, event: i64, guard: &JoinGuard<'_>) -> StoreResult<JoinOutcome> {
        let k = Keys::of(event);
        let spent = match guard.challenge {
            Some(nonce) => format!("usher:{{e{event}}}:pow:{nonce}"),
            None => format!("usher:{{e{event}}}:pow:-"),
        };
        let _turn = self.fan_calls.turn().await?;
        let mut conn = self.conn.clone();
        let (ticket, fresh): (u64, i64) = self
            .join
            .key(&k.seq)
            .key(&k.waiting)
            .key(&k.seen)
            .key(&k.joined)
            .key(spent)
            .key(&k.fans)
            .key(&k.active)
            .arg(guard.challenge.unwrap_or(""))
            .arg(guard.challenge_ttl_ms.max(1))
            .arg(guard.request)
            .arg(guard.fan.unwrap_or(""))
            .invoke_async(&mut conn)
            .await?;
        Ok(match fresh {
            -1 => JoinOutcome::ChallengeSpent,
            0 => JoinOutcome::Again(ticket),
            _ => JoinOutcome::New(ticket),
        })
    }

    /// One admission tick for an event.
    pub async fn tick(&self, room: &RoomSettings) -> StoreResult<Tick> {
        let k = Keys::of(room.event_id);
        let f = AdmissionFields::of(room);
        let mut conn = self.ticker.clone();
        let r: Vec<i64> = self
            .admit
            .key(&k.waiting)
            .key(&k.active)
            .key(&k.progress)
            .key(&k.seen)
            .key(&k.removed)
            .key(&k.seq)
            .key(&k.joined)
            .key(&k.fairness)
            .key(&k.lottery)
            .key(&k.admission)
            .key(&k.ended)
            .arg(f.rate)
            .arg(f.max_active)
            .arg(f.session_ms)
            .arg(f.grace_ms)
            .arg(f.mode)
            .arg(ALLOWANCE_WINDOW_MS)
            .arg(f.on_sale_ms)
            .arg(f.adaptive)
            .arg(f.min)
            .arg(f.max)
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
            rate: at(8).min(u32::MAX as u64) as u32,
            ended: at(9),
            shared_tick: at(10),
        })
    }

    /// Sets an adaptive room's admission rate, unless another instance has
    /// already done so within `lease_ms`.
    pub async fn adapt_rate(&self, event: i64, rate: u32, lease_ms: u64) -> StoreResult<bool> {
        let k = Keys::of(event);
        let mut conn = self.ticker.clone();
        let set: i64 = self
            .adapt
            .key(&k.progress)
            .key(&k.adaptive_lease)
            .arg(rate)
            .arg(lease_ms.max(1))
            .invoke_async(&mut conn)
            .await?;
        Ok(set == 1)
    }

    /// Takes waiting places back (they are lost, as if their fans had gone):
    /// returns how many were still waiting.
    pub async fn take_back(&self, event: i64, tickets: &[u64]) -> StoreResult<u64> {
        let k = Keys::of(event);
        let _turn = self.fan_calls.turn().await?;
        let mut conn = self.conn.clone();
        let mut script = self.take_back.key(&k.waiting);
        script.key(&k.seen).key(&k.joined).key(&k.removed);
        for t in tickets {
            script.arg(*t);
        }
        script.invoke_async(&mut conn).await
    }

    /// Tickets that lost their place, from position `from` of the list on.
    pub async fn removed_since(&self, event: i64, from: u64) -> StoreResult<Vec<u64>> {
        let mut conn = self.ticker.clone();
        conn.lrange(Keys::of(event).removed, from as isize, -1).await
    }

    /// Marks waiting fans as heard from (only those still waiting), in
    /// batches of a thousand sent in one round trip.
    pub async fn mark_seen(&self, event: i64, tickets: &[u64], now_ms: i64) -> StoreResult<()> {
        let key = Keys::of(event).seen;
        let mut pipe = redis::pipe();
        for chunk in tickets.chunks(1_000) {
            let cmd = pipe.cmd("ZADD").arg(&key).arg("XX");
            for t in chunk {
                cmd.arg(now_ms).arg(*t);
            }
            cmd.ignore();
        }
        let mut conn = self.ticker.clone();
        pipe.query_async::<()>(&mut conn).await
    }

    pub async fn ping(&self) -> StoreResult<()> {
        let mut conn = self.conn.clone();
        redis::cmd("PING").query_async::<()>(&mut conn).await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// With every waiting fan's turn taken (a join spike), a fan whose turn
    /// came still claims it at once, and its session can be ended.
    #[tokio::test]
    async fn a_claim_does_not_wait_behind_a_join_spike() {
        let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let store = QueueStore::connect(&url, &[]).await.expect("redis");
        // A key space of its own: an event id no other test uses.
        let event = -i64::from(rand::random::<u32>()) - 1;
        let k = Keys::of(event);
        let mut conn = store.ticker.clone();
        let far = chrono::Utc::now().timestamp_millis() + 60_000;
        conn.zadd::<_, _, _, ()>(&k.active, 7u64, far).await.expect("zadd");

        let spike = store.fan_calls.0.acquire_many(FAN_CALLS as u32).await.expect("permits");
        let guard = JoinGuard::default();
        let join = tokio::time::timeout(Duration::from_millis(300), store.join(event, &guard));
        assert!(join.await.is_err(), "a join waits for its turn");
        let claimed = tokio::time::timeout(Duration::from_secs(2), store.touch_session(event, 7, 60_000))
            .await
            .expect("a claim does not wait behind joins")
            .expect("redis");
        assert!(claimed, "the admitted fan's session is there");
        assert!(
            !store.touch_session(event, 8, 60_000).await.expect("redis"),
            "nobody else's"
        );
        store.end_session(event, 7, "t7", 0).await.expect("redis");
        assert!(!store.touch_session(event, 7, 60_000).await.expect("redis"), "ended");
        drop(spike);

        let keys: Vec<String> = conn.keys(format!("usher:{{e{event}}}:*")).await.expect("keys");
        if !keys.is_empty() {
            conn.del::<_, ()>(keys).await.expect("del");
        }
    }
}
