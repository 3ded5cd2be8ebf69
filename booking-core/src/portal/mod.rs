//! The venue portal's domain: organisations and their operators (sign-in,
//! sessions, roles), and what an operator may do with the organisation's
//! venues and events (import charts, create and edit events, read sales
//! figures). Every read and change here is scoped to one organisation: a
//! venue or event of another is "not found", never "forbidden".

pub mod auth;
pub mod charts;
pub mod dashboard;
pub mod edge;
pub mod events;
pub mod throttle;
pub mod venues;

use serde::{Deserialize, Serialize};

use crate::ids::{OperatorId, OrganisationId};
use crate::venues::import::ChartProblem;

pub use auth::{Session, SignedIn};
pub use edge::{EdgeAdmin, EdgeError};

/// What an operator may do within the organisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything an editor may, and (later) managing the organisation's operators.
    Owner,
    /// Import venues, create and edit events, change waiting rooms.
    Editor,
    /// Read only.
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Editor => "editor",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "owner" => Some(Role::Owner),
            "editor" => Some(Role::Editor),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }

    pub fn may_change(self) -> bool {
        matches!(self, Role::Owner | Role::Editor)
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OrganisationRef {
    pub id: OrganisationId,
    pub name: String,
}

/// A signed-in operator, as every portal call sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Operator {
    #[serde(skip)]
    pub id: OperatorId,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub organisation: OrganisationRef,
}

impl Operator {
    pub fn org(&self) -> OrganisationId {
        self.organisation.id
    }

    /// Refuses a change to a viewer (before anything is looked up, so the
    /// answer says nothing about what exists).
    pub fn must_change(&self) -> Result<(), PortalError> {
        if self.role.may_change() {
            Ok(())
        } else {
            Err(PortalError::RoleForbidden)
        }
    }
}

#[derive(Debug, thiserror::Error, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PortalError {
    #[error("the e-mail address or the password is wrong")]
    InvalidCredentials,
    #[error("too many failed sign-ins; try again in {retry_after_secs} s")]
    SignInThrottled { retry_after_secs: u64 },
    #[error("sign in to the portal: send Authorization: Bearer <session token>")]
    AuthRequired,
    #[error("your role may only read")]
    RoleForbidden,
    #[error("no such venue")]
    VenueNotFound,
    #[error("no such event")]
    EventNotFound,
    #[error("the seating chart has {} problem(s)", problems.len())]
    ChartInvalid { problems: Vec<ChartProblem> },
    #[error("the slug {slug:?} is taken")]
    SlugTaken { slug: String },
    #[error("every tier of the venue's chart needs a price; missing: {tiers:?}")]
    TierMissing { tiers: Vec<i16> },
    #[error("the venue's chart has no seats in tier(s) {tiers:?}")]
    UnknownTier { tiers: Vec<i16> },
    #[error("tier {tier} is given twice")]
    DuplicateTier { tier: i16 },
    #[error("tier {tier}: a price must be 0 to 100000000 cents, and a tier needs a name of 1-100 characters")]
    InvalidPrice { tier: i16 },
    #[error("on_sale_at is after starts_at")]
    OnSaleAfterStart,
    #[error("invalid rules: {reason}")]
    InvalidRules { reason: String },
    #[error("invalid resale policy: {reason}")]
    InvalidPolicy { reason: String },
    #[error("invalid event: {reason}")]
    InvalidEvent { reason: String },
    #[error("invalid operator: {reason}")]
    InvalidOperator { reason: String },
    #[error(transparent)]
    #[serde(skip)]
    Edge(#[from] EdgeError),
    #[error("storage: {0}")]
    #[serde(skip)]
    Db(#[from] sqlx::Error),
    #[error("password hashing: {0}")]
    #[serde(skip)]
    Hashing(String),
}

impl From<crate::catalog::CatalogError> for PortalError {
    fn from(e: crate::catalog::CatalogError) -> Self {
        use crate::catalog::CatalogError as C;
        match e {
            C::UnknownVenue(_) => PortalError::VenueNotFound,
            C::SlugTaken(slug) => PortalError::SlugTaken { slug },
            C::Invalid(reason) => PortalError::InvalidEvent { reason },
            C::Db(e) => PortalError::Db(e),
        }
    }
}

impl From<crate::venues::ImportError> for PortalError {
    fn from(e: crate::venues::ImportError) -> Self {
        use crate::venues::ImportError as I;
        match e {
            I::Invalid(problems) => PortalError::ChartInvalid { problems },
            I::SlugTaken(slug) => PortalError::SlugTaken { slug },
            I::Db(e) => PortalError::Db(e),
        }
    }
}
