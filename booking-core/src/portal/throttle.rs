//! Slows down password guessing on the operators' sign-in, across every core
//! instance (the counts are the audit log's rows, migration 0014). Failures
//! in the last quarter hour are counted three ways; past each threshold the
//! next attempt must wait a delay (2 s) that doubles with every further
//! failure, counted from the last one:
//!
//! - the same account from the same address: after 5, up to 15 minutes;
//! - any account from one address (credential stuffing): after 30, up to
//!   15 minutes;
//! - one account from any address (a spread-out attack): after 50, up to
//!   one minute only, so an attacker can never lock the owner out: from an
//!   address of their own the owner waits at most that minute.
//!
//! A backoff, never a hard lock; a successful sign-in clears nothing (the
//! window does), so it cannot be used to reset an attacker's count.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

/// How far back failures count.
const WINDOW_SECS: f64 = 15.0 * 60.0;

struct Rule {
    /// Failures allowed before any delay.
    free: i64,
    /// The longest delay, in seconds.
    cap_secs: i64,
}

const SAME_ACCOUNT_AND_ADDRESS: Rule = Rule {
    free: 5,
    cap_secs: 15 * 60,
};
const ONE_ADDRESS: Rule = Rule {
    free: 30,
    cap_secs: 15 * 60,
};
const ONE_ACCOUNT: Rule = Rule { free: 50, cap_secs: 60 };

/// Whether an attempt may check its password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// Go ahead; the attempt is in the log as refused until `succeeded`.
    Go(i64),
    /// Wait this many seconds (the attempt is in the log as throttled).
    Wait(u64),
}

/// Recent failures counted three ways, with the database's clock.
#[derive(sqlx::FromRow)]
struct Counts {
    pair: i64,
    pair_last: Option<DateTime<Utc>>,
    address: i64,
    address_last: Option<DateTime<Utc>>,
    account: i64,
    account_last: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
}

/// Failures so far and the last one's time.
struct Failures {
    count: i64,
    last: Option<DateTime<Utc>>,
}

impl Failures {
    /// Seconds still to wait under `rule`, if any.
    fn wait(&self, rule: &Rule, now: DateTime<Utc>) -> Option<u64> {
        let over = self.count - rule.free;
        let last = self.last?;
        if over < 0 {
            return None;
        }
        // 2 s doubled per failure over; past 2^20 s every cap is reached.
        let delay = if over >= 20 {
            rule.cap_secs
        } else {
            (2i64 << over).min(rule.cap_secs)
        };
        let left = delay - (now - last).num_seconds();
        (left > 0).then(|| u64::try_from(left).unwrap_or(1))
    }
}

/// Decides whether this attempt may check its password, and logs it. The
/// check and the log entry are one step under locks per account and per
/// address: concurrent guesses each see the ones before them (logged as
/// refused until proven otherwise), so firing many at once gains nothing.
pub async fn attempt(pool: &PgPool, email: &str, address: &str) -> Result<Attempt, sqlx::Error> {
    let mut tx = pool.begin().await?;
    // Account first, then address: one order, no deadlock.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('sign-in account ' || $1))")
        .bind(email)
        .execute(&mut *tx)
        .await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('sign-in address ' || $1))")
        .bind(address)
        .execute(&mut *tx)
        .await?;
    let c: Counts = sqlx::query_as(
        r#"WITH recent AS (
               SELECT email, address, at FROM operator_sign_ins
               WHERE outcome = 'refused' AND at > now() - make_interval(secs => $3)
                 AND (email = $1 OR address = $2)
           )
           SELECT count(*) FILTER (WHERE email = $1 AND address = $2) AS pair,
                  max(at) FILTER (WHERE email = $1 AND address = $2) AS pair_last,
                  count(*) FILTER (WHERE address = $2) AS address,
                  max(at) FILTER (WHERE address = $2) AS address_last,
                  count(*) FILTER (WHERE email = $1) AS account,
                  max(at) FILTER (WHERE email = $1) AS account_last,
                  clock_timestamp() AS now
           FROM recent"#,
    )
    .bind(email)
    .bind(address)
    .bind(WINDOW_SECS)
    .fetch_one(&mut *tx)
    .await?;
    let now = c.now;
    let pair = Failures {
        count: c.pair,
        last: c.pair_last,
    };
    let address_wide = Failures {
        count: c.address,
        last: c.address_last,
    };
    let account_wide = Failures {
        count: c.account,
        last: c.account_last,
    };
    let wait = [
        pair.wait(&SAME_ACCOUNT_AND_ADDRESS, now),
        address_wide.wait(&ONE_ADDRESS, now),
        account_wide.wait(&ONE_ACCOUNT, now),
    ]
    .into_iter()
    .flatten()
    .max();
    let outcome = if wait.is_some() { "throttled" } else { "refused" };
    // clock_timestamp(): the moment of this attempt, not of the transaction's
    // start, which may have waited for the locks.
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO operator_sign_ins (at, email, address, outcome) VALUES (clock_timestamp(), $1, $2, $3) RETURNING id",
    )
    .bind(email)
    .bind(address)
    .bind(outcome)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(match wait {
        Some(secs) => Attempt::Wait(secs),
        None => Attempt::Go(id),
    })
}

/// The attempt's password was right.
pub async fn succeeded(pool: &PgPool, attempt: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE operator_sign_ins SET outcome = 'signed_in' WHERE id = $1")
        .bind(attempt)
        .execute(pool)
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_doubles_past_the_free_failures_and_stops_at_its_cap() {
        let now = Utc::now();
        let at = |count, secs_ago| Failures {
            count,
            last: Some(now - chrono::Duration::seconds(secs_ago)),
        };
        assert_eq!(at(4, 0).wait(&SAME_ACCOUNT_AND_ADDRESS, now), None);
        assert_eq!(at(5, 0).wait(&SAME_ACCOUNT_AND_ADDRESS, now), Some(2));
        assert_eq!(at(8, 0).wait(&SAME_ACCOUNT_AND_ADDRESS, now), Some(16));
        assert_eq!(at(8, 3).wait(&SAME_ACCOUNT_AND_ADDRESS, now), Some(13));
        assert_eq!(at(8, 17).wait(&SAME_ACCOUNT_AND_ADDRESS, now), None);
        assert_eq!(at(60, 0).wait(&SAME_ACCOUNT_AND_ADDRESS, now), Some(900));
        assert_eq!(
            at(500, 0).wait(&ONE_ACCOUNT, now),
            Some(60),
            "the owner waits a minute at most"
        );
        assert_eq!(Failures { count: 0, last: None }.wait(&ONE_ADDRESS, now), None);
    }
}
