//! What the edge spends checking a join's proof of work, against what it
//! already spends on every rejoin and status call (verifying an Ed25519
//! queue token) and against one bare SHA-256 of the same input, in one run:
//! `cargo bench -p edge-proxy --bench pow`. (Spending the solution is part
//! of the join's one Redis script, measured by `usher-load defences`.)

use std::hint::black_box;
use std::time::Instant;

use edge_proxy::defence::pow::{Puzzles, solve};
use sha2::{Digest, Sha256};

fn per_op_ns(n: u32, mut f: impl FnMut()) -> f64 {
    for _ in 0..n / 10 {
        f();
    }
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    t.elapsed().as_nanos() as f64 / f64::from(n)
}

fn main() {
    let puzzles = Puzzles::new(b"bench-secret");
    let now = chrono::Utc::now().timestamp_millis();
    let binding = "0123456789abcdef01234567";
    let challenge = puzzles.issue(1, 16, 120_000, binding, "192.0.2", now);
    let proof = format!("{challenge}:{}", solve(&challenge, 16));
    assert!(puzzles.verify(&proof, 1, binding, "192.0.2", now).is_ok());

    let n = 200_000;
    let sha = per_op_ns(n, || {
        black_box(Sha256::digest(black_box(proof.as_bytes())));
    });
    let issue = per_op_ns(n, || {
        black_box(puzzles.issue(1, 16, 120_000, binding, "192.0.2", now));
    });
    let verify = per_op_ns(n, || {
        black_box(puzzles.verify(black_box(&proof), 1, binding, "192.0.2", now).is_ok());
    });
    let tokens = edge_proxy::tokens::ephemeral("usher-edge");
    let queue_token = tokens.issue_queue(1, 42, binding);
    let token = per_op_ns(n / 10, || {
        black_box(tokens.verify_queue(black_box(&queue_token)).is_ok());
    });
    println!("# The join puzzle's cost on the edge (one core, {n} runs each)\n");
    println!("| | ns per op | vs verifying a queue token |\n| --- | ---: | ---: |");
    for (name, ns) in [
        ("one SHA-256 of the proof (baseline)", sha),
        ("issue a challenge (HMAC + random nonce)", issue),
        ("verify a solution (parse, HMAC, SHA-256)", verify),
        ("verify an Ed25519 queue token (baseline)", token),
    ] {
        println!("| {name} | {ns:.0} | {:.3}x |", ns / token);
    }
}
