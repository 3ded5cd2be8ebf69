//! What edge-proxy and booking-core agree on, and nothing else: the Ed25519
//! keys that sign tokens and the claims those tokens carry. Neither service
//! is known here; both depend on this crate.

pub mod keys;
pub mod tokens;

pub use keys::{KeyError, SigningKey, VerifyingKeys};
pub use tokens::{FanClaims, TokenError, TokenSigner, TokenVerifier};
