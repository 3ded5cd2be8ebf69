//! The bot defences' verdicts on a join or a puzzle request, as the fan
//! hears them: the knock they judge, the problems a client can act on (428
//! with a puzzle or a CAPTCHA, 429 deferred, 403 blocked), and the places a
//! deferred or blocked client loses.

use std::collections::BTreeMap;
use std::net::IpAddr;

use pingora::proxy::Session;
use serde_json::json;

use super::request::Request;
use crate::defence::risk::Signals;
use crate::defence::{Gate, Knock};
use crate::queue::Room;
use crate::respond;
use crate::state::EdgeState;

/// How a solution is checked, for clients.
pub const POW_ALGORITHM: &str =
    "sha256: find a decimal counter such that SHA-256(challenge + \":\" + counter) starts with `bits` zero bits";

/// What the defences judge a join by.
pub fn knock<'a>(req: &'a Request, room: &Room, ip: Option<IpAddr>, bnd: &'a str) -> Knock<'a> {
    Knock {
        event: room.event,
        ip,
        binding: bnd,
        signals: Signals {
            user_agent: &req.user_agent,
            accept_language: &req.accept_language,
        },
        proof: req.pow.as_deref(),
        captcha: req.captcha.as_deref(),
        fan_token: req.fan.as_deref(),
    }
}

/// A client sent to the back or blocked loses the places it took lately.
pub async fn take_back(state: &EdgeState, gate: &Gate) {
    let (Gate::Defer { rule, take_back, .. } | Gate::Block { rule, take_back }) = gate else {
        return;
    };
    let Some(store) = state.store() else { return };
    let mut by_event: BTreeMap<i64, Vec<u64>> = BTreeMap::new();
    for (event, ticket) in take_back {
        by_event.entry(*event).or_default().push(*ticket);
    }
    for (event, tickets) in by_event {
        match store.take_back(event, &tickets).await {
            Ok(n) => {
                for _ in 0..n {
                    state
                        .defences
                        .count("usher_places_taken_back_total", format!("rule=\"{rule}\""));
                }
            }
            Err(e) => tracing::warn!(event_id = event, error = %e, "taking places back failed: Redis"),
        }
    }
}

/// A puzzle handed out again, under the code that says why.
pub fn with_code(gate: Gate, code: &'static str) -> Gate {
    match gate {
        Gate::Challenge {
            challenge,
            bits,
            ttl_secs,
            ..
        } => Gate::Challenge {
            code,
            challenge,
            bits,
            ttl_secs,
        },
        other => other,
    }
}

/// The defences' refusals, as problems a client can act on.
pub async fn refused(session: &mut Session, gate: Gate, headers: Vec<(&str, String)>) -> respond::Result<()> {
    match gate {
        // Only after a spent challenge with no puzzle configured any more.
        Gate::Pass { .. } => {
            respond::problem_with(session, 409, "challenge_spent", "join again", json!({}), headers).await
        }
        Gate::Challenge {
            code,
            challenge,
            bits,
            ttl_secs,
        } => {
            let detail = match code {
                "challenge_required" => "solve the proof-of-work challenge, then join again with usher-pow",
                "challenge_spent" => "that challenge was already used; solve this one",
                "challenge_expired" => "that challenge expired; solve this one",
                _ => "that was not a solution to a challenge issued to you; solve this one",
            };
            respond::problem_with(
                session,
                428,
                code,
                detail,
                json!({ "challenge": challenge, "bits": bits, "algorithm": POW_ALGORITHM, "expires_in_secs": ttl_secs }),
                headers,
            )
            .await
        }
        Gate::Captcha {
            code,
            site_key,
            widget_url,
        } => {
            respond::problem_with(
                session,
                428,
                code,
                "complete the CAPTCHA, then join again with its token in usher-captcha",
                json!({ "site_key": site_key, "widget_url": widget_url }),
                headers,
            )
            .await
        }
        Gate::CaptchaUnavailable => {
            respond::problem_with(
                session,
                503,
                "captcha_unavailable",
                "the CAPTCHA check cannot be made right now; try again shortly",
                json!({}),
                headers,
            )
            .await
        }
        Gate::Defer {
            rule, retry_after_secs, ..
        } => {
            let mut headers = headers;
            headers.push(("retry-after", retry_after_secs.to_string()));
            respond::problem_with(
                session,
                429,
                "join_deferred",
                "too much is coming from your network: you can join when the wait is over, behind everyone who joined meanwhile",
                json!({ "reason": rule, "retry_after_secs": retry_after_secs }),
                headers,
            )
            .await
        }
        Gate::Block { rule, .. } => {
            respond::problem_with(
                session,
                403,
                "join_blocked",
                "this client looks automated and may not join",
                json!({ "reason": rule }),
                headers,
            )
            .await
        }
    }
}
