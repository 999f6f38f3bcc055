//! The database failing while the app runs: another program holding the lock, and the file
//! damaged under an open connection. (A full disk is tested through the journal on a real small
//! filesystem: `tests/it/store_faults.rs`.)

use crate::support::{end, seen, store_with_instance};
use comfy_store::{JobOutcome, JobState, Store, StoreError, StoreOptions};
use rusqlite::{Connection, OpenFlags};
use std::time::Duration;

/// Another process takes the write lock mid-run: a job event waits for the busy timeout and is
/// reported as locked, with nothing written; what was written before stays, and writing goes
/// on once the lock is let go.
#[test]
fn a_lock_taken_mid_run_is_reported_as_locked_and_loses_nothing_written_before() {
    let (_dir, store, id) = store_with_instance();
    let path = store.path().to_path_buf();
    drop(store);
    let options = StoreOptions {
        busy_timeout: Duration::from_millis(50),
        ..StoreOptions::default()
    };
    let mut store = Store::open_with(&path, options).unwrap();
    store.record_seen(&seen(id, "before", 1), 1).unwrap();
    assert!(store
        .record_terminal(&end(id, "before", JobOutcome::Success, 2), 2)
        .unwrap());

    let other = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_WRITE).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let during = seen(id, "during", 3);
    let event = comfy_store::JobEvent {
        seen: &during,
        running_since: None,
        end: Some(&end(id, "during", JobOutcome::Success, 4)),
        outputs: &[],
    };
    let err = store.record_job(&event, 4).unwrap_err();
    assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
    assert!(
        err.to_string().contains("locked by another program"),
        "{err}"
    );
    assert!(store.job(id, "during").unwrap().is_none());
    let before = store.job(id, "before").unwrap().unwrap();
    assert_eq!(before.state, JobState::Success, "readers are not blocked");

    other.execute_batch("COMMIT").unwrap();
    assert!(store.record_job(&event, 5).unwrap());
}

/// The file is damaged while a connection has it open (another program wrote over it, a disk
/// went bad): once a page is read from the file again, every call says the database is not
/// readable, names the file and says it was left as it is; nothing panics, and the file is
/// neither deleted nor replaced.
#[test]
fn a_file_damaged_while_in_use_is_reported_as_corrupt_and_left_where_it_is() {
    let (_dir, mut store, id) = store_with_instance();
    for i in 0..50 {
        store
            .record_seen(&seen(id, &format!("p{i}"), i), i)
            .unwrap();
    }
    let path = store.path().to_path_buf();
    // Everything in the main file, then every page but the first (the header, with the schema)
    // overwritten.
    let other = Connection::open(&path).unwrap();
    other
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 3 * 4096, "{} bytes", bytes.len());
    for (i, b) in bytes.iter_mut().enumerate().skip(4096) {
        *b = (i % 251) as u8;
    }
    std::fs::write(&path, &bytes).unwrap();
    // Another connection's write (to the header only): the open one must read the file again.
    other.execute_batch("PRAGMA user_version = 5").unwrap();

    let err = store.record_seen(&seen(id, "new", 99), 99).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(
        msg.contains("left untouched") && msg.contains("move it aside"),
        "{msg}"
    );
    let err = store.job(id, "p3").unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert!(path.is_file(), "not deleted");
    assert_eq!(
        std::fs::read(&path).unwrap()[4096..],
        bytes[4096..],
        "not rewritten"
    );
}
