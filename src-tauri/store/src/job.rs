//! The job journal: every job seen on every instance and how it ended.
//!
//! A job's state only moves forward (pending → running → one terminal state), and the terminal
//! state is written exactly once: [`Store::record_terminal`] is one conditional `UPDATE`, so a
//! second writer (another process, a replay after a crash) changes nothing. This module must
//! not decide what happened to a job; the engine's tracker does, and the store keeps its word.

use crate::error::StoreError;
use crate::instance;
use crate::output::NewOutput;
use crate::store::{JobRetention, Store};
use comfy_model::{InstanceId, JobOrigin, JobOutcome, JobState};
use rusqlite::{params, Connection, OptionalExtension, Row};
use std::fmt;

/// The row id of a job in the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(pub i64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A job as first seen in a queue (or first seen running).
#[derive(Debug, Clone, PartialEq)]
pub struct JobSeen {
    pub instance: InstanceId,
    pub prompt_id: String,
    pub origin: JobOrigin,
    /// Queue priority (`number`); lower runs first.
    pub number: Option<f64>,
    pub queued_at: i64,
    /// The submitted workflow, as JSON; only for [`JobOrigin::SelfApp`].
    pub workflow_json: Option<String>,
}

/// How and when a job ended.
#[derive(Debug, Clone, PartialEq)]
pub struct JobEnd {
    pub instance: InstanceId,
    pub prompt_id: String,
    pub outcome: JobOutcome,
    /// Kept only if no start time is recorded yet.
    pub started_at: Option<i64>,
    pub finished_at: i64,
    pub error_json: Option<String>,
    pub outputs_json: Option<String>,
    /// Milliseconds per node id, e.g. `{"3": 5120, "9": 40}`.
    pub node_durations_json: Option<String>,
    /// Why, in words (e.g. why a job counts as lost).
    pub detail: Option<String>,
    /// The workflow's timing fingerprint, when its graph was known.
    pub fingerprint: Option<String>,
    /// How long a successful job ran, queue wait excluded, when both ends were seen.
    pub run_ms: Option<u64>,
}

/// What a successful job teaches about timing (see [`Store::timing_runs`]).
#[derive(Debug, Clone, PartialEq)]
pub struct TimingRun {
    pub id: JobId,
    pub origin: JobOrigin,
    pub has_workflow: bool,
    pub fingerprint: Option<String>,
    pub run_ms: Option<u64>,
    /// Start and end, for rows written before `run_ms` was kept.
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub node_durations_json: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    pub id: JobId,
    pub instance: InstanceId,
    pub prompt_id: String,
    pub origin: JobOrigin,
    /// Whether the workflow is stored (read it with [`Store::job_workflow`]).
    pub has_workflow: bool,
    pub number: Option<f64>,
    pub queued_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub state: JobState,
    pub error_json: Option<String>,
    pub outputs_json: Option<String>,
    pub node_durations_json: Option<String>,
    pub detail: Option<String>,
    pub updated_at: i64,
    /// The workflow's timing fingerprint (finished jobs whose graph was known).
    pub fingerprint: Option<String>,
    /// What the job is called (see [`Store::describe_job`]), once its graph was known.
    pub label: Option<String>,
}

/// A job this app queued that was lost, with what is needed to queue it again.
#[derive(Debug, Clone, PartialEq)]
pub struct LostJob {
    pub job: JobRecord,
    pub workflow_json: String,
}

const COLUMNS: &str = "id, instance_id, prompt_id, origin, workflow_json IS NOT NULL, number, \
     queued_at, started_at, finished_at, state, error_json, outputs_json, node_durations_json, \
     detail, updated_at, fingerprint, label";

/// Reads a row selected with [`COLUMNS`].
fn from_row(r: &Row<'_>) -> rusqlite::Result<JobRecord> {
    let bad = |i: usize, what: &str, v: String| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            format!("unknown job {what} `{v}`").into(),
        )
    };
    let origin: String = r.get(3)?;
    let state: String = r.get(9)?;
    Ok(JobRecord {
        id: JobId(r.get(0)?),
        instance: InstanceId(r.get(1)?),
        prompt_id: r.get(2)?,
        origin: JobOrigin::parse(&origin).ok_or_else(|| bad(3, "origin", origin.clone()))?,
        has_workflow: r.get(4)?,
        number: r.get(5)?,
        queued_at: r.get(6)?,
        started_at: r.get(7)?,
        finished_at: r.get(8)?,
        state: JobState::parse(&state).ok_or_else(|| bad(9, "state", state.clone()))?,
        error_json: r.get(10)?,
        outputs_json: r.get(11)?,
        node_durations_json: r.get(12)?,
        detail: r.get(13)?,
        updated_at: r.get(14)?,
        fingerprint: r.get(15)?,
        label: r.get(16)?,
    })
}

/// Refuses text that is not JSON, so the JSON columns can always be parsed back.
pub(crate) fn check_json(what: &str, json: Option<&str>) -> Result<(), StoreError> {
    if let Some(j) = json {
        serde_json::from_str::<serde::de::IgnoredAny>(j)
            .map_err(|e| StoreError::Invalid(format!("{what} is not valid JSON: {e}")))?;
    }
    Ok(())
}

/// A foreign-key failure means the instance is gone.
pub(crate) fn missing_instance(e: rusqlite::Error, id: InstanceId) -> StoreError {
    if let rusqlite::Error::SqliteFailure(f, _) = &e {
        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY {
            return instance::not_found(id);
        }
    }
    StoreError::Sqlite(e)
}

fn check_seen(job: &JobSeen) -> Result<(), StoreError> {
    if job.prompt_id.is_empty() {
        return Err(StoreError::Invalid("a job needs a prompt id".into()));
    }
    if job.workflow_json.is_some() && job.origin != JobOrigin::SelfApp {
        return Err(StoreError::Invalid(
            "only jobs this app queued keep their workflow".into(),
        ));
    }
    check_json("the workflow", job.workflow_json.as_deref())
}

fn find(conn: &Connection, instance: InstanceId, prompt_id: &str) -> rusqlite::Result<JobRecord> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM jobs WHERE instance_id = ?1 AND prompt_id = ?2"),
        params![instance.0, prompt_id],
        from_row,
    )
}

/// The shared upsert of [`Store::record_seen`] and [`Store::record_running`]. A finished row is
/// left exactly as it is; a running one never goes back to pending.
fn upsert(
    conn: &Connection,
    job: &JobSeen,
    running_since: Option<i64>,
    now: i64,
) -> Result<JobRecord, StoreError> {
    check_seen(job)?;
    let state = if running_since.is_some() {
        JobState::Running
    } else {
        JobState::Pending
    };
    let updated = conn
        .query_row(
            &format!(
                "INSERT INTO jobs (instance_id, prompt_id, origin, workflow_json, number, \
                     queued_at, state, started_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
                 ON CONFLICT (instance_id, prompt_id) DO UPDATE SET \
                     state = CASE WHEN excluded.state = 'running' THEN 'running' ELSE state END, \
                     started_at = coalesce(started_at, excluded.started_at), \
                     origin = CASE WHEN excluded.origin = 'self' THEN 'self' ELSE origin END, \
                     workflow_json = coalesce(workflow_json, excluded.workflow_json), \
                     number = coalesce(excluded.number, number), \
                     updated_at = excluded.updated_at \
                 WHERE state IN ('pending', 'running') \
                 RETURNING {COLUMNS}"
            ),
            params![
                job.instance.0,
                job.prompt_id,
                job.origin.as_str(),
                job.workflow_json,
                job.number,
                job.queued_at,
                state.as_str(),
                running_since,
                now
            ],
            from_row,
        )
        .optional()
        .map_err(|e| missing_instance(e, job.instance))?;
    match updated {
        Some(rec) => Ok(rec),
        // The job had already ended: nothing was written.
        None => Ok(find(conn, job.instance, &job.prompt_id)?),
    }
}

/// The `meta` key counting terminal writes, for [`Store::record_terminal`]'s pruning.
const TERMINAL_WRITES_KEY: &str = "job_terminal_writes";

/// Counts one more terminal write and returns the new count.
///
/// The count lives in the file, not in the process, so "every n-th write" holds across restarts
/// and across processes sharing the file (it is bumped in the writer's transaction, under the
/// write lock). Job ids would not do: they are handed out when a job is first seen, not when it
/// ends, so the jobs ending in a row need not have consecutive ids.
fn count_terminal_write(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row(
        "INSERT INTO meta (key, value) VALUES (?1, '1') \
         ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) \
         RETURNING CAST(value AS INTEGER)",
        [TERMINAL_WRITES_KEY],
        |r| r.get(0),
    )
}

/// Whether a finished job is one of this app's own that keeps something the user may want back:
/// its workflow (to queue it again) or a downloaded copy of an output. [`prune`] counts these
/// apart from the rest, so a busy shared server's other jobs never crowd them out.
const KEPT_OWN: &str = "origin = 'self' AND (workflow_json IS NOT NULL OR EXISTS ( \
     SELECT 1 FROM outputs WHERE outputs.job_id = jobs.id AND outputs.local_path IS NOT NULL))";

/// The count limit's two statements (`?1` the instance, `?2` the limit): this app's own jobs
/// that keep something, then the rest.
fn by_count_sql() -> [String; 2] {
    [KEPT_OWN.to_owned(), format!("NOT ({KEPT_OWN})")].map(|kept| {
        format!(
            "DELETE FROM jobs WHERE id IN ( \
                 SELECT id FROM jobs \
                 WHERE instance_id = ?1 AND state NOT IN ('pending', 'running') AND {kept} \
                 ORDER BY finished_at DESC, id DESC LIMIT -1 OFFSET ?2)"
        )
    })
}

/// Deletes the finished jobs the retention policy no longer keeps, instance by instance (so each
/// statement walks the `jobs_finished` index of one instance); returns how many went. Unfinished
/// jobs are never matched. Their output rows go by `ON DELETE CASCADE` (foreign keys are on for
/// every connection, see `Store::open_with`). `now` is always this machine's clock, never a
/// server's: a server whose clock runs ahead (or that counts in microseconds) must not age out
/// every job of every instance.
fn prune(conn: &Connection, now: i64, retention: JobRetention) -> rusqlite::Result<usize> {
    let cutoff = now.saturating_sub(retention.max_age_ms.max(0));
    // Every job belongs to an instance (a foreign key), so this reaches all of them.
    let instances = conn
        .prepare("SELECT id FROM instances")?
        .query_map([], |r| r.get::<_, i64>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    let mut by_age = conn.prepare(
        "DELETE FROM jobs WHERE instance_id = ?1 AND state NOT IN ('pending', 'running') \
             AND finished_at < ?2",
    )?;
    // This app's own jobs that keep a workflow or a copy, and all the others, each up to the
    // limit.
    let [own, rest] = by_count_sql();
    let mut own_by_count = conn.prepare(&own)?;
    let mut rest_by_count = conn.prepare(&rest)?;
    let mut deleted = 0;
    for id in instances {
        deleted += by_age.execute(params![id, cutoff])?;
        let limit = retention.max_finished_per_instance;
        deleted += own_by_count.execute(params![id, limit])?;
        deleted += rest_by_count.execute(params![id, limit])?;
    }
    if deleted > 0 {
        crate::store::release_free_pages(conn)?;
    }
    Ok(deleted)
}

/// What [`write_terminal`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Terminal {
    /// The job had already ended: nothing was written.
    Unchanged,
    /// The end was written, and this many jobs were pruned with it.
    Written { pruned: usize },
}

/// The conditional write of a job's end. Every [`StoreOptions::prune_every`]-th write also
/// prunes (see [`Store::record_terminal`]).
///
/// [`StoreOptions::prune_every`]: crate::StoreOptions::prune_every
fn write_terminal(
    conn: &Connection,
    end: &JobEnd,
    now: i64,
    retention: JobRetention,
    prune_every: u32,
) -> Result<Terminal, StoreError> {
    // One statement: SQLite's write lock makes the check and the write one step.
    let changed = conn.execute(
        "UPDATE jobs SET state = ?1, started_at = coalesce(started_at, ?2), \
             finished_at = ?3, error_json = ?4, outputs_json = ?5, \
             node_durations_json = ?6, detail = coalesce(?7, detail), updated_at = ?8, \
             fingerprint = ?11, run_ms = ?12 \
         WHERE instance_id = ?9 AND prompt_id = ?10 AND state IN ('pending', 'running')",
        params![
            JobState::from(end.outcome).as_str(),
            end.started_at,
            end.finished_at,
            end.error_json,
            end.outputs_json,
            end.node_durations_json,
            end.detail,
            now,
            end.instance.0,
            end.prompt_id,
            end.fingerprint,
            end.run_ms.map(|ms| ms.min(i64::MAX as u64) as i64),
        ],
    )?;
    if changed == 0 {
        return match find(conn, end.instance, &end.prompt_id).optional()? {
            Some(_) => Ok(Terminal::Unchanged),
            None => Err(StoreError::NotFound {
                what: format!("job {} on instance {}", end.prompt_id, end.instance),
            }),
        };
    }
    let pruned = if count_terminal_write(conn)? % i64::from(prune_every.max(1)) == 0 {
        prune(conn, now, retention)?
    } else {
        0
    };
    Ok(Terminal::Written { pruned })
}

fn check_end(end: &JobEnd) -> Result<(), StoreError> {
    check_json("the error", end.error_json.as_deref())?;
    check_json("the outputs", end.outputs_json.as_deref())?;
    check_json("the node durations", end.node_durations_json.as_deref())
}

/// One event of a job, as [`Store::record_job`] writes it: the job as seen (waiting, or running
/// since `running_since`), and, when it ended, how and with which output files.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JobEvent<'a> {
    pub seen: &'a JobSeen,
    pub running_since: Option<i64>,
    pub end: Option<&'a JobEnd>,
    /// Recorded only by the write that records the end.
    pub outputs: &'a [NewOutput],
}

impl Store {
    /// Records a job seen waiting in a queue, adding it if new. Never changes a running or
    /// finished job's state. Returns the job as stored.
    pub fn record_seen(&mut self, job: &JobSeen, now: i64) -> Result<JobRecord, StoreError> {
        let r = (|| {
            let tx = self.conn.transaction()?;
            let rec = upsert(&tx, job, None, now)?;
            tx.commit()?;
            Ok(rec)
        })();
        self.check(r)
    }

    /// Records what a job was: its name and the text a gallery search looks through (its name,
    /// models and prompt text). The name is cut to 200 characters, the text to 16 KiB.
    pub fn describe_job(
        &mut self,
        id: JobId,
        label: Option<&str>,
        search_text: &str,
    ) -> Result<(), StoreError> {
        let cut = |s: &str, max: usize| -> String {
            match s.char_indices().nth(max) {
                Some((i, _)) => s[..i].to_owned(),
                None => s.to_owned(),
            }
        };
        let r = (|| {
            let n = self.conn.execute(
                "UPDATE jobs SET label = ?2, search_text = ?3 WHERE id = ?1",
                params![
                    id.0,
                    label.map(|l| cut(l, 200)),
                    cut(search_text, 16 * 1024)
                ],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound {
                    what: format!("job {id}"),
                });
            }
            Ok(())
        })();
        self.check(r)
    }

    /// Whether what a job was is recorded yet (see [`Store::describe_job`]).
    pub fn job_described(&self, id: JobId) -> Result<bool, StoreError> {
        let r = self
            .conn
            .query_row(
                "SELECT search_text IS NOT NULL FROM jobs WHERE id = ?1",
                [id.0],
                |r| r.get(0),
            )
            .optional()
            .map_err(StoreError::from)
            .map(|d| d.unwrap_or(false));
        self.check(r)
    }

    /// Records that a job runs (adding it if it was never seen pending). The first start time
    /// sticks. A finished job is left as it is. Returns the job as stored.
    pub fn record_running(
        &mut self,
        job: &JobSeen,
        started_at: i64,
        now: i64,
    ) -> Result<JobRecord, StoreError> {
        let r = (|| {
            let tx = self.conn.transaction()?;
            let rec = upsert(&tx, job, Some(started_at), now)?;
            tx.commit()?;
            Ok(rec)
        })();
        self.check(r)
    }

    /// Writes how a job ended, if it has not ended yet. Returns `true` if this call wrote the
    /// terminal state, `false` if the job had already ended (the earlier outcome stands).
    /// The job must have been recorded with [`Store::record_seen`] or
    /// [`Store::record_running`] first, else [`StoreError::NotFound`].
    ///
    /// Every [`StoreOptions::prune_every`]-th terminal write (counted in the file, so across
    /// restarts and processes) also prunes the journal in the same transaction, with `now` (this
    /// machine's clock, never the job's finish time, which may be a server's) as "now" (see
    /// [`Store::prune_jobs`]).
    ///
    /// [`StoreOptions::prune_every`]: crate::StoreOptions::prune_every
    pub fn record_terminal(&mut self, end: &JobEnd, now: i64) -> Result<bool, StoreError> {
        let (retention, every) = (self.options.job_retention, self.options.prune_every);
        let r = (|| {
            check_end(end)?;
            let tx = self.conn.transaction()?;
            let written = write_terminal(&tx, end, now, retention, every)?;
            // When nothing was written (the job had ended), dropping the transaction ends it.
            if written != Terminal::Unchanged {
                tx.commit()?;
            }
            Ok(written)
        })();
        self.check(r).map(|written| self.terminal_written(written))
    }

    /// Writes one event of a job in one transaction: the job as seen or running (added if new),
    /// then, if it ended, its terminal state and output rows. Either all of it is written or
    /// none of it, so a failure (a full disk, a crash) never leaves a finished job without the
    /// outputs its end named: the job stays unfinished in the journal, and the next start
    /// reconciles it. Returns `true` if this call wrote the terminal state. Output rows come
    /// only with that write; an output without a file name is refused before anything is
    /// written.
    pub fn record_job(&mut self, event: &JobEvent<'_>, now: i64) -> Result<bool, StoreError> {
        let (retention, every) = (self.options.job_retention, self.options.prune_every);
        let r = (|| {
            check_seen(event.seen)?;
            if let Some(end) = event.end {
                check_end(end)?;
                if end.instance != event.seen.instance || end.prompt_id != event.seen.prompt_id {
                    return Err(StoreError::Invalid(
                        "a job event's end must be of the job it saw".into(),
                    ));
                }
            }
            crate::output::check_outputs(event.outputs)?;
            let tx = self.conn.transaction()?;
            let rec = upsert(&tx, event.seen, event.running_since, now)?;
            let written = match event.end {
                Some(end) => write_terminal(&tx, end, now, retention, every)?,
                None => Terminal::Unchanged,
            };
            if written != Terminal::Unchanged {
                crate::output::insert_outputs(&tx, rec.id, event.outputs)?;
                crate::output::mark_to_keep(&tx, rec.id)?;
            }
            tx.commit()?;
            Ok(written)
        })();
        self.check(r).map(|written| self.terminal_written(written))
    }

    /// Whether a terminal write wrote, shrinking the file first if it pruned.
    fn terminal_written(&self, written: Terminal) -> bool {
        match written {
            Terminal::Unchanged => false,
            Terminal::Written { pruned } => {
                if pruned > 0 {
                    self.shrink();
                }
                true
            }
        }
    }

    /// The newest `limit` jobs of an instance that succeeded, oldest first: what its timing is
    /// learned from at start.
    pub fn timing_runs(
        &self,
        instance: InstanceId,
        limit: usize,
    ) -> Result<Vec<TimingRun>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, origin, workflow_json IS NOT NULL, fingerprint, run_ms, started_at, \
                 finished_at, node_durations_json FROM jobs \
             WHERE instance_id = ?1 AND state = 'success' \
             ORDER BY finished_at DESC, id DESC LIMIT ?2",
        )?;
        let mut runs = stmt
            .query_map(params![instance.0, limit as i64], |r| {
                let origin: String = r.get(1)?;
                Ok(TimingRun {
                    id: JobId(r.get(0)?),
                    origin: JobOrigin::parse(&origin).unwrap_or(JobOrigin::Other),
                    has_workflow: r.get(2)?,
                    fingerprint: r.get(3)?,
                    run_ms: r.get::<_, Option<i64>>(4)?.map(|ms| ms.max(0) as u64),
                    started_at: r.get(5)?,
                    finished_at: r.get(6)?,
                    node_durations_json: r.get(7)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        runs.reverse();
        Ok(runs)
    }

    /// Enforces the [`JobRetention`] policy now, with `now` as the current time: of each
    /// instance, drops finished jobs that ended before `now - max_age_ms`, then all but the
    /// newest `max_finished_per_instance` finished ones. Pending and running jobs are never
    /// dropped. Output rows go with their job; downloaded files on disk are not touched.
    /// Returns how many jobs were deleted. Meant for start-up; [`Store::record_terminal`]
    /// also prunes by itself every [`StoreOptions::prune_every`] terminal writes.
    ///
    /// [`StoreOptions::prune_every`]: crate::StoreOptions::prune_every
    pub fn prune_jobs(&mut self, now: i64) -> Result<usize, StoreError> {
        let retention = self.options.job_retention;
        let r = (|| {
            let tx = self.conn.transaction()?;
            let n = prune(&tx, now, retention)?;
            tx.commit()?;
            Ok(n)
        })();
        let n = self.check(r)?;
        if n > 0 {
            self.shrink();
        }
        Ok(n)
    }

    /// How many jobs the journal holds, finished or not, over all instances.
    pub fn job_count(&self) -> Result<u64, StoreError> {
        self.check(
            self.conn
                .query_row("SELECT count(*) FROM jobs", [], |r| r.get::<_, i64>(0))
                .map(|n| u64::try_from(n).unwrap_or(0))
                .map_err(StoreError::from),
        )
    }

    /// One job by its server-side prompt id.
    pub fn job(
        &self,
        instance: InstanceId,
        prompt_id: &str,
    ) -> Result<Option<JobRecord>, StoreError> {
        self.check(
            find(&self.conn, instance, prompt_id)
                .optional()
                .map_err(StoreError::from),
        )
    }

    /// Pending and running jobs of an instance, oldest first: what to reconcile with the server
    /// after a start or a reconnect.
    pub fn unfinished_jobs(&self, instance: InstanceId) -> Result<Vec<JobRecord>, StoreError> {
        self.check(self.jobs_where(
            "instance_id = ?1 AND state IN ('pending', 'running') ORDER BY queued_at, id",
            params![instance.0],
        ))
    }

    /// A page of the journal, newest (by queue time) first; all instances when `instance` is
    /// `None`.
    pub fn history(
        &self,
        instance: Option<InstanceId>,
        limit: u32,
        offset: u32,
    ) -> Result<Vec<JobRecord>, StoreError> {
        self.check(match instance {
            Some(i) => self.jobs_where(
                "instance_id = ?1 ORDER BY queued_at DESC, id DESC LIMIT ?2 OFFSET ?3",
                params![i.0, limit, offset],
            ),
            None => self.jobs_where(
                "1 ORDER BY queued_at DESC, id DESC LIMIT ?1 OFFSET ?2",
                params![limit, offset],
            ),
        })
    }

    /// The workflow this app submitted for a job, if it is one of ours.
    pub fn job_workflow(&self, id: JobId) -> Result<Option<String>, StoreError> {
        let r = self
            .conn
            .query_row(
                "SELECT workflow_json FROM jobs WHERE id = ?1",
                [id.0],
                |r| r.get::<_, Option<String>>(0),
            )
            .optional()
            .map_err(StoreError::from)
            .and_then(|w| {
                w.ok_or_else(|| StoreError::NotFound {
                    what: format!("job {id}"),
                })
            });
        self.check(r)
    }

    /// Jobs this app queued that were lost, with their workflow, oldest first: candidates for
    /// queueing again.
    pub fn lost_own_jobs(&self, instance: Option<InstanceId>) -> Result<Vec<LostJob>, StoreError> {
        let r = (|| {
            let mut stmt = self.conn.prepare(&format!(
                "SELECT {COLUMNS}, workflow_json FROM jobs \
                 WHERE state = 'lost' AND origin = 'self' AND workflow_json IS NOT NULL \
                     AND (?1 IS NULL OR instance_id = ?1) \
                 ORDER BY queued_at, id"
            ))?;
            let rows = stmt.query_map([instance.map(|i| i.0)], |r| {
                Ok(LostJob {
                    job: from_row(r)?,
                    // The column after COLUMNS.
                    workflow_json: r.get(COLUMNS.split(',').count())?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })();
        self.check(r)
    }

    fn jobs_where(
        &self,
        clause: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<JobRecord>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {COLUMNS} FROM jobs WHERE {clause}"))?;
        let rows = stmt.query_map(params, from_row)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_is_a_terminal_state() {
        for o in [
            JobOutcome::Success,
            JobOutcome::Error,
            JobOutcome::Interrupted,
            JobOutcome::Deleted,
            JobOutcome::Lost,
        ] {
            assert!(JobState::from(o).is_terminal());
        }
    }

    #[test]
    fn pruning_walks_the_finished_jobs_index_without_sorting() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("plan.db")).unwrap();
        let plan = |sql: &str| -> String {
            let mut stmt = store
                .conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap();
            let rows = stmt.query_map([], |r| r.get::<_, String>(3)).unwrap();
            rows.collect::<Result<Vec<_>, _>>().unwrap().join("; ")
        };
        let by_age = plan(
            "DELETE FROM jobs WHERE instance_id = 1 AND state NOT IN ('pending', 'running') \
                 AND finished_at < 5",
        );
        assert!(by_age.contains("USING INDEX jobs_finished"), "{by_age}");
        for sql in by_count_sql() {
            let by_count = plan(&sql.replace("?1", "1").replace("?2", "3"));
            assert!(by_count.contains("INDEX jobs_finished"), "{by_count}");
            assert!(!by_count.contains("TEMP B-TREE"), "{by_count}");
            // Whether a job keeps a copy is looked up by job, not by scanning the outputs.
            assert!(!by_count.contains("SCAN outputs"), "{by_count}");
        }
    }

    #[test]
    fn workflows_of_other_clients_are_refused() {
        let job = JobSeen {
            instance: InstanceId(1),
            prompt_id: "p".into(),
            origin: JobOrigin::Other,
            number: None,
            queued_at: 0,
            workflow_json: Some("{}".into()),
        };
        assert!(matches!(check_seen(&job), Err(StoreError::Invalid(_))));
    }
}
