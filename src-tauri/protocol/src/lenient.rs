//! Lenient deserializers for the places where ComfyUI is loose: counters that arrive as floats
//! and fields that may be `null` or absent on older servers (ids that arrive as numbers are
//! handled by the id types themselves, in `comfy-model`).

use serde::de::{self, Deserializer, Visitor};
use std::fmt;

/// A number that may be an integer, a float or a numeric string.
pub(crate) fn number<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = f64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a number")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
            Ok(v as f64)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
            Ok(v as f64)
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
            Ok(v)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
            v.trim()
                .parse()
                .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
        }
    }
    d.deserialize_any(V)
}

/// An optional number: absent or `null` is `None`.
pub(crate) fn opt_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    #[derive(serde::Deserialize)]
    struct W(#[serde(deserialize_with = "number")] f64);
    Option::<W>::deserialize(d).map(|o| o.map(|w| w.0))
}

/// An optional millisecond timestamp, tolerant of floats.
pub(crate) fn opt_millis<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    opt_number(d).map(|o| o.map(|v| v as i64))
}

use serde::Deserialize;
