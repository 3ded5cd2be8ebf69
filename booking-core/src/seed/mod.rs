//! The demo catalog: a 50,000-seat stadium and four smaller venues in
//! several cities, with events across categories, so that the local stack
//! has something to search, draw and sell. Idempotent: venues and events are
//! keyed by slug, and a second run changes nothing.

mod events;
mod venues;

use sqlx::PgPool;

use crate::catalog::{self, CatalogError};
use crate::venues::import::{self, ImportError};

pub use venues::{arena, club, hall, stadium, theatre};

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("venue: {0}")]
    Venue(#[from] ImportError),
    #[error("event: {0}")]
    Event(#[from] CatalogError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SeedReport {
    pub venues_created: usize,
    pub events_created: usize,
    pub venues: usize,
    pub events: usize,
}

pub async fn run(pool: &PgPool) -> Result<SeedReport, SeedError> {
    let mut report = SeedReport::default();
    for chart in [stadium(), arena(), theatre(), club(), hall()] {
        let outcome = import::create_venue(pool, &chart).await?;
        report.venues += 1;
        report.venues_created += usize::from(outcome.created);
    }
    let anchor = events::anchor(pool).await?;
    for spec in events::all(anchor) {
        let (_, created) = catalog::create_event(pool, &spec).await?;
        report.events += 1;
        report.events_created += usize::from(created);
    }
    // Fresh statistics after a bulk load, so the first plans are good ones.
    sqlx::query!("ANALYZE venues, sections, seats, events, event_tiers")
        .execute(pool)
        .await?;
    Ok(report)
}
