//! What the defences did, for SREs: counters rendered with the rest of the
//! metrics, and the admin API's view (settings, counters, the networks with
//! most against them).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Instant;

use serde::Serialize;

use super::Defences;
use crate::config::{PowConfig, RiskRule};
use crate::locks;

/// Counter families: name and help.
const FAMILIES: [(&str, &str); 6] = [
    (
        "usher_challenges_total",
        "Proof-of-work challenges, by result (issued, solved, or why they failed).",
    ),
    (
        "usher_defence_actions_total",
        "Joins a risk rule acted on, by rule and action.",
    ),
    ("usher_captcha_total", "CAPTCHA checks, by result."),
    (
        "usher_replays_total",
        "Tokens or challenges presented again or by another client, by kind.",
    ),
    (
        "usher_places_taken_back_total",
        "Waiting places taken back from addresses sent to the back or blocked, by rule.",
    ),
    (
        "usher_fan_places_total",
        "Joins by signed-in fans, by whether they got a new place or their own again.",
    ),
];

impl Defences {
    pub fn count(&self, family: &'static str, labels: String) {
        *locks::lock(&self.counters).entry((family, labels)).or_default() += 1;
    }

    /// The Prometheus families.
    pub fn render(&self, out: &mut String) {
        let counters = locks::lock(&self.counters).clone();
        for (name, help) in FAMILIES {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for ((family, labels), n) in &counters {
                if *family == name {
                    let _ = writeln!(out, "{name}{{{labels}}} {n}");
                }
            }
        }
    }

    /// What the admin API shows.
    pub fn view(&self) -> DefenceView {
        let counters = locks::lock(&self.counters);
        DefenceView {
            pow: self.config.pow.clone(),
            rules: self.config.rules.clone(),
            captcha: self.captcha.is_some(),
            one_place_per_fan: self.fans.is_some(),
            counters: counters
                .iter()
                .map(|((family, labels), n)| (format!("{family}{{{labels}}}"), *n))
                .collect(),
            worst_networks: self
                .risk
                .worst_networks(10, Instant::now())
                .into_iter()
                .map(|(network, joins_per_minute, misdeed_points)| NetworkView {
                    network,
                    joins_per_minute,
                    misdeed_points,
                })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct DefenceView {
    pub pow: Option<PowConfig>,
    pub rules: Vec<RiskRule>,
    pub captcha: bool,
    pub one_place_per_fan: bool,
    pub counters: BTreeMap<String, u64>,
    pub worst_networks: Vec<NetworkView>,
}

#[derive(Debug, Serialize)]
pub struct NetworkView {
    pub network: String,
    pub joins_per_minute: f64,
    pub misdeed_points: f64,
}
