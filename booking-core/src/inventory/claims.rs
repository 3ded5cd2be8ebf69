//! Every statement that puts a claim on a seat or takes one away. This is
//! the one place to read to see how a seat is held, released, expired or
//! sold.
//!
//! The guarantee is the `one_live_claim_per_seat` exclusion constraint: a
//! claim covers a time range, and no two claims on one seat of one event may
//! overlap. A claim is an INSERT ... ON CONFLICT DO NOTHING: under READ
//! COMMITTED the constraint is checked against every committed *and*
//! in-flight row, not against the statement's snapshot, and an insert that
//! meets an in-flight overlapping row waits for that transaction to end. So
//! two transactions can never both claim a seat, whatever they read before.
//! Seats are inserted in ascending id order so that two multi-seat claims
//! always wait on each other in the same order and cannot deadlock.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::ids::{EventId, FanId, HoldId, SeatId};

/// An event's rules as read at the start of a hold.
#[derive(Debug, Clone, Copy)]
pub struct HoldRules {
    pub ttl_secs: i32,
    pub jitter_secs: i32,
    pub max_seats_per_fan: i32,
    pub on_sale_at: DateTime<Utc>,
    pub on_sale: bool,
    pub cancelled: bool,
    pub over: bool,
    pub protected: bool,
}

/// Takes the fan's per-event lock (held to the end of the transaction, so a
/// fan's concurrent holds are counted one after another against the limit)
/// and reads the event's rules. `None` if there is no such event.
pub async fn lock_fan_and_read_rules(
    tx: &mut PgConnection,
    event: EventId,
    fan: &FanId,
) -> Result<Option<HoldRules>, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT pg_advisory_xact_lock(hashtextextended($2 || '/' || $1::bigint::text, 7)) AS "locked!: ()",
                  hold_ttl_secs, hold_jitter_secs, max_seats_per_fan, on_sale_at, protected, cancelled,
                  on_sale_at <= now() AS "on_sale!", starts_at <= now() AS "over!"
           FROM events WHERE id = $1"#,
        event.0,
        fan.as_str(),
    )
    .fetch_optional(tx)
    .await?;
    Ok(row.map(|r| HoldRules {
        ttl_secs: r.hold_ttl_secs,
        jitter_secs: r.hold_jitter_secs,
        max_seats_per_fan: r.max_seats_per_fan,
        on_sale_at: r.on_sale_at,
        on_sale: r.on_sale,
        cancelled: r.cancelled,
        over: r.over,
        protected: r.protected,
    }))
}

/// Best available in one scope (event, section or tier, accessible or
/// not) chooses one request at a time: the lock is held to the end of the
/// transaction, so each choice reads the claims of the one before it and
/// concurrent fans asking for "the best two" do not all pick the same pair.
/// Taken after the fan's lock, always, so locks are taken in one order.
pub async fn lock_scope(
    tx: &mut PgConnection,
    event: EventId,
    section: Option<&str>,
    tier: Option<i16>,
    accessible: bool,
) -> Result<(), sqlx::Error> {
    let scope = format!(
        "best/{}/{}/{}/{}",
        event.0,
        section.unwrap_or("*"),
        tier.map_or(0, i32::from),
        accessible
    );
    sqlx::query!(
        r#"SELECT pg_advisory_xact_lock(hashtextextended($1, 7)) AS "locked!: ()""#,
        scope
    )
    .fetch_one(tx)
    .await?;
    Ok(())
}

/// Seats of one best-available scope with a live claim (held or sold), as
/// of now: run it after `lock_scope` to see everything committed before.
pub async fn live_seats_in_scope(
    tx: &mut PgConnection,
    event: EventId,
    section: Option<&str>,
    tier: Option<i16>,
    accessible: bool,
) -> Result<Vec<SeatId>, sqlx::Error> {
    let ids = sqlx::query_scalar!(
        r#"SELECT c.seat_id
           FROM seat_claims c
           JOIN seats s ON s.id = c.seat_id
           JOIN sections sc ON sc.id = s.section_id
           WHERE c.event_id = $1 AND c.during @> now()
             AND ($2::text IS NULL OR sc.code = $2)
             AND ($3::smallint IS NULL OR s.tier = $3)
             AND s.accessible = $4"#,
        event.0,
        section,
        tier,
        accessible,
    )
    .fetch_all(tx)
    .await?;
    Ok(ids.into_iter().map(SeatId).collect())
}

/// What one claim attempt did. The caller commits only if `claimed` is every
/// seat asked for; otherwise it rolls back and nothing happened.
#[derive(Debug)]
pub struct ClaimAttempt {
    /// Seats the fan already held or bought for this event before this hold.
    pub already: i32,
    /// How many of the seats have a price in this event.
    pub priced: i64,
    pub claimed: Vec<SeatId>,
    pub prices_cents: Vec<i64>,
    pub total_cents: i64,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

pub struct ClaimArgs<'a> {
    pub hold: HoldId,
    pub event: EventId,
    pub fan: &'a FanId,
    /// Ascending ids: the lock order that rules out deadlocks.
    pub seats: &'a [SeatId],
    /// The price tier of each seat, same order.
    pub tiers: &'a [i16],
    pub lifetime_secs: f64,
    pub max_seats_per_fan: i32,
}

/// The claim: in one statement, count what the fan already has, price the
/// seats from the event's tiers, write the hold, claim each seat for the
/// hold's lifetime, and log the seat change. Must run after
/// `lock_fan_and_read_rules` in the same transaction.
pub async fn claim_seats(
    tx: &mut PgConnection,
    a: ClaimArgs<'_>,
) -> Result<ClaimAttempt, sqlx::Error> {
    debug_assert!(
        a.seats.windows(2).all(|w| w[0] < w[1]),
        "seats must be sorted and distinct"
    );
    let seat_ids: Vec<i64> = a.seats.iter().map(|s| s.0).collect();
    let r = sqlx::query!(
        r#"WITH used AS (
               SELECT coalesce(sum(cardinality(seat_ids)), 0)::int AS n
               FROM holds
               WHERE event_id = $2 AND fan_id = $3
                 AND (state = 'converted' OR (state = 'active' AND expires_at > now()))
           ), priced AS (
               SELECT array_agg(t.price_cents ORDER BY u.ord) AS prices,
                      coalesce(sum(t.price_cents), 0)::bigint AS total,
                      count(*) AS n
               FROM unnest($4::bigint[], $5::smallint[]) WITH ORDINALITY AS u(seat_id, tier, ord)
               JOIN event_tiers t ON t.event_id = $2 AND t.tier = u.tier
           ), hold AS (
               INSERT INTO holds (id, event_id, fan_id, seat_ids, prices_cents, total_cents, created_at, expires_at)
               SELECT $1, $2, $3, $4, priced.prices, priced.total, now(), now() + make_interval(secs => $6)
               FROM used, priced
               WHERE used.n + cardinality($4::bigint[]) <= $7
                 AND priced.n = cardinality($4::bigint[])
               RETURNING id, expires_at
           ), claimed AS (
               INSERT INTO seat_claims (event_id, seat_id, hold_id, kind, during)
               SELECT $2, s.seat_id, hold.id, 'hold', tstzrange(now(), hold.expires_at)
               FROM hold, unnest($4::bigint[]) AS s(seat_id)
               ORDER BY s.seat_id
               ON CONFLICT DO NOTHING
               RETURNING seat_id
           ), logged AS (
               INSERT INTO seat_changes (event_id, seat_ids)
               SELECT $2, array_agg(seat_id) FROM claimed HAVING count(*) > 0
           )
           SELECT used.n AS "already!", priced.n AS "priced!", priced.prices, priced.total AS "total!",
                  (SELECT expires_at FROM hold) AS expires_at,
                  ARRAY(SELECT seat_id FROM claimed) AS "claimed!",
                  now() AS "now!"
           FROM used, priced"#,
        a.hold.0,
        a.event.0,
        a.fan.as_str(),
        &seat_ids,
        a.tiers,
        a.lifetime_secs,
        a.max_seats_per_fan,
    )
    .fetch_one(tx)
    .await?;
    Ok(ClaimAttempt {
        already: r.already,
        priced: r.priced,
        claimed: r.claimed.into_iter().map(SeatId).collect(),
        prices_cents: r.prices.unwrap_or_default(),
        total_cents: r.total,
        created_at: r.now,
        expires_at: r.expires_at,
    })
}

/// Ends an active, unexpired hold of this fan and frees its seats. Returns
/// false if there was no such hold (the caller finds out why).
pub async fn release_hold(
    tx: &mut PgConnection,
    hold: HoldId,
    fan: &FanId,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query!(
        r#"WITH h AS (
               UPDATE holds SET state = 'released', ended_at = now()
               WHERE id = $1 AND fan_id = $2 AND state = 'active' AND expires_at > now()
               RETURNING event_id, seat_ids
           ), freed AS (
               DELETE FROM seat_claims c USING h
               WHERE c.event_id = h.event_id AND c.seat_id = ANY(h.seat_ids) AND c.hold_id = $1 AND c.kind = 'hold'
               RETURNING c.seat_id
           ), logged AS (
               INSERT INTO seat_changes (event_id, seat_ids) SELECT event_id, seat_ids FROM h
           )
           SELECT (SELECT count(*) FROM h) AS "released!""#,
        hold.0,
        fan.as_str(),
    )
    .fetch_one(tx)
    .await?;
    Ok(r.released > 0)
}

/// Turns an active, unexpired hold into a sale: each seat's claim becomes
/// open-ended. Returns the seats sold, or `None` if the hold was not active
/// and unexpired. If another claim overlaps (the hold had lapsed and someone
/// else claimed a seat), the exclusion constraint refuses the statement.
pub async fn sell_hold(
    tx: &mut PgConnection,
    hold: HoldId,
) -> Result<Option<Vec<SeatId>>, sqlx::Error> {
    let r = sqlx::query!(
        r#"WITH h AS (
               UPDATE holds SET state = 'converted', ended_at = now()
               WHERE id = $1 AND state = 'active' AND expires_at > now()
               RETURNING event_id, seat_ids
           ), sold AS (
               UPDATE seat_claims c SET kind = 'sale', during = tstzrange(now(), NULL)
               FROM h
               WHERE c.event_id = h.event_id AND c.seat_id = ANY(h.seat_ids) AND c.hold_id = $1 AND c.kind = 'hold'
               RETURNING c.seat_id
           ), logged AS (
               INSERT INTO seat_changes (event_id, seat_ids) SELECT event_id, seat_ids FROM h
           )
           SELECT (SELECT count(*) FROM h) AS "converted!", ARRAY(SELECT seat_id FROM sold) AS "sold!""#,
        hold.0,
    )
    .fetch_one(tx)
    .await?;
    Ok((r.converted > 0).then(|| r.sold.into_iter().map(SeatId).collect()))
}

/// The reaper's step: deletes up to `batch` hold claims whose time is up,
/// marks their holds expired and logs the freed seats. Safe to run on many
/// instances at once (SKIP LOCKED). Correctness never depends on it running:
/// an ended claim does not block anyone.
pub async fn reap_expired(conn: &mut PgConnection, batch: i64) -> Result<u64, sqlx::Error> {
    let n = sqlx::query_scalar!(
        r#"WITH doomed AS (
               SELECT id FROM seat_claims
               WHERE kind = 'hold' AND upper(during) <= now()
               ORDER BY upper(during)
               LIMIT $1
               FOR UPDATE SKIP LOCKED
           ), gone AS (
               DELETE FROM seat_claims c USING doomed d WHERE c.id = d.id
               RETURNING c.event_id, c.seat_id, c.hold_id
           ), ended AS (
               UPDATE holds h SET state = 'expired', ended_at = h.expires_at
               WHERE h.id IN (SELECT hold_id FROM gone) AND h.state = 'active'
           ), logged AS (
               INSERT INTO seat_changes (event_id, seat_ids)
               SELECT event_id, array_agg(seat_id) FROM gone GROUP BY event_id
           )
           SELECT count(*) AS "n!" FROM gone"#,
        batch
    )
    .fetch_one(conn)
    .await?;
    Ok(n as u64)
}
