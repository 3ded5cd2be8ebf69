//! An organisation's venues: the list, and importing a chart (checked, or
//! previewed without storing) as a venue the organisation owns.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

use crate::ids::{OrganisationId, VenueId};
use crate::portal::PortalError;
use crate::portal::charts::{self, ChartPreview};
use crate::venues::import::{self, ChartSpec};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct VenueItem {
    pub id: VenueId,
    pub slug: String,
    pub name: String,
    pub city: String,
    pub country: String,
    pub timezone: String,
    pub seat_count: i32,
    pub created_at: DateTime<Utc>,
}

pub async fn list(pool: &PgPool, org: OrganisationId) -> Result<Vec<VenueItem>, PortalError> {
    let rows = sqlx::query_as!(
        VenueItem,
        r#"SELECT id AS "id: VenueId", slug, name, city, country, timezone, seat_count, created_at
           FROM venues WHERE organisation_id = $1 ORDER BY id"#,
        org.0
    )
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

/// The venue, if it is this organisation's.
pub async fn get(pool: &PgPool, org: OrganisationId, venue: VenueId) -> Result<VenueItem, PortalError> {
    sqlx::query_as!(
        VenueItem,
        r#"SELECT id AS "id: VenueId", slug, name, city, country, timezone, seat_count, created_at
           FROM venues WHERE id = $1 AND organisation_id = $2"#,
        venue.0,
        org.0
    )
    .fetch_optional(pool)
    .await?
    .ok_or(PortalError::VenueNotFound)
}

/// What an import did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Imported {
    pub venue: VenueItem,
    /// False when this very chart was already stored under its slug.
    pub created: bool,
}

/// Checks a chart and says what it would make, storing nothing.
pub fn dry_run(spec: &ChartSpec) -> Result<ChartPreview, PortalError> {
    let problems = spec.problems();
    if !problems.is_empty() {
        return Err(PortalError::ChartInvalid { problems });
    }
    Ok(charts::preview(spec))
}

/// Stores the chart as a venue of the organisation (idempotent by slug
/// within the organisation: the same chart again changes nothing).
#[tracing::instrument(skip_all, fields(org = org.0, slug = %spec.slug))]
pub async fn import(pool: &PgPool, org: OrganisationId, spec: &ChartSpec) -> Result<Imported, PortalError> {
    let outcome = import::create_venue_for(pool, spec, Some(org)).await?;
    let venue = get(pool, org, outcome.venue_id).await?;
    Ok(Imported {
        venue,
        created: outcome.created,
    })
}
