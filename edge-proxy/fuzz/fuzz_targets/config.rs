//! The edge's configuration file, any bytes: `EdgeConfig::load` (figment
//! over TOML, then `validate`) returns a configuration or an error, never a
//! panic; what it returns validates, and everything the edge builds from a
//! configuration at start (rooms, rules, the cache, the puzzle's
//! difficulty) is built without a panic; written back as TOML it
//! loads again to the same thing.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use edge_proxy::config::EdgeConfig;
use edge_proxy::defence::Defences;
use edge_proxy::queue::Rooms;
use edge_proxy::rules::{Bypasses, Protection};
use edge_proxy::state::Bucket;
use libfuzzer_sys::fuzz_target;

/// A file of this process's own; the environment's overrides cleared, so
/// only the file speaks.
fn file() -> &'static PathBuf {
    static F: OnceLock<PathBuf> = OnceLock::new();
    F.get_or_init(|| {
        for (name, _) in std::env::vars() {
            if name.starts_with("USHER_EDGE__") || name == "REDIS_URL" {
                // SAFETY: once, before anything else reads the environment.
                unsafe { std::env::remove_var(name) };
            }
        }
        std::env::temp_dir().join(format!("usher-fuzz-edge-config-{}.toml", std::process::id()))
    })
}

fn load(text: &[u8]) -> Result<EdgeConfig, edge_proxy::config::ConfigError> {
    std::fs::write(file(), text).expect("the temporary file is written");
    EdgeConfig::load(file())
}

fuzz_target!(|data: &[u8]| {
    let Ok(config) = load(data) else {
        return;
    };
    assert!(config.validate().is_ok(), "a loaded configuration does not validate");

    // What the edge builds from it at start (main.rs), but the parts that
    // read key files, reach the network or need a running edge.
    let _rooms = Rooms::from_settings(&config.events);
    let _protection = Protection::new(&config.protection);
    let _bypass = Bypasses::new(&config.bypass);
    let _bucket = Bucket::new(config.redis.fail_open_per_minute);
    let _cache =
        edge_proxy::cache::ResponseCache::new(config.cache.max_mb * 1024 * 1024, config.cache.max_entry_kb * 1024);
    if let Some(pow) = &config.defence.pow {
        for (rate, extra) in [(0.0, 0), (1e9, u8::MAX), (f64::MAX, 3)] {
            let bits = Defences::bits(pow, rate, extra);
            assert!((pow.min_bits..=pow.max_bits).contains(&bits), "{bits} bits");
        }
    }

    // Written back, it reads as itself.
    let Ok(text) = toml::to_string(&config) else {
        return;
    };
    let again = load(text.as_bytes()).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(toml::to_string(&again).ok().as_deref(), Some(text.as_str()));
});
