//! Opaque pagination cursors: the (starts_at, id) of the last event on a
//! page, so the next page starts strictly after it even when many events
//! share a start time.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub starts_at: DateTime<Utc>,
    pub id: i64,
}

#[derive(Debug, thiserror::Error)]
#[error("the cursor is not one this service issued")]
pub struct BadCursor;

impl Cursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}.{}", self.starts_at.timestamp_micros(), self.id))
    }

    pub fn decode(text: &str) -> Result<Cursor, BadCursor> {
        let raw = URL_SAFE_NO_PAD.decode(text).map_err(|_| BadCursor)?;
        let raw = std::str::from_utf8(&raw).map_err(|_| BadCursor)?;
        let (micros, id) = raw.split_once('.').ok_or(BadCursor)?;
        let micros: i64 = micros.parse().map_err(|_| BadCursor)?;
        let id: i64 = id.parse().map_err(|_| BadCursor)?;
        let starts_at = DateTime::from_timestamp_micros(micros).ok_or(BadCursor)?;
        Ok(Cursor { starts_at, id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_junk() {
        let c = Cursor {
            starts_at: DateTime::from_timestamp_micros(1_800_000_000_123_456).unwrap(),
            id: 42,
        };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        for junk in ["", "!!", "bm90LWEtY3Vyc29y", &URL_SAFE_NO_PAD.encode("1.x")] {
            assert!(Cursor::decode(junk).is_err(), "{junk}");
        }
    }
}
