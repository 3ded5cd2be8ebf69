//! The PostgreSQL pools (the leader's, the replicas' for stale-tolerant
//! reads, the readiness probe's, the metrics scrape's) and the schema
//! migrations embedded in the binary.
//!
//! Across a failover: a connection that breaks is dropped by the pool and
//! the next one is made through `database.url` to whichever node leads now;
//! a new connection that lands on a replica (the router has not caught up)
//! is refused, so writes never meet a read-only node for long; a request
//! that cannot get a connection within `acquire_timeout_ms` answers 503.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};

use crate::config::DatabaseConfig;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub async fn connect(config: &DatabaseConfig) -> Result<PgPool, sqlx::Error> {
    let options: PgConnectOptions = config.url.as_str().parse()?;
    pool(config, options).await
}

/// For bulk work (seeding 50,000 seats), where a statement is expected to
/// run for seconds and a slow-statement warning would only be noise.
pub async fn connect_for_bulk(config: &DatabaseConfig) -> Result<PgPool, sqlx::Error> {
    let options: PgConnectOptions = config.url.as_str().parse()?;
    pool(config, options.disable_statement_logging()).await
}

async fn pool(config: &DatabaseConfig, options: PgConnectOptions) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(Duration::from_millis(config.acquire_timeout_ms))
        .after_connect(|conn, _| Box::pin(async move { refuse_replica(conn).await }))
        .connect_with(options.application_name("booking-core"))
        .await
}

/// The replicas' pool, for reads that may be a moment stale; `None` when no
/// `read_url` is set (those reads then use the leader's pool). Lazy: a
/// replica down at start does not stop the service.
pub fn replicas(config: &DatabaseConfig) -> Result<Option<PgPool>, sqlx::Error> {
    let Some(url) = &config.read_url else {
        return Ok(None);
    };
    let options: PgConnectOptions = url.as_str().parse()?;
    Ok(Some(
        PgPoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(Duration::from_millis(config.acquire_timeout_ms))
            .connect_lazy_with(options.application_name("booking-core reads")),
    ))
}

/// Why this node cannot take writes, if it cannot: it is a replica.
async fn read_only(conn: &mut sqlx::PgConnection) -> Result<Option<&'static str>, sqlx::Error> {
    let replica: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()").fetch_one(conn).await?;
    Ok(replica.then_some("the database answering is a read-only replica, not the leader"))
}

async fn refuse_replica(conn: &mut sqlx::PgConnection) -> Result<(), sqlx::Error> {
    match read_only(conn).await? {
        Some(why) => Err(sqlx::Error::Protocol(why.into())),
        None => Ok(()),
    }
}

/// Why no database leader answers the readiness probe.
#[derive(Debug, thiserror::Error)]
pub enum NoLeader {
    #[error("database unreachable: {0}")]
    Unreachable(sqlx::Error),
    #[error("the database answering is a read-only replica, not the leader")]
    Replica,
    #[error("the database did not answer within {} ms", PROBE_QUERY_DEADLINE.as_millis())]
    Silent,
}

/// The readiness probe's bound on getting its connection (it pings first,
/// so a silent node costs this much at most).
const PROBE_ACQUIRE_MS: u64 = 1_000;
/// The readiness question's own deadline, once it has a connection.
const PROBE_QUERY_DEADLINE: Duration = Duration::from_millis(1_000);

impl NoLeader {
    /// What the readiness answer says, without the cause's detail (host
    /// names, addresses), which only the log carries.
    pub fn code(&self) -> &'static str {
        match self {
            NoLeader::Unreachable(_) | NoLeader::Silent => "database_unreachable",
            NoLeader::Replica => "database_read_only",
        }
    }
}

/// Whether a writable database leader answers on the probe's connection.
pub async fn leader_answers(probe: &PgPool) -> Result<(), NoLeader> {
    let mut conn = probe.acquire().await.map_err(NoLeader::Unreachable)?;
    // A paused node keeps the connection open and says nothing: bounded, so
    // readiness answers "no" well before any caller gives up on it.
    let why = match tokio::time::timeout(PROBE_QUERY_DEADLINE, read_only(&mut conn)).await {
        Ok(Ok(None)) => return Ok(()),
        Ok(Ok(Some(_))) => NoLeader::Replica,
        Ok(Err(e)) => NoLeader::Unreachable(e),
        Err(_) => NoLeader::Silent,
    };
    // The next check connects afresh, through whatever routes to the
    // leader by then, instead of asking the demoted node again.
    conn.close_on_drop();
    Err(why)
}

/// A pool of one connection of its own for the readiness probe, so that an
/// instance busy serving an on-sale (every pooled connection in use, fans
/// queued for one) still answers "the database answers" at once, instead of
/// queueing the probe behind the fans and being taken out of rotation for
/// being busy. Connected on first use.
pub fn probe(config: &DatabaseConfig) -> Result<PgPool, sqlx::Error> {
    single(config, "booking-core readiness")
}

/// The metrics scrape's own connection (its backlog query), for the same
/// reason as the probe's: a scrape neither takes a fan's connection nor
/// waits behind fans for one. Connected on first use.
pub fn for_metrics(config: &DatabaseConfig) -> Result<PgPool, sqlx::Error> {
    single(config, "booking-core metrics")
}

fn single(config: &DatabaseConfig, name: &str) -> Result<PgPool, sqlx::Error> {
    let options: PgConnectOptions = config.url.as_str().parse()?;
    Ok(PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_millis(config.acquire_timeout_ms.min(PROBE_ACQUIRE_MS)))
        .connect_lazy_with(options.application_name(name)))
}

pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}
