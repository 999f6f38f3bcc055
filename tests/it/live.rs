//! The engine against a fake ComfyUI over real sockets on port 0: observer and live jobs on
//! old and new servers, restarts, outages, half-open links, auth, floods and bad frames.

use comfy_engine::Events;
use comfy_engine::{
    Auth, ConnectionState, Engine, Event, EventKind, InstanceSpec, JobOrigin, JobState, JobView,
    Secret,
};
use fake_comfyui::{FakeAuth, FakeComfy, FakeConfig, ServerVersion};
use serde_json::json;
use std::time::Duration;

/// Failure guard only: tests wait for events, never for time.
pub(crate) const GUARD: Duration = Duration::from_secs(60);

pub(crate) async fn fake(version: ServerVersion) -> FakeComfy {
    FakeComfy::start(FakeConfig {
        version,
        step_delay: Duration::from_millis(5),
        ..FakeConfig::default()
    })
    .await
    .expect("fake server starts")
}

pub(crate) fn spec(server: &FakeComfy, client_id: &str) -> InstanceSpec {
    let mut s = InstanceSpec::new("fake", &server.base_url()).unwrap();
    s.client_id = client_id.into();
    s
}

pub(crate) fn engine(spec: InstanceSpec) -> (Engine, Events) {
    let (engine, rx) = Engine::new(4096);
    engine.add_instance(spec).unwrap();
    (engine, rx)
}

/// Reads events until one matches; returns it and everything read before it.
pub(crate) async fn until(
    rx: &mut Events,
    what: &str,
    mut f: impl FnMut(&Event) -> bool,
) -> (Event, Vec<Event>) {
    let mut seen = Vec::new();
    let found = tokio::time::timeout(GUARD, async {
        while let Some(e) = rx.recv().await {
            if f(&e) {
                return Some(e);
            }
            seen.push(e);
        }
        None
    })
    .await;
    match found {
        Ok(Some(e)) => (e, seen),
        _ => panic!(
            "no event: {what}; saw {:#?}",
            seen.iter().map(|e| &e.kind).collect::<Vec<_>>()
        ),
    }
}

pub(crate) fn connection(e: &Event) -> Option<ConnectionState> {
    match &e.kind {
        EventKind::Connection(c) => Some(c.state),
        _ => None,
    }
}

pub(crate) async fn connected(rx: &mut Events) {
    until(rx, "connected", |e| {
        connection(e) == Some(ConnectionState::Connected)
    })
    .await;
}

pub(crate) fn job(e: &Event) -> Option<&JobView> {
    match &e.kind {
        EventKind::Job(j) => Some(j),
        _ => None,
    }
}

pub(crate) async fn terminal(rx: &mut Events, id: &str) -> (JobView, Vec<Event>) {
    let (e, seen) = until(rx, &format!("end of {id}"), |e| {
        job(e).is_some_and(|j| j.prompt_id.as_str() == id && j.state.is_terminal())
    })
    .await;
    (job(&e).cloned().unwrap(), seen)
}

/// Waits until every job in `ids` has ended, whatever the order; returns their last views.
pub(crate) async fn terminals(
    rx: &mut Events,
    ids: &[&str],
) -> std::collections::HashMap<String, JobView> {
    let mut ended = std::collections::HashMap::new();
    until(rx, &format!("end of {ids:?}"), |e| {
        if let Some(j) = job(e).filter(|j| j.state.is_terminal()) {
            if ids.contains(&j.prompt_id.as_str()) {
                ended.insert(j.prompt_id.to_string(), j.clone());
            }
        }
        ended.len() == ids.len()
    })
    .await;
    ended
}

pub(crate) fn sampler(steps: u32, delay_ms: u32, prefix: &str) -> serde_json::Value {
    json!({
        "1": {"class_type": "MonitorTestSampler", "inputs": {"steps": steps, "step_delay_ms": delay_ms, "preview_size": 32, "seed": rand_seed()}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": prefix}}
    })
}

pub(crate) fn failing() -> serde_json::Value {
    json!({
        "1": {"class_type": "MonitorTestFail", "inputs": {"steps": 4, "fail_after": 2, "step_delay_ms": 5, "preview_size": 32, "seed": rand_seed()}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "f"}}
    })
}

fn rand_seed() -> u64 {
    rand::random::<u32>() as u64
}

pub(crate) async fn post(server: &FakeComfy, path: &str, body: serde_json::Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/{path}", server.base_url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
}

async fn passive_watcher_follows_other_clients_jobs(version: ServerVersion) {
    let server = fake(version).await;
    let (_engine, mut rx) = engine(spec(&server, "cm-observer"));
    connected(&mut rx).await;
    server.wait_for_client(Some("cm-observer")).await;

    // A long job keeps the queue busy so the others are seen pending.
    let blocker = server.submit(sampler(400, 10, "block"), Some("browser"));
    let ok = server.submit(sampler(3, 5, "ok"), Some("browser"));
    let bad = server.submit(failing(), Some("script"));
    let doomed = server.submit(sampler(3, 5, "never"), None);
    let (_, early) = until(&mut rx, "doomed pending", |e| {
        job(e).is_some_and(|j| j.prompt_id.as_str() == doomed && j.state == JobState::Pending)
    })
    .await;
    post(&server, "queue", json!({"delete": [doomed]})).await;
    post(&server, "interrupt", json!({"prompt_id": blocker})).await;
    // Every event until all four ended, in whatever order the lookups come back.
    let mut seen = early;
    let mut ended = std::collections::HashMap::new();
    until(&mut rx, "all four ended", |e| {
        if let Some(j) = job(e).filter(|j| j.state.is_terminal()) {
            ended.insert(j.prompt_id.to_string(), j.clone());
        }
        seen.push(e.clone());
        [&doomed, &blocker, &ok, &bad]
            .iter()
            .all(|id| ended.contains_key(id.as_str()))
    })
    .await;

    let j = &ended[&doomed];
    assert_eq!(j.state, JobState::Deleted, "{version}");
    assert_eq!(j.origin, JobOrigin::Anonymous);
    assert_eq!(ended[&blocker].state, JobState::Interrupted, "{version}");

    let j = &ended[&ok];
    assert_eq!(j.state, JobState::Success, "{version}");
    assert_eq!(j.origin, JobOrigin::Other);
    assert_eq!(j.fidelity, comfy_engine::Fidelity::Observed);
    assert!(
        j.outputs.iter().any(|o| o.filename.starts_with("ok")),
        "{version}: {:?}",
        j.outputs
    );
    assert!(
        j.percent.is_none(),
        "no invented progress for another client's job"
    );
    let states: Vec<JobState> = seen
        .iter()
        .filter_map(job)
        .filter(|v| v.prompt_id.as_str() == ok)
        .map(|v| v.state)
        .collect();
    assert!(states.contains(&JobState::Pending), "{version}: {states:?}");

    let j = &ended[&bad];
    assert_eq!(j.state, JobState::Error, "{version}");
    let e = j.error.clone().unwrap();
    assert_eq!(e.node_type.as_deref(), Some("MonitorTestFail"));
    assert_eq!(e.exception_type.as_deref(), Some("RuntimeError"));
}

#[tokio::test]
async fn passive_watcher_follows_other_clients_jobs_on_an_old_server() {
    passive_watcher_follows_other_clients_jobs(ServerVersion::V0_3_64).await;
}

#[tokio::test]
async fn passive_watcher_follows_other_clients_jobs_through_the_jobs_api() {
    passive_watcher_follows_other_clients_jobs(ServerVersion::V0_26).await;
}

#[tokio::test]
async fn passive_watcher_follows_jobs_on_a_legacy_server() {
    passive_watcher_follows_other_clients_jobs(ServerVersion::Legacy).await;
}

#[tokio::test]
async fn jobs_queued_with_our_client_id_are_followed_live() {
    for version in [
        ServerVersion::Legacy,
        ServerVersion::V0_3_64,
        ServerVersion::V0_26,
    ] {
        let server = fake(version).await;
        let (_engine, mut rx) = engine(spec(&server, "cm-live"));
        connected(&mut rx).await;
        server.wait_for_client(Some("cm-live")).await;
        let id = server.submit(sampler(6, 5, "live"), Some("cm-live"));
        let (j, seen) = terminal(&mut rx, &id).await;
        assert_eq!(j.state, JobState::Success, "{version}");
        assert_eq!(j.origin, JobOrigin::SelfApp);
        assert_eq!(j.percent, Some(100.0));
        let percents: Vec<f64> = seen
            .iter()
            .filter_map(job)
            .filter(|v| v.prompt_id.as_str() == id)
            .filter_map(|v| v.percent)
            .collect();
        assert!(
            percents.windows(2).all(|w| w[0] <= w[1]),
            "{version}: {percents:?}"
        );
        assert!(
            percents.iter().filter(|p| **p > 0.0 && **p < 100.0).count() >= 4,
            "{version}: {percents:?}"
        );
        let previews = seen
            .iter()
            .filter(|e| matches!(&e.kind, EventKind::Preview(p) if p.prompt_id.as_ref().map(|p| p.as_str()) == Some(id.as_str())))
            .count();
        assert_eq!(previews, 6, "{version}: one preview per step");
    }
}

#[tokio::test]
async fn a_restart_mid_job_marks_it_lost_and_the_engine_reconnects() {
    let server = fake(ServerVersion::V0_26).await;
    let (_engine, mut rx) = engine(spec(&server, "cm-restart"));
    connected(&mut rx).await;
    server.wait_for_client(Some("cm-restart")).await;
    let ours = server.submit(sampler(10_000, 10, "long"), Some("cm-restart"));
    let theirs = server.submit(sampler(3, 5, "queued"), Some("browser"));
    let (mut ours_running, mut theirs_seen) = (false, false);
    until(&mut rx, "ours running and theirs queued", |e| {
        if let Some(j) = job(e) {
            assert!(!j.state.is_terminal(), "{j:?}");
            ours_running |= j.prompt_id.as_str() == ours && j.node_value.unwrap_or(0.0) >= 2.0;
            theirs_seen |= j.prompt_id.as_str() == theirs;
        }
        ours_running && theirs_seen
    })
    .await;
    server.restart().await;
    let (j, seen) = terminal(&mut rx, &ours).await;
    assert_eq!(j.state, JobState::Lost);
    assert_eq!(j.detail.as_deref(), Some("server restarted"));
    assert!(
        seen.iter()
            .any(|e| connection(e) == Some(ConnectionState::Connected)),
        "reconnected before concluding"
    );
    // Their job may have been concluded first, while we waited for ours.
    let concluded = seen
        .iter()
        .filter_map(job)
        .find(|j| j.prompt_id.as_str() == theirs && j.state.is_terminal())
        .cloned();
    let j = match concluded {
        Some(j) => j,
        None => terminal(&mut rx, &theirs).await.0,
    };
    assert_eq!(
        j.state,
        JobState::Lost,
        "a pending job lost in a restart is not 'deleted'"
    );
}

#[tokio::test]
async fn a_malformed_frame_is_reported_and_the_connection_stays_up() {
    let server = fake(ServerVersion::V0_26).await;
    let (_engine, mut rx) = engine(spec(&server, "cm-bad"));
    connected(&mut rx).await;
    server.wait_for_client(Some("cm-bad")).await;
    server.send_raw_text("{\"type\":\"progress\",\"data\":");
    server.send_raw_binary(vec![0, 0, 0, 4, 0, 0, 1, 0, b'{']);
    server.send_raw_binary(vec![0, 0]);
    server.broadcast_json("crystools.monitor", json!({"cpu_utilization": 12.5}));
    let (e, seen) = until(&mut rx, "custom event", |e| {
        matches!(&e.kind, EventKind::ServerEvent { .. })
    })
    .await;
    match &e.kind {
        EventKind::ServerEvent { kind, data } => {
            assert_eq!(kind, "crystools.monitor");
            assert_eq!(data["cpu_utilization"], 12.5);
        }
        _ => unreachable!(),
    }
    let errors = seen
        .iter()
        .filter(|e| matches!(e.kind, EventKind::ProtocolError { .. }))
        .count();
    assert_eq!(errors, 3);
    assert!(
        seen.iter().all(|e| connection(e).is_none()),
        "no reconnect: {seen:#?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_half_open_link_is_detected_within_ten_seconds() {
    let server = fake(ServerVersion::V0_26).await;
    let (_engine, mut rx) = engine(spec(&server, "cm-stall"));
    connected(&mut rx).await;
    server.wait_for_client(Some("cm-stall")).await;
    server.stall_sockets();
    let stalled_at = tokio::time::Instant::now();
    until(
        &mut rx,
        "link declared dead",
        |e| matches!(&e.kind, EventKind::Connection(c) if c.state != ConnectionState::Connected),
    )
    .await;
    let took = stalled_at.elapsed();
    assert!(took <= Duration::from_secs(10), "took {took:?}");
    // The server still answers HTTP, so this is a dropped socket, not a dead server.
    connected(&mut rx).await;
}

#[tokio::test(start_paused = true)]
async fn reconnect_backs_off_while_the_server_is_down_and_resets_after() {
    let server = fake(ServerVersion::V0_26).await;
    let (_engine, mut rx) = engine(spec(&server, "cm-down"));
    connected(&mut rx).await;
    server.wait_for_client(Some("cm-down")).await;
    server.set_down(true);
    let down_at = tokio::time::Instant::now();
    let mut delays = Vec::new();
    let mut late = Vec::new();
    while late.len() < 4 {
        let (e, _) = until(&mut rx, "unreachable", |e| {
            matches!(&e.kind, EventKind::Connection(c) if c.state == ConnectionState::Unreachable)
        })
        .await;
        if let EventKind::Connection(c) = &e.kind {
            let d = c.retry_in_ms.expect("a retry is scheduled");
            // Leave a margin around the end of the restart window.
            let elapsed = down_at.elapsed();
            if elapsed < Duration::from_secs(115) {
                delays.push(d);
            } else if elapsed > Duration::from_secs(125) {
                late.push(d);
            }
        }
    }
    // A server that was just connected is probably restarting: equal jitter within [d/2, d] of
    // 0.5 s · 2^n, capped at 1 s for two minutes...
    assert!(delays.len() > 50, "{delays:?}");
    for (n, d) in delays.iter().enumerate() {
        let full = (500u64 << n.min(10)).min(1_000);
        assert!(
            *d >= full / 2 && *d <= full,
            "attempt {n}: {d} ms, cap {full}: {delays:?}"
        );
    }
    // ...then it backs off to the full 30 s cap.
    assert!(
        late.iter().all(|d| *d >= 15_000 && *d <= 30_000),
        "{late:?}"
    );
    server.set_down(false);
    connected(&mut rx).await;
    // After a success the next outage starts again from the shortest delay.
    tokio::time::sleep(Duration::from_secs(11)).await;
    server.set_down(true);
    let (e, _) = until(
        &mut rx,
        "unreachable again",
        |e| matches!(&e.kind, EventKind::Connection(c) if c.state == ConnectionState::Unreachable),
    )
    .await;
    match &e.kind {
        EventKind::Connection(c) => assert!(c.retry_in_ms.unwrap() <= 500, "{c:?}"),
        _ => unreachable!(),
    }
}

#[tokio::test(start_paused = true)]
async fn rejected_credentials_are_auth_failed_without_a_request_storm() {
    let server = FakeComfy::start(FakeConfig {
        auth: Some(FakeAuth::Bearer("right".into())),
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let mut s = spec(&server, "cm-auth");
    s.auth = Auth::Bearer(Secret::new("wrong"));
    let (_engine, mut rx) = engine(s);
    let (e, _) = until(&mut rx, "auth failed", |e| {
        connection(e) == Some(ConnectionState::AuthFailed)
    })
    .await;
    server.clear_request_log();
    match &e.kind {
        EventKind::Connection(c) => {
            assert!(c.detail.contains("401"), "{c:?}");
            assert!(c.retry_in_ms.unwrap() >= 20_000, "{c:?}");
        }
        _ => unreachable!(),
    }
    // Ten minutes of (virtual) time later, only a handful of attempts were made, and each was
    // refused at the first request: the socket upgrade is never tried with bad credentials.
    let consumer = tokio::spawn(async move {
        let mut attempts = 0;
        while let Some(e) = rx.recv().await {
            if connection(&e) == Some(ConnectionState::AuthFailed) {
                attempts += 1;
            }
        }
        attempts
    });
    tokio::time::sleep(Duration::from_secs(600)).await;
    let log = server.request_log();
    assert!(log.len() <= 8, "{} requests in ten minutes", log.len());
    assert!(log.len() >= 4, "still retried: {} requests", log.len());
    assert!(log
        .iter()
        .all(|r| r.status == 401 && !r.path.contains("/ws")));
    drop(_engine);
    assert!(consumer.await.unwrap() >= 1);
}

#[tokio::test]
async fn credentials_go_on_every_request_and_on_the_socket_upgrade() {
    for (auth, ours) in [
        (
            FakeAuth::Bearer("t0k".into()),
            Auth::Bearer(Secret::new("t0k")),
        ),
        (
            FakeAuth::Basic {
                user: "u".into(),
                password: "p".into(),
            },
            Auth::Basic {
                user: "u".into(),
                password: Secret::new("p"),
            },
        ),
        (
            FakeAuth::Header {
                name: "X-Api-Key".into(),
                value: "k".into(),
            },
            Auth::Headers(vec![("X-Api-Key".into(), Secret::new("k"))]),
        ),
        (
            FakeAuth::QueryToken("q".into()),
            Auth::QueryToken(Secret::new("q")),
        ),
    ] {
        let server = FakeComfy::start(FakeConfig {
            auth: Some(auth),
            ..FakeConfig::default()
        })
        .await
        .unwrap();
        let mut s = spec(&server, "cm-cred");
        s.auth = ours;
        let (_engine, mut rx) = engine(s);
        connected(&mut rx).await;
        let log = server.request_log();
        assert!(log.iter().any(|r| r.status == 101), "socket upgraded");
        assert!(
            log.iter().all(|r| r.status < 400),
            "{:?}",
            log.iter().map(|r| (&r.path, r.status)).collect::<Vec<_>>()
        );
    }
}

#[tokio::test]
async fn a_flood_of_progress_keeps_memory_bounded_and_terminal_events_intact() {
    let server = fake(ServerVersion::V0_26).await;
    let (engine, mut rx) = Engine::new(256);
    engine.add_instance(spec(&server, "cm-flood")).unwrap();
    connected(&mut rx).await;
    let sid = server.wait_for_client(Some("cm-flood")).await;
    // A consumer far slower than the server: one event per millisecond while 50,000 progress
    // messages arrive as fast as the socket takes them.
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let id = server.submit(sampler(10_000, 10, "flooded"), Some("cm-flood"));
    let (_, _) = until(&mut rx, "running", |e| {
        job(e).is_some_and(|j| j.prompt_id.as_str() == id && j.node_value.unwrap_or(0.0) >= 1.0)
    })
    .await;
    let watched = id.clone();
    let consumer = tokio::spawn(async move {
        let id = watched;
        let mut events = Vec::new();
        let mut done_tx = Some(done_tx);
        while let Some(e) = rx.recv().await {
            let end = job(&e).is_some_and(|j| j.state.is_terminal() && j.prompt_id.as_str() == id);
            events.push(e);
            if end {
                if let Some(tx) = done_tx.take() {
                    let _ = tx.send(());
                }
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        events
    });
    server.flood_progress_of(&sid, &id, 50_000);
    post(&server, "interrupt", json!({"prompt_id": id})).await;
    tokio::time::timeout(GUARD, done_rx)
        .await
        .expect("job ended")
        .unwrap();
    let dropped = engine.dropped_events();
    engine.shutdown().await;
    let events = consumer.await.unwrap();
    // Progress was shed instead of queued without bound, the terminal state arrived, once.
    assert!(dropped > 10_000, "only {dropped} dropped");
    assert!(
        events.len() < 50_000 - 10_000 + 1_000,
        "{} events delivered",
        events.len()
    );
    let ends: Vec<_> = events
        .iter()
        .filter_map(job)
        .filter(|j| j.prompt_id.as_str() == id && j.state.is_terminal())
        .collect();
    assert_eq!(ends.len(), 1);
    assert_eq!(ends[0].state, JobState::Interrupted);
}

#[tokio::test(start_paused = true)]
async fn a_socket_made_deaf_by_a_reused_client_id_is_noticed_and_replaced() {
    let server = fake(ServerVersion::V0_26).await;
    let (_engine, mut rx) = engine(spec(&server, "cm-deaf"));
    connected(&mut rx).await;
    server.wait_for_client(Some("cm-deaf")).await;
    // Another program connects with our id: ComfyUI routes everything to it, and our socket,
    // still open and answering pings, hears nothing more (protocol §2.1).
    let (intruder, _) = tokio_tungstenite::connect_async(server.ws_url("cm-deaf"))
        .await
        .unwrap();
    server.wait_for_socket(Some("cm-deaf")).await;
    // The queue keeps changing; no status reaches us.
    for i in 0..4 {
        server.submit(sampler(50, 100, &format!("q{i}")), Some("browser"));
    }
    let (_, seen) = until(
        &mut rx,
        "reconnect",
        |e| matches!(&e.kind, EventKind::Connection(c) if c.state != ConnectionState::Connected),
    )
    .await;
    assert!(seen.iter().all(|e| connection(e).is_none()));
    connected(&mut rx).await;
    // Registered again: our own jobs are followed live once more.
    let id = server.submit(sampler(2, 10, "back"), Some("cm-deaf"));
    let (j, _) = terminal(&mut rx, &id).await;
    assert_eq!(j.fidelity, comfy_engine::Fidelity::Live);
    drop(intruder);
}
