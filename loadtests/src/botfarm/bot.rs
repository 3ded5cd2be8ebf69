//! One bot join attempt's run, by kind: a solver joins and solves with the
//! farm's threads; a skipper joins again and again without solving; a
//! replayer sends its client's one solution on every join; a thief presents
//! a queue token another client got. Admitted, it buys as much as the
//! farm's accounts and cards allow.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;
use usher_shared::locks;

use super::client::{AUTOMATION_UA, BOT_PREFIX, BROWSER_LANGUAGE, BROWSER_UA, Who};
use super::door::{Credentials, Door, Joined, Solving, Waited, join, solve_as, wait};
use super::outcome::{BotKind, BotOut};
use super::shop::{Held, Paid, hold, pay};
use super::world::World;
use crate::puzzle::Challenge;

pub struct BotPlan {
    pub client: usize,
    pub addr: Ipv4Addr,
    pub kind: BotKind,
    pub at: Instant,
    pub http: reqwest::Client,
}

pub async fn bot(w: Arc<World>, p: BotPlan) -> BotOut {
    tokio::time::sleep_until(p.at).await;
    let automated = p.kind == BotKind::SolverAutomation;
    let who = Who {
        http: &p.http,
        addr: p.addr,
        id: format!("{BOT_PREFIX}-client-{}", p.client),
        ua: if automated { AUTOMATION_UA } else { BROWSER_UA },
        lang: if automated { "" } else { BROWSER_LANGUAGE },
    };
    let mut out = BotOut {
        kind: p.kind,
        client: p.client,
        addr: p.addr,
        placed_ms: None,
        blocked: false,
        deferred: false,
        place: false,
        lost_place: false,
        admitted: false,
        seats: 0,
        end: String::new(),
    };
    let mut door = Door::default();
    let joined = match p.kind {
        BotKind::SolverAutomation | BotKind::SolverBrowser => {
            join(&w, &who, Solving::Farm, Credentials::default(), &mut door).await
        }
        BotKind::Skipper => {
            // Joins, and joins again, never solving.
            let mut last = Joined::Over;
            for _ in 0..3 {
                last = join(&w, &who, Solving::Never, Credentials::default(), &mut door).await;
                if !matches!(last, Joined::Refused(_)) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            last
        }
        BotKind::Replayer => {
            let proof = w.rings[p.client].get_or_init(|| ring_solution(&w, &who)).await.clone();
            join(
                &w,
                &who,
                Solving::Never,
                Credentials {
                    proof,
                    ..Credentials::default()
                },
                &mut door,
            )
            .await
        }
        BotKind::Thief => match stolen(&w, p.client).await {
            Some(token) => {
                // The copied cookie on the status call, then on joining.
                let url = format!("{}/queue/{}/status", w.edge, w.event);
                let _ = who.send(who.http.get(&url).bearer_auth(&token)).await;
                let copied = Credentials {
                    bearer: Some(&token),
                    ..Credentials::default()
                };
                join(&w, &who, Solving::Never, copied, &mut door).await
            }
            None => join(&w, &who, Solving::Never, Credentials::default(), &mut door).await,
        },
    };
    out.blocked = door.blocked;
    out.deferred = door.deferred;
    let token = match joined {
        Joined::Place(t) => t,
        Joined::Blocked => {
            out.end = "blocked".into();
            return out;
        }
        Joined::Refused(why) => {
            out.end = why;
            return out;
        }
        Joined::Over => {
            out.end = "sold out or deadline before a place".into();
            return out;
        }
    };
    out.place = true;
    out.placed_ms = Some(w.now_ms());
    locks::lock(&w.tokens).push((p.client, token.clone()));
    let access = match wait(&w, &who, &token, &w.farm_spent).await {
        Waited::Admitted(a) => a,
        Waited::Lost => {
            out.lost_place = true;
            out.end = "place taken back".into();
            return out;
        }
        Waited::Over => {
            out.end = if w.farm_spent.load(Ordering::Relaxed) {
                "farm's accounts or cards spent".into()
            } else {
                "sold out or deadline while waiting".into()
            };
            return out;
        }
    };
    out.admitted = true;
    let (seats, end) = farm_buys(&w, &who, &access).await;
    out.seats = seats;
    out.end = end;
    out
}

/// The farm's first bot of a client solves one challenge (asked for up
/// front); every join of that client sends it.
async fn ring_solution(w: &World, who: &Who<'_>) -> Option<String> {
    let url = format!("{}/queue/{}/challenge", w.edge, w.event);
    let a = who.send(who.http.get(&url)).await?;
    if a.status != 200 {
        return None;
    }
    solve_as(w, Solving::Farm, Challenge::from_answer(&a.body)?).await
}

/// A queue token another bot client got, waiting a little for one.
async fn stolen(w: &World, client: usize) -> Option<String> {
    for _ in 0..15 {
        {
            let tokens = locks::lock(&w.tokens);
            let others: Vec<&String> = tokens.iter().filter(|(c, _)| *c != client).map(|(_, t)| t).collect();
            if !others.is_empty() {
                return Some(others[rand::thread_rng().gen_range(0..others.len())].clone());
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    None
}

/// An admitted bot buys as much as one account may, trying the farm's
/// accounts and cards in turn as each reaches its limit.
async fn farm_buys(w: &World, who: &Who<'_>, access: &str) -> (u32, String) {
    loop {
        let Some(acct) = w.take(&w.accounts_used) else {
            return (0, "farm's accounts spent".into());
        };
        let fan = &w.accounts[acct];
        match hold(w, who, access, fan, w.sc.sale.max_seats_per_fan).await {
            Held::Hold(h, n) => loop {
                let Some(card) = w.take(&w.cards_used) else {
                    return (0, "farm's cards spent".into());
                };
                match pay(w, who, access, fan, &h, &format!("pm_card_ok_bfbot{card}")).await {
                    Paid::Confirmed => return (n, "bought".into()),
                    Paid::CardLimit => w.spend(&w.cards_used, card),
                    Paid::Failed(why) => return (0, why),
                }
            },
            Held::FanLimit => w.spend(&w.accounts_used, acct),
            Held::SoldOut => return (0, "sold out when admitted".into()),
            Held::Failed(why) => return (0, why),
        }
    }
}
