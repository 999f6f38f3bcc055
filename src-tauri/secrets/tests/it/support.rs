//! Temporary fallback paths, permission bits, and re-running one test of this binary in a child
//! process with its own environment.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A fallback path whose directory does not exist yet, inside a fresh temporary directory.
pub fn fallback_path() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("comfy-monitor").join("secrets.json");
    (dir, path)
}

#[cfg(unix)]
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[cfg(unix)]
pub fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Set in a child started by [`run_child`]: the directory it works in.
const CHILD_DIR_VAR: &str = "COMFY_SECRETS_TEST_CHILD_DIR";

/// In a child started by [`run_child`], the directory it was given; `None` in the parent.
pub fn child_dir() -> Option<PathBuf> {
    std::env::var_os(CHILD_DIR_VAR).map(PathBuf::from)
}

/// Runs the test `name` (its full path, e.g. `open::some_test`) of this binary in a child with
/// `COMFY_MONITOR_SECRETS` removed, then `env` applied, and returns what it printed. Fails unless
/// the child ran exactly that test and it passed.
pub fn run_child(name: &str, dir: &Path, env: &[(&str, &str)]) -> String {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR_VAR, dir)
        .env_remove(comfy_secrets::BACKEND_ENV_VAR);
    for (key, value) in env {
        command.env(key, value);
    }
    let out = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "child failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    assert!(
        stdout.contains("1 passed"),
        "the child did not run {name}\n{stdout}"
    );
    stdout
}

/// What a child printed after `RESULT ` (libtest may have put the test's name before it).
pub fn child_result(stdout: &str) -> &str {
    stdout
        .lines()
        .find_map(|l| l.split_once("RESULT ").map(|(_, rest)| rest))
        .unwrap_or_else(|| panic!("no RESULT line in\n{stdout}"))
}
