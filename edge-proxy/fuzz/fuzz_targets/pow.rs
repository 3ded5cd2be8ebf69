//! The `usher-pow` header (`<challenge>:<counter>`) against the edge's
//! puzzles: never a panic, and nothing is accepted but the one challenge
//! this edge issued, to this client and network, for this event, before it
//! expires, with a counter that solves it. The input is the header as a
//! client sends it, and also a counter for the genuine challenge.
#![no_main]

use std::sync::OnceLock;

use edge_proxy::defence::pow::{Puzzles, leading_zero_bits};
use libfuzzer_sys::fuzz_target;

const SECRET: &[u8] = b"fuzz-secret";
const EVENT: i64 = 7;
const BINDING: &str = "fuzz-binding";
const NETWORK: &str = "203.0.113";
const NOW_MS: i64 = 1_800_000_000_000;
/// Issued by `Puzzles::new(SECRET)` for EVENT, BINDING and NETWORK at NOW_MS
/// (8 bits, two minutes); `:370` solves it (corpus/pow/valid).
const CHALLENGE: &str = "7.1800000120000.8.0123456789abcdef01234567.7ec37010de3ffafff16103b9c9328024";
const NONCE: &str = "0123456789abcdef01234567";
const EXPIRES_MS: i64 = 1_800_000_120_000;

fn puzzles() -> &'static (Puzzles, Puzzles) {
    static P: OnceLock<(Puzzles, Puzzles)> = OnceLock::new();
    P.get_or_init(|| {
        let p = Puzzles::new(SECRET);
        // The harness's own check: its genuine solution verifies.
        let solved = p.verify(&format!("{CHALLENGE}:370"), EVENT, BINDING, NETWORK, NOW_MS);
        assert_eq!(solved.map(|s| s.nonce), Ok(NONCE.to_owned()));
        (p, Puzzles::new(b"another edge"))
    })
}

fn check(proof: &str) {
    let (p, other) = puzzles();
    let verdict = p.verify(proof, EVENT, BINDING, NETWORK, NOW_MS);
    if let Ok(solved) = &verdict {
        let (challenge, counter) = proof.rsplit_once(':').expect("a solved proof has a counter");
        assert_eq!(
            challenge, CHALLENGE,
            "a challenge this edge never issued was accepted: {proof:?}"
        );
        assert!(
            !counter.is_empty() && counter.bytes().all(|b| b.is_ascii_digit()),
            "{proof:?}"
        );
        assert_eq!(
            (solved.nonce.as_str(), solved.bits, solved.expires_ms),
            (NONCE, 8, EXPIRES_MS)
        );
        assert!(
            leading_zero_bits(&sha256(proof)) >= 8,
            "an unsolved proof was accepted: {proof:?}"
        );
    }
    // Another client, network, event or edge, or too late: never.
    assert!(p.verify(proof, EVENT, "another-binding", NETWORK, NOW_MS).is_err());
    assert!(p.verify(proof, EVENT, BINDING, "198.51.100", NOW_MS).is_err());
    assert!(p.verify(proof, EVENT + 1, BINDING, NETWORK, NOW_MS).is_err());
    assert!(p.verify(proof, EVENT, BINDING, NETWORK, EXPIRES_MS + 1).is_err());
    assert!(other.verify(proof, EVENT, BINDING, NETWORK, NOW_MS).is_err());
}

fn sha256(text: &str) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes()).to_vec()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    check(text);
    // The genuine challenge with whatever counter.
    check(&format!("{CHALLENGE}:{text}"));
});
