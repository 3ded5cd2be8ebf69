//! Admitted fans' sessions in Redis: claimed and extended, ended, and the
//! list of ended sessions every instance reads.

use redis::AsyncCommands;

use super::{Keys, QueueStore, StoreResult};

impl QueueStore {
    /// Extends an admitted fan's session; false if it is no longer active
    /// (never claimed in time, ended, or silent too long).
    pub async fn touch_session(&self, event: i64, ticket: u64, session_ms: u64) -> StoreResult<bool> {
        let _turn = self.session_calls.turn().await?;
        let mut conn = self.sessions.clone();
        let changed: i64 = self
            .touch
            .key(Keys::of(event).active)
            .arg(session_ms)
            .arg(ticket)
            .invoke_async(&mut conn)
            .await?;
        Ok(changed > 0)
    }

    /// Ends an admitted fan's session at once: the slot goes to the next fan
    /// (`ticket` 0: admitted without the queue, no slot), and the session's
    /// key goes on the event's ended list, which every instance reads at its
    /// next tick and from then on refuses the session's tokens.
    pub async fn end_session(&self, event: i64, ticket: u64, key: &str, expires: i64) -> StoreResult<()> {
        let _turn = self.session_calls.turn().await?;
        let mut conn = self.sessions.clone();
        let k = Keys::of(event);
        let mut pipe = redis::pipe();
        pipe.atomic();
        if ticket > 0 {
            pipe.zrem(&k.active, ticket).ignore();
        }
        pipe.rpush(&k.ended, format!("{key} {expires}")).ignore();
        pipe.query_async(&mut conn).await
    }

    /// Ended sessions from the `from`th on: (session key, expiry in Unix
    /// seconds).
    pub async fn ended_since(&self, event: i64, from: u64) -> StoreResult<Vec<(String, i64)>> {
        let mut conn = self.ticker.clone();
        let raw: Vec<String> = conn.lrange(Keys::of(event).ended, from as isize, -1).await?;
        Ok(raw
            .iter()
            .map(|entry| {
                let (key, expires) = entry.rsplit_once(' ').unwrap_or((entry, "0"));
                (key.to_owned(), expires.parse().unwrap_or(0))
            })
            .collect())
    }
}
