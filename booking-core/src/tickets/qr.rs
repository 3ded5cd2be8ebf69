//! What a ticket's QR code says, and how a gate checks it.
//!
//! The static code is `UT1.<payload>.<signature>`: the payload (ticket id,
//! event, seat, version, key id, as compact JSON) and its Ed25519 signature,
//! both base64url. A scanner verifies it offline with the public key alone.
//! A transfer bumps the version, so the previous owner's code no longer
//! matches the ticket.
//!
//! A rotating code appends `.<window>.<code>`: the 30-second window number
//! and an HMAC of it under the ticket's own secret. A screenshot goes stale
//! within a window; the check-in endpoint verifies the HMAC (a scanner that
//! works offline needs the event's ticket secrets downloaded beforehand).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use ed25519_dalek::pkcs8::EncodePublicKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::{Signer, Verifier};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::ids::{EventId, SeatId, TicketId};

const PREFIX: &str = "UT1";

/// The signed part of a ticket's code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    #[serde(rename = "t")]
    pub ticket: TicketId,
    #[serde(rename = "e")]
    pub event: EventId,
    #[serde(rename = "s")]
    pub seat: SeatId,
    #[serde(rename = "v")]
    pub version: i32,
    #[serde(rename = "k")]
    pub kid: String,
}

/// A code read at a gate, after its signature checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scanned {
    pub payload: Payload,
    /// (window, code) for a rotating code.
    pub rotating: Option<(i64, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    #[error("this is not an Usher ticket code")]
    Malformed,
    #[error("the ticket code was not signed by a key we know")]
    UnknownKey,
    #[error("the ticket code's signature does not match")]
    BadSignature,
}

#[derive(Debug, thiserror::Error)]
#[error("ticket signing key: {0}")]
pub struct KeyError(String);

/// The key that signs ticket codes, and the public keys that signed them
/// before a rotation (still accepted at the gate, never used to sign).
pub struct TicketSigner {
    kid: String,
    key: ed25519_dalek::SigningKey,
    previous: Vec<(String, ed25519_dalek::VerifyingKey)>,
}

impl TicketSigner {
    pub fn from_pem(kid: &str, pem: &str) -> Result<Self, KeyError> {
        let key = ed25519_dalek::SigningKey::from_pkcs8_pem(pem).map_err(|e| KeyError(e.to_string()))?;
        Ok(TicketSigner {
            kid: kid.to_owned(),
            key,
            previous: Vec::new(),
        })
    }

    /// Also accepts codes signed with an earlier key (a public key PEM):
    /// codes fans saved before a rotation still scan.
    pub fn with_previous(mut self, kid: &str, public_pem: &str) -> Result<Self, KeyError> {
        use ed25519_dalek::pkcs8::DecodePublicKey;
        let key = ed25519_dalek::VerifyingKey::from_public_key_pem(public_pem).map_err(|e| KeyError(e.to_string()))?;
        self.previous.push((kid.to_owned(), key));
        Ok(self)
    }

    /// The key that verifies a code signed under `kid`, if it is one of ours.
    pub fn key_for(&self, kid: &str) -> Option<ed25519_dalek::VerifyingKey> {
        if kid == self.kid {
            return Some(self.key.verifying_key());
        }
        self.previous.iter().find(|(k, _)| k == kid).map(|(_, key)| *key)
    }

    /// Every key a scanner should trust, the current one first: `(kid, PEM)`.
    pub fn public_keys(&self) -> Vec<(String, String)> {
        let pem = |key: &ed25519_dalek::VerifyingKey| key.to_public_key_pem(LineEnding::LF).unwrap_or_default();
        std::iter::once((self.kid.clone(), pem(&self.key.verifying_key())))
            .chain(self.previous.iter().map(|(kid, key)| (kid.clone(), pem(key))))
            .collect()
    }

    /// A throwaway key (development without a key file).
    pub fn ephemeral(kid: &str) -> Self {
        let mut seed = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut seed);
        TicketSigner {
            kid: kid.to_owned(),
            key: ed25519_dalek::SigningKey::from_bytes(&seed),
            previous: Vec::new(),
        }
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn verifying_key(&self) -> ed25519_dalek::VerifyingKey {
        self.key.verifying_key()
    }

    /// The static code for one version of a ticket.
    pub fn code(&self, ticket: TicketId, event: EventId, seat: SeatId, version: i32) -> String {
        let payload = Payload {
            ticket,
            event,
            seat,
            version,
            kid: self.kid.clone(),
        };
        // A struct of ids and a string always serialises.
        let bytes = serde_json::to_vec(&payload).unwrap_or_default();
        let sig = self.key.sign(&bytes);
        format!("{PREFIX}.{}.{}", B64.encode(&bytes), B64.encode(sig.to_bytes()))
    }
}

/// The rotating code for `window` (= unix time / rotation period).
pub fn rotating(static_code: &str, secret: &[u8], window: i64) -> String {
    format!("{static_code}.{window}.{}", window_code(secret, window))
}

fn window_code(secret: &[u8], window: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC takes any key"));
    mac.update(&window.to_be_bytes());
    hex::encode(&mac.finalize().into_bytes()[..8])
}

/// Whether a rotating code's HMAC is right for its window, and the window is
/// now or one either side (a scanner's clock may be off a little).
pub fn rotating_ok(secret: &[u8], window: i64, code: &str, now_window: i64) -> bool {
    (window - now_window).abs() <= 1 && {
        let want = window_code(secret, window);
        // Equal length hex; compare without early exit.
        want.len() == code.len() && want.bytes().zip(code.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

/// Checks a code's signature with `key_for(kid)` and returns what it says.
pub fn verify(code: &str, key_for: impl Fn(&str) -> Option<ed25519_dalek::VerifyingKey>) -> Result<Scanned, CodeError> {
    let mut parts = code.trim().split('.');
    if parts.next() != Some(PREFIX) {
        return Err(CodeError::Malformed);
    }
    let payload = parts
        .next()
        .and_then(|p| B64.decode(p).ok())
        .ok_or(CodeError::Malformed)?;
    let sig = parts
        .next()
        .and_then(|s| B64.decode(s).ok())
        .and_then(|s| ed25519_dalek::Signature::from_slice(&s).ok())
        .ok_or(CodeError::Malformed)?;
    let rotating = match (parts.next(), parts.next()) {
        (None, _) => None,
        (Some(w), Some(c)) => Some((w.parse::<i64>().map_err(|_| CodeError::Malformed)?, c.to_owned())),
        _ => return Err(CodeError::Malformed),
    };
    if parts.next().is_some() {
        return Err(CodeError::Malformed);
    }
    let decoded: Payload = serde_json::from_slice(&payload).map_err(|_| CodeError::Malformed)?;
    let key = key_for(&decoded.kid).ok_or(CodeError::UnknownKey)?;
    key.verify(&payload, &sig).map_err(|_| CodeError::BadSignature)?;
    Ok(Scanned {
        payload: decoded,
        rotating,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_verifies_with_the_public_key_alone_and_tampering_fails() {
        let signer = TicketSigner::ephemeral("t-1");
        let public = signer.verifying_key();
        let ticket = TicketId::new();
        let code = signer.code(ticket, EventId(7), SeatId(99), 2);
        let scanned = verify(&code, |kid| (kid == "t-1").then_some(public)).unwrap();
        assert_eq!(scanned.payload.ticket, ticket);
        assert_eq!(scanned.payload.version, 2);
        assert_eq!(scanned.rotating, None);

        assert_eq!(verify(&code, |_| None), Err(CodeError::UnknownKey));
        let other = TicketSigner::ephemeral("t-1").verifying_key();
        assert_eq!(verify(&code, |_| Some(other)), Err(CodeError::BadSignature));
        // Another ticket's payload under this signature.
        let forged_payload = B64.encode(
            serde_json::to_vec(&Payload {
                ticket: TicketId::new(),
                event: EventId(7),
                seat: SeatId(99),
                version: 2,
                kid: "t-1".into(),
            })
            .unwrap(),
        );
        let sig = code.rsplit('.').next().unwrap();
        let forged = format!("UT1.{forged_payload}.{sig}");
        assert_eq!(verify(&forged, |_| Some(public)), Err(CodeError::BadSignature));
        assert_eq!(verify("hello", |_| Some(public)), Err(CodeError::Malformed));
    }

    #[test]
    fn rotating_codes_go_stale() {
        let signer = TicketSigner::ephemeral("t-1");
        let public = signer.verifying_key();
        let code = signer.code(TicketId::new(), EventId(1), SeatId(1), 1);
        let secret = [7u8; 32];
        let now = rotating(&code, &secret, 1000);
        let scanned = verify(&now, |_| Some(public)).unwrap();
        let (w, c) = scanned.rotating.unwrap();
        assert!(rotating_ok(&secret, w, &c, 1000));
        assert!(rotating_ok(&secret, w, &c, 1001));
        assert!(!rotating_ok(&secret, w, &c, 1003), "a screenshot from two windows ago");
        assert!(!rotating_ok(&[8u8; 32], w, &c, 1000), "another ticket's secret");
    }
}
