//! Signed JWTs (EdDSA over Ed25519) and the claims Usher puts in them.
//!
//! - A fan identity token says who the fan is; booking-core accepts it from
//!   a configured issuer.
//! - A queue token is the edge's receipt for a place in an event's waiting
//!   room; only the edge reads it.
//! - An access token says the edge admitted this client to this event; the
//!   edge checks it on every protected request and booking-core checks it
//!   again with the edge's public key alone.

use std::collections::HashMap;
use std::sync::Mutex;

use jsonwebtoken::{Algorithm, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::keys::{SigningKey, VerifyingKeys};
use crate::locks;

/// Who the fan is, as asserted by an identity issuer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FanClaims {
    pub iss: String,
    pub aud: String,
    /// The fan's stable id at the issuer.
    pub sub: String,
    pub iat: i64,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// The `aud` of queue tokens: only the edge accepts them.
pub const QUEUE_AUDIENCE: &str = "usher-queue";
/// The `aud` of access tokens: the edge and booking-core accept them.
pub const ACCESS_AUDIENCE: &str = "usher-core";

/// A place in an event's waiting room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueClaims {
    pub iss: String,
    pub aud: String,
    /// The waiting-room session: `<event>.<ticket>`.
    pub sub: String,
    /// The event.
    pub evt: i64,
    /// The ticket number, from one counter per event: the order of arrival.
    pub tkt: u64,
    /// Hash of the client it was issued to (cookie and stable request
    /// traits); a token presented by another client is refused.
    pub bnd: String,
    pub iat: i64,
    pub exp: i64,
}

/// Admission to an event's protected paths, for one client, for a while.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    /// The waiting-room session it was admitted from: `<event>.<ticket>`.
    pub sub: String,
    pub evt: i64,
    pub tkt: u64,
    pub bnd: String,
    pub iat: i64,
    pub exp: i64,
    /// Unique per token, so one token can be ended on its own.
    pub jti: String,
}

/// Why a token was refused. Each has a stable code for API errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not a well-formed EdDSA JWT")]
    Malformed,
    #[error("the token is signed by a key this service does not know")]
    UnknownKey,
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token was issued by an issuer this service does not trust")]
    WrongIssuer,
    #[error("the token was issued for another audience")]
    WrongAudience,
}

impl TokenError {
    pub fn code(self) -> &'static str {
        match self {
            TokenError::Malformed => "token_malformed",
            TokenError::UnknownKey => "token_unknown_key",
            TokenError::BadSignature => "token_bad_signature",
            TokenError::Expired => "token_expired",
            TokenError::WrongIssuer => "token_wrong_issuer",
            TokenError::WrongAudience => "token_wrong_audience",
        }
    }
}

/// Signs claims with one private key, naming it in the header's `kid`.
#[derive(Clone, Debug)]
pub struct TokenSigner {
    key: SigningKey,
}

impl TokenSigner {
    pub fn new(key: SigningKey) -> Self {
        Self { key }
    }

    pub fn sign<C: Serialize>(&self, claims: &C) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.key.kid.clone());
        // Serialising plain claim structs and signing with a loaded key cannot fail.
        jsonwebtoken::encode(&header, claims, &self.key.key).expect("sign JWT")
    }
}

/// Verifies tokens from one issuer for one audience against a key ring.
#[derive(Clone, Debug)]
pub struct TokenVerifier {
    keys: VerifyingKeys,
    validation: Validation,
}

impl TokenVerifier {
    pub fn new(keys: VerifyingKeys, issuer: &str, audience: &str, leeway_secs: u64) -> Self {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = leeway_secs;
        Self { keys, validation }
    }

    pub fn verify<C: DeserializeOwned>(&self, token: &str) -> Result<C, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::Malformed);
        }
        let kid = header.kid.ok_or(TokenError::UnknownKey)?;
        let key = self.keys.get(&kid).ok_or(TokenError::UnknownKey)?;
        jsonwebtoken::decode::<C>(token, key, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::InvalidSignature => TokenError::BadSignature,
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
                ErrorKind::InvalidAudience => TokenError::WrongAudience,
                _ => TokenError::Malformed,
            })
    }

    pub fn verify_fan(&self, token: &str) -> Result<FanClaims, TokenError> {
        self.verify(token)
    }

    pub fn verify_queue(&self, token: &str) -> Result<QueueClaims, TokenError> {
        self.verify(token)
    }

    pub fn verify_access(&self, token: &str) -> Result<AccessClaims, TokenError> {
        self.verify(token)
    }
}

/// Claims that end: a remembered token is good until then.
pub trait Expiring {
    /// Unix seconds.
    fn exp(&self) -> i64;
}

impl Expiring for FanClaims {
    fn exp(&self) -> i64 {
        self.exp
    }
}

impl Expiring for AccessClaims {
    fn exp(&self) -> i64 {
        self.exp
    }
}

/// Tokens remembered as verified, with their claims. A client sends the
/// same token with every request, and an Ed25519 verification costs more
/// than the rest of most requests' work; the memory is emptied when full.
pub struct VerifiedTokens<C> {
    capacity: usize,
    tokens: Mutex<HashMap<String, C>>,
}

impl<C: Expiring + Clone> VerifiedTokens<C> {
    pub fn new(capacity: usize) -> Self {
        VerifiedTokens {
            capacity,
            tokens: Mutex::default(),
        }
    }

    /// The claims of `token`: remembered ones until they expire, otherwise
    /// what `verify` says (remembered when good).
    pub fn get_or_verify(
        &self,
        token: &str,
        verify: impl FnOnce(&str) -> Result<C, TokenError>,
    ) -> Result<C, TokenError> {
        let now = chrono::Utc::now().timestamp();
        if let Some(claims) = locks::lock(&self.tokens).get(token)
            && claims.exp() > now
        {
            return Ok(claims.clone());
        }
        let claims = verify(token)?;
        let mut tokens = locks::lock(&self.tokens);
        if tokens.len() >= self.capacity {
            tokens.clear();
        }
        tokens.insert(token.to_owned(), claims.clone());
        Ok(claims)
    }

    /// Forgets a token, so that it is verified afresh.
    pub fn forget(&self, token: &str) {
        locks::lock(&self.tokens).remove(token);
    }
}

impl<C> std::fmt::Debug for VerifiedTokens<C> {
    // Never print the tokens.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedTokens")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::generate_pair;

    fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }

    fn setup() -> (TokenSigner, TokenVerifier) {
        let pair = generate_pair();
        let signer = TokenSigner::new(SigningKey::from_pem("k1", &pair.private_pem).unwrap());
        let mut keys = VerifyingKeys::new();
        keys.insert_pem("k1", &pair.public_pem).unwrap();
        (signer, TokenVerifier::new(keys, "usher-dev", "usher", 0))
    }

    fn claims(exp_in: i64) -> FanClaims {
        FanClaims {
            iss: "usher-dev".into(),
            aud: "usher".into(),
            sub: "fan-1".into(),
            iat: now(),
            exp: now() + exp_in,
            name: None,
        }
    }

    #[test]
    fn verified_tokens_are_remembered_until_they_expire() {
        let (signer, verifier) = setup();
        let cache = VerifiedTokens::new(2);
        let good = signer.sign(&claims(60));
        let calls = std::cell::Cell::new(0);
        let verify = |t: &str| {
            calls.set(calls.get() + 1);
            verifier.verify_fan(t)
        };
        assert_eq!(cache.get_or_verify(&good, verify).unwrap().sub, "fan-1");
        assert_eq!(cache.get_or_verify(&good, verify).unwrap().sub, "fan-1");
        assert_eq!(calls.get(), 1, "the second time from memory");
        cache.forget(&good);
        cache.get_or_verify(&good, verify).unwrap();
        assert_eq!(calls.get(), 2, "forgotten, verified again");
        assert_eq!(cache.get_or_verify("not.a.jwt", verify), Err(TokenError::Malformed));
    }

    #[test]
    fn round_trip() {
        let (signer, verifier) = setup();
        let token = signer.sign(&claims(60));
        assert_eq!(verifier.verify_fan(&token).unwrap().sub, "fan-1");
    }

    #[test]
    fn refusals_have_their_own_reasons() {
        let (signer, verifier) = setup();
        assert_eq!(
            verifier.verify_fan(&signer.sign(&claims(-120))),
            Err(TokenError::Expired)
        );

        let mut foreign = claims(60);
        foreign.iss = "someone-else".into();
        assert_eq!(
            verifier.verify_fan(&signer.sign(&foreign)),
            Err(TokenError::WrongIssuer)
        );

        let mut other_aud = claims(60);
        other_aud.aud = "edge".into();
        assert_eq!(
            verifier.verify_fan(&signer.sign(&other_aud)),
            Err(TokenError::WrongAudience)
        );

        let token = signer.sign(&claims(60));
        let mut tampered = token.clone().into_bytes();
        let n = tampered.len();
        tampered[n - 3] = if tampered[n - 3] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert_eq!(verifier.verify_fan(&tampered), Err(TokenError::BadSignature));

        assert_eq!(verifier.verify_fan("not.a.jwt"), Err(TokenError::Malformed));

        let (other_signer, _) = setup();
        let stranger = TokenSigner::new(SigningKey::from_pem("k2", &generate_pair().private_pem).unwrap());
        assert_eq!(
            verifier.verify_fan(&stranger.sign(&claims(60))),
            Err(TokenError::UnknownKey)
        );
        // Same kid, different key: the signature fails.
        assert_eq!(
            verifier.verify_fan(&other_signer.sign(&claims(60))),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn bad_key_ids_are_refused() {
        let pair = generate_pair();
        assert!(SigningKey::from_pem("", &pair.private_pem).is_err());
        assert!(SigningKey::from_pem("a b", &pair.private_pem).is_err());
        assert!(SigningKey::from_pem("ok", "garbage").is_err());
    }
}
