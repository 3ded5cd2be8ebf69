//! usher-load: benchmarks and load generators for Usher (see the library,
//! `lib.rs`, for what each does).

use clap::{Parser, Subcommand};
use loadtests::{botfarm, checkout, defences, edge_overhead, holds, sim, tracing_cost, waiting_fans, web};

#[derive(Parser)]
#[command(name = "usher-load", about = "Usher benchmarks, driven over HTTP")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The hold benchmark: the hold endpoint on a 50,000-seat event with
    /// uniformly random seats and with a hot spot, against the bare claim
    /// statement through the same size of connection pool, in one run.
    Holds(holds::Args),
    /// The cost of metrics and tracing on the hold path: hold throughput
    /// and p99 with both off, metrics on, and tracing at 1% and 100%
    /// exported over OTLP to a collector stand-in, in one run, with each
    /// one's ratio to "both off".
    TracingCost(tracing_cost::Args),
    /// The edge's pass-through overhead: requests/s and latency through
    /// edge-proxy (with access-token checks) against nginx doing the same,
    /// to one trivial upstream, in one run (wrk, nginx from the OS).
    EdgeOverhead(edge_overhead::Args),
    /// Checkout: concurrent fans hold, order and pay through the payment
    /// sandbox; purchases/s and confirm latency, with the sandbox's own time
    /// reported apart and the sandbox alone as the baseline.
    Checkout(checkout::Args),
    /// Waiting fans per edge: memory per open position stream, CPU, and
    /// Redis commands/s with the queue standing and moving, at each N.
    WaitingFans(waiting_fans::Args),
    /// A whole on-sale: a scenario's herd of fans through the edge (join,
    /// wait, hold, pay, ticket), the invariants checked from the database
    /// and the processor's books, and a report with charts.
    Sim(sim::Args),
    /// The on-sale against the cluster (deploy/cluster) while faults strike
    /// one node at a time: the PostgreSQL leader killed and paused, the
    /// queue's Redis master stopped, an edge and a core killed, a core cut
    /// off from the database; each fault timed, the invariants checked.
    Chaos(sim::chaos::Args),
    /// The fan web app in headless Chromium: navigation to an interactive
    /// 50,000-seat map (first and repeat visit) and the page's weight,
    /// against fetching and parsing the map's data alone.
    Web(web::Args),
    /// A bot farm against fans: thousands of joins from a few networks
    /// (puzzle solvers, skippers, replayers, cookie thieves) among fans
    /// from many, with the edge's defences on and off; who bought the
    /// seats and which fans were wrongly challenged, checked against goals.
    Botfarm(botfarm::Args),
    /// The bot defences' cost: the join puzzle's solve time in headless
    /// Chromium, and joins/s through one edge with the defences off and on.
    Defences(defences::Args),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Holds(args) => holds::run(args).await,
        Command::TracingCost(args) => tracing_cost::run(args).await,
        Command::EdgeOverhead(args) => edge_overhead::run(args).await,
        Command::WaitingFans(args) => waiting_fans::run(args).await,
        Command::Checkout(args) => checkout::run(args).await,
        Command::Sim(args) => sim::run(args).await,
        Command::Chaos(args) => sim::chaos::run(args).await,
        Command::Web(args) => web::run(args).await,
        Command::Botfarm(args) => botfarm::run(args).await,
        Command::Defences(args) => defences::run(args).await,
    }
}
