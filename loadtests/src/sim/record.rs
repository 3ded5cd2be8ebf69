//! What a run saw from the fans' side: every HTTP request (when, what,
//! answered how, and whether the answer came from booking-core or was the
//! edge's own), every fan's story, and per-second samples of the stack.
//! The report and the checks are worked out from these afterwards.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

use usher_shared::locks;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Join,
    Status,
    Stream,
    Availability,
    Hold,
    HoldRead,
    Order,
    OrderRead,
    Tickets,
    Qr,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Join => "join",
            Kind::Status => "status",
            Kind::Stream => "stream",
            Kind::Availability => "availability",
            Kind::Hold => "hold",
            Kind::HoldRead => "hold read",
            Kind::Order => "order",
            Kind::OrderRead => "order read",
            Kind::Tickets => "tickets",
            Kind::Qr => "qr",
        }
    }

    /// Requests the edge lets through only with an access token (or, for
    /// orders, forwards one): the core load the waiting room bounds.
    pub fn protected(self) -> bool {
        matches!(self, Kind::Hold | Kind::HoldRead | Kind::Order | Kind::OrderRead)
    }
}

/// One request. `status` 0: no answer (connection error or time-out).
#[derive(Debug, Clone, Copy)]
pub struct Req {
    pub at_ms: u32,
    pub kind: Kind,
    pub status: u16,
    /// The answer carried booking-core's `Server-Timing: core` mark.
    pub core: bool,
    pub micros: u32,
    /// The core's own time, from its mark.
    pub core_micros: u32,
    /// The edge's time from reading the request to the core's answer, from
    /// its mark (0: none, e.g. the edge answered itself).
    pub edge_micros: u32,
    /// How long the request waited in this process for a slot in its lane
    /// before it was sent (not part of `micros`).
    pub queued_micros: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    Bought,
    /// Held seats and walked away (the hold lapses).
    Abandoned,
    /// Nothing left to buy.
    SoldOut,
    /// Admitted, looked for `patience_secs`, found nothing it could hold.
    GaveUp,
    /// Never admitted before the run's deadline.
    NotAdmitted,
    /// Something answered in a way a fan could not get past.
    Failed,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Bought => "bought",
            Outcome::Abandoned => "abandoned a hold",
            Outcome::SoldOut => "sold out",
            Outcome::GaveUp => "gave up",
            Outcome::NotAdmitted => "not admitted by the deadline",
            Outcome::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone)]
pub struct FanRecord {
    pub id: u32,
    /// The queue ticket of the fan's (last) place.
    pub ticket: Option<u64>,
    pub places: u32,
    pub joined_ms: Option<u32>,
    /// When the edge last told this fan to wait, and first told it that it
    /// was in (on the place it was admitted from).
    pub last_waiting_ms: Option<u32>,
    pub admitted_ms: Option<u32>,
    /// The same as the room's ticks (its answers carry them): the order
    /// in which the room said so, whatever the network did.
    pub last_waiting_tick: Option<u64>,
    pub admitted_tick: Option<u64>,
    /// When the fan stopped (bought, left, or the run's deadline).
    pub ended_ms: u32,
    pub first_core_ms: Option<u32>,
    pub holds: Vec<(u32, u32)>,
    /// (when, whole micros, provider micros) of the order call that
    /// confirmed.
    pub confirm: Option<(u32, u32, u32)>,
    pub seats_bought: u32,
    /// The order the fan was told is confirmed: it must be, with its
    /// tickets, when the run is over (whatever failed over meanwhile).
    pub confirmed_order: Option<String>,
    pub tickets_seen: u32,
    pub outcome: Outcome,
    pub note: Option<String>,
    /// Each place this fan was told it had lost (`place_lost`): how long
    /// before that question the edge had last answered it on that place,
    /// and how old the place was, in ms.
    pub losses: Vec<Loss>,
}

#[derive(Debug, Clone, Copy)]
pub struct Loss {
    pub heard_gap_ms: u32,
    pub age_ms: u32,
}

impl FanRecord {
    pub fn new(id: u32) -> FanRecord {
        FanRecord {
            id,
            ticket: None,
            places: 0,
            joined_ms: None,
            last_waiting_ms: None,
            admitted_ms: None,
            last_waiting_tick: None,
            admitted_tick: None,
            ended_ms: 0,
            first_core_ms: None,
            holds: Vec::new(),
            confirm: None,
            seats_bought: 0,
            confirmed_order: None,
            tickets_seen: 0,
            outcome: Outcome::NotAdmitted,
            note: None,
            losses: Vec::new(),
        }
    }
}

/// One per-second sample of the stack.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    pub at_ms: u32,
    pub waiting: u64,
    pub active: u64,
    pub admitted_total: u64,
    pub rate: u32,
    pub streams: i64,
    pub redis_commands: u64,
    pub pg_transactions: i64,
    pub sold: i64,
    /// The edge's count of places lost so far, and of its failed ticks.
    pub lost_total: u64,
    pub ticks_failed: u64,
}

pub struct Recorder {
    pub start: Instant,
    requests: Mutex<Vec<Req>>,
    /// Answers other than 2xx/3xx by request, status and problem code.
    errors: Mutex<std::collections::BTreeMap<(Kind, u16, String), u64>>,
    pub streams_open: AtomicI64,
    pub streams_peak: AtomicI64,
}

impl Recorder {
    pub fn new(start: Instant) -> Recorder {
        Recorder {
            start,
            requests: Mutex::new(Vec::with_capacity(1 << 16)),
            errors: Mutex::default(),
            streams_open: AtomicI64::new(0),
            streams_peak: AtomicI64::new(0),
        }
    }

    pub fn now_ms(&self) -> u32 {
        self.start.elapsed().as_millis() as u32
    }

    pub fn request(&self, r: Req) {
        locks::lock(&self.requests).push(r);
    }

    pub fn error(&self, kind: Kind, status: u16, code: &str) {
        let mut e = locks::lock(&self.errors);
        *e.entry((kind, status, code.to_owned())).or_default() += 1;
    }

    pub fn take_errors(&self) -> std::collections::BTreeMap<(Kind, u16, String), u64> {
        std::mem::take(&mut *locks::lock(&self.errors))
    }

    pub fn stream_opened(&self) {
        let n = self.streams_open.fetch_add(1, Ordering::Relaxed) + 1;
        self.streams_peak.fetch_max(n, Ordering::Relaxed);
    }

    pub fn stream_closed(&self) {
        self.streams_open.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn take_requests(&self) -> Vec<Req> {
        std::mem::take(&mut *locks::lock(&self.requests))
    }
}
