//! The farm's scenario file (`scenarios/botfarm.toml`): the crowd of fans,
//! the farm, the goals and the edge's `[defence]` tables, and the
//! simulator's scenario the stack is started with.

use std::path::Path;

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::sim::scenario::{self, Scenario};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FarmScenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub seed: u64,
    /// The run stops waiting for anyone this long after the on-sale.
    pub max_secs: u64,
    pub goals: Goals,
    pub fans: FanCrowd,
    pub bots: Farm,
    pub venue: scenario::Venue,
    pub sale: scenario::Sale,
    pub admission: scenario::Admission,
    /// The edge's `[defence]` tables for the run with defences on.
    pub defence: toml::Table,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Goals {
    pub max_bot_share: f64,
    pub max_fan_false_positives: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FanCrowd {
    pub count: usize,
    pub arrive_secs: f64,
    pub shared_networks: u32,
    pub per_shared_network: u32,
    pub poll_secs: f64,
    pub quantity: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Farm {
    pub attempts: usize,
    pub arrive_secs: f64,
    pub networks: u8,
    pub addresses_per_network: u8,
    pub joins_per_client: usize,
    pub accounts: usize,
    pub cards: usize,
    pub solver_threads: usize,
    pub max_solve_bits: u8,
    pub automation_share: f64,
    pub mix: Mix,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mix {
    pub solver: f64,
    pub skipper: f64,
    pub replayer: f64,
    pub thief: f64,
}

impl FarmScenario {
    pub fn load(path: &Path) -> anyhow::Result<FarmScenario> {
        let s: FarmScenario = scenario::read_toml(path)?;
        s.validate().with_context(|| format!("{}", path.display()))?;
        Ok(s)
    }

    fn validate(&self) -> anyhow::Result<()> {
        let f = &self.fans;
        let b = &self.bots;
        if f.count == 0 || f.arrive_secs <= 0.0 || f.poll_secs <= 0.0 || f.quantity == 0 {
            bail!("fans: count, arrive_secs, poll_secs and quantity must be positive");
        }
        if f.per_shared_network > 250 || (f.shared_networks * f.per_shared_network) as usize > f.count {
            bail!("fans: per_shared_network is at most 250, and the shared fans at most fans.count");
        }
        if f.quantity > self.sale.max_seats_per_fan {
            bail!("fans.quantity must not exceed sale.max_seats_per_fan");
        }
        if b.attempts == 0 || b.networks == 0 || b.addresses_per_network == 0 || b.addresses_per_network > 250 {
            bail!("bots: attempts, networks and addresses_per_network (at most 250) must be positive");
        }
        if b.joins_per_client == 0 || b.accounts == 0 || b.cards == 0 || b.solver_threads == 0 {
            bail!("bots: joins_per_client, accounts, cards and solver_threads must be positive");
        }
        let m = &b.mix;
        let sum = m.solver + m.skipper + m.replayer + m.thief;
        if [m.solver, m.skipper, m.replayer, m.thief].iter().any(|v| *v < 0.0) || (sum - 1.0).abs() > 1e-6 {
            bail!("bots.mix: the shares must not be negative and must add up to 1, not {sum}");
        }
        if !(0.0..=1.0).contains(&b.automation_share) {
            bail!("bots.automation_share must be between 0 and 1");
        }
        if self.venue.generated_seats() == 0 || self.venue.seeded.is_some() {
            bail!("venue: give sections, rows and seats_per_row");
        }
        Ok(())
    }

    /// The puzzle's base difficulty with defences on, if there is a puzzle.
    pub fn base_bits(&self) -> Option<u8> {
        self.defence
            .get("pow")?
            .get("base_bits")?
            .as_integer()
            .and_then(|b| u8::try_from(b).ok())
    }

    /// The simulator's scenario for the stack: venue, sale and room, and
    /// the defences appended to the edge's configuration if on.
    pub fn stack_scenario(&self, defences: bool) -> anyhow::Result<Scenario> {
        let edge_extra = if defences {
            let mut root = toml::Table::new();
            root.insert("defence".into(), toml::Value::Table(self.defence.clone()));
            toml::to_string(&root).context("the [defence] tables")?
        } else {
            String::new()
        };
        Ok(Scenario {
            name: self.name.clone(),
            description: self.description.clone(),
            fans: self.fans.count,
            seed: self.seed,
            max_secs: self.max_secs,
            arrival: scenario::Arrival {
                early_share: 0.0,
                early_secs: 0.0,
                spike_share: 1.0,
                spike_secs: self.fans.arrive_secs,
                tail_secs: 0.0,
            },
            venue: self.venue.clone(),
            sale: self.sale.clone(),
            admission: self.admission.clone(),
            behaviour: scenario::Behaviour {
                specific_seats: 0.0,
                abandon_hold: 0.0,
                payment_declines: 0.0,
                retry_after_timeout: 0.0,
                refresh_page: 0.0,
                lose_stream: 0.0,
                aggressive: 0.0,
                sse_share: 0.0,
                quantity: [self.fans.quantity, self.fans.quantity],
                patience_secs: 60,
                max_poll_secs: self.fans.poll_secs,
            },
            client: scenario::Client::default(),
            compare_passthrough: false,
            edge_extra,
        })
    }
}
