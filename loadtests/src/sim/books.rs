//! The processor's books against ours, read the same way by every check
//! that has a sandbox: every kept charge has its order confirmed with all
//! its tickets, and no order (nor, where each fan buys once, no fan) kept
//! two charges.

use std::collections::HashMap;

use anyhow::Context;
use serde_json::Value;
use sqlx::PgPool;

/// The processor's books against ours: which kept charges lack their
/// tickets, and which orders or fans kept more than one.
#[derive(Debug, Default)]
pub struct Books {
    pub captured: usize,
    pub refunded: usize,
    pub charged_without_ticket: Vec<String>,
    pub orders_charged_twice: Vec<String>,
    /// A problem only where each fan sets out to buy once (the simulator's
    /// herd; not a bot farm, whose accounts buy again).
    pub fans_charged_twice: Vec<String>,
}

/// Every intent the sandbox made since `began_unix`, page by page (its
/// list is Stripe's: 100 at most a page, `starting_after` the cursor).
async fn sandbox_intents((url, key): (&str, &str), began_unix: i64) -> anyhow::Result<Vec<Value>> {
    let client = reqwest::Client::new();
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut query = vec![("created[gte]", began_unix.to_string()), ("limit", "100".to_owned())];
        query.extend(after.take().map(|a| ("starting_after", a)));
        let answer = client
            .get(format!("{url}/v1/payment_intents"))
            .query(&query)
            .bearer_auth(key)
            .send()
            .await?;
        if !answer.status().is_success() {
            anyhow::bail!(
                "the sandbox's books answered {}: cannot check the charges",
                answer.status()
            );
        }
        let page: Value = answer.json().await.context("the sandbox's intents")?;
        let Some(data) = page["data"].as_array() else {
            anyhow::bail!("the sandbox's books have no list of intents: cannot check the charges");
        };
        after = data.last().and_then(|i| i["id"].as_str()).map(str::to_owned);
        all.extend(data.iter().cloned());
        if page["has_more"] != true || after.is_none() {
            return Ok(all);
        }
    }
}

/// Reads the sandbox's books (`sandbox`: its URL and key) for the event's
/// charges since `began_unix`. Unreadable books are an error, never an
/// empty ledger that would pass every check.
pub async fn read_books(pool: &PgPool, sandbox: (&str, &str), event: i64, began_unix: i64) -> anyhow::Result<Books> {
    let intents = sandbox_intents(sandbox, began_unix).await?;
    let orders: Vec<(uuid::Uuid, String, String, i32, i64)> = sqlx::query_as(
        "SELECT o.id, o.fan_id, o.state, cardinality(o.seat_ids),
                (SELECT count(*) FROM tickets t WHERE t.order_id = o.id AND t.state = 'valid')
         FROM orders o WHERE o.event_id = $1",
    )
    .bind(event)
    .fetch_all(pool)
    .await?;
    let by_id: HashMap<String, &(uuid::Uuid, String, String, i32, i64)> =
        orders.iter().map(|o| (o.0.to_string(), o)).collect();
    let mut books = Books::default();
    let mut kept_per_order: HashMap<String, u32> = HashMap::new();
    let mut kept_per_fan: HashMap<&str, u32> = HashMap::new();
    for intent in &intents {
        if intent["status"] != "succeeded" || intent["created"].as_i64().is_some_and(|t| t < began_unix) {
            continue;
        }
        books.captured += 1;
        let amount = intent["amount_cents"].as_i64().unwrap_or(0);
        let refunded = intent["amount_refunded_cents"].as_i64().unwrap_or(0);
        let order_id = intent["metadata"]["order_id"].as_str().unwrap_or_default().to_owned();
        if refunded >= amount {
            books.refunded += 1;
            continue;
        }
        let Some(order) = by_id.get(&order_id) else {
            books
                .charged_without_ticket
                .push(format!("intent {} names no order of this event", intent["id"]));
            continue;
        };
        if order.2 != "confirmed" || order.4 != i64::from(order.3) {
            books.charged_without_ticket.push(format!(
                "order {order_id}: charged, state {}, {} of {} tickets",
                order.2, order.4, order.3
            ));
        }
        *kept_per_order.entry(order_id.clone()).or_default() += 1;
        *kept_per_fan.entry(order.1.as_str()).or_default() += 1;
    }
    for (order, n) in &kept_per_order {
        if *n > 1 {
            books
                .orders_charged_twice
                .push(format!("order {order} kept {n} charges"));
        }
    }
    for (fan, n) in &kept_per_fan {
        if *n > 1 {
            books.fans_charged_twice.push(format!("fan {fan} kept {n} charges"));
        }
    }
    Ok(books)
}
