//! Acting on a fake ComfyUI through the engine: submit, validation, cancel races, clear.

use crate::live::{fake, job, sampler, terminal, terminals, until};
use comfy_engine::actions::{ActionError, CancelOutcome, SubmitOptions};
use comfy_engine::{
    ConnectionState, Engine, EngineError, EventKind, Fidelity, InstanceId, InstanceSpec, JobOrigin,
    JobState,
};
use fake_comfyui::{FakeComfy, ServerVersion};
use serde_json::json;

pub(crate) async fn connected_engine(
    server: &FakeComfy,
    client_id: &str,
) -> (Engine, InstanceId, comfy_engine::Events) {
    let mut spec = InstanceSpec::new("fake", &server.base_url()).unwrap();
    spec.client_id = client_id.into();
    let (engine, mut rx) = Engine::new(4096);
    let id = engine.add_instance(spec).unwrap();
    until(
        &mut rx,
        "connected",
        |e| matches!(&e.kind, EventKind::Connection(c) if c.state == ConnectionState::Connected),
    )
    .await;
    server.wait_for_client(Some(client_id)).await;
    (engine, id, rx)
}

const VERSIONS: [ServerVersion; 3] = [
    ServerVersion::Legacy,
    ServerVersion::V0_3_64,
    ServerVersion::V0_26,
];

#[tokio::test]
async fn a_submitted_job_is_ours_and_followed_live_to_its_end() {
    for version in VERSIONS {
        let server = fake(version).await;
        let (engine, id, mut rx) = connected_engine(&server, "cm-submit").await;
        let s = engine
            .submit(id, sampler(5, 5, "sub"), SubmitOptions::default())
            .await
            .unwrap();
        assert!(s.node_errors.is_empty());
        let (j, seen) = terminal(&mut rx, s.prompt_id.as_str()).await;
        assert_eq!(j.state, JobState::Success, "{version}");
        assert_eq!(
            (j.origin, j.fidelity),
            (JobOrigin::SelfApp, Fidelity::Live),
            "{version}"
        );
        assert_eq!(j.percent, Some(100.0));
        assert!(
            j.outputs.iter().any(|o| o.filename.starts_with("sub")),
            "{version}"
        );
        // Nothing else was invented along the way (a phantom under another id, a false end).
        let ends: Vec<_> = seen
            .iter()
            .filter_map(job)
            .filter(|v| v.state.is_terminal())
            .collect();
        assert!(ends.is_empty(), "{version}: {ends:?}");
    }
}

#[tokio::test]
async fn validation_errors_come_back_per_node_for_a_400_and_a_200() {
    for version in VERSIONS {
        let server = fake(version).await;
        let (engine, id, mut rx) = connected_engine(&server, "cm-valid").await;
        let missing_steps = json!({
            "1": {"class_type": "MonitorTestSampler", "inputs": {"step_delay_ms": 5}},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "v"}}
        });
        match engine
            .submit(id, missing_steps, SubmitOptions::default())
            .await
        {
            Err(EngineError::Action(ActionError::Rejected(r))) => {
                assert_eq!(r.status, 400);
                assert_eq!(r.node_errors[0].node_id, "1", "{version}");
                assert_eq!(r.node_errors[0].errors[0].kind, "required_input_missing");
            }
            other => panic!("{version}: {other:?}"),
        }
        // One output links to a node that does not exist: the server drops it and runs the rest.
        let half_valid = json!({
            "1": {"class_type": "MonitorTestSampler", "inputs": {"steps": 2, "step_delay_ms": 5, "seed": 7}},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "kept"}},
            "3": {"class_type": "SaveImage", "inputs": {"images": ["99", 0], "filename_prefix": "dropped"}}
        });
        let s = engine
            .submit(id, half_valid, SubmitOptions::default())
            .await
            .unwrap();
        assert_eq!(s.node_errors.len(), 1, "{version}");
        assert_eq!(s.node_errors[0].node_id, "3");
        let (j, _) = terminal(&mut rx, s.prompt_id.as_str()).await;
        assert_eq!(j.state, JobState::Success, "{version}");
    }
}

#[tokio::test]
async fn a_ui_format_workflow_is_refused_before_anything_is_sent() {
    let server = fake(ServerVersion::V0_26).await;
    let (engine, id, _rx) = connected_engine(&server, "cm-ui").await;
    server.clear_request_log();
    let ui = json!({"last_node_id": 9, "nodes": [], "links": [], "version": 0.4});
    let err = engine
        .submit(id, ui, SubmitOptions::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("API"), "{err}");
    assert!(server.request_log().iter().all(|r| r.method != "POST"));
}

#[tokio::test]
async fn cancelling_our_pending_job_removes_it_and_spares_the_running_one() {
    for version in VERSIONS {
        let server = fake(version).await;
        let (engine, id, mut rx) = connected_engine(&server, "cm-cancel").await;
        let theirs = server.submit(sampler(40, 10, "theirs"), Some("browser"));
        let ours = engine
            .submit(id, sampler(5, 5, "ours"), SubmitOptions::default())
            .await
            .unwrap()
            .prompt_id;
        let outcome = engine.cancel(id, &ours).await.unwrap();
        assert_eq!(outcome, CancelOutcome::Removed, "{version}");
        let (j, _) = terminal(&mut rx, ours.as_str()).await;
        assert_eq!(j.state, JobState::Deleted, "{version}");
        let (j, _) = terminal(&mut rx, &theirs).await;
        assert_eq!(
            j.state,
            JobState::Success,
            "{version}: the other client's job survives"
        );
    }
}

#[tokio::test]
async fn cancelling_our_running_job_interrupts_it_and_the_queue_goes_on() {
    for version in VERSIONS {
        let server = fake(version).await;
        let (engine, id, mut rx) = connected_engine(&server, "cm-stop").await;
        let ours = engine
            .submit(id, sampler(2000, 10, "long"), SubmitOptions::default())
            .await
            .unwrap()
            .prompt_id;
        let theirs = server.submit(sampler(3, 5, "waiting"), Some("browser"));
        until(&mut rx, "ours stepping", |e| {
            job(e).is_some_and(|j| j.prompt_id == ours && j.node_value.unwrap_or(0.0) >= 1.0)
        })
        .await;
        assert_eq!(
            engine.cancel(id, &ours).await.unwrap(),
            CancelOutcome::Interrupted,
            "{version}"
        );
        let (j, _) = terminal(&mut rx, ours.as_str()).await;
        assert_eq!(j.state, JobState::Interrupted, "{version}");
        let (j, _) = terminal(&mut rx, &theirs).await;
        assert_eq!(
            j.state,
            JobState::Success,
            "{version}: the waiting job still runs"
        );
        assert_eq!(server.interrupt_count(), 1, "{version}");
    }
}

#[tokio::test]
async fn a_pending_job_that_starts_between_the_click_and_the_request_is_interrupted_alone() {
    for version in VERSIONS {
        let server = fake(version).await;
        let (engine, id, mut rx) = connected_engine(&server, "cm-race").await;
        // Nothing starts until the race is run: ours is pending when the engine looks.
        server.hold_queue(true);
        let ours = engine
            .submit(id, sampler(2000, 10, "raced"), SubmitOptions::default())
            .await
            .unwrap()
            .prompt_id;
        let theirs = server.submit(sampler(3, 5, "behind"), Some("browser"));
        // The removal request finds ours started: the server ran it the moment the click's
        // request arrived.
        server.start_before_removal(ours.as_str());
        server.clear_request_log();
        assert_eq!(
            engine.cancel(id, &ours).await.unwrap(),
            CancelOutcome::Interrupted,
            "{version}"
        );
        assert!(!server.removal_race_armed(), "{version}: the race was run");
        let removals: Vec<String> = server
            .request_log()
            .into_iter()
            .filter(|r| {
                r.method == "POST" && (r.path.contains("queue") || r.path.contains("cancel"))
            })
            .map(|r| r.path)
            .collect();
        assert_eq!(removals.len(), 1, "{version}: one removal, {removals:?}");
        let ended = terminals(&mut rx, &[ours.as_str(), &theirs]).await;
        assert_eq!(
            ended[ours.as_str()].state,
            JobState::Interrupted,
            "{version}"
        );
        assert_eq!(
            ended[&theirs].state,
            JobState::Success,
            "{version}: the job behind it still runs"
        );
        assert_eq!(
            server.interrupt_count(),
            1,
            "{version}: one interrupt, of our job only"
        );
    }
}

#[tokio::test]
async fn a_running_job_that_ends_between_the_click_and_the_request_is_reported_ended_and_the_next_job_survives(
) {
    // Servers before 0.3.57 interrupt whatever runs, and nothing a client does closes that
    // window (the engine only narrows it by looking right before asking).
    for version in [ServerVersion::V0_3_64, ServerVersion::V0_26] {
        let server = fake(version).await;
        let (engine, id, mut rx) = connected_engine(&server, "cm-late-stop").await;
        let ours = engine
            .submit(id, sampler(30, 10, "ending"), SubmitOptions::default())
            .await
            .unwrap()
            .prompt_id;
        let theirs = server.submit(sampler(40, 10, "next"), Some("browser"));
        until(&mut rx, "ours stepping", |e| {
            job(e).is_some_and(|j| j.prompt_id == ours && j.node_value.unwrap_or(0.0) >= 1.0)
        })
        .await;
        // The stop request reaches the server only after ours has ended and theirs has started.
        server.finish_before_interrupt(ours.as_str());
        let outcome = engine.cancel(id, &ours).await.unwrap();
        assert!(
            !server.interrupt_race_armed(),
            "{version}: the race was run"
        );
        assert_eq!(outcome, CancelOutcome::AlreadyFinished, "{version}");
        let ended = terminals(&mut rx, &[ours.as_str(), &theirs]).await;
        assert_eq!(ended[ours.as_str()].state, JobState::Success, "{version}");
        assert_eq!(
            ended[&theirs].state,
            JobState::Success,
            "{version}: the job that started meanwhile is not interrupted"
        );
        assert_eq!(server.interrupt_count(), 0, "{version}");
    }
}

#[tokio::test]
async fn cancelling_a_finished_or_unknown_job_says_so_and_touches_nothing() {
    for version in VERSIONS {
        let server = fake(version).await;
        let (engine, id, mut rx) = connected_engine(&server, "cm-late").await;
        let done = engine
            .submit(id, sampler(1, 1, "quick"), SubmitOptions::default())
            .await
            .unwrap()
            .prompt_id;
        terminal(&mut rx, done.as_str()).await;
        let running = server.submit(sampler(40, 10, "busy"), Some("browser"));
        // The job finished between the click and the request.
        assert_eq!(
            engine.cancel(id, &done).await.unwrap(),
            CancelOutcome::AlreadyFinished,
            "{version}"
        );
        let unknown = comfy_engine::actions::new_prompt_id();
        assert_eq!(
            engine.cancel(id, &unknown).await.unwrap(),
            CancelOutcome::NotFound,
            "{version}"
        );
        let (j, _) = terminal(&mut rx, &running).await;
        assert_eq!(j.state, JobState::Success, "{version}");
        assert_eq!(server.interrupt_count(), 0, "{version}");
    }
}

#[tokio::test]
async fn clearing_the_queue_leaves_the_running_job() {
    let server = fake(ServerVersion::V0_26).await;
    let (engine, id, mut rx) = connected_engine(&server, "cm-clear").await;
    let running = server.submit(sampler(30, 10, "run"), Some("browser"));
    let a = server.submit(sampler(3, 5, "a"), Some("browser"));
    let b = server.submit(sampler(3, 5, "b"), None);
    until(&mut rx, "both pending", |e| {
        job(e).is_some_and(|j| j.prompt_id.as_str() == b)
    })
    .await;
    engine.clear_pending(id).await.unwrap();
    let ended = terminals(&mut rx, &[&a, &b, &running]).await;
    assert_eq!(ended[&a].state, JobState::Deleted);
    assert_eq!(ended[&b].state, JobState::Deleted);
    assert_eq!(ended[&running].state, JobState::Success);
}

#[tokio::test]
async fn actions_on_a_disconnected_instance_say_why() {
    let server = fake(ServerVersion::V0_26).await;
    let (engine, id, mut rx) = connected_engine(&server, "cm-gone").await;
    server.set_down(true);
    until(
        &mut rx,
        "down",
        |e| matches!(&e.kind, EventKind::Connection(c) if c.state == ConnectionState::Unreachable),
    )
    .await;
    match engine
        .submit(id, sampler(1, 1, "x"), SubmitOptions::default())
        .await
    {
        Err(EngineError::NotConnected { detail, .. }) => assert!(!detail.is_empty()),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_graph_of_another_clients_job_comes_from_the_server_on_every_generation() {
    for version in VERSIONS {
        let server = fake(version).await;
        let (engine, id, mut rx) = connected_engine(&server, "cm-graph").await;
        // Queued by someone else (a browser tab), with its own graph.
        let graph = sampler(3, 5, "theirs");
        let theirs = server.submit(graph.clone(), Some("browser-tab"));
        until(&mut rx, "their job's end", |e| {
            matches!(&e.kind, EventKind::Job(j) if j.prompt_id.as_str() == theirs && j.state.is_terminal())
        })
        .await;
        let got = engine
            .job_graph(id, &theirs.as_str().into())
            .await
            .unwrap_or_else(|e| panic!("{version}: {e}"));
        assert_eq!(got.as_ref(), Some(&graph), "{version}");
        let unknown = engine
            .job_graph(id, &"4f729e71-630a-4217-b3a2-86a1431c8e94".into())
            .await
            .unwrap();
        assert_eq!(unknown, None, "{version}");
    }
}

#[tokio::test]
async fn the_graph_of_a_job_still_queued_comes_from_the_server_on_every_generation() {
    for version in VERSIONS {
        let server = fake(version).await;
        let (engine, id, _rx) = connected_engine(&server, "cm-queued").await;
        server.hold_queue(true);
        let running = sampler(1, 1, "first");
        let waiting = sampler(2, 1, "second");
        // Held: both stay pending until released; then the first runs while the second waits.
        let first = server.submit(running.clone(), Some("browser-tab"));
        let second = server.submit(waiting.clone(), Some("browser-tab"));
        for (job, graph) in [(&first, &running), (&second, &waiting)] {
            let got = engine
                .job_graph(id, &job.as_str().into())
                .await
                .unwrap_or_else(|e| panic!("{version}: {e}"));
            assert_eq!(
                got.as_ref(),
                Some(graph),
                "{version}: a pending job's graph"
            );
        }
        server.hold_queue(false);
    }
}
