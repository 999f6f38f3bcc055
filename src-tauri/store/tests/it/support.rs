//! Shared fixtures: a fresh database path, and jobs in a few words.

use comfy_store::{InstanceId, JobEnd, JobOrigin, JobOutcome, JobSeen, NewInstance, Store};
use std::path::PathBuf;
use tempfile::TempDir;

/// A path for a database that does not exist yet, in a directory removed at the end.
pub fn db_path() -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("monitor.db");
    (dir, path)
}

/// A store on a fresh file, plus one instance besides the seeded "Local".
pub fn store_with_instance() -> (TempDir, Store, InstanceId) {
    let (dir, path) = db_path();
    let mut store = Store::open(&path).unwrap();
    let id = store
        .insert_instance(&NewInstance::new("gpu", "http://gpu.lan:8188"), 1_000)
        .unwrap()
        .id;
    (dir, store, id)
}

pub fn seen(instance: InstanceId, prompt_id: &str, queued_at: i64) -> JobSeen {
    JobSeen {
        instance,
        prompt_id: prompt_id.to_owned(),
        origin: JobOrigin::Other,
        number: Some(queued_at as f64),
        queued_at,
        workflow_json: None,
    }
}

pub fn own(instance: InstanceId, prompt_id: &str, queued_at: i64) -> JobSeen {
    JobSeen {
        origin: JobOrigin::SelfApp,
        workflow_json: Some(format!(
            r#"{{"3":{{"class_type":"KSampler","seed":{queued_at}}}}}"#
        )),
        ..seen(instance, prompt_id, queued_at)
    }
}

pub fn end(instance: InstanceId, prompt_id: &str, outcome: JobOutcome, at: i64) -> JobEnd {
    JobEnd {
        instance,
        prompt_id: prompt_id.to_owned(),
        outcome,
        started_at: None,
        finished_at: at,
        error_json: None,
        outputs_json: None,
        node_durations_json: None,
        detail: None,
        fingerprint: None,
        run_ms: None,
    }
}
