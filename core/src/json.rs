//! Outside input as JSON, strictly (DESIGN §1): a key given twice is an error naming the key
//! (serde_json keeps the last one silently), and every piece of the input that reaches an error
//! message goes through [`printable`] first, so a message is short and never carries control
//! characters or terminal escapes. Written here because serde_json has no duplicate-key switch;
//! everything else (the parser itself) is serde_json's.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::fmt;

/// The most characters of outside input any error message quotes.
pub const QUOTE_CHARS: usize = 40;

/// Why a JSON document was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JsonError {
    /// This key (printable, bounded) was given twice in one object.
    Duplicate(String),
    /// Not JSON: serde_json's message with its line and column, shortened and escaped.
    Syntax(String),
}

impl std::fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JsonError::Duplicate(k) => write!(f, "{k}: given twice"),
            JsonError::Syntax(m) => write!(f, "not valid JSON: {m}"),
        }
    }
}

std::thread_local! {
    /// The duplicate key the visitor found, handed past serde's string-only custom errors.
    static DUPLICATE: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Parses `json`, refusing a key given twice in any object.
pub fn parse(json: &str) -> Result<Value, JsonError> {
    DUPLICATE.with(|d| d.borrow_mut().take());
    serde_json::from_str::<Strict>(json)
        .map(|s| s.0)
        .map_err(|e| match DUPLICATE.with(|d| d.borrow_mut().take()) {
            Some(key) => JsonError::Duplicate(key),
            None => JsonError::Syntax(printable(&e.to_string(), 120)),
        })
}

/// `s` made safe for an error message: control characters (and invisible or reordering
/// characters) escaped (`\u{1b}`, `\n`, ...), and cut with `...` so that the result, escapes
/// included, is at most `max_chars` characters plus the `...` (a run of escaped characters
/// must not multiply the bound by six).
pub fn printable(s: &str, max_chars: usize) -> String {
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let escaped =
            c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202e}' | '\u{200b}');
        let width = if escaped {
            c.escape_default().count()
        } else {
            1
        };
        if used + width > max_chars {
            out.push_str("...");
            break;
        }
        used += width;
        if escaped {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// A JSON value (or key) for an error message: its type for composite values and strings
/// (whose content may be long or secret), the number itself for numbers.
pub fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => printable(&n.to_string(), QUOTE_CHARS),
        Value::String(_) => "a string".into(),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// A key for an error message: quoted, escaped and bounded.
pub fn key(k: &str) -> String {
    format!("\"{}\"", printable(k, QUOTE_CHARS))
}

/// A `serde_json::Value` built by a visitor that refuses duplicate keys.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }
    fn visit_f64<E>(self, n: f64) -> Result<Value, E> {
        Ok(Number::from_f64(n).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }
    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Strict::deserialize(d).map(|s| s.0)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(k) = access.next_key::<String>()? {
            if map.contains_key(&k) {
                let shown = printable(&k, QUOTE_CHARS);
                DUPLICATE.with(|d| *d.borrow_mut() = Some(shown));
                return Err(de::Error::custom("a key given twice"));
            }
            let Strict(v) = access.next_value()?;
            map.insert(k, v);
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        let e = parse(r#"{"a":1,"b":{"c":1,"c":2}}"#).unwrap_err();
        assert_eq!(e, JsonError::Duplicate("c".into()));
        assert_eq!(e.to_string(), "c: given twice");
        assert!(parse(r#"{"a":1,"a":1}"#).is_err());
        assert_eq!(
            parse(r#"{"a":[1,{"b":null}]}"#).unwrap(),
            serde_json::json!({"a":[1,{"b":null}]})
        );
    }

    #[test]
    fn printable_escapes_and_bounds() {
        assert_eq!(printable("a\u{1b}[31mb\n", 40), "a\\u{1b}[31mb\\n");
        assert_eq!(printable(&"x".repeat(100), 5), "xxxxx...");
        // Escapes count at their printed width (the serve fuzzer's 210-character field name).
        let escaped = printable(&"\u{7f}".repeat(100), 40);
        assert_eq!(escaped, format!("{}...", "\\u{7f}".repeat(6)));
        assert!(
            printable(&format!("ab{}", "\u{1b}".repeat(50)), 40)
                .chars()
                .count()
                <= 43
        );
        let e = parse(&format!(
            "{{\"{}\":1,\"{}\":2}}",
            "k".repeat(500),
            "k".repeat(500)
        ))
        .unwrap_err();
        assert!(e.to_string().len() < 200, "{e}");
    }
}
