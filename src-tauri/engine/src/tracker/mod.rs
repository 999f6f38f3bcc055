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
//! Milliseconds per step are the median of the last [`STEP_SAMPLES`](job::STEP_SAMPLES)
//! intervals between consecutive `progress` updates of one node (each divided by the steps it
//! covers), published once there are three; a node that starts stepping starts its own series
//! (a hires sampler or an upscaler's tiles do not run at the previous sampler's rate). Updates arrive bunched when the server's send loop is busy (two steps a
//! few milliseconds apart, then a long gap): a mean of consecutive intervals would flash
//! "500 it/s, ETA 0 s" at the start of a sampler; the median ignores the one short and one long
//! interval a bunch makes. ETA = remaining weighted work (`Σ weight·(1 − fraction)`) × ms per step.
//!
//! ## Time
//! Every input comes with the host's wall clock (`now`, milliseconds since the Unix epoch),
//! which can be set back or forward while the app runs. The tracker keeps two readings of each
//! moment ([`Now`]): the wall time, which is what is shown and journalled, and its own time,
//! which is the wall clock with every step backwards taken out, so it never goes back. Its own
//! time orders events (a snapshot proves nothing about a job it was requested before the
//! tracker heard of; hosts stamp [`Snapshot::requested_at`] with
//! [`Tracker::snapshot_requested`]) and measures durations (run times, node times, step rates,
//! elapsed time). A step forward cannot be told from the machine having slept, so it counts.
//! The server's timestamps are shown and journalled clamped to a day either side of our clock
//! ([`CLOCK_SLACK_MS`]), and measure a run only when both ends were within it: a server clock
//! 200 days ahead, or one counting in microseconds, neither moves a job in time nor teaches a
//! run time. All time arithmetic saturates.
//!
//! ## Layout
//! This file holds the tracker's state, its public methods and the bookkeeping they share
//! (creating, finishing and forgetting jobs; the queue view). `job` is one job's progress model
//! (plan, percent, step rate, ETA) and the picture published of it; `messages` has one handler
//! per kind of socket message; `snapshot` reconciles the picture with what HTTP says (queue
//! snapshots, outcome lookups).

mod estimates;
mod job;
mod messages;
mod snapshot;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod time_tests;

pub use snapshot::{ActiveJob, Lookup, Snapshot};

use crate::event::{ErrorDetails, Fidelity, JobOrigin, JobState, JobView};
use comfy_protocol::{BinaryFrame, ExecutionError, NodeId, PromptId, ServerMessage};
use job::{view, Job};
use serde_json::Value;
use std::collections::{HashMap, HashSet, VecDeque};

/// Milliseconds since the Unix epoch: the tracker's only notion of time.
pub type Millis = i64;

/// How far a server's timestamp may be from our clock (a day) before it is not believed: it is
/// clamped to this distance where it is shown or kept, and measures nothing.
pub const CLOCK_SLACK_MS: Millis = 24 * 60 * 60 * 1000;

/// One moment of input by the tracker's two readings (see the module docs on time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Now {
    /// The host's wall clock, as given: shown and journalled.
    wall: Millis,
    /// The tracker's own time, which never goes back: orders events, measures durations.
    mono: Millis,
}

impl Now {
    /// A server timestamp as shown and kept: within [`CLOCK_SLACK_MS`] of our wall clock.
    fn shown(self, server: Millis) -> Millis {
        server.clamp(
            self.wall.saturating_sub(CLOCK_SLACK_MS),
            self.wall.saturating_add(CLOCK_SLACK_MS),
        )
    }

    /// A server timestamp to measure with: only when it is within [`CLOCK_SLACK_MS`] of our
    /// wall clock (else the server's clock, or its unit, is not believed).
    fn believed(self, server: Millis) -> Option<Millis> {
        (self.shown(server) == server).then_some(server)
    }
}

/// The tracker's own time: the wall clock it is fed, with every step backwards taken out.
#[derive(Debug, Clone, Copy, Default)]
struct Clock {
    last_wall: Option<Millis>,
    mono: Millis,
}

impl Clock {
    /// Reads the wall clock: both readings of this moment.
    fn read(&mut self, wall: Millis) -> Now {
        self.mono = match self.last_wall {
            None => wall,
            Some(last) => self.mono.saturating_add(wall.saturating_sub(last).max(0)),
        };
        self.last_wall = Some(wall);
        Now {
            wall,
            mono: self.mono,
        }
    }

    /// A wall time from before (a journalled start) in the tracker's time.
    fn mono_of(&self, wall: Millis) -> Millis {
        match self.last_wall {
            None => wall,
            Some(last) => wall.saturating_add(self.mono.saturating_sub(last)),
        }
    }
}

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
    /// The server's companion relays other clients' execution messages to us.
    relay: bool,
    /// Our socket is open, so our own jobs' execution messages reach us. Without it (HTTP
    /// only) our jobs are followed by polling, like everyone else's: `observed`.
    live: bool,
    /// What this instance's past jobs took: the source of every estimate.
    timings: comfy_timing::TimingModel,
    clock: Clock,
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
            relay: false,
            live: true,
            timings: comfy_timing::TimingModel::default(),
            clock: Clock::default(),
        }
    }

    /// The host is about to request a queue snapshot, at `now` by its wall clock: the
    /// [`Snapshot::requested_at`] to put in it, in the tracker's own time (which never goes
    /// back, so a clock set back does not make later snapshots look older than the jobs).
    pub fn snapshot_requested(&mut self, now: Millis) -> Millis {
        self.clock.read(now).mono
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

    fn remembers_finished(&self, id: &PromptId) -> bool {
        self.finished_set.contains(id)
    }

    /// The job an execution message is about. Without the companion only the submitter's
    /// socket gets these messages, which proves the job is ours; with the companion relaying,
    /// a job we did not queue is another client's, followed as `relayed`.
    fn followed_mut(&mut self, id: &PromptId, now: Now) -> Option<&mut Job> {
        let relay = self.relay;
        let origin = if relay {
            self.jobs.get(id).map_or(JobOrigin::Other, |j| j.origin)
        } else {
            JobOrigin::SelfApp
        };
        let job = self.job_mut(id, origin, now)?;
        if relay && job.origin != JobOrigin::SelfApp && job.fidelity != Fidelity::Relayed {
            job.fidelity = Fidelity::Relayed;
            job.replan();
        }
        Some(job)
    }

    /// The job a message that may be a broadcast is about (`progress`, `progress_state`, an
    /// error, an interrupt): relayed jobs are followed; otherwise a job first seen this way is
    /// someone else's (queued without a client id, or an old server's broadcast).
    fn broadcast_mut(&mut self, id: &PromptId, now: Now) -> Option<&mut Job> {
        if self.relay {
            return self.followed_mut(id, now);
        }
        let origin = self.origin_hint(id);
        self.job_mut(id, origin, now)
    }

    /// Whether the server's companion relays other clients' jobs to us. Turned off (the
    /// companion is gone after a restart), relayed jobs fall back to being observed.
    pub fn set_relay(&mut self, on: bool) {
        self.relay = on;
        if on {
            return;
        }
        for job in self.jobs.values_mut() {
            if job.fidelity == Fidelity::Relayed {
                job.fidelity = Fidelity::Observed;
                job.percent = None;
                job.current.clear();
            }
        }
    }

    /// Whether our socket is open. Without it our own jobs are only observed (no progress, no
    /// preview); once it is back, the server routes their messages to us again and they are
    /// followed live from the next sight.
    pub fn set_live(&mut self, on: bool) {
        self.live = on;
        if on {
            return;
        }
        for job in self.jobs.values_mut() {
            if job.fidelity == Fidelity::Live && !job.state.is_terminal() {
                job.fidelity = Fidelity::Observed;
                job.percent = None;
                job.current.clear();
            }
        }
    }

    /// The job, created on first sight unless it already finished.
    fn job_mut(&mut self, id: &PromptId, origin: JobOrigin, now: Now) -> Option<&mut Job> {
        if self.remembers_finished(id) {
            return None;
        }
        let live = self.live;
        let job = self
            .jobs
            .entry(id.clone())
            .or_insert_with(|| Job::new(id.clone(), origin, now));
        job.seen_at = job.seen_at.max(now.mono);
        let ours = origin == JobOrigin::SelfApp;
        if ours
            && (job.origin != JobOrigin::SelfApp || (live && job.fidelity == Fidelity::Observed))
        {
            // Only the submitter's socket gets execution_start/executing/executed: proof.
            job.origin = JobOrigin::SelfApp;
            job.fidelity = Fidelity::Live;
            job.replan();
        }
        if !live && job.fidelity == Fidelity::Live {
            job.fidelity = Fidelity::Observed;
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
    fn finish(&mut self, id: &PromptId, state: JobState, now: Now, out: &mut Vec<Update>) {
        let Some(job) = self.jobs.get_mut(id) else {
            return;
        };
        if job.state.is_terminal() {
            return;
        }
        job.state = state;
        job.ending = None;
        job.vanished = None;
        job.ended.get_or_insert(now.wall);
        job.times.local.1.get_or_insert(now.mono);
        job.current.clear();
        if state == JobState::Success && job.fidelity.is_followed() {
            job.percent = Some(100.0);
        }
        out.push(Update::Job(Box::new(view(job))));
        self.learn(id);
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
        let now = self.clock.read(now);
        let mut out = Vec::new();
        let mut req = Vec::new();
        match msg {
            ServerMessage::Status { .. } => self.on_status(&mut req),
            ServerMessage::ExecutionStart {
                prompt_id,
                timestamp,
            } => self.on_execution_start(prompt_id, *timestamp, now, &mut out, &mut req),
            ServerMessage::ExecutionCached {
                prompt_id, nodes, ..
            } => self.on_execution_cached(prompt_id, nodes, now, &mut out),
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
            } => self.on_executed(
                prompt_id.as_ref(),
                node,
                display_node.as_ref(),
                output,
                now,
                &mut out,
            ),
            ServerMessage::Progress {
                prompt_id,
                node,
                value,
                max,
            } => self.on_progress(
                prompt_id.as_ref(),
                node.as_ref(),
                *value,
                *max,
                now,
                &mut out,
            ),
            ServerMessage::ProgressState { prompt_id, nodes } => {
                self.on_progress_state(prompt_id, nodes, now, &mut out)
            }
            ServerMessage::ExecutionSuccess {
                prompt_id,
                timestamp,
            } => self.on_execution_success(prompt_id, *timestamp, now),
            ServerMessage::ExecutionError(e) => self.on_execution_error(e, now, &mut out),
            ServerMessage::ExecutionInterrupted(i) => {
                self.on_execution_interrupted(i, now, &mut req)
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
        self.annotate(&mut out, now.mono);
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
        let now = self.clock.read(now);
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
        self.annotate(&mut out, now.mono);
        out
    }

    /// A job the journal says was unfinished when the app last stopped. The first snapshot
    /// judges it as if across a reconnect: still queued → followed; in history → its real
    /// outcome; nowhere → lost.
    ///
    /// A running job's `started_at` may be the server's time of its start (our own jobs take
    /// `execution_start`'s), not ours: it places the job, held to no later than `now` (the
    /// restore's moment by the host's wall clock), and measures no run (only the server's own
    /// record of both ends does).
    pub fn restore_job(
        &mut self,
        item: &ActiveJob,
        state: JobState,
        queued_at: Millis,
        started_at: Option<Millis>,
        now: Millis,
    ) {
        if self.remembers_finished(&item.prompt_id) || state.is_terminal() {
            return;
        }
        let origin = match &item.client_id {
            Some(Some(c)) if *c == self.client_id => JobOrigin::SelfApp,
            Some(Some(_)) => JobOrigin::Other,
            _ => JobOrigin::Anonymous,
        };
        let queued = Now {
            wall: queued_at,
            mono: self.clock.mono_of(queued_at),
        };
        let mut job = Job::new(item.prompt_id.clone(), origin, queued);
        job.known_since = Millis::MIN;
        job.state = state;
        job.number = item.number;
        job.graph = item.graph.clone();
        if state == JobState::Running && started_at.is_some() {
            // A job has not started later than now.
            let now = self.clock.read(now).wall;
            let started = started_at.map(|s| s.min(now));
            job.started = started;
            job.times.local.0 = started.map(|s| self.clock.mono_of(s));
            job.times.restored = true;
        }
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
                let now = self.clock.read(now);
                if let Some(job) = self.jobs.get_mut(id) {
                    job.awaiting_ack = false;
                    // A snapshot sent while the submission was in flight may have been answered
                    // before the server queued it, whenever its answer arrives.
                    job.known_since = job.known_since.max(now.mono);
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

    /// Jobs whose end was seen on the socket but not yet published (for hosts without HTTP).
    pub fn ending_jobs(&self) -> Vec<PromptId> {
        self.jobs
            .values()
            .filter(|j| j.ending.is_some() && !j.state.is_terminal())
            .map(|j| j.prompt_id.clone())
            .collect()
    }
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
