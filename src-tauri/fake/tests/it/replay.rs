//! Trace replay: recorded frames in order, recorded HTTP answers.

use std::path::PathBuf;

use fake_comfyui::{FakeComfy, FakeConfig, ReplayScript};
use futures_util::StreamExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::support::*;

const TRACE: &str = r#"{"t_ms": 0.5, "kind": "meta", "client": null, "scenario": "inline"}
{"t_ms": 1.0, "kind": "text", "client": "monitor", "json": {"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 0}}, "sid": "monitor-1"}}}
{"t_ms": 1.5, "kind": "text", "client": "observer", "json": {"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 0}}, "sid": "observer-1"}}}
{"t_ms": 2.0, "kind": "text", "client": "monitor", "json": {"type": "progress", "data": {"value": 1, "max": 2, "prompt_id": "p", "node": "1"}}}
{"t_ms": 3.0, "kind": "binary", "client": "monitor", "b64": "AAAAAQAAAAH/2P/g"}
{"t_ms": 4.0, "kind": "http", "client": "http", "method": "GET", "path": "/queue", "status": 200, "content_type": "application/json; charset=utf-8", "response_json": {"queue_running": [[7, "p", {}, {}, ["2"]]], "queue_pending": []}}
"#;

#[tokio::test]
async fn replay_sends_the_traces_frames_in_order_and_serves_recorded_answers() {
    let script = ReplayScript::from_jsonl(TRACE, "monitor").expect("trace parses");
    let fake = FakeComfy::start_replay(FakeConfig::default(), script)
        .await
        .expect("starts");
    let mut ws = connect(&fake, "whoever").await;
    assert_eq!(next(&mut ws).await.json()["data"]["sid"], "monitor-1");
    assert_eq!(next(&mut ws).await.json()["type"], "progress");
    assert_eq!(
        next(&mut ws).await,
        Frame::Binary(vec![0, 0, 0, 1, 0, 0, 0, 1, 0xff, 0xd8, 0xff, 0xe0])
    );
    let queue = get(&fake, "/queue").await;
    assert_eq!(queue.json()["queue_running"][0][1], "p");
    // Paths that were not recorded are answered by the fake itself.
    assert_eq!(
        get(&fake, "/prompt").await.json(),
        json!({"exec_info": {"queue_remaining": 0}})
    );
}

#[tokio::test]
async fn replay_of_a_recorded_session_matches_the_file() {
    let trace = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/comfyui-traces/v0.26/a_success.jsonl");
    let Ok(text) = std::fs::read_to_string(&trace) else {
        eprintln!("skipping: {} is not available", trace.display());
        return;
    };
    let expected: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["client"] == "monitor" && (l["kind"] == "text" || l["kind"] == "binary"))
        .collect();
    let fake = FakeComfy::start_replay_file(FakeConfig::default(), &trace, "monitor")
        .await
        .expect("starts");
    let mut ws = connect(&fake, "x").await;
    for record in &expected {
        let frame = guard("replayed frame", ws.next())
            .await
            .expect("open")
            .expect("ok");
        match (record["kind"].as_str(), frame) {
            (Some("text"), Message::Text(t)) => {
                let got: serde_json::Value = serde_json::from_str(t.as_str()).expect("json");
                assert_eq!(got, record["json"]);
            }
            (Some("binary"), Message::Binary(b)) => {
                assert_eq!(b.len() as u64, record["len"].as_u64().expect("len"));
            }
            (kind, other) => panic!("expected {kind:?}, got {other:?}"),
        }
    }
}
