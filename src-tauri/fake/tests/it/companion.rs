//! Companion mode (docs/companion-protocol.md): relayed execution messages and type-4 previews
//! for the sockets that opt in, the state route, and switching the mode at run time.

use std::time::Duration;

use fake_comfyui::{FakeComfy, FakeConfig, SendLog, ServerVersion};
use serde_json::{json, Value};

use crate::support::*;

const STATE: &str = "/comfy_monitor/v1/state";

async fn companion_fake(version: ServerVersion) -> FakeComfy {
    FakeComfy::start(FakeConfig {
        version,
        step_delay: Duration::from_millis(2),
        companion: true,
        ..FakeConfig::default()
    })
    .await
    .expect("fake server starts")
}

/// Connects and sends `flags` as the first frame; waits until the server processed them.
async fn connect_with_flags(fake: &FakeComfy, sid: &str, flags: Value) -> Ws {
    let mut ws = connect(fake, sid).await;
    assert_eq!(next(&mut ws).await.json()["data"]["sid"], sid);
    send_json(&mut ws, json!({"type": "feature_flags", "data": flags})).await;
    guard("flags processed", fake.wait_for_client(Some(sid))).await;
    if fake.version() != ServerVersion::Legacy {
        assert_eq!(next(&mut ws).await.kind(), "feature_flags");
    }
    ws
}

/// A socket that opted in to the relay (and to type-4 previews).
async fn connect_subscriber(fake: &FakeComfy, sid: &str) -> Ws {
    let flags = json!({"supports_preview_metadata": true, "comfy_monitor_relay": 1});
    connect_with_flags(fake, sid, flags).await
}

/// The metadata and image bytes of a binary type-4 frame.
fn type4(frame: &Frame) -> (Value, Vec<u8>) {
    let Frame::Binary(bytes) = frame else {
        panic!("expected a binary frame, got {frame:?}");
    };
    assert_eq!(&bytes[..4], &[0, 0, 0, 4], "not a type-4 preview");
    let len = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize;
    let meta = serde_json::from_slice(&bytes[8..8 + len]).expect("metadata JSON");
    (meta, bytes[8 + len..].to_vec())
}

fn without_status(frames: &[Frame]) -> Vec<Frame> {
    frames
        .iter()
        .filter(|f| f.kind() != "status")
        .cloned()
        .collect()
}

fn count(frames: &[Frame], kind: &str) -> usize {
    frames.iter().filter(|f| f.kind() == kind).count()
}

#[tokio::test]
async fn a_subscriber_receives_another_clients_execution_messages_and_type4_previews() {
    for version in [ServerVersion::V0_3_64, ServerVersion::V0_26] {
        let fake = companion_fake(version).await;
        // The submitter did not negotiate metadata: its previews are type 1.
        let mut submitter = connect(&fake, "A").await;
        next(&mut submitter).await;
        let mut monitor = connect_subscriber(&fake, "M").await;
        let id = queue(&fake, &sampler_graph(3, 1, "JPEG"), Some("A")).await;
        let original = without_status(&until_end(&mut submitter, &id).await);
        let relayed = without_status(&until_end(&mut monitor, &id).await);

        assert_eq!(
            relayed.len(),
            original.len(),
            "{version}: {:?}",
            sigs(&relayed)
        );
        assert_eq!(count(&original, "bin1"), 3, "{version}");
        for (copy, frame) in relayed.iter().zip(&original) {
            match frame {
                Frame::Text(_) => assert_eq!(copy, frame, "{version}: a copy was changed"),
                Frame::Binary(legacy) => {
                    assert_eq!(frame.kind(), "bin1");
                    let (meta, image) = type4(copy);
                    assert_eq!(
                        meta,
                        json!({"node_id": "1", "prompt_id": id, "display_node_id": "1",
                               "parent_node_id": null, "real_node_id": "1",
                               "image_type": "image/jpeg"}),
                        "{version}"
                    );
                    assert_eq!(image, legacy[8..], "{version}: the image changed");
                }
            }
        }
        for kind in [
            "execution_start",
            "execution_cached",
            "executing",
            "executed",
            "progress",
            "progress_state",
            "execution_success",
        ] {
            assert!(count(&relayed, kind) > 0, "{version}: no {kind} relayed");
        }
        assert!(relayed
            .iter()
            .filter_map(|f| match f {
                Frame::Text(v) => Some(v),
                Frame::Binary(_) => None,
            })
            .all(|v| v["data"]["prompt_id"] == id.as_str()));
    }
}

#[tokio::test]
async fn failures_and_interrupts_of_another_client_are_relayed() {
    let fake = companion_fake(ServerVersion::V0_26).await;
    let mut monitor = connect_subscriber(&fake, "M").await;
    // The submitter is not even connected: ComfyUI still sends to its sid, and so relays.
    let graph = r#"{"1": {"class_type": "MonitorTestFail", "inputs": {"steps": 5, "fail_after": 1, "step_delay_ms": 1, "preview_size": 0}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}}}"#;
    let failed = queue(&fake, graph, Some("gone")).await;
    let frames = until_end(&mut monitor, &failed).await;
    let error = frames
        .iter()
        .find(|f| f.kind() == "execution_error")
        .expect("execution_error relayed");
    assert_eq!(error.json()["data"]["prompt_id"], failed.as_str());

    let long = queue(&fake, &long_graph(1), Some("gone")).await;
    until_progress(&mut monitor).await;
    post_json(&fake, "/interrupt", &json!({"prompt_id": long})).await;
    let frames = until_end(&mut monitor, &long).await;
    assert_eq!(count(&frames, "execution_interrupted"), 1);
}

#[tokio::test]
async fn a_socket_that_did_not_opt_in_receives_no_copies() {
    for version in [ServerVersion::V0_3_64, ServerVersion::V0_26] {
        let fake = companion_fake(version).await;
        let mut submitter = connect_negotiated(&fake, "A").await;
        let mut plain = connect_negotiated(&fake, "P").await;
        let mut zero = connect_with_flags(
            &fake,
            "Z",
            json!({"supports_preview_metadata": true, "comfy_monitor_relay": 0}),
        )
        .await;
        let id = queue(&fake, &sampler_graph(2, 1, "JPEG"), Some("A")).await;
        until_end(&mut submitter, &id).await;
        sentinel(&fake, 1);
        for ws in [&mut plain, &mut zero] {
            let seen = sigs(&until_sentinel(ws, 1).await);
            assert_eq!(seen, ["status:1", "status:1", "status:0"], "{version}");
        }
        assert!(fake.companion_subscribers().is_empty());
    }
}

#[tokio::test]
async fn broadcasts_are_not_copied_to_subscribers() {
    let fake = companion_fake(ServerVersion::V0_26).await;
    let mut monitor = connect_subscriber(&fake, "M").await;
    let mut plain = connect_negotiated(&fake, "P").await;
    // Without a client id, progress, progress_state and previews are broadcast.
    queue(&fake, &sampler_graph(2, 1, "JPEG"), None).await;
    guard("idle", fake.wait_idle()).await;
    fake.broadcast_json("crystools.monitor", json!({"cpu": 1}));
    sentinel(&fake, 1);
    let seen = until_sentinel(&mut monitor, 1).await;
    assert_eq!(seen, until_sentinel(&mut plain, 1).await);
    assert!(count(&seen, "progress") > 0);
}

#[tokio::test]
async fn legacy_servers_never_read_the_relay_flag() {
    let fake = companion_fake(ServerVersion::Legacy).await;
    let mut monitor = connect_subscriber(&fake, "M").await;
    assert!(fake.companion_subscribers().is_empty());
    let id = queue(&fake, &sampler_graph(2, 1, "JPEG"), Some("A")).await;
    guard("idle", fake.wait_idle()).await;
    sentinel(&fake, 1);
    let seen = until_sentinel(&mut monitor, 1).await;
    assert!(
        seen.iter().all(|f| f.kind() == "status"),
        "{id}: {:?}",
        sigs(&seen)
    );
}

/// Runs one sampler job for the submitter `A` and returns its stream.
async fn submitter_stream(fake: &FakeComfy, submitter_flags: Value) -> Vec<Frame> {
    let mut submitter = connect_with_flags(fake, "A", submitter_flags).await;
    let id = queue(fake, &sampler_graph(3, 1, "JPEG"), Some("A")).await;
    until_end(&mut submitter, &id).await
}

#[tokio::test]
async fn the_submitters_stream_is_the_same_with_and_without_companion_mode() {
    for version in [ServerVersion::V0_3_64, ServerVersion::V0_26] {
        let flags = json!({"supports_preview_metadata": true});
        let without = submitter_stream(&fake(version).await, flags.clone()).await;
        let with_companion = companion_fake(version).await;
        let mut monitor = connect_subscriber(&with_companion, "M").await;
        let with = submitter_stream(&with_companion, flags).await;
        assert_eq!(sigs(&with), sigs(&without), "{version}");
        // The subscriber did get the copies meanwhile.
        assert!(count(&until_job_end(&mut monitor).await, "bin4") > 0);
    }
}

/// Reads up to the first job end (`executing {node: null}`), whichever job it is.
async fn until_job_end(ws: &mut Ws) -> Vec<Frame> {
    let mut frames = Vec::new();
    loop {
        let f = next(ws).await;
        let end =
            matches!(&f, Frame::Text(v) if v["type"] == "executing" && v["data"]["node"].is_null());
        frames.push(f);
        if end {
            return frames;
        }
    }
}

#[tokio::test]
async fn a_submitter_that_also_opted_in_gets_its_own_messages_once() {
    let relay = json!({"supports_preview_metadata": true, "comfy_monitor_relay": 1});
    let plain = json!({"supports_preview_metadata": true});
    let without = submitter_stream(&fake(ServerVersion::V0_26).await, plain).await;
    let fake = companion_fake(ServerVersion::V0_26).await;
    let mut monitor = connect_subscriber(&fake, "M").await;
    let own = submitter_stream(&fake, relay).await;
    assert_eq!(sigs(&own), sigs(&without));
    assert_eq!(count(&own, "execution_start"), 1);
    let copies = until_job_end(&mut monitor).await;
    assert_eq!(count(&copies, "execution_start"), 1);
}

#[tokio::test]
async fn the_state_route_describes_the_running_job_and_idle() {
    let fake = companion_fake(ServerVersion::V0_26).await;
    let idle =
        json!({"companion": "0.1.0-fake", "protocol": 1, "comfyui": "0.26.0", "running": null});
    for path in [STATE, "/api/comfy_monitor/v1/state"] {
        let resp = get(&fake, path).await;
        assert_eq!(resp.status, 200, "{path}");
        assert_eq!(resp.json(), idle, "{path}");
    }
    assert_eq!(fake.companion_state(), Some(idle.clone()));

    let mut submitter = connect(&fake, "A").await;
    next(&mut submitter).await;
    let graph = r#"{"1": {"class_type": "MonitorTestSampler", "inputs": {"steps": 10000, "step_delay_ms": 5, "preview_size": 0}, "_meta": {"title": "Slow sampler"}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}}}"#;
    let id = queue(&fake, graph, Some("A")).await;
    until_progress(&mut submitter).await;
    let state = get(&fake, STATE).await.json();
    let running = &state["running"];
    assert_eq!(running["prompt_id"], id.as_str());
    assert_eq!(running["client_id"], "A");
    assert!(running["started_at"]
        .as_i64()
        .is_some_and(|t| t > 1_700_000_000_000));
    assert_eq!(running["node"], "1");
    assert_eq!(
        running["nodes"],
        json!({"1": {"class_type": "MonitorTestSampler", "title": "Slow sampler"},
               "2": {"class_type": "SaveImage", "title": null}})
    );
    let node = &running["progress_state"]["1"];
    assert_eq!(node["state"], "running");
    assert_eq!(node["max"], 10000);
    assert!(node["value"].as_u64().is_some_and(|v| v >= 1));
    assert_eq!(node["prompt_id"], id.as_str());
    assert_eq!(node["real_node_id"], "1");

    post_json(&fake, "/interrupt", &json!({})).await;
    guard("idle", fake.wait_idle()).await;
    assert_eq!(get(&fake, STATE).await.json(), idle);
}

#[tokio::test]
async fn the_state_route_has_no_progress_state_on_legacy_servers() {
    let fake = companion_fake(ServerVersion::Legacy).await;
    let mut submitter = connect(&fake, "A").await;
    next(&mut submitter).await;
    let id = queue(&fake, &long_graph(1), Some("A")).await;
    until_progress(&mut submitter).await;
    let state = get(&fake, STATE).await.json();
    assert_eq!(state["comfyui"], "legacy");
    assert_eq!(state["running"]["prompt_id"], id.as_str());
    assert_eq!(state["running"]["progress_state"], json!({}));
    post_json(&fake, "/interrupt", &json!({})).await;
    guard("idle", fake.wait_idle()).await;
}

#[tokio::test]
async fn the_state_route_is_a_404_without_companion_mode() {
    for version in [
        ServerVersion::Legacy,
        ServerVersion::V0_3_64,
        ServerVersion::V0_26,
    ] {
        let fake = fake(version).await;
        assert!(!fake.companion());
        assert_eq!(get(&fake, STATE).await.status, 404, "{version}");
        assert_eq!(get(&fake, "/api/comfy_monitor/v1/state").await.status, 404);
        assert_eq!(fake.companion_state(), None);
    }
}

#[tokio::test]
async fn switching_companion_mode_off_at_run_time_stops_copies_and_the_route() {
    let fake = companion_fake(ServerVersion::V0_3_64).await;
    let mut submitter = connect_negotiated(&fake, "A").await;
    let mut monitor = connect_subscriber(&fake, "M").await;
    // A different step count each time, so no run is cached.
    let run = |n: u32| sampler_graph(n + 1, 1, "JPEG");

    let first = queue(&fake, &run(0), Some("A")).await;
    until_end(&mut submitter, &first).await;
    assert_eq!(
        count(&until_end(&mut monitor, &first).await, "execution_start"),
        1
    );

    fake.set_companion(false);
    assert!(!fake.companion());
    assert_eq!(get(&fake, STATE).await.status, 404);
    let second = queue(&fake, &run(1), Some("A")).await;
    until_end(&mut submitter, &second).await;
    sentinel(&fake, 1);
    let seen = sigs(&until_sentinel(&mut monitor, 1).await);
    assert_eq!(seen, ["status:1", "status:1", "status:0"]);

    // Back on: the socket's flags were kept, so it is a subscriber again.
    fake.set_companion(true);
    assert_eq!(get(&fake, STATE).await.status, 200);
    let third = queue(&fake, &run(2), Some("A")).await;
    until_end(&mut submitter, &third).await;
    assert_eq!(
        count(&until_end(&mut monitor, &third).await, "execution_start"),
        1
    );

    // A companion that vanishes across a restart: the reconnected monitor opts in for nothing.
    fake.set_companion(false);
    fake.restart().await;
    let mut submitter = connect_negotiated(&fake, "A").await;
    let mut monitor = connect_subscriber(&fake, "M").await;
    assert_eq!(get(&fake, STATE).await.status, 404);
    let after = queue(&fake, &run(3), Some("A")).await;
    until_end(&mut submitter, &after).await;
    sentinel(&fake, 2);
    let seen = sigs(&until_sentinel(&mut monitor, 2).await);
    assert_eq!(seen, ["status:1", "status:1", "status:0"]);
}

#[tokio::test]
async fn relayed_progress_and_previews_are_stamped_for_each_subscriber() {
    let path = std::env::temp_dir().join(format!("fake-relay-{}.ndjson", uuid::Uuid::new_v4()));
    let log = SendLog::create(&path)
        .expect("log file")
        .with_previews(true);
    let fake = FakeComfy::start(FakeConfig {
        step_delay: Duration::from_millis(2),
        send_log: Some(log.clone()),
        companion: true,
        ..FakeConfig::default()
    })
    .await
    .expect("fake server starts");
    let mut submitter = connect(&fake, "A").await;
    next(&mut submitter).await;
    let mut monitor = connect_subscriber(&fake, "M").await;
    let id = queue(&fake, &sampler_graph(3, 1, "JPEG"), Some("A")).await;
    until_end(&mut submitter, &id).await;
    let relayed = until_end(&mut monitor, &id).await;
    assert_eq!(count(&relayed, "bin4"), 3);
    // Written means stamped: both sockets have read the whole job.
    log.flush();
    let text = std::fs::read_to_string(&path).expect("send log readable");
    let _ = std::fs::remove_file(&path);
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    for kind in ["progress", "preview"] {
        for sid in ["A", "M"] {
            let n = lines
                .iter()
                .filter(|l| l["kind"] == kind && l["sid"] == sid && l["prompt_id"] == id.as_str())
                .count();
            assert_eq!(n, 3, "{kind} lines for {sid}");
        }
    }
}
