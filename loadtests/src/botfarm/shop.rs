//! Buying once admitted: best available seats held (as many as wanted or
//! as are free, one if no two sit side by side), then an order paid with a
//! card and followed until the processor settles it.

use std::sync::atomic::Ordering;
use std::time::Duration;

use rand::Rng;
use serde_json::json;
use tokio::time::Instant;

use super::client::Who;
use super::world::World;
use crate::sim::fan::seat_states;

pub enum Held {
    Hold(String, u32),
    SoldOut,
    FanLimit,
    Failed(String),
}

/// Best available seats, as many as wanted or as are free.
pub async fn hold(w: &World, who: &Who<'_>, access: &str, fan: &str, mut quantity: u32) -> Held {
    let api = |rb: reqwest::RequestBuilder| rb.bearer_auth(fan).header(usher_shared::ACCESS_HEADER, access);
    let mut last = String::new();
    for _ in 0..40 {
        if Instant::now() >= w.deadline {
            return Held::Failed("deadline".into());
        }
        let url = format!("{}/v1/events/{}/availability", w.edge, w.event);
        let Some(a) = who.send(api(who.http.get(&url))).await else {
            last = "no answer to availability".into();
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        let Some(states) = seat_states(&a.body) else {
            return Held::Failed(format!("availability answered {}", a.status));
        };
        let free = states.iter().filter(|s| **s == 0).count() as u32;
        if free == 0 {
            if !states.contains(&1) {
                w.sold_out.store(true, Ordering::Relaxed);
                return Held::SoldOut;
            }
            // Everything held: holds lapse or sell; look again shortly.
            last = "everything held".into();
            tokio::time::sleep(Duration::from_secs(2)).await;
            continue;
        }
        let want = quantity.min(free);
        let url = format!("{}/v1/events/{}/holds", w.edge, w.event);
        let rb = api(who.http.post(&url))
            .header("idempotency-key", uuid::Uuid::new_v4().to_string())
            .json(&json!({"best_available": {"quantity": want}}));
        let Some(a) = who.send(rb).await else {
            last = "no answer to the hold".into();
            continue;
        };
        match (a.status, a.body["code"].as_str().unwrap_or("-")) {
            (201, _) => {
                return match a.body["hold_id"].as_str() {
                    Some(h) => Held::Hold(h.to_owned(), want),
                    None => Held::Failed("hold without an id".into()),
                };
            }
            (409, "fan_limit_reached") => return Held::FanLimit,
            // No two free side by side any more: one seat will do.
            (409, "no_adjacent_seats") if quantity > 1 => quantity = 1,
            // Best available offers no seat left (accessible seats are
            // kept for those who ask for them): over, unless holds lapse.
            (409, "no_adjacent_seats") => {
                if !states.contains(&1) {
                    return Held::SoldOut;
                }
                last = "only seats best available does not offer".into();
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            (s @ (409 | 422), code) => {
                last = format!("{s} {code}");
                let ms = rand::thread_rng().gen_range(100..400);
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            (s @ (429 | 503), code) => {
                last = format!("{s} {code}");
                tokio::time::sleep(Duration::from_secs_f64(a.retry_after.unwrap_or(1.0))).await;
            }
            (s, code) => return Held::Failed(format!("hold answered {s} {code}")),
        }
    }
    Held::Failed(format!("no hold after 40 tries (last: {last})"))
}

pub enum Paid {
    Confirmed,
    CardLimit,
    Failed(String),
}

pub async fn pay(w: &World, who: &Who<'_>, access: &str, fan: &str, hold: &str, card: &str) -> Paid {
    let url = format!("{}/v1/orders", w.edge);
    let key = uuid::Uuid::new_v4().to_string();
    for _ in 0..10 {
        let rb = who
            .http
            .post(&url)
            .bearer_auth(fan)
            .header(usher_shared::ACCESS_HEADER, access)
            .header("idempotency-key", &key)
            .json(&json!({"hold_id": hold, "payment_method": card}));
        let Some(a) = who.send(rb).await else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        match (a.status, a.body["code"].as_str().unwrap_or("-")) {
            (201 | 202, _) => {
                let id = a.body["order_id"].as_str().unwrap_or_default().to_owned();
                let mut state = a.body["state"].as_str().unwrap_or_default().to_owned();
                for _ in 0..60 {
                    match state.as_str() {
                        "confirmed" => return Paid::Confirmed,
                        "payment_failed" | "refunded" | "refunding" => return Paid::Failed(format!("order {state}")),
                        _ => {}
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    let rb = who.http.get(format!("{url}/{id}")).bearer_auth(fan);
                    if let Some(a) = who.send(rb).await {
                        state = a.body["state"].as_str().unwrap_or_default().to_owned();
                    }
                }
                return Paid::Failed("order not settled".into());
            }
            (409, "card_limit_reached") => return Paid::CardLimit,
            (429 | 503, _) => tokio::time::sleep(Duration::from_secs_f64(a.retry_after.unwrap_or(1.0))).await,
            (s, code) => return Paid::Failed(format!("order answered {s} {code}")),
        }
    }
    Paid::Failed("no order after 10 tries".into())
}
