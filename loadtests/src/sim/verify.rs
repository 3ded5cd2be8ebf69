//! The invariants, checked after the run from the records themselves (the
//! database and the payment sandbox's books) and from what fans were told,
//! never from the services' own summaries:
//! no seat with two tickets; every captured payment has its tickets or its
//! refund; nobody charged twice; every seat sold when demand exceeded
//! supply; fans admitted in queue order; the core's new sessions within the
//! admission rate; no 5xx.

use std::collections::HashMap;

use sqlx::PgPool;

use crate::sim::books::read_books;
use crate::sim::record::{FanRecord, Outcome, Recorder, Req};
use crate::sim::scenario::Scenario;

/// How long a free seat may go unnoticed by fans who want one: they look
/// at the map every few seconds while everything is held.
const PHANTOM_SLACK_MS: u32 = 15_000;

#[derive(Debug, Default, Clone)]
pub struct Findings {
    /// Seats left free for longer than the slack while fans still tried.
    pub phantom: i64,
    pub seats: i64,
    pub sold: i64,
    pub held_at_end: i64,
    pub oversold: i64,
    pub charged_without_ticket: Vec<String>,
    pub charged_twice: Vec<String>,
    pub captured: usize,
    pub refunded: usize,
    pub unsettled_orders: i64,
    pub inversions: u64,
    /// Admitted fans whose answers carried the room's ticks.
    pub ordered_fans: usize,
    /// Most new sessions the core saw in any window, and what the
    /// admission rate allows in one (with the margin).
    pub peak_new_sessions: u64,
    pub allowed_new_sessions: f64,
    pub window_secs: u32,
    pub server_errors: u64,
    /// Orders a fan was told were confirmed that are not, with all their
    /// tickets, after the run.
    pub confirmed_lost: Vec<String>,
    /// Fans' requests that failed (5xx, or no answer) inside a fault's
    /// window, and in the whole run; and all requests.
    pub failed_in_faults: u64,
    pub failed: u64,
    pub requests: u64,
    pub violations: Vec<String>,
}

/// The share of fans' requests that may fail across a chaos run: a goal
/// the chaos report says is met or missed, not an invariant (a failed
/// request is retried; nothing is lost by it).
pub const CHAOS_MAX_FAILED_SHARE: f64 = 0.01;

/// Waits (up to `secs`) for orders to leave the intermediate states: the
/// sandbox's late webhooks and the reconciliation job finish them.
pub async fn settle(pool: &PgPool, event: i64, secs: u64) -> anyhow::Result<i64> {
    let mut left = 0;
    for _ in 0..secs * 2 {
        left = sqlx::query_scalar(
            "SELECT count(*) FROM orders WHERE event_id = $1 AND state IN ('pending_payment', 'paid', 'refunding')",
        )
        .bind(event)
        .fetch_one(pool)
        .await?;
        if left == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    Ok(left)
}

/// What the fans saw during a run, as the simulator recorded it.
pub struct Observed<'a> {
    pub fans: &'a [FanRecord],
    pub requests: &'a [Req],
    /// The herd went straight to the core (the comparison run).
    pub passthrough: bool,
    pub clock: &'a Recorder,
    /// When the on-sale opened, on the run's clock.
    pub on_sale_ms: u32,
    /// When faults were injected (`chaos`), on the run's clock: from the
    /// fault to its recovery. A 5xx inside one is counted, not a violation.
    pub fault_windows: &'a [(u32, u32)],
    /// The run began then (unix seconds): the processor's books may hold
    /// earlier runs' charges (a cluster's sandbox lives on), left out.
    pub began_unix: i64,
}

pub async fn check(
    scenario: &Scenario,
    pool: &PgPool,
    sandbox: (&str, &str),
    event: i64,
    seen: &Observed<'_>,
) -> anyhow::Result<Findings> {
    let Observed {
        fans,
        requests,
        passthrough,
        clock,
        on_sale_ms,
        fault_windows,
        began_unix,
    } = *seen;
    let mut f = Findings {
        unsettled_orders: settle(pool, event, 60).await?,
        ..Findings::default()
    };
    f.seats =
        sqlx::query_scalar("SELECT count(*) FROM seats s JOIN events e ON e.venue_id = s.venue_id WHERE e.id = $1")
            .bind(event)
            .fetch_one(pool)
            .await?;
    f.sold = seats_sold(pool, event).await?;
    f.oversold = seats_sold_twice(pool, event).await?;
    f.held_at_end = sqlx::query_scalar(
        "SELECT count(*) FROM seat_claims WHERE event_id = $1 AND kind = 'hold' AND during @> now()",
    )
    .bind(event)
    .fetch_one(pool)
    .await?;

    let books = read_books(pool, sandbox, event, began_unix).await?;
    f.captured = books.captured;
    f.refunded = books.refunded;
    f.charged_without_ticket = books.charged_without_ticket;
    f.charged_twice = books.orders_charged_twice;
    // Each simulated fan sets out to buy once.
    f.charged_twice.extend(books.fans_charged_twice);

    // Seats neither sold nor held now, and since when (in the run's clock):
    // the end of their last claim, or the on-sale if never claimed.
    let free_for: Vec<Option<f64>> = sqlx::query_scalar(
        "SELECT extract(epoch FROM now() - max(upper(c.during)))::float8
         FROM seats s JOIN events e ON e.venue_id = s.venue_id AND e.id = $1
         LEFT JOIN seat_claims c ON c.event_id = e.id AND c.seat_id = s.id
         GROUP BY s.id
         HAVING NOT coalesce(bool_or(c.during @> now() OR upper_inf(c.during)), false)",
    )
    .bind(event)
    .fetch_all(pool)
    .await?;
    let now_ms = clock.now_ms();
    // The last moment a fan who still wanted seats was trying.
    let last_wanting = fans
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::GaveUp | Outcome::NotAdmitted | Outcome::SoldOut))
        .map(|r| r.ended_ms)
        .max();
    f.phantom = free_for
        .iter()
        .filter(|secs| {
            let free_since = match secs {
                Some(s) => now_ms.saturating_sub((s * 1000.0) as u32),
                None => on_sale_ms,
            };
            last_wanting.is_some_and(|end| end > free_since + PHANTOM_SLACK_MS)
        })
        .count() as i64;
    f.inversions = inversions(fans);
    f.ordered_fans = fans
        .iter()
        .filter(|r| r.ticket.is_some() && r.admitted_tick.is_some())
        .count();
    let (peak, allowed, window) = admission_window(scenario, fans);
    f.peak_new_sessions = peak;
    f.allowed_new_sessions = allowed;
    f.window_secs = window;
    let in_fault = |at: u32| fault_windows.iter().any(|&(from, to)| (from..=to).contains(&at));
    let failed = |r: &&Req| r.status >= 500 || r.status == 0;
    f.requests = requests.len() as u64;
    f.failed = requests.iter().filter(failed).count() as u64;
    f.failed_in_faults = requests.iter().filter(failed).filter(|r| in_fault(r.at_ms)).count() as u64;
    f.server_errors = requests
        .iter()
        .filter(|r| r.status >= 500 && !in_fault(r.at_ms))
        .count() as u64;
    f.confirmed_lost = confirmed_lost(pool, fans).await?;

    let v = &mut f.violations;
    if f.oversold > 0 {
        v.push(format!("{} seats have two valid tickets", f.oversold));
    }
    if !f.charged_without_ticket.is_empty() {
        v.push(format!(
            "{} charges without tickets or refund",
            f.charged_without_ticket.len()
        ));
    }
    if !f.charged_twice.is_empty() {
        v.push(format!("{} double charges", f.charged_twice.len()));
    }
    if !f.confirmed_lost.is_empty() {
        v.push(format!(
            "{} orders fans were told are confirmed are not (first: {})",
            f.confirmed_lost.len(),
            f.confirmed_lost[0]
        ));
    }
    if f.unsettled_orders > 0 {
        v.push(format!(
            "{} orders still unsettled a minute after the run",
            f.unsettled_orders
        ));
    }
    // Under chaos a seat can lie free through an outage (the database
    // failing over): counted and reported, not a broken promise.
    if f.phantom > 0 && !passthrough && fault_windows.is_empty() {
        v.push(format!(
            "{} seats lay free for over {} s while fans who wanted seats were still trying (phantom inventory)",
            f.phantom,
            PHANTOM_SLACK_MS / 1000
        ));
    }
    if !passthrough {
        if f.inversions > 0 {
            v.push(format!(
                "{} fans admitted while a fan ahead of them was still told to wait",
                f.inversions
            ));
        }
        if f.peak_new_sessions as f64 > f.allowed_new_sessions {
            v.push(format!(
                "the core saw {} new sessions in {} s; the admission rate allows {:.0}",
                f.peak_new_sessions, f.window_secs, f.allowed_new_sessions
            ));
        }
        // Under chaos a 503 with Retry-After is the service saying "not
        // now" while a node is lost or comes back: counted and reported
        // (the chaos report's failed share), not a broken promise.
        if f.server_errors > 0 && fault_windows.is_empty() {
            // When they came (from the on-sale) tells a stall from a steady leak.
            let when: Vec<String> = requests
                .iter()
                .filter(|r| r.status >= 500 && !in_fault(r.at_ms))
                .take(12)
                .map(|r| {
                    let secs = (f64::from(r.at_ms) - f64::from(on_sale_ms)) / 1000.0;
                    format!("{} {} at {secs:.0} s", r.kind.name(), r.status)
                })
                .collect();
            v.push(format!(
                "{} answers were 5xx (first: {})",
                f.server_errors,
                when.join(", ")
            ));
        }
    }
    Ok(f)
}

/// Seats with a valid ticket.
pub async fn seats_sold(pool: &PgPool, event: i64) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(DISTINCT seat_id) FROM tickets WHERE event_id = $1 AND state = 'valid'")
        .bind(event)
        .fetch_one(pool)
        .await
}

/// Seats with more than one valid ticket: a seat sold twice.
pub async fn seats_sold_twice(pool: &PgPool, event: i64) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT seat_id FROM tickets WHERE event_id = $1 AND state = 'valid'
                                GROUP BY seat_id HAVING count(*) > 1) d",
    )
    .bind(event)
    .fetch_one(pool)
    .await
}

/// Valid tickets of the event (the sales so far, as samples count them).
pub async fn valid_tickets(pool: &PgPool, event: i64) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM tickets WHERE event_id = $1 AND state = 'valid'")
        .bind(event)
        .fetch_one(pool)
        .await
}

/// Each order a fan was told is confirmed, read back: confirmed, with a
/// valid ticket for each of its seats.
async fn confirmed_lost(pool: &PgPool, fans: &[FanRecord]) -> anyhow::Result<Vec<String>> {
    let told: Vec<uuid::Uuid> = fans
        .iter()
        .filter_map(|f| f.confirmed_order.as_deref())
        .filter_map(|id| uuid::Uuid::parse_str(id).ok())
        .collect();
    let found: Vec<(uuid::Uuid, String, i32, i64)> = sqlx::query_as(
        "SELECT o.id, o.state, cardinality(o.seat_ids),
                (SELECT count(*) FROM tickets t WHERE t.order_id = o.id AND t.state = 'valid')
         FROM orders o WHERE o.id = ANY($1)",
    )
    .bind(&told)
    .fetch_all(pool)
    .await?;
    let found: HashMap<uuid::Uuid, (String, i32, i64)> = found
        .into_iter()
        .map(|(id, state, seats, tickets)| (id, (state, seats, tickets)))
        .collect();
    let mut lost = Vec::new();
    for id in told {
        match found.get(&id) {
            None => lost.push(format!("order {id}: gone")),
            // A confirmed order refunded afterwards by the operator would be
            // `refunded`; nothing in a run refunds, so anything else is lost.
            Some((state, seats, tickets)) if state != "confirmed" || *tickets != i64::from(*seats) => {
                lost.push(format!("order {id}: {state}, {tickets} of {seats} tickets"))
            }
            Some(_) => {}
        }
    }
    Ok(lost)
}

/// Fans told they were in while a fan with an earlier place was, at a
/// later tick of the room, still told to wait. Compared by the room's tick
/// that each answer carries, so network and client lag cannot fake one.
pub fn inversions(fans: &[FanRecord]) -> u64 {
    let mut placed: Vec<(u64, Option<u64>, Option<u64>)> = fans
        .iter()
        .filter_map(|r| Some((r.ticket?, r.admitted_tick, r.last_waiting_tick)))
        .collect();
    placed.sort_unstable_by_key(|p| p.0);
    let mut latest_wait_ahead: Option<u64> = None;
    let mut count = 0;
    for (_, admitted, last_wait) in placed {
        if let (Some(a), Some(w)) = (admitted, latest_wait_ahead)
            && w > a
        {
            count += 1;
        }
        if let Some(w) = last_wait {
            latest_wait_ahead = Some(latest_wait_ahead.map_or(w, |l| l.max(w)));
        }
    }
    count
}

/// The most fans whose first protected request reached the core within
/// any window, against what the admission rate lets through in one. The
/// window is a minute: the edge admits at an even rate, but fans learn of
/// it when they next hear from the room (a polling page asks every few
/// seconds), so their first requests bunch over shorter spans.
fn admission_window(s: &Scenario, fans: &[FanRecord]) -> (u64, f64, u32) {
    const WINDOW_MS: u32 = 60_000;
    let mut firsts: Vec<u32> = fans.iter().filter_map(|r| r.first_core_ms).collect();
    firsts.sort_unstable();
    let mut peak = 0;
    let mut lo = 0;
    for hi in 0..firsts.len() {
        while firsts[hi] - firsts[lo] >= WINDOW_MS {
            lo += 1;
        }
        peak = peak.max(hi + 1 - lo);
    }
    let per_window = f64::from(s.admission.admit_per_minute) / 60.0 * f64::from(WINDOW_MS / 1000);
    // One tick's worth on top (a window can straddle two ticks' batches).
    let allowed = per_window * (1.0 + s.admission.rate_margin) + f64::from(s.admission.admit_per_minute) / 300.0 + 1.0;
    (peak as u64, allowed, WINDOW_MS / 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fan(ticket: u64, admitted: Option<u64>, last_wait: Option<u64>) -> FanRecord {
        let mut r = FanRecord::new(ticket as u32);
        r.ticket = Some(ticket);
        r.admitted_tick = admitted;
        r.last_waiting_tick = last_wait;
        r
    }

    #[test]
    fn in_order_admission_has_no_inversions() {
        let fans = [
            fan(1, Some(1000), Some(900)),
            fan(2, Some(1200), Some(1100)),
            fan(3, Some(1100), Some(950)), // observed early, but never told to wait late
        ];
        assert_eq!(inversions(&fans), 0);
    }

    #[test]
    fn a_fan_told_to_wait_after_one_behind_got_in_is_an_inversion() {
        let fans = [fan(1, Some(5000), Some(4000)), fan(2, Some(3000), Some(2000))];
        assert_eq!(inversions(&fans), 1);
    }
}
