//! Who the fan is: fan tokens are Ed25519-signed JWTs from a configured
//! issuer, verified with public keys from config. The local stack also has a
//! development sign-in that signs such tokens itself; it is refused at start
//! outside `environment = "dev"`.

pub mod ended;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use usher_shared::{
    ACCESS_AUDIENCE, AccessClaims, FanClaims, KeyFileError, SigningKey, TokenError, TokenSigner, TokenVerifier,
    VerifiedTokens, VerifyingKeys, read_pem,
};

use crate::config::{AdmissionConfig, IdentityConfig, PublicKeyConfig};
use crate::ids::FanId;

#[derive(Debug, thiserror::Error)]
pub enum IdentitySetupError {
    #[error(transparent)]
    Read(#[from] KeyFileError),
    #[error("identity key {kid}: {source}")]
    Key {
        kid: String,
        source: usher_shared::KeyError,
    },
}

#[derive(Clone, Debug)]
pub struct Identity {
    verifier: TokenVerifier,
    dev: Option<DevIssuer>,
    verified: Arc<VerifiedTokens<FanClaims>>,
}

/// How many tokens are remembered as verified. A fan's client sends the
/// same token with every request, and an Ed25519 verification costs more
/// than the rest of a hold's work in this process.
const VERIFIED_CAPACITY: usize = 100_000;

#[derive(Clone, Debug)]
struct DevIssuer {
    signer: TokenSigner,
    issuer: String,
    audience: String,
    ttl_secs: i64,
}

fn key_ring(configured: &[PublicKeyConfig]) -> Result<VerifyingKeys, IdentitySetupError> {
    let mut keys = VerifyingKeys::new();
    for key in configured {
        keys.insert_pem(&key.kid, &key.read_pem()?)
            .map_err(|source| IdentitySetupError::Key {
                kid: key.kid.clone(),
                source,
            })?;
    }
    Ok(keys)
}

/// Checks the edge's access tokens with its public keys alone.
#[derive(Clone, Debug)]
pub struct Admission {
    verifier: Option<TokenVerifier>,
}

impl Admission {
    pub fn from_config(config: &AdmissionConfig) -> Result<Admission, IdentitySetupError> {
        let keys = key_ring(&config.public_keys)?;
        let verifier =
            (!keys.is_empty()).then(|| TokenVerifier::new(keys, &config.issuer, ACCESS_AUDIENCE, config.leeway_secs));
        Ok(Admission { verifier })
    }

    /// The claims of a good access token; `None` when admission is not
    /// configured.
    pub fn verify(&self, token: &str) -> Option<Result<AccessClaims, TokenError>> {
        self.verifier.as_ref().map(|v| v.verify_access(token))
    }
}

impl Identity {
    pub fn from_config(config: &IdentityConfig) -> Result<Identity, IdentitySetupError> {
        let mut keys = key_ring(&config.public_keys)?;
        let dev = match (&config.dev_sign_in.enabled, &config.dev_sign_in.private_key_file) {
            (true, Some(path)) => {
                let kid = &config.dev_sign_in.kid;
                let key = SigningKey::from_pem(kid, &read_pem(path)?).map_err(|source| IdentitySetupError::Key {
                    kid: kid.clone(),
                    source,
                })?;
                // The dev issuer's own key is always trusted.
                keys.insert_pem(kid, key.public_pem())
                    .map_err(|source| IdentitySetupError::Key {
                        kid: kid.clone(),
                        source,
                    })?;
                Some(DevIssuer {
                    signer: TokenSigner::new(key),
                    issuer: config.issuer.clone(),
                    audience: config.audience.clone(),
                    ttl_secs: config.dev_sign_in.token_ttl_secs as i64,
                })
            }
            _ => None,
        };
        let verifier = TokenVerifier::new(keys, &config.issuer, &config.audience, config.leeway_secs);
        Ok(Identity {
            verifier,
            dev,
            verified: Arc::new(VerifiedTokens::new(VERIFIED_CAPACITY)),
        })
    }

    /// The fan a bearer token names, if the token is good.
    pub fn authenticate(&self, token: &str) -> Result<FanClaims, TokenError> {
        self.verified.get_or_verify(token, |token| {
            let claims = self.verifier.verify_fan(token)?;
            if !FanId::is_valid(&claims.sub) {
                return Err(TokenError::Malformed);
            }
            Ok(claims)
        })
    }

    pub fn dev_sign_in_enabled(&self) -> bool {
        self.dev.is_some()
    }

    /// Signs a token for any fan id: development only.
    pub fn dev_sign_in(&self, fan: &FanId, name: Option<String>) -> Option<(String, DateTime<Utc>)> {
        let dev = self.dev.as_ref()?;
        let now = Utc::now();
        let exp = now + chrono::Duration::seconds(dev.ttl_secs);
        let claims = FanClaims {
            iss: dev.issuer.clone(),
            aud: dev.audience.clone(),
            sub: fan.0.clone(),
            iat: now.timestamp(),
            exp: exp.timestamp(),
            name,
        };
        Some((dev.signer.sign(&claims), exp))
    }
}
