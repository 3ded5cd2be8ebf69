//! Token verification on any string a client can send as a fan, queue or
//! access token: never a panic, and nothing verifies without the key.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use usher_shared::keys::generate_pair;
use usher_shared::{ACCESS_AUDIENCE, SigningKey, TokenVerifier, VerifyingKeys};

fn verifier() -> &'static TokenVerifier {
    static V: OnceLock<TokenVerifier> = OnceLock::new();
    V.get_or_init(|| {
        let pair = generate_pair();
        let key = SigningKey::from_pem("fuzz", &pair.private_pem).expect("a fresh key loads");
        let mut keys = VerifyingKeys::default();
        keys.insert_pem("fuzz", key.public_pem()).expect("its public half loads");
        TokenVerifier::new(keys, "usher-fuzz", ACCESS_AUDIENCE, 5)
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let v = verifier();
    assert!(v.verify_access(token).is_err(), "a made-up access token verified");
    assert!(v.verify_queue(token).is_err(), "a made-up queue token verified");
    assert!(v.verify_fan(token).is_err(), "a made-up fan token verified");
});
