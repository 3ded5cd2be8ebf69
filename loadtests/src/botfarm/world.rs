//! What every participant of a farm's run shares: the clock and the
//! deadline, whether the sale is over, the farm's compute, its stock of
//! accounts and cards, the queue tokens its clients got (what thieves
//! copy), and when the edge last refused each address.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use tokio::sync::{OnceCell, Semaphore};
use tokio::time::Instant;
use usher_shared::locks;

use super::scenario::FarmScenario;

pub struct World {
    pub sc: FarmScenario,
    pub start: Instant,
    /// Per address, when the edge last blocked or deferred one of its joins.
    pub refused_at: Mutex<HashMap<Ipv4Addr, u32>>,
    pub edge: String,
    pub event: i64,
    /// The puzzle's base difficulty when the defences are on: a fan asked
    /// for more was challenged harder.
    pub base_bits: Option<u8>,
    pub deadline: Instant,
    pub sold_out: AtomicBool,
    /// The farm's compute.
    pub solvers: Semaphore,
    pub farm_solves: AtomicUsize,
    pub farm_hashes: AtomicU64,
    /// The farm's accounts (fan tokens); which are spent is `accounts_used`.
    pub accounts: Vec<String>,
    pub accounts_used: Stock,
    pub cards_used: Stock,
    /// The farm has no account or no card left to buy with.
    pub farm_spent: AtomicBool,
    /// Queue tokens bot clients got, by client: what thieves copy.
    pub tokens: Mutex<Vec<(usize, String)>>,
    /// Per bot client: the one solution its replays share.
    pub rings: Vec<OnceCell<Option<String>>>,
}

impl World {
    pub fn now_ms(&self) -> u32 {
        self.start.elapsed().as_millis() as u32
    }

    pub fn over(&self) -> bool {
        Instant::now() >= self.deadline || self.sold_out.load(Ordering::Relaxed)
    }

    pub fn refused(&self, addr: Ipv4Addr) {
        let now = self.now_ms();
        locks::lock(&self.refused_at).insert(addr, now);
    }

    /// The next account or card of `stock` not yet at its limit; none
    /// left marks the farm spent.
    pub fn take(&self, stock: &Stock) -> Option<usize> {
        let taken = stock.take();
        if taken.is_none() {
            self.farm_spent.store(true, Ordering::Relaxed);
        }
        taken
    }

    /// Account or card `i` of `stock` reached its limit.
    pub fn spend(&self, stock: &Stock, i: usize) {
        if stock.spend(i) {
            self.farm_spent.store(true, Ordering::Relaxed);
        }
    }
}

/// The farm's accounts or cards: handed out in turn, each until the core
/// says it reached its limit.
pub struct Stock {
    size: usize,
    next: AtomicUsize,
    spent: Mutex<HashSet<usize>>,
}

impl Stock {
    pub fn of(size: usize) -> Stock {
        Stock {
            size,
            next: AtomicUsize::new(0),
            spent: Mutex::default(),
        }
    }

    fn take(&self) -> Option<usize> {
        let spent = locks::lock(&self.spent);
        if spent.len() >= self.size {
            return None;
        }
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed) % self.size;
            if !spent.contains(&i) {
                return Some(i);
            }
        }
    }

    /// Marks `i` spent; true once all are.
    fn spend(&self, i: usize) -> bool {
        let mut spent = locks::lock(&self.spent);
        spent.insert(i);
        spent.len() >= self.size
    }
}
