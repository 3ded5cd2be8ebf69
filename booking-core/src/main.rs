//! The booking-core binary: serve the API, migrate the schema, seed the demo
//! catalog, import charts and events, add portal operators, or generate a
//! key pair for fan tokens.

use std::path::PathBuf;

use anyhow::Context;
use booking_core::catalog::EventSpec;
use booking_core::config::Config;
use booking_core::portal::{Role, auth};
use booking_core::venues::import::{ChartSpec, ImportError, create_venue};
use booking_core::{app, db, seed};
use clap::{Parser, Subcommand};
use usher_shared::telemetry;

#[derive(Parser)]
#[command(name = "booking-core", about = "Usher's booking core")]
struct Cli {
    /// TOML configuration; environment variables USHER_CORE__<SECTION>__<KEY>
    /// and DATABASE_URL override it.
    #[arg(
        long,
        env = "USHER_CORE_CONFIG",
        default_value = "config/booking-core.toml",
        global = true
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API (migrating the schema first).
    Serve,
    /// Apply schema migrations and exit.
    Migrate,
    /// Migrate, then create the demo venues and events (idempotent).
    Seed,
    /// Migrate, then import a venue from a seating-chart JSON file (the
    /// format of `ChartSpec`, in the OpenAPI document) and, optionally, an
    /// event at it from an event JSON file; prints their ids as JSON.
    /// Idempotent by slug.
    Import {
        #[arg(long)]
        venue: PathBuf,
        #[arg(long)]
        event: Option<PathBuf>,
    },
    /// Venue-portal operators.
    #[command(subcommand)]
    Operator(OperatorCommand),
    /// Validate the configuration and exit.
    CheckConfig,
    /// Write an Ed25519 key pair <kid>.pem and <kid>.pub.pem, unless present.
    Keygen {
        #[arg(long)]
        out_dir: PathBuf,
        #[arg(long, default_value = "dev-1")]
        kid: String,
    },
}

#[derive(Subcommand)]
enum OperatorCommand {
    /// Migrate, then add an operator to an organisation (made if missing),
    /// or set the role, name and password of one already there. The
    /// password comes from USHER_OPERATOR_PASSWORD (never an argument: it
    /// would show in the process list and shell history).
    Add {
        /// The organisation's name.
        #[arg(long)]
        org: String,
        #[arg(long)]
        email: String,
        /// owner, editor or viewer.
        #[arg(long)]
        role: String,
        /// Kept as it is for an existing operator when not given.
        #[arg(long)]
        name: Option<String>,
    },
}

/// Logs (text or JSON, on standard error) and traces (exported over OTLP
/// when `trace.otlp_endpoint` is set); kept until `main` returns.
fn init_telemetry(config: &Config) -> anyhow::Result<telemetry::Telemetry> {
    telemetry::init(telemetry::Settings {
        service: "booking-core",
        format: config.log.format,
        filter: &config.log.filter,
        trace: &config.trace,
    })
    .context("setting up logs and traces")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Keygen { out_dir, kid } = &cli.command {
        return keygen(out_dir, kid);
    }
    let config = Config::load(&cli.config).with_context(|| format!("configuration {}", cli.config.display()))?;
    let _telemetry = init_telemetry(&config)?;
    match cli.command {
        Command::CheckConfig => {
            println!("configuration ok");
            Ok(())
        }
        Command::Migrate => {
            let pool = db::connect(&config.database)
                .await
                .context("connecting to the database")?;
            db::migrate(&pool).await.context("migrating")?;
            println!("schema up to date");
            Ok(())
        }
        Command::Seed => {
            let pool = db::connect(&config.database)
                .await
                .context("connecting to the database")?;
            db::migrate(&pool).await.context("migrating")?;
            let report = seed::run(&pool).await.context("seeding")?;
            println!(
                "seeded: {} venues ({} new), {} events ({} new), {} new operators",
                report.venues, report.venues_created, report.events, report.events_created, report.operators_created
            );
            Ok(())
        }
        Command::Import { venue, event } => {
            // Bad files are reported before anything is touched.
            let (chart, event) = read_import_files(&venue, event.as_deref())?;
            let pool = db::connect(&config.database)
                .await
                .context("connecting to the database")?;
            db::migrate(&pool).await.context("migrating")?;
            let (venue_id, event_id) = import(&pool, &venue, &chart, event.as_ref()).await?;
            println!(
                "{}",
                serde_json::json!({"venue_id": venue_id.0, "event_id": event_id.map(|e| e.0)})
            );
            Ok(())
        }
        Command::Operator(OperatorCommand::Add { org, email, role, name }) => {
            let role = Role::parse(&role).context("--role must be owner, editor or viewer")?;
            let password = std::env::var("USHER_OPERATOR_PASSWORD")
                .context("set the operator's password in USHER_OPERATOR_PASSWORD")?;
            let pool = db::connect(&config.database)
                .await
                .context("connecting to the database")?;
            db::migrate(&pool).await.context("migrating")?;
            let organisation = auth::ensure_organisation(&pool, &org).await?;
            let new = auth::NewOperator {
                organisation,
                email: &email,
                name: name.as_deref(),
                role,
                password: &password,
            };
            let outcome = auth::upsert_operator(&pool, &new, false).await?;
            println!(
                "{}",
                serde_json::json!({
                    "organisation_id": organisation.0,
                    "operator_id": outcome.id().0,
                    "created": matches!(outcome, auth::OperatorOutcome::Created(_)),
                })
            );
            Ok(())
        }
        Command::Serve => {
            wait_for_leader(&config.database).await?;
            let running = app::start(config).await.context("starting")?;
            let stop = running.stopper();
            tokio::spawn(async move {
                shutdown_signal().await;
                tracing::info!("shutting down");
                let _ = stop.send(true);
            });
            running.wait().await.context("serving")?;
            Ok(())
        }
        Command::Keygen { .. } => unreachable!("handled above"),
    }
}

/// Waits until a writable database leader answers and the schema is
/// migrated. Until then the service does not listen: the edge and the
/// orchestrator see it as not ready, and the log says why, instead of it
/// serving errors (or exiting in a loop while the cluster elects a leader).
/// A failed migration is not waited out: it needs a person.
async fn wait_for_leader(database: &booking_core::config::DatabaseConfig) -> anyhow::Result<()> {
    const RETRY: std::time::Duration = std::time::Duration::from_secs(2);
    loop {
        match db::connect(database).await {
            Ok(pool) => {
                let migrated = db::migrate(&pool).await;
                pool.close().await;
                match migrated {
                    Err(sqlx::migrate::MigrateError::Execute(e)) if db_unreachable(&e) => {
                        tracing::warn!(error = %e, "lost the database leader while migrating; waiting for one");
                    }
                    other => return other.context("migrating"),
                }
            }
            Err(e) if db_unreachable(&e) => {
                tracing::warn!(error = %e, "not serving yet: no writable database leader answers")
            }
            // Refused outright (a wrong password, no such database): a
            // setting to fix, not an outage to wait out.
            Err(e) => return Err(anyhow::Error::new(e).context("connecting to the database")),
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// A database that went away, as opposed to one that refused a statement.
fn db_unreachable(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Protocol(_)
    )
}

/// Reads a venue chart and, optionally, an event from JSON files.
fn read_import_files(
    venue: &std::path::Path,
    event: Option<&std::path::Path>,
) -> anyhow::Result<(ChartSpec, Option<EventSpec>)> {
    let read = |p: &std::path::Path| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
    let chart: ChartSpec =
        serde_json::from_slice(&read(venue)?).with_context(|| format!("{}: not a seating chart", venue.display()))?;
    let event = match event {
        Some(path) => {
            Some(serde_json::from_slice(&read(path)?).with_context(|| format!("{}: not an event", path.display()))?)
        }
        None => None,
    };
    Ok((chart, event))
}

/// Imports the venue and creates the event (an operator's bulk tool, and
/// how load scenarios set up their sale). Idempotent by slug.
async fn import(
    pool: &sqlx::PgPool,
    file: &std::path::Path,
    chart: &ChartSpec,
    event: Option<&EventSpec>,
) -> anyhow::Result<(booking_core::ids::VenueId, Option<booking_core::ids::EventId>)> {
    let outcome = match create_venue(pool, chart).await {
        Err(ImportError::Invalid(problems)) => {
            let list: Vec<String> = problems
                .iter()
                .map(|p| format!("  {}: {}", p.path, p.message))
                .collect();
            anyhow::bail!(
                "{}: the seating chart has problems:\n{}",
                file.display(),
                list.join("\n")
            );
        }
        other => other?,
    };
    let event_id = match event {
        Some(spec) => Some(booking_core::catalog::create_event(pool, spec).await?.0),
        None => None,
    };
    Ok((outcome.venue_id, event_id))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

fn keygen(out_dir: &std::path::Path, kid: &str) -> anyhow::Result<()> {
    let private = out_dir.join(format!("{kid}.pem"));
    let public = out_dir.join(format!("{kid}.pub.pem"));
    if private.exists() && public.exists() {
        println!("keys already present in {}", out_dir.display());
        return Ok(());
    }
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let pair = usher_shared::keys::generate_pair();
    std::fs::write(&private, pair.private_pem).with_context(|| format!("writing {}", private.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600))?;
    }
    std::fs::write(&public, pair.public_pem).with_context(|| format!("writing {}", public.display()))?;
    println!("wrote {} and {}", private.display(), public.display());
    Ok(())
}
