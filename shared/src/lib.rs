//! What edge-proxy and booking-core agree on, and nothing else: the Ed25519
//! keys that sign tokens, the claims those tokens carry, and the headers
//! that carry them between the two, the one reading of a request path
//! both apply (so they never disagree on which route a path names), the
//! edge's admin API that the core's portal and the load tests call, and the
//! value types of both services' configuration (secrets, checked URLs). Neither
//! service is known here; both depend on this crate.

/// The header in which the edge forwards a verified access token to
/// booking-core.
pub const ACCESS_HEADER: &str = "usher-access";
/// The header with which booking-core tells the edge a fan is done (order
/// confirmed, or left): the edge ends the fan's session and admits the next.
pub const SESSION_DONE_HEADER: &str = "usher-session-done";

pub mod admin;
pub mod config;
pub mod keys;
pub mod locks;
pub mod paths;
pub mod redact;
#[cfg(feature = "telemetry")]
pub mod telemetry;
pub mod tokens;

pub use keys::{KeyError, KeyFileError, SigningKey, VerifyingKeys, read_pem};
pub use tokens::{
    ACCESS_AUDIENCE, AccessClaims, FanClaims, QUEUE_AUDIENCE, QueueClaims, TokenError, TokenSigner, TokenVerifier,
    VerifiedTokens,
};
