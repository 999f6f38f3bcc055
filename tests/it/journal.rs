//! The journal on a real SQLite file: nothing is lost when the app or the server restarts.

use crate::live::{fake, job, sampler, until};
use comfy_engine::actions::SubmitOptions;
use comfy_engine::journal::Journal;
use comfy_engine::Events;
use comfy_engine::{ConnectionState, Engine, EventKind, InstanceSpec, JobState};
use comfy_store::{NewInstance, Store};
use fake_comfyui::{FakeComfy, ServerVersion};
use std::sync::{Arc, Mutex};

struct App {
    engine: Engine,
    id: comfy_engine::InstanceId,
    recorder: tokio::task::JoinHandle<()>,
    /// Terminal states this app wrote, per prompt id.
    written: Arc<Mutex<Vec<(String, JobState)>>>,
    ended: tokio::sync::mpsc::UnboundedReceiver<comfy_engine::JobView>,
}

/// Starts "the app": an engine on the store's first instance, resuming what the journal left
/// unfinished, with every job event written to the journal.
async fn start_app(server: &FakeComfy, db: &std::path::Path) -> App {
    let mut store = Store::open(db).unwrap();
    let rec = match store
        .instances()
        .unwrap()
        .into_iter()
        .find(|i| i.name == "fake")
    {
        Some(r) => r,
        None => store
            .insert_instance(&NewInstance::new("fake", server.base_url()), 0)
            .unwrap(),
    };
    let journal = Journal::new(store);
    let restored = journal.restore(rec.id, &rec.client_id).unwrap();
    let mut spec = InstanceSpec::new("fake", &server.base_url()).unwrap();
    spec.client_id = rec.client_id.clone();
    let (engine, mut rx) = Engine::new(4096);
    let id = engine.add_instance_with(spec, restored).unwrap();
    let written = Arc::new(Mutex::new(Vec::new()));
    let (ended_tx, ended) = tokio::sync::mpsc::unbounded_channel();
    let journal = Arc::new(Mutex::new(journal));
    let w = written.clone();
    let j = journal.clone();
    let instance = rec.id;
    until(
        &mut rx,
        "connected",
        |e| matches!(&e.kind, EventKind::Connection(c) if c.state == ConnectionState::Connected),
    )
    .await;
    let recorder = tokio::spawn(async move {
        record(&mut rx, &j, instance, &w, &ended_tx).await;
    });
    App {
        engine,
        id,
        recorder,
        written,
        ended,
    }
}

async fn record(
    rx: &mut Events,
    journal: &Mutex<Journal>,
    instance: comfy_store::InstanceId,
    written: &Mutex<Vec<(String, JobState)>>,
    ended: &tokio::sync::mpsc::UnboundedSender<comfy_engine::JobView>,
) {
    while let Some(e) = rx.recv().await {
        if let Some(j) = job(&e) {
            let wrote = journal
                .lock()
                .unwrap()
                .record(instance, j, comfy_engine::now_ms())
                .unwrap();
            if wrote {
                written
                    .lock()
                    .unwrap()
                    .push((j.prompt_id.to_string(), j.state));
            }
            if j.state.is_terminal() {
                let _ = ended.send(j.clone());
            }
        }
    }
}

/// Submits as the app does, with the workflow journalled for resubmission.
async fn submit_journalled(
    app: &App,
    db: &std::path::Path,
    workflow: &serde_json::Value,
) -> comfy_engine::Submission {
    let s = app
        .engine
        .submit(app.id, workflow.clone(), SubmitOptions::default())
        .await
        .unwrap();
    let store = Store::open(db).unwrap();
    let inst = store.instance_by_name("fake").unwrap().id;
    Journal::new(store)
        .record_submitted(inst, &s.prompt_id, workflow, comfy_engine::now_ms())
        .unwrap();
    s
}

async fn next_end(app: &mut App, id: &str) -> comfy_engine::JobView {
    tokio::time::timeout(crate::live::GUARD, async {
        loop {
            let j = app.ended.recv().await.expect("recorder alive");
            if j.prompt_id.as_str() == id {
                return j;
            }
        }
    })
    .await
    .expect("the job ended")
}

#[tokio::test]
async fn a_job_that_finished_while_the_app_was_closed_gets_its_real_outcome_once() {
    for version in [ServerVersion::V0_3_64, ServerVersion::V0_26] {
        let server = fake(version).await;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("journal.db");
        let app = start_app(&server, &db).await;
        let workflow = sampler(30, 10, "while_closed");
        let s = submit_journalled(&app, &db, &workflow).await;
        // Wait until the journal saw it run, then kill the app: no shutdown, no goodbye.
        let probe = Store::open(&db).unwrap();
        let inst = probe.instance_by_name("fake").unwrap().id;
        tokio::time::timeout(crate::live::GUARD, async {
            loop {
                let j = probe.job(inst, s.prompt_id.as_str()).unwrap();
                if j.is_some_and(|j| j.state == comfy_store::JobState::Running) {
                    break;
                }
                tokio::task::yield_now().await;
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("recorded as running");
        app.recorder.abort();
        drop(app.engine);
        assert!(app.written.lock().unwrap().is_empty());

        server.wait_idle().await;
        let mut again = start_app(&server, &db).await;
        let end = next_end(&mut again, s.prompt_id.as_str()).await;
        assert_eq!(end.state, JobState::Success, "{version}");
        let rec = probe.job(inst, s.prompt_id.as_str()).unwrap().unwrap();
        assert_eq!(rec.state, comfy_store::JobState::Success, "{version}");
        assert!(
            rec.outputs_json
                .unwrap_or_default()
                .contains("while_closed"),
            "{version}"
        );
        assert!(rec.has_workflow, "the submitted workflow is kept");
        assert_eq!(
            again.written.lock().unwrap().clone(),
            vec![(s.prompt_id.to_string(), JobState::Success)],
            "{version}: written exactly once"
        );
    }
}

#[tokio::test]
async fn a_live_job_is_journalled_with_how_long_each_node_ran() {
    for version in [ServerVersion::V0_3_64, ServerVersion::V0_26] {
        let server = fake(version).await;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("journal.db");
        let mut app = start_app(&server, &db).await;
        let s = submit_journalled(&app, &db, &sampler(6, 20, "timed")).await;
        let end = next_end(&mut app, s.prompt_id.as_str()).await;
        assert_eq!(end.state, JobState::Success, "{version}");
        let store = Store::open(&db).unwrap();
        let inst = store.instance_by_name("fake").unwrap().id;
        let rec = store.job(inst, s.prompt_id.as_str()).unwrap().unwrap();
        let stored: serde_json::Value =
            serde_json::from_str(&rec.node_durations_json.expect("durations journalled")).unwrap();
        let nodes: Vec<(&str, &str)> = stored
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["node"].as_str().unwrap(),
                    d["node_type"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            nodes,
            [("1", "MonitorTestSampler"), ("2", "SaveImage")],
            "{version}: in run order"
        );
        // Six steps of 20 ms: the sampler cannot have taken less than the fake slept.
        assert!(
            stored[0]["ms"].as_u64().unwrap() >= 100,
            "{version}: {stored}"
        );
        assert_eq!(
            stored,
            serde_json::to_value(&end.node_durations).unwrap(),
            "{version}: the journal holds what the final event said"
        );
    }
}

#[tokio::test]
async fn a_downloaded_output_is_journalled_with_its_node_local_path_and_thumbnail() {
    for version in [ServerVersion::V0_3_64, ServerVersion::V0_26] {
        let server = fake(version).await;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("journal.db");
        let mut app = start_app(&server, &db).await;
        let s = submit_journalled(&app, &db, &sampler(2, 5, "kept")).await;
        let end = next_end(&mut app, s.prompt_id.as_str()).await;
        assert_eq!(end.state, JobState::Success, "{version}");
        let (file, node) = end
            .outputs_with_nodes()
            .find(|(f, _)| f.filename.starts_with("kept"))
            .expect("the saved image");
        assert_eq!(
            node.map(|n| n.as_str()),
            Some("2"),
            "{version}: SaveImage wrote it"
        );

        let out = dir.path().join("out");
        let path = app.engine.fetch_output(app.id, file, &out).await.unwrap();
        let thumb = comfy_engine::outputs::thumbnail_file(&path).unwrap();
        let mut journal = Journal::new(Store::open(&db).unwrap());
        let inst = journal.store().instance_by_name("fake").unwrap().id;
        let oid = journal
            .record_download(inst, &s.prompt_id, file, &path, Some(&thumb))
            .unwrap();

        let store = journal.store();
        let rec = store.job(inst, s.prompt_id.as_str()).unwrap().unwrap();
        let rows = store.outputs(rec.id).unwrap();
        let row = rows.iter().find(|o| o.id == oid).unwrap();
        assert_eq!(row.node_id, "2", "{version}");
        assert_eq!(row.filename, file.filename);
        assert_eq!(row.local_path.as_deref(), Some(path.as_path()));
        assert!(row.has_thumbnail);
        assert_eq!(
            store.output_thumbnail(oid).unwrap(),
            Some(thumb),
            "{version}"
        );
        assert_eq!(
            rows.iter().filter(|o| o.filename == file.filename).count(),
            1,
            "{version}: the row the job's end recorded, not a second one"
        );
        let outputs: serde_json::Value =
            serde_json::from_str(rec.outputs_json.as_deref().unwrap()).unwrap();
        assert!(
            outputs
                .as_array()
                .unwrap()
                .iter()
                .any(|o| o["filename"] == file.filename.as_str() && o["node"] == "2"),
            "{version}: {outputs}"
        );
    }
}

#[tokio::test]
async fn a_download_the_journal_did_not_expect_gets_its_own_row_and_an_unknown_job_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("journal.db");
    let mut store = Store::open(&db).unwrap();
    let inst = store
        .insert_instance(&NewInstance::new("box", "http://box:8188/"), 0)
        .unwrap()
        .id;
    let mut journal = Journal::new(store);
    let id = comfy_engine::actions::new_prompt_id();
    let mut done = comfy_engine::JobView::new(
        id.clone(),
        comfy_engine::JobOrigin::Other,
        JobState::Success,
    );
    done.started_at_ms = Some(1);
    assert!(journal.record(inst, &done, 2).unwrap());
    let file = comfy_protocol::http::OutputFile {
        filename: "late.png".into(),
        subfolder: "sub".into(),
        kind: "output".into(),
    };
    let local = dir.path().join("late.png");
    let oid = journal
        .record_download(inst, &id, &file, &local, None)
        .unwrap();
    let rec = journal.store().job(inst, id.as_str()).unwrap().unwrap();
    let rows = journal.store().outputs(rec.id).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].id, oid);
    assert_eq!(rows[0].node_id, "", "no node known");
    assert_eq!(rows[0].local_path.as_deref(), Some(local.as_path()));
    assert!(!rows[0].has_thumbnail);

    let unknown = comfy_engine::actions::new_prompt_id();
    let err = journal
        .record_download(inst, &unknown, &file, &local, None)
        .unwrap_err();
    assert!(
        matches!(err, comfy_store::StoreError::NotFound { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn a_job_lost_in_a_server_restart_is_offered_for_resubmission() {
    let server = fake(ServerVersion::V0_26).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("journal.db");
    let mut app = start_app(&server, &db).await;
    let workflow = sampler(2000, 10, "doomed");
    let s = submit_journalled(&app, &db, &workflow).await;
    server.restart().await;
    let end = next_end(&mut app, s.prompt_id.as_str()).await;
    assert_eq!(end.state, JobState::Lost);
    let store = Store::open(&db).unwrap();
    let lost = store.lost_own_jobs(None).unwrap();
    assert_eq!(lost.len(), 1);
    assert_eq!(lost[0].job.prompt_id, s.prompt_id.as_str());
    let again: serde_json::Value = serde_json::from_str(&lost[0].workflow_json).unwrap();
    assert_eq!(
        again, workflow,
        "the workflow to resubmit is the one submitted"
    );
}

#[tokio::test]
async fn a_job_gone_while_the_app_was_closed_is_lost_after_a_server_restart() {
    let server = fake(ServerVersion::V0_3_64).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("journal.db");
    let app = start_app(&server, &db).await;
    let theirs = server.submit(sampler(2000, 10, "theirs"), Some("browser"));
    let probe = Store::open(&db).unwrap();
    let inst = probe.instance_by_name("fake").unwrap().id;
    tokio::time::timeout(crate::live::GUARD, async {
        while probe.job(inst, &theirs).unwrap().is_none() {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("journalled");
    app.recorder.abort();
    drop(app.engine);
    server.restart().await;
    let mut again = start_app(&server, &db).await;
    let end = next_end(&mut again, &theirs).await;
    assert_eq!(end.state, JobState::Lost);
    assert_eq!(end.detail.as_deref(), Some("server restarted"));
    let rec = probe.job(inst, &theirs).unwrap().unwrap();
    assert_eq!(rec.state, comfy_store::JobState::Lost);
}

/// A server whose clock runs 200 days ahead, or that reports microseconds, through the journal
/// with pruning after every terminal write: nothing of any instance is deleted, and its times
/// are kept within a day of this machine's clock.
#[test]
fn a_server_clock_far_ahead_or_in_microseconds_deletes_nothing() {
    const DAY: i64 = 24 * 60 * 60 * 1000;
    let dir = tempfile::tempdir().unwrap();
    let options = comfy_store::StoreOptions {
        prune_every: 1,
        ..comfy_store::StoreOptions::default()
    };
    let mut store = Store::open_with(dir.path().join("journal.db"), options).unwrap();
    let a = store
        .insert_instance(&NewInstance::new("a", "http://a:8188/"), 0)
        .unwrap()
        .id;
    let b = store
        .insert_instance(&NewInstance::new("b", "http://b:8188/"), 0)
        .unwrap()
        .id;
    let mut journal = Journal::new(store);
    let now = comfy_engine::now_ms();
    let finished = |id: &str, end: i64| {
        let mut v = comfy_engine::JobView::new(
            id.into(),
            comfy_engine::JobOrigin::Other,
            JobState::Success,
        );
        v.queued_at_ms = end - 2_000;
        v.started_at_ms = Some(end - 1_000);
        v.ended_at_ms = Some(end);
        v
    };
    assert!(journal
        .record(a, &finished("yesterday", now - DAY), now)
        .unwrap());
    assert!(journal
        .record(b, &finished("last-month", now - 30 * DAY), now)
        .unwrap());
    for (id, end) in [("ahead", now + 200 * DAY), ("micros", now * 1_000)] {
        assert!(journal.record(a, &finished(id, end), now).unwrap());
    }
    let store = journal.store();
    assert_eq!(store.job_count().unwrap(), 4, "nothing deleted");
    for id in ["ahead", "micros"] {
        let rec = store.job(a, id).unwrap().unwrap();
        assert_eq!(rec.finished_at, Some(now + DAY), "{id}");
        assert_eq!(rec.queued_at, now + DAY, "{id}");
    }
    // The same journal a year on by this machine's clock ages them out as usual.
    assert_eq!(
        journal.store_mut().prune_jobs(now + 365 * DAY).unwrap(),
        4,
        "aged by this machine's clock"
    );
}
