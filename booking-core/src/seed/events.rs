//! The demo events. Dates are relative to the day of seeding; the stadium
//! concert is on sale from the moment it is seeded, one festival goes on sale
//! a week later so the on-sale countdown has something to count.

use chrono::{DateTime, Duration, Utc};
use sqlx::PgPool;

use crate::catalog::{Category, EventRules, EventSpec, TierSpec};
use crate::ids::Cents;

/// Midnight (UTC) of the seeding day, by the database's clock.
pub async fn anchor(pool: &PgPool) -> Result<DateTime<Utc>, sqlx::Error> {
    sqlx::query_scalar!(r#"SELECT date_trunc('day', now()) AS "day!""#)
        .fetch_one(pool)
        .await
}

fn tiers(names_and_prices: &[(&str, i64)]) -> Vec<TierSpec> {
    names_and_prices
        .iter()
        .enumerate()
        .map(|(i, (name, cents))| TierSpec {
            tier: i as i16 + 1,
            name: (*name).into(),
            price_cents: Cents(*cents),
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn event(
    anchor: DateTime<Utc>,
    slug: &str,
    venue: &str,
    title: &str,
    artist: &str,
    category: Category,
    in_days: i64,
    on_sale_in_days: i64,
    tiers: Vec<TierSpec>,
) -> EventSpec {
    let starts_at = anchor + Duration::days(in_days) + Duration::minutes(19 * 60 + 30);
    EventSpec {
        slug: slug.into(),
        venue_slug: venue.into(),
        title: title.into(),
        artist: artist.into(),
        category,
        description: format!("{title} at {venue}. A demo event of the Usher local stack."),
        starts_at,
        on_sale_at: anchor + Duration::days(on_sale_in_days),
        rules: EventRules::default(),
        tiers,
    }
}

pub fn all(anchor: DateTime<Utc>) -> Vec<EventSpec> {
    let stadium = tiers(&[
        ("Platinum", 18_950),
        ("Lower Bowl", 12_900),
        ("Club", 9_900),
        ("Upper", 6_900),
        ("Upper Rear", 4_500),
    ]);
    let arena = tiers(&[("Floor View", 9_500), ("Lower Tier", 6_500), ("Upper Tier", 3_900)]);
    let theatre = tiers(&[
        ("Premium Stalls", 8_500),
        ("Stalls & Dress", 5_900),
        ("Upper Circle", 3_500),
        ("Upper Rear", 2_000),
    ]);
    let club = tiers(&[("Front Tables", 4_500), ("Floor", 3_000), ("Balcony", 2_200)]);
    let hall = tiers(&[("Parkett", 7_900), ("Rang", 5_400), ("Galerie", 3_200)]);
    use Category::*;
    let mut events = vec![
        event(
            anchor,
            "aurora-vale-northern-lights-london",
            "meridian-stadium",
            "The Northern Lights Tour",
            "Aurora Vale",
            Concert,
            60,
            -1,
            stadium.clone(),
        ),
        event(
            anchor,
            "metro-derby-day",
            "meridian-stadium",
            "Derby Day: Metro City v United",
            "Metro City FC",
            Sports,
            30,
            -2,
            stadium.clone(),
        ),
        event(
            anchor,
            "solstice-festival-2027",
            "meridian-stadium",
            "Solstice Festival",
            "Various Artists",
            Festival,
            120,
            7,
            stadium,
        ),
        event(
            anchor,
            "midnight-hours-manchester",
            "harbour-arena",
            "After Dark",
            "The Midnight Hours",
            Concert,
            21,
            -3,
            arena.clone(),
        ),
        event(
            anchor,
            "frozen-wonders-on-ice",
            "harbour-arena",
            "Frozen Wonders on Ice",
            "Starlight Skaters",
            Family,
            45,
            -10,
            arena.clone(),
        ),
        event(
            anchor,
            "harbour-hoops-finals",
            "harbour-arena",
            "Basketball Finals, Game 1",
            "Harbour Hawks",
            Sports,
            14,
            -5,
            arena,
        ),
        event(
            anchor,
            "hamlet-lyric",
            "lyric-theatre",
            "Hamlet",
            "Royal Players",
            Theatre,
            10,
            -30,
            theatre.clone(),
        ),
        event(
            anchor,
            "late-laughs-lyric",
            "lyric-theatre",
            "Late Laughs",
            "Sam Ortiz",
            Comedy,
            17,
            -4,
            theatre,
        ),
        event(
            anchor,
            "blue-note-sessions-dublin",
            "the-cellar",
            "Blue Note Sessions",
            "Mira Quartet",
            Concert,
            8,
            -14,
            club.clone(),
        ),
        event(
            anchor,
            "cellar-standup-night",
            "the-cellar",
            "Stand-up Night",
            "Niamh Kelly",
            Comedy,
            12,
            -6,
            club,
        ),
        event(
            anchor,
            "synth-pioneers-berlin",
            "spree-halle",
            "Synth Pioneers",
            "Elektron Ensemble",
            Concert,
            35,
            -2,
            hall.clone(),
        ),
        event(
            anchor,
            "kinder-zirkus-berlin",
            "spree-halle",
            "Circus of Wonders",
            "Zirkus Luna",
            Family,
            25,
            -8,
            hall,
        ),
    ];
    // The stadium concert is the on-sale everyone wants: it sits behind the
    // edge's waiting room (config/edge-proxy.toml), and the core takes holds
    // for it only with the edge's access token.
    events[0].rules.protected = true;
    events
}
