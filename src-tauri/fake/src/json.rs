//! Order-preserving JSON values written the way ComfyUI's Python server writes them.
//!
//! ComfyUI answers with `json.dumps` defaults: keys in insertion order, `", "` and `": "` as
//! separators and non-ASCII escaped as `\uXXXX`. Clients must not depend on any of that, but the
//! fake's frames should still look like the recorded ones byte for byte where that is cheap, and
//! the order of a submitted graph's keys matters for `execution_cached`. This module therefore has
//! its own small value type instead of enabling `serde_json/preserve_order`, which would change
//! `serde_json` for every crate of the workspace. It must not grow into a general JSON library.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

/// A JSON value whose objects keep their keys in insertion order.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum J {
    #[default]
    Null,
    Bool(bool),
    Num(serde_json::Number),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

/// Builds an ordered JSON object: `obj! { "type" => "status", "data" => inner }`.
macro_rules! obj {
    () => { $crate::json::J::Obj(Vec::new()) };
    ($($k:expr => $v:expr),+ $(,)?) => {
        $crate::json::J::Obj(vec![$((($k).to_string(), $crate::json::J::from($v))),+])
    };
}
pub(crate) use obj;

impl J {
    /// Parses JSON text, keeping object key order.
    pub fn parse(text: &str) -> Result<J, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Parses JSON bytes, keeping object key order.
    pub fn parse_slice(bytes: &[u8]) -> Result<J, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    pub fn obj() -> J {
        J::Obj(Vec::new())
    }

    pub fn get(&self, key: &str) -> Option<&J> {
        match self {
            J::Obj(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Sets `key`, replacing an existing entry in place or appending a new one.
    /// Does nothing when `self` is not an object.
    pub fn set(&mut self, key: &str, value: impl Into<J>) {
        if let J::Obj(entries) = self {
            let value = value.into();
            match entries.iter_mut().find(|(k, _)| k == key) {
                Some(slot) => slot.1 = value,
                None => entries.push((key.to_string(), value)),
            }
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<J> {
        if let J::Obj(entries) = self {
            let pos = entries.iter().position(|(k, _)| k == key)?;
            return Some(entries.remove(pos).1);
        }
        None
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            J::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            J::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            J::Num(n) => n
                .as_i64()
                .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            J::Num(n) => n.as_f64(),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&Vec<J>> {
        match self {
            J::Arr(items) => Some(items),
            _ => None,
        }
    }

    pub fn as_object(&self) -> Option<&Vec<(String, J)>> {
        match self {
            J::Obj(entries) => Some(entries),
            _ => None,
        }
    }

    /// Python truthiness, used where ComfyUI writes `if json_data.get("x"):`.
    pub fn truthy(&self) -> bool {
        match self {
            J::Null => false,
            J::Bool(b) => *b,
            J::Num(n) => n.as_f64().is_some_and(|f| f != 0.0),
            J::Str(s) => !s.is_empty(),
            J::Arr(a) => !a.is_empty(),
            J::Obj(o) => !o.is_empty(),
        }
    }

    /// `str(value)` as Python would print a JSON-decoded value inside an error message.
    pub fn python_str(&self) -> String {
        match self {
            J::Null => "None".to_string(),
            J::Bool(true) => "True".to_string(),
            J::Bool(false) => "False".to_string(),
            J::Num(n) => python_number(n),
            J::Str(s) => s.clone(),
            J::Arr(items) => {
                let inner: Vec<String> = items.iter().map(J::python_repr).collect();
                format!("[{}]", inner.join(", "))
            }
            J::Obj(entries) => {
                let inner: Vec<String> = entries
                    .iter()
                    .map(|(k, v)| format!("'{k}': {}", v.python_repr()))
                    .collect();
                format!("{{{}}}", inner.join(", "))
            }
        }
    }

    /// `repr(value)`: strings quoted with single quotes.
    pub fn python_repr(&self) -> String {
        match self {
            J::Str(s) => format!("'{s}'"),
            other => other.python_str(),
        }
    }

    /// Serializes like Python's `json.dumps(value)` with default arguments.
    pub fn to_py_string(&self) -> String {
        let mut out = String::new();
        write_py(self, &mut out);
        out
    }

    pub fn to_value(&self) -> serde_json::Value {
        match self {
            J::Null => serde_json::Value::Null,
            J::Bool(b) => serde_json::Value::Bool(*b),
            J::Num(n) => serde_json::Value::Number(n.clone()),
            J::Str(s) => serde_json::Value::String(s.clone()),
            J::Arr(items) => serde_json::Value::Array(items.iter().map(J::to_value).collect()),
            J::Obj(entries) => serde_json::Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_value()))
                    .collect(),
            ),
        }
    }

    pub fn from_value(value: &serde_json::Value) -> J {
        match value {
            serde_json::Value::Null => J::Null,
            serde_json::Value::Bool(b) => J::Bool(*b),
            serde_json::Value::Number(n) => J::Num(n.clone()),
            serde_json::Value::String(s) => J::Str(s.clone()),
            serde_json::Value::Array(items) => J::Arr(items.iter().map(J::from_value).collect()),
            serde_json::Value::Object(map) => J::Obj(
                map.iter()
                    .map(|(k, v)| (k.clone(), J::from_value(v)))
                    .collect(),
            ),
        }
    }

    pub fn float(f: f64) -> J {
        serde_json::Number::from_f64(f).map_or(J::Null, J::Num)
    }
}

fn python_number(n: &serde_json::Number) -> String {
    if n.is_f64() {
        let text = n.to_string();
        // ryu writes `1e16`, Python writes `1e+16`.
        match text.find('e') {
            Some(pos) if !text[pos + 1..].starts_with(['-', '+']) => {
                format!("{}e+{}", &text[..pos], &text[pos + 1..])
            }
            _ => text,
        }
    } else {
        n.to_string()
    }
}

fn write_py(value: &J, out: &mut String) {
    match value {
        J::Null => out.push_str("null"),
        J::Bool(true) => out.push_str("true"),
        J::Bool(false) => out.push_str("false"),
        J::Num(n) => out.push_str(&python_number(n)),
        J::Str(s) => write_py_str(s, out),
        J::Arr(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_py(item, out);
            }
            out.push(']');
        }
        J::Obj(entries) => {
            out.push('{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_py_str(k, out);
                out.push_str(": ");
                write_py(v, out);
            }
            out.push('}');
        }
    }
}

fn write_py_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

impl fmt::Display for J {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_py_string())
    }
}

impl From<&str> for J {
    fn from(s: &str) -> J {
        J::Str(s.to_string())
    }
}

impl From<String> for J {
    fn from(s: String) -> J {
        J::Str(s)
    }
}

impl From<&String> for J {
    fn from(s: &String) -> J {
        J::Str(s.clone())
    }
}

impl From<bool> for J {
    fn from(b: bool) -> J {
        J::Bool(b)
    }
}

impl From<i64> for J {
    fn from(n: i64) -> J {
        J::Num(n.into())
    }
}

impl From<i32> for J {
    fn from(n: i32) -> J {
        J::Num(n.into())
    }
}

impl From<u64> for J {
    fn from(n: u64) -> J {
        J::Num(n.into())
    }
}

impl From<u32> for J {
    fn from(n: u32) -> J {
        J::Num(n.into())
    }
}

impl From<usize> for J {
    fn from(n: usize) -> J {
        J::Num((n as u64).into())
    }
}

impl From<f64> for J {
    fn from(f: f64) -> J {
        J::float(f)
    }
}

impl From<Vec<J>> for J {
    fn from(items: Vec<J>) -> J {
        J::Arr(items)
    }
}

impl From<Vec<String>> for J {
    fn from(items: Vec<String>) -> J {
        J::Arr(items.into_iter().map(J::Str).collect())
    }
}

impl From<&[String]> for J {
    fn from(items: &[String]) -> J {
        J::Arr(items.iter().cloned().map(J::Str).collect())
    }
}

impl<T: Into<J>> From<Option<T>> for J {
    fn from(v: Option<T>) -> J {
        v.map_or(J::Null, Into::into)
    }
}

impl From<&J> for J {
    fn from(v: &J) -> J {
        v.clone()
    }
}

impl Serialize for J {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            J::Null => serializer.serialize_unit(),
            J::Bool(b) => serializer.serialize_bool(*b),
            J::Num(n) => n.serialize(serializer),
            J::Str(s) => serializer.serialize_str(s),
            J::Arr(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            J::Obj(entries) => {
                let mut map = serializer.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

struct JVisitor;

impl<'de> Visitor<'de> for JVisitor {
    type Value = J;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<J, E> {
        Ok(J::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<J, E> {
        Ok(J::Num(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<J, E> {
        Ok(J::Num(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<J, E> {
        Ok(J::float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<J, E> {
        Ok(J::Str(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<J, E> {
        Ok(J::Str(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<J, E> {
        Ok(J::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<J, E> {
        Ok(J::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<J, D::Error> {
        J::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<J, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<J>()? {
            items.push(item);
        }
        Ok(J::Arr(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<J, A::Error> {
        let mut entries: Vec<(String, J)> = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, J>()? {
            // Python's json keeps the last duplicate, at the first one's position.
            match entries.iter_mut().find(|(key, _)| *key == k) {
                Some(slot) => slot.1 = v,
                None => entries.push((k, v)),
            }
        }
        Ok(J::Obj(entries))
    }
}

impl<'de> Deserialize<'de> for J {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<J, D::Error> {
        deserializer.deserialize_any(JVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing_keeps_key_order_and_number_kinds() {
        let j = J::parse(r#"{"b": 1, "a": 1.0, "10": [true, null], "2": "x"}"#).unwrap();
        assert_eq!(
            j.to_py_string(),
            r#"{"b": 1, "a": 1.0, "10": [true, null], "2": "x"}"#
        );
    }

    #[test]
    fn python_style_output_escapes_non_ascii() {
        let j = obj! { "t" => "é\n\u{1F600}" };
        assert_eq!(j.to_py_string(), r#"{"t": "\u00e9\n\ud83d\ude00"}"#);
    }

    #[test]
    fn python_style_floats_use_explicit_exponent_sign() {
        assert_eq!(J::float(1e16).to_py_string(), "1e+16");
        assert_eq!(J::float(0.5).to_py_string(), "0.5");
        assert_eq!(J::float(104857600.0).to_py_string(), "104857600.0");
    }

    #[test]
    fn set_replaces_in_place_and_appends_new_keys() {
        let mut j = obj! { "a" => 1i64, "b" => 2i64 };
        j.set("a", 3i64);
        j.set("c", 4i64);
        assert_eq!(j.to_py_string(), r#"{"a": 3, "b": 2, "c": 4}"#);
    }

    #[test]
    fn python_repr_matches_the_validation_messages() {
        let j = J::parse(r#"["JPEG", "PNG", "none"]"#).unwrap();
        assert_eq!(j.python_str(), "['JPEG', 'PNG', 'none']");
    }
}
