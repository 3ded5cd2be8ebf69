//! Counters and gauges for SREs, rendered in the Prometheus text format on
//! the admin listener's `/metrics`. Hand-rolled (atomics and a fixed
//! latency histogram) to keep the hot path free of locks and the build lean.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use crate::locks;
use crate::queue::Rooms;

#[derive(Default)]
pub struct EventCounters {
    pub joined: AtomicU64,
    pub admitted_tokens: AtomicU64,
    pub sessions_ended: AtomicU64,
    pub protected_requests: AtomicU64,
}

/// A per-room gauge or counter: name, type, help, and how to read it.
type RoomFamily<'a> = (&'a str, &'a str, &'a str, &'a dyn Fn(&crate::queue::Room) -> String);
/// A per-event counter kept here: name, help, and which one.
type EventFamily<'a> = (&'a str, &'a str, fn(&EventCounters) -> &AtomicU64);

/// Upper bounds of the upstream latency buckets, in seconds.
const BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

#[derive(Default)]
pub struct Metrics {
    events: Mutex<BTreeMap<i64, std::sync::Arc<EventCounters>>>,
    rejections: Mutex<BTreeMap<&'static str, u64>>,
    pub rate_limited: AtomicU64,
    pub sse_connections: AtomicI64,
    pub upstream_errors: AtomicU64,
    pub bypassed: AtomicU64,
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    responses: [AtomicU64; 6],
    latency_buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_us: AtomicU64,
}

impl Metrics {
    pub fn event(&self, event: i64) -> std::sync::Arc<EventCounters> {
        locks::lock(&self.events).entry(event).or_default().clone()
    }

    pub fn rejected(&self, reason: &'static str) {
        *locks::lock(&self.rejections).entry(reason).or_default() += 1;
    }

    pub fn response(&self, status: u16) {
        let class = (status / 100).min(5) as usize;
        self.responses[class].fetch_add(1, Ordering::Relaxed);
    }

    pub fn upstream_latency(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us.fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    /// The Prometheus text exposition.
    pub fn render(
        &self,
        rooms: &Rooms,
        defences: &crate::defence::Defences,
        tallies: &crate::limits::tally::Tallies,
    ) -> String {
        fn metric(out: &mut String, name: &str, kind: &str, help: &str) {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        }
        let mut out = String::new();
        // Each family's HELP and TYPE, then its samples, as one group.
        let rooms = rooms.all();
        let families: [RoomFamily; 9] = [
            (
                "usher_queue_length",
                "gauge",
                "Fans waiting, per event, at the last tick.",
                &|r| r.progress().waiting.to_string(),
            ),
            (
                "usher_active_fans",
                "gauge",
                "Fans admitted and not yet done, per event.",
                &|r| r.progress().active.to_string(),
            ),
            (
                "usher_admitted_total",
                "counter",
                "Fans admitted by the queue, per event (all instances).",
                &|r| r.progress().admitted_total.to_string(),
            ),
            (
                "usher_tickets_issued",
                "gauge",
                "Queue tickets issued, per event (all instances).",
                &|r| r.progress().seq.to_string(),
            ),
            (
                "usher_places_lost_total",
                "counter",
                "Waiting places lost (fans not heard from within the grace period, or taken back), per event (all instances).",
                &|r| r.progress().lost_total.to_string(),
            ),
            (
                "usher_ticks_failed_total",
                "counter",
                "Admission ticks on this instance that did not reach Redis, per event.",
                &|r| r.progress().ticks_failed.to_string(),
            ),
            (
                "usher_queue_healthy",
                "gauge",
                "1 if the last tick reached Redis.",
                &|r| u8::from(r.progress().healthy).to_string(),
            ),
            (
                "usher_stream_listeners",
                "gauge",
                "Position streams open on this instance, per event.",
                &|r| r.listeners().to_string(),
            ),
            (
                "usher_admission_rate_per_minute",
                "gauge",
                "Admissions per minute in force (an adaptive room's current rate).",
                &|r| r.progress().rate.to_string(),
            ),
        ];
        for (name, kind, help, value) in families {
            metric(&mut out, name, kind, help);
            for room in &rooms {
                let _ = writeln!(out, "{name}{{event=\"{}\"}} {}", room.event, value(room));
            }
        }
        let events = locks::lock(&self.events).clone();
        let counters: [EventFamily; 4] = [
            (
                "usher_joined_total",
                "Joins handled by this instance, per event.",
                |c| &c.joined,
            ),
            (
                "usher_access_tokens_total",
                "Access tokens issued by this instance, per event.",
                |c| &c.admitted_tokens,
            ),
            (
                "usher_sessions_ended_total",
                "Sessions ended by the core's done header, per event.",
                |c| &c.sessions_ended,
            ),
            (
                "usher_protected_requests_total",
                "Admitted requests forwarded, per event.",
                |c| &c.protected_requests,
            ),
        ];
        for (name, help, field) in counters {
            metric(&mut out, name, "counter", help);
            for (e, c) in &events {
                let _ = writeln!(out, "{name}{{event=\"{e}\"}} {}", field(c).load(Ordering::Relaxed));
            }
        }
        let _ = writeln!(
            out,
            "# HELP usher_token_rejections_total Requests refused for their token, by reason.\n# TYPE usher_token_rejections_total counter"
        );
        for (reason, n) in locks::lock(&self.rejections).iter() {
            let _ = writeln!(out, "usher_token_rejections_total{{reason=\"{reason}\"}} {n}");
        }
        // One value each, no labels.
        let single: [(&str, &str, &str, u64); 7] = [
            (
                "usher_rate_limited_total",
                "counter",
                "Requests refused with 429.",
                self.rate_limited.load(Ordering::Relaxed),
            ),
            (
                "usher_shared_counts_syncs_total",
                "counter",
                "Syncs of the rate-limit and risk counts shared with other edges.",
                tallies.syncs.load(Ordering::Relaxed),
            ),
            (
                "usher_shared_counts_failures_total",
                "counter",
                "Syncs that failed or timed out (each edge then counts alone).",
                tallies.failures.load(Ordering::Relaxed),
            ),
            (
                "usher_bypassed_total",
                "counter",
                "Requests let through by a bypass rule.",
                self.bypassed.load(Ordering::Relaxed),
            ),
            (
                "usher_cache_hits_total",
                "counter",
                "Responses served from the edge's cache.",
                self.cache_hits.load(Ordering::Relaxed),
            ),
            (
                "usher_cache_misses_total",
                "counter",
                "Cacheable requests the core answered.",
                self.cache_misses.load(Ordering::Relaxed),
            ),
            (
                "usher_upstream_errors_total",
                "counter",
                "Requests the upstream failed (connect, timeout, 5xx).",
                self.upstream_errors.load(Ordering::Relaxed),
            ),
        ];
        for (name, kind, help, value) in single {
            metric(&mut out, name, kind, help);
            let _ = writeln!(out, "{name} {value}");
        }
        let streams = "usher_sse_connections";
        metric(
            &mut out,
            streams,
            "gauge",
            "Server-Sent Event streams open on this instance.",
        );
        let _ = writeln!(out, "{streams} {}", self.sse_connections.load(Ordering::Relaxed));
        let _ = writeln!(
            out,
            "# HELP usher_responses_total Responses by status class.\n# TYPE usher_responses_total counter"
        );
        for (class, n) in self.responses.iter().enumerate().skip(1) {
            let _ = writeln!(
                out,
                "usher_responses_total{{class=\"{class}xx\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP usher_upstream_seconds Time from forwarding a request to the upstream's answer.\n# TYPE usher_upstream_seconds histogram"
        );
        for (i, bound) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "usher_upstream_seconds_bucket{{le=\"{bound}\"}} {}",
                self.latency_buckets[i].load(Ordering::Relaxed)
            );
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let _ = writeln!(out, "usher_upstream_seconds_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "usher_upstream_seconds_sum {}",
            self.latency_sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "usher_upstream_seconds_count {count}");
        defences.render(&mut out);
        out
    }
}
