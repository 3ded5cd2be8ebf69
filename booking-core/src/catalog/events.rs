//! One event: creating it (idempotent by slug) and reading its page.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};

use crate::catalog::CatalogError;
use crate::catalog::search::{Category, VenueRef};
use crate::ids::{Cents, EventId, VenueId};

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TierSpec {
    pub tier: i16,
    pub name: String,
    pub price_cents: Cents,
}

/// What an operator (or the seeder) says an event is.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventSpec {
    pub slug: String,
    pub venue_slug: String,
    pub title: String,
    pub artist: String,
    pub category: Category,
    pub description: String,
    pub starts_at: DateTime<Utc>,
    pub on_sale_at: DateTime<Utc>,
    pub rules: EventRules,
    pub tiers: Vec<TierSpec>,
}

/// The per-event rules that holds obey.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventRules {
    /// How long a hold lasts before jitter.
    pub hold_ttl_secs: i32,
    /// Each hold's expiry moves by a random amount within +/- this.
    pub hold_jitter_secs: i32,
    /// Seats one fan may hold and buy for this event, in total.
    pub max_seats_per_fan: i32,
    /// Holds need the edge's admission token.
    pub protected: bool,
}

impl Default for EventRules {
    fn default() -> Self {
        EventRules {
            hold_ttl_secs: 300,
            hold_jitter_secs: 30,
            max_seats_per_fan: 8,
            protected: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TierPrice {
    pub tier: i16,
    pub name: String,
    pub price_cents: Cents,
}

/// An event's page.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EventDetail {
    pub id: EventId,
    pub slug: String,
    pub title: String,
    pub artist: String,
    pub category: Category,
    pub description: String,
    pub starts_at: DateTime<Utc>,
    pub on_sale_at: DateTime<Utc>,
    /// Whether holds can be made now (on sale, not cancelled, not started).
    pub on_sale: bool,
    pub cancelled: bool,
    pub venue: VenueRef,
    pub tiers: Vec<TierPrice>,
    pub rules: EventRules,
    /// The seat map's address (static geometry, long-cached).
    pub seatmap_url: String,
    /// Every seat's state now (never cached).
    pub availability_url: String,
    pub server_time: DateTime<Utc>,
}

/// Stores the event unless one with the same slug exists already (then
/// nothing changes and the existing id is returned).
pub async fn create_event(pool: &PgPool, spec: &EventSpec) -> Result<(EventId, bool), CatalogError> {
    let mut tx = pool.begin().await?;
    let outcome = insert_event(&mut tx, spec).await?;
    tx.commit().await?;
    Ok(outcome)
}

/// As `create_event`, inside the caller's transaction (the portal writes the
/// event's policy in the same one). The event belongs to its venue's
/// organisation.
pub async fn insert_event(tx: &mut PgConnection, spec: &EventSpec) -> Result<(EventId, bool), CatalogError> {
    if spec.on_sale_at > spec.starts_at {
        return Err(CatalogError::Invalid("on_sale_at is after starts_at".into()));
    }
    if spec.tiers.is_empty() {
        return Err(CatalogError::Invalid("an event needs at least one price tier".into()));
    }
    let venue = sqlx::query!(
        "SELECT id, organisation_id FROM venues WHERE slug = $1",
        spec.venue_slug
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| CatalogError::UnknownVenue(spec.venue_slug.clone()))?;
    let r = spec.rules;
    let inserted = sqlx::query_scalar!(
        r#"INSERT INTO events (slug, venue_id, title, artist, category, description, starts_at, on_sale_at,
                               hold_ttl_secs, hold_jitter_secs, max_seats_per_fan, protected, organisation_id)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
           ON CONFLICT (slug) DO NOTHING
           RETURNING id"#,
        spec.slug,
        venue.id,
        spec.title,
        spec.artist,
        spec.category.as_str(),
        spec.description,
        spec.starts_at,
        spec.on_sale_at,
        r.hold_ttl_secs,
        r.hold_jitter_secs,
        r.max_seats_per_fan,
        r.protected,
        venue.organisation_id,
    )
    .fetch_optional(&mut *tx)
    .await
    .map_err(|e| match e {
        sqlx::Error::Database(d) if d.is_check_violation() => CatalogError::Invalid(d.message().to_string()),
        other => CatalogError::Db(other),
    })?;
    let Some(event_id) = inserted else {
        let existing = sqlx::query_scalar!("SELECT id FROM events WHERE slug = $1", spec.slug)
            .fetch_one(&mut *tx)
            .await?;
        return Ok((EventId(existing), false));
    };
    let tiers: Vec<i16> = spec.tiers.iter().map(|t| t.tier).collect();
    let names: Vec<String> = spec.tiers.iter().map(|t| t.name.clone()).collect();
    let prices: Vec<i64> = spec.tiers.iter().map(|t| t.price_cents.0).collect();
    sqlx::query!(
        r#"INSERT INTO event_tiers (event_id, tier, name, price_cents)
           SELECT $1, * FROM unnest($2::smallint[], $3::text[], $4::bigint[])"#,
        event_id,
        &tiers,
        &names,
        &prices,
    )
    .execute(&mut *tx)
    .await
    .map_err(|e| match e {
        sqlx::Error::Database(d) if d.is_check_violation() || d.is_unique_violation() => {
            CatalogError::Invalid(d.message().to_string())
        }
        other => CatalogError::Db(other),
    })?;
    Ok((EventId(event_id), true))
}

pub async fn get_event(pool: &PgPool, id: EventId) -> Result<Option<EventDetail>, CatalogError> {
    let Some(e) = sqlx::query!(
        r#"SELECT e.id, e.slug, e.title, e.artist, e.category, e.description, e.starts_at, e.on_sale_at,
                  e.cancelled, e.hold_ttl_secs, e.hold_jitter_secs, e.max_seats_per_fan, e.protected,
                  v.id AS venue_id, v.name AS venue_name, v.city, v.country, v.timezone,
                  now() AS "now!"
           FROM events e JOIN venues v ON v.id = e.venue_id
           WHERE e.id = $1"#,
        id.0
    )
    .fetch_optional(pool)
    .await?
    else {
        return Ok(None);
    };
    let tiers = sqlx::query_as!(
        TierPrice,
        r#"SELECT tier, name, price_cents AS "price_cents: Cents" FROM event_tiers WHERE event_id = $1 ORDER BY tier"#,
        id.0
    )
    .fetch_all(pool)
    .await?;
    Ok(Some(EventDetail {
        id: EventId(e.id),
        slug: e.slug,
        title: e.title,
        artist: e.artist,
        category: Category::parse(&e.category).unwrap_or(Category::Concert),
        description: e.description,
        on_sale: !e.cancelled && e.on_sale_at <= e.now && e.now < e.starts_at,
        starts_at: e.starts_at,
        on_sale_at: e.on_sale_at,
        cancelled: e.cancelled,
        venue: VenueRef {
            id: VenueId(e.venue_id),
            name: e.venue_name,
            city: e.city,
            country: e.country,
            timezone: e.timezone,
        },
        tiers,
        rules: EventRules {
            hold_ttl_secs: e.hold_ttl_secs,
            hold_jitter_secs: e.hold_jitter_secs,
            max_seats_per_fan: e.max_seats_per_fan,
            protected: e.protected,
        },
        seatmap_url: format!("/v1/venues/{}/seatmap", e.venue_id),
        availability_url: format!("/v1/events/{}/availability", e.id),
        server_time: e.now,
    }))
}
