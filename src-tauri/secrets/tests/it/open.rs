//! `Secrets::open` as a program sees it: the environment variable and a session without a
//! Secret Service. Each test re-runs itself in a child process with the environment it needs,
//! so no test changes this process's environment.

use crate::support::{child_dir, child_result, fallback_path, run_child};
use comfy_secrets::{Backend, Opened, Secrets};

/// A D-Bus address where nothing listens: the Secret Service cannot be reached.
const NO_BUS: &[(&str, &str)] = &[
    (
        "DBUS_SESSION_BUS_ADDRESS",
        "unix:path=/nonexistent/comfy-secrets-test/bus",
    ),
    ("XDG_RUNTIME_DIR", "/nonexistent/comfy-secrets-test"),
];

fn describe(opened: &Opened) -> String {
    let backend = match &opened.backend {
        Backend::Keyring => "keyring".to_owned(),
        Backend::File { path } => format!("file:{}", path.display()),
    };
    format!(
        "backend={backend} first={} notice={}",
        opened.first_fallback,
        opened.notice().is_some()
    )
}

/// In the child: open inside an async runtime (as the app does), store and read back one value,
/// and print what `open` reported.
fn open_in_child() {
    let dir = child_dir().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (secrets, opened) = runtime
        .block_on(async { Secrets::open(&dir.join("secrets.json")) })
        .unwrap();
    if let Backend::File { .. } = opened.backend {
        secrets.set("instance/1/token", "from-child").unwrap();
        assert_eq!(
            secrets.get("instance/1/token").unwrap().as_deref(),
            Some("from-child")
        );
    }
    println!("RESULT {}", describe(&opened));
    println!("REASON {:?}", opened.reason);
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
        format!("backend=file:{} first=true notice=true", path.display())
    );
    assert!(out.contains("COMFY_MONITOR_SECRETS=file"), "{out}");
}

#[cfg(target_os = "linux")]
#[test]
fn open_falls_back_to_the_file_when_no_secret_service_is_reachable_and_says_so_once() {
    if child_dir().is_some() {
        return open_in_child();
    }
    let (_tmp, path) = fallback_path();
    let dir = path.parent().unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let name =
        "open::open_falls_back_to_the_file_when_no_secret_service_is_reachable_and_says_so_once";

    let first = run_child(name, dir, NO_BUS);
    assert_eq!(
        child_result(&first),
        format!("backend=file:{} first=true notice=true", path.display()),
        "{first}"
    );
    assert!(first.contains("no usable OS keyring"), "{first}");

    let second = run_child(name, dir, NO_BUS);
    assert_eq!(
        child_result(&second),
        format!("backend=file:{} first=false notice=false", path.display())
    );
    // The first run's value is still there for the second.
    let secrets = Secrets::file_only(&path).unwrap();
    assert_eq!(
        secrets.get("instance/1/token").unwrap().as_deref(),
        Some("from-child")
    );
}
