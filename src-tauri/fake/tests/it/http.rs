//! HTTP behaviour: submit and validation, queue, interrupt, history, view, jobs API.

use fake_comfyui::{ServerVersion, SubmitOptions};
use serde_json::{json, Value};

use crate::support::*;

fn numbers(items: &Value) -> Vec<i64> {
    items
        .as_array()
        .expect("list")
        .iter()
        .map(|i| i[0].as_i64().expect("number"))
        .collect()
}

#[tokio::test]
async fn pending_queue_comes_back_unsorted_but_with_the_right_numbers() {
    let fake = fake(ServerVersion::V0_26).await;
    let mut ws = connect(&fake, "A").await;
    next(&mut ws).await;
    let running = queue(&fake, &long_graph(1), Some("A")).await;
    until_progress(&mut ws).await;
    let mut pending = Vec::new();
    for seed in 2..5 {
        pending.push(queue(&fake, &short_graph(seed), Some("B")).await);
    }
    for path in ["/queue", "/api/queue"] {
        let q = get(&fake, path).await.json();
        assert_eq!(numbers(&q["queue_running"]), [0]);
        assert_eq!(q["queue_running"][0][1], running.as_str());
        let mut got = numbers(&q["queue_pending"]);
        assert_ne!(got, [1, 2, 3], "pending came back sorted");
        got.sort();
        assert_eq!(got, [1, 2, 3]);
        let item = &q["queue_pending"][0];
        assert_eq!(item.as_array().map(Vec::len), Some(5));
        assert_eq!(item[3]["client_id"], "B");
        assert!(item[3]["create_time"].is_i64());
        assert_eq!(item[4], json!(["2"]));
    }
    assert_eq!(fake.queue_snapshot(), (Some(running.clone()), pending));
    assert_eq!(
        get(&fake, "/prompt").await.json(),
        json!({"exec_info": {"queue_remaining": 4}})
    );
    post_json(&fake, "/queue", &json!({"clear": true})).await;
    post_json(&fake, "/interrupt", &json!({})).await;
    guard("idle", fake.wait_idle()).await;
}

#[tokio::test]
async fn deleting_and_clearing_pending_jobs_broadcasts_status_and_leaves_no_trace() {
    let fake = fake(ServerVersion::V0_26).await;
    let mut ws = connect(&fake, "A").await;
    next(&mut ws).await;
    let running = queue(&fake, &long_graph(1), Some("A")).await;
    until_progress(&mut ws).await;
    let j2 = queue(&fake, &short_graph(2), Some("A")).await;
    let j3 = queue(&fake, &short_graph(3), Some("A")).await;
    let j4 = queue(&fake, &short_graph(4), Some("A")).await;

    let deleted = post_json(&fake, "/queue", &json!({"delete": [j2]})).await;
    assert_eq!((deleted.status, deleted.body.len()), (200, 0));
    post_json(
        &fake,
        "/queue",
        &json!({"delete": ["00000000-0000-0000-0000-000000000000"]}),
    )
    .await;
    assert_eq!(fake.queue_snapshot().1, [j3.clone(), j4.clone()]);
    post_json(&fake, "/api/queue", &json!({"clear": true})).await;
    assert!(fake.queue_snapshot().1.is_empty());
    post_json(&fake, "/interrupt", &json!({"prompt_id": running})).await;
    guard("idle", fake.wait_idle()).await;
    sentinel(&fake, 1);
    let statuses: Vec<String> = sigs(&until_sentinel(&mut ws, 1).await)
        .into_iter()
        .filter(|s| s.starts_with("status:"))
        .collect();
    // queued 2, 3, 4; delete -> 3; clear -> 1; job end -> 0
    assert_eq!(
        statuses,
        ["status:2", "status:3", "status:4", "status:3", "status:1", "status:0"]
    );
    for id in [&j2, &j3, &j4] {
        assert_eq!(
            get(&fake, &format!("/history/{id}")).await.json(),
            json!({})
        );
    }
    assert_eq!(fake.history_ids(), [running]);
}

#[tokio::test]
async fn targeted_interrupt_only_stops_the_named_running_job() {
    let fake = fake(ServerVersion::V0_26).await;
    let mut ws = connect(&fake, "A").await;
    next(&mut ws).await;
    let j1 = queue(&fake, &long_graph(1), Some("A")).await;
    until_progress(&mut ws).await;
    let j2 = queue(&fake, &short_graph(2), Some("A")).await;

    let missed = post_json(&fake, "/interrupt", &json!({"prompt_id": j2})).await;
    assert_eq!((missed.status, missed.body.len()), (200, 0));
    assert_eq!(fake.interrupt_count(), 0);
    assert_eq!(fake.queue_snapshot(), (Some(j1.clone()), vec![j2.clone()]));

    post_json(&fake, "/api/interrupt", &json!({"prompt_id": j1})).await;
    assert_eq!(fake.interrupt_count(), 1);
    let end = until_end(&mut ws, &j1).await;
    let s = sigs(&end);
    assert_eq!(
        &s[s.len() - 3..],
        ["execution_interrupted", "status:1", "executing:null"]
    );
    let data = &end[end.len() - 3].json()["data"];
    assert_eq!(data["node_id"], "1");
    assert_eq!(data["node_type"], "MonitorTestSampler");
    until_end(&mut ws, &j2).await;

    let h1 = get(&fake, &format!("/history/{j1}")).await.json();
    assert_eq!(h1[&j1]["status"]["status_str"], "error");
    assert_eq!(h1[&j1]["status"]["completed"], false);
    let messages = h1[&j1]["status"]["messages"].as_array().expect("messages");
    assert_eq!(messages.last().expect("last")[0], "execution_interrupted");
    let h2 = get(&fake, &format!("/history/{j2}")).await.json();
    assert_eq!(h2[&j2]["status"]["status_str"], "success");
}

#[tokio::test]
async fn legacy_interrupt_ignores_the_prompt_id() {
    let fake = fake(ServerVersion::Legacy).await;
    let mut ws = connect(&fake, "A").await;
    next(&mut ws).await;
    let j1 = queue(&fake, &long_graph(1), Some("A")).await;
    until_progress(&mut ws).await;
    post_json(&fake, "/interrupt", &json!({"prompt_id": "someone-else"})).await;
    let s = sigs(&until_end(&mut ws, &j1).await);
    assert!(s.contains(&"execution_interrupted".to_string()));
}

#[tokio::test]
async fn validation_errors_match_the_recorded_shapes() {
    let fake = fake(ServerVersion::V0_26).await;
    let no_prompt = post_json(&fake, "/prompt", &json!({"client_id": "x"})).await;
    assert_eq!(no_prompt.status, 400);
    assert_eq!(
        no_prompt.json(),
        json!({"error": {"type": "no_prompt", "message": "No prompt provided", "details": "No prompt provided", "extra_info": {}}, "node_errors": {}})
    );
    let malformed = post_prompt_text(&fake, "{not json").await;
    assert_eq!(malformed.status, 500);
    assert!(malformed
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/plain")));

    let bad_id = post_prompt_text(
        &fake,
        &format!(r#"{{"prompt": {}, "prompt_id": "job-1"}}"#, short_graph(1)),
    )
    .await;
    assert_eq!(bad_id.status, 400);
    assert_eq!(bad_id.json()["error"]["type"], "invalid_prompt_id");

    let unknown = post_prompt_text(
        &fake,
        &format!(
            r#"{{"prompt": {}}}"#,
            short_graph(1).replace("MonitorTestSampler", "NoSuchNodeType")
        ),
    )
    .await;
    assert_eq!(unknown.status, 400);
    assert_eq!(unknown.json()["error"]["type"], "missing_node_type");
    assert_eq!(unknown.json()["error"]["extra_info"]["node_id"], "1");

    let partial = post_prompt_text(
        &fake,
        &format!(
            r#"{{"prompt": {}}}"#,
            sampler_graph(1, 1, "none").replace(
                r#"["2", 0], "filename_prefix""#,
                r#"["99", 0], "filename_prefix""#
            )
        ),
    )
    .await;
    assert_eq!(partial.status, 200);
    let answer = partial.json();
    assert_eq!(
        answer["node_errors"]["3"]["errors"][0]["type"],
        "exception_during_validation"
    );
    // Rejected posts consume numbers too (no_prompt 0, invalid id 1, unknown class 2); the
    // malformed body failed before numbering.
    assert_eq!(answer["number"], 3);
    let id = answer["prompt_id"].as_str().expect("id").to_string();
    guard("idle", fake.wait_idle()).await;
    let history = get(&fake, &format!("/history/{id}")).await.json();
    assert_eq!(history[&id]["prompt"][4], json!(["4"]));

    let chosen = "5efb26a0-1289-473f-beaa-246dcc73d638";
    let accepted = post_prompt_text(
        &fake,
        &format!(
            r#"{{"prompt": {}, "prompt_id": "{chosen}"}}"#,
            short_graph(1)
        ),
    )
    .await;
    assert_eq!(accepted.json()["prompt_id"], chosen);
}

#[tokio::test]
async fn submit_helper_reports_rejections_and_options() {
    let fake = fake(ServerVersion::V0_3_64).await;
    let rejected = fake
        .submit_with(SubmitOptions {
            prompt: json!({"1": {"class_type": "MonitorTestSampler", "inputs": {"steps": 1}}}),
            ..SubmitOptions::default()
        })
        .expect_err("no outputs");
    assert_eq!(rejected.status, 400);
    assert_eq!(rejected.body["error"]["type"], "prompt_no_outputs");
    let done = fake
        .submit_with(SubmitOptions {
            prompt: serde_json::from_str(&short_graph(1)).expect("graph"),
            prompt_id: Some("not-a-uuid-is-fine-on-0.3.64".into()),
            number: Some(5.0),
            ..SubmitOptions::default()
        })
        .expect("accepted");
    assert_eq!(done.prompt_id, "not-a-uuid-is-fine-on-0.3.64");
    assert_eq!(done.number, json!(5.0));
    guard("idle", fake.wait_idle()).await;
}

#[tokio::test]
async fn outputs_can_be_fetched_from_view() {
    let fake = fake(ServerVersion::V0_26).await;
    let id = fake.submit(
        serde_json::from_str(&sampler_graph(1, 1, "none")).expect("graph"),
        None,
    );
    guard("idle", fake.wait_idle()).await;
    let history = get(&fake, &format!("/api/history/{id}")).await.json();
    for node in ["3", "4"] {
        let image = &history[&id]["outputs"][node]["images"][0];
        let path = format!(
            "/view?filename={}&subfolder=&type={}",
            image["filename"].as_str().expect("filename"),
            image["type"].as_str().expect("type")
        );
        let png = get(&fake, &path).await;
        assert_eq!(png.status, 200);
        assert_eq!(png.header("content-type"), Some("image/png"));
        assert_eq!(&png.body[..4], &[0x89, b'P', b'N', b'G']);
    }
    assert_eq!(
        get(&fake, "/view?filename=missing.png&type=output")
            .await
            .status,
        404
    );
    assert_eq!(get(&fake, "/view?filename=../x.png").await.status, 400);
    assert_eq!(
        get(&fake, "/view?filename=a.png&type=bogus").await.status,
        400
    );
}

#[tokio::test]
async fn system_stats_and_features_follow_the_generation() {
    let new = fake(ServerVersion::V0_26).await;
    let stats = get(&new, "/api/system_stats").await.json();
    assert_eq!(stats["system"]["comfyui_version"], "0.26.0");
    assert_eq!(stats["devices"][0]["type"], "cpu");
    assert_eq!(
        get(&new, "/features").await.json()["node_replacements"],
        true
    );
    let info = get(&new, "/object_info").await.json();
    assert_eq!(info["SaveImage"]["output_node"], true);
    assert_eq!(get(&new, "/object_info/NoSuch").await.json(), json!({}));

    let old = fake(ServerVersion::V0_3_64).await;
    assert_eq!(
        get(&old, "/system_stats").await.json()["system"]["comfyui_version"],
        "0.3.64"
    );
    assert_eq!(
        get(&old, "/api/features").await.json(),
        json!({"supports_preview_metadata": true, "max_upload_size": 104857600})
    );

    let legacy = fake(ServerVersion::Legacy).await;
    assert!(get(&legacy, "/system_stats").await.json()["system"]
        .get("comfyui_version")
        .is_none());
    assert_eq!(get(&legacy, "/api/features").await.status, 404);
}

#[tokio::test]
async fn jobs_api_is_missing_before_0_26() {
    let fake = fake(ServerVersion::V0_3_64).await;
    assert_eq!(get(&fake, "/api/jobs").await.status, 404);
    assert_eq!(
        post_json(&fake, "/api/jobs/cancel", &json!({"job_ids": []}))
            .await
            .status,
        404
    );
    let newer = crate::support::fake(ServerVersion::V0_26).await;
    assert_eq!(
        get(&newer, "/jobs").await.status,
        404,
        "the jobs API has no bare path"
    );
}

#[tokio::test]
async fn jobs_api_reports_every_status_on_the_newest_generation() {
    let fake = fake(ServerVersion::V0_26).await;
    let mut ws = connect(&fake, "A").await;
    next(&mut ws).await;
    let ok = queue(&fake, &sampler_graph(1, 1, "none"), Some("A")).await;
    let failing = r#"{"1": {"class_type": "MonitorTestFail", "inputs": {"steps": 3, "fail_after": 1, "step_delay_ms": 1, "preview_size": 0, "seed": 0}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}}}"#;
    let failed = queue(&fake, failing, Some("A")).await;
    until_end(&mut ws, &failed).await;
    let cancelled = queue(&fake, &long_graph(9), Some("A")).await;
    until_progress(&mut ws).await;
    let pending = queue(&fake, &short_graph(5), Some("A")).await;

    let list = get(&fake, "/api/jobs?status=in_progress,pending")
        .await
        .json();
    let statuses: Vec<(&str, &str)> = list["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| {
            (
                j["id"].as_str().unwrap_or(""),
                j["status"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            (pending.as_str(), "pending"),
            (cancelled.as_str(), "in_progress")
        ]
    );
    assert_eq!(
        list["pagination"],
        json!({"offset": 0, "limit": null, "total": 2, "has_more": false})
    );

    let cancel = post_json(&fake, &format!("/api/jobs/{cancelled}/cancel"), &json!({})).await;
    assert_eq!(cancel.json(), json!({"cancelled": true}));
    until_end(&mut ws, &pending).await;
    let again = post_json(&fake, &format!("/api/jobs/{cancelled}/cancel"), &json!({})).await;
    assert_eq!(again.json(), json!({"cancelled": false}));

    let status_of = |job: &Value| job["status"].as_str().unwrap_or("").to_string();
    assert_eq!(
        status_of(&get(&fake, &format!("/api/jobs/{ok}")).await.json()),
        "completed"
    );
    let f = get(&fake, &format!("/api/jobs/{failed}")).await.json();
    assert_eq!(status_of(&f), "failed");
    assert_eq!(f["execution_error"]["exception_type"], "RuntimeError");
    assert_eq!(f["execution_status"]["status_str"], "error");
    assert!(f["workflow"]["prompt"]["1"].is_object());
    let c = get(&fake, &format!("/api/jobs/{cancelled}")).await.json();
    assert_eq!(status_of(&c), "cancelled");
    assert!(c["execution_end_time"].as_i64() >= c["execution_start_time"].as_i64());
    let done = get(&fake, &format!("/api/jobs/{ok}")).await.json();
    assert_eq!(done["outputs_count"], 2);
    assert_eq!(done["preview_output"]["type"], "output");
    assert_eq!(done["preview_output"]["nodeId"], "3");
    assert_eq!(done["preview_output"]["mediaType"], "images");

    let page = get(&fake, "/api/jobs?limit=2&offset=1&sort_order=asc")
        .await
        .json();
    assert_eq!(
        page["pagination"],
        json!({"offset": 1, "limit": 2, "total": 4, "has_more": true})
    );
    assert_eq!(page["jobs"][0]["id"], failed.as_str());
    let terminal = get(&fake, "/api/jobs?status=COMPLETED,failed,cancelled")
        .await
        .json();
    assert_eq!(terminal["pagination"]["total"], 4);

    let unknown = get(&fake, "/api/jobs/00000000-0000-4000-8000-000000000000").await;
    assert_eq!(
        (unknown.status, unknown.json()),
        (404, json!({"error": "Job not found"}))
    );
    let bad = get(&fake, "/api/jobs?status=running").await;
    assert_eq!(bad.status, 400);
    assert_eq!(
        bad.json()["error"],
        "Invalid status value(s): running. Valid values: pending, in_progress, completed, failed, cancelled"
    );
    assert_eq!(
        get(&fake, "/api/jobs?limit=0").await.json()["error"],
        "limit must be a positive integer"
    );
    assert_eq!(
        get(&fake, "/api/jobs?offset=x").await.json()["error"],
        "offset must be an integer"
    );
    assert_eq!(
        get(&fake, "/api/jobs?offset=-3&limit=1").await.json()["pagination"]["offset"],
        0
    );
}

#[tokio::test]
async fn batch_cancel_validates_ids_and_cancels_running_and_pending() {
    let fake = fake(ServerVersion::V0_26).await;
    let mut ws = connect(&fake, "A").await;
    next(&mut ws).await;
    let running = queue(&fake, &long_graph(1), Some("A")).await;
    until_progress(&mut ws).await;
    let pending = queue(&fake, &short_graph(2), Some("A")).await;

    let empty = post_json(&fake, "/api/jobs/cancel", &json!({"job_ids": []})).await;
    assert_eq!(empty.json(), json!({"cancelled": false}));
    let invalid = post_json(
        &fake,
        "/api/jobs/cancel",
        &json!({"job_ids": ["not-a-uuid", 5]}),
    )
    .await;
    assert_eq!(invalid.status, 400);
    assert_eq!(
        invalid.json(),
        json!({"error": "job_ids contains invalid id(s)", "invalid_ids": ["not-a-uuid", "5"]})
    );
    let not_list = post_json(&fake, "/api/jobs/cancel", &json!({"job_ids": running})).await;
    assert_eq!(not_list.json(), json!({"error": "job_ids must be a list"}));
    let not_json = http(&fake, "POST", "/api/jobs/cancel", Some("nope"), &[]).await;
    assert_eq!(
        not_json.json(),
        json!({"error": "Request body must be valid JSON"})
    );

    let both = post_json(
        &fake,
        "/api/jobs/cancel",
        &json!({"job_ids": [running, pending]}),
    )
    .await;
    assert_eq!(both.json(), json!({"cancelled": true}));
    let s = sigs(&until_end(&mut ws, &running).await);
    // Removing the last pending job broadcasts status twice, as ComfyUI does.
    assert!(s.windows(2).any(|w| w == ["status:1", "status:1"]), "{s:?}");
    assert!(s.contains(&"execution_interrupted".to_string()));
    guard("idle", fake.wait_idle()).await;
    assert_eq!(
        get(&fake, &format!("/api/jobs/{pending}")).await.status,
        404
    );
}
