//! The job progress model: one job's plan of weighted nodes, and the percent, ETA and step rate
//! drawn from it (the formulas are in the [`tracker`](super) module docs), and the picture of
//! the job the tracker publishes.

use super::{Millis, Now};
use crate::event::{ErrorDetails, Fidelity, JobOrigin, JobState, JobView, NodeDuration};
use comfy_model::Estimate;
use comfy_protocol::http::OutputFile;
use comfy_protocol::{NodeId, NodeProgress, NodeRunState, PromptId};
use comfy_timing::{CurrentNode, Progress, Shape};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

/// How many recent step intervals the step rate is the median of.
pub(super) const STEP_SAMPLES: usize = 7;
/// How many intervals it takes before a step rate is published.
const STEP_SAMPLES_NEEDED: usize = 3;
/// How many node ids a job keeps beyond its graph's own (expanded nodes, or all of them when no
/// graph is known): each of its node collections takes a node of the graph always, and any
/// other only while it holds fewer than the graph's node count plus this many. The ids are the
/// server's to choose: a server that makes up new ones must not grow a job without bound.
pub(super) const EXTRA_NODES: usize = 256;
/// How many warnings a job keeps (the first ones; every picture of the job carries them).
pub(super) const MAX_WARNINGS: usize = 256;

/// `end - start` in milliseconds, never negative, whatever the two times are.
pub(super) fn span(start: Millis, end: Millis) -> u64 {
    u64::try_from(end.saturating_sub(start)).unwrap_or(0)
}

#[derive(Debug, Clone, Default)]
pub(super) struct NodeState {
    pub(super) value: f64,
    pub(super) max: f64,
    pub(super) state: Option<NodeRunState>,
    pub(super) display: Option<NodeId>,
    /// When the node was first seen running, and when it was seen to end (see
    /// [`NodeDuration`]), in the tracker's time.
    pub(super) started: Option<Millis>,
    pub(super) ended: Option<Millis>,
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

/// When a job ran, by each clock: ours (the tracker's time, which never goes back), and the
/// server's where it said and its clock was believable. A duration is only ever taken between
/// two times of one clock.
#[derive(Debug, Clone, Default)]
pub(super) struct RunTimes {
    pub(super) local: (Option<Millis>, Option<Millis>),
    pub(super) server: (Option<Millis>, Option<Millis>),
    /// `local.0` is a start the journal kept, which may be the server's time of it rather than
    /// ours: it places the running job (held to no later than the moment of the restore), but
    /// measures no run.
    pub(super) restored: bool,
}

impl RunTimes {
    /// How long the job ran: by the server's clock when it gave both ends, else by ours (not
    /// from a restored start, which may be the server's).
    pub(super) fn run_ms(&self) -> Option<u64> {
        let of = |(s, e): (Option<Millis>, Option<Millis>)| Some(span(s?, e?));
        of(self.server).or_else(|| of(self.local).filter(|_| !self.restored))
    }
}

#[derive(Debug, Clone)]
pub(super) struct Job {
    pub(super) prompt_id: PromptId,
    pub(super) origin: JobOrigin,
    pub(super) fidelity: Fidelity,
    pub(super) state: JobState,
    pub(super) number: Option<f64>,
    pub(super) graph: Option<Value>,
    pub(super) outputs_to_execute: Option<Vec<NodeId>>,
    /// Planned node -> weight.
    pub(super) plan: BTreeMap<NodeId, f64>,
    pub(super) cached: HashSet<NodeId>,
    pub(super) nodes: HashMap<NodeId, NodeState>,
    /// Nodes running now, most recent last.
    pub(super) current: Vec<NodeId>,
    pub(super) percent: Option<f64>,
    /// When the job was queued, started and ended, as shown and journalled: by our wall clock,
    /// or the server's (kept within a day of ours). Never used to measure (see `times`).
    pub(super) first_seen: Millis,
    pub(super) started: Option<Millis>,
    pub(super) ended: Option<Millis>,
    /// Milliseconds per step of the last [`STEP_SAMPLES`] intervals, oldest first.
    pub(super) step_ms: VecDeque<f64>,
    pub(super) last_step: Option<(NodeId, f64, Millis)>,
    /// Files the job wrote, each with the node that wrote it when known.
    pub(super) outputs: Vec<(OutputFile, Option<NodeId>)>,
    pub(super) texts: VecDeque<(NodeId, String)>,
    pub(super) error: Option<ErrorDetails>,
    /// Terminal outcome seen on the socket, waiting for `executing null` or a reconcile.
    pub(super) ending: Option<JobState>,
    pub(super) warnings: Vec<String>,
    pub(super) detail: Option<String>,
    /// Missing from a snapshot: being looked up.
    pub(super) vanished: Option<Vanished>,
    /// The server sends `progress_state` (≥0.3.45); older ones only say which node started.
    pub(super) has_progress_state: bool,
    /// When the tracker last heard of this job (the tracker's time).
    pub(super) seen_at: Millis,
    /// Snapshots requested before this moment cannot be expected to list the job: when the
    /// tracker first heard of it, or, for our own submission, when the server acknowledged it
    /// (not the server's creation time). The tracker's time, like [`Snapshot::requested_at`]:
    /// a wall clock set back must not make every later snapshot look older than the job.
    ///
    /// [`Snapshot::requested_at`]: super::Snapshot::requested_at
    pub(super) known_since: Millis,
    /// We are submitting it and the server has not answered yet: absent from snapshots is normal.
    pub(super) awaiting_ack: bool,
    /// What of the graph decides its cost, once the graph is known.
    pub(super) shape: Option<Shape>,
    pub(super) times: RunTimes,
    /// What the job is expected to take, as of a version of the timing model (worked out again
    /// only when the model learns).
    pub(super) expected: Option<((u64, bool), Option<comfy_timing::Expectation>)>,
    /// The current estimate, and the last one published with when it was.
    pub(super) estimate: Option<Estimate>,
    pub(super) published: Option<(Estimate, Millis)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Vanished {
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

    pub(super) fn new(prompt_id: PromptId, origin: JobOrigin, now: Now) -> Self {
        Self {
            prompt_id,
            origin,
            fidelity: Fidelity::of(origin),
            state: JobState::Pending,
            number: None,
            graph: None,
            outputs_to_execute: None,
            plan: BTreeMap::new(),
            cached: HashSet::new(),
            nodes: HashMap::new(),
            current: Vec::new(),
            percent: None,
            first_seen: now.wall,
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
            seen_at: now.mono,
            known_since: now.mono,
            awaiting_ack: false,
            shape: None,
            expected: None,
            times: RunTimes::default(),
            estimate: None,
            published: None,
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
    pub(super) fn replan(&mut self) {
        if self.shape.is_none() {
            self.shape = self.graph.as_ref().and_then(Shape::of);
        }
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

    /// How many node ids the job may hold in each of its node collections.
    fn node_room(&self) -> usize {
        let graph = self
            .graph
            .as_ref()
            .and_then(Value::as_object)
            .map_or(0, serde_json::Map::len);
        graph + EXTRA_NODES
    }

    /// Whether `node` may be added to a collection of `len` ids: a node of the graph always,
    /// any other while there is room (see [`EXTRA_NODES`]).
    fn admits(&self, node: &NodeId, len: usize) -> bool {
        len < self.node_room()
            || self
                .graph
                .as_ref()
                .is_some_and(|g| g.get(node.as_str()).is_some())
    }

    /// Notes nodes the server answered from its cache (a bounded number of unknown ones).
    pub(super) fn add_cached(&mut self, nodes: &[NodeId]) {
        for n in nodes {
            if !self.cached.contains(n) && self.admits(n, self.cached.len()) {
                self.cached.insert(n.clone());
            }
        }
    }

    /// Notes a warning (the first [`MAX_WARNINGS`]).
    pub(super) fn add_warning(&mut self, text: String) {
        if self.warnings.len() < MAX_WARNINGS {
            self.warnings.push(text);
        }
    }

    /// The node's state, created if there is room for it.
    fn node_mut(&mut self, node: &NodeId) -> Option<&mut NodeState> {
        if !self.nodes.contains_key(node) && !self.admits(node, self.nodes.len()) {
            return None;
        }
        Some(self.nodes.entry(node.clone()).or_default())
    }

    pub(super) fn ensure_planned(&mut self, node: &NodeId) {
        if !self.plan.contains_key(node) && self.admits(node, self.plan.len()) {
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
    pub(super) fn recompute_percent(&mut self) {
        if !self.fidelity.is_followed() || self.plan.is_empty() {
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
                ms: span(start, end),
                work: self
                    .shape
                    .as_ref()
                    .and_then(|s| s.nodes.get(id))
                    .map(|c| c.work),
                models: self
                    .shape
                    .as_ref()
                    .and_then(|s| s.nodes.get(id))
                    .and_then(|c| c.models.clone()),
            })
            .collect()
    }

    /// How long the job has run, by our clock (`now` in the tracker's time).
    pub(super) fn running_for(&self, now: Millis) -> u64 {
        self.times.local.0.map_or(0, |s| span(s, now))
    }

    /// What is seen of the run, for the estimate of a followed job: the plan, the nodes done
    /// (finished or cached) and the nodes running, by the id the plan knows them by.
    pub(super) fn progress(&self, now: Millis) -> Progress {
        let settled = self
            .plan
            .keys()
            .filter(|id| self.fraction(id) >= 1.0)
            .cloned()
            .collect();
        let stepping = self.ms_per_step().and_then(|ms| {
            let (node, _, _) = self.last_step.as_ref()?;
            Some((node.clone(), ms))
        });
        let mut current: Vec<CurrentNode> = Vec::new();
        for raw in &self.current {
            let Some(n) = self.nodes.get(raw) else {
                continue;
            };
            let shown = n.display.clone().unwrap_or_else(|| raw.clone());
            if self.fraction(&shown) >= 1.0 || current.iter().any(|c| c.node == shown) {
                continue;
            }
            let steps = stepping
                .as_ref()
                .filter(|(node, _)| node == raw && n.max > 1.0)
                .map(|(_, ms)| (n.max - n.value, *ms));
            current.push(CurrentNode {
                node: shown,
                ran_ms: n.started.map_or(0, |s| span(s, now)),
                steps,
            });
        }
        Progress {
            planned: self.plan.keys().cloned().collect(),
            settled,
            current,
        }
    }

    /// Records an output file once, whether the socket or the server's record names it first.
    pub(super) fn add_output(&mut self, file: OutputFile, node: Option<NodeId>) {
        match self.outputs.iter_mut().find(|(f, _)| *f == file) {
            Some((_, known)) => {
                if known.is_none() {
                    *known = node;
                }
            }
            None => self.outputs.push((file, node)),
        }
    }

    pub(super) fn mark_running(&mut self, now: Now) {
        if self.state == JobState::Pending {
            self.state = JobState::Running;
        }
        if self.started.is_none() {
            self.started = Some(now.wall);
        }
        self.times.local.0.get_or_insert(now.mono);
    }

    pub(super) fn finish_node(&mut self, node: &NodeId, now: Millis) {
        let Some(n) = self.node_mut(node) else {
            return;
        };
        n.mark_ended(now);
        n.state = Some(NodeRunState::Finished);
        if n.max <= 0.0 {
            n.max = 1.0;
        }
        n.value = n.max;
        self.current.retain(|c| c != node);
    }

    /// Legacy servers (no `progress_state`): a node is done when the next one starts.
    pub(super) fn start_node(&mut self, node: &NodeId, display: Option<NodeId>, now: Millis) {
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
        let Some(entry) = self.node_mut(node) else {
            return;
        };
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
    /// Takes a `progress_state` (servers ≥0.3.45): the state of every started node of the job.
    pub(super) fn apply_progress_state(
        &mut self,
        nodes: &BTreeMap<NodeId, NodeProgress>,
        now: Millis,
    ) {
        self.has_progress_state = true;
        // A full snapshot: replace, don't merge.
        let mut running = Vec::new();
        for (id, p) in nodes {
            let Some(entry) = self.node_mut(id) else {
                continue;
            };
            match p.state {
                NodeRunState::Running => entry.mark_started(now),
                NodeRunState::Finished => entry.mark_ended(now),
                NodeRunState::Pending | NodeRunState::Error | NodeRunState::Unknown => {}
            }
            entry.value = p.value;
            entry.max = p.max;
            entry.state = Some(p.state);
            entry.display = p.display_node_id.clone();
            if p.state == NodeRunState::Running {
                running.push(id.clone());
            }
            let shown = p.display_node_id.clone().unwrap_or_else(|| id.clone());
            self.ensure_planned(&shown);
            if &shown != id && p.parent_node_id.is_some() {
                // Expanded nodes count toward their display node, not on their own.
                self.plan.remove(id);
            }
        }
        // Keep the most recently started node last.
        let mut current: Vec<NodeId> = self
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
        self.current = current;
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

/// Records a `progress` step of `node`, and the step rate from consecutive steps of one node.
pub(super) fn apply_step(job: &mut Job, node: &NodeId, value: f64, max: f64, now: Millis) {
    if job.node_mut(node).is_none() {
        return;
    }
    let shown = job
        .nodes
        .get(node)
        .and_then(|n| n.display.clone())
        .unwrap_or_else(|| node.clone());
    // Step rate from consecutive updates of the same node; another node's steps (a hires
    // sampler, an upscaler's tiles) have a rate of their own.
    if job
        .last_step
        .as_ref()
        .is_some_and(|(last, _, _)| last != node)
    {
        job.step_ms.clear();
    }
    if let Some((last_node, last_value, last_t)) = &job.last_step {
        if last_node == node && value > *last_value && now > *last_t {
            let per_step = span(*last_t, now) as f64 / (value - last_value);
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

/// The picture of the job the tracker publishes.
pub(super) fn view(j: &Job) -> JobView {
    let live = j.fidelity.is_followed();
    let node = j.current.last().cloned();
    let ns = node.as_ref().and_then(|n| j.nodes.get(n));
    let display = node.as_ref().map(|n| {
        ns.and_then(|s| s.display.clone())
            .unwrap_or_else(|| n.clone())
    });
    let ms_per_step = j.ms_per_step();
    let eta_ms = match (j.state, ms_per_step) {
        (JobState::Running, Some(ms)) if j.fidelity.is_followed() => {
            Some((j.remaining_work() * ms).round().max(0.0) as u64)
        }
        _ => None,
    };
    // One clock for both ends: how long it ran once it ended, else ours, up to the last news.
    let elapsed_ms = if j.state.is_terminal() {
        j.times.run_ms()
    } else {
        j.times.local.0.map(|s| span(s, j.seen_at))
    };
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
        estimate: if j.state.is_terminal() {
            None
        } else {
            j.estimate.clone()
        },
        fingerprint: j.shape.as_ref().map(|s| s.fingerprint.clone()),
        run_ms: (j.state == JobState::Success)
            .then(|| j.times.run_ms())
            .flatten(),
    }
}
