//! How people are named in logs: a fan's id, an e-mail address, never in
//! clear, only by a short hash, so an operator can follow one fan's lines
//! without the logs holding who it is.

use sha2::{Digest, Sha256};

/// The first 12 hex digits of SHA-256 over `usher-fan:<id>`: enough to tell
/// fans apart in a day's logs, and the same in both services.
pub fn hashed(id: &str) -> String {
    let digest = Sha256::new_with_prefix(b"usher-fan:")
        .chain_update(id.as_bytes())
        .finalize();
    hex::encode(&digest[..6])
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_fan_is_named_by_twelve_hex_digits_that_do_not_hold_the_id() {
        let h = super::hashed("alice@example.com");
        assert_eq!(h.len(), 12);
        assert!(h.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(!h.contains("alice"));
        assert_eq!(h, super::hashed("alice@example.com"));
        assert_ne!(h, super::hashed("bob@example.com"));
    }
}
