//! The demo catalog: a 50,000-seat stadium and four smaller venues in
//! several cities, with events across categories, so that the local stack
//! has something to search, draw and sell. Idempotent: venues and events are
//! keyed by slug, and a second run changes nothing.
//!
//! It also makes two organisations for the venue portal: "Meridian Live",
//! owning every demo venue and event, with an owner and a viewer, and
//! "Harbour Events", owning nothing, to show that organisations are kept
//! apart. Their operators' password is `usher-demo` (local stack only).

mod events;
mod venues;

use sqlx::PgPool;

use crate::catalog::{self, CatalogError};
use crate::portal::PortalError;
use crate::portal::Role;
use crate::portal::auth::{self, NewOperator, OperatorOutcome};
use crate::venues::import::{self, ImportError};

pub use venues::{arena, club, hall, stadium, theatre};

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("venue: {0}")]
    Venue(#[from] ImportError),
    #[error("event: {0}")]
    Event(#[from] CatalogError),
    #[error("operators: {0}")]
    Operators(#[from] PortalError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SeedReport {
    pub venues_created: usize,
    pub events_created: usize,
    pub venues: usize,
    pub events: usize,
    pub operators_created: usize,
}

/// The demo operators' password (local stack only).
pub const DEMO_PASSWORD: &str = "usher-demo";

/// Organisation, e-mail, name and role of each demo operator.
const OPERATORS: [(&str, &str, &str, Role); 3] = [
    ("Meridian Live", "ops@meridian.example", "Meridian Ops", Role::Owner),
    (
        "Meridian Live",
        "viewer@meridian.example",
        "Meridian Viewer",
        Role::Viewer,
    ),
    ("Harbour Events", "ops@harbour.example", "Harbour Ops", Role::Owner),
];

pub async fn run(pool: &PgPool) -> Result<SeedReport, SeedError> {
    let mut report = SeedReport::default();
    let meridian = auth::ensure_organisation(pool, "Meridian Live").await?;
    let charts = [stadium(), arena(), theatre(), club(), hall()];
    let slugs: Vec<String> = charts.iter().map(|c| c.slug.clone()).collect();
    // Demo venues stored before organisations existed join Meridian first
    // (otherwise their slugs would count as another owner's); their events
    // follow below.
    sqlx::query!(
        "UPDATE venues SET organisation_id = $1 WHERE slug = ANY($2) AND organisation_id IS NULL",
        meridian.0,
        &slugs
    )
    .execute(pool)
    .await?;
    for chart in &charts {
        let outcome = import::create_venue_for(pool, chart, Some(meridian)).await?;
        report.venues += 1;
        report.venues_created += usize::from(outcome.created);
    }
    let anchor = events::anchor(pool).await?;
    for spec in events::all(anchor) {
        let (_, created) = catalog::create_event(pool, &spec).await?;
        report.events += 1;
        report.events_created += usize::from(created);
    }
    sqlx::query!(
        r#"UPDATE events e SET organisation_id = v.organisation_id
           FROM venues v
           WHERE v.id = e.venue_id AND e.organisation_id IS NULL AND v.organisation_id IS NOT NULL
             AND v.slug = ANY($1)"#,
        &slugs
    )
    .execute(pool)
    .await?;
    for (org, email, name, role) in OPERATORS {
        let organisation = auth::ensure_organisation(pool, org).await?;
        let new = NewOperator {
            organisation,
            email,
            name: Some(name),
            role,
            password: DEMO_PASSWORD,
        };
        // Only if missing: a second seed neither rehashes nor resets passwords.
        if let OperatorOutcome::Created(_) = auth::upsert_operator(pool, &new, true).await? {
            report.operators_created += 1;
        }
    }
    // Fresh statistics after a bulk load, so the first plans are good ones.
    sqlx::query!("ANALYZE venues, sections, seats, events, event_tiers")
        .execute(pool)
        .await?;
    Ok(report)
}
