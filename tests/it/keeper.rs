//! Outputs saved without asking, against the fake over real sockets and a real SQLite file: a
//! few downloads at a time, a restart mid-download saves the file once, a full disk leaves no
//! partial file and says so.

use crate::live::{fake, sampler, until, GUARD};
use comfy_app::keeper::{Keeper, SaverOptions};
use comfy_app::Profile;
use comfy_engine::{ConnectionState, Engine, EventKind, Events};
use comfy_model::{InstanceId, OutputSaving, SavingStatus};
use comfy_store::NewInstance;
use fake_comfyui::{FakeComfy, ServerVersion};
use std::path::{Path, PathBuf};

struct Rig {
    server: FakeComfy,
    profile: Profile,
    engine: Engine,
    rx: Events,
    instance: InstanceId,
    folder: PathBuf,
    _dir: tempfile::TempDir,
}

/// The fake, a profile whose instance saves its outputs into `folder`, and an engine connected
/// to it.
async fn rig(folder: &Path) -> Rig {
    let server = fake(ServerVersion::V0_26).await;
    let dir = tempfile::tempdir().unwrap();
    let profile =
        Profile::open_with_secrets_file(&dir.path().join("db"), &dir.path().join("secrets"))
            .unwrap();
    let mut new = NewInstance::new("gpu", server.base_url());
    new.saving = OutputSaving {
        folder: Some(folder.to_str().unwrap().to_owned()),
        others: false,
    };
    let rec = profile.add_instance(&new, &Default::default(), 1).unwrap();
    let (engine, mut rx) = Engine::new(4096);
    let restore = profile.journal().restore(rec.id, &rec.client_id).unwrap();
    engine
        .add_saved(rec.id, profile.spec(&rec).unwrap(), restore)
        .unwrap();
    until(
        &mut rx,
        "connected",
        |e| matches!(&e.kind, EventKind::Connection(c) if c.state == ConnectionState::Connected),
    )
    .await;
    Rig {
        server,
        profile,
        engine,
        rx,
        instance: rec.id,
        folder: folder.to_path_buf(),
        _dir: dir,
    }
}

impl Rig {
    /// Queues `n` jobs from this app, one output each, and journals every event until all
    /// have ended, as the app's event task does.
    async fn run_jobs(&mut self, n: usize) {
        let mut ids = Vec::new();
        for i in 0..n {
            let submitted = comfy_app::jobs::submit(
                &self.engine,
                Some(&self.profile),
                self.instance,
                sampler(2, 1, &format!("kept{i}")),
                Default::default(),
                Some("portrait.png"),
            )
            .await
            .unwrap();
            ids.push(submitted.submission.prompt_id.to_string());
        }
        let mut ended = 0;
        while ended < n {
            let e = tokio::time::timeout(GUARD, self.rx.recv())
                .await
                .expect("the jobs end")
                .expect("events");
            if let EventKind::Job(j) = &e.kind {
                let wrote = self
                    .profile
                    .journal()
                    .record(self.instance, j, comfy_engine::now_ms())
                    .unwrap();
                if wrote && ids.contains(&j.prompt_id.to_string()) {
                    assert_eq!(j.state, comfy_engine::JobState::Success, "{j:?}");
                    ended += 1;
                }
            }
        }
    }

    fn keeper(&self, parallel: usize) -> Keeper {
        Keeper::spawn_with(
            self.engine.clone(),
            self.profile.second_journal().unwrap(),
            SaverOptions { parallel },
        )
    }

    /// Every file under the folder, recursively, as paths relative to it.
    fn files(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut dirs = vec![self.folder.clone()];
        while let Some(d) = dirs.pop() {
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in entries {
                let p = e.unwrap().path();
                if p.is_dir() {
                    dirs.push(p);
                } else {
                    let rel = p.strip_prefix(&self.folder).unwrap();
                    out.push(rel.to_string_lossy().into_owned());
                }
            }
        }
        out.sort();
        out
    }
}

async fn until_status(
    keeper: &Keeper,
    what: &str,
    f: impl Fn(&SavingStatus) -> bool,
) -> SavingStatus {
    let mut status = keeper.status();
    let found = tokio::time::timeout(GUARD, async {
        status.wait_for(|s| f(s)).await.map(|s| s.clone())
    })
    .await;
    match found {
        Ok(Ok(s)) => s,
        _ => panic!("{what}: the saver is at {:?}", *keeper.status().borrow()),
    }
}

#[tokio::test]
async fn outputs_are_saved_a_few_at_a_time_with_their_thumbnails_and_names() {
    let out = tempfile::tempdir().unwrap();
    let mut rig = rig(&out.path().join("gpu")).await;
    rig.run_jobs(5).await;
    rig.server.hold_views(true);
    let keeper = rig.keeper(2);
    // Two downloads under way, held half-way: the other three wait their turn.
    rig.server.until_views_open(2).await;
    let status = until_status(&keeper, "two saving", |s| s.saving == 2).await;
    assert_eq!(status.waiting, 5, "{status:?}");
    rig.server.hold_views(false);
    until_status(&keeper, "all saved", |s| s.waiting == 0 && s.saving == 0).await;
    assert_eq!(
        rig.server.views_open(),
        (0, 2),
        "never more than two downloads at once"
    );

    let files = rig.files();
    assert_eq!(files.len(), 5, "{files:?}");
    assert!(files.iter().all(|f| f.ends_with(".png")), "{files:?}");
    {
        let journal = rig.profile.journal();
        let store = journal.store();
        for job in store.history(None, 10, 0).unwrap() {
            assert_eq!(
                job.label.as_deref(),
                Some("portrait.png"),
                "named by its file"
            );
            let rows = store.outputs(job.id).unwrap();
            assert_eq!(rows.len(), 1, "{rows:?}");
            let path = rows[0].local_path.as_deref().expect("where it went");
            assert!(path.starts_with(&rig.folder), "{path:?}");
            assert!(std::fs::read(path).unwrap().starts_with(b"\x89PNG"));
            assert!(rows[0].has_thumbnail, "journalled with a thumbnail");
        }
    }
    // Nothing is fetched twice: a keeper started again finds nothing to do.
    let again = rig.keeper(2);
    again.wake();
    let status = until_status(&again, "idle", |s| s.waiting == 0).await;
    assert_eq!(status.failed, 0);
    assert_eq!(rig.files().len(), 5);
}

#[tokio::test]
async fn a_restart_mid_download_saves_the_file_once_and_leaves_no_partial_file() {
    let out = tempfile::tempdir().unwrap();
    let mut rig = rig(&out.path().join("gpu")).await;
    rig.run_jobs(1).await;
    rig.server.hold_views(true);
    let first = rig.keeper(3);
    rig.server.until_views_open(1).await;
    until_status(&first, "saving", |s| s.saving == 1).await;
    // The app quits half-way through the file.
    first.stop().await;
    assert_eq!(rig.files(), Vec::<String>::new(), "no partial file is left");
    assert_eq!(
        rig.profile.journal().store().keep_counts().unwrap().pending,
        1,
        "still to be saved"
    );

    rig.server.hold_views(false);
    let second = rig.keeper(3);
    until_status(&second, "saved after the restart", |s| s.waiting == 0).await;
    let files = rig.files();
    assert_eq!(files.len(), 1, "saved once, not twice: {files:?}");
    assert!(!files[0].contains(" (1)"), "{files:?}");
}

#[tokio::test]
async fn files_of_a_server_out_of_reach_wait_for_it_without_a_failed_attempt() {
    let out = tempfile::tempdir().unwrap();
    let mut rig = rig(&out.path().join("gpu")).await;
    rig.run_jobs(1).await;
    rig.server.set_down(true);
    until(
        &mut rig.rx,
        "down",
        |e| matches!(&e.kind, EventKind::Connection(c) if !c.state.is_up()),
    )
    .await;
    let keeper = rig.keeper(3);
    keeper.wake();
    rig.server.set_down(false);
    until(
        &mut rig.rx,
        "back",
        |e| matches!(&e.kind, EventKind::Connection(c) if c.state == ConnectionState::Connected),
    )
    .await;
    keeper.wake();
    let status = until_status(&keeper, "saved once it is back", |s| s.waiting == 0).await;
    assert_eq!(
        status.last_error, None,
        "no attempt failed while it was away"
    );
    assert_eq!(rig.files().len(), 1);
}

#[tokio::test]
async fn a_file_already_in_the_folder_is_never_replaced() {
    let out = tempfile::tempdir().unwrap();
    let mut rig = rig(&out.path().join("gpu")).await;
    rig.run_jobs(1).await;
    let row = {
        let journal = rig.profile.journal();
        let job = journal.store().history(None, 1, 0).unwrap().remove(0);
        journal.store().outputs(job.id).unwrap().remove(0)
    };
    // The user's own file, where the output would go.
    let taken = rig.folder.join(&row.subfolder).join(&row.filename);
    std::fs::create_dir_all(taken.parent().unwrap()).unwrap();
    std::fs::write(&taken, b"mine").unwrap();
    let keeper = rig.keeper(3);
    until_status(&keeper, "saved", |s| s.waiting == 0).await;
    assert_eq!(std::fs::read(&taken).unwrap(), b"mine");
    let stem = row.filename.trim_end_matches(".png");
    let beside = taken.with_file_name(format!("{stem} (1).png"));
    assert!(std::fs::read(&beside).unwrap().starts_with(b"\x89PNG"));
}

/// Runs [`full_disk_saving_scenario`] on a 1 MiB filesystem it fills.
#[test]
fn a_full_disk_leaves_no_partial_file_says_so_and_the_file_is_saved_once_there_is_room() {
    crate::support::on_small_fs("keeper::full_disk_saving_scenario");
}

#[tokio::test]
#[ignore = "runs on a small filesystem; started by a_full_disk_leaves_no_partial_file_…"]
async fn full_disk_saving_scenario() {
    let small =
        PathBuf::from(std::env::var_os(crate::support::SMALL_FS).expect("started by on_small_fs"));
    let mut rig = rig(&small.join("out")).await;
    rig.run_jobs(1).await;
    std::fs::create_dir_all(&rig.folder).unwrap();
    crate::support::full_small_fs();
    let first = rig.keeper(3);
    let status = until_status(&first, "a failure", |s| s.last_error.is_some()).await;
    let error = status.last_error.unwrap();
    assert!(
        error.contains("No space left on device"),
        "says why: {error}"
    );
    first.stop().await;
    assert_eq!(rig.files(), Vec::<String>::new(), "no partial file");
    {
        let journal = rig.profile.journal();
        let job = journal.store().history(None, 1, 0).unwrap().remove(0);
        let row = journal.store().outputs(job.id).unwrap().remove(0);
        assert_eq!(row.local_path, None);
        assert_eq!(
            journal.store().keep_counts().unwrap().pending,
            1,
            "tried again later"
        );
    }

    std::fs::remove_file(small.join("fill")).unwrap();
    let second = rig.keeper(3);
    until_status(&second, "saved", |s| s.waiting == 0).await;
    assert_eq!(rig.files().len(), 1);
}
