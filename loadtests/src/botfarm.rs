//! The bot-farm simulation (`usher-load botfarm`): ordinary fans from many
//! networks and a bot farm from a few (solvers, puzzle skippers, replayers
//! of one solution, thieves of other clients' queue tokens), all over HTTP
//! through the edge on their own loopback source addresses, against the
//! whole stack the on-sale simulator starts. Run with the edge's defences
//! (the scenario's `[defence]` tables) and without them; the report says
//! who bought the seats, which fans the defences wrongly touched, what
//! happened to each kind of bot and what the edge counted, and the run
//! fails if the goals are missed with defences on or a seat was sold twice.
//! The model is documented in `loadtests/scenarios/botfarm.toml`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{OnceCell, Semaphore};
use tokio::time::Instant;
use usher_shared::admin::QueueMode;
use usher_shared::locks;

use crate::edge_admin;
use crate::sandbox::API_KEY;
use crate::sim::scenario::{self, Scenario};
use crate::sim::stack::{ADMIN_TOKEN, Bins, SimStack, StackPlace};

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The farm's scenario.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/botfarm.toml"))]
    pub scenario: PathBuf,
    #[command(flatten)]
    pub stack: StackPlace,
    /// Also write the Markdown report here (e.g. loadtests/reports/botfarm.md).
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Only the run with defences on.
    #[arg(long)]
    pub defences_only: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FarmScenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub seed: u64,
    /// The run stops waiting for anyone this long after the on-sale.
    pub max_secs: u64,
    pub goals: Goals,
    pub fans: FanCrowd,
    pub bots: Farm,
    pub venue: scenario::Venue,
    pub sale: scenario::Sale,
    pub admission: scenario::Admission,
    /// The edge's `[defence]` tables for the run with defences on.
    pub defence: toml::Table,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Goals {
    pub max_bot_share: f64,
    pub max_fan_false_positives: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FanCrowd {
    pub count: usize,
    pub arrive_secs: f64,
    pub shared_networks: u32,
    pub per_shared_network: u32,
    pub poll_secs: f64,
    pub quantity: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Farm {
    pub attempts: usize,
    pub arrive_secs: f64,
    pub networks: u8,
    pub addresses_per_network: u8,
    pub joins_per_client: usize,
    pub accounts: usize,
    pub cards: usize,
    pub solver_threads: usize,
    pub max_solve_bits: u8,
    pub automation_share: f64,
    pub mix: Mix,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mix {
    pub solver: f64,
    pub skipper: f64,
    pub replayer: f64,
    pub thief: f64,
}

impl FarmScenario {
    pub fn load(path: &Path) -> anyhow::Result<FarmScenario> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let s: FarmScenario = toml::from_str(&text).with_context(|| format!("{}", path.display()))?;
        s.validate().with_context(|| format!("{}", path.display()))?;
        Ok(s)
    }

    fn validate(&self) -> anyhow::Result<()> {
        let f = &self.fans;
        let b = &self.bots;
        if f.count == 0 || f.arrive_secs <= 0.0 || f.poll_secs <= 0.0 || f.quantity == 0 {
            bail!("fans: count, arrive_secs, poll_secs and quantity must be positive");
        }
        if f.per_shared_network > 250 || (f.shared_networks * f.per_shared_network) as usize > f.count {
            bail!("fans: per_shared_network is at most 250, and the shared fans at most fans.count");
        }
        if f.quantity > self.sale.max_seats_per_fan {
            bail!("fans.quantity must not exceed sale.max_seats_per_fan");
        }
        if b.attempts == 0 || b.networks == 0 || b.addresses_per_network == 0 || b.addresses_per_network > 250 {
            bail!("bots: attempts, networks and addresses_per_network (at most 250) must be positive");
        }
        if b.joins_per_client == 0 || b.accounts == 0 || b.cards == 0 || b.solver_threads == 0 {
            bail!("bots: joins_per_client, accounts, cards and solver_threads must be positive");
        }
        let m = &b.mix;
        let sum = m.solver + m.skipper + m.replayer + m.thief;
        if [m.solver, m.skipper, m.replayer, m.thief].iter().any(|v| *v < 0.0) || (sum - 1.0).abs() > 1e-6 {
            bail!("bots.mix: the shares must not be negative and must add up to 1, not {sum}");
        }
        if !(0.0..=1.0).contains(&b.automation_share) {
            bail!("bots.automation_share must be between 0 and 1");
        }
        if self.venue.generated_seats() == 0 || self.venue.seeded.is_some() {
            bail!("venue: give sections, rows and seats_per_row");
        }
        Ok(())
    }

    /// The puzzle's base difficulty with defences on, if there is a puzzle.
    pub fn base_bits(&self) -> Option<u8> {
        self.defence
            .get("pow")?
            .get("base_bits")?
            .as_integer()
            .and_then(|b| u8::try_from(b).ok())
    }

    /// The simulator's scenario for the stack: venue, sale and room, and
    /// the defences appended to the edge's configuration if on.
    pub fn stack_scenario(&self, defences: bool) -> anyhow::Result<Scenario> {
        let edge_extra = if defences {
            let mut root = toml::Table::new();
            root.insert("defence".into(), toml::Value::Table(self.defence.clone()));
            toml::to_string(&root).context("the [defence] tables")?
        } else {
            String::new()
        };
        Ok(Scenario {
            name: self.name.clone(),
            description: self.description.clone(),
            fans: self.fans.count,
            seed: self.seed,
            max_secs: self.max_secs,
            arrival: scenario::Arrival {
                early_share: 0.0,
                early_secs: 0.0,
                spike_share: 1.0,
                spike_secs: self.fans.arrive_secs,
                tail_secs: 0.0,
            },
            venue: self.venue.clone(),
            sale: self.sale.clone(),
            admission: self.admission.clone(),
            behaviour: scenario::Behaviour {
                specific_seats: 0.0,
                abandon_hold: 0.0,
                payment_declines: 0.0,
                retry_after_timeout: 0.0,
                refresh_page: 0.0,
                lose_stream: 0.0,
                aggressive: 0.0,
                sse_share: 0.0,
                quantity: [self.fans.quantity, self.fans.quantity],
                patience_secs: 60,
                max_poll_secs: self.fans.poll_secs,
            },
            client: scenario::Client::default(),
            compare_passthrough: false,
            edge_extra,
        })
    }
}

/// What kind of bot a bot client is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BotKind {
    /// Solves, with an automation user agent and no Accept-Language.
    SolverAutomation,
    /// Solves, with a browser's headers.
    SolverBrowser,
    Skipper,
    Replayer,
    Thief,
}

impl BotKind {
    pub fn name(self) -> &'static str {
        match self {
            BotKind::SolverAutomation => "solver (automation UA)",
            BotKind::SolverBrowser => "solver (browser UA)",
            BotKind::Skipper => "skipper",
            BotKind::Replayer => "replayer",
            BotKind::Thief => "cookie thief",
        }
    }
}

/// One fan's run, as the fan saw it.
#[derive(Debug, Clone, Default)]
pub struct FanOut {
    pub id: usize,
    pub shared_network: bool,
    /// Given a puzzle above the base bits.
    pub harder: bool,
    pub max_bits: u8,
    pub deferred: bool,
    pub blocked: bool,
    pub place: bool,
    pub lost_place: bool,
    pub admitted: bool,
    pub seats: u32,
    pub end: String,
}

impl FanOut {
    pub fn false_positive(&self) -> bool {
        self.harder || self.deferred || self.blocked
    }
}

/// One bot join attempt's run.
#[derive(Debug, Clone)]
pub struct BotOut {
    pub kind: BotKind,
    pub client: usize,
    pub addr: Ipv4Addr,
    /// When it got its place, ms from the start.
    pub placed_ms: Option<u32>,
    pub blocked: bool,
    pub deferred: bool,
    pub place: bool,
    pub lost_place: bool,
    pub admitted: bool,
    pub seats: u32,
    pub end: String,
}

/// Everything one run produced.
pub struct FarmRun {
    pub defences: bool,
    pub fans: Vec<FanOut>,
    pub bots: Vec<BotOut>,
    pub seats: i64,
    pub sold: i64,
    /// From the database: seats on valid tickets of orders by the farm's
    /// accounts.
    pub bot_seats: i64,
    pub oversold: i64,
    pub charge_problems: Vec<String>,
    pub unsettled_orders: i64,
    /// From the on-sale to the last seat sold.
    pub sold_out_secs: Option<f64>,
    /// The edge's defence counters (Prometheus lines).
    pub metrics: Vec<String>,
    pub elapsed_secs: f64,
    /// Puzzles the farm solved and the hashes it spent.
    pub farm_solves: usize,
    pub farm_hashes: u64,
    /// Per bot address, when the edge last blocked or deferred it (ms
    /// from the start).
    pub refused_at: HashMap<Ipv4Addr, u32>,
}

impl FarmRun {
    pub fn bot_share(&self) -> f64 {
        if self.sold == 0 {
            0.0
        } else {
            self.bot_seats as f64 / self.sold as f64
        }
    }

    pub fn fan_false_positives(&self) -> usize {
        self.fans.iter().filter(|f| f.false_positive()).count()
    }

    pub fn fan_false_positive_share(&self) -> f64 {
        self.fan_false_positives() as f64 / self.fans.len().max(1) as f64
    }

    /// What is wrong with this run whatever the defences: seats sold twice,
    /// charges without tickets, orders left unsettled.
    pub fn violations(&self) -> Vec<String> {
        let mut v = Vec::new();
        if self.oversold > 0 {
            v.push(format!("{} seats have two valid tickets", self.oversold));
        }
        v.extend(self.charge_problems.iter().cloned());
        if self.unsettled_orders > 0 {
            v.push(format!(
                "{} orders still unsettled a minute after the run",
                self.unsettled_orders
            ));
        }
        v
    }

    /// The goals this run missed (meant for the run with defences).
    pub fn missed_goals(&self, goals: &Goals) -> Vec<String> {
        let mut v = Vec::new();
        if self.bot_share() >= goals.max_bot_share {
            v.push(format!(
                "bots bought {} of {} seats sold ({:.2}%; goal under {:.2}%)",
                self.bot_seats,
                self.sold,
                self.bot_share() * 100.0,
                goals.max_bot_share * 100.0
            ));
        }
        if self.fan_false_positive_share() >= goals.max_fan_false_positives {
            v.push(format!(
                "{} of {} fans were challenged harder, deferred or blocked ({:.2}%; goal under {:.2}%)",
                self.fan_false_positives(),
                self.fans.len(),
                self.fan_false_positive_share() * 100.0,
                goals.max_fan_false_positives * 100.0
            ));
        }
        v
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let sc = FarmScenario::load(&args.scenario)?;
    let bins = Bins::in_dir(&args.stack.bin_dir);
    eprintln!(
        "bot farm {}: {} fans, {} bot join attempts from {} networks, {} seats",
        sc.name,
        sc.fans.count,
        sc.bots.attempts,
        sc.bots.networks,
        sc.venue.generated_seats()
    );
    eprintln!("run 1: defences on...");
    let on = run_farm(&sc, &bins, &args.stack.database_url, true).await?;
    let off = if args.defences_only {
        None
    } else {
        eprintln!("run 2: defences off...");
        Some(run_farm(&sc, &bins, &args.stack.database_url, false).await?)
    };
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let report = report(&sc, &on, off.as_ref(), &command);
    println!("{report}");
    if let Some(path) = &args.report {
        std::fs::write(path, &report).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("report: {}", path.display());
    }
    let mut failures = on.violations();
    if let Some(off) = &off {
        failures.extend(off.violations().into_iter().map(|v| format!("(defences off) {v}")));
    }
    failures.extend(on.missed_goals(&sc.goals));
    if !failures.is_empty() {
        bail!("the bot farm's checks failed:\n  {}", failures.join("\n  "));
    }
    Ok(())
}

const BROWSER_UA: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36";
const BROWSER_LANGUAGE: &str = "en-GB,en;q=0.9";
const AUTOMATION_UA: &str = "Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/131.0 Safari/537.36";
const FAN_PREFIX: &str = "bf-fan";
const BOT_PREFIX: &str = "bf-bot";

/// What every participant shares.
struct World {
    sc: FarmScenario,
    start: Instant,
    /// Per address, when the edge last blocked or deferred one of its joins.
    refused_at: Mutex<HashMap<Ipv4Addr, u32>>,
    edge: String,
    event: i64,
    base_bits: Option<u8>,
    deadline: Instant,
    sold_out: AtomicBool,
    /// The farm's compute.
    solvers: Semaphore,
    farm_solves: AtomicUsize,
    farm_hashes: std::sync::atomic::AtomicU64,
    /// The farm's accounts (fan tokens) and which are spent.
    accounts: Vec<String>,
    spent_accounts: Mutex<HashSet<usize>>,
    spent_cards: Mutex<HashSet<usize>>,
    next_account: AtomicUsize,
    next_card: AtomicUsize,
    /// The farm has no account or no card left to buy with.
    farm_spent: AtomicBool,
    /// Queue tokens bot clients got, by client: what thieves copy.
    tokens: Mutex<Vec<(usize, String)>>,
    /// Per bot client: the one solution its replays share.
    rings: Vec<OnceCell<Option<String>>>,
}

impl World {
    fn now_ms(&self) -> u32 {
        self.start.elapsed().as_millis() as u32
    }

    fn over(&self) -> bool {
        Instant::now() >= self.deadline || self.sold_out.load(Ordering::Relaxed)
    }

    fn refused(&self, addr: Ipv4Addr) {
        let now = self.now_ms();
        locks::lock(&self.refused_at).insert(addr, now);
    }

    fn take(&self, next: &AtomicUsize, spent: &Mutex<HashSet<usize>>, n: usize) -> Option<usize> {
        let spent = locks::lock(spent);
        if spent.len() >= n {
            self.farm_spent.store(true, Ordering::Relaxed);
            return None;
        }
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed) % n;
            if !spent.contains(&i) {
                return Some(i);
            }
        }
    }

    fn spend(&self, spent: &Mutex<HashSet<usize>>, i: usize, n: usize) {
        let mut spent = locks::lock(spent);
        spent.insert(i);
        if spent.len() >= n {
            self.farm_spent.store(true, Ordering::Relaxed);
        }
    }
}

/// A client as the edge sees it: an address (its HTTP client), a client
/// id, a user agent and a language.
struct Who<'a> {
    http: &'a reqwest::Client,
    addr: Ipv4Addr,
    id: String,
    ua: &'static str,
    lang: &'static str,
}

struct Answer {
    status: u16,
    retry_after: Option<f64>,
    body: Value,
}

impl Who<'_> {
    fn req(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let rb = rb.header("usher-client", &self.id).header("user-agent", self.ua);
        if self.lang.is_empty() {
            rb
        } else {
            rb.header("accept-language", self.lang)
        }
    }

    async fn send(&self, rb: reqwest::RequestBuilder) -> Option<Answer> {
        let r = self.req(rb).send().await.ok()?;
        let status = r.status().as_u16();
        let retry_after = r
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let body = r.json().await.unwrap_or(Value::Null);
        Some(Answer {
            status,
            retry_after,
            body,
        })
    }
}

pub use crate::puzzle::solve;

/// How a joiner deals with a puzzle.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Solving {
    /// A fan's browser: solves it.
    Fan,
    /// The farm: solves it with its own threads, up to its budget.
    Farm,
    /// Never solves.
    Never,
}

async fn solve_as(w: &World, how: Solving, challenge: &str, bits: u8) -> Option<String> {
    let c = challenge.to_owned();
    match how {
        Solving::Never => None,
        Solving::Fan => {
            let (n, _) = tokio::task::spawn_blocking(move || solve(&c, bits)).await.ok()?;
            Some(format!("{challenge}:{n}"))
        }
        Solving::Farm => {
            if bits > w.sc.bots.max_solve_bits {
                return None;
            }
            let _thread = w.solvers.acquire().await.ok()?;
            if w.over() {
                return None;
            }
            let (n, hashes) = tokio::task::spawn_blocking(move || solve(&c, bits)).await.ok()?;
            w.farm_solves.fetch_add(1, Ordering::Relaxed);
            w.farm_hashes.fetch_add(hashes, Ordering::Relaxed);
            Some(format!("{challenge}:{n}"))
        }
    }
}

/// What the edge did to one client's joining.
#[derive(Default)]
struct Door {
    max_bits: u8,
    harder: bool,
    deferred: bool,
    blocked: bool,
}

enum Joined {
    Place(String),
    Blocked,
    Refused(String),
    Over,
}

/// Joins until a place, a block, a puzzle it will not solve, or the end.
/// `proof` is a solution to send with the first join; `bearer` a queue
/// token to present.
async fn join(
    w: &World,
    who: &Who<'_>,
    fan_token: Option<&str>,
    how: Solving,
    mut proof: Option<String>,
    bearer: Option<&str>,
    door: &mut Door,
) -> Joined {
    let url = format!("{}/queue/{}/join", w.edge, w.event);
    for _ in 0..20 {
        if w.over() {
            return Joined::Over;
        }
        let mut rb = who.http.post(&url);
        if let Some(p) = &proof {
            rb = rb.header("usher-pow", p);
        }
        if let Some(f) = fan_token {
            rb = rb.header("usher-fan", f);
        }
        if let Some(b) = bearer {
            rb = rb.bearer_auth(b);
        }
        let Some(a) = who.send(rb).await else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        let code = a.body["code"].as_str().unwrap_or("-").to_owned();
        match a.status {
            200 => match a.body["queue_token"].as_str() {
                Some(t) => return Joined::Place(t.to_owned()),
                None => return Joined::Refused("join answered 200 without a token".into()),
            },
            428 if a.body["challenge"].is_string() => {
                let bits = a.body["bits"].as_u64().unwrap_or(0) as u8;
                door.max_bits = door.max_bits.max(bits);
                if w.base_bits.is_some_and(|b| bits > b) {
                    door.harder = true;
                }
                let challenge = a.body["challenge"].as_str().unwrap_or_default();
                proof = solve_as(w, how, challenge, bits).await;
                if proof.is_none() {
                    return Joined::Refused(if how == Solving::Farm && bits > w.sc.bots.max_solve_bits {
                        format!("puzzle of {bits} bits, over the farm's budget")
                    } else {
                        code
                    });
                }
            }
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

enum Waited {
    Admitted(String),
    Lost,
    Over,
}

/// Polls the place's status until admitted, lost or the end.
async fn wait(w: &World, who: &Who<'_>, token: &str, stop: &AtomicBool) -> Waited {
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

enum Held {
    Hold(String, u32),
    SoldOut,
    FanLimit,
    Failed(String),
}

/// Best available seats, as many as wanted or as are free.
async fn hold(w: &World, who: &Who<'_>, access: &str, fan: &str, mut quantity: u32) -> Held {
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
        let Some(states) = states(&a.body) else {
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

fn states(body: &Value) -> Option<Vec<u8>> {
    let packed = base64::engine::general_purpose::STANDARD
        .decode(body["states"].as_str()?)
        .ok()?;
    let n = body["seat_count"].as_u64()? as usize;
    if packed.len() * 4 < n {
        return None;
    }
    Some((0..n).map(|i| (packed[i / 4] >> (2 * (i % 4))) & 3).collect())
}

enum Paid {
    Confirmed,
    CardLimit,
    Failed(String),
}

async fn pay(w: &World, who: &Who<'_>, access: &str, fan: &str, hold: &str, card: &str) -> Paid {
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

struct FanPlan {
    id: usize,
    at: Instant,
    addr: Ipv4Addr,
    shared: bool,
    token: String,
}

async fn fan(w: Arc<World>, http: reqwest::Client, p: FanPlan) -> FanOut {
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
        let joined = join(&w, &who, Some(&p.token), Solving::Fan, None, None, &mut door).await;
        let token = match joined {
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

struct BotPlan {
    client: usize,
    addr: Ipv4Addr,
    kind: BotKind,
    at: Instant,
    http: reqwest::Client,
}

async fn bot(w: Arc<World>, p: BotPlan) -> BotOut {
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
            join(&w, &who, None, Solving::Farm, None, None, &mut door).await
        }
        BotKind::Skipper => {
            // Joins, and joins again, never solving.
            let mut last = Joined::Over;
            for _ in 0..3 {
                last = join(&w, &who, None, Solving::Never, None, None, &mut door).await;
                if !matches!(last, Joined::Refused(_)) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            last
        }
        BotKind::Replayer => {
            let proof = w.rings[p.client].get_or_init(|| ring_solution(&w, &who)).await.clone();
            join(&w, &who, None, Solving::Never, proof, None, &mut door).await
        }
        BotKind::Thief => match stolen(&w, p.client).await {
            Some(token) => {
                // The copied cookie on the status call, then on joining.
                let url = format!("{}/queue/{}/status", w.edge, w.event);
                let _ = who.send(who.http.get(&url).bearer_auth(&token)).await;
                join(&w, &who, None, Solving::Never, None, Some(&token), &mut door).await
            }
            None => join(&w, &who, None, Solving::Never, None, None, &mut door).await,
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
    let challenge = a.body["challenge"].as_str()?;
    let bits = a.body["bits"].as_u64()? as u8;
    solve_as(w, Solving::Farm, challenge, bits).await
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
    let n_accounts = w.sc.bots.accounts;
    let n_cards = w.sc.bots.cards;
    loop {
        let Some(acct) = w.take(&w.next_account, &w.spent_accounts, n_accounts) else {
            return (0, "farm's accounts spent".into());
        };
        let fan = &w.accounts[acct];
        match hold(w, who, access, fan, w.sc.sale.max_seats_per_fan).await {
            Held::Hold(h, n) => loop {
                let Some(card) = w.take(&w.next_card, &w.spent_cards, n_cards) else {
                    return (0, "farm's cards spent".into());
                };
                match pay(w, who, access, fan, &h, &format!("pm_card_ok_bfbot{card}")).await {
                    Paid::Confirmed => return (n, "bought".into()),
                    Paid::CardLimit => w.spend(&w.spent_cards, card, n_cards),
                    Paid::Failed(why) => return (0, why),
                }
            },
            Held::FanLimit => w.spend(&w.spent_accounts, acct, n_accounts),
            Held::SoldOut => return (0, "sold out when admitted".into()),
            Held::Failed(why) => return (0, why),
        }
    }
}

fn client_on(addr: Ipv4Addr) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .local_address(IpAddr::V4(addr))
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// Where fan `i` is: on a shared network, or on one of its own.
fn fan_address(f: &FanCrowd, i: usize) -> (Ipv4Addr, bool) {
    let per = f.per_shared_network as usize;
    let shared = f.shared_networks as usize * per;
    if i < shared {
        (Ipv4Addr::new(127, 19, (i / per) as u8, (1 + i % per) as u8), true)
    } else {
        let j = i - shared;
        (Ipv4Addr::new(127, (20 + j / 256) as u8, (j % 256) as u8, 1), false)
    }
}

/// One run of the farm and the fans against a fresh stack.
pub async fn run_farm(sc: &FarmScenario, bins: &Bins, database_url: &str, defences: bool) -> anyhow::Result<FarmRun> {
    let stack_scenario = sc.stack_scenario(defences)?;
    let later = chrono::Utc::now() + chrono::Duration::days(1);
    let began = Instant::now();
    let st = SimStack::start(&stack_scenario, bins, database_url, false, later).await?;
    let result = farm(sc, &st, defences).await;
    if result.is_err() {
        eprintln!("logs: {}", st.dir.display());
    }
    st.stop().await?;
    let mut run = result?;
    run.elapsed_secs = began.elapsed().as_secs_f64();
    Ok(run)
}

async fn farm(sc: &FarmScenario, st: &SimStack, defences: bool) -> anyhow::Result<FarmRun> {
    let setup = reqwest::Client::new();
    sqlx::query("UPDATE events SET on_sale_at = now() - interval '1 minute' WHERE id = $1")
        .bind(st.event)
        .execute(&st.core.pool)
        .await?;
    // Accessible seats are not offered as best available, which is how
    // everyone here buys: the sale is over when the others are sold.
    let seats: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM seats s JOIN events e ON e.venue_id = s.venue_id WHERE e.id = $1 AND NOT s.accessible",
    )
    .bind(st.event)
    .fetch_one(&st.core.pool)
    .await?;
    eprintln!(
        "signing in {} fans and {} bot accounts...",
        sc.fans.count, sc.bots.accounts
    );
    let fan_tokens = crate::fans::sign_in_many(&setup, &st.core.base, FAN_PREFIX, sc.fans.count).await?;
    let accounts = crate::fans::sign_in_many(&setup, &st.core.base, BOT_PREFIX, sc.bots.accounts).await?;

    let b = &sc.bots;
    let mut rng = StdRng::seed_from_u64(sc.seed);
    let clients = b.attempts.div_ceil(b.joins_per_client);
    let bot_http: Vec<(Ipv4Addr, reqwest::Client)> = (0..b.networks)
        .flat_map(|n| (0..b.addresses_per_network).map(move |a| Ipv4Addr::new(127, 250, n, 1 + a)))
        .map(|a| client_on(a).map(|c| (a, c)))
        .collect::<Result<_, _>>()?;
    // Each bot client's kind, drawn by the mix.
    let kinds: Vec<BotKind> = (0..clients)
        .map(|_| {
            let r: f64 = rng.r#gen();
            let m = &b.mix;
            if r < m.solver {
                if rng.gen_bool(b.automation_share) {
                    BotKind::SolverAutomation
                } else {
                    BotKind::SolverBrowser
                }
            } else if r < m.solver + m.skipper {
                BotKind::Skipper
            } else if r < m.solver + m.skipper + m.replayer {
                BotKind::Replayer
            } else {
                BotKind::Thief
            }
        })
        .collect();

    let start = Instant::now();
    let on_sale = start + Duration::from_secs_f64(sc.sale.on_sale_after_secs);
    let on_sale_wall =
        chrono::Utc::now() + chrono::Duration::milliseconds((sc.sale.on_sale_after_secs * 1000.0) as i64);
    let room = sc.admission.room(st.event, QueueMode::Fifo, on_sale_wall);
    edge_admin::put_room(&setup, &st.admin_base, ADMIN_TOKEN, &room)
        .await
        .context("setting the on-sale")?;
    let deadline = on_sale + Duration::from_secs(sc.max_secs);
    let w = Arc::new(World {
        sc: sc.clone(),
        start,
        refused_at: Mutex::default(),
        edge: st.edge_base.clone(),
        event: st.event,
        base_bits: if defences { sc.base_bits() } else { None },
        deadline,
        sold_out: AtomicBool::new(false),
        solvers: Semaphore::new(b.solver_threads),
        farm_solves: AtomicUsize::new(0),
        farm_hashes: Default::default(),
        accounts,
        spent_accounts: Mutex::default(),
        spent_cards: Mutex::default(),
        next_account: AtomicUsize::new(0),
        next_card: AtomicUsize::new(0),
        farm_spent: AtomicBool::new(false),
        tokens: Mutex::default(),
        rings: (0..clients).map(|_| OnceCell::new()).collect(),
    });

    let mut fans = tokio::task::JoinSet::new();
    for (i, token) in fan_tokens.into_iter().enumerate() {
        let (addr, shared) = fan_address(&sc.fans, i);
        let at = start + Duration::from_secs_f64(rng.gen_range(0.0..sc.fans.arrive_secs));
        let plan = FanPlan {
            id: i,
            at,
            addr,
            shared,
            token,
        };
        fans.spawn(fan(w.clone(), client_on(plan.addr)?, plan));
    }
    let mut bots = tokio::task::JoinSet::new();
    for attempt in 0..b.attempts {
        let client = attempt % clients;
        // The front of the queue is what a farm is after: most of it at once.
        let u: f64 = rng.r#gen();
        let at = start + Duration::from_secs_f64(u * u * b.arrive_secs);
        let (addr, http) = bot_http[client % bot_http.len()].clone();
        bots.spawn(bot(
            w.clone(),
            BotPlan {
                client,
                addr,
                kind: kinds[client],
                at,
                http,
            },
        ));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = tokio::spawn(watch_sales(
        w.clone(),
        st.core.pool.clone(),
        seats,
        on_sale,
        stop.clone(),
    ));

    let give_up = deadline + Duration::from_secs(60);
    let mut fan_outs = Vec::new();
    let mut bot_outs = Vec::new();
    while let Ok(Some(r)) = tokio::time::timeout_at(give_up, fans.join_next()).await {
        fan_outs.push(r.context("a fan's task")?);
    }
    while let Ok(Some(r)) = tokio::time::timeout_at(give_up, bots.join_next()).await {
        bot_outs.push(r.context("a bot's task")?);
    }
    if !fans.is_empty() || !bots.is_empty() {
        eprintln!(
            "{} fans and {} bots still busy after the deadline; stopped",
            fans.len(),
            bots.len()
        );
        fans.abort_all();
        bots.abort_all();
    }
    stop.store(true, Ordering::Relaxed);
    let sold_out_secs = watcher.await.context("the sales watcher")?;
    fan_outs.sort_by_key(|f| f.id);
    eprintln!(
        "done after {:.0} s; checking the books...",
        start.elapsed().as_secs_f64()
    );

    let pool = &st.core.pool;
    let unsettled_orders = crate::sim::verify::settle(pool, st.event, 60).await?;
    let sold: i64 =
        sqlx::query_scalar("SELECT count(DISTINCT seat_id) FROM tickets WHERE event_id = $1 AND state = 'valid'")
            .bind(st.event)
            .fetch_one(pool)
            .await?;
    let bot_seats: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT t.seat_id) FROM tickets t JOIN orders o ON o.id = t.order_id
         WHERE t.event_id = $1 AND t.state = 'valid' AND o.fan_id LIKE $2",
    )
    .bind(st.event)
    .bind(format!("{BOT_PREFIX}-%"))
    .fetch_one(pool)
    .await?;
    let oversold: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT seat_id FROM tickets WHERE event_id = $1 AND state = 'valid'
                                GROUP BY seat_id HAVING count(*) > 1) d",
    )
    .bind(st.event)
    .fetch_one(pool)
    .await?;
    let charge_problems = books(pool, &st.sandbox.url, st.event).await?;
    let metrics = edge_metrics(&setup, &st.admin_base).await;
    Ok(FarmRun {
        defences,
        fans: fan_outs,
        bots: bot_outs,
        seats,
        sold,
        bot_seats,
        oversold,
        charge_problems,
        unsettled_orders,
        sold_out_secs,
        metrics,
        elapsed_secs: 0.0,
        farm_solves: w.farm_solves.load(Ordering::Relaxed),
        farm_hashes: w.farm_hashes.load(Ordering::Relaxed),
        refused_at: locks::lock(&w.refused_at).clone(),
    })
}

/// Every half second: seats sold; once all are, the sale is over for
/// everyone still waiting. Returns the seconds from the on-sale to then.
async fn watch_sales(
    w: Arc<World>,
    pool: sqlx::PgPool,
    seats: i64,
    on_sale: Instant,
    stop: Arc<AtomicBool>,
) -> Option<f64> {
    while !stop.load(Ordering::Relaxed) {
        let sold: i64 = sqlx::query_scalar("SELECT count(*) FROM tickets WHERE event_id = $1 AND state = 'valid'")
            .bind(w.event)
            .fetch_one(&pool)
            .await
            .unwrap_or(0);
        if sold >= seats {
            w.sold_out.store(true, Ordering::Relaxed);
            return Some(Instant::now().saturating_duration_since(on_sale).as_secs_f64());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    None
}

/// The processor's books against ours: every kept charge has its order
/// confirmed with all its tickets, and no order kept two charges.
async fn books(pool: &sqlx::PgPool, sandbox: &str, event: i64) -> anyhow::Result<Vec<String>> {
    let intents: Value = reqwest::Client::new()
        .get(format!("{sandbox}/v1/payment_intents"))
        .bearer_auth(API_KEY)
        .send()
        .await?
        .json()
        .await
        .context("the sandbox's intents")?;
    let orders: Vec<(uuid::Uuid, String, i32, i64)> = sqlx::query_as(
        "SELECT o.id, o.state, cardinality(o.seat_ids),
                (SELECT count(*) FROM tickets t WHERE t.order_id = o.id AND t.state = 'valid')
         FROM orders o WHERE o.event_id = $1",
    )
    .bind(event)
    .fetch_all(pool)
    .await?;
    let by_id: HashMap<String, &(uuid::Uuid, String, i32, i64)> = orders.iter().map(|o| (o.0.to_string(), o)).collect();
    let mut problems = Vec::new();
    let mut kept: HashMap<String, u32> = HashMap::new();
    for intent in intents["data"].as_array().map(Vec::as_slice).unwrap_or_default() {
        let amount = intent["amount_cents"].as_i64().unwrap_or(0);
        if intent["status"] != "succeeded" || intent["amount_refunded_cents"].as_i64().unwrap_or(0) >= amount {
            continue;
        }
        let id = intent["metadata"]["order_id"].as_str().unwrap_or_default().to_owned();
        match by_id.get(&id) {
            Some(o) if o.1 == "confirmed" && o.3 == i64::from(o.2) => {}
            Some(o) => problems.push(format!(
                "order {id}: charged, state {}, {} of {} tickets",
                o.1, o.3, o.2
            )),
            None => problems.push(format!("intent {} names no order of this event", intent["id"])),
        }
        *kept.entry(id).or_default() += 1;
    }
    problems.extend(
        kept.iter()
            .filter(|(_, n)| **n > 1)
            .map(|(id, n)| format!("order {id} kept {n} charges")),
    );
    Ok(problems)
}

/// The edge's defence and rate-limit counters, as Prometheus lines.
async fn edge_metrics(http: &reqwest::Client, admin: &str) -> Vec<String> {
    let Ok(r) = http.get(format!("{admin}/metrics")).send().await else {
        return vec!["(the edge's metrics could not be read)".into()];
    };
    let text = r.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| {
            !l.starts_with('#')
                && [
                    "usher_challenges_total",
                    "usher_defence_actions_total",
                    "usher_replays_total",
                    "usher_places_taken_back_total",
                    "usher_fan_places_total",
                    "usher_rate_limited_total",
                ]
                .iter()
                .any(|m| l.starts_with(m))
        })
        .map(str::to_owned)
        .collect()
}

fn pct(n: usize, of: usize) -> String {
    if of == 0 {
        "-".into()
    } else {
        format!("{:.2}%", n as f64 * 100.0 / of as f64)
    }
}

/// The Markdown report of both runs.
pub fn report(sc: &FarmScenario, on: &FarmRun, off: Option<&FarmRun>, command: &str) -> String {
    let mut s = String::new();
    let runs: Vec<&FarmRun> = std::iter::once(on).chain(off).collect();
    let _ = writeln!(s, "# Bot farm: {}\n", sc.name);
    let _ = writeln!(s, "{}\n", sc.description);
    let _ = writeln!(s, "Command: `{command}`\n");
    let b = &sc.bots;
    let _ = writeln!(
        s,
        "{} fans ({} on {} shared /24s, the rest one /24 each) arriving over {} s; {} bot join attempts \
         ({} per bot client) from {} /24s of {} addresses, over {} s; {} seats, at most {} per account and card; \
         the farm has {} accounts, {} cards, {} solver thread(s) and solves puzzles up to {} bits. \
         Admission starts {} s after the room opens, {} a minute. The bot model is in \
         `loadtests/scenarios/botfarm.toml`.\n",
        sc.fans.count,
        sc.fans.shared_networks * sc.fans.per_shared_network,
        sc.fans.shared_networks,
        sc.fans.arrive_secs,
        b.attempts,
        b.joins_per_client,
        b.networks,
        b.addresses_per_network,
        b.arrive_secs,
        sc.venue.generated_seats(),
        sc.sale.max_seats_per_fan,
        b.accounts,
        b.cards,
        b.solver_threads,
        b.max_solve_bits,
        sc.sale.on_sale_after_secs,
        sc.admission.admit_per_minute,
    );
    let head: Vec<&str> = runs
        .iter()
        .map(|r| if r.defences { "defences on" } else { "defences off" })
        .collect();
    let _ = writeln!(
        s,
        "## Summary\n\n| | {} |\n|---|{}",
        head.join(" | "),
        "---|".repeat(runs.len())
    );
    let row = |s: &mut String, name: &str, f: &dyn Fn(&FarmRun) -> String| {
        let cells: Vec<String> = runs.iter().map(|r| f(r)).collect();
        let _ = writeln!(s, "| {name} | {} |", cells.join(" | "));
    };
    row(&mut s, "seats sold (of those best available offers)", &|r| {
        format!("{} of {}", r.sold, r.seats)
    });
    row(&mut s, "seats bought by bots", &|r| {
        format!("{} ({:.2}%)", r.bot_seats, r.bot_share() * 100.0)
    });
    row(&mut s, "seats bought by fans", &|r| format!("{}", r.sold - r.bot_seats));
    row(&mut s, "fans who bought", &|r| {
        format!("{}", r.fans.iter().filter(|f| f.seats > 0).count())
    });
    row(&mut s, "fans challenged harder", &|r| {
        let n = r.fans.iter().filter(|f| f.harder).count();
        format!("{n} ({})", pct(n, r.fans.len()))
    });
    row(&mut s, "fans deferred", &|r| {
        let n = r.fans.iter().filter(|f| f.deferred).count();
        format!("{n} ({})", pct(n, r.fans.len()))
    });
    row(&mut s, "fans blocked", &|r| {
        let n = r.fans.iter().filter(|f| f.blocked).count();
        format!("{n} ({})", pct(n, r.fans.len()))
    });
    row(&mut s, "fans wrongly challenged (any of the three)", &|r| {
        format!(
            "{} ({})",
            r.fan_false_positives(),
            pct(r.fan_false_positives(), r.fans.len())
        )
    });
    row(&mut s, "sold out after the on-sale", &|r| {
        r.sold_out_secs.map_or("not sold out".into(), |t| format!("{t:.1} s"))
    });
    row(&mut s, "puzzles the farm solved (hashes)", &|r| {
        format!("{} ({:.1} M)", r.farm_solves, r.farm_hashes as f64 / 1e6)
    });
    row(&mut s, "seats sold twice", &|r| format!("{}", r.oversold));
    row(&mut s, "charge problems", &|r| format!("{}", r.charge_problems.len()));
    row(&mut s, "run time (stack included)", &|r| {
        format!("{:.0} s", r.elapsed_secs)
    });
    let missed = on.missed_goals(&sc.goals);
    let _ = writeln!(
        s,
        "\nGoals with defences on (bots under {:.1}% of seats, fans wrongly challenged under {:.1}%): {}\n",
        sc.goals.max_bot_share * 100.0,
        sc.goals.max_fan_false_positives * 100.0,
        if missed.is_empty() {
            "met.".to_owned()
        } else {
            format!("**missed**: {}.", missed.join("; "))
        }
    );
    for r in &runs {
        let _ = writeln!(
            s,
            "## Bots by kind, defences {}\n\n| kind | attempts | blocked | deferred | refused | got places | places taken back | admitted | bought | seats |\n|---|---|---|---|---|---|---|---|---|---|",
            if r.defences { "on" } else { "off" }
        );
        let mut by: BTreeMap<BotKind, Vec<&BotOut>> = BTreeMap::new();
        for o in &r.bots {
            by.entry(o.kind).or_default().push(o);
        }
        for (kind, v) in &by {
            let c = |f: &dyn Fn(&BotOut) -> bool| v.iter().filter(|o| f(o)).count();
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                kind.name(),
                v.len(),
                c(&|o| o.blocked),
                c(&|o| o.deferred),
                c(&|o| !o.place && !o.blocked),
                c(&|o| o.place),
                c(&|o| o.lost_place),
                c(&|o| o.admitted),
                c(&|o| o.seats > 0),
                v.iter().map(|o| o.seats).sum::<u32>(),
            );
        }
        let mut ends: BTreeMap<(&str, &str), usize> = BTreeMap::new();
        for o in &r.bots {
            *ends.entry((o.kind.name(), o.end.as_str())).or_default() += 1;
        }
        let _ = writeln!(s, "\nHow bot attempts ended:\n");
        for ((kind, end), n) in &ends {
            let _ = writeln!(s, "- {kind}: {end}: {n}");
        }
        if r.defences {
            let through: Vec<String> = r
                .bots
                .iter()
                .filter(|o| o.seats > 0)
                .map(|o| {
                    format!(
                        "- {} client {} on {}: place at {} ms, {} seats; the edge last blocked or deferred that address at {}",
                        o.kind.name(),
                        o.client,
                        o.addr,
                        o.placed_ms.map_or("-".into(), |t| t.to_string()),
                        o.seats,
                        r.refused_at.get(&o.addr).map_or("no time (never)".into(), |t| format!("{t} ms")),
                    )
                })
                .collect();
            if !through.is_empty() {
                let _ = writeln!(s, "\nBots that bought seats:\n\n{}", through.join("\n"));
            }
        }
        let mut fan_ends: BTreeMap<&str, usize> = BTreeMap::new();
        for f in &r.fans {
            *fan_ends.entry(f.end.as_str()).or_default() += 1;
        }
        let _ = writeln!(s, "\nHow fans ended:\n");
        for (end, n) in &fan_ends {
            let _ = writeln!(s, "- {end}: {n}");
        }
        let touched: Vec<String> = r
            .fans
            .iter()
            .filter(|f| f.false_positive())
            .take(20)
            .map(|f| {
                format!(
                    "fan {}{}: max {} bits{}{}",
                    f.id,
                    if f.shared_network { " (shared network)" } else { "" },
                    f.max_bits,
                    if f.deferred { ", deferred" } else { "" },
                    if f.blocked { ", blocked" } else { "" }
                )
            })
            .collect();
        if !touched.is_empty() {
            let _ = writeln!(s, "\nFans the defences touched (first 20): {}", touched.join("; "));
        }
        let _ = writeln!(s, "\nThe edge's counters:\n\n```");
        for m in &r.metrics {
            let _ = writeln!(s, "{m}");
        }
        let _ = writeln!(s, "```\n");
        let v = r.violations();
        if !v.is_empty() {
            let _ = writeln!(s, "**Invariants broken**: {}\n", v.join("; "));
        }
    }
    s
}
