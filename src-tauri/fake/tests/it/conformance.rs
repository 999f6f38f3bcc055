//! The fake against the recorded traces: the same POSTs from the same client must produce the
//! same sequence of messages (types, nodes, progress steps, node states, binary frame types) on
//! the submitter's socket as the real server produced. Ids and timestamps are not compared.
//! Skipped when the shared traces are not next to the repository.

use std::path::PathBuf;

use fake_comfyui::{FakeComfy, ServerVersion};
use serde_json::Value;

use crate::support::*;

fn traces_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/comfyui-traces");
    dir.is_dir().then_some(dir)
}

fn trace_sig(record: &Value) -> String {
    match record["kind"].as_str() {
        Some("text") => Frame::Text(record["json"].clone()).sig(),
        _ => format!("bin{}", record["event_type"]),
    }
}

/// Replays the scenario's accepted POSTs against `fake` and compares the monitor's frames.
async fn check_scenario(fake: &FakeComfy, file: &PathBuf) {
    let text = std::fs::read_to_string(file).expect("trace");
    let records: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let url = records
        .iter()
        .find(|r| r["event"] == "ws_connect" && r["client"] == "monitor")
        .and_then(|r| r["url"].as_str())
        .expect("monitor socket");
    let sid = url.split("clientId=").nth(1).expect("clientId");
    let expected: Vec<String> = records
        .iter()
        .filter(|r| r["client"] == "monitor" && (r["kind"] == "text" || r["kind"] == "binary"))
        .skip(1) // the hello
        .map(trace_sig)
        .collect();
    let posts: Vec<&Value> = records
        .iter()
        .filter(|r| r["kind"] == "http" && r["method"] == "POST" && r["status"] == 200)
        .filter(|r| r["path"].as_str().is_some_and(|p| p.ends_with("/prompt")))
        .map(|r| &r["request_json"])
        .collect();

    let mut ws = connect(fake, sid).await;
    next(&mut ws).await;
    let mut got = Vec::new();
    for body in posts {
        let resp = post_json(fake, "/prompt", body).await;
        assert_eq!(resp.status, 200);
        let id = resp.json()["prompt_id"].as_str().expect("id").to_string();
        got.extend(sigs(&until_end(&mut ws, &id).await));
    }
    assert_eq!(got, expected, "{}", file.display());
}

#[tokio::test]
async fn recorded_scenarios_produce_the_same_submitter_sequence() {
    let Some(dir) = traces_dir() else {
        eprintln!("skipping: shared/comfyui-traces is not available");
        return;
    };
    let v026 = fake(ServerVersion::V0_26).await;
    for scenario in ["a_success", "b_cached_rerun", "d_execution_error"] {
        check_scenario(&v026, &dir.join("v0.26").join(format!("{scenario}.jsonl"))).await;
    }
    // 0.3.64 visits cached outputs in Python set order, so only the uncached scenarios compare;
    // it does not throttle progress, so the text/custom-event scenario is timing-independent.
    let v0364 = fake(ServerVersion::V0_3_64).await;
    for scenario in ["a_success", "d_execution_error", "j_text_and_custom"] {
        check_scenario(&v0364, &dir.join(format!("{scenario}.jsonl"))).await;
    }
}
