//! The bounded job journal: only finished jobs are pruned, by age and by count per instance.

use crate::support::{db_path, end, own, seen};
use comfy_store::{
    InstanceId, JobOutcome, JobRetention, JobState, NewInstance, NewOutput, OutputKind, Store,
    StoreOptions,
};
use rusqlite::Connection;
use tempfile::TempDir;

const DAY: i64 = 24 * 60 * 60 * 1000;

/// A store with small limits and two instances besides "Local".
fn store(retention: JobRetention, prune_every: u32) -> (TempDir, Store, InstanceId, InstanceId) {
    let (dir, path) = db_path();
    let options = StoreOptions {
        job_retention: retention,
        prune_every,
        ..StoreOptions::default()
    };
    let mut store = Store::open_with(&path, options).unwrap();
    let a = store
        .insert_instance(&NewInstance::new("a", "http://a:8188"), 1)
        .unwrap()
        .id;
    let b = store
        .insert_instance(&NewInstance::new("b", "http://b:8188"), 1)
        .unwrap()
        .id;
    (dir, store, a, b)
}

fn keep(max_finished_per_instance: u32) -> JobRetention {
    JobRetention {
        max_finished_per_instance,
        ..JobRetention::default()
    }
}

/// Records a job and its end at `finished_at`.
fn finish(store: &mut Store, instance: InstanceId, prompt_id: &str, finished_at: i64) {
    store
        .record_seen(&seen(instance, prompt_id, finished_at - 1), finished_at - 1)
        .unwrap();
    let e = end(instance, prompt_id, JobOutcome::Success, finished_at);
    assert!(store.record_terminal(&e, finished_at).unwrap());
}

/// How many finished jobs an instance's journal holds.
fn finished(store: &Store, instance: InstanceId) -> usize {
    store
        .history(Some(instance), 1_000, 0)
        .unwrap()
        .iter()
        .filter(|j| j.state.is_terminal())
        .count()
}

/// Prompt ids of an instance's journal, newest queued first.
fn prompts(store: &Store, instance: InstanceId) -> Vec<String> {
    store
        .history(Some(instance), 1_000, 0)
        .unwrap()
        .into_iter()
        .map(|j| j.prompt_id)
        .collect()
}

#[test]
fn the_default_retention_is_ten_thousand_finished_jobs_per_instance_and_180_days() {
    let r = JobRetention::default();
    assert_eq!(r.max_finished_per_instance, 10_000);
    assert_eq!(r.max_age_ms, 180 * DAY);
    assert_eq!(StoreOptions::default().job_retention, r);
}

#[test]
fn pruning_drops_finished_jobs_older_than_the_age_limit() {
    let (_dir, mut store, a, b) = store(JobRetention::default(), 1_000);
    let now = 1_000 * DAY;
    finish(&mut store, a, "old", now - 181 * DAY);
    finish(&mut store, a, "recent", now - 179 * DAY);
    finish(&mut store, b, "old-b", now - 200 * DAY);
    finish(&mut store, b, "today", now);

    assert_eq!(store.prune_jobs(now).unwrap(), 2);
    assert_eq!(prompts(&store, a), ["recent"]);
    assert_eq!(prompts(&store, b), ["today"]);
    assert_eq!(store.prune_jobs(now).unwrap(), 0, "nothing more to drop");
}

#[test]
fn pruning_keeps_the_newest_finished_jobs_of_each_instance_by_finish_time() {
    let (_dir, mut store, a, b) = store(keep(3), 1_000);
    // Queued in name order, finished in another: the finish time decides.
    for (prompt, finished_at) in [("j1", 50), ("j2", 10), ("j3", 40), ("j4", 20), ("j5", 30)] {
        store.record_seen(&seen(a, prompt, 1), 1).unwrap();
        store
            .record_terminal(&end(a, prompt, JobOutcome::Success, finished_at), 60)
            .unwrap();
    }
    // Equal finish times: the higher id (the later recorded) is the newer.
    finish(&mut store, b, "b1", 100);
    finish(&mut store, b, "b2", 100);
    finish(&mut store, b, "b3", 100);
    finish(&mut store, b, "b4", 100);
    let other = store
        .insert_instance(&NewInstance::new("c", "http://c:8188"), 1)
        .unwrap()
        .id;
    finish(&mut store, other, "c1", 5);
    finish(&mut store, other, "c2", 6);

    assert_eq!(store.prune_jobs(200).unwrap(), 3);
    let mut left = prompts(&store, a);
    left.sort();
    assert_eq!(left, ["j1", "j3", "j5"], "finished at 50, 40 and 30");
    let mut left = prompts(&store, b);
    left.sort();
    assert_eq!(left, ["b2", "b3", "b4"]);
    assert_eq!(prompts(&store, other).len(), 2, "under the cap: untouched");
}

#[test]
fn unfinished_jobs_are_never_pruned_however_old() {
    let retention = JobRetention {
        max_finished_per_instance: 0,
        max_age_ms: DAY,
    };
    let (_dir, mut store, a, _) = store(retention, 1_000);
    store.record_seen(&seen(a, "waiting", 0), 0).unwrap();
    store.record_running(&own(a, "running", 1), 2, 2).unwrap();
    finish(&mut store, a, "done", 3);

    let now = 10_000 * DAY;
    assert_eq!(store.prune_jobs(now).unwrap(), 1);
    let unfinished: Vec<_> = store
        .unfinished_jobs(a)
        .unwrap()
        .into_iter()
        .map(|j| (j.prompt_id, j.state))
        .collect();
    assert_eq!(
        unfinished,
        [
            ("waiting".to_owned(), JobState::Pending),
            ("running".to_owned(), JobState::Running)
        ]
    );
    assert_eq!(store.job_count().unwrap(), 2);
    let running = store.job(a, "running").unwrap().unwrap();
    assert!(store.job_workflow(running.id).unwrap().is_some());
}

#[test]
fn a_pruned_job_takes_its_output_rows_but_not_the_downloaded_files() {
    let (dir, mut store, a, _) = store(keep(1), 1_000);
    finish(&mut store, a, "first", 10);
    finish(&mut store, a, "second", 20);
    let first = store.job(a, "first").unwrap().unwrap().id;
    let second = store.job(a, "second").unwrap().unwrap().id;
    let image = |name: &str| NewOutput {
        node_id: "9".into(),
        filename: name.into(),
        subfolder: String::new(),
        kind: OutputKind::Output,
    };
    store
        .record_outputs(first, &[image("a.png"), image("b.png")])
        .unwrap();
    store.record_outputs(second, &[image("c.png")]).unwrap();
    let copy = dir.path().join("a.png");
    std::fs::write(&copy, b"png").unwrap();
    let out = store.outputs(first).unwrap()[0].id;
    store.set_output_local_path(out, Some(&copy)).unwrap();

    assert_eq!(store.prune_jobs(30).unwrap(), 1);
    assert!(store.job(a, "first").unwrap().is_none());
    assert!(store.outputs(first).unwrap().is_empty());
    assert_eq!(store.outputs(second).unwrap().len(), 1);
    let conn = Connection::open(store.path()).unwrap();
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM outputs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 1, "no orphaned output rows");
    assert_eq!(std::fs::read(&copy).unwrap(), b"png");
}

#[test]
fn terminal_writes_prune_by_themselves_every_so_many() {
    let (_dir, mut store, a, b) = store(keep(5), 10);
    store.record_seen(&seen(a, "still-queued", 0), 0).unwrap();
    for i in 1..=9 {
        finish(&mut store, a, &format!("j{i}"), i * 10);
    }
    assert_eq!(store.job_count().unwrap(), 10, "no pruning before the 10th");
    finish(&mut store, a, "j10", 100);
    assert_eq!(
        store.job_count().unwrap(),
        6,
        "five finished and the queued one"
    );

    for i in 11..=300 {
        finish(&mut store, a, &format!("j{i}"), i * 10);
        finish(&mut store, b, &format!("b{i}"), i * 10);
        assert!(finished(&store, a) < 5 + 10, "between two prunes");
        assert!(finished(&store, b) < 5 + 10, "between two prunes");
    }
    // 10 + 580 terminal writes: the last one pruned.
    assert_eq!(finished(&store, a), 5);
    assert_eq!(finished(&store, b), 5);
    assert_eq!(store.job_count().unwrap(), 11);
    assert!(prompts(&store, a).contains(&"j300".to_owned()));
    assert!(prompts(&store, a).contains(&"still-queued".to_owned()));
}

#[test]
fn the_terminal_write_count_survives_reopening() {
    let (_dir, mut store, a, _) = store(keep(2), 10);
    let path = store.path().to_path_buf();
    for i in 1..=7 {
        finish(&mut store, a, &format!("j{i}"), i);
    }
    drop(store);
    let options = StoreOptions {
        job_retention: keep(2),
        prune_every: 10,
        ..StoreOptions::default()
    };
    let mut store = Store::open_with(&path, options).unwrap();
    for i in 8..=9 {
        finish(&mut store, a, &format!("j{i}"), i);
    }
    assert_eq!(store.job_count().unwrap(), 9);
    finish(&mut store, a, "j10", 10);
    assert_eq!(prompts(&store, a), ["j10", "j9"]);
}

#[test]
fn a_terminal_write_that_changes_nothing_is_not_counted() {
    let (_dir, mut store, a, _) = store(keep(1), 3);
    finish(&mut store, a, "j1", 1);
    finish(&mut store, a, "j2", 2);
    // Replays of an end already written: no write, no count, no pruning.
    for _ in 0..5 {
        assert!(!store
            .record_terminal(&end(a, "j2", JobOutcome::Lost, 9), 9)
            .unwrap());
    }
    assert_eq!(store.job_count().unwrap(), 2);
    finish(&mut store, a, "j3", 3);
    assert_eq!(prompts(&store, a), ["j3"]);
}

/// A server whose clock runs 200 days ahead, or that counts in microseconds, writes finish
/// times far in the future. The prune that a terminal write runs uses the caller's clock, so
/// no job of any instance is aged out by them.
#[test]
fn a_terminal_write_prunes_with_this_machines_clock_not_the_jobs_finish_time() {
    let (_dir, mut store, a, b) = store(JobRetention::default(), 1);
    let now = 20_000 * DAY;
    finish(&mut store, a, "yesterday", now - DAY);
    finish(&mut store, b, "last-month", now - 30 * DAY);
    for (prompt, finished_at) in [("ahead", now + 200 * DAY), ("micros", now * 1_000)] {
        store.record_seen(&seen(a, prompt, now), now).unwrap();
        let e = end(a, prompt, JobOutcome::Success, finished_at);
        assert!(store.record_terminal(&e, now).unwrap());
    }
    assert_eq!(store.job_count().unwrap(), 4, "nothing pruned");
    // And this machine's clock still ages out what is old by it.
    store.record_seen(&seen(b, "ancient", 0), now).unwrap();
    let e = end(b, "ancient", JobOutcome::Success, now - 181 * DAY);
    assert!(store.record_terminal(&e, now).unwrap());
    assert!(store.job(b, "ancient").unwrap().is_none());
    assert_eq!(store.job_count().unwrap(), 4);
}

/// The count limit keeps this app's own jobs that keep a workflow (to queue again) or a
/// downloaded copy apart from the rest: a busy shared server's other jobs never push them out.
#[test]
fn other_clients_jobs_never_crowd_out_this_apps_jobs_that_keep_a_workflow_or_a_copy() {
    let (dir, mut store, a, _) = store(keep(3), 1_000);
    // Ours, oldest first: two with their workflow, one whose output was downloaded, and one
    // with neither (nothing to keep: it counts with the rest).
    store.record_seen(&own(a, "wf1", 1), 1).unwrap();
    store.record_seen(&own(a, "wf2", 2), 2).unwrap();
    let mut copied = own(a, "copied", 3);
    copied.workflow_json = None;
    let copied_id = store.record_seen(&copied, 3).unwrap().id;
    let mut bare = own(a, "bare", 4);
    bare.workflow_json = None;
    store.record_seen(&bare, 4).unwrap();
    for (i, p) in ["wf1", "wf2", "copied", "bare"].into_iter().enumerate() {
        let e = end(a, p, JobOutcome::Success, 10 + i as i64);
        assert!(store.record_terminal(&e, 20).unwrap());
    }
    store
        .record_outputs(
            copied_id,
            &[NewOutput {
                node_id: "9".into(),
                filename: "a.png".into(),
                subfolder: String::new(),
                kind: OutputKind::Output,
            }],
        )
        .unwrap();
    let out = store.outputs(copied_id).unwrap()[0].id;
    store
        .set_output_local_path(out, Some(&dir.path().join("a.png")))
        .unwrap();
    // Then a hundred of other clients' jobs, all newer.
    for i in 0..100 {
        finish(&mut store, a, &format!("theirs{i}"), 100 + i);
    }

    store.prune_jobs(1_000).unwrap();
    let mut left = prompts(&store, a);
    left.sort();
    assert_eq!(
        left,
        ["copied", "theirs97", "theirs98", "theirs99", "wf1", "wf2"]
    );

    // Our own are limited too, by their own count.
    for p in ["wf3", "wf4"] {
        store.record_seen(&own(a, p, 50), 50).unwrap();
        assert!(store
            .record_terminal(&end(a, p, JobOutcome::Error, 50), 50)
            .unwrap());
    }
    store.prune_jobs(1_000).unwrap();
    let mut left = prompts(&store, a);
    left.sort();
    assert_eq!(
        left,
        ["copied", "theirs97", "theirs98", "theirs99", "wf3", "wf4"],
        "the oldest own ones went"
    );
}

/// Size of the database and its write-ahead log on disk.
fn on_disk(store: &Store) -> (u64, u64) {
    let size = |p: std::path::PathBuf| std::fs::metadata(p).map_or(0, |m| m.len());
    let path = store.path().to_path_buf();
    let mut wal = path.clone().into_os_string();
    wal.push("-wal");
    (size(path), size(wal.into()))
}

/// Pruning gives the space back: the file is in incremental auto-vacuum mode, pruning frees the
/// pages and checkpoints, and the write-ahead log is cut back to its limit when it resets.
#[test]
fn pruning_gives_the_space_back_to_the_file_system() {
    let (_dir, mut store, a, _) = store(keep(1_000), 1_000);
    assert_eq!(store.auto_vacuum().unwrap(), 2, "incremental");
    // About 12 MiB of workflows.
    let big = format!(
        r#"{{"1":{{"class_type":"Note","inputs":{{"text":"{}"}}}}}}"#,
        "x".repeat(60_000)
    );
    for i in 0..200 {
        let mut job = own(a, &format!("j{i}"), i);
        job.workflow_json = Some(big.clone());
        store.record_seen(&job, i).unwrap();
        store
            .record_terminal(&end(a, &format!("j{i}"), JobOutcome::Success, i), i)
            .unwrap();
    }
    let before = on_disk(&store);
    assert!(before.0 + before.1 > 10 << 20, "{before:?}");

    let pruned = store.prune_jobs(1_000 * DAY).unwrap();
    assert_eq!(pruned, 200);
    // The next write resets the log and cuts it to the limit.
    finish(&mut store, a, "after", 1_000 * DAY);
    let (db, wal) = on_disk(&store);
    assert!(
        db < 1 << 20,
        "the file shrank: {db} bytes (from {before:?})"
    );
    assert!(
        wal <= comfy_store::JOURNAL_SIZE_LIMIT as u64,
        "the log was cut back: {wal} bytes"
    );
}

/// A file made before incremental auto-vacuum is rebuilt once, at its first writable open,
/// keeping every row.
#[test]
fn a_file_from_before_is_switched_to_incremental_vacuum_once_keeping_its_rows() {
    let (dir, path) = db_path();
    {
        let mut store = Store::open(&path).unwrap();
        let a = store.instances().unwrap()[0].id;
        finish(&mut store, a, "kept", 5);
    }
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA auto_vacuum = NONE; VACUUM;")
            .unwrap();
        let mode: i64 = conn
            .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, 0, "as an older version left it");
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.auto_vacuum().unwrap(), 2);
    let a = store.instances().unwrap()[0].id;
    assert!(store.job(a, "kept").unwrap().is_some());
    drop(dir);
}
