//! The one reading of a request path that the edge and the core share.
//!
//! The edge decides what a request needs (an access token for an event, or
//! nothing) from its path, and the core routes it from its path. If the two
//! read a path differently, a fan can spell a protected path so that the edge
//! sees nothing protected and the core sees the protected route (a
//! percent-encoded digit, `/./`, a doubled slash, `+7` or `007`). So there is
//! one canonical form: the edge rewrites every request to it before deciding
//! and forwards exactly that, and the core refuses any path not already in
//! it.
//!
//! The canonical form of a path:
//! - starts with `/`, has no empty segments (doubled or trailing slashes
//!   are dropped; the root is `/`), and no `.` or `..` segments (resolved as
//!   RFC 3986 removes dot segments; `..` at the root stays at the root);
//! - spells an unreserved character (`A-Z a-z 0-9 - . _ ~`) plainly and
//!   any other byte outside RFC 3986's `pchar` as `%XX` in upper-case hex;
//! - writes a segment that is a decimal number (`[+-]?[0-9]+`) without a
//!   plus sign or leading zeros, as both services' number parsers read it;
//! - keeps letters' case: routes match case-sensitively in both services.
//!
//! Some paths have no canonical form and are refused: an encoded `/`, `\`
//! or control character (servers disagree on what they mean), a bare `\`
//! or control character, a malformed `%` escape, a number too large for an
//! id (64 bits), or a path longer than [`MAX_PATH_BYTES`].

use std::borrow::Cow;

/// Longer paths are refused: no route of ours comes near it.
pub const MAX_PATH_BYTES: usize = 2048;

/// Why a path has no canonical form; `code()` is the stable problem code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path must start with /")]
    NotAbsolute,
    #[error("the path is longer than {MAX_PATH_BYTES} bytes")]
    TooLong,
    #[error("the path has a malformed percent escape")]
    BadEscape,
    #[error("the path has an encoded separator or control character")]
    EncodedSeparator,
    #[error("the path has a backslash or control character")]
    BadCharacter,
    #[error("the path has a number too large for an id")]
    NumberTooLarge,
}

impl PathError {
    pub fn code(self) -> &'static str {
        match self {
            PathError::NumberTooLarge => "path_number_too_large",
            _ => "bad_path",
        }
    }
}

/// The canonical form of `raw` (borrowed when it already is canonical).
pub fn canonical(raw: &str) -> Result<Cow<'_, str>, PathError> {
    if raw.len() > MAX_PATH_BYTES {
        return Err(PathError::TooLong);
    }
    if !raw.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    let mut segments: Vec<String> = Vec::new();
    for piece in raw.split('/').skip(1) {
        let segment = decode_segment(piece)?;
        match segment.as_str() {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            _ => segments.push(canonical_number(&segment)?.unwrap_or(segment)),
        }
    }
    let mut out = String::with_capacity(raw.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() {
        out.push('/');
    }
    // Escaping can make a path longer: the canonical form must itself be
    // within the limit, or the core would refuse what the edge forwards.
    if out.len() > MAX_PATH_BYTES {
        return Err(PathError::TooLong);
    }
    Ok(if out == raw {
        Cow::Borrowed(raw)
    } else {
        Cow::Owned(out)
    })
}

/// Whether `path` is already in canonical form (the core's check).
pub fn is_canonical(path: &str) -> bool {
    matches!(canonical(path), Ok(Cow::Borrowed(_)))
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// RFC 3986 `pchar` without `%`: may stand in a segment unencoded.
fn is_plain(b: u8) -> bool {
    is_unreserved(b)
        || matches!(
            b,
            b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=' | b':' | b'@'
        )
}

fn is_forbidden(b: u8) -> bool {
    b == b'/' || b == b'\\' || b.is_ascii_control()
}

/// One segment with every escape decoded as far as the canonical form
/// allows, and every other byte encoded.
fn decode_segment(piece: &str) -> Result<String, PathError> {
    let bytes = piece.as_bytes();
    let mut out = String::with_capacity(piece.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(PathError::BadEscape)?;
            let value = hex_value(hex[0])
                .zip(hex_value(hex[1]))
                .map(|(h, l)| h << 4 | l)
                .ok_or(PathError::BadEscape)?;
            if is_forbidden(value) {
                return Err(PathError::EncodedSeparator);
            }
            push_byte(&mut out, value);
            i += 3;
        } else if is_forbidden(b) {
            return Err(PathError::BadCharacter);
        } else {
            push_byte(&mut out, b);
            i += 1;
        }
    }
    Ok(out)
}

fn push_byte(out: &mut String, b: u8) {
    if is_plain(b) {
        out.push(char::from(b));
    } else {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        out.push('%');
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
}

fn hex_value(b: u8) -> Option<u8> {
    char::from(b).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// A decimal number's canonical spelling, or None for a segment that is not
/// one. Both `i64::from_str` (the core's path parameters) and a plain digit
/// match (the edge) read `+7` and `007` as 7, so those are written `7`.
fn canonical_number(segment: &str) -> Result<Option<String>, PathError> {
    let (sign, digits) = match segment.as_bytes().first() {
        Some(b'+') => ("", &segment[1..]),
        Some(b'-') => ("-", &segment[1..]),
        _ => ("", segment),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    let trimmed = digits.trim_start_matches('0');
    if trimmed.is_empty() {
        return Ok(Some("0".into()));
    }
    let text = format!("{sign}{trimmed}");
    text.parse::<i64>().map_err(|_| PathError::NumberTooLarge)?;
    Ok(Some(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(raw: &str) -> Result<String, PathError> {
        canonical(raw).map(Cow::into_owned)
    }

    #[test]
    fn spellings_of_one_path_read_as_one() {
        let want = Ok("/v1/events/7/holds".to_string());
        for raw in [
            "/v1/events/7/holds",
            "/v1/events/%37/holds",
            "/v1/events/+7/holds",
            "/v1/events/007/holds",
            "/v1/events/%2B7/holds",
            "/v1/events/%30%30%37/holds",
            "/v1/events/7/holds/",
            "//v1//events/7///holds",
            "/v1/./events/7/./holds",
            "/v1/x/../events/7/holds",
            "/v1/events/7/%2e/holds",
            "/v1/%65vents/7/h%6Flds",
            "/../v1/events/7/holds",
            "/v1/events/8/../7/holds",
            "/v1/events/7/holds/x/%2E%2E",
        ] {
            assert_eq!(c(raw), want, "{raw}");
        }
    }

    #[test]
    fn canonical_paths_stay_as_they_are() {
        for raw in [
            "/",
            "/v1/events/7/holds",
            "/v1/holds/0190a-b",
            "/a:b@c",
            "/-3",
            "/0",
            "/caf%C3%A9",
        ] {
            assert!(is_canonical(raw), "{raw}");
        }
        assert_eq!(c("/caf%c3%a9"), Ok("/caf%C3%A9".into()));
        assert_eq!(c("/a b"), Ok("/a%20b".into()));
        assert_eq!(c("/-007"), Ok("/-7".into()));
        assert_eq!(c("/-0"), Ok("/0".into()));
        assert_eq!(c("/V1/Events/7"), Ok("/V1/Events/7".into()));
        assert_eq!(c("/..%2e"), Ok("/...".into()));
    }

    #[test]
    fn paths_without_a_canonical_form_are_refused() {
        assert_eq!(c("v1/events"), Err(PathError::NotAbsolute));
        assert_eq!(c("/v1/events%2F7/holds"), Err(PathError::EncodedSeparator));
        assert_eq!(c("/v1/events%5C7/holds"), Err(PathError::EncodedSeparator));
        assert_eq!(c("/v1/events/7%00/holds"), Err(PathError::EncodedSeparator));
        assert_eq!(c("/v1\\events"), Err(PathError::BadCharacter));
        assert_eq!(c("/v1/%4"), Err(PathError::BadEscape));
        assert_eq!(c("/v1/%zz"), Err(PathError::BadEscape));
        assert_eq!(
            c("/v1/events/9223372036854775808/holds"),
            Err(PathError::NumberTooLarge)
        );
        assert_eq!(
            c("/v1/events/00009223372036854775807"),
            Ok("/v1/events/9223372036854775807".into())
        );
        assert_eq!(c(&format!("/{}", "a".repeat(MAX_PATH_BYTES))), Err(PathError::TooLong));
        // Found by fuzzing: short enough as sent, too long once escaped.
        let grows = format!("/{}", ">".repeat(MAX_PATH_BYTES / 2));
        assert_eq!(c(&grows), Err(PathError::TooLong));
    }
}

/// Spellings of a path, for property tests here and in the services' tests:
/// every way a client might write the same path that some server reads as
/// it (escapes, signs, zeros, dot segments, doubled and trailing slashes).
pub mod spellings {
    /// One way to write `segment` (chosen by `choice`, any number).
    pub fn segment(segment: &str, choice: u32) -> String {
        let mut out = String::new();
        if segment.bytes().all(|b| b.is_ascii_digit()) {
            // Signs and zeros before a number.
            match choice % 4 {
                1 => out.push('+'),
                2 => out.push_str("%2B"),
                _ => {}
            }
            for _ in 0..(choice / 4) % 3 {
                out.push('0');
            }
        }
        for (i, b) in segment.bytes().enumerate() {
            // Escape some characters, in either case of hex.
            let bit = (choice >> (i % 16)) & 1 == 1;
            if bit && (choice >> 20) & 1 == 1 {
                out.push_str(&format!("%{b:02x}"));
            } else if bit {
                out.push_str(&format!("%{b:02X}"));
            } else {
                out.push(char::from(b));
            }
        }
        out
    }

    /// One way to write the path made of `segments`.
    pub fn path(segments: &[&str], choices: &[u32]) -> String {
        let mut out = String::new();
        for (i, s) in segments.iter().enumerate() {
            let choice = choices.get(i).copied().unwrap_or(0);
            out.push('/');
            match choice % 7 {
                1 => out.push('/'),
                2 => out.push_str("./"),
                3 => out.push_str("%2e/"),
                4 => out.push_str("detour/../"),
                5 => out.push_str("x/%2E%2E/"),
                _ => {}
            }
            out.push_str(&segment(s, choice / 7));
        }
        if choices.last().is_some_and(|c| c % 3 == 0) {
            out.push('/');
        }
        out
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn every_spelling_reads_as_the_plain_path(
            event in 1i64..=i64::MAX,
            tail in prop::sample::select(vec!["holds", "seat-changes", "seats"]),
            choices in prop::collection::vec(any::<u32>(), 4),
        ) {
            let id = event.to_string();
            let raw = spellings::path(&["v1", "events", &id, tail], &choices);
            let want = format!("/v1/events/{event}/{tail}");
            prop_assert_eq!(canonical(&raw).map(Cow::into_owned), Ok(want.clone()), "{}", raw);
            prop_assert!(is_canonical(&want));
        }

        #[test]
        fn the_canonical_form_is_a_fixed_point(raw in "/[ -~]{0,40}") {
            if let Ok(once) = canonical(&raw) {
                let once = once.into_owned();
                prop_assert!(is_canonical(&once), "{} -> {}", raw, once);
            }
        }
    }
}
