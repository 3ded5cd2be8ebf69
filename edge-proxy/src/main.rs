//! The edge-proxy binary: loads and checks the configuration, then runs the
//! Pingora proxy, the admission ticker, upstream health checks and the admin
//! API until told to stop (SIGINT fast, SIGTERM gracefully).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use arc_swap::ArcSwapOption;
use clap::Parser;
use edge_proxy::admin::Admin;
use edge_proxy::config::EdgeConfig;
use edge_proxy::limits::Limits;
use edge_proxy::metrics::Metrics;
use edge_proxy::proxy::Edge;
use edge_proxy::queue::Rooms;
use edge_proxy::queue::ticker::Ticker;
use edge_proxy::rules::{Bypasses, Protection};
use edge_proxy::state::{Bucket, EdgeState};
use edge_proxy::tokens::EdgeTokens;
use pingora::listeners::{DEFAULT_L4_WRITE_BUFFER_SIZE, L4BufferSettings, ListenerConfig};
use pingora::server::Server;
use pingora::server::configuration::ServerConf;
use pingora::services::background::background_service;

#[derive(Parser)]
#[command(name = "edge-proxy", about = "Usher's edge: reverse proxy and waiting room")]
struct Cli {
    /// TOML configuration; USHER_EDGE__<SECTION>__<KEY> and REDIS_URL override it.
    #[arg(long, env = "USHER_EDGE_CONFIG", default_value = "config/edge-proxy.toml")]
    config: PathBuf,
    /// Validate the configuration and exit.
    #[arg(long)]
    check: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Recompute a lottery's drawn order from its published seed: one line
    /// per place, "place ticket".
    LotteryOrder {
        /// The seed the edge revealed (hex).
        #[arg(long)]
        seed: String,
        /// How many tickets took part (1..=entrants).
        #[arg(long)]
        entrants: u64,
    },
    /// Solve a proof-of-work puzzle: reads the edge's 428 answer (JSON with
    /// `challenge` and `bits`) on standard input and prints the value for
    /// the `usher-pow` header (for curl users and scripts).
    Solve,
    /// Run the local CAPTCHA test provider: `POST /token` hands out a token
    /// (its "widget"), `POST /siteverify` checks one once.
    CaptchaSandbox {
        #[arg(long, default_value = "127.0.0.1:8003")]
        listen: std::net::SocketAddr,
        /// The secret the edge sends with each verify call.
        #[arg(long, env = "USHER_CAPTCHA_SECRET")]
        secret: String,
    },
}

// A faster allocator than glibc's under many small, short-lived allocations
// across threads, which is what a proxy does all day.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::LotteryOrder { seed, entrants }) = &cli.command {
        use std::io::Write;
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        writeln!(out, "# seed_hash {}", edge_proxy::queue::lottery::seed_hash(seed))?;
        for (k, ticket) in edge_proxy::queue::lottery::order(seed, *entrants).iter().enumerate() {
            writeln!(out, "{} {ticket}", k + 1)?;
        }
        return Ok(());
    }
    if let Some(Command::Solve) = &cli.command {
        let answer: serde_json::Value =
            serde_json::from_reader(std::io::stdin().lock()).context("reading the edge's answer (JSON) on stdin")?;
        let (Some(challenge), Some(bits)) = (answer["challenge"].as_str(), answer["bits"].as_u64()) else {
            anyhow::bail!("no challenge in that answer: {answer}");
        };
        let bits = u8::try_from(bits).context("bits")?;
        println!("{challenge}:{}", edge_proxy::defence::pow::solve(challenge, bits));
        return Ok(());
    }
    if let Some(Command::CaptchaSandbox { listen, secret }) = &cli.command {
        tracing_subscriber::fmt().init();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        tracing::info!(%listen, "CAPTCHA test provider starting");
        runtime.block_on(edge_proxy::defence::captcha::run_sandbox(*listen, secret))?;
        return Ok(());
    }
    let config = EdgeConfig::load(&cli.config).with_context(|| format!("configuration {}", cli.config.display()))?;
    // Logs and traces; the exporter sends every second, and the process
    // ends in `run_forever`, so the guard is simply kept.
    let _telemetry = usher_shared::telemetry::init(usher_shared::telemetry::Settings {
        service: "edge-proxy",
        format: config.log.format,
        filter: &config.log.filter,
        trace: &config.trace,
    })
    .context("setting up logs and traces")?;
    let tokens = EdgeTokens::from_config(&config.tokens).context("loading the edge's signing key")?;
    let tallies = Arc::new(edge_proxy::limits::tally::Tallies::new(&config.rate_limits.shared));
    let defences = edge_proxy::defence::Defences::new(&config.defence, tokens.shared_secret(), tallies.clone())
        .context("setting up the bot defences")?;
    if cli.check {
        println!("configuration ok");
        return Ok(());
    }

    let health = background_service(
        "upstream health checks",
        edge_proxy::upstreams::balancer(&config.upstream),
    );

    let state = Arc::new(EdgeState {
        rooms: Rooms::from_settings(&config.events),
        protection: Protection::new(&config.protection),
        bypass: Bypasses::new(&config.bypass),
        limits: Limits::new(&config.rate_limits, tallies),
        defences,
        fail_open: Mutex::new(Bucket::new(config.redis.fail_open_per_minute)),
        tokens,
        store: ArcSwapOption::empty(),
        metrics: Metrics::default(),
        core_health: Default::default(),
        cache: edge_proxy::cache::ResponseCache::new(
            config.cache.max_mb * 1024 * 1024,
            config.cache.max_entry_kb * 1024,
        ),
        upstreams: health.task(),
        config_path: cli.config.clone(),
        config: config.clone(),
    });

    let conf = ServerConf {
        threads: config.listen.threads,
        // One runtime per worker thread, like nginx's workers: a connection
        // stays on its thread, with no cross-thread wake-ups per request.
        work_stealing: false,
        grace_period_seconds: Some(config.listen.grace_period_secs),
        graceful_shutdown_timeout_seconds: Some(config.listen.grace_period_secs),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let mut proxy = pingora::proxy::http_proxy_service(&server.configuration, Edge { state: state.clone() });
    if let Some(app) = proxy.app_logic_mut() {
        // HTTP/2 without TLS (h2c, by prior knowledge) on the plain listeners,
        // for clients and load balancers in front that speak it.
        let mut options = pingora::apps::HttpServerOptions::default();
        options.h2c = true;
        app.server_options = Some(options);
    }
    // Pingora reads each client through a 64 KiB buffer by default; a
    // waiting fan's open stream would carry it for the whole wait. Requests
    // here are small (nginx reads headers into 1 KiB), so a few KiB do.
    let buffers = L4BufferSettings::new(config.listen.read_buffer_bytes, DEFAULT_L4_WRITE_BUFFER_SIZE);
    for addr in &config.listen.http {
        proxy.add_listener(ListenerConfig::tcp(addr.to_string()).l4_buffer(buffers));
    }
    if let Some(tls) = &config.listen.tls {
        let mut settings = pingora::listeners::tls::TlsSettings::intermediate(
            &tls.cert_file.display().to_string(),
            &tls.key_file.display().to_string(),
        )
        .context("TLS certificate and key")?;
        settings.enable_h2();
        proxy.add_listener(
            ListenerConfig::tcp(tls.addr.to_string())
                .tls(settings)
                .l4_buffer(buffers),
        );
    }
    server.add_service(proxy);
    server.add_service(health);
    server.add_service(background_service("admission ticker", Ticker { state: state.clone() }));
    server.add_service(background_service(
        "shared rate-limit counts",
        edge_proxy::limits::sync::SharedCountsSync { state: state.clone() },
    ));
    server.add_service(background_service(
        "position streams",
        edge_proxy::fans::stream_listener::Streams { state: state.clone() },
    ));
    server.add_service(background_service("admin API", Admin { state }));
    tracing::info!(listen = ?config.listen.http, "edge-proxy starting");
    server.run_forever();
}
