//! Ed25519 key material in PEM form: generating a pair, loading a signing
//! key, and a key ring of public keys looked up by key id (`kid`) so that
//! keys can be rotated without a flag day.

use std::collections::HashMap;
use std::path::Path;

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use jsonwebtoken::{DecodingKey, EncodingKey};
use rand::RngCore;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("not an Ed25519 private key in PKCS#8 PEM form: {0}")]
    BadPrivateKey(String),
    #[error("not an Ed25519 public key in SPKI PEM form: {0}")]
    BadPublicKey(String),
    #[error("key id must be 1 to 64 characters of [A-Za-z0-9._-], got {0:?}")]
    BadKeyId(String),
}

/// A key file that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {path}: {source}")]
pub struct KeyFileError {
    pub path: String,
    pub source: std::io::Error,
}

/// The text of a PEM key file.
pub fn read_pem(path: &Path) -> Result<String, KeyFileError> {
    std::fs::read_to_string(path).map_err(|source| KeyFileError {
        path: path.display().to_string(),
        source,
    })
}

/// A freshly generated key pair, both halves PEM-encoded.
pub struct GeneratedPair {
    pub private_pem: String,
    pub public_pem: String,
}

/// Generates a new Ed25519 key pair from the operating system's RNG.
pub fn generate_pair() -> GeneratedPair {
    let mut seed = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    // Encoding an in-memory Ed25519 key cannot fail; the expect documents that.
    let private_pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .expect("encode Ed25519 private key")
        .to_string();
    let public_pem = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .expect("encode Ed25519 public key");
    GeneratedPair {
        private_pem,
        public_pem,
    }
}

fn check_kid(kid: &str) -> Result<(), KeyError> {
    let ok =
        !kid.is_empty() && kid.len() <= 64 && kid.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(KeyError::BadKeyId(kid.to_owned()))
    }
}

/// A private key with its key id, ready to sign.
#[derive(Clone)]
pub struct SigningKey {
    pub(crate) kid: String,
    pub(crate) key: EncodingKey,
    public_pem: String,
}

impl SigningKey {
    pub fn from_pem(kid: &str, private_pem: &str) -> Result<Self, KeyError> {
        check_kid(kid)?;
        let key = ed25519_dalek::SigningKey::from_pkcs8_pem(private_pem)
            .map_err(|e| KeyError::BadPrivateKey(e.to_string()))?;
        let der = key.to_pkcs8_der().map_err(|e| KeyError::BadPrivateKey(e.to_string()))?;
        let public_pem = key
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| KeyError::BadPrivateKey(e.to_string()))?;
        Ok(Self {
            kid: kid.to_owned(),
            key: EncodingKey::from_ed_der(der.as_bytes()),
            public_pem,
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The matching public key, PEM-encoded, for publishing to verifiers.
    pub fn public_pem(&self) -> &str {
        &self.public_pem
    }
}

impl std::fmt::Debug for SigningKey {
    // Never print key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// Public keys by key id: what a verifier trusts.
#[derive(Clone, Default)]
pub struct VerifyingKeys {
    keys: HashMap<String, DecodingKey>,
}

impl VerifyingKeys {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert_pem(&mut self, kid: &str, public_pem: &str) -> Result<(), KeyError> {
        check_kid(kid)?;
        let key = ed25519_dalek::VerifyingKey::from_public_key_pem(public_pem)
            .map_err(|e| KeyError::BadPublicKey(e.to_string()))?;
        // jsonwebtoken wants the raw 32-byte public key for EdDSA.
        self.keys
            .insert(kid.to_owned(), DecodingKey::from_ed_der(key.as_bytes()));
        Ok(())
    }

    pub fn get(&self, kid: &str) -> Option<&DecodingKey> {
        self.keys.get(kid)
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl std::fmt::Debug for VerifyingKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.keys.keys()).finish()
    }
}
