//! Webhook signatures of the form `t=<unix secs>,v1=<hex HMAC-SHA256 of
//! "<t>.<body>">`: the scheme Stripe uses, and so the sandbox too. The
//! timestamp is signed with the body, so an old delivery replayed later is
//! refused by age even though its signature is genuine. Payment providers'
//! webhooks are checked with it (`checkout/`), and the operator's webhooks
//! are signed with it (`outbox/`).

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Why a signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature header is missing or malformed")]
    Malformed,
    #[error("the signature does not match")]
    Mismatch,
    #[error("signed too long ago (or in the future)")]
    Stale,
}

type HmacSha256 = Hmac<Sha256>;

/// Verifies `header` over `body` with `secret`, and that it was signed
/// within `tolerance_secs` of `now_unix`.
pub fn verify(
    header: Option<&str>,
    body: &[u8],
    secret: &[u8],
    tolerance_secs: i64,
    now_unix: i64,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Malformed)?;
    let mut timestamp = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => timestamp = v.parse::<i64>().ok(),
            // Several v1 entries are allowed while a secret is being rolled.
            Some(("v1", v)) => candidates.push(hex::decode(v).map_err(|_| SignatureError::Malformed)?),
            _ => {}
        }
    }
    let t = timestamp.ok_or(SignatureError::Malformed)?;
    if candidates.is_empty() {
        return Err(SignatureError::Malformed);
    }
    // verify_slice compares in constant time.
    let matches = candidates
        .iter()
        .any(|sig| mac_for(secret, t, body).verify_slice(sig).is_ok());
    if !matches {
        return Err(SignatureError::Mismatch);
    }
    if (now_unix - t).abs() > tolerance_secs {
        return Err(SignatureError::Stale);
    }
    Ok(())
}

/// The header value for `body` signed at `t` (used by tests and the sandbox's
/// own checks).
pub fn sign(body: &[u8], secret: &[u8], t: i64) -> String {
    let tag = mac_for(secret, t, body).finalize().into_bytes();
    format!("t={t},v1={}", hex::encode(tag))
}

fn mac_for(secret: &[u8], t: i64, body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret).unwrap_or_else(|_| unreachable_mac());
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

// HMAC takes a key of any length; this never runs.
fn unreachable_mac() -> HmacSha256 {
    unreachable!("HMAC accepts keys of any length")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_and_a_changed_byte_does_not() {
        let h = sign(b"{\"a\":1}", b"s3cret", 1000);
        verify(Some(&h), b"{\"a\":1}", b"s3cret", 300, 1100).unwrap();
        assert_eq!(
            verify(Some(&h), b"{\"a\":2}", b"s3cret", 300, 1100),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(Some(&h), b"{\"a\":1}", b"other", 300, 1100),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(Some(&h), b"{\"a\":1}", b"s3cret", 300, 1400),
            Err(SignatureError::Stale)
        );
        assert_eq!(verify(None, b"", b"s3cret", 300, 0), Err(SignatureError::Malformed));
        assert_eq!(
            verify(Some("t=1,v1=zz"), b"", b"s3cret", 300, 1),
            Err(SignatureError::Malformed)
        );
    }
}
