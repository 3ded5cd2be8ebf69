//! Assembling and running the service: connect, build state, start the
//! background workers (seat-change feed, reaper, checkout reconciliation,
//! outbox delivery, price recalculation, waitlist offers),
//! serve until told to stop.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::checkout::PaymentProvider;
use crate::checkout::sandbox::SandboxProvider;
use crate::checkout::stripe::StripeProvider;
use crate::checkout::timed::TimedProvider;
use crate::checkout::{CheckoutService, reconcile};
use crate::config::{Config, ProviderKind};
use crate::db;
use crate::http::{self, AppState};
use crate::identity::{Admission, Identity};
use crate::inventory::availability::Readings;
use crate::inventory::{HoldService, SeatFeed, WaitingRooms, reaper};
use crate::metrics::Metrics;
use crate::metrics::scrape::Sources;
use crate::portal::EdgeAdmin;
use crate::tickets::TicketSigner;
use crate::venues::SeatMaps;

/// How often the pricing job looks for events due a recalculation (each
/// event's own interval decides when one is due).
const PRICING_TICK: Duration = Duration::from_secs(1);

/// A running server: its address, and how to stop it.
pub struct Running {
    pub addr: std::net::SocketAddr,
    /// The admin listener serving `/metrics`, when `http.metrics_listen` is set.
    pub metrics_addr: Option<std::net::SocketAddr>,
    pub state: AppState,
    stop: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
    workers: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops accepting, ends open streams, waits for in-flight requests.
    pub async fn shutdown(self) -> std::io::Result<()> {
        let _ = self.stop.send(true);
        for w in &self.workers {
            w.abort();
        }
        self.server.await.unwrap_or(Ok(()))
    }

    /// Waits until the server ends by itself (it does not, unless it fails).
    pub async fn wait(self) -> std::io::Result<()> {
        self.server.await.unwrap_or(Ok(()))
    }

    pub fn stopper(&self) -> watch::Sender<bool> {
        self.stop.clone()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("identity: {0}")]
    Identity(#[from] crate::identity::IdentitySetupError),
    #[error("payment provider: {0}")]
    Payments(String),
    #[error("tickets: {0}")]
    Tickets(String),
    #[error("notifications: {0}")]
    Mail(String),
    #[error("edge admin API client: {0}")]
    Edge(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// Connects, builds everything and starts serving on `config.http.listen`
/// (port 0 picks a free port; see `Running::addr`).
pub async fn start(config: Config) -> Result<Running, StartError> {
    let identity = Identity::from_config(&config.identity)?;
    let admission = Admission::from_config(&config.admission)?;
    let ticket_signer = ticket_signer(&config)?;
    // Metrics are kept only when someone can read them.
    let metrics = match config.http.metrics_listen {
        Some(_) => Metrics::on(),
        None => Metrics::default(),
    };
    let provider: Arc<dyn PaymentProvider> = match config.payments.provider {
        ProviderKind::Stripe => {
            Arc::new(StripeProvider::new(&config.payments).map_err(|e| StartError::Payments(e.to_string()))?)
        }
        ProviderKind::Sandbox => {
            Arc::new(SandboxProvider::new(&config.payments).map_err(|e| StartError::Payments(e.to_string()))?)
        }
    };
    // Timed (when metrics are on) and traced (always).
    let provider: Arc<dyn PaymentProvider> = Arc::new(TimedProvider::new(provider, metrics.clone()));
    let edge = match &config.edge {
        Some(e) => Some(EdgeAdmin::new(e).map_err(|e| StartError::Edge(e.to_string()))?),
        None => None,
    };
    let pool = db::connect(&config.database).await?;
    let probe = db::probe(&config.database)?;
    let reads = db::replicas(&config.database)?.unwrap_or_else(|| pool.clone());
    let listener = TcpListener::bind(config.http.listen)
        .await
        .map_err(|source| StartError::Listen {
            addr: config.http.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Listen {
        addr: config.http.listen,
        source,
    })?;

    let maps = SeatMaps::new(pool.clone());
    // One reading of an event's seats at a time serves fans' availability,
    // best available's view and the seat feed alike.
    let readings = Readings::new(pool.clone()).with_metrics(metrics.clone());
    let feed = SeatFeed::new(
        pool.clone(),
        readings.clone(),
        Duration::from_millis(config.feed.poll_interval_ms),
    );
    let rooms = WaitingRooms::default();
    let holds = HoldService::new(
        pool.clone(),
        maps.clone(),
        readings.clone(),
        rooms.clone(),
        &config.holds,
    )
    .with_metrics(metrics.clone());
    let checkout =
        CheckoutService::new(pool.clone(), provider, &config.payments, &config.checkout).with_metrics(metrics.clone());
    let waitlist = crate::waitlist::Waitlist::new(
        pool.clone(),
        maps.clone(),
        readings.clone(),
        config.holds.max_seats_per_request,
    );
    let (stop, shutdown) = watch::channel(false);
    let config = Arc::new(config);
    let state = AppState {
        config: config.clone(),
        pool: pool.clone(),
        probe,
        reads,
        identity: Arc::new(identity),
        admission: Arc::new(admission),
        maps,
        holds,
        feed,
        readings,
        checkout: checkout.clone(),
        ticket_signer: Arc::new(ticket_signer),
        edge,
        shutdown: shutdown.clone(),
        metrics: metrics.clone(),
        waitlist,
    };

    let mut workers = Vec::new();
    if let Some(edge) = &state.edge {
        workers.push(tokio::spawn(read_rooms(edge.clone(), rooms.clone())));
    }
    if config.reaper.enabled {
        workers.push(tokio::spawn(reaper::run(pool.clone(), config.reaper.clone())));
    }
    if config.notifications.enabled {
        let deliverer = crate::outbox::deliver::Deliverer::new(
            pool.clone(),
            config.notifications.clone(),
            state.ticket_signer.clone(),
        )
        .map_err(|e| StartError::Mail(e.to_string()))?;
        workers.push(tokio::spawn(crate::outbox::deliver::run(deliverer)));
    }
    if config.pricing.recalculate {
        let queue: Arc<dyn crate::pricing::QueueSource> = match &state.edge {
            Some(edge) => Arc::new(edge.clone()),
            None => Arc::new(crate::pricing::NoQueue),
        };
        let runner = crate::pricing::Runner::new(
            pool.clone(),
            Arc::new(crate::pricing::DemandRule),
            queue,
            config.pricing.interval_secs,
        )
        .with_metrics(metrics.clone());
        workers.push(tokio::spawn(crate::pricing::runner::run(runner, PRICING_TICK)));
    }
    if config.waitlist.offers {
        let offerer = crate::waitlist::offers::Offerer::new(
            pool.clone(),
            state.maps.clone(),
            state.readings.clone(),
            config.waitlist.clone(),
        );
        workers.push(tokio::spawn(crate::waitlist::offers::run(offerer)));
    }
    if config.checkout.reconcile {
        workers.push(tokio::spawn(reconcile::run(
            checkout,
            pool.clone(),
            config.checkout.clone(),
        )));
    }
    let metrics_addr = match config.http.metrics_listen {
        Some(at) => {
            let sources = Sources {
                primary: pool.clone(),
                reads: (config.database.read_url.is_some()).then(|| state.reads.clone()),
                backlog: db::for_metrics(&config.database)?,
            };
            let (handle, addr) =
                serve_metrics(at, http::metrics::admin_router(metrics, sources), shutdown.clone()).await?;
            workers.push(handle);
            Some(addr)
        }
        None => None,
    };

    let app = http::router(state.clone());
    let mut on_stop = shutdown;
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = on_stop.wait_for(|stop| *stop).await;
            })
            .await
    });
    tracing::info!(%addr, "booking-core listening");
    Ok(Running {
        addr,
        metrics_addr,
        state,
        stop,
        server,
        workers,
    })
}

/// Serves the admin router on its own listener until the stop signal.
async fn serve_metrics(
    at: std::net::SocketAddr,
    router: axum::Router,
    mut on_stop: watch::Receiver<bool>,
) -> Result<(JoinHandle<()>, std::net::SocketAddr), StartError> {
    let listener = TcpListener::bind(at)
        .await
        .map_err(|source| StartError::Listen { addr: at, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| StartError::Listen { addr: at, source })?;
    tracing::info!(%addr, "booking-core metrics listening");
    let handle = tokio::spawn(async move {
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = on_stop.wait_for(|stop| *stop).await;
            })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "the metrics listener failed");
        }
    });
    Ok((handle, addr))
}

/// How often the core reads the edge's list of waiting rooms: a room opened
/// at the edge binds the core's holds within this long (the edge itself
/// checks admission from the room's first moment).
const ROOMS_EVERY: Duration = Duration::from_secs(1);

/// Keeps `rooms` to the edge's list. A failed read keeps the last list: a
/// room is never forgotten because the edge could not be asked.
async fn read_rooms(edge: EdgeAdmin, rooms: WaitingRooms) {
    let mut tick = tokio::time::interval(ROOMS_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match edge.room_events().await {
            Ok(events) => rooms.replace(events),
            Err(e) => tracing::debug!(error = %e, "could not read the edge's waiting rooms; keeping the last list"),
        }
    }
}

/// The key that signs ticket codes: from its file, or (dev only, checked by
/// the config) a throwaway one; and the earlier keys a rotation still accepts.
fn ticket_signer(config: &Config) -> Result<TicketSigner, StartError> {
    let t = &config.tickets;
    let failed = |e: &dyn std::fmt::Display| StartError::Tickets(e.to_string());
    let mut signer = match &t.signing_key_file {
        Some(path) => {
            let pem = usher_shared::read_pem(path).map_err(|e| failed(&e))?;
            TicketSigner::from_pem(&t.kid, &pem).map_err(|e| failed(&e))?
        }
        None => {
            tracing::warn!("tickets.signing_key_file is not set: ticket codes are signed with a throwaway key");
            TicketSigner::ephemeral(&t.kid)
        }
    };
    for key in &t.previous_keys {
        let pem = key.read_pem().map_err(|e| failed(&e))?;
        signer = signer
            .with_previous(&key.kid, &pem)
            .map_err(|e| failed(&format!("tickets.previous_keys[{}]: {e}", key.kid)))?;
    }
    Ok(signer)
}
