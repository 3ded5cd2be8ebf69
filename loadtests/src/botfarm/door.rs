//! Getting in: joining the waiting room (the puzzle solved, or not, as a
//! fan's browser or the farm would; deferrals obeyed; blocks noted) and
//! waiting on the place's status until admitted.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rand::Rng;

use super::client::Who;
use super::world::World;
use crate::puzzle::{self, Challenge};

/// How a joiner deals with a puzzle.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Solving {
    /// A fan's browser: solves it.
    Fan,
    /// The farm: solves it with its own threads, up to its budget.
    Farm,
    /// Never solves.
    Never,
}

/// The `usher-pow` header for a puzzle, if this joiner solves it.
pub async fn solve_as(w: &World, how: Solving, c: Challenge) -> Option<String> {
    match how {
        Solving::Never => None,
        Solving::Fan => tokio::task::spawn_blocking(move || puzzle::proof(&c.challenge, c.bits))
            .await
            .ok(),
        Solving::Farm => {
            if c.bits > w.sc.bots.max_solve_bits {
                return None;
            }
            let _thread = w.solvers.acquire().await.ok()?;
            if w.over() {
                return None;
            }
            let (proof, hashes) = tokio::task::spawn_blocking(move || puzzle::proof_and_hashes(&c.challenge, c.bits))
                .await
                .ok()?;
            w.farm_solves.fetch_add(1, Ordering::Relaxed);
            w.farm_hashes.fetch_add(hashes, Ordering::Relaxed);
            Some(proof)
        }
    }
}

/// What the edge did to one client's joining.
#[derive(Default)]
pub struct Door {
    pub max_bits: u8,
    pub harder: bool,
    pub deferred: bool,
    pub blocked: bool,
}

pub enum Joined {
    Place(String),
    Blocked,
    Refused(String),
    Over,
}

/// What a join sends beside the client's own headers.
#[derive(Default)]
pub struct Credentials<'a> {
    /// The signed-in fan's token (`usher-fan`).
    pub fan_token: Option<&'a str>,
    /// A solution to send with the first join (`usher-pow`).
    pub proof: Option<String>,
    /// A queue token to present.
    pub bearer: Option<&'a str>,
}

/// Joins until a place, a block, a puzzle it will not solve, or the end.
pub async fn join(w: &World, who: &Who<'_>, how: Solving, sent: Credentials<'_>, door: &mut Door) -> Joined {
    let url = format!("{}/queue/{}/join", w.edge, w.event);
    let mut proof = sent.proof;
    for _ in 0..20 {
        if w.over() {
            return Joined::Over;
        }
        let mut rb = who.http.post(&url);
        if let Some(p) = &proof {
            rb = rb.header("usher-pow", p);
        }
        if let Some(f) = sent.fan_token {
            rb = rb.header("usher-fan", f);
        }
        if let Some(b) = sent.bearer {
            rb = rb.bearer_auth(b);
        }
        let Some(a) = who.send(rb).await else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        let code = a.body["code"].as_str().unwrap_or("-").to_owned();
        if a.status == 428
            && let Some(c) = Challenge::from_answer(&a.body)
        {
            let bits = c.bits;
            door.max_bits = door.max_bits.max(bits);
            if w.base_bits.is_some_and(|b| bits > b) {
                door.harder = true;
            }
            proof = solve_as(w, how, c).await;
            if proof.is_none() {
                return Joined::Refused(if how == Solving::Farm && bits > w.sc.bots.max_solve_bits {
                    format!("puzzle of {bits} bits, over the farm's budget")
                } else {
                    code
                });
            }
            continue;
        }
        match a.status {
            200 => match a.body["queue_token"].as_str() {
                Some(t) => return Joined::Place(t.to_owned()),
                None => return Joined::Refused("join answered 200 without a token".into()),
            },
            429 if code == "join_deferred" => {
                door.deferred = true;
                w.refused(who.addr);
                // Obeyed: coming back sooner only meets the same answer.
                let secs = a.retry_after.unwrap_or(5.0);
                tokio::time::sleep(Duration::from_secs_f64(secs + 0.1)).await;
            }
            429 | 503 => {
                let secs = a.retry_after.unwrap_or(1.0).clamp(0.2, 10.0);
                tokio::time::sleep(Duration::from_secs_f64(secs)).await;
            }
            403 => {
                door.blocked = true;
                w.refused(who.addr);
                return Joined::Blocked;
            }
            s => return Joined::Refused(format!("join answered {s} {code}")),
        }
    }
    Joined::Refused("gave up joining after 20 answers".into())
}

pub enum Waited {
    Admitted(String),
    Lost,
    Over,
}

/// Polls the place's status until admitted, lost, `stop` or the end.
pub async fn wait(w: &World, who: &Who<'_>, token: &str, stop: &AtomicBool) -> Waited {
    let url = format!("{}/queue/{}/status", w.edge, w.event);
    loop {
        if w.over() || stop.load(Ordering::Relaxed) {
            return Waited::Over;
        }
        match who.send(who.http.get(&url).bearer_auth(token)).await {
            Some(a) if a.status == 200 && a.body["status"] == "admitted" => {
                if let Some(t) = a.body["access_token"].as_str() {
                    return Waited::Admitted(t.to_owned());
                }
            }
            Some(a) if a.status == 410 || a.status == 401 => return Waited::Lost,
            _ => {}
        }
        let jitter = rand::thread_rng().gen_range(0.0..0.2);
        tokio::time::sleep(Duration::from_secs_f64(w.sc.fans.poll_secs + jitter)).await;
    }
}
