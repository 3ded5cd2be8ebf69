//! A scratch stack for one benchmark run: a fresh database, seeded by the
//! project's own `booking-core seed`, and a release booking-core serving it
//! on a local port. Dropped at the end of the run.

use std::path::Path;
use std::process::Stdio;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};
use tokio::process::{Child, Command};

use crate::StackArgs;

pub struct Stack {
    pub base: String,
    /// A pool on the benchmark database, for setup and the baseline.
    pub pool: PgPool,
    /// The same, with commits that do not wait for the disk (as holds).
    pub async_pool: PgPool,
    pub pool_size: u32,
    admin: PgConnectOptions,
    db: String,
    child: Child,
    dir: std::path::PathBuf,
    db_url: String,
    key: std::path::PathBuf,
    config: std::path::PathBuf,
    core_bin: std::path::PathBuf,
    port: u16,
    /// The environment every start of booking-core gets on top of the
    /// stack's own (`start_with_env`'s).
    env: Vec<(String, String)>,
    stopped: bool,
}

fn ddl(sql: String) -> sqlx::RawSql {
    // Names here are made by this file.
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
}

impl Stack {
    pub async fn start(args: &StackArgs) -> anyhow::Result<Stack> {
        Self::start_with_env(args, &[]).await
    }

    /// As `start`, with extra environment for booking-core (configuration
    /// overrides such as `USHER_CORE__PAYMENTS__BASE_URL`).
    pub async fn start_with_env(args: &StackArgs, env: &[(String, String)]) -> anyhow::Result<Stack> {
        if !args.core_bin.exists() {
            bail!(
                "{} not found: run `cargo build --release -p booking-core` first",
                args.core_bin.display()
            );
        }
        let admin: PgConnectOptions = args.database_url.parse().context("DATABASE_URL")?;
        let stamp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        let db = format!("usher_bench_{stamp}_{}", std::process::id());
        let mut conn = PgConnection::connect_with(&admin)
            .await
            .context("connecting to PostgreSQL")?;
        ddl(format!("CREATE DATABASE \"{db}\"")).execute(&mut conn).await?;
        conn.close().await?;
        let db_opts = admin.clone().database(&db);
        let db_url = db_opts.to_url_lossy().to_string();

        let dir = std::env::temp_dir().join(&db);
        std::fs::create_dir_all(&dir)?;
        let key = dir.join("dev-1.pem");
        // The configuration names key files relative to the repository root.
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let run = |cmd: &str| {
            let mut c = Command::new(&args.core_bin);
            c.current_dir(&root)
                .arg("--config")
                .arg(&args.core_config)
                .arg(cmd)
                .env("DATABASE_URL", &db_url)
                .env("USHER_CORE__IDENTITY__DEV_SIGN_IN__PRIVATE_KEY_FILE", &key)
                .env("USHER_CORE__DATABASE__MAX_CONNECTIONS", args.pool.to_string())
                .env("USHER_CORE__HTTP__LISTEN", format!("127.0.0.1:{}", args.port))
                .env("USHER_CORE__LOG__FILTER", "warn")
                .env("RUST_LOG", "warn")
                // No SMTP server here (the local stack's may not run): fan
                // mail to the log, so retries do not load the core measured.
                .env("USHER_CORE__NOTIFICATIONS__EMAIL", "log")
                .envs(env.iter().map(|(k, v)| (k, v)));
            c
        };
        let local_keys = root.join("target/usher-local/keys");
        for (out, kid) in [
            (dir.clone(), "dev-1"),
            (local_keys.clone(), "edge-1"),
            (local_keys, "tickets-1"),
        ] {
            let status = Command::new(&args.core_bin)
                .args(["keygen", "--kid", kid, "--out-dir"])
                .arg(out)
                .stdout(Stdio::null())
                .status()
                .await?;
            if !status.success() {
                bail!("keygen failed");
            }
        }
        eprintln!("seeding {db} (50,000-seat stadium and the demo catalog)...");
        let out = run("seed").output().await?;
        if !out.status.success() {
            bail!("seed failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let child = serve(run("serve"), &dir, args.port).await?;
        let base = format!("http://127.0.0.1:{}", args.port);
        let db_opts = db_opts.disable_statement_logging();
        let pool = PgPoolOptions::new()
            .max_connections(args.pool)
            .connect_with(db_opts.clone())
            .await?;
        let async_pool = PgPoolOptions::new()
            .max_connections(args.pool)
            .connect_with(db_opts.options([("synchronous_commit", "off")]))
            .await?;
        Ok(Stack {
            base,
            pool,
            async_pool,
            pool_size: args.pool,
            admin,
            db,
            child,
            dir,
            db_url,
            key,
            config: args.core_config.clone(),
            core_bin: args.core_bin.clone(),
            port: args.port,
            env: env.to_vec(),
            stopped: false,
        })
    }

    /// Stops booking-core and starts it again on the same database and
    /// port with `extra` on top of the stack's environment (another
    /// configuration, e.g. tracing on), ready when this returns. Fans'
    /// tokens stay valid: the signing key is the same.
    pub async fn restart_core(&mut self, extra: &[(String, String)]) -> anyhow::Result<()> {
        self.child.kill().await.ok();
        let mut cmd = self.command(&self.core_bin, "serve");
        cmd.env("USHER_CORE__DATABASE__MAX_CONNECTIONS", self.pool_size.to_string())
            .env("USHER_CORE__HTTP__LISTEN", format!("127.0.0.1:{}", self.port))
            .envs(self.env.iter().chain(extra).map(|(k, v)| (k, v)));
        self.child = serve(cmd, &self.dir, self.port).await?;
        Ok(())
    }

    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.stopped = true;
        self.child.kill().await.ok();
        self.pool.close().await;
        self.async_pool.close().await;
        drop_database(&self.admin, &self.db).await?;
        std::fs::remove_dir_all(&self.dir).ok();
        Ok(())
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// A booking-core command (`bin <cmd>`) on this stack's database.
    pub fn command(&self, bin: &Path, cmd: &str) -> Command {
        let mut c = Command::new(bin);
        c.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
            .arg("--config")
            .arg(&self.config)
            .arg(cmd)
            .env("DATABASE_URL", &self.db_url)
            .env("USHER_CORE__IDENTITY__DEV_SIGN_IN__PRIVATE_KEY_FILE", &self.key)
            .env("USHER_CORE__LOG__FILTER", "warn")
            .env("RUST_LOG", "warn")
            .env("USHER_CORE__NOTIFICATIONS__EMAIL", "log");
        c
    }

    pub fn log_path(&self) -> &Path {
        &self.dir
    }
}

/// Starts `booking-core serve` (its log in `dir`, appended to across
/// restarts) and waits until it is ready on `port`.
async fn serve(mut cmd: Command, dir: &Path, port: u16) -> anyhow::Result<Child> {
    let log_path = dir.join("booking-core.log");
    let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path)?;
    let child = cmd.stdout(Stdio::null()).stderr(log).kill_on_drop(true).spawn()?;
    let ready = format!("http://127.0.0.1:{port}/readyz");
    if !crate::process::ready_within_10s(&reqwest::Client::new(), &ready).await {
        bail!("booking-core did not become ready; see {}", log_path.display());
    }
    Ok(child)
}

async fn drop_database(admin: &PgConnectOptions, db: &str) -> anyhow::Result<()> {
    let mut conn = PgConnection::connect_with(admin).await?;
    ddl(format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"))
        .execute(&mut conn)
        .await?;
    Ok(())
}

/// A run that ends without `stop` (a failed test unwinding, an error) still
/// takes its scratch database with it, so failures leave nothing behind.
impl Drop for Stack {
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        self.child.start_kill().ok();
        let (admin, db) = (self.admin.clone(), self.db.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(drop_database(&admin, &db))
        });
        if let Ok(Err(e)) = dropped.join() {
            eprintln!("the scratch database {} was not dropped: {e:#}", self.db);
        }
    }
}
