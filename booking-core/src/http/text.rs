//! Text from outside, checked once at the boundary: every string in a JSON
//! body or a query string, and every field of an imported chart. PostgreSQL
//! refuses a NUL in text; without this check such a request reached the
//! database and came back as a 503 ("try again shortly"), which the edge's
//! adaptive admission then counted against the core. Bad text is the
//! client's mistake: 422 `invalid_text`, naming the field.

use axum::http::StatusCode;
use serde_json::Value;

use crate::http::problem::ApiError;

/// The longest string accepted in any field, in characters: far above any
/// name, title, message or address, far below what a database row should
/// hold.
pub const MAX_TEXT_CHARS: usize = 10_000;

/// What is wrong with `text`, if anything.
fn fault(text: &str) -> Option<&'static str> {
    if text.chars().count() > MAX_TEXT_CHARS {
        return Some("is longer than 10,000 characters");
    }
    has_control(text).then_some("contains a NUL or control character")
}

/// Tab, line feed and carriage return are ordinary text; the other ASCII
/// control characters are not, and NUL cannot be stored at all.
fn has_control(text: &str) -> bool {
    text.chars()
        .any(|c| c.is_ascii_control() && !matches!(c, '\t' | '\n' | '\r'))
}

fn invalid(field: &str, why: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_text",
        format!("{field} {why}"),
    )
    .with("field", field)
}

/// One named string.
pub fn check(field: &str, text: &str) -> Result<(), ApiError> {
    fault(text).map_or(Ok(()), |why| Err(invalid(field, why)))
}

/// Every string in a JSON document, keys included; `field` names the first
/// bad one as a JSON pointer.
pub fn check_json(value: &Value) -> Result<(), ApiError> {
    walk(value, &mut String::new())
}

fn walk(value: &Value, at: &mut String) -> Result<(), ApiError> {
    match value {
        Value::String(s) => fault(s).map_or(Ok(()), |why| Err(invalid(pointer(at), why))),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| nested(at, &i.to_string(), v)),
        Value::Object(fields) => fields.iter().try_for_each(|(k, v)| {
            if let Some(why) = fault(k) {
                return Err(invalid(pointer(at), &format!("has a key that {why}")));
            }
            nested(at, k, v)
        }),
        _ => Ok(()),
    }
}

fn nested(at: &mut String, key: &str, value: &Value) -> Result<(), ApiError> {
    let len = at.len();
    at.push('/');
    at.push_str(&key.replace('~', "~0").replace('/', "~1"));
    let r = walk(value, at);
    at.truncate(len);
    r
}

fn pointer(at: &str) -> &str {
    if at.is_empty() { "the body" } else { at }
}

/// Every name and value of a query string.
pub fn check_query(query: &str) -> Result<(), ApiError> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(query).map_err(|e| ApiError::bad_request("invalid_query", e.to_string()))?;
    pairs.iter().try_for_each(|(name, value)| {
        check("a query parameter's name", name)?;
        check(name, value)
    })
}

/// An imported chart (CSV or JSON): valid UTF-8 without control
/// characters. Malformed JSON is left to the chart's own parser, which
/// names the line.
pub fn check_chart(body: &[u8], csv: bool) -> Result<(), ApiError> {
    let Ok(body) = std::str::from_utf8(body) else {
        return Err(invalid("the chart", "is not valid UTF-8"));
    };
    if csv {
        return if has_control(body) {
            Err(invalid("the chart", "contains a NUL or control character"))
        } else {
            Ok(())
        };
    }
    match serde_json::from_str::<Value>(body) {
        Ok(value) => check_json(&value),
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nul_control_and_absurd_lengths_are_refused_with_the_field() {
        assert!(check_json(&json!({"title": "Tour\n2027\t!", "n": [1, "ok"]})).is_ok());
        let e = check_json(&json!({"a": {"b/c": ["x", "bad\u{0}"]}})).unwrap_err();
        assert_eq!((e.status.as_u16(), e.code), (422, "invalid_text"));
        assert_eq!(e.extra["field"], "/a/b~1c/1");
        assert!(check_json(&json!({"k\u{0}": 1})).is_err());
        assert!(check_json(&json!("\u{7}")).is_err());
        assert!(check_json(&json!("x".repeat(MAX_TEXT_CHARS + 1))).is_err());
        assert!(check_json(&json!("é".repeat(MAX_TEXT_CHARS))).is_ok());
        assert!(check_query("q=rock%00").is_err());
        assert!(check_query("q=rock&limit=5").is_ok());
        assert!(check_chart(b"section,row\nA,1\r\n", true).is_ok());
        assert!(check_chart(b"section,row\nA\0,1\n", true).is_err());
        assert!(check_chart(b"{\"name\": \"x\\u0000\"}", false).is_err());
        assert!(check_chart(b"\xff", true).is_err());
    }
}
