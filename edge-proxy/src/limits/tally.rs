//! Counts that every edge adds to and reads back through Redis, so that N
//! edges enforce one limit and see one risk picture: per-client rate limits
//! (GCRA: the theoretical arrival time), joins per minute and fading
//! misdeed points.
//!
//! The request path never waits for Redis. It reads the sum as of the last
//! sync plus what this edge added since; a background task (`sync`) sends
//! the additions and reads the sums back every `sync_ms`, one script call
//! for all of them. A reading older than `stale_ms` (Redis slow or away) is
//! not believed: then each edge decides by its own counts alone, as it did
//! before counts were shared. What an edge adds while Redis is away is not
//! sent later: a burst of old counts would lock out clients who are idle.
//!
//! For rate limits, a client new to this edge is judged by its own counts
//! until the next sync, so one spread over N edges may get N bursts once;
//! after that, one allowance between them. The bot defences, whose verdict
//! on a client's first join matters more, fetch the client's unknown sums
//! first (`fetch_unknown`, one call with a short deadline, once per client
//! per edge).

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;

use crate::config::SharedCounts;
use crate::locks;
use crate::queue::store::{QueueStore, StoreResult};

/// Redis Cluster slots the counts are spread over: a network's counts (its
/// addresses' and its own) share one, so a client's first join fetches
/// them in one call.
const SHARDS: u32 = 16;

/// A count's key: `<shard>/<kind>:<subject>`, its shard chosen by `group`
/// (the client's network, or the subject itself).
pub fn key(kind: &str, subject: &impl std::fmt::Display, group: &str) -> String {
    // FNV-1a: the same on every edge, whatever its build.
    let hash = group
        .bytes()
        .fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    format!("{}/{kind}:{subject}", hash % SHARDS)
}

/// The shard a key names and the rest of it.
pub fn split_key(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("0", key))
}

/// Additions grouped by shard, at most `BATCH` to a group: one script call
/// each.
fn by_shard(additions: Vec<Addition>) -> Vec<Vec<Addition>> {
    let mut groups: HashMap<String, Vec<Addition>> = HashMap::new();
    for a in additions {
        groups.entry(split_key(&a.key).0.to_owned()).or_default().push(a);
    }
    groups
        .into_values()
        .flat_map(|g| g.chunks(BATCH).map(<[Addition]>::to_vec).collect::<Vec<_>>())
        .collect()
}

/// How a count adds up in Redis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Measure {
    /// A rate limit: each request moves the client's theoretical arrival
    /// time on by `interval_ms` (GCRA).
    Rate { interval_ms: u64 },
    /// Events in the current and the previous wall-clock minute.
    Minute,
    /// Points that halve every `half_life_ms`.
    Fading { half_life_ms: u64 },
}

/// What Redis last said of a count (its clock, ms).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sum {
    /// The theoretical arrival time.
    Arrival(f64),
    /// Events in minute `now / 60000` and the one before it.
    Minutes { minute: i64, current: f64, previous: f64 },
    /// Points as of `at`.
    Points { value: f64, at: i64 },
}

struct Entry {
    measure: Measure,
    /// Added here since the last sync.
    pending: f64,
    sum: Option<(Sum, Instant)>,
    touched: Instant,
}

/// A count's entry, made if new, marked as used now.
fn touch<'a>(entries: &'a mut HashMap<String, Entry>, key: &str, measure: Measure) -> &'a mut Entry {
    let now = Instant::now();
    let e = entries.entry(key.to_owned()).or_insert(Entry {
        measure,
        pending: 0.0,
        sum: None,
        touched: now,
    });
    e.touched = now;
    e
}

/// One count on its way to Redis: its key (without the scope), how it adds
/// up, and what this edge adds.
#[derive(Debug, Clone)]
pub struct Addition {
    pub key: String,
    pub measure: Measure,
    pub amount: f64,
}

pub struct Tallies {
    scope: Option<String>,
    sync: Duration,
    stale: Duration,
    entries: Mutex<HashMap<String, Entry>>,
    /// Redis's clock minus this machine's, ms (as of the last sync).
    offset_ms: AtomicI64,
    /// When the last sync began.
    last_sync: Mutex<Instant>,
    /// Redis, once the edge has reached it.
    store: ArcSwapOption<QueueStore>,
    pub syncs: AtomicU64,
    pub failures: AtomicU64,
}

/// Counts kept before quiet ones are dropped.
const MAX_ENTRIES: usize = 200_000;
/// The most keys sent in one script call.
const BATCH: usize = 1_000;
/// How long a join waits for sums this edge does not know yet.
const FETCH_WAIT: Duration = Duration::from_millis(100);

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Tallies {
    pub fn new(config: &SharedCounts) -> Tallies {
        Tallies {
            scope: config.enabled.then(|| config.scope.clone()),
            sync: Duration::from_millis(config.sync_ms),
            stale: Duration::from_millis(config.stale_ms),
            entries: Mutex::default(),
            offset_ms: AtomicI64::new(0),
            last_sync: Mutex::new(Instant::now()),
            store: ArcSwapOption::empty(),
            syncs: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }

    /// Counts kept by this edge alone.
    pub fn off() -> Tallies {
        Tallies::new(&SharedCounts {
            enabled: false,
            ..SharedCounts::default()
        })
    }

    pub fn enabled(&self) -> bool {
        self.scope.is_some()
    }

    pub fn sync_every(&self) -> Duration {
        self.sync
    }

    /// Redis's clock now, as far as this edge can tell (ms).
    fn redis_now(&self) -> i64 {
        unix_ms().saturating_add(self.offset_ms.load(Ordering::Relaxed))
    }

    /// Adds to a count (sent at the next sync).
    pub fn add(&self, key: &str, measure: Measure, amount: f64) {
        if !self.enabled() {
            return;
        }
        let mut entries = locks::lock(&self.entries);
        let e = touch(&mut entries, key, measure);
        e.measure = measure;
        e.pending += amount;
    }

    /// The last fresh sum and what was added here since; None if there is
    /// no fresh sum (never synced, or Redis has not answered lately). A
    /// count read here is fetched at the next sync even if nothing was
    /// added here: the client may be busy on other edges.
    fn read(&self, key: &str, measure: Measure) -> Option<(Sum, f64)> {
        self.scope.as_ref()?;
        let mut entries = locks::lock(&self.entries);
        let e = touch(&mut entries, key, measure);
        let (sum, at) = e.sum?;
        (at.elapsed() <= self.stale).then_some((sum, e.pending))
    }

    /// Whether one more request fits a rate of one per `interval_ms` with a
    /// burst of `burst`, counting every edge; None: no fresh sum, decide
    /// locally.
    pub fn rate_allows(&self, key: &str, interval_ms: u64, burst: u32) -> Option<bool> {
        let (Sum::Arrival(tat), pending) = self.read(key, Measure::Rate { interval_ms })? else {
            return None;
        };
        let now = self.redis_now() as f64;
        let interval = interval_ms as f64;
        let next = tat.max(now) + (pending + 1.0) * interval;
        Some(next - now <= f64::from(burst) * interval)
    }

    /// Events over the past sliding minute, counting every edge; None: no
    /// fresh sum.
    pub fn per_minute(&self, key: &str) -> Option<f64> {
        let (
            Sum::Minutes {
                minute,
                current,
                previous,
            },
            pending,
        ) = self.read(key, Measure::Minute)?
        else {
            return None;
        };
        let now = self.redis_now();
        let (this_minute, frac) = (now.div_euclid(60_000), now.rem_euclid(60_000) as f64 / 60_000.0);
        let past = if this_minute == minute {
            current + previous * (1.0 - frac)
        } else if this_minute == minute + 1 {
            current * (1.0 - frac)
        } else {
            0.0
        };
        Some(past + pending)
    }

    /// Points now, counting every edge; None: no fresh sum.
    pub fn points(&self, key: &str, half_life_ms: u64) -> Option<f64> {
        let (Sum::Points { value, at }, pending) = self.read(key, Measure::Fading { half_life_ms })? else {
            return None;
        };
        let halves = (self.redis_now() - at).max(0) as f64 / half_life_ms.max(1) as f64;
        Some(value * 0.5f64.powf(halves) + pending)
    }

    /// Reads the sums of these counts that this edge has no fresh sum of
    /// (a client new here), waiting at most `FETCH_WAIT`: past it, or
    /// without Redis, the edge goes by its own counts.
    pub async fn fetch_unknown(&self, wanted: &[(String, Measure)]) {
        let (Some(scope), Some(store)) = (&self.scope, self.store.load_full()) else {
            return;
        };
        let missing: Vec<Addition> = {
            let entries = locks::lock(&self.entries);
            wanted
                .iter()
                .filter(|(k, _)| {
                    entries
                        .get(k)
                        .and_then(|e| e.sum)
                        .is_none_or(|(_, at)| at.elapsed() > self.stale)
                })
                .map(|(k, m)| Addition {
                    key: k.clone(),
                    measure: *m,
                    amount: 0.0,
                })
                .collect()
        };
        for group in by_shard(missing) {
            let Ok(Ok((_, sums))) = tokio::time::timeout(FETCH_WAIT, store.add_tallies(scope, &group)).await else {
                return;
            };
            self.keep_fetched(group, sums);
        }
    }

    fn keep_fetched(&self, fetched: Vec<Addition>, sums: Vec<Sum>) {
        let now = Instant::now();
        let mut entries = locks::lock(&self.entries);
        for (a, sum) in fetched.into_iter().zip(sums) {
            touch(&mut entries, &a.key, a.measure).sum = Some((sum, now));
        }
    }

    /// Sends what was added since the last sync and reads the sums back.
    pub async fn sync(&self, store: &Arc<QueueStore>) -> StoreResult<usize> {
        let Some(scope) = &self.scope else {
            return Ok(0);
        };
        if self.store.load().is_none() {
            self.store.store(Some(store.clone()));
        }
        let since = std::mem::replace(&mut *locks::lock(&self.last_sync), Instant::now());
        // What was added here, and what was read here with no recent sum
        // (once per half the staleness bound, not once per sync: a busy
        // client's every count would otherwise go to Redis four times a
        // second from every edge).
        let refresh = |e: &Entry| e.touched >= since && e.sum.is_none_or(|(_, at)| at.elapsed() > self.stale / 2);
        let sent: Vec<Addition> = {
            let mut entries = locks::lock(&self.entries);
            entries
                .iter_mut()
                .filter(|(_, e)| e.pending > 0.0 || refresh(e))
                .map(|(k, e)| Addition {
                    key: k.clone(),
                    measure: e.measure,
                    amount: std::mem::take(&mut e.pending),
                })
                .collect()
        };
        let count = sent.len();
        for batch in by_shard(sent) {
            let asked = unix_ms();
            let answer = tokio::time::timeout(self.stale, store.add_tallies(scope, &batch)).await;
            let (redis_now, sums) = match answer {
                Ok(Ok(a)) => a,
                Ok(Err(e)) => {
                    self.failures.fetch_add(1, Ordering::Relaxed);
                    return Err(e);
                }
                Err(_) => {
                    self.failures.fetch_add(1, Ordering::Relaxed);
                    return Err(std::io::Error::from(std::io::ErrorKind::TimedOut).into());
                }
            };
            // Redis's clock read halfway through the call.
            let here = asked + (unix_ms() - asked) / 2;
            self.offset_ms.store(redis_now - here, Ordering::Relaxed);
            let now = Instant::now();
            let mut entries = locks::lock(&self.entries);
            for (a, sum) in batch.iter().zip(sums) {
                if let Some(e) = entries.get_mut(&a.key) {
                    e.sum = Some((sum, now));
                }
            }
        }
        self.syncs.fetch_add(1, Ordering::Relaxed);
        Ok(count)
    }

    /// Forgets counts untouched for two minutes, and everything past the
    /// size bound.
    pub fn tidy(&self) {
        let mut entries = locks::lock(&self.entries);
        entries.retain(|_, e| e.touched.elapsed() < Duration::from_secs(120));
        if entries.len() > MAX_ENTRIES {
            entries.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tallies(stale_ms: u64) -> Tallies {
        Tallies::new(&SharedCounts {
            scope: "unit".into(),
            sync_ms: 20,
            stale_ms,
            ..SharedCounts::default()
        })
    }

    #[test]
    fn a_networks_counts_share_a_shard() {
        let a = key("att", &"10.0.0.1", "10.0.0");
        let b = key("pts-net", &"10.0.0", "10.0.0");
        assert_eq!(split_key(&a).0, split_key(&b).0);
        assert_eq!(split_key(&a).1, "att:10.0.0.1");
        // Networks spread over the shards.
        let shards: std::collections::HashSet<String> = (0..64)
            .map(|n| split_key(&key("att", &n, &format!("10.0.{n}"))).0.to_owned())
            .collect();
        assert!(shards.len() > 8, "{shards:?}");
    }

    #[test]
    fn a_fresh_sum_says_how_many_more_fit_and_a_stale_one_says_nothing() {
        let t = tallies(150);
        let k = key("join", &"10.0.0.1", "10.0.0");
        let rate = Measure::Rate { interval_ms: 1_000 };
        // Unknown: this edge decides alone.
        assert_eq!(t.rate_allows(&k, 1_000, 6), None);
        // Five requests ahead of now across the edges: one more fits a
        // burst of six, two do not.
        let tat = unix_ms() as f64 + 5_000.0;
        t.keep_fetched(
            vec![Addition {
                key: k.clone(),
                measure: rate,
                amount: 0.0,
            }],
            vec![Sum::Arrival(tat)],
        );
        assert_eq!(t.rate_allows(&k, 1_000, 6), Some(true));
        t.add(&k, rate, 1.0);
        assert_eq!(t.rate_allows(&k, 1_000, 6), Some(false));
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(t.rate_allows(&k, 1_000, 6), None);
    }

    #[test]
    fn minutes_slide_and_points_fade_by_redis_clock() {
        let t = tallies(10_000);
        let now = unix_ms();
        let (m, p) = (key("att", &"a", "a"), key("pts", &"a", "a"));
        t.keep_fetched(
            vec![
                Addition {
                    key: m.clone(),
                    measure: Measure::Minute,
                    amount: 0.0,
                },
                Addition {
                    key: p.clone(),
                    measure: Measure::Fading { half_life_ms: 1_000 },
                    amount: 0.0,
                },
            ],
            vec![
                Sum::Minutes {
                    minute: now.div_euclid(60_000),
                    current: 10.0,
                    previous: 60.0,
                },
                Sum::Points {
                    value: 40.0,
                    at: now - 2_000,
                },
            ],
        );
        let frac = now.rem_euclid(60_000) as f64 / 60_000.0;
        let rate = t.per_minute(&m).unwrap();
        assert!((rate - (10.0 + 60.0 * (1.0 - frac))).abs() < 1.5, "{rate}");
        // Two half-lives since: a quarter left.
        let points = t.points(&p, 1_000).unwrap();
        assert!((points - 10.0).abs() < 0.5, "{points}");
    }

    #[test]
    fn off_adds_and_reads_nothing() {
        let t = Tallies::off();
        t.add("0/join:x", Measure::Minute, 1.0);
        assert_eq!(t.per_minute("0/join:x"), None);
        assert!(locks::lock(&t.entries).is_empty());
    }
}
