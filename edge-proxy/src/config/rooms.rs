//! The `[[events]]` entries: one waiting room's settings, as operators set
//! them in the file or through the admin API, and their checks.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueMode {
    /// First come, first served.
    Fifo,
    /// Everyone who joins is admitted at once (demand under capacity).
    Passthrough,
    /// Nobody is admitted; joins still take a place.
    Paused,
    /// Pre-queue lottery: everyone who joins before `on_sale_at` gets a
    /// random place (drawn verifiably at on-sale), later fans queue FIFO
    /// behind them.
    Lottery,
    /// No joins, no admissions: sold out or over, with a message.
    Closed,
}

/// One event's waiting room, as operators set it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomSettings {
    pub event_id: i64,
    /// New fans admitted per minute.
    pub admit_per_minute: u32,
    /// Most fans admitted and not yet done at once.
    pub max_active: u32,
    /// How long an admitted fan may stay silent before the slot is freed
    /// (and how long an access token lasts).
    pub session_secs: u64,
    pub mode: QueueMode,
    /// When the sale opens: nobody is admitted before it (except in
    /// passthrough), and a lottery draws its places at this time.
    #[serde(default)]
    pub on_sale_at: Option<DateTime<Utc>>,
    /// Shown on the waiting page, e.g. why the room is closed.
    #[serde(default)]
    pub message: String,
    /// A waiting fan not heard from for this long loses the place.
    #[serde(default = "default_grace_secs")]
    pub grace_secs: u64,
    /// If set, the edge moves the admission rate within these bounds from
    /// the core's health; `admit_per_minute` is then only the start.
    #[serde(default)]
    pub adaptive: Option<Adaptive>,
}

/// Adaptive admission: the operator's bounds and the core's health targets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Adaptive {
    pub min_per_minute: u32,
    pub max_per_minute: u32,
    /// The core's p99 latency the edge steers towards, as seen from the edge.
    pub target_p99_ms: u32,
    /// Share of the core's answers that may be 5xx or failures (0..1).
    #[serde(default = "default_max_error_rate")]
    pub max_error_rate: f64,
    /// How often the rate is reconsidered.
    #[serde(default = "default_adaptive_window")]
    pub window_secs: u64,
}

fn default_max_error_rate() -> f64 {
    0.01
}

fn default_adaptive_window() -> u64 {
    5
}

fn default_grace_secs() -> u64 {
    60
}

impl RoomSettings {
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let e = self.event_id;
        if e <= 0 {
            out.push(format!("events: event_id must be positive, got {e}"));
        }
        if !(1..=1_000_000).contains(&self.admit_per_minute) {
            out.push(format!("events[{e}].admit_per_minute must be 1..=1000000"));
        }
        if !(1..=10_000_000).contains(&self.max_active) {
            out.push(format!("events[{e}].max_active must be 1..=10000000"));
        }
        if !(10..=86_400).contains(&self.session_secs) {
            out.push(format!("events[{e}].session_secs must be 10..=86400"));
        }
        if !(5..=3_600).contains(&self.grace_secs) {
            out.push(format!("events[{e}].grace_secs must be 5..=3600"));
        }
        if self.message.len() > 500 {
            out.push(format!("events[{e}].message must be at most 500 bytes"));
        }
        if self.mode == QueueMode::Lottery && self.on_sale_at.is_none() {
            out.push(format!(
                "events[{e}]: mode lottery needs on_sale_at (when places are drawn)"
            ));
        }
        if let Some(a) = &self.adaptive {
            if a.min_per_minute < 1 || a.min_per_minute > a.max_per_minute || a.max_per_minute > 1_000_000 {
                out.push(format!(
                    "events[{e}].adaptive: need 1 <= min_per_minute <= max_per_minute <= 1000000"
                ));
            }
            if !(1..=60_000).contains(&a.target_p99_ms) {
                out.push(format!("events[{e}].adaptive.target_p99_ms must be 1..=60000"));
            }
            if !(0.0..=1.0).contains(&a.max_error_rate) {
                out.push(format!("events[{e}].adaptive.max_error_rate must be between 0 and 1"));
            }
            if !(1..=300).contains(&a.window_secs) {
                out.push(format!("events[{e}].adaptive.window_secs must be 1..=300"));
            }
        }
        out
    }
}
