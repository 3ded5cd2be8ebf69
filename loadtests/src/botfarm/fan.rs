//! One ordinary fan's run: arrives, joins with its browser (solving any
//! puzzle), waits for its turn (joining again if its place is taken back),
//! then buys its seats with its own card; and what the defences did to it.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use tokio::time::Instant;

use super::client::{BROWSER_LANGUAGE, BROWSER_UA, FAN_PREFIX, Who};
use super::door::{Credentials, Door, Joined, Solving, Waited, join, wait};
use super::outcome::FanOut;
use super::shop::{Held, Paid, hold, pay};
use super::world::World;

pub struct FanPlan {
    pub id: usize,
    pub at: Instant,
    pub addr: Ipv4Addr,
    /// On a network shared with other fans (an office, a campus).
    pub shared: bool,
    pub token: String,
}

pub async fn fan(w: Arc<World>, http: reqwest::Client, p: FanPlan) -> FanOut {
    tokio::time::sleep_until(p.at).await;
    let who = Who {
        http: &http,
        addr: p.addr,
        id: format!("{FAN_PREFIX}-{}-{}", p.id, uuid::Uuid::new_v4().simple()),
        ua: BROWSER_UA,
        lang: BROWSER_LANGUAGE,
    };
    let mut out = FanOut {
        id: p.id,
        shared_network: p.shared,
        ..FanOut::default()
    };
    let mut door = Door::default();
    let never = AtomicBool::new(false);
    let access = loop {
        let signed_in = Credentials {
            fan_token: Some(&p.token),
            ..Credentials::default()
        };
        let token = match join(&w, &who, Solving::Fan, signed_in, &mut door).await {
            Joined::Place(t) => t,
            Joined::Blocked => break Err("blocked".to_owned()),
            Joined::Refused(why) => break Err(why),
            Joined::Over => break Err("sold out or deadline before a place".to_owned()),
        };
        out.place = true;
        match wait(&w, &who, &token, &never).await {
            Waited::Admitted(a) => break Ok(a),
            Waited::Lost => out.lost_place = true,
            Waited::Over => break Err("sold out or deadline while waiting".to_owned()),
        }
    };
    out.max_bits = door.max_bits;
    out.harder = door.harder;
    out.deferred = door.deferred;
    out.blocked = door.blocked;
    let access = match access {
        Ok(a) => a,
        Err(why) => {
            out.end = why;
            return out;
        }
    };
    out.admitted = true;
    out.end = match hold(&w, &who, &access, &p.token, w.sc.fans.quantity).await {
        Held::Hold(h, n) => match pay(&w, &who, &access, &p.token, &h, &format!("pm_card_ok_bffan{}", p.id)).await {
            Paid::Confirmed => {
                out.seats = n;
                "bought".into()
            }
            Paid::CardLimit => "card limit".into(),
            Paid::Failed(why) => why,
        },
        Held::SoldOut => "sold out when admitted".into(),
        Held::FanLimit => "fan limit".into(),
        Held::Failed(why) => why,
    };
    out
}
