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
    InstanceId, JobEnd, JobEvent, JobSeen, NewOutput, OutputId, OutputKind, Store, StoreError,
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
/// How many custom event types (per instance) the rule remembers. The type is the server's to
/// choose: one that sends a new type with every message must neither grow this memory nor get
/// a line (a write and a webview event) per message.
pub const LOGGED_TYPES: usize = 256;
/// A custom event type is logged cut to this many characters.
pub const MAX_LOGGED_TYPE: usize = 128;

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
/// [`MAX_LOGGED_DATA`] left out, types cut to [`MAX_LOGGED_TYPE`] characters. At most
/// [`LOGGED_TYPES`] types are remembered (the one logged longest ago is forgotten first); when
/// all of them were logged within the interval, a new type is not logged: so a server gets at
/// most that many custom lines a minute, whatever it sends.
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
                let kind: String = kind.chars().take(MAX_LOGGED_TYPE).collect();
                let key = (event.instance.clone(), kind);
                if !self.may_log(&key, now) {
                    return None;
                }
                let detail = Some(key.1.clone());
                self.logged_at.insert(key, now);
                Some(LogLine {
                    kind: "server_event".to_owned(),
                    detail,
                    data: bounded_json(data, MAX_LOGGED_DATA),
                })
            }
            _ => None,
        }
    }

    /// Whether a custom event of this type may be logged now, making room for it if it is new.
    fn may_log(&mut self, key: &(String, String), now: Instant) -> bool {
        let recent = |at: &Instant| now.saturating_duration_since(*at) < SERVER_EVENT_LOG_INTERVAL;
        if let Some(at) = self.logged_at.get(key) {
            return !recent(at);
        }
        let of_instance = self.logged_at.keys().filter(|(i, _)| *i == key.0).count();
        if of_instance < LOGGED_TYPES {
            return true;
        }
        let oldest = self
            .logged_at
            .iter()
            .filter(|((i, _), _)| *i == key.0)
            .min_by_key(|(_, at)| **at)
            .map(|(k, at)| (k.clone(), *at));
        match oldest {
            Some((old, at)) if !recent(&at) => {
                self.logged_at.remove(&old);
                true
            }
            _ => false,
        }
    }
}

/// `value` as JSON text if it takes at most `limit` bytes; serialising stops as soon as it
/// passes the limit, so a huge payload is never written out just to be measured.
fn bounded_json(value: &serde_json::Value, limit: usize) -> Option<String> {
    struct Capped(Vec<u8>, usize);
    impl std::io::Write for Capped {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.0.len() + buf.len() > self.1 {
                return Err(std::io::ErrorKind::FileTooLarge.into());
            }
            self.0.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut out = Capped(Vec::new(), limit);
    serde_json::to_writer(&mut out, value).ok()?;
    String::from_utf8(out.0).ok()
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

/// A time from a job picture (possibly a server's) within a day of `now`, this machine's clock.
fn clamp_to_clock(t: i64, now: i64) -> i64 {
    t.clamp(
        now.saturating_sub(crate::tracker::CLOCK_SLACK_MS),
        now.saturating_add(crate::tracker::CLOCK_SLACK_MS),
    )
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
    ) -> Result<comfy_store::JobId, StoreError> {
        Ok(self
            .store
            .record_seen(
                &JobSeen {
                    instance,
                    prompt_id: prompt_id.to_string(),
                    origin: comfy_store::JobOrigin::SelfApp,
                    number: None,
                    queued_at: now,
                    workflow_json: Some(workflow.to_string()),
                },
                now,
            )?
            .id)
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

    /// Writes one job event in one transaction (see [`Store::record_job`]). Times are clamped
    /// to a day either side of `now` (this machine's clock): a server's clock or unit cannot
    /// put a job years away, where retention would take it for old (or never age it out).
    fn write(&mut self, instance: InstanceId, job: &JobView, now: i64) -> Result<bool, StoreError> {
        let near = |t: i64| clamp_to_clock(t, now);
        let seen = JobSeen {
            instance,
            prompt_id: job.prompt_id.to_string(),
            origin: job.origin,
            number: job.number,
            queued_at: near(job.queued_at_ms),
            workflow_json: None,
        };
        let running_since = match job.state {
            JobState::Running => job.started_at_ms.map(near),
            _ => None,
        };
        let end = job.state.outcome().map(|outcome| JobEnd {
            instance,
            prompt_id: job.prompt_id.to_string(),
            outcome,
            started_at: job.started_at_ms.map(near),
            finished_at: near(job.ended_at_ms.unwrap_or(now)),
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
            // A followed job's, even none (`[]`: every node came from the cache), so the
            // timing rebuilt from the journal tells a cached run as the live one did.
            node_durations_json: (job.fidelity.is_followed() || !job.node_durations.is_empty())
                .then(|| serde_json::to_string(&job.node_durations).ok())
                .flatten(),
            detail: job.detail.clone(),
            fingerprint: job.fingerprint.clone(),
            run_ms: job.run_ms,
        });
        // A file without a name cannot be fetched, and must not cost the job its end.
        let outputs: Vec<NewOutput> = match &end {
            Some(_) => job
                .outputs_with_nodes()
                .filter(|(file, _)| !file.filename.is_empty())
                .map(|(file, node)| new_output(file, node))
                .collect(),
            None => Vec::new(),
        };
        self.store.record_job(
            &JobEvent {
                seen: &seen,
                running_since,
                end: end.as_ref(),
                outputs: &outputs,
            },
            now,
        )
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
    /// order they ended, by the rule live learning follows ([`Run::ran`]): a row with node
    /// durations (even none) was followed. Jobs this app queued before fingerprints were kept
    /// are fingerprinted again from their stored workflow (their start and end are both our
    /// clock's).
    pub fn timings(&self, instance: InstanceId) -> Result<TimingModel, StoreError> {
        let mut model = TimingModel::default();
        for run in self.store.timing_runs(instance, TIMING_RUNS)? {
            let mut nodes: Option<Vec<NodeDuration>> = run
                .node_durations_json
                .as_deref()
                .and_then(|j| serde_json::from_str(j).ok());
            let (fingerprint, run_ms) = match (run.fingerprint, run.run_ms) {
                (Some(fp), ms) => (Some(fp), ms),
                (None, _) if run.origin == JobOrigin::SelfApp && run.has_workflow => {
                    let shape = self
                        .store
                        .job_workflow(run.id)?
                        .and_then(|w| serde_json::from_str(&w).ok())
                        .and_then(|g| Shape::of(&g));
                    let Some(shape) = shape else { continue };
                    for n in nodes.iter_mut().flatten().filter(|n| n.work.is_none()) {
                        let cost = shape.nodes.get(&n.node);
                        n.work = cost.map(|c| c.work);
                        n.models = cost.and_then(|c| c.models.clone());
                    }
                    let ms = run
                        .started_at
                        .zip(run.finished_at)
                        .map(|(s, e)| e.saturating_sub(s).max(0) as u64);
                    (Some(shape.fingerprint), ms)
                }
                (None, ms) => (None, ms),
            };
            model.learn(&Run {
                fingerprint: fingerprint.as_deref(),
                run_ms,
                nodes: nodes.as_deref(),
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
        // Nor do runs the server answered from its cache, as live learning skips them: another
        // client's over in 4 ms, and one of ours, followed, in which no node ran (however long
        // the server took to say so).
        let cached = ended("cached", JobOrigin::Other, 910_000, Some(4));
        journal.record(rec.id, &cached, 0).unwrap();
        let followed = ended("followed", JobOrigin::SelfApp, 920_000, Some(3_000));
        assert!(followed.fidelity.is_followed() && followed.node_durations.is_empty());
        journal.record(rec.id, &followed, 0).unwrap();
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
        let fits = serde_json::json!("x".repeat(MAX_LOGGED_DATA - 2));
        let line = rule.line(&custom("a", "fits", fits.clone()), t).unwrap();
        assert_eq!(
            line.data,
            Some(fits.to_string()),
            "up to the limit they are"
        );
    }

    /// A server that sends a new custom type with every message (or a type a megabyte long)
    /// gets a bounded memory in the rule and at most [`LOGGED_TYPES`] lines a minute.
    #[test]
    fn a_new_event_type_every_message_gets_a_bounded_number_of_lines_a_minute() {
        let mut rule = EventLogRule::default();
        let t = Instant::now();
        let flood = |rule: &mut EventLogRule, from: usize, at: Instant| {
            (from..from + 10_000)
                .filter(|i| {
                    rule.line(&custom("a", &format!("t{i}"), serde_json::json!(i)), at)
                        .is_some()
                })
                .count()
        };
        assert_eq!(flood(&mut rule, 0, t), LOGGED_TYPES);
        assert_eq!(flood(&mut rule, 10_000, t + Duration::from_secs(30)), 0);
        assert!(rule.logged_at.len() <= LOGGED_TYPES);
        // Another instance has its own room.
        assert!(rule
            .line(&custom("b", "t0", serde_json::json!(0)), t)
            .is_some());
        // A minute later the oldest make room again.
        let later = t + SERVER_EVENT_LOG_INTERVAL;
        assert_eq!(flood(&mut rule, 20_000, later), LOGGED_TYPES);
        assert!(rule.logged_at.len() <= 2 * LOGGED_TYPES);
        // A type is cut to its first characters.
        let long = custom("c", &"é".repeat(100_000), serde_json::json!(null));
        let line = rule.line(&long, t).unwrap();
        assert_eq!(line.detail, Some("é".repeat(MAX_LOGGED_TYPE)));
    }

    /// A job whose end names an output without a file name still gets its end and its other
    /// outputs written (in one transaction; the nameless one cannot be fetched anyway).
    #[test]
    fn an_output_without_a_name_does_not_cost_a_job_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path().join("j.sqlite")).unwrap();
        let rec = store
            .insert_instance(&comfy_store::NewInstance::new("gpu", "http://gpu:8188"), 0)
            .unwrap();
        let mut journal = Journal::new(store);
        let mut v = ended("p", JobOrigin::Other, 1_000, Some(500));
        for name in ["", "a.png"] {
            v.outputs.push(OutputFile {
                filename: name.into(),
                subfolder: String::new(),
                kind: "output".into(),
            });
            v.output_nodes.push(Some(NodeId::from("9")));
        }
        assert!(journal.record(rec.id, &v, 2_000).unwrap());
        let job = journal.store().job(rec.id, "p").unwrap().unwrap();
        assert_eq!(job.state, JobState::Success);
        let rows = journal.store().outputs(job.id).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].filename, "a.png");
    }

    /// Times from a job picture (a server's, possibly) are kept within a day of this machine's
    /// clock.
    #[test]
    fn job_times_are_kept_within_a_day_of_this_machines_clock() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path().join("j.sqlite")).unwrap();
        let rec = store
            .insert_instance(&comfy_store::NewInstance::new("gpu", "http://gpu:8188"), 0)
            .unwrap();
        let mut journal = Journal::new(store);
        let now = 1_700_000_000_000;
        let day = crate::tracker::CLOCK_SLACK_MS;
        let mut v = ended("p", JobOrigin::Other, now * 1_000, Some(500));
        v.queued_at_ms = i64::MIN;
        journal.record(rec.id, &v, now).unwrap();
        let job = journal.store().job(rec.id, "p").unwrap().unwrap();
        assert_eq!(job.queued_at, now - day);
        assert_eq!(job.started_at, Some(now + day));
        assert_eq!(job.finished_at, Some(now + day));
    }
}
