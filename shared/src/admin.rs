//! The edge's admin API, as the edge serves it and as booking-core's portal
//! and the load tests call it: a waiting room's settings and modes, the
//! room's view (settings, progress, lottery), its fairness figures, and the
//! problem codes of its refusals. One type each, so the three cannot drift.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::check_range;

/// Where the rooms are: `GET` lists them, `{ROOMS_PATH}/{event}` is one
/// (`GET`, `PUT`) and `{ROOMS_PATH}/{event}/fairness` its figures.
pub const ROOMS_PATH: &str = "/admin/events";

/// The header in which a refusal of settings lists every problem, as a JSON
/// array of strings (the body's `detail` joins them).
pub const PROBLEMS_HEADER: &str = "x-problems";

/// The path of one event's room.
pub fn room_path(event: i64) -> String {
    format!("{ROOMS_PATH}/{event}")
}

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

/// One event's waiting room, as operators set it (in the edge's file, or
/// through its admin API).
///
/// `Event` is the event id's type: `i64` everywhere but in the portal's
/// request, `RoomSettings<Option<i64>>`, where the path names the event and
/// the body may leave it out (see [`RoomSettings::for_event`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomSettings<Event = i64> {
    pub event_id: Event,
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

impl RoomSettings<Option<i64>> {
    /// The settings for `event_id`, whatever event the body named.
    pub fn for_event(self, event_id: i64) -> RoomSettings {
        let RoomSettings {
            event_id: _,
            admit_per_minute,
            max_active,
            session_secs,
            mode,
            on_sale_at,
            message,
            grace_secs,
            adaptive,
        } = self;
        RoomSettings {
            event_id,
            admit_per_minute,
            max_active,
            session_secs,
            mode,
            on_sale_at,
            message,
            grace_secs,
            adaptive,
        }
    }
}

impl RoomSettings {
    /// The settings with every optional one at its default: no on-sale
    /// time, no message, the default grace, a fixed rate.
    pub fn new(event_id: i64, mode: QueueMode, admit_per_minute: u32, max_active: u32, session_secs: u64) -> Self {
        RoomSettings {
            event_id,
            admit_per_minute,
            max_active,
            session_secs,
            mode,
            on_sale_at: None,
            message: String::new(),
            grace_secs: default_grace_secs(),
            adaptive: None,
        }
    }

    /// Every way these settings are out of bounds; empty when they are good.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let e = self.event_id;
        if e <= 0 {
            out.push(format!("events: event_id must be positive, got {e}"));
        }
        let room = format!("events[{e}]");
        check_range(
            &mut out,
            &format!("{room}.admit_per_minute"),
            self.admit_per_minute,
            1..=1_000_000,
        );
        check_range(&mut out, &format!("{room}.max_active"), self.max_active, 1..=10_000_000);
        check_range(
            &mut out,
            &format!("{room}.session_secs"),
            self.session_secs,
            10..=86_400,
        );
        check_range(&mut out, &format!("{room}.grace_secs"), self.grace_secs, 5..=3_600);
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
            check_range(
                &mut out,
                &format!("{room}.adaptive.target_p99_ms"),
                a.target_p99_ms,
                1..=60_000,
            );
            check_range(
                &mut out,
                &format!("{room}.adaptive.max_error_rate"),
                a.max_error_rate,
                0.0..=1.0,
            );
            check_range(
                &mut out,
                &format!("{room}.adaptive.window_secs"),
                a.window_secs,
                1..=300,
            );
        }
        out
    }
}

/// A room's latest tick, as one edge instance saw it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// The room's admission ticks, counted across every proxy (in Redis),
    /// so answers from different edges can be ordered; also the id of
    /// stream events (never backwards on one proxy).
    pub tick: u64,
    pub at_ms: i64,
    pub through: u64,
    pub seq: u64,
    pub waiting: u64,
    pub active: u64,
    pub admitted_total: u64,
    /// Admissions per minute in force (an adaptive room's current rate).
    pub rate: u32,
    /// Admissions per minute actually made over the last minute (0 until
    /// ten seconds of them are known). Below `rate` when the active cap, not
    /// the rate, is what holds fans back.
    pub admitting_per_minute: u32,
    /// Places lost so far (fans not heard from within the grace period, or
    /// taken back by the defences), all instances.
    pub lost_total: u64,
    /// Ticks on this proxy that failed (Redis slow or away), since start.
    pub ticks_failed: u64,
    /// Whether the last tick reached Redis.
    pub healthy: bool,
}

/// A lottery's public record and progress.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LotteryRecord {
    /// SHA-256 of the seed, published before the pre-queue opens.
    pub seed_hash: Option<String>,
    /// Revealed once the places are drawn.
    pub seed: Option<String>,
    /// Tickets 1..=entrants took part (sealed at the on-sale).
    pub entrants: Option<u64>,
    /// "open" (taking entrants), "drawing" or "drawn".
    pub state: String,
}

/// One room as the admin API shows it (`GET`, and the answer to `PUT`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomView {
    pub settings: RoomSettings,
    pub progress: Progress,
    /// Position streams open on the instance that answered.
    pub listeners: usize,
    /// A lottery room's public record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lottery: Option<LotteryRecord>,
}

/// One event's fairness figures: order inversions, how long admitted fans
/// waited, and how many gave up (or were lost) before their turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FairnessView {
    pub event_id: i64,
    pub mode: QueueMode,
    pub admitted: u64,
    /// Admissions of a place below one already admitted (0 in FIFO).
    pub inversions: u64,
    pub abandoned_before_admission: u64,
    pub waiting: u64,
    pub waiting_time: WaitingTime,
}

/// The waiting-time distribution of admitted fans: buckets (cumulative, like
/// Prometheus), the mean, and percentiles read off the buckets (`<=N` for
/// an upper bound, `>N` past the last).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WaitingTime {
    pub mean_secs: f64,
    pub p50_secs: Option<String>,
    pub p90_secs: Option<String>,
    pub p99_secs: Option<String>,
    pub buckets: Vec<WaitBucket>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitBucket {
    /// The bucket's upper bound in seconds, or `+Inf`.
    pub le_secs: String,
    /// Admitted fans who waited up to it.
    pub admitted: u64,
}

/// The codes of the admin API's refusals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminCode {
    /// 401: no bearer token, or not the admin token.
    Unauthenticated,
    /// 404: the event has no waiting room.
    QueueNotFound,
    /// 503: Redis, where rooms are shared, cannot be reached.
    QueueUnavailable,
    /// 400: the event id in the path is not a number.
    InvalidPathParameter,
    /// 422: the body is not room settings.
    InvalidBody,
    /// 422: the body names another event than the path.
    EventMismatch,
    /// 422: settings out of bounds (every problem in [`PROBLEMS_HEADER`]).
    InvalidSettings,
    /// 404: no such path on the admin listener.
    NotFound,
    /// 405: the path does not take that method.
    MethodNotAllowed,
}

impl AdminCode {
    pub const ALL: [AdminCode; 9] = [
        AdminCode::Unauthenticated,
        AdminCode::QueueNotFound,
        AdminCode::QueueUnavailable,
        AdminCode::InvalidPathParameter,
        AdminCode::InvalidBody,
        AdminCode::EventMismatch,
        AdminCode::InvalidSettings,
        AdminCode::NotFound,
        AdminCode::MethodNotAllowed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AdminCode::Unauthenticated => "unauthenticated",
            AdminCode::QueueNotFound => "queue_not_found",
            AdminCode::QueueUnavailable => "queue_unavailable",
            AdminCode::InvalidPathParameter => "invalid_path_parameter",
            AdminCode::InvalidBody => "invalid_body",
            AdminCode::EventMismatch => "event_mismatch",
            AdminCode::InvalidSettings => "invalid_settings",
            AdminCode::NotFound => "not_found",
            AdminCode::MethodNotAllowed => "method_not_allowed",
        }
    }

    /// The code a refusal's body names, if it is one of these.
    pub fn parse(code: &str) -> Option<AdminCode> {
        Self::ALL.into_iter().find(|c| c.as_str() == code)
    }
}

/// A refusal's body (`application/problem+json`). `code` is kept as text,
/// so a reader still sees a code it does not know yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminProblem {
    /// `https://usher.dev/problems/<code>`
    #[serde(rename = "type")]
    pub type_: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    pub code: String,
}

impl AdminProblem {
    /// `title` is the status's reason phrase.
    pub fn new(status: u16, title: &str, code: AdminCode, detail: impl Into<String>) -> AdminProblem {
        AdminProblem {
            type_: format!("https://usher.dev/problems/{}", code.as_str()),
            title: title.to_owned(),
            status,
            detail: detail.into(),
            code: code.as_str().to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_read_back() {
        for code in AdminCode::ALL {
            assert_eq!(AdminCode::parse(code.as_str()), Some(code));
        }
        assert_eq!(AdminCode::parse("edge_refused"), None);
    }

    #[test]
    fn the_portal_names_the_event_the_path_gives() {
        let body = r#"{"admit_per_minute": 5, "max_active": 9, "session_secs": 60, "mode": "fifo"}"#;
        let request: RoomSettings<Option<i64>> = serde_json::from_str(body).unwrap();
        assert_eq!(request.event_id, None);
        let settings = request.for_event(7);
        assert_eq!((settings.event_id, settings.grace_secs), (7, 60));
        let named: RoomSettings<Option<i64>> = serde_json::from_str(
            r#"{"event_id": 3, "admit_per_minute": 5, "max_active": 9, "session_secs": 60, "mode": "fifo"}"#,
        )
        .unwrap();
        assert_eq!(named.for_event(7).event_id, 7);
        // The edge's own reading still wants the event.
        assert!(serde_json::from_str::<RoomSettings>(body).is_err());
    }

    #[test]
    fn a_view_reads_back_as_it_was_written() {
        let view = RoomView {
            settings: serde_json::from_str(
                r#"{"event_id": 7, "admit_per_minute": 5, "max_active": 9, "session_secs": 60, "mode": "lottery",
                    "on_sale_at": "2030-01-01T10:00:00Z"}"#,
            )
            .unwrap(),
            progress: Progress {
                waiting: 3,
                healthy: true,
                ..Progress::default()
            },
            listeners: 2,
            lottery: Some(LotteryRecord {
                seed_hash: Some("ab".into()),
                state: "open".into(),
                ..LotteryRecord::default()
            }),
        };
        let text = serde_json::to_string(&view).unwrap();
        assert_eq!(serde_json::from_str::<RoomView>(&text).unwrap(), view);
    }
}
