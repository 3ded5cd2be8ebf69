//! booking-core's configuration file, any bytes: `Config::load` (defaults,
//! then the file through figment, then `validate`) returns a configuration
//! or an error, never a panic; what it returns validates, and written back
//! as TOML it loads again to the same thing.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use booking_core::config::{Config, ConfigError};
use libfuzzer_sys::fuzz_target;

/// A file of this process's own; the environment's overrides cleared, so
/// only the file speaks.
fn file() -> &'static PathBuf {
    static F: OnceLock<PathBuf> = OnceLock::new();
    F.get_or_init(|| {
        for (name, _) in std::env::vars() {
            if name.starts_with("USHER_CORE__") || name == "DATABASE_URL" {
                // SAFETY: once, before anything else reads the environment.
                unsafe { std::env::remove_var(name) };
            }
        }
        std::env::temp_dir().join(format!("usher-fuzz-core-config-{}.toml", std::process::id()))
    })
}

fn load(text: &[u8]) -> Result<Config, ConfigError> {
    std::fs::write(file(), text).expect("the temporary file is written");
    Config::load(file())
}

fuzz_target!(|data: &[u8]| {
    let Ok(config) = load(data) else {
        return;
    };
    assert!(config.validate().is_ok(), "a loaded configuration does not validate");
    // Written back, it reads as itself.
    let Ok(text) = toml::to_string(&config) else {
        return;
    };
    let again = load(text.as_bytes()).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(toml::to_string(&again).ok().as_deref(), Some(text.as_str()));
});
