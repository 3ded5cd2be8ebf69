//! The catalog: events, where and when they are, what they cost, and search
//! over them. Read-mostly and safe to cache; nothing here touches seats.

pub mod cursor;
pub mod events;
pub mod search;

pub use cursor::Cursor;
pub use events::{EventDetail, EventRules, EventSpec, TierPrice, TierSpec, create_event, get_event, insert_event};
pub use search::{Category, EventSummary, Page, SearchQuery, search_events};

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("no venue with slug {0:?}")]
    UnknownVenue(String),
    #[error("a different event already uses the slug {0:?}")]
    SlugTaken(String),
    #[error("the event is invalid: {0}")]
    Invalid(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}
