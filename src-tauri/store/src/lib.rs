//! The comfy-monitor store: everything the app remembers, in one SQLite file.
//!
//! It keeps plain data (instances, the job journal, output files, an event log) and never
//! imports the engine or tauri. The domain types it persists (a job's state and origin, an
//! instance's id and notification switches) are `comfy-model`'s, the same ones every host uses.
//! It reads no clock (times are `i64` milliseconds since the Unix epoch, passed in by the
//! caller; the first-run seed is the one exception) and never holds a secret.
//!
//! # Where
//!
//! [`default_path`]: `$COMFY_MONITOR_DB` if set, else `comfy-monitor.db` in the platform data
//! directory. The CLI's `--db PATH` goes straight to [`Store::open`], which creates missing
//! parent directories.
//!
//! # Schema (version [`SCHEMA_VERSION`])
//!
//! - `meta(key, value)`: bookkeeping, e.g. that the default instance was seeded, and how many
//!   terminal job states were written (the clock of the journal's pruning).
//! - `instances(id, name UNIQUE NOCASE, base_url, auth_kind, auth_json, accept_invalid_certs,
//!   enabled, client_id UNIQUE, preview_fps_cap, notify_json, created_at, updated_at,
//!   last_status, last_connected, use_companion, certificate_sha256, save_dir, save_others)`.
//!   `auth_json` holds the
//!   non-secret settings (basic user name, header names) and one keyring reference per secret
//!   slot (`instance/<id>/<slot>`). `certificate_sha256` is the certificate pinned for a server
//!   with its own certificate (NULL until the user accepts one). `save_dir` is the folder its
//!   outputs are saved to (NULL: not saved); `save_others`, other clients' jobs too.
//! - `instance_webhooks(instance_id → instances ON DELETE CASCADE, target)`: where
//!   `comfy-monitor serve` posts the instance's events, besides its command line's targets.
//! - `jobs(id, instance_id → instances ON DELETE CASCADE, prompt_id, origin, workflow_json,
//!   number, queued_at, started_at, finished_at, state, error_json, outputs_json,
//!   node_durations_json, detail, updated_at, fingerprint, run_ms, label, search_text,
//!   UNIQUE(instance_id, prompt_id))`. `label` and `search_text` say what the job was, for the
//!   gallery.
//! - `outputs(id, job_id → jobs ON DELETE CASCADE, node_id, filename, subfolder, kind,
//!   local_path, thumbnail BLOB, keep, keep_error, keep_tries, UNIQUE(job_id, node_id, filename,
//!   subfolder, kind))`. `keep` is `pending` for a file to be saved into its instance's folder,
//!   then `kept` or `failed` (with `keep_error`); NULL for files that are not saved.
//! - `events(id, instance_id → instances ON DELETE SET NULL, ts, kind, detail, data_json)`.
//!
//! # Invariants
//!
//! - **A job's terminal state is written once.** [`Store::record_terminal`] is a single
//!   `UPDATE … WHERE state IN ('pending','running')` and reports whether it wrote; a trigger
//!   refuses any later change of a terminal state, whoever tries.
//! - **Job states only move forward:** pending → running → terminal. [`Store::record_seen`] and
//!   [`Store::record_running`] never touch a finished job and never send a running one back.
//! - **No secret reaches the file.** The API takes no secret values: auth settings carry only
//!   names, URLs with credentials or a query are refused, and each secret slot gets a keyring
//!   reference the caller resolves.
//! - **Only this app's jobs keep a workflow** (`origin = 'self'`, checked by the schema too),
//!   so a lost one can be queued again.
//! - **User data is never deleted or overwritten to make opening work.** A damaged file, another
//!   application's database or a newer schema is reported ([`StoreError::Corrupt`],
//!   [`StoreError::Foreign`], [`StoreError::TooNew`]) and left byte-for-byte as it was.
//! - **Migrations are forward-only** and run in one immediate transaction keyed by
//!   `PRAGMA user_version`; a brand-new database also gets the "Local" instance
//!   (`http://127.0.0.1:8188/`) once, recorded in `meta` so deleting it sticks.
//! - **The event log is bounded** by [`EventRetention`] (10 000 rows, 30 days by default).
//! - **The job journal is bounded** by [`JobRetention`]: per instance, at most the newest 10 000
//!   finished jobs (by finish time) and none finished more than 180 days ago, by default. This
//!   app's own jobs that keep a workflow or a downloaded copy are counted apart from the rest,
//!   so other clients' jobs on a busy server never push them out. Only finished jobs are
//!   pruned; pending and running ones stay whatever their age, since recovery after a crash
//!   reconciles them. A pruned job's `outputs` rows go with it (cascade); files downloaded to
//!   disk are not touched. [`Store::record_terminal`] prunes by itself every
//!   [`StoreOptions::prune_every`] terminal writes (counted in `meta`, so across restarts),
//!   with the caller's `now` (this machine's clock: never a job's finish time, which may be a
//!   server's); hosts call [`Store::prune_jobs`] at start-up.
//! - **One job event is one transaction** ([`Store::record_job`]): seen or running, its end and
//!   its output rows are all written or none is.
//! - **The file shrinks after pruning:** files are in incremental `auto_vacuum` mode (a file
//!   from before is rebuilt once with `VACUUM` at its first writable open), pruning gives the
//!   freed pages back and checkpoints, and the write-ahead log is cut back to
//!   [`JOURNAL_SIZE_LIMIT`] when it resets.
//! - **A full disk is reported** ([`StoreError::Full`]); SQLite rolls the write back, so what
//!   was written before is intact.
//! - **Concurrent use is safe:** WAL journal, a busy timeout, and write transactions that take
//!   the lock up front; waiting longer than the timeout is [`StoreError::Locked`].

mod error;
mod event;
mod instance;
mod job;
mod migrate;
mod output;
mod setting;
mod store;

pub use comfy_model::{InstanceId, JobOrigin, JobOutcome, JobState, NotificationPrefs};
pub use error::StoreError;
pub use event::{EventId, EventRecord, NewEvent};
pub use instance::{
    secret_ref, AuthSettings, InstanceRecord, InstanceUpdate, NewInstance, SecretSlot,
    DEFAULT_PREVIEW_FPS_CAP, MAX_PREVIEW_FPS_CAP,
};
pub use job::{JobEnd, JobEvent, JobId, JobRecord, JobSeen, LostJob, TimingRun};
pub use migrate::{DEFAULT_INSTANCE_NAME, DEFAULT_INSTANCE_URL, SCHEMA_VERSION};
pub use output::{
    GalleryFilter, GalleryRecord, KeepCounts, KeepResult, KeepState, KeptCopy, NewOutput, OutputId,
    OutputKind, OutputRecord, ToKeep, MAX_GALLERY_PAGE, MAX_THUMBNAIL_BYTES,
};
pub use store::{
    default_path, EventRetention, JobRetention, Store, StoreOptions, DB_ENV_VAR, DB_FILE_NAME,
    DEFAULT_BUSY_TIMEOUT, JOURNAL_SIZE_LIMIT,
};
