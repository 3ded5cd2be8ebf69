//! The hold benchmark. After an unreported warm-up, five phases, one run,
//! one database:
//!
//! 1. the hold API at a fixed rate, seats uniformly random over the
//!    50,000-seat stadium;
//! 2. the same rate with a hot spot: most attempts want the best 500 seats;
//! 3. the hold API flat out (closed loop), uniformly random seats;
//! 4. baseline: the bare claim statement, closed loop, through a pool the
//!    size of booking-core's, committing durably;
//! 5. the same with asynchronous commit, as holds commit by default.
//!
//! Each phase gets its own copy of the stadium event so no phase inherits
//! another's sold-out seats. Latency is measured from when a request was
//! due, not when it was sent, so a slow server cannot hide queueing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::Rng;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::report::Figures;
use crate::stack::Stack;
use crate::{StackArgs, baseline, fans};

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub stack: StackArgs,
    /// Concurrent HTTP clients (and baseline tasks).
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Hold attempts per second in the fixed-rate phases.
    #[arg(long, default_value_t = 1000)]
    pub rate: u64,
    /// Seconds per phase.
    #[arg(long, default_value_t = 15)]
    pub secs: u64,
    /// Seats per hold: 1 to this many, at random.
    #[arg(long, default_value_t = 2)]
    pub max_seats: usize,
    /// Size of the hot spot: the seats nearest the stage.
    #[arg(long, default_value_t = 500)]
    pub hot_seats: usize,
    /// Share of hot-spot attempts that want a hot seat.
    #[arg(long, default_value_t = 0.9)]
    pub hot_share: f64,
    /// Distinct signed-in fans the attempts rotate through (each fan may
    /// hold 8 seats per event).
    #[arg(long, default_value_t = 8000)]
    pub fans: usize,
}

pub struct Venue {
    pub seats: Vec<i64>,
    pub hot: Vec<i64>,
}

/// The stadium's seats, and the hot spot (nearest the focal point), read
/// from the public seat map like a client would.
pub async fn stadium(http: &reqwest::Client, base: &str, hot: usize) -> anyhow::Result<(i64, Venue)> {
    let page: Value = http
        .get(format!("{base}/v1/events?q=aurora"))
        .send()
        .await?
        .json()
        .await?;
    let event = &page["items"][0];
    let event_id = event["id"].as_i64().context("the seeded stadium event is missing")?;
    let venue_id = event["venue"]["id"].as_i64().context("venue")?;
    let map: Value = http
        .get(format!("{base}/v1/venues/{venue_id}/seatmap"))
        .send()
        .await?
        .json()
        .await?;
    let (fx, fy) = (
        map["focal"]["x"].as_f64().unwrap_or(0.0),
        map["focal"]["y"].as_f64().unwrap_or(0.0),
    );
    let mut seats = Vec::new();
    let mut ranked = Vec::new();
    for section in map["sections"].as_array().context("sections")? {
        for row in section["rows"].as_array().context("rows")? {
            for seat in row["seats"].as_array().context("seats")? {
                let id = seat[0].as_i64().context("seat id")?;
                let (x, y) = (seat[2].as_f64().unwrap_or(0.0), seat[3].as_f64().unwrap_or(0.0));
                seats.push(id);
                ranked.push(((x - fx).hypot(y - fy), id));
            }
        }
    }
    ranked.sort_by(|a, b| a.0.total_cmp(&b.0));
    let hot = ranked.iter().take(hot).map(|r| r.1).collect();
    Ok((event_id, Venue { seats, hot }))
}

/// A fresh on-sale copy of the stadium event for one phase (set-up in the
/// scratch database, not part of any measurement). The copy is unprotected:
/// this benchmark measures booking-core alone, without the edge in front.
pub async fn copy_event(stack: &Stack, source: i64, name: &str) -> anyhow::Result<i64> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO events (slug, venue_id, title, artist, category, description, starts_at, on_sale_at,
                             hold_ttl_secs, hold_jitter_secs, max_seats_per_fan, protected)
         SELECT slug || '-' || $2, venue_id, title, artist, category, description, starts_at, on_sale_at,
                hold_ttl_secs, hold_jitter_secs, max_seats_per_fan, false
         FROM events WHERE id = $1 RETURNING id",
    )
    .bind(source)
    .bind(name)
    .fetch_one(&stack.pool)
    .await?;
    sqlx::query("INSERT INTO event_tiers (event_id, tier, name, price_cents) SELECT $2, tier, name, price_cents FROM event_tiers WHERE event_id = $1")
        .bind(source)
        .bind(id)
        .execute(&stack.pool)
        .await?;
    Ok(id)
}

#[derive(Clone, Copy)]
pub(crate) enum Pick {
    Uniform,
    HotSpot,
}

pub(crate) struct Phase {
    pub event: i64,
    pub pick: Pick,
    /// None: flat out.
    pub rate: Option<u64>,
}

/// One hold attempt; returns its status (None if the request failed).
async fn attempt(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    seats: Vec<i64>,
    errors_shown: &AtomicUsize,
) -> Option<StatusCode> {
    let sent = http
        .post(url)
        .bearer_auth(token)
        .header("idempotency-key", uuid::Uuid::new_v4().to_string())
        .json(&json!({"seat_ids": seats}))
        .send()
        .await;
    match sent {
        Ok(r) => {
            let s = r.status();
            let body = r.bytes().await.unwrap_or_default();
            if s != StatusCode::CREATED && s != StatusCode::CONFLICT && errors_shown.fetch_add(1, Ordering::Relaxed) < 5
            {
                eprintln!("unexpected {s}: {}", String::from_utf8_lossy(&body));
            }
            Some(s)
        }
        Err(e) => {
            if errors_shown.fetch_add(1, Ordering::Relaxed) < 5 {
                eprintln!("request failed: {e}");
            }
            None
        }
    }
}

fn pick_seats(venue: &Venue, pick: Pick, max_seats: usize, hot_share: f64) -> Vec<i64> {
    let mut rng = rand::thread_rng();
    let n = rng.gen_range(1..=max_seats);
    let pool = match pick {
        Pick::HotSpot if rng.gen_bool(hot_share) => &venue.hot,
        _ => &venue.seats,
    };
    let mut s: Vec<i64> = (0..n).map(|_| pool[rng.gen_range(0..pool.len())]).collect();
    s.sort_unstable();
    s.dedup();
    s
}

fn record(figures: &mut Figures, status: Option<StatusCode>, took: Duration) {
    match status {
        Some(StatusCode::CREATED) => figures.ok(took),
        Some(StatusCode::CONFLICT) => figures.conflict(took),
        _ => figures.error(took),
    }
}

/// One phase of hold attempts against `base` (the figures of its
/// attempts), as `args` says: clients, seconds, seats per hold.
pub(crate) async fn drive(
    args: &Args,
    base: &str,
    venue: Arc<Venue>,
    tokens: Arc<Vec<String>>,
    phase: Phase,
) -> anyhow::Result<Figures> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients)
        .build()?;
    let url = Arc::new(format!("{base}/v1/events/{}/holds", phase.event));
    let errors_shown = Arc::new(AtomicUsize::new(0));
    let next_fan = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let end = start + Duration::from_secs(args.secs);
    let (max_seats, hot_share, pick) = (args.max_seats, args.hot_share, phase.pick);
    let mut total = Figures::new();
    match phase.rate {
        // Open loop: every request starts when it is due, on its own task,
        // however slow the ones before it are; at most `clients` in flight
        // (then the wait counts in the latency, as it would for a fan).
        Some(rate) => {
            let permits = Arc::new(tokio::sync::Semaphore::new(args.clients));
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let mut k: u64 = 0;
            loop {
                let due = start + Duration::from_secs_f64(k as f64 / rate as f64);
                if due >= end {
                    break;
                }
                tokio::time::sleep_until(due.into()).await;
                k += 1;
                let permit = permits.clone().acquire_owned().await?;
                let (http, url, venue, tokens, tx, errors_shown) = (
                    http.clone(),
                    url.clone(),
                    venue.clone(),
                    tokens.clone(),
                    tx.clone(),
                    errors_shown.clone(),
                );
                let token = next_fan.fetch_add(1, Ordering::Relaxed) % tokens.len();
                tokio::spawn(async move {
                    let seats = pick_seats(&venue, pick, max_seats, hot_share);
                    let status = attempt(&http, &url, &tokens[token], seats, &errors_shown).await;
                    let _ = tx.send((status, due.elapsed(), due));
                    drop(permit);
                });
            }
            drop(tx);
            // Per-second worst latency, for finding stalls (USHER_LOAD_TRACE=1).
            let trace = std::env::var_os("USHER_LOAD_TRACE").is_some();
            let mut worst = vec![Duration::ZERO; args.secs as usize + 2];
            while let Some((status, took, due)) = rx.recv().await {
                record(&mut total, status, took);
                let second = ((due - start).as_secs() as usize).min(worst.len() - 1);
                worst[second] = worst[second].max(took);
            }
            if trace {
                let ms: Vec<String> = worst.iter().map(|d| d.as_millis().to_string()).collect();
                eprintln!("worst latency per second (ms): {}", ms.join(" "));
            }
        }
        // Closed loop: each client sends its next request when the last is answered.
        None => {
            let stop = Arc::new(AtomicBool::new(false));
            let mut handles = Vec::new();
            for _ in 0..args.clients {
                let (http, url, venue, tokens, stop, next_fan, errors_shown) = (
                    http.clone(),
                    url.clone(),
                    venue.clone(),
                    tokens.clone(),
                    stop.clone(),
                    next_fan.clone(),
                    errors_shown.clone(),
                );
                handles.push(tokio::spawn(async move {
                    let mut figures = Figures::new();
                    while !stop.load(Ordering::Relaxed) {
                        let t = Instant::now();
                        let seats = pick_seats(&venue, pick, max_seats, hot_share);
                        let token = &tokens[next_fan.fetch_add(1, Ordering::Relaxed) % tokens.len()];
                        let status = attempt(&http, &url, token, seats, &errors_shown).await;
                        record(&mut figures, status, t.elapsed());
                    }
                    figures
                }));
            }
            tokio::time::sleep_until(end.into()).await;
            stop.store(true, Ordering::Relaxed);
            for h in handles {
                total.merge(&h.await?);
            }
        }
    }
    total.elapsed = start.elapsed();
    Ok(total)
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let stack = Stack::start(&args.stack).await?;
    let result = phases(&args, &stack).await;
    let logs = stack.log_path().display().to_string();
    stack.stop().await?;
    result.with_context(|| format!("benchmark failed (booking-core logs were in {logs})"))
}

async fn phases(args: &Args, stack: &Stack) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let (source, venue) = stadium(&http, &stack.base, args.hot_seats).await?;
    let venue = Arc::new(venue);
    eprintln!("signing in {} fans...", args.fans);
    let tokens = Arc::new(fans::sign_in_many(&http, &stack.base, "bench", args.fans).await?);

    // Warm-up, not reported: connections open, statements get prepared and
    // planned, the chart is loaded. A fan's first request after a deploy
    // pays this once; an on-sale does not.
    let warm = copy_event(stack, source, "warmup").await?;
    eprintln!("warm-up: 3 s at {}/s (not reported)", args.rate);
    drive(
        &Args {
            secs: 3,
            ..args.clone()
        },
        &stack.base,
        venue.clone(),
        tokens.clone(),
        Phase {
            event: warm,
            pick: Pick::Uniform,
            rate: Some(args.rate),
        },
    )
    .await?;

    let mut rows = Vec::new();
    for (i, (name, pick, rate)) in [
        (format!("API uniform @ {}/s", args.rate), Pick::Uniform, Some(args.rate)),
        (
            format!("API hot spot @ {}/s", args.rate),
            Pick::HotSpot,
            Some(args.rate),
        ),
        ("API uniform, flat out".to_string(), Pick::Uniform, None),
    ]
    .into_iter()
    .enumerate()
    {
        let event = copy_event(stack, source, &format!("phase{}", i + 1)).await?;
        eprintln!("phase {}/5: {name}, {} clients, {} s", i + 1, args.clients, args.secs);
        let figures = drive(
            args,
            &stack.base,
            venue.clone(),
            tokens.clone(),
            Phase { event, pick, rate },
        )
        .await?;
        rows.push((name, figures));
    }

    let seats = Arc::new(venue.seats.clone());
    let base_event = copy_event(stack, source, "baseline").await?;
    let hold = baseline::prepare(&stack.pool, base_event).await?;
    eprintln!(
        "phase 4/5: bare claim statement, durable commit, {} tasks, pool {}, {} s",
        args.clients, stack.pool_size, args.secs
    );
    let bare = baseline::run(&stack.pool, base_event, hold, seats.clone(), args.clients, args.secs).await?;
    let base_event = copy_event(stack, source, "baseline-async").await?;
    let hold = baseline::prepare(&stack.pool, base_event).await?;
    eprintln!(
        "phase 5/5: bare claim statement, asynchronous commit, {} tasks, pool {}, {} s",
        args.clients, stack.pool_size, args.secs
    );
    let bare_async = baseline::run(&stack.async_pool, base_event, hold, seats, args.clients, args.secs).await?;

    println!();
    println!(
        "hold benchmark: 50,000-seat stadium, {} clients, {}-{} seats per hold, {} s per phase, pool {}",
        args.clients, 1, args.max_seats, args.secs, stack.pool_size
    );
    println!("{}", Figures::header());
    println!("{}", bare.line("bare claim, durable commit"));
    println!("{}", bare_async.line("bare claim, asynchronous commit"));
    for (name, f) in &rows {
        println!("{}", f.line(name));
    }
    let at_rate = &rows[0].1;
    let hot = &rows[1].1;
    let flat = &rows[2].1;
    // Holds commit asynchronously unless `holds.durable_commit` is set, so
    // the like-for-like baseline is the asynchronous one.
    let ratio = flat.per_sec(flat.attempts()) / bare_async.per_sec(bare_async.attempts()).max(1e-9);
    let ratio_durable = flat.per_sec(flat.attempts()) / bare.per_sec(bare.attempts()).max(1e-9);
    println!();
    println!(
        "p99 hold latency at {}/s: uniform {:.2} ms, hot spot {:.2} ms (goal < 50 ms: {})",
        args.rate,
        at_rate.p99(),
        hot.p99(),
        if at_rate.p99() < 50.0 && hot.p99() < 50.0 {
            "met"
        } else {
            "NOT met"
        }
    );
    println!(
        "achieved rate at {}/s target: uniform {:.0}/s, hot spot {:.0}/s",
        args.rate,
        at_rate.per_sec(at_rate.attempts()),
        hot.per_sec(hot.attempts())
    );
    println!(
        "API flat out {:.0} attempts/s vs bare claim {:.0} statements/s (same commit mode): ratio {:.2} (goal >= 0.50: {}); vs durable bare claim {:.0}/s: {:.2}",
        flat.per_sec(flat.attempts()),
        bare_async.per_sec(bare_async.attempts()),
        ratio,
        if ratio >= 0.5 { "met" } else { "NOT met" },
        bare.per_sec(bare.attempts()),
        ratio_durable,
    );
    let errors: u64 = rows.iter().map(|r| r.1.errors).sum();
    if errors > 0 {
        anyhow::bail!("{errors} requests failed with something other than 201 or 409");
    }
    Ok(())
}
