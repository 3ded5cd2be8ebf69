//! Defences against bots, at the door of the waiting room: every new join
//! passes `Defences::gate`, which scores the client (`risk`), applies the
//! operator's rules (allow, harder puzzle, CAPTCHA, back of the queue,
//! block), and asks for a solved proof-of-work puzzle (`pow`) whose
//! difficulty rises with the join rate from the client's network and with
//! its score. A signed-in fan is named here too, so the join script keeps
//! one place per fan. `back_of_queue` keeps what deferring and blocking
//! need; `report` keeps the counters for SREs, rendered with the rest of
//! the metrics.

mod back_of_queue;
pub mod captcha;
pub mod pow;
mod report;
pub mod risk;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use usher_shared::{TokenVerifier, VerifyingKeys};

use crate::config::{DefenceConfig, PowConfig, RiskAction, RiskRule};
use crate::limits::tally::Tallies;
use back_of_queue::{Deferral, Place};
use captcha::{CaptchaProvider, SiteVerify};
use pow::Puzzles;
pub use report::{DefenceView, NetworkView};
use risk::{Misdeed, Risk, Signals};

#[derive(Debug, thiserror::Error)]
pub enum DefenceSetupError {
    #[error(transparent)]
    Read(#[from] usher_shared::KeyFileError),
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

impl Defences {
    /// `tallies`: the counts shared with other edges, for the risk score.
    pub fn new(config: &DefenceConfig, secret: &[u8], tallies: Arc<Tallies>) -> Result<Defences, DefenceSetupError> {
        let fans = match &config.fans {
            Some(f) => {
                let mut keys = VerifyingKeys::new();
                for k in &f.public_keys {
                    keys.insert_pem(&k.kid, &usher_shared::read_pem(&k.pem_file)?)?;
                }
                Some(TokenVerifier::new(keys, &f.issuer, &f.audience, 30))
            }
            None => None,
        };
        Ok(Defences {
            puzzles: config.pow.clone().map(|p| (Puzzles::new(secret), p)),
            risk: Risk::new(config.risk.clone(), tallies),
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
            risk: Risk::new(Default::default(), Arc::new(Tallies::off())),
            captcha: None,
            fans: None,
            deferred: Mutex::default(),
            places: Mutex::default(),
            counters: Mutex::default(),
        }
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
        self.risk.fetch_shared(ip).await;
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
