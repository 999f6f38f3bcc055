//! The engine with the server's companion (the fake's companion mode, which speaks
//! `docs/companion-protocol.md`): other clients' jobs followed at full fidelity, and a companion
//! that goes away.

use crate::live::{connected, engine, failing, job, post, sampler, spec, terminal, until};
use comfy_engine::{EventKind, Fidelity, JobOrigin, JobState};
use fake_comfyui::{FakeComfy, FakeConfig, ServerVersion};
use serde_json::json;
use std::time::Duration;

async fn with_companion(version: ServerVersion) -> FakeComfy {
    FakeComfy::start(FakeConfig {
        version,
        step_delay: Duration::from_millis(5),
        companion: true,
        ..FakeConfig::default()
    })
    .await
    .expect("fake server starts")
}

async fn another_clients_job_is_followed_like_our_own(version: ServerVersion) {
    let server = with_companion(version).await;
    let (_engine, mut rx) = engine(spec(&server, "cm-relay"));
    connected(&mut rx).await;
    let (server_event, _) = until(&mut rx, "server info", |e| {
        matches!(e.kind, EventKind::Server(_))
    })
    .await;
    let EventKind::Server(info) = &server_event.kind else {
        unreachable!()
    };
    assert!(info.companion.is_some(), "{version}: {info:?}");
    server.wait_for_client(Some("cm-relay")).await;
    assert_eq!(server.companion_subscribers(), ["cm-relay"], "{version}");

    let id = server.submit(sampler(6, 5, "relayed"), Some("browser"));
    let (end, seen) = terminal(&mut rx, &id).await;
    assert_eq!(end.state, JobState::Success, "{version}");
    assert_eq!(
        end.origin,
        JobOrigin::Other,
        "{version}: still another client's job"
    );
    assert_eq!(end.fidelity, Fidelity::Relayed, "{version}");
    assert_eq!(end.percent, Some(100.0), "{version}");
    assert!(!end.node_durations.is_empty(), "{version}: {end:?}");
    assert!(end
        .outputs
        .iter()
        .any(|o| o.filename.starts_with("relayed")));

    let running: Vec<_> = seen
        .iter()
        .filter_map(job)
        .filter(|j| j.prompt_id.as_str() == id && j.state == JobState::Running)
        .collect();
    assert!(
        running.iter().any(|j| {
            j.percent.is_some_and(|p| p > 0.0 && p < 100.0)
                && j.node_type.as_deref() == Some("MonitorTestSampler")
                && j.node_max == Some(6.0)
        }),
        "{version}: relayed progress: {running:?}"
    );
    assert!(
        running.iter().any(|j| j.eta_ms.is_some()),
        "{version}: an ETA"
    );
    let previews: Vec<_> = seen
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Preview(p) => Some(p),
            _ => None,
        })
        .collect();
    assert!(!previews.is_empty(), "{version}: relayed previews");
    assert!(
        previews
            .iter()
            .all(|p| p.prompt_id.as_ref().is_some_and(|p| p.as_str() == id)),
        "{version}: every relayed preview names its job"
    );
}

#[tokio::test]
async fn with_the_companion_another_clients_job_is_followed_like_our_own_on_0_26() {
    another_clients_job_is_followed_like_our_own(ServerVersion::V0_26).await;
}

#[tokio::test]
async fn with_the_companion_another_clients_job_is_followed_like_our_own_on_0_3_64() {
    another_clients_job_is_followed_like_our_own(ServerVersion::V0_3_64).await;
}

#[tokio::test]
async fn relayed_failures_and_interrupts_end_as_they_did() {
    let server = with_companion(ServerVersion::V0_26).await;
    let (_engine, mut rx) = engine(spec(&server, "cm-relay"));
    connected(&mut rx).await;
    server.wait_for_client(Some("cm-relay")).await;

    let bad = server.submit(failing(), Some("script"));
    let (end, _) = terminal(&mut rx, &bad).await;
    assert_eq!(
        (end.state, end.fidelity),
        (JobState::Error, Fidelity::Relayed)
    );
    let e = end.error.expect("error details");
    assert_eq!(e.node_type.as_deref(), Some("MonitorTestFail"));

    let long = server.submit(sampler(400, 10, "long"), Some("browser"));
    until(&mut rx, "the long job steps", |e| {
        job(e).is_some_and(|j| j.prompt_id.as_str() == long && j.node_value.is_some())
    })
    .await;
    post(&server, "interrupt", json!({"prompt_id": long})).await;
    let (end, _) = terminal(&mut rx, &long).await;
    assert_eq!(
        (end.state, end.fidelity),
        (JobState::Interrupted, Fidelity::Relayed)
    );
}

#[tokio::test]
async fn our_own_jobs_stay_live_when_the_companion_relays_others() {
    let server = with_companion(ServerVersion::V0_26).await;
    let (_engine, mut rx) = engine(spec(&server, "cm-relay"));
    connected(&mut rx).await;
    server.wait_for_client(Some("cm-relay")).await;
    let mine = server.submit(sampler(4, 5, "mine"), Some("cm-relay"));
    let (end, _) = terminal(&mut rx, &mine).await;
    assert_eq!(
        (end.origin, end.fidelity),
        (JobOrigin::SelfApp, Fidelity::Live)
    );
    assert_eq!(end.percent, Some(100.0));
}

#[tokio::test]
async fn a_companion_gone_after_a_restart_leaves_other_clients_jobs_observed_and_comes_back() {
    let server = with_companion(ServerVersion::V0_26).await;
    let (_engine, mut rx) = engine(spec(&server, "cm-relay"));
    connected(&mut rx).await;
    server.wait_for_client(Some("cm-relay")).await;

    server.set_companion(false);
    server.restart().await;
    until(
        &mut rx,
        "server info without the companion",
        |e| matches!(&e.kind, EventKind::Server(i) if i.companion.is_none()),
    )
    .await;
    server.wait_for_client(Some("cm-relay")).await;
    let observed = server.submit(sampler(4, 5, "observed"), Some("browser"));
    let (end, _) = terminal(&mut rx, &observed).await;
    assert_eq!(
        (end.state, end.fidelity),
        (JobState::Success, Fidelity::Observed)
    );
    assert_eq!(
        end.percent, None,
        "no invented progress without the companion"
    );

    server.set_companion(true);
    server.restart().await;
    until(
        &mut rx,
        "the companion back",
        |e| matches!(&e.kind, EventKind::Server(i) if i.companion.is_some()),
    )
    .await;
    server.wait_for_client(Some("cm-relay")).await;
    let relayed = server.submit(sampler(4, 5, "back"), Some("browser"));
    let (end, _) = terminal(&mut rx, &relayed).await;
    assert_eq!(
        (end.state, end.fidelity),
        (JobState::Success, Fidelity::Relayed)
    );
}

#[tokio::test]
async fn a_monitor_that_does_not_want_the_companion_observes_as_before() {
    let server = with_companion(ServerVersion::V0_26).await;
    let mut s = spec(&server, "cm-plain");
    s.use_companion = false;
    let (_engine, mut rx) = engine(s);
    connected(&mut rx).await;
    let (e, _) = until(&mut rx, "server info", |e| {
        matches!(e.kind, EventKind::Server(_))
    })
    .await;
    assert!(matches!(&e.kind, EventKind::Server(i) if i.companion.is_none()));
    server.wait_for_client(Some("cm-plain")).await;
    assert!(server.companion_subscribers().is_empty());
    let id = server.submit(sampler(4, 5, "plain"), Some("browser"));
    let (end, _) = terminal(&mut rx, &id).await;
    assert_eq!(
        (end.state, end.fidelity),
        (JobState::Success, Fidelity::Observed)
    );
}

#[tokio::test]
async fn a_monitor_that_connects_mid_job_reads_the_companions_state_and_follows_the_job() {
    let server = with_companion(ServerVersion::V0_26).await;
    // An early monitor sees the job step: it is well under way before the late one exists.
    let (_early, mut early) = engine(spec(&server, "cm-early"));
    connected(&mut early).await;
    server.wait_for_client(Some("cm-early")).await;
    let id = server.submit(sampler(400, 10, "midjob"), Some("browser"));
    until(&mut early, "the job steps", |e| {
        job(e).is_some_and(|j| j.prompt_id.as_str() == id && j.node_value.is_some())
    })
    .await;
    let (_engine, mut rx) = engine(spec(&server, "cm-late"));
    connected(&mut rx).await;
    let (e, _) = until(&mut rx, "the running job with its node", |e| {
        job(e).is_some_and(|j| {
            j.prompt_id.as_str() == id && j.state == JobState::Running && j.node.is_some()
        })
    })
    .await;
    let j = job(&e).unwrap();
    assert_eq!(
        (j.origin, j.fidelity),
        (JobOrigin::Other, Fidelity::Relayed)
    );
    assert!(
        server
            .request_log()
            .iter()
            .any(|r| r.path.ends_with("comfy_monitor/v1/state") && r.status == 200),
        "the state route was read"
    );
    post(&server, "interrupt", json!({"prompt_id": id})).await;
    let (end, _) = terminal(&mut rx, &id).await;
    assert_eq!(end.state, JobState::Interrupted);
}

#[tokio::test]
async fn a_relayed_job_answered_from_the_cache_ends_as_a_success() {
    let server = with_companion(ServerVersion::V0_26).await;
    let (_engine, mut rx) = engine(spec(&server, "cm-relay"));
    connected(&mut rx).await;
    server.wait_for_client(Some("cm-relay")).await;
    let workflow = json!({
        "1": {"class_type": "MonitorTestSampler", "inputs": {"steps": 3, "step_delay_ms": 5, "preview_size": 32, "seed": 7}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "cached"}}
    });
    let first = server.submit(workflow.clone(), Some("browser"));
    let (end, _) = terminal(&mut rx, &first).await;
    assert_eq!(
        (end.state, end.fidelity),
        (JobState::Success, Fidelity::Relayed)
    );
    // The same graph again: the server answers it from its cache (execution_cached, no steps).
    let again = server.submit(workflow, Some("browser"));
    let (end, seen) = terminal(&mut rx, &again).await;
    assert_eq!(
        (end.state, end.fidelity),
        (JobState::Success, Fidelity::Relayed)
    );
    assert_eq!(end.percent, Some(100.0));
    assert!(
        !seen
            .iter()
            .filter_map(job)
            .any(|j| j.prompt_id.as_str() == again && j.node_value.is_some()),
        "no step of a cached run"
    );
}

/// Relayed jobs teach timing node by node like our own, and the next run of the workflow by
/// another client is estimated from its first moment, its nodes known.
#[tokio::test]
async fn relayed_runs_teach_the_estimate_of_the_next_one() {
    let server = with_companion(ServerVersion::V0_26).await;
    let (_engine, mut rx) = engine(spec(&server, "cm-relay-timing"));
    connected(&mut rx).await;
    server.wait_for_client(Some("cm-relay-timing")).await;
    for _ in 0..2 {
        let id = server.submit(sampler(8, 20, "r"), Some("browser"));
        let (end, _) = terminal(&mut rx, &id).await;
        assert_eq!(end.fidelity, Fidelity::Relayed);
        assert!(
            end.run_ms.is_some() && !end.node_durations.is_empty(),
            "{end:?}"
        );
    }
    let id = server.submit(sampler(8, 20, "r"), Some("browser"));
    let (e, _) = until(&mut rx, "the third run estimated while it runs", |e| {
        job(e).is_some_and(|j| {
            j.prompt_id.as_str() == id
                && j.state == JobState::Running
                && j.fidelity == Fidelity::Relayed
                && j.estimate.is_some()
        })
    })
    .await;
    let est = job(&e).unwrap().estimate.clone().unwrap();
    assert_eq!(est.basis, comfy_engine::EstimateBasis::Workflow);
    assert!(est.eta_ms.is_some() && est.typical_ms >= 160, "{est:?}");
}
