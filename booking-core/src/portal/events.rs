//! An organisation's events: list, read, create (through the catalog's own
//! `insert_event`, the path the import CLI and the seeder take) and edit,
//! with every rule checked before anything is written and each refusal a
//! `PortalError` of its own. Prices changed here apply to new holds only:
//! a hold locked its seats' prices when it was made.

use std::collections::{BTreeSet, HashSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};

use crate::catalog::{self, Category, EventRules, EventSpec, TierPrice, TierSpec};
use crate::ids::{Cents, EventId, OrganisationId, VenueId};
use crate::portal::PortalError;
use crate::tickets::policy::{self, AfterSalePolicy, DisputeVoidOn};

/// Most a seat may cost, as the schema allows.
pub const MAX_PRICE_CENTS: i64 = 100_000_000;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EventItem {
    pub id: EventId,
    pub slug: String,
    pub title: String,
    pub artist: String,
    pub category: Category,
    pub starts_at: DateTime<Utc>,
    pub on_sale_at: DateTime<Utc>,
    pub cancelled: bool,
    /// Behind the edge's waiting room.
    pub protected: bool,
    pub venue: VenueBrief,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct VenueBrief {
    pub id: VenueId,
    pub slug: String,
    pub name: String,
    pub city: String,
    pub seat_count: i32,
}

/// One event as its operators see it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PortalEvent {
    pub id: EventId,
    pub slug: String,
    pub title: String,
    pub artist: String,
    pub category: Category,
    pub description: String,
    pub starts_at: DateTime<Utc>,
    pub on_sale_at: DateTime<Utc>,
    pub cancelled: bool,
    /// On sale now (not cancelled, past on_sale_at, not started).
    pub on_sale: bool,
    pub venue: VenueBrief,
    pub tiers: Vec<TierPrice>,
    /// The tiers the venue's chart has seats in: each needs a price.
    pub chart_tiers: Vec<i16>,
    pub rules: EventRules,
    pub policy: AfterSalePolicy,
    pub created_at: DateTime<Utc>,
}

/// A new event. `rules` and `policy` default to the catalog's defaults.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEvent {
    pub venue_id: VenueId,
    /// Made from the title if not given.
    #[serde(default)]
    pub slug: Option<String>,
    pub title: String,
    pub artist: String,
    pub category: Category,
    #[serde(default)]
    pub description: String,
    pub starts_at: DateTime<Utc>,
    pub on_sale_at: DateTime<Utc>,
    pub tiers: Vec<TierSpec>,
    #[serde(default)]
    pub rules: Option<EventRules>,
    #[serde(default)]
    pub policy: Option<AfterSalePolicy>,
}

/// An edit: only the fields given change. `tiers` sets the prices of the
/// tiers it names (others keep theirs).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventPatch {
    pub title: Option<String>,
    pub artist: Option<String>,
    pub category: Option<Category>,
    pub description: Option<String>,
    pub starts_at: Option<DateTime<Utc>>,
    pub on_sale_at: Option<DateTime<Utc>>,
    pub tiers: Option<Vec<TierSpec>>,
    pub rules: Option<RulesPatch>,
    pub policy: Option<PolicyPatch>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RulesPatch {
    pub hold_ttl_secs: Option<i32>,
    pub hold_jitter_secs: Option<i32>,
    pub max_seats_per_fan: Option<i32>,
    pub protected: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyPatch {
    pub return_refunded_seats: Option<bool>,
    pub resale_cap_percent: Option<i32>,
    pub resale_fee_percent: Option<i32>,
    pub transfers_allowed: Option<bool>,
    pub self_refunds: Option<bool>,
    pub refund_cutoff_hours: Option<i32>,
    /// `created` or `lost`; any other word is 422 `invalid_policy`.
    pub dispute_void_on: Option<String>,
}

fn invalid(reason: impl Into<String>) -> PortalError {
    PortalError::InvalidEvent { reason: reason.into() }
}

/// How far from now an event's dates may be set: an on-sale in the year 57
/// or 9999 is a typo, not a plan.
const DATES_BACK: chrono::Duration = chrono::Duration::days(366);
const DATES_AHEAD: chrono::Duration = chrono::Duration::days(10 * 366);

fn check_date(field: &str, at: DateTime<Utc>) -> Result<(), PortalError> {
    let now = Utc::now();
    if at < now - DATES_BACK || at > now + DATES_AHEAD {
        return Err(invalid(format!(
            "{field} must be within a year before and ten years after now"
        )));
    }
    Ok(())
}

fn check_text(field: &str, value: &str, min: usize, max: usize) -> Result<(), PortalError> {
    let n = value.trim().chars().count();
    if n < min || value.chars().count() > max {
        return Err(invalid(format!("{field} must be {min}-{max} characters")));
    }
    Ok(())
}

fn check_slug(slug: &str) -> Result<(), PortalError> {
    let ok = !slug.is_empty()
        && slug.len() <= 96
        && !slug.starts_with('-')
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "slug must be 1-96 characters of a-z, 0-9 and '-', not starting with '-'",
        ))
    }
}

/// A slug from the title, with a random tail so two events of one title differ.
fn slug_from(title: &str) -> String {
    let mut s = String::new();
    for c in title.to_lowercase().chars() {
        if c.is_ascii_alphanumeric() {
            s.push(c);
        } else if !s.ends_with('-') && !s.is_empty() {
            s.push('-');
        }
        if s.len() >= 80 {
            break;
        }
    }
    let s = s.trim_end_matches('-');
    let tail: u32 = rand::random();
    if s.is_empty() {
        format!("event-{tail:08x}")
    } else {
        format!("{s}-{tail:08x}")
    }
}

fn check_rules(r: &EventRules) -> Result<(), PortalError> {
    let bad = |reason: &str| Err(PortalError::InvalidRules { reason: reason.into() });
    if !(1..=3600).contains(&r.hold_ttl_secs) {
        return bad("hold_ttl_secs must be 1-3600");
    }
    if !(0..=600).contains(&r.hold_jitter_secs) {
        return bad("hold_jitter_secs must be 0-600");
    }
    if r.hold_jitter_secs != 0 && r.hold_jitter_secs * 2 >= r.hold_ttl_secs {
        return bad("hold_jitter_secs must be 0 or less than half of hold_ttl_secs");
    }
    if !(1..=100).contains(&r.max_seats_per_fan) {
        return bad("max_seats_per_fan must be 1-100");
    }
    Ok(())
}

fn check_policy(p: &AfterSalePolicy) -> Result<(), PortalError> {
    if !(0..=1000).contains(&p.resale_cap_percent) {
        return Err(PortalError::InvalidPolicy {
            reason: "resale_cap_percent must be 0-1000".into(),
        });
    }
    if !(0..=100).contains(&p.resale_fee_percent) {
        return Err(PortalError::InvalidPolicy {
            reason: "resale_fee_percent must be 0-100".into(),
        });
    }
    if !(0..=8760).contains(&p.refund_cutoff_hours) {
        return Err(PortalError::InvalidPolicy {
            reason: "refund_cutoff_hours must be 0-8760 (a year)".into(),
        });
    }
    Ok(())
}

/// Prices for the chart's tiers: each sound, none twice, none for a tier the
/// chart has no seats in, and (`complete`) every tier of the chart priced.
fn check_tiers(tiers: &[TierSpec], chart: &[i16], complete: bool) -> Result<(), PortalError> {
    let mut seen = HashSet::new();
    for t in tiers {
        if !seen.insert(t.tier) {
            return Err(PortalError::DuplicateTier { tier: t.tier });
        }
        let name = t.name.trim().chars().count();
        if !(0..=MAX_PRICE_CENTS).contains(&t.price_cents.0) || name == 0 || t.name.chars().count() > 100 {
            return Err(PortalError::InvalidPrice { tier: t.tier });
        }
    }
    let chart_set: BTreeSet<i16> = chart.iter().copied().collect();
    let unknown: Vec<i16> = tiers
        .iter()
        .map(|t| t.tier)
        .filter(|t| !chart_set.contains(t))
        .collect();
    if !unknown.is_empty() {
        return Err(PortalError::UnknownTier { tiers: unknown });
    }
    if complete {
        let missing: Vec<i16> = chart_set.iter().copied().filter(|t| !seen.contains(t)).collect();
        if !missing.is_empty() {
            return Err(PortalError::TierMissing { tiers: missing });
        }
    }
    Ok(())
}

async fn chart_tiers(conn: &mut PgConnection, venue: VenueId) -> Result<Vec<i16>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT DISTINCT tier AS "tier!" FROM seats WHERE venue_id = $1 ORDER BY 1"#,
        venue.0
    )
    .fetch_all(conn)
    .await
}

pub async fn list(pool: &PgPool, org: OrganisationId) -> Result<Vec<EventItem>, PortalError> {
    let rows = sqlx::query!(
        r#"SELECT e.id, e.slug, e.title, e.artist, e.category, e.starts_at, e.on_sale_at, e.cancelled, e.protected,
                  v.id AS venue_id, v.slug AS venue_slug, v.name AS venue_name, v.city, v.seat_count
           FROM events e JOIN venues v ON v.id = e.venue_id
           WHERE e.organisation_id = $1
           ORDER BY e.starts_at, e.id"#,
        org.0
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| EventItem {
            id: EventId(r.id),
            slug: r.slug,
            title: r.title,
            artist: r.artist,
            category: Category::parse(&r.category).unwrap_or(Category::Concert),
            starts_at: r.starts_at,
            on_sale_at: r.on_sale_at,
            cancelled: r.cancelled,
            protected: r.protected,
            venue: VenueBrief {
                id: VenueId(r.venue_id),
                slug: r.venue_slug,
                name: r.venue_name,
                city: r.city,
                seat_count: r.seat_count,
            },
        })
        .collect())
}

/// The event, if it is this organisation's.
#[tracing::instrument(skip_all, fields(event_id = id.0))]
pub async fn get(pool: &PgPool, org: OrganisationId, id: EventId) -> Result<PortalEvent, PortalError> {
    let mut conn = pool.acquire().await?;
    get_in(&mut conn, org, id).await
}

async fn get_in(conn: &mut PgConnection, org: OrganisationId, id: EventId) -> Result<PortalEvent, PortalError> {
    let e = sqlx::query!(
        r#"SELECT e.id, e.slug, e.title, e.artist, e.category, e.description, e.starts_at, e.on_sale_at,
                  e.cancelled, e.hold_ttl_secs, e.hold_jitter_secs, e.max_seats_per_fan, e.protected, e.created_at,
                  v.id AS venue_id, v.slug AS venue_slug, v.name AS venue_name, v.city, v.seat_count,
                  now() AS "now!"
           FROM events e JOIN venues v ON v.id = e.venue_id
           WHERE e.id = $1 AND e.organisation_id = $2"#,
        id.0,
        org.0
    )
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(PortalError::EventNotFound)?;
    let tiers = sqlx::query_as!(
        TierPrice,
        r#"SELECT tier, name, price_cents AS "price_cents: Cents" FROM event_tiers WHERE event_id = $1 ORDER BY tier"#,
        id.0
    )
    .fetch_all(&mut *conn)
    .await?;
    let chart_tiers = chart_tiers(conn, VenueId(e.venue_id)).await?;
    let policy = policy::for_event(conn, id).await?;
    Ok(PortalEvent {
        id,
        slug: e.slug,
        title: e.title,
        artist: e.artist,
        category: Category::parse(&e.category).unwrap_or(Category::Concert),
        description: e.description,
        on_sale: !e.cancelled && e.on_sale_at <= e.now && e.now < e.starts_at,
        starts_at: e.starts_at,
        on_sale_at: e.on_sale_at,
        cancelled: e.cancelled,
        venue: VenueBrief {
            id: VenueId(e.venue_id),
            slug: e.venue_slug,
            name: e.venue_name,
            city: e.city,
            seat_count: e.seat_count,
        },
        tiers,
        chart_tiers,
        rules: EventRules {
            hold_ttl_secs: e.hold_ttl_secs,
            hold_jitter_secs: e.hold_jitter_secs,
            max_seats_per_fan: e.max_seats_per_fan,
            protected: e.protected,
        },
        policy,
        created_at: e.created_at,
    })
}

/// Whether the event is this organisation's (the check before forwarding
/// to the edge or opening a dashboard).
pub async fn owned(pool: &PgPool, org: OrganisationId, id: EventId) -> Result<(), PortalError> {
    let found = sqlx::query_scalar!(
        "SELECT id FROM events WHERE id = $1 AND organisation_id = $2",
        id.0,
        org.0
    )
    .fetch_optional(pool)
    .await?;
    found.map(|_| ()).ok_or(PortalError::EventNotFound)
}

/// Creates the event at one of the organisation's venues.
#[tracing::instrument(skip_all, fields(venue_id = new.venue_id.0))]
pub async fn create(pool: &PgPool, org: OrganisationId, new: NewEvent) -> Result<PortalEvent, PortalError> {
    check_text("title", &new.title, 1, 200)?;
    check_text("artist", &new.artist, 1, 200)?;
    check_text("description", &new.description, 0, 10_000)?;
    check_date("starts_at", new.starts_at)?;
    check_date("on_sale_at", new.on_sale_at)?;
    if new.on_sale_at > new.starts_at {
        return Err(PortalError::OnSaleAfterStart);
    }
    let rules = new.rules.unwrap_or_default();
    check_rules(&rules)?;
    if let Some(p) = &new.policy {
        check_policy(p)?;
    }
    let slug = match new.slug {
        Some(s) => {
            check_slug(&s)?;
            s
        }
        None => slug_from(&new.title),
    };
    let mut tx = pool.begin().await?;
    let venue = sqlx::query!(
        "SELECT id, slug FROM venues WHERE id = $1 AND organisation_id = $2",
        new.venue_id.0,
        org.0
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(PortalError::VenueNotFound)?;
    let chart = chart_tiers(&mut tx, VenueId(venue.id)).await?;
    check_tiers(&new.tiers, &chart, true)?;
    let spec = EventSpec {
        slug: slug.clone(),
        venue_slug: venue.slug,
        title: new.title,
        artist: new.artist,
        category: new.category,
        description: new.description,
        starts_at: new.starts_at,
        on_sale_at: new.on_sale_at,
        rules,
        tiers: new.tiers,
    };
    let (id, created) = catalog::insert_event(&mut tx, &spec).await?;
    if !created {
        // Never the other event's id: it may be another organisation's.
        return Err(PortalError::SlugTaken { slug });
    }
    if let Some(p) = &new.policy {
        policy::set(&mut tx, id, p).await?;
    }
    tracing::info!(event_id = id.0, "event created in the portal");
    let event = get_in(&mut tx, org, id).await?;
    tx.commit().await?;
    Ok(event)
}

/// Edits the event; only the given fields change.
#[tracing::instrument(skip_all, fields(event_id = id.0))]
pub async fn update(
    pool: &PgPool,
    org: OrganisationId,
    id: EventId,
    patch: EventPatch,
) -> Result<PortalEvent, PortalError> {
    if let Some(t) = &patch.title {
        check_text("title", t, 1, 200)?;
    }
    if let Some(a) = &patch.artist {
        check_text("artist", a, 1, 200)?;
    }
    if let Some(d) = &patch.description {
        check_text("description", d, 0, 10_000)?;
    }
    if let Some(at) = patch.starts_at {
        check_date("starts_at", at)?;
    }
    if let Some(at) = patch.on_sale_at {
        check_date("on_sale_at", at)?;
    }
    let mut tx = pool.begin().await?;
    // The row lock orders two concurrent edits; holds only read the row.
    let e = sqlx::query!(
        r#"SELECT venue_id, title, artist, category, description, starts_at, on_sale_at,
                  hold_ttl_secs, hold_jitter_secs, max_seats_per_fan, protected
           FROM events WHERE id = $1 AND organisation_id = $2 FOR UPDATE"#,
        id.0,
        org.0
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(PortalError::EventNotFound)?;
    let starts_at = patch.starts_at.unwrap_or(e.starts_at);
    let on_sale_at = patch.on_sale_at.unwrap_or(e.on_sale_at);
    if on_sale_at > starts_at {
        return Err(PortalError::OnSaleAfterStart);
    }
    let r = patch.rules.unwrap_or_default();
    let rules = EventRules {
        hold_ttl_secs: r.hold_ttl_secs.unwrap_or(e.hold_ttl_secs),
        hold_jitter_secs: r.hold_jitter_secs.unwrap_or(e.hold_jitter_secs),
        max_seats_per_fan: r.max_seats_per_fan.unwrap_or(e.max_seats_per_fan),
        protected: r.protected.unwrap_or(e.protected),
    };
    check_rules(&rules)?;
    if let Some(tiers) = &patch.tiers {
        let chart = chart_tiers(&mut tx, VenueId(e.venue_id)).await?;
        check_tiers(tiers, &chart, false)?;
    }
    let policy = match patch.policy {
        Some(p) => {
            let old = policy::for_event(&mut tx, id).await?;
            let merged = AfterSalePolicy {
                return_refunded_seats: p.return_refunded_seats.unwrap_or(old.return_refunded_seats),
                resale_cap_percent: p.resale_cap_percent.unwrap_or(old.resale_cap_percent),
                resale_fee_percent: p.resale_fee_percent.unwrap_or(old.resale_fee_percent),
                transfers_allowed: p.transfers_allowed.unwrap_or(old.transfers_allowed),
                self_refunds: p.self_refunds.unwrap_or(old.self_refunds),
                refund_cutoff_hours: p.refund_cutoff_hours.unwrap_or(old.refund_cutoff_hours),
                dispute_void_on: match p.dispute_void_on.as_deref() {
                    None => old.dispute_void_on,
                    Some(word) => DisputeVoidOn::parse(word).ok_or_else(|| PortalError::InvalidPolicy {
                        reason: "dispute_void_on must be \"created\" or \"lost\"".into(),
                    })?,
                },
            };
            check_policy(&merged)?;
            Some(merged)
        }
        None => None,
    };
    let category = patch.category.map(Category::as_str).unwrap_or(&e.category).to_owned();
    sqlx::query!(
        r#"UPDATE events SET title = $2, artist = $3, category = $4, description = $5, starts_at = $6,
                  on_sale_at = $7, hold_ttl_secs = $8, hold_jitter_secs = $9, max_seats_per_fan = $10, protected = $11
           WHERE id = $1"#,
        id.0,
        patch.title.unwrap_or(e.title),
        patch.artist.unwrap_or(e.artist),
        category,
        patch.description.unwrap_or(e.description),
        starts_at,
        on_sale_at,
        rules.hold_ttl_secs,
        rules.hold_jitter_secs,
        rules.max_seats_per_fan,
        rules.protected,
    )
    .execute(&mut *tx)
    .await
    .map_err(|e| match e {
        sqlx::Error::Database(d) if d.is_check_violation() => invalid(d.message()),
        other => PortalError::Db(other),
    })?;
    if let Some(tiers) = &patch.tiers {
        let numbers: Vec<i16> = tiers.iter().map(|t| t.tier).collect();
        let names: Vec<String> = tiers.iter().map(|t| t.name.clone()).collect();
        let prices: Vec<i64> = tiers.iter().map(|t| t.price_cents.0).collect();
        // New holds take these prices; existing holds and orders keep the
        // prices they locked. A price the operator moved goes into the
        // price history, like the pricing rule's changes.
        sqlx::query!(
            r#"WITH old AS (SELECT tier, price_cents FROM event_tiers WHERE event_id = $1),
               up AS (
                 INSERT INTO event_tiers (event_id, tier, name, price_cents)
                 SELECT $1, * FROM unnest($2::smallint[], $3::text[], $4::bigint[])
                 ON CONFLICT (event_id, tier) DO UPDATE SET name = EXCLUDED.name, price_cents = EXCLUDED.price_cents
                 RETURNING tier, price_cents)
               INSERT INTO price_changes (event_id, tier, old_cents, new_cents, inputs, rule_version, interval_start, changed_at)
               SELECT $1, up.tier, old.price_cents, up.price_cents,
                      jsonb_build_object('source', 'operator', 'organisation_id', $5::bigint), 'operator', NULL, now()
               FROM up JOIN old USING (tier)
               WHERE old.price_cents <> up.price_cents"#,
            id.0,
            &numbers,
            &names,
            &prices,
            org.0,
        )
        .execute(&mut *tx)
        .await?;
    }
    if let Some(p) = &policy {
        policy::set(&mut tx, id, p).await?;
    }
    tracing::info!("event edited in the portal");
    let event = get_in(&mut tx, org, id).await?;
    tx.commit().await?;
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tier(tier: i16, cents: i64) -> TierSpec {
        TierSpec {
            tier,
            name: format!("T{tier}"),
            price_cents: Cents(cents),
        }
    }

    #[test]
    fn tiers_must_cover_the_chart_and_nothing_else() {
        let chart = [1, 2];
        assert!(check_tiers(&[tier(1, 100), tier(2, 50)], &chart, true).is_ok());
        assert!(matches!(
            check_tiers(&[tier(1, 100)], &chart, true),
            Err(PortalError::TierMissing { tiers }) if tiers == vec![2]
        ));
        assert!(check_tiers(&[tier(1, 100)], &chart, false).is_ok());
        assert!(matches!(
            check_tiers(&[tier(1, 100), tier(3, 1)], &chart, false),
            Err(PortalError::UnknownTier { .. })
        ));
        assert!(matches!(
            check_tiers(&[tier(1, -1)], &chart, false),
            Err(PortalError::InvalidPrice { tier: 1 })
        ));
    }

    #[test]
    fn slugs_from_titles_are_valid() {
        let s = slug_from("Late Laughs: Live!");
        assert!(s.starts_with("late-laughs-live-"), "{s}");
        check_slug(&s).unwrap();
        check_slug(&slug_from("???")).unwrap();
    }
}
