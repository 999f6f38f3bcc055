//! The shell's picture of every instance, fed by engine events.
//!
//! `apply` is pure: an event in, the state updated, at most one [`Update`] out. The event task
//! owns the writing; commands read snapshots. Every change bumps one revision counter so the UI
//! can reconcile a snapshot with events that raced it.

use crate::shell::events::{
    InstanceStatusChanged, JobUpdated, QueueChanged, ServerInfoChanged, Update,
};
use crate::shell::view::{
    ConnectionStateView, InstanceStatus, InstanceView, JobStateView, JobSummary, QueueCounts,
    ServerView, Snapshot,
};
use comfy_engine::{ConnectionStatus, Event, EventKind};
use time::OffsetDateTime;

#[derive(Debug, Default)]
pub struct Overview {
    revision: u64,
    instances: Vec<InstanceView>,
}

impl Overview {
    /// Registers an instance before its first event, with the engine's current status.
    pub fn add_instance(&mut self, name: &str, url: &str, status: Option<&ConnectionStatus>) {
        let now = unix_ms(OffsetDateTime::now_utc());
        let status = match status {
            Some(status) => InstanceStatus::new(status, now),
            None => InstanceStatus {
                state: ConnectionStateView::Connecting,
                detail: "starting".into(),
                retry_in_ms: None,
                changed_at_ms: now,
            },
        };
        self.revision += 1;
        self.instances.push(InstanceView {
            name: name.to_owned(),
            url: url.to_owned(),
            status,
            server: None,
            queue: QueueCounts::default(),
            jobs: Vec::new(),
            last_job: None,
        });
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            revision: self.revision,
            instances: self.instances.clone(),
        }
    }

    /// Folds one engine event into the picture and says what changed. Events the UI does not
    /// show yet (previews, text, custom server messages) change nothing.
    pub fn apply(&mut self, event: &Event) -> Option<Update> {
        let index = self.instances.iter().position(|i| i.name == event.instance);
        let Some(index) = index else {
            tracing::debug!(instance = %event.instance, "event for an unknown instance");
            return None;
        };
        let revision = self.revision + 1;
        let instance = &mut self.instances[index];
        let name = instance.name.clone();
        let update = match &event.kind {
            EventKind::Connection(status) => {
                instance.status = InstanceStatus::new(status, unix_ms(event.ts));
                Update::InstanceStatusChanged(InstanceStatusChanged {
                    revision,
                    instance: name,
                    status: instance.status.clone(),
                })
            }
            EventKind::Server(info) => {
                let server = ServerView::from(info);
                instance.server = Some(server.clone());
                Update::ServerInfoChanged(ServerInfoChanged {
                    revision,
                    instance: name,
                    server,
                })
            }
            EventKind::Queue { running, pending } => {
                instance.queue = QueueCounts {
                    running: running.len(),
                    pending: pending.len(),
                };
                Update::QueueChanged(QueueChanged {
                    revision,
                    instance: name,
                    queue: instance.queue,
                })
            }
            EventKind::Job(view) => {
                let job = JobSummary::from(view.as_ref());
                upsert_job(instance, job.clone());
                Update::JobUpdated(Box::new(JobUpdated {
                    revision,
                    instance: name,
                    job,
                }))
            }
            EventKind::ProtocolError { detail } => {
                tracing::warn!(instance = %name, %detail, "undecodable frame");
                return None;
            }
            EventKind::Preview(_) | EventKind::Text { .. } | EventKind::ServerEvent { .. } => {
                return None;
            }
        };
        self.revision = revision;
        Some(update)
    }
}

fn upsert_job(instance: &mut InstanceView, job: JobSummary) {
    let existing = instance
        .jobs
        .iter()
        .position(|j| j.prompt_id == job.prompt_id);
    if job.is_finished() {
        if let Some(i) = existing {
            instance.jobs.remove(i);
        }
        instance.last_job = Some(job);
        return;
    }
    match existing {
        Some(i) => instance.jobs[i] = job,
        None => instance.jobs.push(job),
    }
    // Running first, then by queue number (unknown numbers last), stable otherwise.
    instance.jobs.sort_by(|a, b| {
        let running = |j: &JobSummary| j.state != JobStateView::Running;
        running(a).cmp(&running(b)).then_with(|| {
            let n = |j: &JobSummary| j.number.unwrap_or(f64::INFINITY);
            n(a).total_cmp(&n(b))
        })
    });
}

fn unix_ms(ts: OffsetDateTime) -> i64 {
    i64::try_from(ts.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use comfy_engine::{ConnectionState, JobOrigin, JobState, JobView, Preview, ServerInfo};

    fn event(kind: EventKind) -> Event {
        Event {
            ts: OffsetDateTime::from_unix_timestamp(1_700_000_000).expect("valid timestamp"),
            instance: "gpu".into(),
            kind,
        }
    }

    fn overview() -> Overview {
        let mut o = Overview::default();
        o.add_instance("gpu", "http://gpu:8188/", None);
        o
    }

    fn job(id: &str, state: JobState, number: f64) -> EventKind {
        EventKind::Job(Box::new(JobView {
            number: Some(number),
            ..JobView::new(id.into(), JobOrigin::Other, state)
        }))
    }

    fn job_ids(o: &Overview) -> Vec<String> {
        o.snapshot().instances[0]
            .jobs
            .iter()
            .map(|j| j.prompt_id.clone())
            .collect()
    }

    #[test]
    fn new_instance_is_connecting_with_no_server_info() {
        let s = overview().snapshot();
        assert_eq!(s.instances.len(), 1);
        assert_eq!(s.instances[0].status.state, ConnectionStateView::Connecting);
        assert!(s.instances[0].server.is_none());
    }

    #[test]
    fn connection_event_updates_status_and_bumps_revision() {
        let mut o = overview();
        let before = o.snapshot().revision;
        let update = o.apply(&event(EventKind::Connection(ConnectionStatus {
            state: ConnectionState::AuthFailed,
            detail: "auth failed: 401".into(),
            retry_in_ms: Some(4000),
        })));
        let Some(Update::InstanceStatusChanged(p)) = update else {
            panic!("expected a status change, got {update:?}");
        };
        assert_eq!(p.revision, before + 1);
        assert_eq!(p.status.state, ConnectionStateView::AuthFailed);
        assert_eq!(p.status.changed_at_ms, 1_700_000_000_000);
        let s = o.snapshot();
        assert_eq!(s.revision, before + 1);
        assert_eq!(s.instances[0].status.detail, "auth failed: 401");
        assert_eq!(s.instances[0].status.retry_in_ms, Some(4000));
    }

    #[test]
    fn server_and_queue_events_are_reflected() {
        let mut o = overview();
        o.apply(&event(EventKind::Server(ServerInfo {
            version: Some("0.3.60".into()),
            jobs_api: false,
            feature_flags: true,
            client_id: "c".into(),
        })));
        o.apply(&event(EventKind::Queue {
            running: vec!["a".into()],
            pending: vec!["b".into(), "c".into()],
        }));
        let i = &o.snapshot().instances[0];
        assert_eq!(
            i.server.as_ref().and_then(|s| s.version.as_deref()),
            Some("0.3.60")
        );
        assert_eq!(
            i.queue,
            QueueCounts {
                running: 1,
                pending: 2
            }
        );
    }

    #[test]
    fn running_jobs_come_before_pending_ones_in_queue_order() {
        let mut o = overview();
        o.apply(&event(job("p2", JobState::Pending, 2.0)));
        o.apply(&event(job("p1", JobState::Pending, 1.0)));
        o.apply(&event(job("r", JobState::Running, 0.0)));
        assert_eq!(job_ids(&o), ["r", "p1", "p2"]);
    }

    #[test]
    fn finished_job_leaves_the_active_list_and_becomes_the_last_job() {
        let mut o = overview();
        o.apply(&event(job("r", JobState::Running, 0.0)));
        o.apply(&event(job("r", JobState::Success, 0.0)));
        assert!(job_ids(&o).is_empty());
        let last = o.snapshot().instances[0].last_job.clone();
        assert_eq!(last.map(|j| j.state), Some(JobStateView::Success));
    }

    #[test]
    fn previews_change_nothing() {
        let mut o = overview();
        let before = o.snapshot().revision;
        let update = o.apply(&event(EventKind::Preview(Preview {
            prompt_id: None,
            node: None,
            mime: "image/jpeg",
            width: None,
            height: None,
            bytes: 3,
            image: Default::default(),
        })));
        assert!(update.is_none());
        assert_eq!(o.snapshot().revision, before);
    }

    #[test]
    fn events_for_unknown_instances_are_ignored() {
        let mut o = overview();
        let mut e = event(EventKind::Queue {
            running: vec![],
            pending: vec![],
        });
        e.instance = "elsewhere".into();
        assert!(o.apply(&e).is_none());
    }
}
