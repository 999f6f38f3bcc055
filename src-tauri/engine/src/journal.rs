//! The job journal: every job the engine reports is written to the store, its terminal state
//! exactly once, so whatever happened is there after a restart of the app.
//!
//! The journal is a host of events, like a printer: it never talks to a server. Reconciliation
//! needs no code of its own: unfinished entries are handed back to the tracker
//! ([`Journal::restored_jobs`]) and the tracker's first snapshot settles them like jobs seen
//! across a reconnect.

use crate::event::{ConnectionState, Event, EventKind, JobOrigin, JobState, JobView};
use crate::tracker::ActiveJob;
use comfy_model::NodeDuration;
use comfy_protocol::http::OutputFile;
use comfy_protocol::{NodeId, PromptId};
use comfy_store::{
    InstanceId, JobEnd, JobSeen, NewOutput, OutputId, OutputKind, Store, StoreError,
};
use comfy_timing::{Run, Shape, TimingModel};
use serde::Serialize;
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;
use tokio::time::Instant;

/// A custom server event type is logged at most this often per instance (some extensions send
/// one every second).
pub const SERVER_EVENT_LOG_INTERVAL: Duration = Duration::from_secs(60);
/// Custom event payloads longer than this are not kept in the log.
pub const MAX_LOGGED_DATA: usize = 4096;

/// One line for the event log (`comfy_store::NewEvent` without its instance and time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub kind: String,
    pub detail: Option<String>,
    pub data: Option<String>,
}

/// Which engine events become lines of the event log, for every host that keeps one: a
/// connection's change of state (not each retry countdown), and custom server events, each type
/// at most once per [`SERVER_EVENT_LOG_INTERVAL`] per instance, payloads over
/// [`MAX_LOGGED_DATA`] left out.
#[derive(Debug, Default)]
pub struct EventLogRule {
    last_state: HashMap<String, ConnectionState>,
    logged_at: HashMap<(String, String), Instant>,
}

impl EventLogRule {
    /// The line to log for `event`, if any.
    pub fn line(&mut self, event: &Event, now: Instant) -> Option<LogLine> {
        match &event.kind {
            EventKind::Connection(status) => {
                if self.last_state.insert(event.instance.clone(), status.state)
                    == Some(status.state)
                {
                    return None;
                }
                let kind = serde_json::to_value(status.state)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_else(|| "connection".into());
                Some(LogLine {
                    kind,
                    detail: Some(status.detail.clone()),
                    data: None,
                })
            }
            EventKind::ServerEvent { kind, data } => {
                let key = (event.instance.clone(), kind.clone());
                if self
                    .logged_at
                    .get(&key)
                    .is_some_and(|at| now.duration_since(*at) < SERVER_EVENT_LOG_INTERVAL)
                {
                    return None;
                }
                self.logged_at.insert(key, now);
                let data = data.to_string();
                Some(LogLine {
                    kind: "server_event".to_owned(),
                    detail: Some(kind.clone()),
                    data: (data.len() <= MAX_LOGGED_DATA).then_some(data),
                })
            }
            _ => None,
        }
    }
}

/// How many of an instance's latest successful jobs its timing is learned from at start.
pub const TIMING_RUNS: usize = 2_000;

/// What an instance's monitoring starts from: the jobs the journal left unfinished, and the
/// timing learned from the ones that succeeded.
#[derive(Debug, Default)]
pub struct Restore {
    pub jobs: Vec<RestoredJob>,
    pub timings: TimingModel,
}

/// An unfinished journal entry, to restore into the tracker.
#[derive(Debug, Clone)]
pub struct RestoredJob {
    pub item: ActiveJob,
    pub state: JobState,
    pub queued_at: i64,
    /// When it was seen to start running, if it was.
    pub started_at: Option<i64>,
}

pub struct Journal {
    store: Store,
    /// The state last written per job: progress events (many a second) change nothing in the
    /// journal, so they cost no write.
    written: std::collections::HashMap<(InstanceId, PromptId), JobState>,
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
            origin: job.origin,
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
        let Some(outcome) = job.state.outcome() else {
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
                fingerprint: job.fingerprint.clone(),
                run_ms: job.run_ms,
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

    /// What monitoring an instance starts from: its unfinished jobs and its learned timing.
    pub fn restore(&self, instance: InstanceId, client_id: &str) -> Result<Restore, StoreError> {
        Ok(Restore {
            jobs: self.restored_jobs(instance, client_id)?,
            timings: self.timings(instance)?,
        })
    }

    /// The timing learned from an instance's latest [`TIMING_RUNS`] successful jobs, in the
    /// order they ended. Jobs this app queued before fingerprints were kept are fingerprinted
    /// again from their stored workflow (their start and end are both our clock's).
    pub fn timings(&self, instance: InstanceId) -> Result<TimingModel, StoreError> {
        let mut model = TimingModel::default();
        for run in self.store.timing_runs(instance, TIMING_RUNS)? {
            let mut nodes: Vec<NodeDuration> = run
                .node_durations_json
                .as_deref()
                .and_then(|j| serde_json::from_str(j).ok())
                .unwrap_or_default();
            let (fingerprint, run_ms) = match (run.fingerprint, run.run_ms) {
                (Some(fp), ms) => (Some(fp), ms),
                (None, _) if run.origin == JobOrigin::SelfApp && run.has_workflow => {
                    let shape = self
                        .store
                        .job_workflow(run.id)?
                        .and_then(|w| serde_json::from_str(&w).ok())
                        .and_then(|g| Shape::of(&g));
                    let Some(shape) = shape else { continue };
                    for n in nodes.iter_mut().filter(|n| n.work.is_none()) {
                        let cost = shape.nodes.get(&n.node);
                        n.work = cost.map(|c| c.work);
                        n.models = cost.and_then(|c| c.models.clone());
                    }
                    let ms = run
                        .started_at
                        .zip(run.finished_at)
                        .map(|(s, e)| (e - s).max(0) as u64);
                    (Some(shape.fingerprint), ms)
                }
                (None, ms) => (None, ms),
            };
            model.learn(&Run {
                fingerprint: fingerprint.as_deref(),
                run_ms,
                nodes: &nodes,
            });
        }
        Ok(model)
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
                JobOrigin::SelfApp => Some(Some(client_id.to_owned())),
                JobOrigin::Other => Some(Some(String::new())),
                JobOrigin::Anonymous => Some(None),
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
                    JobState::Running => JobState::Running,
                    _ => JobState::Pending,
                },
                queued_at: rec.queued_at,
                started_at: rec.started_at,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::ConnectionStatus;

    fn event(instance: &str, kind: EventKind) -> Event {
        Event {
            ts: time::OffsetDateTime::UNIX_EPOCH,
            instance_id: crate::InstanceId(1),
            instance: instance.to_owned(),
            kind,
        }
    }

    fn connection(instance: &str, state: ConnectionState, detail: &str) -> Event {
        event(
            instance,
            EventKind::Connection(ConnectionStatus {
                state,
                detail: detail.to_owned(),
                retry_in_ms: None,
            }),
        )
    }

    fn custom(instance: &str, kind: &str, data: serde_json::Value) -> Event {
        event(
            instance,
            EventKind::ServerEvent {
                kind: kind.to_owned(),
                data,
            },
        )
    }

    fn graph(seed: u64, steps: u32) -> serde_json::Value {
        serde_json::json!({
            "1": {"class_type": "KSampler", "inputs": {"steps": steps, "seed": seed}},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}}
        })
    }

    fn ended(id: &str, origin: JobOrigin, start: i64, run_ms: Option<u64>) -> JobView {
        let mut v = JobView::new(PromptId::from(id), origin, JobState::Success);
        v.queued_at_ms = start - 5_000;
        v.started_at_ms = Some(start);
        v.ended_at_ms = Some(start + run_ms.unwrap_or(9_000) as i64);
        v.fingerprint = comfy_timing::Shape::of(&graph(1, 20)).map(|s| s.fingerprint);
        v.run_ms = run_ms;
        v
    }

    #[test]
    fn timing_is_rebuilt_from_the_journal_including_rows_from_before_it_was_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path().join("j.sqlite")).unwrap();
        let rec = store
            .insert_instance(&comfy_store::NewInstance::new("gpu", "http://gpu:8188"), 0)
            .unwrap();
        let mut journal = Journal::new(store);
        // Another client's runs, as this version writes them.
        for (i, ms) in [10_000u64, 11_000, 10_500].into_iter().enumerate() {
            let v = ended(
                &format!("o{i}"),
                JobOrigin::Other,
                100_000 * (i as i64 + 1),
                Some(ms),
            );
            journal.record(rec.id, &v, 0).unwrap();
        }
        // A failure teaches nothing.
        let mut bad = ended("bad", JobOrigin::Other, 900_000, Some(1));
        bad.state = JobState::Error;
        journal.record(rec.id, &bad, 0).unwrap();
        let fp = comfy_timing::Shape::of(&graph(1, 20)).unwrap().fingerprint;
        let typical = journal.timings(rec.id).unwrap().typical(&fp).unwrap();
        assert_eq!(typical.samples, 3);
        assert_eq!(typical.ms, 10_500.0);

        // Our own job recorded by an earlier version: no fingerprint, no run time, but its
        // workflow (another seed: the same workflow) and its start and end.
        let other_steps = comfy_timing::Shape::of(&graph(7, 30)).unwrap().fingerprint;
        journal
            .record_submitted(rec.id, &PromptId::from("mine"), &graph(7, 30), 1_000_000)
            .unwrap();
        let mut mine = ended("mine", JobOrigin::SelfApp, 1_000_000, None);
        mine.fingerprint = None;
        mine.node_durations = vec![NodeDuration {
            node: NodeId::from("1"),
            node_type: Some("KSampler".into()),
            ms: 8_000,
            work: None,
            models: None,
        }];
        journal.record(rec.id, &mine, 0).unwrap();
        let model = journal.timings(rec.id).unwrap();
        let t = model.typical(&other_steps).unwrap();
        assert_eq!((t.ms, t.samples), (9_000.0, 1), "from its start and end");
        // Its sampler's speed was learned per unit of work (30 steps), so a 60-step run of a
        // workflow never seen is expected to take twice as long.
        let never = comfy_timing::Shape::of(&graph(1, 60)).unwrap();
        let e = model.expect(&never, None).unwrap();
        assert_eq!(e.basis, comfy_model::EstimateBasis::Nodes);
        assert!((e.total_ms - 16_000.0).abs() < 1e-6, "{}", e.total_ms);
    }

    #[test]
    fn a_connection_is_logged_once_per_change_of_state_per_instance() {
        let mut rule = EventLogRule::default();
        let t = Instant::now();
        let down = |d: &str| connection("a", ConnectionState::Unreachable, d);
        let line = rule.line(&down("refused; retry in 1 s"), t).unwrap();
        assert_eq!(line.kind, "unreachable");
        assert_eq!(line.detail.as_deref(), Some("refused; retry in 1 s"));
        assert_eq!(rule.line(&down("refused; retry in 2 s"), t), None);
        assert!(rule
            .line(&connection("b", ConnectionState::Unreachable, "x"), t)
            .is_some());
        assert!(rule
            .line(&connection("a", ConnectionState::Connected, "ok"), t)
            .is_some());
    }

    #[test]
    fn a_custom_event_type_is_logged_once_a_minute_per_instance_without_big_payloads() {
        let mut rule = EventLogRule::default();
        let t = Instant::now();
        let tick = custom("a", "crystools.monitor", serde_json::json!({"cpu": 3}));
        let line = rule.line(&tick, t).unwrap();
        assert_eq!(line.kind, "server_event");
        assert_eq!(line.detail.as_deref(), Some("crystools.monitor"));
        assert_eq!(line.data.as_deref(), Some(r#"{"cpu":3}"#));
        assert_eq!(rule.line(&tick, t + Duration::from_secs(59)), None);
        assert!(rule
            .line(&custom("b", "crystools.monitor", serde_json::json!(1)), t)
            .is_some());
        assert!(rule.line(&tick, t + SERVER_EVENT_LOG_INTERVAL).is_some());
        let big = custom("a", "big", serde_json::json!("x".repeat(MAX_LOGGED_DATA)));
        let line = rule.line(&big, t).unwrap();
        assert_eq!(line.data, None, "payloads over the limit are not kept");
    }
}
