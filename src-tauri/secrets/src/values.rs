//! Secret values as a form or a command line hands them in, by slot (`token`, `password`,
//! `header:<name>`), with a `Debug` that shows the slots and never a value.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Deref;

/// New secret values by slot, in plain text on their way to the keyring. Reads like the map
/// it wraps; `Debug` prints each slot with `***`, so a struct that derives `Debug` around it
/// cannot leak a value into a log line.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct SecretValues(BTreeMap<String, String>);

impl SecretValues {
    pub fn new(values: BTreeMap<String, String>) -> Self {
        Self(values)
    }
}

impl Deref for SecretValues {
    type Target = BTreeMap<String, String>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl From<BTreeMap<String, String>> for SecretValues {
    fn from(values: BTreeMap<String, String>) -> Self {
        Self(values)
    }
}

impl FromIterator<(String, String)> for SecretValues {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl fmt::Debug for SecretValues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|slot| (slot, "***")))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_the_slots_but_never_a_value() {
        let values: SecretValues = [
            ("token".to_owned(), "hunter2-token".to_owned()),
            ("header:x-key".to_owned(), "hunter2-header".to_owned()),
        ]
        .into_iter()
        .collect();
        let shown = format!("{values:?} {values:#?}");
        assert!(
            shown.contains("token") && shown.contains("header:x-key"),
            "{shown}"
        );
        assert!(shown.contains("***"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(
            values.get("token").map(String::as_str),
            Some("hunter2-token")
        );
    }

    #[test]
    fn it_reads_from_a_plain_json_object() {
        let values: SecretValues =
            serde_json::from_str(r#"{"password":"p","header:x":"h"}"#).expect("a JSON object");
        assert_eq!(values.len(), 2);
        assert_eq!(values.get("password").map(String::as_str), Some("p"));
    }
}
