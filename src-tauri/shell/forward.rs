//! The event task: engine events in, overview updated, throttled updates out to the webview.

use crate::shell::events::Update;
use crate::shell::throttle::{progress_interval, ProgressThrottle};
use crate::shell::SharedOverview;
use comfy_engine::Event;
use tokio::sync::mpsc::Receiver;
use tokio::time::{sleep_until, Instant};

/// Runs until the engine is dropped (its event channel closes).
pub async fn forward(
    mut events: Receiver<Event>,
    overview: SharedOverview,
    mut emit: impl FnMut(Update),
) {
    let mut throttle = ProgressThrottle::new(progress_interval());
    loop {
        let due = throttle.next_due();
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { break };
                let update = overview.lock().apply(&event);
                if let Some(update) = update {
                    throttle.offer(update, Instant::now()).into_iter().for_each(&mut emit);
                }
            }
            () = sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                throttle.take_due(Instant::now()).into_iter().for_each(&mut emit);
            }
        }
    }
    // Whatever progress is still held is moot once the engine is gone.
}

#[cfg(test)]
mod tests {
    use super::*;
    use comfy_engine::{
        ConnectionState, ConnectionStatus, EventKind, JobOrigin, JobState, JobView,
    };
    use time::OffsetDateTime;

    fn event(kind: EventKind) -> Event {
        Event {
            ts: OffsetDateTime::now_utc(),
            instance: "gpu".into(),
            kind,
        }
    }

    fn job(state: JobState, percent: f64) -> EventKind {
        EventKind::Job(Box::new(JobView {
            percent: Some(percent),
            ..JobView::new("p".into(), JobOrigin::SelfApp, state)
        }))
    }

    #[tokio::test]
    async fn a_burst_of_progress_collapses_but_the_final_state_always_arrives() {
        let overview = SharedOverview::default();
        overview.lock().add_instance("gpu", "http://gpu/", None);
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tx.send(event(EventKind::Connection(ConnectionStatus {
            state: ConnectionState::Connected,
            detail: "connected".into(),
            retry_in_ms: None,
        })))
        .await
        .expect("channel open");
        for i in 0..20 {
            tx.send(event(job(JobState::Running, f64::from(i))))
                .await
                .expect("channel open");
        }
        tx.send(event(job(JobState::Success, 100.0)))
            .await
            .expect("channel open");
        drop(tx);

        let mut sent = Vec::new();
        forward(rx, overview.clone(), |u| sent.push(u)).await;

        let names: Vec<_> = sent.iter().map(Update::name).collect();
        assert_eq!(
            names.first(),
            Some(&crate::shell::events::INSTANCE_STATUS_CHANGED)
        );
        assert!(names.len() < 10, "progress was not coalesced: {names:?}");
        let Some(Update::JobUpdated(last)) = sent.last() else {
            panic!("the final job state was not sent last: {sent:?}");
        };
        assert_eq!(last.job.percent, Some(100.0));
        // The overview saw every event, whatever was coalesced on the way out.
        let snapshot = overview.lock().snapshot();
        assert_eq!(snapshot.revision, 1 + 1 + 20 + 1);
        assert!(snapshot.instances[0].jobs.is_empty());
    }
}
