//! Files a job produced: where they are on the server, where a copy is on disk, a thumbnail.
//!
//! One row per file, unique by (job, node, filename, subfolder, kind), so recording the same
//! outputs twice is harmless. This module must not fetch or write files; it keeps their paths.

use crate::error::StoreError;
use crate::job::JobId;
use crate::store::Store;
use rusqlite::{params, OptionalExtension, Row};
use std::fmt;
use std::path::{Path, PathBuf};

/// The row id of an output file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OutputId(pub i64);

impl fmt::Display for OutputId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// ComfyUI's folder `type` of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    Output,
    Temp,
    Input,
}

impl OutputKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Output => "output",
            Self::Temp => "temp",
            Self::Input => "input",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "output" => Self::Output,
            "temp" => Self::Temp,
            "input" => Self::Input,
            _ => return None,
        })
    }
}

/// What this app kept of a file on a server: where a downloaded copy went, and its thumbnail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptCopy {
    pub local_path: Option<PathBuf>,
    pub thumbnail: Option<Vec<u8>>,
}

/// Thumbnails above this size are refused: they are previews, not copies.
pub const MAX_THUMBNAIL_BYTES: usize = 256 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOutput {
    pub node_id: String,
    pub filename: String,
    /// Empty for the top folder.
    pub subfolder: String,
    pub kind: OutputKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputRecord {
    pub id: OutputId,
    pub job: JobId,
    pub node_id: String,
    pub filename: String,
    pub subfolder: String,
    pub kind: OutputKind,
    /// Where a downloaded copy is, if any.
    pub local_path: Option<PathBuf>,
    /// Whether a thumbnail is stored (read it with [`Store::output_thumbnail`]).
    pub has_thumbnail: bool,
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<OutputRecord> {
    let kind: String = r.get(5)?;
    Ok(OutputRecord {
        id: OutputId(r.get(0)?),
        job: JobId(r.get(1)?),
        node_id: r.get(2)?,
        filename: r.get(3)?,
        subfolder: r.get(4)?,
        kind: OutputKind::parse(&kind).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                5,
                rusqlite::types::Type::Text,
                format!("unknown output kind `{kind}`").into(),
            )
        })?,
        local_path: r.get::<_, Option<String>>(6)?.map(PathBuf::from),
        has_thumbnail: r.get(7)?,
    })
}

impl Store {
    /// Records a job's output files; ones already recorded are skipped. Returns how many were
    /// new.
    pub fn record_outputs(
        &mut self,
        job: JobId,
        outputs: &[NewOutput],
    ) -> Result<usize, StoreError> {
        let r = (|| {
            check_outputs(outputs)?;
            let tx = self.conn.transaction()?;
            let added = insert_outputs(&tx, job, outputs)?;
            tx.commit()?;
            Ok(added)
        })();
        self.check(r)
    }

    /// A job's output files in the order they were recorded.
    pub fn outputs(&self, job: JobId) -> Result<Vec<OutputRecord>, StoreError> {
        let r = (|| {
            let mut stmt = self.conn.prepare(
                "SELECT id, job_id, node_id, filename, subfolder, kind, local_path, \
                     thumbnail IS NOT NULL \
                 FROM outputs WHERE job_id = ?1 ORDER BY id",
            )?;
            let rows = stmt.query_map([job.0], from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })();
        self.check(r)
    }

    /// Records (or with `None` forgets) where a downloaded copy of an output is.
    pub fn set_output_local_path(
        &mut self,
        id: OutputId,
        path: Option<&Path>,
    ) -> Result<(), StoreError> {
        let r = (|| {
            let text = match path {
                Some(p) => Some(p.to_str().ok_or_else(|| {
                    StoreError::Invalid(format!("{} is not valid UTF-8", p.display()))
                })?),
                None => None,
            };
            let n = self.conn.execute(
                "UPDATE outputs SET local_path = ?1 WHERE id = ?2",
                params![text, id.0],
            )?;
            found(n, id)
        })();
        self.check(r)
    }

    /// Stores (or with `None` removes) a small PNG/JPEG thumbnail of an output.
    pub fn set_output_thumbnail(
        &mut self,
        id: OutputId,
        thumbnail: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        let r = (|| {
            if let Some(t) = thumbnail {
                if t.len() > MAX_THUMBNAIL_BYTES {
                    return Err(StoreError::Invalid(format!(
                        "a thumbnail of {} bytes is larger than {MAX_THUMBNAIL_BYTES}",
                        t.len()
                    )));
                }
            }
            let n = self.conn.execute(
                "UPDATE outputs SET thumbnail = ?1 WHERE id = ?2",
                params![thumbnail, id.0],
            )?;
            found(n, id)
        })();
        self.check(r)
    }

    /// What this app kept of one file on an instance's server (the newest record that kept a
    /// copy or a thumbnail), for showing it when the server is out of reach or no longer has
    /// it. `kind` is ComfyUI's folder type as the server names it.
    pub fn kept_copy(
        &self,
        instance: crate::InstanceId,
        filename: &str,
        subfolder: &str,
        kind: &str,
    ) -> Result<Option<KeptCopy>, StoreError> {
        let r = self
            .conn
            .query_row(
                "SELECT o.local_path, o.thumbnail FROM outputs o JOIN jobs j ON j.id = o.job_id \
                 WHERE j.instance_id = ?1 AND o.filename = ?2 AND o.subfolder = ?3 AND o.kind = ?4 \
                   AND (o.local_path IS NOT NULL OR o.thumbnail IS NOT NULL) \
                 ORDER BY o.id DESC LIMIT 1",
                params![instance.0, filename, subfolder, kind],
                |r| {
                    Ok(KeptCopy {
                        local_path: r.get::<_, Option<String>>(0)?.map(PathBuf::from),
                        thumbnail: r.get(1)?,
                    })
                },
            )
            .optional()
            .map_err(StoreError::from);
        self.check(r)
    }

    pub fn output_thumbnail(&self, id: OutputId) -> Result<Option<Vec<u8>>, StoreError> {
        let r = self
            .conn
            .query_row("SELECT thumbnail FROM outputs WHERE id = ?1", [id.0], |r| {
                r.get::<_, Option<Vec<u8>>>(0)
            })
            .optional()
            .map_err(StoreError::from)
            .and_then(|t| {
                t.ok_or_else(|| StoreError::NotFound {
                    what: format!("output {id}"),
                })
            });
        self.check(r)
    }
}

fn found(changed: usize, id: OutputId) -> Result<(), StoreError> {
    if changed == 0 {
        return Err(StoreError::NotFound {
            what: format!("output {id}"),
        });
    }
    Ok(())
}

/// Refuses outputs the table cannot keep, before anything is written.
pub(crate) fn check_outputs(outputs: &[NewOutput]) -> Result<(), StoreError> {
    match outputs.iter().find(|o| o.filename.is_empty()) {
        Some(o) => Err(StoreError::Invalid(format!(
            "an output of node {} has no file name",
            o.node_id
        ))),
        None => Ok(()),
    }
}

/// Adds a job's output rows inside the caller's transaction; ones already recorded are
/// skipped. Returns how many were new.
pub(crate) fn insert_outputs(
    conn: &rusqlite::Connection,
    job: JobId,
    outputs: &[NewOutput],
) -> Result<usize, StoreError> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO outputs (job_id, node_id, filename, subfolder, kind) \
         VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (job_id, node_id, filename, subfolder, kind) DO NOTHING",
    )?;
    let mut added = 0;
    for o in outputs {
        added += stmt
            .execute(params![
                job.0,
                o.node_id,
                o.filename,
                o.subfolder,
                o.kind.as_str()
            ])
            .map_err(|e| missing_job(e, job))?;
    }
    Ok(added)
}

fn missing_job(e: rusqlite::Error, job: JobId) -> StoreError {
    if let rusqlite::Error::SqliteFailure(f, _) = &e {
        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY {
            return StoreError::NotFound {
                what: format!("job {job}"),
            };
        }
    }
    StoreError::Sqlite(e)
}
