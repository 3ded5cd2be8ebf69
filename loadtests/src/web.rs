//! The fan web app's figures, in headless Chromium through the edge: time
//! from navigation to an interactive, live 50,000-seat map (the seeded
//! stadium), first visit with an empty cache and repeat visit, and the
//! page's weight over the wire for each. The baseline, in the same browser
//! and run: only fetching and parsing the map's data (seat map document and
//! availability), so the ratio is what drawing and wiring the page adds.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use serde_json::Value;

use crate::browser::{Browser, DESKTOP};
use crate::sim::scenario::Scenario;
use crate::sim::stack::{Bins, SimStack, StackPlace};

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub stack: StackPlace,
    /// Fresh browsers (cold caches) to measure.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
}

struct Visit {
    ready_ms: f64,
    bytes: f64,
}

/// Everything the page fetched, as bytes on the wire (0 for what came from
/// the cache; the open seat-change stream is not counted until it closes).
const WEIGHT: &str = "return performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource'))\
                      .reduce((n, e) => n + (e.transferSize || 0), 0)";

async fn visit(browser: &Browser, url: &str) -> anyhow::Result<Visit> {
    browser.goto(url).await;
    browser
        .wait_for(
            "return location.pathname.endsWith('/seats') && document.documentElement.dataset.seatmap === 'ready'",
            Duration::from_secs(60),
        )
        .await;
    let ready_ms = browser
        .eval("return Number(document.documentElement.dataset.seatmapMs)")
        .await
        .as_f64()
        .context("the page's ready mark")?;
    let bytes = browser.eval(WEIGHT).await.as_f64().unwrap_or(0.0);
    Ok(Visit { ready_ms, bytes })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let scenario = Scenario::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/stadium.toml"))?;
    let stack = SimStack::start(
        &scenario,
        &Bins::in_dir(&args.stack.bin_dir),
        &args.stack.database_url,
        false,
        Utc::now() - chrono::Duration::seconds(1),
    )
    .await?;
    let base = stack.edge_base.clone();
    let event = stack.event;
    let seats = format!("{base}/events/{event}/seats");
    let (mut first, mut repeat, mut baseline) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..args.runs.max(1) {
        let browser = Browser::start_sized(DESKTOP).await;
        // Through the waiting room (admitted at once: the sale is open and
        // nobody is ahead), which moves on to the seat page by itself: a
        // first visit with nothing of the page cached.
        let cold = visit(&browser, &format!("{base}/queue/{event}")).await?;
        let warm = visit(&browser, &seats).await?;
        let data: Value = browser
            .eval_async(&format!(
                "const t = performance.now(); \
                 const e = await (await fetch('/v1/events/{event}', {{cache: 'no-store'}})).json(); \
                 const m = await (await fetch(e.seatmap_url, {{cache: 'no-store'}})).json(); \
                 const a = await (await fetch('/v1/events/{event}/availability', {{cache: 'no-store'}})).json(); \
                 done({{ms: performance.now() - t, seats: m.seat_count, states: a.states.length}})"
            ))
            .await;
        let raw = data["ms"].as_f64().context("the baseline's time")?;
        println!(
            "run {}: first visit {:.0} ms ({:.0} KB), repeat {:.0} ms ({:.1} KB), data only {:.0} ms ({} seats)",
            run + 1,
            cold.ready_ms,
            cold.bytes / 1024.0,
            warm.ready_ms,
            warm.bytes / 1024.0,
            raw,
            data["seats"]
        );
        first.push(cold);
        repeat.push(warm);
        baseline.push(raw);
        browser.quit().await;
    }
    let m = |v: &[Visit], f: fn(&Visit) -> f64| median(v.iter().map(f).collect());
    let raw = median(baseline);
    println!(
        "\nnavigation to an interactive, live 50,000-seat map (medians of {} runs):",
        first.len()
    );
    println!("| | time (ms) | vs data only | bytes over the wire (KB) |\n| --- | ---: | ---: | ---: |");
    for (name, v) in [("first visit", &first), ("repeat visit", &repeat)] {
        let t = m(v, |x| x.ready_ms);
        println!(
            "| {name} | {t:.0} | {:.2}x | {:.1} |",
            t / raw,
            m(v, |x| x.bytes) / 1024.0
        );
    }
    println!("| baseline: fetch + parse the map's data only | {raw:.0} | 1.00x | |");
    stack.stop().await
}
