//! Reading a venue's chart from PostgreSQL into a `VenueMap`.

use sqlx::PgPool;

use crate::ids::{SeatId, VenueId};
use crate::venues::chart::{ChartOrderError, ChartSeat, VenueMap, VenueSummary};

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Order(#[from] ChartOrderError),
}

pub async fn load_map(pool: &PgPool, venue_id: VenueId) -> Result<Option<VenueMap>, LoadError> {
    let Some(v) = sqlx::query!(
        "SELECT id, slug, name, city, country, timezone, focal_x, focal_y, geometry_hash FROM venues WHERE id = $1",
        venue_id.0
    )
    .fetch_optional(pool)
    .await?
    else {
        return Ok(None);
    };
    let sections = sqlx::query!(
        "SELECT id, code, name FROM sections WHERE venue_id = $1 ORDER BY id",
        venue_id.0
    )
    .fetch_all(pool)
    .await?;
    let position: std::collections::HashMap<i64, u32> =
        sections.iter().enumerate().map(|(i, s)| (s.id, i as u32)).collect();
    let rows = sqlx::query!(
        r#"SELECT id, section_id, row_label, row_no, seat_no, label, x, y, tier, accessible, obstructed
           FROM seats WHERE venue_id = $1 ORDER BY idx"#,
        venue_id.0
    )
    .fetch_all(pool)
    .await?;
    let seats = rows
        .into_iter()
        .map(|r| ChartSeat {
            id: SeatId(r.id),
            section: position.get(&r.section_id).copied().unwrap_or(u32::MAX),
            row_no: r.row_no,
            row_label: r.row_label,
            seat_no: r.seat_no,
            label: r.label,
            x: r.x,
            y: r.y,
            tier: r.tier,
            accessible: r.accessible,
            obstructed: r.obstructed,
        })
        .collect();
    let summary = VenueSummary {
        id: VenueId(v.id),
        slug: v.slug,
        name: v.name,
        city: v.city,
        country: v.country,
        timezone: v.timezone,
    };
    let map = VenueMap::build(
        summary,
        (v.focal_x, v.focal_y),
        v.geometry_hash,
        sections.into_iter().map(|s| (s.code, s.name)).collect(),
        seats,
    )?;
    Ok(Some(map))
}
