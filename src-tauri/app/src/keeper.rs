//! Outputs saved without asking: every file a job wrote to ComfyUI's output folder, on an
//! instance that saves outputs, is downloaded into the instance's folder in the background.
//!
//! What is to be saved lives in the journal (the store marks a job's files when its end is
//! written, see `comfy_store::Store::outputs_to_keep`), so nothing is lost when the app stops:
//! the next start saves what was left, from the start of each file. A few files are fetched at
//! once ([`MAX_PARALLEL_SAVES`]); a file that could not be fetched is tried again later, with
//! a growing pause, and given up after [`MAX_SAVE_TRIES`] attempts or at once when it cannot
//! succeed (the server no longer has it). A download never replaces a file (`name (1).png`) and
//! never leaves a partial one (`comfy_engine::outputs`). Each kept file is journalled with
//! where it went and a thumbnail; a job saved for another client is named from its graph, so
//! the gallery can find it.

use crate::jobs;
use comfy_engine::api::ApiError;
use comfy_engine::journal::Journal;
use comfy_engine::outputs::{thumbnail_off_thread, OutputError, ThumbnailOf};
use comfy_engine::Engine;
use comfy_model::{OutputFile, PromptId, SavingStatus};
use comfy_store::{JobId, KeepResult, OutputId, ToKeep};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// Files downloaded at once, across every instance.
pub const MAX_PARALLEL_SAVES: usize = 3;
/// Attempts at a file before it is given up.
pub const MAX_SAVE_TRIES: u32 = 8;
/// The pause after a file's first failed attempt; it doubles with each further one…
const FIRST_RETRY: Duration = Duration::from_secs(5);
/// …up to this.
const LONGEST_RETRY: Duration = Duration::from_secs(300);
/// How often the journal is looked at without being told: files marked by another process.
const SWEEP: Duration = Duration::from_secs(60);

/// The background task that saves outputs. Dropping it stops every download under way; what
/// was not saved is saved by the next one started on the same journal.
pub struct Keeper {
    wake: Arc<Notify>,
    stop: Arc<Notify>,
    status: watch::Receiver<SavingStatus>,
    task: Option<JoinHandle<()>>,
}

/// How a [`Keeper`] saves.
#[derive(Debug, Clone, Copy)]
pub struct SaverOptions {
    /// Files downloaded at once (at least one).
    pub parallel: usize,
}

impl Default for SaverOptions {
    fn default() -> Self {
        Self {
            parallel: MAX_PARALLEL_SAVES,
        }
    }
}

/// Tells a [`Keeper`] that the journal may have files to save (a job ended).
#[derive(Clone)]
pub struct KeeperWaker(Arc<Notify>);

impl KeeperWaker {
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

impl Keeper {
    /// Starts saving, [`MAX_PARALLEL_SAVES`] files at a time, writing to `journal` (a connection
    /// of its own: see `Profile::second_journal`).
    pub fn spawn(engine: Engine, journal: Journal) -> Self {
        Self::spawn_with(engine, journal, SaverOptions::default())
    }

    /// [`Keeper::spawn`] with other options.
    pub fn spawn_with(engine: Engine, journal: Journal, options: SaverOptions) -> Self {
        let wake = Arc::new(Notify::new());
        let stop = Arc::new(Notify::new());
        // What the journal holds from the start, so no one reads "nothing waits" before the
        // first look.
        let counts = journal.store().keep_counts().unwrap_or_default();
        let (tx, status) = watch::channel(SavingStatus {
            waiting: counts.pending,
            failed: counts.failed,
            ..SavingStatus::default()
        });
        let task = tokio::spawn(
            Saver {
                engine,
                journal,
                parallel: options.parallel.max(1),
                status: tx,
                running: JoinSet::new(),
                busy: HashMap::new(),
                deferred: HashMap::new(),
                described: HashSet::new(),
                last_error: None,
            }
            .run(wake.clone(), stop.clone()),
        );
        Self {
            wake,
            stop,
            status,
            task: Some(task),
        }
    }

    /// Stops, and returns once every download under way has ended and removed its partial
    /// file. What was not saved stays in the journal for the next keeper.
    pub async fn stop(mut self) {
        self.stop.notify_one();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Looks at the journal now (a job ended).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub fn waker(&self) -> KeeperWaker {
        KeeperWaker(self.wake.clone())
    }

    /// Where saving stands; changes as files are saved.
    pub fn status(&self) -> watch::Receiver<SavingStatus> {
        self.status.clone()
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// A file saved: where it went, its thumbnail, and what its job was when that was asked for.
struct Saved {
    path: PathBuf,
    thumbnail: Option<Vec<u8>>,
    description: Option<jobs::Description>,
}

struct Saver {
    engine: Engine,
    journal: Journal,
    parallel: usize,
    status: watch::Sender<SavingStatus>,
    running: JoinSet<Result<Saved, OutputError>>,
    /// Files being saved, by the task saving each.
    busy: HashMap<tokio::task::Id, ToKeep>,
    /// Files to try again, and when.
    deferred: HashMap<OutputId, Instant>,
    /// Jobs already named (or asked about) in this run.
    described: HashSet<JobId>,
    last_error: Option<String>,
}

impl Saver {
    async fn run(mut self, wake: Arc<Notify>, stop: Arc<Notify>) {
        loop {
            let now = Instant::now();
            self.deferred.retain(|_, at| *at > now);
            self.start_more();
            self.publish();
            let next = self
                .deferred
                .values()
                .min()
                .copied()
                .unwrap_or(now + SWEEP)
                .min(now + SWEEP);
            tokio::select! {
                () = stop.notified() => {
                    // Each download's partial file goes with it.
                    self.running.shutdown().await;
                    return;
                }
                () = wake.notified() => {}
                Some(done) = self.running.join_next_with_id(), if !self.running.is_empty() => {
                    self.finished(done);
                }
                () = tokio::time::sleep_until(next) => {}
            }
        }
    }

    /// Starts saving files while fewer than `parallel` are under way.
    fn start_more(&mut self) {
        let free = self.parallel.saturating_sub(self.running.len());
        if free == 0 {
            return;
        }
        let skip: Vec<OutputId> = self
            .busy
            .values()
            .map(|t| t.output.id)
            .chain(self.deferred.keys().copied())
            .collect();
        // Files of an instance out of reach (down, disabled) wait for it, without counting as
        // attempts: a server restarting for an hour loses nothing.
        let up: Vec<comfy_model::InstanceId> = self
            .engine
            .instances()
            .into_iter()
            .map(|(id, _)| id)
            .filter(|id| {
                self.engine
                    .status(*id)
                    .is_some_and(|s| s.borrow().state.is_up())
            })
            .collect();
        let todo = match self
            .journal
            .store()
            .outputs_to_keep(free as u32, &skip, &up)
        {
            Ok(todo) => todo,
            Err(e) => {
                self.last_error = Some(format!("the journal cannot be read: {e}"));
                return;
            }
        };
        for t in todo {
            let describe = self.described.insert(t.output.job)
                && !self
                    .journal
                    .store()
                    .job_described(t.output.job)
                    .unwrap_or(true);
            let handle = self
                .running
                .spawn(save(self.engine.clone(), t.clone(), describe));
            self.busy.insert(handle.id(), t);
        }
    }

    fn finished(
        &mut self,
        done: Result<(tokio::task::Id, Result<Saved, OutputError>), tokio::task::JoinError>,
    ) {
        let (id, result) = match done {
            Ok((id, result)) => (id, result),
            // A panic in a download: try the file again later, like any failure.
            Err(e) => (e.id(), Err(OutputError::Thumbnail(e.to_string()))),
        };
        let Some(t) = self.busy.remove(&id) else {
            return;
        };
        let store = self.journal.store_mut();
        let recorded = match result {
            Ok(saved) => {
                if let Some(d) = &saved.description {
                    if let Err(e) =
                        store.describe_job(t.output.job, d.label.as_deref(), &d.search_text)
                    {
                        tracing::warn!(error = %e, "the journal could not name a saved job");
                    }
                }
                tracing::debug!(path = %saved.path.display(), "output saved");
                self.last_error = None;
                store.record_keep(
                    t.output.id,
                    &KeepResult::Kept {
                        path: &saved.path,
                        thumbnail: saved.thumbnail.as_deref(),
                    },
                )
            }
            Err(e) => {
                let error = format!("{}: {e}", t.output.filename);
                tracing::warn!(%error, tries = t.tries + 1, "an output could not be saved");
                self.last_error = Some(error.clone());
                if worth_retrying(&e) && t.tries + 1 < MAX_SAVE_TRIES {
                    self.deferred
                        .insert(t.output.id, Instant::now() + retry_after(t.tries));
                    store.record_keep(t.output.id, &KeepResult::Retry { error: &error })
                } else {
                    store.record_keep(t.output.id, &KeepResult::Failed { error: &error })
                }
            }
        };
        if let Err(e) = recorded {
            // Unrecorded, the file would be fetched again and again: wait as after a failure.
            tracing::error!(error = %e, "the journal could not record a saved output");
            self.last_error = Some(format!("the journal cannot be written: {e}"));
            self.deferred
                .insert(t.output.id, Instant::now() + LONGEST_RETRY);
        }
    }

    fn publish(&self) {
        let counts = self.journal.store().keep_counts().unwrap_or_default();
        let status = SavingStatus {
            waiting: counts.pending,
            saving: self.running.len() as u32,
            failed: counts.failed,
            last_error: self.last_error.clone(),
        };
        self.status.send_if_modified(|s| {
            let changed = *s != status;
            *s = status;
            changed
        });
    }
}

/// Downloads one file into its instance's folder and makes its thumbnail (none for a file that
/// is no image); with `describe`, also reads what its job was from the server.
async fn save(engine: Engine, t: ToKeep, describe: bool) -> Result<Saved, OutputError> {
    let file = OutputFile {
        filename: t.output.filename.clone(),
        subfolder: t.output.subfolder.clone(),
        kind: t.output.kind.as_str().to_owned(),
    };
    let path = engine.fetch_output(t.instance, &file, &t.folder).await?;
    let thumbnail = match t.output.has_thumbnail {
        true => None,
        false => thumbnail_off_thread(ThumbnailOf::File(path.clone()))
            .await
            .ok(),
    };
    let description = match describe {
        true => engine
            .job_graph(t.instance, &PromptId::from(t.prompt_id.as_str()))
            .await
            .ok()
            .flatten()
            .map(|graph| jobs::describe(&graph, None)),
        false => None,
    };
    Ok(Saved {
        path,
        thumbnail,
        description,
    })
}

/// Whether a failure may pass: the server out of reach or busy, the disk full. A file the
/// server does not have, or may not be given, stays that way.
fn worth_retrying(e: &OutputError) -> bool {
    match e {
        OutputError::Api(ApiError::Status { status, .. }) => *status >= 500 || *status == 429,
        OutputError::Api(ApiError::Unreachable(_) | ApiError::Auth(_)) => true,
        OutputError::Api(ApiError::Certificate(_) | ApiError::BadCredentials(_)) => true,
        OutputError::Write { .. } | OutputError::Thumbnail(_) => true,
        OutputError::Api(_) | OutputError::Missing { .. } | OutputError::BadName(_) => false,
    }
}

/// The pause before the next attempt after `tries` failed ones.
fn retry_after(tries: u32) -> Duration {
    FIRST_RETRY
        .saturating_mul(1 << tries.min(16))
        .min(LONGEST_RETRY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_wait_longer_each_time_up_to_five_minutes() {
        let waits: Vec<u64> = (0..8).map(|t| retry_after(t).as_secs()).collect();
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 300, 300]);
    }

    #[test]
    fn a_missing_file_is_given_up_and_an_unreachable_server_is_tried_again() {
        assert!(!worth_retrying(&OutputError::Missing {
            file: "a.png".into()
        }));
        assert!(!worth_retrying(&OutputError::BadName("../a".into())));
        assert!(!worth_retrying(&OutputError::Api(ApiError::Status {
            status: 400,
            path: "view".into()
        })));
        assert!(worth_retrying(&OutputError::Api(ApiError::Status {
            status: 503,
            path: "view".into()
        })));
        assert!(worth_retrying(&OutputError::Api(ApiError::Unreachable(
            "refused".into()
        ))));
        assert!(worth_retrying(&OutputError::Write {
            path: "/full".into(),
            source: std::io::Error::from_raw_os_error(28),
        }));
    }
}
