//! A risk score per client, from what the edge sees of it: how fast its
//! address and its network join, how many queue tokens one client binding
//! takes, browser signals in its headers, and the bad things it has done
//! (replayed a token or a challenge, failed a challenge), which fade with a
//! half-life. Kept in each instance's memory and, with shared counts on
//! (`[rate_limits.shared]`), added up across every edge through Redis
//! (`limits::tally`): a bot that spreads over many edges is seen whole by
//! each, within a sync. Each count read is the larger of this edge's own
//! and the shared sum, so a Redis that is slow or away leaves each edge
//! with what it saw itself.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::config::RiskConfig;
use crate::limits::tally::{self, Measure, Tallies};
use crate::locks;

pub use crate::limits::network_of;

/// Counts over a sliding minute: this minute's and the last one's, the last
/// one weighted by how much of it is still within the past 60 seconds.
#[derive(Debug, Clone, Copy, Default)]
struct Window {
    minute: u64,
    current: u32,
    previous: u32,
}

impl Window {
    fn roll(&mut self, minute: u64) {
        if minute != self.minute {
            self.previous = if minute == self.minute + 1 { self.current } else { 0 };
            self.current = 0;
            self.minute = minute;
        }
    }

    fn add(&mut self, minute: u64) {
        self.roll(minute);
        self.current = self.current.saturating_add(1);
    }

    fn rate(&mut self, minute: u64, frac: f64) -> f64 {
        self.roll(minute);
        f64::from(self.current) + f64::from(self.previous) * (1.0 - frac)
    }
}

#[derive(Debug, Default)]
struct Record {
    joins: Window,
    /// Points from bad deeds, as of `at`.
    points: f64,
    at: Option<Instant>,
    seen: Option<Instant>,
}

/// Something a client did that counts against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misdeed {
    Replay,
    FailedChallenge,
}

/// A client's score and what made it, for the logs, metrics and tests.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Assessment {
    pub score: f64,
    pub parts: Vec<(&'static str, f64)>,
    /// Joins per minute from the client's network (for the puzzle's
    /// difficulty).
    pub network_rate: f64,
}

/// What the request's headers say about the client.
#[derive(Debug, Clone, Copy, Default)]
pub struct Signals<'a> {
    pub user_agent: &'a str,
    pub accept_language: &'a str,
}

/// Automation tools and headless browsers that say so.
const HEADLESS_MARKERS: [&str; 12] = [
    "headless",
    "phantomjs",
    "selenium",
    "webdriver",
    "puppeteer",
    "playwright",
    "python-requests",
    "python-urllib",
    "curl/",
    "wget/",
    "go-http-client",
    "scrapy",
];

pub struct Risk {
    config: RiskConfig,
    start: Instant,
    clients: Mutex<HashMap<IpAddr, Record>>,
    networks: Mutex<HashMap<String, Record>>,
    bindings: Mutex<HashMap<String, Window>>,
    tallies: Arc<Tallies>,
}

/// Records kept before quiet ones are dropped.
const MAX_RECORDS: usize = 200_000;

impl Risk {
    pub fn new(config: RiskConfig, tallies: Arc<Tallies>) -> Risk {
        Risk {
            config,
            start: Instant::now(),
            clients: Mutex::default(),
            networks: Mutex::default(),
            bindings: Mutex::default(),
            tallies,
        }
    }

    fn fading(&self) -> Measure {
        Measure::Fading {
            half_life_ms: self.config.half_life_secs.saturating_mul(1000),
        }
    }

    /// The larger of this edge's count and every edge's.
    fn shared_rate(&self, local: f64, key: &str) -> f64 {
        self.tallies.per_minute(key).map_or(local, |shared| shared.max(local))
    }

    fn shared_points(&self, local: f64, key: &str) -> f64 {
        let half_life_ms = self.config.half_life_secs.saturating_mul(1000);
        self.tallies
            .points(key, half_life_ms)
            .map_or(local, |shared| shared.max(local))
    }

    fn clock(&self, now: Instant) -> (u64, f64) {
        let secs = now.saturating_duration_since(self.start).as_secs_f64();
        ((secs / 60.0) as u64, (secs % 60.0) / 60.0)
    }

    fn decayed(&self, r: &Record, now: Instant) -> f64 {
        match r.at {
            Some(at) => {
                let halves = now.saturating_duration_since(at).as_secs_f64() / self.config.half_life_secs as f64;
                r.points * 0.5f64.powf(halves)
            }
            None => 0.0,
        }
    }

    /// Fetches what other edges know of this client's address and
    /// network, if this edge knows nothing yet (a client new here): a
    /// misdeed seen on another edge then counts on its first join here too.
    /// One call (a network's counts share a shard); a binding's tokens are
    /// left to the next sync, since nearly every join brings a new binding.
    pub async fn fetch_shared(&self, ip: IpAddr) {
        if !self.tallies.enabled() {
            return;
        }
        let network = network_of(ip);
        let fading = self.fading();
        self.tallies
            .fetch_unknown(&[
                (tally::key("att", &ip, &network), Measure::Minute),
                (tally::key("att-net", &network, &network), Measure::Minute),
                (tally::key("pts", &ip, &network), fading),
                (tally::key("pts-net", &network, &network), fading),
            ])
            .await;
    }

    /// A join or a challenge request from this client.
    pub fn attempt(&self, ip: IpAddr, now: Instant) {
        let (minute, _) = self.clock(now);
        let mut clients = locks::lock(&self.clients);
        let c = clients.entry(ip).or_default();
        c.joins.add(minute);
        c.seen = Some(now);
        drop(clients);
        let mut networks = locks::lock(&self.networks);
        let n = networks.entry(network_of(ip)).or_default();
        n.joins.add(minute);
        n.seen = Some(now);
        drop(networks);
        let network = network_of(ip);
        self.tallies
            .add(&tally::key("att", &ip, &network), Measure::Minute, 1.0);
        self.tallies
            .add(&tally::key("att-net", &network, &network), Measure::Minute, 1.0);
    }

    /// A queue token went to this client binding.
    pub fn token_issued(&self, binding: &str, now: Instant) {
        let (minute, _) = self.clock(now);
        let mut bindings = locks::lock(&self.bindings);
        bindings.entry(binding.to_owned()).or_default().add(minute);
        drop(bindings);
        self.tallies
            .add(&tally::key("tok", &binding, binding), Measure::Minute, 1.0);
    }

    /// The client did something only a bot (or a broken client) does; a
    /// share of it also falls on its network.
    pub fn misdeed(&self, ip: IpAddr, what: Misdeed, now: Instant) {
        let points = match what {
            Misdeed::Replay => self.config.replay_points,
            Misdeed::FailedChallenge => self.config.failed_challenge_points,
        };
        let add = |r: &mut Record, p: f64| {
            r.points = self.decayed(r, now) + p;
            r.at = Some(now);
            r.seen = Some(now);
        };
        add(locks::lock(&self.clients).entry(ip).or_default(), points);
        add(
            locks::lock(&self.networks).entry(network_of(ip)).or_default(),
            points / 4.0,
        );
        let network = network_of(ip);
        self.tallies
            .add(&tally::key("pts", &ip, &network), self.fading(), points);
        self.tallies
            .add(&tally::key("pts-net", &network, &network), self.fading(), points / 4.0);
    }

    pub fn assess(&self, ip: IpAddr, binding: &str, signals: Signals<'_>, now: Instant) -> Assessment {
        let c = &self.config;
        let (minute, frac) = self.clock(now);
        let mut parts = Vec::new();
        let (ip_rate, ip_points) = {
            let mut clients = locks::lock(&self.clients);
            match clients.get_mut(&ip) {
                Some(r) => (r.joins.rate(minute, frac), self.decayed(r, now)),
                None => (0.0, 0.0),
            }
        };
        let (net_rate, net_points) = {
            let mut networks = locks::lock(&self.networks);
            match networks.get_mut(&network_of(ip)) {
                Some(r) => (r.joins.rate(minute, frac), self.decayed(r, now)),
                None => (0.0, 0.0),
            }
        };
        let network = network_of(ip);
        let ip_rate = self.shared_rate(ip_rate, &tally::key("att", &ip, &network));
        let net_rate = self.shared_rate(net_rate, &tally::key("att-net", &network, &network));
        let ip_points = self.shared_points(ip_points, &tally::key("pts", &ip, &network));
        let net_points = self.shared_points(net_points, &tally::key("pts-net", &network, &network));
        let velocity = ((ip_rate - f64::from(c.ip_joins_per_minute)).max(0.0) * c.ip_points_per_join
            + (net_rate - f64::from(c.network_joins_per_minute)).max(0.0) * c.network_points_per_join)
            .min(c.velocity_cap);
        parts.push(("velocity", velocity));
        let tokens = locks::lock(&self.bindings)
            .get_mut(binding)
            .map_or(0.0, |w| w.rate(minute, frac));
        let tokens = self.shared_rate(tokens, &tally::key("tok", &binding, binding));
        parts.push((
            "tokens_per_client",
            (tokens - f64::from(c.tokens_per_binding)).max(0.0) * c.points_per_token,
        ));
        let ua = signals.user_agent.to_ascii_lowercase();
        let headless = ua.trim().is_empty() || HEADLESS_MARKERS.iter().any(|m| ua.contains(m));
        parts.push(("headless", if headless { c.headless_points } else { 0.0 }));
        parts.push((
            "no_language",
            if signals.accept_language.trim().is_empty() {
                c.no_language_points
            } else {
                0.0
            },
        ));
        parts.push(("misdeeds", ip_points + net_points));
        parts.retain(|(_, p)| *p > 0.0);
        Assessment {
            score: parts.iter().map(|(_, p)| p).sum(),
            parts,
            network_rate: net_rate,
        }
    }

    /// Forgets clients quiet for two minutes with nothing left against them,
    /// and everything past the size bound.
    pub fn tidy(&self, now: Instant) {
        let (minute, _) = self.clock(now);
        let quiet = |r: &Record| {
            r.seen
                .is_none_or(|s| now.saturating_duration_since(s).as_secs() > 120 && self.decayed(r, now) < 0.5)
        };
        let mut clients = locks::lock(&self.clients);
        clients.retain(|_, r| !quiet(r));
        if clients.len() > MAX_RECORDS {
            clients.clear();
        }
        drop(clients);
        let mut networks = locks::lock(&self.networks);
        networks.retain(|_, r| !quiet(r));
        if networks.len() > MAX_RECORDS {
            networks.clear();
        }
        drop(networks);
        let mut bindings = locks::lock(&self.bindings);
        bindings.retain(|_, w| w.minute + 1 >= minute);
        if bindings.len() > MAX_RECORDS {
            bindings.clear();
        }
    }

    /// The networks with the most against them now, for the admin API.
    pub fn worst_networks(&self, n: usize, now: Instant) -> Vec<(String, f64, f64)> {
        let (minute, frac) = self.clock(now);
        let mut networks = locks::lock(&self.networks);
        let mut all: Vec<(String, f64, f64)> = networks
            .iter_mut()
            .map(|(k, r)| (k.clone(), r.joins.rate(minute, frac), self.decayed(r, now)))
            .collect();
        all.sort_by(|a, b| (b.1 + b.2 * 10.0).total_cmp(&(a.1 + a.2 * 10.0)));
        all.truncate(n);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const BROWSER: Signals = Signals {
        user_agent: "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0",
        accept_language: "en-GB,en;q=0.9",
    };

    #[test]
    fn an_ordinary_fan_scores_nothing_and_a_fast_client_scores_by_its_speed() {
        let r = Risk::new(RiskConfig::default(), Arc::new(Tallies::off()));
        let t = Instant::now();
        let fan: IpAddr = "10.1.1.1".parse().unwrap();
        r.attempt(fan, t);
        r.token_issued("fan", t);
        assert_eq!(r.assess(fan, "fan", BROWSER, t).score, 0.0);
        let bot: IpAddr = "10.2.2.2".parse().unwrap();
        for _ in 0..30 {
            r.attempt(bot, t);
        }
        let a = r.assess(bot, "bot", BROWSER, t);
        // 10 joins over 20 per minute at 2 points each.
        assert_eq!(a.score, 20.0);
        assert_eq!(a.parts, vec![("velocity", 20.0)]);
        // The neighbour on another network is untouched.
        assert_eq!(r.assess(fan, "fan", BROWSER, t).score, 0.0);
        // Capped.
        for _ in 0..1000 {
            r.attempt(bot, t);
        }
        assert_eq!(r.assess(bot, "bot", BROWSER, t).score, 60.0);
    }

    #[test]
    fn tokens_per_binding_headers_and_misdeeds_add_up_and_misdeeds_fade() {
        let r = Risk::new(RiskConfig::default(), Arc::new(Tallies::off()));
        let t = Instant::now();
        let ip: IpAddr = "10.3.3.3".parse().unwrap();
        for _ in 0..5 {
            r.token_issued("b", t);
        }
        let bare = Signals {
            user_agent: "python-requests/2.31",
            accept_language: "",
        };
        r.misdeed(ip, Misdeed::Replay, t);
        let a = r.assess(ip, "b", bare, t);
        // 2 tokens over 3 (20) + headless 15 + no language 5 + replay 25 and
        // its share on the network (6.25).
        assert_eq!(a.score, 20.0 + 15.0 + 5.0 + 25.0 + 6.25);
        let later = t + Duration::from_secs(600);
        let a = r.assess(ip, "other", BROWSER, later);
        assert!((a.score - 31.25 / 2.0).abs() < 1e-9, "{a:?}");
        // A neighbour on the same /24 carries a quarter, decayed too.
        let neighbour: IpAddr = "10.3.3.4".parse().unwrap();
        assert!((r.assess(neighbour, "n", BROWSER, later).score - 6.25 / 2.0).abs() < 1e-9);
    }

    #[test]
    fn the_minute_slides() {
        let r = Risk::new(RiskConfig::default(), Arc::new(Tallies::off()));
        let t = Instant::now();
        let ip: IpAddr = "10.4.4.4".parse().unwrap();
        for _ in 0..40 {
            r.attempt(ip, t);
        }
        assert_eq!(r.assess(ip, "b", BROWSER, t).score, 40.0);
        // Two minutes later it is all forgotten.
        assert_eq!(r.assess(ip, "b", BROWSER, t + Duration::from_secs(125)).score, 0.0);
        r.tidy(t + Duration::from_secs(300));
        assert!(r.clients.lock().unwrap().is_empty());
    }

    #[test]
    fn networks_are_slash_24_and_slash_64() {
        assert_eq!(network_of("192.0.2.77".parse().unwrap()), "192.0.2");
        assert_eq!(network_of("2001:db8:1:2:3::9".parse().unwrap()), "2001:db8:1:2");
    }
}
