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
            // A copy saved by hand is the kept copy: no second one is fetched for it.
            let n = self.conn.execute(
                "UPDATE outputs SET local_path = ?1, \
                     keep = CASE WHEN ?1 IS NOT NULL AND keep = 'pending' THEN 'kept' ELSE keep END \
                 WHERE id = ?2",
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

    /// What this app kept of one file on an instance's server, for showing it without asking
    /// the server (or when it is out of reach or no longer has it): the copy or thumbnail of
    /// the newest record of that name, none when that record kept nothing (an older record of
    /// the same name was another file, since deleted from the server and the name used again).
    /// `kind` is ComfyUI's folder type as the server names it.
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
            .map(|k| k.filter(|k| k.local_path.is_some() || k.thumbnail.is_some()))
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

/// An output waiting to be saved into its instance's folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToKeep {
    pub output: OutputRecord,
    pub instance: crate::InstanceId,
    pub prompt_id: String,
    /// The instance's folder, as it is set now.
    pub folder: PathBuf,
    /// Attempts that failed so far.
    pub tries: u32,
}

/// How many outputs wait to be saved, and how many could not be.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeepCounts {
    pub pending: u32,
    pub failed: u32,
}

/// Where a kept output went and its thumbnail, or why it could not be kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeepResult<'a> {
    Kept {
        path: &'a Path,
        thumbnail: Option<&'a [u8]>,
    },
    /// Worth another attempt later (the server out of reach): the file stays pending.
    Retry { error: &'a str },
    /// Given up (the server no longer has the file, the disk refuses it).
    Failed { error: &'a str },
}

/// Whether a file that is to be saved into its instance's folder was (the `keep` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepState {
    Pending,
    Kept,
    Failed,
}

impl KeepState {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "kept" => Self::Kept,
            "failed" => Self::Failed,
            _ => return None,
        })
    }
}

/// One file of the gallery: an output of a journalled job, with what the job was.
#[derive(Debug, Clone, PartialEq)]
pub struct GalleryRecord {
    pub output: OutputRecord,
    pub instance: crate::InstanceId,
    pub prompt_id: String,
    pub origin: comfy_model::JobOrigin,
    pub state: crate::JobState,
    pub finished_at: Option<i64>,
    pub label: Option<String>,
    /// None for a file that is not to be saved.
    pub keep: Option<KeepState>,
    pub keep_error: Option<String>,
}

/// What the gallery shows: outputs of finished jobs in ComfyUI's output folder, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GalleryFilter {
    pub instance: Option<crate::InstanceId>,
    /// Jobs that ended in one of these states (all when empty).
    pub states: Vec<crate::JobState>,
    /// Jobs that finished at or after this time (ms since the epoch).
    pub since: Option<i64>,
    /// Jobs that finished before this time.
    pub until: Option<i64>,
    /// Words each found (case-insensitively) in the job's name, models or prompt text, or in
    /// the file name.
    pub text: Option<String>,
    /// Outputs older than this one (the last of the previous page).
    pub before: Option<OutputId>,
    pub limit: u32,
}

/// The most gallery rows one query returns.
pub const MAX_GALLERY_PAGE: u32 = 500;

impl Store {
    /// Outputs waiting to be saved, oldest first, at most `limit`: of the instances in `up`
    /// (those within reach now) that still save, skipping `busy` ones (being saved now).
    pub fn outputs_to_keep(
        &self,
        limit: u32,
        busy: &[OutputId],
        up: &[crate::InstanceId],
    ) -> Result<Vec<ToKeep>, StoreError> {
        let r = (|| {
            let json = |ids: Vec<i64>| {
                serde_json::to_string(&ids).map_err(|e| StoreError::Invalid(e.to_string()))
            };
            let busy = json(busy.iter().map(|b| b.0).collect())?;
            let up = json(up.iter().map(|i| i.0).collect())?;
            let mut stmt = self.conn.prepare_cached(
                "SELECT o.id, o.job_id, o.node_id, o.filename, o.subfolder, o.kind, o.local_path, \
                     o.thumbnail IS NOT NULL, j.instance_id, j.prompt_id, i.save_dir, o.keep_tries \
                 FROM outputs o JOIN jobs j ON j.id = o.job_id \
                     JOIN instances i ON i.id = j.instance_id \
                 WHERE o.keep = 'pending' AND i.save_dir IS NOT NULL \
                     AND o.id NOT IN (SELECT value FROM json_each(?2)) \
                     AND j.instance_id IN (SELECT value FROM json_each(?3)) \
                 ORDER BY o.id LIMIT ?1",
            )?;
            let rows = stmt.query_map(params![limit, busy, up], |r| {
                Ok(ToKeep {
                    output: from_row(r)?,
                    instance: crate::InstanceId(r.get(8)?),
                    prompt_id: r.get(9)?,
                    folder: PathBuf::from(r.get::<_, String>(10)?),
                    tries: r.get(11)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })();
        self.check(r)
    }

    /// Records how saving an output went.
    pub fn record_keep(&mut self, id: OutputId, result: &KeepResult<'_>) -> Result<(), StoreError> {
        let r = (|| {
            let n = match *result {
                KeepResult::Kept { path, thumbnail } => {
                    let text = path.to_str().ok_or_else(|| {
                        StoreError::Invalid(format!("{} is not valid UTF-8", path.display()))
                    })?;
                    if thumbnail.is_some_and(|t| t.len() > MAX_THUMBNAIL_BYTES) {
                        return Err(StoreError::Invalid("the thumbnail is too large".into()));
                    }
                    self.conn.execute(
                        "UPDATE outputs SET keep = 'kept', keep_error = NULL, local_path = ?2, \
                             thumbnail = COALESCE(?3, thumbnail) WHERE id = ?1",
                        params![id.0, text, thumbnail],
                    )?
                }
                KeepResult::Retry { error } => self.conn.execute(
                    "UPDATE outputs SET keep_error = ?2, keep_tries = keep_tries + 1 \
                     WHERE id = ?1 AND keep = 'pending'",
                    params![id.0, error],
                )?,
                KeepResult::Failed { error } => self.conn.execute(
                    "UPDATE outputs SET keep = 'failed', keep_error = ?2, \
                         keep_tries = keep_tries + 1 WHERE id = ?1",
                    params![id.0, error],
                )?,
            };
            found(n, id)
        })();
        self.check(r)
    }

    /// How many outputs wait to be saved (of instances that save) and how many failed.
    pub fn keep_counts(&self) -> Result<KeepCounts, StoreError> {
        let r = self
            .conn
            .query_row(
                "SELECT \
                     (SELECT count(*) FROM outputs o JOIN jobs j ON j.id = o.job_id \
                         JOIN instances i ON i.id = j.instance_id \
                      WHERE o.keep = 'pending' AND i.save_dir IS NOT NULL), \
                     (SELECT count(*) FROM outputs WHERE keep = 'failed')",
                [],
                |r| {
                    Ok(KeepCounts {
                        pending: r.get(0)?,
                        failed: r.get(1)?,
                    })
                },
            )
            .map_err(StoreError::from);
        self.check(r)
    }

    /// A page of the gallery (see [`GalleryFilter`]).
    pub fn gallery(&self, filter: &GalleryFilter) -> Result<Vec<GalleryRecord>, StoreError> {
        let r = (|| {
            let states = serde_json::to_string(
                &filter.states.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            )
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
            let words: Vec<String> = filter
                .text
                .as_deref()
                .unwrap_or("")
                .split_whitespace()
                .take(8)
                .map(|w| format!("%{}%", escape_like(&w.to_lowercase())))
                .collect();
            let words =
                serde_json::to_string(&words).map_err(|e| StoreError::Invalid(e.to_string()))?;
            let mut stmt = self.conn.prepare_cached(
                "SELECT o.id, o.job_id, o.node_id, o.filename, o.subfolder, o.kind, o.local_path, \
                     o.thumbnail IS NOT NULL, j.instance_id, j.prompt_id, j.origin, j.state, \
                     j.finished_at, j.label, o.keep, o.keep_error \
                 FROM outputs o JOIN jobs j ON j.id = o.job_id \
                 WHERE o.kind = 'output' \
                     AND (?1 IS NULL OR j.instance_id = ?1) \
                     AND (json_array_length(?2) = 0 OR j.state IN (SELECT value FROM json_each(?2))) \
                     AND (?3 IS NULL OR j.finished_at >= ?3) \
                     AND (?4 IS NULL OR j.finished_at < ?4) \
                     AND (?5 IS NULL OR o.id < ?5) \
                     AND NOT EXISTS (SELECT 1 FROM json_each(?6) w WHERE \
                         lower(coalesce(j.search_text, '') || ' ' || o.filename) \
                             NOT LIKE w.value ESCAPE '\\') \
                 ORDER BY o.id DESC LIMIT ?7",
            )?;
            let rows = stmt.query_map(
                params![
                    filter.instance.map(|i| i.0),
                    states,
                    filter.since,
                    filter.until,
                    filter.before.map(|b| b.0),
                    words,
                    filter.limit.min(MAX_GALLERY_PAGE)
                ],
                |r| {
                    let origin: String = r.get(10)?;
                    let state: String = r.get(11)?;
                    let keep: Option<String> = r.get(14)?;
                    let bad = |i, what: &str| {
                        rusqlite::Error::FromSqlConversionFailure(
                            i,
                            rusqlite::types::Type::Text,
                            what.to_owned().into(),
                        )
                    };
                    Ok(GalleryRecord {
                        output: from_row(r)?,
                        instance: crate::InstanceId(r.get(8)?),
                        prompt_id: r.get(9)?,
                        origin: comfy_model::JobOrigin::parse(&origin)
                            .ok_or_else(|| bad(10, "unknown job origin"))?,
                        state: crate::JobState::parse(&state)
                            .ok_or_else(|| bad(11, "unknown job state"))?,
                        finished_at: r.get(12)?,
                        label: r.get(13)?,
                        keep: keep
                            .map(|k| {
                                KeepState::parse(&k).ok_or_else(|| bad(14, "unknown keep state"))
                            })
                            .transpose()?,
                        keep_error: r.get(15)?,
                    })
                },
            )?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })();
        self.check(r)
    }
}

/// `%`, `_` and the escape character itself, escaped for `LIKE … ESCAPE '\'`.
fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Marks a job's new output files to be saved when its instance saves outputs: files in
/// ComfyUI's output folder (not temporary previews), of this app's jobs, or of every client's
/// when the instance saves others' too. Inside the caller's transaction.
pub(crate) fn mark_to_keep(conn: &rusqlite::Connection, job: JobId) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE outputs SET keep = 'pending' \
         WHERE job_id = ?1 AND kind = 'output' AND keep IS NULL AND local_path IS NULL \
           AND EXISTS (SELECT 1 FROM jobs j JOIN instances i ON i.id = j.instance_id \
                       WHERE j.id = ?1 AND i.save_dir IS NOT NULL \
                         AND (j.origin = 'self' OR i.save_others))",
    )?
    .execute([job.0])?;
    Ok(())
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
