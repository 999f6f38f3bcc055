//! Estimates learned from past runs, against a fake ComfyUI over real sockets: our own runs of a
//! workflow teach the engine how long it takes, and another client's run of it is estimated.

use crate::actions::connected_engine;
use crate::live::{fake, job, sampler, terminal, until};
use comfy_engine::actions::SubmitOptions;
use comfy_engine::{EstimateBasis, JobOrigin, JobState};
use fake_comfyui::ServerVersion;

async fn a_workflow_run_three_times_is_estimated_when_another_client_queues_it(
    version: ServerVersion,
) {
    let server = fake(version).await;
    let (engine, id, mut rx) = connected_engine(&server, "cm-timing").await;
    // Every run gets a new seed (`sampler` draws one): still the same workflow.
    for _ in 0..3 {
        let s = engine
            .submit(id, sampler(10, 40, "t"), SubmitOptions::default())
            .await
            .unwrap();
        let (j, _) = terminal(&mut rx, s.prompt_id.as_str()).await;
        assert_eq!(j.state, JobState::Success, "{version}");
        assert!(
            j.run_ms.is_some_and(|ms| ms >= 400),
            "{version}: {:?}",
            j.run_ms
        );
    }

    // A browser queues it twice: the second waits behind the first.
    let first = server.submit(sampler(10, 40, "b"), Some("browser"));
    let second = server.submit(sampler(10, 40, "b"), Some("browser"));
    let (e, _) = until(&mut rx, "the browser's first job estimated", |e| {
        job(e).is_some_and(|j| j.prompt_id.as_str() == first && j.estimate.is_some())
    })
    .await;
    let j = job(&e).unwrap();
    assert_eq!(j.origin, JobOrigin::Other, "{version}");
    let est = j.estimate.clone().unwrap();
    assert_eq!(est.basis, EstimateBasis::Workflow, "{version}");
    // It runs right after our last run of it: estimated from the runs that did the same (the
    // first of ours ran after nothing).
    assert_eq!(est.samples, 2, "{version}");
    assert!(est.typical_ms >= 400, "{version}: {est:?}");
    assert_eq!(j.percent, None, "{version}: measured figures stay empty");

    let (e, _) = until(&mut rx, "the second job's start estimated", |e| {
        job(e).is_some_and(|j| {
            j.prompt_id.as_str() == second
                && j.state == JobState::Pending
                && j.estimate
                    .as_ref()
                    .is_some_and(|e| e.starts_in_ms.is_some())
        })
    })
    .await;
    let est = job(&e).unwrap().estimate.clone().unwrap();
    assert!(
        est.starts_in_ms.unwrap() <= est.typical_ms + 1_000,
        "{version}: one job ahead of it: {est:?}"
    );
    assert_eq!(
        est.eta_ms,
        Some(est.starts_in_ms.unwrap() + est.typical_ms),
        "{version}"
    );
    let (done, _) = terminal(&mut rx, &second).await;
    assert_eq!(done.state, JobState::Success, "{version}");
    assert_eq!(
        done.estimate, None,
        "{version}: an ended job has no estimate"
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn a_workflow_run_three_times_is_estimated_for_another_client_on_0_3_64() {
    a_workflow_run_three_times_is_estimated_when_another_client_queues_it(ServerVersion::V0_3_64)
        .await;
}

#[tokio::test]
async fn a_workflow_run_three_times_is_estimated_for_another_client_through_the_jobs_api() {
    a_workflow_run_three_times_is_estimated_when_another_client_queues_it(ServerVersion::V0_26)
        .await;
}
