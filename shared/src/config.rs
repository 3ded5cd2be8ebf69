//! How both services read their configuration (defaults, then a TOML file,
//! then environment variables, once at start), and the value types their
//! files are made of: a secret that never prints, and URLs whose scheme is
//! checked as the file is read, so a wrong one is refused at start with its
//! key named (and a password in a database or Redis URL never reaches a log
//! line).

use std::fmt;
use std::marker::PhantomData;
use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    #[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
    Invalid(Vec<String>),
}

/// Reads a configuration: `defaults` if any, then `file` if it exists, then
/// the environment's `<prefix><SECTION>__<KEY>` variables, then each
/// `(variable, key)` of `aliases` that is set (the conventional names, such
/// as `DATABASE_URL`). Typed values are checked here; ranges are the
/// caller's `validate`.
pub fn read<T: Serialize + DeserializeOwned>(
    defaults: Option<&T>,
    file: &Path,
    prefix: &str,
    aliases: &[(&str, &str)],
) -> Result<T, ConfigError> {
    let mut figment = match defaults {
        Some(d) => Figment::from(Serialized::defaults(d)),
        None => Figment::new(),
    }
    .merge(Toml::file(file))
    .merge(Env::prefixed(prefix).split("__").lowercase(true));
    for (variable, key) in aliases {
        if let Ok(value) = std::env::var(variable) {
            figment = figment.merge(Serialized::default(key, value));
        }
    }
    Ok(figment.extract().map_err(Box::new)?)
}

/// Adds a problem for each key id among `previous` that is named twice or
/// is the `current` one (a key accepted during a rotation must be a
/// different key).
pub fn check_distinct_kids<'a>(
    problems: &mut Vec<String>,
    key: &str,
    current: &'a str,
    previous: impl IntoIterator<Item = &'a str>,
) {
    let mut kids = std::collections::HashSet::from([current]);
    for kid in previous {
        if !kids.insert(kid) {
            problems.push(format!("{key}: kid {kid:?} is named twice (or is the current kid)"));
        }
    }
}

/// A validation's outcome: every problem found, or none.
pub fn verdict(problems: Vec<String>) -> Result<(), ConfigError> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ConfigError::Invalid(problems))
    }
}

/// A key, token or password. `Debug` prints `[redacted]`; the value is read
/// only through [`Secret::expose`], where it is used.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Its length in bytes, for minimum-strength checks.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Secret {
        Secret(value.into())
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Secret {
        Secret(value)
    }
}

// Serialized as itself: configuration is layered (defaults, file,
// environment) by serializing the defaults first.
impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

/// Which URL schemes a [`Url`] takes, and whether it may be printed.
pub trait Scheme {
    const ALLOWED: &'static [&'static str];
    /// How the refusal names the kind, e.g. "an http(s)://".
    const KIND: &'static str;
    /// URLs of this kind may carry a password: `Debug` hides them.
    const SECRET: bool;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Http;
impl Scheme for Http {
    const ALLOWED: &'static [&'static str] = &["http://", "https://"];
    const KIND: &'static str = "an http(s)://";
    const SECRET: bool = false;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Postgres;
impl Scheme for Postgres {
    const ALLOWED: &'static [&'static str] = &["postgres://", "postgresql://"];
    const KIND: &'static str = "a postgres://";
    const SECRET: bool = true;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Redis;
impl Scheme for Redis {
    const ALLOWED: &'static [&'static str] = &["redis://", "rediss://"];
    const KIND: &'static str = "a redis://";
    const SECRET: bool = true;
}

/// A URL whose scheme is one of `S::ALLOWED`.
pub struct Url<S: Scheme>(String, PhantomData<S>);

pub type HttpUrl = Url<Http>;
pub type PostgresUrl = Url<Postgres>;
pub type RedisUrl = Url<Redis>;

#[derive(Debug, thiserror::Error)]
#[error("must be {kind} URL, got {shown}")]
pub struct UrlError {
    kind: &'static str,
    shown: String,
}

impl<S: Scheme> Url<S> {
    pub fn parse(text: impl Into<String>) -> Result<Url<S>, UrlError> {
        let text = text.into();
        if S::ALLOWED
            .iter()
            .any(|p| text.strip_prefix(p).is_some_and(|rest| !rest.is_empty()))
        {
            return Ok(Url(text, PhantomData));
        }
        // Only the scheme of a URL that may hold a password is echoed.
        let shown = if S::SECRET {
            format!(
                "{:?}",
                text.split_once("://").map_or("(no scheme)", |(scheme, _)| scheme)
            )
        } else {
            format!("{text:?}")
        };
        Err(UrlError { kind: S::KIND, shown })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<S: Scheme> Clone for Url<S> {
    fn clone(&self) -> Self {
        Url(self.0.clone(), PhantomData)
    }
}

impl<S: Scheme> PartialEq for Url<S> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl<S: Scheme> fmt::Debug for Url<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if S::SECRET {
            f.write_str("[redacted]")
        } else {
            write!(f, "{:?}", self.0)
        }
    }
}

impl<S: Scheme> Serialize for Url<S> {
    fn serialize<Se: Serializer>(&self, s: Se) -> Result<Se::Ok, Se::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de, S: Scheme> Deserialize<'de> for Url<S> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Url<S>, D::Error> {
        let text = String::deserialize(d)?;
        Url::parse(text).map_err(serde::de::Error::custom)
    }
}

/// Adds a problem unless `value` is within `range`: configuration checks
/// list every problem at once, so an operator fixes the file in one go.
pub fn check_range<T>(problems: &mut Vec<String>, key: &str, value: T, range: std::ops::RangeInclusive<T>)
where
    T: PartialOrd + fmt::Display,
{
    if !range.contains(&value) {
        problems.push(format!(
            "{key} must be {}..={}, got {value}",
            range.start(),
            range.end()
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_and_secret_urls_never_print() {
        let s = Secret::from("sk_live_abc");
        assert_eq!(format!("{s:?}"), "[redacted]");
        let u = PostgresUrl::parse("postgres://app:hunter2@db/usher").unwrap();
        assert!(!format!("{u:?}").contains("hunter2"));
        let err = RedisUrl::parse("http://:hunter2@cache").unwrap_err().to_string();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(err.contains("redis://"), "{err}");
    }

    #[test]
    fn schemes_are_checked() {
        assert!(HttpUrl::parse("https://api.stripe.com").is_ok());
        assert!(
            HttpUrl::parse("ftp://x")
                .unwrap_err()
                .to_string()
                .contains("\"ftp://x\"")
        );
        assert!(HttpUrl::parse("http://").is_err());
        assert!(PostgresUrl::parse("postgresql://h/db").is_ok());
        assert!(PostgresUrl::parse("mysql://h/db").is_err());
    }

    #[test]
    fn ranges_name_the_key() {
        let mut problems = Vec::new();
        check_range(&mut problems, "a.b", 5, 1..=4);
        check_range(&mut problems, "a.c", 3, 1..=4);
        assert_eq!(problems, ["a.b must be 1..=4, got 5"]);
    }
}
