//! A payment provider's webhook: any signature header over any body is
//! refused or read without a panic, and any body that carries a good
//! signature is read into an event or refused as malformed, never a panic.
#![no_main]

use std::sync::OnceLock;

use booking_core::checkout::sandbox::SandboxProvider;
use booking_core::checkout::stripe::StripeProvider;
use booking_core::checkout::PaymentProvider;
use booking_core::signature;
use booking_core::config::Config;
use libfuzzer_sys::fuzz_target;

const SECRET: &str = "whsec_fuzz";

fn providers() -> &'static [Box<dyn PaymentProvider>] {
    static P: OnceLock<Vec<Box<dyn PaymentProvider>>> = OnceLock::new();
    P.get_or_init(|| {
        let mut config = Config::default().payments;
        config.webhook_secret = SECRET.into();
        config.api_key = "sk_fuzz".into();
        vec![
            Box::new(StripeProvider::new(&config).expect("stripe adapter")),
            Box::new(SandboxProvider::new(&config).expect("sandbox adapter")),
        ]
    })
}

fuzz_target!(|data: &[u8]| {
    let now = 1_800_000_000;
    // The first line is a signature header as a client might send it.
    let (header, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let header = std::str::from_utf8(header).ok();
    let signed = signature::sign(body, SECRET.as_bytes(), now);
    for p in providers() {
        let _ = p.verify_webhook(header, body, now);
        let _ = p.verify_webhook(Some(&signed), body, now);
    }
});
