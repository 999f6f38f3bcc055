//! The `comfy-monitor` subcommands end to end against a fake ComfyUI on a real socket.

use fake_comfyui::{FakeComfy, FakeConfig, ServerVersion};
use std::process::ExitCode;

/// A fake server on its own runtime thread, so the CLI can run its own runtime here.
fn serve(version: ServerVersion) -> (String, std::sync::mpsc::Sender<()>) {
    let (url_tx, url_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let server = FakeComfy::start(FakeConfig {
                version,
                ..FakeConfig::default()
            })
            .await
            .unwrap();
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
        let wf = dir.path().join("wf.json");
        std::fs::write(
            &wf,
            r#"{"1": {"class_type": "MonitorTestSampler", "inputs": {"steps": 3, "step_delay_ms": 5, "seed": 1}},
                "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "cli"}}}"#,
        )
        .unwrap();
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

#[test]
fn cancel_of_an_unknown_job_fails_and_says_so() {
    let (url, _stop) = serve(ServerVersion::V0_3_64);
    let id = "4f729e71-630a-4217-b3a2-86a1431c8e94";
    assert_eq!(run(&["cancel", id, "--url", &url]), ExitCode::from(1));
}
