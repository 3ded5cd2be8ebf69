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
//! Seats are claimed in ascending id order so that two multi-seat claims
//! always wait on each other in the same order and cannot deadlock.
//!
//! Making a hold is one call of the `place_hold` function
//! (migrations/0003_place_hold.sql): one round trip, one commit.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgConnection;

use crate::ids::{EventId, FanId, HoldId, SeatId};

pub struct PlaceArgs<'a> {
    pub hold: HoldId,
    pub event: EventId,
    pub fan: &'a FanId,
    pub key: &'a str,
    pub fingerprint: &'a [u8],
    /// Ascending ids: the lock order that rules out deadlocks.
    pub seats: Vec<SeatId>,
    /// The price tier of each seat, same order.
    pub tiers: Vec<i16>,
    /// In [-1, 1]: where this hold's expiry falls within the event's jitter.
    pub jitter: f64,
    pub admitted: bool,
    /// Wait for the WAL flush at commit (`holds.durable_commit`).
    pub durable: bool,
}

/// What `place_hold` did.
#[derive(Debug)]
pub enum Placed {
    Held {
        hold: HoldId,
        seat_ids: Vec<SeatId>,
        created_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        prices_cents: Vec<i64>,
        total_cents: i64,
    },
    /// The key was used before for this very request: its first answer.
    ReplayHold(HoldId),
    ReplayRefusal(Value),
    /// Refused (and recorded against the key): the error as JSON.
    Refused(Value),
}

#[tracing::instrument(name = "sql.place_hold", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn place_hold(conn: &mut PgConnection, a: PlaceArgs<'_>) -> Result<Placed, sqlx::Error> {
    debug_assert!(
        a.seats.windows(2).all(|w| w[0] < w[1]),
        "seats must be sorted and distinct"
    );
    let seat_ids: Vec<i64> = a.seats.iter().map(|s| s.0).collect();
    let r = sqlx::query!(
        r#"SELECT outcome AS "outcome!", hold_id, refusal, created_at, expires_at, prices_cents, total_cents
           FROM place_hold($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"#,
        a.hold.0,
        a.event.0,
        a.fan.as_str(),
        a.key,
        a.fingerprint,
        &seat_ids,
        &a.tiers,
        a.jitter,
        a.admitted,
        a.durable,
    )
    .fetch_one(conn)
    .await?;
    let missing = || sqlx::Error::Protocol("place_hold returned an incomplete row".into());
    Ok(match r.outcome.as_str() {
        "held" => Placed::Held {
            hold: HoldId(r.hold_id.ok_or_else(missing)?),
            seat_ids: a.seats,
            created_at: r.created_at.ok_or_else(missing)?,
            expires_at: r.expires_at.ok_or_else(missing)?,
            prices_cents: r.prices_cents.ok_or_else(missing)?,
            total_cents: r.total_cents.ok_or_else(missing)?,
        },
        "replay" => match (r.hold_id, r.refusal) {
            (Some(h), _) => Placed::ReplayHold(HoldId(h)),
            (None, Some(refusal)) => Placed::ReplayRefusal(refusal),
            _ => return Err(missing()),
        },
        _ => Placed::Refused(r.refusal.ok_or_else(missing)?),
    })
}

/// Best available in one scope (event, section or tier, accessible or
/// not) chooses one request at a time: the lock is held to the end of the
/// transaction, so each choice reads the claims of the one before it and
/// concurrent fans asking for "the best two" do not all pick the same pair.
/// Taken before the fan's lock (inside `place_hold`), always, so locks are
/// always taken in one order.
#[tracing::instrument(name = "sql.lock_scope", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
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

/// Every live claim of an event: (seat, sold?). Read from the primary.
pub async fn live_claims(
    conn: &mut PgConnection,
    event: EventId,
) -> Result<(Vec<(SeatId, bool)>, DateTime<Utc>), sqlx::Error> {
    let r = sqlx::query!(
        // One pass over the event's claims (a stadium's is 50,000 rows).
        r#"SELECT now() AS "now!",
                  coalesce(array_agg(seat_id) FILTER (WHERE kind = 'hold'), '{}') AS "held!",
                  coalesce(array_agg(seat_id) FILTER (WHERE kind = 'sale'), '{}') AS "sold!"
           FROM seat_claims WHERE event_id = $1 AND during @> now()"#,
        event.0
    )
    .fetch_one(conn)
    .await?;
    let claims = r
        .held
        .into_iter()
        .map(|s| (SeatId(s), false))
        .chain(r.sold.into_iter().map(|s| (SeatId(s), true)))
        .collect();
    Ok((claims, r.now))
}

/// Ends an active, unexpired hold of this fan and frees its seats. Returns
/// false if there was no such hold (the caller finds out why).
#[tracing::instrument(name = "sql.release_hold", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn release_hold(tx: &mut PgConnection, hold: HoldId, fan: &FanId) -> Result<bool, sqlx::Error> {
    let r = sqlx::query!(
        r#"WITH h AS (
               UPDATE holds SET state = 'released', ended_at = now()
               WHERE id = $1 AND fan_id = $2 AND state = 'active' AND expires_at > now()
               RETURNING event_id, seat_ids
           ), freed AS (
               DELETE FROM seat_claims c USING h, unnest(h.seat_ids) AS s(seat_id)
               WHERE c.event_id = h.event_id AND c.seat_id = s.seat_id AND c.hold_id = $1 AND c.kind = 'hold'
               RETURNING c.seat_id
           )
           SELECT (SELECT count(*) FROM h) AS "released!", (SELECT count(*) FROM freed) AS "freed!""#,
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
#[tracing::instrument(name = "sql.sell_hold", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn sell_hold(tx: &mut PgConnection, hold: HoldId) -> Result<Option<Vec<SeatId>>, sqlx::Error> {
    let r = sqlx::query!(
        r#"WITH h AS (
               UPDATE holds SET state = 'converted', ended_at = now()
               WHERE id = $1 AND state = 'active' AND expires_at > now()
               RETURNING event_id, seat_ids
           ), sold AS (
               UPDATE seat_claims c SET kind = 'sale', during = tstzrange(now(), NULL)
               FROM h, unnest(h.seat_ids) AS s(seat_id)
               WHERE c.event_id = h.event_id AND c.seat_id = s.seat_id AND c.hold_id = $1 AND c.kind = 'hold'
               RETURNING c.seat_id
           )
           SELECT (SELECT count(*) FROM h) AS "converted!", ARRAY(SELECT seat_id FROM sold) AS "sold!""#,
        hold.0,
    )
    .fetch_one(tx)
    .await?;
    Ok((r.converted > 0).then(|| r.sold.into_iter().map(SeatId).collect()))
}

/// The reaper's step: deletes up to `batch` hold claims whose time is up and
/// marks their holds expired. Safe to run on many instances at once (SKIP
/// LOCKED). Correctness never depends on it running: an ended claim does not
/// block anyone, and seat maps see it end by the clock.
pub async fn reap_expired(conn: &mut PgConnection, batch: i64) -> Result<u64, sqlx::Error> {
    let n = sqlx::query_scalar!(
        r#"WITH doomed AS (
               SELECT ctid FROM seat_claims
               WHERE kind = 'hold' AND upper(during) <= now()
               LIMIT $1
               FOR UPDATE SKIP LOCKED
           ), gone AS (
               DELETE FROM seat_claims c USING doomed d WHERE c.ctid = d.ctid
               RETURNING c.hold_id
           ), ended AS (
               UPDATE holds h SET state = 'expired', ended_at = h.expires_at
               WHERE h.id IN (SELECT hold_id FROM gone) AND h.state = 'active'
           )
           SELECT count(*) AS "n!" FROM gone"#,
        batch
    )
    .fetch_one(conn)
    .await?;
    Ok(n as u64)
}

/// A payment that arrived after its hold lapsed: claims the hold's seats for
/// sale again, all or none, if nobody else has them now. Returns whether all
/// were claimed (if not, nothing was). The hold is marked converted either
/// way it ends up sold; the claim statement is the same kind as a hold's,
/// so the exclusion constraint decides here too.
pub async fn reclaim_for_sale(
    tx: &mut PgConnection,
    event: EventId,
    hold: HoldId,
    seats: &[SeatId],
) -> Result<bool, sqlx::Error> {
    let mut ids: Vec<i64> = seats.iter().map(|s| s.0).collect();
    ids.sort_unstable();
    let claimed = sqlx::query_scalar!(
        r#"WITH claimed AS (
               INSERT INTO seat_claims (event_id, seat_id, hold_id, kind, during)
               SELECT $1, s.seat_id, $2, 'sale', tstzrange(now(), NULL)
               FROM unnest($3::bigint[]) AS s(seat_id)
               ORDER BY s.seat_id
               ON CONFLICT DO NOTHING
               RETURNING seat_id
           )
           SELECT count(*) AS "n!" FROM claimed"#,
        event.0,
        hold.0,
        &ids
    )
    .fetch_one(&mut *tx)
    .await?;
    if claimed as usize != ids.len() {
        sqlx::query!(
            "DELETE FROM seat_claims WHERE event_id = $1 AND hold_id = $2 AND kind = 'sale'",
            event.0,
            hold.0
        )
        .execute(&mut *tx)
        .await?;
        return Ok(false);
    }
    sqlx::query!(
        "UPDATE holds SET state = 'converted', ended_at = coalesce(ended_at, now()) WHERE id = $1 AND state <> 'converted'",
        hold.0
    )
    .execute(&mut *tx)
    .await?;
    Ok(true)
}

/// Puts sold seats back on sale (a refund, where the event's policy says
/// so): their sale claims end now. Returns how many were freed.
pub async fn unsell(tx: &mut PgConnection, event: EventId, seats: &[SeatId]) -> Result<u64, sqlx::Error> {
    let ids: Vec<i64> = seats.iter().map(|s| s.0).collect();
    let r = sqlx::query!(
        "DELETE FROM seat_claims WHERE event_id = $1 AND seat_id = ANY($2) AND kind = 'sale'",
        event.0,
        &ids
    )
    .execute(&mut *tx)
    .await?;
    Ok(r.rows_affected())
}
