//! usher-load: benchmarks and load generators for Usher. Fans' traffic goes
//! over HTTP only, as a fan's client would send it; the database is touched
//! directly only to set up a scratch benchmark database and to measure the
//! raw baseline that the API is compared against.

mod baseline;
mod checkout;
mod edge_overhead;
mod fans;
mod holds;
mod process;
mod report;
mod sandbox;
mod server_timing;
mod sim;
mod stack;
mod waiting_fans;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

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
}

#[derive(Debug, Clone, clap::Args)]
pub struct StackArgs {
    /// PostgreSQL to create the scratch benchmark database in.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub database_url: String,
    /// The booking-core binary to run (build it with --release first).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/release/booking-core"))]
    pub core_bin: PathBuf,
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/booking-core.toml"))]
    pub core_config: PathBuf,
    /// booking-core's connection pool, and the baseline's.
    #[arg(long, default_value_t = 16)]
    pub pool: u32,
    #[arg(long, default_value_t = 18080)]
    pub port: u16,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Holds(args) => holds::run(args).await,
        Command::EdgeOverhead(args) => edge_overhead::run(args).await,
        Command::WaitingFans(args) => waiting_fans::run(args).await,
        Command::Checkout(args) => checkout::run(args).await,
        Command::Sim(args) => sim::run(args).await,
    }
}
