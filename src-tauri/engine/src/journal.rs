//! The job journal: every job the engine reports is written to the store, its terminal state
//! exactly once, so whatever happened is there after a restart of the app.
//!
//! The journal is a host of events, like a printer: it never talks to a server. Reconciliation
//! needs no code of its own: unfinished entries are handed back to the tracker
//! ([`Journal::restored_jobs`]) and the tracker's first snapshot settles them like jobs seen
//! across a reconnect.

use crate::event::{JobOrigin, JobState, JobView};
use crate::tracker::ActiveJob;
use comfy_protocol::http::OutputFile;
use comfy_protocol::{NodeId, PromptId};
use comfy_store::{
    InstanceId, JobEnd, JobOutcome, JobSeen, NewOutput, OutputId, OutputKind, Store, StoreError,
};
use serde::Serialize;
use std::path::Path;

/// An unfinished journal entry, to restore into the tracker.
#[derive(Debug, Clone)]
pub struct RestoredJob {
    pub item: ActiveJob,
    pub state: JobState,
    pub queued_at: i64,
}

pub struct Journal {
    store: Store,
    /// The state last written per job: progress events (many a second) change nothing in the
    /// journal, so they cost no write.
    written: std::collections::HashMap<(InstanceId, PromptId), JobState>,
}

fn origin(o: JobOrigin) -> comfy_store::JobOrigin {
    match o {
        JobOrigin::SelfApp => comfy_store::JobOrigin::SelfApp,
        JobOrigin::Other => comfy_store::JobOrigin::Other,
        JobOrigin::Anonymous => comfy_store::JobOrigin::Anonymous,
    }
}

fn outcome(s: JobState) -> Option<JobOutcome> {
    Some(match s {
        JobState::Success => JobOutcome::Success,
        JobState::Error => JobOutcome::Error,
        JobState::Interrupted => JobOutcome::Interrupted,
        JobState::Deleted => JobOutcome::Deleted,
        JobState::Lost => JobOutcome::Lost,
        JobState::Pending | JobState::Running => return None,
    })
}

/// One element of `outputs_json`: the server's `/view` triple plus the node that wrote it.
#[derive(Serialize)]
struct StoredOutput<'a> {
    #[serde(flatten)]
    file: &'a OutputFile,
    #[serde(skip_serializing_if = "Option::is_none")]
    node: Option<&'a NodeId>,
}

fn new_output(file: &OutputFile, node: Option<&NodeId>) -> NewOutput {
    NewOutput {
        node_id: node.map(|n| n.to_string()).unwrap_or_default(),
        filename: file.filename.clone(),
        subfolder: file.subfolder.clone(),
        kind: output_kind(&file.kind),
    }
}

fn output_kind(kind: &str) -> OutputKind {
    match kind {
        "temp" => OutputKind::Temp,
        "input" => OutputKind::Input,
        _ => OutputKind::Output,
    }
}

impl Journal {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            written: std::collections::HashMap::new(),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn store_mut(&mut self) -> &mut Store {
        &mut self.store
    }

    /// Records a job this app is submitting, with its workflow (kept for resubmission).
    pub fn record_submitted(
        &mut self,
        instance: InstanceId,
        prompt_id: &PromptId,
        workflow: &serde_json::Value,
        now: i64,
    ) -> Result<(), StoreError> {
        self.store.record_seen(
            &JobSeen {
                instance,
                prompt_id: prompt_id.to_string(),
                origin: comfy_store::JobOrigin::SelfApp,
                number: None,
                queued_at: now,
                workflow_json: Some(workflow.to_string()),
            },
            now,
        )?;
        Ok(())
    }

    /// Records one job event. Returns `true` when this call wrote the job's terminal state.
    pub fn record(
        &mut self,
        instance: InstanceId,
        job: &JobView,
        now: i64,
    ) -> Result<bool, StoreError> {
        let key = (instance, job.prompt_id.clone());
        if self.written.get(&key) == Some(&job.state) {
            return Ok(false);
        }
        let written = self.write(instance, job, now)?;
        if job.state.is_terminal() {
            self.written.remove(&key);
        } else {
            self.written.insert(key, job.state);
        }
        Ok(written)
    }

    fn write(&mut self, instance: InstanceId, job: &JobView, now: i64) -> Result<bool, StoreError> {
        let seen = JobSeen {
            instance,
            prompt_id: job.prompt_id.to_string(),
            origin: origin(job.origin),
            number: job.number,
            queued_at: job.queued_at_ms,
            workflow_json: None,
        };
        match (job.state, job.started_at_ms) {
            (JobState::Running, Some(started)) => {
                self.store.record_running(&seen, started, now)?;
            }
            _ => {
                self.store.record_seen(&seen, now)?;
            }
        }
        let Some(outcome) = outcome(job.state) else {
            return Ok(false);
        };
        let written = self.store.record_terminal(
            &JobEnd {
                instance,
                prompt_id: job.prompt_id.to_string(),
                outcome,
                started_at: job.started_at_ms,
                finished_at: job.ended_at_ms.unwrap_or(now),
                error_json: job
                    .error
                    .as_ref()
                    .and_then(|e| serde_json::to_string(e).ok()),
                outputs_json: (!job.outputs.is_empty())
                    .then(|| {
                        let stored: Vec<StoredOutput<'_>> = job
                            .outputs_with_nodes()
                            .map(|(file, node)| StoredOutput { file, node })
                            .collect();
                        serde_json::to_string(&stored).ok()
                    })
                    .flatten(),
                node_durations_json: (!job.node_durations.is_empty())
                    .then(|| serde_json::to_string(&job.node_durations).ok())
                    .flatten(),
                detail: job.detail.clone(),
            },
            now,
        )?;
        if written && !job.outputs.is_empty() {
            if let Some(rec) = self.store.job(instance, job.prompt_id.as_str())? {
                let outputs: Vec<NewOutput> = job
                    .outputs_with_nodes()
                    .map(|(file, node)| new_output(file, node))
                    .collect();
                self.store.record_outputs(rec.id, &outputs)?;
            }
        }
        Ok(written)
    }

    /// Records that an output of a journalled job was downloaded: where the copy is, and its
    /// thumbnail (PNG or JPEG of at most [`comfy_store::MAX_THUMBNAIL_BYTES`]) when one could be
    /// made. The output row is the one the job's end recorded; a file the journal did not know
    /// (say its end was written by an older version) gets a row of its own, without a node.
    /// The job itself must be in the journal ([`StoreError::NotFound`] otherwise).
    pub fn record_download(
        &mut self,
        instance: InstanceId,
        prompt_id: &PromptId,
        file: &OutputFile,
        local_path: &Path,
        thumbnail: Option<&[u8]>,
    ) -> Result<OutputId, StoreError> {
        let job = self
            .store
            .job(instance, prompt_id.as_str())?
            .ok_or_else(|| StoreError::NotFound {
                what: format!("job {prompt_id}"),
            })?;
        let kind = output_kind(&file.kind);
        let find = |store: &Store| -> Result<Option<OutputId>, StoreError> {
            Ok(store
                .outputs(job.id)?
                .into_iter()
                .find(|o| {
                    o.filename == file.filename && o.subfolder == file.subfolder && o.kind == kind
                })
                .map(|o| o.id))
        };
        let id = match find(&self.store)? {
            Some(id) => id,
            None => {
                self.store
                    .record_outputs(job.id, &[new_output(file, None)])?;
                find(&self.store)?.ok_or_else(|| StoreError::NotFound {
                    what: format!("output {} of job {prompt_id}", file.filename),
                })?
            }
        };
        // A relative path means nothing to a later reader in another folder.
        let local_path = std::path::absolute(local_path).unwrap_or_else(|_| local_path.into());
        self.store.set_output_local_path(id, Some(&local_path))?;
        if thumbnail.is_some() {
            self.store.set_output_thumbnail(id, thumbnail)?;
        }
        Ok(id)
    }

    /// Unfinished entries of an instance, to hand to the tracker when monitoring starts.
    pub fn restored_jobs(
        &self,
        instance: InstanceId,
        client_id: &str,
    ) -> Result<Vec<RestoredJob>, StoreError> {
        let mut out = Vec::new();
        for rec in self.store.unfinished_jobs(instance)? {
            let graph = if rec.has_workflow {
                self.store
                    .job_workflow(rec.id)?
                    .and_then(|w| serde_json::from_str(&w).ok())
            } else {
                None
            };
            let client_id = match rec.origin {
                comfy_store::JobOrigin::SelfApp => Some(Some(client_id.to_owned())),
                comfy_store::JobOrigin::Other => Some(Some(String::new())),
                comfy_store::JobOrigin::Anonymous => Some(None),
            };
            out.push(RestoredJob {
                item: ActiveJob {
                    prompt_id: PromptId::from(rec.prompt_id.as_str()),
                    number: rec.number,
                    client_id,
                    graph,
                    outputs_to_execute: None,
                    create_time: None,
                },
                state: match rec.state {
                    comfy_store::JobState::Running => JobState::Running,
                    _ => JobState::Pending,
                },
                queued_at: rec.queued_at,
            });
        }
        Ok(out)
    }
}
