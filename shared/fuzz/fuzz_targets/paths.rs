//! The canonical reading of a request path, on any bytes a client can send:
//! never a panic, and the canonical form of anything is canonical itself
//! and no longer than three times the input (escapes only grow so much).
#![no_main]

use libfuzzer_sys::fuzz_target;
use usher_shared::paths::{canonical, is_canonical};

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(once) = canonical(raw) {
        assert!(is_canonical(&once), "{raw:?} -> {once:?} is not canonical");
        assert!(once.len() <= raw.len() * 3 + 1, "{raw:?} grew to {once:?}");
    }
});
