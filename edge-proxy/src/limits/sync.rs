//! The background task that sends this edge's shared counts to Redis and
//! reads every edge's sums back, every `rate_limits.shared.sync_ms`.

use std::sync::Arc;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::state::EdgeState;

pub struct SharedCountsSync {
    pub state: Arc<EdgeState>,
}

#[async_trait]
impl BackgroundService for SharedCountsSync {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let tallies = self.state.limits.tallies();
        if !tallies.enabled() {
            return;
        }
        let mut interval = tokio::time::interval(tallies.sync_every());
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = shutdown.changed() => return,
            }
            // Until Redis has been reached there is nothing to sync with;
            // each edge counts alone meanwhile.
            let Some(store) = self.state.store() else {
                continue;
            };
            match tallies.sync(&store).await {
                Ok(_) if failing => {
                    failing = false;
                    tracing::info!("shared rate-limit counts synced again");
                }
                Ok(_) => {}
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e, "shared rate-limit counts not synced; each edge counts alone");
                }
                Err(_) => {}
            }
        }
    }
}
