//! Counters and gauges for SREs, rendered in the Prometheus text format on
//! the admin listener's `/metrics`. Hand-rolled (atomics and a fixed
//! latency histogram) to keep the hot path free of locks and the build lean.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use crate::queue::Rooms;

#[derive(Default)]
pub struct EventCounters {
    pub joined: AtomicU64,
    pub admitted_tokens: AtomicU64,
    pub sessions_ended: AtomicU64,
    pub protected_requests: AtomicU64,
}

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
    responses: [AtomicU64; 6],
    latency_buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_us: AtomicU64,
}

impl Metrics {
    pub fn event(&self, event: i64) -> std::sync::Arc<EventCounters> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(event)
            .or_default()
            .clone()
    }

    pub fn rejected(&self, reason: &'static str) {
        *self
            .rejections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(reason)
            .or_default() += 1;
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
    pub fn render(&self, rooms: &Rooms) -> String {
        fn metric(out: &mut String, name: &str, kind: &str, help: &str) {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        }
        let mut out = String::new();
        metric(
            &mut out,
            "usher_queue_length",
            "gauge",
            "Fans waiting, per event, at the last tick.",
        );
        metric(
            &mut out,
            "usher_active_fans",
            "gauge",
            "Fans admitted and not yet done, per event.",
        );
        metric(
            &mut out,
            "usher_admitted_total",
            "counter",
            "Fans admitted by the queue, per event (all instances).",
        );
        metric(
            &mut out,
            "usher_tickets_issued",
            "gauge",
            "Queue tickets issued, per event (all instances).",
        );
        metric(
            &mut out,
            "usher_queue_healthy",
            "gauge",
            "1 if the last tick reached Redis.",
        );
        metric(
            &mut out,
            "usher_stream_listeners",
            "gauge",
            "Position streams open on this instance, per event.",
        );
        let mut body = String::new();
        for room in rooms.all() {
            let p = room.progress();
            let e = room.event;
            let _ = writeln!(body, "usher_queue_length{{event=\"{e}\"}} {}", p.waiting);
            let _ = writeln!(body, "usher_active_fans{{event=\"{e}\"}} {}", p.active);
            let _ = writeln!(body, "usher_admitted_total{{event=\"{e}\"}} {}", p.admitted_total);
            let _ = writeln!(body, "usher_tickets_issued{{event=\"{e}\"}} {}", p.seq);
            let _ = writeln!(body, "usher_queue_healthy{{event=\"{e}\"}} {}", u8::from(p.healthy));
            let _ = writeln!(body, "usher_stream_listeners{{event=\"{e}\"}} {}", room.listeners());
        }
        out.push_str(&body);
        metric(
            &mut out,
            "usher_joined_total",
            "counter",
            "Joins handled by this instance, per event.",
        );
        metric(
            &mut out,
            "usher_access_tokens_total",
            "counter",
            "Access tokens issued by this instance, per event.",
        );
        metric(
            &mut out,
            "usher_sessions_ended_total",
            "counter",
            "Sessions ended by the core's done header, per event.",
        );
        metric(
            &mut out,
            "usher_protected_requests_total",
            "counter",
            "Admitted requests forwarded, per event.",
        );
        for (e, c) in self.events.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(
                out,
                "usher_joined_total{{event=\"{e}\"}} {}",
                c.joined.load(Ordering::Relaxed)
            );
            let _ = writeln!(
                out,
                "usher_access_tokens_total{{event=\"{e}\"}} {}",
                c.admitted_tokens.load(Ordering::Relaxed)
            );
            let _ = writeln!(
                out,
                "usher_sessions_ended_total{{event=\"{e}\"}} {}",
                c.sessions_ended.load(Ordering::Relaxed)
            );
            let _ = writeln!(
                out,
                "usher_protected_requests_total{{event=\"{e}\"}} {}",
                c.protected_requests.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP usher_token_rejections_total Requests refused for their token, by reason.\n# TYPE usher_token_rejections_total counter"
        );
        for (reason, n) in self.rejections.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(out, "usher_token_rejections_total{{reason=\"{reason}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP usher_rate_limited_total Requests refused with 429.\n# TYPE usher_rate_limited_total counter\nusher_rate_limited_total {}",
            self.rate_limited.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP usher_sse_connections Server-Sent Event streams open on this instance.\n# TYPE usher_sse_connections gauge\nusher_sse_connections {}",
            self.sse_connections.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP usher_bypassed_total Requests let through by a bypass rule.\n# TYPE usher_bypassed_total counter\nusher_bypassed_total {}",
            self.bypassed.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP usher_upstream_errors_total Requests the upstream failed (connect, timeout, 5xx).\n# TYPE usher_upstream_errors_total counter\nusher_upstream_errors_total {}",
            self.upstream_errors.load(Ordering::Relaxed)
        );
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
        out
    }
}
