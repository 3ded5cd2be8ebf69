//! The PostgreSQL pool and the schema migrations embedded in the binary.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};

use crate::config::DatabaseConfig;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub async fn connect(config: &DatabaseConfig) -> Result<PgPool, sqlx::Error> {
    let options: PgConnectOptions = config.url.parse()?;
    pool(config, options).await
}

/// For bulk work (seeding 50,000 seats), where a statement is expected to
/// run for seconds and a slow-statement warning would only be noise.
pub async fn connect_for_bulk(config: &DatabaseConfig) -> Result<PgPool, sqlx::Error> {
    let options: PgConnectOptions = config.url.parse()?;
    pool(config, options.disable_statement_logging()).await
}

async fn pool(config: &DatabaseConfig, options: PgConnectOptions) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(Duration::from_millis(config.acquire_timeout_ms))
        .connect_with(options.application_name("booking-core"))
        .await
}

/// A pool of one connection of its own for the readiness probe, so that an
/// instance busy serving an on-sale (every pooled connection in use, fans
/// queued for one) still answers "the database answers" at once, instead of
/// queueing the probe behind the fans and being taken out of rotation for
/// being busy. Connected on first use.
pub fn probe(config: &DatabaseConfig) -> Result<PgPool, sqlx::Error> {
    let options: PgConnectOptions = config.url.parse()?;
    Ok(PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_millis(config.acquire_timeout_ms.min(2_000)))
        .connect_lazy_with(options.application_name("booking-core readiness")))
}

pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}
