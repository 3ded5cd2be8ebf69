//! The recalculation job. Every instance may run it: each second it finds
//! the events whose pricing is on, not frozen and on sale, and whose current
//! interval has no run yet; for each it claims the interval (a row of
//! `pricing_runs`, see migrations/0009_pricing.sql), reads the signals,
//! asks the rule, and writes the new prices and their history, all in one
//! transaction. Two instances racing for one interval: the second one's
//! claim waits for the first and then finds it taken.
//!
//! `now` is always passed in, so tests drive the job with their own clock.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use sqlx::PgPool;

use crate::ids::{Cents, EventId};
use crate::metrics::Metrics;
use crate::pricing::rule::{Bounds, PricingRule, Signals};
use crate::pricing::signals::{self, QueueSource};

/// One tier's price moved.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub event_id: EventId,
    pub tier: i16,
    pub old_cents: Cents,
    pub new_cents: Cents,
    pub inputs: serde_json::Value,
    pub rule_version: &'static str,
}

/// What one attempt at an event's interval did.
#[derive(Debug, Clone)]
pub enum RunOutcome {
    /// This instance recalculated the interval (possibly changing nothing).
    Ran {
        interval_start: DateTime<Utc>,
        changes: Vec<Change>,
    },
    /// Another run (this instance's or another's) had the interval already.
    AlreadyRan,
    /// Pricing is off or frozen, or the event is not on sale.
    Skipped,
}

#[derive(Clone)]
pub struct Runner {
    pool: PgPool,
    rule: Arc<dyn PricingRule>,
    queue: Arc<dyn QueueSource>,
    default_interval_secs: u32,
    metrics: Metrics,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("rule", &self.rule.version())
            .field("default_interval_secs", &self.default_interval_secs)
            .finish_non_exhaustive()
    }
}

/// Settings read under the run's lock.
struct Due {
    interval_secs: i32,
    interval_start: DateTime<Utc>,
    starts_at: DateTime<Utc>,
}

impl Runner {
    pub fn new(
        pool: PgPool,
        rule: Arc<dyn PricingRule>,
        queue: Arc<dyn QueueSource>,
        default_interval_secs: u32,
    ) -> Runner {
        Runner {
            pool,
            rule,
            queue,
            default_interval_secs,
            metrics: Metrics::default(),
        }
    }

    /// Counts this runner's attempts (and times its runs) in `metrics`.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Every event due a recalculation at `now`, each attempted once.
    pub async fn run_once(&self, now: DateTime<Utc>) -> Result<Vec<(EventId, RunOutcome)>, sqlx::Error> {
        let due = sqlx::query_scalar!(
            r#"SELECT p.event_id
               FROM event_pricing p JOIN events e ON e.id = p.event_id
               WHERE p.enabled AND NOT p.frozen AND NOT e.cancelled
                 AND e.on_sale_at <= $1 AND e.starts_at > $1
                 AND NOT EXISTS (
                     SELECT 1 FROM pricing_runs r
                     WHERE r.event_id = p.event_id
                       AND r.interval_start = pricing_interval_start(
                           $1, coalesce(p.interval_secs, $2)))
               ORDER BY p.event_id"#,
            now,
            self.default_interval_secs as i32,
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(due.len());
        for id in due {
            let event = EventId(id);
            let started = std::time::Instant::now();
            match self.run_event(event, now).await {
                Ok(outcome) => {
                    match &outcome {
                        RunOutcome::Ran { .. } => self.metrics.pricing_run("ran", Some(started.elapsed())),
                        RunOutcome::AlreadyRan => self.metrics.pricing_run("already_ran", None),
                        RunOutcome::Skipped => self.metrics.pricing_run("skipped", None),
                    }
                    out.push((event, outcome))
                }
                Err(e) => {
                    self.metrics.pricing_run("failed", None);
                    tracing::warn!(event_id = id, error = %e, "price recalculation failed; next interval retries")
                }
            }
        }
        Ok(out)
    }

    /// Recalculates one event's prices for the interval holding `now`,
    /// unless that interval has been recalculated already.
    #[tracing::instrument(skip(self), fields(event_id = event.0))]
    pub async fn run_event(&self, event: EventId, now: DateTime<Utc>) -> Result<RunOutcome, sqlx::Error> {
        // The network call stays outside the transaction.
        let queue = self.queue.queue_length(event).await;
        let mut tx = self.pool.begin().await?;
        // FOR SHARE: an operator's freeze waits for this run, or this run
        // sees the freeze; never a run that read "on" writing after "off".
        let due = sqlx::query_as!(
            Due,
            r#"SELECT coalesce(p.interval_secs, $2) AS "interval_secs!",
                      pricing_interval_start($3, coalesce(p.interval_secs, $2)) AS "interval_start!",
                      e.starts_at
               FROM event_pricing p JOIN events e ON e.id = p.event_id
               WHERE p.event_id = $1 AND p.enabled AND NOT p.frozen AND NOT e.cancelled
                 AND e.on_sale_at <= $3 AND e.starts_at > $3
               FOR SHARE OF p"#,
            event.0,
            self.default_interval_secs as i32,
            now,
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some(due) = due else {
            return Ok(RunOutcome::Skipped);
        };
        let version = self.rule.version();
        let claimed = sqlx::query_scalar!(
            "INSERT INTO pricing_runs (event_id, interval_start, rule_version, ran_at)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT DO NOTHING
             RETURNING 1",
            event.0,
            due.interval_start,
            version,
            now,
        )
        .fetch_optional(&mut *tx)
        .await?;
        if claimed.is_none() {
            return Ok(RunOutcome::AlreadyRan);
        }

        // The tiers with bounds, locked: an operator's edit of a price
        // waits rather than being overwritten by a price computed before it.
        let tiers = sqlx::query!(
            r#"SELECT t.tier, t.price_cents, b.floor_cents, b.ceiling_cents, b.max_step_cents
               FROM event_tiers t JOIN tier_price_bounds b ON b.event_id = t.event_id AND b.tier = t.tier
               WHERE t.event_id = $1
               ORDER BY t.tier
               FOR UPDATE OF t"#,
            event.0,
        )
        .fetch_all(&mut *tx)
        .await?;
        let since = now - chrono::Duration::seconds(i64::from(due.interval_secs));
        let counts = signals::tier_counts(&mut tx, event, since, now).await?;
        let event_remaining: u32 = counts.values().map(|c| c.remaining).sum();
        let secs_to_event = (due.starts_at - now).num_seconds();

        let mut changes = Vec::new();
        for t in tiers {
            let c = counts.get(&t.tier).copied().unwrap_or_default();
            let signals = Signals {
                interval_secs: u32::try_from(due.interval_secs).unwrap_or(30),
                capacity: c.capacity,
                remaining: c.remaining,
                held: c.held,
                sold: c.sold,
                event_remaining,
                queue_length: queue.length,
                secs_to_event,
            };
            let bounds = Bounds {
                floor: Cents(t.floor_cents),
                ceiling: Cents(t.ceiling_cents),
                max_step: Cents(t.max_step_cents),
            };
            let current = Cents(t.price_cents);
            // Bounded again here, whatever the rule does.
            let next = bounds.apply(current, self.rule.price(current, &signals, &bounds));
            if next == current {
                continue;
            }
            let inputs = json!({
                "signals": signals,
                "queue_source": queue.source,
                "bounds": bounds,
                "interval_start": due.interval_start,
            });
            sqlx::query!(
                "UPDATE event_tiers SET price_cents = $3 WHERE event_id = $1 AND tier = $2",
                event.0,
                t.tier,
                next.0,
            )
            .execute(&mut *tx)
            .await?;
            sqlx::query!(
                "INSERT INTO price_changes (event_id, tier, old_cents, new_cents, inputs, rule_version, interval_start, changed_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                event.0,
                t.tier,
                current.0,
                next.0,
                inputs,
                version,
                due.interval_start,
                now,
            )
            .execute(&mut *tx)
            .await?;
            changes.push(Change {
                event_id: event,
                tier: t.tier,
                old_cents: current,
                new_cents: next,
                inputs,
                rule_version: version,
            });
        }
        if !changes.is_empty() {
            sqlx::query!(
                "UPDATE pricing_runs SET changes = $3 WHERE event_id = $1 AND interval_start = $2",
                event.0,
                due.interval_start,
                changes.len() as i32,
            )
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        for c in &changes {
            tracing::info!(
                tier = c.tier,
                old = c.old_cents.0,
                new = c.new_cents.0,
                rule = version,
                "price changed"
            );
        }
        Ok(RunOutcome::Ran {
            interval_start: due.interval_start,
            changes,
        })
    }
}

/// The job: every `tick`, recalculates what is due by the wall clock.
pub async fn run(runner: Runner, tick: Duration) {
    let mut ticks = tokio::time::interval(tick);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Err(e) = runner.run_once(Utc::now()).await {
            tracing::warn!(error = %e, "pricing pass failed; retrying next tick");
        }
    }
}
