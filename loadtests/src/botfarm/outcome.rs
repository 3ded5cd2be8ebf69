//! What one run of the farm produced: each fan's and each bot attempt's
//! end, the seats sold and to whom, the books' problems and the edge's
//! counters; and, from those, the run's broken invariants and missed goals.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use super::scenario::Goals;

/// What kind of bot a bot client is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BotKind {
    /// Solves, with an automation user agent and no Accept-Language.
    SolverAutomation,
    /// Solves, with a browser's headers.
    SolverBrowser,
    Skipper,
    Replayer,
    Thief,
}

impl BotKind {
    pub fn name(self) -> &'static str {
        match self {
            BotKind::SolverAutomation => "solver (automation UA)",
            BotKind::SolverBrowser => "solver (browser UA)",
            BotKind::Skipper => "skipper",
            BotKind::Replayer => "replayer",
            BotKind::Thief => "cookie thief",
        }
    }
}

/// One fan's run, as the fan saw it.
#[derive(Debug, Clone, Default)]
pub struct FanOut {
    pub id: usize,
    pub shared_network: bool,
    /// Given a puzzle above the base bits.
    pub harder: bool,
    pub max_bits: u8,
    pub deferred: bool,
    pub blocked: bool,
    pub place: bool,
    pub lost_place: bool,
    pub admitted: bool,
    pub seats: u32,
    pub end: String,
}

impl FanOut {
    pub fn false_positive(&self) -> bool {
        self.harder || self.deferred || self.blocked
    }
}

/// One bot join attempt's run.
#[derive(Debug, Clone)]
pub struct BotOut {
    pub kind: BotKind,
    pub client: usize,
    pub addr: Ipv4Addr,
    /// When it got its place, ms from the start.
    pub placed_ms: Option<u32>,
    pub blocked: bool,
    pub deferred: bool,
    pub place: bool,
    pub lost_place: bool,
    pub admitted: bool,
    pub seats: u32,
    pub end: String,
}

/// Everything one run produced.
pub struct FarmRun {
    pub defences: bool,
    pub fans: Vec<FanOut>,
    pub bots: Vec<BotOut>,
    pub seats: i64,
    pub sold: i64,
    /// From the database: seats on valid tickets of orders by the farm's
    /// accounts.
    pub bot_seats: i64,
    pub oversold: i64,
    pub charge_problems: Vec<String>,
    pub unsettled_orders: i64,
    /// From the on-sale to the last seat sold.
    pub sold_out_secs: Option<f64>,
    /// The edge's defence counters (Prometheus lines).
    pub metrics: Vec<String>,
    pub elapsed_secs: f64,
    /// Puzzles the farm solved and the hashes it spent.
    pub farm_solves: usize,
    pub farm_hashes: u64,
    /// Per bot address, when the edge last blocked or deferred it (ms
    /// from the start).
    pub refused_at: HashMap<Ipv4Addr, u32>,
}

impl FarmRun {
    pub fn bot_share(&self) -> f64 {
        if self.sold == 0 {
            0.0
        } else {
            self.bot_seats as f64 / self.sold as f64
        }
    }

    pub fn fan_false_positives(&self) -> usize {
        self.fans.iter().filter(|f| f.false_positive()).count()
    }

    pub fn fan_false_positive_share(&self) -> f64 {
        self.fan_false_positives() as f64 / self.fans.len().max(1) as f64
    }

    /// What is wrong with this run whatever the defences: seats sold twice,
    /// charges without tickets, orders left unsettled.
    pub fn violations(&self) -> Vec<String> {
        let mut v = Vec::new();
        if self.oversold > 0 {
            v.push(format!("{} seats have two valid tickets", self.oversold));
        }
        v.extend(self.charge_problems.iter().cloned());
        if self.unsettled_orders > 0 {
            v.push(format!(
                "{} orders still unsettled a minute after the run",
                self.unsettled_orders
            ));
        }
        v
    }

    /// The goals this run missed (meant for the run with defences).
    pub fn missed_goals(&self, goals: &Goals) -> Vec<String> {
        let mut v = Vec::new();
        if self.bot_share() >= goals.max_bot_share {
            v.push(format!(
                "bots bought {} of {} seats sold ({:.2}%; goal under {:.2}%)",
                self.bot_seats,
                self.sold,
                self.bot_share() * 100.0,
                goals.max_bot_share * 100.0
            ));
        }
        if self.fan_false_positive_share() >= goals.max_fan_false_positives {
            v.push(format!(
                "{} of {} fans were challenged harder, deferred or blocked ({:.2}%; goal under {:.2}%)",
                self.fan_false_positives(),
                self.fans.len(),
                self.fan_false_positive_share() * 100.0,
                goals.max_fan_false_positives * 100.0
            ));
        }
        v
    }
}
