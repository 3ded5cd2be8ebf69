//! The load generators, benchmarks and the on-sale simulator behind
//! `usher-load`, as a library so that the browser tests (`tests/`) can start
//! the same stack the simulator does. Fans' traffic goes over HTTP only, as
//! a fan's client would send it; the database is touched directly only to
//! set up a scratch benchmark database, to measure the raw baseline, and to
//! check invariants afterwards.

pub mod baseline;
pub mod botfarm;
pub mod browser;
pub mod checkout;
pub mod defences;
pub mod edge_admin;
pub mod edge_config;
pub mod edge_overhead;
pub mod fans;
pub mod holds;
pub mod otlp;
pub mod process;
pub mod puzzle;
pub mod report;
pub mod sandbox;
pub mod server_timing;
pub mod sim;
pub mod stack;
pub mod tracing_cost;
pub mod waiting_fans;
pub mod web;

use std::path::PathBuf;

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
