//! `SeatMaps`: each venue's chart loaded at most once per process (charts
//! never change), and each event's venue remembered (it never changes
//! either). The first request for a venue loads it; concurrent first
//! requests wait for that one load instead of each starting their own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sqlx::PgPool;
use tokio::sync::OnceCell;
use usher_shared::locks;

use crate::ids::{EventId, VenueId};
use crate::venues::chart::VenueMap;
use crate::venues::store::{LoadError, load_map};

/// A venue's chart, loaded by the first request that needs it.
type Slot = Arc<OnceCell<Arc<VenueMap>>>;

#[derive(Clone)]
pub struct SeatMaps {
    pool: PgPool,
    venues: Arc<Mutex<HashMap<VenueId, Slot>>>,
    event_venue: Arc<Mutex<HashMap<EventId, VenueId>>>,
}

impl SeatMaps {
    pub fn new(pool: PgPool) -> Self {
        SeatMaps {
            pool,
            venues: Arc::default(),
            event_venue: Arc::default(),
        }
    }

    pub async fn venue(&self, venue_id: VenueId) -> Result<Option<Arc<VenueMap>>, LoadError> {
        let cell = {
            let mut venues = locks::lock(&self.venues);
            venues.entry(venue_id).or_default().clone()
        };
        if let Some(map) = cell.get() {
            return Ok(Some(map.clone()));
        }
        let loaded = cell
            .get_or_try_init(|| async {
                match load_map(&self.pool, venue_id).await {
                    Ok(Some(map)) => Ok(Arc::new(map)),
                    Ok(None) => Err(None),
                    Err(e) => Err(Some(e)),
                }
            })
            .await;
        match loaded {
            Ok(map) => Ok(Some(map.clone())),
            Err(failure) => {
                // Do not let lookups of ids that do not exist grow the cache.
                let mut venues = locks::lock(&self.venues);
                if venues.get(&venue_id).is_some_and(|c| c.get().is_none()) {
                    venues.remove(&venue_id);
                }
                failure.map_or(Ok(None), Err)
            }
        }
    }

    pub async fn event_venue(&self, event_id: EventId) -> Result<Option<VenueId>, sqlx::Error> {
        if let Some(v) = locks::lock(&self.event_venue).get(&event_id) {
            return Ok(Some(*v));
        }
        let venue = sqlx::query_scalar!("SELECT venue_id FROM events WHERE id = $1", event_id.0)
            .fetch_optional(&self.pool)
            .await?
            .map(VenueId);
        if let Some(v) = venue {
            locks::lock(&self.event_venue).insert(event_id, v);
        }
        Ok(venue)
    }

    /// The chart of the venue an event takes place in.
    pub async fn for_event(&self, event_id: EventId) -> Result<Option<Arc<VenueMap>>, LoadError> {
        match self.event_venue(event_id).await? {
            Some(venue) => self.venue(venue).await,
            None => Ok(None),
        }
    }
}
