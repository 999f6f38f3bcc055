//! App-wide preferences (not per instance), as JSON values under `app.<key>` in the `meta`
//! table: start minimised, notification pause, and the like. Unknown keys read as absent, so a
//! newer build's preferences never break an older one.

use crate::error::StoreError;
use crate::store::Store;
use rusqlite::{params, OptionalExtension};

fn key_of(key: &str) -> Result<String, StoreError> {
    if key.is_empty()
        || !key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
    {
        return Err(StoreError::Invalid(format!(
            "`{key}` is not a setting name"
        )));
    }
    Ok(format!("app.{key}"))
}

impl Store {
    /// A preference, or `None` when it was never set or does not parse as `T`.
    pub fn setting<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        let key = key_of(key)?;
        let r = (|| {
            let raw: Option<String> = self
                .conn
                .query_row("SELECT value FROM meta WHERE key = ?1", [&key], |r| {
                    r.get(0)
                })
                .optional()?;
            Ok(raw.and_then(|v| serde_json::from_str(&v).ok()))
        })();
        self.check(r)
    }

    /// Sets a preference.
    pub fn set_setting<T: serde::Serialize>(
        &mut self,
        key: &str,
        value: &T,
    ) -> Result<(), StoreError> {
        let key = key_of(key)?;
        let value = serde_json::to_string(value)
            .map_err(|e| StoreError::Invalid(format!("setting {key}: {e}")))?;
        let r = (|| {
            self.conn.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )?;
            Ok(())
        })();
        self.check(r)
    }
}

#[cfg(test)]
mod tests {
    use crate::Store;

    #[test]
    fn settings_round_trip_and_survive_reopening() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("s.db");
        let mut store = Store::open(&path).expect("open");
        assert_eq!(
            store.setting::<bool>("start_minimised").expect("read"),
            None
        );
        store.set_setting("start_minimised", &true).expect("write");
        store
            .set_setting("start_minimised", &false)
            .expect("overwrite");
        store
            .set_setting("pause_until_ms", &Some(42_i64))
            .expect("write");
        drop(store);
        let store = Store::open(&path).expect("reopen");
        assert_eq!(
            store.setting::<bool>("start_minimised").expect("read"),
            Some(false)
        );
        assert_eq!(
            store
                .setting::<Option<i64>>("pause_until_ms")
                .expect("read"),
            Some(Some(42))
        );
        // A value of another type reads as absent rather than failing the caller.
        assert_eq!(
            store.setting::<String>("start_minimised").expect("read"),
            None
        );
    }

    #[test]
    fn setting_names_are_checked() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = Store::open(dir.path().join("s.db")).expect("open");
        assert!(store.set_setting("", &1).is_err());
        assert!(store.set_setting("a key", &1).is_err());
        assert!(store.setting::<i32>("x'--").is_err());
    }
}
