//! Where the database lives and how a connection to it is opened and configured.
//!
//! Opening never deletes, renames or rewrites a file it does not recognise: a damaged, foreign
//! or newer database is reported and left exactly as it was.

use crate::error::StoreError;
use crate::migrate;
use directories::ProjectDirs;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The environment variable that overrides the platform data directory.
pub const DB_ENV_VAR: &str = "COMFY_MONITOR_DB";

/// The database file name inside the platform data directory.
pub const DB_FILE_NAME: &str = "comfy-monitor.db";

/// How long a write waits for another connection's lock before giving up with
/// [`StoreError::Locked`].
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The write-ahead log is cut back to this size whenever SQLite resets it (after a checkpoint),
/// so a burst of writes does not leave a large `-wal` file behind for good.
pub const JOURNAL_SIZE_LIMIT: i64 = 4 * 1024 * 1024;

/// The database path when none is given on the command line: `COMFY_MONITOR_DB` if set and not
/// empty, else `comfy-monitor.db` in the platform data directory (`~/.local/share/comfy-monitor`
/// on Linux).
pub fn default_path() -> Result<PathBuf, StoreError> {
    default_path_from(std::env::var_os(DB_ENV_VAR), platform_data_dir())
}

fn platform_data_dir() -> Option<PathBuf> {
    ProjectDirs::from("dev", "comfy-monitor", "comfy-monitor").map(|d| d.data_dir().to_path_buf())
}

/// [`default_path`] without reading the process environment, for tests.
fn default_path_from(
    env: Option<OsString>,
    data_dir: Option<PathBuf>,
) -> Result<PathBuf, StoreError> {
    match env {
        Some(p) if !p.is_empty() => Ok(PathBuf::from(p)),
        _ => data_dir
            .map(|d| d.join(DB_FILE_NAME))
            .ok_or(StoreError::NoDataDir),
    }
}

/// How events are kept: at most `max_rows` rows, none older than `max_age_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventRetention {
    pub max_rows: u32,
    pub max_age_ms: i64,
}

impl Default for EventRetention {
    fn default() -> Self {
        Self {
            max_rows: 10_000,
            max_age_ms: 30 * 24 * 60 * 60 * 1000,
        }
    }
}

/// How the job journal is kept. Only finished jobs (a terminal state recorded) are ever pruned:
/// of each instance, none whose finish time is older than `max_age_ms` (by the caller's clock),
/// and at most the newest `max_finished_per_instance` (newest by finish time, ties by id; 0
/// keeps none), counted apart for this app's own jobs that keep a workflow or a downloaded copy
/// and for all the others, so a busy server's other jobs never push ours out. Pending and
/// running jobs always stay, whatever their age: they are what a restart reconciles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobRetention {
    pub max_finished_per_instance: u32,
    pub max_age_ms: i64,
}

impl Default for JobRetention {
    fn default() -> Self {
        Self {
            max_finished_per_instance: 10_000,
            max_age_ms: 180 * 24 * 60 * 60 * 1000,
        }
    }
}

/// Connection settings; [`Store::open`] uses the defaults.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub busy_timeout: Duration,
    /// Open with `SQLITE_OPEN_READ_ONLY`: reads work, every write fails with
    /// [`StoreError::ReadOnly`], and a database that needs migrating cannot be opened.
    pub read_only: bool,
    pub event_retention: EventRetention,
    pub job_retention: JobRetention,
    /// How often pruning runs by itself: [`Store::log_event`] prunes the log on every row id
    /// divisible by this, and [`Store::record_terminal`] prunes the journal on every this-many-th
    /// terminal write.
    pub prune_every: u32,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            read_only: false,
            event_retention: EventRetention::default(),
            job_retention: JobRetention::default(),
            prune_every: 100,
        }
    }
}

/// One connection to the comfy-monitor database. `Send` but not `Sync`: share it behind a mutex
/// or open one per thread; several `Store`s (and processes) may use the same file at once.
///
/// Reads take `&self`; writes take `&mut self`.
pub struct Store {
    pub(crate) conn: Connection,
    path: PathBuf,
    pub(crate) options: StoreOptions,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens (creating it and its parent directories if needed) and migrates the database.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, StoreOptions::default())
    }

    /// Opens an existing database without the right to change it.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(
            path,
            StoreOptions {
                read_only: true,
                ..StoreOptions::default()
            },
        )
    }

    pub fn open_with(path: impl AsRef<Path>, options: StoreOptions) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        Self::open_inner(&path, options).map_err(|e| match e.classify(&path) {
            // SQLite says only that it could not open a file that is there: on a read-only
            // file system (or without the right to write it) it cannot make the write-ahead
            // log's files, and falls back to "unable to open". Say why.
            StoreError::CannotOpen { path, .. } if cannot_write(&path) => {
                StoreError::ReadOnly { path }
            }
            e => e,
        })
    }

    fn open_inner(path: &Path, options: StoreOptions) -> Result<Self, StoreError> {
        let flags = if options.read_only {
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
        } else {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|source| StoreError::Io {
                    path: parent.to_path_buf(),
                    source,
                })?;
            }
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
        };
        let mut conn = Connection::open_with_flags(path, flags)?;
        conn.busy_timeout(options.busy_timeout)?;
        // Writers take the lock up front, so they wait in the busy handler instead of failing
        // at once when a read turns into a write under WAL.
        conn.set_transaction_behavior(TransactionBehavior::Immediate);
        conn.pragma_update(None, "foreign_keys", true)?;

        // The first read of the header: a garbage file fails here, before anything is written.
        let version = migrate::check_version(&conn, path)?;
        if !options.read_only {
            enable_wal(&conn)?;
            // Under WAL, NORMAL never corrupts the file; a power cut may only lose the last
            // commits, which the next reconciliation with the server recovers.
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            conn.query_row(
                &format!("PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}"),
                [],
                |_| Ok(()),
            )?;
            if version == 0 {
                // Before the first table: a new file takes the mode without being rebuilt.
                conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
            }
        }
        if version < migrate::SCHEMA_VERSION {
            if options.read_only {
                return Err(StoreError::ReadOnly {
                    path: path.to_path_buf(),
                });
            }
            migrate::run(&mut conn)?;
        }
        if !options.read_only {
            convert_to_incremental_vacuum(&conn)?;
        }
        Ok(Self {
            conn,
            path: path.to_path_buf(),
            options,
        })
    }

    /// The file this store reads and writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version of the open database (`PRAGMA user_version`).
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.check(migrate::user_version(&self.conn))
    }

    /// The journal mode SQLite reports (`wal` for every writable store).
    pub fn journal_mode(&self) -> Result<String, StoreError> {
        self.check(
            self.conn
                .pragma_query_value(None, "journal_mode", |r| r.get::<_, String>(0))
                .map_err(StoreError::from),
        )
    }

    /// SQLite's `auto_vacuum` mode of the file: `2` (incremental) for every file this version
    /// opened for writing.
    pub fn auto_vacuum(&self) -> Result<i64, StoreError> {
        self.check(
            self.conn
                .pragma_query_value(None, "auto_vacuum", |r| r.get::<_, i64>(0))
                .map_err(StoreError::from),
        )
    }

    /// After pruning: copies what the write-ahead log holds into the file without waiting for
    /// anyone (`PASSIVE`), so the pages [`release_free_pages`] gave back are cut off the end of
    /// the file, and the log is reset (and cut to [`JOURNAL_SIZE_LIMIT`]) by the next write.
    /// Best effort: a reader holding an old snapshot only delays it to a later prune, and a
    /// failure here loses nothing (the log keeps every commit).
    pub(crate) fn shrink(&self) {
        let _ = self
            .conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
    }

    /// Passes a result through [`StoreError::classify`] with this store's path.
    pub(crate) fn check<T>(&self, r: Result<T, StoreError>) -> Result<T, StoreError> {
        r.map_err(|e| e.classify(&self.path))
    }
}

/// Whether an existing file cannot be opened for writing (read-only file system, no
/// permission). Opening for writing changes nothing in the file.
fn cannot_write(path: &Path) -> bool {
    path.is_file()
        && matches!(
            std::fs::OpenOptions::new().write(true).open(path),
            Err(e) if matches!(
                e.kind(),
                std::io::ErrorKind::ReadOnlyFilesystem | std::io::ErrorKind::PermissionDenied
            )
        )
}

/// Gives the pages that deleted rows left free back to the file system (at the next checkpoint),
/// inside the caller's transaction. Files this version opened are in incremental `auto_vacuum`
/// mode; in any other mode this does nothing.
pub(crate) fn release_free_pages(conn: &Connection) -> rusqlite::Result<()> {
    // One page per step: the statement must run to its end.
    let mut stmt = conn.prepare("PRAGMA incremental_vacuum")?;
    let mut rows = stmt.query([])?;
    while rows.next()?.is_some() {}
    Ok(())
}

/// Puts a file made before this version into incremental `auto_vacuum` mode, so pruning can
/// shrink it. SQLite takes the new mode only when the file is rebuilt, so this runs `VACUUM`
/// once per file, at the first writable open (new files get the mode before their first table
/// and skip it). It needs about the file's size in free space and the write lock for as long as
/// it runs (a second or two for a journal at its retention limit); when it cannot run (another
/// process holds the lock, the disk is full) the file stays as it was, fully usable, and the next
/// open tries again.
fn convert_to_incremental_vacuum(conn: &Connection) -> Result<(), StoreError> {
    const INCREMENTAL: i64 = 2;
    let mode: i64 = conn.pragma_query_value(None, "auto_vacuum", |r| r.get(0))?;
    if mode == INCREMENTAL {
        return Ok(());
    }
    conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
    match conn.execute_batch("VACUUM") {
        Ok(()) => Ok(()),
        Err(e)
            if matches!(
                e.sqlite_error_code(),
                Some(
                    rusqlite::ErrorCode::DatabaseBusy
                        | rusqlite::ErrorCode::DatabaseLocked
                        | rusqlite::ErrorCode::DiskFull
                )
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Switches to WAL unless the file is in WAL already (the mode is stored in the file, so this
/// writes only on a new or never-opened database).
///
/// Two connections switching the same new file at once both hold a shared lock and want an
/// exclusive one; SQLite answers one of them `BUSY` at once, without waiting, to avoid a
/// deadlock. That one asks again: its next attempt waits in the busy handler like any other and
/// then finds the file already in WAL.
fn enable_wal(conn: &Connection) -> Result<(), StoreError> {
    const ATTEMPTS: usize = 5;
    let is_wal = |mode: &str| mode.eq_ignore_ascii_case("wal");
    let mut last_busy = None;
    for _ in 0..ATTEMPTS {
        match conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0)) {
            Ok(mode) if is_wal(&mode) => return Ok(()),
            Ok(mode) => {
                return Err(StoreError::Invalid(format!(
                    "SQLite refused write-ahead logging (journal mode stays `{mode}`); \
                     is the database on a network file system?"
                )))
            }
            Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) => {
                last_busy = Some(e);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(last_busy.map_or_else(
        || StoreError::Invalid("write-ahead logging could not be enabled".into()),
        StoreError::from,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_var_wins_over_the_platform_directory() {
        let p = default_path_from(
            Some("/tmp/x.db".into()),
            Some("/home/u/.local/share".into()),
        );
        assert_eq!(p.unwrap(), PathBuf::from("/tmp/x.db"));
    }

    #[test]
    fn empty_env_var_falls_back_to_the_platform_directory() {
        let p = default_path_from(Some("".into()), Some("/data/comfy-monitor".into()));
        assert_eq!(
            p.unwrap(),
            PathBuf::from("/data/comfy-monitor/comfy-monitor.db")
        );
    }

    #[test]
    fn no_home_and_no_env_var_is_a_clear_error() {
        assert!(matches!(
            default_path_from(None, None),
            Err(StoreError::NoDataDir)
        ));
    }

    #[test]
    fn store_can_move_to_another_thread() {
        fn assert_send<T: Send>() {}
        assert_send::<Store>();
    }
}
