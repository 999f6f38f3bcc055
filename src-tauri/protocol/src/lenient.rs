//! Lenient deserializers for the places where ComfyUI is loose: counters that arrive as floats
//! and fields that may be `null` or absent on older servers (ids that arrive as numbers are
//! handled by the id types themselves, in `comfy-model`).
//!
//! Lenient is not credulous: `"inf"` and `"NaN"` parse as floats, and a server (a fork, a
//! cloud service, a corrupt record) may send a timestamp in microseconds or one that is simply
//! absurd. Such a value is never a counter and never a timestamp, so whatever is computed from
//! them downstream (durations, retention) stays finite and cannot overflow.

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::fmt;

/// The last millisecond of the year 9999. A larger number is not a millisecond timestamp (it is
/// microseconds, nanoseconds or garbage), and the difference of two timestamps at most this
/// large always fits an `i64`.
pub(crate) const MAX_MILLIS: i64 = 253_402_300_799_999;

/// A millisecond timestamp, if `v` can be one: finite, not negative, before the year 10000.
pub(crate) fn millis(v: f64) -> Option<i64> {
    (v.is_finite() && (0.0..=MAX_MILLIS as f64).contains(&v)).then_some(v as i64)
}

/// Any number: an integer, a float or a numeric string (`"inf"` and `"NaN"` included).
fn any_number<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
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

/// A finite number that may be an integer, a float or a numeric string; `"inf"` and `"NaN"`
/// are refused.
pub(crate) fn number<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let v = any_number(d)?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(de::Error::invalid_value(
            de::Unexpected::Float(v),
            &"a finite number",
        ))
    }
}

/// An optional number: absent, `null`, `"inf"` or `"NaN"` is `None`.
pub(crate) fn opt_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    #[derive(Deserialize)]
    struct W(#[serde(deserialize_with = "any_number")] f64);
    Option::<W>::deserialize(d).map(|o| o.map(|w| w.0).filter(|v| v.is_finite()))
}

/// An optional millisecond timestamp, tolerant of floats; a value that cannot be one (see
/// [`millis`]) is `None`, as if the server had not said.
pub(crate) fn opt_millis<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    opt_number(d).map(|o| o.and_then(millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Times {
        #[serde(default, deserialize_with = "opt_millis")]
        at: Option<i64>,
    }

    #[derive(Debug, Deserialize)]
    struct Counter {
        #[serde(deserialize_with = "number")]
        value: f64,
    }

    fn at(json: &str) -> Option<i64> {
        serde_json::from_str::<Times>(json).unwrap().at
    }

    #[test]
    fn a_timestamp_that_is_not_finite_or_absurd_is_absent() {
        assert_eq!(at(r#"{"at": 1700000000123}"#), Some(1_700_000_000_123));
        assert_eq!(at(r#"{"at": 1700000000123.7}"#), Some(1_700_000_000_123));
        assert_eq!(at(r#"{"at": "1700000000123"}"#), Some(1_700_000_000_123));
        assert_eq!(at(r#"{"at": null}"#), None);
        assert_eq!(at(r#"{}"#), None);
        for absurd in [
            r#""inf""#,
            r#""-inf""#,
            r#""NaN""#,
            "-1",
            // Microseconds and nanoseconds since the epoch.
            "1700000000123456",
            "1700000000123456789",
            "1e300",
            "18446744073709551615",
        ] {
            assert_eq!(at(&format!(r#"{{"at": {absurd}}}"#)), None, "{absurd}");
        }
    }

    #[test]
    fn two_accepted_timestamps_always_subtract_without_overflow() {
        assert_eq!(millis(MAX_MILLIS as f64), Some(MAX_MILLIS));
        assert_eq!(millis(0.0), Some(0));
        assert!(MAX_MILLIS.checked_sub(0).is_some() && 0i64.checked_sub(MAX_MILLIS).is_some());
        assert_eq!(millis(MAX_MILLIS as f64 * 2.0), None);
    }

    #[test]
    fn a_counter_that_is_not_finite_is_refused() {
        assert_eq!(
            serde_json::from_str::<Counter>(r#"{"value": "3.5"}"#)
                .unwrap()
                .value,
            3.5
        );
        for bad in [r#""inf""#, r#""NaN""#, r#""-Infinity""#] {
            assert!(
                serde_json::from_str::<Counter>(&format!(r#"{{"value": {bad}}}"#)).is_err(),
                "{bad}"
            );
        }
    }
}
