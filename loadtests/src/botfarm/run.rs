//! One run of the farm and the fans against a fresh stack (the
//! simulator's): fans and the farm's accounts signed in, the on-sale set
//! through the edge's admin API, every participant's task started at its
//! arrival, the sales watched until sold out, then the records checked.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{OnceCell, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use usher_shared::admin::QueueMode;
use usher_shared::locks;

use super::books::{edge_metrics, sales, seats_for_sale};
use super::bot::{BotPlan, bot};
use super::client::{BOT_PREFIX, FAN_PREFIX};
use super::fan::{FanPlan, fan};
use super::outcome::{BotKind, BotOut, FanOut, FarmRun};
use super::scenario::{FanCrowd, Farm, FarmScenario};
use super::world::{Stock, World};
use crate::edge_admin;
use crate::sim::fan::client_on;
use crate::sim::stack::{ADMIN_TOKEN, Bins, SimStack};
use crate::sim::verify::valid_tickets;

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
    let seats = seats_for_sale(&st.core.pool, st.event).await?;
    eprintln!(
        "signing in {} fans and {} bot accounts...",
        sc.fans.count, sc.bots.accounts
    );
    let fan_tokens = crate::fans::sign_in_many(&setup, &st.core.base, FAN_PREFIX, sc.fans.count).await?;
    let accounts = crate::fans::sign_in_many(&setup, &st.core.base, BOT_PREFIX, sc.bots.accounts).await?;

    let b = &sc.bots;
    let mut rng = StdRng::seed_from_u64(sc.seed);
    let clients = b.attempts.div_ceil(b.joins_per_client);
    let kinds = bot_kinds(b, clients, &mut rng);

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
        accounts_used: Stock::of(b.accounts),
        cards_used: Stock::of(b.cards),
        farm_spent: AtomicBool::new(false),
        tokens: Mutex::default(),
        rings: (0..clients).map(|_| OnceCell::new()).collect(),
    });

    let mut fans = JoinSet::new();
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
        fans.spawn(fan(w.clone(), client_on(plan.addr).build()?, plan));
    }
    let bots = spawn_bots(&w, b, &kinds, &mut rng)?;
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = tokio::spawn(watch_sales(
        w.clone(),
        st.core.pool.clone(),
        seats,
        on_sale,
        stop.clone(),
    ));

    let (mut fan_outs, bot_outs) = finish(fans, bots, deadline + Duration::from_secs(60)).await?;
    stop.store(true, Ordering::Relaxed);
    let sold_out_secs = watcher.await.context("the sales watcher")?;
    fan_outs.sort_by_key(|f| f.id);
    eprintln!(
        "done after {:.0} s; checking the books...",
        start.elapsed().as_secs_f64()
    );

    let sales = sales(&st.core.pool, (&st.sandbox.url, crate::sandbox::API_KEY), st.event).await?;
    let metrics = edge_metrics(&setup, &st.admin_base).await;
    Ok(FarmRun {
        defences,
        fans: fan_outs,
        bots: bot_outs,
        seats,
        sold: sales.sold,
        bot_seats: sales.bot_seats,
        oversold: sales.oversold,
        charge_problems: sales.charge_problems,
        unsettled_orders: sales.unsettled_orders,
        sold_out_secs,
        metrics,
        elapsed_secs: 0.0,
        farm_solves: w.farm_solves.load(Ordering::Relaxed),
        farm_hashes: w.farm_hashes.load(Ordering::Relaxed),
        refused_at: locks::lock(&w.refused_at).clone(),
    })
}

/// Each bot client's kind, drawn by the mix.
fn bot_kinds(b: &Farm, clients: usize, rng: &mut StdRng) -> Vec<BotKind> {
    let m = &b.mix;
    (0..clients)
        .map(|_| {
            let r: f64 = rng.r#gen();
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
        .collect()
}

/// Every bot join attempt's task, each client on one of the farm's
/// addresses (clients share them: a farm has few networks).
fn spawn_bots(w: &Arc<World>, b: &Farm, kinds: &[BotKind], rng: &mut StdRng) -> anyhow::Result<JoinSet<BotOut>> {
    let bot_http: Vec<(Ipv4Addr, reqwest::Client)> = (0..b.networks)
        .flat_map(|n| (0..b.addresses_per_network).map(move |a| Ipv4Addr::new(127, 250, n, 1 + a)))
        .map(|a| client_on(a).build().map(|c| (a, c)))
        .collect::<Result<_, _>>()?;
    let mut bots = JoinSet::new();
    for attempt in 0..b.attempts {
        let client = attempt % kinds.len();
        // The front of the queue is what a farm is after: most of it at once.
        let u: f64 = rng.r#gen();
        let at = w.start + Duration::from_secs_f64(u * u * b.arrive_secs);
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
    Ok(bots)
}

/// Every participant's end, up to `give_up`; those still busy then are
/// stopped.
async fn finish(
    mut fans: JoinSet<FanOut>,
    mut bots: JoinSet<BotOut>,
    give_up: Instant,
) -> anyhow::Result<(Vec<FanOut>, Vec<BotOut>)> {
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
    Ok((fan_outs, bot_outs))
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
        // A failed read counts as nothing sold yet: the next one decides.
        let sold = valid_tickets(&pool, w.event).await.unwrap_or(0);
        if sold >= seats {
            w.sold_out.store(true, Ordering::Relaxed);
            return Some(Instant::now().saturating_duration_since(on_sale).as_secs_f64());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    None
}
