//! `booking-core import`: a venue chart and an event from JSON files, as
//! operators bulk-load them and load scenarios set up their sale. A bad file
//! is refused with the problems listed and nothing written; a good one is
//! imported once, however often it is run.

use std::process::Command;

use crate::common::TestDb;
use sqlx::ConnectOptions;

fn import(
    db: &TestDb,
    dir: &std::path::Path,
    venue: &serde_json::Value,
    event: &serde_json::Value,
) -> std::process::Output {
    std::fs::write(dir.join("venue.json"), serde_json::to_vec(venue).unwrap()).unwrap();
    std::fs::write(dir.join("event.json"), serde_json::to_vec(event).unwrap()).unwrap();
    let url = crate::common::url_for(&db.name).to_url_lossy().to_string();
    Command::new(env!("CARGO_BIN_EXE_booking-core"))
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .args(["--config", "config/booking-core.toml", "import", "--venue"])
        .arg(dir.join("venue.json"))
        .arg("--event")
        .arg(dir.join("event.json"))
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "error")
        .output()
        .unwrap()
}

fn event_json(slug: &str) -> serde_json::Value {
    serde_json::json!({
        "slug": slug, "venue_slug": slug, "title": "Import test", "artist": "Nobody",
        "category": "concert", "description": "d",
        "starts_at": "2030-01-01T19:00:00Z", "on_sale_at": "2029-12-01T09:00:00Z",
        "rules": {"hold_ttl_secs": 300, "hold_jitter_secs": 0, "max_seats_per_fan": 4, "protected": true},
        "tiers": [{"tier": 1, "name": "Stalls", "price_cents": 5000}, {"tier": 2, "name": "Circle", "price_cents": 3000}]
    })
}

#[tokio::test]
async fn a_chart_and_event_import_once_and_a_bad_chart_is_refused_with_its_problems() {
    let db = TestDb::new().await;
    let dir = std::env::temp_dir().join(format!("usher-import-{}", db.name));
    std::fs::create_dir_all(&dir).unwrap();
    let chart = serde_json::to_value(crate::common::small_chart("import-hall", &["A", "B"], 3, 5)).unwrap();

    let out = import(&db, &dir, &chart, &event_json("import-hall"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ids: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (venue, event) = (ids["venue_id"].as_i64().unwrap(), ids["event_id"].as_i64().unwrap());
    let seats: i64 = sqlx::query_scalar("SELECT count(*) FROM seats WHERE venue_id = $1")
        .bind(venue)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(seats, 30);
    let protected: bool = sqlx::query_scalar("SELECT protected FROM events WHERE id = $1")
        .bind(event)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert!(protected);

    // Again: the same ids, nothing new.
    let again = import(&db, &dir, &chart, &event_json("import-hall"));
    assert!(again.status.success());
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&again.stdout).unwrap(), ids);

    // Two seats with one number in one row, and a seat in tier 0.
    let mut bad = serde_json::to_value(crate::common::small_chart("import-bad", &["A"], 1, 3)).unwrap();
    bad["sections"][0]["rows"][0]["seats"][1]["number"] = 1.into();
    bad["sections"][0]["rows"][0]["seats"][2]["tier"] = 0.into();
    let out = import(&db, &dir, &bad, &event_json("import-bad"));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sections[0].rows[0].seats[1]"), "{err}");
    assert!(err.contains("sections[0].rows[0].seats[2].tier"), "{err}");
    let venues: i64 = sqlx::query_scalar("SELECT count(*) FROM venues WHERE slug = 'import-bad'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(venues, 0);

    // Not JSON at all: said before any database is touched.
    std::fs::write(dir.join("venue.json"), b"sections: [").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_booking-core"))
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .args(["--config", "config/booking-core.toml", "import", "--venue"])
        .arg(dir.join("venue.json"))
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a seating chart"));

    std::fs::remove_dir_all(&dir).ok();
    db.finish().await;
}
