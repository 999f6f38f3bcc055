//! The `comfy-monitor` subcommands end to end against a fake ComfyUI on a real socket.

use fake_comfyui::{FakeComfy, FakeConfig, ServerVersion};
use std::process::ExitCode;

/// A fake server on its own runtime thread, so the CLI can run its own runtime here.
fn serve(version: ServerVersion) -> (String, std::sync::mpsc::Sender<()>) {
    serve_with(FakeConfig {
        version,
        ..FakeConfig::default()
    })
}

fn serve_with(config: FakeConfig) -> (String, std::sync::mpsc::Sender<()>) {
    let (url_tx, url_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let server = FakeComfy::start(config).await.unwrap();
            url_tx.send(server.base_url()).unwrap();
            let _ = tokio::task::spawn_blocking(move || stop_rx.recv()).await;
        });
    });
    (url_rx.recv().unwrap(), stop_tx)
}

fn run(args: &[&str]) -> ExitCode {
    let mut argv = vec!["comfy-monitor"];
    argv.extend_from_slice(args);
    comfy_cli::run_from(argv).expect("a subcommand ran")
}

#[test]
fn submit_wait_out_downloads_the_outputs_on_every_server_generation() {
    for version in [
        ServerVersion::Legacy,
        ServerVersion::V0_3_64,
        ServerVersion::V0_26,
    ] {
        let (url, _stop) = serve(version);
        let dir = tempfile::tempdir().unwrap();
        let wf = sampler_workflow(dir.path(), "wf.json", 3, 5, 1, "cli");
        let out = dir.path().join("out");
        let code = run(&[
            "submit",
            wf.to_str().unwrap(),
            "--url",
            &url,
            "--out",
            out.to_str().unwrap(),
            "--json",
        ]);
        assert_eq!(code, ExitCode::SUCCESS, "{version}");
        let files: Vec<_> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 1, "{version}: {files:?}");
        let bytes = std::fs::read(&files[0]).unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "{version}");
        assert!(files[0]
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("cli"));
    }
}

#[test]
fn submit_exit_status_tells_how_the_job_ended() {
    let (url, _stop) = serve(ServerVersion::V0_26);
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, body: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        p.to_string_lossy().into_owned()
    };
    let failing = write(
        "fail.json",
        r#"{"1": {"class_type": "MonitorTestFail", "inputs": {"steps": 3, "fail_after": 1, "step_delay_ms": 5, "seed": 1}},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}}}"#,
    );
    assert_eq!(
        run(&["submit", &failing, "--url", &url, "--wait"]),
        ExitCode::from(4)
    );
    let invalid = write(
        "invalid.json",
        r#"{"1": {"class_type": "MonitorTestSampler", "inputs": {}}, "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}}}"#,
    );
    assert_eq!(run(&["submit", &invalid, "--url", &url]), ExitCode::from(3));
    let ui = write("ui.json", r#"{"nodes": [], "links": []}"#);
    assert_eq!(run(&["submit", &ui, "--url", &url]), ExitCode::from(1));
    let not_json = write("x.json", "{nope");
    assert_eq!(
        run(&["submit", &not_json, "--url", &url]),
        ExitCode::from(1)
    );
    assert_eq!(
        run(&["submit", &ui, "--url", "http://127.0.0.1:9"]),
        ExitCode::from(1)
    );
}

/// A PNG as ComfyUI's SaveImage writes it, as far as the prompt goes: `prompt` and `workflow`
/// text chunks (no pixels are read for the prompt).
fn png_with_prompt(path: &std::path::Path, prompt: &serde_json::Value) {
    let chunk = |kind: &[u8], data: &[u8]| {
        let len = u32::try_from(data.len()).unwrap().to_be_bytes();
        [&len[..], kind, data, &[0; 4]].concat()
    };
    let text = |key: &str, value: &str| [key.as_bytes(), b"\0", value.as_bytes()].concat();
    let png = [
        b"\x89PNG\r\n\x1a\n".to_vec(),
        chunk(b"tEXt", &text("prompt", &prompt.to_string())),
        chunk(b"tEXt", &text("workflow", r#"{"nodes": [], "links": []}"#)),
        chunk(b"IEND", b""),
    ]
    .concat();
    std::fs::write(path, png).unwrap();
}

#[test]
fn submit_queues_the_prompt_a_saved_image_holds_with_new_seeds_as_many_times_as_asked() {
    let (url, _stop) = serve(ServerVersion::V0_26);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("profile.db");
    let db = db.to_str().unwrap();
    assert_eq!(
        run(&["--db", db, "instances", "edit", "Local", "--url", &url]),
        ExitCode::SUCCESS
    );
    let wf = sampler_workflow(dir.path(), "wf.json", 2, 5, 7, "again");
    let prompt: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&wf).unwrap()).unwrap();
    let image = dir.path().join("ComfyUI_00001_.png");
    png_with_prompt(&image, &prompt);
    let image = image.to_str().unwrap();

    let out = dir.path().join("out");
    let code = run(&[
        "--db",
        db,
        "submit",
        image,
        "--new-seed",
        "--count",
        "3",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, ExitCode::SUCCESS);
    assert_eq!(files_in(&out).len(), 3, "each copy ran and was downloaded");
    // The journal keeps what was queued: the image's prompt, each with its own seed.
    let store = comfy_store::Store::open(db).unwrap();
    let jobs = store.history(None, 10, 0).unwrap();
    assert_eq!(jobs.len(), 3);
    let mut seeds = std::collections::HashSet::new();
    for job in &jobs {
        let queued: serde_json::Value =
            serde_json::from_str(&store.job_workflow(job.id).unwrap().unwrap()).unwrap();
        assert_eq!(
            queued["2"], prompt["2"],
            "the rest of the prompt is the image's"
        );
        assert_eq!(queued["1"]["inputs"]["steps"], 2);
        let seed = queued["1"]["inputs"]["seed"].as_u64().unwrap();
        assert_ne!(seed, 7, "a new seed");
        assert!(
            seed <= comfy_protocol::http::MAX_DRAWN_SEED,
            "exact as a double"
        );
        seeds.insert(seed);
    }
    assert_eq!(seeds.len(), 3, "each copy has its own seed");
    drop(store);

    // A page workflow alone cannot be queued, and says why.
    let page = dir.path().join("page.json");
    std::fs::write(&page, r#"{"nodes": [], "links": []}"#).unwrap();
    assert_eq!(
        run(&["--db", db, "submit", page.to_str().unwrap()]),
        ExitCode::from(1)
    );
}

#[test]
fn cancel_of_an_unknown_job_fails_and_says_so() {
    let (url, _stop) = serve(ServerVersion::V0_3_64);
    let id = "4f729e71-630a-4217-b3a2-86a1431c8e94";
    assert_eq!(run(&["cancel", id, "--url", &url]), ExitCode::from(1));
}

#[test]
fn without_instance_or_url_the_only_saved_instance_is_used_and_cancel_finds_its_job_in_the_journal()
{
    let (first, _stop_first) = serve(ServerVersion::V0_26);
    let (second, _stop_second) = serve(ServerVersion::V0_3_64);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("profile.db");
    let db = db.to_str().unwrap();
    let wf = sampler_workflow(dir.path(), "wf.json", 2, 20, 5, "default");
    let wf = wf.to_str().unwrap();
    // A new profile holds "Local" only; make it point at the first fake server.
    assert_eq!(
        run(&["--db", db, "instances", "edit", "Local", "--url", &first]),
        ExitCode::SUCCESS
    );
    assert_eq!(
        run(&["--db", db, "submit", wf, "--wait"]),
        ExitCode::SUCCESS,
        "the only saved instance is the default"
    );
    assert_eq!(
        run(&[
            "--db",
            db,
            "instances",
            "add",
            "--name",
            "second",
            "--url",
            &second
        ]),
        ExitCode::SUCCESS
    );
    assert_eq!(
        run(&["--db", db, "submit", wf, "--wait"]),
        ExitCode::from(1),
        "with two saved instances, neither is guessed"
    );
    // A long job on the second: its journal entry tells `cancel` where it is.
    let long = sampler_workflow(dir.path(), "long.json", 2000, 20, 5, "default");
    assert_eq!(
        run(&[
            "--db",
            db,
            "submit",
            long.to_str().unwrap(),
            "--instance",
            "second"
        ]),
        ExitCode::SUCCESS
    );
    let store = comfy_store::Store::open(db).unwrap();
    let second_id = store.instance_by_name("second").unwrap().id;
    let job = store.history(Some(second_id), 10, 0).unwrap().remove(0);
    drop(store);
    assert_eq!(
        run(&["--db", db, "cancel", &job.prompt_id]),
        ExitCode::SUCCESS,
        "cancel found the job's instance in the journal"
    );
    assert_eq!(
        run(&["--db", db, "cancel", "4f729e71-630a-4217-b3a2-86a1431c8e94"]),
        ExitCode::from(1),
        "an id no journal knows, with two saved instances, is not guessed"
    );
}

#[test]
fn saved_instances_carry_their_secrets_outside_the_database_and_journal_their_jobs() {
    let (url, _stop) = serve_with(FakeConfig {
        auth: Some(fake_comfyui::FakeAuth::Bearer("t0ps3cret".into())),
        ..FakeConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("profile.db");
    let db = db.to_str().unwrap();
    std::env::set_var("CM_TEST_SAVED_TOKEN", "t0ps3cret");
    assert_eq!(
        run(&[
            "--db",
            db,
            "instances",
            "add",
            "--name",
            "gpu",
            "--url",
            &url,
            "--token-env",
            "CM_TEST_SAVED_TOKEN"
        ]),
        ExitCode::SUCCESS
    );
    // A missing variable is a clear error, and nothing is saved.
    assert_eq!(
        run(&[
            "--db",
            db,
            "instances",
            "add",
            "--name",
            "x",
            "--url",
            &url,
            "--token-env",
            "CM_TEST_UNSET_VAR"
        ]),
        ExitCode::from(1)
    );
    let wf = sampler_workflow(dir.path(), "wf.json", 2, 5, 3, "saved");
    assert_eq!(
        run(&[
            "--db",
            db,
            "submit",
            wf.to_str().unwrap(),
            "--instance",
            "gpu",
            "--wait"
        ]),
        ExitCode::SUCCESS,
        "the token from the secret store reached the server"
    );
    let store = comfy_store::Store::open(db).unwrap();
    let gpu = store.instance_by_name("gpu").unwrap();
    assert!(store.instance_by_name("x").is_err());
    let jobs = store.history(Some(gpu.id), 10, 0).unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].state, comfy_store::JobState::Success);
    assert!(jobs[0].has_workflow);
    drop(store);
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let p = entry.unwrap().path();
        if p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("profile.db")
        {
            let bytes = std::fs::read(&p).unwrap();
            assert!(
                !bytes.windows(9).any(|w| w == b"t0ps3cret"),
                "{} holds the secret",
                p.display()
            );
        }
    }
    assert_eq!(
        run(&["--db", db, "instances", "remove", "gpu"]),
        ExitCode::SUCCESS
    );
    assert_eq!(
        run(&[
            "--db",
            db,
            "submit",
            wf.to_str().unwrap(),
            "--instance",
            "gpu"
        ]),
        ExitCode::from(1)
    );
}

#[test]
fn a_url_server_takes_its_credentials_from_the_environment_never_from_the_command_line() {
    let (url, _stop) = serve_with(FakeConfig {
        auth: Some(fake_comfyui::FakeAuth::Bearer("u4l-t0k3n".into())),
        ..FakeConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let wf = sampler_workflow(dir.path(), "wf.json", 2, 5, 4, "url");
    let wf = wf.to_str().unwrap();
    std::env::set_var("CM_TEST_URL_TOKEN", "u4l-t0k3n");
    std::env::set_var("CM_TEST_URL_WRONG_TOKEN", "not-it");
    let submit = |extra: &[&str]| {
        let mut args = vec!["submit", wf, "--url", &url, "--wait"];
        args.extend_from_slice(extra);
        run(&args)
    };
    assert_eq!(
        submit(&["--token-env", "CM_TEST_URL_TOKEN"]),
        ExitCode::SUCCESS,
        "the token from the named variable reached the server"
    );
    assert_eq!(
        submit(&["--token-env", "CM_TEST_URL_WRONG_TOKEN"]),
        ExitCode::from(1),
        "a rejected token is a failure, not a wait"
    );
    assert_eq!(
        submit(&["--token-env", "CM_TEST_URL_UNSET_VAR"]),
        ExitCode::from(1),
        "an unset variable is a clear error"
    );
    assert_eq!(
        submit(&[]),
        ExitCode::from(1),
        "no credentials: the server's 401 ends it"
    );
    // A secret on the command line is not an option: the process list would show it.
    assert_eq!(submit(&["--token", "u4l-t0k3n"]), ExitCode::from(2));
    assert_eq!(submit(&["--basic", "me:u4l-t0k3n"]), ExitCode::from(2));
    assert_eq!(
        submit(&["--header", "Authorization: Bearer u4l-t0k3n"]),
        ExitCode::from(2)
    );
    // A header whose value comes from a variable carries the same credentials.
    std::env::set_var("CM_TEST_URL_AUTH_HEADER", "Bearer u4l-t0k3n");
    assert_eq!(
        submit(&["--header-env", "Authorization:CM_TEST_URL_AUTH_HEADER"]),
        ExitCode::SUCCESS
    );
}

#[test]
fn a_saved_instance_refuses_credentials_on_the_command_line_instead_of_ignoring_them() {
    let (url, _stop) = serve(ServerVersion::V0_26);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("profile.db");
    let db = db.to_str().unwrap();
    assert_eq!(
        run(&[
            "--db",
            db,
            "instances",
            "add",
            "--name",
            "srv",
            "--url",
            &url
        ]),
        ExitCode::SUCCESS
    );
    let wf = sampler_workflow(dir.path(), "wf.json", 1, 1, 5, "srv");
    std::env::set_var("CM_TEST_SAVED_IGNORED", "x");
    // The flags would go unused, so they are refused before anything is queued.
    for extra in [
        &["--token-env", "CM_TEST_SAVED_IGNORED"][..],
        &["--insecure"][..],
    ] {
        let mut args = vec![
            "--db",
            db,
            "submit",
            wf.to_str().unwrap(),
            "--instance",
            "srv",
        ];
        args.extend_from_slice(extra);
        assert_eq!(run(&args), ExitCode::from(1), "{extra:?}");
    }
    let store = comfy_store::Store::open(db).unwrap();
    let srv = store.instance_by_name("srv").unwrap();
    assert!(store.history(Some(srv.id), 10, 0).unwrap().is_empty());
    drop(store);
    assert_eq!(
        run(&[
            "--db",
            db,
            "submit",
            wf.to_str().unwrap(),
            "--instance",
            "srv",
            "--wait"
        ]),
        ExitCode::SUCCESS,
        "without them the same submission goes through"
    );
}

#[test]
fn submit_out_journals_where_each_output_went_with_a_thumbnail() {
    let (url, _stop) = serve(ServerVersion::V0_26);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("profile.db");
    let db = db.to_str().unwrap();
    assert_eq!(
        run(&[
            "--db",
            db,
            "instances",
            "add",
            "--name",
            "box",
            "--url",
            &url
        ]),
        ExitCode::SUCCESS
    );
    let wf = sampler_workflow(dir.path(), "wf.json", 2, 5, 4, "went");
    let out = dir.path().join("out");
    assert_eq!(
        run(&[
            "--db",
            db,
            "submit",
            wf.to_str().unwrap(),
            "--instance",
            "box",
            "--out",
            out.to_str().unwrap(),
        ]),
        ExitCode::SUCCESS
    );
    let store = comfy_store::Store::open(db).unwrap();
    let jobs = store.history(None, 10, 0).unwrap();
    assert_eq!(jobs.len(), 1);
    let rows = store.outputs(jobs[0].id).unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(row.node_id, "2");
    let local = row.local_path.as_deref().expect("where it went");
    assert!(local.is_absolute() && local.starts_with(&out), "{local:?}");
    assert!(std::fs::read(local).unwrap().starts_with(b"\x89PNG"));
    let thumb = store
        .output_thumbnail(row.id)
        .unwrap()
        .expect("a thumbnail");
    let (w, h) = comfy_protocol::image_size(&thumb).expect("an image");
    assert!(w <= 256 && h <= 256);
    assert_eq!(
        run(&["--db", db, "history", "--json"]),
        ExitCode::SUCCESS,
        "history reads what submit wrote"
    );
}

#[test]
fn a_lost_job_of_ours_is_resubmitted_from_the_journal() {
    let (url, _stop) = serve(ServerVersion::V0_26);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("profile.db");
    let workflow = serde_json::json!({
        "1": {"class_type": "MonitorTestSampler", "inputs": {"steps": 2, "step_delay_ms": 5, "seed": 9}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "again"}}
    });
    let lost_id = "0b5c1d70-6a8e-4b3f-9a1e-2f6c7d8e9f01";
    {
        let mut store = comfy_store::Store::open(&db).unwrap();
        let inst = store
            .insert_instance(&comfy_store::NewInstance::new("box", url.clone() + "/"), 1)
            .unwrap();
        let mut journal = comfy_engine::journal::Journal::new(store);
        journal
            .record_submitted(inst.id, &lost_id.into(), &workflow, 2)
            .unwrap();
        let mut lost = comfy_engine::JobView::new(
            lost_id.into(),
            comfy_engine::JobOrigin::SelfApp,
            comfy_engine::JobState::Lost,
        );
        lost.detail = Some("server restarted".into());
        assert!(journal.record(inst.id, &lost, 3).unwrap());
    }
    let db_s = db.to_str().unwrap();
    assert_eq!(
        run(&["--db", db_s, "resubmit", lost_id, "--wait"]),
        ExitCode::SUCCESS
    );
    let store = comfy_store::Store::open(&db).unwrap();
    let jobs = store.history(None, 10, 0).unwrap();
    assert_eq!(jobs.len(), 2);
    assert!(jobs
        .iter()
        .any(|j| j.state == comfy_store::JobState::Success && j.has_workflow));
    assert_eq!(
        run(&["--db", db_s, "resubmit", "not-a-lost-job"]),
        ExitCode::from(1)
    );
}

/// A saved instance "Local" pointing at `url` in a new profile, and a small two-node workflow
/// saving under `prefix`.
fn profile_with_local(dir: &std::path::Path, url: &str, prefix: &str) -> (String, String) {
    let db = dir.join("profile.db").to_str().unwrap().to_owned();
    assert_eq!(
        run(&["--db", &db, "instances", "edit", "Local", "--url", url]),
        ExitCode::SUCCESS
    );
    let wf = sampler_workflow(dir, "wf.json", 2, 5, 8, prefix);
    (db, wf.to_str().unwrap().to_owned())
}

/// Writes `name` in `dir`: an API-format sampler of `steps` steps whose image SaveImage saves
/// under `prefix`. Returns its path.
fn sampler_workflow(
    dir: &std::path::Path,
    name: &str,
    steps: u32,
    step_delay_ms: u32,
    seed: u32,
    prefix: &str,
) -> std::path::PathBuf {
    let wf = dir.join(name);
    let workflow = serde_json::json!({
        "1": {"class_type": "MonitorTestSampler",
              "inputs": {"steps": steps, "step_delay_ms": step_delay_ms, "seed": seed}},
        "2": {"class_type": "SaveImage",
              "inputs": {"images": ["1", 0], "filename_prefix": prefix}},
    });
    std::fs::write(&wf, workflow.to_string()).unwrap();
    wf
}

fn files_in(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[test]
fn fetch_downloads_a_finished_jobs_outputs_again_and_refuses_an_unknown_job() {
    let (url, _stop) = serve(ServerVersion::V0_3_64);
    let dir = tempfile::tempdir().unwrap();
    let (db, wf) = profile_with_local(dir.path(), &url, "again");
    assert_eq!(
        run(&["--db", &db, "submit", &wf, "--wait"]),
        ExitCode::SUCCESS
    );
    let store = comfy_store::Store::open(&db).unwrap();
    let job = store.history(None, 10, 0).unwrap().remove(0);
    let out = dir.path().join("out");
    let out_s = out.to_str().unwrap();
    for _ in 0..2 {
        assert_eq!(
            run(&["--db", &db, "fetch", &job.prompt_id, "--out", out_s]),
            ExitCode::SUCCESS
        );
    }
    let files = files_in(&out);
    let names: Vec<_> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["again_00001_ (1).png", "again_00001_.png"],
        "a second fetch keeps the first copy"
    );
    for f in &files {
        assert!(std::fs::read(f).unwrap().starts_with(b"\x89PNG"));
    }
    let rows = store.outputs(job.id).unwrap();
    assert_eq!(rows.len(), 1);
    assert!(
        rows[0]
            .local_path
            .as_deref()
            .is_some_and(|p| p.starts_with(&out)),
        "the journal knows where the download went: {rows:?}"
    );
    assert_eq!(
        run(&[
            "--db",
            &db,
            "fetch",
            "00000000-0000-4000-8000-000000000000",
            "--out",
            out_s
        ]),
        ExitCode::from(1)
    );
    assert_eq!(
        files_in(&out).len(),
        2,
        "nothing written for an unknown job"
    );
}

/// Runs [`full_disk_scenario`] on a 1 MiB filesystem it fills, and reads what the CLI printed.
#[test]
fn a_full_disk_while_downloading_leaves_no_partial_file_and_fetch_gets_the_outputs_later() {
    let (_, stderr) = crate::support::on_small_fs("cli::full_disk_scenario");
    assert!(
        stderr.contains("No space left on device"),
        "the reason is named: {stderr}"
    );
    assert!(
        stderr.contains("still on the server") && stderr.contains("comfy-monitor fetch "),
        "the way to get them later is named: {stderr}"
    );
}

#[test]
#[ignore = "runs on a small filesystem; started by a_full_disk_while_downloading_…"]
fn full_disk_scenario() {
    let (url, _stop) = serve(ServerVersion::V0_26);
    let dir = tempfile::tempdir().unwrap();
    let (db, wf) = profile_with_local(dir.path(), &url, "full");
    let small = crate::support::full_small_fs();
    // A folder takes no data block on tmpfs: made on the full filesystem.
    let out = small.join("out");
    std::fs::create_dir(&out).unwrap();
    let out_s = out.to_str().unwrap();
    assert_eq!(
        run(&["--db", &db, "submit", &wf, "--out", out_s]),
        ExitCode::from(1),
        "the job succeeded but its output could not be saved"
    );
    assert_eq!(
        files_in(&out),
        Vec::<std::path::PathBuf>::new(),
        "no partial file left"
    );
    let store = comfy_store::Store::open(&db).unwrap();
    let job = store.history(None, 10, 0).unwrap().remove(0);
    assert_eq!(job.state, comfy_store::JobState::Success, "{job:?}");
    let rows = store.outputs(job.id).unwrap();
    assert_eq!(rows.len(), 1, "the output is journalled: {rows:?}");
    assert_eq!(rows[0].local_path, None, "{rows:?}");

    std::fs::remove_file(small.join("fill")).unwrap();
    assert_eq!(
        run(&["--db", &db, "fetch", &job.prompt_id, "--out", out_s]),
        ExitCode::SUCCESS
    );
    let files = files_in(&out);
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(std::fs::read(&files[0]).unwrap().starts_with(b"\x89PNG"));
    let rows = store.outputs(job.id).unwrap();
    assert_eq!(rows[0].local_path.as_deref(), Some(files[0].as_path()));
}

/// What `history` prints, as lines.
fn history_lines(db: &str, json: bool) -> Vec<String> {
    let mut out = Vec::new();
    comfy_cli::print_history(&mut out, Some(std::path::Path::new(db)), None, 50, json).unwrap();
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn history_shows_the_typical_run_time_learned_for_each_jobs_workflow() {
    let (url, _stop) = serve(ServerVersion::V0_26);
    let dir = tempfile::tempdir().unwrap();
    let (db, wf) = profile_with_local(dir.path(), &url, "typical");
    // The same workflow again with another seed (not a cost: the same fingerprint), so that
    // the server runs it instead of answering from its cache.
    let again = sampler_workflow(dir.path(), "again.json", 2, 5, 9, "typical");
    for wf in [wf.as_str(), again.to_str().unwrap()] {
        assert_eq!(
            run(&["--db", &db, "submit", wf, "--wait"]),
            ExitCode::SUCCESS
        );
    }
    // Another workflow (more steps cost more), run once.
    let other = sampler_workflow(dir.path(), "other.json", 4, 5, 8, "typical");
    assert_eq!(
        run(&["--db", &db, "submit", other.to_str().unwrap(), "--wait"]),
        ExitCode::SUCCESS
    );

    let lines = history_lines(&db, false);
    assert_eq!(lines.len(), 3, "{lines:#?}");
    // Newest first: the other workflow, then the two runs of the first; each named by its file.
    assert!(
        lines[0].contains(" · typical ≈") && lines[0].ends_with(" (1 run) · other.json"),
        "{lines:#?}"
    );
    for (l, file) in lines[1..].iter().zip(["again.json", "wf.json"]) {
        assert!(l.contains(" success ") && l.contains(" · typical ≈"), "{l}");
        assert!(l.ends_with(&format!(" (2 runs) · {file}")), "{l}");
    }

    let rows: Vec<serde_json::Value> = history_lines(&db, true)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows[0]["typical_samples"], 1);
    for r in &rows[1..] {
        assert_eq!(r["typical_samples"], 2, "{r}");
    }
    assert!(
        rows.iter().all(|r| r["typical_ms"].as_u64().is_some()),
        "{rows:#?}"
    );
}

/// `submit --wait` on a saved instance (an engine with the journal's timing, as `act` starts
/// it): the first line printed of the job, before any step, carries the ETA learned from the
/// workflow's earlier run.
#[test]
fn a_submission_of_a_workflow_that_ran_before_is_printed_with_its_learned_eta_before_its_first_step(
) {
    let (url, _stop) = serve(ServerVersion::V0_26);
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = profile_with_local(dir.path(), &url, "eta");
    let wf = sampler_workflow(dir.path(), "slow.json", 5, 40, 3, "eta");
    assert_eq!(
        run(&["--db", &db, "submit", wf.to_str().unwrap(), "--wait"]),
        ExitCode::SUCCESS
    );
    // Another seed: the same workflow to the timing model, not to the server's cache.
    let again = sampler_workflow(dir.path(), "again.json", 5, 40, 4, "eta");
    let workflow: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&again).unwrap()).unwrap();
    let profile = comfy_app::Profile::open(Some(std::path::Path::new(&db))).unwrap();
    let rec = profile.instance_named("Local").unwrap();
    let spec = profile.spec(&rec).unwrap();
    let timings = profile.journal().timings(rec.id).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let lines = rt.block_on(async {
        let (engine, mut rx) = comfy_engine::Engine::new(comfy_engine::DEFAULT_EVENT_CAPACITY);
        let restore = comfy_engine::journal::Restore {
            jobs: Vec::new(),
            timings,
        };
        engine.add_saved(rec.id, spec, restore).unwrap();
        while let Some(e) = rx.recv().await {
            if let comfy_engine::EventKind::Connection(c) = &e.kind {
                if c.state == comfy_engine::ConnectionState::Connected {
                    break;
                }
            }
        }
        let submitted = comfy_app::jobs::submit(
            &engine,
            Some(&profile),
            rec.id,
            workflow,
            Default::default(),
            None,
        )
        .await
        .unwrap();
        let id = submitted.submission.prompt_id;
        let mut printer = comfy_cli::Printer::new(Vec::new(), comfy_cli::Format::Human);
        while let Some(e) = rx.recv().await {
            let comfy_engine::EventKind::Job(j) = &e.kind else {
                continue;
            };
            if j.prompt_id != id {
                continue;
            }
            printer.print(&e).unwrap();
            if j.state.is_terminal() {
                break;
            }
        }
        engine.shutdown().await;
        String::from_utf8(printer.into_inner()).unwrap()
    });
    let lines: Vec<&str> = lines.lines().collect();
    let first = lines.first().expect("the job was printed");
    assert!(
        first.contains("≈") && first.contains("(1 run)") && !first.contains("/5"),
        "{lines:#?}"
    );
    assert!(
        first.contains(" pending · ≈") || first.contains(" left (1 run)"),
        "an ETA from history: {lines:#?}"
    );
    let stepping = lines
        .iter()
        .position(|l| l.contains("/5"))
        .unwrap_or_else(|| panic!("steps: {lines:#?}"));
    assert!(stepping > 0, "{lines:#?}");
    assert!(lines.last().unwrap().contains(" success"), "{lines:#?}");
}
