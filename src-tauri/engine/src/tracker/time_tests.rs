//! The tracker against time that misbehaves: our wall clock set back or forward while jobs run,
//! a server's clock far ahead or counting in microseconds, timestamps at the ends of the range,
//! and a server making up node ids. Hosts stamp snapshots as the supervisor does, with
//! [`Tracker::snapshot_requested`].

use super::*;
use comfy_protocol::decode_text;
use serde_json::json;

const ME: &str = "me";
const SECOND: Millis = 1_000;
const HOUR: Millis = 3_600 * SECOND;
const DAY: Millis = 24 * HOUR;
/// 14 November 2023, by our wall clock.
const T0: Millis = 1_700_000_000_000;

fn theirs(id: &str) -> ActiveJob {
    ActiveJob {
        prompt_id: id.into(),
        number: Some(1.0),
        client_id: Some(Some("browser".into())),
        graph: Some(json!({
            "1": {"class_type": "KSampler", "inputs": {"steps": 4}},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}}
        })),
        outputs_to_execute: Some(vec!["2".into()]),
        create_time: None,
    }
}

/// A poll as the supervisor makes it: stamped when sent, applied when answered.
fn poll(
    t: &mut Tracker,
    pending: &[ActiveJob],
    sent: Millis,
    answered: Millis,
) -> (Vec<Update>, Vec<Request>) {
    let requested_at = t.snapshot_requested(sent);
    let snap = Snapshot {
        pending: pending.to_vec(),
        requested_at,
        ..Snapshot::default()
    };
    t.apply_snapshot(&snap, answered)
}

fn msg(t: &mut Tracker, text: &str, now: Millis) -> (Vec<Update>, Vec<Request>) {
    t.apply_message(&decode_text(text).unwrap(), now)
}

fn state(t: &Tracker, id: &str) -> JobState {
    t.job(&id.into()).unwrap().state
}

/// The wall clock set back an hour (an NTP step, a user fixing the time) while a job waits.
/// The job then leaves the queue: it is looked up at once, not after the clock has caught up
/// with when the tracker first heard of it.
#[test]
fn a_clock_set_back_does_not_keep_a_vanished_job_waiting_for_the_clock_to_catch_up() {
    let mut t = Tracker::new(ME);
    poll(&mut t, &[theirs("a")], T0, T0 + 50);
    assert_eq!(state(&t, "a"), JobState::Pending);

    // Sent before the step back and answered after it, while `b` was being submitted: it says
    // nothing about `b`.
    let sent_before = t.snapshot_requested(T0 + 2 * SECOND);
    let back = T0 + 3 * SECOND - HOUR;
    t.expect_job(&theirs("b"), back);
    t.settle_submission(&"b".into(), Some(&"b".into()), back + 10);
    let (_, req) = t.apply_snapshot(
        &Snapshot {
            pending: vec![theirs("a")],
            requested_at: sent_before,
            ..Snapshot::default()
        },
        back + 20,
    );
    assert!(req.is_empty(), "{req:?}");

    // `a` leaves the queue; polls go on every two seconds by the clock as it now is.
    let mut looked_up = None;
    for i in 1..=3 {
        let sent = back + i * 2 * SECOND;
        let (_, req) = poll(&mut t, &[theirs("b")], sent, sent + 100);
        if req.contains(&Request::Outcome("a".into())) {
            looked_up = Some(i);
            break;
        }
        assert!(req.is_empty(), "{req:?}");
    }
    assert_eq!(
        looked_up,
        Some(1),
        "the first poll after the step looks it up"
    );
    let u = t.apply_outcome(&"a".into(), Lookup::NotFound, back + 2 * SECOND + 200);
    assert!(
        matches!(&u[0], Update::Job(j) if j.state == JobState::Deleted),
        "{u:?}"
    );
    assert_eq!(
        state(&t, "b"),
        JobState::Pending,
        "b was listed: still queued"
    );
}

/// The wall clock set forward a day (or the machine slept): a snapshot requested after the
/// step proves that a job known before it has left, and one requested before the step proves
/// nothing about a job first heard of after it.
#[test]
fn a_clock_set_forward_keeps_snapshots_and_jobs_in_order() {
    let mut t = Tracker::new(ME);
    poll(&mut t, &[theirs("a")], T0, T0 + 50);
    let sent_before = t.snapshot_requested(T0 + SECOND);
    let ahead = T0 + DAY;
    t.describe_job(&theirs("b"), ahead);
    let (_, req) = t.apply_snapshot(
        &Snapshot {
            pending: vec![theirs("a")],
            requested_at: sent_before,
            ..Snapshot::default()
        },
        ahead + 10,
    );
    assert!(req.is_empty(), "nothing said about b: {req:?}");
    let (_, req) = poll(&mut t, &[], ahead + 2 * SECOND, ahead + 2 * SECOND + 50);
    let mut req: Vec<_> = req.into_iter().map(|r| format!("{r:?}")).collect();
    req.sort();
    assert_eq!(
        req,
        [r#"Outcome(PromptId("a"))"#, r#"Outcome(PromptId("b"))"#]
    );
}

/// Our clock stepped back during a run: the run is measured in the tracker's own time (what
/// it saw pass), not as a negative span clipped to nothing. Stepped forward, the step counts
/// (it cannot be told from the machine having slept), unless the server's clock measures.
#[test]
fn a_run_is_measured_by_one_clock_that_never_goes_back() {
    let run = |timestamps: bool, step: Millis| {
        let mut t = Tracker::new(ME);
        let ts = |at: Millis| {
            if timestamps {
                format!(r#","timestamp":{at}"#)
            } else {
                String::new()
            }
        };
        let start = format!(
            r#"{{"type":"execution_start","data":{{"prompt_id":"p"{}}}}}"#,
            ts(T0)
        );
        msg(&mut t, &start, T0);
        msg(
            &mut t,
            r#"{"type":"executing","data":{"prompt_id":"p","node":"1"}}"#,
            T0 + 4 * SECOND,
        );
        // The step: the next input is 2 s later in truth.
        msg(
            &mut t,
            r#"{"type":"progress","data":{"prompt_id":"p","node":"1","value":1,"max":2}}"#,
            T0 + 6 * SECOND + step,
        );
        let view = t.job(&"p".into()).unwrap();
        let running_elapsed = view.elapsed_ms;
        let end = format!(
            r#"{{"type":"execution_success","data":{{"prompt_id":"p"{}}}}}"#,
            ts(T0 + 10 * SECOND)
        );
        msg(&mut t, &end, T0 + 10 * SECOND + step);
        msg(
            &mut t,
            r#"{"type":"executing","data":{"prompt_id":"p","node":null}}"#,
            T0 + 10 * SECOND + step,
        );
        let u = t.apply_outcome(&"p".into(), Lookup::Unavailable, T0 + 10 * SECOND + step);
        let Some(Update::Job(done)) = u.into_iter().find(|u| matches!(u, Update::Job(_))) else {
            panic!("the job ended");
        };
        assert_eq!(done.state, JobState::Success);
        (running_elapsed, done.run_ms, done.elapsed_ms)
    };
    // Back an hour: 4 s seen before the step, 4 s after; the 2 s across it are not seen.
    assert_eq!(run(false, -HOUR), (Some(4_000), Some(8_000), Some(8_000)));
    // Forward an hour: counted.
    assert_eq!(
        run(false, HOUR),
        (
            Some(HOUR as u64 + 6_000),
            Some(HOUR as u64 + 10_000),
            Some(HOUR as u64 + 10_000)
        )
    );
    // The server said when it started and ended: its clock measures the run either way.
    assert_eq!(run(true, -HOUR).1, Some(10_000));
    assert_eq!(run(true, HOUR).1, Some(10_000));
}

/// Elapsed time is never taken between the server's clock and ours: a server two hours behind
/// shows its start time, but the job has run for as long as we saw it run.
#[test]
fn elapsed_time_never_mixes_the_servers_clock_and_ours() {
    let mut t = Tracker::new(ME);
    let server_start = T0 - 2 * HOUR;
    msg(
        &mut t,
        &format!(
            r#"{{"type":"execution_start","data":{{"prompt_id":"p","timestamp":{server_start}}}}}"#
        ),
        T0,
    );
    msg(
        &mut t,
        r#"{"type":"executing","data":{"prompt_id":"p","node":"1"}}"#,
        T0 + 3 * SECOND,
    );
    let v = t.job(&"p".into()).unwrap();
    assert_eq!(
        v.started_at_ms,
        Some(server_start),
        "the server's start is shown"
    );
    assert_eq!(v.elapsed_ms, Some(3_000));
}

/// A server whose clock runs 200 days ahead, or that counts in microseconds: its times are
/// shown and journalled within a day of ours, and measure nothing (our clock does).
#[test]
fn a_server_clock_far_ahead_or_in_microseconds_is_clamped_and_measures_nothing() {
    for (name, at) in [
        (
            "200 days ahead",
            (|t: Millis| t + 200 * DAY) as fn(Millis) -> Millis,
        ),
        ("microseconds", |t: Millis| t * 1_000),
    ] {
        let mut t = Tracker::new(ME);
        msg(
            &mut t,
            &format!(
                r#"{{"type":"execution_start","data":{{"prompt_id":"p","timestamp":{}}}}}"#,
                at(T0)
            ),
            T0,
        );
        msg(
            &mut t,
            &format!(
                r#"{{"type":"execution_success","data":{{"prompt_id":"p","timestamp":{}}}}}"#,
                at(T0 + 10 * SECOND)
            ),
            T0 + 10 * SECOND,
        );
        msg(
            &mut t,
            r#"{"type":"executing","data":{"prompt_id":"p","node":null}}"#,
            T0 + 10 * SECOND,
        );
        let u = t.apply_outcome(&"p".into(), Lookup::Unavailable, T0 + 10 * SECOND);
        let Some(Update::Job(v)) = u.into_iter().next() else {
            panic!("{name}: the job ended");
        };
        // (A timestamp past the year 9999 is not even decoded as one: then ours is shown.)
        let near =
            |t: Option<Millis>| t.is_some_and(|t| (T0 - DAY..=T0 + 10 * SECOND + DAY).contains(&t));
        assert!(near(v.started_at_ms), "{name}: {:?}", v.started_at_ms);
        assert!(near(v.ended_at_ms), "{name}: {:?}", v.ended_at_ms);
        assert_eq!(v.run_ms, Some(10_000), "{name}: by our clock");

        // The same from the server's record of another client's job.
        let mut t = Tracker::new(ME);
        poll(&mut t, &[theirs("q")], T0, T0);
        poll(&mut t, &[], T0 + SECOND, T0 + SECOND);
        let found = Lookup::Found(Box::new(comfy_protocol::http::FinishedJob {
            prompt_id: "q".into(),
            outcome: comfy_protocol::http::Outcome::Success,
            outputs: Default::default(),
            client_id: Some("browser".into()),
            started_ms: Some(at(T0)),
            ended_ms: Some(at(T0 + 500)),
        }));
        let u = t.apply_outcome(&"q".into(), found, T0 + 2 * SECOND);
        let Some(Update::Job(v)) = u.into_iter().next() else {
            panic!("{name}: the job ended");
        };
        assert!(
            v.ended_at_ms
                .is_some_and(|t| (T0 - DAY..=T0 + 2 * SECOND + DAY).contains(&t)),
            "{name}: {:?}",
            v.ended_at_ms
        );
        assert_eq!(
            v.run_ms, None,
            "{name}: never seen running, nothing believable"
        );
    }
}

/// Times at the ends of the range, from the server and from our clock, never overflow (a
/// panic in debug builds, garbage in release) anywhere a job is measured or estimated.
#[test]
fn extreme_timestamps_never_overflow() {
    let mut t = Tracker::new(ME);
    let mine = |id: &str| ActiveJob {
        client_id: Some(Some(ME.into())),
        ..theirs(id)
    };
    // Something learned, so running jobs get estimates too.
    t.expect_job(&mine("x"), 0);
    msg(
        &mut t,
        r#"{"type":"execution_start","data":{"prompt_id":"x"}}"#,
        0,
    );
    msg(
        &mut t,
        r#"{"type":"executing","data":{"prompt_id":"x","node":"1"}}"#,
        0,
    );
    msg(
        &mut t,
        r#"{"type":"executing","data":{"prompt_id":"x","node":null}}"#,
        10,
    );
    t.apply_outcome(&"x".into(), Lookup::NotFound, 20);

    t.restore_job(
        &theirs("r"),
        JobState::Running,
        Millis::MIN,
        Some(Millis::MIN),
        20,
    );
    t.restore_job(
        &theirs("s"),
        JobState::Running,
        Millis::MAX,
        Some(Millis::MAX),
        20,
    );
    for (i, now) in [
        Millis::MAX,
        Millis::MIN,
        Millis::MAX,
        0,
        Millis::MIN + 1,
        Millis::MAX,
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("p{i}");
        t.expect_job(&mine(&id), now);
        for ts in [Millis::MIN, Millis::MAX] {
            msg(
                &mut t,
                &format!(
                    r#"{{"type":"execution_start","data":{{"prompt_id":"{id}","timestamp":{ts}}}}}"#
                ),
                now,
            );
            for v in 1..=4 {
                msg(
                    &mut t,
                    &format!(
                        r#"{{"type":"progress","data":{{"prompt_id":"{id}","node":"1","value":{v},"max":4}}}}"#
                    ),
                    now,
                );
            }
            t.tick(now);
            poll(&mut t, &[theirs("r"), theirs("s")], now, now);
        }
        msg(
            &mut t,
            &format!(
                r#"{{"type":"execution_success","data":{{"prompt_id":"{id}","timestamp":{}}}}}"#,
                Millis::MAX
            ),
            now,
        );
        msg(
            &mut t,
            &format!(r#"{{"type":"executing","data":{{"prompt_id":"{id}","node":null}}}}"#),
            now,
        );
        t.apply_outcome(&id.as_str().into(), Lookup::Unavailable, now);
        for j in t.active_jobs() {
            let _ = (j.elapsed_ms, j.run_ms, j.estimate);
        }
    }
    assert!(
        t.timings()
            .typical(
                &t.jobs[&PromptId::from("r")]
                    .shape
                    .as_ref()
                    .unwrap()
                    .fingerprint
            )
            .is_some(),
        "estimates were made"
    );
    let r = t.job(&"r".into()).unwrap();
    assert!(r.elapsed_ms.is_some());
}

/// Node ids and warnings are the server's to make up. A job keeps every node of its graph and
/// a bounded number of others, and the first warnings only; what it publishes stays bounded.
#[test]
fn a_server_making_up_node_ids_cannot_grow_a_job_without_bound() {
    let mut t = Tracker::new(ME);
    t.expect_job(
        &ActiveJob {
            client_id: Some(Some(ME.into())),
            ..theirs("p")
        },
        0,
    );
    msg(
        &mut t,
        r#"{"type":"execution_start","data":{"prompt_id":"p"}}"#,
        1,
    );
    let many = 3 * job::EXTRA_NODES;
    let cached: Vec<String> = (0..many).map(|i| format!("\"c{i}\"")).collect();
    msg(
        &mut t,
        &format!(
            r#"{{"type":"execution_cached","data":{{"prompt_id":"p","nodes":[{}]}}}}"#,
            cached.join(",")
        ),
        2,
    );
    for i in 0..many {
        let now = 10 + i as Millis;
        msg(
            &mut t,
            &format!(r#"{{"type":"executing","data":{{"prompt_id":"p","node":"e{i}"}}}}"#),
            now,
        );
        msg(
            &mut t,
            &format!(
                r#"{{"type":"progress","data":{{"prompt_id":"p","node":"s{i}","value":1,"max":2}}}}"#
            ),
            now,
        );
        msg(
            &mut t,
            &format!(
                r#"{{"type":"progress_state","data":{{"prompt_id":"p","nodes":{{"g{i}":{{"value":0,"max":1,"state":"running"}}}}}}}}"#
            ),
            now,
        );
        msg(
            &mut t,
            &format!(
                r#"{{"type":"execution_error","data":{{"prompt_id":"p","node_id":"b{i}","node_type":"Gate","executed":[],"exception_message":"blocked {i}","exception_type":"ExecutionBlocked","traceback":[],"current_inputs":[],"current_outputs":[]}}}}"#
            ),
            now,
        );
    }
    // The graph's own nodes are always followed.
    msg(
        &mut t,
        r#"{"type":"executing","data":{"prompt_id":"p","node":"1"}}"#,
        10_000,
    );
    // Every node of the graph, and the graph's count plus EXTRA_NODES others at most.
    let room = 2 + 2 + job::EXTRA_NODES;
    let job = &t.jobs[&PromptId::from("p")];
    assert!(job.nodes.len() <= room, "{}", job.nodes.len());
    assert!(job.plan.len() <= room, "{}", job.plan.len());
    assert!(job.cached.len() <= room, "{}", job.cached.len());
    assert!(job.current.len() <= room, "{}", job.current.len());
    assert!(job.nodes.contains_key(&NodeId::from("1")));
    let v = t.job(&"p".into()).unwrap();
    assert_eq!(v.warnings.len(), job::MAX_WARNINGS);
    assert_eq!(v.warnings[0], "blocked 0", "the first ones are kept");
    assert!(v.running_nodes.len() <= room);
    assert_eq!(v.node.as_ref().map(NodeId::as_str), Some("1"));
}
