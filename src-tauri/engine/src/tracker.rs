//! The job tracker: a pure state machine from ComfyUI traffic to a picture of every job.
//!
//! It owns no socket and no clock. The supervisor (or `replay`, or a test) feeds it decoded
//! frames, HTTP snapshots and outcome lookups with the time they happened, and gets back
//! [`Update`]s to publish and [`Request`]s for HTTP reads it should make. Because time is passed
//! in, every rule here is tested without sleeping.
//!
//! Two sources, one picture:
//! - **live**: jobs queued with our client id; ComfyUI sends their execution messages to our
//!   socket, so we follow nodes, steps and previews.
//! - **observed**: everyone else's jobs; ComfyUI sends us only `status`, so they are followed
//!   through `/api/jobs` or `/queue` + `/history` snapshots and labelled as such.
//!
//! ## Overall percent
//! The planned node set is the upstream closure of the job's output nodes (`outputs_to_execute`,
//! else the graph's sinks) through input links, not expanding past cached nodes. Each planned node
//! has weight `1 + steps`, where `steps` is the node's numeric `steps` input (samplers dominate
//! wall time), else `1`. A node's fraction is 1 when finished or cached, `value / max` while
//! running, 0 before. Overall = `100 · Σ weight·fraction / Σ weight`, held below 100 until the job
//! succeeds and never allowed to go down. Nodes that appear without being planned (expanded
//! nodes, or no graph known) join the plan with weight 1.
//!
//! ## ETA
//! Milliseconds per step are the median of the last [`STEP_SAMPLES`] intervals between
//! consecutive `progress` updates of one node (each divided by the steps it covers), published
//! once there are three. Updates arrive bunched when the server's send loop is busy (two steps a
//! few milliseconds apart, then a long gap): a mean of consecutive intervals would flash
//! "500 it/s, ETA 0 s" at the start of a sampler; the median ignores the one short and one long
//! interval a bunch makes. ETA = remaining weighted work (`Σ weight·(1 − fraction)`) × ms per step.

use crate::event::{ErrorDetails, Fidelity, JobOrigin, JobState, JobView, NodeDuration};
use comfy_protocol::http::{output_files, FinishedJob, Outcome, OutputFile};
use comfy_protocol::{BinaryFrame, ExecutionError, NodeId, NodeRunState, PromptId, ServerMessage};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

/// Milliseconds since the Unix epoch: the tracker's only notion of time.
pub type Millis = i64;

/// How many recent step intervals the step rate is the median of.
const STEP_SAMPLES: usize = 7;
/// How many intervals it takes before a step rate is published.
const STEP_SAMPLES_NEEDED: usize = 3;

/// How many finished jobs are remembered by id, so a late message or snapshot for them is ignored
/// instead of resurrecting them.
const FINISHED_MEMORY: usize = 2048;
/// How many of those keep their whole record (graph, nodes, outputs) for lookups; older ones
/// keep only the id. A long session would otherwise hold thousands of workflows it never reads
/// again (the journal has them).
const FINISHED_DETAIL: usize = 64;
/// Node texts kept per job.
const TEXT_MEMORY: usize = 64;

/// What the tracker tells its host.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    Queue {
        running: Vec<PromptId>,
        pending: Vec<PromptId>,
    },
    Job(Box<JobView>),
    /// A preview frame, attributed to a job and node when that is known.
    Preview {
        prompt_id: Option<PromptId>,
        node: Option<NodeId>,
    },
    Text {
        prompt_id: Option<PromptId>,
        node: NodeId,
        text: String,
    },
    ServerEvent {
        kind: String,
        data: Value,
    },
}

/// An HTTP read the host should make and report back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Look the job up in `/api/jobs/{id}` or `/history/{id}` and call [`Tracker::apply_outcome`].
    Outcome(PromptId),
    /// Re-read the queue now (the socket said it changed).
    Snapshot,
}

/// One job in a queue snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveJob {
    pub prompt_id: PromptId,
    pub number: Option<f64>,
    /// `Some(None)`: queued without a client id. `None`: this snapshot does not say.
    pub client_id: Option<Option<String>>,
    pub graph: Option<Value>,
    pub outputs_to_execute: Option<Vec<NodeId>>,
    pub create_time: Option<Millis>,
}

/// The server's queue at one moment: running jobs, and pending ones in run order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Snapshot {
    pub running: Vec<ActiveJob>,
    pub pending: Vec<ActiveJob>,
    /// Recently finished jobs the server lists (ids only); unknown ones are looked up.
    pub recent_finished: Vec<PromptId>,
    /// When the request for this snapshot was sent. Jobs the tracker learnt of later cannot be
    /// expected in it, so their absence means nothing.
    pub requested_at: Millis,
}

/// What an outcome lookup found.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    Found(Box<FinishedJob>),
    /// The server has no record of the job.
    NotFound,
    /// The lookup could not be made (server unreachable, replay without HTTP).
    Unavailable,
}

#[derive(Debug, Clone, Default)]
struct NodeState {
    value: f64,
    max: f64,
    state: Option<NodeRunState>,
    display: Option<NodeId>,
    /// When the node was first seen running, and when it was seen to end (see
    /// [`NodeDuration`]).
    started: Option<Millis>,
    ended: Option<Millis>,
}

impl NodeState {
    fn mark_started(&mut self, now: Millis) {
        self.started.get_or_insert(now);
    }

    /// Ends the node's run once; a node never seen starting has no duration to end.
    fn mark_ended(&mut self, now: Millis) {
        if self.started.is_some() && self.ended.is_none() {
            self.ended = Some(now);
        }
    }
}

#[derive(Debug, Clone)]
struct Job {
    prompt_id: PromptId,
    origin: JobOrigin,
    fidelity: Fidelity,
    state: JobState,
    number: Option<f64>,
    graph: Option<Value>,
    outputs_to_execute: Option<Vec<NodeId>>,
    /// Planned node -> weight.
    plan: BTreeMap<NodeId, f64>,
    cached: HashSet<NodeId>,
    nodes: HashMap<NodeId, NodeState>,
    /// Nodes running now, most recent last.
    current: Vec<NodeId>,
    percent: Option<f64>,
    first_seen: Millis,
    started: Option<Millis>,
    ended: Option<Millis>,
    /// Milliseconds per step of the last [`STEP_SAMPLES`] intervals, oldest first.
    step_ms: VecDeque<f64>,
    last_step: Option<(NodeId, f64, Millis)>,
    /// Files the job wrote, each with the node that wrote it when known.
    outputs: Vec<(OutputFile, Option<NodeId>)>,
    texts: VecDeque<(NodeId, String)>,
    error: Option<ErrorDetails>,
    /// Terminal outcome seen on the socket, waiting for `executing null` or a reconcile.
    ending: Option<JobState>,
    warnings: Vec<String>,
    detail: Option<String>,
    /// Missing from a snapshot: being looked up.
    vanished: Option<Vanished>,
    /// The server sends `progress_state` (≥0.3.45); older ones only say which node started.
    has_progress_state: bool,
    /// When the tracker last heard of this job.
    seen_at: Millis,
    /// Snapshots requested before this moment cannot be expected to list the job: when the
    /// tracker first heard of it, or, for our own submission, when the server acknowledged it
    /// (not the server's creation time).
    known_since: Millis,
    /// We are submitting it and the server has not answered yet: absent from snapshots is normal.
    awaiting_ack: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Vanished {
    WhilePending,
    WhileRunning,
    AcrossReconnect,
}

impl Job {
    /// The median of the recent step intervals, once there are enough of them (see the ETA
    /// section of the module docs).
    fn ms_per_step(&self) -> Option<f64> {
        if self.step_ms.len() < STEP_SAMPLES_NEEDED {
            return None;
        }
        let mut sorted: Vec<f64> = self.step_ms.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        let mid = sorted.len() / 2;
        Some(if sorted.len() % 2 == 1 {
            sorted[mid]
        } else {
            (sorted[mid - 1] + sorted[mid]) / 2.0
        })
    }

    fn new(prompt_id: PromptId, origin: JobOrigin, now: Millis) -> Self {
        Self {
            prompt_id,
            origin,
            fidelity: match origin {
                JobOrigin::SelfApp => Fidelity::Live,
                _ => Fidelity::Observed,
            },
            state: JobState::Pending,
            number: None,
            graph: None,
            outputs_to_execute: None,
            plan: BTreeMap::new(),
            cached: HashSet::new(),
            nodes: HashMap::new(),
            current: Vec::new(),
            percent: None,
            first_seen: now,
            started: None,
            ended: None,
            step_ms: VecDeque::new(),
            last_step: None,
            outputs: Vec::new(),
            texts: VecDeque::new(),
            error: None,
            ending: None,
            warnings: Vec::new(),
            detail: None,
            vanished: None,
            has_progress_state: false,
            seen_at: now,
            known_since: now,
            awaiting_ack: false,
        }
    }

    fn node_class(&self, node: &NodeId) -> Option<String> {
        self.graph
            .as_ref()?
            .get(node.as_str())?
            .get("class_type")?
            .as_str()
            .map(str::to_owned)
    }

    fn node_title(&self, node: &NodeId) -> Option<String> {
        self.graph
            .as_ref()?
            .get(node.as_str())?
            .get("_meta")?
            .get("title")?
            .as_str()
            .map(str::to_owned)
    }

    /// Weight of a node: `1 + steps` for nodes with a numeric `steps` input.
    fn weight(&self, node: &NodeId) -> f64 {
        let steps = self
            .graph
            .as_ref()
            .and_then(|g| g.get(node.as_str()))
            .and_then(|n| n.get("inputs"))
            .and_then(|i| i.get("steps"))
            .and_then(Value::as_f64)
            .filter(|s| s.is_finite() && *s > 0.0)
            .unwrap_or(0.0);
        1.0 + steps
    }

    /// Rebuilds the plan from the graph, outputs and cache (see the module docs).
    fn replan(&mut self) {
        let Some(graph) = self.graph.as_ref().and_then(Value::as_object) else {
            return;
        };
        let outputs: Vec<NodeId> = match &self.outputs_to_execute {
            Some(o) if !o.is_empty() => o.clone(),
            _ => sinks(graph),
        };
        let mut planned = BTreeMap::new();
        let mut stack: Vec<NodeId> = outputs;
        while let Some(id) = stack.pop() {
            if planned.contains_key(&id) {
                continue;
            }
            let Some(node) = graph.get(id.as_str()) else {
                continue;
            };
            planned.insert(id.clone(), 0.0);
            if self.cached.contains(&id) {
                continue;
            }
            if let Some(inputs) = node.get("inputs").and_then(Value::as_object) {
                for v in inputs.values() {
                    if let Some(src) = link_source(v) {
                        if graph.contains_key(src.as_str()) {
                            stack.push(src);
                        }
                    }
                }
            }
        }
        // Nodes already seen running stay in the plan even if the graph walk missed them.
        for id in self.nodes.keys() {
            planned.entry(id.clone()).or_insert(0.0);
        }
        for (id, w) in planned.iter_mut() {
            *w = self.weight(id);
        }
        self.plan = planned;
    }

    fn ensure_planned(&mut self, node: &NodeId) {
        if !self.plan.contains_key(node) {
            let w = if self.graph.is_some() {
                self.weight(node)
            } else {
                1.0
            };
            self.plan.insert(node.clone(), w);
        }
    }

    fn fraction(&self, node: &NodeId) -> f64 {
        if self.cached.contains(node) {
            return 1.0;
        }
        match self.nodes.get(node) {
            Some(n) if n.state == Some(NodeRunState::Finished) => 1.0,
            Some(n) if n.max > 0.0 => (n.value / n.max).clamp(0.0, 1.0),
            _ => 0.0,
        }
    }

    /// Recomputes the overall percent; it never goes down and stays below 100 until success.
    fn recompute_percent(&mut self) {
        if self.fidelity != Fidelity::Live || self.plan.is_empty() {
            return;
        }
        let total: f64 = self.plan.values().sum();
        let done: f64 = self.plan.iter().map(|(id, w)| w * self.fraction(id)).sum();
        let mut p = if total > 0.0 {
            100.0 * done / total
        } else {
            0.0
        };
        if self.state != JobState::Success {
            p = p.min(99.9);
        }
        let prev = self.percent.unwrap_or(0.0);
        self.percent = Some(p.max(prev));
    }

    fn remaining_work(&self) -> f64 {
        self.plan
            .iter()
            .map(|(id, w)| w * (1.0 - self.fraction(id)))
            .sum()
    }

    fn nodes_done(&self) -> usize {
        self.plan
            .keys()
            .filter(|id| self.fraction(id) >= 1.0)
            .count()
    }

    /// Nodes of the plan that ran to their end, in the order they started.
    fn node_durations(&self) -> Vec<NodeDuration> {
        let mut ran: Vec<(Millis, &NodeId, Millis)> = self
            .plan
            .keys()
            .filter(|id| !self.cached.contains(*id))
            .filter_map(|id| {
                let n = self.nodes.get(id)?;
                Some((n.started?, id, n.ended?))
            })
            .collect();
        ran.sort();
        ran.into_iter()
            .map(|(start, id, end)| NodeDuration {
                node: id.clone(),
                node_type: self.node_class(id),
                ms: (end - start).max(0) as u64,
            })
            .collect()
    }

    /// Records an output file once, whether the socket or the server's record names it first.
    fn add_output(&mut self, file: OutputFile, node: Option<NodeId>) {
        match self.outputs.iter_mut().find(|(f, _)| *f == file) {
            Some((_, known)) => {
                if known.is_none() {
                    *known = node;
                }
            }
            None => self.outputs.push((file, node)),
        }
    }

    fn mark_running(&mut self, now: Millis) {
        if self.state == JobState::Pending {
            self.state = JobState::Running;
        }
        if self.started.is_none() {
            self.started = Some(now);
        }
    }

    fn finish_node(&mut self, node: &NodeId, now: Millis) {
        let n = self.nodes.entry(node.clone()).or_default();
        n.mark_ended(now);
        n.state = Some(NodeRunState::Finished);
        if n.max <= 0.0 {
            n.max = 1.0;
        }
        n.value = n.max;
        self.current.retain(|c| c != node);
    }

    /// Legacy servers (no `progress_state`): a node is done when the next one starts.
    fn start_node(&mut self, node: &NodeId, display: Option<NodeId>, now: Millis) {
        let previous: Vec<NodeId> = self
            .current
            .iter()
            .filter(|c| *c != node)
            .filter(|c| {
                self.nodes
                    .get(*c)
                    .is_some_and(|n| n.state != Some(NodeRunState::Finished))
            })
            .cloned()
            .collect();
        if !self.has_progress_state {
            for p in previous {
                self.finish_node(&p, now);
            }
        }
        let entry = self.nodes.entry(node.clone()).or_default();
        if entry.state != Some(NodeRunState::Finished) {
            entry.mark_started(now);
            entry.state = Some(NodeRunState::Running);
            if entry.max <= 0.0 {
                entry.max = 1.0;
            }
        }
        if display.is_some() {
            entry.display = display;
        }
        self.current.retain(|c| c != node);
        self.current.push(node.clone());
        self.ensure_planned(node);
    }
}

fn link_source(v: &Value) -> Option<NodeId> {
    let a = v.as_array()?;
    if a.len() != 2 || !a[1].is_number() {
        return None;
    }
    match &a[0] {
        Value::String(s) => Some(NodeId::from(s.as_str())),
        Value::Number(n) => Some(NodeId::from(n.to_string())),
        _ => None,
    }
}

/// Nodes no other node links to: the outputs, when the server did not say.
fn sinks(graph: &serde_json::Map<String, Value>) -> Vec<NodeId> {
    let mut used = HashSet::new();
    for node in graph.values() {
        if let Some(inputs) = node.get("inputs").and_then(Value::as_object) {
            for v in inputs.values() {
                if let Some(src) = link_source(v) {
                    used.insert(src);
                }
            }
        }
    }
    graph
        .keys()
        .map(|k| NodeId::from(k.as_str()))
        .filter(|k| !used.contains(k))
        .collect()
}

/// The tracker for one instance.
#[derive(Debug)]
pub struct Tracker {
    client_id: String,
    jobs: HashMap<PromptId, Job>,
    finished: VecDeque<PromptId>,
    finished_set: HashSet<PromptId>,
    running: Vec<PromptId>,
    pending: Vec<PromptId>,
    /// `(prompt, node)` of the last `progress`: type-1 previews carry no ids and follow it.
    last_progress: Option<(Option<PromptId>, Option<NodeId>)>,
    /// Set by [`Tracker::reconnected`]; the next snapshot treats vanished jobs as lost.
    after_reconnect: bool,
    /// Finished jobs listed before we started watching: not news.
    baseline_done: bool,
}

impl Tracker {
    /// `client_id` is this app's id on the instance: jobs queued with it are ours.
    pub fn new(client_id: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            jobs: HashMap::new(),
            finished: VecDeque::new(),
            finished_set: HashSet::new(),
            running: Vec::new(),
            pending: Vec::new(),
            last_progress: None,
            after_reconnect: false,
            baseline_done: false,
        }
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Is anything queued or running (the host polls faster then)?
    pub fn busy(&self) -> bool {
        !self.running.is_empty()
            || !self.pending.is_empty()
            || self.jobs.values().any(|j| !j.state.is_terminal())
    }

    /// The current view of one job.
    pub fn job(&self, id: &PromptId) -> Option<JobView> {
        self.jobs.get(id).map(view)
    }

    /// Every job not yet finished, running first then pending in run order.
    pub fn active_jobs(&self) -> Vec<JobView> {
        let mut v: Vec<JobView> = self
            .jobs
            .values()
            .filter(|j| !j.state.is_terminal())
            .map(view)
            .collect();
        v.sort_by(|a, b| {
            (a.state != JobState::Running)
                .cmp(&(b.state != JobState::Running))
                .then(
                    a.number
                        .unwrap_or(f64::MAX)
                        .total_cmp(&b.number.unwrap_or(f64::MAX)),
                )
        });
        v
    }

    /// Jobs whose origin and graph are known: a snapshot need not fetch their details again.
    pub fn known_jobs(&self) -> HashSet<PromptId> {
        self.jobs
            .values()
            .filter(|j| j.graph.is_some())
            .map(|j| j.prompt_id.clone())
            .chain(self.finished.iter().cloned())
            .collect()
    }

    pub fn queue(&self) -> (Vec<PromptId>, Vec<PromptId>) {
        (self.running.clone(), self.pending.clone())
    }

    fn is_finished(&self, id: &PromptId) -> bool {
        self.finished_set.contains(id)
    }

    /// The job, created on first sight unless it already finished.
    fn job_mut(&mut self, id: &PromptId, origin: JobOrigin, now: Millis) -> Option<&mut Job> {
        if self.is_finished(id) {
            return None;
        }
        let job = self
            .jobs
            .entry(id.clone())
            .or_insert_with(|| Job::new(id.clone(), origin, now));
        job.seen_at = job.seen_at.max(now);
        if origin == JobOrigin::SelfApp && job.origin != JobOrigin::SelfApp {
            // Only the submitter's socket gets execution_start/executing/executed: proof.
            job.origin = JobOrigin::SelfApp;
            job.fidelity = Fidelity::Live;
            job.replan();
        }
        Some(job)
    }

    fn emit(&self, id: &PromptId, out: &mut Vec<Update>) {
        if let Some(j) = self.jobs.get(id) {
            out.push(Update::Job(Box::new(view(j))));
        }
    }

    fn queue_update(&self) -> Update {
        Update::Queue {
            running: self.running.clone(),
            pending: self.pending.clone(),
        }
    }

    /// Moves a job to running in the queue view; returns whether the view changed.
    fn queue_mark_running(&mut self, id: &PromptId) -> bool {
        // A snapshot newer than this frame already saw the job leave the queue.
        let vanished = self.jobs.get(id).is_some_and(|j| j.vanished.is_some());
        if self.running.contains(id) || vanished {
            return false;
        }
        self.pending.retain(|p| p != id);
        // Core ComfyUI runs one job at a time: a job starting means the previous one is done.
        self.running = vec![id.clone()];
        true
    }

    fn queue_remove(&mut self, id: &PromptId) -> bool {
        let before = self.running.len() + self.pending.len();
        self.running.retain(|p| p != id);
        self.pending.retain(|p| p != id);
        before != self.running.len() + self.pending.len()
    }

    /// Records the terminal state exactly once.
    fn finish(&mut self, id: &PromptId, state: JobState, now: Millis, out: &mut Vec<Update>) {
        let Some(job) = self.jobs.get_mut(id) else {
            return;
        };
        if job.state.is_terminal() {
            return;
        }
        job.state = state;
        job.ending = None;
        job.vanished = None;
        job.ended.get_or_insert(now);
        job.current.clear();
        if state == JobState::Success && job.fidelity == Fidelity::Live {
            job.percent = Some(100.0);
        }
        out.push(Update::Job(Box::new(view(job))));
        let changed = self.queue_remove(id);
        if changed {
            out.push(self.queue_update());
        }
        self.remember_finished(id.clone());
    }

    fn remember_finished(&mut self, id: PromptId) {
        if self.finished_set.insert(id.clone()) {
            self.finished.push_back(id);
            if let Some(older) = self
                .finished
                .len()
                .checked_sub(FINISHED_DETAIL + 1)
                .and_then(|i| self.finished.get(i))
            {
                self.jobs.remove(older);
            }
        }
        while self.finished.len() > FINISHED_MEMORY {
            if let Some(old) = self.finished.pop_front() {
                self.finished_set.remove(&old);
                self.jobs.remove(&old);
            }
        }
    }

    /// Applies one decoded text frame.
    pub fn apply_message(
        &mut self,
        msg: &ServerMessage,
        now: Millis,
    ) -> (Vec<Update>, Vec<Request>) {
        let mut out = Vec::new();
        let mut req = Vec::new();
        match msg {
            ServerMessage::Status { .. } => req.push(Request::Snapshot),
            ServerMessage::ExecutionStart {
                prompt_id,
                timestamp,
            } => {
                if let Some(job) = self.job_mut(prompt_id, JobOrigin::SelfApp, now) {
                    job.mark_running(timestamp.unwrap_or(now));
                    self.emit(prompt_id, &mut out);
                    if self.queue_mark_running(prompt_id) {
                        out.push(self.queue_update());
                    }
                    if self.jobs.get(prompt_id).is_some_and(|j| j.graph.is_none()) {
                        req.push(Request::Snapshot);
                    }
                }
            }
            ServerMessage::ExecutionCached {
                prompt_id, nodes, ..
            } => {
                if let Some(job) = self.job_mut(prompt_id, JobOrigin::SelfApp, now) {
                    job.mark_running(now);
                    job.cached.extend(nodes.iter().cloned());
                    if job.graph.is_some() {
                        job.replan();
                    } else {
                        for n in nodes {
                            job.ensure_planned(n);
                        }
                    }
                    job.recompute_percent();
                    self.emit(prompt_id, &mut out);
                }
            }
            ServerMessage::Executing {
                prompt_id,
                node,
                display_node,
            } => self.on_executing(
                prompt_id.as_ref(),
                node.as_ref(),
                display_node,
                now,
                &mut out,
                &mut req,
            ),
            ServerMessage::Executed {
                prompt_id,
                node,
                display_node,
                output,
            } => {
                let id = prompt_id.clone().or_else(|| self.running.first().cloned());
                if let Some(id) = id {
                    if let Some(job) = self.job_mut(&id, JobOrigin::SelfApp, now) {
                        job.mark_running(now);
                        for f in output_files(output) {
                            job.add_output(f, Some(node.clone()));
                        }
                        let shown = display_node.clone().unwrap_or_else(|| node.clone());
                        job.ensure_planned(&shown);
                        self.emit(&id, &mut out);
                    }
                }
            }
            ServerMessage::Progress {
                prompt_id,
                node,
                value,
                max,
            } => {
                self.last_progress = Some((prompt_id.clone(), node.clone()));
                let id = prompt_id.clone().or_else(|| self.running.first().cloned());
                if let Some(id) = id {
                    let origin = self.origin_hint(&id);
                    if let Some(job) = self.job_mut(&id, origin, now) {
                        job.mark_running(now);
                        let node = node.clone().or_else(|| job.current.last().cloned());
                        if let Some(node) = node {
                            apply_step(job, &node, *value, *max, now);
                        }
                        job.recompute_percent();
                        self.emit(&id, &mut out);
                        if self.queue_mark_running(&id) {
                            out.push(self.queue_update());
                        }
                    }
                }
            }
            ServerMessage::ProgressState { prompt_id, nodes } => {
                let origin = self.origin_hint(prompt_id);
                if let Some(job) = self.job_mut(prompt_id, origin, now) {
                    job.mark_running(now);
                    job.has_progress_state = true;
                    // A full snapshot: replace, don't merge.
                    let mut running = Vec::new();
                    for (id, p) in nodes {
                        let entry = job.nodes.entry(id.clone()).or_default();
                        match p.state {
                            NodeRunState::Running => entry.mark_started(now),
                            NodeRunState::Finished => entry.mark_ended(now),
                            NodeRunState::Pending | NodeRunState::Error | NodeRunState::Unknown => {
                            }
                        }
                        entry.value = p.value;
                        entry.max = p.max;
                        entry.state = Some(p.state);
                        entry.display = p.display_node_id.clone();
                        if p.state == NodeRunState::Running {
                            running.push(id.clone());
                        }
                        let shown = p.display_node_id.clone().unwrap_or_else(|| id.clone());
                        job.ensure_planned(&shown);
                        if &shown != id && p.parent_node_id.is_some() {
                            // Expanded nodes count toward their display node, not on their own.
                            job.plan.remove(id);
                        }
                    }
                    // Keep the most recently started node last.
                    let mut current: Vec<NodeId> = job
                        .current
                        .iter()
                        .filter(|c| running.contains(c))
                        .cloned()
                        .collect();
                    for r in running {
                        if !current.contains(&r) {
                            current.push(r);
                        }
                    }
                    job.current = current;
                    job.recompute_percent();
                    self.emit(prompt_id, &mut out);
                    if self.queue_mark_running(prompt_id) {
                        out.push(self.queue_update());
                    }
                }
            }
            ServerMessage::ExecutionSuccess {
                prompt_id,
                timestamp,
            } => {
                if let Some(job) = self.job_mut(prompt_id, JobOrigin::SelfApp, now) {
                    job.ending = Some(JobState::Success);
                    job.ended = timestamp.or(Some(now));
                    for n in job.current.clone() {
                        job.finish_node(&n, now);
                    }
                }
            }
            ServerMessage::ExecutionError(e) => {
                let origin = self.origin_hint(&e.prompt_id);
                if let Some(job) = self.job_mut(&e.prompt_id, origin, now) {
                    if e.is_terminal() {
                        job.ending = Some(JobState::Error);
                        job.ended = e.timestamp.or(Some(now));
                        job.error = Some(error_details(e));
                    } else {
                        job.warnings.push(e.exception_message.trim_end().to_owned());
                        self.emit(&e.prompt_id, &mut out);
                    }
                }
            }
            ServerMessage::ExecutionInterrupted(i) => {
                let origin = self.origin_hint(&i.prompt_id);
                let anonymous = origin != JobOrigin::SelfApp;
                if let Some(job) = self.job_mut(&i.prompt_id, origin, now) {
                    job.ending = Some(JobState::Interrupted);
                    job.ended = i.timestamp.or(Some(now));
                    job.error = Some(ErrorDetails {
                        node_id: i.node_id.clone(),
                        node_type: i.node_type.clone(),
                        exception_type: None,
                        message: "interrupted".into(),
                        traceback: Vec::new(),
                    });
                    if anonymous {
                        // Broadcast for jobs queued without a client id: no `executing null` follows.
                        req.push(Request::Outcome(i.prompt_id.clone()));
                    }
                }
            }
            ServerMessage::FeatureFlags(_) => {}
            ServerMessage::ProgressText {
                prompt_id,
                node,
                text,
            } => self.on_text(prompt_id.clone(), node.clone(), text, &mut out),
            ServerMessage::Other { kind, data } => out.push(Update::ServerEvent {
                kind: kind.clone(),
                data: data.clone(),
            }),
        }
        (out, req)
    }

    /// Our jobs are known by their execution messages; a job first seen through a broadcast
    /// `progress` is someone else's (queued without a client id, or an old server's broadcast).
    fn origin_hint(&self, id: &PromptId) -> JobOrigin {
        self.jobs
            .get(id)
            .map(|j| j.origin)
            .unwrap_or(JobOrigin::Anonymous)
    }

    fn on_executing(
        &mut self,
        prompt_id: Option<&PromptId>,
        node: Option<&NodeId>,
        display: &Option<NodeId>,
        now: Millis,
        out: &mut Vec<Update>,
        req: &mut Vec<Request>,
    ) {
        // The reconnect replay `{node}` has no prompt id: it is about the job running for us.
        let id = prompt_id.cloned().or_else(|| {
            self.running
                .iter()
                .find(|r| {
                    self.jobs
                        .get(*r)
                        .is_some_and(|j| j.origin == JobOrigin::SelfApp)
                })
                .cloned()
        });
        let Some(id) = id else { return };
        match node {
            Some(node) => {
                if let Some(job) = self.job_mut(&id, JobOrigin::SelfApp, now) {
                    job.mark_running(now);
                    let shown = display.clone().unwrap_or_else(|| node.clone());
                    job.start_node(&shown, display.clone(), now);
                    job.recompute_percent();
                    self.emit(&id, out);
                    if self.queue_mark_running(&id) {
                        out.push(self.queue_update());
                    }
                }
            }
            None => {
                // The end of our job. Reconcile with the server's record before the terminal
                // state is published, so it carries the authoritative outputs.
                if let Some(job) = self.job_mut(&id, JobOrigin::SelfApp, now) {
                    if job.ending.is_none() {
                        // Servers before July 2024 send no execution_success: the nodes still
                        // running were the last ones, and they are done.
                        job.ending = Some(JobState::Success);
                        for n in job.current.clone() {
                            job.finish_node(&n, now);
                        }
                    }
                    job.ended.get_or_insert(now);
                    req.push(Request::Outcome(id));
                }
            }
        }
    }

    fn on_text(
        &mut self,
        prompt_id: Option<PromptId>,
        node: NodeId,
        text: &str,
        out: &mut Vec<Update>,
    ) {
        // Core sends node text to everyone without a prompt id: attribute it to the running job
        // when that job has the node.
        let id = prompt_id.or_else(|| {
            self.running
                .iter()
                .find(|r| {
                    self.jobs
                        .get(*r)
                        .is_some_and(|j| j.nodes.contains_key(&node) || j.plan.contains_key(&node))
                })
                .cloned()
        });
        if let Some(job) = id.as_ref().and_then(|i| self.jobs.get_mut(i)) {
            job.texts.push_back((node.clone(), text.to_owned()));
            while job.texts.len() > TEXT_MEMORY {
                job.texts.pop_front();
            }
        }
        out.push(Update::Text {
            prompt_id: id,
            node,
            text: text.to_owned(),
        });
    }

    /// Applies one binary frame. Previews are attributed; the bytes stay with the host.
    pub fn apply_binary(&mut self, frame: &BinaryFrame<'_>) -> Vec<Update> {
        let mut out = Vec::new();
        match frame {
            BinaryFrame::Preview { metadata, .. } => {
                let (prompt_id, node) = match metadata {
                    Some(m) => (
                        m.prompt_id.clone(),
                        m.display_node_id.clone().or_else(|| m.node_id.clone()),
                    ),
                    None => self.last_progress.clone().unwrap_or((None, None)),
                };
                let node = node.map(|n| self.display_of(prompt_id.as_ref(), n));
                out.push(Update::Preview { prompt_id, node });
            }
            BinaryFrame::Text {
                prompt_id,
                node,
                text,
            } => self.on_text(prompt_id.clone(), node.clone(), text, &mut out),
            BinaryFrame::Unknown {
                event_type,
                payload,
            } => out.push(Update::ServerEvent {
                kind: format!("binary:{event_type}"),
                data: serde_json::json!({ "bytes": payload.len() }),
            }),
        }
        out
    }

    fn display_of(&self, prompt: Option<&PromptId>, node: NodeId) -> NodeId {
        prompt
            .and_then(|p| self.jobs.get(p))
            .and_then(|j| j.nodes.get(&node))
            .and_then(|n| n.display.clone())
            .unwrap_or(node)
    }

    /// The socket dropped: messages may be lost until the next snapshot, and lookups in
    /// flight were abandoned, so vanished jobs are judged again by the next snapshot.
    pub fn disconnected(&mut self) {
        self.last_progress = None;
        for job in self.jobs.values_mut() {
            job.vanished = None;
        }
    }

    /// The socket is back: the next snapshot decides what happened meanwhile.
    pub fn reconnected(&mut self) {
        self.after_reconnect = true;
    }

    /// Records what we know of a job without a full snapshot: its graph when we submitted it,
    /// or details read from `/queue`. Nothing is concluded about other jobs.
    pub fn describe_job(&mut self, item: &ActiveJob, now: Millis) -> Vec<Update> {
        let origin = match &item.client_id {
            Some(Some(c)) if *c == self.client_id => JobOrigin::SelfApp,
            Some(Some(_)) => JobOrigin::Other,
            Some(None) => JobOrigin::Anonymous,
            None => self.origin_hint(&item.prompt_id),
        };
        let mut out = Vec::new();
        let known = self.jobs.contains_key(&item.prompt_id);
        let Some(job) = self.job_mut(&item.prompt_id, origin, now) else {
            return out;
        };
        if item.number.is_some() {
            job.number = item.number;
        }
        if job.graph.is_none() && item.graph.is_some() {
            job.graph = item.graph.clone();
            job.outputs_to_execute = item.outputs_to_execute.clone();
            job.replan();
            job.recompute_percent();
        }
        if !known {
            self.emit(&item.prompt_id, &mut out);
        }
        out
    }

    /// A job the journal says was unfinished when the app last stopped. The first snapshot
    /// judges it as if across a reconnect: still queued → followed; in history → its real
    /// outcome; nowhere → lost.
    pub fn restore_job(&mut self, item: &ActiveJob, state: JobState, queued_at: Millis) {
        if self.is_finished(&item.prompt_id) || state.is_terminal() {
            return;
        }
        let origin = match &item.client_id {
            Some(Some(c)) if *c == self.client_id => JobOrigin::SelfApp,
            Some(Some(_)) => JobOrigin::Other,
            _ => JobOrigin::Anonymous,
        };
        let mut job = Job::new(item.prompt_id.clone(), origin, queued_at);
        job.known_since = Millis::MIN;
        job.state = state;
        job.number = item.number;
        job.graph = item.graph.clone();
        job.replan();
        self.jobs.insert(item.prompt_id.clone(), job);
        self.after_reconnect = true;
    }

    /// We are about to submit this job: follow it from the first frame, before the HTTP answer.
    pub fn expect_job(&mut self, item: &ActiveJob, now: Millis) -> Vec<Update> {
        let out = self.describe_job(item, now);
        if let Some(job) = self.jobs.get_mut(&item.prompt_id) {
            job.awaiting_ack = true;
        }
        out
    }

    /// The server answered the submission of `expected`: with the id it really used (older
    /// servers mint their own), or with a refusal (`None`), in which case the job never was.
    pub fn settle_submission(
        &mut self,
        expected: &PromptId,
        actual: Option<&PromptId>,
        now: Millis,
    ) -> Vec<Update> {
        match actual {
            Some(id) if id == expected => {
                if let Some(job) = self.jobs.get_mut(id) {
                    job.awaiting_ack = false;
                    // A snapshot sent while the submission was in flight may have been answered
                    // before the server queued it, whenever its answer arrives.
                    job.known_since = job.known_since.max(now);
                }
                Vec::new()
            }
            Some(id) => {
                let Some(mut job) = self.jobs.remove(expected) else {
                    return Vec::new();
                };
                job.awaiting_ack = false;
                job.prompt_id = id.clone();
                let item = ActiveJob {
                    prompt_id: id.clone(),
                    number: job.number,
                    client_id: Some(Some(self.client_id.clone())),
                    graph: job.graph.clone(),
                    outputs_to_execute: job.outputs_to_execute.clone(),
                    create_time: None,
                };
                self.describe_job(&item, now)
            }
            None => {
                self.jobs.remove(expected);
                Vec::new()
            }
        }
    }

    /// Applies a queue snapshot from HTTP. Returns outcome lookups for jobs that left the queue.
    pub fn apply_snapshot(&mut self, snap: &Snapshot, now: Millis) -> (Vec<Update>, Vec<Request>) {
        let mut out = Vec::new();
        let mut req = Vec::new();
        let after_reconnect = std::mem::take(&mut self.after_reconnect);
        let listed: HashSet<&PromptId> = snap
            .running
            .iter()
            .chain(&snap.pending)
            .map(|j| &j.prompt_id)
            .collect();

        for (running, item) in snap
            .running
            .iter()
            .map(|j| (true, j))
            .chain(snap.pending.iter().map(|j| (false, j)))
        {
            let origin = match &item.client_id {
                Some(Some(c)) if *c == self.client_id => JobOrigin::SelfApp,
                Some(Some(_)) => JobOrigin::Other,
                Some(None) => JobOrigin::Anonymous,
                None => self.origin_hint(&item.prompt_id),
            };
            let known = self.jobs.contains_key(&item.prompt_id);
            let Some(job) = self.job_mut(&item.prompt_id, origin, now) else {
                continue;
            };
            let mut changed = !known;
            if known
                && item.client_id.is_some()
                && job.origin != origin
                && job.origin != JobOrigin::SelfApp
            {
                job.origin = origin;
                changed = true;
            }
            if job.vanished.take().is_some() {
                changed = true;
            }
            if item.number.is_some() && job.number != item.number {
                job.number = item.number;
                changed = true;
            }
            if job.graph.is_none() && item.graph.is_some() {
                job.graph = item.graph.clone();
                job.outputs_to_execute = item.outputs_to_execute.clone();
                job.replan();
                job.recompute_percent();
            }
            if let Some(t) = item.create_time {
                job.first_seen = job.first_seen.min(t);
            }
            if running && job.state == JobState::Pending {
                job.mark_running(now);
                changed = true;
            }
            if changed {
                self.emit(&item.prompt_id, &mut out);
            }
        }

        // Jobs we tracked that the server no longer lists: finished, deleted, or lost.
        let missing: Vec<PromptId> = self
            .jobs
            .values()
            .filter(|j| !j.state.is_terminal() && j.vanished.is_none())
            .filter(|j| !listed.contains(&j.prompt_id))
            .map(|j| j.prompt_id.clone())
            .collect();
        for id in missing {
            if let Some(job) = self.jobs.get_mut(&id) {
                // The snapshot was requested before we heard of this job, or before the server
                // answered our submission (even if it arrives after that answer): it proves
                // nothing.
                if job.known_since >= snap.requested_at || job.awaiting_ack {
                    continue;
                }
                job.vanished = Some(if after_reconnect {
                    Vanished::AcrossReconnect
                } else if job.state == JobState::Running {
                    Vanished::WhileRunning
                } else {
                    Vanished::WhilePending
                });
                req.push(Request::Outcome(id));
            }
        }

        // Finished jobs we never saw queued (they came and went between two polls).
        for id in &snap.recent_finished {
            if self.baseline_done && !self.jobs.contains_key(id) && !self.is_finished(id) {
                req.push(Request::Outcome(id.clone()));
            } else if !self.baseline_done && !self.jobs.contains_key(id) {
                // Old news, unless it is a job we were following (restored from the journal):
                // that one's outcome is looked up like any vanished job's.
                self.remember_finished(id.clone());
            }
        }
        self.baseline_done = true;

        let running: Vec<PromptId> = snap.running.iter().map(|j| j.prompt_id.clone()).collect();
        let pending: Vec<PromptId> = snap
            .pending
            .iter()
            .map(|j| j.prompt_id.clone())
            .filter(|p| !self.is_finished(p))
            .collect();
        let running: Vec<PromptId> = running
            .into_iter()
            .filter(|p| !self.is_finished(p))
            .collect();
        if running != self.running || pending != self.pending {
            self.running = running;
            self.pending = pending;
            out.push(self.queue_update());
        }
        (out, req)
    }

    /// Applies the result of a [`Request::Outcome`] lookup.
    pub fn apply_outcome(&mut self, id: &PromptId, lookup: Lookup, now: Millis) -> Vec<Update> {
        let mut out = Vec::new();
        if self.is_finished(id) {
            return out;
        }
        match lookup {
            Lookup::Found(f) => {
                let origin = match &f.client_id {
                    Some(c) if *c == self.client_id => JobOrigin::SelfApp,
                    Some(_) => JobOrigin::Other,
                    None => self.origin_hint(id),
                };
                let Some(job) = self.job_mut(id, origin, now) else {
                    return out;
                };
                // Keyed by the node that wrote them, like `executed`'s `node`.
                for (node, ui) in &f.outputs {
                    for file in output_files(ui) {
                        job.add_output(file, Some(NodeId::from(node.as_str())));
                    }
                }
                if let Some(s) = f.started_ms {
                    job.started = Some(s);
                }
                if let Some(e) = f.ended_ms {
                    job.ended = Some(e);
                }
                let state = match &f.outcome {
                    Outcome::Success => JobState::Success,
                    Outcome::Error(e) => {
                        job.error = Some(error_details(e));
                        JobState::Error
                    }
                    Outcome::Interrupted(i) => {
                        job.error.get_or_insert(ErrorDetails {
                            node_id: i.node_id.clone(),
                            node_type: i.node_type.clone(),
                            exception_type: None,
                            message: "interrupted".into(),
                            traceback: Vec::new(),
                        });
                        JobState::Interrupted
                    }
                    Outcome::Failed => {
                        job.error.get_or_insert(ErrorDetails {
                            node_id: None,
                            node_type: None,
                            exception_type: None,
                            message: "failed (the server recorded no details)".into(),
                            traceback: Vec::new(),
                        });
                        JobState::Error
                    }
                };
                self.finish(id, state, now, &mut out);
            }
            Lookup::NotFound => {
                let Some(job) = self.jobs.get_mut(id) else {
                    return out;
                };
                let state = match (job.ending, job.vanished) {
                    // We saw the end on the socket; the history is just not there (yet, or evicted).
                    (Some(s), _) => s,
                    (None, Some(Vanished::WhilePending)) => JobState::Deleted,
                    (None, Some(Vanished::AcrossReconnect)) => {
                        job.detail = Some("server restarted".into());
                        JobState::Lost
                    }
                    (None, _) => {
                        job.detail = Some("gone from the server without a record".into());
                        JobState::Lost
                    }
                };
                self.finish(id, state, now, &mut out);
            }
            Lookup::Unavailable => {
                // Without the server's record, a socket-seen end is still an end.
                if let Some(s) = self.jobs.get(id).and_then(|j| j.ending) {
                    self.finish(id, s, now, &mut out);
                } else if let Some(job) = self.jobs.get_mut(id) {
                    // Look again at the next snapshot.
                    job.vanished = None;
                }
            }
        }
        out
    }

    /// Jobs whose end was seen on the socket but not yet published (for hosts without HTTP).
    pub fn ending_jobs(&self) -> Vec<PromptId> {
        self.jobs
            .values()
            .filter(|j| j.ending.is_some() && !j.state.is_terminal())
            .map(|j| j.prompt_id.clone())
            .collect()
    }
}

fn apply_step(job: &mut Job, node: &NodeId, value: f64, max: f64, now: Millis) {
    let shown = job
        .nodes
        .get(node)
        .and_then(|n| n.display.clone())
        .unwrap_or_else(|| node.clone());
    // Step rate from consecutive updates of the same node.
    if let Some((last_node, last_value, last_t)) = &job.last_step {
        if last_node == node && value > *last_value && now > *last_t {
            let per_step = (now - last_t) as f64 / (value - last_value);
            if job.step_ms.len() == STEP_SAMPLES {
                job.step_ms.pop_front();
            }
            job.step_ms.push_back(per_step);
        }
    }
    job.last_step = Some((node.clone(), value, now));
    let entry = job.nodes.entry(node.clone()).or_default();
    entry.value = value;
    entry.max = max;
    if entry.state != Some(NodeRunState::Finished) {
        entry.mark_started(now);
        entry.state = Some(NodeRunState::Running);
    }
    if !job.current.contains(node) {
        job.current.push(node.clone());
    }
    job.ensure_planned(&shown);
}

fn error_details(e: &ExecutionError) -> ErrorDetails {
    ErrorDetails {
        node_id: e.node_id.clone(),
        node_type: e.node_type.clone(),
        exception_type: Some(e.exception_type.clone()),
        message: e.exception_message.trim_end().to_owned(),
        traceback: e.traceback.clone(),
    }
}

fn view(j: &Job) -> JobView {
    let live = j.fidelity == Fidelity::Live;
    let node = j.current.last().cloned();
    let ns = node.as_ref().and_then(|n| j.nodes.get(n));
    let display = node.as_ref().map(|n| {
        ns.and_then(|s| s.display.clone())
            .unwrap_or_else(|| n.clone())
    });
    let ms_per_step = j.ms_per_step();
    let eta_ms = match (j.state, ms_per_step) {
        (JobState::Running, Some(ms)) if j.fidelity == Fidelity::Live => {
            Some((j.remaining_work() * ms).round().max(0.0) as u64)
        }
        _ => None,
    };
    let elapsed_ms = j
        .started
        .map(|s| (j.ended.unwrap_or(j.seen_at) - s).max(0) as u64);
    JobView {
        prompt_id: j.prompt_id.clone(),
        origin: j.origin,
        fidelity: j.fidelity,
        state: j.state,
        number: j.number,
        percent: j.percent.map(|p| (p * 10.0).round() / 10.0),
        node_type: display.as_ref().and_then(|d| j.node_class(d)),
        node_title: display.as_ref().and_then(|d| j.node_title(d)),
        node: display,
        node_value: ns.map(|s| s.value),
        node_max: ns.map(|s| s.max),
        running_nodes: j.current.clone(),
        // Node counts only mean something when we see the nodes run.
        nodes_done: (live && !j.plan.is_empty()).then(|| j.nodes_done()),
        nodes_total: (live && !j.plan.is_empty()).then_some(j.plan.len()),
        eta_ms,
        // The step rate belongs to a node that steps; don't show it beside a VAE decode.
        steps_per_s: ms_per_step
            .filter(|m| *m > 0.0 && ns.is_some_and(|s| s.max > 1.0))
            .map(|m| ((1000.0 / m) * 100.0).round() / 100.0),
        queued_at_ms: j.first_seen,
        started_at_ms: j.started,
        ended_at_ms: j.ended,
        elapsed_ms,
        outputs: j.outputs.iter().map(|(f, _)| f.clone()).collect(),
        output_nodes: j.outputs.iter().map(|(_, n)| n.clone()).collect(),
        error: j.error.clone(),
        warnings: j.warnings.clone(),
        node_durations: if live && j.state.is_terminal() {
            j.node_durations()
        } else {
            Vec::new()
        },
        detail: j.detail.clone(),
        last_text: j.texts.back().map(|(_, t)| t.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use comfy_protocol::decode_text;
    use serde_json::json;

    const ME: &str = "me";

    fn active(id: &str, number: f64, client: Option<&str>) -> ActiveJob {
        ActiveJob {
            prompt_id: id.into(),
            number: Some(number),
            client_id: Some(client.map(str::to_owned)),
            graph: Some(json!({
                "1": {"class_type": "KSampler", "inputs": {"steps": 4}},
                "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}}
            })),
            outputs_to_execute: Some(vec!["2".into()]),
            create_time: None,
        }
    }

    fn snap(running: &[ActiveJob], pending: &[ActiveJob]) -> Snapshot {
        Snapshot {
            running: running.to_vec(),
            pending: pending.to_vec(),
            recent_finished: Vec::new(),
            requested_at: Millis::MAX,
        }
    }

    fn job_states(updates: &[Update]) -> Vec<(String, JobState)> {
        updates
            .iter()
            .filter_map(|u| match u {
                Update::Job(j) => Some((j.prompt_id.to_string(), j.state)),
                _ => None,
            })
            .collect()
    }

    fn msg(t: &mut Tracker, text: &str, now: Millis) -> (Vec<Update>, Vec<Request>) {
        t.apply_message(&decode_text(text).unwrap(), now)
    }

    fn finished(id: &str, outcome: Outcome) -> Lookup {
        Lookup::Found(Box::new(FinishedJob {
            prompt_id: id.into(),
            outcome,
            outputs: Default::default(),
            client_id: Some("browser".into()),
            started_ms: Some(100),
            ended_ms: Some(200),
        }))
    }

    #[test]
    fn observed_job_goes_pending_running_then_takes_its_outcome_from_the_server() {
        let mut t = Tracker::new(ME);
        let a = active("a", 1.0, Some("browser"));
        let (u, _) = t.apply_snapshot(&snap(&[], std::slice::from_ref(&a)), 0);
        assert_eq!(job_states(&u), [("a".into(), JobState::Pending)]);
        let view = t.job(&"a".into()).unwrap();
        assert_eq!(view.origin, JobOrigin::Other);
        assert_eq!(view.fidelity, Fidelity::Observed);
        assert_eq!(
            view.percent, None,
            "no percent is invented for observed jobs"
        );

        let (u, _) = t.apply_snapshot(&snap(std::slice::from_ref(&a), &[]), 1_000);
        assert_eq!(job_states(&u), [("a".into(), JobState::Running)]);

        let (u, req) = t.apply_snapshot(&snap(&[], &[]), 2_000);
        assert!(
            job_states(&u).is_empty(),
            "nothing is concluded before the lookup"
        );
        assert_eq!(req, [Request::Outcome("a".into())]);
        let u = t.apply_outcome(&"a".into(), finished("a", Outcome::Success), 2_100);
        assert_eq!(job_states(&u), [("a".into(), JobState::Success)]);
        // A late snapshot or message never resurrects it, and it never ends twice.
        let (u, _) = t.apply_snapshot(&snap(&[a], &[]), 2_200);
        assert!(job_states(&u).is_empty());
        assert!(t
            .apply_outcome(&"a".into(), finished("a", Outcome::Success), 2_300)
            .is_empty());
    }

    #[test]
    fn old_finished_jobs_keep_only_their_id_and_are_never_resurrected() {
        let mut t = Tracker::new(ME);
        let total = FINISHED_DETAIL + 10;
        for i in 0..total {
            let id = format!("j{i}");
            let job = active(&id, i as f64, Some("browser"));
            let now = (i as Millis) * 1_000;
            t.apply_snapshot(&snap(std::slice::from_ref(&job), &[]), now);
            t.apply_snapshot(&snap(&[], &[]), now + 100);
            t.apply_outcome(
                &id.as_str().into(),
                finished(&id, Outcome::Success),
                now + 200,
            );
        }
        assert_eq!(
            t.jobs.len(),
            FINISHED_DETAIL,
            "only the newest keep their record"
        );
        assert!(t.job(&"j0".into()).is_none());
        let newest = format!("j{}", total - 1);
        assert_eq!(
            t.job(&newest.as_str().into()).unwrap().state,
            JobState::Success
        );
        // The oldest is still known as finished: a stale snapshot does not bring it back.
        let stale = active("j0", 0.0, Some("browser"));
        let (u, req) = t.apply_snapshot(&snap(&[stale], &[]), 1_000_000);
        assert!(job_states(&u).is_empty(), "{u:?}");
        assert!(req.is_empty(), "{req:?}");
        assert!(t.job(&"j0".into()).is_none());
    }

    #[test]
    fn pending_job_that_vanishes_without_history_was_deleted() {
        let mut t = Tracker::new(ME);
        t.apply_snapshot(&snap(&[], &[active("a", 1.0, None)]), 0);
        let (_, req) = t.apply_snapshot(&snap(&[], &[]), 1_000);
        assert_eq!(req, [Request::Outcome("a".into())]);
        let u = t.apply_outcome(&"a".into(), Lookup::NotFound, 1_100);
        assert_eq!(job_states(&u), [("a".into(), JobState::Deleted)]);
        assert_eq!(t.job(&"a".into()).unwrap().origin, JobOrigin::Anonymous);
    }

    #[test]
    fn jobs_missing_after_a_reconnect_are_lost_not_failed() {
        let mut t = Tracker::new(ME);
        t.apply_snapshot(
            &snap(
                &[active("run", 0.0, Some(ME))],
                &[active("wait", 1.0, Some("x"))],
            ),
            0,
        );
        t.disconnected();
        t.reconnected();
        let (_, req) = t.apply_snapshot(&snap(&[], &[]), 5_000);
        assert_eq!(req.len(), 2);
        let mut states = Vec::new();
        for id in ["run", "wait"] {
            let u = t.apply_outcome(&id.into(), Lookup::NotFound, 5_100);
            states.extend(job_states(&u));
            let view = t.job(&id.into()).unwrap();
            assert_eq!(view.detail.as_deref(), Some("server restarted"));
        }
        assert_eq!(
            states,
            [
                ("run".into(), JobState::Lost),
                ("wait".into(), JobState::Lost)
            ]
        );
    }

    #[test]
    fn pending_queue_follows_run_order_and_is_published_on_change() {
        let mut t = Tracker::new(ME);
        let (u, _) = t.apply_snapshot(
            &snap(
                &[active("r", 0.0, None)],
                &[active("b", 1.0, None), active("c", 2.0, None)],
            ),
            0,
        );
        assert!(u.contains(&Update::Queue {
            running: vec!["r".into()],
            pending: vec!["b".into(), "c".into()],
        }));
        let (u, _) = t.apply_snapshot(
            &snap(
                &[active("r", 0.0, None)],
                &[active("b", 1.0, None), active("c", 2.0, None)],
            ),
            10,
        );
        assert!(
            !u.iter().any(|u| matches!(u, Update::Queue { .. })),
            "no change, no event"
        );
    }

    #[test]
    fn step_rate_waits_for_three_intervals_and_ignores_updates_that_arrive_bunched() {
        let mut t = Tracker::new(ME);
        t.describe_job(&active("p", 1.0, Some(ME)), 0);
        msg(
            &mut t,
            r#"{"type":"executing","data":{"node":"1","display_node":"1","prompt_id":"p"}}"#,
            0,
        );
        // 150 ms a step, but steps 1 and 2 reach us 2 ms apart (the server's send loop was busy).
        let mut rates = Vec::new();
        for (step, at) in [(1, 150), (2, 152), (3, 450), (4, 600), (5, 750), (6, 900)] {
            msg(
                &mut t,
                &format!(
                    r#"{{"type":"progress","data":{{"value":{step},"max":20,"prompt_id":"p","node":"1"}}}}"#
                ),
                at,
            );
            let view = t.job(&"p".into()).unwrap();
            rates.push(view.steps_per_s);
            assert_eq!(view.eta_ms.is_some(), view.steps_per_s.is_some());
        }
        assert_eq!(
            rates[..3],
            [None, None, None],
            "no rate from fewer than three intervals"
        );
        // Intervals 2, 298, 150: the median is a real step.
        assert_eq!(rates[3], Some(6.67));
        assert_eq!(rates[5], Some(6.67));
        let view = t.job(&"p".into()).unwrap();
        // The plan weighs the sampler 1 + 4 (its `steps` input) and SaveImage 1: 5 · (1 − 6/20)
        // + 1 = 4.5 units left, at 150 ms each.
        assert_eq!(view.eta_ms, Some(675));
    }

    #[test]
    fn our_job_ends_on_executing_null_after_reconciling_with_history() {
        let mut t = Tracker::new(ME);
        t.describe_job(&active("p", 1.0, Some(ME)), 0);
        msg(
            &mut t,
            r#"{"type":"execution_start","data":{"prompt_id":"p","timestamp":10}}"#,
            10,
        );
        msg(
            &mut t,
            r#"{"type":"executing","data":{"node":"1","display_node":"1","prompt_id":"p"}}"#,
            20,
        );
        msg(
            &mut t,
            r#"{"type":"progress","data":{"value":2,"max":4,"prompt_id":"p","node":"1"}}"#,
            100,
        );
        let view = t.job(&"p".into()).unwrap();
        // Plan: KSampler weight 1+4, SaveImage 1; half the sampler done = 2.5 / 6.
        assert!((view.percent.unwrap() - 41.7).abs() < 0.1, "{view:?}");
        let (u, req) = msg(
            &mut t,
            r#"{"type":"execution_success","data":{"prompt_id":"p","timestamp":300}}"#,
            300,
        );
        assert!(
            job_states(&u).is_empty(),
            "success is published after the end signal"
        );
        assert!(req.is_empty());
        let (u, req) = msg(
            &mut t,
            r#"{"type":"executing","data":{"node":null,"prompt_id":"p"}}"#,
            310,
        );
        assert!(job_states(&u).is_empty());
        assert_eq!(req, [Request::Outcome("p".into())]);
        let u = t.apply_outcome(&"p".into(), Lookup::NotFound, 320);
        assert_eq!(job_states(&u), [("p".into(), JobState::Success)]);
        assert_eq!(t.job(&"p".into()).unwrap().percent, Some(100.0));
    }

    #[test]
    fn execution_blocked_is_a_warning_and_the_job_goes_on() {
        let mut t = Tracker::new(ME);
        msg(
            &mut t,
            r#"{"type":"execution_start","data":{"prompt_id":"p"}}"#,
            0,
        );
        let (u, _) = msg(
            &mut t,
            r#"{"type":"execution_error","data":{"prompt_id":"p","node_id":"5","node_type":"Gate","executed":[],"exception_message":"Execution Blocked: closed","exception_type":"ExecutionBlocked","traceback":[],"current_inputs":[],"current_outputs":[]}}"#,
            5,
        );
        assert_eq!(job_states(&u), [("p".into(), JobState::Running)]);
        assert_eq!(
            t.job(&"p".into()).unwrap().warnings,
            ["Execution Blocked: closed"]
        );
        msg(
            &mut t,
            r#"{"type":"execution_success","data":{"prompt_id":"p"}}"#,
            10,
        );
        msg(
            &mut t,
            r#"{"type":"executing","data":{"node":null,"prompt_id":"p"}}"#,
            11,
        );
        let u = t.apply_outcome(&"p".into(), Lookup::Unavailable, 12);
        assert_eq!(job_states(&u), [("p".into(), JobState::Success)]);
    }

    #[test]
    fn progress_for_a_job_queued_without_client_id_is_followed_but_not_claimed() {
        let mut t = Tracker::new(ME);
        msg(
            &mut t,
            r#"{"type":"progress","data":{"value":1,"max":4,"prompt_id":"anon","node":"3"}}"#,
            0,
        );
        let view = t.job(&"anon".into()).unwrap();
        assert_eq!(view.origin, JobOrigin::Anonymous);
        assert_eq!(view.state, JobState::Running);
    }

    #[test]
    fn type_1_previews_belong_to_the_last_progress() {
        let mut t = Tracker::new(ME);
        msg(
            &mut t,
            r#"{"type":"progress","data":{"value":1,"max":4,"prompt_id":"p","node":"3"}}"#,
            0,
        );
        let frame = BinaryFrame::Preview {
            format: comfy_protocol::ImageFormat::Jpeg,
            metadata: None,
            image: b"\xff\xd8",
        };
        assert_eq!(
            t.apply_binary(&frame),
            [Update::Preview {
                prompt_id: Some("p".into()),
                node: Some("3".into())
            }]
        );
    }

    #[test]
    fn legacy_servers_finish_a_node_when_the_next_starts() {
        let mut t = Tracker::new(ME);
        t.describe_job(&active("p", 1.0, Some(ME)), 0);
        msg(
            &mut t,
            r#"{"type":"execution_start","data":{"prompt_id":"p"}}"#,
            0,
        );
        msg(
            &mut t,
            r#"{"type":"executing","data":{"node":"1","prompt_id":"p"}}"#,
            1,
        );
        let before = t.job(&"p".into()).unwrap().percent.unwrap();
        msg(
            &mut t,
            r#"{"type":"executing","data":{"node":"2","prompt_id":"p"}}"#,
            2,
        );
        let view = t.job(&"p".into()).unwrap();
        assert_eq!(view.nodes_done, Some(1));
        assert!(view.percent.unwrap() > before);
    }

    #[test]
    fn a_snapshot_requested_before_we_heard_of_a_job_does_not_make_it_vanish() {
        let mut t = Tracker::new(ME);
        msg(
            &mut t,
            r#"{"type":"execution_start","data":{"prompt_id":"p"}}"#,
            100,
        );
        let mut s = snap(&[], &[]);
        s.requested_at = 50;
        let (_, req) = t.apply_snapshot(&s, 120);
        assert!(req.is_empty(), "{req:?}");
        s.requested_at = 150;
        let (_, req) = t.apply_snapshot(&s, 160);
        assert_eq!(req, [Request::Outcome("p".into())]);
    }

    #[test]
    fn a_snapshot_sent_while_our_submission_was_in_flight_proves_nothing_even_if_answered_after_it()
    {
        let mut t = Tracker::new(ME);
        t.expect_job(&active("p", 0.0, Some(ME)), 100);
        // Requested at 110, answered by the server before it handled our POST, and read only
        // after the POST's answer and the job's first frame.
        let mut early = snap(&[], &[]);
        early.requested_at = 110;
        t.settle_submission(&"p".into(), Some(&"p".into()), 120);
        msg(
            &mut t,
            r#"{"type":"execution_start","data":{"prompt_id":"p"}}"#,
            125,
        );
        let (_, req) = t.apply_snapshot(&early, 130);
        assert!(req.is_empty(), "{req:?}");
        assert_eq!(t.job(&"p".into()).unwrap().state, JobState::Running);
        // One requested after the acknowledgement must list it.
        let mut later = snap(&[], &[]);
        later.requested_at = 121;
        let (_, req) = t.apply_snapshot(&later, 140);
        assert_eq!(req, [Request::Outcome("p".into())]);
    }

    #[test]
    fn lookups_abandoned_by_a_disconnect_are_asked_again() {
        let mut t = Tracker::new(ME);
        t.apply_snapshot(&snap(&[active("a", 0.0, None)], &[]), 0);
        let (_, req) = t.apply_snapshot(&snap(&[], &[]), 10);
        assert_eq!(req.len(), 1);
        t.disconnected();
        t.reconnected();
        let (_, req) = t.apply_snapshot(&snap(&[], &[]), 20);
        assert_eq!(req, [Request::Outcome("a".into())]);
        let u = t.apply_outcome(&"a".into(), Lookup::NotFound, 30);
        assert_eq!(job_states(&u), [("a".into(), JobState::Lost)]);
    }

    #[test]
    fn a_restored_job_that_finished_meanwhile_gets_its_outcome_looked_up() {
        let mut t = Tracker::new(ME);
        t.restore_job(&active("p", 1.0, Some(ME)), JobState::Running, 0);
        let mut s = snap(&[], &[]);
        // Its history entry is among the recent ones at the first snapshot: still looked up.
        s.recent_finished = vec!["p".into()];
        let (_, req) = t.apply_snapshot(&s, 10);
        assert_eq!(req, [Request::Outcome("p".into())]);
        let u = t.apply_outcome(&"p".into(), finished("p", Outcome::Success), 20);
        assert_eq!(job_states(&u), [("p".into(), JobState::Success)]);
    }

    #[test]
    fn a_restored_job_the_server_never_heard_of_is_lost() {
        let mut t = Tracker::new(ME);
        t.restore_job(&active("p", 1.0, Some(ME)), JobState::Pending, 0);
        let (_, req) = t.apply_snapshot(&snap(&[], &[]), 10);
        assert_eq!(req, [Request::Outcome("p".into())]);
        let u = t.apply_outcome(&"p".into(), Lookup::NotFound, 20);
        assert_eq!(job_states(&u), [("p".into(), JobState::Lost)]);
    }

    #[test]
    fn finished_jobs_listed_before_we_started_watching_are_not_news() {
        let mut t = Tracker::new(ME);
        let mut s = snap(&[], &[]);
        s.recent_finished = vec!["old".into()];
        let (_, req) = t.apply_snapshot(&s, 0);
        assert!(req.is_empty());
        s.recent_finished = vec!["new".into(), "old".into()];
        let (_, req) = t.apply_snapshot(&s, 1);
        assert_eq!(req, [Request::Outcome("new".into())]);
    }

    #[test]
    fn interrupt_of_a_job_without_client_id_asks_for_the_record() {
        let mut t = Tracker::new(ME);
        msg(
            &mut t,
            r#"{"type":"progress","data":{"value":1,"max":4,"prompt_id":"anon","node":"3"}}"#,
            0,
        );
        let (_, req) = msg(
            &mut t,
            r#"{"type":"execution_interrupted","data":{"prompt_id":"anon","node_id":"3","node_type":"K","executed":[]}}"#,
            5,
        );
        assert_eq!(req, [Request::Outcome("anon".into())]);
        let u = t.apply_outcome(&"anon".into(), Lookup::Unavailable, 6);
        assert_eq!(job_states(&u), [("anon".into(), JobState::Interrupted)]);
    }

    fn durations(view: &JobView) -> Vec<(&str, Option<&str>, u64)> {
        view.node_durations
            .iter()
            .map(|d| (d.node.as_str(), d.node_type.as_deref(), d.ms))
            .collect()
    }

    fn final_view(updates: &[Update]) -> JobView {
        updates
            .iter()
            .find_map(|u| match u {
                Update::Job(j) if j.state.is_terminal() => Some((**j).clone()),
                _ => None,
            })
            .expect("a terminal update")
    }

    #[test]
    fn a_live_job_ends_with_how_long_each_node_ran_on_an_old_server() {
        let mut t = Tracker::new(ME);
        t.describe_job(&active("p", 1.0, Some(ME)), 0);
        for (frame, now) in [
            (r#"{"type":"execution_start","data":{"prompt_id":"p"}}"#, 10),
            (
                r#"{"type":"executing","data":{"node":"1","prompt_id":"p"}}"#,
                20,
            ),
            (
                r#"{"type":"progress","data":{"value":2,"max":4,"prompt_id":"p","node":"1"}}"#,
                300,
            ),
            // No progress_state: a node ends when the next one starts.
            (
                r#"{"type":"executing","data":{"node":"2","prompt_id":"p"}}"#,
                520,
            ),
        ] {
            let (u, _) = msg(&mut t, frame, now);
            for view in u.iter().filter_map(|u| match u {
                Update::Job(j) => Some(j),
                _ => None,
            }) {
                assert!(view.node_durations.is_empty(), "only on the final picture");
            }
        }
        // No execution_success either (servers before July 2024): the job's end ends node 2.
        msg(
            &mut t,
            r#"{"type":"executing","data":{"node":null,"prompt_id":"p"}}"#,
            600,
        );
        let u = t.apply_outcome(&"p".into(), Lookup::NotFound, 700);
        assert_eq!(
            durations(&final_view(&u)),
            [("1", Some("KSampler"), 500), ("2", Some("SaveImage"), 80)]
        );
    }

    #[test]
    fn node_durations_follow_progress_state_and_leave_out_cached_and_cut_short_nodes() {
        let mut t = Tracker::new(ME);
        t.describe_job(
            &ActiveJob {
                graph: Some(json!({
                    "1": {"class_type": "Loader", "inputs": {}},
                    "2": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "steps": 4}},
                    "3": {"class_type": "Decode", "inputs": {"samples": ["2", 0]}},
                    "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0]}}
                })),
                outputs_to_execute: Some(vec!["4".into()]),
                ..active("p", 1.0, Some(ME))
            },
            0,
        );
        let state = |nodes: &[(&str, &str)]| {
            let nodes: Vec<String> = nodes
                .iter()
                .map(|(id, st)| {
                    format!(
                        r#""{id}":{{"value":1,"max":1,"state":"{st}","node_id":"{id}","display_node_id":"{id}","prompt_id":"p","parent_node_id":null,"real_node_id":"{id}"}}"#
                    )
                })
                .collect();
            format!(
                r#"{{"type":"progress_state","data":{{"prompt_id":"p","nodes":{{{}}}}}}}"#,
                nodes.join(",")
            )
        };
        for (frame, now) in [
            (
                r#"{"type":"execution_start","data":{"prompt_id":"p"}}"#.to_owned(),
                0,
            ),
            (
                r#"{"type":"execution_cached","data":{"nodes":["1"],"prompt_id":"p"}}"#.to_owned(),
                1,
            ),
            (state(&[("2", "running")]), 100),
            (
                r#"{"type":"executing","data":{"node":"2","display_node":"2","prompt_id":"p"}}"#
                    .to_owned(),
                105,
            ),
            (state(&[("2", "finished")]), 1100),
            (state(&[("2", "finished"), ("3", "running")]), 1101),
            (
                r#"{"type":"executing","data":{"node":"3","display_node":"3","prompt_id":"p"}}"#
                    .to_owned(),
                1102,
            ),
            // A later snapshot still lists node 2 as finished: its end stays where it was.
            (state(&[("2", "finished"), ("3", "finished")]), 1400),
            (
                state(&[("2", "finished"), ("3", "finished"), ("4", "running")]),
                1500,
            ),
        ] {
            msg(&mut t, &frame, now);
        }
        msg(
            &mut t,
            r#"{"type":"execution_interrupted","data":{"prompt_id":"p","node_id":"4","node_type":"SaveImage","executed":["2","3"]}}"#,
            1600,
        );
        msg(
            &mut t,
            r#"{"type":"executing","data":{"node":null,"prompt_id":"p"}}"#,
            1601,
        );
        let u = t.apply_outcome(&"p".into(), Lookup::Unavailable, 1700);
        let end = final_view(&u);
        assert_eq!(end.state, JobState::Interrupted);
        assert_eq!(
            durations(&end),
            [("2", Some("KSampler"), 1000), ("3", Some("Decode"), 299)],
            "cached node 1 did not run; node 4 was cut short"
        );
    }

    #[test]
    fn observed_jobs_have_no_node_durations() {
        let mut t = Tracker::new(ME);
        msg(
            &mut t,
            r#"{"type":"progress","data":{"value":1,"max":4,"prompt_id":"anon","node":"3"}}"#,
            0,
        );
        msg(
            &mut t,
            r#"{"type":"progress","data":{"value":4,"max":4,"prompt_id":"anon","node":"3"}}"#,
            400,
        );
        let u = t.apply_outcome(&"anon".into(), finished("anon", Outcome::Success), 500);
        let end = final_view(&u);
        assert_eq!(end.fidelity, Fidelity::Observed);
        assert!(end.node_durations.is_empty());
    }

    #[test]
    fn outputs_keep_the_node_that_wrote_them_whoever_names_them_first() {
        let mut t = Tracker::new(ME);
        t.describe_job(&active("p", 1.0, Some(ME)), 0);
        msg(
            &mut t,
            r#"{"type":"execution_start","data":{"prompt_id":"p"}}"#,
            0,
        );
        msg(
            &mut t,
            r#"{"type":"executed","data":{"node":"2","display_node":"2","prompt_id":"p","output":{"images":[{"filename":"a.png","subfolder":"","type":"output"}]}}}"#,
            5,
        );
        msg(
            &mut t,
            r#"{"type":"executing","data":{"node":null,"prompt_id":"p"}}"#,
            6,
        );
        // The server's record names a.png again and a file the socket never mentioned.
        let mut outputs = serde_json::Map::new();
        outputs.insert(
            "2".into(),
            json!({"images": [{"filename": "a.png", "subfolder": "", "type": "output"}]}),
        );
        outputs.insert(
            "7".into(),
            json!({"images": [{"filename": "b.png", "subfolder": "", "type": "temp"}]}),
        );
        let u = t.apply_outcome(
            &"p".into(),
            Lookup::Found(Box::new(FinishedJob {
                prompt_id: "p".into(),
                outcome: Outcome::Success,
                outputs,
                client_id: Some(ME.into()),
                started_ms: None,
                ended_ms: None,
            })),
            7,
        );
        let end = final_view(&u);
        let named: Vec<(&str, Option<&str>)> = end
            .outputs_with_nodes()
            .map(|(f, n)| (f.filename.as_str(), n.map(NodeId::as_str)))
            .collect();
        assert_eq!(named, [("a.png", Some("2")), ("b.png", Some("7"))]);
    }
}
