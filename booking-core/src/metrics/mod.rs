//! The core's metrics for SREs, in the Prometheus text format: requests by
//! route template, the database pools, holds, orders, the purchase saga and
//! the payment provider, pricing runs, seat readings, and the backlogs read
//! at scrape time. Hand-rolled (atomics and fixed histograms, as the edge's
//! `metrics.rs`) to keep the build lean and the hot path free of locks but
//! a shared read lock per labelled series.
//!
//! Domain modules record through a `Metrics` handle; this module knows
//! nothing of HTTP. A handle made by `Metrics::default()` is off: every
//! record is one branch and nothing is kept (services built by tests, or a
//! core without `http.metrics_listen`).

pub mod family;
pub mod histogram;
pub mod requests;
pub mod scrape;
pub mod text;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres, Transaction};

use family::Family;
use histogram::Histogram;
use requests::Requests;
use text::Text;

/// A cheap handle to the registry, or to nothing when metrics are off.
#[derive(Clone, Default)]
pub struct Metrics(Option<Arc<Registry>>);

type Counter = AtomicU64;

#[derive(Default)]
pub struct Registry {
    requests: Requests,
    holds_placed: Counter,
    holds_refused: Family<&'static str, Counter>,
    orders: Family<&'static str, Counter>,
    saga_steps: Family<&'static str, Histogram>,
    provider: Family<(&'static str, &'static str), Histogram>,
    acquire: Histogram,
    acquiring: AtomicI64,
    pricing_runs: Family<&'static str, Counter>,
    pricing_seconds: Histogram,
    reading_seconds: Histogram,
    reading_age: Histogram,
}

impl Metrics {
    /// A handle that records.
    pub fn on() -> Metrics {
        Metrics(Some(Arc::default()))
    }

    pub fn is_on(&self) -> bool {
        self.0.is_some()
    }

    /// A request answered: its route template (None: no route matched),
    /// method, status, and the time to its head.
    pub fn request(&self, route: Option<&str>, method: &str, status: u16, took: Duration) {
        if let Some(r) = &self.0 {
            r.requests.observe(route, method, status, took);
        }
    }

    /// How many request series exist (route, method, status).
    pub fn request_series(&self) -> usize {
        self.0.as_ref().map_or(0, |r| r.requests.series())
    }

    /// A new hold was placed (a replayed answer is not counted).
    pub fn hold_placed(&self) {
        if let Some(r) = &self.0 {
            r.holds_placed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A hold was refused, with the problem code the fan was given.
    pub fn hold_refused(&self, code: &'static str) {
        if let Some(r) = &self.0 {
            r.holds_refused.get(&code).fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A fan's purchase answered: the order's state, or the problem code.
    pub fn order(&self, outcome: &'static str) {
        if let Some(r) = &self.0 {
            r.orders.get(&outcome).fetch_add(1, Ordering::Relaxed);
        }
    }

    /// One step of the purchase saga (`charge`, `settle`, `refund`).
    pub fn saga_step(&self, step: &'static str, took: Duration) {
        if let Some(r) = &self.0 {
            r.saga_steps.get(&step).observe(took);
        }
    }

    /// One call to the payment provider, and how it ended (`ok`,
    /// `rejected`, `unknown`: no answer).
    pub fn provider_call(&self, call: &'static str, result: &'static str, took: Duration) {
        if let Some(r) = &self.0 {
            r.provider.get(&(call, result)).observe(took);
        }
    }

    /// One pricing attempt for an event: `ran` (with its time),
    /// `already_ran`, `skipped` or `failed`.
    pub fn pricing_run(&self, outcome: &'static str, took: Option<Duration>) {
        if let Some(r) = &self.0 {
            r.pricing_runs.get(&outcome).fetch_add(1, Ordering::Relaxed);
            if let Some(d) = took {
                r.pricing_seconds.observe(d);
            }
        }
    }

    /// One read of an event's claims (a seat reading), start to end.
    pub fn seat_reading(&self, took: Duration) {
        if let Some(r) = &self.0 {
            r.reading_seconds.observe(took);
        }
    }

    /// The age of the reading a caller was handed (availability, best
    /// available's view, the seat feed).
    pub fn seat_reading_age(&self, age: Duration) {
        if let Some(r) = &self.0 {
            r.reading_age.observe(age);
        }
    }

    /// A connection from `pool`, its wait timed (the pool's queue: sqlx
    /// does not count its waiters, so the waits are measured here, on the
    /// hold and checkout paths).
    pub async fn acquire(&self, pool: &PgPool) -> Result<PoolConnection<Postgres>, sqlx::Error> {
        self.timed(pool.acquire()).await
    }

    /// A transaction on `pool`, timed as `acquire` (its time includes
    /// BEGIN's round trip, small beside a wait for a connection).
    pub async fn begin(&self, pool: &PgPool) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        self.timed(pool.begin()).await
    }

    async fn timed<T>(&self, wait: impl Future<Output = T>) -> T {
        let Some(r) = &self.0 else {
            return wait.await;
        };
        let _waiting = Waiting::new(&r.acquiring);
        let started = Instant::now();
        let got = wait.await;
        r.acquire.observe(started.elapsed());
        got
    }

    /// The exposition: what was counted, then what is read now.
    pub async fn render(&self, sources: &scrape::Sources) -> String {
        let mut out = Text::default();
        if let Some(r) = &self.0 {
            r.render(&mut out);
        }
        scrape::render(sources, &mut out).await;
        out.finish()
    }
}

/// Counts a caller waiting for a connection, until dropped (also when the
/// wait is abandoned, e.g. the request timed out).
struct Waiting<'a>(&'a AtomicI64);

impl<'a> Waiting<'a> {
    fn new(gauge: &'a AtomicI64) -> Self {
        gauge.fetch_add(1, Ordering::Relaxed);
        Waiting(gauge)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Registry {
    fn render(&self, out: &mut Text) {
        self.requests.render(out);
        out.family(
            "usher_core_holds_placed_total",
            "counter",
            "New holds placed (replayed answers not counted).",
        );
        out.sample(
            "usher_core_holds_placed_total",
            &[],
            self.holds_placed.load(Ordering::Relaxed),
        );
        counters(
            out,
            "usher_core_holds_refused_total",
            "Holds refused, by the problem code the fan was given.",
            "code",
            &self.holds_refused,
        );
        counters(
            out,
            "usher_core_orders_total",
            "Purchases answered (POST /v1/orders, replays not counted), by the order's state or the problem code.",
            "outcome",
            &self.orders,
        );
        out.family(
            "usher_core_saga_step_seconds",
            "histogram",
            "Steps of the purchase saga (charge, settle, refund), including the provider's time.",
        );
        for (step, h) in self.saga_steps.all() {
            out.histogram("usher_core_saga_step_seconds", &[("step", step)], &h.snapshot());
        }
        out.family(
            "usher_core_provider_seconds",
            "histogram",
            "Calls to the payment provider, by call and result (ok, rejected, unknown: no answer).",
        );
        for ((call, result), h) in self.provider.all() {
            out.histogram(
                "usher_core_provider_seconds",
                &[("call", call), ("result", result)],
                &h.snapshot(),
            );
        }
        out.family(
            "usher_core_db_acquire_seconds",
            "histogram",
            "Waits for a pooled connection on the hold and checkout paths.",
        );
        out.histogram("usher_core_db_acquire_seconds", &[], &self.acquire.snapshot());
        out.family(
            "usher_core_db_acquire_waiting",
            "gauge",
            "Callers on the hold and checkout paths waiting for a pooled connection now.",
        );
        out.sample(
            "usher_core_db_acquire_waiting",
            &[],
            self.acquiring.load(Ordering::Relaxed),
        );
        counters(
            out,
            "usher_core_pricing_runs_total",
            "Price recalculation attempts, by outcome (ran, already_ran, skipped, failed).",
            "outcome",
            &self.pricing_runs,
        );
        out.family(
            "usher_core_pricing_run_seconds",
            "histogram",
            "Time of the recalculations that ran.",
        );
        out.histogram("usher_core_pricing_run_seconds", &[], &self.pricing_seconds.snapshot());
        out.family(
            "usher_core_seat_reading_seconds",
            "histogram",
            "Reads of an event's live claims (the readings shared by availability, best available and the seat feed).",
        );
        out.histogram("usher_core_seat_reading_seconds", &[], &self.reading_seconds.snapshot());
        out.family(
            "usher_core_seat_reading_age_seconds",
            "histogram",
            "Age of the reading handed to each caller.",
        );
        out.histogram("usher_core_seat_reading_age_seconds", &[], &self.reading_age.snapshot());
    }
}

fn counters(out: &mut Text, name: &str, help: &str, label: &str, family: &Family<&'static str, Counter>) {
    out.family(name, "counter", help);
    for (value, n) in family.all() {
        out.sample(name, &[(label, value)], n.load(Ordering::Relaxed));
    }
}
