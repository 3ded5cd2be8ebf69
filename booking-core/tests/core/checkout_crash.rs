//! Crash tests: booking-core runs as a real process, is aborted right after
//! each step of the purchase saga (`checkout.crash_after`), and is started
//! again. Afterwards every order is final and: charged => tickets issued or
//! refund issued; nobody is charged twice; no seat has two tickets.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

struct Core {
    child: ChildGuard,
    base: String,
}

impl Core {
    async fn start(
        db_url: &str,
        port: u16,
        sandbox: &str,
        key_file: &std::path::Path,
        crash_after: Option<&str>,
        reconcile_after_secs: u64,
    ) -> Core {
        let mut c = Command::new(env!("CARGO_BIN_EXE_booking-core"));
        c.args(["--config", "/nonexistent/booking-core.toml", "serve"])
            .env("DATABASE_URL", db_url)
            .env("USHER_CORE__ENVIRONMENT", "dev")
            .env("USHER_CORE__HTTP__LISTEN", format!("127.0.0.1:{port}"))
            .env("USHER_CORE__IDENTITY__DEV_SIGN_IN__ENABLED", "true")
            .env("USHER_CORE__IDENTITY__DEV_SIGN_IN__PRIVATE_KEY_FILE", key_file)
            .env("USHER_CORE__PAYMENTS__BASE_URL", sandbox)
            .env("USHER_CORE__PAYMENTS__API_KEY", SANDBOX_API_KEY)
            .env("USHER_CORE__PAYMENTS__WEBHOOK_SECRET", SANDBOX_WEBHOOK_SECRET)
            .env("USHER_CORE__PAYMENTS__REQUEST_TIMEOUT_MS", "2000")
            .env("USHER_CORE__CHECKOUT__RECONCILE_INTERVAL_MS", "200")
            .env(
                "USHER_CORE__CHECKOUT__RECONCILE_AFTER_SECS",
                reconcile_after_secs.to_string(),
            )
            .env("USHER_CORE__REAPER__INTERVAL_MS", "200")
            .env("USHER_CORE__LOG__FILTER", "warn,booking_core::checkout=info")
            .env_remove("RUST_LOG")
            // Its log, for a failing run.
            .stdout(Stdio::inherit());
        if let Some(step) = crash_after {
            c.env("USHER_CORE__CHECKOUT__CRASH_AFTER", step);
        }
        let child = ChildGuard::new(c.spawn().expect("start booking-core"));
        let base = format!("http://127.0.0.1:{port}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !reqwest::get(format!("{base}/readyz"))
            .await
            .is_ok_and(|r| r.status() == StatusCode::OK)
        {
            assert!(tokio::time::Instant::now() < deadline, "booking-core did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Core { child, base }
    }

    /// Waits for the process to die by itself (the injected crash).
    async fn wait_for_crash(&mut self, step: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let child = self.child.child().expect("not killed");
            if let Some(status) = child.try_wait().unwrap() {
                assert!(!status.success(), "the core should have aborted");
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the core did not crash after {step}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn sign_in(http: &reqwest::Client, base: &str, fan: &str) -> String {
    let r: Value = http
        .post(format!("{base}/v1/dev/sign-in"))
        .json(&json!({"fan_id": fan}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["token"].as_str().unwrap().to_string()
}

async fn hold(http: &reqwest::Client, base: &str, token: &str, event: i64, key: &str, seats: &[i64]) -> String {
    let r = http
        .post(format!("{base}/v1/events/{event}/holds"))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(&json!({"seat_ids": seats}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    r.json::<Value>().await.unwrap()["hold_id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Sends the order; the process may die before it answers.
async fn try_order(http: &reqwest::Client, base: &str, token: &str, key: &str, hold: &str, pm: &str) -> Option<Value> {
    let r = http
        .post(format!("{base}/v1/orders"))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(&json!({"hold_id": hold, "payment_method": pm}))
        .send()
        .await
        .ok()?;
    r.json().await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_any_two_saga_steps_loses_nothing_and_charges_once() {
    let db = fresh_database().await;
    let opts: PgConnectOptions = admin_url().parse::<PgConnectOptions>().unwrap().database(&db);
    let db_url = opts.to_url_lossy().to_string();
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect_with(opts)
        .await
        .unwrap();
    let pair = usher_shared::keys::generate_pair();
    let key_file = std::env::temp_dir().join(format!("{db}.pem"));
    std::fs::write(&key_file, pair.private_pem).unwrap();
    let port = free_port();
    let sandbox = Sandbox::start(&format!("http://127.0.0.1:{port}/v1/payments/webhooks/sandbox"));
    let http = reqwest::Client::new();

    let v = venue(&pool, &small_chart("crash", &["A"], 2, 10)).await;
    let short = booking_core::catalog::EventRules {
        hold_ttl_secs: 1,
        hold_jitter_secs: 0,
        max_seats_per_fan: 20,
        protected: false,
    };
    let e = event(&pool, "crash", "crash", short).await;
    let seats = seat_ids(&pool, v).await;
    let mut orders_made = 0;

    for (n, step) in ["order_created", "charged", "paid", "settled", "refund_sent"]
        .into_iter()
        .enumerate()
    {
        // The refund scenario needs its hold to lapse before reconciliation
        // first looks at the order.
        let after = if step == "refund_sent" { 3 } else { 1 };
        let mut core = Core::start(&db_url, port, &sandbox.base, &key_file, Some(step), after).await;
        let alice = sign_in(&http, &core.base, "alice").await;
        let seat = seats[n];
        if step == "refund_sent" {
            // Reach the refund: the charge errors first (nothing taken), the
            // hold lapses, someone else buys the seat, then reconciliation
            // charges, cannot sell, and refunds -- and the process dies there.
            let h = hold(&http, &core.base, &alice, e.0, &format!("h-{step}"), &[seat]).await;
            let o = try_order(&http, &core.base, &alice, &format!("o-{step}"), &h, "pm_card_flaky").await;
            assert_eq!(o.unwrap()["state"], "pending_payment");
            tokio::time::sleep(Duration::from_millis(1_300)).await;
            let bob = sign_in(&http, &core.base, "bob").await;
            let b = hold(&http, &core.base, &bob, e.0, &format!("b-{step}"), &[seat]).await;
            let sold = try_order(&http, &core.base, &bob, &format!("bo-{step}"), &b, "pm_card_ok").await;
            assert_eq!(sold.unwrap()["state"], "confirmed");
        } else {
            // pm_card_no_webhook: only the core's own steps can finish it.
            let h = hold(&http, &core.base, &alice, e.0, &format!("h-{step}"), &[seat]).await;
            let o = try_order(
                &http,
                &core.base,
                &alice,
                &format!("o-{step}"),
                &h,
                "pm_card_no_webhook",
            )
            .await;
            assert!(
                o.is_none(),
                "{step}: the core should have died mid-request, answered {o:?}"
            );
        }
        orders_made += 1;
        core.wait_for_crash(step).await;
        drop(core);

        // Started again, without the fault: reconciliation finishes it.
        let core = Core::start(&db_url, port, &sandbox.base, &key_file, None, 1).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let open: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM orders WHERE state IN ('pending_payment', 'paid', 'refunding')",
            )
            .fetch_one(&pool)
            .await
            .unwrap();
            if open == 0 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{step}: {open} orders never finished"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        drop(core);
    }

    // The invariants, order by order, against the processor's own records.
    let orders: Vec<(uuid::Uuid, String)> = sqlx::query_as("SELECT id, state FROM orders ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(
        orders.len(),
        orders_made + 1,
        "alice's, and bob's purchase of the contested seat"
    );
    for (id, state) in &orders {
        let intents = sandbox.intents_for(&id.to_string()).await;
        let charged: Vec<&Value> = intents.iter().filter(|i| i["status"] == "succeeded").collect();
        assert!(charged.len() <= 1, "order {id} charged {} times", charged.len());
        let tickets: i64 = sqlx::query_scalar("SELECT count(*) FROM tickets WHERE order_id = $1 AND state = 'valid'")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
        if let Some(charge) = charged.first() {
            let refunded = charge["amount_refunded_cents"] == charge["amount_cents"];
            assert!(
                (tickets > 0 && state == "confirmed") || (refunded && state == "refunded"),
                "order {id}: charged, state {state}, {tickets} tickets, refunded {refunded}"
            );
        } else {
            assert_eq!(tickets, 0, "order {id}: tickets without a charge");
        }
    }
    let states: Vec<&str> = orders.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(
        states,
        [
            "confirmed",
            "confirmed",
            "confirmed",
            "confirmed",
            "refunded",
            "confirmed"
        ]
    );
    let doubled: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT seat_id FROM tickets WHERE state = 'valid' GROUP BY event_id, seat_id HAVING count(*) > 1) d",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(doubled, 0);
    pool.close().await;
    drop_database(&db).await;
    std::fs::remove_file(&key_file).ok();
}
