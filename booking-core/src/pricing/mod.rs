//! Dynamic pricing: each tier's price recalculated on an interval (30 s by
//! default, `[pricing] interval_secs`, or the event's own) from demand the
//! core already sees: holds and sales in the interval, the share of the
//! tier left, the time to the event, and the edge's queue length.
//!
//! - `rule.rs`: the `PricingRule` trait and the default rule, documented
//!   there (a pure function; every change stores the rule's version).
//! - `signals.rs`: the SQL that reads the signals, and the queue source.
//! - `runner.rs`: the job; exactly one run per interval per event whatever
//!   the number of instances (the interval is claimed in `pricing_runs` in
//!   the transaction that writes the prices).
//! - `fees.rs`, `fee_settings.rs`, `currency.rs`: an event's currency,
//!   fees and taxes, and the lines they put on an order.
//! - `settings.rs`: what operators set (off by default, freeze, bounds per
//!   tier: floor, ceiling, largest step) and read (prices and history).
//!
//! Fairness: the hold locks the price it was made at (`place_hold` copies
//! the tier's price into the hold, and an order charges the hold's prices),
//! so a recalculation never changes a price inside a hold. Price changes
//! reach the seat map through the seat-change stream (`inventory/feed.rs`).

pub mod currency;
pub mod fee_settings;
pub mod fees;
pub mod rule;
pub mod runner;
pub mod settings;
pub mod signals;

use serde::Serialize;

pub use rule::{Bounds, DemandRule, PricingRule, Signals};
pub use runner::{Change, RunOutcome, Runner};
pub use signals::{FixedQueue, NoQueue, QueueReading, QueueSource};

/// Why an operator's pricing settings were refused.
#[derive(Debug, thiserror::Error, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PricingError {
    #[error("the event has no tier {tier}")]
    UnknownTier { tier: i16 },
    #[error("tier {tier} is given twice")]
    DuplicateTier { tier: i16 },
    #[error("tier {tier}: {reason}")]
    InvalidBounds { tier: i16, reason: &'static str },
    #[error("interval_secs must be 5 to 3600")]
    InvalidInterval,
    #[error("storage: {0}")]
    #[serde(skip)]
    Db(#[from] sqlx::Error),
}
