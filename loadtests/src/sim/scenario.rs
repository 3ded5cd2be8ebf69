//! A flash-sale scenario, read from a TOML file in `loadtests/scenarios/`:
//! how many fans arrive and when, the venue and the sale's rules, the
//! waiting room's settings, and what the fans do. Validated on load, with
//! the field named in any error.

use std::path::Path;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use usher_shared::admin::{QueueMode, RoomSettings};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Fans in the herd.
    pub fans: usize,
    /// Seeds every random choice, so a run can be repeated.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// The run stops waiting for fans this long after the on-sale.
    pub max_secs: u64,
    pub arrival: Arrival,
    pub venue: Venue,
    pub sale: Sale,
    pub admission: Admission,
    pub behaviour: Behaviour,
    #[serde(default)]
    pub client: Client,
    /// Run the herd a second time with the waiting room in passthrough,
    /// and put both side by side in the report.
    #[serde(default)]
    pub compare_passthrough: bool,
    /// More TOML appended to the edge's configuration as it is (the bot
    /// farm's `[defence]` tables); `{stack_dir}` in it names the run's
    /// directory, where the dev sign-in's public key `dev-1.pub.pem` is.
    #[serde(default)]
    pub edge_extra: String,
}

fn default_seed() -> u64 {
    1
}

/// When fans arrive, relative to the on-sale.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Arrival {
    /// Share that arrives before the on-sale (the pre-queue), spread over
    /// the `early_secs` before it.
    pub early_share: f64,
    pub early_secs: f64,
    /// Of the rest: the share that arrives in the first `spike_secs` after
    /// the on-sale; the others spread evenly over `tail_secs`.
    pub spike_share: f64,
    pub spike_secs: f64,
    pub tail_secs: f64,
}

/// The venue on sale: a generated block of sections, or the seeded stadium.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Venue {
    /// `"stadium"`: a protected copy of the seeded 50,000-seat stadium event.
    #[serde(default)]
    pub seeded: Option<String>,
    #[serde(default)]
    pub sections: u32,
    #[serde(default)]
    pub rows: u32,
    #[serde(default)]
    pub seats_per_row: u32,
    /// Price tiers, front sections first.
    #[serde(default = "default_tiers")]
    pub tiers: u32,
}

fn default_tiers() -> u32 {
    3
}

impl Venue {
    pub fn generated_seats(&self) -> usize {
        (self.sections * self.rows * self.seats_per_row) as usize
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sale {
    pub hold_secs: u32,
    pub max_seats_per_fan: u32,
    /// The on-sale opens this long after the fans start arriving.
    pub on_sale_after_secs: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admission {
    pub admit_per_minute: u32,
    pub max_active: u32,
    pub session_secs: u64,
    #[serde(default = "default_grace")]
    pub grace_secs: u64,
    /// Per source address and minute, as the edge's `[rate_limits]`.
    #[serde(default = "default_join_limit")]
    pub join_per_minute: u32,
    #[serde(default = "default_status_limit")]
    pub status_per_minute: u32,
    #[serde(default = "default_status_limit")]
    pub protected_per_minute: u32,
    /// How far above the admission rate the core's new sessions may go
    /// before the run fails (ticks are 200 ms; fans arrive in bursts).
    #[serde(default = "default_margin")]
    pub rate_margin: f64,
}

impl Admission {
    /// The event's waiting room for this scenario, opening at `on_sale_at`.
    pub fn room(&self, event: i64, mode: QueueMode, on_sale_at: DateTime<Utc>) -> RoomSettings {
        RoomSettings {
            on_sale_at: Some(on_sale_at),
            grace_secs: self.grace_secs,
            ..RoomSettings::new(event, mode, self.admit_per_minute, self.max_active, self.session_secs)
        }
    }
}

fn default_grace() -> u64 {
    60
}
fn default_join_limit() -> u32 {
    600
}
fn default_status_limit() -> u32 {
    3000
}
fn default_margin() -> f64 {
    0.10
}

/// What fans do. The shares of the mix add up to at most 1; the rest buy
/// straightforwardly (best available).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Behaviour {
    /// Pick specific seats from the map (the rest ask for best available).
    pub specific_seats: f64,
    pub abandon_hold: f64,
    pub payment_declines: f64,
    pub retry_after_timeout: f64,
    pub refresh_page: f64,
    pub lose_stream: f64,
    /// Clients that poll and retry without waiting (ignoring Retry-After).
    pub aggressive: f64,
    /// Share of fans that wait on the SSE stream; the others poll.
    pub sse_share: f64,
    /// Seats per fan, inclusive range.
    pub quantity: [u32; 2],
    /// How long an admitted fan keeps looking when nothing is free.
    pub patience_secs: u64,
    /// The longest a polling fan waits between two status calls (a quarter
    /// of the ETA, at least a second); keep it well under the room's
    /// `grace_secs`.
    #[serde(default = "default_max_poll")]
    pub max_poll_secs: f64,
}

fn default_max_poll() -> f64 {
    15.0
}

/// The load generator itself.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Client {
    /// Distinct 127.0.0.x source addresses (past the ephemeral port limit,
    /// and so that per-address limits see many clients).
    pub source_addresses: u32,
    /// Open SSE streams at most; fans beyond it poll.
    pub max_streams: usize,
    /// Joins in flight at most (the process may hold 20,000 files).
    pub max_in_flight: usize,
    /// Queued fans' position polls in flight at most: their own lane, so a
    /// join spike in this one process does not make polls late (on real
    /// phones nobody shares a connection limit).
    #[serde(default = "default_poll_in_flight")]
    pub max_poll_in_flight: usize,
    /// Admitted fans' requests in flight at most: a lane of their own, so
    /// that a fan who got in never queues in this process behind the
    /// herd's polls (on real phones nobody shares a connection limit).
    #[serde(default = "default_shop_in_flight")]
    pub max_shop_in_flight: usize,
}

fn default_shop_in_flight() -> usize {
    1_000
}

fn default_poll_in_flight() -> usize {
    2_000
}

impl Default for Client {
    fn default() -> Self {
        Client {
            source_addresses: 64,
            max_streams: 8_000,
            max_in_flight: 3_000,
            max_poll_in_flight: default_poll_in_flight(),
            max_shop_in_flight: default_shop_in_flight(),
        }
    }
}

/// A scenario file read and parsed (the simulator's and the bot farm's
/// alike), its errors naming the file.
pub fn read_toml<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("{}", path.display()))
}

impl Scenario {
    pub fn load(path: &Path) -> anyhow::Result<Scenario> {
        let s: Scenario = read_toml(path)?;
        s.validate().with_context(|| format!("{}", path.display()))?;
        Ok(s)
    }

    fn validate(&self) -> anyhow::Result<()> {
        let share = |name: &str, v: f64| -> anyhow::Result<()> {
            if !(0.0..=1.0).contains(&v) {
                bail!("{name} must be between 0 and 1, not {v}");
            }
            Ok(())
        };
        if self.fans == 0 {
            bail!("fans must be at least 1");
        }
        let a = &self.arrival;
        share("arrival.early_share", a.early_share)?;
        share("arrival.spike_share", a.spike_share)?;
        if a.early_secs < 0.0 || a.spike_secs <= 0.0 || a.tail_secs < 0.0 {
            bail!("arrival: early_secs and tail_secs must be >= 0, spike_secs > 0");
        }
        if a.early_secs > self.sale.on_sale_after_secs {
            bail!("arrival.early_secs cannot exceed sale.on_sale_after_secs");
        }
        match self.venue.seeded.as_deref() {
            Some("stadium") => {}
            Some(other) => bail!("venue.seeded: only \"stadium\" is seeded, not {other:?}"),
            None if self.venue.generated_seats() == 0 => {
                bail!("venue: give sections, rows and seats_per_row, or seeded = \"stadium\"")
            }
            None if self.venue.tiers == 0 || self.venue.tiers > self.venue.sections => {
                bail!("venue.tiers must be between 1 and the number of sections")
            }
            None => {}
        }
        if self.sale.hold_secs < 10 || self.sale.max_seats_per_fan == 0 {
            bail!("sale: hold_secs must be at least 10 and max_seats_per_fan at least 1");
        }
        let ad = &self.admission;
        if ad.admit_per_minute == 0 || ad.max_active == 0 || ad.session_secs == 0 {
            bail!("admission: admit_per_minute, max_active and session_secs must be positive");
        }
        let b = &self.behaviour;
        for (n, v) in [
            ("behaviour.specific_seats", b.specific_seats),
            ("behaviour.abandon_hold", b.abandon_hold),
            ("behaviour.payment_declines", b.payment_declines),
            ("behaviour.retry_after_timeout", b.retry_after_timeout),
            ("behaviour.refresh_page", b.refresh_page),
            ("behaviour.lose_stream", b.lose_stream),
            ("behaviour.aggressive", b.aggressive),
            ("behaviour.sse_share", b.sse_share),
        ] {
            share(n, v)?;
        }
        if b.abandon_hold + b.payment_declines + b.retry_after_timeout > 1.0 {
            bail!("behaviour: abandon_hold + payment_declines + retry_after_timeout must not exceed 1");
        }
        if b.quantity[0] == 0 || b.quantity[0] > b.quantity[1] || b.quantity[1] > self.sale.max_seats_per_fan {
            bail!("behaviour.quantity must be [low, high] with 1 <= low <= high <= sale.max_seats_per_fan");
        }
        if b.max_poll_secs < 1.0 || b.max_poll_secs * 2.0 > self.admission.grace_secs as f64 {
            bail!("behaviour.max_poll_secs must be at least 1 and at most half of admission.grace_secs");
        }
        let c = &self.client;
        if c.source_addresses == 0
            || c.source_addresses > 250
            || c.max_in_flight == 0
            || c.max_poll_in_flight == 0
            || c.max_shop_in_flight == 0
        {
            bail!(
                "client: source_addresses must be 1..=250, and max_in_flight, max_poll_in_flight and max_shop_in_flight positive"
            );
        }
        if c.max_streams + c.max_in_flight + c.max_poll_in_flight + c.max_shop_in_flight > 16_000 {
            bail!(
                "client: max_streams + max_in_flight + max_poll_in_flight + max_shop_in_flight must stay under 16,000 (20,000 open files per process)"
            );
        }
        Ok(())
    }
}
