//! Queue and access tokens: issued and checked here with the edge's Ed25519
//! key, and bound to the client they were issued to (a cookie plus a hash of
//! stable request traits), so that a token copied to another client is
//! refused. Verified access tokens are remembered, since every protected
//! request carries one.

use std::path::Path;

use sha2::{Digest, Sha256};
use usher_shared::{
    ACCESS_AUDIENCE, AccessClaims, KeyFileError, QUEUE_AUDIENCE, QueueClaims, SigningKey, TokenError, TokenSigner,
    TokenVerifier, VerifiedTokens, VerifyingKeys,
};

use crate::config::TokensConfig;

#[derive(Debug, thiserror::Error)]
pub enum TokenSetupError {
    #[error(transparent)]
    Read(#[from] KeyFileError),
    #[error("edge key: {0}")]
    Key(#[from] usher_shared::KeyError),
}

pub struct EdgeTokens {
    issuer: String,
    signer: TokenSigner,
    queue: TokenVerifier,
    access: TokenVerifier,
    queue_ttl_secs: i64,
    /// A secret every instance with this key shares (keys the puzzles).
    secret: [u8; 32],
    verified: VerifiedTokens<AccessClaims>,
}

const VERIFIED_CAPACITY: usize = 200_000;

/// The client a token belongs to: its `usher_client` cookie and traits a
/// browser sends the same way on every request.
pub fn binding(client_cookie: &str, user_agent: &str, accept_language: &str) -> String {
    let mut h = Sha256::new();
    for part in [client_cookie, user_agent, accept_language] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..12])
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl EdgeTokens {
    pub fn from_config(config: &TokensConfig) -> Result<EdgeTokens, TokenSetupError> {
        let pem = usher_shared::read_pem(&config.private_key_file)?;
        let mut previous = Vec::with_capacity(config.previous_keys.len());
        for key in &config.previous_keys {
            previous.push((key.kid.clone(), usher_shared::read_pem(&key.pem_file)?));
        }
        Self::from_pem(config, &pem, &previous)
    }

    /// The current key signs; it and each previous `(kid, public PEM)`
    /// verify, so a rotation never strands a token signed before it.
    pub fn from_pem(
        config: &TokensConfig,
        private_pem: &str,
        previous: &[(String, String)],
    ) -> Result<EdgeTokens, TokenSetupError> {
        let key = SigningKey::from_pem(&config.kid, private_pem)?;
        let mut keys = VerifyingKeys::new();
        for (kid, public_pem) in previous {
            keys.insert_pem(kid, public_pem)?;
        }
        keys.insert_pem(&config.kid, key.public_pem())?;
        Ok(EdgeTokens {
            issuer: config.issuer.clone(),
            queue: TokenVerifier::new(keys.clone(), &config.issuer, QUEUE_AUDIENCE, 5),
            access: TokenVerifier::new(keys, &config.issuer, ACCESS_AUDIENCE, 0),
            signer: TokenSigner::new(key),
            queue_ttl_secs: config.queue_token_ttl_secs as i64,
            secret: Sha256::digest(private_pem.as_bytes()).into(),
            verified: VerifiedTokens::new(VERIFIED_CAPACITY),
        })
    }

    /// A secret derived from the signing key, for other MACs the edge makes.
    pub fn shared_secret(&self) -> &[u8; 32] {
        &self.secret
    }

    pub fn issue_queue(&self, event: i64, ticket: u64, bnd: &str) -> String {
        let iat = now();
        self.signer.sign(&QueueClaims {
            iss: self.issuer.clone(),
            aud: QUEUE_AUDIENCE.into(),
            sub: format!("{event}.{ticket}"),
            evt: event,
            tkt: ticket,
            bnd: bnd.into(),
            iat,
            exp: iat + self.queue_ttl_secs,
        })
    }

    pub fn verify_queue(&self, token: &str) -> Result<QueueClaims, TokenError> {
        self.queue.verify_queue(token)
    }

    pub fn issue_access(&self, event: i64, ticket: u64, bnd: &str, session_secs: u64) -> (String, AccessClaims) {
        let iat = now();
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            aud: ACCESS_AUDIENCE.into(),
            sub: format!("{event}.{ticket}"),
            evt: event,
            tkt: ticket,
            bnd: bnd.into(),
            iat,
            exp: iat + session_secs as i64,
            jti: uuid::Uuid::new_v4().simple().to_string(),
        };
        (self.signer.sign(&claims), claims)
    }

    pub fn verify_access(&self, token: &str) -> Result<AccessClaims, TokenError> {
        self.verified.get_or_verify(token, |t| self.access.verify_access(t))
    }

    /// Forgets a token (its session ended), so it is checked afresh.
    pub fn forget(&self, token: &str) {
        self.verified.forget(token);
    }
}

/// For tests and tools: an edge token service from a fresh key.
pub fn ephemeral(issuer: &str) -> EdgeTokens {
    let pair = usher_shared::keys::generate_pair();
    let config = TokensConfig {
        issuer: issuer.into(),
        kid: "edge-ephemeral".into(),
        private_key_file: Path::new("/dev/null").into(),
        queue_token_ttl_secs: 3600,
        secure_cookies: false,
        previous_keys: vec![],
    };
    // A freshly generated key always loads.
    EdgeTokens::from_pem(&config, &pair.private_pem, &[]).expect("fresh key")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_are_bound() {
        let t = ephemeral("usher-edge");
        let b = binding("cookie", "ua", "en");
        let q = t.issue_queue(7, 42, &b);
        let claims = t.verify_queue(&q).unwrap();
        assert_eq!((claims.evt, claims.tkt, claims.bnd.as_str()), (7, 42, b.as_str()));
        // A queue token is not an access token, and the reverse.
        assert!(t.verify_access(&q).is_err());
        let (a, _) = t.issue_access(7, 42, &b, 60);
        assert_eq!(t.verify_access(&a).unwrap().evt, 7);
        assert_eq!(t.verify_queue(&a), Err(TokenError::WrongAudience));
        // Another edge's key is not ours.
        let other = ephemeral("usher-edge");
        let (foreign, _) = other.issue_access(7, 42, &b, 60);
        assert!(t.verify_access(&foreign).is_err());
        assert_ne!(binding("cookie", "ua", "en"), binding("cookie2", "ua", "en"));
    }
}
