//! The cost of metrics and tracing on the hold path (issue 26), in one run
//! on one database: booking-core restarted in four configurations, each
//! measured by the hold benchmark's own phases (`holds::drive`: uniform
//! seats, flat out, then at a fixed rate):
//!
//! 1. both off (the baseline: no metrics listener, no OTLP endpoint; spans
//!    still get trace ids, as in production by default);
//! 2. metrics on (scraped every 5 s, as the cluster's Prometheus does);
//! 3. metrics on, tracing sampled at 1%, exported over OTLP;
//! 4. metrics on, tracing at 100%.
//!
//! The OTLP endpoint is a collector stand-in in this process that answers
//! at once and only counts (`otlp::Sink`). Configurations are measured in
//! rounds, the order reversed every other round, so that a machine getting
//! busier or quieter during the run weighs on all of them alike; the spread
//! of the baseline between rounds is printed as the run's noise, and the
//! aim is judged only when that noise is smaller than it. booking-core's
//! own CPU time per attempt is reported beside throughput: on a machine
//! shared with other work it moves far less than throughput does.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::holds::{self, Phase, Pick, Venue};
use crate::otlp::{Received, Sink};
use crate::report::Figures;
use crate::stack::Stack;
use crate::{StackArgs, fans};

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub stack: StackArgs,
    /// Concurrent HTTP clients.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Hold attempts per second in the fixed-rate phase.
    #[arg(long, default_value_t = 1000)]
    pub rate: u64,
    /// Seconds per phase (flat out, then at the rate) per configuration
    /// and round.
    #[arg(long, default_value_t = 6)]
    pub secs: u64,
    /// Rounds over the four configurations.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Distinct signed-in fans the attempts rotate through: enough that
    /// few attempts meet a fan's limit of 8 seats per event (each phase
    /// has an event of its own).
    #[arg(long, default_value_t = 16000)]
    pub fans: usize,
    /// The short form for CI's smoke: one round of 2-second phases with
    /// 2,000 fans. It checks that every configuration serves holds and
    /// exports (or not) what it should; its figures are too short to
    /// weigh the cost.
    #[arg(long)]
    pub short: bool,
    /// Append this run's report to this Markdown file (made, with its
    /// title, when missing), e.g. loadtests/reports/tracing-cost.md.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// The aim: metrics on and tracing at 1% cost under 5% of the hold
/// throughput with both off.
const AIM: f64 = 0.95;
/// How often the metrics are scraped while they are on.
const SCRAPE_EVERY: Duration = Duration::from_secs(5);
/// Long enough for the exporter's last batch (sent every second) to arrive
/// before booking-core is restarted.
const FLUSH: Duration = Duration::from_millis(1500);

/// One configuration of booking-core.
struct Config {
    name: &'static str,
    metrics: bool,
    /// OTLP export at this sampling ratio; None: no endpoint.
    ratio: Option<f64>,
}

const CONFIGS: [Config; 4] = [
    Config {
        name: "both off",
        metrics: false,
        ratio: None,
    },
    Config {
        name: "metrics on",
        metrics: true,
        ratio: None,
    },
    Config {
        name: "metrics + tracing 1%",
        metrics: true,
        ratio: Some(0.01),
    },
    Config {
        name: "metrics + tracing 100%",
        metrics: true,
        ratio: Some(1.0),
    },
];

const OFF: usize = 0;
const ONE_PERCENT: usize = 2;
const ALL: usize = 3;

/// What one configuration did, summed over its rounds.
#[derive(Default)]
struct Measured {
    flat: Figures,
    at_rate: Figures,
    /// Attempts including the warm-ups (whose spans are counted too).
    attempts: u64,
    received: Received,
    scrapes: u64,
    scrape_failures: u64,
    /// Flat-out attempts/s in each round, for the spread.
    per_round: Vec<f64>,
    /// booking-core's own CPU seconds over the measured phases (not the
    /// warm-up), and the attempts they served: a figure other processes'
    /// load moves far less than throughput.
    core_cpu_secs: f64,
    measured_attempts: u64,
}

impl Measured {
    fn flat_rate(&self) -> f64 {
        self.flat.per_sec(self.flat.attempts())
    }

    fn spans_per_attempt(&self) -> f64 {
        self.received.spans as f64 / self.attempts.max(1) as f64
    }

    /// booking-core's CPU milliseconds per hold attempt.
    fn cpu_ms_per_attempt(&self) -> f64 {
        self.core_cpu_secs * 1000.0 / self.measured_attempts.max(1) as f64
    }
}

pub async fn run(mut args: Args) -> anyhow::Result<()> {
    if args.short {
        args.rounds = 1;
        args.secs = 2;
        args.fans = 2000;
    }
    let mut stack = Stack::start(&args.stack).await?;
    let result = measure(&args, &mut stack).await;
    let logs = stack.log_path().display().to_string();
    stack.stop().await?;
    let measured = result.with_context(|| format!("benchmark failed (booking-core logs were in {logs})"))?;
    let text = summary(&args, &measured);
    print!("{text}");
    if let Some(out) = &args.out {
        append_report(out, &args, &text)?;
        eprintln!("report: {}", out.display());
    }
    check(&measured)
}

async fn measure(args: &Args, stack: &mut Stack) -> anyhow::Result<Vec<Measured>> {
    let http = reqwest::Client::new();
    let (source, venue) = holds::stadium(&http, &stack.base, 0).await?;
    let venue = Arc::new(venue);
    eprintln!("signing in {} fans...", args.fans);
    let tokens = Arc::new(fans::sign_in_many(&http, &stack.base, "tracing", args.fans).await?);
    let sink = Sink::start().await?;
    let metrics_port = crate::process::port();
    let hold_args = holds::Args {
        stack: args.stack.clone(),
        clients: args.clients,
        rate: args.rate,
        secs: args.secs,
        max_seats: 2,
        hot_seats: 0,
        hot_share: 0.0,
        fans: args.fans,
    };
    let warm_args = holds::Args {
        secs: 2,
        ..hold_args.clone()
    };
    let mut measured: Vec<Measured> = CONFIGS.iter().map(|_| Measured::default()).collect();
    for round in 0..args.rounds {
        let order: Vec<usize> = if round % 2 == 0 {
            (0..CONFIGS.len()).collect()
        } else {
            (0..CONFIGS.len()).rev().collect()
        };
        for i in order {
            let config = &CONFIGS[i];
            let mut env = Vec::new();
            if config.metrics {
                env.push((
                    "USHER_CORE__HTTP__METRICS_LISTEN".to_owned(),
                    format!("127.0.0.1:{metrics_port}"),
                ));
            }
            if let Some(ratio) = config.ratio {
                env.push(("USHER_CORE__TRACE__OTLP_ENDPOINT".to_owned(), sink.url.clone()));
                env.push(("USHER_CORE__TRACE__SAMPLE_RATIO".to_owned(), ratio.to_string()));
            }
            stack.restart_core(&env).await?;
            let before = sink.received();
            let scraper = config
                .metrics
                .then(|| Scraper::start(format!("http://127.0.0.1:{metrics_port}/metrics")));
            let name = format!("{}-r{round}", i + 1);
            eprintln!(
                "round {}/{}: {}: warm-up 2 s, then {} s flat out and {} s at {}/s",
                round + 1,
                args.rounds,
                config.name,
                args.secs,
                args.secs,
                args.rate
            );
            let at = |label: &str| format!("{name}-{label}");
            let warm = phase(stack, source, &at("warm"), &warm_args, &venue, &tokens, Some(args.rate)).await?;
            let pid = stack.pid().context("booking-core's pid")?;
            let cpu_before = crate::process::cpu_secs(pid);
            let flat = phase(stack, source, &at("flat"), &hold_args, &venue, &tokens, None).await?;
            let at_rate = phase(stack, source, &at("rate"), &hold_args, &venue, &tokens, Some(args.rate)).await?;
            let core_cpu = crate::process::cpu_secs(pid) - cpu_before;
            let attempts = warm.attempts() + flat.attempts() + at_rate.attempts();
            tokio::time::sleep(FLUSH).await;
            let m = &mut measured[i];
            m.received = m.received + (sink.received() - before);
            if let Some(scraper) = scraper {
                let (ok, failed) = scraper.stop().await;
                m.scrapes += ok;
                m.scrape_failures += failed;
            }
            m.per_round.push(flat.per_sec(flat.attempts()));
            m.attempts += attempts;
            m.core_cpu_secs += core_cpu;
            m.measured_attempts += flat.attempts() + at_rate.attempts();
            m.flat.merge(&flat);
            m.flat.elapsed += flat.elapsed;
            m.at_rate.merge(&at_rate);
            m.at_rate.elapsed += at_rate.elapsed;
            eprintln!("  {}", flat.line("flat out"));
            eprintln!("  {}", at_rate.line(&format!("at {}/s", args.rate)));
        }
    }
    Ok(measured)
}

/// One phase on a fresh copy of the stadium event, named `name`: flat out
/// (`rate` None) or at `rate`.
async fn phase(
    stack: &Stack,
    source: i64,
    name: &str,
    args: &holds::Args,
    venue: &Arc<Venue>,
    tokens: &Arc<Vec<String>>,
    rate: Option<u64>,
) -> anyhow::Result<Figures> {
    let event = holds::copy_event(stack, source, name).await?;
    let phase = Phase {
        event,
        pick: Pick::Uniform,
        rate,
    };
    holds::drive(args, &stack.base, venue.clone(), tokens.clone(), phase).await
}

/// Scrapes `/metrics` every `SCRAPE_EVERY` (the first at once), counting
/// answers and failures, as Prometheus would while the load runs.
struct Scraper {
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Scraper {
    fn start(url: String) -> Scraper {
        let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (ok2, failed2) = (ok.clone(), failed.clone());
        let task = tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut every = tokio::time::interval(SCRAPE_EVERY);
            loop {
                every.tick().await;
                let answered = match http.get(&url).send().await {
                    Ok(r) if r.status().is_success() => r.text().await.is_ok_and(|t| t.contains("usher_")),
                    _ => false,
                };
                let counter = if answered { &ok2 } else { &failed2 };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        });
        Scraper { ok, failed, task }
    }

    /// One last scrape's worth of figures: (answered, failed).
    async fn stop(self) -> (u64, u64) {
        self.task.abort();
        let _ = self.task.await;
        (self.ok.load(Ordering::Relaxed), self.failed.load(Ordering::Relaxed))
    }
}

/// The figures, their ratios to "both off" and the aim, as printed and
/// reported.
fn summary(args: &Args, measured: &[Measured]) -> String {
    let off = &measured[OFF];
    let mut s = String::new();
    s.push_str(&format!(
        "\ntracing cost: hold API, 50,000-seat stadium, {} clients, 1-2 seats per hold, {} round(s) of {} s flat out + {} s at {}/s per configuration\n\n",
        args.clients, args.rounds, args.secs, args.secs, args.rate
    ));
    s.push_str("| configuration | flat out attempts/s | vs off | flat-out p99 ms | p99 ms at rate | vs off | core CPU ms per attempt | vs off | spans exported | spans per attempt | scrapes (failed) |\n");
    s.push_str("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for (config, m) in CONFIGS.iter().zip(measured) {
        s.push_str(&format!(
            "| {} | {:.0} | {:.3} | {:.2} | {:.2} | {:.2} | {:.3} | {:.3} | {} | {:.3} | {} |\n",
            config.name,
            m.flat_rate(),
            m.flat_rate() / off.flat_rate().max(1e-9),
            m.flat.p99(),
            m.at_rate.p99(),
            m.at_rate.p99() / off.at_rate.p99().max(1e-9),
            m.cpu_ms_per_attempt(),
            m.cpu_ms_per_attempt() / off.cpu_ms_per_attempt().max(1e-9),
            m.received.spans,
            m.spans_per_attempt(),
            if config.metrics {
                format!("{} ({})", m.scrapes, m.scrape_failures)
            } else {
                "-".into()
            },
        ));
    }
    s.push('\n');
    // Each round's figure against the same round's "both off": the pairs
    // are minutes apart rather than the whole run.
    for (config, m) in CONFIGS.iter().zip(measured) {
        let rounds: Vec<String> = m
            .per_round
            .iter()
            .zip(&off.per_round)
            .map(|(r, o)| format!("{r:.0} ({:.3})", r / o.max(1e-9)))
            .collect();
        s.push_str(&format!(
            "- {}: flat out per round, attempts/s (ratio to that round's \"both off\"): {}\n",
            config.name,
            rounds.join(", ")
        ));
    }
    // The spread of "both off" between its own rounds is what this run
    // can resolve: a 5% aim is judged only when the spread is under 5%.
    let noise = if off.per_round.len() > 1 {
        let (lo, hi) = off
            .per_round
            .iter()
            .fold((f64::MAX, 0.0_f64), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
        let noise = (hi - lo) / lo.max(1e-9);
        s.push_str(&format!(
            "- noise: \"both off\" alone moved by {:.1}% between its rounds\n",
            noise * 100.0
        ));
        Some(noise)
    } else {
        None
    };
    let ratio = measured[ONE_PERCENT].flat_rate() / off.flat_rate().max(1e-9);
    let all = measured[ALL].flat_rate() / off.flat_rate().max(1e-9);
    let verdict = match noise {
        _ if args.short => "not judged: the short form's phases are too short to weigh it".to_owned(),
        Some(noise) if noise > 1.0 - AIM => format!(
            "not resolved: this run's noise ({:.1}%) is larger than the 5% the aim is about; {}",
            noise * 100.0,
            if ratio >= AIM {
                "the ratio is within it"
            } else {
                "the ratio is below it"
            }
        ),
        _ if ratio >= AIM => "met".to_owned(),
        _ => "MISSED".to_owned(),
    };
    let cpu = measured[ONE_PERCENT].cpu_ms_per_attempt() / off.cpu_ms_per_attempt().max(1e-9);
    s.push_str(&format!(
        "- aim: metrics + tracing at 1% under 5% of the throughput with both off: ratio {ratio:.3} ({verdict}); booking-core's CPU per attempt {cpu:.3} of both off's ({})\n",
        if cpu <= 1.0 / AIM { "within 5%" } else { "over 5%" }
    ));
    let cpu_all = measured[ALL].cpu_ms_per_attempt() / off.cpu_ms_per_attempt().max(1e-9);
    s.push_str(&format!(
        "- metrics + tracing at 100%: ratio {all:.3}, booking-core's CPU per attempt {cpu_all:.3} of both off's (for the record; no aim)\n"
    ));
    s
}

/// The run fails on what is wrong rather than slow: errors, metrics that
/// do not answer, export that does not happen when on or does when off.
fn check(measured: &[Measured]) -> anyhow::Result<()> {
    for (config, m) in CONFIGS.iter().zip(measured) {
        let errors = m.flat.errors + m.at_rate.errors;
        if errors > 0 {
            bail!(
                "{}: {errors} hold attempts failed with something other than 201 or 409",
                config.name
            );
        }
        if config.metrics && (m.scrapes == 0 || m.scrape_failures > 0) {
            bail!(
                "{}: {} metrics scrapes answered, {} failed",
                config.name,
                m.scrapes,
                m.scrape_failures
            );
        }
        match config.ratio {
            None if m.received.spans > 0 => {
                bail!("{}: {} spans exported with tracing off", config.name, m.received.spans)
            }
            Some(_) if m.received.spans == 0 => bail!("{}: no span exported", config.name),
            _ => {}
        }
    }
    // At 1% a few hundred traces are expected; far more means the ratio
    // was not applied.
    let (one, all) = (
        measured[ONE_PERCENT].spans_per_attempt(),
        measured[ALL].spans_per_attempt(),
    );
    if one > all * 0.1 {
        bail!("tracing at 1% exported {one:.3} spans per attempt against {all:.3} at 100%");
    }
    Ok(())
}

/// Appends this run's section (date, machine, load, command, figures) to
/// `out`, made with its title when missing.
fn append_report(out: &std::path::Path, args: &Args, text: &str) -> anyhow::Result<()> {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    let command: Vec<String> = std::env::args().collect();
    let mut md = String::new();
    if !out.exists() {
        md.push_str("# Cost of metrics and tracing on the hold path\n\n");
        md.push_str(
            "Written by `usher-load tracing-cost` (loadtests/src/tracing_cost.rs); each run appends a section.\n",
        );
    }
    md.push_str(&format!(
        "\n## Run of {}\n\n- machine: {cpu}, {cores} cores, shared by the load generator, booking-core, PostgreSQL and the collector stand-in; load average at the end {load}\n- command: `{}`{}\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        command.join(" "),
        if args.short { " (short form)" } else { "" },
    ));
    md.push_str(text);
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(out)?;
    file.write_all(md.as_bytes())?;
    Ok(())
}
