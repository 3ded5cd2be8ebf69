//! An event's currency, fees and taxes over real HTTP with the payment
//! sandbox: the portal refuses bad settings with stable codes and saves
//! nothing of them; an order carries its lines, in the event's currency,
//! and is charged exactly their sum; a refund returns each ticket's own
//! lines by the event's policy; the currency is fixed once the event sells.

use crate::common::*;
use booking_core::ids::EventId;
use booking_core::portal::Role;
use booking_core::portal::auth;
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn put_fees(app: &TestApp, token: &str, e: EventId, body: Value) -> (StatusCode, Value) {
    let r = app
        .http
        .put(app.url(&format!("/v1/portal/events/{}/fees", e.0)))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap())
}

async fn get_fees(app: &TestApp, token: &str, e: EventId) -> Value {
    let r = app
        .http
        .get(app.url(&format!("/v1/portal/events/{}/fees", e.0)))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

async fn get_json(app: &TestApp, token: &str, path: &str) -> (StatusCode, Value) {
    let r = app.http.get(app.url(path)).bearer_auth(token).send().await.unwrap();
    (r.status(), r.json().await.unwrap())
}

/// Half away from zero, as the lines round.
fn round_div(num: i64, den: i64) -> i64 {
    (2 * num + den) / (2 * den)
}

#[tokio::test]
async fn orders_carry_fee_and_tax_lines_that_add_up_to_the_charge_in_the_events_currency() {
    let smtp = crate::common::smtp::MailServer::start().await;
    let app = TestApp::start_with(Options {
        sandbox: true,
        email: format!("smtp://{}", smtp.addr),
        ..Options::default()
    })
    .await;
    let v = venue(&app.pool, &small_chart("fx", &["A"], 1, 8)).await;
    let e = event(&app.pool, "fx", "fx", rules(8)).await;
    let e2 = event(&app.pool, "fx2", "fx", rules(8)).await;
    let org = auth::ensure_organisation(&app.pool, "Fees Org").await.unwrap();
    sqlx::query("UPDATE events SET organisation_id = $1 WHERE id = ANY($2)")
        .bind(org.0)
        .bind(vec![e.0, e2.0])
        .execute(&app.pool)
        .await
        .unwrap();
    let editor = signed_in_operator(&app, org, "fees-editor@example.com", Role::Editor).await;
    let viewer = signed_in_operator(&app, org, "fees-viewer@example.com", Role::Viewer).await;
    let defaults = get_fees(&app, &viewer, e).await;
    assert_eq!(defaults["currency"], "usd");
    assert_eq!(defaults["tax_rate_bp"], 0);

    let good = json!({"currency": "JPY", "service_fee_per_ticket_cents": 300, "facility_fee_per_ticket_cents": 100,
                      "order_fee_cents": 500, "tax_rate_bp": 1000, "tax_inclusive": false,
                      "fees_taxable": true, "fees_refundable": false});
    // Bad input: a stable code each, and nothing saved.
    let with = |k: &str, v: Value| {
        let mut b = good.clone();
        b[k] = v;
        b
    };
    for (body, status, code) in [
        (
            with("currency", json!("xyz")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_currency",
        ),
        (
            with("currency", json!("")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_currency",
        ),
        (
            with("tax_rate_bp", json!(10_001)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_tax_rate",
        ),
        (
            with("tax_rate_bp", json!(-1)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_tax_rate",
        ),
        (
            with("service_fee_per_ticket_cents", json!(-1)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_fee",
        ),
        (
            with("order_fee_cents", json!(10_000_001)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_fee",
        ),
    ] {
        let (s, p) = put_fees(&app, &editor, e, body.clone()).await;
        assert_eq!((s, p["code"].as_str()), (status, Some(code)), "{body}: {p}");
    }
    let (s, p) = put_fees(&app, &editor, e, with("surprise", json!(1))).await;
    assert!(s.is_client_error(), "{p}");
    let (s, p) = put_fees(&app, &viewer, e, good.clone()).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::FORBIDDEN, Some("role_forbidden")));
    let (s, p) = put_fees(&app, &editor, EventId(999_999), good.clone()).await;
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("event_not_found"))
    );
    assert_eq!(get_fees(&app, &viewer, e).await, defaults);

    let (s, set) = put_fees(&app, &editor, e, good.clone()).await;
    assert_eq!(s, StatusCode::OK, "{set}");
    assert_eq!(set["currency"], "jpy");

    // The hold says what its order will charge, before the fan pays.
    let seats = seat_ids(&app.pool, v).await;
    let quoter = app.sign_in("quo").await;
    let (s, h) = app.hold(&quoter, e, "quo-h", &json!({"seat_ids": &seats[7..8]})).await;
    assert_eq!(s, StatusCode::CREATED, "{h}");
    let (s, quoted) = get_json(&app, &quoter, &format!("/v1/holds/{}", h["hold_id"].as_str().unwrap())).await;
    assert_eq!(s, StatusCode::OK, "{quoted}");
    let hp = quoted["seats"][0]["price_cents"].as_i64().unwrap();
    assert_eq!(quoted["currency"], "jpy");
    assert_eq!(
        quoted["charges"]["total_cents"],
        hp + round_div(hp * 1000, 10_000) + 440 + 550,
        "{quoted}"
    );
    assert_eq!(quoted["total_cents"], hp, "the seats' prices alone");

    // Two tickets: each price + 10% tax, each 400 fees + 10% tax, and the
    // order's 500 fee + 10% tax.
    let fan = app.sign_in("yui").await;
    let o = buy_with_own_card(&app, ("yui", &fan), e, "y", &seats[0..2]).await;
    let prices: Vec<i64> = o["seats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["price_cents"].as_i64().unwrap())
        .collect();
    let expected: i64 = prices
        .iter()
        .map(|p| p + round_div(p * 1000, 10_000) + 400 + 40)
        .sum::<i64>()
        + 550;
    assert_eq!(o["currency"], "jpy", "{o}");
    assert_eq!(o["total_cents"], expected, "{o}");
    assert_eq!(o["charges"]["total_cents"], expected);
    assert_eq!(o["charges"]["tickets"].as_array().unwrap().len(), 2);
    assert_eq!(o["charges"]["tickets"][0]["service_fee_cents"], 300);
    assert_eq!(o["charges"]["order_fee_tax_cents"], 50);
    let order = o["order_id"].as_str().unwrap().to_owned();
    let intent = app.sandbox.as_ref().unwrap().intents_for(&order).await.remove(0);
    assert_eq!(
        (intent["amount_cents"].as_i64(), intent["currency"].as_str()),
        (Some(expected), Some("jpy"))
    );

    // The PDF ticket says what it cost, line by line.
    let first = o["tickets"][1]["ticket_id"].as_str().unwrap();
    let seat1 = o["tickets"][1]["seat_id"].as_i64().unwrap();
    let p1 = o["seats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["seat_id"] == seat1)
        .unwrap()["price_cents"]
        .as_i64()
        .unwrap();
    let pdf = app
        .http
        .get(app.url(&format!("/v1/tickets/{first}/ticket.pdf")))
        .bearer_auth(&fan)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let tax1 = round_div(p1 * 1000, 10_000) + 40;
    let line = format!("(Price {p1} + fees 400 + tax {tax1} = {} JPY)", p1 + 400 + tax1);
    assert!(
        pdf.windows(line.len()).any(|w| w == line.as_bytes()),
        "{line} not in the PDF"
    );

    // The confirmation mail is the receipt: each ticket's lines, the
    // order's fee, the total, in yen (no decimals).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let receipt = loop {
        let found = smtp.messages().into_iter().find_map(|m| {
            crate::common::smtp::parts(&m)
                .into_iter()
                .filter(|p| p.content_type.starts_with("text/plain"))
                .map(|p| String::from_utf8_lossy(&p.body).into_owned())
                .find(|t| t.contains(&order))
        });
        if let Some(text) = found {
            break text;
        }
        assert!(std::time::Instant::now() < deadline, "no receipt for {order}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(receipt.contains("Order fee: 500 + tax 50 = 550 JPY"), "{receipt}");
    assert!(receipt.contains(&format!("Total paid: {expected} JPY")), "{receipt}");
    assert!(receipt.contains(&line[1..line.len() - 1]), "{receipt}");

    // One ticket back: its price and the tax on it; the fees stay.
    let ticket = o["tickets"][0]["ticket_id"].clone();
    let seat0 = o["tickets"][0]["seat_id"].as_i64().unwrap();
    let p0 = o["seats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["seat_id"] == seat0)
        .unwrap()["price_cents"]
        .as_i64()
        .unwrap();
    let (s, _, r) = post_keyed(
        &app,
        &fan,
        "yui-r",
        &format!("/v1/orders/{order}/refunds"),
        json!({"ticket_ids": [ticket]}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    let back = p0 + round_div(p0 * 1000, 10_000);
    assert_eq!(r["amount_cents"], back, "{r}");
    let intent = app.sandbox.as_ref().unwrap().intents_for(&order).await.remove(0);
    assert_eq!(intent["amount_refunded_cents"], back);

    // Sold: the currency is fixed; the fees may still change (for later orders).
    let (s, p) = put_fees(&app, &editor, e, with("currency", json!("eur"))).await;
    assert_eq!(
        (s, p["code"].as_str(), p["currency"].as_str()),
        (StatusCode::CONFLICT, Some("currency_locked"), Some("jpy"))
    );
    let (s, p) = put_fees(&app, &editor, e, with("service_fee_per_ticket_cents", json!(0))).await;
    assert_eq!(s, StatusCode::OK, "{p}");

    // Inclusive tax in a three-decimal currency: nothing is added, the
    // tax is shown inside the lines; refundable fees come back in full.
    let (s, p) = put_fees(
        &app,
        &editor,
        e2,
        json!({"currency": "kwd", "service_fee_per_ticket_cents": 250, "order_fee_cents": 0,
               "tax_rate_bp": 2000, "tax_inclusive": true, "fees_refundable": true}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    let fan2 = app.sign_in("ali").await;
    let o2 = buy_with_own_card(&app, ("ali", &fan2), e2, "a", &seats[2..3]).await;
    let p = o2["seats"][0]["price_cents"].as_i64().unwrap();
    assert_eq!(
        (o2["currency"].as_str(), o2["total_cents"].as_i64()),
        (Some("kwd"), Some(p + 250)),
        "{o2}"
    );
    let line = &o2["charges"]["tickets"][0];
    assert_eq!(line["price_tax_cents"], p - round_div(p * 10_000, 12_000));
    let id2 = o2["order_id"].as_str().unwrap();
    let (s, _, r) = post_keyed(&app, &fan2, "ali-r", &format!("/v1/orders/{id2}/refunds"), json!({})).await;
    assert_eq!(
        (s, r["amount_cents"].as_i64()),
        (StatusCode::CREATED, Some(p + 250)),
        "{r}"
    );
    app.finish().await;
}

/// In headless Chromium: an editor sets an event's currency, fees and tax
/// on the portal's event page; a bad currency is shown with its code and
/// nothing of it is saved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_editor_sets_fees_and_taxes_on_the_portals_event_page() {
    use crate::common::browser::{Browser, DESKTOP};
    use std::time::Duration;
    let app = TestApp::start().await;
    let base = app.direct.clone();
    venue(&app.pool, &small_chart("fw", &["A"], 1, 4)).await;
    let e = event(&app.pool, "fw", "fw", rules(4)).await;
    let org = auth::ensure_organisation(&app.pool, "Fees Web Org").await.unwrap();
    sqlx::query("UPDATE events SET organisation_id = $2 WHERE id = $1")
        .bind(e.0)
        .bind(org.0)
        .execute(&app.pool)
        .await
        .unwrap();
    let editor = signed_in_operator(&app, org, "fees-web@example.com", Role::Editor).await;

    let b = Browser::start_sized(DESKTOP).await;
    b.goto(&format!("{base}/portal/sign-in?next=/portal/events/{}", e.0))
        .await;
    b.wait_for("return document.getElementById('op-email')", Duration::from_secs(10))
        .await;
    b.type_into("#op-email", "fees-web@example.com").await;
    b.type_into("#op-password", OPERATOR_PASSWORD).await;
    b.click("form button[type=submit]", None).await;
    b.wait_for("return document.getElementById('f-currency')", Duration::from_secs(15))
        .await;
    let set = |currency: &str| {
        format!(
            "const f = document.querySelector('form.fees');
             f.currency.value = '{currency}'; f.service_fee_per_ticket_cents.value = '250';
             f.order_fee_cents.value = '100'; f.tax_rate_bp.value = '1900'; f.tax_inclusive.checked = true;
             f.querySelector('button[type=submit]').click(); return true"
        )
    };
    b.eval(&set("xyz")).await;
    let said = b
        .wait_for(
            "const s = document.querySelector('form.fees [aria-live]'); return s && s.textContent.includes('(') && s.textContent",
            Duration::from_secs(10),
        )
        .await;
    assert!(said.as_str().unwrap().contains("unknown_currency"), "{said}");
    assert_eq!(get_fees(&app, &editor, e).await["currency"], "usd");

    b.eval(&set("eur")).await;
    let said = b
        .wait_for(
            "const s = document.querySelector('form.fees [aria-live]'); return s && s.textContent.includes('Saved') && s.textContent",
            Duration::from_secs(10),
        )
        .await;
    assert!(said.as_str().unwrap().contains("EUR, tax 19%"), "{said}");
    let saved = get_fees(&app, &editor, e).await;
    assert_eq!(
        (
            saved["currency"].as_str(),
            saved["service_fee_per_ticket_cents"].as_i64(),
            saved["order_fee_cents"].as_i64(),
            saved["tax_rate_bp"].as_i64(),
            saved["tax_inclusive"].as_bool()
        ),
        (Some("eur"), Some(250), Some(100), Some(1900), Some(true)),
        "{saved}"
    );
    b.quit().await;
    app.finish().await;
}
