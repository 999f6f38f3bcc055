//! The tracker's tests: every rule driven by messages, snapshots and lookups with the time they
//! happened, no sleeping.

use super::*;
use comfy_protocol::decode_text;
use comfy_protocol::http::{FinishedJob, Outcome};
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
fn a_snapshot_sent_while_our_submission_was_in_flight_proves_nothing_even_if_answered_after_it() {
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
    t.restore_job(&active("p", 1.0, Some(ME)), JobState::Running, 0, None, 0);
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
    t.restore_job(&active("p", 1.0, Some(ME)), JobState::Pending, 0, None, 0);
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

/// The messages of a job's run, as the submitter (or, relayed, any subscriber) receives them.
fn started(t: &mut Tracker, id: &str, at: Millis) {
    let text = json!({"type": "execution_start", "data": {"prompt_id": id, "timestamp": at}});
    msg(t, &text.to_string(), at);
}

fn node_starts(t: &mut Tracker, id: &str, node: &str, at: Millis) {
    let text = json!({"type": "executing", "data": {"node": node, "prompt_id": id}});
    msg(t, &text.to_string(), at);
}

fn steps(t: &mut Tracker, id: &str, node: &str, value: u32, max: u32, at: Millis) {
    let text = json!({"type": "progress",
        "data": {"value": value, "max": max, "prompt_id": id, "node": node}});
    msg(t, &text.to_string(), at);
}

#[test]
fn with_the_companion_another_clients_job_is_followed_as_relayed_with_percent_and_eta() {
    let mut t = Tracker::new(ME);
    t.set_relay(true);
    let a = active("a", 1.0, Some("browser"));
    t.apply_snapshot(&snap(&[], std::slice::from_ref(&a)), 0);
    started(&mut t, "a", 100);
    node_starts(&mut t, "a", "1", 110);
    steps(&mut t, "a", "1", 1, 4, 200);
    steps(&mut t, "a", "1", 2, 4, 300);
    let view = t.job(&"a".into()).unwrap();
    assert_eq!(view.origin, JobOrigin::Other, "still another client's job");
    assert_eq!(view.fidelity, Fidelity::Relayed);
    assert_eq!(view.state, JobState::Running);
    assert!(
        view.percent.is_some_and(|p| p > 0.0 && p < 100.0),
        "{view:?}"
    );
    assert_eq!((view.node_value, view.node_max), (Some(2.0), Some(4.0)));
}

#[test]
fn a_relayed_job_never_seen_in_a_snapshot_is_another_clients_not_ours() {
    let mut t = Tracker::new(ME);
    t.set_relay(true);
    started(&mut t, "x", 100);
    let view = t.job(&"x".into()).unwrap();
    assert_eq!(
        (view.origin, view.fidelity),
        (JobOrigin::Other, Fidelity::Relayed)
    );
    // Our own submission stays ours, relayed or not.
    t.expect_job(&active("mine", 2.0, Some(ME)), 150);
    started(&mut t, "mine", 200);
    let view = t.job(&"mine".into()).unwrap();
    assert_eq!(
        (view.origin, view.fidelity),
        (JobOrigin::SelfApp, Fidelity::Live)
    );
}

#[test]
fn without_the_companion_execution_messages_still_prove_a_job_is_ours() {
    let mut t = Tracker::new(ME);
    started(&mut t, "x", 100);
    let view = t.job(&"x".into()).unwrap();
    assert_eq!(
        (view.origin, view.fidelity),
        (JobOrigin::SelfApp, Fidelity::Live)
    );
}

#[test]
fn a_companion_that_goes_away_leaves_relayed_jobs_observed_without_invented_progress() {
    let mut t = Tracker::new(ME);
    t.set_relay(true);
    let a = active("a", 1.0, Some("browser"));
    t.apply_snapshot(&snap(std::slice::from_ref(&a), &[]), 0);
    node_starts(&mut t, "a", "1", 110);
    steps(&mut t, "a", "1", 2, 4, 300);
    assert!(t.job(&"a".into()).unwrap().percent.is_some());
    t.set_relay(false);
    let view = t.job(&"a".into()).unwrap();
    assert_eq!(view.fidelity, Fidelity::Observed);
    assert_eq!(view.percent, None);
    assert_eq!(view.eta_ms, None);
}

// --- Estimates learned from past runs -----------------------------------------------------

fn sampler_graph(seed: u64) -> serde_json::Value {
    json!({
        "1": {"class_type": "KSampler", "inputs": {"steps": 6, "seed": seed}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}}
    })
}

fn other_job(id: &str, number: f64, seed: u64) -> ActiveJob {
    ActiveJob {
        graph: Some(sampler_graph(seed)),
        ..active(id, number, Some("browser"))
    }
}

/// Another client's job seen running from `start`, ending after `run_ms` by the server's
/// record (whose clock is an hour off ours: only its differences count).
fn observe_run(t: &mut Tracker, id: &str, start: Millis, run_ms: Millis) {
    let j = other_job(id, 1.0, start as u64);
    t.apply_snapshot(&snap(std::slice::from_ref(&j), &[]), start);
    t.apply_snapshot(&snap(&[], &[]), start + run_ms + 500);
    let server_start = start + 3_600_000;
    let lookup = Lookup::Found(Box::new(FinishedJob {
        prompt_id: id.into(),
        outcome: Outcome::Success,
        outputs: Default::default(),
        client_id: Some("browser".into()),
        started_ms: Some(server_start),
        ended_ms: Some(server_start + run_ms),
    }));
    t.apply_outcome(&id.into(), lookup, start + run_ms + 600);
}

fn estimate_of(t: &Tracker, id: &str) -> Option<comfy_model::Estimate> {
    t.job(&id.into()).unwrap().estimate
}

#[test]
fn an_observed_job_is_estimated_from_earlier_runs_of_its_workflow() {
    let mut t = Tracker::new(ME);
    observe_run(&mut t, "r1", 0, 10_000);
    assert!(
        t.job(&"r1".into()).unwrap().estimate.is_none(),
        "an ended job has no estimate"
    );
    observe_run(&mut t, "r2", 20_000, 12_000);
    observe_run(&mut t, "r3", 40_000, 10_000);

    // Same graph, new seed, queued by another client: 2.5 s into its run.
    let d = other_job("d", 4.0, 777);
    t.apply_snapshot(&snap(std::slice::from_ref(&d), &[]), 60_000);
    let (u, _) = t.apply_snapshot(&snap(std::slice::from_ref(&d), &[]), 62_500);
    assert!(
        u.is_empty(),
        "a snapshot that changes nothing publishes nothing"
    );
    t.tick(62_500);
    let e = estimate_of(&t, "d").unwrap();
    assert_eq!(e.basis, comfy_model::EstimateBasis::Workflow);
    // It runs right after r3, its own workflow: from the two runs that did too (r1 ran after
    // something else, so loaded its models).
    assert_eq!(e.samples, 2);
    assert_eq!(e.typical_ms, 10_000, "weighted toward the latest runs");
    assert_eq!(e.percent, Some(25.0));
    assert_eq!(e.eta_ms, Some(7_500));
    let v = t.job(&"d".into()).unwrap();
    assert_eq!(v.percent, None, "measured figures stay empty");
    assert_eq!(v.eta_ms, None);

    // Past its usual time it says so, and never sits at 99 %.
    t.tick(69_950);
    assert_eq!(estimate_of(&t, "d").unwrap().percent, Some(99.0));
    let u = t.tick(75_000);
    assert_eq!(job_states(&u), [("d".into(), JobState::Running)]);
    let e = estimate_of(&t, "d").unwrap();
    assert!(e.longer_than_usual);
    assert_eq!((e.percent, e.eta_ms), (None, None));
}

#[test]
fn only_successes_teach_and_a_different_workflow_is_not_taken_for_this_one() {
    let mut t = Tracker::new(ME);
    let j = other_job("bad", 1.0, 1);
    t.apply_snapshot(&snap(std::slice::from_ref(&j), &[]), 0);
    t.apply_snapshot(&snap(&[], &[]), 3_000);
    t.apply_outcome(&"bad".into(), finished("bad", Outcome::Failed), 3_100);
    let again = other_job("again", 2.0, 2);
    t.apply_snapshot(&snap(std::slice::from_ref(&again), &[]), 10_000);
    t.tick(11_000);
    assert_eq!(
        estimate_of(&t, "again"),
        None,
        "a failure says nothing of its length"
    );

    // The same workflow and seed again: the server answers from its cache at once.
    observe_run(&mut t, "cached", 15_000, 4);
    let again = other_job("again2", 2.5, 2);
    t.apply_snapshot(&snap(std::slice::from_ref(&again), &[]), 16_000);
    t.tick(16_500);
    assert_eq!(
        estimate_of(&t, "again2"),
        None,
        "a cached answer is not a run"
    );

    observe_run(&mut t, "ok", 20_000, 8_000);
    let mut bigger = other_job("bigger", 3.0, 3);
    bigger.graph = Some(json!({
        "1": {"class_type": "KSampler", "inputs": {"steps": 40, "seed": 3}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}}
    }));
    t.apply_snapshot(&snap(std::slice::from_ref(&bigger), &[]), 40_000);
    t.tick(41_000);
    assert_eq!(
        estimate_of(&t, "bigger"),
        None,
        "ten times the steps is another workflow; an observed run teaches no node's speed"
    );
}

#[test]
fn pending_jobs_start_when_the_jobs_ahead_are_expected_to_end() {
    let mut t = Tracker::new(ME);
    for (i, start) in [0, 20_000, 40_000].into_iter().enumerate() {
        observe_run(&mut t, &format!("r{i}"), start, 10_000);
    }
    let run = other_job("run", 10.0, 5);
    let p1 = other_job("p1", 11.0, 6);
    let p2 = other_job("p2", 12.0, 7);
    t.apply_snapshot(
        &snap(std::slice::from_ref(&run), &[p1.clone(), p2.clone()]),
        100_000,
    );
    let (u, _) = t.apply_snapshot(&snap(&[run], &[p1, p2]), 104_000);
    assert!(u.is_empty());
    t.tick(104_000);
    let p1 = estimate_of(&t, "p1").unwrap();
    assert_eq!(p1.starts_in_ms, Some(6_000));
    assert_eq!(p1.eta_ms, Some(16_000));
    assert_eq!(p1.percent, None);
    let p2 = estimate_of(&t, "p2").unwrap();
    assert_eq!(p2.starts_in_ms, Some(16_000));
    assert_eq!(p2.eta_ms, Some(26_000), "the queue drains in 26 s");
}

#[test]
fn a_job_ahead_without_an_estimate_leaves_the_start_of_those_behind_it_unknown() {
    let mut t = Tracker::new(ME);
    observe_run(&mut t, "r0", 0, 10_000);
    let mut stranger = other_job("stranger", 10.0, 5);
    stranger.graph = Some(json!({"9": {"class_type": "Mystery", "inputs": {}}}));
    let p = other_job("p", 11.0, 6);
    t.apply_snapshot(&snap(&[stranger], std::slice::from_ref(&p)), 100_000);
    t.tick(101_000);
    assert_eq!(estimate_of(&t, "stranger"), None);
    let e = estimate_of(&t, "p").unwrap();
    assert_eq!(e.typical_ms, 10_000, "its own length is still known");
    assert_eq!((e.starts_in_ms, e.eta_ms), (None, None));
}

/// Our job of `graph`, started at `start` and stepping through node 1's six steps every
/// `per_step` ms, `steps` of them done.
fn run_steps(
    t: &mut Tracker,
    id: &str,
    graph: serde_json::Value,
    start: Millis,
    per_step: Millis,
    steps: Millis,
) -> ActiveJob {
    let item = ActiveJob {
        graph: Some(graph),
        ..active(id, 10.0, Some(ME))
    };
    t.describe_job(&item, start);
    let p = format!(r#""prompt_id":"{id}""#);
    msg(
        t,
        &format!(r#"{{"type":"execution_start","data":{{{p}}}}}"#),
        start,
    );
    msg(
        t,
        &format!(r#"{{"type":"executing","data":{{"node":"1",{p}}}}}"#),
        start,
    );
    for step in 1..=steps {
        msg(
            t,
            &format!(r#"{{"type":"progress","data":{{"value":{step},"max":6,"node":"1",{p}}}}}"#),
            start + step * per_step,
        );
    }
    item
}

#[test]
fn a_measured_eta_never_places_the_jobs_behind_it() {
    // Without an estimate: a workflow never run here, whose sampler measures its ETA.
    let mut t = Tracker::new(ME);
    observe_run(&mut t, "r0", 0, 10_000);
    let mystery = json!({
        "1": {"class_type": "Mystery", "inputs": {"steps": 6}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}}
    });
    let mine = run_steps(&mut t, "mine", mystery, 100_000, 1_000, 4);
    let p = other_job("p", 11.0, 6);
    t.apply_snapshot(
        &snap(std::slice::from_ref(&mine), std::slice::from_ref(&p)),
        104_000,
    );
    t.tick(104_500);
    let v = t.job(&"mine".into()).unwrap();
    assert!(v.eta_ms.is_some() && v.estimate.is_none(), "{v:?}");
    let e = estimate_of(&t, "p").unwrap();
    assert_eq!(e.typical_ms, 10_000, "its own length is still known");
    assert_eq!((e.starts_in_ms, e.eta_ms), (None, None));

    // Running longer than usual: its measured ETA does not place the jobs behind it either.
    let mut t = Tracker::new(ME);
    observe_run(&mut t, "r0", 0, 10_000);
    let slow = run_steps(&mut t, "slow", sampler_graph(1), 100_000, 5_000, 4);
    t.apply_snapshot(
        &snap(std::slice::from_ref(&slow), std::slice::from_ref(&p)),
        120_000,
    );
    t.tick(120_500);
    let v = t.job(&"slow".into()).unwrap();
    assert!(v.eta_ms.is_some(), "{v:?}");
    assert!(v.estimate.unwrap().longer_than_usual);
    let e = estimate_of(&t, "p").unwrap();
    assert_eq!((e.starts_in_ms, e.eta_ms), (None, None));
}

#[test]
fn estimates_are_published_again_only_when_they_move() {
    let mut t = Tracker::new(ME);
    observe_run(&mut t, "r0", 0, 1_000_000);
    let j = other_job("long", 2.0, 9);
    let (u, _) = t.apply_snapshot(&snap(std::slice::from_ref(&j), &[]), 2_000_000);
    let Some(Update::Job(v)) = u.first() else {
        panic!("{u:?}")
    };
    assert_eq!(v.estimate.as_ref().unwrap().eta_ms, Some(1_000_000));
    // A second later the estimate's end is where it was, and the percent still rounds to 0.
    assert!(t.tick(2_001_000).is_empty());
    assert!(t.tick(2_005_000).is_empty());
    // Twenty seconds in: 2 %.
    let u = t.tick(2_020_000);
    assert_eq!(job_states(&u), [("long".into(), JobState::Running)]);
    assert!(t.tick(2_020_500).is_empty());
    // Nothing queued, nothing to look at.
    let mut idle = Tracker::new(ME);
    assert!(idle.tick(1).is_empty());
}

#[test]
fn a_live_job_has_an_eta_from_history_before_its_first_step_then_counts_its_steps() {
    let mut t = Tracker::new(ME);
    let graph = sampler_graph(1);
    let run = |t: &mut Tracker, id: &str, start: Millis, per_step: Millis| {
        run_steps(t, id, graph.clone(), start, per_step, 6);
        let p = format!(r#""prompt_id":"{id}""#);
        let mut now = start + 6 * per_step;
        msg(
            t,
            &format!(r#"{{"type":"executing","data":{{"node":"2",{p}}}}}"#),
            now,
        );
        now += 2_000;
        msg(
            t,
            &format!(r#"{{"type":"execution_success","data":{{{p}}}}}"#),
            now,
        );
        msg(
            t,
            &format!(r#"{{"type":"executing","data":{{"node":null,{p}}}}}"#),
            now,
        );
        // The server's record is not needed to end it.
        t.apply_outcome(&id.into(), Lookup::Unavailable, now + 3_000);
        now
    };
    let end = run(&mut t, "first", 0, 1_000);
    let v = t.job(&"first".into()).unwrap();
    assert_eq!(v.state, JobState::Success);
    assert_eq!(v.run_ms, Some(8_000));
    assert_eq!(v.node_durations.len(), 2);

    // The second run: 8 s expected from the first moment.
    let item = ActiveJob {
        graph: Some(graph.clone()),
        ..active("second", 2.0, Some(ME))
    };
    t.describe_job(&item, end + 1_000);
    let p = r#""prompt_id":"second""#;
    let (u, _) = msg(
        &mut t,
        &format!(r#"{{"type":"execution_start","data":{{{p}}}}}"#),
        end + 5_000,
    );
    let Some(Update::Job(v)) = u.iter().find(|u| matches!(u, Update::Job(_))) else {
        panic!("{u:?}")
    };
    let e = v.estimate.clone().unwrap();
    assert_eq!(
        e.eta_ms,
        Some(8_000),
        "the wait in the queue is not part of it"
    );
    assert_eq!(v.eta_ms, None, "no step rate yet");
    // Sampling twice as slow as last time: after four steps, two left at 2 s, then the
    // save's 2 s.
    let t0 = end + 5_000;
    msg(
        &mut t,
        &format!(r#"{{"type":"executing","data":{{"node":"1",{p}}}}}"#),
        t0,
    );
    let mut last = Vec::new();
    for step in 1..=4 {
        (last, _) = msg(
            &mut t,
            &format!(r#"{{"type":"progress","data":{{"value":{step},"max":6,"node":"1",{p}}}}}"#),
            t0 + step * 2_000,
        );
    }
    let Some(Update::Job(v)) = last.iter().find(|u| matches!(u, Update::Job(_))) else {
        panic!("{last:?}")
    };
    let e = v.estimate.clone().unwrap();
    assert_eq!(e.eta_ms, Some(6_000), "two steps at 2 s, then 2 s of save");
    // The step rate alone weighs the sampler at 1 + steps and the save at one step.
    assert_eq!(v.eta_ms, Some(6_667));
}

#[test]
fn a_workflow_after_itself_is_expected_as_fast_as_it_ran_after_itself() {
    let mut t = Tracker::new(ME);
    // Run after something else it loads its models (20 s); run again right after, 10 s.
    for (i, (start, ms)) in [(0, 20_000), (30_000, 10_000), (50_000, 10_000)]
        .into_iter()
        .enumerate()
    {
        observe_run(&mut t, &format!("a{i}"), start, ms);
    }
    // Another workflow runs in between.
    let mut b = other_job("b", 5.0, 1);
    b.graph = Some(json!({"9": {"class_type": "Upscale", "inputs": {"scale_by": 2.0}}}));
    t.apply_snapshot(&snap(std::slice::from_ref(&b), &[]), 70_000);
    t.apply_snapshot(&snap(&[], &[]), 75_000);
    t.apply_outcome(
        &"b".into(),
        Lookup::Found(Box::new(FinishedJob {
            prompt_id: "b".into(),
            outcome: Outcome::Success,
            outputs: Default::default(),
            client_id: Some("browser".into()),
            started_ms: Some(70_000),
            ended_ms: Some(74_000),
        })),
        75_100,
    );
    // Now the first workflow twice: after the other one, then after itself.
    let cold = other_job("cold", 6.0, 2);
    let warm = other_job("warm", 7.0, 3);
    t.apply_snapshot(
        &snap(std::slice::from_ref(&cold), std::slice::from_ref(&warm)),
        80_000,
    );
    t.tick(80_000);
    let c = estimate_of(&t, "cold").unwrap();
    assert_eq!((c.typical_ms, c.eta_ms), (20_000, Some(20_000)));
    let w = estimate_of(&t, "warm").unwrap();
    assert_eq!(w.typical_ms, 10_000);
    assert_eq!((w.starts_in_ms, w.eta_ms), (Some(20_000), Some(30_000)));
}

#[test]
fn a_running_job_restored_from_the_journal_is_estimated_from_when_it_started() {
    let mut t = Tracker::new(ME);
    observe_run(&mut t, "r0", 0, 10_000);
    let j = other_job("j", 2.0, 5);
    t.restore_job(&j, JobState::Running, 20_000, Some(21_000), 25_000);
    t.apply_snapshot(&snap(std::slice::from_ref(&j), &[]), 25_000);
    t.tick(25_000);
    let e = estimate_of(&t, "j").unwrap();
    assert_eq!((e.percent, e.eta_ms), (Some(40.0), Some(6_000)), "{e:?}");

    // Restored without a start: measured from when it was first seen running, and it moves.
    let k = other_job("k", 3.0, 6);
    let mut t2 = Tracker::new(ME);
    observe_run(&mut t2, "r0", 0, 10_000);
    t2.restore_job(&k, JobState::Running, 20_000, None, 30_000);
    t2.apply_snapshot(&snap(std::slice::from_ref(&k), &[]), 30_000);
    t2.tick(35_000);
    assert_eq!(estimate_of(&t2, "k").unwrap().eta_ms, Some(5_000));
}

#[test]
fn a_restored_start_by_a_server_clock_ahead_of_ours_is_not_in_the_future_and_measures_no_run() {
    let mut t = Tracker::new(ME);
    // The journal kept the server's time of the start: 20 s ahead of our clock.
    let j = other_job("j", 2.0, 5);
    t.restore_job(&j, JobState::Running, 20_000, Some(45_000), 25_000);
    t.set_timings({
        let mut learned = Tracker::new(ME);
        observe_run(&mut learned, "r0", 0, 10_000);
        learned.timings().clone()
    });
    t.apply_snapshot(&snap(std::slice::from_ref(&j), &[]), 25_000);
    let v = t.job(&"j".into()).unwrap();
    assert_eq!(v.started_at_ms, Some(25_000), "not started later than now");
    t.tick(30_000);
    let e = estimate_of(&t, "j").unwrap();
    assert_eq!((e.percent, e.eta_ms), (Some(50.0), Some(5_000)), "{e:?}");

    // It ends by our clock with no record of the server's: its run is not known, so not
    // learned (our end less the server's start would mix two clocks).
    t.apply_snapshot(&snap(&[], &[]), 60_000);
    let lookup = Lookup::Found(Box::new(FinishedJob {
        prompt_id: "j".into(),
        outcome: Outcome::Success,
        outputs: Default::default(),
        client_id: Some("browser".into()),
        started_ms: None,
        ended_ms: None,
    }));
    t.apply_outcome(&"j".into(), lookup, 60_100);
    let v = t.job(&"j".into()).unwrap();
    assert_eq!((v.state, v.run_ms), (JobState::Success, None));
    let fp = comfy_timing::Shape::of(&sampler_graph(5))
        .unwrap()
        .fingerprint;
    assert_eq!(t.timings().typical(&fp).unwrap().samples, 1);
}
