//! Writing a venue from a seating-chart spec: validation with a precise list
//! of problems, then one transaction that stores the venue, its sections and
//! its seats in seat-map order. Idempotent by slug: importing the same chart
//! twice changes nothing; a different chart under a taken slug is refused.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::ids::{OrganisationId, VenueId};

/// Most seats one venue may have.
pub const MAX_SEATS: usize = 200_000;

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChartSpec {
    pub slug: String,
    pub name: String,
    pub city: String,
    /// ISO 3166-1 alpha-2, e.g. `GB`.
    pub country: String,
    /// IANA zone, e.g. `Europe/London`.
    pub timezone: String,
    pub focal: Point,
    pub sections: Vec<SectionSpec>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Point {
    pub x: f32,
    pub y: f32,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SectionSpec {
    pub code: String,
    pub name: String,
    pub rows: Vec<RowSpec>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RowSpec {
    pub label: String,
    pub seats: Vec<SeatSpec>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SeatSpec {
    /// Position along the row; consecutive numbers sit side by side.
    pub number: i32,
    /// What is printed on the seat, if not the number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub x: f32,
    pub y: f32,
    pub tier: i16,
    #[serde(default)]
    pub accessible: bool,
    #[serde(default)]
    pub obstructed: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ChartProblem {
    /// The line of the file, when the chart came from one a person can open
    /// (CSV, or JSON that did not parse); 1-based.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// Where in the chart, e.g. `sections[3].rows[0].seats[12].tier` (for
    /// CSV: the column, or the venue field).
    pub path: String,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("the seating chart has {} problem(s)", .0.len())]
    Invalid(Vec<ChartProblem>),
    #[error("a different venue already uses the slug {0:?}")]
    SlugTaken(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportOutcome {
    pub venue_id: VenueId,
    pub created: bool,
}

impl ChartSpec {
    pub fn seat_count(&self) -> usize {
        self.sections.iter().flat_map(|s| &s.rows).map(|r| r.seats.len()).sum()
    }

    /// Every problem, with its path; empty when the chart is sound.
    pub fn problems(&self) -> Vec<ChartProblem> {
        let mut out = Vec::new();
        let mut bad = |path: String, message: &str| {
            out.push(ChartProblem {
                line: None,
                path,
                message: message.to_string(),
            })
        };
        let slug_ok = !self.slug.is_empty()
            && self.slug.len() <= 64
            && self
                .slug
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !self.slug.starts_with('-');
        if !slug_ok {
            bad(
                "slug".into(),
                "must be 1-64 characters of a-z, 0-9 and '-', not starting with '-'",
            );
        }
        for (field, value, max) in [("name", &self.name, 200), ("city", &self.city, 100)] {
            if value.trim().is_empty() || value.chars().count() > max {
                bad(field.into(), &format!("must be 1-{max} characters"));
            }
        }
        if !(self.country.len() == 2 && self.country.bytes().all(|b| b.is_ascii_uppercase())) {
            bad("country".into(), "must be an ISO 3166-1 alpha-2 code such as GB");
        }
        if self.timezone.trim().is_empty() || !self.timezone.contains('/') && self.timezone != "UTC" {
            bad("timezone".into(), "must be an IANA time zone such as Europe/London");
        }
        if !(self.focal.x.is_finite() && self.focal.y.is_finite()) {
            bad("focal".into(), "must be finite coordinates");
        }
        if self.sections.is_empty() {
            bad("sections".into(), "a chart needs at least one section");
        }
        let total = self.seat_count();
        if total > MAX_SEATS {
            bad(
                "sections".into(),
                &format!("{total} seats is more than the {MAX_SEATS} allowed"),
            );
        }
        let mut codes = HashSet::new();
        for (si, section) in self.sections.iter().enumerate() {
            let sp = format!("sections[{si}]");
            if section.code.is_empty() || section.code.len() > 32 {
                bad(format!("{sp}.code"), "must be 1-32 characters");
            }
            if !codes.insert(section.code.as_str()) {
                bad(
                    format!("{sp}.code"),
                    &format!("section code {:?} is used twice", section.code),
                );
            }
            if section.rows.is_empty() {
                bad(format!("{sp}.rows"), "a section needs at least one row");
            }
            let mut labels = HashSet::new();
            for (ri, row) in section.rows.iter().enumerate() {
                let rp = format!("{sp}.rows[{ri}]");
                if row.label.is_empty() || row.label.len() > 16 {
                    bad(format!("{rp}.label"), "must be 1-16 characters");
                }
                if !labels.insert(row.label.as_str()) {
                    bad(
                        format!("{rp}.label"),
                        &format!("row {:?} appears twice in this section", row.label),
                    );
                }
                if row.seats.is_empty() {
                    bad(format!("{rp}.seats"), "a row needs at least one seat");
                }
                let mut last: Option<i32> = None;
                for (ki, seat) in row.seats.iter().enumerate() {
                    let kp = format!("{rp}.seats[{ki}]");
                    if let Some(prev) = last
                        && seat.number <= prev
                    {
                        bad(format!("{kp}.number"), "seat numbers must rise strictly along a row");
                    }
                    last = Some(seat.number);
                    if !(1..=9).contains(&seat.tier) {
                        bad(format!("{kp}.tier"), "must be 1-9");
                    }
                    if !(seat.x.is_finite() && seat.y.is_finite()) {
                        bad(kp.clone(), "x and y must be finite numbers");
                    }
                    if let Some(label) = &seat.label
                        && (label.is_empty() || label.len() > 16)
                    {
                        bad(format!("{kp}.label"), "must be 1-16 characters");
                    }
                }
            }
        }
        out
    }

    /// A content hash of the geometry (not the name or city): the ETag.
    pub fn geometry_hash(&self) -> String {
        let geometry = (&self.focal, &self.sections);
        // Serialising plain structs cannot fail.
        let bytes = serde_json::to_vec(&geometry).expect("serialise chart");
        let digest = Sha256::digest(&bytes);
        let hex = hex::encode(&digest[..12]);
        format!("g-{hex}")
    }
}

/// Stores the venue unless the same chart is already stored under its slug.
pub async fn create_venue(pool: &PgPool, spec: &ChartSpec) -> Result<ImportOutcome, ImportError> {
    create_venue_for(pool, spec, None).await
}

/// As `create_venue`, the venue owned by `owner` (an operator's import). A
/// slug already used by a venue of another owner counts as taken, even for
/// the same chart, so an import never hands one organisation another's venue.
pub async fn create_venue_for(
    pool: &PgPool,
    spec: &ChartSpec,
    owner: Option<OrganisationId>,
) -> Result<ImportOutcome, ImportError> {
    let problems = spec.problems();
    if !problems.is_empty() {
        return Err(ImportError::Invalid(problems));
    }
    let hash = spec.geometry_hash();
    let mut tx = pool.begin().await?;
    let inserted = sqlx::query_scalar!(
        r#"INSERT INTO venues (slug, name, city, country, timezone, focal_x, focal_y, geometry_hash, seat_count, organisation_id)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
           ON CONFLICT (slug) DO NOTHING
           RETURNING id"#,
        spec.slug,
        spec.name,
        spec.city,
        spec.country,
        spec.timezone,
        spec.focal.x,
        spec.focal.y,
        hash,
        spec.seat_count() as i32,
        owner.map(|o| o.0),
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(venue_id) = inserted else {
        let existing = sqlx::query!(
            "SELECT id, geometry_hash, organisation_id FROM venues WHERE slug = $1",
            spec.slug
        )
        .fetch_one(&mut *tx)
        .await?;
        let same_owner = owner.is_none() || existing.organisation_id == owner.map(|o| o.0);
        return if existing.geometry_hash == hash && same_owner {
            Ok(ImportOutcome {
                venue_id: VenueId(existing.id),
                created: false,
            })
        } else {
            Err(ImportError::SlugTaken(spec.slug.clone()))
        };
    };

    let codes: Vec<String> = spec.sections.iter().map(|s| s.code.clone()).collect();
    let names: Vec<String> = spec.sections.iter().map(|s| s.name.clone()).collect();
    let by_code: std::collections::HashMap<String, i64> = sqlx::query!(
        r#"INSERT INTO sections (venue_id, code, name)
           SELECT $1, code, name FROM unnest($2::text[], $3::text[]) AS s(code, name)
           RETURNING id, code"#,
        venue_id,
        &codes,
        &names,
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|r| (r.code, r.id))
    .collect();

    let n = spec.seat_count();
    let mut cols = SeatColumns::with_capacity(n);
    for section in &spec.sections {
        let section_id = by_code[&section.code];
        for (ri, row) in section.rows.iter().enumerate() {
            for seat in &row.seats {
                cols.push(section_id, ri as i32 + 1, &row.label, seat);
            }
        }
    }
    sqlx::query!(
        r#"INSERT INTO seats (venue_id, section_id, idx, row_label, row_no, seat_no, label, x, y, tier, accessible, obstructed)
           SELECT $1, section_id, idx - 1, row_label, row_no, seat_no, label, x, y, tier, accessible, obstructed
           FROM unnest($2::bigint[], $3::text[], $4::int[], $5::int[], $6::text[], $7::real[], $8::real[],
                       $9::smallint[], $10::bool[], $11::bool[])
                WITH ORDINALITY AS s(section_id, row_label, row_no, seat_no, label, x, y, tier, accessible, obstructed, idx)"#,
        venue_id,
        &cols.section_id,
        &cols.row_label,
        &cols.row_no,
        &cols.seat_no,
        &cols.label,
        &cols.x,
        &cols.y,
        &cols.tier,
        &cols.accessible,
        &cols.obstructed,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(ImportOutcome {
        venue_id: VenueId(venue_id),
        created: true,
    })
}

/// Seats as parallel arrays, the shape `unnest` bulk inserts want.
struct SeatColumns {
    section_id: Vec<i64>,
    row_label: Vec<String>,
    row_no: Vec<i32>,
    seat_no: Vec<i32>,
    label: Vec<String>,
    x: Vec<f32>,
    y: Vec<f32>,
    tier: Vec<i16>,
    accessible: Vec<bool>,
    obstructed: Vec<bool>,
}

impl SeatColumns {
    fn with_capacity(n: usize) -> Self {
        SeatColumns {
            section_id: Vec::with_capacity(n),
            row_label: Vec::with_capacity(n),
            row_no: Vec::with_capacity(n),
            seat_no: Vec::with_capacity(n),
            label: Vec::with_capacity(n),
            x: Vec::with_capacity(n),
            y: Vec::with_capacity(n),
            tier: Vec::with_capacity(n),
            accessible: Vec::with_capacity(n),
            obstructed: Vec::with_capacity(n),
        }
    }

    fn push(&mut self, section_id: i64, row_no: i32, row_label: &str, seat: &SeatSpec) {
        self.section_id.push(section_id);
        self.row_label.push(row_label.to_owned());
        self.row_no.push(row_no);
        self.seat_no.push(seat.number);
        self.label
            .push(seat.label.clone().unwrap_or_else(|| seat.number.to_string()));
        self.x.push(seat.x);
        self.y.push(seat.y);
        self.tier.push(seat.tier);
        self.accessible.push(seat.accessible);
        self.obstructed.push(seat.obstructed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> ChartSpec {
        ChartSpec {
            slug: "tiny".into(),
            name: "Tiny".into(),
            city: "Leeds".into(),
            country: "GB".into(),
            timezone: "Europe/London".into(),
            focal: Point { x: 0.0, y: 0.0 },
            sections: vec![SectionSpec {
                code: "A".into(),
                name: "A".into(),
                rows: vec![RowSpec {
                    label: "1".into(),
                    seats: (1..=3)
                        .map(|n| SeatSpec {
                            number: n,
                            label: None,
                            x: n as f32,
                            y: 1.0,
                            tier: 1,
                            accessible: false,
                            obstructed: false,
                        })
                        .collect(),
                }],
            }],
        }
    }

    #[test]
    fn a_sound_chart_has_no_problems() {
        assert_eq!(tiny().problems(), vec![]);
    }

    #[test]
    fn problems_name_their_place() {
        let mut c = tiny();
        c.slug = "Bad Slug".into();
        c.sections[0].rows[0].seats[1].number = 1;
        c.sections[0].rows[0].seats[2].tier = 12;
        c.sections.push(c.sections[0].clone());
        let paths: Vec<String> = c.problems().into_iter().map(|p| p.path).collect();
        assert!(paths.contains(&"slug".to_string()), "{paths:?}");
        assert!(
            paths.contains(&"sections[0].rows[0].seats[1].number".to_string()),
            "{paths:?}"
        );
        assert!(
            paths.contains(&"sections[0].rows[0].seats[2].tier".to_string()),
            "{paths:?}"
        );
        assert!(paths.contains(&"sections[1].code".to_string()), "{paths:?}");
    }

    #[test]
    fn the_hash_follows_geometry_only() {
        let a = tiny();
        let mut b = tiny();
        b.name = "Renamed".into();
        assert_eq!(a.geometry_hash(), b.geometry_hash());
        b.sections[0].rows[0].seats[0].x = 9.0;
        assert_ne!(a.geometry_hash(), b.geometry_hash());
    }
}
