//! The edge's admin API, as the load generators call it: one room's
//! settings put, one room read (the types are the edge's own, from
//! `usher_shared::admin`).

use anyhow::bail;
use usher_shared::admin::{RoomSettings, RoomView, room_path};

/// Replaces the room's settings; any refusal is an error with the edge's
/// status and words.
pub async fn put_room(
    http: &reqwest::Client,
    admin_base: &str,
    token: &str,
    settings: &RoomSettings,
) -> anyhow::Result<()> {
    let r = http
        .put(format!("{admin_base}{}", room_path(settings.event_id)))
        .bearer_auth(token)
        .json(settings)
        .send()
        .await?;
    if !r.status().is_success() {
        bail!(
            "the edge's admin API: {} {}",
            r.status(),
            r.text().await.unwrap_or_default()
        );
    }
    Ok(())
}

/// The room as the edge shows it.
pub async fn room(http: &reqwest::Client, admin_base: &str, token: &str, event: i64) -> anyhow::Result<RoomView> {
    let r = http
        .get(format!("{admin_base}{}", room_path(event)))
        .bearer_auth(token)
        .send()
        .await?;
    Ok(r.error_for_status()?.json().await?)
}
