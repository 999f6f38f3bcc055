//! Forward-only schema migrations and the first-run seed.
//!
//! The schema version is SQLite's `user_version`. Each entry of [`MIGRATIONS`] moves it up by
//! one; all pending ones run in one transaction, so a crash leaves the old version intact. This
//! module must never downgrade, drop user data, or touch a file it did not create.

use crate::error::StoreError;
use crate::instance::{self, NewInstance};
use rusqlite::{Connection, Transaction, TransactionBehavior};
use std::path::Path;

/// The ordered migrations; entry `i` takes the schema from version `i` to `i + 1`.
/// Never edit a released entry: append a new one.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_initial.sql"),
    include_str!("migrations/0002_job_retention.sql"),
    include_str!("migrations/0003_use_companion.sql"),
    include_str!("migrations/0004_timing.sql"),
    include_str!("migrations/0005_certificate_pin.sql"),
    include_str!("migrations/0006_output_saving.sql"),
    include_str!("migrations/0007_instance_webhooks.sql"),
];

/// The schema version this build writes and understands.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// `PRAGMA application_id` of comfy-monitor databases ("CMON"), so `file(1)` and this module can
/// tell them from other SQLite files.
const APPLICATION_ID: i32 = 0x434d_4f4e;

/// Meta key recording that the default instance was created, so deleting it sticks.
const SEEDED_KEY: &str = "default_instance_seeded_at";

/// The instance a brand-new database starts with.
pub const DEFAULT_INSTANCE_NAME: &str = "Local";
pub const DEFAULT_INSTANCE_URL: &str = "http://127.0.0.1:8188/";

pub(crate) fn user_version(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.pragma_query_value(None, "user_version", |r| r.get(0))?)
}

/// Reads the header and refuses files this build must not migrate: other applications'
/// databases and newer schemas. Writes nothing.
pub(crate) fn check_version(conn: &Connection, path: &Path) -> Result<i64, StoreError> {
    // One read transaction, so the version and the table list come from the same moment even
    // while another process creates the schema.
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Deferred)?;
    let conn = &*tx;
    let version = user_version(conn)?;
    let app_id: i32 = conn.pragma_query_value(None, "application_id", |r| r.get(0))?;
    if (app_id != 0 && app_id != APPLICATION_ID) || version < 0 {
        return Err(StoreError::Foreign {
            path: path.to_path_buf(),
        });
    }
    if version > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            path: path.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    if version == 0 {
        let tables: i64 = conn.query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table'",
            [],
            |r| r.get(0),
        )?;
        if tables > 0 {
            return Err(StoreError::Foreign {
                path: path.to_path_buf(),
            });
        }
    }
    Ok(version)
}

/// Applies every pending migration in one immediate transaction. Another process migrating at
/// the same moment is harmless: the version is read again under the write lock.
pub(crate) fn run(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    let from = user_version(&tx)?;
    if from >= SCHEMA_VERSION {
        return Ok(());
    }
    for sql in MIGRATIONS.iter().skip(usize::try_from(from).unwrap_or(0)) {
        tx.execute_batch(sql)?;
    }
    if from == 0 {
        tx.pragma_update(None, "application_id", APPLICATION_ID)?;
        seed_default(&tx)?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    Ok(())
}

/// Adds the local server so a first start shows something useful. Runs only while creating the
/// database and records that it ran; a user who deletes "Local" does not get it back.
fn seed_default(conn: &Connection) -> Result<(), StoreError> {
    let seeded: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [SEEDED_KEY], |r| {
            r.get(0)
        })
        .map(Some)
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })?;
    if seeded.is_some() {
        return Ok(());
    }
    // The only clock the store reads: the seed has no caller to pass the time in.
    let now: i64 = conn.query_row(
        "SELECT CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)",
        [],
        |r| r.get(0),
    )?;
    let empty: bool = conn.query_row("SELECT NOT EXISTS (SELECT 1 FROM instances)", [], |r| {
        r.get(0)
    })?;
    if empty {
        instance::insert(
            conn,
            &NewInstance::new(DEFAULT_INSTANCE_NAME, DEFAULT_INSTANCE_URL),
            now,
        )?;
    }
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)",
        rusqlite::params![SEEDED_KEY, now.to_string()],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_migration_is_a_complete_script() {
        let conn = Connection::open_in_memory().unwrap();
        for sql in MIGRATIONS {
            conn.execute_batch(sql).unwrap();
        }
    }

    /// A file at an older schema `version`, as that release left it (its migrations applied and
    /// marked), for the rows a test then puts in.
    fn older_file(path: &std::path::Path, version: usize) -> Connection {
        let conn = Connection::open(path).unwrap();
        for sql in &MIGRATIONS[..version] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "application_id", APPLICATION_ID)
            .unwrap();
        conn.pragma_update(None, "user_version", version as i64)
            .unwrap();
        conn
    }

    /// A file as the first release left it: schema version 1 with an instance, jobs and
    /// outputs. Opening it with this build migrates it and keeps every row.
    #[test]
    fn a_version_1_database_is_migrated_and_keeps_its_jobs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.db");
        {
            let conn = older_file(&path, 1);
            conn.execute_batch(
                "INSERT INTO meta (key, value) VALUES ('default_instance_seeded_at', '1');
                 INSERT INTO instances (id, name, base_url, created_at, updated_at)
                     VALUES (1, 'Local', 'http://127.0.0.1:8188/', 1, 1);
                 INSERT INTO jobs (id, instance_id, prompt_id, origin, queued_at, state,
                     finished_at, updated_at)
                     VALUES (1, 1, 'done', 'other', 1, 'success', 2, 2),
                            (2, 1, 'waiting', 'other', 3, 'pending', NULL, 3);
                 INSERT INTO outputs (job_id, node_id, filename, kind)
                     VALUES (1, '9', 'a.png', 'output');",
            )
            .unwrap();
        }

        let mut store = crate::Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        assert_eq!(store.job_count().unwrap(), 2);
        assert_eq!(store.instances().unwrap().len(), 1, "not seeded twice");
        let done = store.job(crate::InstanceId(1), "done").unwrap().unwrap();
        assert_eq!(store.outputs(done.id).unwrap().len(), 1);
        let index: i64 = store
            .conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name = 'jobs_finished'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(index, 1);
        // The migrated file prunes like a new one.
        assert_eq!(store.prune_jobs(i64::MAX / 2).unwrap(), 1);
        assert_eq!(store.job_count().unwrap(), 1);
    }

    /// A file of schema version 2 (before `use_companion`): its instances come out with the
    /// companion on, as a new instance would.
    #[test]
    fn a_version_2_instance_is_migrated_with_the_companion_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v2.db");
        {
            let conn = older_file(&path, 2);
            conn.execute_batch(
                "INSERT INTO meta (key, value) VALUES ('default_instance_seeded_at', '1');
                 INSERT INTO instances (id, name, base_url, enabled, created_at, updated_at)
                     VALUES (1, 'Local', 'http://127.0.0.1:8188/', 1, 1, 1),
                            (2, 'gpu', 'http://gpu:8188/', 0, 1, 1);",
            )
            .unwrap();
        }

        let mut store = crate::Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        let all = store.instances().unwrap();
        assert_eq!(all.len(), 2, "not seeded twice");
        assert!(all.iter().all(|i| i.use_companion), "{all:?}");
        assert!(!all[1].enabled, "other columns kept");
        // The migrated column is writable like a new one.
        let off = store
            .update_instance(
                crate::InstanceId(2),
                &crate::InstanceUpdate {
                    use_companion: Some(false),
                    ..crate::InstanceUpdate::default()
                },
                2,
            )
            .unwrap();
        assert!(!off.use_companion);
    }

    /// A file of schema version 3 (before timing was kept): its finished jobs stay, without a
    /// fingerprint or run time, and are listed for the timing model with their start and end.
    #[test]
    fn a_version_3_job_is_migrated_and_still_teaches_timing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v3.db");
        {
            let conn = older_file(&path, 3);
            conn.execute_batch(
                "INSERT INTO meta (key, value) VALUES ('default_instance_seeded_at', '1');
                 INSERT INTO instances (id, name, base_url, enabled, created_at, updated_at)
                     VALUES (1, 'Local', 'http://127.0.0.1:8188/', 1, 1, 1);
                 INSERT INTO jobs (instance_id, prompt_id, origin, workflow_json, queued_at,
                                   started_at, finished_at, state, updated_at)
                     VALUES (1, 'p1', 'self', '{\"1\":{\"class_type\":\"KSampler\",\"inputs\":{}}}',
                             10, 20, 9020, 'success', 9020),
                            (1, 'p2', 'other', NULL, 10, 20, 30, 'error', 30);",
            )
            .unwrap();
        }
        let store = crate::Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        let runs = store.timing_runs(crate::InstanceId(1), 10).unwrap();
        assert_eq!(runs.len(), 1, "only the success: {runs:?}");
        let r = &runs[0];
        assert!(r.has_workflow && r.fingerprint.is_none() && r.run_ms.is_none());
        assert_eq!((r.started_at, r.finished_at), (Some(20), Some(9020)));
        let job = store.job(crate::InstanceId(1), "p1").unwrap().unwrap();
        assert_eq!(job.fingerprint, None);
        assert_eq!(store.job_count().unwrap(), 2);
    }

    /// A file of schema version 4 (before certificates were pinned): an instance that accepted
    /// its server's own certificate comes out with nothing pinned, so its next connection asks.
    #[test]
    fn a_version_4_instance_is_migrated_without_a_pinned_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v4.db");
        {
            let conn = older_file(&path, 4);
            conn.execute_batch(
                "INSERT INTO meta (key, value) VALUES ('default_instance_seeded_at', '1');
                 INSERT INTO instances (id, name, base_url, accept_invalid_certs, created_at,
                                        updated_at)
                     VALUES (1, 'box', 'https://box.lan:8443/', 1, 1, 1);",
            )
            .unwrap();
        }
        let store = crate::Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        let rec = store.instance(crate::InstanceId(1)).unwrap();
        assert!(rec.accept_invalid_certs);
        assert_eq!(rec.certificate_sha256, None);
    }

    /// A file of schema version 5 (before outputs were saved without asking): its instances
    /// do not save, and its history is not fetched again.
    #[test]
    fn a_version_5_history_is_migrated_without_anything_to_save() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v5.db");
        {
            let conn = older_file(&path, 5);
            conn.execute_batch(
                "INSERT INTO meta (key, value) VALUES ('default_instance_seeded_at', '1');
                 INSERT INTO instances (id, name, base_url, created_at, updated_at)
                     VALUES (1, 'box', 'http://box.lan:8188/', 1, 1);
                 INSERT INTO jobs (id, instance_id, prompt_id, origin, queued_at, state,
                                   updated_at)
                     VALUES (1, 1, 'p', 'self', 1, 'success', 1);
                 INSERT INTO outputs (job_id, node_id, filename, kind)
                     VALUES (1, '9', 'a.png', 'output');",
            )
            .unwrap();
        }
        let store = crate::Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        let rec = store.instance(crate::InstanceId(1)).unwrap();
        assert_eq!(rec.saving, comfy_model::OutputSaving::default());
        assert_eq!(store.keep_counts().unwrap(), crate::KeepCounts::default());
        let job = store.job(rec.id, "p").unwrap().unwrap();
        assert_eq!(job.label, None);
        assert_eq!(store.outputs(job.id).unwrap().len(), 1);
    }

    #[test]
    fn application_id_spells_cmon() {
        assert_eq!(&APPLICATION_ID.to_be_bytes(), b"CMON");
    }
}
