//! The benchmark load: jobs submitted on behalf of the connected monitor, with every stream at
//! its configured rate, and the send log that stamps what was written. Paused tokio time: the
//! load's clocks run instantly and exactly, the sockets are real.

use std::path::{Path, PathBuf};
use std::time::Duration;

use fake_comfyui::{FakeComfy, FakeConfig, Load, SendLog, ServerVersion};
use serde_json::{json, Value};

use crate::support::*;

/// One job of 6 steps at 100/s (60 ms) with previews every 4 ms, node text every 20 ms and a
/// custom event every 40 ms; a new job every 100 ms.
fn load() -> Load {
    Load {
        jobs_per_minute: 600.0,
        steps: 6,
        progress_per_sec: 100.0,
        preview_fps: 250.0,
        preview_size: 64,
        node_text_per_sec: 50.0,
        custom_events_per_sec: 25.0,
    }
}

async fn fake_logging(version: ServerVersion, log: &SendLog) -> FakeComfy {
    FakeComfy::start(FakeConfig {
        version,
        send_log: Some(log.clone()),
        ..FakeConfig::default()
    })
    .await
    .expect("fake server starts")
}

/// Deletes the file when the test ends, passed or not.
struct Remove(PathBuf);

impl Drop for Remove {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn read_log(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .expect("send log readable")
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

/// Reads until the next job starts and returns its prompt id.
async fn next_job(ws: &mut Ws) -> String {
    loop {
        let f = next(ws).await;
        if f.kind() == "execution_start" {
            return f.json()["data"]["prompt_id"]
                .as_str()
                .expect("prompt id")
                .to_string();
        }
    }
}

fn count(frames: &[Frame], kind: &str) -> usize {
    frames.iter().filter(|f| f.kind() == kind).count()
}

fn jpeg_size(jpeg: &[u8]) -> (u32, u32) {
    assert_eq!(&jpeg[..3], &[0xff, 0xd8, 0xff], "a JPEG");
    let img = image::load_from_memory(jpeg).expect("the preview decodes");
    (img.width(), img.height())
}

#[tokio::test(start_paused = true)]
async fn load_jobs_reach_the_monitor_with_every_stream_and_are_stamped() {
    let path = std::env::temp_dir().join(format!("fake-send-{}.ndjson", uuid::Uuid::new_v4()));
    let _cleanup = Remove(path.clone());
    let log = SendLog::create(&path)
        .expect("log file")
        .with_previews(true);
    let fake = fake_logging(ServerVersion::V0_26, &log).await;
    let mut ws = connect_negotiated(&fake, "monitor").await;
    fake.start_load(load());

    let id = next_job(&mut ws).await;
    let frames = until_end(&mut ws, &id).await;
    fake.stop_load();

    let progress: Vec<&Value> = frames
        .iter()
        .filter(|f| f.kind() == "progress")
        .map(|f| &f.json()["data"])
        .collect();
    let values: Vec<u64> = progress
        .iter()
        .filter_map(|p| p["value"].as_u64())
        .collect();
    assert_eq!(
        values,
        [1, 2, 3, 4, 5, 6],
        "every step, unthrottled on 0.26"
    );
    for p in &progress {
        assert_eq!(p["max"], 6);
        assert_eq!(p["node"], "1");
        assert_eq!(p["prompt_id"], id.as_str());
    }
    assert!(count(&frames, "progress_state") >= 6);

    // The clocks are exact under paused time: 60 ms of previews every 4 ms, each a type-4 frame with metadata and a 64 px JPEG.
    let previews: Vec<&Vec<u8>> = frames
        .iter()
        .filter_map(|f| match f {
            Frame::Binary(b) if b[3] == 4 => Some(b),
            _ => None,
        })
        .collect();
    assert_eq!(previews.len(), 15);
    for frame in &previews {
        let len = u32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]) as usize;
        let meta: Value = serde_json::from_slice(&frame[8..8 + len]).expect("metadata");
        assert_eq!(meta["prompt_id"], id.as_str());
        assert_eq!(meta["node_id"], "1");
        assert_eq!(meta["image_type"], "image/jpeg");
        assert_eq!(jpeg_size(&frame[8 + len..]), (64, 64));
    }
    assert_eq!(count(&frames, "bin1"), 0);

    let texts: Vec<&Vec<u8>> = frames
        .iter()
        .filter_map(|f| match f {
            Frame::Binary(b) if b[3] == 3 => Some(b),
            _ => None,
        })
        .collect();
    assert_eq!(texts.len(), 3, "every 20 ms");
    assert_eq!(&texts[0][4..9], b"\x00\x00\x00\x011", "node id 1");
    let customs: Vec<&Value> = frames
        .iter()
        .filter(|f| f.kind() == "monitor.custom")
        .map(|f| &f.json()["data"])
        .collect();
    assert_eq!(customs.len(), 1, "every 40 ms");
    assert_eq!(customs[0]["prompt_id"], id.as_str());
    assert_eq!(customs[0]["audience"], "submitter");

    let sigs = sigs(&frames);
    for expected in [
        "executing:1",
        "executing:2",
        "executed:2",
        "execution_success",
    ] {
        assert!(
            sigs.iter().any(|s| s == expected),
            "no {expected}: {sigs:?}"
        );
    }
    let saved = frames
        .iter()
        .find(|f| f.sig() == "executed:2")
        .expect("executed");
    assert_eq!(
        saved.json()["data"]["output"]["images"][0]["type"],
        "output"
    );

    // In history like a real job, submitted for the monitor.
    assert!(fake.history_ids().contains(&id));
    let entry = get(&fake, &format!("/history/{id}")).await.json();
    assert_eq!(entry[&id]["prompt"][3]["client_id"], "monitor");
    assert_eq!(entry[&id]["status"]["status_str"], "success");

    // A request a benchmark times: stamped on arrival.
    let cancel = post_json(&fake, "/api/interrupt", &json!({"prompt_id": "none-such"})).await;
    assert_eq!(cancel.status, 200);

    log.flush();
    let lines = read_log(&path);
    let logged: Vec<&Value> = lines
        .iter()
        .filter(|l| l["kind"] == "progress" && l["prompt_id"] == id.as_str())
        .collect();
    assert_eq!(logged.len(), progress.len(), "one line per progress frame");
    for (line, frame) in logged.iter().zip(&progress) {
        assert_eq!(line["value"], frame["value"]);
        assert_eq!(line["max"], frame["max"]);
        assert_eq!(line["node"], frame["node"]);
        assert_eq!(line["sid"], "monitor");
        assert_eq!(line["port"], fake.addr().port());
        assert!(line["sent_ms"].as_f64().expect("sent_ms") > 1.6e12);
    }
    let stamped_previews = lines
        .iter()
        .filter(|l| l["kind"] == "preview" && l["prompt_id"] == id.as_str())
        .count();
    assert_eq!(stamped_previews, previews.len());
    let request = lines
        .iter()
        .find(|l| l["kind"] == "request" && l["path"] == "/api/interrupt")
        .expect("the interrupt request is stamped");
    assert_eq!(request["method"], "POST");
    assert!(request["received_ms"].as_f64().expect("received_ms") > 1.6e12);
}

#[tokio::test(start_paused = true)]
async fn legacy_servers_get_type_1_previews_of_the_default_size() {
    let fake = fake(ServerVersion::Legacy).await;
    let mut ws = connect_negotiated(&fake, "old").await;
    fake.start_load(Load {
        steps: 3,
        preview_fps: 50.0,
        node_text_per_sec: 0.0,
        custom_events_per_sec: 0.0,
        preview_size: 512,
        ..load()
    });
    let id = next_job(&mut ws).await;
    let frames = until_end(&mut ws, &id).await;
    let progress: Vec<String> = sigs(&frames)
        .into_iter()
        .filter(|s| s.starts_with("progress"))
        .collect();
    assert_eq!(progress, ["progress:1/3", "progress:2/3", "progress:3/3"]);
    assert_eq!(count(&frames, "progress_state"), 0);
    assert_eq!(count(&frames, "bin4"), 0);
    let previews: Vec<&Vec<u8>> = frames
        .iter()
        .filter_map(|f| match f {
            Frame::Binary(b) if b[3] == 1 => Some(b),
            _ => None,
        })
        .collect();
    assert!(!previews.is_empty());
    assert_eq!(&previews[0][4..8], &[0, 0, 0, 1], "image type JPEG");
    assert_eq!(jpeg_size(&previews[0][8..]), (512, 512));
    assert_eq!(count(&frames, "bin3") + count(&frames, "monitor.custom"), 0);
}

#[tokio::test(start_paused = true)]
async fn nothing_is_submitted_until_a_client_has_sent_its_feature_flags() {
    let fake = fake(ServerVersion::V0_26).await;
    fake.start_load(load());
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(fake.queue_snapshot(), (None, Vec::new()));
    assert!(fake.history_ids().is_empty());

    // A socket that has not said anything yet is not taken for the monitor.
    let mut ws = connect(&fake, "quiet").await;
    next(&mut ws).await;
    guard("registered", fake.wait_for_socket(Some("quiet"))).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(fake.queue_snapshot(), (None, Vec::new()));

    send_json(
        &mut ws,
        json!({"type": "feature_flags", "data": {"supports_preview_metadata": true}}),
    )
    .await;
    let id = next_job(&mut ws).await;
    until_end(&mut ws, &id).await;
    let entry = get(&fake, &format!("/history/{id}")).await.json();
    assert_eq!(entry[&id]["prompt"][3]["client_id"], "quiet");
    assert_eq!(
        entry[&id]["prompt"][2]["1"]["class_type"],
        "FakeLoadSampler"
    );
}

#[tokio::test(start_paused = true)]
async fn jobs_target_the_newest_client_and_the_queue_stays_bounded() {
    let fake = fake(ServerVersion::V0_26).await;
    let _first = connect_negotiated(&fake, "first").await;
    let _second = connect_negotiated(&fake, "second").await;
    // Far more jobs than run: 100 per second, each 100 s long.
    fake.start_load(Load {
        jobs_per_minute: 6000.0,
        steps: 1000,
        progress_per_sec: 10.0,
        ..Load::default()
    });
    tokio::time::sleep(Duration::from_secs(30)).await;
    let (running, pending) = fake.queue_snapshot();
    let running = running.expect("a load job runs");
    assert_eq!(pending.len(), Load::MAX_PENDING);
    let job = get(&fake, &format!("/api/jobs/{running}")).await.json();
    assert_eq!(job["status"], "in_progress");
    let queue = get(&fake, "/queue").await.json();
    assert_eq!(queue["queue_running"][0][3]["client_id"], "second");
}
