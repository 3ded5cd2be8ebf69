//! Defences against bots, at the door of the waiting room: every new join
//! passes `Defences::gate`, which scores the client (`risk`), applies the
//! operator's rules (allow, harder puzzle, CAPTCHA, back of the queue,
//! block), and asks for a solved proof-of-work puzzle (`pow`) whose
//! difficulty rises with the join rate from the client's network and with
//! its score. A signed-in fan is named here too, so the join script keeps
//! one place per fan. Counters for SREs are kept here and rendered with the
//! rest of the metrics.

pub mod captcha;
pub mod pow;
pub mod risk;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use usher_shared::{TokenVerifier, VerifyingKeys};

use crate::config::{DefenceConfig, PowConfig, RiskAction, RiskRule};
use crate::locks;
use captcha::{CaptchaProvider, SiteVerify};
use pow::Puzzles;
use risk::{Misdeed, Risk, Signals};

#[derive(Debug, thiserror::Error)]
pub enum DefenceSetupError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("defence.fans key: {0}")]
    Key(#[from] usher_shared::KeyError),
}

/// What a join (or a challenge request) brings.
#[derive(Debug, Clone, Copy)]
pub struct Knock<'a> {
    pub event: i64,
    pub ip: Option<IpAddr>,
    pub binding: &'a str,
    pub signals: Signals<'a>,
    /// `usher-pow`: `<challenge>:<counter>`.
    pub proof: Option<&'a str>,
    /// `usher-captcha`: the widget's token.
    pub captcha: Option<&'a str>,
    /// `usher-fan`: the fan's identity token.
    pub fan_token: Option<&'a str>,
}

/// The door's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Gate {
    /// Go ahead: spend this challenge (if any), for this fan (if signed in).
    Pass {
        nonce: Option<String>,
        fan: Option<String>,
    },
    /// Solve this first (`code` says why the last one, if any, failed).
    Challenge {
        code: &'static str,
        challenge: String,
        bits: u8,
        ttl_secs: u64,
    },
    Captcha {
        code: &'static str,
        site_key: String,
        widget_url: String,
    },
    CaptchaUnavailable,
    /// Come back in this many seconds (the place is taken then); the
    /// places this address took lately go back (event, ticket).
    Defer {
        rule: String,
        retry_after_secs: u64,
        take_back: Vec<(i64, u64)>,
    },
    Block {
        rule: String,
        take_back: Vec<(i64, u64)>,
    },
}

/// A client sent to the back: until when it waits, and until when the
/// join it then makes is let through.
#[derive(Debug, Clone, Copy)]
struct Deferral {
    until: Instant,
    lets_through_until: Instant,
}

pub struct Defences {
    pub config: DefenceConfig,
    puzzles: Option<(Puzzles, PowConfig)>,
    pub risk: Risk,
    captcha: Option<Arc<dyn CaptchaProvider>>,
    fans: Option<TokenVerifier>,
    deferred: Mutex<HashMap<IpAddr, Deferral>>,
    /// Places each address took lately (event, ticket, when), so that a
    /// client found out late loses the places it took before.
    places: Mutex<HashMap<IpAddr, Vec<Place>>>,
    counters: Mutex<BTreeMap<(&'static str, String), u64>>,
}

/// A place an address took: event, ticket, when.
type Place = (i64, u64, Instant);

/// How long a place stays liable to be taken back.
const PLACES_KEPT: Duration = Duration::from_secs(600);

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
    pub fn new(config: &DefenceConfig, secret: &[u8]) -> Result<Defences, DefenceSetupError> {
        let fans = match &config.fans {
            Some(f) => {
                let mut keys = VerifyingKeys::new();
                for k in &f.public_keys {
                    let pem = std::fs::read_to_string(&k.pem_file).map_err(|source| DefenceSetupError::Read {
                        path: k.pem_file.display().to_string(),
                        source,
                    })?;
                    keys.insert_pem(&k.kid, &pem)?;
                }
                Some(TokenVerifier::new(keys, &f.issuer, &f.audience, 30))
            }
            None => None,
        };
        Ok(Defences {
            puzzles: config.pow.clone().map(|p| (Puzzles::new(secret), p)),
            risk: Risk::new(config.risk.clone()),
            captcha: config
                .captcha
                .clone()
                .map(|c| Arc::new(SiteVerify::new(c)) as Arc<dyn CaptchaProvider>),
            fans,
            deferred: Mutex::default(),
            places: Mutex::default(),
            counters: Mutex::default(),
            config: config.clone(),
        })
    }

    /// Defences with none of their parts on.
    pub fn off() -> Defences {
        Defences {
            config: DefenceConfig::default(),
            puzzles: None,
            risk: Risk::new(Default::default()),
            captcha: None,
            fans: None,
            deferred: Mutex::default(),
            places: Mutex::default(),
            counters: Mutex::default(),
        }
    }

    pub fn count(&self, family: &'static str, labels: String) {
        *locks::lock(&self.counters).entry((family, labels)).or_default() += 1;
    }

    fn rule_for(&self, score: f64) -> Option<&RiskRule> {
        self.config
            .rules
            .iter()
            .filter(|r| r.min_score <= score)
            .max_by(|a, b| a.min_score.total_cmp(&b.min_score))
    }

    /// The puzzle's difficulty for a client: the base, a bit per doubling
    /// of its network's join rate over the threshold, and a rule's extra,
    /// within the operator's bounds.
    pub fn bits(pow: &PowConfig, network_rate: f64, extra: u8) -> u8 {
        let over = network_rate / f64::from(pow.network_joins_per_minute);
        let crowd = if over > 1.0 {
            (over.log2().floor() as u8).saturating_add(1)
        } else {
            0
        };
        pow.base_bits
            .saturating_add(crowd)
            .saturating_add(extra)
            .clamp(pow.min_bits, pow.max_bits)
    }

    fn challenge(
        &self,
        knock: &Knock,
        code: &'static str,
        bits: u8,
        now_ms: i64,
        pow: &PowConfig,
        puzzles: &Puzzles,
    ) -> Gate {
        let network = risk::network_of(knock.ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)));
        self.count("usher_challenges_total", format!("result=\"issued\",bits=\"{bits}\""));
        Gate::Challenge {
            code,
            challenge: puzzles.issue(
                knock.event,
                bits,
                pow.ttl_secs as i64 * 1000,
                knock.binding,
                &network,
                now_ms,
            ),
            bits,
            ttl_secs: pow.ttl_secs,
        }
    }

    /// The door: what this join must do before it takes a place. `fresh`
    /// is false for a challenge request (no proof expected yet).
    pub async fn gate(&self, knock: &Knock<'_>, fresh: bool) -> Gate {
        let fan = self.fan(knock.fan_token);
        if !self.config.any() {
            return Gate::Pass { nonce: None, fan };
        }
        let now = Instant::now();
        let now_ms = chrono::Utc::now().timestamp_millis();
        let ip = knock.ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        self.risk.attempt(ip, now);
        let assessed = self.risk.assess(ip, knock.binding, knock.signals, now);
        let mut extra = 0;
        let mut wants_captcha = None;
        if let Some(rule) = self.rule_for(assessed.score) {
            let acted = |s: &Self| {
                s.count(
                    "usher_defence_actions_total",
                    format!("rule=\"{}\",action=\"{}\"", rule.name, action_name(rule.action)),
                )
            };
            match rule.action {
                RiskAction::Allow => {}
                RiskAction::Block => {
                    acted(self);
                    tracing::info!(event_id = knock.event, network = %risk::network_of(ip), score = assessed.score, rule = %rule.name, "join blocked");
                    return Gate::Block {
                        rule: rule.name.clone(),
                        take_back: self.take_back(ip),
                    };
                }
                RiskAction::BackOfQueue => {
                    if let Some(wait) = self.deferral(ip, rule.delay_secs, now) {
                        acted(self);
                        return Gate::Defer {
                            rule: rule.name.clone(),
                            retry_after_secs: wait.as_secs().max(1),
                            take_back: self.take_back(ip),
                        };
                    }
                }
                RiskAction::Harder => {
                    acted(self);
                    extra = rule.extra_bits;
                }
                // After the puzzle: the provider is asked only about a
                // client that did its work.
                RiskAction::Captcha => wants_captcha = Some(rule),
            }
        }
        let nonce = match self.puzzle(knock, ip, fresh, extra, assessed.network_rate, now, now_ms) {
            Ok(nonce) => nonce,
            Err(gate) => return gate,
        };
        if let Some(rule) = wants_captcha
            && let Some(gate) = self.captcha(knock, ip, fresh, now).await
        {
            self.count(
                "usher_defence_actions_total",
                format!("rule=\"{}\",action=\"captcha\"", rule.name),
            );
            return gate;
        }
        Gate::Pass { nonce, fan }
    }

    /// The puzzle's part: the nonce of a good solution, or what to solve.
    #[allow(clippy::too_many_arguments)]
    fn puzzle(
        &self,
        knock: &Knock<'_>,
        ip: IpAddr,
        fresh: bool,
        extra: u8,
        network_rate: f64,
        now: Instant,
        now_ms: i64,
    ) -> Result<Option<String>, Gate> {
        let Some((puzzles, pow)) = &self.puzzles else {
            return Ok(None);
        };
        let bits = Self::bits(pow, network_rate, extra);
        let Some(proof) = knock.proof.filter(|_| fresh) else {
            return Err(self.challenge(knock, "challenge_required", bits, now_ms, pow, puzzles));
        };
        let network = risk::network_of(ip);
        match puzzles.verify(proof, knock.event, knock.binding, &network, now_ms) {
            Ok(solved) => {
                self.count(
                    "usher_challenges_total",
                    format!("result=\"solved\",bits=\"{}\"", solved.bits),
                );
                Ok(Some(solved.nonce))
            }
            Err(e) => {
                self.count("usher_challenges_total", format!("result=\"{}\"", e.code()));
                // An expired challenge is a slow client, not a bad one.
                if e != pow::PowError::Expired {
                    self.risk.misdeed(ip, Misdeed::FailedChallenge, now);
                }
                Err(self.challenge(knock, e.code(), bits, now_ms, pow, puzzles))
            }
        }
    }

    /// A spent challenge or a token of another client was presented.
    pub fn replayed(&self, ip: Option<IpAddr>, kind: &'static str) {
        let ip = ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        self.risk.misdeed(ip, Misdeed::Replay, Instant::now());
        self.count("usher_replays_total", format!("kind=\"{kind}\""));
    }

    /// A new place went to this address.
    pub fn place_taken(&self, ip: Option<IpAddr>, event: i64, ticket: u64) {
        if !self
            .config
            .rules
            .iter()
            .any(|r| matches!(r.action, RiskAction::BackOfQueue | RiskAction::Block))
        {
            return;
        }
        let ip = ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let mut places = locks::lock(&self.places);
        let list = places.entry(ip).or_default();
        // A bound per address: a farm on one address loses its latest places.
        if list.len() >= 1_000 {
            list.remove(0);
        }
        list.push((event, ticket, Instant::now()));
    }

    fn take_back(&self, ip: IpAddr) -> Vec<(i64, u64)> {
        let list = locks::lock(&self.places).remove(&ip);
        list.unwrap_or_default().into_iter().map(|(e, t, _)| (e, t)).collect()
    }

    pub fn token_issued(&self, binding: &str) {
        if self.config.any() {
            self.risk.token_issued(binding, Instant::now());
        }
    }

    /// The signed-in fan a join names (a bad or expired token is ignored:
    /// the fan joins as anyone does).
    pub fn fan(&self, token: Option<&str>) -> Option<String> {
        let verifier = self.fans.as_ref()?;
        verifier.verify_fan(token?).ok().map(|c| c.sub)
    }

    /// How long the client must still wait, or None if its deferral is
    /// served and this join goes through.
    fn deferral(&self, ip: IpAddr, delay_secs: u64, now: Instant) -> Option<Duration> {
        let mut deferred = locks::lock(&self.deferred);
        if deferred.len() > 100_000 {
            deferred.retain(|_, d| d.lets_through_until > now);
        }
        match deferred.get(&ip) {
            Some(d) if now < d.until => Some(d.until - now),
            Some(d) if now < d.lets_through_until => None,
            _ => {
                let delay = Duration::from_secs(delay_secs);
                deferred.insert(
                    ip,
                    Deferral {
                        until: now + delay,
                        lets_through_until: now + delay * 2,
                    },
                );
                Some(delay)
            }
        }
    }

    async fn captcha(&self, knock: &Knock<'_>, ip: IpAddr, fresh: bool, now: Instant) -> Option<Gate> {
        let provider = self.captcha.as_ref()?;
        let required = |code| Gate::Captcha {
            code,
            site_key: provider.site_key().to_owned(),
            widget_url: provider.widget_url().to_owned(),
        };
        let Some(token) = knock.captcha.filter(|t| fresh && !t.is_empty() && t.len() <= 4096) else {
            return Some(required("captcha_required"));
        };
        match provider.verify(token, knock.ip).await {
            Ok(true) => {
                self.count("usher_captcha_total", "result=\"passed\"".into());
                None
            }
            Ok(false) => {
                self.count("usher_captcha_total", "result=\"failed\"".into());
                self.risk.misdeed(ip, Misdeed::FailedChallenge, now);
                Some(required("captcha_failed"))
            }
            Err(e) => {
                self.count("usher_captcha_total", "result=\"unavailable\"".into());
                tracing::warn!(error = %e, "CAPTCHA provider unavailable");
                Some(Gate::CaptchaUnavailable)
            }
        }
    }

    pub fn tidy(&self) {
        let now = Instant::now();
        self.risk.tidy(now);
        locks::lock(&self.deferred).retain(|_, d| d.lets_through_until > now);
        let mut places = locks::lock(&self.places);
        places.retain(|_, list| {
            list.retain(|(_, _, at)| now.saturating_duration_since(*at) < PLACES_KEPT);
            !list.is_empty()
        });
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

fn action_name(a: RiskAction) -> &'static str {
    match a {
        RiskAction::Allow => "allow",
        RiskAction::Harder => "harder",
        RiskAction::Captcha => "captcha",
        RiskAction::BackOfQueue => "back_of_queue",
        RiskAction::Block => "block",
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pow(base: u8, min: u8, max: u8) -> PowConfig {
        PowConfig {
            base_bits: base,
            min_bits: min,
            max_bits: max,
            network_joins_per_minute: 60,
            ttl_secs: 120,
        }
    }

    #[test]
    fn difficulty_rises_a_bit_per_doubling_and_stays_within_bounds() {
        let p = pow(16, 12, 22);
        assert_eq!(Defences::bits(&p, 0.0, 0), 16);
        assert_eq!(Defences::bits(&p, 60.0, 0), 16);
        assert_eq!(Defences::bits(&p, 61.0, 0), 17);
        assert_eq!(Defences::bits(&p, 240.0, 0), 19);
        assert_eq!(Defences::bits(&p, 1e9, 0), 22);
        assert_eq!(Defences::bits(&p, 0.0, 4), 20);
        assert_eq!(Defences::bits(&p, 0.0, 255), 22);
        assert_eq!(Defences::bits(&pow(8, 12, 22), 0.0, 0), 12);
        for rate in [0.0, 1.0, 59.0, 1e3, 1e6, f64::MAX] {
            for extra in [0, 1, 8, 255] {
                assert!((12..=22).contains(&Defences::bits(&p, rate, extra)));
            }
        }
    }
}

#[cfg(test)]
mod config_tests {
    use crate::config::DefenceConfig;

    #[test]
    fn rules_that_need_a_missing_part_or_make_no_sense_are_refused_at_start() {
        let config: DefenceConfig = toml_edit_free(
            r#"
            [[rules]]
            name = "c"
            min_score = 10.0
            action = "captcha"
            [[rules]]
            name = "h"
            min_score = 20.0
            action = "harder"
            extra_bits = 2
            [[rules]]
            name = "b"
            min_score = 30.0
            action = "back_of_queue"
            [[rules]]
            name = "b"
            min_score = -1.0
            action = "block"
            "#,
        );
        let problems = config.problems().join("\n");
        for expected in [
            "defence.rules[c]: action captcha needs [defence.captcha]",
            "defence.rules[h]: action harder needs [defence.pow]",
            "defence.rules[b]: action back_of_queue needs delay_secs",
            "defence.rules: \"b\" is named twice",
            "defence.rules[b].min_score must be positive",
        ] {
            assert!(problems.contains(expected), "{expected} not in\n{problems}");
        }
        let pow: DefenceConfig = toml_edit_free("[pow]\nbase_bits = 30\nmin_bits = 8\nmax_bits = 20\n");
        assert!(pow.problems().join("\n").contains("min_bits <= base_bits <= max_bits"));
        assert!(DefenceConfig::default().problems().is_empty());
    }

    fn toml_edit_free(s: &str) -> DefenceConfig {
        use figment::providers::Format;
        figment::Figment::new()
            .merge(figment::providers::Toml::string(s))
            .extract()
            .unwrap()
    }
}
