//! The organisation's log of operators' actions on fans' data (exports
//! and erasures made for a fan who asked support): who, what, which fan by
//! pseudonym, when and why. Written in the action's transaction.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool, Row};

use crate::ids::{OperatorId, OrganisationId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Export,
    Erasure,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Export => "export",
            Action::Erasure => "erasure",
        }
    }
}

/// One entry of the log.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    pub operator_id: i64,
    /// The operator's e-mail address, as it is now.
    pub operator_email: String,
    /// `export` or `erasure`.
    pub action: String,
    /// The fan, by the pseudonym their id becomes on erasure.
    pub fan_ref: String,
    pub reason: String,
    pub at: DateTime<Utc>,
}

pub async fn record(
    conn: &mut PgConnection,
    org: OrganisationId,
    operator: OperatorId,
    action: Action,
    fan_ref: &str,
    reason: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO fan_data_audit (organisation_id, operator_id, action, fan_ref, reason) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(org.0)
    .bind(operator.0)
    .bind(action.as_str())
    .bind(fan_ref)
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(())
}

/// The most entries one page holds.
pub const PAGE: i64 = 200;

/// The organisation's entries, newest first, older than `before` (an id)
/// when given.
pub async fn list(pool: &PgPool, org: OrganisationId, before: Option<i64>) -> Result<Vec<AuditEntry>, sqlx::Error> {
    let rows = sqlx::query(
        r#"SELECT a.id, a.operator_id, op.email, a.action, a.fan_ref, a.reason, a.at
           FROM fan_data_audit a JOIN operators op ON op.id = a.operator_id
           WHERE a.organisation_id = $1 AND ($2::bigint IS NULL OR a.id < $2)
           ORDER BY a.id DESC LIMIT $3"#,
    )
    .bind(org.0)
    .bind(before)
    .bind(PAGE)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(AuditEntry {
                id: r.try_get("id")?,
                operator_id: r.try_get("operator_id")?,
                operator_email: r.try_get("email")?,
                action: r.try_get("action")?,
                fan_ref: r.try_get("fan_ref")?,
                reason: r.try_get("reason")?,
                at: r.try_get("at")?,
            })
        })
        .collect()
}
