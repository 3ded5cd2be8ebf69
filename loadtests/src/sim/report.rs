//! The run report: a Markdown page with the final table, the invariants'
//! verdicts, errors by kind, and SVG charts over time (admissions and sales,
//! the queue, hold and confirm latency, the core's request rate against the
//! admission limit); with a passthrough run, both side by side.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

use hdrhistogram::Histogram;

use crate::sim::Run;
use crate::sim::chart::{Series, line_chart};
use crate::sim::record::{Kind, Outcome};
use crate::sim::scenario::Scenario;

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("histogram bounds")
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        f64::NAN
    } else {
        h.value_at_quantile(q) as f64 / 1000.0
    }
}

/// The figures of one run, worked out once.
pub struct Figures {
    pub fans: usize,
    pub seats: i64,
    pub sold: i64,
    pub sell_out_secs: Option<f64>,
    pub hold: Histogram<u64>,
    /// Successful holds' time inside booking-core (its Server-Timing mark):
    /// set against `hold`, it tells the core's time from the machine's.
    pub hold_core: Histogram<u64>,
    pub confirm: Histogram<u64>,
    pub confirm_ours: Histogram<u64>,
    pub core: Histogram<u64>,
    pub outcomes: BTreeMap<Outcome, usize>,
    pub requests: usize,
    pub core_requests: usize,
    pub protected_core_peak: u64,
    pub redis_ops: (f64, f64),
    pub pg_xacts: (f64, f64),
}

fn rates(samples: &[(u32, f64)]) -> (f64, f64) {
    let mut peak: f64 = 0.0;
    for w in samples.windows(2) {
        let dt = f64::from(w[1].0.saturating_sub(w[0].0)) / 1000.0;
        if dt > 0.0 {
            peak = peak.max((w[1].1 - w[0].1) / dt);
        }
    }
    let avg = match (samples.first(), samples.last()) {
        (Some(a), Some(b)) if b.0 > a.0 => (b.1 - a.1) / (f64::from(b.0 - a.0) / 1000.0),
        _ => 0.0,
    };
    (avg, peak)
}

pub fn figures(run: &Run) -> Figures {
    let mut f = Figures {
        fans: run.fans.len(),
        seats: run.findings.seats,
        sold: run.findings.sold,
        sell_out_secs: None,
        hold: hist(),
        hold_core: hist(),
        confirm: hist(),
        confirm_ours: hist(),
        core: hist(),
        outcomes: BTreeMap::new(),
        requests: run.requests.len(),
        core_requests: 0,
        protected_core_peak: 0,
        redis_ops: (0.0, 0.0),
        pg_xacts: (0.0, 0.0),
    };
    for fan in &run.fans {
        *f.outcomes.entry(fan.outcome).or_default() += 1;
        for (_, us) in &fan.holds {
            let _ = f.hold.record(u64::from((*us).max(1)));
        }
        if let Some((_, whole, provider)) = fan.confirm {
            let _ = f.confirm.record(u64::from(whole.max(1)));
            let _ = f.confirm_ours.record(u64::from(whole.saturating_sub(provider).max(1)));
        }
    }
    let mut per_sec: BTreeMap<u32, u64> = BTreeMap::new();
    for r in &run.requests {
        if r.core {
            f.core_requests += 1;
            let _ = f.core.record(u64::from(r.core_micros.max(1)));
            if r.kind == Kind::Hold && r.status < 300 {
                let _ = f.hold_core.record(u64::from(r.core_micros.max(1)));
            }
            if r.kind.protected() {
                *per_sec.entry(r.at_ms / 1000).or_default() += 1;
            }
        }
    }
    f.protected_core_peak = per_sec.values().copied().max().unwrap_or(0);
    if f.sold >= f.seats && f.seats > 0 {
        f.sell_out_secs = run
            .samples
            .iter()
            .find(|s| s.sold >= f.seats)
            .map(|s| f64::from(s.at_ms.saturating_sub(run.on_sale_ms)) / 1000.0);
    }
    let redis: Vec<(u32, f64)> = run
        .samples
        .iter()
        .filter(|s| s.redis_commands > 0)
        .map(|s| (s.at_ms, s.redis_commands as f64))
        .collect();
    f.redis_ops = rates(&redis);
    let pg: Vec<(u32, f64)> = run
        .samples
        .iter()
        .filter(|s| s.pg_transactions > 0)
        .map(|s| (s.at_ms, s.pg_transactions as f64))
        .collect();
    f.pg_xacts = rates(&pg);
    f
}

fn secs(run: &Run, at_ms: u32) -> f64 {
    (f64::from(at_ms) - f64::from(run.on_sale_ms)) / 1000.0
}

/// Counts per second since the on-sale.
fn per_second(run: &Run, times: impl Iterator<Item = (u32, f64)>) -> Vec<(f64, f64)> {
    let mut buckets: BTreeMap<i64, f64> = BTreeMap::new();
    for (at, n) in times {
        *buckets.entry(secs(run, at).floor() as i64).or_default() += n;
    }
    let (Some(lo), Some(hi)) = (buckets.keys().next().copied(), buckets.keys().last().copied()) else {
        return Vec::new();
    };
    (lo.max(0)..=hi)
        .map(|s| (s as f64, buckets.get(&s).copied().unwrap_or(0.0)))
        .collect()
}

/// A latency quantile per 5-second window since the on-sale, ms.
fn windowed(run: &Run, points: &[(u32, u32)], q: f64) -> Vec<(f64, f64)> {
    let mut windows: BTreeMap<i64, Histogram<u64>> = BTreeMap::new();
    for (at, us) in points {
        let w = (secs(run, *at) / 5.0).floor() as i64;
        let _ = windows
            .entry(w.max(0))
            .or_insert_with(hist)
            .record(u64::from((*us).max(1)));
    }
    windows
        .into_iter()
        .map(|(w, h)| (w as f64 * 5.0 + 2.5, ms(&h, q)))
        .collect()
}

fn charts(dir: &Path, prefix: &str, scenario: &Scenario, run: &Run) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut save = |name: &str, title: &str, svg: String| -> anyhow::Result<()> {
        let file = format!("{prefix}{name}.svg");
        std::fs::write(dir.join(&file), svg)?;
        out.push((title.to_owned(), file));
        Ok(())
    };
    let admitted = per_second(run, run.fans.iter().filter_map(|f| f.admitted_ms).map(|t| (t, 1.0)));
    let sold = per_second(
        run,
        run.fans
            .iter()
            .filter_map(|f| f.confirm.map(|c| (c.0, f64::from(f.seats_bought)))),
    );
    save(
        "admitted-and-sales",
        "Admitted fans and seats sold per second",
        line_chart(
            "Admitted fans and seats sold per second",
            "seconds since the on-sale",
            "per second",
            &[Series::new("fans admitted", admitted), Series::new("seats sold", sold)],
        ),
    )?;
    let queue: Vec<(f64, f64)> = run
        .samples
        .iter()
        .map(|s| (secs(run, s.at_ms), s.waiting as f64))
        .filter(|p| p.0 >= -10.0)
        .map(|(x, y)| (x.max(0.0), y))
        .collect();
    let active: Vec<(f64, f64)> = run
        .samples
        .iter()
        .map(|s| (secs(run, s.at_ms).max(0.0), s.active as f64))
        .collect();
    let streams: Vec<(f64, f64)> = run
        .samples
        .iter()
        .map(|s| (secs(run, s.at_ms).max(0.0), s.streams as f64))
        .collect();
    save(
        "queue",
        "Queue length, active sessions and open position streams",
        line_chart(
            "Queue length over time",
            "seconds since the on-sale",
            "fans",
            &[
                Series::new("waiting", queue),
                Series::new("admitted, active", active),
                Series::new("open SSE streams", streams),
            ],
        ),
    )?;
    let holds: Vec<(u32, u32)> = run.fans.iter().flat_map(|f| f.holds.iter().copied()).collect();
    let confirms: Vec<(u32, u32)> = run.fans.iter().filter_map(|f| f.confirm.map(|c| (c.0, c.1))).collect();
    save(
        "latency",
        "Hold and confirm latency (5-second windows)",
        line_chart(
            "Hold and confirm latency, 5 s windows",
            "seconds since the on-sale",
            "ms",
            &[
                Series::new("hold p50", windowed(run, &holds, 0.5)),
                Series::new("hold p99", windowed(run, &holds, 0.99)),
                Series::new("confirm p50", windowed(run, &confirms, 0.5)),
                Series::new("confirm p95", windowed(run, &confirms, 0.95)),
                Series::new("confirm p99", windowed(run, &confirms, 0.99)),
            ],
        ),
    )?;
    let core_rate = per_second(
        run,
        run.requests
            .iter()
            .filter(|r| r.core && r.kind.protected())
            .map(|r| (r.at_ms, 1.0)),
    );
    let sessions = per_second(run, run.fans.iter().filter_map(|f| f.first_core_ms).map(|t| (t, 1.0)));
    let end = core_rate.last().map_or(1.0, |p| p.0).max(1.0);
    let limit = f64::from(scenario.admission.admit_per_minute) / 60.0;
    save(
        "core-rate",
        "The core's protected requests and new sessions per second, against the admission limit",
        line_chart(
            "Core load against the admission limit",
            "seconds since the on-sale",
            "per second",
            &[
                Series::new("protected requests at the core", core_rate),
                Series::new("new sessions at the core", sessions),
                Series::new("admission limit (sessions/s)", vec![(0.0, limit), (end, limit)]).dashed(),
            ],
        ),
    )?;
    Ok(out)
}

fn fmt_ms(v: f64) -> String {
    if v.is_nan() { "–".into() } else { format!("{v:.1}") }
}

/// Several percentiles of one histogram, as "p50 / p99" reads them (ms).
fn pcts(h: &Histogram<u64>, qs: &[f64]) -> String {
    qs.iter().map(|q| fmt_ms(ms(h, *q))).collect::<Vec<_>>().join(" / ")
}

fn mib(b: u64) -> String {
    format!("{:.0} MiB", b as f64 / 1048576.0)
}

/// Writes report.md and the charts into `dir`; returns the summary table.
pub fn write(
    dir: &Path,
    scenario: &Scenario,
    main: &Run,
    compare: Option<&Run>,
    command: &str,
) -> anyhow::Result<String> {
    let f = figures(main);
    let mut md = String::new();
    let _ = writeln!(md, "# On-sale simulation: `{}`\n", scenario.name);
    if !scenario.description.is_empty() {
        let _ = writeln!(md, "{}\n", scenario.description);
    }
    let machine = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let _ = writeln!(
        md,
        "Run {} on {cpus} CPUs ({machine}), everything on one machine (PostgreSQL, Redis, booking-core, edge-proxy, payment-sandbox and the fans).\n\nCommand: `{command}`\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
    );
    let verdict = if main.findings.violations.is_empty() {
        "**All invariants held.**".to_owned()
    } else {
        format!("**Invariants broken:** {}", main.findings.violations.join("; "))
    };
    let _ = writeln!(md, "{verdict}\n");
    let summary = table(scenario, main, &f);
    md.push_str(&summary);
    let _ = writeln!(md, "\n## PostgreSQL's settings\n");
    let _ = writeln!(md, "| setting | value |\n| --- | --- |");
    for (name, value) in &main.pg_settings {
        let _ = writeln!(md, "| `{name}` | {value} |");
    }
    let _ = writeln!(md, "\n## What the fans ended with\n");
    let _ = writeln!(md, "| outcome | fans |\n| --- | ---: |");
    for (o, n) in &f.outcomes {
        let _ = writeln!(md, "| {} | {n} |", o.name());
    }
    let _ = writeln!(md, "\n## Requests by kind\n");
    let _ = writeln!(
        md,
        "As the fans' clients saw them (the edge's own answers included); the time inside booking-core (its \
         Server-Timing mark) of those that reached it; and the edge's time on those, from reading the request \
         to the core's answer (its mark). Client minus edge is time in the fans' own process and the network \
         (on this one machine, mostly waiting for a CPU). Lane wait: how long a request waited in the load \
         generator for a free slot in its lane before it was sent (not part of the client time).\n"
    );
    let _ = writeln!(
        md,
        "| request | count | p50 ms | p99 ms | in core: count | p50 ms | p99 ms | in edge: p50 ms | p99 ms | lane wait: p99 ms | max ms |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    let mut by_kind: BTreeMap<Kind, [Histogram<u64>; 4]> = BTreeMap::new();
    for r in main.requests.iter().filter(|r| r.kind != Kind::Stream) {
        let [client, core, edge, queued] = by_kind
            .entry(r.kind)
            .or_insert_with(|| [hist(), hist(), hist(), hist()]);
        let _ = client.record(u64::from(r.micros.max(1)));
        let _ = queued.record(u64::from(r.queued_micros.max(1)));
        if r.core {
            let _ = core.record(u64::from(r.core_micros.max(1)));
        }
        if r.edge_micros > 0 {
            let _ = edge.record(u64::from(r.edge_micros));
        }
    }
    for (k, [h, core, edge, queued]) in &by_kind {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            k.name(),
            h.len(),
            fmt_ms(ms(h, 0.5)),
            fmt_ms(ms(h, 0.99)),
            core.len(),
            fmt_ms(ms(core, 0.5)),
            fmt_ms(ms(core, 0.99)),
            fmt_ms(ms(edge, 0.5)),
            fmt_ms(ms(edge, 0.99)),
            fmt_ms(ms(queued, 0.99)),
            fmt_ms(queued.max() as f64 / 1000.0)
        );
    }
    lost_places(&mut md, scenario, main);
    let _ = writeln!(md, "\n## Errors by kind\n");
    if main.errors.is_empty() {
        let _ = writeln!(md, "None: every request got a 2xx or 3xx answer.");
    } else {
        let _ = writeln!(
            md,
            "Answers other than 2xx/3xx (0 = no answer: refused connection or client time-out). A 409 on a hold is a fan losing a race for a seat, expected in an on-sale.\n"
        );
        let _ = writeln!(md, "| request | status | code | count |\n| --- | ---: | --- | ---: |");
        for ((k, s, code), n) in &main.errors {
            let _ = writeln!(md, "| {} | {s} | `{code}` | {n} |", k.name());
        }
    }
    let _ = writeln!(md, "\n## Over time\n");
    for (title, file) in charts(dir, "", scenario, main)? {
        let _ = writeln!(md, "### {title}\n\n![{title}]({file})\n");
    }
    if let Some(p) = compare {
        let g = figures(p);
        let _ = writeln!(md, "## Why the waiting room: the same herd in passthrough\n");
        let _ = writeln!(
            md,
            "The same fans, arrivals and behaviour, with the edge admitting everyone at once (mode `passthrough`).\n"
        );
        let _ = writeln!(md, "| | waiting room | passthrough |\n| --- | ---: | ---: |");
        let row = |md: &mut String, name: &str, a: String, b: String| {
            let _ = writeln!(md, "| {name} | {a} | {b} |");
        };
        row(
            &mut md,
            "seats sold",
            format!("{} of {}", f.sold, f.seats),
            format!("{} of {}", g.sold, g.seats),
        );
        row(
            &mut md,
            "time to sell out (s)",
            opt(f.sell_out_secs),
            opt(g.sell_out_secs),
        );
        row(
            &mut md,
            "core time p50 / p99 (ms)",
            pcts(&f.core, &[0.5, 0.99]),
            pcts(&g.core, &[0.5, 0.99]),
        );
        row(
            &mut md,
            "hold p50 / p99 (ms)",
            pcts(&f.hold, &[0.5, 0.99]),
            pcts(&g.hold, &[0.5, 0.99]),
        );
        row(
            &mut md,
            "confirm p95 (ms)",
            fmt_ms(ms(&f.confirm, 0.95)),
            fmt_ms(ms(&g.confirm, 0.95)),
        );
        row(
            &mut md,
            "peak protected requests/s at the core",
            f.protected_core_peak.to_string(),
            g.protected_core_peak.to_string(),
        );
        let err_rate = |r: &Run| {
            let bad = r.requests.iter().filter(|q| q.status == 0 || q.status >= 500).count();
            format!("{:.2}% ({bad})", 100.0 * bad as f64 / r.requests.len().max(1) as f64)
        };
        row(&mut md, "5xx or no answer", err_rate(main), err_rate(p));
        row(
            &mut md,
            "core readiness checks failed (1/s)",
            main.core_ready_fail.to_string(),
            p.core_ready_fail.to_string(),
        );
        row(
            &mut md,
            "oversold",
            main.findings.oversold.to_string(),
            p.findings.oversold.to_string(),
        );
        row(
            &mut md,
            "inversions",
            main.findings.inversions.to_string(),
            "– (no queue)".into(),
        );
        let _ = writeln!(md);
        for (title, file) in charts(dir, "passthrough-", scenario, p)? {
            let _ = writeln!(md, "### Passthrough: {title}\n\n![{title}]({file})\n");
        }
    }
    let _ = writeln!(md, "## How it is checked\n");
    let _ = writeln!(
        md,
        "After the run the tool reads PostgreSQL and the payment sandbox's books, not the services' answers: \
         seats with two valid tickets; every captured payment either refunded in full or belonging to a confirmed \
         order with all its tickets; no order or fan keeping two charges; seats neither sold nor held at the end \
         while fans went without; fans told they were in while a fan ahead of them was later still told to wait \
         (inversions); the most fans whose first protected request reached the core in any {} s window against the \
         admission rate plus {:.0}% and one tick; and any 5xx. An answer came from the core when it carries \
         booking-core's `Server-Timing: core` mark.",
        main.findings.window_secs,
        scenario.admission.rate_margin * 100.0
    );
    std::fs::write(dir.join("report.md"), md)?;
    Ok(summary)
}

fn opt(v: Option<f64>) -> String {
    v.map_or("did not sell out".into(), |s| format!("{s:.1}"))
}

/// Places the edge said were lost, against what this process knows: when
/// the edge had last answered that fan on that place. A fan answered within
/// the grace period before it asked was lost too early (the edge's fault);
/// one not answered for longer was away, which here means this process
/// (or the machine) kept it from asking in time.
fn lost_places(md: &mut String, scenario: &Scenario, run: &Run) {
    let losses: Vec<_> = run.fans.iter().flat_map(|f| f.losses.iter().copied()).collect();
    if losses.is_empty() {
        return;
    }
    let grace_ms = scenario.admission.grace_secs.saturating_mul(1000) as u32;
    // A proxy's view of who is lost can lag Redis by a slow tick or two,
    // so an answer in the last 10 s before the sweep proves nothing.
    let early = losses
        .iter()
        .filter(|l| l.heard_gap_ms < grace_ms.saturating_sub(10_000))
        .count();
    // In ms, up to an hour: gaps can be longer than `hist`'s two minutes.
    let ms_hist = || Histogram::<u64>::new_with_bounds(1, 3_600_000, 3).expect("histogram bounds");
    let (mut gap, mut age) = (ms_hist(), ms_hist());
    for l in &losses {
        let _ = gap.record(u64::from(l.heard_gap_ms.clamp(1, 3_600_000)));
        let _ = age.record(u64::from(l.age_ms.clamp(1, 3_600_000)));
    }
    let q = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64;
    let _ = writeln!(
        md,
        "\n## Lost places\n\n{} polls were told `place_lost`. Time since the edge had last answered that fan on \
         that place: p50 {} ms, p99 {} ms, max {} ms (grace period {} s); age of the place p50 {} ms. \
         **{early}** of them had been answered more than 10 s within the grace period, so the edge dropped them \
         early (an answer in the last 10 s can come from a proxy whose view lags Redis by a slow tick); the \
         others had not been answered for longer.",
        losses.len(),
        fmt_ms(q(&gap, 0.5)),
        fmt_ms(q(&gap, 0.99)),
        fmt_ms(gap.max() as f64),
        scenario.admission.grace_secs,
        fmt_ms(q(&age, 0.5)),
    );
}

fn table(scenario: &Scenario, run: &Run, f: &Figures) -> String {
    let mut t = String::new();
    let fi = &run.findings;
    let _ = writeln!(t, "| | |\n| --- | ---: |");
    let mut row = |k: &str, v: String| {
        let _ = writeln!(t, "| {k} | {v} |");
    };
    row("fans", f.fans.to_string());
    row("seats", f.seats.to_string());
    row("sold", f.sold.to_string());
    row("time to sell out (s from the on-sale)", opt(f.sell_out_secs));
    row("oversold (must be 0)", fi.oversold.to_string());
    row(
        "inversions (must be 0), among admitted fans",
        format!("{} among {}", fi.inversions, fi.ordered_fans),
    );
    row(
        "phantom seats: left free while fans still tried (must be 0)",
        fi.phantom.to_string(),
    );
    row(
        "captured payments / refunded in full",
        format!("{} / {}", fi.captured, fi.refunded),
    );
    row(
        "charged without tickets or refund (must be 0)",
        fi.charged_without_ticket.len().to_string(),
    );
    row("charged twice (must be 0)", fi.charged_twice.len().to_string());
    row("hold p50 / p99 (ms)", pcts(&f.hold, &[0.5, 0.99]));
    row(
        "hold inside booking-core p50 / p99 (ms)",
        pcts(&f.hold_core, &[0.5, 0.99]),
    );
    row("confirm p50 / p95 / p99 (ms)", pcts(&f.confirm, &[0.5, 0.95, 0.99]));
    row(
        "confirm without the provider p50 / p95 / p99 (ms)",
        pcts(&f.confirm_ours, &[0.5, 0.95, 0.99]),
    );
    row(
        &format!("most new sessions at the core in {} s (allowed)", fi.window_secs),
        format!("{} ({:.0})", fi.peak_new_sessions, fi.allowed_new_sessions),
    );
    row(
        "peak protected requests/s at the core",
        f.protected_core_peak.to_string(),
    );
    row(
        "admission limit (fans/min, active)",
        format!(
            "{}, {}",
            scenario.admission.admit_per_minute, scenario.admission.max_active
        ),
    );
    row("5xx answers", fi.server_errors.to_string());
    row(
        "requests (all) / answered by the core",
        format!("{} / {}", f.requests, f.core_requests),
    );
    row("peak SSE connections (fans' side)", run.streams_peak.to_string());
    let last = run.samples.last().copied().unwrap_or_default();
    row(
        "places lost / failed admission ticks (the edge's counts)",
        format!("{} / {}", last.lost_total, last.ticks_failed),
    );
    for p in &run.processes {
        row(&format!("peak RSS, {}", p.name), mib(p.peak_rss));
    }
    // Everything shares the machine's cores: this shows who used them.
    for p in &run.processes {
        row(
            &format!("CPU used, {} (s; cores busy on average)", p.name),
            format!("{:.0} ({:.2})", p.cpu_secs, p.cpu_secs / run.stack_secs.max(1.0)),
        );
    }
    row(
        "Redis commands/s, mean / peak",
        format!("{:.0} / {:.0}", f.redis_ops.0, f.redis_ops.1),
    );
    row(
        "PostgreSQL transactions/s, mean / peak",
        format!("{:.0} / {:.0}", f.pg_xacts.0, f.pg_xacts.1),
    );
    row("run time (s)", format!("{:.0}", run.elapsed.as_secs_f64()));
    t
}
