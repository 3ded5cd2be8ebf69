//! Idempotency keys: every mutating call carries one, and a retry with the
//! same key gets the first answer and changes nothing.
//!
//! The record of a change is written in the same transaction as the change,
//! so a crash can never leave a change without its record (a retry would then
//! repeat it) or a record without its change. A new hold carries its key on
//! the hold row itself; releases and refusals are kept in idempotency_keys.
//! Keys are per fan, and kept for a day.

use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};

use crate::ids::{FanId, HoldId};

/// The answer to a call made with an Idempotency-Key (a hold, a release, an
/// order, a refund, a transfer, a resale listing), and whether it is the
/// first answer to that key given again.
#[derive(Debug)]
pub struct Outcome<T> {
    pub value: T,
    pub replayed: bool,
}

impl<T> Outcome<T> {
    /// What this call did.
    pub fn new(value: T) -> Self {
        Outcome { value, replayed: false }
    }

    /// What the first call with this key did.
    pub fn replay(value: T) -> Self {
        Outcome { value, replayed: true }
    }
}

/// The longest Idempotency-Key taken, in characters.
const MAX_KEY_LEN: usize = 255;

/// A client's Idempotency-Key: 1 to 255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

#[derive(Debug, thiserror::Error)]
#[error("an Idempotency-Key must be 1 to 255 visible ASCII characters")]
pub struct BadKey;

impl IdempotencyKey {
    pub fn parse(raw: &str) -> Result<Self, BadKey> {
        let ok = !raw.is_empty() && raw.len() <= MAX_KEY_LEN && raw.bytes().all(|b| b.is_ascii_graphic());
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
    /// A new hold. Recorded on the hold itself (its key and fingerprint),
    /// in the same statement that makes it; see `place_hold`.
    HoldCreated(HoldId),
    HoldReleased(HoldId),
    /// A refusal, as the domain error's JSON form.
    Refused(Value),
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

/// Looks a key up wherever answers are kept: on holds, and in
/// idempotency_keys.
pub async fn lookup(
    conn: &mut PgConnection,
    fan: &FanId,
    key: &IdempotencyKey,
    fingerprint: &Fingerprint,
) -> Result<Prior, sqlx::Error> {
    let r = sqlx::query!(
        r#"SELECT h.id AS "hold?", h.fingerprint AS "hold_fingerprint?",
                  k.fingerprint AS "fingerprint?", k.outcome AS "outcome?", k.hold_id, k.refusal
           FROM (SELECT 1) one
           LEFT JOIN holds h ON h.fan_id = $1 AND h.idempotency_key = $2
           LEFT JOIN idempotency_keys k ON k.fan_id = $1 AND k.key = $2"#,
        fan.as_str(),
        key.as_str()
    )
    .fetch_one(conn)
    .await?;
    if let (Some(hold), Some(fp)) = (r.hold, r.hold_fingerprint) {
        return Ok(if fp == fingerprint.0 {
            Prior::Replay(Answer::HoldCreated(HoldId(hold)))
        } else {
            Prior::Mismatch
        });
    }
    let (Some(fp), Some(outcome)) = (r.fingerprint, r.outcome) else {
        return Ok(Prior::None);
    };
    if fp != fingerprint.0 {
        return Ok(Prior::Mismatch);
    }
    Ok(match (outcome.as_str(), r.hold_id, r.refusal) {
        ("hold_released", Some(h), _) => Prior::Replay(Answer::HoldReleased(HoldId(h))),
        ("refused", _, Some(v)) => Prior::Replay(Answer::Refused(v)),
        // The table's CHECK makes other shapes impossible; treat as a clash.
        _ => Prior::Mismatch,
    })
}

/// Inside the transaction that makes the change: records `answer` (a
/// release or a refusal) for the key, or, if the key was used already, says
/// what the first answer was (the caller then rolls back). Waits for a
/// concurrent request with the same key to finish.
pub async fn record_in_tx(
    tx: &mut PgConnection,
    fan: &FanId,
    key: &IdempotencyKey,
    fingerprint: &Fingerprint,
    answer: &Answer,
) -> Result<Prior, sqlx::Error> {
    let prior = lookup(tx, fan, key, fingerprint).await?;
    if prior != Prior::None {
        return Ok(prior);
    }
    let (outcome, hold_id, refusal) = match answer {
        Answer::HoldReleased(h) => ("hold_released", Some(h.0), None),
        Answer::Refused(v) => ("refused", None, Some(v)),
        // New holds are recorded by place_hold, on the hold row.
        Answer::HoldCreated(_) => return Ok(Prior::None),
    };
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

/// Outside any transaction: records a refusal, unless the key already has
/// an answer, in which case that answer is returned and is the one to give.
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
