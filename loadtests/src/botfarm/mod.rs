//! The bot-farm simulation (`usher-load botfarm`): ordinary fans from many
//! networks and a bot farm from a few (solvers, puzzle skippers, replayers
//! of one solution, thieves of other clients' queue tokens), all over HTTP
//! through the edge on their own loopback source addresses, against the
//! whole stack the on-sale simulator starts. Run with the edge's defences
//! (the scenario's `[defence]` tables) and without them; the report says
//! who bought the seats, which fans the defences wrongly touched, what
//! happened to each kind of bot and what the edge counted, and the run
//! fails if the goals are missed with defences on or a seat was sold twice.
//! The model is documented in `loadtests/scenarios/botfarm.toml`.
//!
//! The parts: `scenario` (the farm's TOML and the simulator's scenario it
//! starts the stack with), `world` (what every participant shares),
//! `client` (one client as the edge sees it), `door` (joining and waiting),
//! `shop` (holding and paying), `fan` and `bot` (one participant's run),
//! `run` (one run of the farm against a fresh stack), `books` (what the
//! run checks afterwards), `outcome` (what a run produced) and `report`.

mod books;
mod bot;
mod client;
mod door;
mod fan;
pub mod outcome;
pub mod report;
mod run;
pub mod scenario;
mod shop;
mod world;

use std::path::PathBuf;

use anyhow::{Context, bail};

use crate::sim::stack::{Bins, StackPlace};

pub use outcome::{BotKind, BotOut, FanOut, FarmRun};
pub use report::report;
pub use run::run_farm;
pub use scenario::FarmScenario;

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The farm's scenario.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/botfarm.toml"))]
    pub scenario: PathBuf,
    #[command(flatten)]
    pub stack: StackPlace,
    /// Also write the Markdown report here (e.g. loadtests/reports/botfarm.md).
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Only the run with defences on.
    #[arg(long)]
    pub defences_only: bool,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let sc = FarmScenario::load(&args.scenario)?;
    let bins = Bins::in_dir(&args.stack.bin_dir);
    eprintln!(
        "bot farm {}: {} fans, {} bot join attempts from {} networks, {} seats",
        sc.name,
        sc.fans.count,
        sc.bots.attempts,
        sc.bots.networks,
        sc.venue.generated_seats()
    );
    eprintln!("run 1: defences on...");
    let on = run_farm(&sc, &bins, &args.stack.database_url, true).await?;
    let off = if args.defences_only {
        None
    } else {
        eprintln!("run 2: defences off...");
        Some(run_farm(&sc, &bins, &args.stack.database_url, false).await?)
    };
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let report = report(&sc, &on, off.as_ref(), &command);
    println!("{report}");
    if let Some(path) = &args.report {
        std::fs::write(path, &report).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("report: {}", path.display());
    }
    let mut failures = on.violations();
    if let Some(off) = &off {
        failures.extend(off.violations().into_iter().map(|v| format!("(defences off) {v}")));
    }
    failures.extend(on.missed_goals(&sc.goals));
    if !failures.is_empty() {
        bail!("the bot farm's checks failed:\n  {}", failures.join("\n  "));
    }
    Ok(())
}
