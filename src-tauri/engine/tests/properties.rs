//! Properties, over random inputs (proptest):
//!
//! - the tracker, fed random sequences of messages, queue snapshots, outcome lookups and
//!   connection changes over a few job ids, publishes each job's terminal state once and nothing
//!   of it afterwards, never lets a followed job's percent fall, never lists a finished job in
//!   the queue, and never gives an estimate of 100 %;
//! - a download's local path, whatever file name and subfolder the server gives, is inside the
//!   chosen folder or refused.
//!
//! Timestamps here stay plausible; hostile ones (1e300, "NaN") are the fuzz target's
//! (`fuzz/fuzz_targets/tracker.rs`, docs/fuzzing.md).

use comfy_engine::outputs::local_path;
use comfy_engine::tracker::{ActiveJob, Lookup, Millis, Snapshot, Tracker, Update};
use comfy_engine::{Fidelity, JobState, JobView};
use comfy_model::{NodeId, OutputFile, PromptId};
use comfy_protocol::http::{FinishedJob, Outcome};
use comfy_protocol::{ExecutionError, ExecutionInterrupted, NodeProgress, NodeRunState};
use comfy_protocol::{ServerMessage, EXECUTION_BLOCKED};
use proptest::prelude::*;
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path};

const ME: &str = "me";
const IDS: [&str; 3] = ["a", "b", "c"];
const NODES: [&str; 4] = ["1", "2", "3", "9"];
const T0: Millis = 1_767_225_600_000;

fn pid(i: usize) -> PromptId {
    PromptId::from(IDS[i])
}

fn node(i: usize) -> NodeId {
    NodeId::from(NODES[i])
}

fn graph() -> serde_json::Value {
    json!({
        "1": {"class_type": "KSampler", "inputs": {"steps": 4}},
        "2": {"class_type": "VAEDecode", "inputs": {"samples": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0]}}
    })
}

#[derive(Debug, Clone)]
enum Op {
    Msg(ServerMessage),
    Snapshot {
        running: Vec<(usize, u8)>,
        pending: Vec<(usize, u8)>,
        finished: Vec<usize>,
        stale: bool,
    },
    Outcome(usize, u8),
    Expect(usize),
    Settle(usize, Option<usize>),
    Reconnect,
    Disconnect,
    Relay(bool),
    Tick,
    Wait(u32),
}

fn id() -> impl Strategy<Value = usize> {
    0..IDS.len()
}

fn nd() -> impl Strategy<Value = usize> {
    0..NODES.len()
}

fn ts() -> impl Strategy<Value = Option<Millis>> {
    proptest::option::of((-50_000i64..50_000).prop_map(|d| T0 + d))
}

fn progress_state() -> impl Strategy<Value = BTreeMap<NodeId, NodeProgress>> {
    proptest::collection::btree_map(
        nd().prop_map(node),
        (0u8..6, 0u8..6, 0u8..4, proptest::option::of(nd())).prop_map(|(v, m, s, d)| {
            NodeProgress {
                value: f64::from(v),
                max: f64::from(m),
                state: [
                    NodeRunState::Pending,
                    NodeRunState::Running,
                    NodeRunState::Finished,
                    NodeRunState::Error,
                ][usize::from(s)],
                display_node_id: d.map(node),
                parent_node_id: d.map(node),
                real_node_id: None,
            }
        }),
        0..4,
    )
}

fn message() -> impl Strategy<Value = ServerMessage> {
    let oid = || proptest::option::of(id().prop_map(pid));
    let onode = || proptest::option::of(nd().prop_map(node));
    prop_oneof![
        Just(ServerMessage::Status {
            queue_remaining: Some(1),
            sid: None
        }),
        (id(), ts()).prop_map(|(i, timestamp)| ServerMessage::ExecutionStart {
            prompt_id: pid(i),
            timestamp
        }),
        (id(), proptest::collection::vec(nd().prop_map(node), 0..3)).prop_map(|(i, nodes)| {
            ServerMessage::ExecutionCached {
                prompt_id: pid(i),
                nodes,
                timestamp: None,
            }
        }),
        (oid(), onode(), onode()).prop_map(|(prompt_id, node, display_node)| {
            ServerMessage::Executing {
                prompt_id,
                node,
                display_node,
            }
        }),
        (oid(), nd()).prop_map(|(prompt_id, n)| ServerMessage::Executed {
            prompt_id,
            node: node(n),
            display_node: None,
            output: json!({"images": [{"filename": "o.png", "subfolder": "", "type": "output"}]}),
        }),
        (oid(), onode(), 0u8..8, 0u8..8).prop_map(|(prompt_id, node, v, m)| {
            ServerMessage::Progress {
                prompt_id,
                node,
                value: f64::from(v),
                max: f64::from(m),
            }
        }),
        (id(), progress_state()).prop_map(|(i, nodes)| ServerMessage::ProgressState {
            prompt_id: pid(i),
            nodes
        }),
        (id(), ts()).prop_map(|(i, timestamp)| ServerMessage::ExecutionSuccess {
            prompt_id: pid(i),
            timestamp
        }),
        (id(), any::<bool>(), ts()).prop_map(|(i, blocked, timestamp)| {
            ServerMessage::ExecutionError(Box::new(ExecutionError {
                prompt_id: pid(i),
                node_id: Some(node(0)),
                node_type: Some("KSampler".into()),
                executed: Vec::new(),
                exception_message: "boom".into(),
                exception_type: if blocked {
                    EXECUTION_BLOCKED.into()
                } else {
                    "RuntimeError".into()
                },
                traceback: Vec::new(),
                current_inputs: json!({}),
                current_outputs: json!({}),
                timestamp,
            }))
        }),
        (id(), ts()).prop_map(|(i, timestamp)| {
            ServerMessage::ExecutionInterrupted(ExecutionInterrupted {
                prompt_id: pid(i),
                node_id: None,
                node_type: None,
                executed: Vec::new(),
                timestamp,
            })
        }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let items = || proptest::collection::vec((id(), 0u8..4), 0..3);
    prop_oneof![
        6 => message().prop_map(Op::Msg),
        2 => (items(), items(), proptest::collection::vec(id(), 0..2), any::<bool>())
            .prop_map(|(running, pending, finished, stale)| Op::Snapshot { running, pending, finished, stale }),
        2 => (id(), 0u8..6).prop_map(|(i, k)| Op::Outcome(i, k)),
        1 => id().prop_map(Op::Expect),
        1 => (id(), proptest::option::of(id())).prop_map(|(e, a)| Op::Settle(e, a)),
        1 => Just(Op::Reconnect),
        1 => Just(Op::Disconnect),
        1 => any::<bool>().prop_map(Op::Relay),
        1 => Just(Op::Tick),
        1 => (0u32..20_000).prop_map(Op::Wait),
    ]
}

fn active(i: usize, who: u8, now: Millis) -> ActiveJob {
    ActiveJob {
        prompt_id: pid(i),
        number: Some(i as f64),
        client_id: match who {
            0 => Some(Some(ME.into())),
            1 => Some(Some("browser".into())),
            2 => Some(None),
            _ => None,
        },
        graph: (who != 3).then(graph),
        outputs_to_execute: None,
        create_time: Some(now - 1_000),
    }
}

fn lookup(i: usize, kind: u8, now: Millis) -> Lookup {
    let found = |outcome| {
        Lookup::Found(Box::new(FinishedJob {
            prompt_id: pid(i),
            outcome,
            outputs: Default::default(),
            client_id: Some("browser".into()),
            started_ms: Some(now - 2_000),
            ended_ms: Some(now - 100),
        }))
    };
    match kind {
        0 => found(Outcome::Success),
        1 => found(Outcome::Failed),
        2 => found(Outcome::Interrupted(ExecutionInterrupted {
            prompt_id: pid(i),
            node_id: None,
            node_type: None,
            executed: Vec::new(),
            timestamp: None,
        })),
        3 => Lookup::NotFound,
        _ => Lookup::Unavailable,
    }
}

/// What was published so far, checked picture by picture.
#[derive(Default)]
struct Published {
    terminal: HashMap<PromptId, JobState>,
    percent: HashMap<PromptId, (f64, Fidelity)>,
}

impl Published {
    fn updates(&mut self, updates: &[Update]) -> Result<(), TestCaseError> {
        for u in updates {
            match u {
                Update::Job(v) => self.job(v)?,
                Update::Queue { running, pending } => {
                    for id in running.iter().chain(pending) {
                        prop_assert!(
                            !self.terminal.contains_key(id),
                            "the queue lists finished {}",
                            id
                        );
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn job(&mut self, v: &JobView) -> Result<(), TestCaseError> {
        let id = &v.prompt_id;
        prop_assert!(
            !self.terminal.contains_key(id),
            "{} published after its terminal state {:?}: {:?}",
            id,
            self.terminal.get(id),
            v
        );
        if let Some(p) = v.estimate.as_ref().and_then(|e| e.percent) {
            prop_assert!((0.0..100.0).contains(&p), "estimate at {} %", p);
        }
        if v.fidelity.is_followed() {
            if let Some((before, _)) = self.percent.get(id) {
                prop_assert!(
                    v.percent.is_some_and(|p| p >= *before),
                    "{}'s percent fell from {} to {:?}",
                    id,
                    before,
                    v.percent
                );
            }
            if let Some(p) = v.percent {
                self.percent.insert(id.clone(), (p, v.fidelity));
            }
        } else {
            prop_assert!(v.percent.is_none(), "an observed job with a percent");
            self.percent.remove(id);
        }
        if v.state.is_terminal() {
            self.terminal.insert(id.clone(), v.state);
        }
        Ok(())
    }
}

fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let mut t = Tracker::new(ME);
    let mut seen = Published::default();
    let mut now = T0;
    for op in ops {
        now += 100;
        let updates = match op {
            Op::Msg(m) => t.apply_message(m, now).0,
            Op::Snapshot {
                running,
                pending,
                finished,
                stale,
            } => {
                let snap = Snapshot {
                    running: running.iter().map(|&(i, w)| active(i, w, now)).collect(),
                    pending: pending.iter().map(|&(i, w)| active(i, w, now)).collect(),
                    recent_finished: finished.iter().map(|&i| pid(i)).collect(),
                    requested_at: if *stale { now - 5_000 } else { now },
                };
                t.apply_snapshot(&snap, now).0
            }
            Op::Outcome(i, k) => t.apply_outcome(&pid(*i), lookup(*i, *k, now), now),
            Op::Expect(i) => t.expect_job(&active(*i, 0, now), now),
            Op::Settle(e, a) => {
                if *a != Some(*e) {
                    // Refused, or run under another id: the expected id never was a job.
                    seen.percent.remove(&pid(*e));
                }
                t.settle_submission(&pid(*e), a.map(pid).as_ref(), now)
            }
            Op::Reconnect => {
                t.disconnected();
                t.reconnected();
                Vec::new()
            }
            Op::Disconnect => {
                t.disconnected();
                Vec::new()
            }
            Op::Relay(on) => {
                t.set_relay(*on);
                if !on {
                    // Relayed jobs fall back to observed, without a picture: their percent goes.
                    seen.percent.retain(|_, (_, f)| *f != Fidelity::Relayed);
                }
                Vec::new()
            }
            Op::Tick => t.tick(now),
            Op::Wait(ms) => {
                now += Millis::from(*ms);
                t.tick(now)
            }
        };
        seen.updates(&updates)?;
        let (running, pending) = t.queue();
        for id in running.iter().chain(&pending) {
            prop_assert!(
                !seen.terminal.contains_key(id),
                "queue holds finished {}",
                id
            );
        }
    }
    for (id, state) in &seen.terminal {
        if let Some(v) = t.job(id) {
            prop_assert_eq!(v.state, *state, "{} changed after it finished", id);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_tracker_publishes_each_end_once_and_percent_never_falls(
        ops in proptest::collection::vec(op(), 1..80)
    ) {
        run(&ops)?;
    }
}

// -------------------------------------------------------------------------------------------
// Download paths.

/// Pieces a hostile server would put in a name: separators, parent and current dirs, roots,
/// drive prefixes, NULs, and ordinary names.
fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("..".to_owned()),
        Just(".".to_owned()),
        Just("/".to_owned()),
        Just("\\".to_owned()),
        Just("C:".to_owned()),
        Just("\\\\server\\share".to_owned()),
        Just("~".to_owned()),
        Just("\0".to_owned()),
        Just(String::new()),
        "[a-z0-9_ .-]{1,8}",
        any::<String>(),
    ]
}

fn name() -> impl Strategy<Value = String> {
    proptest::collection::vec(piece(), 0..6).prop_map(|p| p.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn a_download_path_is_inside_the_chosen_folder_or_refused(
        filename in name(),
        subfolder in name(),
    ) {
        let dir = Path::new("/home/user/Pictures/comfy");
        let file = OutputFile { filename: filename.clone(), subfolder, kind: "output".into() };
        if let Ok(path) = local_path(dir, &file) {
            let rest = path.strip_prefix(dir);
            prop_assert!(rest.is_ok(), "{:?} is outside {:?}", path, dir);
            let rest = rest.unwrap_or(&path);
            prop_assert!(rest.components().count() >= 1, "the folder itself");
            prop_assert!(
                rest.components().all(|c| matches!(c, Component::Normal(_))),
                "{:?} climbs", rest
            );
            prop_assert_eq!(path.file_name(), Path::new(&filename).file_name());
        }
    }
}
