//! Opening, migrating and refusing databases; locks and read-only files.

use crate::support::db_path;
use comfy_store::{
    NewInstance, Store, StoreError, StoreOptions, DEFAULT_INSTANCE_NAME, DEFAULT_INSTANCE_URL,
    SCHEMA_VERSION,
};
use rusqlite::{Connection, OpenFlags};
use std::time::Duration;

#[test]
fn a_new_database_gets_the_schema_and_the_local_instance() {
    let (_dir, path) = db_path();
    let store = Store::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let all = store.instances().unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].name, DEFAULT_INSTANCE_NAME);
    assert_eq!(all[0].base_url, DEFAULT_INSTANCE_URL);
    assert!(all[0].enabled);
    assert!(
        all[0].created_at > 1_600_000_000_000,
        "seeded with SQLite's clock"
    );

    let conn = Connection::open(&path).unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        tables,
        [
            "events",
            "instance_webhooks",
            "instances",
            "jobs",
            "meta",
            "outputs"
        ]
    );
}

#[test]
fn reopening_does_not_seed_local_again() {
    let (_dir, path) = db_path();
    Store::open(&path).unwrap();
    let store = Store::open(&path).unwrap();
    assert_eq!(store.instances().unwrap().len(), 1);
}

#[test]
fn a_deleted_local_instance_stays_deleted_after_reopening() {
    let (_dir, path) = db_path();
    let mut store = Store::open(&path).unwrap();
    let local = store.instance_by_name("Local").unwrap();
    store.delete_instance(local.id).unwrap();
    drop(store);

    let store = Store::open(&path).unwrap();
    assert!(store.instances().unwrap().is_empty());
}

#[test]
fn reopening_keeps_the_data() {
    let (_dir, path) = db_path();
    let mut store = Store::open(&path).unwrap();
    let added = store
        .insert_instance(
            &NewInstance::new("studio", "https://studio.example/comfy"),
            5,
        )
        .unwrap();
    drop(store);

    let store = Store::open(&path).unwrap();
    assert_eq!(store.instance(added.id).unwrap(), added);
    assert_eq!(store.instances().unwrap().len(), 2);
}

#[test]
fn missing_parent_directories_are_created() {
    let (dir, _) = db_path();
    let path = dir.path().join("a").join("b").join("monitor.db");
    Store::open(&path).unwrap();
    assert!(path.is_file());
}

#[test]
fn the_journal_is_write_ahead_logged() {
    let (_dir, path) = db_path();
    let store = Store::open(&path).unwrap();
    assert_eq!(store.journal_mode().unwrap(), "wal");
    // The mode is stored in the file: a plain connection sees it too.
    let conn = Connection::open(&path).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn connections_creating_the_database_at_once_seed_local_once() {
    // Separate connections lock the file as separate processes do.
    let (_dir, path) = db_path();
    let barrier = std::sync::Barrier::new(4);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                barrier.wait();
                Store::open(&path).unwrap();
            });
        }
    });
    let store = Store::open(&path).unwrap();
    assert_eq!(store.instances().unwrap().len(), 1);
}

#[test]
fn a_database_from_a_newer_version_is_refused_and_left_alone() {
    let (_dir, path) = db_path();
    Store::open(&path).unwrap();
    let conn = Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    drop(conn);
    let before = std::fs::read(&path).unwrap();

    let err = Store::open(&path).unwrap_err();
    match &err {
        StoreError::TooNew {
            found, supported, ..
        } => {
            assert_eq!(*found, SCHEMA_VERSION + 1);
            assert_eq!(*supported, SCHEMA_VERSION);
        }
        other => panic!("expected TooNew, got {other:?}"),
    }
    assert!(err.to_string().contains("newer comfy-monitor"));
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn a_garbage_file_is_reported_as_corrupt_and_left_untouched() {
    let (_dir, path) = db_path();
    let garbage: Vec<u8> = b"these are my holiday notes, not a database\n"
        .iter()
        .copied()
        .cycle()
        .take(8192)
        .collect();
    std::fs::write(&path, &garbage).unwrap();

    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("move it aside"), "{msg}");
    assert_eq!(std::fs::read(&path).unwrap(), garbage);
    let files: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files, ["monitor.db"], "no journal left beside it");
}

#[test]
fn another_applications_database_is_refused_and_left_untouched() {
    let (_dir, path) = db_path();
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('mine');")
        .unwrap();
    drop(conn);
    let before = std::fs::read(&path).unwrap();

    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Foreign { .. }), "{err:?}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn a_directory_in_place_of_the_file_cannot_be_opened() {
    let (_dir, path) = db_path();
    std::fs::create_dir(&path).unwrap();
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::CannotOpen { .. }), "{err:?}");
    assert!(err.to_string().contains("monitor.db"));
}

#[test]
fn a_read_only_store_reads_but_every_write_is_read_only() {
    // SQLite opened with SQLITE_OPEN_READ_ONLY fails writes with the same SQLITE_READONLY code
    // a 0444 file gives a normal user. This is the check that also runs as root, which ignores
    // file permissions (see the next test).
    let (_dir, path) = db_path();
    drop(Store::open(&path).unwrap());

    let mut store = Store::open_read_only(&path).unwrap();
    assert_eq!(store.instances().unwrap().len(), 1);
    let err = store
        .insert_instance(&NewInstance::new("x", "http://x:1"), 1)
        .unwrap_err();
    assert!(matches!(err, StoreError::ReadOnly { .. }), "{err:?}");
    assert!(err.to_string().contains("read-only"));
}

#[test]
fn a_read_only_open_of_a_database_that_needs_migrating_fails_as_read_only() {
    let (_dir, path) = db_path();
    // SQLite takes an empty file for an empty database: version 0, so it would need migrating.
    std::fs::write(&path, b"").unwrap();
    let err = Store::open_read_only(&path).unwrap_err();
    assert!(matches!(err, StoreError::ReadOnly { .. }), "{err:?}");
    assert_eq!(std::fs::read(&path).unwrap(), b"");
}

#[cfg(unix)]
#[test]
fn a_file_without_write_permission_gives_read_only_on_write() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, path) = db_path();
    drop(Store::open(&path).unwrap());
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();

    // Root (and CAP_DAC_OVERRIDE) writes through 0444, so there is nothing to observe; the
    // read-only flag test above covers the error mapping in that case.
    if std::fs::OpenOptions::new().write(true).open(&path).is_ok() {
        eprintln!("skipped: this user can write to a 0444 file (running as root?)");
        return;
    }
    let mut store = Store::open(&path).unwrap();
    assert_eq!(store.instances().unwrap().len(), 1);
    let err = store
        .insert_instance(&NewInstance::new("x", "http://x:1"), 1)
        .unwrap_err();
    assert!(matches!(err, StoreError::ReadOnly { .. }), "{err:?}");
}

#[test]
fn a_write_waits_for_the_busy_timeout_then_reports_locked() {
    let (_dir, path) = db_path();
    let options = StoreOptions {
        busy_timeout: Duration::from_millis(50),
        ..StoreOptions::default()
    };
    let mut store = Store::open_with(&path, options).unwrap();

    let other = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_WRITE).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();

    let err = store
        .insert_instance(&NewInstance::new("x", "http://x:1"), 1)
        .unwrap_err();
    assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
    // Readers are not blocked by a writer under WAL.
    assert_eq!(store.instances().unwrap().len(), 1);

    other.execute_batch("COMMIT").unwrap();
    store
        .insert_instance(&NewInstance::new("x", "http://x:1"), 1)
        .unwrap();
}
