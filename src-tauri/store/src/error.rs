//! The one error type of the store, shaped so callers can tell the user what to do.
//!
//! SQLite's result codes are folded into a few variants here and nowhere else; this module must
//! not decide what the user sees beyond the message, nor retry anything.

use rusqlite::ErrorCode;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another program holds the write lock and did not let go within the busy timeout.
    #[error("the database {} is locked by another program (still busy after waiting); close the other comfy-monitor and try again", path.display())]
    Locked { path: PathBuf },

    /// The disk (or the quota) holding the database is full. SQLite rolled the write back: what
    /// was recorded before is intact, and writing works again once space is freed.
    #[error("the disk holding the database {} is full; what was recorded before is kept, but nothing new is recorded until space is freed", path.display())]
    Full { path: PathBuf },

    /// The file, its directory or the connection is read-only.
    #[error("the database {} is read-only; check the permissions of the file and its directory, and that its file system is not mounted read-only", path.display())]
    ReadOnly { path: PathBuf },

    /// Not a SQLite file, or a damaged one. The file is left as it is.
    #[error("{} is not a readable comfy-monitor database ({detail}); it was left untouched: move it aside (for example rename it to {}.bad) and start again", path.display(), path.display())]
    Corrupt { path: PathBuf, detail: String },

    /// A SQLite database that some other application made.
    #[error("{} is a SQLite database of another application; it was left untouched: choose another path for the comfy-monitor database", path.display())]
    Foreign { path: PathBuf },

    /// Written by a newer comfy-monitor whose schema this version does not know.
    #[error("the database {} was written by a newer comfy-monitor (schema version {found}, this version understands up to {supported}); update comfy-monitor or use another database", path.display())]
    TooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },

    /// SQLite could not open the file at all (missing directory, permissions, a directory in
    /// its place).
    #[error("cannot open the database {}: {source}", path.display())]
    CannotOpen {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },

    #[error("{what} was not found")]
    NotFound { what: String },

    #[error("an instance named `{name}` already exists")]
    Duplicate { name: String },

    /// The caller passed something the store refuses to keep (empty name, bad URL, ...).
    #[error("{0}")]
    Invalid(String),

    /// A stored row that this version cannot read back (hand-edited or half-written JSON).
    #[error("unreadable stored data: {0}")]
    BadRecord(String),

    /// Neither `COMFY_MONITOR_DB` nor a home directory says where the database goes.
    #[error("no data directory for comfy-monitor could be found; set COMFY_MONITOR_DB or pass --db PATH")]
    NoDataDir,

    #[error("cannot create {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("database error: {0}")]
    Sqlite(#[source] rusqlite::Error),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Sqlite(e)
    }
}

impl StoreError {
    /// Turns the SQLite codes callers can act on into their own variants, naming the file.
    /// Every public entry point passes its result through here.
    pub(crate) fn classify(self, path: &Path) -> Self {
        let Self::Sqlite(e) = self else {
            return self;
        };
        let path = path.to_path_buf();
        match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Self::Locked { path },
            Some(ErrorCode::ReadOnly) => Self::ReadOnly { path },
            Some(ErrorCode::DiskFull) => Self::Full { path },
            Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => Self::Corrupt {
                path,
                detail: e.to_string(),
            },
            Some(ErrorCode::CannotOpen) => Self::CannotOpen { path, source: e },
            _ => Self::Sqlite(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::ffi;

    fn failure(code: i32) -> StoreError {
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(ffi::Error::new(code), None))
    }

    #[test]
    fn busy_and_locked_codes_become_locked() {
        let p = Path::new("/x/db.sqlite");
        assert!(matches!(
            failure(ffi::SQLITE_BUSY).classify(p),
            StoreError::Locked { .. }
        ));
        assert!(matches!(
            failure(ffi::SQLITE_LOCKED).classify(p),
            StoreError::Locked { .. }
        ));
    }

    #[test]
    fn corrupt_message_names_the_file_and_says_it_was_not_changed() {
        let e = failure(ffi::SQLITE_NOTADB).classify(Path::new("/data/monitor.db"));
        let msg = e.to_string();
        assert!(matches!(e, StoreError::Corrupt { .. }));
        assert!(msg.contains("/data/monitor.db"), "{msg}");
        assert!(msg.contains("untouched"), "{msg}");
        assert!(msg.contains("move it aside"), "{msg}");
    }

    #[test]
    fn a_full_disk_is_named_and_says_what_is_kept() {
        let e = failure(ffi::SQLITE_FULL).classify(Path::new("/data/monitor.db"));
        let msg = e.to_string();
        assert!(matches!(e, StoreError::Full { .. }), "{e:?}");
        assert!(
            msg.contains("/data/monitor.db") && msg.contains("full"),
            "{msg}"
        );
        assert!(msg.contains("recorded before is kept"), "{msg}");
    }

    #[test]
    fn other_errors_are_left_alone() {
        let e = StoreError::Invalid("x".into()).classify(Path::new("/a"));
        assert!(matches!(e, StoreError::Invalid(_)));
        let e = failure(ffi::SQLITE_CONSTRAINT).classify(Path::new("/a"));
        assert!(matches!(e, StoreError::Sqlite(_)));
    }
}
