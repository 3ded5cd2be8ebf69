//! The edge's join puzzle, solved as a fan's browser solves it: a counter
//! such that SHA-256(`<challenge>:<counter>`) starts with the asked number
//! of zero bits.

use std::fmt::Write;

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Finds a counter such that SHA-256(`<challenge>:<counter>`) starts with
/// `bits` zero bits (the edge's rule); also says how many hashes it took.
pub fn solve(challenge: &str, bits: u8) -> (u64, u64) {
    let mut prefix = Sha256::new();
    prefix.update(challenge.as_bytes());
    prefix.update(b":");
    let mut digits = String::new();
    for counter in 0u64.. {
        digits.clear();
        let _ = write!(digits, "{counter}");
        let mut h = prefix.clone();
        h.update(digits.as_bytes());
        if zero_bits(&h.finalize()) >= u32::from(bits) {
            return (counter, counter + 1);
        }
    }
    (0, 0)
}

fn zero_bits(hash: &[u8]) -> u32 {
    let mut n = 0;
    for b in hash {
        if *b != 0 {
            return n + b.leading_zeros();
        }
        n += 8;
    }
    n
}

/// The `usher-pow` header's value for `challenge`: `<challenge>:<counter>`.
pub fn proof(challenge: &str, bits: u8) -> String {
    proof_and_hashes(challenge, bits).0
}

/// The `usher-pow` header's value, and how many hashes finding it took
/// (what a farm counts as its cost).
pub fn proof_and_hashes(challenge: &str, bits: u8) -> (String, u64) {
    let (counter, hashes) = solve(challenge, bits);
    (format!("{challenge}:{counter}"), hashes)
}

/// A puzzle as the edge poses it: in a join's 428 answer or from the
/// room's challenge endpoint.
#[derive(Debug, Clone)]
pub struct Challenge {
    pub challenge: String,
    pub bits: u8,
}

impl Challenge {
    /// The puzzle in an answer's body, if it poses one. The edge asks for
    /// at most 32 bits; a larger number is read as 32.
    pub fn from_answer(body: &Value) -> Option<Challenge> {
        let challenge = body["challenge"].as_str()?.to_owned();
        let bits = body["bits"].as_u64().unwrap_or(0).min(32) as u8;
        Some(Challenge { challenge, bits })
    }
}
