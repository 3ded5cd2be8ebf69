//! Listing and searching events: free text over artist, title and venue,
//! filters on city, category and dates, keyset pagination on
//! (starts_at, id) so deep pages cost the same as the first.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::catalog::{CatalogError, Cursor};
use crate::ids::{Cents, EventId, VenueId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    Concert,
    Sports,
    Theatre,
    Comedy,
    Family,
    Festival,
}

impl Category {
    pub const ALL: [Category; 6] = [
        Category::Concert,
        Category::Sports,
        Category::Theatre,
        Category::Comedy,
        Category::Family,
        Category::Festival,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Concert => "concert",
            Category::Sports => "sports",
            Category::Theatre => "theatre",
            Category::Comedy => "comedy",
            Category::Family => "family",
            Category::Festival => "festival",
        }
    }

    pub fn parse(s: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct VenueRef {
    pub id: VenueId,
    pub name: String,
    pub city: String,
    pub country: String,
    pub timezone: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EventSummary {
    pub id: EventId,
    pub slug: String,
    pub title: String,
    pub artist: String,
    pub category: Category,
    pub starts_at: DateTime<Utc>,
    pub on_sale_at: DateTime<Utc>,
    pub venue: VenueRef,
    pub price_min_cents: Option<Cents>,
    pub price_max_cents: Option<Cents>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    pub text: Option<String>,
    pub city: Option<String>,
    pub category: Option<Category>,
    /// Events starting at or after this; defaults to now.
    pub from: Option<DateTime<Utc>>,
    /// Events starting before this.
    pub to: Option<DateTime<Utc>>,
    pub after: Option<Cursor>,
    pub limit: i64,
}

/// Turns free text into a prefix-matching tsquery of at most 8 words, with
/// everything but letters and digits dropped, so user input never reaches
/// the tsquery parser as syntax.
pub fn text_query(text: &str) -> Option<String> {
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(8)
        .map(|w| format!("{}:*", w.to_lowercase()))
        .collect();
    if words.is_empty() {
        None
    } else {
        Some(words.join(" & "))
    }
}

pub async fn search_events(pool: &PgPool, q: &SearchQuery) -> Result<Page<EventSummary>, CatalogError> {
    let tsquery = q.text.as_deref().and_then(text_query);
    let (after_ts, after_id) = match q.after {
        Some(c) => (Some(c.starts_at), Some(c.id)),
        None => (None, None),
    };
    let rows = sqlx::query!(
        r#"SELECT e.id, e.slug, e.title, e.artist, e.category, e.starts_at, e.on_sale_at,
                  v.id AS venue_id, v.name AS venue_name, v.city, v.country, v.timezone,
                  p.min_price, p.max_price
           FROM events e
           JOIN venues v ON v.id = e.venue_id
           LEFT JOIN LATERAL (SELECT min(price_cents) AS min_price, max(price_cents) AS max_price
                              FROM event_tiers t WHERE t.event_id = e.id) p ON true
           WHERE ($1::text IS NULL OR e.search @@ to_tsquery('simple', $1))
             AND ($2::text IS NULL OR lower(v.city) = lower($2))
             AND ($3::text IS NULL OR e.category = $3)
             AND e.starts_at >= coalesce($4, now())
             AND ($5::timestamptz IS NULL OR e.starts_at < $5)
             AND ($6::timestamptz IS NULL OR (e.starts_at, e.id) > ($6, $7::bigint))
             AND NOT e.cancelled
           ORDER BY e.starts_at, e.id
           LIMIT $8"#,
        tsquery,
        q.city,
        q.category.map(Category::as_str),
        q.from,
        q.to,
        after_ts,
        after_id,
        q.limit + 1,
    )
    .fetch_all(pool)
    .await?;
    let more = rows.len() as i64 > q.limit;
    let items: Vec<EventSummary> = rows
        .into_iter()
        .take(q.limit as usize)
        .map(|r| EventSummary {
            id: EventId(r.id),
            slug: r.slug,
            title: r.title,
            artist: r.artist,
            category: Category::parse(&r.category).unwrap_or(Category::Concert),
            starts_at: r.starts_at,
            on_sale_at: r.on_sale_at,
            venue: VenueRef {
                id: VenueId(r.venue_id),
                name: r.venue_name,
                city: r.city,
                country: r.country,
                timezone: r.timezone,
            },
            price_min_cents: r.min_price.map(Cents),
            price_max_cents: r.max_price.map(Cents),
        })
        .collect();
    let next_cursor = if more {
        items.last().map(|e| {
            Cursor {
                starts_at: e.starts_at,
                id: e.id.0,
            }
            .encode()
        })
    } else {
        None
    };
    Ok(Page { items, next_cursor })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_becomes_a_safe_prefix_query() {
        assert_eq!(text_query("Taylor  Swi"), Some("taylor:* & swi:*".into()));
        assert_eq!(text_query("a|b & !c:*"), Some("a:* & b:* & c:*".into()));
        assert_eq!(text_query("  '' ()"), None);
        assert_eq!(text_query("Björk"), Some("björk:*".into()));
    }
}
