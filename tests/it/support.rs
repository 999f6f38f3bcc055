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
