//! The job journal: forward-only states, the once-only terminal write, and its queries.

use crate::support::{end, own, seen, store_with_instance};
use comfy_store::{JobOrigin, JobOutcome, JobState, NewInstance, Store, StoreError};
use rusqlite::Connection;

#[test]
fn a_job_moves_from_pending_to_running_to_its_outcome() {
    let (_dir, mut store, id) = store_with_instance();
    let rec = store.record_seen(&seen(id, "p1", 100), 100).unwrap();
    assert_eq!(rec.state, JobState::Pending);

    let rec = store
        .record_running(&seen(id, "p1", 100), 150, 150)
        .unwrap();
    assert_eq!(rec.state, JobState::Running);
    assert_eq!(rec.started_at, Some(150));

    let mut e = end(id, "p1", JobOutcome::Success, 900);
    e.outputs_json = Some(r#"{"9":{"images":[{"filename":"a.png"}]}}"#.into());
    e.node_durations_json = Some(r#"{"3":700,"9":50}"#.into());
    assert!(store.record_terminal(&e, 900).unwrap());

    let rec = store.job(id, "p1").unwrap().unwrap();
    assert_eq!(rec.state, JobState::Success);
    assert_eq!(rec.finished_at, Some(900));
    assert_eq!(rec.queued_at, 100);
    assert_eq!(rec.node_durations_json, e.node_durations_json);
    assert_eq!(rec.updated_at, 900);
}

#[test]
fn a_second_terminal_write_changes_nothing() {
    let (_dir, mut store, id) = store_with_instance();
    store.record_seen(&seen(id, "p1", 1), 1).unwrap();
    let mut first = end(id, "p1", JobOutcome::Error, 10);
    first.error_json = Some(r#"{"exception_type":"OOM"}"#.into());
    assert!(store.record_terminal(&first, 10).unwrap());

    let replay = end(id, "p1", JobOutcome::Lost, 20);
    assert!(!store.record_terminal(&replay, 20).unwrap());

    let rec = store.job(id, "p1").unwrap().unwrap();
    assert_eq!(rec.state, JobState::Error);
    assert_eq!(rec.finished_at, Some(10));
    assert_eq!(rec.error_json, first.error_json);
    assert_eq!(rec.updated_at, 10);
}

#[test]
fn seen_and_running_never_downgrade_a_finished_job() {
    let (_dir, mut store, id) = store_with_instance();
    store.record_seen(&seen(id, "p1", 1), 1).unwrap();
    store
        .record_terminal(&end(id, "p1", JobOutcome::Interrupted, 5), 5)
        .unwrap();

    let rec = store.record_seen(&seen(id, "p1", 1), 6).unwrap();
    assert_eq!(rec.state, JobState::Interrupted);
    let rec = store.record_running(&seen(id, "p1", 1), 7, 7).unwrap();
    assert_eq!(rec.state, JobState::Interrupted);
    assert_eq!(rec.started_at, None);
    assert_eq!(rec.updated_at, 5, "a finished job is not touched at all");
}

#[test]
fn a_running_job_seen_in_a_stale_queue_stays_running() {
    let (_dir, mut store, id) = store_with_instance();
    store.record_running(&seen(id, "p1", 1), 2, 2).unwrap();
    let rec = store.record_seen(&seen(id, "p1", 1), 3).unwrap();
    assert_eq!(rec.state, JobState::Running);
    assert_eq!(rec.started_at, Some(2));
    // The first start time sticks.
    let rec = store.record_running(&seen(id, "p1", 1), 9, 9).unwrap();
    assert_eq!(rec.started_at, Some(2));
}

#[test]
fn the_schema_itself_refuses_to_change_a_terminal_state() {
    let (dir, mut store, id) = store_with_instance();
    store.record_seen(&seen(id, "p1", 1), 1).unwrap();
    store
        .record_terminal(&end(id, "p1", JobOutcome::Success, 2), 2)
        .unwrap();

    let conn = Connection::open(dir.path().join("monitor.db")).unwrap();
    let err = conn
        .execute("UPDATE jobs SET state = 'lost' WHERE prompt_id = 'p1'", [])
        .unwrap_err();
    assert!(err.to_string().contains("final state"), "{err}");
}

#[test]
fn a_terminal_write_for_an_unknown_job_is_not_found() {
    let (_dir, mut store, id) = store_with_instance();
    let err = store
        .record_terminal(&end(id, "never-seen", JobOutcome::Success, 1), 1)
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
}

#[test]
fn two_stores_racing_write_each_terminal_state_exactly_once() {
    let (dir, mut store, id) = store_with_instance();
    let path = dir.path().join("monitor.db");
    const JOBS: usize = 200;
    for i in 0..JOBS {
        store
            .record_seen(&seen(id, &format!("p{i}"), i as i64), 0)
            .unwrap();
    }
    drop(store);

    let barrier = std::sync::Barrier::new(2);
    let outcomes = [JobOutcome::Success, JobOutcome::Lost];
    let wins: Vec<Vec<bool>> = std::thread::scope(|s| {
        let handles: Vec<_> = outcomes
            .iter()
            .map(|&outcome| {
                let (path, barrier) = (&path, &barrier);
                s.spawn(move || {
                    let mut store = Store::open(path).unwrap();
                    barrier.wait();
                    (0..JOBS)
                        .map(|i| {
                            store
                                .record_terminal(&end(id, &format!("p{i}"), outcome, 50), 50)
                                .unwrap()
                        })
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    let store = Store::open(&path).unwrap();
    let mut won = [0; 2];
    for (i, (a, b)) in wins[0].iter().zip(&wins[1]).enumerate() {
        assert!(a ^ b, "job p{i}: first store wrote {a}, second wrote {b}");
        let winner = usize::from(*b);
        won[winner] += 1;
        let state = store.job(id, &format!("p{i}")).unwrap().unwrap().state;
        assert_eq!(state, JobState::from(outcomes[winner]));
    }
    assert_eq!(won[0] + won[1], JOBS);
    eprintln!("terminal writes won per store: {won:?}");
}

#[test]
fn unfinished_jobs_are_the_pending_and_running_ones_of_that_instance_oldest_first() {
    let (_dir, mut store, id) = store_with_instance();
    let other = store
        .insert_instance(&NewInstance::new("other", "http://other:8188"), 1)
        .unwrap()
        .id;
    store.record_seen(&seen(id, "late", 30), 30).unwrap();
    store
        .record_running(&seen(id, "early", 10), 11, 11)
        .unwrap();
    store.record_seen(&seen(id, "done", 20), 20).unwrap();
    store
        .record_terminal(&end(id, "done", JobOutcome::Success, 25), 25)
        .unwrap();
    store.record_seen(&seen(other, "elsewhere", 5), 5).unwrap();

    let ids: Vec<_> = store
        .unfinished_jobs(id)
        .unwrap()
        .into_iter()
        .map(|j| j.prompt_id)
        .collect();
    assert_eq!(ids, ["early", "late"]);
}

#[test]
fn history_pages_run_newest_first() {
    let (_dir, mut store, id) = store_with_instance();
    let other = store
        .insert_instance(&NewInstance::new("other", "http://other:8188"), 1)
        .unwrap()
        .id;
    for t in 1..=5 {
        store
            .record_seen(&seen(id, &format!("g{t}"), t * 10), 0)
            .unwrap();
    }
    store.record_seen(&seen(other, "o1", 35), 0).unwrap();

    let page = |inst, limit, offset| -> Vec<String> {
        store
            .history(inst, limit, offset)
            .unwrap()
            .into_iter()
            .map(|j| j.prompt_id)
            .collect()
    };
    assert_eq!(page(None, 3, 0), ["g5", "g4", "o1"]);
    assert_eq!(page(None, 3, 3), ["g3", "g2", "g1"]);
    assert!(page(None, 3, 6).is_empty());
    assert_eq!(page(Some(id), 2, 1), ["g4", "g3"]);
    assert_eq!(page(Some(other), 10, 0), ["o1"]);
}

#[test]
fn only_own_jobs_keep_their_workflow() {
    let (_dir, mut store, id) = store_with_instance();
    let mut theirs = seen(id, "theirs", 1);
    theirs.workflow_json = Some("{}".into());
    assert!(matches!(
        store.record_seen(&theirs, 1),
        Err(StoreError::Invalid(_))
    ));

    let mine = store.record_seen(&own(id, "mine", 2), 2).unwrap();
    assert!(mine.has_workflow);
    assert_eq!(mine.origin, JobOrigin::SelfApp);
    let wf = store.job_workflow(mine.id).unwrap().unwrap();
    assert!(wf.contains("KSampler"));
}

#[test]
fn json_columns_refuse_text_that_is_not_json() {
    let (_dir, mut store, id) = store_with_instance();
    let mut bad = own(id, "p", 1);
    bad.workflow_json = Some("{not json".into());
    assert!(matches!(
        store.record_seen(&bad, 1),
        Err(StoreError::Invalid(_))
    ));
    store.record_seen(&seen(id, "p", 1), 1).unwrap();
    let mut e = end(id, "p", JobOutcome::Error, 2);
    e.error_json = Some("oops".into());
    assert!(matches!(
        store.record_terminal(&e, 2),
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(
        store.job(id, "p").unwrap().unwrap().state,
        JobState::Pending
    );
}

#[test]
fn lost_own_jobs_come_back_with_their_workflow() {
    let (_dir, mut store, id) = store_with_instance();
    store.record_seen(&own(id, "mine-lost", 1), 1).unwrap();
    store.record_seen(&own(id, "mine-ok", 2), 2).unwrap();
    store.record_seen(&seen(id, "theirs-lost", 3), 3).unwrap();
    for (p, o) in [
        ("mine-lost", JobOutcome::Lost),
        ("mine-ok", JobOutcome::Success),
        ("theirs-lost", JobOutcome::Lost),
    ] {
        let mut e = end(id, p, o, 10);
        e.detail = Some("the server restarted".into());
        store.record_terminal(&e, 10).unwrap();
    }

    let lost = store.lost_own_jobs(Some(id)).unwrap();
    assert_eq!(lost.len(), 1);
    assert_eq!(lost[0].job.prompt_id, "mine-lost");
    assert_eq!(lost[0].job.detail.as_deref(), Some("the server restarted"));
    assert!(lost[0].workflow_json.contains("KSampler"));
    assert_eq!(store.lost_own_jobs(None).unwrap().len(), 1);
}

#[test]
fn a_job_seen_by_polling_before_submission_was_recorded_becomes_ours() {
    let (_dir, mut store, id) = store_with_instance();
    store.record_seen(&seen(id, "p", 1), 1).unwrap();
    let rec = store.record_seen(&own(id, "p", 1), 2).unwrap();
    assert_eq!(rec.origin, JobOrigin::SelfApp);
    assert!(rec.has_workflow);
}

/// One event of a job (seen or running, its end, its output rows) is one transaction: a failure
/// between the steps (here a real SQLite error on the output insert) leaves nothing half
/// written, so the job stays unfinished and the next start reconciles it whole.
#[test]
fn a_job_event_is_written_whole_or_not_at_all() {
    let (_dir, mut store, id) = store_with_instance();
    let image = comfy_store::NewOutput {
        node_id: "9".into(),
        filename: "ComfyUI_00001_.png".into(),
        subfolder: String::new(),
        kind: comfy_store::OutputKind::Output,
    };
    let seen_running = own(id, "p1", 1);
    store.record_running(&seen_running, 2, 2).unwrap();
    let never_seen = seen(id, "p2", 3);
    let mut done = end(id, "p1", JobOutcome::Success, 10);
    done.outputs_json = Some(r#"[{"filename":"ComfyUI_00001_.png"}]"#.into());
    let done2 = end(id, "p2", JobOutcome::Success, 11);
    let event = |seen, end| comfy_store::JobEvent {
        seen,
        running_since: Some(2),
        end: Some(end),
        outputs: std::slice::from_ref(&image),
    };

    let other = Connection::open(store.path()).unwrap();
    other
        .execute_batch(
            "CREATE TRIGGER fail_outputs BEFORE INSERT ON outputs \
             BEGIN SELECT RAISE(ABORT, 'injected: the write failed'); END;",
        )
        .unwrap();
    assert!(store.record_job(&event(&seen_running, &done), 10).is_err());
    assert!(store.record_job(&event(&never_seen, &done2), 11).is_err());
    let rec = store.job(id, "p1").unwrap().unwrap();
    assert_eq!(rec.state, JobState::Running, "no end without its outputs");
    assert_eq!((rec.finished_at, rec.outputs_json), (None, None));
    assert!(store.outputs(rec.id).unwrap().is_empty());
    assert!(store.job(id, "p2").unwrap().is_none(), "not even seen");

    other.execute_batch("DROP TRIGGER fail_outputs").unwrap();
    assert!(store.record_job(&event(&seen_running, &done), 12).unwrap());
    assert!(store.record_job(&event(&never_seen, &done2), 12).unwrap());
    for p in ["p1", "p2"] {
        let rec = store.job(id, p).unwrap().unwrap();
        assert_eq!(rec.state, JobState::Success, "{p}");
        assert_eq!(store.outputs(rec.id).unwrap().len(), 1, "{p}");
    }
    // A replay of the end writes nothing, outputs included.
    assert!(!store.record_job(&event(&seen_running, &done), 13).unwrap());
    let rec = store.job(id, "p1").unwrap().unwrap();
    assert_eq!(store.outputs(rec.id).unwrap().len(), 1);
}

#[test]
fn a_job_event_without_an_end_records_only_the_job() {
    let (_dir, mut store, id) = store_with_instance();
    let s = seen(id, "p1", 5);
    let event = comfy_store::JobEvent {
        seen: &s,
        running_since: Some(7),
        end: None,
        outputs: &[],
    };
    assert!(!store.record_job(&event, 7).unwrap());
    let rec = store.job(id, "p1").unwrap().unwrap();
    assert_eq!((rec.state, rec.started_at), (JobState::Running, Some(7)));
}
