//! The `[defence]` section: the bot defences on joining (`crate::defence`),
//! each off unless configured, and their checks.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Defences against bots on joining a waiting room (`defence/`). Each part
/// is off unless configured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefenceConfig {
    /// A proof-of-work puzzle on every new join.
    #[serde(default)]
    pub pow: Option<PowConfig>,
    /// How the risk score is made from what the edge sees.
    #[serde(default)]
    pub risk: RiskConfig,
    /// What a score leads to: the rule with the highest `min_score` at or
    /// below the client's score applies; below all of them, allow.
    #[serde(default)]
    pub rules: Vec<RiskRule>,
    /// A CAPTCHA provider, for rules whose action is `captcha`.
    #[serde(default)]
    pub captcha: Option<CaptchaConfig>,
    /// The fan identity issuer, so that a signed-in fan keeps one place.
    #[serde(default)]
    pub fans: Option<FanIdentityConfig>,
}

impl DefenceConfig {
    /// Whether anything here is switched on.
    pub fn any(&self) -> bool {
        self.pow.is_some() || !self.rules.is_empty() || self.fans.is_some()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowConfig {
    /// Leading zero bits of SHA-256 an ordinary client must find (each bit
    /// doubles the expected work: 16 is ~65,000 hashes).
    pub base_bits: u8,
    /// The operator's bounds on any difficulty the edge sets.
    pub min_bits: u8,
    pub max_bits: u8,
    /// Joins per minute from one client network (IPv4 /24, IPv6 /64) above
    /// which every doubling of the rate adds a bit.
    #[serde(default = "default_network_joins")]
    pub network_joins_per_minute: u32,
    /// How long a challenge may be solved and spent.
    #[serde(default = "default_challenge_ttl")]
    pub ttl_secs: u64,
}

fn default_network_joins() -> u32 {
    60
}

fn default_challenge_ttl() -> u64 {
    120
}

/// The score's parts, in points. Velocity and token counts are over the
/// last minute; replays and failed challenges decay by half every
/// `half_life_secs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RiskConfig {
    /// Joins (and challenge requests) per minute from one address before
    /// velocity counts, and points per join beyond.
    pub ip_joins_per_minute: u32,
    pub ip_points_per_join: f64,
    /// The same for the client's network, where many fans may share.
    pub network_joins_per_minute: u32,
    pub network_points_per_join: f64,
    /// The most velocity can add.
    pub velocity_cap: f64,
    /// Queue tokens one client binding may take per minute before each
    /// further one adds `points_per_token`.
    pub tokens_per_binding: u32,
    pub points_per_token: f64,
    /// A user agent that names an automation tool or a headless browser,
    /// or none at all; no Accept-Language.
    pub headless_points: f64,
    pub no_language_points: f64,
    /// A token presented by a client it was not issued to, or a spent
    /// challenge presented again.
    pub replay_points: f64,
    /// A forged, expired or wrong puzzle solution, or a failed CAPTCHA.
    pub failed_challenge_points: f64,
    pub half_life_secs: u64,
}

impl Default for RiskConfig {
    fn default() -> Self {
        RiskConfig {
            ip_joins_per_minute: 20,
            ip_points_per_join: 2.0,
            network_joins_per_minute: 120,
            network_points_per_join: 0.25,
            velocity_cap: 60.0,
            tokens_per_binding: 3,
            points_per_token: 10.0,
            headless_points: 15.0,
            no_language_points: 5.0,
            replay_points: 25.0,
            failed_challenge_points: 10.0,
            half_life_secs: 600,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskAction {
    Allow,
    /// A harder puzzle: `extra_bits` more.
    Harder,
    /// A CAPTCHA before the join (needs `[defence.captcha]`).
    Captcha,
    /// The join is taken only after `delay_secs`: behind everyone who
    /// joins meanwhile.
    BackOfQueue,
    /// 403 with the rule's name as the reason.
    Block,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskRule {
    pub name: String,
    pub min_score: f64,
    pub action: RiskAction,
    #[serde(default)]
    pub extra_bits: u8,
    #[serde(default)]
    pub delay_secs: u64,
}

/// A CAPTCHA provider's server-side verify call, as hCaptcha, Turnstile and
/// reCAPTCHA shape it: a form POST of `secret`, `response` and `remoteip`
/// answered with `{"success": bool}`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptchaConfig {
    pub verify_url: String,
    pub site_key: String,
    pub secret: String,
    /// Where the waiting page gets its widget (the provider's script or,
    /// for the local test provider, its token endpoint).
    pub widget_url: String,
}

impl std::fmt::Debug for CaptchaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptchaConfig")
            .field("verify_url", &self.verify_url)
            .field("site_key", &self.site_key)
            .finish_non_exhaustive()
    }
}

/// The issuer of fan identity tokens (the same one booking-core trusts).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FanIdentityConfig {
    pub issuer: String,
    pub audience: String,
    pub public_keys: Vec<PublicKeyFile>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicKeyFile {
    pub kid: String,
    pub pem_file: PathBuf,
}

impl DefenceConfig {
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(p) = &self.pow {
            if !(p.min_bits <= p.base_bits && p.base_bits <= p.max_bits && p.max_bits <= 32) {
                out.push("defence.pow: need min_bits <= base_bits <= max_bits <= 32".into());
            }
            if p.network_joins_per_minute == 0 {
                out.push("defence.pow.network_joins_per_minute must be positive".into());
            }
            if !(10..=3_600).contains(&p.ttl_secs) {
                out.push("defence.pow.ttl_secs must be 10..=3600".into());
            }
        }
        let r = &self.risk;
        let points = [
            r.ip_points_per_join,
            r.network_points_per_join,
            r.velocity_cap,
            r.points_per_token,
            r.headless_points,
            r.no_language_points,
            r.replay_points,
            r.failed_challenge_points,
        ];
        if points.iter().any(|p| !p.is_finite() || *p < 0.0) {
            out.push("defence.risk: points must be finite and not negative".into());
        }
        if r.half_life_secs == 0 {
            out.push("defence.risk.half_life_secs must be positive".into());
        }
        let mut names = std::collections::HashSet::new();
        for rule in &self.rules {
            let n = &rule.name;
            if n.is_empty() || n.len() > 64 || !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                out.push(format!("defence.rules: name {n:?} must be 1..=64 of [A-Za-z0-9_-]"));
            }
            if !names.insert(n.clone()) {
                out.push(format!("defence.rules: {n:?} is named twice"));
            }
            if !rule.min_score.is_finite() || rule.min_score <= 0.0 {
                out.push(format!("defence.rules[{n}].min_score must be positive"));
            }
            match rule.action {
                RiskAction::Harder if rule.extra_bits == 0 => {
                    out.push(format!("defence.rules[{n}]: action harder needs extra_bits"))
                }
                RiskAction::Harder if self.pow.is_none() => {
                    out.push(format!("defence.rules[{n}]: action harder needs [defence.pow]"))
                }
                RiskAction::BackOfQueue if !(1..=86_400).contains(&rule.delay_secs) => out.push(format!(
                    "defence.rules[{n}]: action back_of_queue needs delay_secs 1..=86400"
                )),
                RiskAction::Captcha if self.captcha.is_none() => {
                    out.push(format!("defence.rules[{n}]: action captcha needs [defence.captcha]"))
                }
                _ => {}
            }
        }
        if let Some(c) = &self.captcha {
            for (key, url) in [("verify_url", &c.verify_url), ("widget_url", &c.widget_url)] {
                if !url.starts_with("http://") && !url.starts_with("https://") {
                    out.push(format!("defence.captcha.{key} must be an http(s) URL"));
                }
            }
            if c.secret.is_empty() || c.site_key.is_empty() {
                out.push("defence.captcha: site_key and secret must not be empty".into());
            }
        }
        if let Some(f) = &self.fans
            && (f.issuer.is_empty() || f.public_keys.is_empty())
        {
            out.push("defence.fans: need an issuer and at least one public key".into());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::DefenceConfig;

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
