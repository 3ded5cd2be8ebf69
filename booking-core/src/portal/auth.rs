//! Operators' sign-in: Argon2id password hashes, random bearer tokens of
//! which only a SHA-256 is stored, sessions that expire, and the setup of
//! organisations and operators (the seeder and `booking-core operator add`).

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::ids::{OperatorId, OrganisationId};
use crate::portal::throttle::{self, Attempt};
use crate::portal::{Operator, OrganisationRef, PortalError, Role};

/// How long a session lasts: a working day.
pub const SESSION_TTL: Duration = Duration::hours(12);

/// Shortest password `operator add` accepts.
pub const MIN_PASSWORD_LEN: usize = 8;

/// What a successful sign-in returns.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = OperatorSignedIn)]
pub struct SignedIn {
    /// Send as `Authorization: Bearer <token>`. Shown once; only its hash is kept.
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub operator: Operator,
}

/// An authenticated request's operator and when the session ends.
#[derive(Debug, Clone)]
pub struct Session {
    pub operator: Operator,
    pub expires_at: DateTime<Utc>,
}

/// Argon2id with the crate's default (OWASP) parameters, salt from the OS.
pub fn hash_password(password: &str) -> Result<String, PortalError> {
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| PortalError::Hashing(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PortalError::Hashing(e.to_string()))
}

fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
        .unwrap_or(false)
}

/// A hash of nothing anyone knows: an unknown e-mail is checked against it,
/// so it takes as long as a wrong password and the answer tells nothing.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        let mut random = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut random);
        hash_password(&URL_SAFE_NO_PAD.encode(random)).unwrap_or_default()
    })
}

fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

pub fn normalise_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Checks the password (off the async threads: Argon2 is slow on purpose)
/// and opens a session. `address` is the client's, for the throttle and the
/// audit log (`throttle.rs`): an attempt that must wait is refused before
/// its password is checked.
pub async fn sign_in(pool: &PgPool, email: &str, password: &str, address: &str) -> Result<SignedIn, PortalError> {
    let email = normalise_email(email);
    let attempt = match throttle::attempt(pool, &email, address).await? {
        Attempt::Go(attempt) => attempt,
        Attempt::Wait(retry_after_secs) => {
            tracing::warn!(%address, retry_after_secs, "operator sign-in throttled");
            return Err(PortalError::SignInThrottled { retry_after_secs });
        }
    };
    let row = sqlx::query!(
        r#"SELECT o.id, o.password_hash FROM operators o WHERE lower(o.email) = $1"#,
        email
    )
    .fetch_optional(pool)
    .await?;
    let (id, hash) = match row {
        Some(r) => (Some(OperatorId(r.id)), r.password_hash),
        None => (None, decoy_hash().to_owned()),
    };
    let password = password.to_owned();
    let ok = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .unwrap_or(false);
    let Some(id) = id.filter(|_| ok) else {
        tracing::info!(%address, known_account = id.is_some(), "operator sign-in refused");
        return Err(PortalError::InvalidCredentials);
    };
    throttle::succeeded(pool, attempt).await?;
    tracing::info!(operator_id = %id.0, %address, "operator signed in");
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    let token = URL_SAFE_NO_PAD.encode(raw);
    let expires_at = sqlx::query_scalar!(
        r#"INSERT INTO operator_sessions (token_hash, operator_id, expires_at)
           VALUES ($1, $2, now() + make_interval(secs => $3))
           RETURNING expires_at"#,
        token_hash(&token),
        id.0,
        SESSION_TTL.num_seconds() as f64,
    )
    .fetch_one(pool)
    .await?;
    // Lapsed sessions of this operator go when a new one starts.
    sqlx::query!(
        "DELETE FROM operator_sessions WHERE operator_id = $1 AND expires_at <= now()",
        id.0
    )
    .execute(pool)
    .await?;
    let operator = load_operator(pool, id).await?.ok_or(PortalError::InvalidCredentials)?;
    Ok(SignedIn {
        token,
        expires_at,
        operator,
    })
}

/// The operator whose live session this token is.
pub async fn authenticate(pool: &PgPool, token: &str) -> Result<Session, PortalError> {
    let row = sqlx::query!(
        r#"SELECT s.expires_at, o.id, o.email, o.name, o.role, g.id AS org_id, g.name AS org_name
           FROM operator_sessions s
           JOIN operators o ON o.id = s.operator_id
           JOIN organisations g ON g.id = o.organisation_id
           WHERE s.token_hash = $1 AND s.expires_at > now()"#,
        token_hash(token)
    )
    .fetch_optional(pool)
    .await?
    .ok_or(PortalError::AuthRequired)?;
    Ok(Session {
        expires_at: row.expires_at,
        operator: Operator {
            id: OperatorId(row.id),
            email: row.email,
            name: row.name,
            role: Role::parse(&row.role).unwrap_or(Role::Viewer),
            organisation: OrganisationRef {
                id: OrganisationId(row.org_id),
                name: row.org_name,
            },
        },
    })
}

/// Ends the session of this token (nothing if there is none).
pub async fn sign_out(pool: &PgPool, token: &str) -> Result<(), PortalError> {
    sqlx::query!("DELETE FROM operator_sessions WHERE token_hash = $1", token_hash(token))
        .execute(pool)
        .await?;
    Ok(())
}

async fn load_operator(pool: &PgPool, id: OperatorId) -> Result<Option<Operator>, PortalError> {
    let row = sqlx::query!(
        r#"SELECT o.email, o.name, o.role, g.id AS org_id, g.name AS org_name
           FROM operators o JOIN organisations g ON g.id = o.organisation_id
           WHERE o.id = $1"#,
        id.0
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| Operator {
        id,
        email: r.email,
        name: r.name,
        role: Role::parse(&r.role).unwrap_or(Role::Viewer),
        organisation: OrganisationRef {
            id: OrganisationId(r.org_id),
            name: r.org_name,
        },
    }))
}

/// The organisation of this name, made if missing.
pub async fn ensure_organisation(pool: &PgPool, name: &str) -> Result<OrganisationId, PortalError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(PortalError::InvalidOperator {
            reason: "an organisation's name must be 1-200 characters".into(),
        });
    }
    sqlx::query!(
        "INSERT INTO organisations (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
        name
    )
    .execute(pool)
    .await?;
    let id = sqlx::query_scalar!("SELECT id FROM organisations WHERE name = $1", name)
        .fetch_one(pool)
        .await?;
    Ok(OrganisationId(id))
}

/// What `upsert_operator` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperatorOutcome {
    Created(OperatorId),
    Updated(OperatorId),
    /// `only_if_missing` and it existed: nothing touched.
    Existing(OperatorId),
}

impl OperatorOutcome {
    pub fn id(self) -> OperatorId {
        match self {
            OperatorOutcome::Created(id) | OperatorOutcome::Updated(id) | OperatorOutcome::Existing(id) => id,
        }
    }
}

pub struct NewOperator<'a> {
    pub organisation: OrganisationId,
    pub email: &'a str,
    /// None: an existing operator keeps its name (a new one gets none).
    pub name: Option<&'a str>,
    pub role: Role,
    pub password: &'a str,
}

/// Creates the operator, or (unless `only_if_missing`) sets the role, name
/// (if given) and password of an existing one of the same organisation. An e-mail
/// address used in another organisation is refused.
pub async fn upsert_operator(
    pool: &PgPool,
    new: &NewOperator<'_>,
    only_if_missing: bool,
) -> Result<OperatorOutcome, PortalError> {
    let email = normalise_email(new.email);
    let invalid = |reason: &str| PortalError::InvalidOperator { reason: reason.into() };
    let at = email.find('@');
    if !(at.is_some_and(|i| i > 0 && i + 1 < email.len()) && email.len() <= 254 && !email.contains(char::is_whitespace))
    {
        return Err(invalid("the e-mail address is not valid"));
    }
    if new.name.is_some_and(|n| n.chars().count() > 200) {
        return Err(invalid("a name may be at most 200 characters"));
    }
    let existing = sqlx::query!(
        "SELECT id, organisation_id FROM operators WHERE lower(email) = $1",
        email
    )
    .fetch_optional(pool)
    .await?;
    if let Some(e) = &existing {
        if e.organisation_id != new.organisation.0 {
            return Err(invalid(
                "that e-mail address belongs to an operator of another organisation",
            ));
        }
        if only_if_missing {
            return Ok(OperatorOutcome::Existing(OperatorId(e.id)));
        }
    }
    if new.password.chars().count() < MIN_PASSWORD_LEN {
        return Err(invalid("a password needs at least 8 characters"));
    }
    let password = new.password.to_owned();
    let hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| PortalError::Hashing(e.to_string()))??;
    match existing {
        Some(e) => {
            sqlx::query!(
                "UPDATE operators SET role = $2, name = coalesce($3, name), password_hash = $4 WHERE id = $1",
                e.id,
                new.role.as_str(),
                new.name,
                hash
            )
            .execute(pool)
            .await?;
            // A new password ends the sessions opened with the old one.
            sqlx::query!("DELETE FROM operator_sessions WHERE operator_id = $1", e.id)
                .execute(pool)
                .await?;
            Ok(OperatorOutcome::Updated(OperatorId(e.id)))
        }
        None => {
            let id = sqlx::query_scalar!(
                r#"INSERT INTO operators (organisation_id, email, name, role, password_hash)
                   VALUES ($1, $2, $3, $4, $5) RETURNING id"#,
                new.organisation.0,
                email,
                new.name.unwrap_or(""),
                new.role.as_str(),
                hash
            )
            .fetch_one(pool)
            .await?;
            Ok(OperatorOutcome::Created(OperatorId(id)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let h = hash_password("usher-demo").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("usher-demo", &h));
        assert!(!verify_password("usher-demo2", &h));
        assert!(!verify_password("usher-demo", "not a hash"));
    }
}
