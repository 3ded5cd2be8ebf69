//! What is read at scrape time rather than counted: the pools' connections
//! (free: sqlx's own counts) and the backlogs that only the database knows
//! (the outbox, orders waiting for reconciliation). The backlog query runs
//! on a pool of one connection of its own, so a scrape never takes a fan's
//! connection nor queues behind fans, is bounded (counts stop at
//! `BACKLOG_CAP`) and has a short deadline: a scrape with the database down
//! still answers, with `usher_core_db_up 0` and no backlog samples.

use std::time::Duration;

use sqlx::PgPool;

use crate::metrics::text::Text;

/// A scrape waits at most this long for the backlog query (Prometheus's
/// own scrape time-out in the cluster is 4 s).
const BACKLOG_DEADLINE: Duration = Duration::from_millis(1_000);

/// Counts stop here: a backlog this long already pages someone, and
/// counting further would make a scrape scan a large table.
pub const BACKLOG_CAP: i64 = 10_000;

/// The pools whose connections are reported, and the scrape's own.
#[derive(Clone)]
pub struct Sources {
    pub primary: PgPool,
    /// The replicas' pool, when it is not the primary's.
    pub reads: Option<PgPool>,
    /// One lazy connection, for the backlog query only.
    pub backlog: PgPool,
}

/// The backlogs, as the database counted them.
struct Backlog {
    outbox: i64,
    outbox_oldest_secs: f64,
    reconciliation: i64,
    reconciliation_due: i64,
}

/// One round trip; each count bounded by `BACKLOG_CAP`, and each scan by a
/// partial index (`outbox_deliveries_due`, `orders_to_reconcile`). The age
/// is that of the oldest pending notification among the first
/// `BACKLOG_CAP` pending (exact below the cap).
const BACKLOG_SQL: &str = r#"
WITH pending AS (
    SELECT outbox_id FROM outbox_deliveries WHERE state = 'pending' LIMIT $1
), stuck AS (
    SELECT next_check_at FROM orders
    WHERE state IN ('pending_payment', 'paid', 'refunding') LIMIT $1
)
SELECT (SELECT count(*) FROM pending),
       coalesce((SELECT extract(epoch FROM now() - o.created_at)::float8
                 FROM outbox o WHERE o.id = (SELECT min(outbox_id) FROM pending)), 0),
       (SELECT count(*) FROM stuck),
       (SELECT count(*) FROM stuck WHERE next_check_at <= now())
"#;

async fn backlog(pool: &PgPool) -> Result<Backlog, sqlx::Error> {
    let (outbox, outbox_oldest_secs, reconciliation, reconciliation_due): (i64, f64, i64, i64) =
        sqlx::query_as(BACKLOG_SQL).bind(BACKLOG_CAP).fetch_one(pool).await?;
    Ok(Backlog {
        outbox,
        outbox_oldest_secs,
        reconciliation,
        reconciliation_due,
    })
}

fn pool_gauges(out: &mut Text, pools: &[(&str, &PgPool)]) {
    out.family(
        "usher_core_db_pool_connections",
        "gauge",
        "Connections open in each pool, by state (in_use: lent to a request or worker).",
    );
    for (name, pool) in pools {
        let size = pool.size();
        let idle = u32::try_from(pool.num_idle()).unwrap_or(u32::MAX).min(size);
        out.sample(
            "usher_core_db_pool_connections",
            &[("pool", name), ("state", "in_use")],
            size - idle,
        );
        out.sample(
            "usher_core_db_pool_connections",
            &[("pool", name), ("state", "idle")],
            idle,
        );
    }
    out.family(
        "usher_core_db_pool_max_connections",
        "gauge",
        "The most connections each pool opens.",
    );
    for (name, pool) in pools {
        out.sample(
            "usher_core_db_pool_max_connections",
            &[("pool", name)],
            pool.options().get_max_connections(),
        );
    }
}

/// Renders the scrape-time gauges.
pub async fn render(sources: &Sources, out: &mut Text) {
    let mut pools = vec![("primary", &sources.primary)];
    if let Some(reads) = &sources.reads {
        pools.push(("reads", reads));
    }
    pool_gauges(out, &pools);
    let backlog = match tokio::time::timeout(BACKLOG_DEADLINE, backlog(&sources.backlog)).await {
        Ok(Ok(b)) => Some(b),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "metrics: the backlog query failed");
            None
        }
        Err(_) => {
            tracing::debug!("metrics: the backlog query did not answer in time");
            None
        }
    };
    out.family(
        "usher_core_db_up",
        "gauge",
        "1 if the scrape's backlog query answered within its deadline; 0 and no backlog samples if not.",
    );
    out.sample("usher_core_db_up", &[], u8::from(backlog.is_some()));
    let Some(b) = backlog else { return };
    let gauges: [(&str, &str, f64); 4] = [
        (
            "usher_core_outbox_backlog",
            "Notification deliveries not yet made (counted up to 10000).",
            b.outbox as f64,
        ),
        (
            "usher_core_outbox_oldest_age_seconds",
            "Age of the oldest notification not yet delivered; 0 when none waits.",
            b.outbox_oldest_secs,
        ),
        (
            "usher_core_reconciliation_backlog",
            "Orders in an intermediate state (pending_payment, paid, refunding), counted up to 10000.",
            b.reconciliation as f64,
        ),
        (
            "usher_core_reconciliation_due",
            "Of those, the orders due a look by the reconciliation job now.",
            b.reconciliation_due as f64,
        ),
    ];
    for (name, help, value) in gauges {
        out.family(name, "gauge", help);
        out.sample(name, &[], value);
    }
}
