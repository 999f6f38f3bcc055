//! `Secrets::open` as a program sees it: the environment variable and a session without a
//! Secret Service. Each test re-runs itself in a child process with the environment it needs,
//! so no test changes this process's environment.

use crate::support::{child_dir, child_result, fallback_path, run_child};
use comfy_secrets::{Backend, Secrets};

/// A D-Bus address where nothing listens: the Secret Service cannot be reached.
const NO_BUS: &[(&str, &str)] = &[
    (
        "DBUS_SESSION_BUS_ADDRESS",
        "unix:path=/nonexistent/comfy-secrets-test/bus",
    ),
    ("XDG_RUNTIME_DIR", "/nonexistent/comfy-secrets-test"),
];

fn describe(backend: &Backend) -> String {
    match backend {
        Backend::Keyring => "keyring".to_owned(),
        Backend::File { path } => format!("file:{}", path.display()),
        Backend::KeyringOrFile { path } => format!("keyring-or-file:{}", path.display()),
    }
}

/// In the child: open inside an async runtime (as the app does), store and read back one value,
/// and print the backend and what the user would be told.
fn open_in_child() {
    let dir = child_dir().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let secrets = runtime
        .block_on(async { Secrets::open(&dir.join("secrets.json")) })
        .unwrap();
    let before = secrets.get("instance/1/token").unwrap();
    secrets.set("instance/1/token", "from-child").unwrap();
    assert_eq!(
        secrets.get("instance/1/token").unwrap().as_deref(),
        Some("from-child")
    );
    let notices = secrets.take_notices();
    println!(
        "RESULT backend={} before={before:?} notices={}",
        describe(secrets.backend()),
        notices.len()
    );
    println!("NOTICES {notices:?}");
}

#[test]
fn the_environment_variable_forces_the_file() {
    if child_dir().is_some() {
        return open_in_child();
    }
    let (_tmp, path) = fallback_path();
    let dir = path.parent().unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let out = run_child(
        "open::the_environment_variable_forces_the_file",
        dir,
        &[("COMFY_MONITOR_SECRETS", "file")],
    );
    assert_eq!(
        child_result(&out),
        format!("backend=file:{} before=None notices=1", path.display())
    );
    assert!(out.contains("COMFY_MONITOR_SECRETS=file"), "{out}");
}

#[cfg(target_os = "linux")]
#[test]
fn with_no_secret_service_reachable_a_credential_goes_to_the_file_and_reads_back_next_time() {
    if child_dir().is_some() {
        return open_in_child();
    }
    let (_tmp, path) = fallback_path();
    let dir = path.parent().unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let name = "open::with_no_secret_service_reachable_a_credential_goes_to_the_file_and_reads_back_next_time";

    let first = run_child(name, dir, NO_BUS);
    assert_eq!(
        child_result(&first),
        format!(
            "backend=keyring-or-file:{} before=None notices=1",
            path.display()
        ),
        "{first}"
    );
    assert!(first.contains("could not be reached"), "{first}");

    // The next run reads the first run's value from the file, without asking the keyring first.
    let second = run_child(name, dir, NO_BUS);
    assert!(
        child_result(&second).contains("before=Some(\"from-child\")"),
        "{second}"
    );
    let secrets = Secrets::file_only(&path).unwrap();
    assert_eq!(
        secrets.get("instance/1/token").unwrap().as_deref(),
        Some("from-child")
    );
}
