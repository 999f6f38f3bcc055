//! Shared test helpers.

use std::path::PathBuf;

/// The recorded traces shipped with the repository (0.3.64 at the top, 0.26.0 in `v0.26/`).
pub fn traces_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/comfyui-traces")
}

/// Every scenario file (not the `.http.jsonl` extracts), sorted.
pub fn trace_files() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in [traces_dir(), traces_dir().join("v0.26")] {
        for entry in std::fs::read_dir(&dir).expect("traces dir") {
            let p = entry.expect("dir entry").path();
            let name = p
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            if name.ends_with(".jsonl") && !name.ends_with(".http.jsonl") {
                out.push(p);
            }
        }
    }
    out.sort();
    assert!(
        out.len() >= 20,
        "expected the shared traces, found {}",
        out.len()
    );
    out
}

/// The variable telling a scenario started by [`on_small_fs`] where its filesystem is.
pub const SMALL_FS: &str = "COMFY_MONITOR_TEST_SMALL_FS";

/// Runs one ignored test of this binary (`scenario`, by its full path) in a copy of the binary
/// inside its own mount namespace, on a 1 MiB tmpfs whose path is in [`SMALL_FS`]. Returns what
/// it printed (stdout, stderr), after checking that it ran and passed.
pub fn on_small_fs(scenario: &str) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small");
    std::fs::create_dir(&small).unwrap();
    on_tmpfs(scenario, &small, "1m", SMALL_FS)
}

/// [`on_small_fs`] with a tmpfs of `size` (as `mount` takes it: `8m`) mounted on `at`, its path
/// given to the scenario in the variable `var`.
pub fn on_tmpfs(scenario: &str, at: &std::path::Path, size: &str, var: &str) -> (String, String) {
    use std::os::unix::fs::MetadataExt;
    let mut cmd = std::process::Command::new("unshare");
    // Root may make a mount namespace; anyone else needs a user namespace for it.
    if std::fs::metadata("/proc/self").unwrap().uid() != 0 {
        cmd.arg("--map-root-user");
    }
    let out = cmd
        .args([
            "--mount",
            "sh",
            "-c",
            &format!(r#"mount -t tmpfs -o size={size} tmpfs "$1" && shift && exec "$@""#),
            "sh",
        ])
        .arg(at)
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            scenario,
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(var, at)
        .output()
        .expect("unshare (util-linux) runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "the scenario ran and passed:\n{stdout}\n{stderr}"
    );
    (stdout, stderr)
}

/// Inside a scenario started by [`on_small_fs`]: its filesystem, after a file `fill` has taken
/// every byte left on it.
pub fn full_small_fs() -> PathBuf {
    use std::io::Write;
    let small =
        PathBuf::from(std::env::var_os(SMALL_FS).expect("started by on_small_fs, which sets it"));
    let mut fill = std::fs::File::create(small.join("fill")).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    loop {
        match fill.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
            Err(e) => panic!("filling the small filesystem: {e}"),
        }
    }
    small
}
