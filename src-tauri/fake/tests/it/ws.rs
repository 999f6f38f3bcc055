//! WebSocket behaviour: hello, feature flags, message order, routing, sid reuse.

use fake_comfyui::ServerVersion;
use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::support::*;

#[tokio::test]
async fn hello_status_carries_the_sid_and_queue_length() {
    let fake = fake(ServerVersion::V0_26).await;
    let mut ws = connect(&fake, "a-1").await;
    assert_eq!(
        next(&mut ws).await.json(),
        &json!({"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 0}}, "sid": "a-1"}})
    );

    let (mut anon, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", fake.addr()))
        .await
        .expect("connects without clientId");
    let hello = next(&mut anon).await;
    let sid = hello.json()["data"]["sid"]
        .as_str()
        .expect("minted sid")
        .to_string();
    assert_eq!(sid.len(), 32);
    assert!(sid.chars().all(|c| c.is_ascii_hexdigit()));
    assert!(fake.connected_clients().contains(&sid));
}

#[tokio::test]
async fn feature_flags_are_answered_only_for_the_first_message() {
    let fake = fake(ServerVersion::V0_26).await;
    let mut ws = connect(&fake, "flags").await;
    next(&mut ws).await;
    let flags = json!({"type": "feature_flags", "data": {"supports_preview_metadata": true}});
    send_json(&mut ws, flags.clone()).await;
    send_json(&mut ws, flags).await;
    guard("flags", fake.wait_for_client(Some("flags"))).await;
    let reply = next(&mut ws).await;
    assert_eq!(reply.json()["type"], "feature_flags");
    assert_eq!(reply.json()["data"]["supports_preview_metadata"], true);
    assert_eq!(
        reply.json()["data"]["extension"]["manager"]["supports_v4"],
        true
    );
    sentinel(&fake, 1);
    assert!(
        until_sentinel(&mut ws, 1).await.is_empty(),
        "a second reply came"
    );

    // Text that is not JSON does not use up the first-message slot.
    let mut late = connect(&fake, "late").await;
    next(&mut late).await;
    late.send(Message::Text("not json".into()))
        .await
        .expect("send");
    send_json(
        &mut late,
        json!({"type": "feature_flags", "data": {"supports_preview_metadata": true}}),
    )
    .await;
    guard("flags", fake.wait_for_client(Some("late"))).await;
    assert_eq!(next(&mut late).await.kind(), "feature_flags");

    // Any other JSON first message does.
    let mut other = connect(&fake, "hello-first").await;
    next(&mut other).await;
    send_json(&mut other, json!({"type": "hello", "data": {}})).await;
    send_json(
        &mut other,
        json!({"type": "feature_flags", "data": {"supports_preview_metadata": true}}),
    )
    .await;
    guard("first frame", fake.wait_for_client(Some("hello-first"))).await;
    sentinel(&fake, 2);
    assert!(until_sentinel(&mut other, 2).await.is_empty());
}

#[tokio::test]
async fn legacy_server_ignores_feature_flags() {
    let fake = fake(ServerVersion::Legacy).await;
    let mut ws = connect_negotiated(&fake, "old").await;
    sentinel(&fake, 1);
    assert!(until_sentinel(&mut ws, 1).await.is_empty());
    assert_eq!(get(&fake, "/features").await.status, 404);
}

#[tokio::test]
async fn submitted_job_messages_follow_the_canonical_order() {
    let fake = fake(ServerVersion::V0_26).await;
    let mut ws = connect_negotiated(&fake, "submitter").await;
    let id = queue(&fake, &sampler_graph(3, 2, "JPEG"), Some("submitter")).await;
    let frames = until_end(&mut ws, &id).await;
    let step = ["ps:1r", "bin4"];
    let mut expected: Vec<String> = [
        "status:1",
        "status:1",
        "execution_start",
        "execution_cached",
        "ps:1r",
        "executing:1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for k in 1..=3 {
        expected.extend(step.iter().map(|s| s.to_string()));
        expected.push(format!("progress:{k}/3"));
    }
    expected.extend(
        [
            "ps:1f",
            "ps:1f,4r",
            "executing:4",
            "executed:4",
            "ps:1f,4f",
            "ps:1f,2r,4f",
            "executing:2",
            "ps:1f,2f,4f",
            "ps:1f,2f,3r,4f",
            "executing:3",
            "executed:3",
            "ps:1f,2f,3f,4f",
            "execution_success",
            "status:0",
            "executing:null",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    assert_eq!(sigs(&frames), expected);

    let start = frames
        .iter()
        .find(|f| f.kind() == "execution_start")
        .expect("start");
    assert_eq!(start.json()["data"]["prompt_id"], id.as_str());
    assert!(start.json()["data"]["timestamp"].is_i64());
    let Frame::Binary(preview) = frames.iter().find(|f| f.kind() == "bin4").expect("preview")
    else {
        unreachable!()
    };
    let len = u32::from_be_bytes([preview[4], preview[5], preview[6], preview[7]]) as usize;
    let meta: serde_json::Value = serde_json::from_slice(&preview[8..8 + len]).expect("metadata");
    assert_eq!(meta["prompt_id"], id.as_str());
    assert_eq!(meta["node_id"], "1");
    assert_eq!(meta["image_type"], "image/jpeg");
    assert_eq!(&preview[8 + len..8 + len + 3], &[0xff, 0xd8, 0xff]);
    let executed = frames
        .iter()
        .find(|f| f.sig() == "executed:3")
        .expect("executed");
    assert_eq!(
        executed.json()["data"]["output"],
        json!({"images": [{"filename": "it_00001_.png", "subfolder": "", "type": "output"}]})
    );
}

#[tokio::test]
async fn client_without_flags_gets_legacy_previews_after_progress() {
    let fake = fake(ServerVersion::V0_26).await;
    let mut ws = connect(&fake, "plain").await;
    next(&mut ws).await;
    let id = queue(&fake, &sampler_graph(2, 1, "PNG"), Some("plain")).await;
    let frames = until_end(&mut ws, &id).await;
    let s = sigs(&frames);
    let first = s
        .iter()
        .position(|x| x == "progress:1/2")
        .expect("progress");
    assert_eq!(s[first - 1], "ps:1r");
    assert_eq!(s[first + 1], "bin1");
    let Frame::Binary(frame) = &frames[first + 1] else {
        unreachable!()
    };
    assert_eq!(&frame[..8], &[0, 0, 0, 1, 0, 0, 0, 2]);
    assert_eq!(&frame[8..12], &[0x89, b'P', b'N', b'G']);
}

#[tokio::test]
async fn legacy_server_sends_no_progress_state() {
    let fake = fake(ServerVersion::Legacy).await;
    let mut ws = connect(&fake, "old").await;
    next(&mut ws).await;
    let id = queue(&fake, &sampler_graph(2, 1, "JPEG"), Some("old")).await;
    let s = sigs(&until_end(&mut ws, &id).await);
    assert!(!s.iter().any(|x| x.starts_with("ps:")), "{s:?}");
    let first = s
        .iter()
        .position(|x| x == "progress:1/2")
        .expect("progress");
    assert_eq!(s[first + 1], "bin1");
}

#[tokio::test]
async fn observer_socket_receives_only_status_for_foreign_jobs() {
    let fake = fake(ServerVersion::V0_26).await;
    let mut submitter = connect_negotiated(&fake, "A").await;
    let mut observer = connect_negotiated(&fake, "M").await;
    let id = queue(&fake, &sampler_graph(2, 1, "JPEG"), Some("A")).await;
    until_end(&mut submitter, &id).await;
    sentinel(&fake, 1);
    let seen = sigs(&until_sentinel(&mut observer, 1).await);
    assert_eq!(seen, ["status:1", "status:1", "status:0"]);
}

#[tokio::test]
async fn job_without_client_id_broadcasts_progress_but_not_executing() {
    let fake = fake(ServerVersion::V0_26).await;
    let mut observer = connect_negotiated(&fake, "M").await;
    queue(&fake, &sampler_graph(2, 1, "JPEG"), None).await;
    guard("idle", fake.wait_idle()).await;
    sentinel(&fake, 1);
    let kinds: Vec<String> = until_sentinel(&mut observer, 1)
        .await
        .iter()
        .map(Frame::kind)
        .collect();
    for expected in ["status", "progress_state", "progress", "bin1"] {
        assert!(
            kinds.iter().any(|k| k == expected),
            "no {expected} in {kinds:?}"
        );
    }
    for absent in [
        "execution_start",
        "execution_cached",
        "executing",
        "executed",
        "execution_success",
        "bin4",
    ] {
        assert!(!kinds.iter().any(|k| k == absent), "{absent} in {kinds:?}");
    }
}

#[tokio::test]
async fn identical_rerun_is_fully_cached_and_resends_the_same_filenames() {
    let fake = fake(ServerVersion::V0_26).await;
    let mut ws = connect_negotiated(&fake, "A").await;
    let graph = sampler_graph(2, 1, "JPEG");
    let first = queue(&fake, &graph, Some("A")).await;
    let first_frames = until_end(&mut ws, &first).await;
    let second = queue(&fake, &graph, Some("A")).await;
    let frames = until_end(&mut ws, &second).await;
    assert_eq!(
        sigs(&frames),
        [
            "status:1",
            "status:1",
            "execution_start",
            "execution_cached",
            "executed:3",
            "ps:3f",
            "executed:4",
            "ps:3f,4f",
            "execution_success",
            "status:0",
            "executing:null"
        ]
    );
    assert_eq!(
        frames[3].json()["data"]["nodes"],
        json!(["1", "2", "3", "4"])
    );
    let output = |fs: &[Frame], node: &str| {
        fs.iter()
            .find(|f| f.sig() == format!("executed:{node}"))
            .map(|f| f.json()["data"]["output"].clone())
    };
    assert_eq!(output(&frames, "3"), output(&first_frames, "3"));
    assert_eq!(output(&frames, "4"), output(&first_frames, "4"));
}

#[tokio::test]
async fn newest_generation_throttles_progress_without_previews() {
    let new = fake(ServerVersion::V0_26).await;
    let mut ws = connect(&new, "A").await;
    next(&mut ws).await;
    let id = queue(&new, &sampler_graph(3, 2, "none"), Some("A")).await;
    let progress: Vec<String> = sigs(&until_end(&mut ws, &id).await)
        .into_iter()
        .filter(|s| s.starts_with("progress:"))
        .collect();
    assert_eq!(progress, ["progress:1/3", "progress:3/3"]);

    let old = fake(ServerVersion::V0_3_64).await;
    let mut ws = connect(&old, "A").await;
    next(&mut ws).await;
    let id = queue(&old, &sampler_graph(3, 2, "none"), Some("A")).await;
    let progress: Vec<String> = sigs(&until_end(&mut ws, &id).await)
        .into_iter()
        .filter(|s| s.starts_with("progress:"))
        .collect();
    assert_eq!(progress, ["progress:1/3", "progress:2/3", "progress:3/3"]);
}

#[tokio::test]
async fn failing_node_sends_a_terminal_execution_error() {
    let fake = fake(ServerVersion::V0_26).await;
    let mut ws = connect(&fake, "A").await;
    next(&mut ws).await;
    let graph = r#"{"1": {"class_type": "MonitorTestFail", "inputs": {"steps": 5, "fail_after": 2, "step_delay_ms": 1, "preview_size": 16, "seed": 2, "message": "boom"}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "fail"}}}"#;
    let id = queue(&fake, graph, Some("A")).await;
    let frames = until_end(&mut ws, &id).await;
    let s = sigs(&frames);
    assert_eq!(
        &s[s.len() - 3..],
        ["execution_error", "status:0", "executing:null"]
    );
    assert_eq!(s.iter().filter(|x| x.starts_with("progress:")).count(), 2);
    let err = &frames[frames.len() - 3].json()["data"];
    assert_eq!(err["exception_type"], "RuntimeError");
    assert_eq!(
        err["exception_message"],
        "boom (MonitorTestFail after 2 of 5 steps)\n"
    );
    assert_eq!(err["node_id"], "1");
    assert_eq!(err["current_inputs"]["steps"], json!([5]));
    assert!(err["traceback"].as_array().is_some_and(|t| !t.is_empty()));
    let history = get(&fake, &format!("/history/{id}")).await.json();
    assert_eq!(history[&id]["status"]["status_str"], "error");
    assert_eq!(history[&id]["outputs"], json!({}));
}

#[tokio::test]
async fn execution_blocked_is_not_terminal() {
    let fake = fake(ServerVersion::V0_26).await;
    let mut ws = connect(&fake, "A").await;
    next(&mut ws).await;
    let graph = r#"{"1": {"class_type": "FakeBlocked", "inputs": {"message": "nope"}},
        "2": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0]}}}"#;
    let id = queue(&fake, graph, Some("A")).await;
    let frames = until_end(&mut ws, &id).await;
    let blocked = frames
        .iter()
        .find(|f| f.kind() == "execution_error")
        .expect("blocked");
    assert_eq!(blocked.json()["data"]["exception_type"], "ExecutionBlocked");
    assert!(blocked.json()["data"].get("timestamp").is_none());
    assert!(sigs(&frames).contains(&"execution_success".to_string()));
}

#[tokio::test]
async fn messages_node_sends_text_frames_and_custom_events() {
    let fake = fake(ServerVersion::V0_26).await;
    let mut ws = connect(&fake, "A").await;
    next(&mut ws).await;
    let graph = r#"{"1": {"class_type": "MonitorTestMessages", "inputs": {"text": "hi", "count": 2, "delay_ms": 1, "target": "both"}}}"#;
    let id = queue(&fake, graph, Some("A")).await;
    let frames = until_end(&mut ws, &id).await;
    let texts: Vec<&Vec<u8>> = frames
        .iter()
        .filter_map(|f| match f {
            Frame::Binary(b) if b[3] == 3 => Some(b),
            _ => None,
        })
        .collect();
    assert_eq!(texts.len(), 4);
    assert_eq!(&texts[0][..], b"\x00\x00\x00\x03\x00\x00\x00\x011hi [1/2]");
    assert!(texts[1].ends_with(b"hi [1/2] (to submitter)"));
    let custom: Vec<&serde_json::Value> = frames
        .iter()
        .filter(|f| f.kind() == "monitor.custom")
        .map(|f| f.json())
        .collect();
    assert_eq!(custom.len(), 4);
    assert_eq!(custom[0]["data"]["audience"], "broadcast");
    assert_eq!(custom[1]["data"]["audience"], "submitter");
    assert_eq!(custom[0]["data"]["prompt_id"], id.as_str());
    let executed = frames
        .iter()
        .find(|f| f.kind() == "executed")
        .expect("executed");
    assert_eq!(
        executed.json()["data"]["output"],
        json!({"text": ["hi x2"]})
    );
}

#[tokio::test]
async fn reused_sid_displaces_the_old_socket_and_its_close_unregisters_the_new_one() {
    let fake = fake(ServerVersion::V0_26).await;
    let mut old = connect(&fake, "dup").await;
    next(&mut old).await;
    let mut new = connect(&fake, "dup").await;
    assert_eq!(next(&mut new).await.json()["data"]["sid"], "dup");
    assert_eq!(fake.connected_clients(), ["dup"]);
    sentinel(&fake, 1);
    assert!(until_sentinel(&mut new, 1).await.is_empty());

    // The displaced socket is open but gets nothing, not even broadcasts.
    old.close(None).await.expect("close");
    guard("old socket cleanup", fake.wait_until_unregistered("dup")).await;
    assert!(fake.connected_clients().is_empty());
    sentinel(&fake, 2);
    // The new socket is now in no table: the next thing it sees is the end of the connection.
    fake.drop_sockets();
    let end = guard("end of socket", futures_util::StreamExt::next(&mut new)).await;
    assert!(
        !matches!(end, Some(Ok(Message::Text(_)))),
        "the unregistered socket still received {end:?}"
    );
}

#[tokio::test]
async fn executing_is_replayed_to_a_reconnecting_submitter() {
    let fake = fake(ServerVersion::V0_26).await;
    let mut first = connect(&fake, "A").await;
    next(&mut first).await;
    let id = queue(&fake, &long_graph(1), Some("A")).await;
    until_progress(&mut first).await;
    let mut again = connect(&fake, "A").await;
    assert_eq!(next(&mut again).await.json()["data"]["sid"], "A");
    assert_eq!(
        next(&mut again).await.json(),
        &json!({"type": "executing", "data": {"node": "1"}})
    );
    post_json(&fake, "/interrupt", &json!({"prompt_id": id})).await;
    let end = until_end(&mut again, &id).await;
    assert!(sigs(&end).contains(&"execution_interrupted".to_string()));
}
