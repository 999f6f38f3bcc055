//! The tracker fuzz target's harness: drives a [`Processor`] (decoder + tracker, exactly what a
//! live session runs) with a sequence of frames, queue snapshots, outcome lookups and connection
//! changes, and checks what it publishes against the tracker's invariants:
//!
//! - a job's terminal state is published at most once, and nothing of the job after it;
//! - a followed job's percent never falls between its published pictures;
//! - an estimate's percent never reaches 100, and a finished job carries none;
//! - the queue never lists a job whose terminal state was published;
//! - and nothing panics (integer overflow included: fuzz builds keep overflow checks).
//!
//! The input's first byte chooses how the rest is read:
//! - even (`r`): **raw** records separated by [`SEP`], each led by a byte saying what it is
//!   (`C` our client id, first only; `T` text frame, `B` binary frame, `Q` a `/queue` body, `H`
//!   a `/history` body, `J` an `/api/jobs/{id}` body, `N` an id the server has no record of, `U`
//!   every lookup asked for fails, `R`/`D` reconnect and disconnect, `+` time passing); the
//!   seeds are the recorded traces in this form.
//! - odd (`s`): **structured**, an [`arbitrary`] sequence of [`Op`]s over a few job ids (so
//!   jobs collide) and a few node ids, with graphs, numbers and timestamps from small sets that
//!   include the hostile ones (`"NaN"`, `1e300`, negative steps).

use arbitrary::{Arbitrary, Unstructured};
use comfy_engine::processor::Processor;
use comfy_engine::tracker::{ActiveJob, Lookup, Millis, Request, Snapshot};
use comfy_engine::{EventKind, Fidelity, JobState, JobView};
use comfy_protocol::http::{parse_history, parse_job, parse_queue, FinishedJob, Outcome};
use comfy_protocol::{ExecutionError, ExecutionInterrupted, PromptId};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};

/// Separates raw records.
pub const SEP: &[u8] = b"\xfe\xff";
/// Our client id; `Client::Me` queues with it.
pub const ME: &str = "monitor-01970cc1";
/// 2026-01-01T00:00:00Z, where the clock starts.
const T0: Millis = 1_767_225_600_000;
/// The tracker forgets finished ids past 2048; checks about them stop before that.
const FINISHED_MEMORY: usize = 2000;

/// What the tracker published so far, and the checks on each new event.
#[derive(Default, Debug)]
pub struct Checker {
    terminal: HashMap<PromptId, JobState>,
    percent: HashMap<PromptId, (f64, Fidelity)>,
    /// Pictures checked, for the curious.
    pub pictures: usize,
    pub estimates: usize,
    pub followed: usize,
}

impl Checker {
    pub fn events(&mut self, events: &[EventKind]) {
        for e in events {
            match e {
                EventKind::Job(v) => self.job(v),
                EventKind::Queue { running, pending } if self.terminal.len() < FINISHED_MEMORY => {
                    for id in running.iter().chain(pending) {
                        if let Some(state) = self.terminal.get(id) {
                            panic!("the queue lists {id}, which finished as {state:?}");
                        }
                    }
                }
                _ => {}
            }
        }
    }

    fn job(&mut self, v: &JobView) {
        self.pictures += 1;
        let id = &v.prompt_id;
        if self.terminal.len() < FINISHED_MEMORY {
            if let Some(before) = self.terminal.get(id) {
                panic!("{id} published again after its terminal state {before:?}: {v:?}");
            }
        }
        if let Some(e) = &v.estimate {
            self.estimates += 1;
            assert!(
                !v.state.is_terminal(),
                "an estimate on a finished job: {v:?}"
            );
            if let Some(p) = e.percent {
                assert!((0.0..100.0).contains(&p), "estimate at {p} %: {v:?}");
            }
        }
        if let Some(p) = v.percent {
            assert!((0.0..=100.0).contains(&p), "percent {p}: {v:?}");
        }
        if v.fidelity.is_followed() {
            if let Some((before, _)) = self.percent.get(id) {
                assert!(
                    v.percent.is_some_and(|p| p >= *before),
                    "{id}'s percent fell from {before} to {:?}: {v:?}",
                    v.percent
                );
            }
            if let Some(p) = v.percent {
                self.followed += 1;
                self.percent.insert(id.clone(), (p, v.fidelity));
            }
        } else {
            // Observed: no measured percent at all, so a later followed run starts afresh.
            assert!(v.percent.is_none(), "an observed job with a percent: {v:?}");
            self.percent.remove(id);
        }
        if v.state.is_terminal() {
            self.terminal.insert(id.clone(), v.state);
            self.percent.remove(id);
        }
    }

    /// A submission the server refused, or answered under another id: that id was never a job.
    pub fn forget(&mut self, id: &PromptId) {
        self.percent.remove(id);
    }

    /// The companion went away: relayed jobs fall back to observed without a picture, and
    /// their percent with it.
    pub fn relay_off(&mut self) {
        self.percent.retain(|_, (_, f)| *f != Fidelity::Relayed);
    }

    /// What the tracker holds at the end agrees with what it published.
    pub fn finish(&self, p: &Processor) {
        if self.terminal.len() >= FINISHED_MEMORY {
            return;
        }
        let t = p.tracker();
        let (running, pending) = t.queue();
        for id in running.iter().chain(&pending) {
            assert!(!self.terminal.contains_key(id), "queue holds finished {id}");
        }
        for v in t.active_jobs() {
            assert!(
                !self.terminal.contains_key(&v.prompt_id),
                "{} active after finishing",
                v.prompt_id
            );
        }
        for (id, state) in &self.terminal {
            if let Some(v) = t.job(id) {
                assert_eq!(v.state, *state, "{id} changed after it finished");
            }
        }
    }
}

/// One harness run: a processor, the clock, the checker.
pub struct Harness {
    pub p: Processor,
    pub now: Millis,
    pub check: Checker,
    /// Outcome lookups the tracker asked for (answered by `Op::Outcome` or raw `H`/`J`/`N`).
    pub asked: HashSet<PromptId>,
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

impl Harness {
    pub fn new() -> Self {
        Self::with_client(ME)
    }

    /// A harness whose tracker is the client `client_id` (a trace's own socket).
    pub fn with_client(client_id: &str) -> Self {
        Self {
            p: Processor::new(client_id),
            now: T0,
            check: Checker::default(),
            asked: HashSet::new(),
        }
    }

    fn took(&mut self, (events, requests): (Vec<EventKind>, Vec<Request>)) {
        self.check.events(&events);
        for r in requests {
            if let Request::Outcome(id) = r {
                self.asked.insert(id);
            }
        }
    }

    pub fn text(&mut self, frame: &str) {
        let r = self.p.text(frame, self.now);
        self.took(r);
    }

    pub fn binary(&mut self, frame: &[u8]) {
        let e = self.p.binary(&bytes::Bytes::copy_from_slice(frame));
        self.check.events(&e);
    }

    pub fn snapshot(&mut self, snap: &Snapshot) {
        let r = self.p.snapshot(snap, self.now);
        self.took(r);
    }

    pub fn outcome(&mut self, id: &PromptId, lookup: Lookup) {
        self.asked.remove(id);
        let e = self.p.outcome(id, lookup, self.now);
        self.check.events(&e);
    }

    pub fn tick(&mut self) {
        let e = self.p.tick(self.now);
        self.check.events(&e);
    }

    pub fn end(&self) {
        self.check.finish(&self.p);
    }
}

/// Runs one fuzz input.
pub fn run(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut h = Harness::new();
    if mode & 1 == 0 {
        raw(&mut h, rest);
    } else {
        let u = Unstructured::new(rest);
        let Ok(input) = Input::arbitrary_take_rest(u) else {
            return;
        };
        structured(&mut h, &input);
    }
    h.end();
    if std::env::var_os("COMFY_FUZZ_STATS").is_some() {
        // What an input reached, to see that the harness gets somewhere (docs/fuzzing.md).
        let c = &h.check;
        eprintln!(
            "harness: mode={} pictures={} estimates={} ended={} followed_with_percent={}",
            if mode & 1 == 0 { "raw" } else { "structured" },
            c.pictures,
            c.estimates,
            c.terminal.len(),
            c.followed,
        );
    }
}

/// Splits `data` on [`SEP`].
pub fn records(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(data);
    std::iter::from_fn(move || {
        let r = rest?;
        match r.windows(SEP.len()).position(|w| w == SEP) {
            Some(i) => {
                rest = Some(&r[i + SEP.len()..]);
                Some(&r[..i])
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

fn raw(h: &mut Harness, data: &[u8]) {
    for (i, rec) in records(data).enumerate() {
        if let (0, Some(client)) = (i, rec.strip_prefix(b"C")) {
            *h = Harness::with_client(&String::from_utf8_lossy(client));
            continue;
        }
        h.now += 50;
        let Some((&kind, body)) = rec.split_first() else {
            continue;
        };
        match kind {
            b'T' => match std::str::from_utf8(body) {
                Ok(s) => h.text(s),
                Err(_) => h.binary(body),
            },
            b'B' => h.binary(body),
            b'Q' => {
                if let Ok(q) = parse_queue(body) {
                    let snap = snapshot_of(q, h.now - 20);
                    h.snapshot(&snap);
                }
            }
            b'H' => {
                if let Ok(found) = parse_history(body) {
                    for f in found {
                        let id = f.prompt_id.clone();
                        h.outcome(&id, Lookup::Found(Box::new(f)));
                    }
                }
            }
            b'J' => {
                if let Ok(job) = parse_job(body) {
                    match job.finished() {
                        Some(f) => h.outcome(&job.id, Lookup::Found(Box::new(f))),
                        None => h.outcome(&job.id, Lookup::Unavailable),
                    }
                }
            }
            b'N' => {
                if let Ok(id) = std::str::from_utf8(body) {
                    h.outcome(&PromptId::from(id), Lookup::NotFound);
                }
            }
            b'U' => {
                // Every lookup asked for so far fails (the server went away).
                let asked: Vec<PromptId> = h.asked.iter().cloned().collect();
                for id in asked {
                    h.outcome(&id, Lookup::Unavailable);
                }
            }
            b'R' => {
                h.p.disconnected();
                h.p.connected(true);
            }
            b'D' => h.p.disconnected(),
            b'+' => {
                let ms = body
                    .iter()
                    .fold(0i64, |a, &b| (a << 8 | i64::from(b)) & 0xff_ffff);
                h.now += ms;
                h.tick();
            }
            _ => match std::str::from_utf8(rec) {
                Ok(s) => h.text(s),
                Err(_) => h.binary(rec),
            },
        }
    }
}

/// The engine's reading of `/queue` (as `api.rs` builds it), with the request's time.
pub fn snapshot_of(q: comfy_protocol::http::Queue, requested_at: Millis) -> Snapshot {
    Snapshot {
        running: q.running.into_iter().map(ActiveJob::from).collect(),
        pending: q.pending.into_iter().map(ActiveJob::from).collect(),
        recent_finished: Vec::new(),
        requested_at,
    }
}

// ---------------------------------------------------------------------------------------------
// Structured inputs.

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Id {
    A,
    B,
    C,
    D,
}

impl Id {
    fn s(self) -> &'static str {
        match self {
            Id::A => "a",
            Id::B => "b",
            Id::C => "c",
            Id::D => "d",
        }
    }
    fn id(self) -> PromptId {
        PromptId::from(self.s())
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Node {
    N1,
    N2,
    N3,
    N4,
    /// In no graph: an expanded node, or a server that says more than the graph.
    N9,
}

impl Node {
    fn s(self) -> &'static str {
        match self {
            Node::N1 => "1",
            Node::N2 => "2",
            Node::N3 => "3",
            Node::N4 => "4",
            Node::N9 => "9",
        }
    }
}

/// A number as a loose server might send it.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Num {
    Int(u8),
    Neg(u8),
    Eighths(u8),
    Zero,
    Huge,
    NanString,
    InfString,
    NumString(u8),
}

impl Num {
    fn json(self) -> Value {
        match self {
            Num::Int(n) => json!(n),
            Num::Neg(n) => json!(-i64::from(n)),
            Num::Eighths(n) => json!(f64::from(n) / 8.0),
            Num::Zero => json!(0),
            Num::Huge => json!(1e300),
            Num::NanString => json!("NaN"),
            Num::InfString => json!("inf"),
            Num::NumString(n) => json!(n.to_string()),
        }
    }
}

/// A server timestamp (epoch ms), sane or not.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Ts {
    Absent,
    /// Near our clock, in tenths of a second either way.
    Near(i16),
    /// Seconds, not milliseconds (an odd server).
    Seconds,
    /// A clock a year ahead.
    YearAhead,
    Zero,
    Huge,
    NegHuge,
    NanString,
}

impl Ts {
    fn json(self, now: Millis) -> Option<Value> {
        Some(match self {
            Ts::Absent => return None,
            Ts::Near(d) => json!(now + i64::from(d) * 100),
            Ts::Seconds => json!(now / 1000),
            Ts::YearAhead => json!(now + 365 * 86_400_000),
            Ts::Zero => json!(0),
            Ts::Huge => json!(1e300),
            Ts::NegHuge => json!(-1e300),
            Ts::NanString => json!("NaN"),
        })
    }
    fn millis(self, now: Millis) -> Option<Millis> {
        // What the protocol's lenient reading makes of the same value.
        self.json(now).map(|v| match v {
            Value::Number(n) => n.as_f64().map_or(0, |f| f as i64),
            _ => 0,
        })
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Client {
    Me,
    Other,
    /// Queued without a client id.
    Nobody,
    /// The snapshot does not say.
    Unsaid,
}

impl Client {
    fn snapshot(self) -> Option<Option<String>> {
        match self {
            Client::Me => Some(Some(ME.into())),
            Client::Other => Some(Some("browser".into())),
            Client::Nobody => Some(None),
            Client::Unsaid => None,
        }
    }
    fn record(self) -> Option<String> {
        self.snapshot().flatten()
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Graph {
    None,
    /// KSampler (4 steps) → SaveImage.
    Sampler,
    /// The traces' workflow: sampler (12 steps) → blur → save, and a preview off the sampler.
    Chain,
    /// Two nodes feeding each other.
    Cycle,
    /// Hostile: not an object, bad links, steps that are no count.
    Odd,
}

impl Graph {
    pub fn json(self) -> Option<Value> {
        Some(match self {
            Graph::None => return None,
            Graph::Sampler => json!({
                "1": {"class_type": "KSampler", "inputs": {"steps": 4, "seed": 1}},
                "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}}
            }),
            Graph::Chain => json!({
                "1": {"class_type": "MonitorTestSampler", "inputs": {"steps": 12, "seed": 1}},
                "2": {"class_type": "ImageBlur", "inputs": {"image": ["1", 0], "blur_radius": 1}},
                "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0]}},
                "4": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}
            }),
            Graph::Cycle => json!({
                "1": {"class_type": "A", "inputs": {"x": ["2", 0]}},
                "2": {"class_type": "B", "inputs": {"x": ["1", 0], "steps": 1e300}}
            }),
            Graph::Odd => json!({
                "1": {"class_type": "KSampler", "inputs": {"steps": -5, "y": [1, 0]}},
                "2": {"inputs": {"images": ["1", "0"], "z": ["9", 0]}},
                "3": [1, 2, 3]
            }),
        })
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum RunState {
    Pending,
    Running,
    Finished,
    Error,
    Odd,
}

impl RunState {
    fn s(self) -> &'static str {
        match self {
            RunState::Pending => "pending",
            RunState::Running => "running",
            RunState::Finished => "finished",
            RunState::Error => "error",
            RunState::Odd => "paused",
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
pub struct NodeState {
    node: Node,
    value: Num,
    max: Num,
    state: RunState,
    display: Option<Node>,
    parent: Option<Node>,
}

/// A socket message, built as the JSON a server would send and fed through `decode_text`.
#[derive(Arbitrary, Debug, Clone)]
pub enum Msg {
    Status(u8),
    Start(Id, Ts),
    Cached(Id, Vec<Node>, Ts),
    Executing(Option<Id>, Option<Node>, Option<Node>),
    Executed(Option<Id>, Node, Option<Node>, bool),
    Progress(Option<Id>, Option<Node>, Num, Num),
    ProgressState(Id, Vec<NodeState>),
    Success(Id, Ts),
    Error(Id, Option<Node>, bool, Ts),
    Interrupted(Id, Option<Node>, Ts),
    FeatureFlags(bool),
    ProgressText(Option<Id>, Node),
    Other(u8),
}

fn opt<T>(v: Option<T>, f: impl FnOnce(T) -> &'static str) -> Value {
    v.map_or(Value::Null, |x| json!(f(x)))
}

impl Msg {
    pub fn json(&self, now: Millis) -> Value {
        let ts = |t: &Ts| t.json(now).unwrap_or(Value::Null);
        let (kind, data) = match self {
            Msg::Status(n) => (
                "status",
                json!({"status": {"exec_info": {"queue_remaining": n}}}),
            ),
            Msg::Start(id, t) => (
                "execution_start",
                json!({"prompt_id": id.s(), "timestamp": ts(t)}),
            ),
            Msg::Cached(id, nodes, t) => (
                "execution_cached",
                json!({"prompt_id": id.s(), "nodes": nodes.iter().map(|n| n.s()).collect::<Vec<_>>(), "timestamp": ts(t)}),
            ),
            Msg::Executing(id, node, display) => (
                "executing",
                json!({"prompt_id": opt(*id, Id::s), "node": opt(*node, Node::s), "display_node": opt(*display, Node::s)}),
            ),
            Msg::Executed(id, node, display, image) => (
                "executed",
                json!({
                    "prompt_id": opt(*id, Id::s), "node": node.s(), "display_node": opt(*display, Node::s),
                    "output": if *image {
                        json!({"images": [{"filename": format!("out_{}.png", node.s()), "subfolder": "", "type": "output"}]})
                    } else {
                        json!({"text": ["hello"]})
                    }
                }),
            ),
            Msg::Progress(id, node, value, max) => (
                "progress",
                json!({"prompt_id": opt(*id, Id::s), "node": opt(*node, Node::s), "value": value.json(), "max": max.json()}),
            ),
            Msg::ProgressState(id, nodes) => {
                let mut map = serde_json::Map::new();
                for n in nodes.iter().take(6) {
                    map.insert(
                        n.node.s().into(),
                        json!({
                            "value": n.value.json(), "max": n.max.json(), "state": n.state.s(),
                            "node_id": n.node.s(), "prompt_id": id.s(),
                            "display_node_id": opt(n.display, Node::s),
                            "parent_node_id": opt(n.parent, Node::s), "real_node_id": n.node.s()
                        }),
                    );
                }
                ("progress_state", json!({"prompt_id": id.s(), "nodes": map}))
            }
            Msg::Success(id, t) => (
                "execution_success",
                json!({"prompt_id": id.s(), "timestamp": ts(t)}),
            ),
            Msg::Error(id, node, blocked, t) => (
                "execution_error",
                json!({
                    "prompt_id": id.s(), "node_id": opt(*node, Node::s), "node_type": "KSampler",
                    "executed": [], "exception_message": "boom\n",
                    "exception_type": if *blocked { "ExecutionBlocked" } else { "RuntimeError" },
                    "traceback": ["line 1"], "current_inputs": {}, "current_outputs": {}, "timestamp": ts(t)
                }),
            ),
            Msg::Interrupted(id, node, t) => (
                "execution_interrupted",
                json!({"prompt_id": id.s(), "node_id": opt(*node, Node::s), "node_type": "KSampler", "executed": [], "timestamp": ts(t)}),
            ),
            Msg::FeatureFlags(meta) => (
                "feature_flags",
                json!({"supports_preview_metadata": true, "supports_progress_text_metadata": meta}),
            ),
            Msg::ProgressText(id, node) => (
                "progress_text",
                json!({"prompt_id": opt(*id, Id::s), "nodeId": node.s(), "text": "step"}),
            ),
            Msg::Other(n) => ("crystools.monitor", json!({"cpu": n})),
        };
        json!({"type": kind, "data": data})
    }
}

/// A binary frame as a server would send it.
#[derive(Arbitrary, Debug, Clone)]
pub enum Bin {
    /// Type 1: no ids, follows the last `progress`.
    Preview(bool),
    /// Type 4: ids in a JSON header.
    PreviewWithIds(Option<Id>, Option<Node>, Option<Node>),
    /// Type 3, in the layout the `progress_text_metadata` flag chooses.
    Text(bool, Option<Id>, Node),
    Unknown(u8, Vec<u8>),
}

const TINY_PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\0\x40\0\0\0\x40\x08\x02\0\0\0";

impl Bin {
    pub fn bytes(&self) -> Vec<u8> {
        let mut f = Vec::new();
        match self {
            Bin::Preview(png) => {
                f.extend(1u32.to_be_bytes());
                f.extend((if *png { 2u32 } else { 1 }).to_be_bytes());
                f.extend(if *png {
                    TINY_PNG
                } else {
                    b"\xff\xd8\xff\xc0\0\x11\x08\0\x10\0\x20"
                });
            }
            Bin::PreviewWithIds(id, node, display) => {
                let meta = json!({
                    "node_id": opt(*node, Node::s), "prompt_id": opt(*id, Id::s),
                    "display_node_id": opt(*display, Node::s), "image_type": "image/png"
                })
                .to_string();
                f.extend(4u32.to_be_bytes());
                f.extend((meta.len() as u32).to_be_bytes());
                f.extend(meta.as_bytes());
                f.extend(TINY_PNG);
            }
            Bin::Text(with_id, id, node) => {
                f.extend(3u32.to_be_bytes());
                if *with_id {
                    let p = id.map_or("", Id::s);
                    f.extend((p.len() as u32).to_be_bytes());
                    f.extend(p.as_bytes());
                }
                f.extend((node.s().len() as u32).to_be_bytes());
                f.extend(node.s().as_bytes());
                f.extend(b"tokens");
            }
            Bin::Unknown(t, payload) => {
                f.extend(u32::from(*t).wrapping_add(5).to_be_bytes());
                f.extend(payload.iter().take(16));
            }
        }
        f
    }
}

#[derive(Arbitrary, Debug, Clone)]
pub struct Item {
    id: Id,
    number: Option<u8>,
    client: Client,
    graph: Graph,
    outputs: Option<Vec<Node>>,
    create_time: Ts,
}

impl Item {
    fn active(&self, now: Millis) -> ActiveJob {
        ActiveJob {
            prompt_id: self.id.id(),
            number: self.number.map(f64::from),
            client_id: self.client.snapshot(),
            graph: self.graph.json(),
            outputs_to_execute: self
                .outputs
                .as_ref()
                .map(|o| o.iter().map(|n| n.s().into()).collect()),
            create_time: self.create_time.millis(now),
        }
    }
}

/// When a snapshot's request went out.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Asked {
    Now,
    /// Tenths of a second ago.
    Before(u8),
    /// After now (another clock).
    Later(u8),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Ended {
    Success,
    Error(bool),
    Interrupted,
    Failed,
}

#[derive(Arbitrary, Debug, Clone)]
pub enum Found {
    Found {
        ended: Ended,
        client: Client,
        started: Ts,
        finished: Ts,
        files: bool,
    },
    NotFound,
    Unavailable,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Restored {
    Pending,
    Running(Ts),
    Success,
}

#[derive(Arbitrary, Debug, Clone)]
pub enum Op {
    Msg(Msg),
    Bin(Bin),
    Snapshot {
        running: Vec<Item>,
        pending: Vec<Item>,
        recent_finished: Vec<Id>,
        asked: Asked,
    },
    Outcome(Id, Found),
    /// Every lookup the tracker asked for, answered in turn the same way.
    AnswerAll(Found),
    Expect(Id, Graph),
    Settle(Id, Option<Id>),
    Connected(bool),
    Disconnected,
    Relay(bool),
    Tick,
    /// Tenths of a second pass.
    Wait(u16),
    /// The wall clock jumps back, in tenths of a second.
    Back(u8),
}

#[derive(Arbitrary, Debug, Clone)]
pub struct Input {
    /// Teach the timing model two runs first, so later jobs of those graphs get estimates.
    learned: bool,
    /// Jobs the journal restores before the first snapshot.
    restored: Vec<(Id, Restored, Client, Graph)>,
    ops: Vec<Op>,
}

fn lookup(found: &Found, id: &PromptId, now: Millis) -> Lookup {
    match found {
        Found::NotFound => Lookup::NotFound,
        Found::Unavailable => Lookup::Unavailable,
        Found::Found {
            ended,
            client,
            started,
            finished,
            files,
        } => {
            let mut outputs = serde_json::Map::new();
            if *files {
                outputs.insert(
                    "3".into(),
                    json!({"images": [{"filename": "x.png", "subfolder": "s", "type": "output"}]}),
                );
            }
            let outcome = match ended {
                Ended::Success => Outcome::Success,
                Ended::Error(blocked) => Outcome::Error(Box::new(ExecutionError {
                    prompt_id: id.clone(),
                    node_id: Some("1".into()),
                    node_type: Some("KSampler".into()),
                    executed: Vec::new(),
                    exception_message: "boom".into(),
                    exception_type: if *blocked {
                        "ExecutionBlocked".into()
                    } else {
                        "RuntimeError".into()
                    },
                    traceback: Vec::new(),
                    current_inputs: Value::Null,
                    current_outputs: Value::Null,
                    timestamp: finished.millis(now),
                })),
                Ended::Interrupted => Outcome::Interrupted(ExecutionInterrupted {
                    prompt_id: id.clone(),
                    node_id: None,
                    node_type: None,
                    executed: Vec::new(),
                    timestamp: finished.millis(now),
                }),
                Ended::Failed => Outcome::Failed,
            };
            Lookup::Found(Box::new(FinishedJob {
                prompt_id: id.clone(),
                outcome,
                outputs,
                client_id: client.record(),
                started_ms: started.millis(now),
                ended_ms: finished.millis(now),
            }))
        }
    }
}

/// Runs two jobs of ours to success (one of each learnable graph), so the timing model knows
/// them. Their ids are outside the fuzzed alphabet.
pub fn teach(h: &mut Harness) {
    for (id, graph, nodes) in [
        ("w0", Graph::Sampler, &["1", "2"][..]),
        ("w1", Graph::Chain, &["1", "2", "3", "4"][..]),
    ] {
        let item = ActiveJob {
            prompt_id: id.into(),
            number: None,
            client_id: Some(Some(ME.into())),
            graph: graph.json(),
            outputs_to_execute: None,
            create_time: None,
        };
        let e = h.p.expect(&item, h.now);
        h.check.events(&e);
        let e = h.p.settle(&id.into(), Some(&id.into()), h.now);
        h.check.events(&e);
        h.text(&json!({"type": "execution_start", "data": {"prompt_id": id}}).to_string());
        for n in nodes {
            h.text(&json!({"type": "executing", "data": {"prompt_id": id, "node": n}}).to_string());
            for step in 1..=4 {
                h.now += 250;
                h.text(
                    &json!({"type": "progress", "data": {"prompt_id": id, "node": n, "value": step, "max": 4}})
                        .to_string(),
                );
            }
        }
        h.text(&json!({"type": "execution_success", "data": {"prompt_id": id}}).to_string());
        h.text(&json!({"type": "executing", "data": {"prompt_id": id, "node": null}}).to_string());
        h.outcome(&id.into(), Lookup::Unavailable);
        h.now += 1_000;
    }
}

pub fn structured(h: &mut Harness, input: &Input) {
    if input.learned {
        teach(h);
    }
    for (id, state, client, graph) in input.restored.iter().take(4) {
        let item = ActiveJob {
            prompt_id: id.id(),
            number: None,
            client_id: client.snapshot(),
            graph: graph.json(),
            outputs_to_execute: None,
            create_time: None,
        };
        let (state, started) = match state {
            Restored::Pending => (JobState::Pending, None),
            Restored::Running(t) => (JobState::Running, t.millis(h.now)),
            Restored::Success => (JobState::Success, None),
        };
        h.p.tracker_mut()
            .restore_job(&item, state, h.now - 60_000, started, h.now);
    }
    for op in &input.ops {
        h.now += 10;
        match op {
            Op::Msg(m) => {
                let frame = m.json(h.now).to_string();
                h.text(&frame);
            }
            Op::Bin(b) => h.binary(&b.bytes()),
            Op::Snapshot {
                running,
                pending,
                recent_finished,
                asked,
            } => {
                let now = h.now;
                let requested_at = match asked {
                    Asked::Now => now,
                    Asked::Before(d) => now - i64::from(*d) * 100,
                    Asked::Later(d) => now + i64::from(*d) * 100,
                };
                let snap = Snapshot {
                    running: running.iter().take(3).map(|i| i.active(now)).collect(),
                    pending: pending.iter().take(4).map(|i| i.active(now)).collect(),
                    recent_finished: recent_finished.iter().take(4).map(|i| i.id()).collect(),
                    requested_at,
                };
                h.snapshot(&snap);
            }
            Op::Outcome(id, found) => {
                let id = id.id();
                let l = lookup(found, &id, h.now);
                h.outcome(&id, l);
            }
            Op::AnswerAll(found) => {
                let mut asked: Vec<PromptId> = h.asked.iter().cloned().collect();
                asked.sort();
                for id in asked {
                    let l = lookup(found, &id, h.now);
                    h.outcome(&id, l);
                }
            }
            Op::Expect(id, graph) => {
                let item = ActiveJob {
                    prompt_id: id.id(),
                    number: None,
                    client_id: Some(Some(ME.into())),
                    graph: graph.json(),
                    outputs_to_execute: None,
                    create_time: None,
                };
                let e = h.p.expect(&item, h.now);
                h.check.events(&e);
            }
            Op::Settle(expected, actual) => {
                let e =
                    h.p.settle(&expected.id(), actual.map(Id::id).as_ref(), h.now);
                if *actual != Some(*expected) {
                    h.check.forget(&expected.id());
                }
                h.check.events(&e);
            }
            Op::Connected(reconnect) => h.p.connected(*reconnect),
            Op::Disconnected => h.p.disconnected(),
            Op::Relay(on) => {
                h.p.tracker_mut().set_relay(*on);
                if !on {
                    h.check.relay_off();
                }
            }
            Op::Tick => h.tick(),
            Op::Wait(d) => {
                h.now += i64::from(*d) * 100;
                h.tick();
            }
            Op::Back(d) => h.now -= i64::from(*d) * 100,
        }
    }
}
