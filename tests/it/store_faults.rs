//! The journal's database failing while the app runs, and the app itself killed: what the user
//! is told and what is kept. Real processes and real files: the disk is a real small tmpfs in a
//! mount namespace of its own, and the app is the CLI's `watch` in a child process killed with
//! a real SIGKILL.
//!
//! The child processes are this test binary again, running one `#[ignore]`d scenario (as the
//! full-disk download test in `cli.rs` does): the scenario calls the same `comfy_cli` entry
//! point the `comfy-monitor` binary does, without needing the desktop app (and its GTK/WebKit)
//! built, and without racing a `cargo run` for the build lock.

use crate::live::{fake, sampler, GUARD};
use comfy_engine::journal::Journal;
use comfy_engine::{JobOrigin, JobState, JobView};
use comfy_store::{InstanceUpdate, NewInstance, Store, StoreError};
use fake_comfyui::ServerVersion;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Where a scenario run in a child process finds its directory (or database).
const SCENARIO_PATH: &str = "COMFY_MONITOR_TEST_SCENARIO_PATH";

fn scenario_path() -> PathBuf {
    PathBuf::from(
        std::env::var_os(SCENARIO_PATH).expect("started by its test, which sets the path"),
    )
}

/// Runs the scenario `name` of this module in a copy of this test binary inside a mount
/// namespace of its own, with an 8 MiB tmpfs mounted on `small`. Returns what it printed.
fn on_small_tmpfs(name: &str, small: &Path) -> (String, String) {
    crate::support::on_tmpfs(&format!("store_faults::{name}"), small, "8m", SCENARIO_PATH)
}

/// A finished job as the tracker publishes it, with one output file.
fn ended(id: &str, now: i64) -> JobView {
    let mut v = JobView::new(id.into(), JobOrigin::Other, JobState::Success);
    v.queued_at_ms = now - 3_000;
    v.started_at_ms = Some(now - 2_000);
    v.ended_at_ms = Some(now);
    v.outputs.push(comfy_protocol::http::OutputFile {
        filename: format!("{id}_00001_.png"),
        subfolder: String::new(),
        kind: "output".into(),
    });
    v.output_nodes.push(Some("9".into()));
    v
}

/// Every job in `ids` is in the journal, ended, with its output row.
fn assert_kept(store: &Store, instance: comfy_store::InstanceId, ids: &[String]) {
    for id in ids {
        let rec = store
            .job(instance, id)
            .unwrap()
            .unwrap_or_else(|| panic!("{id} was lost"));
        assert_eq!(rec.state, comfy_store::JobState::Success, "{id}");
        assert_eq!(store.outputs(rec.id).unwrap().len(), 1, "{id}: its output");
    }
}

#[test]
fn a_full_disk_mid_run_is_reported_and_loses_nothing_written_before() {
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small");
    std::fs::create_dir(&small).unwrap();
    let (_, stderr) = on_small_tmpfs("full_disk_scenario", &small);
    assert!(
        stderr.contains("is full; what was recorded before is kept"),
        "the user is told: {stderr}"
    );
}

#[test]
#[ignore = "runs on a small filesystem; started by a_full_disk_mid_run_…"]
fn full_disk_scenario() {
    let small = scenario_path();
    let db = small.join("journal.db");
    let mut store = Store::open(&db).unwrap();
    let instance = store
        .insert_instance(&NewInstance::new("gpu", "http://gpu:8188/"), 0)
        .unwrap()
        .id;
    let mut journal = Journal::new(store);
    let now = comfy_engine::now_ms();
    let mut written = Vec::new();
    for i in 0..20 {
        let id = format!("before{i}");
        assert!(journal.record(instance, &ended(&id, now), now).unwrap());
        written.push(id);
    }
    // Fill the filesystem to the last byte.
    {
        use std::io::Write;
        let mut fill = std::fs::File::create(small.join("fill")).unwrap();
        let chunk = vec![0u8; 16 * 1024];
        loop {
            match fill.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                Err(e) => panic!("filling the small filesystem: {e}"),
            }
        }
    }
    // The app goes on recording every job that ends, until the disk says no.
    let mut refused = None;
    for i in 0..100_000 {
        let id = format!("during{i}");
        let job = ended(&id, now);
        match journal.record(instance, &job, now) {
            Ok(wrote) => {
                assert!(wrote);
                written.push(id);
            }
            Err(e) => {
                refused = Some((job, e));
                break;
            }
        }
    }
    let (refused, err) = refused.expect("the full disk was noticed");
    // What the CLI prints for it (and the desktop app logs and shows as a notice).
    eprintln!(
        "comfy-monitor: the journal could not record {}: {err}",
        refused.prompt_id
    );
    assert!(matches!(err, StoreError::Full { .. }), "{err:?}");
    assert!(err.to_string().contains(&db.display().to_string()), "{err}");

    // Everything recorded before is there, whole; the refused job is not there at all.
    assert_kept(journal.store(), instance, &written);
    let refused_id = refused.prompt_id.to_string();
    assert!(journal
        .store()
        .job(instance, &refused_id)
        .unwrap()
        .is_none());

    // Space freed: the journal goes on, and the same event is written whole.
    std::fs::remove_file(small.join("fill")).unwrap();
    assert!(journal.record(instance, &refused, now).unwrap());
    written.push(refused_id);
    drop(journal);
    let reopened = Store::open(&db).unwrap();
    assert_kept(&reopened, instance, &written);
    eprintln!("{} jobs kept", written.len());
}

#[test]
fn a_read_only_file_system_at_open_is_reported_as_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small");
    std::fs::create_dir(&small).unwrap();
    let (_, stderr) = on_small_tmpfs("read_only_scenario", &small);
    assert!(stderr.contains("read-only"), "the user is told: {stderr}");
}

#[test]
#[ignore = "runs on a small filesystem; started by a_read_only_file_system_at_open_…"]
fn read_only_scenario() {
    let small = scenario_path();
    let db = small.join("journal.db");
    {
        let store = Store::open(&db).unwrap();
        let instance = store.instances().unwrap()[0].id;
        let now = comfy_engine::now_ms();
        assert!(Journal::new(store)
            .record(instance, &ended("kept", now), now)
            .unwrap());
    }
    let remount = Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(&small)
        .status()
        .unwrap();
    assert!(remount.success());
    let before = std::fs::read(&db).unwrap();
    let err = Store::open(&db).unwrap_err();
    eprintln!("comfy-monitor: {err}");
    assert!(
        matches!(err, StoreError::ReadOnly { .. }),
        "a clear read-only error: {err:?}"
    );
    assert_eq!(std::fs::read(&db).unwrap(), before, "the file is as it was");
}

/// A child process, killed when dropped (a failing test must not leave it running).
struct Watch {
    child: Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<serde_json::Value>,
}

impl Watch {
    /// `comfy-monitor --db DB watch --json`, in a child process.
    fn start(db: &Path) -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "store_faults::watch_scenario",
                "--include-ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(SCENARIO_PATH, db)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // The test harness prints too; events are the JSON lines.
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                    if tx.send(v).is_err() {
                        break;
                    }
                }
            }
        });
        Self { child, lines }
    }

    /// Reads events until one matches.
    async fn until(
        &mut self,
        what: &str,
        f: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        tokio::time::timeout(GUARD, async {
            loop {
                let e = self.lines.recv().await.expect("watch still printing");
                if f(&e) {
                    return e;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("watch never said {what}"))
    }

    async fn connected(&mut self) {
        self.until("connected", |e| {
            e["event"] == "connection" && e["state"] == "connected"
        })
        .await;
    }

    /// Reads events until our job `id` is reported in `state`.
    async fn until_job(&mut self, id: &str, state: &str) -> serde_json::Value {
        self.until(&format!("{id} is {state}"), |e| {
            e["event"] == "job"
                && e["prompt_id"] == id
                && e["state"] == state
                && e["origin"] == "self"
        })
        .await
    }

    /// SIGKILL: no signal handler, no shutdown, nothing flushed.
    fn kill(mut self) -> std::process::ExitStatus {
        use std::os::unix::process::ExitStatusExt;
        self.child.kill().unwrap();
        let status = self.child.wait().unwrap();
        assert_eq!(status.signal(), Some(9), "{status:?}");
        status
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The app (the CLI's `watch` of a saved instance, with its journal) is killed with SIGKILL
/// while a job of ours runs; the job ends while the app is down; started again, the app
/// records the job's true outcome, with its outputs.
#[tokio::test]
async fn the_app_killed_mid_job_and_started_again_records_the_jobs_true_outcome() {
    let server = fake(ServerVersion::V0_3_64).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("profile.db");
    let client_id = {
        let mut store = Store::open(&db).unwrap();
        let local = store.instance_by_name("Local").unwrap();
        let update = InstanceUpdate {
            base_url: Some(server.base_url()),
            ..InstanceUpdate::default()
        };
        store.update_instance(local.id, &update, 1).unwrap();
        local.client_id
    };

    let mut watch = Watch::start(&db);
    watch.connected().await;
    let id = server.submit(sampler(200, 10, "killed"), Some(&client_id));
    watch.until_job(&id, "running").await;
    watch.kill();

    let store = Store::open(&db).unwrap();
    let instance = store.instance_by_name("Local").unwrap().id;
    let rec = store.job(instance, &id).unwrap().expect("journalled");
    assert_eq!(
        rec.state,
        comfy_store::JobState::Running,
        "as the app left it"
    );

    server.wait_idle().await;
    let mut again = Watch::start(&db);
    let done = again.until_job(&id, "success").await;
    assert!(done["outputs"].to_string().contains("killed"), "{done}");
    let rec = store.job(instance, &id).unwrap().unwrap();
    assert_eq!(rec.state, comfy_store::JobState::Success);
    let outputs = store.outputs(rec.id).unwrap();
    assert!(
        outputs.iter().any(|o| o.filename.starts_with("killed")),
        "{outputs:?}"
    );
    again.kill();
}

#[test]
#[ignore = "the app in a child process; started by the_app_killed_mid_job_…"]
fn watch_scenario() {
    let db = scenario_path();
    let db = db.to_str().unwrap();
    comfy_cli::run_from(["comfy-monitor", "--db", db, "watch", "--json"]).expect("watch ran");
}
