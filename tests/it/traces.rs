//! Recorded sessions are the truth: every frame decodes, and replaying every socket of every
//! trace gives the outcomes the raw frames say, exactly once, with sane progress.

use crate::support::trace_files;
use comfy_cli::replay::replay;
use comfy_cli::trace::{Entry, Trace};
use comfy_engine::{EventKind, JobState};
use comfy_protocol::{decode_binary, decode_text, BinaryFrame, ServerFeatures, ServerMessage};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

#[test]
fn every_frame_of_every_trace_decodes() {
    let mut frames = 0;
    for path in trace_files() {
        let trace = Trace::load(&path).unwrap();
        for e in &trace.entries {
            match e {
                Entry::Text { frame, .. } => {
                    let m = decode_text(frame)
                        .unwrap_or_else(|err| panic!("{}: {err}: {frame}", path.display()));
                    // Only custom types may fall through to `Other`.
                    if let ServerMessage::Other { kind, .. } = &m {
                        assert!(
                            kind.contains('.'),
                            "{}: core type {kind} not decoded",
                            path.display()
                        );
                    }
                    frames += 1;
                }
                Entry::Binary { frame, .. } => {
                    let f = decode_binary(frame, &ServerFeatures::default())
                        .unwrap_or_else(|err| panic!("{}: {err}", path.display()));
                    match f {
                        BinaryFrame::Preview { image, .. } => assert!(
                            image.starts_with(&[0xff, 0xd8]) || image.starts_with(b"\x89PNG"),
                            "{}: preview is not a JPEG or PNG",
                            path.display()
                        ),
                        BinaryFrame::Text { text, .. } => assert!(!text.is_empty()),
                        BinaryFrame::Unknown { event_type, .. } => {
                            panic!("{}: unknown binary type {event_type}", path.display())
                        }
                    }
                    frames += 1;
                }
                _ => {}
            }
        }
    }
    assert!(frames > 1500, "only {frames} frames decoded");
}

/// What the raw frames of one socket say about each job's end, without the tracker.
fn expected_outcomes(trace: &Trace, client: &str) -> BTreeMap<String, JobState> {
    let mut last_terminal: HashMap<String, JobState> = HashMap::new();
    let mut out = BTreeMap::new();
    for e in &trace.entries {
        let Entry::Text {
            client: c, frame, ..
        } = e
        else {
            continue;
        };
        if c != client {
            continue;
        }
        let v: Value = serde_json::from_str(frame).unwrap();
        let data = &v["data"];
        let id = data["prompt_id"].as_str().unwrap_or_default().to_owned();
        match v["type"].as_str().unwrap_or_default() {
            "execution_success" => {
                last_terminal.insert(id, JobState::Success);
            }
            "execution_error" if data["exception_type"] != "ExecutionBlocked" => {
                last_terminal.insert(id, JobState::Error);
            }
            "execution_interrupted" => {
                last_terminal.insert(id, JobState::Interrupted);
            }
            "executing" if data["node"].is_null() && !id.is_empty() => {
                out.insert(
                    id.clone(),
                    *last_terminal.get(&id).unwrap_or(&JobState::Success),
                );
            }
            _ => {}
        }
    }
    out
}

fn frames_received(trace: &Trace, client: &str) -> (usize, Vec<String>) {
    let mut previews = 0;
    let mut texts = Vec::new();
    for e in &trace.entries {
        if let Entry::Binary {
            client: c, frame, ..
        } = e
        {
            if c == client {
                match frame[..4] {
                    [0, 0, 0, 1] | [0, 0, 0, 4] => previews += 1,
                    [0, 0, 0, 3] => {
                        let n =
                            u32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]) as usize;
                        texts.push(String::from_utf8(frame[8 + n..].to_vec()).unwrap());
                    }
                    _ => {}
                }
            }
        }
    }
    (previews, texts)
}

#[test]
fn replaying_every_socket_of_every_trace_gives_the_recorded_outcomes() {
    let mut checked_jobs = 0;
    for path in trace_files() {
        let trace = Trace::load(&path).unwrap();
        for client in trace.clients() {
            let ctx = format!("{} / {client}", path.display());
            let events = replay(&trace, Some(&client), "t").unwrap();
            let expected = expected_outcomes(&trace, &client);

            let mut terminal: BTreeMap<String, Vec<JobState>> = BTreeMap::new();
            let mut percent: HashMap<String, f64> = HashMap::new();
            let mut previews = 0;
            let mut texts = Vec::new();
            for e in &events {
                match &e.kind {
                    EventKind::Job(j) => {
                        let id = j.prompt_id.to_string();
                        if let Some(p) = j.percent {
                            let prev = percent.insert(id.clone(), p).unwrap_or(0.0);
                            assert!(p >= prev, "{ctx}: percent of {id} fell from {prev} to {p}");
                            assert!((0.0..=100.0).contains(&p));
                        }
                        if j.state.is_terminal() {
                            terminal.entry(id.clone()).or_default().push(j.state);
                            if j.state == JobState::Success {
                                assert_eq!(
                                    j.percent,
                                    Some(100.0),
                                    "{ctx}: {id} succeeded below 100%"
                                );
                            }
                            if j.state == JobState::Error {
                                let err = j.error.as_ref().expect("error details");
                                assert!(err.node_id.is_some() && err.node_type.is_some(), "{ctx}");
                                assert!(!err.message.is_empty(), "{ctx}");
                            }
                        }
                    }
                    EventKind::Preview(p) => {
                        previews += 1;
                        assert!(
                            p.bytes > 0 && p.width.is_some(),
                            "{ctx}: preview without an image size"
                        );
                    }
                    EventKind::Text { text, .. } => texts.push(text.clone()),
                    EventKind::ProtocolError { detail } => panic!("{ctx}: {detail}"),
                    _ => {}
                }
            }
            for (id, want) in &expected {
                let got = terminal
                    .get(id)
                    .unwrap_or_else(|| panic!("{ctx}: {id} never ended"));
                assert_eq!(got, &vec![*want], "{ctx}: {id} terminal states");
                checked_jobs += 1;
            }
            for (id, states) in &terminal {
                assert_eq!(states.len(), 1, "{ctx}: {id} ended {} times", states.len());
            }
            let (want_previews, want_texts) = frames_received(&trace, &client);
            assert_eq!(
                previews, want_previews,
                "{ctx}: one preview event per preview frame"
            );
            assert_eq!(texts, want_texts, "{ctx}: node texts");
        }
    }
    assert!(checked_jobs > 40, "only {checked_jobs} jobs checked");
}

fn replay_file(rel: &str, client: &str) -> Vec<comfy_engine::Event> {
    let path = crate::support::traces_dir().join(rel);
    replay(&Trace::load(&path).unwrap(), Some(client), "t").unwrap()
}

fn jobs(events: &[comfy_engine::Event]) -> Vec<&comfy_engine::JobView> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Job(j) => Some(j.as_ref()),
            _ => None,
        })
        .collect()
}

#[test]
fn successful_job_reports_its_outputs_and_rises_step_by_step() {
    for rel in ["a_success.jsonl", "v0.26/a_success.jsonl"] {
        let events = replay_file(rel, "monitor");
        let js = jobs(&events);
        let last = js.last().unwrap();
        assert_eq!(last.state, JobState::Success);
        assert_eq!(last.origin, comfy_engine::JobOrigin::SelfApp);
        let names: Vec<_> = last.outputs.iter().map(|o| o.filename.as_str()).collect();
        assert!(
            names.iter().any(|n| n.starts_with("monitor_a")),
            "{rel}: {names:?}"
        );
        assert!(
            last.outputs.iter().any(|o| o.kind == "temp"),
            "{rel}: preview output missing"
        );
        // Twelve sampler steps: the bar moves through many distinct values, not 0 -> 100.
        let distinct: std::collections::BTreeSet<u64> = js
            .iter()
            .filter_map(|j| j.percent)
            .map(|p| p as u64)
            .collect();
        assert!(
            distinct.len() >= 10,
            "{rel}: percent took only {distinct:?}"
        );
        // Every node that ran, in run order, timed in the recording's clock: twelve steps of
        // 50 ms for the sampler.
        let ran: Vec<&str> = last
            .node_durations
            .iter()
            .map(|d| d.node.as_str())
            .collect();
        assert_eq!(ran, ["1", "4", "2", "3"], "{rel}");
        let sampler = &last.node_durations[0];
        assert_eq!(sampler.node_type.as_deref(), Some("MonitorTestSampler"));
        assert!((550..700).contains(&sampler.ms), "{rel}: {sampler:?}");
        let running = js
            .iter()
            .find(|j| j.node_value == Some(6.0))
            .expect("step 6");
        assert_eq!(running.node_type.as_deref(), Some("MonitorTestSampler"));
        assert_eq!(running.node_max, Some(12.0));
        assert!(
            running.eta_ms.is_some() && running.steps_per_s.is_some(),
            "{rel}: no ETA"
        );
    }
}

#[test]
fn node_error_carries_node_type_exception_and_traceback() {
    for rel in ["d_execution_error.jsonl", "v0.26/d_execution_error.jsonl"] {
        let events = replay_file(rel, "monitor");
        let last = *jobs(&events).last().unwrap();
        assert_eq!(last.state, JobState::Error);
        let e = last.error.as_ref().unwrap();
        assert_eq!(e.node_type.as_deref(), Some("MonitorTestFail"));
        assert_eq!(e.exception_type.as_deref(), Some("RuntimeError"));
        assert!(!e.traceback.is_empty());
        assert!(last.percent.unwrap() < 100.0);
    }
}

#[test]
fn custom_events_are_passed_on_as_server_events() {
    let events = replay_file("j_text_and_custom.jsonl", "monitor");
    let custom = events
        .iter()
        .filter(
            |e| matches!(&e.kind, EventKind::ServerEvent { kind, .. } if kind == "monitor.custom"),
        )
        .count();
    assert_eq!(custom, 6);
    let texts: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Text {
                prompt_id, node, ..
            } => Some((prompt_id.clone(), node.to_string())),
            _ => None,
        })
        .collect();
    // Core sends node text without a prompt id; the tracker attributes it to the running job.
    assert!(texts.iter().all(|(p, _)| p.is_some()), "{texts:?}");
}

#[test]
fn fully_cached_rerun_succeeds_with_the_earlier_files() {
    let events = replay_file("b_cached_rerun.jsonl", "monitor");
    let last = *jobs(&events).last().unwrap();
    assert_eq!(last.state, JobState::Success);
    assert!(!last.outputs.is_empty());
}

#[test]
fn replay_names_the_sockets_when_asked_for_a_missing_one() {
    let path = crate::support::traces_dir().join("i_preview_metadata.jsonl");
    let err = replay(&Trace::load(&path).unwrap(), Some("nobody"), "t").unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("nobody") && msg.contains("M"), "{msg}");
}
