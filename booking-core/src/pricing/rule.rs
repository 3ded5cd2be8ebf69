//! The pricing rule: a pure function from one tier's demand signals over the
//! last interval, its current price and the operator's bounds to its next
//! price. Pluggable (`PricingRule`); the runner stores the rule's version
//! with every change it makes, and bounds every rule's answer again itself,
//! so no rule can leave the operator's bounds.
//!
//! # The default rule (`demand-v1`)
//!
//! 1. **Demand** in seats for the interval: seats sold, plus half the seats
//!    newly held (a hold is interest, not yet a sale), plus a tenth of the
//!    fans waiting in the edge's queue, shared out by this tier's part of
//!    the seats left in the event (unknown queue: 0).
//! 2. **Expected**: the seats per interval that would sell this tier's
//!    remaining seats out evenly by the event's start, but at least one.
//! 3. **Change**: 5% of the price for each whole `demand / expected` above
//!    one (at most +25%), and -5% when the ratio is 0 (no demand at all),
//!    in proportion between. So a tier selling faster than it needs to goes
//!    up, one selling slower goes down, and the nearer the event, the more
//!    "expected" is and the harder it is to rise.
//! 4. **Scarcity** (the share of the tier held or sold) makes rises bigger
//!    and falls smaller: a rise is multiplied by `1 + scarcity`, a fall by
//!    `1 - scarcity / 2`. A sold-out tier does not move (nobody could pay
//!    the new price).
//! 5. **Bounds**: the move is cut to the largest step per interval, then to
//!    the floor and ceiling (`Bounds::apply`). If the operator narrowed the
//!    bounds so that the current price is outside them, the price goes to
//!    the nearest bound at once: the operator's bounds are a hard limit, the
//!    step limit only paces the rule.

use serde::Serialize;

use crate::ids::Cents;

/// What the rule sees of one tier over one interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Signals {
    pub interval_secs: u32,
    /// Seats in the tier.
    pub capacity: u32,
    /// Seats in the tier neither held nor sold now.
    pub remaining: u32,
    /// Seats whose hold began in the interval and still stands.
    pub held: u32,
    /// Seats sold in the interval.
    pub sold: u32,
    /// Seats neither held nor sold now, over every tier of the event.
    pub event_remaining: u32,
    /// Fans waiting in the edge's queue for the event; None when unknown.
    pub queue_length: Option<u64>,
    /// Seconds from now to the event's start.
    pub secs_to_event: i64,
}

/// The operator's bounds for one tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Bounds {
    pub floor: Cents,
    pub ceiling: Cents,
    /// The largest change in one interval, up or down (> 0).
    pub max_step: Cents,
}

impl Bounds {
    /// Where a proposed price ends up: within one step of `current`, then
    /// within floor and ceiling. A current price outside the bounds (the
    /// operator narrowed them) goes straight to the nearest bound.
    pub fn apply(&self, current: Cents, proposed: Cents) -> Cents {
        let (floor, ceiling) = (self.floor.0, self.ceiling.0.max(self.floor.0));
        if current.0 < floor {
            return Cents(floor);
        }
        if current.0 > ceiling {
            return Cents(ceiling);
        }
        let step = self.max_step.0.max(0);
        let stepped = proposed
            .0
            .clamp(current.0.saturating_sub(step), current.0.saturating_add(step));
        Cents(stepped.clamp(floor, ceiling))
    }
}

/// A pricing rule. Implementations must be pure: the same arguments give
/// the same price (the history is meant to explain every change).
pub trait PricingRule: Send + Sync {
    /// Stored with every change; change it whenever the arithmetic changes.
    fn version(&self) -> &'static str;

    /// The tier's next price.
    fn price(&self, current: Cents, signals: &Signals, bounds: &Bounds) -> Cents;
}

/// The rule described in this module's documentation.
#[derive(Debug, Clone, Copy, Default)]
pub struct DemandRule;

/// Per whole demand/expected ratio above one.
const STEP_PER_RATIO: f64 = 0.05;
const MAX_RISE: f64 = 0.25;
const MAX_FALL: f64 = 0.05;
/// Share of a waiting fan counted as demand for this interval.
const QUEUE_WEIGHT: f64 = 0.1;

impl DemandRule {
    /// The relative change before bounds (e.g. 0.1 for +10%).
    pub fn change(signals: &Signals) -> f64 {
        let s = signals;
        if s.remaining == 0 {
            return 0.0;
        }
        let remaining = f64::from(s.remaining);
        let queue_share = match s.queue_length {
            Some(q) if s.event_remaining > 0 => q as f64 * remaining / f64::from(s.event_remaining),
            _ => 0.0,
        };
        let demand = f64::from(s.sold) + f64::from(s.held) / 2.0 + QUEUE_WEIGHT * queue_share;
        let secs = s.secs_to_event.max(i64::from(s.interval_secs).max(1)) as f64;
        let expected = (remaining * f64::from(s.interval_secs) / secs).max(1.0);
        let ratio = demand / expected;
        let scarcity = if s.capacity == 0 {
            0.0
        } else {
            1.0 - (remaining / f64::from(s.capacity)).min(1.0)
        };
        if ratio >= 1.0 {
            (STEP_PER_RATIO * (ratio - 1.0)).min(MAX_RISE) * (1.0 + scarcity)
        } else {
            -MAX_FALL * (1.0 - ratio) * (1.0 - scarcity / 2.0)
        }
    }
}

impl PricingRule for DemandRule {
    fn version(&self) -> &'static str {
        "demand-v1"
    }

    fn price(&self, current: Cents, signals: &Signals, bounds: &Bounds) -> Cents {
        let change = Self::change(signals);
        let proposed = (current.0 as f64 * (1.0 + change)).round();
        // Finite and within i64 by construction (|change| <= 0.5, prices
        // within the schema's 0..=100000000), but never trust a float.
        let proposed = if proposed.is_finite() {
            proposed.clamp(0.0, i64::MAX as f64) as i64
        } else {
            current.0
        };
        bounds.apply(current, Cents(proposed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quiet() -> Signals {
        Signals {
            interval_secs: 30,
            capacity: 100,
            remaining: 100,
            held: 0,
            sold: 0,
            event_remaining: 300,
            queue_length: None,
            secs_to_event: 30 * 86_400,
        }
    }

    const B: Bounds = Bounds {
        floor: Cents(500),
        ceiling: Cents(5000),
        max_step: Cents(300),
    };

    #[test]
    fn no_demand_falls_and_a_surge_rises() {
        assert_eq!(DemandRule.price(Cents(2000), &quiet(), &B), Cents(1900));
        let surge = Signals {
            sold: 10,
            held: 4,
            remaining: 86,
            ..quiet()
        };
        assert!(DemandRule.price(Cents(2000), &surge, &B) > Cents(2000));
        let queue = Signals {
            queue_length: Some(3000),
            ..quiet()
        };
        assert!(DemandRule.price(Cents(2000), &queue, &B) > Cents(2000));
    }

    #[test]
    fn bounds_cut_the_step_and_pull_prices_inside() {
        assert_eq!(B.apply(Cents(2000), Cents(9000)), Cents(2300));
        assert_eq!(B.apply(Cents(4900), Cents(9000)), Cents(5000));
        assert_eq!(B.apply(Cents(600), Cents(0)), Cents(500));
        // Narrowed by the operator: straight to the bound.
        assert_eq!(B.apply(Cents(9000), Cents(9000)), Cents(5000));
        assert_eq!(B.apply(Cents(100), Cents(100)), Cents(500));
    }

    #[test]
    fn a_sold_out_tier_stays() {
        let out = Signals {
            remaining: 0,
            sold: 5,
            ..quiet()
        };
        assert_eq!(DemandRule.price(Cents(2000), &out, &B), Cents(2000));
    }
}
