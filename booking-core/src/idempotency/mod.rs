//! Idempotency keys: every mutating call carries one, and a retry with the
//! same key gets the first answer and changes nothing.
//!
//! The record of a successful change is written in the same transaction as
//! the change, so a crash can never leave a change without its record (a
//! retry would then repeat it) or a record without its change. A concurrent
//! retry blocks on the first request's uncommitted record and then reads it.
//! Refusals are recorded after the failed transaction has rolled back.

use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};

use crate::ids::{FanId, HoldId};

/// A client's Idempotency-Key: 1 to 255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

#[derive(Debug, thiserror::Error)]
#[error("an Idempotency-Key must be 1 to 255 visible ASCII characters")]
pub struct BadKey;

impl IdempotencyKey {
    pub fn parse(raw: &str) -> Result<Self, BadKey> {
        let ok = !raw.is_empty() && raw.len() <= 255 && raw.bytes().all(|b| b.is_ascii_graphic());
        if ok {
            Ok(IdempotencyKey(raw.to_owned()))
        } else {
            Err(BadKey)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a request asked for, reduced to a hash: the same key with another
/// fingerprint is a client bug, refused rather than guessed at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint(pub Vec<u8>);

impl Fingerprint {
    /// `operation` names the call (e.g. `hold.create:42`); `request` is its
    /// parsed, canonical form, so whitespace or key order do not matter.
    pub fn of<T: serde::Serialize>(operation: &str, request: &T) -> Fingerprint {
        let mut h = Sha256::new();
        h.update(operation.as_bytes());
        h.update([0]);
        // Serialising a plain request struct cannot fail.
        h.update(serde_json::to_vec(request).expect("serialise request"));
        Fingerprint(h.finalize().to_vec())
    }
}

/// The first answer given to a key.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    HoldCreated(HoldId),
    HoldReleased(HoldId),
    /// A refusal, as the domain error's JSON form.
    Refused(Value),
}

impl Answer {
    fn columns(&self) -> (&'static str, Option<uuid::Uuid>, Option<&Value>) {
        match self {
            Answer::HoldCreated(h) => ("hold_created", Some(h.0), None),
            Answer::HoldReleased(h) => ("hold_released", Some(h.0), None),
            Answer::Refused(v) => ("refused", None, Some(v)),
        }
    }
}

/// What a key's record says about the request in hand.
#[derive(Debug, Clone, PartialEq)]
pub enum Prior {
    /// The key is new: go ahead.
    None,
    /// Same key, same request: give this answer again.
    Replay(Answer),
    /// Same key, different request.
    Mismatch,
}

struct Row {
    fingerprint: Vec<u8>,
    outcome: String,
    hold_id: Option<uuid::Uuid>,
    refusal: Option<Value>,
}

fn judge(row: Row, fingerprint: &Fingerprint) -> Prior {
    if row.fingerprint != fingerprint.0 {
        return Prior::Mismatch;
    }
    let answer = match (row.outcome.as_str(), row.hold_id, row.refusal) {
        ("hold_created", Some(h), _) => Answer::HoldCreated(HoldId(h)),
        ("hold_released", Some(h), _) => Answer::HoldReleased(HoldId(h)),
        (_, _, Some(v)) => Answer::Refused(v),
        // The table's CHECK makes other shapes impossible; treat as a clash.
        _ => return Prior::Mismatch,
    };
    Prior::Replay(answer)
}

async fn lookup(
    conn: &mut PgConnection,
    fan: &FanId,
    key: &IdempotencyKey,
    fingerprint: &Fingerprint,
) -> Result<Prior, sqlx::Error> {
    let row = sqlx::query_as!(
        Row,
        "SELECT fingerprint, outcome, hold_id, refusal FROM idempotency_keys WHERE fan_id = $1 AND key = $2",
        fan.as_str(),
        key.as_str()
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map_or(Prior::None, |r| judge(r, fingerprint)))
}

/// Inside the transaction that makes the change: records `answer` for the
/// key, or, if the key was used already, says what the first answer was (the
/// caller then rolls back). Waits for a concurrent request with the same key.
pub async fn record_in_tx(
    tx: &mut PgConnection,
    fan: &FanId,
    key: &IdempotencyKey,
    fingerprint: &Fingerprint,
    answer: &Answer,
) -> Result<Prior, sqlx::Error> {
    let (outcome, hold_id, refusal) = answer.columns();
    let inserted = sqlx::query_scalar!(
        r#"INSERT INTO idempotency_keys (fan_id, key, fingerprint, outcome, hold_id, refusal)
           VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT DO NOTHING
           RETURNING true AS "inserted!""#,
        fan.as_str(),
        key.as_str(),
        &fingerprint.0,
        outcome,
        hold_id,
        refusal,
    )
    .fetch_optional(&mut *tx)
    .await?;
    match inserted {
        Some(_) => Ok(Prior::None),
        None => lookup(tx, fan, key, fingerprint).await,
    }
}

/// After a refused change has rolled back: records the refusal, unless a
/// concurrent request with the same key got there first, in which case its
/// answer is returned and is the one to give.
pub async fn record_refusal(
    pool: &PgPool,
    fan: &FanId,
    key: &IdempotencyKey,
    fingerprint: &Fingerprint,
    refusal: Value,
) -> Result<Prior, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    record_in_tx(&mut conn, fan, key, fingerprint, &Answer::Refused(refusal)).await
}

/// Forgets keys older than `max_age_secs`, a batch at a time.
pub async fn prune(pool: &PgPool, max_age_secs: f64, batch: i64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        r#"DELETE FROM idempotency_keys WHERE ctid = ANY(ARRAY(
               SELECT ctid FROM idempotency_keys
               WHERE created_at < now() - make_interval(secs => $1)
               LIMIT $2))"#,
        max_age_secs,
        batch
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked() {
        assert!(IdempotencyKey::parse("order-123_abc").is_ok());
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse("has space").is_err());
        assert!(IdempotencyKey::parse(&"x".repeat(256)).is_err());
        assert!(IdempotencyKey::parse("naïve").is_err());
    }

    #[test]
    fn fingerprints_follow_content_not_form() {
        let a: Value = serde_json::from_str(r#"{"seat_ids":[1,2]}"#).unwrap();
        let b: Value = serde_json::from_str("{ \"seat_ids\" : [1, 2] }").unwrap();
        let c: Value = serde_json::from_str(r#"{"seat_ids":[2,1]}"#).unwrap();
        assert_eq!(Fingerprint::of("op", &a), Fingerprint::of("op", &b));
        assert_ne!(Fingerprint::of("op", &a), Fingerprint::of("op", &c));
        assert_ne!(Fingerprint::of("op", &a), Fingerprint::of("other", &a));
    }
}
