//! The shell's picture of every instance, fed by engine events: the one job-list projection.
//!
//! `apply` is pure: an event in, the state updated, at most one [`Update`] out. The event task
//! owns the writing; commands read snapshots. Every change bumps one revision counter so the UI
//! can reconcile a snapshot with events that raced it. Each job summary sent is final (its
//! preview and node text carried over), and the order of an instance's unfinished jobs is
//! decided here and sent with the update that changed it: the webview folds nothing itself.

use crate::shell::events::{
    InstanceStatusChanged, InstancesChanged, JobUpdated, QueueChanged, ServerInfoChanged,
    StatsChanged, Update,
};
use crate::shell::view::{
    InstanceStatus, InstanceView, JobSummary, NodeText, PreviewRef, QueueCounts, Snapshot,
    StatsView,
};
use comfy_engine::{ConnectionState, ConnectionStatus, Event, EventKind};
use comfy_model::{Fidelity, InstanceId, JobState, PromptId};
use std::sync::{Arc, Mutex, MutexGuard};
use time::OffsetDateTime;

/// Streamed node text kept per job, all nodes together (every picture of the job carries it):
/// past it, the nodes that spoke first give way.
const MAX_JOB_NODE_TEXT: usize = 256 * 1024;

/// The overview shared by the event task (writer) and the commands (readers).
#[derive(Clone, Default)]
pub struct SharedOverview(Arc<Mutex<Overview>>);

impl SharedOverview {
    /// Locks the overview. A panic elsewhere while holding the lock leaves a value that is still
    /// a valid picture, so poisoning is ignored rather than taking the UI down with it.
    pub fn lock(&self) -> MutexGuard<'_, Overview> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[derive(Debug, Default)]
pub struct Overview {
    revision: u64,
    instances: Vec<InstanceView>,
}

impl Overview {
    /// Registers an instance before its first event, with the engine's current status.
    pub fn add_instance(
        &mut self,
        id: InstanceId,
        name: &str,
        url: &str,
        enabled: bool,
        use_companion: bool,
        status: Option<&ConnectionStatus>,
    ) -> Update {
        let now = unix_ms(OffsetDateTime::now_utc());
        let status = InstanceStatus {
            status: status.cloned().unwrap_or_else(|| ConnectionStatus {
                state: ConnectionState::Connecting,
                detail: "starting".into(),
                retry_in_ms: None,
            }),
            changed_at_ms: now,
        };
        self.revision += 1;
        let view = InstanceView {
            id,
            name: name.to_owned(),
            url: url.to_owned(),
            enabled,
            use_companion,
            status,
            stats: None,
            server: None,
            queue: QueueCounts::default(),
            jobs: Vec::new(),
            last_job: None,
        };
        match self.instances.iter().position(|i| i.id == id) {
            Some(i) => self.instances[i] = view,
            None => self.instances.push(view),
        }
        self.instances.sort_by_key(|i| i.id);
        self.instances_changed()
    }

    /// Forgets an instance (removed, or about to be re-added with new settings).
    pub fn remove_instance(&mut self, id: InstanceId) -> Option<Update> {
        let before = self.instances.len();
        self.instances.retain(|i| i.id != id);
        if self.instances.len() == before {
            return None;
        }
        self.revision += 1;
        Some(self.instances_changed())
    }

    fn instances_changed(&self) -> Update {
        Update::InstancesChanged(InstancesChanged {
            revision: self.revision,
        })
    }

    /// Every change up to this revision is in the overview.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// One instance's picture.
    pub fn instance(&self, id: InstanceId) -> Option<&InstanceView> {
        self.instances.iter().find(|i| i.id == id)
    }

    /// Records new machine stats for an instance.
    pub fn set_stats(&mut self, id: InstanceId, stats: StatsView) -> Option<Update> {
        let instance = self.instances.iter_mut().find(|i| i.id == id)?;
        if instance.stats.as_ref() == Some(&stats) {
            return None;
        }
        instance.stats = Some(stats.clone());
        self.revision += 1;
        Some(Update::StatsChanged(StatsChanged {
            revision: self.revision,
            instance_id: id,
            stats,
        }))
    }

    /// Points a job at a new preview frame (its bytes are kept by the caller). Frames without a
    /// prompt id (servers before preview metadata) belong to the running job of this app.
    pub fn preview_shown(
        &mut self,
        id: InstanceId,
        prompt_id: Option<&str>,
        preview: PreviewRef,
    ) -> Option<Update> {
        let instance = self.instances.iter_mut().find(|i| i.id == id)?;
        let job = find_running(instance, prompt_id)?;
        job.preview = Some(preview);
        let job = job.clone();
        self.revision += 1;
        Some(Update::JobUpdated(Box::new(JobUpdated {
            revision: self.revision,
            instance_id: id,
            job,
            order: None,
        })))
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            revision: self.revision,
            instances: self.instances.clone(),
            notices: Vec::new(),
        }
    }

    /// Folds one engine event into the picture and says what changed. Previews come through
    /// [`Overview::preview_shown`] (with the frame's sequence number); node text updates its
    /// job; custom server messages go to the event log, not here.
    pub fn apply(&mut self, event: &Event) -> Option<Update> {
        let index = self
            .instances
            .iter()
            .position(|i| i.id == event.instance_id);
        let Some(index) = index else {
            tracing::debug!(instance = %event.instance, "event for an unknown instance");
            return None;
        };
        let revision = self.revision + 1;
        let instance = &mut self.instances[index];
        let instance_id = instance.id;
        let update = match &event.kind {
            EventKind::Connection(status) => {
                instance.status = InstanceStatus {
                    status: status.clone(),
                    changed_at_ms: unix_ms(event.ts),
                };
                Update::InstanceStatusChanged(InstanceStatusChanged {
                    revision,
                    instance_id,
                    status: instance.status.clone(),
                })
            }
            EventKind::Server(info) => {
                instance.server = Some(info.clone());
                Update::ServerInfoChanged(ServerInfoChanged {
                    revision,
                    instance_id,
                    server: info.clone(),
                })
            }
            EventKind::Queue { running, pending } => {
                instance.queue = QueueCounts {
                    running: running.len(),
                    pending: pending.len(),
                };
                Update::QueueChanged(QueueChanged {
                    revision,
                    instance_id,
                    queue: instance.queue,
                })
            }
            EventKind::Job(view) => {
                let (job, order) = upsert_job(instance, JobSummary::new(view.as_ref().clone()));
                Update::JobUpdated(Box::new(JobUpdated {
                    revision,
                    instance_id,
                    job,
                    order,
                }))
            }
            EventKind::ProtocolError { detail } => {
                tracing::warn!(instance = %instance.name, %detail, "undecodable frame");
                return None;
            }
            EventKind::Text {
                prompt_id,
                node,
                text,
            } => {
                let job = find_running(instance, prompt_id.as_ref().map(|p| p.as_str()))?;
                set_node_text(&mut job.node_text, node.as_str(), text);
                Update::JobUpdated(Box::new(JobUpdated {
                    revision,
                    instance_id,
                    job: job.clone(),
                    order: None,
                }))
            }
            EventKind::Preview(_) | EventKind::ServerEvent { .. } => {
                return None;
            }
        };
        self.revision = revision;
        Some(update)
    }
}

/// The job a preview or text frame belongs to: the one named, else this app's running job.
fn find_running<'a>(
    instance: &'a mut InstanceView,
    prompt_id: Option<&str>,
) -> Option<&'a mut JobSummary> {
    match prompt_id {
        Some(id) => instance
            .jobs
            .iter_mut()
            .find(|j| j.job.prompt_id.as_str() == id),
        None => instance
            .jobs
            .iter_mut()
            .find(|j| j.job.state == JobState::Running && j.job.fidelity == Fidelity::Live),
    }
}

/// A node's latest text (the engine cuts each to its last 64 KiB) replaces its earlier text.
fn set_node_text(texts: &mut Vec<NodeText>, node: &str, text: &str) {
    let text = text.to_owned();
    match texts.iter_mut().find(|t| t.node == node) {
        Some(t) => t.text = text,
        None => texts.push(NodeText {
            node: node.to_owned(),
            text,
        }),
    }
    // A server naming a new node every message, or many nodes writing at once, cannot grow the
    // job's picture without bound: the earliest other nodes' text goes first.
    let mut total: usize = texts.iter().map(|t| t.text.len() + t.node.len()).sum();
    while total > MAX_JOB_NODE_TEXT {
        let Some(at) = texts.iter().position(|t| t.node != node) else {
            break;
        };
        let gone = texts.remove(at);
        total -= gone.text.len() + gone.node.len();
    }
}

fn job_order(jobs: &[JobSummary]) -> Vec<PromptId> {
    jobs.iter().map(|j| j.job.prompt_id.clone()).collect()
}

/// Stores a job's new picture and returns it as stored, with the instance's new job order when
/// it changed.
fn upsert_job(
    instance: &mut InstanceView,
    mut job: JobSummary,
) -> (JobSummary, Option<Vec<PromptId>>) {
    let before = job_order(&instance.jobs);
    let existing = instance
        .jobs
        .iter()
        .position(|j| j.job.prompt_id == job.job.prompt_id);
    // What the engine's picture of a job does not carry survives its updates.
    if let Some(old) = existing.map(|i| &instance.jobs[i]) {
        job.preview = old.preview;
        job.node_text = old.node_text.clone();
    }
    if job.job.state.is_terminal() {
        if let Some(i) = existing {
            instance.jobs.remove(i);
        }
        instance.last_job = Some(job.clone());
    } else {
        match existing {
            Some(i) => instance.jobs[i] = job.clone(),
            None => instance.jobs.push(job.clone()),
        }
        // Running first, then by queue number (unknown numbers last), stable otherwise.
        instance.jobs.sort_by(|a, b| {
            let running = |j: &JobSummary| j.job.state != JobState::Running;
            running(a).cmp(&running(b)).then_with(|| {
                let n = |j: &JobSummary| j.job.number.unwrap_or(f64::INFINITY);
                n(a).total_cmp(&n(b))
            })
        });
    }
    let after = job_order(&instance.jobs);
    let order = (after != before).then_some(after);
    (job, order)
}

fn unix_ms(ts: OffsetDateTime) -> i64 {
    i64::try_from(ts.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use comfy_engine::{JobOrigin, JobView, Preview, ServerInfo};

    fn event(kind: EventKind) -> Event {
        Event {
            ts: OffsetDateTime::from_unix_timestamp(1_700_000_000).expect("valid timestamp"),
            instance_id: GPU,
            instance: "gpu".into(),
            kind,
        }
    }

    const GPU: InstanceId = InstanceId(1);

    fn overview() -> Overview {
        let mut o = Overview::default();
        o.add_instance(GPU, "gpu", "http://gpu:8188/", true, true, None);
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
            .map(|j| j.job.prompt_id.to_string())
            .collect()
    }

    #[test]
    fn new_instance_is_connecting_with_no_server_info() {
        let s = overview().snapshot();
        assert_eq!(s.instances.len(), 1);
        assert_eq!(
            s.instances[0].status.status.state,
            ConnectionState::Connecting
        );
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
        assert_eq!(p.status.status.state, ConnectionState::AuthFailed);
        assert_eq!(p.status.changed_at_ms, 1_700_000_000_000);
        let s = o.snapshot();
        assert_eq!(s.revision, before + 1);
        assert_eq!(s.instances[0].status.status.detail, "auth failed: 401");
        assert_eq!(s.instances[0].status.status.retry_in_ms, Some(4000));
    }

    #[test]
    fn server_and_queue_events_are_reflected() {
        let mut o = overview();
        o.apply(&event(EventKind::Server(ServerInfo {
            version: Some("0.3.60".into()),
            jobs_api: false,
            feature_flags: true,
            client_id: "c".into(),
            companion: None,
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
    fn an_update_that_changes_the_job_order_carries_it_and_progress_does_not() {
        let mut o = overview();
        let order_of = |u: Option<Update>| match u {
            Some(Update::JobUpdated(u)) => u.order.map(|ids| {
                ids.iter()
                    .map(|id| id.as_str().to_owned())
                    .collect::<Vec<_>>()
            }),
            other => panic!("expected a job update, got {other:?}"),
        };
        assert_eq!(
            order_of(o.apply(&event(job("p2", JobState::Pending, 2.0)))),
            Some(vec!["p2".to_owned()])
        );
        assert_eq!(
            order_of(o.apply(&event(job("p1", JobState::Pending, 1.0)))),
            Some(vec!["p1".to_owned(), "p2".to_owned()])
        );
        assert_eq!(
            order_of(o.apply(&event(job("p2", JobState::Running, 2.0)))),
            Some(vec!["p2".to_owned(), "p1".to_owned()]),
            "a job that starts runs first"
        );
        assert_eq!(
            order_of(o.apply(&event(job("p2", JobState::Running, 2.0)))),
            None,
            "progress keeps the order"
        );
        assert_eq!(
            order_of(o.apply(&event(job("p2", JobState::Success, 2.0)))),
            Some(vec!["p1".to_owned()])
        );
    }

    #[test]
    fn finished_job_leaves_the_active_list_and_becomes_the_last_job() {
        let mut o = overview();
        o.apply(&event(job("r", JobState::Running, 0.0)));
        o.apply(&event(job("r", JobState::Success, 0.0)));
        assert!(job_ids(&o).is_empty());
        let last = o.snapshot().instances[0].last_job.clone();
        assert_eq!(last.map(|j| j.job.state), Some(JobState::Success));
    }

    #[test]
    fn preview_events_alone_change_nothing() {
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
            in_flight: Default::default(),
        })));
        assert!(update.is_none());
        assert_eq!(o.snapshot().revision, before);
    }

    fn live_job(id: &str, state: JobState) -> EventKind {
        EventKind::Job(Box::new(JobView::new(id.into(), JobOrigin::SelfApp, state)))
    }

    #[test]
    fn a_shown_preview_attaches_to_its_job_and_survives_progress_updates() {
        let mut o = overview();
        o.apply(&event(live_job("r", JobState::Running)));
        let frame = PreviewRef {
            seq: 7,
            width: Some(512),
            height: Some(512),
        };
        let Some(Update::JobUpdated(u)) = o.preview_shown(GPU, Some("r"), frame) else {
            panic!("a preview of a running job must update it");
        };
        assert_eq!(u.job.preview, Some(frame));
        let Some(Update::JobUpdated(progress)) = o.apply(&event(live_job("r", JobState::Running)))
        else {
            panic!("progress must update the job");
        };
        // The update sent carries the preview too, or the UI would drop it at every step.
        assert_eq!(progress.job.preview, Some(frame));
        assert_eq!(o.snapshot().instances[0].jobs[0].preview, Some(frame));
        // A frame without a prompt id goes to this app's running job.
        let next = PreviewRef { seq: 8, ..frame };
        assert!(o.preview_shown(GPU, None, next).is_some());
        assert_eq!(o.snapshot().instances[0].jobs[0].preview, Some(next));
        // Nobody to show it on: nothing changes.
        assert!(o.preview_shown(GPU, Some("other"), next).is_none());
    }

    #[test]
    fn node_text_replaces_per_node_and_is_bounded() {
        let mut o = overview();
        o.apply(&event(live_job("r", JobState::Running)));
        let text = |node: &str, text: String| {
            event(EventKind::Text {
                prompt_id: Some("r".into()),
                node: node.into(),
                text,
            })
        };
        o.apply(&text("5", "Hello".into()));
        o.apply(&text("5", "Hello, world".into()));
        o.apply(&text("6", "x".repeat(1000)));
        let job = &o.snapshot().instances[0].jobs[0];
        assert_eq!(job.node_text.len(), 2);
        assert_eq!(job.node_text[0].text, "Hello, world");
        assert_eq!(job.node_text[1].text.len(), 1000);

        // A new node every message: the job keeps a bounded amount, the latest nodes' text.
        for n in 0..10_000 {
            o.apply(&text(&format!("n{n}"), "y".repeat(1000)));
        }
        let job = &o.snapshot().instances[0].jobs[0];
        let kept: usize = job
            .node_text
            .iter()
            .map(|t| t.text.len() + t.node.len())
            .sum();
        assert!(kept <= MAX_JOB_NODE_TEXT, "{kept}");
        assert!(job.node_text.len() > 200, "{}", job.node_text.len());
        assert_eq!(job.node_text.last().map(|t| t.node.as_str()), Some("n9999"));
        assert!(job.node_text.iter().all(|t| t.node.starts_with('n')));
    }

    #[test]
    fn instances_stay_in_saved_order_and_can_be_replaced_or_removed() {
        let mut o = Overview::default();
        o.add_instance(InstanceId(2), "b", "http://b/", true, true, None);
        o.add_instance(InstanceId(1), "a", "http://a/", true, true, None);
        o.add_instance(InstanceId(2), "b2", "http://b2/", false, false, None);
        let snapshot = o.snapshot().instances;
        let names: Vec<_> = snapshot.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["a", "b2"]);
        assert!(snapshot[0].use_companion);
        assert!(!snapshot[1].use_companion, "the replacement's settings");
        assert!(o.remove_instance(InstanceId(1)).is_some());
        assert!(o.remove_instance(InstanceId(1)).is_none());
    }

    #[test]
    fn events_for_unknown_instances_are_ignored() {
        let mut o = overview();
        let mut e = event(EventKind::Queue {
            running: vec![],
            pending: vec![],
        });
        e.instance_id = InstanceId(9);
        e.instance = "elsewhere".into();
        assert!(o.apply(&e).is_none());
    }
}
