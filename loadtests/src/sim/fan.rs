//! One fan's on-sale, through the edge exactly as a browser or app would
//! go: join the waiting room, wait on the position stream (or poll), take
//! the access token, read availability, hold, order and pay through the
//! sandbox, fetch the ticket. Each fan draws a behaviour from the scenario's
//! mix: specific seats or best available, abandoning the hold, a declined
//! card, a time-out and a retry, a page refresh, a dropped stream, or an
//! aggressive client that never waits.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64::Engine;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::header::HeaderMap;
use reqwest::{RequestBuilder, StatusCode};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::puzzle::Challenge;
use crate::server_timing::timing;
use crate::sim::record::{FanRecord, Kind, Loss, Outcome, Recorder, Req};
use crate::sim::scenario::Scenario;

/// A row of the seat map: its seats' ids and seat-map indexes, in order.
pub struct Row {
    pub first: usize,
    pub ids: Vec<i64>,
}

pub struct SeatMap {
    pub seat_count: usize,
    pub rows: Vec<Row>,
    pub tiers: Vec<i16>,
}

impl SeatMap {
    pub async fn read(http: &reqwest::Client, base: &str, venue: i64) -> anyhow::Result<SeatMap> {
        use anyhow::Context;
        let map: Value = http
            .get(format!("{base}/v1/venues/{venue}/seatmap"))
            .send()
            .await?
            .json()
            .await?;
        let mut rows = Vec::new();
        let mut tiers = Vec::new();
        let mut index = 0;
        for section in map["sections"].as_array().context("sections")? {
            for row in section["rows"].as_array().context("rows")? {
                let seats = row["seats"].as_array().context("seats")?;
                let ids: Vec<i64> = seats.iter().filter_map(|s| s[0].as_i64()).collect();
                let tier = seats.first().and_then(|s| s[4].as_i64()).unwrap_or(1) as i16;
                if !tiers.contains(&tier) {
                    tiers.push(tier);
                }
                let n = ids.len();
                rows.push(Row { first: index, ids });
                index += n;
            }
        }
        Ok(SeatMap {
            seat_count: index,
            rows,
            tiers,
        })
    }
}

/// What every fan shares.
pub struct World {
    pub scenario: Scenario,
    pub edge: String,
    pub event: i64,
    pub map: SeatMap,
    pub clients: Vec<reqwest::Client>,
    /// Joins in flight.
    pub in_flight: Semaphore,
    /// Queued fans' position polls in flight: a lane of their own, so that a
    /// join spike in this process cannot make a waiting fan's poll late
    /// enough to lose its place.
    pub poll_in_flight: Semaphore,
    /// Admitted fans' requests in flight: their own lane.
    pub shop_in_flight: Semaphore,
    pub streams: Semaphore,
    pub rec: Recorder,
    /// When the run stops waiting for fans.
    pub deadline: Instant,
    /// Set once the sale is seen sold out with nothing held: fans still
    /// waiting stop.
    pub sold_out: AtomicBool,
}

/// One fan's draw from the mix.
#[derive(Debug, Clone)]
pub struct Plan {
    pub id: u32,
    pub arrive: Instant,
    pub token: String,
    pub specific: bool,
    pub abandon: bool,
    pub declines: bool,
    pub times_out: bool,
    pub refreshes: bool,
    pub loses_stream: bool,
    pub aggressive: bool,
    pub sse: bool,
    pub quantity: u32,
}

/// A cookie's value from an answer's `set-cookie` headers.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get_all("set-cookie").iter().find_map(|v| {
        let v = v.to_str().ok()?;
        let (pair, _) = v.split_once(';').unwrap_or((v, ""));
        let (k, value) = pair.split_once('=')?;
        (k.trim() == name).then(|| value.trim().to_owned())
    })
}

/// Every seat's state from an availability answer, one byte each (0
/// available, 1 held, 2 sold): the answer packs four to a byte.
pub fn seat_states(body: &Value) -> Option<Vec<u8>> {
    let packed = base64::engine::general_purpose::STANDARD
        .decode(body["states"].as_str()?)
        .ok()?;
    let n = body["seat_count"].as_u64()? as usize;
    if packed.len() * 4 < n {
        return None;
    }
    Some((0..n).map(|i| (packed[i / 4] >> (2 * (i % 4))) & 3).collect())
}

/// A fan's HTTP client as the edge sees it: its own loopback source
/// address (the edge's limits and defences go by address), with the
/// time-outs of a patient browser.
pub fn client_on(addr: Ipv4Addr) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(addr))
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

struct Fan<'a> {
    w: &'a World,
    plan: &'a Plan,
    http: &'a reqwest::Client,
    rng: StdRng,
    rec: FanRecord,
    client_id: Option<String>,
    queue_token: Option<String>,
    stream_url: Option<String>,
    access: Option<String>,
    /// When the current place was taken, and when the edge last answered
    /// this fan on it (the send time of that request), ms into the run.
    place_ms: u32,
    heard_ms: u32,
    /// When the last request left this process.
    sent_ms: u32,
}

const USER_AGENT: &str = "Mozilla/5.0 (usher-sim) Fan/1.0";

pub async fn live(w: Arc<World>, plan: Plan) -> FanRecord {
    tokio::time::sleep_until(plan.arrive).await;
    let http = &w.clients[plan.id as usize % w.clients.len()];
    let mut fan = Fan {
        w: &w,
        plan: &plan,
        http,
        rng: StdRng::seed_from_u64(w.scenario.seed ^ (u64::from(plan.id) << 20)),
        rec: FanRecord::new(plan.id),
        client_id: None,
        queue_token: None,
        stream_url: None,
        access: None,
        place_ms: 0,
        heard_ms: 0,
        sent_ms: 0,
    };
    let outcome = fan.run().await;
    fan.rec.outcome = outcome;
    fan.rec.ended_ms = w.rec.now_ms();
    fan.rec
}

impl Fan<'_> {
    fn base(&self) -> &str {
        &self.w.edge
    }

    fn with_client(&self, rb: RequestBuilder) -> RequestBuilder {
        let rb = rb.header("user-agent", USER_AGENT).header("accept-language", "en-GB");
        match &self.client_id {
            Some(c) => rb.header("usher-client", c),
            None => rb,
        }
    }

    /// A fan's API call: signed in, with the access token once admitted.
    fn api(&self, rb: RequestBuilder) -> RequestBuilder {
        let rb = self.with_client(rb).bearer_auth(&self.plan.token);
        match &self.access {
            Some(a) => rb.header(usher_shared::ACCESS_HEADER, a),
            None => rb,
        }
    }

    async fn send(&mut self, kind: Kind, rb: RequestBuilder) -> Option<Answer> {
        let lane = if self.access.is_some() {
            &self.w.shop_in_flight
        } else if kind == Kind::Status {
            &self.w.poll_in_flight
        } else {
            &self.w.in_flight
        };
        let queued = std::time::Instant::now();
        let _slot = lane.acquire().await.ok()?;
        let queued_micros = queued.elapsed().as_micros() as u32;
        let at_ms = self.w.rec.now_ms();
        self.sent_ms = at_ms;
        let started = std::time::Instant::now();
        let result = rb.send().await;
        let (status, headers, body) = match result {
            Ok(r) => {
                let status = r.status();
                let headers = r.headers().clone();
                let bytes = r.bytes().await.unwrap_or_default();
                let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                (status, headers, body)
            }
            Err(e) => {
                let why = if e.is_timeout() {
                    "client time-out"
                } else if e.is_connect() {
                    "connection refused"
                } else {
                    "no answer"
                };
                self.w.rec.error(kind, 0, why);
                self.w.rec.request(Req {
                    at_ms,
                    kind,
                    status: 0,
                    core: false,
                    micros: started.elapsed().as_micros() as u32,
                    core_micros: 0,
                    edge_micros: 0,
                    queued_micros,
                });
                return None;
            }
        };
        if status.as_u16() >= 400 {
            self.w
                .rec
                .error(kind, status.as_u16(), body["code"].as_str().unwrap_or("-"));
        }
        let core_micros = timing(&headers, "core");
        if core_micros.is_some() && kind.protected() && self.rec.first_core_ms.is_none() && self.access.is_some() {
            self.rec.first_core_ms = Some(at_ms);
        }
        self.w.rec.request(Req {
            at_ms,
            kind,
            status: status.as_u16(),
            core: core_micros.is_some(),
            micros: started.elapsed().as_micros() as u32,
            core_micros: core_micros.unwrap_or(0),
            edge_micros: timing(&headers, "edge").unwrap_or(0),
            queued_micros,
        });
        Some(Answer { status, headers, body })
    }

    /// How long to wait after a 429 or 503: what the server says, unless
    /// this is a client that never waits.
    async fn back_off(&mut self, a: Option<&Answer>) {
        if self.plan.aggressive {
            tokio::time::sleep(Duration::from_millis(50)).await;
            return;
        }
        let secs = a
            .and_then(|a| a.headers.get("retry-after"))
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(1.0);
        let jitter = self.rng.gen_range(0.0..0.5);
        tokio::time::sleep(Duration::from_secs_f64(secs.clamp(0.2, 10.0) + jitter)).await;
    }

    fn past_deadline(&self) -> bool {
        Instant::now() >= self.w.deadline
    }

    async fn run(&mut self) -> Outcome {
        loop {
            if self.past_deadline() {
                return Outcome::NotAdmitted;
            }
            if !self.join().await {
                return if self.past_deadline() {
                    Outcome::NotAdmitted
                } else {
                    Outcome::Failed
                };
            }
            match self.wait().await {
                Waited::Admitted => break,
                Waited::Rejoin => continue,
                Waited::Deadline => return Outcome::NotAdmitted,
                Waited::SoldOut => return Outcome::SoldOut,
            }
        }
        self.rec.admitted_ms = Some(self.w.rec.now_ms());
        self.shop().await
    }

    async fn join(&mut self) -> bool {
        let url = format!("{}/queue/{}/join", self.base(), self.w.event);
        let mut proof: Option<String> = None;
        while !self.past_deadline() {
            // Signed in: the fan's token goes along, as the fan's page sends
            // it (an edge that allows one place per fan reads it).
            let mut rb = self
                .with_client(self.http.post(&url))
                .header("usher-fan", &self.plan.token);
            if let Some(t) = &self.queue_token {
                rb = rb.bearer_auth(t);
            }
            if let Some(p) = proof.take() {
                rb = rb.header("usher-pow", p);
            }
            let a = self.send(Kind::Join, rb).await;
            match a.as_ref().map(|a| a.status) {
                // The join puzzle, solved as the fan's browser would.
                Some(StatusCode::PRECONDITION_REQUIRED)
                    if a.as_ref().is_some_and(|a| a.body["challenge"].is_string()) =>
                {
                    let Some(a) = a else { return false };
                    // The puzzle is bound to the client the edge just named
                    // (its cookie, which a browser keeps): keep it too.
                    if self.client_id.is_none() {
                        self.client_id = cookie(&a.headers, "usher_client");
                    }
                    proof = match Challenge::from_answer(&a.body) {
                        Some(c) => tokio::task::spawn_blocking(move || crate::puzzle::proof(&c.challenge, c.bits))
                            .await
                            .ok(),
                        None => None,
                    };
                }
                Some(StatusCode::OK) => {
                    let Some(a) = a else { return false };
                    let b = &a.body;
                    self.client_id = b["client_id"].as_str().map(str::to_owned);
                    self.queue_token = b["queue_token"].as_str().map(str::to_owned);
                    self.stream_url = b["stream_url"].as_str().map(str::to_owned);
                    let ticket = b["ticket"].as_u64();
                    self.heard_ms = self.sent_ms;
                    if ticket != self.rec.ticket {
                        // A new place: what the edge said about the old one
                        // no longer counts for its order.
                        self.place_ms = self.sent_ms;
                        self.rec.places += 1;
                        self.rec.last_waiting_ms = None;
                        self.rec.last_waiting_tick = None;
                    }
                    self.rec.ticket = ticket;
                    self.rec.joined_ms.get_or_insert(self.w.rec.now_ms());
                    return self.queue_token.is_some();
                }
                Some(StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE) | None => {
                    self.back_off(a.as_ref()).await
                }
                Some(_) => {
                    self.rec.note = Some(format!("join answered {}", a.map_or(0, |a| a.status.as_u16())));
                    return false;
                }
            }
        }
        false
    }

    async fn wait(&mut self) -> Waited {
        // Fans who are told on the way in that they are in go straight on.
        if self.plan.sse
            && !self.plan.aggressive
            && let Ok(permit) = self.w.streams.try_acquire()
        {
            let r = self.follow_stream().await;
            drop(permit);
            // A broken stream: poll instead.
            if let Some(w) = r {
                return w;
            }
        }
        self.poll().await
    }

    /// The position stream: events until `admitted` (which carries the
    /// access token), `lost` or `expired`.
    async fn follow_stream(&mut self) -> Option<Waited> {
        let url = self.stream_url.clone()?;
        let url = if url.starts_with("http") {
            url
        } else {
            format!("{}{url}", self.base())
        };
        let token = self.queue_token.clone()?;
        let mut dropped_once = false;
        loop {
            let rb = self
                .with_client(self.http.get(&url))
                .query(&[("token", token.as_str())])
                .timeout(Duration::from_secs(3600));
            let at_ms = self.w.rec.now_ms();
            let resp = rb.send().await;
            let resp = match resp {
                Ok(r) if r.status().is_success() => r,
                Ok(r) => {
                    let status = r.status().as_u16();
                    self.w.rec.error(Kind::Stream, status, "-");
                    self.w.rec.request(Req {
                        at_ms,
                        kind: Kind::Stream,
                        status,
                        core: false,
                        micros: 0,
                        core_micros: 0,
                        edge_micros: 0,
                        queued_micros: 0,
                    });
                    return if status == 401 { Some(Waited::Rejoin) } else { None };
                }
                Err(_) => return None,
            };
            self.w.rec.request(Req {
                at_ms,
                kind: Kind::Stream,
                status: resp.status().as_u16(),
                core: false,
                micros: 0,
                core_micros: 0,
                edge_micros: 0,
                queued_micros: 0,
            });
            self.w.rec.stream_opened();
            let r = self.read_stream(resp, !dropped_once && self.plan.loses_stream).await;
            self.w.rec.stream_closed();
            match r {
                StreamEnd::Dropped => {
                    // The fan's phone lost the connection: back a few
                    // seconds later, on the same place.
                    dropped_once = true;
                    let secs = self.rng.gen_range(1.0..4.0);
                    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
                }
                StreamEnd::Done(w) => return Some(w),
                StreamEnd::Broken => return None,
            }
        }
    }

    async fn read_stream(&mut self, resp: reqwest::Response, drop_after_first: bool) -> StreamEnd {
        use futures::StreamExt;
        let mut body = resp.bytes_stream();
        let mut buf = String::new();
        let deadline = self.w.deadline;
        loop {
            let next = tokio::select! {
                n = body.next() => n,
                _ = tokio::time::sleep_until(deadline) => return StreamEnd::Done(Waited::Deadline),
                _ = sold_out(self.w) => return StreamEnd::Done(Waited::SoldOut),
            };
            let Some(Ok(chunk)) = next else {
                return StreamEnd::Broken;
            };
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buf.find("\n\n") {
                let block: String = buf.drain(..end + 2).collect();
                let mut name = "message";
                let mut data = String::new();
                let mut id = None;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = v.trim().parse::<u64>().ok();
                    }
                    if let Some(v) = line.strip_prefix("event:") {
                        name = if v.trim() == "position" {
                            "position"
                        } else if v.trim() == "admitted" {
                            "admitted"
                        } else if v.trim() == "lost" || v.trim() == "expired" {
                            "lost"
                        } else {
                            "other"
                        };
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim());
                    }
                }
                match name {
                    "position" => {
                        self.heard_ms = self.w.rec.now_ms();
                        self.rec.last_waiting_ms = Some(self.heard_ms);
                        self.rec.last_waiting_tick = id.or(self.rec.last_waiting_tick);
                        if drop_after_first {
                            return StreamEnd::Dropped;
                        }
                    }
                    "admitted" => {
                        let v: Value = serde_json::from_str(&data).unwrap_or(Value::Null);
                        if let Some(t) = v["access_token"].as_str() {
                            self.access = Some(t.to_owned());
                            self.rec.admitted_tick = v["tick"].as_u64().or(id);
                            return StreamEnd::Done(Waited::Admitted);
                        }
                        return StreamEnd::Broken;
                    }
                    "lost" => return StreamEnd::Done(Waited::Rejoin),
                    _ => {}
                }
            }
        }
    }

    async fn poll(&mut self) -> Waited {
        let url = format!("{}/queue/{}/status", self.base(), self.w.event);
        loop {
            if self.past_deadline() {
                return Waited::Deadline;
            }
            if self.w.sold_out.load(Ordering::Relaxed) {
                return Waited::SoldOut;
            }
            let token = self.queue_token.clone().unwrap_or_default();
            let rb = self.with_client(self.http.get(&url)).bearer_auth(token);
            let a = self.send(Kind::Status, rb).await;
            match a.as_ref().map(|a| a.status) {
                Some(StatusCode::OK) => {
                    let Some(a) = a else { continue };
                    self.heard_ms = self.sent_ms;
                    match a.body["status"].as_str() {
                        Some("admitted") => {
                            self.access = a.body["access_token"].as_str().map(str::to_owned);
                            self.rec.admitted_tick = a.body["tick"].as_u64();
                            return if self.access.is_some() {
                                Waited::Admitted
                            } else {
                                Waited::Rejoin
                            };
                        }
                        _ => {
                            self.rec.last_waiting_ms = Some(self.w.rec.now_ms());
                            if let Some(t) = a.body["tick"].as_u64() {
                                self.rec.last_waiting_tick = Some(t);
                            }
                            // As the edge advises (an older edge: a quarter
                            // of the ETA), within this fan's own patience.
                            let after = (a.body["poll_after_secs"].as_f64())
                                .unwrap_or_else(|| a.body["eta_secs"].as_f64().unwrap_or(2.0) / 4.0);
                            let wait = if self.plan.aggressive {
                                0.1
                            } else {
                                after.clamp(1.0, self.w.scenario.behaviour.max_poll_secs) + self.rng.gen_range(0.0..0.5)
                            };
                            tokio::time::sleep(Duration::from_secs_f64(wait)).await;
                        }
                    }
                }
                Some(StatusCode::GONE | StatusCode::UNAUTHORIZED) => {
                    if a.as_ref().is_some_and(|a| a.body["code"] == "place_lost") {
                        self.rec.losses.push(Loss {
                            heard_gap_ms: self.sent_ms.saturating_sub(self.heard_ms),
                            age_ms: self.sent_ms.saturating_sub(self.place_ms),
                        });
                    }
                    return Waited::Rejoin;
                }
                _ => self.back_off(a.as_ref()).await,
            }
        }
    }

    /// Admitted: find seats, hold, pay, fetch the tickets.
    async fn shop(&mut self) -> Outcome {
        let patience = Instant::now() + Duration::from_secs(self.w.scenario.behaviour.patience_secs);
        let quantity = self.plan.quantity as usize;
        let mut failures = 0;
        loop {
            if Instant::now() >= patience || self.past_deadline() {
                return Outcome::GaveUp;
            }
            let Some(states) = self.availability().await else {
                failures += 1;
                if failures > 20 {
                    return Outcome::Failed;
                }
                self.back_off(None).await;
                continue;
            };
            let free = states.iter().filter(|s| **s == 0).count();
            if free == 0 {
                if !states.contains(&1) {
                    self.w.sold_out.store(true, Ordering::Relaxed);
                    return Outcome::SoldOut;
                }
                // All taken but some only held: holds lapse, look again
                // in a while (a page would watch the seat stream).
                tokio::time::sleep(Duration::from_secs_f64(self.rng.gen_range(4.0..8.0))).await;
                continue;
            }
            let want = quantity.min(free);
            let body = match self.plan.specific.then(|| self.pick(&states, want)).flatten() {
                Some(ids) => json!({"seat_ids": ids}),
                None => {
                    let tier = self.w.map.tiers[self.rng.gen_range(0..self.w.map.tiers.len())];
                    if self.rng.gen_bool(0.5) {
                        json!({"best_available": {"quantity": want, "tier": tier}})
                    } else {
                        json!({"best_available": {"quantity": want}})
                    }
                }
            };
            let url = format!("{}/v1/events/{}/holds", self.base(), self.w.event);
            let rb = self
                .api(self.http.post(&url))
                .header("idempotency-key", uuid::Uuid::new_v4().to_string())
                .json(&body);
            let started = std::time::Instant::now();
            let a = self.send(Kind::Hold, rb).await;
            let micros = started.elapsed().as_micros() as u32;
            let Some(a) = a else {
                failures += 1;
                self.back_off(None).await;
                continue;
            };
            match a.status.as_u16() {
                201 => {
                    self.rec.holds.push((self.w.rec.now_ms(), micros));
                    let hold = a.body["hold_id"].as_str().unwrap_or_default().to_owned();
                    return self.checkout(&hold, want).await;
                }
                409 if a.body["code"] == "fan_limit_reached" => {
                    self.rec.note = Some("fan limit reached".into());
                    return Outcome::Failed;
                }
                409 | 422 => {
                    // Someone was quicker, or no run of that many side by
                    // side: look at the map again.
                    self.rec.holds.push((self.w.rec.now_ms(), micros));
                    tokio::time::sleep(Duration::from_millis(self.rng.gen_range(100..400))).await;
                }
                401 | 403 => {
                    self.rec.note = Some(format!("hold refused: {}", a.body["code"]));
                    return Outcome::Failed;
                }
                _ => {
                    failures += 1;
                    if failures > 20 {
                        self.rec.note = Some(format!("hold answered {}", a.status));
                        return Outcome::Failed;
                    }
                    self.back_off(Some(&a)).await;
                }
            }
        }
    }

    /// Every seat's state, one byte each (0 available, 1 held, 2 sold).
    async fn availability(&mut self) -> Option<Vec<u8>> {
        let url = format!("{}/v1/events/{}/availability", self.base(), self.w.event);
        let rb = self.api(self.http.get(&url));
        let a = self.send(Kind::Availability, rb).await?;
        if a.status != StatusCode::OK {
            return None;
        }
        seat_states(&a.body)
    }

    /// A run of `want` free seats side by side, from a random row onward.
    fn pick(&mut self, states: &[u8], want: usize) -> Option<Vec<i64>> {
        let rows = &self.w.map.rows;
        let start = self.rng.gen_range(0..rows.len());
        for k in 0..rows.len() {
            let row = &rows[(start + k) % rows.len()];
            let mut run = 0;
            for (j, _) in row.ids.iter().enumerate() {
                if states.get(row.first + j) == Some(&0) {
                    run += 1;
                    if run == want {
                        return Some(row.ids[j + 1 - want..=j].to_vec());
                    }
                } else {
                    run = 0;
                }
            }
        }
        None
    }

    async fn checkout(&mut self, hold: &str, seats: usize) -> Outcome {
        if self.plan.refreshes {
            // A page reload: the hold and the map again.
            let url = format!("{}/v1/holds/{hold}", self.base());
            let rb = self.api(self.http.get(&url));
            self.send(Kind::HoldRead, rb).await;
            self.availability().await;
        }
        if self.plan.abandon {
            return Outcome::Abandoned;
        }
        // A fan takes a few seconds to type a card number.
        tokio::time::sleep(Duration::from_secs_f64(self.rng.gen_range(0.5..2.0))).await;
        // Each fan pays with a card of their own (`_fan<id>`): accounts that
        // share a card share the limit per fan. A declining card and the
        // good one are the same card, declined once.
        let id = self.plan.id;
        if self.plan.declines {
            let (a, _) = self
                .order(
                    hold,
                    &format!("pm_card_declined_fan{id}"),
                    &uuid::Uuid::new_v4().to_string(),
                )
                .await;
            if a.as_ref().is_some_and(|a| a.body["state"] == "confirmed") {
                self.rec.note = Some("a declining card was charged".into());
            }
            tokio::time::sleep(Duration::from_secs_f64(self.rng.gen_range(0.5..1.5))).await;
        }
        let key = uuid::Uuid::new_v4().to_string();
        let card = if self.plan.times_out {
            format!("pm_card_timeout_fan{id}")
        } else {
            format!("pm_card_ok_fan{id}")
        };
        let mut attempts = 0;
        let order_id = loop {
            attempts += 1;
            let (a, micros) = self.order(hold, &card, &key).await;
            let Some(a) = a else {
                // No answer: the fan presses "pay" again, same key.
                if attempts > 5 {
                    return Outcome::Failed;
                }
                self.back_off(None).await;
                continue;
            };
            match a.status.as_u16() {
                201 | 202 => {
                    let state = a.body["state"].as_str().unwrap_or_default();
                    let id = a.body["order_id"].as_str().unwrap_or_default().to_owned();
                    if state == "confirmed" {
                        let provider = timing(&a.headers, "provider").unwrap_or(0);
                        self.rec.confirm = Some((self.w.rec.now_ms(), micros, provider));
                        self.rec.seats_bought = seats as u32;
                        break id;
                    }
                    if state == "payment_failed" {
                        self.rec.note = Some("payment failed".into());
                        return Outcome::Failed;
                    }
                    if self.plan.times_out && attempts < 3 {
                        // The page timed out: the fan retries the same payment.
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                    match self.await_order(&id).await {
                        Some(true) => {
                            self.rec.seats_bought = seats as u32;
                            break id;
                        }
                        _ => return Outcome::Failed,
                    }
                }
                410 => {
                    self.rec.note = Some("hold expired before paying".into());
                    return Outcome::Failed;
                }
                429 | 503 => self.back_off(Some(&a)).await,
                s => {
                    self.rec.note = Some(format!("order answered {s}: {}", a.body["code"]));
                    return Outcome::Failed;
                }
            }
            if attempts > 10 {
                return Outcome::Failed;
            }
        };
        self.rec.confirmed_order = Some(order_id);
        self.fetch_tickets().await;
        Outcome::Bought
    }

    async fn order(&mut self, hold: &str, card: &str, key: &str) -> (Option<Answer>, u32) {
        let url = format!("{}/v1/orders", self.base());
        let rb = self
            .api(self.http.post(&url))
            .header("idempotency-key", key)
            .json(&json!({"hold_id": hold, "payment_method": card}));
        let started = std::time::Instant::now();
        let a = self.send(Kind::Order, rb).await;
        (a, started.elapsed().as_micros() as u32)
    }

    /// Polls an order the processor has not settled yet; Some(true) once
    /// confirmed, Some(false) once final otherwise.
    async fn await_order(&mut self, id: &str) -> Option<bool> {
        let url = format!("{}/v1/orders/{id}", self.base());
        for _ in 0..120 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let rb = self.api(self.http.get(&url));
            let a = self.send(Kind::OrderRead, rb).await?;
            match a.body["state"].as_str() {
                Some("confirmed") => return Some(true),
                Some("payment_failed" | "refunded" | "refunding") => {
                    self.rec.note = Some(format!("order ended {}", a.body["state"]));
                    return Some(false);
                }
                _ => {}
            }
        }
        None
    }

    async fn fetch_tickets(&mut self) {
        let url = format!("{}/v1/me/tickets", self.base());
        let rb = self.api(self.http.get(&url));
        let Some(a) = self.send(Kind::Tickets, rb).await else {
            return;
        };
        let empty = Vec::new();
        let items = a.body["items"].as_array().or(a.body.as_array()).unwrap_or(&empty);
        let mine: Vec<&Value> = items.iter().filter(|t| t["event_id"] == self.w.event).collect();
        self.rec.tickets_seen = mine.len() as u32;
        if let Some(id) = mine.first().and_then(|t| t["ticket_id"].as_str().or(t["id"].as_str())) {
            let url = format!("{}/v1/tickets/{id}/qr.svg", self.base());
            let rb = self.api(self.http.get(&url));
            self.send(Kind::Qr, rb).await;
        }
    }
}

enum Waited {
    Admitted,
    Rejoin,
    Deadline,
    SoldOut,
}

enum StreamEnd {
    Dropped,
    Done(Waited),
    Broken,
}

async fn sold_out(w: &World) {
    while !w.sold_out.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Every fan's draw, and when each arrives: early fans spread over the
/// seconds before the on-sale, then the spike, then the tail.
pub fn plans(s: &Scenario, start: Instant, on_sale: Instant, tokens: &[String]) -> Vec<Plan> {
    let mut rng = StdRng::seed_from_u64(s.seed);
    let a = &s.arrival;
    let b = &s.behaviour;
    (0..s.fans)
        .map(|i| {
            let r: f64 = rng.r#gen();
            let offset = if r < a.early_share {
                -rng.gen_range(0.0..a.early_secs.max(0.001))
            } else if rng.gen_bool(a.spike_share) {
                // Most of the spike in its first instants.
                let u: f64 = rng.r#gen();
                u * u * a.spike_secs
            } else {
                a.spike_secs + rng.gen_range(0.0..a.tail_secs.max(0.001))
            };
            let arrive = if offset < 0.0 {
                (on_sale - Duration::from_secs_f64(-offset)).max(start)
            } else {
                on_sale + Duration::from_secs_f64(offset)
            };
            let mix: f64 = rng.r#gen();
            Plan {
                id: i as u32,
                arrive,
                token: tokens[i % tokens.len()].clone(),
                specific: rng.gen_bool(b.specific_seats),
                abandon: mix < b.abandon_hold,
                declines: (b.abandon_hold..b.abandon_hold + b.payment_declines).contains(&mix),
                times_out: (b.abandon_hold + b.payment_declines
                    ..b.abandon_hold + b.payment_declines + b.retry_after_timeout)
                    .contains(&mix),
                refreshes: rng.gen_bool(b.refresh_page),
                loses_stream: rng.gen_bool(b.lose_stream),
                aggressive: rng.gen_bool(b.aggressive),
                sse: rng.gen_bool(b.sse_share),
                quantity: rng.gen_range(b.quantity[0]..=b.quantity[1]),
            }
        })
        .collect()
}
